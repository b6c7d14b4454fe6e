//! Queries whose output repeats a column name (`SELECT a, a FROM t`, also
//! in a branch of a set operation), which PostgreSQL and DuckDB accept but
//! DataFusion's planner rejects ("Projections require unique expression
//! names"): before planning, every repeat of a select item is aliased to
//! an internal unique name; after physical planning, the output columns
//! get their written names back, so the result has the same name twice,
//! embedded and distributed alike.
//!
//! Repeats are found in the SQL text: the same expression written twice,
//! or the same alias. Items that name a column differently (`a` and
//! `t.a`) or that repeat a column of a `*` are not found and still fail.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use datafusion_sql::parser::Statement as DFStatement;
use ffq_dataflow::expr::PhysExpr;
use ffq_dataflow::plan::PhysicalPlan;
use sqlparser::ast::{Expr, Ident, SelectItem, SetExpr, Statement};

/// The prefix of internal aliases.
const PREFIX: &str = "__ffq_repeat_";

/// Which output columns repeat an earlier one: `(column, earlier column)`.
#[derive(Debug, Default)]
pub struct RepeatedNames(Vec<(usize, usize)>);

/// Aliases the repeated select items of a query statement (see the module
/// doc); the result restores the output names after planning.
pub fn alias_repeats(statement: &mut DFStatement) -> RepeatedNames {
    let DFStatement::Statement(s) = statement else {
        return RepeatedNames::default();
    };
    let Statement::Query(query) = s.as_mut() else {
        return RepeatedNames::default();
    };
    RepeatedNames(alias_in(&mut query.body))
}

/// Aliases repeats in every branch of `body`; returns those of the branch
/// that names the output (the first).
fn alias_in(body: &mut SetExpr) -> Vec<(usize, usize)> {
    match body {
        SetExpr::Select(select) => {
            let mut first: HashMap<String, usize> = HashMap::new();
            let mut repeats = Vec::new();
            for (i, item) in select.projection.iter_mut().enumerate() {
                let (expr, key) = match item {
                    SelectItem::UnnamedExpr(e) => (e.clone(), expr_key(e)),
                    SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), ident_key(alias)),
                    _ => continue,
                };
                match first.get(&key) {
                    Some(&j) => {
                        repeats.push((i, j));
                        *item = SelectItem::ExprWithAlias {
                            expr,
                            alias: Ident::with_quote('"', format!("{PREFIX}{i}")),
                        };
                    }
                    None => {
                        first.insert(key, i);
                    }
                }
            }
            repeats
        }
        SetExpr::Query(q) => alias_in(&mut q.body),
        SetExpr::SetOperation { left, right, .. } => {
            alias_in(right);
            alias_in(left)
        }
        _ => vec![],
    }
}

/// The output name a select item without alias gets, as far as the text
/// tells: identifiers as datafusion-sql normalizes them, else the text.
fn expr_key(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => ident_key(i),
        Expr::CompoundIdentifier(parts) => {
            parts.iter().map(ident_key).collect::<Vec<_>>().join(".")
        }
        other => format!("expr {other}"),
    }
}

fn ident_key(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

impl RepeatedNames {
    /// `physical` with its repeated output columns named like the columns
    /// they repeat.
    pub fn restore(&self, physical: PhysicalPlan) -> PhysicalPlan {
        if self.0.is_empty() {
            return physical;
        }
        let schema = physical.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for &(i, j) in &self.0 {
            if i < fields.len() && j < fields.len() {
                let name = fields[j].name().clone();
                fields[i] = fields[i].clone().with_name(name);
            }
        }
        let exprs = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| PhysExpr::col(i, f.name()))
            .collect();
        PhysicalPlan::Projection {
            input: Box::new(physical),
            exprs,
            schema: Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        }
    }
}
