//! Sort: sorts each partition completely.
//!
//! Input batches are gathered into runs of about `batch_size` rows; each
//! run is sorted on arrival (so the CPU work comes in batch-sized steps) and
//! its sort keys are encoded in the arrow row format. At the end of the
//! input the runs are k-way merged (see [`super::merge::Merger`]), one
//! output batch of about `batch_size` rows at a time.
//!
//! The runs are held in a spillable reservation: when it is refused, the
//! runs in memory are merged into one run on disk, and the spilled runs
//! are merged back at the end (see [`super::external`]).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use futures::StreamExt;

use super::external::SortRuns;
use super::keys::SortKeys;
use crate::error::Result;
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::expr::SortExpr;
use crate::functions::FunctionRegistry;
use crate::stream::{boxed, SendableRecordBatchStream};

/// Accumulates input batches into runs of at least `batch_size` rows.
pub(crate) struct RunBuilder {
    pending: Vec<RecordBatch>,
    rows: usize,
    target: usize,
}

impl RunBuilder {
    pub(crate) fn new(target: usize) -> Self {
        RunBuilder {
            pending: Vec::new(),
            rows: 0,
            target: target.max(1),
        }
    }

    /// Adds a batch; returns the accumulated batch once it is big enough.
    pub(crate) fn push(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        self.rows += batch.num_rows();
        self.pending.push(batch);
        if self.rows >= self.target {
            return self.finish();
        }
        Ok(None)
    }

    /// The accumulated rows, if any.
    pub(crate) fn finish(&mut self) -> Result<Option<RecordBatch>> {
        self.rows = 0;
        match self.pending.len() {
            0 => Ok(None),
            1 => Ok(self.pending.pop()),
            _ => {
                let schema = self.pending[0].schema();
                let batch = concat_batches(&schema, &self.pending)?;
                self.pending.clear();
                Ok(Some(batch))
            }
        }
    }
}

pub struct Sort {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    keys: Arc<SortKeys>,
}

impl Sort {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn Operator>,
        order: &[SortExpr],
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let keys = SortKeys::try_new(order, &input.schema(), registry)?;
        Ok(Sort {
            properties: OperatorProperties::new("Sort", input.schema(), input.output_partitions()),
            input,
            keys: Arc::new(keys),
        })
    }
}

impl Operator for Sort {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, ctx)?;
        let keys = Arc::clone(&self.keys);
        let schema = self.schema();
        let batch_size = ctx.config.batch_size.max(1);
        // Made now, so that all partitions share the pool from the start.
        let mut runs = SortRuns::new(ctx, Arc::clone(&keys), Arc::clone(&schema), batch_size);
        let stream = async_stream::try_stream! {
            let mut builder = RunBuilder::new(batch_size);
            while let Some(batch) = input.next().await {
                if let Some(b) = builder.push(batch?)? {
                    runs.push(keys.sorted_run(&b)?)?;
                }
            }
            if let Some(b) = builder.finish()? {
                runs.push(keys.sorted_run(&b)?)?;
            }
            let mut output = runs.finish()?;
            while let Some(b) = output.next_batch()? {
                yield b;
            }
        };
        Ok(boxed(schema, stream))
    }
}
