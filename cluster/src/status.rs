//! Human-readable cluster status (`ffq status`).

use std::fmt::Write;

use crate::protocol::{ClusterStatus, WorkerState};

/// The coordinator's status and the workers' own states as text.
pub fn format_status(status: &ClusterStatus, states: &[WorkerState]) -> String {
    let mut out = String::new();
    let alive = status.workers.iter().filter(|w| w.alive).count();
    let _ = writeln!(
        out,
        "workers: {alive} alive, {} known",
        status.workers.len()
    );
    for w in &status.workers {
        let state = states.iter().find(|s| s.id == w.info.id);
        let mut line = format!(
            "  {:<20} {:<5} slots={} running={}",
            w.info.id.as_str(),
            if w.alive { "up" } else { "lost" },
            w.info.slots,
            w.running
        );
        if let Some(s) = state {
            let _ = write!(
                line,
                " memory={}/{} buffered={} spilled={} task_spills={} streams={} tasks_run={}",
                human_bytes(s.memory_reserved),
                s.memory_limit
                    .map_or_else(|| "unlimited".to_string(), human_bytes),
                human_bytes(s.buffered_bytes),
                human_bytes(s.spilled_bytes),
                human_bytes(s.task_spilled_bytes),
                s.streams.len(),
                s.tasks_run
            );
        }
        if !w.info.operators.is_empty() {
            let _ = write!(line, " operators=[{}]", w.info.operators.join(", "));
        }
        if let Some(ms) = w.excluded_ms {
            let _ = write!(line, " excluded for {:.1}s", ms as f64 / 1000.0);
        }
        if let Some(ms) = w.suspected_ms {
            let _ = write!(line, " suspected for {:.1}s", ms as f64 / 1000.0);
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "queries: {}", status.queries.len());
    for q in &status.queries {
        let _ = writeln!(
            out,
            "  {} {}: stages {}/{} done, {} tasks running, {} attempts",
            q.id, q.state, q.stages_done, q.stages_total, q.running_tasks, q.attempts
        );
    }
    let c = &status.counters;
    let _ = writeln!(
        out,
        "counters: submitted={} failed={} attempts={} failed_attempts={} requeued={} recomputed={} \
         workers_lost={} excluded={} stalled={} suspected={} stale_reports={} stale_frames={} \
         releases={}",
        c.queries_submitted,
        c.queries_failed,
        c.attempts_started,
        c.attempts_failed,
        c.requeued,
        c.recomputed,
        c.workers_lost,
        c.workers_excluded,
        c.stalled,
        c.workers_suspected,
        c.stale_reports,
        c.stale_frames,
        c.releases
    );
    out
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1}GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}KiB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}
