//! From SQL text to FFQ's physical plan.
//!
//! `sql` parses and plans with datafusion-sql against the catalog, then runs
//! DataFusion's analyzer and optimizer; `physical` lowers the optimized
//! logical plan to FFQ's partitioned physical plan with exchanges.

pub mod context;
pub mod exchange;
pub mod expr;
pub mod physical;
pub mod set_ops;
pub mod sql;
pub mod stats;
pub mod subquery;
pub mod window;
