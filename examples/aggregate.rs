//! A grouped aggregation over the largest table: TPC-H Q1 (pricing summary
//! report) on lineitem generated in-process, embedded and optionally on a
//! cluster.
//!
//! ```sh
//! cargo run --release --example aggregate                     # embedded, SF 0.1
//! cargo run --release --example aggregate -- --distributed 2  # and on 2 worker processes
//! cargo run --release --example aggregate -- --connect tcp/HOST:7447
//! ```

mod common;

const SQL: &str = include_str!("../queries/tpch/q1.sql");

fn main() -> std::process::ExitCode {
    common::main("TPC-H Q1: the pricing summary report over lineitem", SQL)
}
