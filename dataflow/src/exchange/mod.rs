//! The seam between partitions: how an exchange moves batches from the
//! producer tasks of one stage to the consumer partitions of the next.
//!
//! The runner only sees [`ExchangeTransport`]. The in-process
//! implementation, [`ChannelExchange`], lives here (it needs only tokio, and
//! the crate's tests run on it); the `ffq-transport` crate re-exports it
//! and provides the networked one.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;

use crate::error::Result;
use crate::stream::SendableRecordBatchStream;

mod channel;

pub use channel::ChannelExchange;

/// One producer's handle on an exchange: it sends batches (or an error) to
/// any consumer partition.
pub trait PartitionWriter: Send {
    /// Sends `item` to consumer `partition`, waiting while that consumer is
    /// full (backpressure). Fails with `Cancelled` if the consumer is gone.
    fn send(&mut self, partition: usize, item: Result<RecordBatch>) -> BoxFuture<'_, Result<()>>;
}

/// Opens exchanges.
pub trait ExchangeTransport: Send + Sync {
    /// Opens an exchange with `producers` writers and `consumers` readers.
    /// A reader's stream ends once every writer was dropped.
    #[allow(clippy::type_complexity)]
    fn open(
        &self,
        producers: usize,
        consumers: usize,
        schema: SchemaRef,
    ) -> Result<(
        Vec<Box<dyn PartitionWriter>>,
        Vec<SendableRecordBatchStream>,
    )>;
}

/// Reads the outputs of upstream stages: how a stage cut out of a plan by
/// [`crate::stage::split_stages`] reaches its inputs (the distributed
/// runtime fetches them from the workers that produced them).
pub trait StageInputs: Send + Sync {
    /// Partition `partition` of the output of `stage`: partition
    /// `partition` of every task of the stage, or with `preserve` the whole
    /// output of task `partition`.
    fn open(
        &self,
        stage: u32,
        partition: usize,
        preserve: bool,
        schema: SchemaRef,
    ) -> Result<SendableRecordBatchStream>;
}
