//! FFQ: a stream-oriented SQL query engine.
//!
//! SQL is planned with `datafusion-sql` and `datafusion-optimizer`, lowered
//! by FFQ's own physical planner into a plan of partitioned operators and
//! exchanges, and run as a DAG of async Arrow stream operators.
//!
//! ```no_run
//! # async fn demo() -> ffq::Result<()> {
//! let engine = ffq::Engine::new();
//! engine.register_tpch(0.01)?;
//! let df = engine.sql("SELECT count(*) FROM lineitem").await?;
//! let batches = df.collect().await?;
//! # Ok(()) }
//! ```
//!
//! The path of a statement: [`Engine::sql`] (`engine.rs`) parses and plans
//! it against the session (`session.rs`: catalog, functions, settings,
//! execution backend) with `planner/`; statements that are not queries go
//! to `statements/`, EXPLAIN to `explain.rs`; queries become a
//! [`DataFrame`], which runs on the session's execution backend
//! (`execution/`: embedded or cluster, chosen when the engine is built).
//!
//! Cargo features: `cli` (default) builds the `ffq` binary; `slt`
//! (default) provides `ffq::slt`, the sqllogictest runner. Without them the
//! library needs neither `clap`, `rustyline` nor `sqllogictest`.

pub mod analyze;
pub mod catalog;
mod config;
pub mod dataframe;
pub mod engine;
pub mod error;
mod execution;
mod explain;
pub mod format;
pub mod partitioned;
pub mod planner;
pub mod progress;
mod session;
#[cfg(feature = "slt")]
pub mod slt;
pub mod stages;
mod statements;
pub mod tpch;

pub use catalog::CsvOptions;
pub use dataframe::DataFrame;
pub use engine::{Engine, EngineConfig};
pub use error::{Error, Result};
pub use ffq_cluster::{ClusterConfig, LocalCluster};
pub use ffq_dataflow::runner::QueryStream;
pub use ffq_dataflow::stream::{RecordBatchStream, SendableRecordBatchStream};

/// The distributed runtime: coordinator, workers, cluster client.
pub mod cluster {
    pub use ffq_cluster::*;
}
pub use ffq_dataflow::PhysicalPlan;

/// The dataflow layer: physical plan, operators, custom operator factories.
pub use ffq_dataflow as dataflow;
/// Tables on object storage: URL locations and the process's object-store
/// options.
pub use ffq_dataflow::storage;
