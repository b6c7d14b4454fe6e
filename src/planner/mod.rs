//! From SQL text to FFQ's physical plan.
//!
//! `sql` parses and plans with datafusion-sql against the catalog (as
//! `context` presents it), then runs DataFusion's analyzer and optimizer
//! (with `VALUES` lists of constants hidden from the latter by `values`);
//! `subquery` runs uncorrelated scalar subqueries first (through the
//! session, seen as a `SubqueryRunner`); `physical` lowers the optimized
//! logical plan to FFQ's partitioned physical plan, with `window` and
//! `set_ops` lowering their nodes and `exchange` making the exchanges.
//! Nothing here runs a query by itself or knows the engine.

pub mod context;
pub mod correlated_scalar;
pub mod depth;
pub mod duplicate_names;
pub mod exchange;
pub mod expr;
pub mod mark_subqueries;
pub mod physical;
pub mod recursive_cte;
pub mod semi_join;
pub mod set_ops;
pub mod similar_to;
pub mod sql;
pub mod stats;
pub mod subquery;
pub mod values;
pub mod window;
