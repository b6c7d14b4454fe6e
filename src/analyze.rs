//! `EXPLAIN ANALYZE`: runs the query, then shows the physical plan with
//! what each operator did (rows, batches, compute time, peak memory).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use ffq_dataflow::metrics::MetricsSnapshot;
use ffq_dataflow::plan::{NodeId, PhysicalPlan};
use ffq_dataflow::runner::CompiledPlan;
use futures::StreamExt;

use crate::engine::EngineState;
use crate::error::Result;

/// Runs `physical` embedded to completion and renders its metrics.
pub(crate) async fn explain_analyze(
    state: &Arc<EngineState>,
    physical: &PhysicalPlan,
) -> Result<(SchemaRef, RecordBatch)> {
    let start = Instant::now();
    let compiled = CompiledPlan::try_new(
        physical,
        state.exec_config(),
        Arc::clone(&state.registry),
        state.memory.clone(),
        state.exchange.clone(),
        None,
        state.operators(),
    )?;
    let metrics = Arc::clone(&compiled.ctx.metrics);
    let mut stream = compiled.into_stream()?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows();
    }
    let elapsed = start.elapsed();
    let text = render_plan(physical, &metrics.snapshot());
    Ok(analyze_batch(vec![
        ("Plan with Metrics".to_string(), text),
        (
            "Output".to_string(),
            format!("{rows} rows in {}", format_duration(elapsed)),
        ),
    ]))
}

/// The rows of an `EXPLAIN ANALYZE` result: (plan_type, plan).
pub(crate) fn analyze_batch(rows: Vec<(String, String)>) -> (SchemaRef, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("plan_type", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
    ]));
    let (kinds, plans): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(kinds)),
            Arc::new(StringArray::from(plans)),
        ],
    )
    .expect("two string columns match the schema");
    (schema, batch)
}

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

/// `EXPLAIN ANALYZE` on a cluster: runs the query there and shows each
/// stage with its task attempts and output bytes, and its plan with the
/// counters summed over the stage's successful attempts.
pub(crate) async fn explain_analyze_cluster(
    state: &Arc<EngineState>,
    cluster: &Arc<ffq_cluster::ClusterClient>,
    physical: &PhysicalPlan,
) -> Result<(SchemaRef, RecordBatch)> {
    let a = cluster
        .analyze(
            physical,
            state.memory.clone(),
            Arc::clone(&state.registry),
            state.operators(),
            state.exec_config(),
        )
        .await?;
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
        let output = match &stage.output {
            Some(p) => PhysicalPlan::Exchange {
                input: Box::new(stage.plan.clone()),
                partitioning: p.clone(),
            }
            .describe(),
            None => String::new(),
        };
        let bytes: u64 = profile.outputs.iter().map(|o| o.3).sum();
        text.push_str(&format!(
            "Stage {} -> {output}: {} tasks, {} attempts ({} failed, {} requeued), output {}\n",
            stage.id,
            profile.tasks,
            profile.attempts,
            profile.failed_attempts,
            profile.lost_attempts,
            format_bytes(bytes)
        ));
        for (task, attempt, worker, bytes) in &profile.outputs {
            text.push_str(&format!(
                "  task {task}: attempt {attempt} on {worker}, {} to ffq/<cluster>/data/<query>/{}/{attempt}/{task}/*\n",
                format_bytes(*bytes),
                stage.id
            ));
        }
        text.push_str(&indent(&render_plan(&stage.plan, &profile.metrics)));
    }
    Ok(analyze_batch(vec![
        ("Plan with Metrics".to_string(), text),
        (
            "Output".to_string(),
            format!("{} rows in {}", a.rows, format_duration(a.elapsed)),
        ),
    ]))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
