//! Which waiting task runs where: tasks of stages whose inputs are
//! registered go to the live, non-excluded worker with the most free
//! slots (rotating among equals, avoiding the worker the task last failed
//! on), provided it advertises the stage's custom operators; a stage no
//! live worker can run waits up to `no_worker_wait` (no worker at all) or
//! `capability_wait` (none with its operators), then its query fails.
//! Also tells clients when the inputs of their root stage are ready.

use std::sync::Arc;
use std::time::Instant;

use ffq_transport::zenoh_exchange::{QueryId, StageId, TaskId, WorkerId};

use super::liveliness::WorkerEntry;
use super::query::Placement;
use super::{Action, Scheduler};
use crate::protocol::{QueryEvent, TaskAssignment};

impl Scheduler {
    /// Assigns every runnable task that has a free slot; tells clients whose
    /// inputs are ready.
    pub(super) fn schedule(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let ids: Vec<QueryId> = self.queries.keys().cloned().collect();
        'queries: for qid in ids {
            let Some(q) = self.queries.get(&qid) else {
                continue;
            };
            if q.failed {
                continue;
            }
            let ready_sent = q.ready_sent;
            let stages: Vec<StageId> = q.worker_stages().rev().collect();
            for s in stages {
                let q = &self.queries[&qid];
                if !q.inputs_complete(s) {
                    continue;
                }
                let ntasks = q.stage(s).tasks.len() as u32;
                let required = q.stage(s).required.clone();
                if let Some(why) = self.unrunnable(&required) {
                    actions.extend(self.wait_for_workers(&qid, s, &why, now));
                    if self.queries[&qid].failed {
                        continue 'queries;
                    }
                    continue;
                }
                self.stop_waiting(&qid, s);
                for t in (0..ntasks).map(TaskId) {
                    let task = &self.queries[&qid].stage(s).tasks[t.0 as usize];
                    if !task.waiting(now) {
                        continue;
                    }
                    let avoid = task.last_failed_on.clone();
                    let Some(worker) = self.pick_worker(avoid.as_ref(), &required, now) else {
                        if required.is_empty() {
                            break 'queries;
                        }
                        break;
                    };
                    actions.extend(self.assign(&qid, s, t, worker, now));
                }
            }
            let q = &self.queries[&qid];
            if !ready_sent && q.inputs_complete(StageId(0)) {
                let inputs = q.inputs_of(StageId(0));
                if let Some(q) = self.queries.get_mut(&qid) {
                    q.events.push(QueryEvent::Ready { inputs });
                    q.ready_sent = true;
                }
                tracing::info!(query = %qid, "inputs of the final stage ready");
                actions.push(Action::Events { query: qid.clone() });
            }
        }
        actions
    }

    /// Starts a new attempt of task `task` of stage `stage` on `worker`.
    fn assign(
        &mut self,
        query: &QueryId,
        stage: StageId,
        task: TaskId,
        worker: WorkerId,
        now: Instant,
    ) -> Option<Action> {
        let q = self.queries.get_mut(query)?;
        let inputs = q.inputs_of(stage);
        let plan = Arc::clone(&q.stage(stage).plan);
        let run = q.task_mut(stage, task);
        let attempt = run.next_attempt;
        run.next_attempt = attempt.next();
        run.running = Some(Placement {
            attempt,
            worker: worker.clone(),
        });
        run.not_before = None;
        run.waiting_since = None;
        run.progress_at = Some(now);
        run.work = 0;
        q.touched.insert(worker.clone());
        let assignment = TaskAssignment {
            query: query.clone(),
            stage: (*plan).clone(),
            task,
            attempt,
            inputs,
            client: q.client.clone(),
            batch_size: q.batch_size,
            progress_every_ms: self.config.progress_every().as_millis() as u64,
        };
        if let Some(w) = self.workers.get_mut(&worker) {
            w.running.insert(assignment.attempt_ref());
        }
        self.counters.attempts_started += 1;
        tracing::debug!(query = %query, stage = %stage, task = %task, attempt = %attempt,
            worker = %worker, "assign");
        Some(Action::Assign {
            worker,
            assignment: Box::new(assignment),
        })
    }

    /// Picks a worker for a task, or `None` when no slot is free.
    fn pick_worker(
        &mut self,
        avoid: Option<&WorkerId>,
        required: &[String],
        now: Instant,
    ) -> Option<WorkerId> {
        let live: Vec<&WorkerEntry> = self
            .workers
            .values()
            .filter(|w| w.alive && w.can_run(required))
            .collect();
        // Held back (excluded or suspected) workers run tasks only when
        // every live worker is held back: the task budgets bound that.
        let all_held_back = live.iter().all(|w| w.held_back(now));
        let candidates: Vec<&WorkerEntry> = live
            .into_iter()
            .filter(|w| w.free_slots() > 0)
            .filter(|w| all_held_back || !w.held_back(now))
            .collect();
        let preferred: Vec<&WorkerEntry> = candidates
            .iter()
            .copied()
            .filter(|w| Some(&w.info.id) != avoid)
            .collect();
        let pool = if preferred.is_empty() {
            candidates
        } else {
            preferred
        };
        let most = pool.iter().map(|w| w.free_slots()).max()?;
        let best: Vec<&WorkerEntry> = pool
            .into_iter()
            .filter(|w| w.free_slots() == most)
            .collect();
        self.turn = self.turn.wrapping_add(1);
        Some(best[self.turn % best.len()].info.id.clone())
    }

    /// Why no live worker can run a task needing the custom operators
    /// `required`: `None` when some live worker can.
    fn unrunnable(&self, required: &[String]) -> Option<Unrunnable> {
        let live: Vec<&WorkerEntry> = self.workers.values().filter(|w| w.alive).collect();
        if live.is_empty() {
            return Some(Unrunnable::NoWorker);
        }
        if live.iter().any(|w| w.can_run(required)) {
            return None;
        }
        let absent: Vec<&String> = required
            .iter()
            .filter(|op| !live.iter().any(|w| w.info.operators.contains(op)))
            .collect();
        Some(Unrunnable::Capability(match absent.first() {
            Some(op) => format!("no worker can run operator {op}"),
            None => format!(
                "no worker can run operators {} together",
                required.join(", ")
            ),
        }))
    }

    /// Stage `stage` of `query` has tasks no live worker can run: they
    /// wait, up to `no_worker_wait` (no worker at all) or
    /// `capability_wait` (none with its operators); then the query fails.
    fn wait_for_workers(
        &mut self,
        query: &QueryId,
        stage: StageId,
        why: &Unrunnable,
        now: Instant,
    ) -> Vec<Action> {
        let limit = match why {
            Unrunnable::NoWorker => self.config.no_worker_wait,
            Unrunnable::Capability(_) => self.config.capability_wait,
        };
        let Some(q) = self.queries.get_mut(query) else {
            return vec![];
        };
        let mut expired = None;
        for (t, task) in q.stage_mut(stage).tasks.iter_mut().enumerate() {
            if task.done.is_some() || task.running.is_some() {
                continue;
            }
            let since = *task.waiting_since.get_or_insert(now);
            if expired.is_none() && now.duration_since(since) >= limit {
                expired = Some(TaskId(t as u32));
            }
        }
        let Some(task) = expired else {
            return vec![];
        };
        let message = match why {
            Unrunnable::NoWorker => {
                format!("no live worker for stage {stage} task {task} for {limit:?}")
            }
            Unrunnable::Capability(missing) => {
                format!("stage {stage}: {missing} (waited {limit:?})")
            }
        };
        self.fail_query(query, message)
    }

    /// Some live worker can run the tasks of `stage` again: their waits
    /// start afresh next time none can.
    fn stop_waiting(&mut self, query: &QueryId, stage: StageId) {
        if let Some(q) = self.queries.get_mut(query) {
            for task in q.stage_mut(stage).tasks.iter_mut() {
                task.waiting_since = None;
            }
        }
    }
}

/// Why no live worker can run a task.
enum Unrunnable {
    /// No worker is alive.
    NoWorker,
    /// None advertises the custom operators it needs (what is missing).
    Capability(String),
}
