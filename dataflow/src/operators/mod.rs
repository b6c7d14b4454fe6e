//! The operators: one module per operator, a folder once it has kernels
//! of its own. Operators depend on [`crate::execution`] (the `Operator`
//! trait, the task context); which plan node becomes which operator is
//! decided in [`crate::compile`] alone.

pub mod aggregate;
pub mod exchange;
pub mod filter;
pub mod join;
pub mod limit;
pub mod projection;
pub mod scan;
pub mod set_op;
pub mod sort;
pub mod stage_input;
pub mod union;
pub mod unnest;
pub mod values;
pub mod window;
pub mod write;

/// Kept at their old paths for callers outside the crate.
pub use crate::execution::Operator;
pub use join::hash_join;
pub use join::nested_loop as nested_loop_join;
pub use scan::{
    csv as csv_scan, memory as memory_scan, parquet as parquet_scan, pruning, tpch as tpch_scan,
};
pub use sort::preserving_merge as sort_merge;
pub use sort::topk;
