//! The coordinator's decisions, without any I/O: which task attempt runs
//! where, what a report, a lost worker or a rejoining worker changes, and
//! what must be released. The coordinator feeds it events and carries out
//! the [`Action`]s it returns; tests drive it directly.
//!
//! Rules (ARCHITECTURE.md, "Distributed runtime"):
//! - a stage runs when every task of its input stages has a registered
//!   (successful) attempt; stage 0 belongs to the client, which is told
//!   `Ready` with the registered attempts of its inputs;
//! - only the running attempt of a task may register; a report of any
//!   other attempt is stale: counted and its output released;
//! - a failed attempt is retried after an exponential backoff, on another
//!   worker when there is one, until `max_attempts` failures; then the
//!   query fails naming the stage, the task and the last cause;
//! - a worker failing `exclude_after` attempts in a row is excluded for
//!   `exclude_for` (unless every live worker is excluded);
//! - a lost worker's running attempts are requeued as new attempts, and its
//!   registered outputs that a stage still has to read are re-run;
//! - a running attempt that shows no progress within `progress_deadline`
//!   is requeued elsewhere and its worker suspected (given no task while
//!   another worker can take it) until it shows life or `suspect_for`
//!   passes;
//! - a task that no live worker can run for `no_worker_wait` fails its
//!   query.
//!
//! Layout: this module holds the [`Scheduler`] and its query-facing entry
//! points (submit, report, finish, views); [`query`] the state of one
//! query (stages, tasks, attempts, events); [`placement`] which waiting
//! task goes to which worker; [`retry`] failed attempts (budget, backoff,
//! exclusion); [`liveliness`] workers joining, leaving and unreachable
//! (requeue, recompute); [`deadline`] attempts making no progress.

mod deadline;
mod liveliness;
mod placement;
mod query;
mod retry;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ffq_transport::zenoh_exchange::{ClientId, QueryId, StageId, WorkerId};

use crate::protocol::{
    ClusterStatus, Counters, QueryEvent, Release, ReportAck, StageProfile, SubmitQuery,
    TaskAssignment, TaskOutcome, TaskReport,
};
use liveliness::WorkerEntry;
use query::QueryRun;

/// Retry and exclusion policy.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Failed attempts of one task before the query fails.
    pub max_attempts: u32,
    /// Attempts of one task lost with their worker before the query fails.
    pub max_lost: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Consecutive failures after which a worker is excluded.
    pub exclude_after: u32,
    pub exclude_for: Duration,
    /// How long a task needing custom operators waits for a worker that
    /// advertises them all before its query fails.
    pub capability_wait: Duration,
    /// How long a running attempt may go without progress (its assignment,
    /// then a progress message whose work grew) before it is requeued on
    /// another worker and its worker suspected.
    pub progress_deadline: Duration,
    /// How long a worker whose attempt stalled stays suspected, unless it
    /// shows life (a report, or progress of another attempt) first.
    pub suspect_for: Duration,
    /// How long a task waits while no worker is alive before its query
    /// fails ("no live worker for stage S task T for ...").
    pub no_worker_wait: Duration,
}

impl SchedulerConfig {
    /// How often workers report the progress of running attempts: four
    /// times per deadline, so a late message or two costs nothing.
    pub fn progress_every(&self) -> Duration {
        (self.progress_deadline / 4).max(Duration::from_millis(10))
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_attempts: 4,
            max_lost: 8,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            exclude_after: 3,
            exclude_for: Duration::from_secs(30),
            capability_wait: Duration::from_secs(30),
            progress_deadline: Duration::from_secs(30),
            suspect_for: Duration::from_secs(60),
            no_worker_wait: Duration::from_secs(30),
        }
    }
}

/// What the coordinator must do.
#[derive(Debug, Clone)]
pub enum Action {
    Assign {
        worker: WorkerId,
        assignment: Box<TaskAssignment>,
    },
    /// `stale`: what the release drops belongs to superseded attempts
    /// (its frames count as stale frames).
    Release {
        worker: WorkerId,
        release: Release,
        stale: bool,
    },
    /// New events for the client of `query`.
    Events { query: QueryId },
}

/// The scheduling state of a coordinator.
pub struct Scheduler {
    config: SchedulerConfig,
    workers: BTreeMap<WorkerId, WorkerEntry>,
    queries: BTreeMap<QueryId, QueryRun>,
    counters: Counters,
    /// Rotates the choice among equally free workers.
    turn: usize,
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Self {
        Scheduler {
            config,
            workers: BTreeMap::new(),
            queries: BTreeMap::new(),
            counters: Counters::default(),
            turn: 0,
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Adds frames that readers dropped as stale, or that a stale release
    /// dropped.
    pub fn count_stale_frames(&mut self, frames: u64) {
        self.counters.stale_frames += frames;
    }

    /// A client submitted a query.
    pub fn submit(&mut self, submit: SubmitQuery, now: Instant) -> Result<Vec<Action>, String> {
        if self.queries.contains_key(&submit.query) {
            return Err(format!("query {} was already submitted", submit.query));
        }
        let (id, run) = QueryRun::new(submit)?;
        tracing::info!(query = %id, stages = run.stages.len(), "query submitted");
        self.counters.queries_submitted += 1;
        self.queries.insert(id, run);
        Ok(self.schedule(now))
    }

    /// The events of `query` from number `from` on; `None` for an unknown
    /// query.
    pub fn events(&self, query: &QueryId, from: usize) -> Option<Vec<QueryEvent>> {
        self.queries
            .get(query)
            .map(|q| q.events.get(from..).map(|e| e.to_vec()).unwrap_or_default())
    }

    /// The client is done with `query` (finished, failed or dropped):
    /// every worker that had part of it drops it.
    pub fn finish(&mut self, query: &QueryId) -> Vec<Action> {
        let Some(q) = self.queries.remove(query) else {
            return vec![];
        };
        for w in self.workers.values_mut() {
            w.running.retain(|a| &a.query != query);
        }
        tracing::info!(query = %query, workers = q.touched.len(), "garbage-collect query");
        let actions: Vec<Action> = q
            .touched
            .into_iter()
            .filter(|w| self.workers.get(w).is_some_and(|e| e.alive))
            .map(|worker| Action::Release {
                worker,
                release: Release::Query(query.clone()),
                stale: false,
            })
            .collect();
        self.counters.releases += actions.len() as u64;
        actions
    }

    /// A client's liveliness token went away (it exited, crashed or was
    /// cut off): its queries end as if it had finished them, since a
    /// killed client sends nothing.
    pub fn client_lost(&mut self, client: &ClientId) -> Vec<Action> {
        let orphans: Vec<QueryId> = self
            .queries
            .iter()
            .filter(|(_, q)| &q.client == client)
            .map(|(id, _)| id.clone())
            .collect();
        if !orphans.is_empty() {
            tracing::info!(client = %client, queries = orphans.len(), "client gone; ending its queries");
        }
        orphans.iter().flat_map(|q| self.finish(q)).collect()
    }

    /// Releases the outputs of the input stages of `stage` whose readers
    /// are all done: they are read by nobody any more. If a lost worker
    /// later takes a reader's output with it, the released stages run
    /// again (see [`liveliness`]).
    fn release_read_inputs(&mut self, query: &QueryId, stage: StageId) -> Vec<Action> {
        let Some(q) = self.queries.get_mut(query) else {
            return vec![];
        };
        let mut actions = Vec::new();
        for input in q.stage(stage).inputs().collect::<Vec<_>>() {
            let readers_done = q.stage(input).consumers.iter().all(|&c| {
                // The client reads stage 0's inputs until the query ends.
                c != StageId(0) && q.stage(c).complete()
            });
            if !readers_done || q.stage(input).released {
                continue;
            }
            q.stage_mut(input).released = true;
            let holders: BTreeSet<WorkerId> = q
                .stage(input)
                .tasks
                .iter()
                .filter_map(|t| t.done.as_ref().map(|p| p.worker.clone()))
                .collect();
            tracing::debug!(query = %query, stage = %input, "outputs read by every reader; releasing");
            for worker in holders {
                if self.workers.get(&worker).is_some_and(|w| w.alive) {
                    actions.push(Action::Release {
                        worker,
                        release: Release::Stage(query.clone(), input),
                        stale: false,
                    });
                }
            }
        }
        self.counters.releases += actions.len() as u64;
        actions
    }

    /// A worker reported the end of a task attempt.
    pub fn report(&mut self, report: TaskReport, now: Instant) -> (ReportAck, Vec<Action>) {
        let a = &report.attempt;
        if let Some(w) = self.workers.get_mut(&report.worker) {
            w.running.remove(a);
            w.shows_life();
        }
        // The ids come from the network: looked up, never indexed.
        let current = self.queries.get_mut(&a.query).filter(|q| {
            !q.failed
                && q.find_task(a.stage, a.task)
                    .is_some_and(|t| t.is_running(a.attempt))
        });
        let Some(q) = current else {
            self.counters.stale_reports += 1;
            self.counters.stale_frames += report.frames;
            tracing::info!(query = %a.query, stage = %a.stage, task = %a.task, attempt = %a.attempt,
                worker = %report.worker, "stale report ignored");
            return (ReportAck { keep: false }, self.schedule(now));
        };
        q.task_mut(a.stage, a.task).running = None;
        match report.outcome {
            TaskOutcome::Succeeded {
                stale_frames,
                bytes,
                metrics,
            } => {
                self.counters.stale_frames += stale_frames;
                let stage_complete = q.register(a, &report.worker, bytes, &metrics);
                if let Some(w) = self.workers.get_mut(&report.worker) {
                    w.consecutive_failures = 0;
                }
                let mut actions = vec![Action::Events {
                    query: a.query.clone(),
                }];
                if stage_complete {
                    actions.push(Action::Events {
                        query: a.query.clone(),
                    });
                    let (query, stage) = (a.query.clone(), a.stage);
                    actions.extend(self.release_read_inputs(&query, stage));
                }
                actions.extend(self.schedule(now));
                (ReportAck { keep: true }, actions)
            }
            TaskOutcome::Failed {
                message,
                deterministic,
            } => {
                let mut actions =
                    self.attempt_failed(&report.worker, a, message, deterministic, now);
                actions.extend(self.schedule(now));
                (ReportAck { keep: false }, actions)
            }
        }
    }

    /// Periodic: requeues stalled attempts, starts what backoffs or
    /// exclusions held back.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = self.requeue_stalled(now);
        actions.extend(self.schedule(now));
        actions
    }

    fn fail_query(&mut self, query: &QueryId, message: String) -> Vec<Action> {
        let Some(q) = self.queries.get_mut(query) else {
            return vec![];
        };
        if q.failed {
            return vec![];
        }
        tracing::warn!(query = %query, "query failed: {message}");
        q.fail(message);
        self.counters.queries_failed += 1;
        for w in self.workers.values_mut() {
            w.running.retain(|a| &a.query != query);
        }
        let mut actions = vec![Action::Events {
            query: query.clone(),
        }];
        // Stop the query's other tasks and drop its outputs now; the
        // client's finish releases again, harmlessly.
        for worker in q.touched.iter() {
            if self.workers.get(worker).is_some_and(|w| w.alive) {
                actions.push(Action::Release {
                    worker: worker.clone(),
                    release: Release::Query(query.clone()),
                    stale: false,
                });
                self.counters.releases += 1;
            }
        }
        actions
    }

    /// What the stages of `query` did so far (attempts counted from the
    /// tasks' attempt numbers).
    pub fn profile(&self, query: &QueryId) -> Option<Vec<StageProfile>> {
        self.queries.get(query).map(QueryRun::profile)
    }

    /// The coordinator's view, for `status`.
    pub fn status(&self, now: Instant) -> ClusterStatus {
        ClusterStatus {
            workers: self.workers.values().map(|w| w.status(now)).collect(),
            queries: self
                .queries
                .iter()
                .map(|(id, q)| q.status(id.clone()))
                .collect(),
            counters: self.counters,
        }
    }
}
