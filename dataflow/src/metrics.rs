//! Run-time metrics of operators, for `EXPLAIN ANALYZE` and progress.
//!
//! Counters are kept per plan node, by the node's [`NodeId`]
//! ([`PhysicalPlan::numbered`] is the one numbering). `crate::compile`
//! wraps every compiled operator in [`crate::execution::Instrumented`],
//! which counts the batches and rows it yields and the time spent inside
//! its `poll_next` (inclusive of inputs polled inline). Stateful operators
//! report the memory their state holds through
//! [`crate::execution::OperatorMemory`] (`TaskContext::reserve`); the peak per node is
//! kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::plan::{NodeId, PhysicalPlan};

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
    /// Bytes, rows and files spilled to disk, and the time spent writing
    /// them (see [`crate::execution::SpillArea`]).
    pub spilled_bytes: AtomicU64,
    pub spilled_rows: AtomicU64,
    pub spill_files: AtomicU64,
    pub spill_ns: AtomicU64,
    /// Input rows a partial aggregate passed through as one state row each
    /// instead of grouping them (it did not reduce its input).
    pub skipped_partial_rows: AtomicU64,
}

impl OperatorMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            output_rows: self.output_rows.load(Ordering::Relaxed),
            output_batches: self.output_batches.load(Ordering::Relaxed),
            poll_ns: self.poll_ns.load(Ordering::Relaxed),
            peak_memory: self.peak_memory.load(Ordering::Relaxed),
            spilled_bytes: self.spilled_bytes.load(Ordering::Relaxed),
            spilled_rows: self.spilled_rows.load(Ordering::Relaxed),
            spill_files: self.spill_files.load(Ordering::Relaxed),
            spill_ns: self.spill_ns.load(Ordering::Relaxed),
            skipped_partial_rows: self.skipped_partial_rows.load(Ordering::Relaxed),
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
    #[serde(default)]
    pub spilled_bytes: u64,
    #[serde(default)]
    pub spilled_rows: u64,
    #[serde(default)]
    pub spill_files: u64,
    #[serde(default)]
    pub spill_ns: u64,
    #[serde(default)]
    pub skipped_partial_rows: u64,
}

impl MetricsSnapshot {
    /// Adds `other` (another task's counters of the same node).
    pub fn merge(&mut self, other: &MetricsSnapshot) {
        self.output_rows += other.output_rows;
        self.output_batches += other.output_batches;
        self.poll_ns += other.poll_ns;
        self.peak_memory += other.peak_memory;
        self.spilled_bytes += other.spilled_bytes;
        self.spilled_rows += other.spilled_rows;
        self.spill_files += other.spill_files;
        self.spill_ns += other.spill_ns;
        self.skipped_partial_rows += other.skipped_partial_rows;
    }
}

/// The metrics of every node of one compiled plan, by node id.
#[derive(Debug, Default)]
pub struct MetricsSet {
    nodes: Mutex<Vec<Arc<OperatorMetrics>>>,
}

impl MetricsSet {
    /// The counters of node `id` (see [`PhysicalPlan::numbered`]).
    pub(crate) fn register(&self, id: NodeId) -> Arc<OperatorMetrics> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if nodes.len() <= id.0 {
            nodes.resize_with(id.0 + 1, Default::default);
        }
        Arc::clone(&nodes[id.0])
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

/// Ids of the scan nodes of `plan`.
pub fn scan_nodes(plan: &PhysicalPlan) -> Vec<usize> {
    plan.numbered()
        .into_iter()
        .filter(|n| matches!(n.node, PhysicalPlan::Scan { .. }))
        .map(|n| n.id.0)
        .collect()
}

/// The top node of every stage of `plan` (the root, and each exchange's
/// input) with its partitions: a stage is done when its top node ended
/// every partition.
pub fn stage_tops(plan: &PhysicalPlan) -> Vec<(usize, usize)> {
    let nodes = plan.numbered();
    let mut out = vec![(0, plan.output_partitions())];
    for n in &nodes {
        if let (PhysicalPlan::Exchange { input, .. }, [top]) = (n.node, n.children.as_slice()) {
            out.push((top.0, input.output_partitions()));
        }
    }
    out
}
