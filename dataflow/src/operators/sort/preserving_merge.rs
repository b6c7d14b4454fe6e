//! SortPreservingMerge: merges N partitions, each sorted by the same keys,
//! into one sorted partition, stopping after `fetch` rows if given.
//!
//! ```text
//!  input p0 ──task (encode keys)──chan──┐
//!  input p1 ──task (encode keys)──chan──┼── k-way merge ──> output 0
//!  input p2 ──task (encode keys)──chan──┘
//! ```
//!
//! Each input partition is driven by its own task of the query, feeding a
//! small bounded channel: the inputs run in parallel (typically one sort per
//! partition), row-encode their keys there, and none of them waits on the
//! merge reading another input first (which could deadlock when the inputs
//! share an upstream exchange). The merge streams: it holds one batch per
//! input plus the rows of the output batch being built.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{MergeStep, Merger, SortKeys, SortedRun};
use crate::error::{DataflowError, Result};
use crate::execution::catch_panic;
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::expr::SortExpr;
use crate::functions::FunctionRegistry;
use crate::stream::{boxed, SendableRecordBatchStream};

#[cfg(test)]
mod tests;

/// Batches each input task may run ahead of the merge.
const INPUT_BUFFER: usize = 2;

pub struct SortPreservingMerge {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    keys: Arc<SortKeys>,
    fetch: Option<usize>,
}

impl SortPreservingMerge {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn Operator>,
        order: &[SortExpr],
        fetch: Option<usize>,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let keys = SortKeys::try_new(order, &input.schema(), registry)?;
        Ok(SortPreservingMerge {
            properties: OperatorProperties::new("SortPreservingMerge", input.schema(), 1),
            input,
            keys: Arc::new(keys),
            fetch,
        })
    }
}

/// Drives one input partition, sending its batches with encoded keys until
/// the input ends, fails, or the merge is gone.
async fn feed(
    mut input: SendableRecordBatchStream,
    keys: Arc<SortKeys>,
    tx: mpsc::Sender<Result<SortedRun>>,
) {
    let sender = tx.clone();
    let result = catch_panic(async move {
        loop {
            let next = tokio::select! {
                // The merge needs no more rows (fetch, error, or dropped).
                _ = tx.closed() => return Ok(()),
                next = input.next() => next,
            };
            let Some(batch) = next else {
                return Ok(());
            };
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let run = keys.run(batch)?;
            if tx.send(Ok(run)).await.is_err() {
                return Ok(());
            }
        }
    })
    .await;
    if let Err(e) = result {
        let _ = sender.send(Err(e)).await;
    }
}

impl Operator for SortPreservingMerge {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        _partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.schema();
        if self.fetch == Some(0) {
            return Ok(crate::stream::empty(schema));
        }
        let n = self.input.output_partitions();
        let inputs = (0..n)
            .map(|p| self.input.execute(p, ctx))
            .collect::<Result<Vec<_>>>()?;
        let batch_size = ctx.config.batch_size.max(1);
        let fetch = self.fetch;

        if n == 1 {
            // One sorted input: pass it through, up to `fetch` rows.
            let mut input = inputs
                .into_iter()
                .next()
                .ok_or_else(|| DataflowError::Internal("merge input without partitions".into()))?;
            let stream = async_stream::try_stream! {
                let mut remaining = fetch.unwrap_or(usize::MAX);
                while let Some(batch) = input.next().await {
                    let batch = batch?;
                    let n = remaining.min(batch.num_rows());
                    if n == 0 {
                        continue;
                    }
                    remaining -= n;
                    yield batch.slice(0, n);
                    if remaining == 0 {
                        break;
                    }
                }
            };
            return Ok(boxed(schema, stream));
        }

        let ctx = Arc::clone(ctx);
        Ok(merge_streams(
            schema,
            inputs,
            Arc::clone(&self.keys),
            batch_size,
            fetch,
            move |task| ctx.spawn(task),
        ))
    }
}

/// The k-way merge of sorted `inputs` (at least two) into one sorted
/// stream; `spawn` starts the task driving each input (on first poll).
pub fn merge_streams<S>(
    schema: SchemaRef,
    inputs: Vec<SendableRecordBatchStream>,
    keys: Arc<SortKeys>,
    batch_size: usize,
    fetch: Option<usize>,
    spawn: S,
) -> SendableRecordBatchStream
where
    S: Fn(BoxFuture<'static, ()>) -> Result<()> + Send + 'static,
{
    let out_schema = Arc::clone(&schema);
    let n = inputs.len();
    let stream = async_stream::try_stream! {
        let mut receivers = Vec::with_capacity(n);
        for input in inputs {
            let (tx, rx) = mpsc::channel(INPUT_BUFFER);
            spawn(Box::pin(feed(input, Arc::clone(&keys), tx)))?;
            receivers.push(rx);
        }
        let mut merger = Merger::new(out_schema, n, batch_size, fetch);
        loop {
            match merger.next_step()? {
                MergeStep::Emit(batch) => yield batch,
                MergeStep::Need(i) => {
                    let run = match receivers.get_mut(i) {
                        Some(rx) => rx.recv().await.transpose()?,
                        None => None,
                    };
                    merger.push(i, run)?;
                }
                MergeStep::Done => break,
            }
        }
    };
    boxed(schema, stream)
}
