//! `CREATE TABLE [AS]`, `INSERT INTO` and `DROP TABLE`: memory tables
//! filled by running a query.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, UInt64Array};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::util::display::FormatOptions;
use datafusion_common::ScalarValue;
use datafusion_expr::logical_plan::{CreateMemoryTable, DmlStatement, DropTable};
use datafusion_expr::LogicalPlan;
use datafusion_sql::planner::object_name_to_table_reference;
use datafusion_sql::unparser::expr_to_sql;
use ffq_dataflow::execution::BatchBuilder;
use ffq_dataflow::tables::MemoryTables;
use ffq_dataflow::DataflowError;
use sqlparser::ast::{Expr as SqlExpr, Insert, SetExpr, TableObject};

use super::external;
use super::objects::{
    catalog_lock, check_create, check_unique_columns, forget_table_data, object_name, resolve,
};
use super::output::{no_rows, not_supported, rows};
use crate::catalog::{display_name, CatalogObject, FfqTableSource, TableEntry, TableKind};
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::session::SessionState;

/// Plans, optimizes and runs `plan`; returns its schema (from the logical
/// plan) and output batches.
async fn run_query(
    session: &Arc<SessionState>,
    plan: LogicalPlan,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (logical, physical) = session.plan_query(plan).await?;
    let schema = Arc::new(Schema::new(logical.schema().fields().clone()));
    let batches = session.collect(&physical).await?;
    Ok((schema, batches))
}

/// `batch` with the column types and names of `schema`: columns are cast
/// where types differ; NULLs in non-nullable columns are an error.
fn conform(table: &str, batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(Error::Plan(format!(
            "table '{table}' has {} columns, but {} values were given per row",
            schema.fields().len(),
            batch.num_columns()
        )));
    }
    let options = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (column, field) in batch.columns().iter().zip(schema.fields()) {
        let column = if column.data_type() == field.data_type() {
            Arc::clone(column)
        } else {
            cast_with_options(column, field.data_type(), &options).map_err(|e| {
                Error::Plan(format!(
                    "column '{}' of table '{table}' has type {}; cannot store a value of type {}: {e}",
                    field.name(),
                    field.data_type(),
                    column.data_type()
                ))
            })?
        };
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(Error::Execution(DataflowError::Execution(format!(
                "column '{}' of table '{table}' is NOT NULL, but a NULL value was given",
                field.name()
            ))));
        }
        columns.push(column);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

/// Conforms `batches` to `schema` and re-batches them to `batch_size` rows
/// (small batches merged, large ones sliced).
fn prepare_batches(
    session: &Arc<SessionState>,
    table: &str,
    batches: &[RecordBatch],
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>> {
    let mut builder = BatchBuilder::new(Arc::clone(schema), session.config().batch_size);
    let mut out = Vec::new();
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        out.extend(builder.push(conform(table, b, schema)?)?);
    }
    out.extend(builder.finish()?);
    Ok(out)
}

pub(super) async fn create_table(
    session: &Arc<SessionState>,
    c: CreateMemoryTable,
) -> Result<DataFrame> {
    let name = object_name(&c.name)?;
    if !c.constraints.is_empty() {
        return not_supported("PRIMARY KEY and UNIQUE constraints");
    }
    if !check_create(session, &name, false, c.if_not_exists, c.or_replace)? {
        return Ok(no_rows(session));
    }
    let input = Arc::unwrap_or_clone(c.input);
    let (schema, batches) = run_query(session, input).await?;
    check_unique_columns(&format!("CREATE TABLE {name}"), &schema)?;
    let batches = prepare_batches(session, &name, &batches, &schema)?;
    let _guard = catalog_lock();
    // Checked again: another statement may have created it meanwhile.
    if !check_create(session, &name, false, c.if_not_exists, c.or_replace)? {
        return Ok(no_rows(session));
    }
    forget_table_data(session, &name);
    session.register_memory(&name, schema, batches)?;
    let defaults = c.column_defaults.into_iter().collect();
    session.catalog.set_defaults(&name, defaults)?;
    Ok(no_rows(session))
}

pub(super) async fn insert(
    session: &Arc<SessionState>,
    dml: DmlStatement,
    overwrite: bool,
) -> Result<DataFrame> {
    let name = object_name(&dml.table_name)?;
    let entry = match dml.target.as_ref().downcast_ref::<FfqTableSource>() {
        Some(source) => Arc::clone(&source.entry),
        None => {
            return Err(Error::NotSupported(format!(
                "INSERT into view '{name}'; insert into a table"
            )))
        }
    };
    let output_schema = Arc::new(Schema::new(dml.output_schema.fields().clone()));
    let input = Arc::unwrap_or_clone(dml.input);
    match entry.kind {
        TableKind::Memory => {}
        TableKind::Parquet { .. }
        | TableKind::Csv { .. }
        | TableKind::Json { .. }
        | TableKind::Partitioned(_) => {
            let count = external::insert(session, &entry, input, overwrite).await?;
            return count_rows(session, output_schema, count);
        }
        TableKind::Tpch { .. } => {
            return Err(Error::NotSupported(format!(
                "INSERT into {} table '{}'; memory tables (CREATE TABLE) and Parquet or CSV \
                 tables over a directory accept INSERT",
                kind_of(&entry.kind),
                entry.name
            )))
        }
    }
    let (_, batches) = run_query(session, input).await?;
    let new = prepare_batches(session, &entry.name, &batches, &entry.schema)?;
    let count: u64 = new.iter().map(|b| b.num_rows() as u64).sum();

    {
        let _guard = catalog_lock();
        // The table may have changed while the query ran.
        let current = session.catalog.get(&entry.name).filter(|t| {
            matches!(t.kind, TableKind::Memory) && t.schema.fields() == entry.schema.fields()
        });
        let Some(current) = current else {
            return Err(Error::Plan(format!(
                "table '{}' was dropped or changed while the INSERT ran",
                entry.name
            )));
        };
        let mut all: Vec<RecordBatch> = if overwrite {
            vec![]
        } else {
            session
                .memory
                .batches(&current.name)
                .map(|b| b.as_ref().clone())
                .unwrap_or_default()
        };
        all.extend(new);
        let rows = all.iter().map(|b| b.num_rows() as u64).sum();
        session.memory.insert(current.name.clone(), all)?;
        session.catalog.register(TableEntry {
            name: current.name.clone(),
            schema: Arc::clone(&current.schema),
            kind: TableKind::Memory,
            row_count: Some(rows),
        })?;
    }

    count_rows(session, output_schema, count)
}

/// The answer of an INSERT: one row, the rows inserted, typed as the
/// statement's output schema says.
fn count_rows(
    session: &Arc<SessionState>,
    output_schema: SchemaRef,
    count: u64,
) -> Result<DataFrame> {
    let counts: ArrayRef = Arc::new(UInt64Array::from(vec![count]));
    let column = match output_schema.fields().first().map(|f| f.data_type()) {
        Some(t) if t != &DataType::UInt64 => {
            cast_with_options(&counts, t, &CastOptions::default())?
        }
        _ => counts,
    };
    rows(session, output_schema, vec![column])
}

fn kind_of(kind: &TableKind) -> &'static str {
    match kind {
        TableKind::Memory => "memory",
        TableKind::Parquet { .. } => "Parquet",
        TableKind::Csv { .. } => "CSV",
        TableKind::Json { .. } => "JSON",
        TableKind::Partitioned(_) => "partitioned (PARTITIONED BY)",
        TableKind::Tpch { .. } => "TPC-H",
    }
}

pub(super) fn drop_table(session: &Arc<SessionState>, d: DropTable) -> Result<DataFrame> {
    let name = object_name(&d.name)?;
    let _guard = catalog_lock();
    match resolve(session, &name) {
        Some((existing, CatalogObject::Table(_))) => {
            session.catalog.deregister(&existing);
            forget_table_data(session, &existing);
            Ok(no_rows(session))
        }
        Some((existing, CatalogObject::View(_))) => Err(Error::Plan(format!(
            "'{existing}' is a view, not a table; use DROP VIEW {existing}"
        ))),
        None if d.if_exists => Ok(no_rows(session)),
        None => Err(Error::Plan(format!(
            "table '{}' not found",
            display_name(&name)
        ))),
    }
}

/// `INSERT INTO t [(columns)] VALUES (..., DEFAULT, ...)`: each `DEFAULT`
/// becomes the column's default value (NULL when it has none), before
/// datafusion-sql, which does not know the keyword, plans the statement.
/// Leaves statements for unknown tables alone (planning reports them).
pub(super) fn fill_default_values(session: &Arc<SessionState>, insert: &mut Insert) -> Result<()> {
    let (TableObject::TableName(table), Some(source)) = (&insert.table, &mut insert.source) else {
        return Ok(());
    };
    let SetExpr::Values(values) = source.body.as_mut() else {
        return Ok(());
    };
    let is_default = |e: &SqlExpr| {
        matches!(e, SqlExpr::Identifier(i) if i.quote_style.is_none()
            && i.value.eq_ignore_ascii_case("default"))
    };
    if !values.rows.iter().flat_map(|r| &r.content).any(is_default) {
        return Ok(());
    }
    let reference = object_name_to_table_reference(table.clone(), true)?;
    let Some(entry) = session.catalog.get(&object_name(&reference)?) else {
        return Ok(());
    };
    let defaults = session.catalog.defaults(&entry.name);
    // The target column of each value position.
    let columns: Vec<String> = if insert.columns.is_empty() {
        entry
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    } else {
        insert
            .columns
            .iter()
            .map(|c| match c.0.last().and_then(|p| p.as_ident()) {
                Some(i) => Ok(normalize(i)),
                None => Err(Error::Sql(format!("INSERT column {c}: not a column name"))),
            })
            .collect::<Result<_>>()?
    };
    for row in &mut values.rows {
        for (i, cell) in row.content.iter_mut().enumerate() {
            if !is_default(cell) {
                continue;
            }
            let default = columns
                .get(i)
                .and_then(|c| defaults.as_ref()?.get(c).cloned())
                .unwrap_or(datafusion_expr::Expr::Literal(ScalarValue::Null, None));
            *cell = expr_to_sql(&default)?;
        }
    }
    Ok(())
}

/// An identifier as datafusion-sql names it: unquoted ones lower-cased.
fn normalize(ident: &sqlparser::ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}
