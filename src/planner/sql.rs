//! SQL text to an optimized DataFusion logical plan.

use std::sync::Arc;

use datafusion_common::config::ConfigOptions;
use datafusion_expr::LogicalPlan;
use datafusion_optimizer::analyzer::Analyzer;
use datafusion_optimizer::optimizer::{Optimizer, OptimizerConfig, OptimizerContext};
use datafusion_sql::parser::{DFParser, Statement};
use datafusion_sql::planner::SqlToRel;
use sqlparser::dialect::GenericDialect;

use ffq_dataflow::functions::FunctionRegistry;

use super::context::{DfRegistry, PlannerContext};
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

/// Splits a script into its statements. Each statement is its own text
/// from the script (cut at top-level `;` tokens), so that statements whose
/// rendering loses clauses (DataFusion's `CREATE EXTERNAL TABLE` prints
/// neither columns nor OPTIONS) run as written; when the cut does not match
/// the parsed statements, they are rendered back to SQL text instead.
pub fn split_statements(sql: &str) -> Result<Vec<String>> {
    // `EXPLAIN FORMAT dot|mermaid` is FFQ's: DataFusion's parser rejects
    // the format, so such pieces are checked by their query.
    if let Some(pieces) = split_at_semicolons(sql) {
        if pieces.iter().any(|p| explain_dag_format(p).is_some()) {
            for p in &pieces {
                parse(explain_dag_format(p).map_or(p.as_str(), |(_, q)| q))?;
            }
            return Ok(pieces);
        }
    }
    let statements = parse(sql)?;
    match split_at_semicolons(sql) {
        Some(pieces) if pieces.len() == statements.len() => Ok(pieces),
        _ => Ok(statements.iter().map(|s| s.to_string()).collect()),
    }
}

/// The non-empty pieces of `sql` between top-level `;` tokens (strings,
/// quoted identifiers and comments are single tokens, so a `;` inside them
/// does not cut). `None` when the text does not tokenize.
fn split_at_semicolons(sql: &str) -> Option<Vec<String>> {
    use sqlparser::tokenizer::{Location, Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    // Byte offset of each line start; columns count characters.
    let mut line_starts = vec![0usize];
    line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |loc: Location| -> Option<usize> {
        let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let col = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        let start = *line_starts.get(line)?;
        let rest = sql.get(start..)?;
        Some(match rest.char_indices().nth(col) {
            Some((i, _)) => start + i,
            None => sql.len(),
        })
    };
    let mut pieces = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                if let Some((a, b)) = current.take() {
                    pieces.push(sql.get(a..b)?.to_string());
                }
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => {
                let a = offset(t.span.start)?;
                let b = offset(t.span.end)?;
                current = Some(match current {
                    Some((start, _)) => (start, b),
                    None => (a, b),
                });
            }
        }
    }
    if let Some((a, b)) = current {
        pieces.push(sql.get(a..b)?.to_string());
    }
    Some(pieces)
}

/// Plans one statement into a logical plan (not yet optimized).
pub fn plan_statement(ctx: &PlannerContext<'_>, statement: Statement) -> Result<LogicalPlan> {
    let planner = SqlToRel::new(ctx);
    Ok(planner.statement_to_plan(statement)?)
}

/// Runs DataFusion's analyzer (type coercion, checks) and optimizer
/// (pushdowns, subquery decorrelation, simplification) on `plan`.
///
/// With `keep_scalar_subqueries`, uncorrelated scalar subqueries stay in
/// the plan as expressions, for the engine to run first (which checks that
/// they return at most one row); otherwise they become joins, which plan
/// without running anything (EXPLAIN).
pub fn optimize(
    plan: LogicalPlan,
    registry: &FunctionRegistry,
    keep_scalar_subqueries: bool,
) -> Result<LogicalPlan> {
    let mut options = ConfigOptions::new();
    options
        .optimizer
        .enable_physical_uncorrelated_scalar_subquery = keep_scalar_subqueries;
    let options = Arc::new(options);
    // INTERSECT ALL / EXCEPT ALL get their standard semantics (see set_ops).
    let plan = super::set_ops::rewrite_multiset_ops(plan)?;
    let analyzed = Analyzer::new().execute_and_check(plan, &options, |_, _| {})?;
    let context = WithFunctions {
        context: OptimizerContext::new_with_config_options(options)
            .with_query_execution_start_time(chrono::Utc::now()),
        registry: DfRegistry(registry),
    };
    Ok(Optimizer::new().optimize(analyzed, &context, |_, _| {})?)
}

/// The optimizer's context with FFQ's function library: some rewrites
/// (`DISTINCT ON`) look functions up by name.
struct WithFunctions<'a> {
    context: OptimizerContext,
    registry: DfRegistry<'a>,
}

impl OptimizerConfig for WithFunctions<'_> {
    fn query_execution_start_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.context.query_execution_start_time()
    }

    fn alias_generator(&self) -> &Arc<datafusion_common::alias::AliasGenerator> {
        self.context.alias_generator()
    }

    fn options(&self) -> Arc<ConfigOptions> {
        self.context.options()
    }

    fn function_registry(&self) -> Option<&dyn datafusion_expr::registry::FunctionRegistry> {
        Some(&self.registry)
    }
}

/// `EXPLAIN FORMAT dot|mermaid <query>` or `EXPLAIN (FORMAT dot|mermaid)
/// <query>`: the DAG format and the query text. Other statements (and
/// other formats, which DataFusion's parser handles) give `None`.
pub fn explain_dag_format(sql: &str) -> Option<(crate::stages::DagFormat, &str)> {
    fn word<'a>(s: &'a str, w: &str) -> Option<&'a str> {
        let s = s.trim_start();
        let head = s.get(..w.len())?;
        let rest = &s[w.len()..];
        (head.eq_ignore_ascii_case(w)
            && !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        .then_some(rest)
    }
    let rest = word(sql, "explain")?;
    let (rest, paren) = match rest.trim_start().strip_prefix('(') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let rest = word(rest, "format")?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let format = rest[..end].parse().ok()?;
    let mut rest = &rest[end..];
    if paren {
        rest = rest.trim_start().strip_prefix(')')?;
    }
    Some((format, rest))
}

#[cfg(test)]
mod dag_format_tests {
    use super::explain_dag_format;
    use crate::stages::DagFormat;

    #[test]
    fn recognizes_dag_formats_only() {
        let (f, q) = explain_dag_format("EXPLAIN (FORMAT dot) SELECT 1").unwrap();
        assert_eq!((f, q.trim()), (DagFormat::Dot, "SELECT 1"));
        let (f, q) = explain_dag_format("  explain format MERMAID select 2").unwrap();
        assert_eq!((f, q.trim()), (DagFormat::Mermaid, "select 2"));
        assert!(explain_dag_format("EXPLAIN FORMAT tree SELECT 1").is_none());
        assert!(explain_dag_format("EXPLAIN SELECT 1").is_none());
        assert!(explain_dag_format("EXPLAINX FORMAT dot SELECT 1").is_none());
        assert!(explain_dag_format("EXPLAIN (FORMAT dot SELECT 1").is_none());
    }
}
