//! [`ZenohExchange`]: the dataflow [`ExchangeTransport`] over zenoh between
//! two sessions, a producing and a consuming one (possibly the same).
//!
//! It runs an exchange of one process through the zenoh data path (output
//! store, queryable, fetch and verification): for tests and benchmarks of
//! that path, and as the reference for the distributed runtime, where
//! writers and readers of an exchange live in different workers.

use std::sync::atomic::{AtomicU32, Ordering};

use arrow::datatypes::SchemaRef;
use ffq_dataflow::error::Result as DfResult;
use ffq_dataflow::exchange::{ExchangeTransport, PartitionWriter};
use ffq_dataflow::stream::SendableRecordBatchStream;
use zenoh::Session;

use super::fetch::{fetch_partition_with, merge_fetches, FetchOptions};
use super::keys::{
    AttemptId, AttemptRef, ClusterId, DataKey, PartitionId, QueryId, StageId, TaskId,
};
use super::store::OutputStore;
use super::writer::ZenohPartitionWriter;

/// Each `open` is a new stage of `query`: producer `t` is task `t`
/// (attempt 0) and writes into `store` (which must be served on the
/// producing session); consumer `p` fetches partition `p` of every task
/// over `consumer` and merges them.
pub struct ZenohExchange {
    pub cluster: ClusterId,
    pub query: QueryId,
    pub store: OutputStore,
    pub consumer: Session,
    pub fetch: FetchOptions,
    next_stage: AtomicU32,
}

impl ZenohExchange {
    pub fn new(cluster: ClusterId, query: QueryId, store: OutputStore, consumer: Session) -> Self {
        ZenohExchange {
            cluster,
            query,
            store,
            consumer,
            fetch: FetchOptions::default(),
            next_stage: AtomicU32::new(0),
        }
    }

    /// Drops the buffered outputs of the query.
    pub fn release(&self) -> usize {
        self.store.release(&self.query)
    }
}

impl ExchangeTransport for ZenohExchange {
    fn open(
        &self,
        producers: usize,
        consumers: usize,
        schema: SchemaRef,
    ) -> DfResult<(
        Vec<Box<dyn PartitionWriter>>,
        Vec<SendableRecordBatchStream>,
    )> {
        let stage = StageId(self.next_stage.fetch_add(1, Ordering::Relaxed));
        let attempt =
            |t: usize| AttemptRef::new(self.query.clone(), stage, TaskId(t as u32), AttemptId(0));
        let writers = (0..producers)
            .map(|t| {
                ZenohPartitionWriter::new(&self.store, attempt(t), consumers, schema.clone())
                    .map(|w| Box::new(w) as Box<dyn PartitionWriter>)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let readers = (0..consumers)
            .map(|p| {
                let fetches = (0..producers)
                    .map(|t| {
                        let key = DataKey::new(
                            self.cluster.clone(),
                            attempt(t).stream(PartitionId(p as u32)),
                        );
                        fetch_partition_with(&self.consumer, &key, self.fetch.clone())
                    })
                    .collect();
                merge_fetches(fetches, schema.clone())
            })
            .collect();
        Ok((writers, readers))
    }
}
