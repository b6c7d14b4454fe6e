//! Workers joining, leaving and not answering. A lost worker's running
//! attempts are requeued as new attempts (charging the task's `max_lost`
//! budget, not its failure budget), and its registered outputs that a
//! stage still reads are recomputed, restarting their running readers. A
//! worker coming back is told to drop what it held when it was lost.

use std::collections::BTreeSet;
use std::time::Instant;

use ffq_transport::zenoh_exchange::{AttemptRef, QueryId, StageId, TaskId, WorkerId};

use super::query::QueryRun;
use super::{Action, Scheduler};
use crate::protocol::{Release, TaskOutcome, TaskReport, WorkerInfo, WorkerStatus};

pub(super) struct WorkerEntry {
    pub info: WorkerInfo,
    pub alive: bool,
    pub running: BTreeSet<AttemptRef>,
    pub consecutive_failures: u32,
    pub excluded_until: Option<Instant>,
    /// An attempt of it stalled: it gets no task while another worker can
    /// take it, until then or until it shows life.
    pub suspected_until: Option<Instant>,
    /// Attempts it held when it was lost: released if it comes back.
    pub lost: Vec<AttemptRef>,
}

impl WorkerEntry {
    fn new(info: WorkerInfo) -> Self {
        WorkerEntry {
            info,
            alive: true,
            running: BTreeSet::new(),
            consecutive_failures: 0,
            excluded_until: None,
            suspected_until: None,
            lost: Vec::new(),
        }
    }

    /// Whether it advertises every operator of `operators`.
    pub fn can_run(&self, operators: &[String]) -> bool {
        operators.iter().all(|op| self.info.operators.contains(op))
    }

    pub fn excluded(&self, now: Instant) -> bool {
        self.excluded_until.is_some_and(|t| t > now)
    }

    pub fn suspected(&self, now: Instant) -> bool {
        self.suspected_until.is_some_and(|t| t > now)
    }

    /// Whether tasks avoid it now: excluded after failures or suspected
    /// after a stall.
    pub fn held_back(&self, now: Instant) -> bool {
        self.excluded(now) || self.suspected(now)
    }

    /// It answered (a report, progress): whatever made it suspected is
    /// over.
    pub fn shows_life(&mut self) {
        self.suspected_until = None;
    }

    pub fn free_slots(&self) -> usize {
        (self.info.slots as usize).saturating_sub(self.running.len())
    }

    pub fn status(&self, now: Instant) -> WorkerStatus {
        WorkerStatus {
            info: self.info.clone(),
            alive: self.alive,
            running: self.running.len() as u32,
            excluded_ms: self
                .excluded_until
                .filter(|t| *t > now)
                .map(|t| (t - now).as_millis() as u64),
            consecutive_failures: self.consecutive_failures,
            suspected_ms: self
                .suspected_until
                .filter(|t| *t > now)
                .map(|t| (t - now).as_millis() as u64),
        }
    }
}

impl Scheduler {
    /// A worker (re)joined. A worker coming back after it was declared lost
    /// is told to drop what it held then, and anything of queries that
    /// ended meanwhile.
    pub fn worker_up(&mut self, info: WorkerInfo, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let id = info.id.clone();
        let active: Vec<QueryId> = self.queries.keys().cloned().collect();
        match self.workers.get_mut(&id) {
            Some(w) if w.alive => w.info = info,
            Some(w) => {
                tracing::info!(worker = %id, "worker rejoined; releasing what it held when lost");
                w.alive = true;
                w.info = info;
                w.running.clear();
                for attempt in std::mem::take(&mut w.lost) {
                    actions.push(Action::Release {
                        worker: id.clone(),
                        release: Release::Attempt(attempt),
                        stale: true,
                    });
                }
                actions.push(Action::Release {
                    worker: id.clone(),
                    release: Release::AllExcept(active),
                    stale: true,
                });
            }
            None => {
                tracing::info!(worker = %id, slots = info.slots, "worker joined");
                self.workers.insert(id.clone(), WorkerEntry::new(info));
                // It may hold what queries of an earlier coordinator left
                // (this one restarted): whatever this one does not know
                // goes.
                actions.push(Action::Release {
                    worker: id,
                    release: Release::AllExcept(active),
                    stale: false,
                });
            }
        }
        self.counters.releases += actions.len() as u64;
        actions.extend(self.schedule(now));
        actions
    }

    /// A worker's liveliness token disappeared.
    pub fn worker_lost(&mut self, id: &WorkerId, now: Instant) -> Vec<Action> {
        let Some(w) = self.workers.get_mut(id) else {
            return vec![];
        };
        if !w.alive {
            return vec![];
        }
        w.alive = false;
        let running = std::mem::take(&mut w.running);
        self.counters.workers_lost += 1;
        tracing::warn!(worker = %id, running = running.len(), "worker lost");
        let mut lost_attempts: Vec<AttemptRef> = Vec::new();
        let mut actions = Vec::new();
        let mut failures = Vec::new();
        for attempt in running {
            let Some(q) = self.queries.get_mut(&attempt.query) else {
                continue;
            };
            let task = q.task_mut(attempt.stage, attempt.task);
            if task.requeue(attempt.attempt) {
                self.counters.requeued += 1;
                tracing::info!(query = %attempt.query, stage = %attempt.stage, task = %attempt.task,
                    attempt = %attempt.attempt, worker = %id, "requeue: worker lost");
                if task.lost > self.config.max_lost {
                    failures.push((
                        attempt.query.clone(),
                        format!(
                            "stage {} task {} lost its worker {} times (last: {id})",
                            attempt.stage, attempt.task, task.lost
                        ),
                    ));
                }
            }
            lost_attempts.push(attempt);
        }
        for (qid, q) in self.queries.iter_mut() {
            if q.failed {
                continue;
            }
            let lost = q.forget_outputs_on(qid, id);
            self.counters.recomputed += lost.outputs.len() as u64;
            lost_attempts.extend(lost.outputs);
            // Running readers of a lost output restart once it exists
            // again (not counted as failures).
            for (worker, attempt) in lost.readers {
                if let Some(we) = self.workers.get_mut(&worker) {
                    we.running.remove(&attempt);
                }
                actions.push(Action::Release {
                    worker,
                    release: Release::Attempt(attempt),
                    stale: false,
                });
                self.counters.releases += 1;
            }
        }
        if let Some(w) = self.workers.get_mut(id) {
            w.lost.extend(lost_attempts);
        }
        for (query, message) in failures {
            actions.extend(self.fail_query(&query, message));
        }
        actions.extend(self.schedule(now));
        actions
    }

    /// The assignment of an attempt could not be delivered. A worker that
    /// did not answer at all is most likely gone (its liveliness token
    /// follows): the attempt is requeued like the attempts of a lost
    /// worker, without charging the task's failure budget. A worker that
    /// answered with an error failed the attempt.
    pub fn assign_failed(
        &mut self,
        worker: &WorkerId,
        attempt: &AttemptRef,
        reason: String,
        unreachable: bool,
        now: Instant,
    ) -> Vec<Action> {
        if !unreachable {
            let report = TaskReport {
                worker: worker.clone(),
                attempt: attempt.clone(),
                outcome: TaskOutcome::Failed {
                    message: format!("worker {worker} refused the task: {reason}"),
                    deterministic: false,
                },
                frames: 0,
            };
            return self.report(report, now).1;
        }
        let mut actions = Vec::new();
        let Some(lost) = self.requeue_away_from(worker, attempt) else {
            return actions;
        };
        tracing::info!(query = %attempt.query, stage = %attempt.stage, task = %attempt.task,
            attempt = %attempt.attempt, worker = %worker, "requeue: worker unreachable ({reason})");
        if lost > self.config.max_lost {
            let message = format!(
                "stage {} task {} could not be handed to a worker {lost} times (last: {worker}: {reason})",
                attempt.stage, attempt.task
            );
            actions.extend(self.fail_query(&attempt.query, message));
        }
        actions.extend(self.schedule(now));
        actions
    }
}

impl Scheduler {
    /// Requeues the running attempt `attempt` of `worker`, which will not
    /// report (it could not be delivered, or stalled): it charges the
    /// task's `max_lost` budget, and the retry avoids `worker`. Returns the
    /// task's count of lost attempts; `None` if `attempt` was not running.
    pub(super) fn requeue_away_from(
        &mut self,
        worker: &WorkerId,
        attempt: &AttemptRef,
    ) -> Option<u32> {
        if let Some(w) = self.workers.get_mut(worker) {
            w.running.remove(attempt);
        }
        let task = self
            .queries
            .get_mut(&attempt.query)?
            .find_task_mut(attempt.stage, attempt.task)?;
        if !task.requeue(attempt.attempt) {
            return None;
        }
        task.last_failed_on = Some(worker.clone());
        self.counters.requeued += 1;
        Some(task.lost)
    }
}

/// What a lost worker took with it of one query.
pub(super) struct LostOutputs {
    /// Registered attempts whose output must be computed again.
    pub outputs: Vec<AttemptRef>,
    /// Running readers of those outputs, stopped: `(worker, attempt)`.
    pub readers: Vec<(WorkerId, AttemptRef)>,
}

impl QueryRun {
    /// Forgets the registered outputs on `worker` that a stage still reads
    /// (they run again) and stops the running readers of those outputs.
    fn forget_outputs_on(&mut self, query: &QueryId, worker: &WorkerId) -> LostOutputs {
        let mut lost = LostOutputs {
            outputs: Vec::new(),
            readers: Vec::new(),
        };
        for s in self.worker_stages() {
            // Consumers have lower ids than their inputs, so a reader that
            // lost its output was reset above before its inputs are looked
            // at here: released inputs of it run again, all their tasks
            // (each reader task reads a partition of every input task).
            if self.stage(s).released
                && self
                    .stage(s)
                    .consumers
                    .iter()
                    .any(|&c| c != StageId(0) && !self.stage(c).complete())
            {
                tracing::info!(query = %query, stage = %s,
                    "re-run: a reader of released outputs runs again");
                let stage = self.stage_mut(s);
                stage.released = false;
                for task in &mut stage.tasks {
                    task.done = None;
                }
                continue;
            }
            let still_read = self.stage(s).consumers.iter().any(|&c| {
                if c == StageId(0) {
                    !self.ready_sent
                } else {
                    !self.stage(c).complete()
                }
            });
            if !still_read {
                continue;
            }
            let mut lost_output = false;
            for (t, task) in self.stage_mut(s).tasks.iter_mut().enumerate() {
                let Some(done) = task.done.take_if(|p| &p.worker == worker) else {
                    continue;
                };
                let task = TaskId(t as u32);
                lost.outputs
                    .push(AttemptRef::new(query.clone(), s, task, done.attempt));
                lost_output = true;
                tracing::info!(query = %query, stage = %s, task = %task, worker = %worker,
                    "re-run: output lost with its worker");
            }
            if !lost_output {
                continue;
            }
            for c in self.stage(s).consumers.clone() {
                if c == StageId(0) {
                    continue;
                }
                for (t, task) in self.stage_mut(c).tasks.iter_mut().enumerate() {
                    if let Some(running) = task.running.take() {
                        let attempt =
                            AttemptRef::new(query.clone(), c, TaskId(t as u32), running.attempt);
                        lost.readers.push((running.worker, attempt));
                    }
                }
            }
        }
        lost
    }
}
