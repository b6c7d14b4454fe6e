//! The wrapper `compile` puts around every operator: it checks the
//! partition index once for all operators, gives each partition its own
//! memory slot, and counts the batches and rows the stream yields and the
//! time spent inside its `poll_next` (inclusive of inputs polled inline).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::Stream;

use super::{Operator, OperatorProperties, TaskContext};
use crate::error::{DataflowError, Result};
use crate::metrics::OperatorMetrics;
use crate::plan::NodeId;
use crate::stream::{RecordBatchStream, SendableRecordBatchStream};

/// An operator whose partitions are checked and whose streams are counted.
pub struct Instrumented {
    inner: Arc<dyn Operator>,
    /// The plan node's id (see `PhysicalPlan::numbered`), for names of
    /// memory reservations.
    node: NodeId,
    metrics: Arc<OperatorMetrics>,
}

impl Instrumented {
    pub fn wrap(
        inner: Arc<dyn Operator>,
        node: NodeId,
        metrics: Arc<OperatorMetrics>,
    ) -> Arc<dyn Operator> {
        Arc::new(Instrumented {
            inner,
            node,
            metrics,
        })
    }
}

impl Operator for Instrumented {
    fn properties(&self) -> &OperatorProperties {
        self.inner.properties()
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let partitions = self.output_partitions();
        if partition >= partitions {
            return Err(DataflowError::Internal(format!(
                "{}: partition {partition} out of range (0..{partitions})",
                self.name(),
            )));
        }
        let ctx = ctx.for_operator(self.name(), self.node, &self.metrics, partition);
        let inner = self.inner.execute(partition, &ctx)?;
        Ok(Box::pin(CountedStream {
            inner,
            metrics: Arc::clone(&self.metrics),
            memory: ctx.memory_slot(),
        }))
    }
}

struct CountedStream {
    inner: SendableRecordBatchStream,
    metrics: Arc<OperatorMetrics>,
    memory: Arc<AtomicU64>,
}

impl Stream for CountedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let start = Instant::now();
        let poll = self.inner.as_mut().poll_next(cx);
        let m = &self.metrics;
        m.poll_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match &poll {
            Poll::Ready(Some(Ok(b))) => {
                m.output_batches.fetch_add(1, Ordering::Relaxed);
                m.output_rows
                    .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
            }
            Poll::Ready(None) => {
                m.finished_partitions.fetch_add(1, Ordering::Relaxed);
                // This partition's peak joins the node's total once.
                let peak = self.memory.swap(0, Ordering::Relaxed);
                m.peak_memory.fetch_add(peak, Ordering::Relaxed);
            }
            _ => {}
        }
        poll
    }
}

impl RecordBatchStream for CountedStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
