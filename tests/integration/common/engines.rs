//! Engines over the same tables: FFQ engines (embedded, with a given
//! parallelism and batch size) and DataFusion sessions (the oracle).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use ffq::{ClusterConfig, Engine, EngineConfig};
use ffq_dataflow::operators::tpch_scan::tpch_schema;

use super::data::tpch_batches;

/// A DataFusion session with target_partitions 2 (the oracle).
pub fn oracle_session() -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2))
}

/// A DataFusion session with the eight TPC-H tables at `sf` as memory
/// tables, holding the same rows FFQ generates with `register_tpch(sf)`.
pub fn oracle_ctx(sf: f64) -> SessionContext {
    let ctx = oracle_session();
    for (table, batches) in tpch_batches(sf).iter() {
        register_oracle_table(&ctx, table.name(), tpch_schema(*table), batches.clone());
    }
    ctx
}

/// Registers `batches` as memory table `name` in a DataFusion session.
pub fn register_oracle_table(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) {
    let table =
        MemTable::try_new(schema, vec![batches]).unwrap_or_else(|e| panic!("MemTable {name}: {e}"));
    ctx.register_table(name, Arc::new(table))
        .unwrap_or_else(|e| panic!("registering {name} in DataFusion: {e}"));
}

/// An FFQ engine with the given parallelism and batch size.
pub fn ffq_engine(target_partitions: usize, batch_size: usize) -> Engine {
    Engine::with_config(EngineConfig {
        target_partitions,
        batch_size,
        memory_limit: None,
        spill_dir: None,
    })
}

/// An FFQ engine with the TPC-H tables at `sf`.
pub fn tpch_engine(sf: f64, target_partitions: usize) -> Engine {
    let engine = ffq_engine(target_partitions, 8192);
    engine
        .register_tpch(sf)
        .unwrap_or_else(|e| panic!("register_tpch({sf}): {e}"));
    engine
}

/// Registers the same batches as table `name` in FFQ and in DataFusion.
pub fn register_both(
    engine: &Engine,
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) {
    engine
        .register_memory(name, Arc::clone(&schema), batches.clone())
        .unwrap_or_else(|e| panic!("registering {name} in FFQ: {e}"));
    register_oracle_table(ctx, name, schema, batches);
}

/// An FFQ engine connected to the cluster of `config`.
pub async fn connect_engine(
    config: ClusterConfig,
    target_partitions: usize,
    batch_size: usize,
) -> Engine {
    Engine::connect_with_config(
        config,
        EngineConfig {
            target_partitions,
            batch_size,
            memory_limit: None,
            spill_dir: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("connecting to the cluster: {e}"))
}

/// An FFQ engine connected to the cluster of `config`, with the TPC-H
/// tables at `sf` (batches of 8192 rows).
pub async fn tpch_cluster_engine(
    config: ClusterConfig,
    sf: f64,
    target_partitions: usize,
) -> Engine {
    let engine = connect_engine(config, target_partitions, 8192).await;
    engine
        .register_tpch(sf)
        .unwrap_or_else(|e| panic!("register_tpch({sf}): {e}"));
    engine
}
