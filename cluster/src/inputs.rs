//! [`ZenohStageInputs`]: a stage's inputs fetched from the workers that
//! hold the registered attempts of the upstream tasks.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use ffq_dataflow::error::{DataflowError, Result as DfResult};
use ffq_dataflow::exchange::StageInputs;
use ffq_dataflow::execution::MemoryPool;
use ffq_dataflow::stream::SendableRecordBatchStream;
use ffq_transport::zenoh_exchange::{
    fetch_partition_with, merge_fetches, AttemptRef, ClusterId, DataKey, FetchOptions, FetchStats,
    PartitionId, QueryId, StageId, TaskId,
};
use zenoh::Session;

use crate::protocol::InputAttempts;

pub struct ZenohStageInputs {
    session: Session,
    cluster: ClusterId,
    query: QueryId,
    attempts: InputAttempts,
    options: FetchOptions,
    stats: Mutex<Vec<Arc<FetchStats>>>,
}

impl ZenohStageInputs {
    /// Reads the registered `attempts` of `query`'s input stages. Fetches
    /// ask every attempt of a task and drop (and count) frames of any other
    /// attempt than the registered one: a late stale attempt can never be
    /// mistaken for the registered one.
    pub fn new(
        session: Session,
        cluster: ClusterId,
        query: QueryId,
        attempts: InputAttempts,
    ) -> Self {
        ZenohStageInputs {
            session,
            cluster,
            query,
            attempts,
            options: FetchOptions {
                any_attempt: true,
                ..FetchOptions::default()
            },
            stats: Mutex::new(Vec::new()),
        }
    }

    /// The same inputs, each fetch reserving its buffered replies in `pool`
    /// (see `ffq_transport`'s fetch module): a worker's fetches count
    /// against its memory limit.
    pub fn with_memory_pool(mut self, pool: Arc<dyn MemoryPool>) -> Self {
        self.options.memory_pool = Some(pool);
        self
    }

    /// Frames of other attempts dropped by the fetches so far.
    pub fn stale_frames(&self) -> u64 {
        self.sum(FetchStats::stale_frames)
    }

    /// Bytes fetched so far.
    pub fn bytes(&self) -> u64 {
        self.sum(FetchStats::bytes)
    }

    /// Fetches opened and gets sent so far (each get is a round trip).
    pub fn round_trips(&self) -> (usize, u64) {
        let fetches = self.stats.lock().map(|s| s.len()).unwrap_or(0);
        (fetches, self.sum(FetchStats::gets))
    }

    fn sum(&self, counter: impl Fn(&FetchStats) -> u64) -> u64 {
        self.stats
            .lock()
            .map(|s| s.iter().map(|f| counter(f)).sum())
            .unwrap_or(0)
    }
}

impl StageInputs for ZenohStageInputs {
    fn open(
        &self,
        stage: u32,
        partition: usize,
        preserve: bool,
        schema: SchemaRef,
    ) -> DfResult<SendableRecordBatchStream> {
        let stage = StageId(stage);
        let attempts = self.attempts.get(&stage).ok_or_else(|| {
            DataflowError::Internal(format!("no registered attempts for input stage {stage}"))
        })?;
        let tasks: Vec<usize> = if preserve {
            vec![partition]
        } else {
            (0..attempts.len()).collect()
        };
        let mut fetches = Vec::with_capacity(tasks.len());
        for t in tasks {
            let attempt = *attempts.get(t).ok_or_else(|| {
                DataflowError::Internal(format!("input stage {stage} has no task {t}"))
            })?;
            let stream = AttemptRef::new(self.query.clone(), stage, TaskId(t as u32), attempt)
                .stream(PartitionId(partition as u32));
            let fetch = fetch_partition_with(
                &self.session,
                &DataKey::new(self.cluster.clone(), stream),
                self.options.clone(),
            );
            if let Ok(mut s) = self.stats.lock() {
                s.push(fetch.stats());
            }
            fetches.push(fetch);
        }
        Ok(merge_fetches(fetches, schema))
    }
}
