//! Which waiting task runs where: tasks of stages whose inputs are
//! registered go to the live, non-excluded worker with the most free
//! slots (rotating among equals, avoiding the worker the task last failed
//! on), provided it advertises the stage's custom operators; a stage no
//! live worker can run waits up to `capability_wait`. Also tells clients
//! when the inputs of their root stage are ready.

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
                if !required.is_empty() {
                    if let Some(missing) = self.missing_capability(&required) {
                        actions.extend(self.wait_for_capability(&qid, s, &missing, now));
                        if self.queries[&qid].failed {
                            continue 'queries;
                        }
                        continue;
                    }
                }
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
                    actions.extend(self.assign(&qid, s, t, worker));
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
        q.touched.insert(worker.clone());
        let assignment = TaskAssignment {
            query: query.clone(),
            stage: (*plan).clone(),
            task,
            attempt,
            inputs,
            client: q.client.clone(),
            batch_size: q.batch_size,
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
        let all_excluded = live.iter().all(|w| w.excluded(now));
        let candidates: Vec<&WorkerEntry> = live
            .into_iter()
            .filter(|w| w.free_slots() > 0)
            .filter(|w| all_excluded || !w.excluded(now))
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

    /// What no live worker offers among `required`: `None` when some live
    /// worker advertises them all.
    fn missing_capability(&self, required: &[String]) -> Option<String> {
        let live: Vec<&WorkerEntry> = self.workers.values().filter(|w| w.alive).collect();
        if live.iter().any(|w| w.can_run(required)) {
            return None;
        }
        let absent: Vec<&String> = required
            .iter()
            .filter(|op| !live.iter().any(|w| w.info.operators.contains(op)))
            .collect();
        Some(match absent.first() {
            Some(op) => format!("no worker can run operator {op}"),
            None => format!(
                "no worker can run operators {} together",
                required.join(", ")
            ),
        })
    }

    /// Stage `stage` of `query` has tasks no live worker can run: they
    /// wait, up to `capability_wait`.
    fn wait_for_capability(
        &mut self,
        query: &QueryId,
        stage: StageId,
        missing: &str,
        now: Instant,
    ) -> Vec<Action> {
        let limit = self.config.capability_wait;
        let Some(q) = self.queries.get_mut(query) else {
            return vec![];
        };
        let mut expired = false;
        for task in q.stage_mut(stage).tasks.iter_mut() {
            if task.done.is_some() || task.running.is_some() {
                continue;
            }
            let since = *task.waiting_since.get_or_insert(now);
            if now.duration_since(since) >= limit {
                expired = true;
            }
        }
        if !expired {
            return vec![];
        }
        let message = format!("stage {stage}: {missing} (waited {limit:?})");
        self.fail_query(query, message)
    }
}
