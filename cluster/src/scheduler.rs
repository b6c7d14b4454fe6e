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
//!   registered outputs that a stage still has to read are re-run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffq_dataflow::stage::StagePlan;
use ffq_transport::zenoh_exchange::{AttemptRef, QueryId, WorkerId};

use crate::protocol::{
    attempt_ref, ClusterStatus, Counters, InputAttempts, QueryEvent, QueryStatus, Release,
    ReportAck, StageProfile, SubmitQuery, TaskAssignment, TaskOutcome, TaskReport, WorkerInfo,
    WorkerStatus,
};

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

struct WorkerEntry {
    info: WorkerInfo,
    alive: bool,
    running: BTreeSet<AttemptRef>,
    consecutive_failures: u32,
    excluded_until: Option<Instant>,
    /// Attempts it held when it was lost: released if it comes back.
    lost: Vec<AttemptRef>,
}

#[derive(Default)]
struct TaskRun {
    next_attempt: u32,
    running: Option<(u32, WorkerId)>,
    done: Option<(u32, WorkerId)>,
    failures: u32,
    lost: u32,
    not_before: Option<Instant>,
    last_error: Option<String>,
    last_failed_on: Option<WorkerId>,
    /// Since when no live worker can run the task's custom operators.
    waiting_since: Option<Instant>,
}

struct StageRun {
    plan: Arc<StagePlan>,
    tasks: Vec<TaskRun>,
    consumers: Vec<u32>,
    /// Custom operators its tasks need.
    required: Vec<String>,
    /// What its tasks did, for `profile`.
    profile: StageProfile,
    /// Pre-order ids of its scan nodes.
    scans: Vec<usize>,
}

impl WorkerEntry {
    fn can_run(&self, operators: &[String]) -> bool {
        operators.iter().all(|op| self.info.operators.contains(op))
    }
}

impl StageRun {
    fn complete(&self) -> bool {
        self.tasks.iter().all(|t| t.done.is_some())
    }
}

struct QueryRun {
    client: String,
    batch_size: usize,
    /// Index = stage id; stage 0 (the client's) has no tasks here.
    stages: Vec<StageRun>,
    events: Vec<QueryEvent>,
    ready_sent: bool,
    failed: bool,
    /// Workers that were given anything of the query.
    touched: BTreeSet<WorkerId>,
    /// Rows the scans of successful attempts produced.
    rows_scanned: u64,
}

impl QueryRun {
    fn inputs_of(&self, stage: u32) -> InputAttempts {
        self.stages[stage as usize]
            .plan
            .inputs
            .iter()
            .map(|&s| {
                let attempts = self.stages[s as usize]
                    .tasks
                    .iter()
                    .map(|t| t.done.as_ref().map_or(0, |(a, _)| *a))
                    .collect();
                (s, attempts)
            })
            .collect()
    }

    fn inputs_complete(&self, stage: u32) -> bool {
        self.stages[stage as usize]
            .plan
            .inputs
            .iter()
            .all(|&s| self.stages[s as usize].complete())
    }

    fn stages_done(&self) -> u32 {
        self.stages[1..].iter().filter(|s| s.complete()).count() as u32
    }
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
                self.workers.insert(
                    id,
                    WorkerEntry {
                        info,
                        alive: true,
                        running: BTreeSet::new(),
                        consecutive_failures: 0,
                        excluded_until: None,
                        lost: Vec::new(),
                    },
                );
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
            let task = &mut q.stages[attempt.stage.0 as usize].tasks[attempt.task.0 as usize];
            if task.running.as_ref().map(|(a, _)| *a) == Some(attempt.attempt.0) {
                task.running = None;
                task.lost += 1;
                self.counters.requeued += 1;
                tracing::info!(query = %attempt.query, stage = attempt.stage.0, task = attempt.task.0,
                    attempt = attempt.attempt.0, worker = %id, "requeue: worker lost");
                if task.lost > self.config.max_lost {
                    failures.push((
                        attempt.query.clone(),
                        format!(
                            "stage {} task {} lost its worker {} times (last: {id})",
                            attempt.stage.0, attempt.task.0, task.lost
                        ),
                    ));
                }
            }
            lost_attempts.push(attempt);
        }
        // Registered outputs on the lost worker that a stage still reads.
        for (qid, q) in self.queries.iter_mut() {
            if q.failed {
                continue;
            }
            for s in 1..q.stages.len() {
                let still_read = q.stages[s].consumers.iter().any(|&c| {
                    if c == 0 {
                        !q.ready_sent
                    } else {
                        !q.stages[c as usize].complete()
                    }
                });
                if !still_read {
                    continue;
                }
                let mut lost_output = false;
                for (t, task) in q.stages[s].tasks.iter_mut().enumerate() {
                    if let Some((a, w)) = &task.done {
                        if w == id {
                            lost_attempts.push(attempt_ref(qid, s as u32, t as u32, *a));
                            task.done = None;
                            lost_output = true;
                            self.counters.recomputed += 1;
                            tracing::info!(query = %qid, stage = s, task = t, worker = %id,
                                "re-run: output lost with its worker");
                        }
                    }
                }
                if !lost_output {
                    continue;
                }
                // Running readers of the lost output restart once it exists
                // again (not counted as failures).
                let consumers = q.stages[s].consumers.clone();
                for c in consumers.into_iter().filter(|&c| c != 0) {
                    for (t, task) in q.stages[c as usize].tasks.iter_mut().enumerate() {
                        if let Some((a, w)) = task.running.take() {
                            let attempt = attempt_ref(qid, c, t as u32, a);
                            if let Some(we) = self.workers.get_mut(&w) {
                                we.running.remove(&attempt);
                            }
                            actions.push(Action::Release {
                                worker: w,
                                release: Release::Attempt(attempt),
                                stale: false,
                            });
                            self.counters.releases += 1;
                        }
                    }
                }
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

    /// A client submitted a query.
    pub fn submit(&mut self, submit: SubmitQuery, now: Instant) -> Result<Vec<Action>, String> {
        if self.queries.contains_key(&submit.query) {
            return Err(format!("query {} was already submitted", submit.query));
        }
        if submit.stages.is_empty() {
            return Err("a query needs at least its root stage".into());
        }
        for (i, s) in submit.stages.iter().enumerate() {
            if s.id as usize != i || s.inputs.iter().any(|&c| c as usize >= submit.stages.len()) {
                return Err(format!("malformed stage list at stage {i}"));
            }
        }
        let mut stages: Vec<StageRun> = submit
            .stages
            .into_iter()
            .map(|plan| StageRun {
                required: plan.required_operators(),
                scans: ffq_dataflow::metrics::scan_nodes(&plan.plan),
                profile: StageProfile {
                    stage: plan.id,
                    tasks: if plan.id == 0 { 0 } else { plan.tasks() as u32 },
                    ..StageProfile::default()
                },
                tasks: if plan.id == 0 {
                    vec![]
                } else {
                    (0..plan.tasks()).map(|_| TaskRun::default()).collect()
                },
                plan: Arc::new(plan),
                consumers: vec![],
            })
            .collect();
        for s in 0..stages.len() {
            for input in stages[s].plan.inputs.clone() {
                stages[input as usize].consumers.push(s as u32);
            }
        }
        tracing::info!(query = %submit.query, stages = stages.len(), "query submitted");
        self.counters.queries_submitted += 1;
        self.queries.insert(
            submit.query,
            QueryRun {
                client: submit.client,
                batch_size: submit.batch_size,
                stages,
                events: vec![],
                ready_sent: false,
                failed: false,
                touched: BTreeSet::new(),
                rows_scanned: 0,
            },
        );
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

    /// A worker reported the end of a task attempt.
    pub fn report(&mut self, report: TaskReport, now: Instant) -> (ReportAck, Vec<Action>) {
        let a = &report.attempt;
        if let Some(w) = self.workers.get_mut(&report.worker) {
            w.running.remove(a);
        }
        let (stage, task_no, attempt) = (a.stage.0 as usize, a.task.0 as usize, a.attempt.0);
        let current = self.queries.get(&a.query).and_then(|q| {
            let t = q.stages.get(stage)?.tasks.get(task_no)?;
            Some(!q.failed && t.running.as_ref().map(|(n, _)| *n) == Some(attempt))
        });
        if current != Some(true) {
            self.counters.stale_reports += 1;
            self.counters.stale_frames += report.frames;
            tracing::info!(query = %a.query, stage, task = task_no, attempt, worker = %report.worker,
                "stale report ignored");
            return (ReportAck { keep: false }, self.schedule(now));
        }
        let mut actions = Vec::new();
        let q = self.queries.get_mut(&a.query).expect("checked above");
        q.stages[stage].tasks[task_no].running = None;
        match report.outcome {
            TaskOutcome::Succeeded {
                stale_frames,
                bytes,
                metrics,
            } => {
                self.counters.stale_frames += stale_frames;
                let profile = &mut q.stages[stage].profile;
                profile.outputs.retain(|(t, ..)| *t as usize != task_no);
                profile
                    .outputs
                    .push((task_no as u32, attempt, report.worker.to_string(), bytes));
                if profile.metrics.len() < metrics.len() {
                    profile.metrics.resize(metrics.len(), Default::default());
                }
                for (acc, m) in profile.metrics.iter_mut().zip(&metrics) {
                    acc.merge(m);
                }
                q.rows_scanned += q.stages[stage]
                    .scans
                    .iter()
                    .filter_map(|&i| metrics.get(i))
                    .map(|m| m.output_rows)
                    .sum::<u64>();
                let task = &mut q.stages[stage].tasks[task_no];
                task.done = Some((attempt, report.worker.clone()));
                if let Some(w) = self.workers.get_mut(&report.worker) {
                    w.consecutive_failures = 0;
                }
                q.events.push(QueryEvent::Progress {
                    rows_scanned: q.rows_scanned,
                    stages_done: q.stages_done(),
                    stages_total: q.stages.len() as u32 - 1,
                });
                actions.push(Action::Events {
                    query: a.query.clone(),
                });
                if q.stages[stage].complete() {
                    let (done, total) = (q.stages_done(), q.stages.len() as u32 - 1);
                    tracing::info!(query = %a.query, stage, done, total, "stage done");
                    q.events.push(QueryEvent::StageDone {
                        stage: stage as u32,
                        stages_done: done,
                        stages_total: total,
                    });
                    actions.push(Action::Events {
                        query: a.query.clone(),
                    });
                }
                actions.extend(self.schedule(now));
                (ReportAck { keep: true }, actions)
            }
            TaskOutcome::Failed { message } => {
                self.counters.attempts_failed += 1;
                q.stages[stage].profile.failed_attempts += 1;
                let task = &mut q.stages[stage].tasks[task_no];
                task.failures += 1;
                task.last_error = Some(message.clone());
                task.last_failed_on = Some(report.worker.clone());
                let failures = task.failures;
                tracing::warn!(query = %a.query, stage, task = task_no, attempt, worker = %report.worker,
                    failures, "attempt failed: {message}");
                if failures >= self.config.max_attempts {
                    let message = format!(
                        "stage {stage} task {task_no} failed after {failures} attempts; last error (worker {}): {message}",
                        report.worker
                    );
                    actions.extend(self.fail_query(&a.query.clone(), message));
                } else {
                    let backoff = self
                        .config
                        .backoff_base
                        .saturating_mul(1 << (failures - 1).min(16))
                        .min(self.config.backoff_max);
                    task.not_before = Some(now + backoff);
                    tracing::info!(query = %a.query, stage, task = task_no, ?backoff, "retry scheduled");
                }
                if let Some(w) = self.workers.get_mut(&report.worker) {
                    w.consecutive_failures += 1;
                    if w.consecutive_failures >= self.config.exclude_after
                        && w.excluded_until.is_none_or(|t| t <= now)
                    {
                        w.excluded_until = Some(now + self.config.exclude_for);
                        self.counters.workers_excluded += 1;
                        tracing::warn!(worker = %report.worker, for_ = ?self.config.exclude_for,
                            "worker excluded after repeated failures");
                    }
                }
                actions.extend(self.schedule(now));
                (ReportAck { keep: false }, actions)
            }
        }
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
                },
                frames: 0,
            };
            return self.report(report, now).1;
        }
        if let Some(w) = self.workers.get_mut(worker) {
            w.running.remove(attempt);
        }
        let mut actions = Vec::new();
        let Some(q) = self.queries.get_mut(&attempt.query) else {
            return actions;
        };
        let task = &mut q.stages[attempt.stage.0 as usize].tasks[attempt.task.0 as usize];
        if task.running.as_ref().map(|(a, _)| *a) != Some(attempt.attempt.0) {
            return actions;
        }
        task.running = None;
        task.lost += 1;
        task.last_failed_on = Some(worker.clone());
        self.counters.requeued += 1;
        tracing::info!(query = %attempt.query, stage = attempt.stage.0, task = attempt.task.0,
            attempt = attempt.attempt.0, worker = %worker, "requeue: worker unreachable ({reason})");
        if task.lost > self.config.max_lost {
            let message = format!(
                "stage {} task {} could not be handed to a worker {} times (last: {worker}: {reason})",
                attempt.stage.0, attempt.task.0, task.lost
            );
            actions.extend(self.fail_query(&attempt.query.clone(), message));
        }
        actions.extend(self.schedule(now));
        actions
    }

    /// Periodic: starts what backoffs or exclusions held back.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        self.schedule(now)
    }

    fn fail_query(&mut self, query: &QueryId, message: String) -> Vec<Action> {
        let Some(q) = self.queries.get_mut(query) else {
            return vec![];
        };
        if q.failed {
            return vec![];
        }
        tracing::warn!(query = %query, "query failed: {message}");
        q.failed = true;
        self.counters.queries_failed += 1;
        q.events.push(QueryEvent::Failed { message });
        for stage in q.stages.iter_mut() {
            for task in stage.tasks.iter_mut() {
                task.running = None;
            }
        }
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
        let all_excluded = live
            .iter()
            .all(|w| w.excluded_until.is_some_and(|t| t > now));
        let free = |w: &WorkerEntry| (w.info.slots as usize).saturating_sub(w.running.len());
        let candidates: Vec<&WorkerEntry> = live
            .into_iter()
            .filter(|w| free(w) > 0)
            .filter(|w| all_excluded || w.excluded_until.is_none_or(|t| t <= now))
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
        let most = pool.iter().map(|w| free(w)).max()?;
        let best: Vec<&WorkerEntry> = pool.into_iter().filter(|w| free(w) == most).collect();
        self.turn = self.turn.wrapping_add(1);
        Some(best[self.turn % best.len()].info.id.clone())
    }

    /// Assigns every runnable task that has a free slot; tells clients whose
    /// inputs are ready.
    fn schedule(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let ids: Vec<QueryId> = self.queries.keys().cloned().collect();
        'queries: for qid in ids {
            let (failed, ready_sent, nstages) = {
                let q = &self.queries[&qid];
                (q.failed, q.ready_sent, q.stages.len())
            };
            if failed {
                continue;
            }
            for s in (1..nstages).rev() {
                if !self.queries[&qid].inputs_complete(s as u32) {
                    continue;
                }
                let ntasks = self.queries[&qid].stages[s].tasks.len();
                let required = self.queries[&qid].stages[s].required.clone();
                if !required.is_empty() {
                    if let Some(missing) = self.missing_capability(&required) {
                        actions.extend(self.wait_for_capability(&qid, s, &missing, now));
                        if self.queries[&qid].failed {
                            continue 'queries;
                        }
                        continue;
                    }
                }
                for t in 0..ntasks {
                    let (waiting, avoid) = {
                        let task = &self.queries[&qid].stages[s].tasks[t];
                        (
                            task.running.is_none()
                                && task.done.is_none()
                                && task.not_before.is_none_or(|nb| nb <= now),
                            task.last_failed_on.clone(),
                        )
                    };
                    if !waiting {
                        continue;
                    }
                    let Some(worker) = self.pick_worker(avoid.as_ref(), &required, now) else {
                        if required.is_empty() {
                            break 'queries;
                        }
                        break;
                    };
                    let q = self.queries.get_mut(&qid).expect("listed");
                    let inputs = q.inputs_of(s as u32);
                    let task = &mut q.stages[s].tasks[t];
                    let attempt = task.next_attempt;
                    task.next_attempt += 1;
                    task.running = Some((attempt, worker.clone()));
                    task.not_before = None;
                    task.waiting_since = None;
                    q.touched.insert(worker.clone());
                    let assignment = TaskAssignment {
                        query: qid.clone(),
                        stage: (*q.stages[s].plan).clone(),
                        task: t as u32,
                        attempt,
                        inputs,
                        client: q.client.clone(),
                        batch_size: q.batch_size,
                    };
                    self.workers
                        .get_mut(&worker)
                        .expect("picked")
                        .running
                        .insert(assignment.attempt_ref());
                    self.counters.attempts_started += 1;
                    tracing::debug!(query = %qid, stage = s, task = t, attempt, worker = %worker, "assign");
                    actions.push(Action::Assign {
                        worker,
                        assignment: Box::new(assignment),
                    });
                }
            }
            if !ready_sent && self.queries[&qid].inputs_complete(0) {
                let q = self.queries.get_mut(&qid).expect("listed");
                let inputs = q.inputs_of(0);
                q.events.push(QueryEvent::Ready { inputs });
                q.ready_sent = true;
                tracing::info!(query = %qid, "inputs of the final stage ready");
                actions.push(Action::Events { query: qid.clone() });
            }
        }
        actions
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

    /// Stage `s` of `query` has tasks no live worker can run: they wait,
    /// up to `capability_wait`.
    fn wait_for_capability(
        &mut self,
        query: &QueryId,
        s: usize,
        missing: &str,
        now: Instant,
    ) -> Vec<Action> {
        let limit = self.config.capability_wait;
        let Some(q) = self.queries.get_mut(query) else {
            return vec![];
        };
        let mut expired = false;
        for task in q.stages[s].tasks.iter_mut() {
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
        let message = format!("stage {s}: {missing} (waited {limit:?})");
        self.fail_query(query, message)
    }

    /// What the stages of `query` did so far (attempts counted from the
    /// tasks' attempt numbers).
    pub fn profile(&self, query: &QueryId) -> Option<Vec<StageProfile>> {
        let q = self.queries.get(query)?;
        Some(
            q.stages
                .iter()
                .map(|s| {
                    let mut p = s.profile.clone();
                    p.attempts = s.tasks.iter().map(|t| t.next_attempt).sum();
                    p.lost_attempts = s.tasks.iter().map(|t| t.lost).sum();
                    p.outputs.sort();
                    p
                })
                .collect(),
        )
    }

    /// The coordinator's view, for `status`.
    pub fn status(&self, now: Instant) -> ClusterStatus {
        ClusterStatus {
            workers: self
                .workers
                .values()
                .map(|w| WorkerStatus {
                    info: w.info.clone(),
                    alive: w.alive,
                    running: w.running.len() as u32,
                    excluded_ms: w
                        .excluded_until
                        .filter(|t| *t > now)
                        .map(|t| (t - now).as_millis() as u64),
                    consecutive_failures: w.consecutive_failures,
                })
                .collect(),
            queries: self
                .queries
                .iter()
                .map(|(id, q)| QueryStatus {
                    id: id.to_string(),
                    stages_done: q.stages_done(),
                    stages_total: q.stages.len() as u32 - 1,
                    running_tasks: q
                        .stages
                        .iter()
                        .flat_map(|s| &s.tasks)
                        .filter(|t| t.running.is_some())
                        .count() as u32,
                    attempts: q
                        .stages
                        .iter()
                        .flat_map(|s| &s.tasks)
                        .map(|t| t.next_attempt)
                        .sum(),
                    state: if q.failed {
                        "failed".into()
                    } else if q.ready_sent {
                        "final stage".into()
                    } else {
                        "running".into()
                    },
                })
                .collect(),
            counters: self.counters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use ffq_dataflow::plan::{Partitioning, PhysicalPlan, ScanSource, TpchTable};
    use ffq_dataflow::stage::split_stages;

    fn wid(s: &str) -> WorkerId {
        WorkerId::new(s).unwrap()
    }

    fn info(id: &str, slots: u32) -> WorkerInfo {
        WorkerInfo {
            id: wid(id),
            slots,
            operators: vec![],
            pid: 1,
        }
    }

    /// Stage 0 <- stage 1 (2 tasks) <- stage 2 (3 scan tasks).
    fn query(id: &str) -> SubmitQuery {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let scan = PhysicalPlan::Scan {
            source: ScanSource::Tpch {
                table: TpchTable::Nation,
                scale_factor: 0.01,
                partitions: 3,
            },
            table_schema: Arc::clone(&schema),
            projection: None,
            pruning: vec![],
            schema,
        };
        let plan = PhysicalPlan::Exchange {
            input: Box::new(PhysicalPlan::Exchange {
                input: Box::new(scan),
                partitioning: Partitioning::RoundRobin { partitions: 2 },
            }),
            partitioning: Partitioning::Gather,
        };
        SubmitQuery {
            query: QueryId::new(id).unwrap(),
            client: "c".into(),
            stages: split_stages(&plan),
            batch_size: 1024,
        }
    }

    fn assigned(actions: &[Action]) -> Vec<(WorkerId, AttemptRef)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Assign { worker, assignment } => {
                    Some((worker.clone(), assignment.attempt_ref()))
                }
                _ => None,
            })
            .collect()
    }

    fn ok(worker: &WorkerId, attempt: &AttemptRef, frames: u64) -> TaskReport {
        TaskReport {
            worker: worker.clone(),
            attempt: attempt.clone(),
            outcome: TaskOutcome::Succeeded {
                bytes: 10,
                metrics: vec![],
                stale_frames: 0,
            },
            frames,
        }
    }

    fn failed(worker: &WorkerId, attempt: &AttemptRef) -> TaskReport {
        TaskReport {
            worker: worker.clone(),
            attempt: attempt.clone(),
            outcome: TaskOutcome::Failed {
                message: "boom".into(),
            },
            frames: 0,
        }
    }

    fn ready(s: &Scheduler, q: &str) -> Option<InputAttempts> {
        s.events(&QueryId::new(q).unwrap(), 0)
            .unwrap()
            .into_iter()
            .find_map(|e| match e {
                QueryEvent::Ready { inputs } => Some(inputs),
                _ => None,
            })
    }

    #[test]
    fn stages_run_only_when_their_inputs_are_registered() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig::default());
        s.worker_up(info("a", 8), now);
        let first = assigned(&s.submit(query("q"), now).unwrap());
        // Only the scan stage (2) starts.
        assert_eq!(first.len(), 3);
        assert!(first.iter().all(|(_, a)| a.stage.0 == 2));
        let mut next = Vec::new();
        for (w, a) in &first {
            next = assigned(&s.report(ok(w, a, 3), now).1);
        }
        assert_eq!(next.len(), 2);
        assert!(next.iter().all(|(_, a)| a.stage.0 == 1));
        assert!(ready(&s, "q").is_none());
        for (w, a) in &next {
            s.report(ok(w, a, 3), now);
        }
        assert_eq!(ready(&s, "q").unwrap(), BTreeMap::from([(1, vec![0, 0])]));
    }

    #[test]
    fn coordinator_requeues_tasks_from_stale_worker() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig::default());
        s.worker_up(info("a", 1), now);
        s.worker_up(info("b", 2), now);
        let first = assigned(&s.submit(query("q"), now).unwrap());
        assert_eq!(first.len(), 3);
        let (on_b, on_a): (Vec<_>, Vec<_>) = first.iter().partition(|(w, _)| w == &wid("b"));
        assert_eq!((on_a.len(), on_b.len()), (1, 2));
        // b stops answering: its two attempts become new attempts on a,
        // one at a time (a has one slot, busy).
        let requeued = assigned(&s.worker_lost(&wid("b"), now));
        assert!(requeued.is_empty());
        assert_eq!(s.counters().requeued, 2);
        let (wa, aa) = on_a[0];
        let next = assigned(&s.report(ok(wa, aa, 4), now).1);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].0, wid("a"));
        assert_eq!(next[0].1.attempt.0, 1, "a new attempt number");
        // b comes back and reports its stale attempt: ignored and dropped.
        let back = s.worker_up(info("b", 2), now);
        assert!(back.iter().any(|a| matches!(a,
            Action::Release { worker, release: Release::Attempt(_), stale: true } if worker == &wid("b"))));
        let (b0, stale) = on_b[0];
        let (ack, _) = s.report(ok(b0, stale, 7), now);
        assert!(!ack.keep);
        assert_eq!(s.counters().stale_reports, 1);
        assert_eq!(s.counters().stale_frames, 7);
        // Only the new attempts register.
        let mut pending = next;
        pending.extend(assigned(&back));
        while let Some((w, a)) = pending.pop() {
            if a.stage.0 == 2 {
                pending.extend(assigned(&s.report(ok(&w, &a, 1), now).1));
            } else {
                s.report(ok(&w, &a, 1), now);
            }
        }
        let status = s.status(now);
        assert_eq!(status.queries[0].stages_done, 2);
        assert!(ready(&s, "q").is_some());
    }

    #[test]
    fn lost_outputs_still_needed_are_recomputed_and_readers_restarted() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig::default());
        s.worker_up(info("a", 4), now);
        s.worker_up(info("b", 4), now);
        let scans = assigned(&s.submit(query("q"), now).unwrap());
        let mut readers = Vec::new();
        for (w, a) in &scans {
            readers.extend(assigned(&s.report(ok(w, a, 1), now).1));
        }
        assert_eq!(readers.len(), 2);
        let lost_outputs = scans.iter().filter(|(w, _)| w == &wid("a")).count() as u64;
        let actions = s.worker_lost(&wid("a"), now);
        assert_eq!(s.counters().recomputed, lost_outputs);
        // Readers on b restart (released), the lost scans run again on b.
        let rerun = assigned(&actions);
        assert_eq!(rerun.len() as u64, lost_outputs);
        assert!(rerun
            .iter()
            .all(|(w, a)| w == &wid("b") && a.stage.0 == 2 && a.attempt.0 == 1));
        // Reports of the released readers are stale now.
        for (w, a) in readers.iter().filter(|(w, _)| w == &wid("b")) {
            assert!(!s.report(ok(w, a, 1), now).0.keep);
        }
    }

    #[test]
    fn failures_back_off_then_fail_the_query_naming_stage_and_task() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig {
            exclude_after: 100,
            ..SchedulerConfig::default()
        });
        s.worker_up(info("a", 8), t0);
        let first = assigned(&s.submit(query("q"), t0).unwrap());
        let (w, mut a) = first[0].clone();
        let mut now = t0;
        for failure in 1..=4u32 {
            let actions = s.report(failed(&w, &a), now).1;
            if failure == 4 {
                break;
            }
            assert!(assigned(&actions).is_empty(), "backoff before the retry");
            let backoff = Duration::from_millis(100 << (failure - 1));
            assert!(assigned(&s.tick(now + backoff - Duration::from_millis(1))).is_empty());
            now += backoff;
            let retry = assigned(&s.tick(now));
            assert_eq!(retry.len(), 1);
            a = retry[0].1.clone();
            assert_eq!(a.attempt.0, failure);
        }
        let events = s.events(&QueryId::new("q").unwrap(), 0).unwrap();
        let Some(QueryEvent::Failed { message }) = events.last() else {
            panic!("{events:?}")
        };
        assert!(
            message.contains("stage 2 task 0 failed after 4 attempts") && message.contains("boom"),
            "{message}"
        );
        assert_eq!(s.counters().queries_failed, 1);
    }

    #[test]
    fn a_worker_failing_repeatedly_is_excluded_while_others_can_run() {
        let now = Instant::now();
        let mut s = Scheduler::new(SchedulerConfig {
            backoff_base: Duration::ZERO,
            ..SchedulerConfig::default()
        });
        s.worker_up(info("bad", 8), now);
        let first = assigned(&s.submit(query("q"), now).unwrap());
        s.worker_up(info("good", 1), now);
        for (w, a) in &first {
            s.report(failed(w, a), now);
        }
        assert_eq!(s.counters().workers_excluded, 1);
        assert!(s
            .status(now)
            .workers
            .iter()
            .any(|w| w.info.id == wid("bad") && w.excluded_ms.is_some()));
        // Retries go to the good worker only, one per free slot.
        let retry = assigned(&s.tick(now));
        assert!(retry.iter().all(|(w, _)| w == &wid("good")));
    }
}
