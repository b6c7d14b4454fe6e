//! `WITH RECURSIVE`: the recursion runs before the query that reads it,
//! like an uncorrelated scalar subquery, and its rows replace it.
//!
//! A recursive CTE is a static term and a recursive term that reads the
//! CTE's *working table* (the rows the previous iteration produced). The
//! driver runs the static term, then runs the recursive term with the
//! working table's scan replaced by those rows (as a literal `VALUES`
//! node), again and again until an iteration yields no new rows; with
//! `UNION` (not `UNION ALL`) rows seen before, and duplicates within an
//! iteration, are not new. Each term runs through the session
//! ([`SubqueryRunner`]), so on a cluster each iteration is a distributed
//! query and the driver runs on the client. More than
//! [`MAX_RECURSION_ITERATIONS`] iterations is an error naming the CTE.
//!
//! Rows travel in the plan as literals: fine for the hierarchies, series
//! and graph walks recursion is used for, slow for millions of rows.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion_common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion_common::{DFSchemaRef, ScalarValue};
use datafusion_expr::logical_plan::{EmptyRelation, Extension, RecursiveQuery, TableScan};
use datafusion_expr::utils::conjunction;
use datafusion_expr::{Expr, LogicalPlan, LogicalPlanBuilder, TableSource};
use futures::future::BoxFuture;
use futures::FutureExt;

use ffq_dataflow::execution::canonical_keys;

use super::subquery::{resolve_scalar_subqueries, SubqueryRunner};
use super::values::LiteralRows;
use crate::error::{Error, Result};

/// The most iterations of a recursive term; past it the query fails (a
/// recursion that never stops producing rows).
pub const MAX_RECURSION_ITERATIONS: usize = 10_000;

/// The working table of recursive CTE `name`, as the SQL planner sees it:
/// its scans are replaced by rows before anything is lowered.
pub struct CteWorkTable {
    name: String,
    schema: SchemaRef,
}

impl CteWorkTable {
    pub fn new(name: &str, schema: SchemaRef) -> Self {
        CteWorkTable {
            name: name.to_string(),
            schema,
        }
    }
}

impl TableSource for CteWorkTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// Runs every recursive CTE of `plan` (innermost first) and replaces it
/// by its rows.
pub fn resolve_recursive_queries(
    runner: &dyn SubqueryRunner,
    plan: LogicalPlan,
) -> BoxFuture<'_, Result<LogicalPlan>> {
    async move {
        let mut plan = plan;
        while let Some(query) = innermost_recursive_query(&plan)? {
            let rows = run_recursion(runner, &query).await?;
            let mut replaced = false;
            plan = plan
                .transform_up_with_subqueries(|node| match node {
                    LogicalPlan::RecursiveQuery(q) if !replaced && q == query => {
                        replaced = true;
                        Ok(Transformed::yes(rows.clone()))
                    }
                    other => Ok(Transformed::no(other)),
                })?
                .data;
            if !replaced {
                return Err(Error::Plan(format!(
                    "recursive CTE {} was lost while replacing it by its rows",
                    query.name
                )));
            }
        }
        Ok(plan)
    }
    .boxed()
}

/// A recursive query of `plan` with none inside its terms.
fn innermost_recursive_query(plan: &LogicalPlan) -> Result<Option<RecursiveQuery>> {
    let mut found = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::RecursiveQuery(q) = node {
            let nested = [q.static_term.as_ref(), q.recursive_term.as_ref()]
                .into_iter()
                .any(contains_recursive_query);
            if !nested {
                found = Some(q.clone());
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

fn contains_recursive_query(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|n| {
        found = matches!(n, LogicalPlan::RecursiveQuery(_));
        Ok(match found {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    });
    found
}

/// Iterates `query` to its fixed point and returns its rows as a plan.
async fn run_recursion(runner: &dyn SubqueryRunner, query: &RecursiveQuery) -> Result<LogicalPlan> {
    let schema = Arc::clone(&query.schema);
    let mut seen = query
        .is_distinct
        .then(|| SeenRows::new(&schema))
        .transpose()?;
    let mut all: Vec<RecordBatch> = Vec::new();
    let mut work = run_term(runner, &query.static_term).await?;
    for iteration in 0.. {
        if let Some(seen) = &mut seen {
            work = seen.keep_new(work)?;
        }
        if work.iter().all(|b| b.num_rows() == 0) {
            break;
        }
        if iteration >= MAX_RECURSION_ITERATIONS {
            return Err(Error::Execution(ffq_dataflow::DataflowError::Execution(
                format!(
                    "recursive CTE {} still produced rows after {MAX_RECURSION_ITERATIONS} \
                     iterations; add a condition that ends the recursion",
                    query.name
                ),
            )));
        }
        let term = with_working_table(&query.recursive_term, &query.name, &work)?;
        let next = run_term(runner, &term).await?;
        all.append(&mut work);
        work = next;
    }
    rows_plan(&all, &schema)
}

/// Runs one term to completion (its own scalar subqueries and recursive
/// CTEs first).
async fn run_term(runner: &dyn SubqueryRunner, term: &LogicalPlan) -> Result<Vec<RecordBatch>> {
    let term = resolve_recursive_queries(runner, term.clone()).await?;
    let term = resolve_scalar_subqueries(runner, term).await?;
    runner.run(&term).await
}

/// `term` with the scans of working table `name` replaced by `rows`.
fn with_working_table(term: &LogicalPlan, name: &str, rows: &[RecordBatch]) -> Result<LogicalPlan> {
    let replaced = term
        .clone()
        .transform_up_with_subqueries(|node| match node {
            LogicalPlan::TableScan(scan) if is_working_table(&scan, name) => {
                Ok(Transformed::yes(scan_rows(&scan, rows)?))
            }
            other => Ok(Transformed::no(other)),
        })?;
    Ok(replaced.data)
}

fn is_working_table(scan: &TableScan, name: &str) -> bool {
    scan.table_name.table() == name
        && <dyn TableSource>::downcast_ref::<CteWorkTable>(scan.source.as_ref())
            .is_some_and(|t| t.name == name)
}

/// What a scan of the working table reads from `rows`: its projection,
/// and any filter or limit the optimizer pushed into it.
fn scan_rows(scan: &TableScan, rows: &[RecordBatch]) -> datafusion_common::Result<LogicalPlan> {
    let projected: Vec<RecordBatch> = match &scan.projection {
        Some(columns) => rows
            .iter()
            .map(|b| b.project(columns))
            .collect::<std::result::Result<_, _>>()?,
        None => rows.to_vec(),
    };
    let mut plan = LogicalPlanBuilder::from(
        rows_plan(&projected, &scan.projected_schema)
            .map_err(|e| datafusion_common::DataFusionError::Plan(e.to_string()))?,
    );
    if let Some(filter) = conjunction(scan.filters.clone()) {
        plan = plan.filter(filter)?;
    }
    if let Some(fetch) = scan.fetch {
        plan = plan.limit(0, Some(fetch))?;
    }
    plan.build()
}

/// `rows` as a plan of literal rows with `schema` (cast to its types).
fn rows_plan(rows: &[RecordBatch], schema: &DFSchemaRef) -> Result<LogicalPlan> {
    let mut literal_rows = Vec::new();
    for batch in rows {
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Plan(format!("recursive CTE rows: {e}")))?;
        for row in 0..batch.num_rows() {
            let literals = columns
                .iter()
                .map(|c| Ok(Expr::Literal(ScalarValue::try_from_array(c, row)?, None)))
                .collect::<Result<Vec<_>>>()?;
            literal_rows.push(literals);
        }
    }
    if literal_rows.is_empty() {
        return Ok(LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::clone(schema),
        }));
    }
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(LiteralRows {
            rows: Arc::new(literal_rows),
            schema: Arc::clone(schema),
        }),
    }))
}

/// The rows a `UNION` recursion has produced so far (NULLs equal, float
/// zeros and NaNs canonical, as in UNION).
struct SeenRows {
    converter: RowConverter,
    seen: std::collections::HashSet<OwnedRow>,
    schema: DFSchemaRef,
}

impl SeenRows {
    fn new(schema: &DFSchemaRef) -> Result<Self> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(SeenRows {
            converter: RowConverter::new(fields)
                .map_err(|e| Error::NotSupported(format!("UNION in a recursive CTE: {e}")))?,
            seen: Default::default(),
            schema: Arc::clone(schema),
        })
    }

    /// The rows of `batches` not seen before (each once), now seen.
    fn keep_new(&mut self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for batch in batches {
            let columns = batch
                .columns()
                .iter()
                .zip(self.schema.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Plan(format!("recursive CTE rows: {e}")))?;
            // -0.0 and 0.0 (and every NaN) are one value, as in UNION.
            let rows = self
                .converter
                .convert_columns(&canonical_keys(&columns))
                .map_err(|e| Error::Plan(format!("recursive CTE rows: {e}")))?;
            let keep: Vec<bool> = rows.iter().map(|r| self.seen.insert(r.owned())).collect();
            let mask = arrow::array::BooleanArray::from(keep);
            out.push(
                arrow::compute::filter_record_batch(&batch, &mask)
                    .map_err(|e| Error::Plan(format!("recursive CTE rows: {e}")))?,
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
