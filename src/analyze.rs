//! How `EXPLAIN ANALYZE` shows a run: the physical plan with what each
//! operator did (rows, batches, compute time, peak memory, what it spilled
//! to disk); on a cluster,
//! each stage with its task attempts too. The execution backends run the
//! query and call these renderers.

use std::time::Duration;

use ffq_cluster::QueryAnalysis;
use ffq_dataflow::metrics::MetricsSnapshot;
use ffq_dataflow::plan::{NodeId, PhysicalPlan};
use ffq_transport::zenoh_exchange::{AttemptRef, ClusterId, QueryId, StageId};

use crate::error::Result;

/// `plan` as an indented tree, each node with its metrics; `metrics` is
/// indexed by plan node id ([`PhysicalPlan::numbered`], the ids `compile`
/// gives).
pub fn render_plan(plan: &PhysicalPlan, metrics: &[MetricsSnapshot]) -> String {
    let of = |id: NodeId| metrics.get(id.0).copied().unwrap_or_default();
    let mut out = String::new();
    for n in plan.numbered() {
        let m = of(n.id);
        // Poll time is inclusive of inputs polled inline; inputs behind an
        // exchange run in their own tasks, so their time is not part of the
        // exchange's polls.
        let own_ns = if matches!(n.node, PhysicalPlan::Exchange { .. }) {
            m.poll_ns
        } else {
            let children_ns: u64 = n.children.iter().map(|&c| of(c).poll_ns).sum();
            m.poll_ns.saturating_sub(children_ns)
        };
        out.push_str(&format!(
            "{}{} [partitions={}] rows={} batches={} time={}",
            "  ".repeat(n.depth),
            n.node.describe(),
            n.node.output_partitions(),
            m.output_rows,
            m.output_batches,
            format_duration(Duration::from_nanos(own_ns)),
        ));
        if m.peak_memory > 0 {
            out.push_str(&format!(" peak_mem={}", format_bytes(m.peak_memory)));
        }
        if m.spill_files > 0 {
            out.push_str(&format!(
                " spilled={} spill_files={} spilled_rows={} spill_time={}",
                format_bytes(m.spilled_bytes),
                m.spill_files,
                m.spilled_rows,
                format_duration(Duration::from_nanos(m.spill_ns)),
            ));
        }
        if m.skipped_partial_rows > 0 {
            out.push_str(&format!(" skipped_partial_rows={}", m.skipped_partial_rows));
        }
        out.push('\n');
    }
    out
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1e3)
    } else if ms >= 1.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.0}µs", ms * 1e3)
    }
}

pub fn format_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1}GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}KiB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

/// What a cluster run did (`EXPLAIN ANALYZE` on a cluster): each stage with
/// its task attempts and output bytes, and its plan with the counters
/// summed over the stage's successful attempts.
pub fn render_cluster_analysis(a: &QueryAnalysis) -> Result<String> {
    // The analysis carries no ids of the cluster and the query: the keys
    // show where they go.
    let cluster = ClusterId::new("<cluster>")?;
    let query = QueryId::new("<query>")?;
    let mut text = String::new();
    for (stage, profile) in a.stages.iter().zip(&a.profile) {
        if stage.id == 0 {
            text.push_str(&format!(
                "Stage 0 (client): fetched {}\n",
                format_bytes(a.fetched_bytes)
            ));
            text.push_str(&indent(&render_plan(&stage.plan, &a.root_metrics)));
            continue;
        }
        let bytes: u64 = profile.outputs.iter().map(|o| o.bytes).sum();
        text.push_str(&format!(
            "Stage {} -> {}: {} tasks, {} attempts ({} failed, {} requeued), output {}\n",
            stage.id,
            stage.output_name(),
            profile.tasks,
            profile.attempts,
            profile.failed_attempts,
            profile.lost_attempts,
            format_bytes(bytes)
        ));
        for ffq_cluster::protocol::TaskOutput {
            task,
            attempt,
            worker,
            bytes,
        } in &profile.outputs
        {
            let output = AttemptRef::new(query.clone(), StageId(stage.id), *task, *attempt);
            text.push_str(&format!(
                "  task {task}: attempt {attempt} on {worker}, {} to {}\n",
                format_bytes(*bytes),
                output.data_space(&cluster)
            ));
        }
        text.push_str(&indent(&render_plan(&stage.plan, &profile.metrics)));
    }
    Ok(text)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
