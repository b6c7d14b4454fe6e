//! Statements that are not queries: `CREATE TABLE [AS]`, `CREATE VIEW`,
//! `CREATE EXTERNAL TABLE`, `DROP TABLE|VIEW`, `INSERT INTO`, `DESCRIBE`
//! and `SHOW TABLES`.
//!
//! DDL statements and `INSERT` take effect when [`Engine::sql`] plans them
//! (an `INSERT` runs its query then); the returned [`DataFrame`] holds the
//! result rows: none for DDL (a zero-column result), one row with the
//! inserted row `count` for `INSERT` (as DataFusion does).
//!
//! Views are stored as their (unoptimized) logical plans and inlined by the
//! SQL planner where they are used, through
//! [`FfqViewSource`](crate::planner::context::FfqViewSource).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray, UInt64Array};
use arrow::compute::{cast_with_options, concat_batches, CastOptions};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::util::display::FormatOptions;
use datafusion_common::TableReference;
use datafusion_expr::logical_plan::dml::InsertOp;
use datafusion_expr::logical_plan::{
    CreateExternalTable, CreateMemoryTable, CreateView, DdlStatement, DescribeTable, DmlStatement,
    DropTable, DropView, Statement as PlanStatement, WriteOp,
};
use datafusion_expr::LogicalPlan;
use datafusion_sql::parser::Statement as DFStatement;
use ffq_dataflow::operators::parquet_scan;
use ffq_dataflow::tables::MemoryTables;
use ffq_dataflow::DataflowError;
use sqlparser::ast::{
    CreateView as AstCreateView, ObjectNamePart, ShowStatementOptions, Statement as SqlStatement,
};

use crate::catalog::{list_files, CatalogObject, CsvOptions, TableEntry, TableKind, ViewEntry};
use crate::dataframe::DataFrame;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::planner::context::FfqTableSource;

/// Serializes the check-then-change steps of catalog changes (short,
/// synchronous sections; queries run outside of it).
static CATALOG_CHANGE: Mutex<()> = Mutex::new(());

fn catalog_lock() -> MutexGuard<'static, ()> {
    CATALOG_CHANGE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Handles a statement before SQL planning when datafusion-sql cannot plan
/// it as FFQ needs: `SHOW TABLES` (answered from the catalog) and
/// `CREATE VIEW IF NOT EXISTS` (rejected by datafusion-sql). Returns the
/// result when the statement is done; otherwise it is planned as usual.
pub(crate) fn intercept(engine: &Engine, statement: &mut DFStatement) -> Result<Option<DataFrame>> {
    let statement = match statement {
        DFStatement::Statement(s) => s,
        DFStatement::CopyTo(_) => return Err(Error::NotSupported("COPY".into())),
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
            show_tables(engine).map(Some)
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
                if resolve(engine, &name).is_some() {
                    return Ok(Some(no_rows(engine)));
                }
            }
            *if_not_exists = false;
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Runs a planned statement that is not a query.
pub(crate) async fn execute(engine: &Engine, plan: LogicalPlan) -> Result<DataFrame> {
    match plan {
        LogicalPlan::Ddl(ddl) => match ddl {
            DdlStatement::CreateMemoryTable(c) => create_table(engine, c).await,
            DdlStatement::CreateView(v) => create_view(engine, v),
            DdlStatement::CreateExternalTable(e) => create_external_table(engine, *e),
            DdlStatement::DropTable(d) => drop_table(engine, d),
            DdlStatement::DropView(d) => drop_view(engine, d),
            DdlStatement::CreateIndex(_) => not_supported("CREATE INDEX"),
            DdlStatement::CreateCatalogSchema(_) => not_supported("CREATE SCHEMA"),
            DdlStatement::CreateCatalog(_) => not_supported("CREATE DATABASE"),
            DdlStatement::DropCatalogSchema(_) => not_supported("DROP SCHEMA"),
            DdlStatement::CreateFunction(_) => not_supported("CREATE FUNCTION"),
            DdlStatement::DropFunction(_) => not_supported("DROP FUNCTION"),
        },
        LogicalPlan::Dml(dml) => match &dml.op {
            WriteOp::Insert(InsertOp::Append) => insert(engine, dml, false).await,
            WriteOp::Insert(InsertOp::Overwrite) => insert(engine, dml, true).await,
            WriteOp::Insert(InsertOp::Replace) => not_supported("REPLACE INTO"),
            WriteOp::Delete => not_supported("DELETE"),
            WriteOp::Update => not_supported("UPDATE"),
            WriteOp::Truncate => not_supported("TRUNCATE"),
            WriteOp::MergeInto(_) => not_supported("MERGE"),
            other => Err(Error::NotSupported(format!("{other} statements"))),
        },
        LogicalPlan::DescribeTable(d) => describe(engine, &d),
        LogicalPlan::Statement(s) => not_supported(match s {
            PlanStatement::TransactionStart(_) => "transactions (BEGIN / START TRANSACTION)",
            PlanStatement::TransactionEnd(_) => "transactions (COMMIT / ROLLBACK)",
            PlanStatement::SetVariable(_) => "SET",
            PlanStatement::ResetVariable(_) => "RESET",
            PlanStatement::Prepare(_) => "PREPARE",
            PlanStatement::Execute(_) => "EXECUTE",
            PlanStatement::Deallocate(_) => "DEALLOCATE",
        }),
        LogicalPlan::Copy(_) => not_supported("COPY"),
        other => Err(Error::Execution(DataflowError::Internal(format!(
            "not a statement: {}",
            other.display()
        )))),
    }
}

fn not_supported(what: &str) -> Result<DataFrame> {
    Err(Error::NotSupported(what.to_string()))
}

/// The result of a statement without rows: no columns, no batches.
fn no_rows(engine: &Engine) -> DataFrame {
    DataFrame::rows(Arc::clone(&engine.state), Arc::new(Schema::empty()), vec![])
}

fn rows(engine: &Engine, schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<DataFrame> {
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(DataFrame::rows(
        Arc::clone(&engine.state),
        schema,
        vec![batch],
    ))
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/// The catalog name of a table or view named in a statement (one part;
/// datafusion-sql has already lower-cased unquoted identifiers).
fn object_name(name: &TableReference) -> Result<String> {
    match name {
        TableReference::Bare { table } => Ok(table.to_string()),
        other => Err(Error::NotSupported(format!(
            "qualified name {other}: tables and views have one-part names"
        ))),
    }
}

/// The object called `name`, with the name it is registered under (the
/// name itself, else its lower-case form, as the SQL planner looks up).
fn resolve(engine: &Engine, name: &str) -> Option<(String, CatalogObject)> {
    let catalog = &engine.state.catalog;
    if let Some(o) = catalog.lookup_exact(name) {
        return Some((name.to_string(), o));
    }
    let lower = name.to_lowercase();
    catalog.lookup_exact(&lower).map(|o| (lower, o))
}

fn kind_name(object: &CatalogObject) -> &'static str {
    match object {
        CatalogObject::Table(_) => "table",
        CatalogObject::View(_) => "view",
    }
}

/// What to do when creating `name`: `Ok(true)` to go on, `Ok(false)` when
/// the statement is a no-op (`IF NOT EXISTS` and the name exists).
/// `OR REPLACE` replaces only an object of the same kind.
fn check_create(
    engine: &Engine,
    name: &str,
    creating_view: bool,
    if_not_exists: bool,
    or_replace: bool,
) -> Result<bool> {
    let Some((existing, object)) = resolve(engine, name) else {
        return Ok(true);
    };
    if if_not_exists {
        return Ok(false);
    }
    let is_view = matches!(object, CatalogObject::View(_));
    if or_replace && is_view == creating_view {
        return Ok(true);
    }
    let kind = kind_name(&object);
    let hint = if or_replace {
        format!(" (OR REPLACE does not replace a {kind}; drop it first)")
    } else {
        String::new()
    };
    Err(Error::Plan(format!(
        "{kind} '{existing}' already exists{hint}"
    )))
}

/// Removes what a replaced table leaves behind (its memory batches).
fn forget_table_data(engine: &Engine, name: &str) {
    engine.state.memory.remove(name);
}

// ---------------------------------------------------------------------------
// CREATE TABLE [AS], INSERT
// ---------------------------------------------------------------------------

/// Plans, optimizes and runs `plan`; returns its schema (from the logical
/// plan) and output batches.
async fn run_query(engine: &Engine, plan: LogicalPlan) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (logical, physical) = engine.plan_query(plan).await?;
    let schema = Arc::new(Schema::new(logical.schema().fields().clone()));
    let df = DataFrame::query(Arc::clone(&engine.state), logical, physical);
    let batches = df.collect().await?;
    Ok((schema, batches))
}

fn check_unique_columns(what: &str, schema: &Schema) -> Result<()> {
    let mut seen = HashSet::new();
    for f in schema.fields() {
        if !seen.insert(f.name().as_str()) {
            return Err(Error::Plan(format!(
                "{what}: duplicate column name '{}'; give the columns distinct aliases",
                f.name()
            )));
        }
    }
    Ok(())
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

/// Conforms `batches` to `schema`, drops empty ones and merges them into
/// batches of up to `batch_size` rows when they are smaller.
fn prepare_batches(
    engine: &Engine,
    table: &str,
    batches: &[RecordBatch],
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>> {
    let batch_size = engine.state.config.batch_size;
    let mut out: Vec<RecordBatch> = Vec::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    for b in batches {
        if b.num_rows() == 0 {
            continue;
        }
        let b = conform(table, b, schema)?;
        if pending_rows + b.num_rows() > batch_size && !pending.is_empty() {
            out.push(concat_batches(schema, &pending)?);
            pending.clear();
            pending_rows = 0;
        }
        pending_rows += b.num_rows();
        pending.push(b);
    }
    if !pending.is_empty() {
        out.push(concat_batches(schema, &pending)?);
    }
    Ok(out)
}

async fn create_table(engine: &Engine, c: CreateMemoryTable) -> Result<DataFrame> {
    let name = object_name(&c.name)?;
    if !c.constraints.is_empty() {
        return not_supported("PRIMARY KEY and UNIQUE constraints");
    }
    if !c.column_defaults.is_empty() {
        return not_supported("column DEFAULT values");
    }
    if !check_create(engine, &name, false, c.if_not_exists, c.or_replace)? {
        return Ok(no_rows(engine));
    }
    let input = Arc::unwrap_or_clone(c.input);
    let (schema, batches) = run_query(engine, input).await?;
    check_unique_columns(&format!("CREATE TABLE {name}"), &schema)?;
    let batches = prepare_batches(engine, &name, &batches, &schema)?;
    let _guard = catalog_lock();
    // Checked again: another statement may have created it meanwhile.
    if !check_create(engine, &name, false, c.if_not_exists, c.or_replace)? {
        return Ok(no_rows(engine));
    }
    forget_table_data(engine, &name);
    engine.register_memory(&name, schema, batches)?;
    Ok(no_rows(engine))
}

async fn insert(engine: &Engine, dml: DmlStatement, overwrite: bool) -> Result<DataFrame> {
    let name = object_name(&dml.table_name)?;
    let entry = match dml.target.as_ref().downcast_ref::<FfqTableSource>() {
        Some(source) => Arc::clone(&source.entry),
        None => {
            return Err(Error::NotSupported(format!(
                "INSERT into view '{name}'; insert into a table"
            )))
        }
    };
    if !matches!(entry.kind, TableKind::Memory) {
        return Err(Error::NotSupported(format!(
            "INSERT into {} table '{}'; only tables made by CREATE TABLE (memory tables) accept INSERT",
            kind_of(&entry.kind),
            entry.name
        )));
    }
    let output_schema = Arc::new(Schema::new(dml.output_schema.fields().clone()));
    let input = Arc::unwrap_or_clone(dml.input);
    let (_, batches) = run_query(engine, input).await?;
    let new = prepare_batches(engine, &entry.name, &batches, &entry.schema)?;
    let count: u64 = new.iter().map(|b| b.num_rows() as u64).sum();

    {
        let _guard = catalog_lock();
        // The table may have changed while the query ran.
        let current = engine.state.catalog.get(&entry.name).filter(|t| {
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
            engine
                .state
                .memory
                .batches(&current.name)
                .map(|b| b.as_ref().clone())
                .unwrap_or_default()
        };
        all.extend(new);
        let rows = all.iter().map(|b| b.num_rows() as u64).sum();
        engine.state.memory.insert(current.name.clone(), all);
        engine.state.catalog.register(TableEntry {
            name: current.name.clone(),
            schema: Arc::clone(&current.schema),
            kind: TableKind::Memory,
            row_count: Some(rows),
        })?;
    }

    let counts: ArrayRef = Arc::new(UInt64Array::from(vec![count]));
    let column = match output_schema.fields().first().map(|f| f.data_type()) {
        Some(t) if t != &DataType::UInt64 => {
            cast_with_options(&counts, t, &CastOptions::default())?
        }
        _ => counts,
    };
    rows(engine, output_schema, vec![column])
}

fn kind_of(kind: &TableKind) -> &'static str {
    match kind {
        TableKind::Memory => "memory",
        TableKind::Parquet { .. } => "Parquet",
        TableKind::Csv { .. } => "CSV",
        TableKind::Tpch { .. } => "TPC-H",
    }
}

// ---------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------

fn create_view(engine: &Engine, v: CreateView) -> Result<DataFrame> {
    let name = object_name(&v.name)?;
    let plan = Arc::unwrap_or_clone(v.input);
    let schema = Arc::new(Schema::new(plan.schema().fields().clone()));
    check_unique_columns(&format!("CREATE VIEW {name}"), &schema)?;
    let _guard = catalog_lock();
    if !check_create(engine, &name, true, false, v.or_replace)? {
        return Ok(no_rows(engine));
    }
    engine.state.catalog.register_view(ViewEntry {
        name,
        plan,
        schema,
        definition: v.definition,
    })?;
    Ok(no_rows(engine))
}

fn drop_view(engine: &Engine, d: DropView) -> Result<DataFrame> {
    let name = object_name(&d.name)?;
    let _guard = catalog_lock();
    match resolve(engine, &name) {
        Some((existing, CatalogObject::View(_))) => {
            engine.state.catalog.deregister_view(&existing);
            Ok(no_rows(engine))
        }
        Some((existing, CatalogObject::Table(_))) => Err(Error::Plan(format!(
            "'{existing}' is a table, not a view; use DROP TABLE {existing}"
        ))),
        None if d.if_exists => Ok(no_rows(engine)),
        None => Err(Error::Plan(format!("view '{name}' not found"))),
    }
}

fn drop_table(engine: &Engine, d: DropTable) -> Result<DataFrame> {
    let name = object_name(&d.name)?;
    let _guard = catalog_lock();
    match resolve(engine, &name) {
        Some((existing, CatalogObject::Table(_))) => {
            engine.state.catalog.deregister(&existing);
            forget_table_data(engine, &existing);
            Ok(no_rows(engine))
        }
        Some((existing, CatalogObject::View(_))) => Err(Error::Plan(format!(
            "'{existing}' is a view, not a table; use DROP VIEW {existing}"
        ))),
        None if d.if_exists => Ok(no_rows(engine)),
        None => Err(Error::Plan(format!("table '{name}' not found"))),
    }
}

// ---------------------------------------------------------------------------
// CREATE EXTERNAL TABLE
// ---------------------------------------------------------------------------

fn create_external_table(engine: &Engine, e: CreateExternalTable) -> Result<DataFrame> {
    let name = object_name(&e.name)?;
    if !e.table_partition_cols.is_empty() {
        return not_supported("PARTITIONED BY in CREATE EXTERNAL TABLE");
    }
    if e.unbounded {
        return not_supported("UNBOUNDED external tables");
    }
    if !e.constraints.is_empty() {
        return not_supported("PRIMARY KEY and UNIQUE constraints");
    }
    if !e.column_defaults.is_empty() {
        return not_supported("column DEFAULT values");
    }
    let location = match e.locations.as_slice() {
        [one] => one.strip_prefix("file://").unwrap_or(one).to_string(),
        _ => return not_supported("several LOCATIONs; give one file or directory"),
    };
    let declared: Option<SchemaRef> = if e.schema.fields().is_empty() {
        None
    } else {
        Some(Arc::new(Schema::new(e.schema.fields().clone())))
    };
    let file_type = e.file_type.to_uppercase();
    let _guard = catalog_lock();
    if !check_create(engine, &name, false, e.if_not_exists, e.or_replace)? {
        return Ok(no_rows(engine));
    }
    match file_type.as_str() {
        "PARQUET" => {
            if let Some(key) = e.options.keys().min() {
                return Err(Error::NotSupported(format!(
                    "option '{key}' of Parquet tables"
                )));
            }
            if let Some(declared) = &declared {
                check_parquet_columns(&name, &location, declared)?;
            }
            forget_table_data(engine, &name);
            engine.register_parquet(&name, &location)?;
        }
        "CSV" => {
            let options = csv_options(&e.options, declared)?;
            forget_table_data(engine, &name);
            engine.register_csv(&name, &location, options)?;
        }
        other => {
            return Err(Error::NotSupported(format!(
                "STORED AS {other}; external tables are PARQUET or CSV"
            )))
        }
    }
    Ok(no_rows(engine))
}

/// CSV options from `OPTIONS (...)` (keys as datafusion-sql normalizes
/// them: lower-case, `format.` prefixed).
fn csv_options(options: &HashMap<String, String>, schema: Option<SchemaRef>) -> Result<CsvOptions> {
    let mut csv = CsvOptions {
        schema,
        ..CsvOptions::default()
    };
    let mut keys: Vec<&String> = options.keys().collect();
    keys.sort();
    for key in keys {
        let value = &options[key];
        match key.as_str() {
            "format.has_header" => {
                csv.has_header = match value.to_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "option '{key}' must be true or false, got '{value}'"
                        )))
                    }
                }
            }
            "format.delimiter" => {
                csv.delimiter = match value.as_bytes() {
                    [b] if b.is_ascii() => *b,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "option '{key}' must be one ASCII character, got '{value}'"
                        )))
                    }
                }
            }
            "format.compression"
                if value.is_empty() || value.eq_ignore_ascii_case("uncompressed") => {}
            _ => {
                return Err(Error::NotSupported(format!(
                    "option '{key}' of CSV tables (supported: format.has_header, format.delimiter)"
                )))
            }
        }
    }
    Ok(csv)
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// Declared columns of a Parquet table must be the file's columns, in
/// order, with the same types (any string type matches a string column).
fn check_parquet_columns(name: &str, location: &str, declared: &Schema) -> Result<()> {
    let files = list_files(location, "parquet")?;
    let file_schema = parquet_scan::parquet_file_schema(&files[0])?;
    let render = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let same = declared.fields().len() == file_schema.fields().len()
        && declared
            .fields()
            .iter()
            .zip(file_schema.fields())
            .all(|(d, f)| {
                d.name() == f.name()
                    && (d.data_type() == f.data_type()
                        || (is_string(d.data_type()) && is_string(f.data_type())))
            });
    if same {
        Ok(())
    } else {
        Err(Error::Plan(format!(
            "the columns declared for table '{name}' ({}) do not match the Parquet file {} ({}); \
             declare the file's columns or none",
            render(declared),
            files[0],
            render(&file_schema)
        )))
    }
}

// ---------------------------------------------------------------------------
// DESCRIBE, SHOW TABLES
// ---------------------------------------------------------------------------

/// One row per column: column_name, data_type, is_nullable (as DataFusion).
fn describe(engine: &Engine, d: &DescribeTable) -> Result<DataFrame> {
    let output = Arc::new(Schema::new(d.output_schema.fields().clone()));
    let fields = d.schema.fields();
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    let types: Vec<String> = fields.iter().map(|f| f.data_type().to_string()).collect();
    let nullable: Vec<&str> = fields
        .iter()
        .map(|f| if f.is_nullable() { "YES" } else { "NO" })
        .collect();
    rows(
        engine,
        output,
        vec![
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(types)),
            Arc::new(StringArray::from(nullable)),
        ],
    )
}

/// table_catalog, table_schema, table_name, table_type ('BASE TABLE' or
/// 'VIEW'), sorted by name: the columns of DataFusion's SHOW TABLES.
fn show_tables(engine: &Engine) -> Result<DataFrame> {
    let schema = Arc::new(Schema::new(
        ["table_catalog", "table_schema", "table_name", "table_type"]
            .map(|n| arrow::datatypes::Field::new(n, DataType::Utf8, false))
            .to_vec(),
    ));
    let catalog = &engine.state.catalog;
    let mut objects: Vec<(String, &str)> = catalog
        .names()
        .into_iter()
        .map(|n| (n, "BASE TABLE"))
        .chain(catalog.view_names().into_iter().map(|n| (n, "VIEW")))
        .collect();
    objects.sort();
    let n = objects.len();
    rows(
        engine,
        schema,
        vec![
            Arc::new(StringArray::from(vec!["ffq"; n])),
            Arc::new(StringArray::from(vec!["public"; n])),
            Arc::new(StringArray::from_iter_values(
                objects.iter().map(|(name, _)| name.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                objects.iter().map(|(_, t)| *t),
            )),
        ],
    )
}
