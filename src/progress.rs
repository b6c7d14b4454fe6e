//! How far a running query got: rows scanned and stages done, for progress
//! displays (`DataFrame::execute_with_progress`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ffq_cluster::ClusterProgress;
use ffq_dataflow::metrics::MetricsSet;

/// A point-in-time view of a query's progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// Rows produced by the query's scans so far (on a cluster: by its
    /// finished tasks).
    pub rows_scanned: u64,
    pub stages_done: usize,
    pub stages_total: usize,
}

/// A handle on a running query's progress; cheap to clone and poll.
#[derive(Clone)]
pub struct Progress {
    source: Source,
}

#[derive(Clone)]
enum Source {
    Embedded {
        metrics: Arc<MetricsSet>,
        scans: Vec<usize>,
        stages: Vec<(usize, usize)>,
    },
    Cluster(Arc<ClusterProgress>),
    Fixed(ProgressSnapshot),
}

impl Progress {
    pub(crate) fn embedded(metrics: Arc<MetricsSet>, plan: &ffq_dataflow::PhysicalPlan) -> Self {
        Progress {
            source: Source::Embedded {
                metrics,
                scans: ffq_dataflow::metrics::scan_nodes(plan),
                stages: ffq_dataflow::metrics::stage_tops(plan),
            },
        }
    }

    pub(crate) fn cluster(progress: Arc<ClusterProgress>) -> Self {
        Progress {
            source: Source::Cluster(progress),
        }
    }

    pub(crate) fn done() -> Self {
        Progress {
            source: Source::Fixed(ProgressSnapshot::default()),
        }
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        match &self.source {
            Source::Embedded {
                metrics,
                scans,
                stages,
            } => ProgressSnapshot {
                rows_scanned: metrics.rows_of(scans),
                stages_done: metrics.finished(stages),
                stages_total: stages.len(),
            },
            Source::Cluster(p) => ProgressSnapshot {
                rows_scanned: p.rows_scanned.load(Ordering::Relaxed),
                stages_done: p.stages_done.load(Ordering::Relaxed) as usize,
                stages_total: p.stages_total.load(Ordering::Relaxed) as usize,
            },
            Source::Fixed(s) => *s,
        }
    }
}
