//! Attempts that make no progress. A worker sends an [`AttemptProgress`]
//! for each running attempt every `progress_every` (the assignment says
//! how often), counting the work the attempt did so far. An attempt whose
//! work has not grown within `progress_deadline` of its assignment or of
//! its last growth is requeued on another worker, like the attempt of a
//! lost worker (charging the task's `max_lost` budget), and its worker is
//! told to drop it and is suspected: it gets no task while another worker
//! can take it, until it shows life (a report, or progress of an attempt)
//! or `suspect_for` passes.
//!
//! This bounds what a worker that accepts assignments and then never
//! answers (hung, wedged, or hostile) can hold a query for; the liveliness
//! token alone does not, since such a worker keeps its token.

use std::time::Instant;

use ffq_transport::zenoh_exchange::{AttemptRef, TaskId, WorkerId};

use super::{Action, Scheduler};
use crate::protocol::{AttemptProgress, ProgressAck, Release};

impl Scheduler {
    /// A worker tells how far a running attempt got. The answer says
    /// whether the attempt is still its task's running attempt on that
    /// worker; one that is not should stop.
    pub fn progress(&mut self, progress: &AttemptProgress, now: Instant) -> ProgressAck {
        let a = &progress.attempt;
        let task = self
            .queries
            .get_mut(&a.query)
            .filter(|q| !q.failed)
            .and_then(|q| q.find_task_mut(a.stage, a.task))
            .filter(|t| {
                t.running
                    .as_ref()
                    .is_some_and(|p| p.attempt == a.attempt && p.worker == progress.worker)
            });
        let Some(task) = task else {
            return ProgressAck { running: false };
        };
        if progress.work > task.work {
            task.work = progress.work;
            task.progress_at = Some(now);
            // Only growing work is life: a worker repeating the same
            // number for a stuck attempt stays suspected.
            if let Some(w) = self.workers.get_mut(&progress.worker) {
                w.shows_life();
            }
        }
        ProgressAck { running: true }
    }

    /// Requeues the running attempts that made no progress within the
    /// deadline, and suspects their workers.
    pub(super) fn requeue_stalled(&mut self, now: Instant) -> Vec<Action> {
        let deadline = self.config.progress_deadline;
        let mut stalled: Vec<(WorkerId, AttemptRef)> = Vec::new();
        for (qid, q) in self.queries.iter().filter(|(_, q)| !q.failed) {
            for s in q.worker_stages() {
                for (t, task) in q.stage(s).tasks.iter().enumerate() {
                    let Some(running) = &task.running else {
                        continue;
                    };
                    if task
                        .progress_at
                        .is_some_and(|at| now.duration_since(at) >= deadline)
                    {
                        let attempt =
                            AttemptRef::new(qid.clone(), s, TaskId(t as u32), running.attempt);
                        stalled.push((running.worker.clone(), attempt));
                    }
                }
            }
        }
        let mut actions = Vec::new();
        for (worker, attempt) in stalled {
            actions.extend(self.attempt_stalled(&worker, &attempt, now));
        }
        actions
    }

    /// The running attempt `attempt` on `worker` stalled.
    fn attempt_stalled(
        &mut self,
        worker: &WorkerId,
        attempt: &AttemptRef,
        now: Instant,
    ) -> Vec<Action> {
        let deadline = self.config.progress_deadline;
        let suspect_for = self.config.suspect_for;
        let mut actions = Vec::new();
        if let Some(w) = self.workers.get_mut(worker) {
            if !w.suspected(now) {
                self.counters.workers_suspected += 1;
            }
            w.suspected_until = Some(now + suspect_for);
            if w.alive {
                actions.push(Action::Release {
                    worker: worker.clone(),
                    release: Release::Attempt(attempt.clone()),
                    stale: true,
                });
                self.counters.releases += 1;
            }
        }
        let Some(lost) = self.requeue_away_from(worker, attempt) else {
            return actions;
        };
        self.counters.stalled += 1;
        tracing::warn!(query = %attempt.query, stage = %attempt.stage, task = %attempt.task,
            attempt = %attempt.attempt, worker = %worker, ?deadline, ?suspect_for,
            "requeue: no progress within the deadline; worker suspected");
        if lost > self.config.max_lost {
            let message = format!(
                "stage {} task {} lost its worker or made no progress {lost} times (last: no progress on {worker} within {deadline:?})",
                attempt.stage, attempt.task
            );
            actions.extend(self.fail_query(&attempt.query, message));
        }
        actions
    }
}
