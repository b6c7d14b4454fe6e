//! Joins: the hash join and the nested loop join, and the kernels they
//! share.
//!
//! Both joins reduce to the same shape: a fully collected left (build)
//! side, and a stream of right (probe) batches, each of which produces
//! candidate pairs `(build row, probe row)`.
//!
//! ```text
//!   left partitions ──collect once (build)──▶ JoinTable / batch ─┐
//!                                                               ├─ pairs ─▶ JoinSpec ─▶ output
//!   right partition p ──────────────probe batches───────────────┘
//! ```
//!
//! - [`build`]: collecting the left side once and sharing it;
//! - [`keys`], [`table`]: the hash join's key encoding and hash table;
//! - [`filter`]: the optional condition over candidate pairs;
//! - [`spec`]: join-type logic and output assembly (`gather` picks rows);
//! - [`hash_join`], [`nested_loop`]: the operators. The hash join spills
//!   (a grace hash join, partitioning both sides to disk when its build
//!   side does not fit); the nested loop join's build side cannot spill
//!   and fails with a resources-exhausted error when it does not fit.

pub mod build;
pub mod filter;
mod gather;
pub mod hash_join;
pub mod keys;
pub mod nested_loop;
pub mod spec;
pub mod table;
