//! What a client may make a worker read: `ffq worker` processes read only
//! files under their `--allow-path` roots (none by default). A plan naming
//! any other file (directly, through `..` or through a symlink) fails at
//! once with a "not allowed" error naming it; TPC-H and memory tables need
//! no root.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use ffq::cluster::process::ProcessCluster;
use ffq::{CsvOptions, Engine};

use crate::common::ffq_binary::{ffq_process_cluster, FFQ};
use crate::common::{check_parity, connect_engine, ffq_engine, tpch_cluster_engine, tpch_engine};

/// Runs `sql` and returns its error, checking that it came at once (a
/// deterministic failure, not retried) and names the refusal.
async fn refused(engine: &Engine, sql: &str, path: &Path) -> String {
    let start = Instant::now();
    let result = match engine.sql(sql).await {
        Ok(df) => df.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    let message = match result {
        Ok(()) => panic!("{sql}: read {} outside the allowed paths", path.display()),
        Err(e) => e.to_string(),
    };
    let expected = format!(
        "not allowed: {} is outside the worker's allowed paths (--allow-path)",
        path.display()
    );
    assert!(message.contains(&expected), "{sql}: {message}");
    assert!(!message.contains("attempts"), "retried: {message}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{sql}: refused only after {:?}",
        start.elapsed()
    );
    message
}

fn register_csv(engines: &[&Engine], name: &str, path: &Path) {
    for e in engines {
        e.register_csv(name, path.to_str().unwrap(), CsvOptions::default())
            .unwrap_or_else(|err| panic!("register {name} = {}: {err}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_read_only_files_under_their_allowed_paths() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    let other = base.path().join("other");
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(root.join("t.csv"), "a,b\n1,x\n2,y\n3,z\n").unwrap();
    std::fs::write(root.join("dir").join("p1.csv"), "a,b\n4,u\n").unwrap();
    std::fs::write(root.join("dir").join("p2.csv"), "a,b\n5,v\n").unwrap();
    let outside = other.join("outside.csv");
    std::fs::write(&outside, "a,b\n9,secret\n").unwrap();

    let cluster = ProcessCluster::builder(FFQ)
        .workers(2)
        .slots(2)
        .allow_path(&root)
        .start()
        .await
        .unwrap();
    let engine = connect_engine(cluster.client_config().unwrap(), 2, 8192).await;
    let embedded = ffq_engine(2, 8192);

    register_csv(&[&engine, &embedded], "t", &root.join("t.csv"));
    register_csv(&[&engine, &embedded], "d", &root.join("dir"));
    for sql in [
        "SELECT a, b FROM t ORDER BY a",
        "SELECT a, b FROM d ORDER BY a",
        "SELECT count(*), sum(t.a) FROM t JOIN d ON t.a < d.a",
    ] {
        check_parity(sql, sql, &embedded, &engine).await.unwrap();
    }

    register_csv(&[&engine], "outside", &outside);
    refused(&engine, "SELECT * FROM outside", &outside).await;
    // A refused file anywhere in the plan fails the query.
    refused(
        &engine,
        "SELECT count(*) FROM t JOIN outside ON t.a = outside.a",
        &outside,
    )
    .await;

    let passwd = Path::new("/etc/passwd");
    if passwd.is_file() {
        let options = CsvOptions {
            has_header: false,
            delimiter: b':',
            ..CsvOptions::default()
        };
        engine
            .register_csv("passwd", "/etc/passwd", options)
            .unwrap();
        refused(&engine, "SELECT * FROM passwd", passwd).await;
    }

    let dot_dot = root.join("..").join("other").join("outside.csv");
    register_csv(&[&engine], "dot_dot", &dot_dot);
    refused(&engine, "SELECT * FROM dot_dot", &dot_dot).await;

    #[cfg(unix)]
    {
        let link = root.join("link.csv");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        register_csv(&[&engine], "link", &link);
        refused(&engine, "SELECT * FROM link", &link).await;
        let dir_link = root.join("dir_link");
        std::os::unix::fs::symlink(&other, &dir_link).unwrap();
        register_csv(&[&engine], "dir_link", &dir_link);
        refused(
            &engine,
            "SELECT * FROM dir_link",
            &dir_link.join("outside.csv"),
        )
        .await;
    }

    // The refusals were not charged to the workers.
    let status = engine.cluster().unwrap().status().await.unwrap();
    assert!(
        status
            .workers
            .iter()
            .all(|w| w.alive && w.excluded_ms.is_none()),
        "{:?}",
        status.workers
    );
    check_parity(
        "after refusals",
        "SELECT a FROM t ORDER BY a",
        &embedded,
        &engine,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_without_allowed_paths_read_generated_and_memory_tables_only() {
    let cluster = ffq_process_cluster(2, 2, 10_000).await;
    let engine = tpch_cluster_engine(cluster.client_config().unwrap(), 0.01, 2).await;
    let embedded = tpch_engine(0.01, 2);
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let batch =
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..100))]).unwrap();
    for e in [&engine, &embedded] {
        e.register_batches("numbers", vec![batch.clone()]).unwrap();
    }
    let sql = "SELECT n_regionkey, count(*), sum(n) FROM nation JOIN numbers ON n = n_nationkey \
               GROUP BY n_regionkey ORDER BY n_regionkey";
    check_parity("tpch join memory", sql, &embedded, &engine)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "a\n1\n").unwrap();
    register_csv(&[&engine], "t", &csv);
    refused(&engine, "SELECT * FROM t", &csv).await;
}
