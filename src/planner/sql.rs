//! SQL text to an optimized DataFusion logical plan.

use std::sync::Arc;

use datafusion_common::config::ConfigOptions;
use datafusion_expr::LogicalPlan;
use datafusion_optimizer::analyzer::Analyzer;
use datafusion_optimizer::optimizer::{Optimizer, OptimizerContext};
use datafusion_sql::parser::{DFParser, Statement};
use datafusion_sql::planner::SqlToRel;
use sqlparser::dialect::GenericDialect;

use super::context::PlannerContext;
use crate::error::{Error, Result};

/// Parses `sql` into statements (several when separated by `;`).
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|e| Error::Sql(strip_parser_prefix(&e.to_string())))?;
    Ok(statements.into_iter().collect())
}

fn strip_parser_prefix(msg: &str) -> String {
    msg.trim_start_matches("SQL error: ")
        .trim_start_matches("ParserError(\"")
        .trim_end_matches("\")")
        .to_string()
}

/// Splits a script into its statements, rendered back to SQL text.
pub fn split_statements(sql: &str) -> Result<Vec<String>> {
    Ok(parse(sql)?.iter().map(|s| s.to_string()).collect())
}

/// Plans one statement into a logical plan (not yet optimized).
pub fn plan_statement(ctx: &PlannerContext<'_>, statement: Statement) -> Result<LogicalPlan> {
    let planner = SqlToRel::new(ctx);
    Ok(planner.statement_to_plan(statement)?)
}

/// Runs DataFusion's analyzer (type coercion, checks) and optimizer
/// (pushdowns, subquery decorrelation, simplification) on `plan`.
pub fn optimize(plan: LogicalPlan) -> Result<LogicalPlan> {
    let mut options = ConfigOptions::new();
    // Uncorrelated scalar subqueries become joins, which FFQ runs; left in
    // place they would need DataFusion's own physical operator.
    options.optimizer.enable_physical_uncorrelated_scalar_subquery = false;
    let options = Arc::new(options);
    let analyzed = Analyzer::new().execute_and_check(plan, &options, |_, _| {})?;
    let context = OptimizerContext::new_with_config_options(options)
        .with_query_execution_start_time(chrono::Utc::now());
    Ok(Optimizer::new().optimize(analyzed, &context, |_, _| {})?)
}
