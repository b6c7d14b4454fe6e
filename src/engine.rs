//! The public handle: an engine is a session (catalog, functions,
//! settings) with an execution backend, embedded or on a cluster; it plans
//! SQL into [`DataFrame`]s.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion_expr::LogicalPlan;
use ffq_cluster::{ClusterClient, ClusterConfig};
use ffq_dataflow::custom::CustomOperator;
use ffq_dataflow::PhysicalPlan;

use crate::catalog::CsvOptions;
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::execution::{ClusterBackend, EmbeddedBackend, ExecutionBackend};
use crate::planner::sql;
use crate::session::SessionState;
use crate::stages::{self, DagFormat};
use crate::{explain, statements};

pub use crate::config::EngineConfig;

/// An FFQ engine. Cheap to clone; clones share tables.
#[derive(Clone)]
pub struct Engine {
    session: Arc<SessionState>,
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

    /// An embedded engine: queries run in this process.
    pub fn with_config(config: EngineConfig) -> Self {
        Self::with_backend(config, Arc::new(EmbeddedBackend::default()))
    }

    /// The one place an engine's execution backend is chosen.
    fn with_backend(config: EngineConfig, backend: Arc<dyn ExecutionBackend>) -> Self {
        Engine {
            session: Arc::new(SessionState::new(config, backend)),
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
        let backend = ClusterBackend::connect(&cluster).await?;
        Ok(Self::with_backend(config, Arc::new(backend)))
    }

    /// Registers a custom operator factory under `name`; plans use it
    /// through [`DataFrame::with_operator`]. On a cluster, the workers that
    /// run it must register the same factory (`WorkerConfig::operators`):
    /// its tasks go only to workers that advertise it.
    pub fn register_operator(&self, name: &str, factory: Arc<dyn CustomOperator>) -> Result<()> {
        self.session.register_operator(name, factory)
    }

    /// The cluster client, when this engine runs on a cluster.
    pub fn cluster(&self) -> Option<&Arc<ClusterClient>> {
        self.session.backend.cluster()
    }

    /// The settings statements start with now: the engine's
    /// configuration, as `SET` changed it.
    pub fn config(&self) -> EngineConfig {
        self.session.config()
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
        self.session.register_memory(name, schema, batches)
    }

    /// Registers a Parquet file, or a directory of `.parquet` files, as
    /// table `name`. `path` may be an object-store URL instead: an object,
    /// or a prefix of `.parquet` objects (`s3://bucket/prefix/`, `gs://`,
    /// `az://`, `http(s)://`; `file://` is a local path), read with the
    /// credentials of the environment and [`crate::storage::set_options`].
    /// On a cluster each worker reads the URL with its own credentials.
    pub fn register_parquet(&self, name: &str, path: &str) -> Result<()> {
        self.session.register_parquet(name, path)
    }

    /// Registers a CSV file, or a directory of `.csv` files, as table
    /// `name`; `path` may be an object-store URL as for
    /// [`Engine::register_parquet`].
    pub fn register_csv(&self, name: &str, path: &str, options: CsvOptions) -> Result<()> {
        self.session.register_csv(name, path, options)
    }

    /// Registers a newline-delimited JSON file (one object per line), or a
    /// directory of `.json` files, as table `name`, with the schema
    /// inferred from the first records; `path` may be an object-store URL
    /// as for [`Engine::register_parquet`].
    pub fn register_json(&self, name: &str, path: &str) -> Result<()> {
        self.session.register_json(name, path, None)
    }

    /// Registers the eight TPC-H tables at `scale_factor`, generated
    /// in-process by partition when scanned (never materialized).
    pub fn register_tpch(&self, scale_factor: f64) -> Result<()> {
        self.session.register_tpch(scale_factor)
    }

    /// Removes table or view `name`; returns whether it existed.
    pub fn deregister(&self, name: &str) -> bool {
        self.session.deregister(name)
    }

    /// Names of the registered tables, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.session.catalog.names()
    }

    /// The schema of table `name`.
    pub fn table_schema(&self, name: &str) -> Option<SchemaRef> {
        self.session
            .catalog
            .get(name)
            .map(|e| Arc::clone(&e.schema))
    }

    /// Plans one SQL statement.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        if let Some((format, query)) = sql::explain_dag_format(sql) {
            let query = Box::pin(self.sql(query)).await?;
            return explain::explain_dag(&self.session, &query, format);
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
        if let Some(df) = statements::intercept(&self.session, &mut statement)? {
            return Ok(df);
        }
        let repeated = crate::planner::duplicate_names::alias_repeats(&mut statement);
        let plan = sql::plan_statement(&self.session.planner_context(), statement)?;
        match plan {
            LogicalPlan::Explain(e) => explain::explain(&self.session, &e),
            LogicalPlan::Analyze(a) => explain::explain_analyze(&self.session, &a).await,
            LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Copy(_) => statements::execute(&self.session, plan).await,
            plan => {
                let (logical, physical) = self.session.plan_query(plan).await?;
                Ok(DataFrame::query(
                    Arc::clone(&self.session),
                    logical,
                    repeated.restore(physical),
                ))
            }
        }
    }

    /// The stage DAG of `physical` as this engine runs it.
    pub fn draw_stages(&self, physical: &PhysicalPlan, format: DagFormat) -> String {
        stages::draw(&self.session.backend.stage_plan(physical), format)
    }

    /// Splits a script of `;`-separated statements into single statements.
    pub fn split_sql(sql: &str) -> Result<Vec<String>> {
        sql::split_statements(sql)
    }
}
