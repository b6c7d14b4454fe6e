//! Run-time metrics of operators, for `EXPLAIN ANALYZE` and progress.
//!
//! `operators::compile` gives every plan node an id (its position in a
//! pre-order walk of the plan, root = 0) and wraps the compiled operator in
//! [`Instrumented`], which counts the batches and rows it yields and the
//! time spent inside its `poll_next` (inclusive of inputs polled inline).
//! Stateful operators report the memory their state holds through
//! [`TaskContext::report_memory`]; the peak per node is kept.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::operators::Operator;
use crate::plan::PhysicalPlan;
use crate::runner::TaskContext;
use crate::stream::{RecordBatchStream, SendableRecordBatchStream};

/// Counters of one plan node, summed over its partitions.
#[derive(Debug, Default)]
pub struct OperatorMetrics {
    pub output_rows: AtomicU64,
    pub output_batches: AtomicU64,
    /// Nanoseconds inside `poll_next`, inputs polled inline included.
    pub poll_ns: AtomicU64,
    /// Peak bytes of operator state, the maximum reported by any partition
    /// at any time (partitions' peaks are summed when they end).
    pub peak_memory: AtomicU64,
    /// Partitions whose stream ended.
    pub finished_partitions: AtomicU64,
}

impl OperatorMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            output_rows: self.output_rows.load(Ordering::Relaxed),
            output_batches: self.output_batches.load(Ordering::Relaxed),
            poll_ns: self.poll_ns.load(Ordering::Relaxed),
            peak_memory: self.peak_memory.load(Ordering::Relaxed),
        }
    }
}

/// A copy of one node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    pub output_rows: u64,
    pub output_batches: u64,
    pub poll_ns: u64,
    pub peak_memory: u64,
}

impl MetricsSnapshot {
    /// Adds `other` (another task's counters of the same node).
    pub fn merge(&mut self, other: &MetricsSnapshot) {
        self.output_rows += other.output_rows;
        self.output_batches += other.output_batches;
        self.poll_ns += other.poll_ns;
        self.peak_memory += other.peak_memory;
    }
}

/// The metrics of every node of one compiled plan, by node id.
#[derive(Debug, Default)]
pub struct MetricsSet {
    nodes: Mutex<Vec<Arc<OperatorMetrics>>>,
}

impl MetricsSet {
    /// A new node's counters; ids are handed out in call order.
    pub(crate) fn register(&self) -> (usize, Arc<OperatorMetrics>) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let m = Arc::new(OperatorMetrics::default());
        nodes.push(Arc::clone(&m));
        (nodes.len() - 1, m)
    }

    /// Counters by node id.
    pub fn snapshot(&self) -> Vec<MetricsSnapshot> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes.iter().map(|m| m.snapshot()).collect()
    }

    /// Rows produced so far by nodes `ids` (for progress).
    pub fn rows_of(&self, ids: &[usize]) -> u64 {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter()
            .filter_map(|&i| nodes.get(i))
            .map(|m| m.output_rows.load(Ordering::Relaxed))
            .sum()
    }

    /// How many of `nodes` (id, partitions) have ended every partition.
    pub fn finished(&self, nodes: &[(usize, usize)]) -> usize {
        let all = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes
            .iter()
            .filter(|(id, parts)| {
                all.get(*id)
                    .is_some_and(|m| m.finished_partitions.load(Ordering::Relaxed) >= *parts as u64)
            })
            .count()
    }
}

/// Pre-order ids of the scan nodes of `plan` (the ids `compile` gives).
pub fn scan_nodes(plan: &PhysicalPlan) -> Vec<usize> {
    let mut out = Vec::new();
    walk(plan, &mut 0, &mut |id, p| {
        if matches!(p, PhysicalPlan::Scan { .. }) {
            out.push(id)
        }
    });
    out
}

/// The top node of every stage of `plan` (the root, and each exchange's
/// input) with its partitions: a stage is done when its top node ended
/// every partition.
pub fn stage_tops(plan: &PhysicalPlan) -> Vec<(usize, usize)> {
    let mut out = vec![(0, plan.output_partitions())];
    walk(plan, &mut 0, &mut |id, p| {
        if let PhysicalPlan::Exchange { input, .. } = p {
            out.push((id + 1, input.output_partitions()))
        }
    });
    out
}

fn walk(plan: &PhysicalPlan, next: &mut usize, f: &mut impl FnMut(usize, &PhysicalPlan)) {
    let id = *next;
    *next += 1;
    f(id, plan);
    for c in plan.children() {
        walk(c, next, f);
    }
}

/// An operator whose streams are counted.
pub struct Instrumented {
    inner: Arc<dyn Operator>,
    metrics: Arc<OperatorMetrics>,
}

impl Instrumented {
    pub fn wrap(inner: Arc<dyn Operator>, metrics: Arc<OperatorMetrics>) -> Arc<dyn Operator> {
        Arc::new(Instrumented { inner, metrics })
    }
}

impl Operator for Instrumented {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn output_partitions(&self) -> usize {
        self.inner.output_partitions()
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let ctx = ctx.for_operator();
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
