//! [`ZenohPartitionWriter`]: the dataflow [`PartitionWriter`] of a task
//! attempt whose output partitions go into an [`OutputStore`].

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use ffq_dataflow::error::{DataflowError, Result as DfResult};
use ffq_dataflow::exchange::PartitionWriter;
use futures::future::BoxFuture;

use super::error::Result;
use super::keys::{AttemptRef, PartitionId};
use super::store::{OutputStore, OutputStreamWriter};

/// Writes the output partitions `0..partitions` of one task attempt into an
/// [`OutputStore`], one stream each (`.../<attempt>/<task>/<partition>`).
///
/// Semantics, following the [`PartitionWriter`] contract of the in-process
/// exchange (a reader's stream ends when the writers are dropped):
/// - `send(p, Ok(batch))` encodes and stores the batch (sliced into bounded
///   frames). It does not wait for consumers: the store buffers, bounded by
///   its byte budget (a write past it fails the task).
/// - `send(p, Err(e))` ends partition `p` with an error frame.
/// - [`finish`](Self::finish), or dropping the writer, ends every other
///   partition with its end frame. A drop while panicking ends them with an
///   error frame instead. A task attempt that is aborted mid-way also ends
///   with end frames: its output is never read, because consumers read
///   only attempts that the coordinator registered as successful.
pub struct ZenohPartitionWriter {
    attempt: AttemptRef,
    streams: Vec<Option<OutputStreamWriter>>,
}

impl std::fmt::Debug for ZenohPartitionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenohPartitionWriter")
            .field("attempt", &self.attempt)
            .field("partitions", &self.streams.len())
            .finish()
    }
}

impl ZenohPartitionWriter {
    /// Opens the streams of every partition (each gets its schema frame, so
    /// consumers can start fetching right away).
    pub fn new(
        store: &OutputStore,
        attempt: AttemptRef,
        partitions: usize,
        schema: SchemaRef,
    ) -> Result<Self> {
        let mut streams = Vec::with_capacity(partitions);
        for p in 0..partitions {
            let id = attempt.stream(PartitionId(p as u32));
            match store.open_stream(id, schema.clone()) {
                Ok(w) => streams.push(Some(w)),
                Err(e) => {
                    for w in streams.into_iter().flatten() {
                        let _ = w.fail("the task attempt could not open all its outputs");
                    }
                    return Err(e);
                }
            }
        }
        Ok(ZenohPartitionWriter { attempt, streams })
    }

    pub fn attempt(&self) -> &AttemptRef {
        &self.attempt
    }

    /// Ends every partition not ended yet with its end frame.
    pub fn finish(mut self) -> Result<()> {
        self.finish_all()
    }

    fn finish_all(&mut self) -> Result<()> {
        let mut first_err = None;
        for w in self.streams.iter_mut().filter_map(Option::take) {
            if let Err(e) = w.finish() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Ends every partition not ended yet with an error frame.
    pub fn abort(mut self, message: &str) {
        for w in self.streams.iter_mut().filter_map(Option::take) {
            let _ = w.fail(message);
        }
    }

    fn write(&mut self, partition: usize, item: DfResult<RecordBatch>) -> DfResult<()> {
        let n = self.streams.len();
        let slot = self.streams.get_mut(partition).ok_or_else(|| {
            DataflowError::Internal(format!(
                "no exchange partition {partition} (the writer has {n})"
            ))
        })?;
        match item {
            Ok(batch) => {
                let w = slot.as_mut().ok_or_else(|| {
                    DataflowError::Execution(format!(
                        "exchange partition {partition} of {:?} already ended",
                        self.attempt
                    ))
                })?;
                w.write(&batch)?;
            }
            Err(e) => {
                if let Some(w) = slot.take() {
                    w.fail(&e.to_string())?;
                }
            }
        }
        Ok(())
    }
}

impl PartitionWriter for ZenohPartitionWriter {
    fn send(
        &mut self,
        partition: usize,
        item: DfResult<RecordBatch>,
    ) -> BoxFuture<'_, DfResult<()>> {
        let r = self.write(partition, item);
        Box::pin(async move { r })
    }
}

impl Drop for ZenohPartitionWriter {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for w in self.streams.iter_mut().filter_map(Option::take) {
                let _ = w.fail("the producer panicked");
            }
        } else {
            let _ = self.finish_all();
        }
    }
}
