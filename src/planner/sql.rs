//! SQL text to an optimized DataFusion logical plan.

use std::sync::Arc;

use datafusion_common::config::ConfigOptions;
use datafusion_expr::LogicalPlan;
use datafusion_optimizer::analyzer::Analyzer;
use datafusion_optimizer::optimizer::{Optimizer, OptimizerConfig, OptimizerContext};
use datafusion_sql::parser::{DFParserBuilder, Statement};
use datafusion_sql::planner::SqlToRel;
use sqlparser::dialect::GenericDialect;

use ffq_dataflow::functions::FunctionRegistry;
use ffq_dataflow::limits::{on_deep_stack, PARSER_RECURSION_LIMIT};

use super::context::{DfRegistry, PlannerContext};
use super::depth;
use crate::error::{Error, Result};

/// Parses `sql` into statements (several when separated by `;`), with
/// long `AND`/`OR`/`UNION` chains balanced and expression nesting checked
/// (see [`super::depth`]).
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    on_deep_stack(|| {
        let statements = DFParserBuilder::new(sql)
            .with_dialect(&GenericDialect {})
            .with_recursion_limit(PARSER_RECURSION_LIMIT)
            .build()
            .and_then(|mut parser| parser.parse_statements())
            .map_err(parse_error)?;
        let mut statements: Vec<Statement> = statements.into_iter().collect();
        for s in &mut statements {
            depth::check_statement(s)?;
        }
        Ok(statements)
    })
}

fn parse_error(e: datafusion_common::DataFusionError) -> Error {
    let message = e.to_string();
    if message.contains("RecursionLimitExceeded") {
        return Error::Sql(format!(
            "the query nests deeper than the parser's limit of {PARSER_RECURSION_LIMIT} levels \
             (parentheses, subqueries, CASE); split the query or simplify it"
        ));
    }
    Error::Sql(strip_parser_prefix(&message))
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
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let mut cursor = TextCursor::new(sql);
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
                let a = cursor.offset(t.span.start)?;
                let b = cursor.offset(t.span.end)?;
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

/// Byte offsets of token locations (line and character column, both from
/// 1), asked in increasing order: the cursor only moves forward, so a long
/// one-line statement costs one pass, not one pass per token.
struct TextCursor<'a> {
    sql: &'a str,
    line: u64,
    column: u64,
    byte: usize,
}

impl<'a> TextCursor<'a> {
    fn new(sql: &'a str) -> Self {
        TextCursor {
            sql,
            line: 1,
            column: 1,
            byte: 0,
        }
    }

    /// The byte offset of `loc`; `None` when it lies behind the cursor or
    /// outside the text.
    fn offset(&mut self, loc: sqlparser::tokenizer::Location) -> Option<usize> {
        if (loc.line, loc.column) < (self.line, self.column) {
            return None;
        }
        while self.line < loc.line {
            let newline = self.sql.get(self.byte..)?.find('\n')?;
            self.byte += newline + 1;
            self.line += 1;
            self.column = 1;
        }
        let mut chars = self.sql.get(self.byte..)?.chars();
        while self.column < loc.column {
            match chars.next() {
                Some(c) => {
                    self.byte += c.len_utf8();
                    self.column += 1;
                }
                None => break,
            }
        }
        Some(self.byte)
    }
}

/// Plans one statement into a logical plan (not yet optimized).
pub fn plan_statement(ctx: &PlannerContext<'_>, statement: Statement) -> Result<LogicalPlan> {
    on_deep_stack(|| Ok(SqlToRel::new(ctx).statement_to_plan(statement)?))
}

/// Runs DataFusion's analyzer (type coercion, checks) and optimizer
/// (pushdowns, subquery decorrelation, simplification) on `plan`.
///
/// With `keep_scalar_subqueries`, uncorrelated scalar subqueries stay in
/// the plan as expressions, for the engine to run first (which checks that
/// they return at most one row); otherwise they become joins, which plan
/// without running anything (EXPLAIN).
///
/// The result has its long `AND`/`OR` chains balanced and is within the
/// nesting bounds (see [`super::depth`]).
pub fn optimize(
    plan: LogicalPlan,
    registry: &FunctionRegistry,
    keep_scalar_subqueries: bool,
) -> Result<LogicalPlan> {
    on_deep_stack(|| {
        let optimized =
            depth::balance_plan(run_optimizer(plan, registry, keep_scalar_subqueries)?)?;
        depth::check_plan(&optimized)?;
        Ok(optimized)
    })
}

fn run_optimizer(
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
    let plan = super::similar_to::rewrite_similar_to(plan, registry)?;
    let analyzed = Analyzer::new().execute_and_check(plan, &options, |_, _| {})?;
    // Before the optimizer: long VALUES lists would be walked by every rule.
    let analyzed = super::values::hide_literal_rows(analyzed)?;
    // EXISTS / IN (subquery) in expressions: mark joins, three-valued IN.
    let analyzed = super::mark_subqueries::rewrite_subqueries_in_expressions(analyzed)?;
    // Correlated aggregate subqueries DataFusion cannot decorrelate.
    let analyzed = super::correlated_scalar::rewrite_correlated_scalar_subqueries(analyzed)?;
    let context = WithFunctions {
        context: OptimizerContext::new_with_config_options(options)
            .with_query_execution_start_time(chrono::Utc::now()),
        registry: DfRegistry(registry),
    };
    let optimized = Optimizer::new().optimize(analyzed, &context, |_, _| {})?;
    super::semi_join::push_down_semi_joins(optimized)
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
