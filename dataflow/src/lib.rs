//! `ffq-dataflow`: FFQ's physical plan, expressions, stream operators and the
//! runner that turns a plan into connected async stream tasks.
//!
//! The crate knows nothing about zenoh or processes: exchanges between
//! partitions go through the [`exchange::ExchangeTransport`] trait, which the
//! `ffq-transport` crate implements.

pub mod compile;
pub mod custom;
pub mod error;
pub mod exchange;
pub mod execution;
pub mod expr;
pub mod functions;
pub mod ipc;
pub mod limits;
pub mod metrics;
pub mod operators;
pub mod plan;
pub mod runner;
pub mod similar_to;
pub mod stage;
pub mod storage;
pub mod stream;
pub mod tables;
#[cfg(test)]
pub(crate) mod test_util;
pub mod tree;
pub mod vector;

pub use error::{DataflowError, Result};
pub use plan::PhysicalPlan;
pub use stream::{RecordBatchStream, SendableRecordBatchStream};
