//! What the integration tests share:
//!
//! - [`fixture`]: the differential fixture (tables in FFQ and in the
//!   DataFusion oracle, configurations, the check over all of them);
//! - [`differential`]: one query in FFQ and in an oracle (DataFusion, or
//!   FFQ embedded against a cluster), compared;
//! - [`engines`], [`data`]: FFQ engines, oracle sessions, TPC-H data;
//! - [`rows`], [`order`], [`compare`]: results in canonical form, the
//!   order a result must have, comparison with readable diffs;
//! - [`ffq_binary`]: the `ffq` binary, and clusters of its processes;
//! - [`fake_worker`]: a worker that accepts tasks and never answers;
//! - [`s3`]: a real S3 server on loopback;
//! - [`certs`]: a test CA and member certificates (`rcgen`).

pub mod certs;
pub mod compare;
pub mod data;
pub mod differential;
pub mod engines;
pub mod errors;
pub mod explain;
pub mod fake_worker;
pub mod ffq_binary;
pub mod fixture;
pub mod order;
pub mod rows;
pub mod s3;
pub mod spill;

pub use compare::{compare_rows, compare_schemas};
pub use data::{lineitem_batch_time, tpch_query, warm_up_tpchgen};
pub use differential::{
    assert_all_same, assert_no_failures, assert_same, check_against, check_parity, check_same,
    run_ffq, run_oracle, OracleResult,
};
pub use engines::{
    connect_engine, ffq_engine, oracle_ctx, oracle_session, register_both, tpch_cluster_engine,
    tpch_engine,
};
pub use errors::{assert_contains, query_error};
pub use explain::explain_rows;
pub use fixture::{split, Fixture, Runs};
pub use order::{output_order, OutputOrder};
pub use rows::{normalize, render_row, render_rows, Cell, Row};
