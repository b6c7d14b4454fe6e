//! The EXPLAIN statements: `EXPLAIN` (the plans and stages),
//! `EXPLAIN ANALYZE` (runs the query on the session's backend and shows
//! what each operator did) and `EXPLAIN FORMAT dot|mermaid` (the stage
//! DAG). Each answers with `(plan_type, plan)` rows.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion_expr::logical_plan::{Analyze, Explain};

use crate::analyze::format_duration;
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::planner::sql;
use crate::session::SessionState;
use crate::stages::{self, DagFormat};

/// `EXPLAIN <query>`: the optimized logical plan, the physical plan and
/// the stages. Scalar subqueries are planned as joins: nothing runs.
pub(crate) fn explain(session: &Arc<SessionState>, explain: &Explain) -> Result<DataFrame> {
    let logical = sql::optimize(explain.plan.as_ref().clone(), &session.functions, false)?;
    let physical = session.physical_planner().plan(&logical)?;
    let query = DataFrame::query(Arc::clone(session), logical, physical);
    let rows = query
        .plan_texts()
        .ok_or_else(|| Error::Plan("EXPLAIN of a statement without a query plan".into()))?;
    plan_rows(
        session,
        rows.map(|(kind, text)| (kind.to_string(), text)).to_vec(),
    )
}

/// `EXPLAIN ANALYZE <query>`: runs it, then shows the plan with metrics
/// and the output's size and time.
pub(crate) async fn explain_analyze(
    session: &Arc<SessionState>,
    analyze: &Analyze,
) -> Result<DataFrame> {
    let (_, physical) = session.plan_query(analyze.input.as_ref().clone()).await?;
    let resources = session.resources();
    let a = session.backend.analyze(&physical, &resources).await?;
    plan_rows(
        session,
        vec![
            ("Plan with Metrics".to_string(), a.plan),
            (
                "Output".to_string(),
                format!("{} rows in {}", a.rows, format_duration(a.elapsed)),
            ),
        ],
    )
}

/// `EXPLAIN FORMAT dot|mermaid`: the stage DAG of the planned `query` as
/// one row (`plan_type` "stages", `plan` the drawing), as the session's
/// backend runs it.
pub(crate) fn explain_dag(
    session: &Arc<SessionState>,
    query: &DataFrame,
    format: DagFormat,
) -> Result<DataFrame> {
    let physical = query
        .physical_plan()
        .ok_or_else(|| Error::InvalidArgument("EXPLAIN FORMAT dot|mermaid needs a query".into()))?;
    let drawing = stages::draw(&session.backend.stage_plan(physical), format);
    plan_rows(session, vec![("stages".into(), drawing)])
}

/// The result of an EXPLAIN: rows of (plan_type, plan).
fn plan_rows(session: &Arc<SessionState>, rows: Vec<(String, String)>) -> Result<DataFrame> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("plan_type", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
    ]));
    let (kinds, plans): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(kinds)),
            Arc::new(StringArray::from(plans)),
        ],
    )?;
    Ok(DataFrame::rows(Arc::clone(session), schema, vec![batch]))
}
