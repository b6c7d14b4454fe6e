//! In-process exchange over bounded tokio channels.
//!
//! The implementation lives in `ffq-dataflow` (whose operator tests run on
//! it); it is re-exported here at its old path.

pub use ffq_dataflow::exchange::ChannelExchange;
