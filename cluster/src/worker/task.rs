//! Running an assigned task attempt: compiling its stage plan with the
//! worker's pool, functions and the query's tables, writing its output
//! partitions into the store, and reporting the outcome.

use std::sync::Arc;
use std::time::Duration;

use ffq_dataflow::error::DataflowError;
use ffq_dataflow::metrics::MetricsSet;
use ffq_dataflow::operators::exchange::Partitioner;
use ffq_dataflow::runner::{catch_panic, CompiledPlan, ExecConfig, QueryServices};
use ffq_dataflow::tables::{MemoryTableMap, MemoryTables};
use ffq_transport::zenoh_exchange::{AttemptRef, StoreStats, ZenohPartitionWriter};

use super::{tables, Shared};
use crate::error::{ClusterError, Result};
use crate::inputs::ZenohStageInputs;
use crate::protocol::{ask_coordinator, AttemptProgress, TaskAssignment, TaskOutcome, TaskReport};

impl Shared {
    /// Starts an assigned attempt; it reports its outcome by itself. An
    /// attempt of a query released here is refused: the query ended while
    /// its assignment was on the way (a coordinator that still runs it
    /// then retries the task elsewhere).
    pub(super) fn start_task(self: &Arc<Self>, assignment: TaskAssignment) -> Result<()> {
        let attempt = assignment.attempt_ref();
        if self.store.is_released(&attempt.query) {
            tracing::debug!(worker = %self.id, ?attempt, "assignment of a released query refused");
            return Err(ClusterError::Query(format!(
                "query {} was released on worker {}",
                attempt.query, self.id
            )));
        }
        let mut running = self
            .running
            .lock()
            .map_err(|_| ClusterError::Protocol("running task table poisoned".into()))?;
        if running.contains_key(&attempt) {
            return Ok(());
        }
        tracing::debug!(worker = %self.id, ?attempt, "task started");
        let shared = Arc::clone(self);
        let key = attempt.clone();
        let handle = tokio::spawn(async move {
            let work = AttemptWork::default();
            let every = Duration::from_millis(assignment.progress_every_ms);
            let outcome = tokio::select! {
                outcome = catch_panic(shared.run_task(&assignment, &work)) => Some(outcome),
                () = shared.tell_progress(&key, &work, every) => None,
            };
            shared
                .tasks_run
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut r) = shared.running.lock() {
                r.remove(&key);
            }
            let outcome = match outcome {
                Some(Ok(o)) => o,
                Some(Err(e)) => TaskOutcome::Failed {
                    message: e.to_string(),
                    deterministic: e.is_deterministic(),
                },
                None => {
                    // No longer the task's running attempt (requeued after
                    // it stalled, or its query ended): nobody reads it.
                    tracing::info!(worker = %shared.id, attempt = ?key, "attempt superseded; stopped");
                    shared.store.release_attempt(&key);
                    return;
                }
            };
            shared.report(key, outcome).await;
        });
        running.insert(attempt, handle.abort_handle());
        Ok(())
    }

    pub(super) async fn run_task(
        &self,
        a: &TaskAssignment,
        work: &AttemptWork,
    ) -> ffq_dataflow::Result<TaskOutcome> {
        let attempt = a.attempt_ref();
        if let Some(fault) = &self.fault {
            if let Some(message) = fault(&attempt) {
                return Ok(TaskOutcome::Failed {
                    message,
                    deterministic: false,
                });
            }
        }
        if let Some(missing) = a
            .stage
            .required_operators()
            .into_iter()
            .find(|op| self.operators.get(op).is_none())
        {
            return Ok(TaskOutcome::Failed {
                message: format!(
                    "worker {} cannot run operator {missing}: no factory is registered for it here",
                    self.id
                ),
                deterministic: false,
            });
        }
        let output = a.stage.output.as_ref().ok_or_else(|| {
            DataflowError::Internal("the root stage runs in the client, not on a worker".into())
        })?;
        // Before anything of the task runs: a refused file is never opened.
        self.paths.check(&a.stage.plan)?;
        let tables = self.tables_for(a).await?;
        let inputs = Arc::new(
            ZenohStageInputs::new(
                self.session.clone(),
                self.cluster.clone(),
                a.query.clone(),
                a.inputs.clone(),
            )
            .with_memory_pool(Arc::clone(&self.memory_pool)),
        );
        let config = ExecConfig {
            batch_size: a.batch_size,
            memory_pool: Arc::clone(&self.memory_pool),
            spill_dir: self.spill_dir.clone(),
            ..ExecConfig::default()
        };
        let services = QueryServices::new(config, Arc::clone(&self.registry), tables)
            .with_inputs(Arc::clone(&inputs) as _)
            .with_operators(Arc::clone(&self.operators));
        let compiled = CompiledPlan::try_new(&a.stage.plan, services)?;
        work.started(&compiled.ctx.metrics);
        let schema = compiled.root.schema();
        let partitioner = Partitioner::try_new(output, &schema, &self.registry)?;
        let writer = ZenohPartitionWriter::new(
            &self.store,
            attempt.clone(),
            partitioner.partitions(),
            schema,
        )?;
        let mut output = AttemptOutput(Some(writer));
        let produced = partitioner
            .produce(
                Arc::clone(&compiled.root),
                a.task.0 as usize,
                &compiled.ctx,
                output.0.as_mut().expect("set above"),
            )
            .await;
        let writer = output.0.take().expect("set above");
        let (fetches, gets) = inputs.round_trips();
        tracing::debug!(worker = %self.id, ?attempt, fetches, gets, bytes = inputs.bytes(),
            "task inputs read");
        let spilled: u64 = compiled
            .ctx
            .metrics
            .snapshot()
            .iter()
            .map(|m| m.spilled_bytes)
            .sum();
        self.task_spilled_bytes
            .fetch_add(spilled, std::sync::atomic::Ordering::Relaxed);
        match produced {
            // Cancelled: every reader is gone (cannot happen with stored
            // outputs, which have no readers to lose); keep what exists.
            Ok(()) | Err(DataflowError::Cancelled) => {
                writer.finish()?;
                let stats = self.store.attempt_stats(&attempt);
                Ok(TaskOutcome::Succeeded {
                    bytes: stats.bytes as u64,
                    metrics: compiled.ctx.metrics.snapshot(),
                    stale_frames: inputs.stale_frames(),
                })
            }
            Err(e) => {
                let message = e.to_string();
                writer.abort(&message);
                Ok(TaskOutcome::Failed {
                    message,
                    deterministic: e.is_deterministic(),
                })
            }
        }
    }

    /// The memory tables `a` scans, fetched once per query from the client
    /// that registered them.
    pub(super) async fn tables_for(
        &self,
        a: &TaskAssignment,
    ) -> ffq_dataflow::Result<Arc<dyn MemoryTables>> {
        let names = a.stage.memory_tables();
        let map = {
            let mut tables = self
                .tables
                .lock()
                .map_err(|_| DataflowError::Internal("table cache poisoned".into()))?;
            // Checked under the cache's lock: a release of the query
            // cannot slip between the check and the insert.
            if self.store.is_released(&a.query) {
                return Err(DataflowError::Execution(format!(
                    "query {} was released",
                    a.query
                )));
            }
            Arc::clone(tables.entry(a.query.clone()).or_insert_with(|| {
                Arc::new(MemoryTableMap::with_memory_pool(Arc::clone(
                    &self.memory_pool,
                )))
            }))
        };
        for name in names {
            if map.batches(&name).is_some() {
                continue;
            }
            let batches =
                tables::fetch_table(&self.session, &self.cluster, &a.client, &a.query, &name)
                    .await
                    .map_err(DataflowError::from)?;
            map.insert(name, batches)?;
        }
        Ok(map)
    }

    /// Tells the coordinator every `every` how far `attempt` got; returns
    /// once the coordinator answers that it is no longer the running
    /// attempt of its task (never, if `every` is zero). Undelivered
    /// messages are not retried: the next one carries the same news.
    async fn tell_progress(&self, attempt: &AttemptRef, work: &AttemptWork, every: Duration) {
        if every.is_zero() {
            return std::future::pending().await;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let progress = AttemptProgress {
                worker: self.id.clone(),
                attempt: attempt.clone(),
                work: work.done(&self.store.attempt_stats(attempt)),
            };
            let timeout = every.max(Duration::from_secs(1));
            match ask_coordinator(&self.session, &self.cluster, &progress, timeout).await {
                Ok(ack) if !ack.running => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(worker = %self.id, ?attempt, "progress not delivered: {e}")
                }
            }
        }
    }

    /// Reports an outcome to the coordinator, retrying while it cannot be
    /// reached; drops the attempt's output if the coordinator does not
    /// keep it.
    pub(super) async fn report(&self, attempt: AttemptRef, outcome: TaskOutcome) {
        let report = TaskReport {
            worker: self.id.clone(),
            attempt: attempt.clone(),
            outcome,
            frames: self.store.attempt_stats(&attempt).frames as u64,
        };
        let mut wait = Duration::from_millis(100);
        for _ in 0..30 {
            match ask_coordinator(
                &self.session,
                &self.cluster,
                &report,
                Duration::from_secs(10),
            )
            .await
            {
                Ok(ack) => {
                    if !ack.keep {
                        self.store.release_attempt(&attempt);
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(worker = %self.id, ?attempt, "report not delivered: {e}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
        tracing::warn!(worker = %self.id, ?attempt, "coordinator unreachable; dropping the attempt's output");
        self.store.release_attempt(&attempt);
    }
}

/// What a running attempt did so far, for its progress messages.
#[derive(Default)]
pub(super) struct AttemptWork {
    /// The counters of its compiled plan, once compiled.
    metrics: std::sync::OnceLock<Arc<MetricsSet>>,
}

impl AttemptWork {
    fn started(&self, metrics: &Arc<MetricsSet>) {
        let _ = self.metrics.set(Arc::clone(metrics));
    }

    /// A number that grows while the attempt works: rows and busy time of
    /// its operators, frames written, one for having compiled. It stays
    /// put while the attempt is stuck.
    fn done(&self, output: &StoreStats) -> u64 {
        let operators: u64 = self.metrics.get().map_or(0, |m| {
            m.snapshot()
                .iter()
                .map(|n| n.output_rows.saturating_add(n.poll_ns))
                .fold(1, u64::saturating_add)
        });
        operators.saturating_add(output.frames as u64)
    }
}

/// The writer of an attempt's output: an attempt dropped before it
/// finished (aborted) ends its streams with an error, never with a
/// complete-looking end.
struct AttemptOutput(Option<ZenohPartitionWriter>);

impl Drop for AttemptOutput {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.abort("the task attempt was cancelled");
        }
    }
}
