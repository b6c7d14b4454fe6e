//! The tables an engine knows: their schemas, where their rows come from,
//! and the statistics the planner uses; and how the SQL planner sees them
//! ([`FfqTableSource`], [`FfqViewSource`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use arrow::datatypes::SchemaRef;
use datafusion_common::{Result as DFResult, TableReference};
use datafusion_expr::{Expr, LogicalPlan, TableProviderFilterPushDown, TableSource, TableType};
use ffq_dataflow::plan::TpchTable;
use ffq_dataflow::storage;

use crate::error::{Error, Result};
use crate::partitioned::PartitionedTable;

/// Options of a CSV table.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Whether the first line holds column names (default true).
    pub has_header: bool,
    /// Field delimiter (default `,`).
    pub delimiter: u8,
    /// The schema; inferred from the first records of the first file when
    /// `None`.
    pub schema: Option<SchemaRef>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            has_header: true,
            delimiter: b',',
            schema: None,
        }
    }
}

/// Where a table's rows come from.
#[derive(Debug, Clone)]
pub enum TableKind {
    Memory,
    Parquet {
        files: Vec<String>,
        /// The file or directory the table was registered with (where
        /// `INSERT` adds files).
        location: String,
    },
    Csv {
        files: Vec<String>,
        options: CsvOptions,
        /// As for Parquet.
        location: String,
    },
    /// Files in Hive-style partition directories (see
    /// [`crate::partitioned`]).
    Partitioned(Arc<PartitionedTable>),
    /// Newline-delimited JSON files.
    Json {
        files: Vec<String>,
        /// As for Parquet.
        location: String,
    },
    Tpch {
        table: TpchTable,
        scale_factor: f64,
    },
}

/// A registered table.
#[derive(Debug, Clone)]
pub struct TableEntry {
    pub name: String,
    pub schema: SchemaRef,
    pub kind: TableKind,
    /// Row count when known (memory, TPC-H, Parquet metadata).
    pub row_count: Option<u64>,
}

/// A view: a named query, inlined by the SQL planner where it is used.
#[derive(Debug)]
pub struct ViewEntry {
    pub name: String,
    /// The view's query as planned when the view was created (not
    /// optimized); its output columns carry the view's column names.
    pub plan: LogicalPlan,
    /// The view's output schema (unqualified).
    pub schema: SchemaRef,
    /// The `CREATE VIEW` text, when created by SQL.
    pub definition: Option<String>,
}

/// Column `DEFAULT` values of a table, by column name.
pub type ColumnDefaults = BTreeMap<String, Expr>;

/// A table as the SQL planner sees it. Parquet tables accept pushed-down
/// filters as *inexact* (used to skip row groups; rows are still filtered).
pub struct FfqTableSource {
    pub entry: Arc<TableEntry>,
    /// What `INSERT` puts in columns it is given no value for (NULL when
    /// absent).
    pub defaults: Option<Arc<ColumnDefaults>>,
}

impl TableSource for FfqTableSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.entry.schema)
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.as_ref()?.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // Partitioned tables take filters to choose directories; rows are
        // still filtered above the scan.
        let kind = match self.entry.kind {
            TableKind::Parquet { .. } | TableKind::Partitioned(_) => {
                TableProviderFilterPushDown::Inexact
            }
            _ => TableProviderFilterPushDown::Unsupported,
        };
        Ok(vec![kind; filters.len()])
    }
}

/// A view as the SQL planner sees it: its plan is inlined where the view
/// is used (`LogicalPlanBuilder::scan` replaces the scan of a source that
/// has a logical plan by that plan under the view's name).
pub struct FfqViewSource {
    pub view: Arc<ViewEntry>,
}

impl TableSource for FfqViewSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.view.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        Some(Cow::Borrowed(&self.view.plan))
    }
}

/// A named object of the catalog.
#[derive(Debug, Clone)]
pub enum CatalogObject {
    Table(Arc<TableEntry>),
    View(Arc<ViewEntry>),
}

#[derive(Debug, Default)]
struct Objects {
    tables: BTreeMap<String, Arc<TableEntry>>,
    views: BTreeMap<String, Arc<ViewEntry>>,
    /// Schemas made by `CREATE SCHEMA` (the default schema is not listed).
    schemas: BTreeSet<String>,
    /// Column defaults of tables made by `CREATE TABLE`, by table name.
    defaults: BTreeMap<String, Arc<ColumnDefaults>>,
}

/// The schema of objects whose name has none; it always exists.
pub const DEFAULT_SCHEMA: &str = "public";

/// The one catalog ("database") of an engine, as `SHOW TABLES` names it.
pub const CATALOG_NAME: &str = "ffq";

/// The catalog name of object `name` of `schema`: `name` itself in the
/// default schema, else `"schema"."name"`. Names cannot contain `"`, so
/// the two forms never meet: a table named `a.b` (quoted in SQL) and table
/// `b` of schema `a` are different objects.
pub fn catalog_name(schema: &str, name: &str) -> String {
    if schema == DEFAULT_SCHEMA {
        name.to_string()
    } else {
        format!("\"{schema}\".\"{name}\"")
    }
}

/// The schema and name of a catalog name (see [`catalog_name`]).
pub fn split_catalog_name(name: &str) -> (&str, &str) {
    name.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .and_then(|rest| rest.split_once("\".\""))
        .unwrap_or((DEFAULT_SCHEMA, name))
}

/// A catalog name as SQL writes it: `name` or `schema.name` (names with
/// dots in double quotes).
pub fn display_name(catalog_name: &str) -> String {
    let (schema, name) = split_catalog_name(catalog_name);
    let quoted = |n: &str| {
        if n.contains('.') {
            format!("\"{n}\"")
        } else {
            n.to_string()
        }
    };
    if schema == DEFAULT_SCHEMA {
        quoted(name)
    } else {
        format!("{}.{}", quoted(schema), quoted(name))
    }
}

/// The catalog name a SQL table reference (`t`, `s.t`, `ffq.s.t`, as
/// datafusion-sql normalized it) stands for.
pub fn reference_name(reference: &TableReference) -> Result<String> {
    if let TableReference::Full { catalog, .. } = reference {
        if catalog.as_ref() != CATALOG_NAME {
            return Err(Error::Plan(format!(
                "catalog '{catalog}' not found in {reference} (the engine has one catalog, \
                 {CATALOG_NAME})"
            )));
        }
    }
    let schema = reference.schema().unwrap_or(DEFAULT_SCHEMA);
    Ok(catalog_name(schema, reference.table()))
}

/// Tables and views by name (one namespace), in schemas. Names are
/// case-sensitive as registered; unquoted SQL identifiers are lower-cased
/// before lookup, so register lower-case names to use them unquoted.
/// Objects of a schema other than the default one are registered under
/// their [`catalog_name`].
#[derive(Debug, Default)]
pub struct Catalog {
    objects: RwLock<Objects>,
}

impl Catalog {
    /// Registers a table, replacing a table or view of the same name.
    pub fn register(&self, entry: TableEntry) -> Result<()> {
        let mut objects = self.write()?;
        validate_table_name(&objects, &entry.name)?;
        objects.views.remove(&entry.name);
        // Defaults stay with the same table (an INSERT registers it again
        // with its new row count), not with a table replacing it.
        let same = objects
            .tables
            .get(&entry.name)
            .is_some_and(|t| same_source(t, &entry));
        if !same {
            objects.defaults.remove(&entry.name);
        }
        objects.tables.insert(entry.name.clone(), Arc::new(entry));
        Ok(())
    }

    /// Sets the column defaults of table `name` (none when empty).
    pub fn set_defaults(&self, name: &str, defaults: ColumnDefaults) -> Result<()> {
        let mut objects = self.write()?;
        if defaults.is_empty() {
            objects.defaults.remove(name);
        } else {
            objects
                .defaults
                .insert(name.to_string(), Arc::new(defaults));
        }
        Ok(())
    }

    /// The column defaults of table `name`, if it has any.
    pub fn defaults(&self, name: &str) -> Option<Arc<ColumnDefaults>> {
        self.objects.read().ok()?.defaults.get(name).cloned()
    }

    /// Registers a view, replacing a table or view of the same name.
    pub fn register_view(&self, entry: ViewEntry) -> Result<()> {
        let mut objects = self.write()?;
        validate_table_name(&objects, &entry.name)?;
        objects.tables.remove(&entry.name);
        objects.defaults.remove(&entry.name);
        objects.views.insert(entry.name.clone(), Arc::new(entry));
        Ok(())
    }

    /// Removes table `name` (views are left alone).
    pub fn deregister(&self, name: &str) -> Option<Arc<TableEntry>> {
        let mut objects = self.objects.write().ok()?;
        objects.defaults.remove(name);
        objects.tables.remove(name)
    }

    /// Removes view `name` (tables are left alone).
    pub fn deregister_view(&self, name: &str) -> Option<Arc<ViewEntry>> {
        self.objects.write().ok()?.views.remove(name)
    }

    /// Table `name` (exact, else lower-cased).
    pub fn get(&self, name: &str) -> Option<Arc<TableEntry>> {
        let objects = self.objects.read().ok()?;
        objects
            .tables
            .get(name)
            .or_else(|| objects.tables.get(&name.to_lowercase()))
            .cloned()
    }

    /// View `name` (exact, else lower-cased).
    pub fn get_view(&self, name: &str) -> Option<Arc<ViewEntry>> {
        let objects = self.objects.read().ok()?;
        objects
            .views
            .get(name)
            .or_else(|| objects.views.get(&name.to_lowercase()))
            .cloned()
    }

    /// The table or view named exactly `name`.
    pub fn lookup_exact(&self, name: &str) -> Option<CatalogObject> {
        let objects = self.objects.read().ok()?;
        if let Some(t) = objects.tables.get(name) {
            return Some(CatalogObject::Table(Arc::clone(t)));
        }
        objects
            .views
            .get(name)
            .map(|v| CatalogObject::View(Arc::clone(v)))
    }

    /// Whether schema `name` exists.
    pub fn has_schema(&self, name: &str) -> bool {
        name == DEFAULT_SCHEMA || self.objects.read().is_ok_and(|o| o.schemas.contains(name))
    }

    /// Creates schema `name`; `false` when it exists already.
    pub fn create_schema(&self, name: &str) -> Result<bool> {
        validate_part("schema", name)?;
        if name == DEFAULT_SCHEMA {
            return Ok(false);
        }
        Ok(self.write()?.schemas.insert(name.to_string()))
    }

    /// Drops schema `name`: `Ok(None)` when there is no such schema; with
    /// `cascade` its tables and views go too (their names are returned),
    /// without it a schema holding objects is an error.
    pub fn drop_schema(&self, name: &str, cascade: bool) -> Result<Option<Vec<String>>> {
        if name == DEFAULT_SCHEMA {
            return Err(Error::Plan(format!(
                "schema '{DEFAULT_SCHEMA}' is the default schema and cannot be dropped"
            )));
        }
        let mut objects = self.write()?;
        if !objects.schemas.contains(name) {
            return Ok(None);
        }
        let in_schema = |n: &String| split_catalog_name(n).0 == name;
        let tables: Vec<String> = objects
            .tables
            .keys()
            .filter(|n| in_schema(n))
            .cloned()
            .collect();
        let views: Vec<String> = objects
            .views
            .keys()
            .filter(|n| in_schema(n))
            .cloned()
            .collect();
        let empty = tables.is_empty() && views.is_empty();
        if !cascade && !empty {
            let mut names: Vec<&str> = tables
                .iter()
                .chain(&views)
                .map(|n| split_catalog_name(n).1)
                .collect();
            names.sort();
            return Err(Error::Plan(format!(
                "schema '{name}' is not empty (it holds {}); drop them first or use DROP SCHEMA \
                 {name} CASCADE",
                names.join(", ")
            )));
        }
        for t in &tables {
            objects.tables.remove(t);
            objects.defaults.remove(t);
        }
        for v in &views {
            objects.views.remove(v);
        }
        objects.schemas.remove(name);
        Ok(Some(tables))
    }

    /// Names of the tables, sorted.
    pub fn names(&self) -> Vec<String> {
        self.objects
            .read()
            .map(|o| o.tables.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Names of the views, sorted.
    pub fn view_names(&self) -> Vec<String> {
        self.objects
            .read()
            .map(|o| o.views.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Why `view` cannot be used any more, if so: a table it reads was
    /// dropped, or replaced by one with other columns or another source,
    /// since the view was created (its plan refers to the table as it was).
    pub fn stale_view(&self, view: &ViewEntry) -> Option<String> {
        use datafusion_common::tree_node::TreeNodeRecursion;
        let mut problem = None;
        let _ = view.plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let entry = scan
                    .source
                    .as_ref()
                    .downcast_ref::<FfqTableSource>()
                    .map(|s| Arc::clone(&s.entry));
                if let Some(entry) = entry {
                    let current = self.get(&entry.name);
                    if !current.is_some_and(|c| same_source(&c, &entry)) {
                        problem = Some(format!(
                            "view '{}' is out of date: table '{}' was dropped or changed \
                             after the view was created; create the view again",
                            view.name, entry.name
                        ));
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        problem
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Objects>> {
        self.objects
            .write()
            .map_err(|_| Error::InvalidArgument("catalog lock poisoned".into()))
    }
}

/// Whether two entries of a table read the same rows the same way (the
/// row count may differ: INSERT changes it).
fn same_source(a: &TableEntry, b: &TableEntry) -> bool {
    let kinds = match (&a.kind, &b.kind) {
        (TableKind::Memory, TableKind::Memory) => true,
        (TableKind::Partitioned(x), TableKind::Partitioned(y)) => {
            x.location == y.location && x.columns == y.columns && x.dirs == y.dirs
        }
        (TableKind::Parquet { files: x, .. }, TableKind::Parquet { files: y, .. })
        | (TableKind::Json { files: x, .. }, TableKind::Json { files: y, .. }) => x == y,
        (
            TableKind::Csv {
                files: x,
                options: o,
                ..
            },
            TableKind::Csv {
                files: y,
                options: p,
                ..
            },
        ) => x == y && o.has_header == p.has_header && o.delimiter == p.delimiter,
        (
            TableKind::Tpch {
                table: x,
                scale_factor: f,
            },
            TableKind::Tpch {
                table: y,
                scale_factor: g,
            },
        ) => x == y && f == g,
        _ => false,
    };
    kinds && a.name == b.name && a.schema.fields() == b.schema.fields()
}

/// Checks a catalog name: its parts are valid and its schema exists.
fn validate_table_name(objects: &Objects, name: &str) -> Result<()> {
    let (schema, table) = split_catalog_name(name);
    validate_part("table", table)?;
    if schema != DEFAULT_SCHEMA && !objects.schemas.contains(schema) {
        return Err(Error::Plan(format!(
            "schema '{schema}' not found (create it with CREATE SCHEMA {schema})"
        )));
    }
    Ok(())
}

/// A table or schema name: non-empty, without spaces or double quotes
/// (dots are fine: `"a.b"` is one name).
fn validate_part(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.contains('"') || name.chars().any(char::is_whitespace) {
        return Err(Error::InvalidArgument(format!(
            "{what} name {name:?} must be non-empty without spaces or double quotes"
        )));
    }
    Ok(())
}

/// The files of a table path: the file itself, or the files with
/// extension `ext` in a directory (sorted, hidden files skipped). An
/// object-store URL (`s3://bucket/prefix/`, ...) lists the same way:
/// the object itself, or the `.ext` objects directly under the prefix;
/// a `file://` URL is its local path.
pub fn list_files(path: &str, ext: &str) -> Result<Vec<String>> {
    if storage::is_url(path) {
        return Ok(storage::list_objects(path, ext)?);
    }
    let path = path.strip_prefix("file://").unwrap_or(path);
    let p = Path::new(path);
    let meta = std::fs::metadata(p).map_err(|e| Error::file(path, describe_io(&e)))?;
    if meta.is_file() {
        return Ok(vec![path.to_string()]);
    }
    if !meta.is_dir() {
        return Err(Error::file(
            path,
            format!(
                "is {}, not a regular file or a directory",
                describe_file_type(&meta.file_type())
            ),
        ));
    }
    let mut files = Vec::new();
    let entries = std::fs::read_dir(p).map_err(|e| Error::file(path, describe_io(&e)))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::file(path, describe_io(&e)))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let fp = entry.path();
        if fp.is_file() && fp.extension().map(|e| e == ext).unwrap_or(false) {
            files.push(fp.to_string_lossy().to_string());
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::file(path, format!("directory has no .{ext} files")));
    }
    Ok(files)
}

/// What kind of special file `t` is, for messages.
fn describe_file_type(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    let _ = t;
    "a special file"
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}
