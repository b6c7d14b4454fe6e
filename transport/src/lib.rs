//! `ffq-transport`: the exchange between stages.
//!
//! - [`ChannelExchange`]: bounded tokio channels between tasks of one
//!   process (the embedded mode).
//! - [`zenoh_exchange`]: output partitions of task attempts over zenoh
//!   (the distributed mode's data path).

pub mod channel;
#[path = "zenoh/mod.rs"]
pub mod zenoh_exchange;

pub use channel::ChannelExchange;
