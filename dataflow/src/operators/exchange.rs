//! Exchange: redistributes the rows of all input partitions over the
//! output partitions (hash, round robin, or gather into one).
//!
//! ```text
//!  input p0 ──task──┐            ┌──> output 0
//!  input p1 ──task──┼─transport──┼──> output 1
//!  input p2 ──task──┘            └──> output 2
//! ```
//!
//! The first `execute` of any output partition opens the transport and
//! spawns one producer task per input partition; each output partition is
//! then handed out once. Hash-partitioned rows are coalesced per output into
//! batches of about `batch_size` rows before they are sent.

use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::BatchCoalescer;
use arrow::datatypes::SchemaRef;
use datafusion_common::hash_utils::RandomState;
use datafusion_physical_expr::PhysicalExpr;
use futures::StreamExt;

use crate::error::{DataflowError, Result};
use crate::exchange::PartitionWriter;
use crate::execution::{catch_panic, partition_indices, PARTITION_HASH_SEED};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::expr::evaluate_all;
use crate::functions::FunctionRegistry;
use crate::plan::Partitioning;
use crate::stream::SendableRecordBatchStream;

/// How one producer deals its rows over the output partitions: a compiled
/// [`Partitioning`]. The embedded exchange and the distributed runtime's
/// task outputs share it, so both send every row to the same partition.
pub struct Partitioner {
    mode: Mode,
    partitions: usize,
}

enum Mode {
    Hash(Vec<Arc<dyn PhysicalExpr>>, usize),
    RoundRobin(usize),
    Gather,
    Preserve,
}

impl Partitioner {
    /// Compiles `partitioning` against the producers' `schema`.
    pub fn try_new(
        partitioning: &Partitioning,
        schema: &SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        crate::limits::check_partitions(partitioning.partitions())?;
        let mode = match partitioning {
            Partitioning::Hash { keys, partitions } => Mode::Hash(
                keys.iter()
                    .map(|k| k.compile(schema, registry))
                    .collect::<Result<_>>()?,
                (*partitions).max(1),
            ),
            Partitioning::RoundRobin { partitions } => Mode::RoundRobin((*partitions).max(1)),
            Partitioning::Gather => Mode::Gather,
            Partitioning::Preserve { .. } => Mode::Preserve,
        };
        Ok(Partitioner {
            mode,
            partitions: partitioning.partitions().max(1),
        })
    }

    /// Output partitions.
    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// Runs producer `p`: reads partition `p` of `input` and sends its rows
    /// to the outputs through `writer`. Ends with `Cancelled` once no
    /// consumer is left; the caller decides what an error means for the
    /// consumers.
    pub async fn produce(
        &self,
        input: Arc<dyn Operator>,
        p: usize,
        ctx: &Arc<TaskContext>,
        writer: &mut dyn PartitionWriter,
    ) -> Result<()> {
        produce(input, p, ctx, &self.mode, self.partitions, writer).await
    }
}

pub struct Exchange {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    partitioner: Arc<Partitioner>,
    outputs: Mutex<Option<Vec<Option<SendableRecordBatchStream>>>>,
}

impl Exchange {
    pub fn try_new(
        input: Arc<dyn Operator>,
        partitioning: &Partitioning,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let partitioner = Partitioner::try_new(partitioning, &input.schema(), registry)?;
        if matches!(partitioner.mode, Mode::Preserve)
            && partitioner.partitions != input.output_partitions()
        {
            return Err(DataflowError::Plan(format!(
                "a preserving exchange needs as many outputs as inputs ({} != {})",
                partitioner.partitions,
                input.output_partitions()
            )));
        }
        Ok(Exchange {
            properties: OperatorProperties::new("Exchange", input.schema(), partitioner.partitions),
            input,
            partitioner: Arc::new(partitioner),
            outputs: Mutex::new(None),
        })
    }

    fn start(&self, ctx: &Arc<TaskContext>) -> Result<Vec<Option<SendableRecordBatchStream>>> {
        let producers = self.input.output_partitions();
        let outputs = self.partitioner.partitions;
        let (writers, readers) = ctx.exchange.open(producers, outputs, self.input.schema())?;
        for (p, writer) in writers.into_iter().enumerate() {
            let input = Arc::clone(&self.input);
            let partitioner = Arc::clone(&self.partitioner);
            let task_ctx = Arc::clone(ctx);
            ctx.spawn(async move {
                let mut writer = writer;
                let result =
                    catch_panic(partitioner.produce(input, p, &task_ctx, writer.as_mut())).await;
                if let Err(e) = result {
                    if !matches!(e, DataflowError::Cancelled) {
                        // Every consumer must learn that its input is
                        // incomplete; one error each is enough.
                        let copy = e.duplicate();
                        let _ = writer.send(0, Err(e)).await;
                        for o in 1..outputs {
                            let _ = writer.send(o, Err(copy.duplicate())).await;
                        }
                    }
                }
            })?;
        }
        Ok(readers.into_iter().map(Some).collect())
    }
}

/// Sends to the consumers of one producer, remembering which consumers are
/// gone: a consumer that stopped reading (a satisfied LIMIT, a finished
/// merge) must not end the stream of the others.
struct Outputs<'a> {
    writer: &'a mut dyn PartitionWriter,
    closed: Vec<bool>,
    open: usize,
}

impl<'a> Outputs<'a> {
    fn new(writer: &'a mut dyn PartitionWriter, n: usize) -> Self {
        Outputs {
            writer,
            closed: vec![false; n],
            open: n,
        }
    }

    /// Sends `batch` to consumer `o`; fails with `Cancelled` once no
    /// consumer is left.
    async fn send(&mut self, o: usize, batch: RecordBatch) -> Result<()> {
        if !self.closed[o] {
            match self.writer.send(o, Ok(batch)).await {
                Ok(()) => {}
                Err(DataflowError::Cancelled) => {
                    self.closed[o] = true;
                    self.open -= 1;
                }
                Err(e) => return Err(e),
            }
        }
        if self.open == 0 {
            return Err(DataflowError::Cancelled);
        }
        Ok(())
    }
}

/// Reads input partition `p` and sends its rows to the outputs.
async fn produce(
    input: Arc<dyn Operator>,
    p: usize,
    ctx: &Arc<TaskContext>,
    mode: &Mode,
    outputs: usize,
    writer: &mut dyn PartitionWriter,
) -> Result<()> {
    let mut stream = input.execute(p, ctx)?;
    let mut out = Outputs::new(writer, outputs);
    match mode {
        Mode::Gather => {
            while let Some(batch) = stream.next().await {
                out.send(0, batch?).await?;
            }
        }
        Mode::Preserve => {
            while let Some(batch) = stream.next().await {
                out.send(p, batch?).await?;
            }
        }
        Mode::RoundRobin(n) => {
            let mut next = p % n;
            while let Some(batch) = stream.next().await {
                out.send(next, batch?).await?;
                next = (next + 1) % n;
            }
        }
        Mode::Hash(keys, n) => {
            let batch_size = ctx.config.batch_size;
            let schema = input.schema();
            let mut coalescers: Vec<BatchCoalescer> = (0..outputs)
                .map(|_| BatchCoalescer::new(Arc::clone(&schema), batch_size))
                .collect();
            let random_state = RandomState::with_seed(PARTITION_HASH_SEED);
            let mut hashes = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let parts = hash_partition(&batch, keys, *n, &random_state, &mut hashes)?;
                for (o, indices) in parts.into_iter().enumerate() {
                    if indices.is_empty() || out.closed[o] {
                        continue;
                    }
                    let indices = UInt32Array::from(indices);
                    coalescers[o].push_batch_with_indices(batch.clone(), &indices)?;
                    while let Some(done) = coalescers[o].next_completed_batch() {
                        out.send(o, done).await?;
                    }
                }
            }
            for (o, c) in coalescers.iter_mut().enumerate() {
                c.finish_buffered_batch()?;
                while let Some(done) = c.next_completed_batch() {
                    out.send(o, done).await?;
                }
            }
        }
    }
    Ok(())
}

/// Row indices of `batch` per output partition, by hash of the key values.
pub fn hash_partition(
    batch: &RecordBatch,
    keys: &[Arc<dyn PhysicalExpr>],
    n: usize,
    random_state: &RandomState,
    hashes: &mut Vec<u64>,
) -> Result<Vec<Vec<u32>>> {
    partition_indices(&evaluate_all(keys, batch)?, n, random_state, hashes, None)
}

impl Operator for Exchange {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut outputs = self
            .outputs
            .lock()
            .map_err(|_| DataflowError::Internal("exchange state poisoned".into()))?;
        if outputs.is_none() {
            *outputs = Some(self.start(ctx)?);
        }
        outputs
            .as_mut()
            .and_then(|o| o.get_mut(partition))
            .and_then(|o| o.take())
            .ok_or_else(|| {
                DataflowError::Internal(format!("exchange output {partition} was already taken"))
            })
    }
}
