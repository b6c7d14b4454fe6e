//! The state of one query on the cluster: its stages, the tasks of each
//! stage and where their attempts run or ran, and the events its client
//! is told. Stage and task ids index these lists; ids that come from the
//! network are looked up with [`QueryRun::find_task`], never indexed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use ffq_dataflow::metrics::MetricsSnapshot;
use ffq_dataflow::stage::StagePlan;
use ffq_transport::zenoh_exchange::{
    AttemptId, AttemptRef, ClientId, QueryId, StageId, TaskId, WorkerId,
};

use crate::protocol::{
    InputAttempts, QueryEvent, QueryState, QueryStatus, StageProfile, SubmitQuery, TaskOutput,
};

/// An attempt of a task and the worker it runs (or ran) on.
#[derive(Debug, Clone)]
pub(super) struct Placement {
    pub attempt: AttemptId,
    pub worker: WorkerId,
}

#[derive(Default)]
pub(super) struct TaskRun {
    /// The id of the next attempt: attempts started so far.
    pub next_attempt: AttemptId,
    pub running: Option<Placement>,
    /// The registered (successful) attempt.
    pub done: Option<Placement>,
    pub failures: u32,
    /// Attempts lost with their worker (or never delivered to it).
    pub lost: u32,
    /// A retry waits for its backoff until then.
    pub not_before: Option<Instant>,
    pub last_failed_on: Option<WorkerId>,
    /// Since when no live worker can run the task (or its custom
    /// operators).
    pub waiting_since: Option<Instant>,
    /// When the running attempt last showed progress (its assignment, then
    /// progress messages whose work grew), and that work.
    pub progress_at: Option<Instant>,
    pub work: u64,
}

impl TaskRun {
    /// Whether `attempt` is the task's running attempt.
    pub fn is_running(&self, attempt: AttemptId) -> bool {
        self.running.as_ref().is_some_and(|p| p.attempt == attempt)
    }

    /// Whether the task waits for a worker: neither running nor done, and
    /// past its backoff.
    pub fn waiting(&self, now: Instant) -> bool {
        self.running.is_none() && self.done.is_none() && self.not_before.is_none_or(|nb| nb <= now)
    }

    /// Stops the running attempt `attempt` because it was lost with its
    /// worker; `false` if `attempt` is not the running one.
    pub fn requeue(&mut self, attempt: AttemptId) -> bool {
        if !self.is_running(attempt) {
            return false;
        }
        self.running = None;
        self.lost += 1;
        true
    }
}

pub(super) struct StageRun {
    pub plan: Arc<StagePlan>,
    /// Index = task id.
    pub tasks: Vec<TaskRun>,
    /// The stages reading its output (0: the client).
    pub consumers: Vec<StageId>,
    /// Custom operators its tasks need.
    pub required: Vec<String>,
    /// What its tasks did, for `profile`.
    pub profile: StageProfile,
    /// Pre-order ids of its scan nodes.
    pub scans: Vec<usize>,
    /// Its outputs were released once every reader was done; a reader
    /// that must run again makes it run again first.
    pub released: bool,
}

impl StageRun {
    pub fn complete(&self) -> bool {
        self.tasks.iter().all(|t| t.done.is_some())
    }

    /// The ids of its inputs.
    pub fn inputs(&self) -> impl Iterator<Item = StageId> + '_ {
        self.plan.inputs.iter().map(|&s| StageId(s))
    }
}

pub(super) struct QueryRun {
    pub client: ClientId,
    pub batch_size: usize,
    /// Index = stage id; stage 0 (the client's) has no tasks here.
    pub stages: Vec<StageRun>,
    pub events: Vec<QueryEvent>,
    pub ready_sent: bool,
    pub failed: bool,
    /// Workers that were given anything of the query.
    pub touched: BTreeSet<WorkerId>,
    /// Rows the scans of successful attempts produced.
    pub rows_scanned: u64,
}

impl QueryRun {
    /// Checks the submitted stage list (ids in order, inputs in range).
    pub fn new(submit: SubmitQuery) -> Result<(QueryId, QueryRun), String> {
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
            .map(|plan| {
                let root = plan.id == 0;
                StageRun {
                    required: plan.required_operators(),
                    scans: ffq_dataflow::metrics::scan_nodes(&plan.plan),
                    profile: StageProfile {
                        stage: StageId(plan.id),
                        tasks: if root { 0 } else { plan.tasks() as u32 },
                        ..StageProfile::default()
                    },
                    tasks: if root {
                        vec![]
                    } else {
                        (0..plan.tasks()).map(|_| TaskRun::default()).collect()
                    },
                    plan: Arc::new(plan),
                    consumers: vec![],
                    released: false,
                }
            })
            .collect();
        for s in 0..stages.len() {
            for input in stages[s].plan.inputs.clone() {
                stages[input as usize].consumers.push(StageId(s as u32));
            }
        }
        let run = QueryRun {
            client: submit.client,
            batch_size: submit.batch_size,
            stages,
            events: vec![],
            ready_sent: false,
            failed: false,
            touched: BTreeSet::new(),
            rows_scanned: 0,
        };
        Ok((submit.query, run))
    }

    /// The stages run on workers (all but stage 0).
    pub fn worker_stages(&self) -> impl DoubleEndedIterator<Item = StageId> {
        (1..self.stages.len() as u32).map(StageId)
    }

    /// A stage of the query (the id comes from the query itself).
    pub fn stage(&self, stage: StageId) -> &StageRun {
        &self.stages[stage.0 as usize]
    }

    pub fn stage_mut(&mut self, stage: StageId) -> &mut StageRun {
        &mut self.stages[stage.0 as usize]
    }

    pub fn task_mut(&mut self, stage: StageId, task: TaskId) -> &mut TaskRun {
        &mut self.stage_mut(stage).tasks[task.0 as usize]
    }

    /// A task named by ids from the network: `None` when there is none.
    pub fn find_task(&self, stage: StageId, task: TaskId) -> Option<&TaskRun> {
        self.stages
            .get(stage.0 as usize)?
            .tasks
            .get(task.0 as usize)
    }

    /// [`QueryRun::find_task`], mutable.
    pub fn find_task_mut(&mut self, stage: StageId, task: TaskId) -> Option<&mut TaskRun> {
        self.stages
            .get_mut(stage.0 as usize)?
            .tasks
            .get_mut(task.0 as usize)
    }

    pub fn inputs_of(&self, stage: StageId) -> InputAttempts {
        self.stage(stage)
            .inputs()
            .map(|s| {
                let attempts = self
                    .stage(s)
                    .tasks
                    .iter()
                    .map(|t| t.done.as_ref().map_or(AttemptId(0), |p| p.attempt))
                    .collect();
                (s, attempts)
            })
            .collect()
    }

    pub fn inputs_complete(&self, stage: StageId) -> bool {
        self.stage(stage).inputs().all(|s| self.stage(s).complete())
    }

    pub fn stages_done(&self) -> u32 {
        self.stages[1..].iter().filter(|s| s.complete()).count() as u32
    }

    /// The stages run on workers.
    pub fn stages_total(&self) -> u32 {
        self.stages.len() as u32 - 1
    }

    /// Registers the successful running attempt `attempt` (on `worker`):
    /// records its output and counters and tells the client. Returns
    /// whether its stage is complete now.
    pub fn register(
        &mut self,
        attempt: &AttemptRef,
        worker: &WorkerId,
        bytes: u64,
        metrics: &[MetricsSnapshot],
    ) -> bool {
        let stage = self.stage_mut(attempt.stage);
        let profile = &mut stage.profile;
        profile.outputs.retain(|o| o.task != attempt.task);
        profile.outputs.push(TaskOutput {
            task: attempt.task,
            attempt: attempt.attempt,
            worker: worker.clone(),
            bytes,
        });
        if profile.metrics.len() < metrics.len() {
            profile.metrics.resize(metrics.len(), Default::default());
        }
        for (acc, m) in profile.metrics.iter_mut().zip(metrics) {
            acc.merge(m);
        }
        let scanned: u64 = stage
            .scans
            .iter()
            .filter_map(|&i| metrics.get(i))
            .map(|m| m.output_rows)
            .sum();
        stage.tasks[attempt.task.0 as usize].done = Some(Placement {
            attempt: attempt.attempt,
            worker: worker.clone(),
        });
        let complete = stage.complete();
        self.rows_scanned += scanned;
        let (done, total) = (self.stages_done(), self.stages_total());
        self.events.push(QueryEvent::Progress {
            rows_scanned: self.rows_scanned,
            stages_done: done,
            stages_total: total,
        });
        if complete {
            tracing::info!(query = %attempt.query, stage = %attempt.stage, done, total, "stage done");
            self.events.push(QueryEvent::StageDone {
                stage: attempt.stage,
                stages_done: done,
                stages_total: total,
            });
        }
        complete
    }

    /// Marks the query failed and tells the client; no attempt of it
    /// runs any more.
    pub fn fail(&mut self, message: String) {
        self.failed = true;
        self.events.push(QueryEvent::Failed { message });
        for task in self.stages.iter_mut().flat_map(|s| s.tasks.iter_mut()) {
            task.running = None;
        }
    }

    fn tasks(&self) -> impl Iterator<Item = &TaskRun> {
        self.stages.iter().flat_map(|s| &s.tasks)
    }

    pub fn profile(&self) -> Vec<StageProfile> {
        self.stages
            .iter()
            .map(|s| {
                let mut p = s.profile.clone();
                p.attempts = s.tasks.iter().map(|t| t.next_attempt.0).sum();
                p.lost_attempts = s.tasks.iter().map(|t| t.lost).sum();
                p.outputs.sort();
                p
            })
            .collect()
    }

    pub fn status(&self, id: QueryId) -> QueryStatus {
        QueryStatus {
            id,
            stages_done: self.stages_done(),
            stages_total: self.stages_total(),
            running_tasks: self.tasks().filter(|t| t.running.is_some()).count() as u32,
            attempts: self.tasks().map(|t| t.next_attempt.0).sum(),
            state: if self.failed {
                QueryState::Failed
            } else if self.ready_sent {
                QueryState::FinalStage
            } else {
                QueryState::Running
            },
        }
    }
}
