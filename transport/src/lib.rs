//! `ffq-transport`: the exchange between stages.
//!
//! For now one implementation: [`ChannelExchange`], bounded tokio channels
//! between tasks of one process (the embedded mode).

pub mod channel;

pub use channel::ChannelExchange;
