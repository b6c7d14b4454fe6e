//! The distributed runtime against embedded mode: same schema, same rows.
//! Clusters here are [`LocalCluster`]s: a coordinator and workers in this
//! process, each with its own zenoh session over loopback TCP.

mod common;

use std::time::Instant;

use ffq::{ClusterConfig, Engine, EngineConfig, LocalCluster};

use common::{compare_rows, normalize, output_order, tpch_query};

const SF: f64 = 0.01;

async fn cluster_engine(cluster: &LocalCluster, partitions: usize) -> Engine {
    let engine = Engine::connect_with_config(
        cluster.client_config(),
        EngineConfig {
            target_partitions: partitions,
            batch_size: 8192,
        },
    )
    .await
    .expect("connect");
    engine.register_tpch(SF).unwrap();
    engine
}

fn embedded_engine(partitions: usize) -> Engine {
    let engine = Engine::with_config(EngineConfig {
        target_partitions: partitions,
        batch_size: 8192,
    });
    engine.register_tpch(SF).unwrap();
    engine
}

/// Runs every statement of `sql` on both engines and compares the result
/// of the last one: schema (names, types, nullability) and rows.
async fn check_parity(label: &str, sql: &str, embedded: &Engine, cluster: &Engine) -> Result<(), String> {
    let statements = Engine::split_sql(sql).map_err(|e| format!("{label}: {e}"))?;
    let mut out = None;
    for (i, s) in statements.iter().enumerate() {
        let last = i + 1 == statements.len();
        let e = embedded.sql(s).await.map_err(|e| format!("{label}: embedded: {e}"))?;
        let c = cluster.sql(s).await.map_err(|e| format!("{label}: cluster: {e}"))?;
        let order = e.logical_plan().map(output_order);
        let (es, cs) = (e.schema(), c.schema());
        let eb = e.collect().await.map_err(|e| format!("{label}: embedded: {e}"))?;
        let cb = c.collect().await.map_err(|e| format!("{label}: cluster: {e}"))?;
        if last {
            out = Some((es, cs, eb, cb, order));
        }
    }
    let (es, cs, eb, cb, order) = out.ok_or_else(|| format!("{label}: no statement"))?;
    if es != cs {
        return Err(format!("{label}: schemas differ:\nembedded {es:?}\ncluster  {cs:?}"));
    }
    for b in &cb {
        if b.schema().fields() != cs.fields() {
            return Err(format!("{label}: a cluster batch has schema {:?}", b.schema()));
        }
    }
    let order = order.unwrap_or(common::OutputOrder::Unordered);
    compare_rows(label, &normalize(&eb)?, &normalize(&cb)?, &order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smoke_q1_q3_on_two_workers() {
    let cluster = LocalCluster::start(2).await.unwrap();
    let embedded = embedded_engine(4);
    let engine = cluster_engine(&cluster, 4).await;
    for q in [1, 3, 6] {
        let t = Instant::now();
        check_parity(&format!("q{q}"), &tpch_query(q), &embedded, &engine)
            .await
            .unwrap();
        eprintln!("q{q}: {:?}", t.elapsed());
    }
    let _ = ClusterConfig::new("tcp/127.0.0.1:1");
}
