//! FFQ's integration tests, as one test binary: each module is one area
//! (`cargo test --test integration window::` runs the window tests), and
//! [`common`] holds what they share (the DataFusion oracle, the
//! differential fixture, result comparison, clusters).
//!
//! One binary instead of one per file: the test helpers and DataFusion
//! (the oracle) are compiled and linked once.

mod common;

mod bad_input;
mod cli;
mod cluster;
mod cluster_containment;
mod cluster_gc;
mod cluster_processes;
mod custom_operators;
mod deep_sql;
mod edge_cases;
mod explain_analyze;
mod file_writes;
mod grouping_sets_set_ops;
mod harness;
mod long_lists;
mod memory_limit;
mod object_storage;
mod partial_pass_through;
mod path_policy;
mod plan_rewrites;
mod progress;
mod secure_cluster;
mod spill;
mod sqllogictest;
mod statements;
mod streaming;
mod tpch_all;
mod tpch_differential;
mod vector;
mod window;
