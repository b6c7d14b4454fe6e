//! Statements that are not queries: `CREATE TABLE [AS]`, `CREATE VIEW`,
//! `CREATE EXTERNAL TABLE`, `CREATE SCHEMA`, `DROP TABLE|VIEW|SCHEMA`,
//! `INSERT INTO`, `COPY ... TO`, `DESCRIBE` and `SHOW TABLES`.
//!
//! DDL statements and `INSERT` take effect when
//! [`Engine::sql`](crate::Engine::sql) plans them (an `INSERT` runs its
//! query then); the returned [`DataFrame`] holds the result rows: none for DDL (a zero-column result), one row with the
//! inserted row `count` for `INSERT` (as DataFusion does).
//!
//! Views are stored as their (unoptimized) logical plans and inlined by the
//! SQL planner where they are used, through
//! [`FfqViewSource`](crate::catalog::FfqViewSource).
//!
//! One file per family: `tables` (CREATE TABLE [AS], INSERT, DROP TABLE),
//! `views`, `schemas`, `external` (CREATE EXTERNAL TABLE, INSERT into it), `copy`
//! (COPY, and the file writes INSERT shares), `show` (DESCRIBE, SHOW
//! TABLES); `objects` resolves the names statements use and `output`
//! makes their results. A new statement gets a branch in [`execute`] (or
//! [`intercept`], when datafusion-sql cannot plan it) and a function in
//! the file of its family.

mod copy;
mod external;
mod objects;
mod output;
mod schemas;
mod settings;
mod show;
mod tables;
mod views;

use std::sync::Arc;

use datafusion_expr::logical_plan::dml::InsertOp;
use datafusion_expr::logical_plan::{DdlStatement, Statement as PlanStatement, WriteOp};
use datafusion_expr::LogicalPlan;
use datafusion_sql::parser::Statement as DFStatement;
use ffq_dataflow::DataflowError;
use sqlparser::ast::{
    CreateView as AstCreateView, ObjectNamePart, ShowStatementOptions, Statement as SqlStatement,
};

use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::session::SessionState;
use objects::resolve;
use output::{no_rows, not_supported};

/// Handles a statement before SQL planning when datafusion-sql cannot plan
/// it as FFQ needs: `SHOW TABLES` (answered from the catalog),
/// `CREATE VIEW IF NOT EXISTS` (rejected by datafusion-sql) and `DEFAULT`
/// in `INSERT ... VALUES` (unknown to it). Returns the
/// result when the statement is done; otherwise it is planned as usual.
pub(crate) fn intercept(
    session: &Arc<SessionState>,
    statement: &mut DFStatement,
) -> Result<Option<DataFrame>> {
    let statement = match statement {
        DFStatement::Statement(s) => s,
        _ => return Ok(None),
    };
    match statement.as_mut() {
        SqlStatement::ShowTables {
            terse,
            history,
            extended,
            full,
            external,
            show_options,
        } => {
            let ShowStatementOptions {
                show_in,
                starts_with,
                limit,
                limit_from,
                filter_position,
            } = show_options;
            let plain = !(*terse || *history || *extended || *full || *external)
                && show_in.is_none()
                && starts_with.is_none()
                && limit.is_none()
                && limit_from.is_none()
                && filter_position.is_none();
            if !plain {
                return Err(Error::NotSupported(format!(
                    "{statement}: only plain SHOW TABLES is supported"
                )));
            }
            show::show_tables(session).map(Some)
        }
        SqlStatement::Insert(insert) => {
            tables::fill_default_values(session, insert)?;
            Ok(None)
        }
        SqlStatement::ShowVariable { variable } => {
            let name: Vec<&str> = variable.iter().map(|i| i.value.as_str()).collect();
            settings::show(session, &name.join(".")).map(Some)
        }
        SqlStatement::CreateView(AstCreateView {
            if_not_exists,
            or_replace,
            name,
            ..
        }) if *if_not_exists => {
            if *or_replace {
                return Err(Error::Sql(
                    "CREATE OR REPLACE VIEW cannot also have IF NOT EXISTS".into(),
                ));
            }
            // The view's name as datafusion-sql normalizes it.
            if let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() {
                let name = match ident.quote_style {
                    Some(_) => ident.value.clone(),
                    None => ident.value.to_lowercase(),
                };
                if resolve(session, &name).is_some() {
                    return Ok(Some(no_rows(session)));
                }
            }
            *if_not_exists = false;
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Runs a planned statement that is not a query.
pub(crate) async fn execute(session: &Arc<SessionState>, plan: LogicalPlan) -> Result<DataFrame> {
    match plan {
        LogicalPlan::Ddl(ddl) => match ddl {
            DdlStatement::CreateMemoryTable(c) => tables::create_table(session, c).await,
            DdlStatement::CreateView(v) => views::create_view(session, v),
            DdlStatement::CreateExternalTable(e) => external::create_external_table(session, *e),
            DdlStatement::DropTable(d) => tables::drop_table(session, d),
            DdlStatement::DropView(d) => views::drop_view(session, d),
            DdlStatement::CreateIndex(_) => not_supported("CREATE INDEX"),
            DdlStatement::CreateCatalogSchema(c) => schemas::create_schema(session, c),
            DdlStatement::CreateCatalog(_) => not_supported("CREATE DATABASE"),
            DdlStatement::DropCatalogSchema(d) => schemas::drop_schema(session, d),
            DdlStatement::CreateFunction(_) => not_supported("CREATE FUNCTION"),
            DdlStatement::DropFunction(_) => not_supported("DROP FUNCTION"),
        },
        LogicalPlan::Dml(dml) => match &dml.op {
            WriteOp::Insert(InsertOp::Append) => tables::insert(session, dml, false).await,
            WriteOp::Insert(InsertOp::Overwrite) => tables::insert(session, dml, true).await,
            WriteOp::Insert(InsertOp::Replace) => not_supported("REPLACE INTO"),
            WriteOp::Delete => not_supported("DELETE"),
            WriteOp::Update => not_supported("UPDATE"),
            WriteOp::Truncate => not_supported("TRUNCATE"),
            WriteOp::MergeInto(_) => not_supported("MERGE"),
            other => Err(Error::NotSupported(format!("{other} statements"))),
        },
        LogicalPlan::DescribeTable(d) => show::describe(session, &d),
        LogicalPlan::Statement(s) => match s {
            PlanStatement::SetVariable(s) => settings::set(session, &s.variable, &s.value),
            PlanStatement::ResetVariable(r) => settings::reset(session, &r.variable),
            PlanStatement::TransactionStart(_) => {
                not_supported("transactions (BEGIN / START TRANSACTION)")
            }
            PlanStatement::TransactionEnd(_) => not_supported("transactions (COMMIT / ROLLBACK)"),
            PlanStatement::Prepare(_) => not_supported("PREPARE"),
            PlanStatement::Execute(_) => not_supported("EXECUTE"),
            PlanStatement::Deallocate(_) => not_supported("DEALLOCATE"),
        },
        LogicalPlan::Copy(c) => copy::copy_to(session, c).await,
        other => Err(Error::Execution(DataflowError::Internal(format!(
            "not a statement: {}",
            other.display()
        )))),
    }
}
