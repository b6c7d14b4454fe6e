//! A session: what planning and running a statement need, in one place.
//!
//! [`SessionState`] holds the catalog, the settings, the function library,
//! the memory tables, the custom operators and the execution backend.
//! [`Engine`](crate::Engine) is a handle on one; `DataFrame`, EXPLAIN and
//! the statements work on it directly, so none of them depends on the
//! engine.

use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_expr::LogicalPlan;
use ffq_dataflow::custom::{CustomOperator, OperatorRegistry};
use ffq_dataflow::execution::{memory_pool, MemoryPool};
use ffq_dataflow::functions::FunctionRegistry;
use ffq_dataflow::operators::scan::json as json_scan;
use ffq_dataflow::operators::tpch_scan::tpch_schema;
use ffq_dataflow::operators::{csv_scan, parquet_scan};
use ffq_dataflow::plan::TpchTable;
use ffq_dataflow::runner::ExecConfig;
use ffq_dataflow::tables::MemoryTableMap;
use ffq_dataflow::PhysicalPlan;
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};

use crate::catalog::{list_files, Catalog, CsvOptions, TableEntry, TableKind};
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::execution::{ExecutionBackend, QueryResources};
use crate::planner::context::PlannerContext;
use crate::planner::physical::PhysicalPlanner;
use crate::planner::recursive_cte::resolve_recursive_queries;
use crate::planner::sql;
use crate::planner::subquery::{resolve_scalar_subqueries, SubqueryRunner};

/// The state behind an engine (see the module docs).
pub(crate) struct SessionState {
    /// The settings queries start with now (`SET` changes some of them).
    config: RwLock<EngineConfig>,
    /// The settings the engine was built with (what `RESET` restores).
    initial_config: EngineConfig,
    pub catalog: Catalog,
    pub functions: Arc<FunctionRegistry>,
    pub memory: Arc<MemoryTableMap>,
    /// Custom operator factories (`Engine::register_operator`).
    operators: RwLock<Arc<OperatorRegistry>>,
    /// Where queries run; chosen when the engine is built.
    pub backend: Arc<dyn ExecutionBackend>,
    /// The engine's memory pool (`EngineConfig::memory_limit`), shared by
    /// all its queries run in this process.
    memory_pool: Arc<dyn MemoryPool>,
}

impl SessionState {
    pub fn new(config: EngineConfig, backend: Arc<dyn ExecutionBackend>) -> Self {
        // Spill directories of engines that died before removing theirs.
        ffq_dataflow::execution::remove_stale_spill_dirs(&spill_dir(&config));
        let memory_pool = memory_pool(config.memory_limit);
        SessionState {
            memory_pool: Arc::clone(&memory_pool),
            config: RwLock::new(config.clone().normalized()),
            initial_config: config.normalized(),
            catalog: Catalog::default(),
            functions: Arc::new(FunctionRegistry::with_defaults()),
            memory: Arc::new(MemoryTableMap::with_memory_pool(Arc::clone(&memory_pool))),
            operators: Default::default(),
            backend,
        }
    }

    /// The settings a statement starting now is planned and run with.
    pub fn config(&self) -> EngineConfig {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The settings the engine was built with.
    pub fn initial_config(&self) -> &EngineConfig {
        &self.initial_config
    }

    /// Changes the settings of statements that start from now on.
    pub fn update_config(&self, change: impl FnOnce(&mut EngineConfig)) {
        let mut config = match self.config.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut config);
    }

    /// The custom operators registered now.
    pub fn operators(&self) -> Arc<OperatorRegistry> {
        self.operators
            .read()
            .map(|o| Arc::clone(&o))
            .unwrap_or_default()
    }

    pub fn register_operator(&self, name: &str, factory: Arc<dyn CustomOperator>) -> Result<()> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::InvalidArgument(format!(
                "operator name {name:?}: use letters, digits, '_' and '-'"
            )));
        }
        let mut ops = self
            .operators
            .write()
            .map_err(|_| Error::InvalidArgument("operator registry poisoned".into()))?;
        let mut next = (**ops).clone();
        next.register(name, factory);
        *ops = Arc::new(next);
        Ok(())
    }

    /// What a query starting now runs with.
    pub fn resources(&self) -> QueryResources {
        let config = self.config();
        QueryResources {
            memory: Arc::clone(&self.memory),
            functions: Arc::clone(&self.functions),
            operators: self.operators(),
            config: ExecConfig {
                batch_size: config.batch_size,
                memory_pool: Arc::clone(&self.memory_pool),
                spill_dir: spill_dir(&config),
                ..ExecConfig::default()
            },
        }
    }

    // -----------------------------------------------------------------------
    // Planning
    // -----------------------------------------------------------------------

    /// The catalog and functions as the SQL planner sees them.
    pub fn planner_context(&self) -> PlannerContext<'_> {
        PlannerContext::new(&self.catalog, &self.functions)
    }

    pub fn physical_planner(&self) -> PhysicalPlanner<'_> {
        PhysicalPlanner {
            registry: &self.functions,
            target_partitions: self.config().target_partitions,
        }
    }

    /// Optimizes a query plan, runs its recursive CTEs and uncorrelated
    /// scalar subqueries (each must return at most one row) and lowers it
    /// to a physical plan.
    pub async fn plan_query(&self, plan: LogicalPlan) -> Result<(LogicalPlan, PhysicalPlan)> {
        let logical = sql::optimize(plan, &self.functions, true)?;
        let logical = resolve_recursive_queries(self, logical).await?;
        let logical = resolve_scalar_subqueries(self, logical).await?;
        let physical = self.physical_planner().plan(&logical)?;
        Ok((logical, physical))
    }

    /// Runs `physical` to completion on the backend.
    pub async fn collect(&self, physical: &PhysicalPlan) -> Result<Vec<RecordBatch>> {
        let stream = self.backend.execute(physical, &self.resources())?;
        Ok(stream.try_collect().await?)
    }

    // -----------------------------------------------------------------------
    // Tables
    // -----------------------------------------------------------------------

    /// Registers table `name` with `schema` and the given batches (possibly
    /// none).
    pub fn register_memory(
        &self,
        name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        for (i, b) in batches.iter().enumerate() {
            if b.schema().fields() != schema.fields() {
                return Err(Error::InvalidArgument(format!(
                    "table {name}: batch {i} has schema {:?}, expected {:?}",
                    b.schema(),
                    schema
                )));
            }
        }
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        // Held first: a table the memory limit refuses is not registered.
        self.memory.insert(name, batches)?;
        let registered = self.catalog.register(TableEntry {
            name: name.to_string(),
            schema,
            kind: TableKind::Memory,
            row_count: Some(rows),
        });
        if registered.is_err() {
            self.memory.remove(name);
        }
        registered
    }

    /// Registers a Parquet file, or a directory of `.parquet` files, as
    /// table `name`.
    pub fn register_parquet(&self, name: &str, path: &str) -> Result<()> {
        let files = list_files(path, "parquet")?;
        let schema = parquet_scan::parquet_file_schema(&files[0])?;
        let mut rows = 0u64;
        for f in &files {
            let (file_schema, file_rows) = parquet_scan::parquet_file_info(f)?;
            for field in schema.fields() {
                let Ok(here) = file_schema.field_with_name(field.name()) else {
                    return Err(Error::file(
                        f.clone(),
                        format!("column {} of table {name} is missing", field.name()),
                    ));
                };
                // The scan reads every file with the table's types: a
                // different type would be read as NULLs or fail late.
                if here.data_type() != field.data_type() {
                    return Err(Error::file(
                        f.clone(),
                        format!(
                            "column {} of table {name} is {} here but {} in {}",
                            field.name(),
                            here.data_type(),
                            field.data_type(),
                            files[0]
                        ),
                    ));
                }
            }
            rows += file_rows;
        }
        self.catalog.register(TableEntry {
            name: name.to_string(),
            schema,
            kind: TableKind::Parquet {
                files,
                location: path.to_string(),
            },
            row_count: Some(rows),
        })
    }

    /// Registers a CSV file, or a directory of `.csv` files, as table `name`.
    pub fn register_csv(&self, name: &str, path: &str, options: CsvOptions) -> Result<()> {
        let files = list_files(path, "csv")?;
        let schema = match &options.schema {
            Some(s) => Arc::clone(s),
            None => infer_csv_files(name, &files, &options)?,
        };
        self.catalog.register(TableEntry {
            name: name.to_string(),
            schema,
            kind: TableKind::Csv {
                files,
                options,
                location: path.to_string(),
            },
            row_count: None,
        })
    }

    /// Registers a newline-delimited JSON file, or a directory of `.json`
    /// files, as table `name`, with `schema` or the schema inferred from
    /// the files' first records.
    pub fn register_json(&self, name: &str, path: &str, schema: Option<SchemaRef>) -> Result<()> {
        let files = list_files(path, "json")?;
        let schema = match schema {
            Some(s) => s,
            None => json_scan::json_infer_files(&files)?,
        };
        self.catalog.register(TableEntry {
            name: name.to_string(),
            schema,
            kind: TableKind::Json {
                files,
                location: path.to_string(),
            },
            row_count: None,
        })
    }

    /// Registers the eight TPC-H tables at `scale_factor`.
    pub fn register_tpch(&self, scale_factor: f64) -> Result<()> {
        if !(scale_factor > 0.0 && scale_factor.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "TPC-H scale factor must be positive, got {scale_factor}"
            )));
        }
        for table in TpchTable::ALL {
            self.catalog.register(TableEntry {
                name: table.name().to_string(),
                schema: tpch_schema(table),
                kind: TableKind::Tpch {
                    table,
                    scale_factor,
                },
                row_count: Some(crate::tpch::row_count(table, scale_factor)),
            })?;
        }
        Ok(())
    }

    /// Removes table or view `name`; returns whether it existed.
    pub fn deregister(&self, name: &str) -> bool {
        self.memory.remove(name);
        let table = self.catalog.deregister(name).is_some();
        table || self.catalog.deregister_view(name).is_some()
    }
}

/// The schema of a CSV table over `files`: each file's inferred schema,
/// merged where a type only widens without loss (a narrower integer into a
/// wider one of the same sign, `Float32` into `Float64`, an all-empty
/// column into any type); any other difference names both files, the
/// column and both types.
fn infer_csv_files(name: &str, files: &[String], options: &CsvOptions) -> Result<SchemaRef> {
    let first = csv_scan::csv_infer_schema(&files[0], options.has_header, options.delimiter)?;
    let mut fields: Vec<Field> = first.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut from: Vec<&String> = vec![&files[0]; fields.len()];
    for f in &files[1..] {
        let schema = csv_scan::csv_infer_schema(f, options.has_header, options.delimiter)?;
        if schema.fields().len() != fields.len() {
            return Err(Error::file(
                f.clone(),
                format!(
                    "table {name}: {} columns here but {} in {}",
                    schema.fields().len(),
                    fields.len(),
                    files[0]
                ),
            ));
        }
        for ((field, here), source) in fields.iter_mut().zip(schema.fields()).zip(&mut from) {
            let (a, b) = (field.data_type(), here.data_type());
            if a == b || widens_losslessly(b, a) {
                continue;
            }
            if widens_losslessly(a, b) {
                *field = field.clone().with_data_type(b.clone());
                *source = f;
                continue;
            }
            return Err(Error::file(
                f.clone(),
                format!(
                    "column {} of table {name} is {b} here but {a} in {source}",
                    field.name()
                ),
            ));
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Whether every value of type `from` is a value of type `to`.
fn widens_losslessly(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let rank = |t: &DataType| match t {
        Int8 | UInt8 => Some(1),
        Int16 | UInt16 => Some(2),
        Int32 | UInt32 => Some(3),
        Int64 | UInt64 => Some(4),
        _ => None,
    };
    match (from, to) {
        (Null, _) | (Float32, Float64) => true,
        _ => match (rank(from), rank(to)) {
            (Some(a), Some(b)) => a < b && from.is_signed_integer() == to.is_signed_integer(),
            _ => false,
        },
    }
}

impl SubqueryRunner for SessionState {
    fn run<'a>(&'a self, plan: &'a LogicalPlan) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        async move {
            let physical = self.physical_planner().plan(plan)?;
            self.collect(&physical).await
        }
        .boxed()
    }
}

/// Where the engine's queries spill (`EngineConfig::spill_dir`).
fn spill_dir(config: &EngineConfig) -> std::path::PathBuf {
    config.spill_dir.clone().unwrap_or_else(std::env::temp_dir)
}
