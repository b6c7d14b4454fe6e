//! `ffq-cluster`: FFQ's distributed runtime over zenoh.
//!
//! - [`coordinator`]: schedules the stages of queries on workers
//!   ([`scheduler`] holds its decisions, free of I/O);
//! - [`worker`]: runs task attempts and serves their outputs;
//! - [`client`]: submits plans and runs their root stage;
//! - [`local`]: a whole cluster in one process, for tests and examples;
//! - [`protocol`]: the control messages, their keys, and which request
//!   gets which reply (typed requests);
//! - [`inputs`]: how a stage reads its upstream stages' outputs;
//! - [`security`]: TLS, user-password authentication and access control
//!   by role.

pub mod client;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod inputs;
pub mod local;
pub mod process;
pub mod protocol;
pub mod scheduler;
pub mod security;
pub mod status;
pub mod worker;

pub use client::{ClusterClient, ClusterProgress, QueryAnalysis};
pub use config::{ClusterConfig, DEFAULT_CLUSTER};
pub use coordinator::{Coordinator, CoordinatorConfig};
pub use error::{ClusterError, Result};
pub use local::{LocalCluster, LocalClusterBuilder};
pub use scheduler::SchedulerConfig;
pub use security::{Credentials, Members, Role, Security, TlsFiles};
pub use status::format_status;
pub use worker::{FaultHook, PathPolicy, Worker, WorkerConfig};
