//! The zenoh exchange: how task attempts' output partitions travel between
//! workers (ARCHITECTURE.md section 4).
//!
//! - [`keys`]: typed ids and the key expressions of the contract.
//! - [`frame`]: data frames (header + Arrow IPC body), slicing of large
//!   batches, and the [`StreamVerifier`] (attempt, sequence, counts).
//! - [`store`]: the producer's [`OutputStore`], in-memory frames per
//!   stream until released.
//! - [`serve`]: the store's queryable on `ffq/<cluster>/data/**`.
//! - [`fetch`]: [`fetch_partition`], the consumer's pull of one stream.
//! - [`writer`]: [`ZenohPartitionWriter`], a dataflow `PartitionWriter`
//!   into the store.
//! - [`exchange`]: [`ZenohExchange`], a dataflow `ExchangeTransport` over
//!   two sessions (tests, benchmarks).
//! - [`config`]: session configuration helpers.
//! - [`loopback`]: a free loopback port and endpoint (local clusters,
//!   tests, benchmarks).
//!
//! The exchange is pull based: a consumer asks (zenoh `get`) and the
//! producer answers from its buffers, so nothing is ever published before
//! its consumer listens. Replies use `CongestionControl::Block` and every
//! stream is verified end to end (sequence numbers, end-of-stream counts).
//!
//! Known limits of this first increment: outputs live in memory only (a
//! byte budget fails the producer past it; spilling is future work); each
//! get is answered on a thread of the tokio blocking pool, which also waits
//! there (up to `ServeOptions::idle_wait`) for frames of a stream still
//! being written, so very many concurrent fetches of unfinished streams
//! queue on that pool; producers do not wait for consumers (no
//! backpressure besides the budget).

pub mod config;
pub mod error;
pub mod exchange;
pub mod fetch;
pub mod frame;
pub mod keys;
pub mod loopback;
pub mod serve;
pub mod store;
pub mod writer;

pub use config::{config_from_file, peer_config, shared_memory};
pub use error::TransportError;
pub use exchange::ZenohExchange;
pub use fetch::{
    fetch_partition, fetch_partition_with, merge_fetches, FetchOptions, FetchStats, PartitionFetch,
};
pub use frame::{Frame, FrameEncoder, FrameHeader, FrameKind, StreamVerifier, Verified};
pub use keys::{
    AttemptId, AttemptRef, ClientId, ClusterId, DataKey, PartitionId, QueryId, StageId, StreamId,
    TaskId, WorkerId,
};
pub use loopback::{free_port, loopback_endpoint};
pub use serve::{OutputServer, ServeOptions};
pub use store::{OutputStore, OutputStreamWriter, StoreConfig, StoreStats};
pub use writer::ZenohPartitionWriter;
