//! Scheduler unit tests: gating, stale worker requeue, lost outputs,
//! backoff and budget, exclusion.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffq_transport::zenoh_exchange::{AttemptId, AttemptRef, ClientId, QueryId, StageId, WorkerId};

use super::*;
use crate::protocol::{AttemptProgress, InputAttempts, TaskOutcome, TaskReport, WorkerInfo};
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

/// A TPC-H nation scan in 3 partitions.
pub(crate) fn nation_scan() -> PhysicalPlan {
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
    PhysicalPlan::Scan {
        source: ScanSource::Tpch {
            table: TpchTable::Nation,
            scale_factor: 0.01,
            partitions: 3,
        },
        table_schema: Arc::clone(&schema),
        projection: None,
        pruning: vec![],
        schema,
    }
}

/// `input` repartitioned round-robin into 2 partitions.
fn round_robin(input: PhysicalPlan) -> PhysicalPlan {
    PhysicalPlan::Exchange {
        input: Box::new(input),
        partitioning: Partitioning::RoundRobin { partitions: 2 },
    }
}

/// `input` gathered to the client, as query `id`.
fn submit(id: &str, input: PhysicalPlan) -> SubmitQuery {
    let plan = PhysicalPlan::Exchange {
        input: Box::new(input),
        partitioning: Partitioning::Gather,
    };
    SubmitQuery {
        query: QueryId::new(id).unwrap(),
        client: ClientId::new("c").unwrap(),
        stages: split_stages(&plan),
        batch_size: 1024,
    }
}

/// Stage 0 <- stage 1 (2 tasks) <- stage 2 (3 scan tasks).
fn query(id: &str) -> SubmitQuery {
    submit(id, round_robin(nation_scan()))
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
            deterministic: false,
        },
        frames: 0,
    }
}

/// The first event of query `q` that `pick` takes.
fn find_event<T>(s: &Scheduler, q: &str, pick: impl Fn(QueryEvent) -> Option<T>) -> Option<T> {
    s.events(&QueryId::new(q).unwrap(), 0)
        .unwrap()
        .into_iter()
        .find_map(pick)
}

fn ready(s: &Scheduler, q: &str) -> Option<InputAttempts> {
    find_event(s, q, |e| match e {
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
    assert_eq!(
        ready(&s, "q").unwrap(),
        BTreeMap::from([(StageId(1), vec![AttemptId(0), AttemptId(0)])])
    );
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
fn a_deterministic_failure_fails_the_query_without_retrying() {
    let now = Instant::now();
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.worker_up(info("a", 8), now);
    let first = assigned(&s.submit(query("q"), now).unwrap());
    let (w, a) = first[0].clone();
    let mut report = failed(&w, &a);
    report.outcome = TaskOutcome::Failed {
        message: "Divide by zero error".into(),
        deterministic: true,
    };
    s.report(report, now);
    let events = s.events(&QueryId::new("q").unwrap(), 0).unwrap();
    let Some(QueryEvent::Failed { message }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(
        message,
        "stage 2 task 0 failed (worker a): Divide by zero error"
    );
    assert_eq!(s.counters().queries_failed, 1);
    // Nothing is retried, whatever time passes.
    assert!(assigned(&s.tick(now + Duration::from_secs(60))).is_empty());
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

/// Stage 0 <- stage 1 (2 tasks) <- stage 2 (2 tasks) <- stage 3 (3 scan
/// tasks): stage 3's outputs can be released once stage 2 is done.
fn deep_query(id: &str) -> SubmitQuery {
    submit(id, round_robin(round_robin(nation_scan())))
}

fn releases(actions: &[Action]) -> Vec<(WorkerId, Release)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Release {
                worker, release, ..
            } => Some((worker.clone(), release.clone())),
            _ => None,
        })
        .collect()
}

/// Reports success for every attempt in `todo`, and for the ones those
/// reports start, until nothing new starts; returns all reports' actions.
fn run_all(s: &mut Scheduler, mut todo: Vec<(WorkerId, AttemptRef)>, now: Instant) -> Vec<Action> {
    let mut all = Vec::new();
    while let Some((w, a)) = todo.pop() {
        let (_, next) = s.report(ok(&w, &a, 1), now);
        todo.extend(assigned(&next));
        all.extend(next);
    }
    all
}

#[test]
fn a_lost_client_ends_its_queries_only() {
    let now = Instant::now();
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.worker_up(info("a", 8), now);
    let mut other = query("q2");
    other.client = ClientId::new("d").unwrap();
    let first = s.submit(query("q1"), now).unwrap();
    s.submit(other, now).unwrap();
    assert!(!assigned(&first).is_empty());
    let actions = s.client_lost(&ClientId::new("c").unwrap());
    assert_eq!(
        releases(&actions),
        vec![(wid("a"), Release::Query(QueryId::new("q1").unwrap()))]
    );
    let left: Vec<_> = s.status(now).queries.into_iter().map(|q| q.id).collect();
    assert_eq!(left, vec![QueryId::new("q2").unwrap()]);
    assert!(s.client_lost(&ClientId::new("nobody").unwrap()).is_empty());
}

#[test]
fn a_joining_worker_drops_what_this_coordinator_does_not_know() {
    let now = Instant::now();
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.worker_up(info("a", 8), now);
    s.submit(query("q1"), now).unwrap();
    let actions = s.worker_up(info("b", 8), now);
    assert_eq!(
        releases(&actions),
        vec![(
            wid("b"),
            Release::AllExcept(vec![QueryId::new("q1").unwrap()])
        )]
    );
}

#[test]
fn outputs_are_released_once_every_reader_is_done() {
    let now = Instant::now();
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.worker_up(info("a", 8), now);
    s.worker_up(info("b", 8), now);
    let q = QueryId::new("q").unwrap();
    let first = s.submit(deep_query("q"), now).unwrap();
    let actions = run_all(&mut s, assigned(&first), now);
    // Stage 3 is read only by stage 2, which is done: released on every
    // worker holding one of its outputs, once. Stage 2 is read by stage 1
    // (done too); stage 1 is read by the client, which is not done.
    let mut released = releases(&actions);
    released.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
    let stages: Vec<Release> = released.iter().map(|(_, r)| r.clone()).collect();
    assert!(stages.contains(&Release::Stage(q.clone(), StageId(3))));
    assert!(stages.contains(&Release::Stage(q.clone(), StageId(2))));
    assert!(!stages.contains(&Release::Stage(q.clone(), StageId(1))));
    let stage3 = stages
        .iter()
        .filter(|r| **r == Release::Stage(q.clone(), StageId(3)))
        .count();
    assert!((1..=2).contains(&stage3), "{released:?}");
    assert!(ready(&s, "q").is_some());
}

#[test]
fn a_reader_running_again_runs_its_released_inputs_again() {
    let now = Instant::now();
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.worker_up(info("a", 8), now);
    s.worker_up(info("b", 8), now);
    let first = assigned(&s.submit(deep_query("q"), now).unwrap());
    // Stage 3 (scans), then stage 2; stage 1 not yet.
    let mut next = Vec::new();
    for (w, a) in &first {
        next.extend(assigned(&s.report(ok(w, a, 1), now).1));
    }
    assert!(next.iter().all(|(_, a)| a.stage == StageId(2)));
    let mut stage1 = Vec::new();
    let mut released = Vec::new();
    for (w, a) in &next {
        let (_, actions) = s.report(ok(w, a, 1), now);
        released.extend(releases(&actions));
        stage1.extend(assigned(&actions));
    }
    assert!(released
        .iter()
        .any(|(_, r)| matches!(r, Release::Stage(_, StageId(3)))));
    assert!(stage1.iter().all(|(_, a)| a.stage == StageId(1)));
    // A stage 2 output is lost before stage 1 read it: stage 2's task runs
    // again, and first all of released stage 3.
    let holder = next[0].0.clone();
    let rerun = assigned(&s.worker_lost(&holder, now));
    assert!(!rerun.is_empty());
    assert!(
        rerun.iter().all(|(_, a)| a.stage == StageId(3)),
        "{rerun:?}"
    );
    assert_eq!(rerun.len(), 3);
    assert!(rerun.iter().all(|(_, a)| a.attempt == AttemptId(1)));
    // Once stage 3 is back, stage 2 runs again and the query gets ready.
    run_all(&mut s, rerun, now);
    assert!(ready(&s, "q").is_some());
}

fn progress(worker: &WorkerId, attempt: &AttemptRef, work: u64) -> AttemptProgress {
    AttemptProgress {
        worker: worker.clone(),
        attempt: attempt.clone(),
        work,
    }
}

fn failure_message(s: &Scheduler, q: &str) -> Option<String> {
    find_event(s, q, |e| match e {
        QueryEvent::Failed { message } => Some(message),
        _ => None,
    })
}

#[test]
fn an_attempt_without_progress_is_requeued_elsewhere_and_its_worker_suspected() {
    let t0 = Instant::now();
    let second = Duration::from_secs(1);
    let mut s = Scheduler::new(SchedulerConfig {
        progress_deadline: 10 * second,
        suspect_for: 60 * second,
        ..SchedulerConfig::default()
    });
    s.worker_up(info("mute", 1), t0);
    s.worker_up(info("busy", 1), t0);
    let first = assigned(&s.submit(query("q"), t0).unwrap());
    let (on_mute, on_busy): (Vec<_>, Vec<_>) =
        first.iter().cloned().partition(|(w, _)| w == &wid("mute"));
    let ((mute, stuck), (busy, working)) = (on_mute[0].clone(), on_busy[0].clone());
    // Work that grows keeps an attempt running past the deadline; the
    // same number again does not count.
    assert!(
        s.progress(&progress(&busy, &working, 5), t0 + 6 * second)
            .running
    );
    assert!(
        s.progress(&progress(&mute, &stuck, 0), t0 + 6 * second)
            .running
    );
    let actions = s.tick(t0 + 10 * second);
    let released = releases(&actions);
    assert_eq!(
        released,
        vec![(mute.clone(), Release::Attempt(stuck.clone()))],
        "only the stalled attempt is dropped"
    );
    assert_eq!(
        (s.counters().stalled, s.counters().workers_suspected),
        (1, 1)
    );
    let mute_status = |s: &Scheduler, now| {
        s.status(now)
            .workers
            .into_iter()
            .find(|w| w.info.id == mute)
            .unwrap()
    };
    assert!(mute_status(&s, t0 + 10 * second).suspected_ms.is_some());
    // Its answer now: stop. The retry waits for the busy worker, never
    // goes back to the suspected one though it has a free slot.
    assert!(
        !s.progress(&progress(&mute, &stuck, 9), t0 + 11 * second)
            .running
    );
    let early = assigned(&s.tick(t0 + 11 * second));
    assert!(early.is_empty(), "{early:?}");
    let next = assigned(&s.report(ok(&busy, &working, 1), t0 + 12 * second).1);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].0, busy);
    assert_eq!(
        (next[0].1.task, next[0].1.attempt),
        (stuck.task, AttemptId(1))
    );
    // A report of the stalled attempt is stale; a report clears the
    // suspicion (the worker shows life).
    let (ack, _) = s.report(ok(&mute, &stuck, 3), t0 + 13 * second);
    assert!(!ack.keep);
    assert!(mute_status(&s, t0 + 13 * second).suspected_ms.is_none());
}

#[test]
fn suspicion_ends_after_its_cooldown() {
    let t0 = Instant::now();
    let second = Duration::from_secs(1);
    let mut s = Scheduler::new(SchedulerConfig {
        progress_deadline: 10 * second,
        suspect_for: 5 * second,
        ..SchedulerConfig::default()
    });
    s.worker_up(info("mute", 8), t0);
    s.worker_up(info("other", 1), t0);
    // The worker with the most free slots takes all three scans.
    let first = assigned(&s.submit(query("q"), t0).unwrap());
    assert!(first.iter().all(|(w, _)| w == &wid("mute")), "{first:?}");
    let retried = assigned(&s.tick(t0 + 10 * second));
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].0, wid("other"));
    // Suspected: the other retries wait for "other" (busy) instead.
    assert!(assigned(&s.tick(t0 + 11 * second)).is_empty());
    // Past the cooldown it gets tasks again.
    let again = assigned(&s.tick(t0 + 15 * second));
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|(w, _)| w == &wid("mute")), "{again:?}");
}

#[test]
fn attempts_stalling_everywhere_fail_the_query_within_the_lost_budget() {
    let t0 = Instant::now();
    let deadline = Duration::from_secs(2);
    let mut s = Scheduler::new(SchedulerConfig {
        progress_deadline: deadline,
        max_lost: 2,
        ..SchedulerConfig::default()
    });
    // The only worker never answers: it is suspected, but being the only
    // one it is tried again, until the task's budget is spent.
    s.worker_up(info("mute", 1), t0);
    s.submit(query("q"), t0).unwrap();
    let mut now = t0;
    for _ in 0..3 {
        now += deadline;
        s.tick(now);
    }
    let message = failure_message(&s, "q").expect("the query failed");
    assert!(
        message.contains("made no progress 3 times") && message.contains("mute"),
        "{message}"
    );
}

#[test]
fn with_no_live_worker_a_query_fails_after_the_wait_naming_stage_and_task() {
    let t0 = Instant::now();
    let second = Duration::from_secs(1);
    let mut s = Scheduler::new(SchedulerConfig {
        no_worker_wait: 5 * second,
        ..SchedulerConfig::default()
    });
    s.worker_up(info("a", 8), t0);
    s.submit(query("q"), t0).unwrap();
    s.worker_lost(&wid("a"), t0 + second);
    s.tick(t0 + 5 * second);
    assert!(failure_message(&s, "q").is_none(), "still within the wait");
    // A worker coming and going again restarts the wait.
    s.worker_up(info("b", 1), t0 + 5 * second);
    s.worker_lost(&wid("b"), t0 + 6 * second);
    s.tick(t0 + 10 * second);
    assert!(failure_message(&s, "q").is_none(), "the wait restarted");
    s.tick(t0 + 11 * second);
    assert_eq!(
        failure_message(&s, "q").as_deref(),
        Some("no live worker for stage 2 task 0 for 5s")
    );
}
