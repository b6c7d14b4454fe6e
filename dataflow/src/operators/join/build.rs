//! The build side of a join: all partitions of the left input collected
//! into one batch, built once on first need and shared by every probe
//! partition that needs it.
//!
//! The build is a [`Shared`] future: whichever consumer polls it drives it,
//! and dropping one consumer does not cancel the build for the others.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;

use super::gather::rebind;
use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorMemory, TaskContext};
use crate::stream::{boxed, SendableRecordBatchStream};

type SharedResult<T> = std::result::Result<Arc<T>, Arc<DataflowError>>;

/// A build result shared by several partitions.
pub type SharedBuild<T> = Shared<BoxFuture<'static, SharedResult<T>>>;

/// Builds a value (the collected left side of a join) once, on first need,
/// and hands it to every consumer partition.
///
/// The build is a [`Shared`] future: whichever consumer polls it drives it,
/// and dropping one consumer does not cancel the build for the others. The
/// operator keeps the future only until each of its `consumers` partitions
/// took a handle, so the built value is freed when the last partition ends.
pub struct OnceBuild<T> {
    state: Mutex<(Option<SharedBuild<T>>, usize)>,
    consumers: usize,
}

impl<T: Send + Sync + 'static> OnceBuild<T> {
    pub fn new(consumers: usize) -> Self {
        OnceBuild {
            state: Mutex::new((None, 0)),
            consumers: consumers.max(1),
        }
    }

    /// A handle on the shared build; `make` creates the build future on the
    /// first call (it runs when first polled).
    pub fn get(
        &self,
        make: impl FnOnce() -> BoxFuture<'static, Result<T>>,
    ) -> Result<SharedBuild<T>> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| DataflowError::Internal("join build state poisoned".into()))?;
        let (fut, taken) = &mut *state;
        if *taken >= self.consumers {
            return Err(DataflowError::Internal(format!(
                "join build requested more than {} times",
                self.consumers
            )));
        }
        let handle = match fut {
            Some(f) => f.clone(),
            None => {
                let f = make()
                    .map(|r| r.map(Arc::new).map_err(Arc::new))
                    .boxed()
                    .shared();
                *fut = Some(f.clone());
                f
            }
        };
        *taken += 1;
        if *taken >= self.consumers {
            // Every consumer has its handle: let go of ours.
            *fut = None;
        }
        Ok(handle)
    }
}

/// Awaits a shared build.
pub async fn await_build<T: Send + Sync + 'static>(build: SharedBuild<T>) -> Result<Arc<T>> {
    build.await.map_err(|e| unshare_error(&e))
}

/// A copy of a shared error for one of its consumers (keeps the category).
pub fn unshare_error(e: &DataflowError) -> DataflowError {
    e.duplicate()
}

/// All partitions of `input` as one stream (read concurrently, so that
/// partitions fed by the same exchange cannot block each other).
pub fn merged_input(
    input: &Arc<dyn Operator>,
    ctx: &Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    let n = input.output_partitions();
    if n == 1 {
        return input.execute(0, ctx);
    }
    let streams = (0..n)
        .map(|p| input.execute(p, ctx))
        .collect::<Result<Vec<_>>>()?;
    Ok(boxed(input.schema(), futures::stream::select_all(streams)))
}

/// A collected build side with the reservation of what it holds, given
/// back to the pool when the last partition lets go of it.
pub struct HeldBatch {
    pub batch: RecordBatch,
    _memory: OperatorMemory,
}

/// Collects a stream into one batch of `schema`, reserving what it holds
/// from `memory` batch by batch.
pub async fn collect_batch(
    mut input: SendableRecordBatchStream,
    schema: &SchemaRef,
    memory: OperatorMemory,
) -> Result<HeldBatch> {
    let mut batches = Vec::new();
    while let Some(b) = input.next().await {
        let b = b?;
        if b.num_rows() > 0 {
            memory.try_grow(b.get_array_memory_size())?;
            batches.push(b);
        }
    }
    let batch = concat(schema, batches)?;
    memory.try_resize(batch.get_array_memory_size())?;
    Ok(HeldBatch {
        batch,
        _memory: memory,
    })
}

/// Concatenates batches into one batch of `schema`, one column at a time,
/// dropping each input column once it is copied: while it runs, the copy
/// needs room for the held batches and one more column, not for all of the
/// batches twice (a build side is most of what a join holds).
pub fn concat(schema: &SchemaRef, mut batches: Vec<RecordBatch>) -> Result<RecordBatch> {
    if batches.len() == 1 {
        if let Some(b) = batches.pop() {
            return rebind(schema, b.columns().to_vec(), b.num_rows());
        }
    }
    if batches.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    }
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let mut by_column: Vec<Vec<ArrayRef>> = (0..schema.fields().len())
        .map(|_| Vec::with_capacity(batches.len()))
        .collect();
    for batch in batches {
        let (_, columns, _) = batch.into_parts();
        if columns.len() != by_column.len() {
            return Err(DataflowError::Internal(format!(
                "concatenating a batch of {} columns into {} columns",
                columns.len(),
                by_column.len()
            )));
        }
        for (parts, column) in by_column.iter_mut().zip(columns) {
            parts.push(column);
        }
    }
    let mut columns = Vec::with_capacity(by_column.len());
    for parts in by_column.iter_mut() {
        let parts = std::mem::take(parts);
        let arrays: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        columns.push(arrow::compute::concat(&arrays)?);
    }
    rebind(schema, columns, rows)
}
