//! The differential fixture: tables registered in FFQ and in the DataFusion
//! oracle, the configurations every query runs with, and the check that
//! FFQ gives the oracle's result in each.
//!
//! ```text
//!   Fixture (tables) ──runs()──▶ Runs: one (FFQ engine, DataFusion session)
//!   Runs::tpch(sf, partitions) ─▶       pair per configuration
//!                                  │
//!                    assert_same(queries) / assert_same_as(cases)
//! ```
//!
//! A test file builds its tables once (`fn fixture() -> Fixture`) and
//! checks lists of queries; every failure of every configuration is
//! collected and reported together.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use ffq::Engine;

use super::differential::{assert_no_failures, check_all, check_same_as};
use super::engines::{ffq_engine, oracle_ctx, oracle_session, register_both, tpch_engine};

/// (target_partitions, batch_size) of every run of a fixture's queries:
/// one partition with large batches, and three partitions with batches of
/// two rows (every operator sees many batches and several partitions).
pub const CONFIGS: [(usize, usize); 2] = [(1, 8192), (3, 2)];

/// Splits `batch` into batches of at most `rows` rows.
pub fn split(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(rows)
        .map(|offset| batch.slice(offset, rows.min(batch.num_rows() - offset)))
        .collect()
}

/// Hand-made tables, registered alike in FFQ and in the oracle.
#[derive(Default)]
pub struct Fixture {
    /// (name, schema, its one batch; `None`: an empty table).
    tables: Vec<(String, SchemaRef, Option<RecordBatch>)>,
    /// Rows per registered batch when there is more than one partition.
    split_rows: Option<usize>,
}

impl Fixture {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds table `name` holding `batch`.
    pub fn table(mut self, name: &str, batch: RecordBatch) -> Self {
        self.tables
            .push((name.to_string(), batch.schema(), Some(batch)));
        self
    }

    /// Adds table `name` without rows (no batches at all).
    pub fn empty_table(mut self, name: &str, schema: SchemaRef) -> Self {
        self.tables.push((name.to_string(), schema, None));
        self
    }

    /// With more than one partition, registers the tables in batches of
    /// `rows` rows, so that several partitions get data.
    pub fn split_when_partitioned(mut self, rows: usize) -> Self {
        self.split_rows = Some(rows);
        self
    }

    /// An FFQ engine and a DataFusion session with the tables.
    pub fn setup(&self, target_partitions: usize, batch_size: usize) -> (Engine, SessionContext) {
        let engine = ffq_engine(target_partitions, batch_size);
        let ctx = oracle_session();
        for (name, schema, batch) in &self.tables {
            let batches = match (batch, self.split_rows) {
                (None, _) => vec![],
                (Some(b), Some(rows)) if target_partitions > 1 => split(b, rows),
                (Some(b), _) => vec![b.clone()],
            };
            register_both(&engine, &ctx, name, Arc::clone(schema), batches);
        }
        (engine, ctx)
    }

    /// One engine and session per configuration of [`CONFIGS`].
    pub fn runs(&self) -> Runs {
        Runs(CONFIGS.iter().map(|&(p, b)| self.setup(p, b)).collect())
    }

    /// Checks every query in every configuration of [`CONFIGS`]; panics
    /// listing all failures.
    pub async fn check(&self, queries: &[&str]) {
        self.runs().assert_same(queries).await;
    }
}

/// FFQ engines, each with an oracle over the same tables: one pair per
/// configuration a test runs its queries with.
pub struct Runs(Vec<(Engine, SessionContext)>);

impl Runs {
    /// The TPC-H tables at `sf`, in an FFQ engine per partition count and
    /// one oracle.
    pub fn tpch(sf: f64, partitions: &[usize]) -> Runs {
        let ctx = oracle_ctx(sf);
        Runs(
            partitions
                .iter()
                .map(|&p| (tpch_engine(sf, p), ctx.clone()))
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Engine, SessionContext)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Runs every query in every configuration and compares it with the
    /// oracle; panics at the end listing all that failed.
    pub async fn assert_same(&self, queries: &[&str]) {
        let mut failures = Vec::new();
        for (engine, ctx) in self.iter() {
            failures.extend(check_all(queries, engine, ctx).await);
        }
        assert_no_failures(&failures, queries.len() * self.len());
    }

    /// Like [`Runs::assert_same`] for (FFQ query, oracle query) pairs: the
    /// oracle runs an equivalent query where DataFusion's answer to the
    /// same text is not the one wanted.
    pub async fn assert_same_as(&self, cases: &[(String, String)]) {
        let mut failures = Vec::new();
        for (engine, ctx) in self.iter() {
            for (sql, oracle_sql) in cases {
                if let Err(e) = check_same_as(sql, oracle_sql, engine, ctx).await {
                    failures.push(e);
                }
            }
        }
        assert_no_failures(&failures, cases.len() * self.len());
    }
}
