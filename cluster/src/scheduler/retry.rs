//! Failed attempts: each failure charges its task's budget
//! (`max_attempts`, then the query fails naming the stage, the task and
//! the last cause) and is retried after an exponential backoff, away from
//! the worker it failed on when possible; a worker failing `exclude_after`
//! attempts in a row is excluded for `exclude_for`. A deterministic
//! failure (division by zero, a corrupt file, state larger than the memory
//! limit) fails the query at once: a retry would only fail again.

use std::time::{Duration, Instant};

use ffq_transport::zenoh_exchange::{AttemptRef, WorkerId};

use super::{Action, Scheduler, SchedulerConfig};

impl Scheduler {
    /// The running attempt `attempt` failed on `worker` with `message`.
    pub(super) fn attempt_failed(
        &mut self,
        worker: &WorkerId,
        attempt: &AttemptRef,
        message: String,
        deterministic: bool,
        now: Instant,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        self.counters.attempts_failed += 1;
        let Some(q) = self.queries.get_mut(&attempt.query) else {
            return actions;
        };
        let (stage, task_no) = (attempt.stage, attempt.task);
        q.stage_mut(stage).profile.failed_attempts += 1;
        let task = q.task_mut(stage, task_no);
        task.failures += 1;
        task.last_failed_on = Some(worker.clone());
        let failures = task.failures;
        tracing::warn!(query = %attempt.query, stage = %stage, task = %task_no, attempt = %attempt.attempt,
            worker = %worker, failures, "attempt failed: {message}");
        if deterministic {
            let message =
                format!("stage {stage} task {task_no} failed (worker {worker}): {message}");
            actions.extend(self.fail_query(&attempt.query, message));
            // The worker did nothing wrong: it is not charged.
            return actions;
        }
        if failures >= self.config.max_attempts {
            let message = format!(
                "stage {stage} task {task_no} failed after {failures} attempts; last error (worker {worker}): {message}"
            );
            actions.extend(self.fail_query(&attempt.query, message));
        } else {
            let backoff = backoff(&self.config, failures);
            task.not_before = Some(now + backoff);
            tracing::info!(query = %attempt.query, stage = %stage, task = %task_no, ?backoff, "retry scheduled");
        }
        self.count_worker_failure(worker, now);
        actions
    }

    /// Excludes `worker` once it failed `exclude_after` attempts in a row.
    fn count_worker_failure(&mut self, worker: &WorkerId, now: Instant) {
        let Some(w) = self.workers.get_mut(worker) else {
            return;
        };
        w.consecutive_failures += 1;
        if w.consecutive_failures >= self.config.exclude_after && !w.excluded(now) {
            w.excluded_until = Some(now + self.config.exclude_for);
            self.counters.workers_excluded += 1;
            tracing::warn!(worker = %worker, for_ = ?self.config.exclude_for,
                "worker excluded after repeated failures");
        }
    }
}

/// How long the retry after the `failures`-th failure waits: doubling from
/// `backoff_base`, at most `backoff_max`.
fn backoff(config: &SchedulerConfig, failures: u32) -> Duration {
    config
        .backoff_base
        .saturating_mul(1 << (failures - 1).min(16))
        .min(config.backoff_max)
}
