//! The embedded engine: a catalog of tables, a function library and the
//! runtime settings; plans SQL into [`DataFrame`]s.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion_expr::LogicalPlan;
use ffq_cluster::{ClusterClient, ClusterConfig};
use ffq_dataflow::custom::{CustomOperator, OperatorRegistry};
use ffq_dataflow::functions::FunctionRegistry;
use ffq_dataflow::operators::tpch_scan::tpch_schema;
use ffq_dataflow::operators::{csv_scan, parquet_scan};
use ffq_dataflow::plan::TpchTable;
use ffq_dataflow::runner::ExecConfig;
use ffq_dataflow::tables::MemoryTableMap;
use ffq_transport::ChannelExchange;

use crate::catalog::{list_files, Catalog, CsvOptions, TableEntry, TableKind};
use crate::dataframe::{explain_batch, DataFrame};
use crate::error::{Error, Result};
use crate::planner::context::PlannerContext;
use crate::planner::physical::PhysicalPlanner;
use crate::planner::{sql, subquery};
use ffq_dataflow::PhysicalPlan;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Partitions per operator (parallelism); default: number of cores.
    pub target_partitions: usize,
    /// Target rows per batch; default 8192.
    pub batch_size: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            batch_size: 8192,
        }
    }
}

pub(crate) struct EngineState {
    pub config: EngineConfig,
    pub catalog: Catalog,
    pub registry: Arc<FunctionRegistry>,
    pub memory: Arc<MemoryTableMap>,
    pub exchange: Arc<ChannelExchange>,
    /// Set when the engine runs queries on a cluster.
    pub cluster: Option<Arc<ClusterClient>>,
    /// Custom operator factories (`Engine::register_operator`).
    pub operators: std::sync::RwLock<Arc<OperatorRegistry>>,
}

impl EngineState {
    /// The custom operators registered now.
    pub fn operators(&self) -> Arc<OperatorRegistry> {
        self.operators
            .read()
            .map(|o| Arc::clone(&o))
            .unwrap_or_default()
    }

    pub fn exec_config(&self) -> ExecConfig {
        ExecConfig {
            batch_size: self.config.batch_size,
            ..ExecConfig::default()
        }
    }
}

/// An embedded FFQ engine. Cheap to clone; clones share tables.
#[derive(Clone)]
pub struct Engine {
    pub(crate) state: Arc<EngineState>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// An embedded engine with default settings.
    pub fn new() -> Self {
        Engine::with_config(EngineConfig::default())
    }

    pub fn with_config(config: EngineConfig) -> Self {
        Self::with_backend(config, None)
    }

    fn with_backend(config: EngineConfig, cluster: Option<Arc<ClusterClient>>) -> Self {
        let config = EngineConfig {
            target_partitions: config.target_partitions.max(1),
            batch_size: config.batch_size.max(1),
        };
        Engine {
            state: Arc::new(EngineState {
                config,
                catalog: Catalog::default(),
                registry: Arc::new(FunctionRegistry::with_defaults()),
                memory: Arc::new(MemoryTableMap::default()),
                exchange: Arc::new(ChannelExchange::default()),
                cluster,
                operators: Default::default(),
            }),
        }
    }

    /// An engine that runs its queries on the cluster whose coordinator
    /// `cluster` names, with the same API and results as an embedded one.
    /// Tables are registered with this engine as usual: Parquet and CSV
    /// paths must be readable by every worker, TPC-H tables are generated
    /// by the workers, memory tables are shipped to them.
    pub async fn connect(cluster: ClusterConfig) -> Result<Self> {
        Self::connect_with_config(cluster, EngineConfig::default()).await
    }

    /// [`Engine::connect`] with engine settings (`target_partitions` is
    /// then the parallelism of each stage across the cluster).
    pub async fn connect_with_config(cluster: ClusterConfig, config: EngineConfig) -> Result<Self> {
        let client = ClusterClient::connect(&cluster).await?;
        Ok(Self::with_backend(config, Some(client)))
    }

    /// Registers a custom operator factory under `name`; plans use it
    /// through [`DataFrame::with_operator`]. On a cluster, the workers that
    /// run it must register the same factory (`WorkerConfig::operators`):
    /// its tasks go only to workers that advertise it.
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
            .state
            .operators
            .write()
            .map_err(|_| Error::InvalidArgument("operator registry poisoned".into()))?;
        let mut next = (**ops).clone();
        next.register(name, factory);
        *ops = Arc::new(next);
        Ok(())
    }

    /// The cluster client, when this engine runs on a cluster.
    pub fn cluster(&self) -> Option<&Arc<ClusterClient>> {
        self.state.cluster.as_ref()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.state.config
    }

    /// Registers record batches as table `name` (all batches must have the
    /// same schema). Replaces a table of the same name.
    pub fn register_batches(&self, name: &str, batches: Vec<RecordBatch>) -> Result<()> {
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => {
                return Err(Error::InvalidArgument(format!(
                    "table {name}: no batches given; use register_empty to register a schema"
                )))
            }
        };
        self.register_memory(name, schema, batches)
    }

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
        self.state.catalog.register(TableEntry {
            name: name.to_string(),
            schema,
            kind: TableKind::Memory,
            row_count: Some(rows),
        })?;
        self.state.memory.insert(name, batches);
        Ok(())
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
                if file_schema.field_with_name(field.name()).is_err() {
                    return Err(Error::file(
                        f.clone(),
                        format!("column {} of table {name} is missing", field.name()),
                    ));
                }
            }
            rows += file_rows;
        }
        self.state.catalog.register(TableEntry {
            name: name.to_string(),
            schema,
            kind: TableKind::Parquet { files },
            row_count: Some(rows),
        })
    }

    /// Registers a CSV file, or a directory of `.csv` files, as table `name`.
    pub fn register_csv(&self, name: &str, path: &str, options: CsvOptions) -> Result<()> {
        let files = list_files(path, "csv")?;
        let schema = match &options.schema {
            Some(s) => Arc::clone(s),
            None => csv_scan::csv_infer_schema(&files[0], options.has_header, options.delimiter)?,
        };
        self.state.catalog.register(TableEntry {
            name: name.to_string(),
            schema,
            kind: TableKind::Csv { files, options },
            row_count: None,
        })
    }

    /// Registers the eight TPC-H tables at `scale_factor`, generated
    /// in-process by partition when scanned (never materialized).
    pub fn register_tpch(&self, scale_factor: f64) -> Result<()> {
        if !(scale_factor > 0.0 && scale_factor.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "TPC-H scale factor must be positive, got {scale_factor}"
            )));
        }
        for table in TpchTable::ALL {
            self.state.catalog.register(TableEntry {
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
        self.state.memory.remove(name);
        let table = self.state.catalog.deregister(name).is_some();
        table || self.state.catalog.deregister_view(name).is_some()
    }

    /// Names of the registered tables, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.state.catalog.names()
    }

    /// The schema of table `name`.
    pub fn table_schema(&self, name: &str) -> Option<SchemaRef> {
        self.state.catalog.get(name).map(|e| Arc::clone(&e.schema))
    }

    /// Plans one SQL statement.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        if let Some((format, query)) = sql::explain_dag_format(sql) {
            return self.explain_dag(format, query).await;
        }
        let mut statements = sql::parse(sql)?;
        if statements.len() != 1 {
            return Err(Error::Sql(format!(
                "expected one statement, found {}; run statements one at a time \
                 (Engine::split_sql splits a script)",
                statements.len()
            )));
        }
        let mut statement = statements.remove(0);
        if let Some(df) = crate::statements::intercept(self, &mut statement)? {
            return Ok(df);
        }
        let ctx = PlannerContext::new(&self.state.catalog, &self.state.registry);
        let plan = sql::plan_statement(&ctx, statement)?;
        match plan {
            LogicalPlan::Explain(explain) => {
                let logical =
                    sql::optimize(explain.plan.as_ref().clone(), &self.state.registry, false)?;
                let physical = self.physical_planner().plan(&logical)?;
                let (schema, batch) = explain_batch(&logical, &physical)?;
                Ok(DataFrame::rows(
                    Arc::clone(&self.state),
                    schema,
                    vec![batch],
                ))
            }
            LogicalPlan::Analyze(analyze) => {
                let (_, physical) = self.plan_query(analyze.input.as_ref().clone()).await?;
                let (schema, batch) = match &self.state.cluster {
                    Some(cluster) => {
                        crate::analyze::explain_analyze_cluster(&self.state, cluster, &physical)
                            .await?
                    }
                    None => crate::analyze::explain_analyze(&self.state, &physical).await?,
                };
                Ok(DataFrame::rows(
                    Arc::clone(&self.state),
                    schema,
                    vec![batch],
                ))
            }
            LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Copy(_) => crate::statements::execute(self, plan).await,
            plan => {
                let (logical, physical) = self.plan_query(plan).await?;
                Ok(DataFrame::query(Arc::clone(&self.state), logical, physical))
            }
        }
    }

    /// `EXPLAIN FORMAT dot|mermaid`: the stage DAG of `query` as one row
    /// (`plan_type` "stages", `plan` the drawing). On a cluster, the
    /// stages are the ones the cluster runs.
    async fn explain_dag(
        &self,
        format: crate::stages::DagFormat,
        query: &str,
    ) -> Result<DataFrame> {
        let df = Box::pin(self.sql(query)).await?;
        let physical = df.physical_plan().ok_or_else(|| {
            Error::InvalidArgument("EXPLAIN FORMAT dot|mermaid needs a query".into())
        })?;
        let drawing = self.draw_stages(physical, format);
        let (schema, batch) = crate::analyze::analyze_batch(vec![("stages".into(), drawing)]);
        Ok(DataFrame::rows(
            Arc::clone(&self.state),
            schema,
            vec![batch],
        ))
    }

    /// The stage DAG of `physical` as this engine runs it.
    pub fn draw_stages(&self, physical: &PhysicalPlan, format: crate::stages::DagFormat) -> String {
        if self.state.cluster.is_some() {
            crate::stages::draw_stages(&ffq_dataflow::stage::distribute(physical.clone()), format)
        } else {
            crate::stages::draw_stages(physical, format)
        }
    }

    /// Splits a script of `;`-separated statements into single statements.
    pub fn split_sql(sql: &str) -> Result<Vec<String>> {
        sql::split_statements(sql)
    }

    /// Optimizes a query plan, runs its uncorrelated scalar subqueries (each
    /// must return at most one row) and lowers it to a physical plan.
    pub(crate) async fn plan_query(
        &self,
        plan: LogicalPlan,
    ) -> Result<(LogicalPlan, PhysicalPlan)> {
        let logical = sql::optimize(plan, &self.state.registry, true)?;
        let logical = subquery::resolve_scalar_subqueries(self, logical).await?;
        let physical = self.physical_planner().plan(&logical)?;
        Ok((logical, physical))
    }

    pub(crate) fn physical_planner(&self) -> PhysicalPlanner<'_> {
        PhysicalPlanner {
            registry: &self.state.registry,
            target_partitions: self.state.config.target_partitions,
        }
    }
}
