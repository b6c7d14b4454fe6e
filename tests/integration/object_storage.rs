//! Tables on object storage, against a real S3 server on loopback
//! ([`crate::common::s3`]): TPC-H SF 0.01 uploaded as Parquet gives the
//! results of the same files read locally, embedded and on two worker
//! processes; CSV objects too; and each failure (missing bucket or object,
//! bad credentials, unreachable endpoint, a URL outside a worker's
//! `--allow-path`) is a clear error naming the URL, never a hang.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ffq::cluster::process::ProcessCluster;
use ffq::dataflow::plan::TpchTable;
use ffq::tpch::{write_tpch, write_tpch_files, TpchFileFormat};
use ffq::{CsvOptions, Engine};

use crate::common::ffq_binary::FFQ;
use crate::common::s3::{process_temp_dir, s3_server, S3Server};
use crate::common::{check_parity, connect_engine, ffq_engine, normalize, render_rows, tpch_query};

const SF: f64 = 0.01;
const BUCKET: &str = "tpch";
/// TPC-H as Parquet, two files per large table.
const PARQUET: &str = "s3://tpch/sf001";
/// `orders` as two CSV files, `nation` as one.
const CSV: &str = "s3://tpch/csv";
/// Objects no worker of the cluster test may read.
const PRIVATE: &str = "s3://tpch/private";

/// The local copy of what was uploaded.
struct Uploaded {
    parquet: PathBuf,
    csv: PathBuf,
}

/// Generates the tables, uploads them, and points this process's
/// object-store options at the server; once per test process.
fn uploaded() -> &'static Uploaded {
    static UPLOADED: OnceLock<Uploaded> = OnceLock::new();
    UPLOADED.get_or_init(|| {
        // Tests run in a runtime of their own: upload from a thread that
        // may block on one of its own.
        std::thread::spawn(upload)
            .join()
            .unwrap_or_else(|_| panic!("uploading TPC-H to the S3 server failed"))
    })
}

fn upload() -> Uploaded {
    let server = s3_server();
    let dir = process_temp_dir("s3-upload");
    let parquet = dir.join("parquet");
    let csv = dir.join("csv");
    write_tpch(SF, &parquet, TpchFileFormat::Parquet, 2).unwrap();
    write_tpch_files(
        SF,
        &csv,
        TpchFileFormat::Csv,
        2,
        &[TpchTable::Orders, TpchTable::Nation],
    )
    .unwrap();
    server.create_bucket(BUCKET);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        server.upload_dir(&parquet, BUCKET, "sf001").await;
        server.upload_dir(&csv, BUCKET, "csv").await;
        server
            .upload_dir(&parquet.join("nation"), BUCKET, "private/nation")
            .await;
    });
    ffq::storage::set_options(server.options()).unwrap();
    Uploaded { parquet, csv }
}

/// Registers the eight TPC-H tables of `base` (a directory or a URL).
fn register_tpch(engine: &Engine, base: &str) {
    for table in TpchTable::ALL {
        let location = format!("{base}/{}/", table.name());
        engine
            .register_parquet(table.name(), &location)
            .unwrap_or_else(|e| panic!("registering {location}: {e}"));
    }
}

fn local(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

async fn assert_tpch_parity(local: &Engine, on_s3: &Engine) {
    let mut failures = Vec::new();
    for q in 1..=22 {
        if let Err(e) = check_parity(&format!("q{q}"), &tpch_query(q), local, on_s3).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The error of `sql` on `engine` (at registration or when run).
async fn query_error(engine: &Engine, sql: &str) -> String {
    let result = match engine.sql(sql).await {
        Ok(df) => df.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => panic!("{sql}: succeeded"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_on_s3_gives_the_results_of_local_files_embedded() {
    let data = uploaded();
    let on_disk = ffq_engine(2, 8192);
    register_tpch(&on_disk, &local(&data.parquet));
    let on_s3 = ffq_engine(2, 8192);
    register_tpch(&on_s3, PARQUET);
    assert_tpch_parity(&on_disk, &on_s3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_on_s3_gives_the_results_of_local_files_on_two_workers() {
    let data = uploaded();
    let mut builder = ProcessCluster::builder(FFQ)
        .workers(2)
        .slots(2)
        .allow_path(PARQUET);
    // The workers read with their own environment (this process uses
    // options instead).
    for (key, value) in s3_server().env() {
        builder = builder.env(key, value);
    }
    let cluster = builder.start().await.unwrap();
    let on_s3 = connect_engine(cluster.client_config().unwrap(), 4, 8192).await;
    register_tpch(&on_s3, PARQUET);
    let on_disk = ffq_engine(4, 8192);
    register_tpch(&on_disk, &local(&data.parquet));
    assert_tpch_parity(&on_disk, &on_s3).await;

    // An object outside the workers' URL root is refused at once.
    on_s3
        .register_parquet("private_nation", &format!("{PRIVATE}/nation/"))
        .unwrap();
    let start = Instant::now();
    let message = query_error(&on_s3, "SELECT count(*) FROM private_nation").await;
    assert!(
        message.contains(&format!("not allowed: {PRIVATE}/nation/"))
            && message.contains("is outside the worker's allowed paths (--allow-path)"),
        "{message}"
    );
    assert!(start.elapsed() < Duration::from_secs(10), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_objects_give_the_results_of_local_files() {
    let data = uploaded();
    let on_disk = ffq_engine(2, 8192);
    let on_s3 = ffq_engine(2, 8192);
    for (engine, base) in [(&on_disk, local(&data.csv)), (&on_s3, CSV.to_string())] {
        // A prefix of two objects, and one object.
        engine
            .register_csv("orders", &format!("{base}/orders/"), CsvOptions::default())
            .unwrap();
        engine
            .register_csv(
                "nation",
                &format!("{base}/nation/part-0.csv"),
                CsvOptions::default(),
            )
            .unwrap();
    }
    assert_eq!(on_disk.table_schema("orders"), on_s3.table_schema("orders"));
    for sql in [
        "SELECT * FROM orders ORDER BY o_orderkey",
        "SELECT o_orderstatus, count(*), sum(o_totalprice) FROM orders GROUP BY o_orderstatus ORDER BY 1",
        "SELECT n_name, count(*) FROM orders JOIN nation ON o_custkey % 25 = n_nationkey GROUP BY n_name ORDER BY 1",
    ] {
        check_parity(sql, sql, &on_disk, &on_s3).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_external_table_reads_s3_locations() {
    let data = uploaded();
    let on_disk = ffq_engine(2, 8192);
    let on_s3 = ffq_engine(2, 8192);
    let bases = [
        (
            &on_disk,
            format!("file://{}", local(&data.parquet)),
            format!("file://{}", local(&data.csv)),
        ),
        (&on_s3, PARQUET.to_string(), CSV.to_string()),
    ];
    for (engine, parquet, csv) in bases {
        for sql in [
            format!(
                "CREATE EXTERNAL TABLE lineitem STORED AS PARQUET LOCATION '{parquet}/lineitem/'"
            ),
            format!(
                "CREATE EXTERNAL TABLE orders STORED AS CSV LOCATION '{csv}/orders/' \
                 OPTIONS ('format.has_header' 'true')"
            ),
        ] {
            engine.sql(&sql).await.unwrap().collect().await.unwrap();
        }
    }
    let sql = "SELECT o_orderpriority, count(*), sum(l_quantity) FROM orders \
               JOIN lineitem ON l_orderkey = o_orderkey \
               WHERE l_shipdate >= DATE '1995-01-01' GROUP BY 1 ORDER BY 1";
    check_parity(sql, sql, &on_disk, &on_s3).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_or_object_is_an_error_naming_the_url() {
    uploaded();
    let engine = ffq_engine(2, 8192);
    for (url, expected) in [
        ("s3://no-such-bucket/tpch/", "no such bucket"),
        ("s3://no-such-bucket/t.parquet", "no such bucket"),
        ("s3://tpch/sf001/no-such-table/", "no such object or prefix"),
        ("s3://tpch/sf001/missing.parquet", "no such object"),
        (
            "s3://tpch/csv/orders/",
            "no .parquet objects under this prefix",
        ),
    ] {
        let err = engine.register_parquet("t", url).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{url}: {expected}")),
            "{url}: {err}"
        );
    }
    let err = engine
        .register_csv("t", "s3://tpch/csv/missing.csv", CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("s3://tpch/csv/missing.csv: no such object"),
        "{err}"
    );
}

/// Runs `ffq ARGS` with `env` added to its environment.
fn ffq_with_env(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(FFQ);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run ffq")
}

/// The server's environment with `key` replaced by `value`.
fn env_with(server: &S3Server, key: &str, value: &str) -> Vec<(&'static str, String)> {
    server
        .env()
        .into_iter()
        .map(|(k, v)| (k, if k == key { value.to_string() } else { v }))
        .collect()
}

#[test]
fn the_cli_reads_s3_tables_with_environment_or_config_file_credentials() {
    uploaded();
    let server = s3_server();
    let sql = "SELECT count(*) AS n FROM lineitem, orders WHERE l_orderkey = o_orderkey";
    let tables = [
        "--table",
        "lineitem=s3://tpch/sf001/lineitem/",
        "--table",
        "orders=s3://tpch/csv/orders/",
    ];
    let expected = ffq_with_env(&["sql", "--format", "csv", "--tpch", "0.01", sql], &[]);
    assert!(expected.status.success());
    let expected = String::from_utf8_lossy(&expected.stdout).to_string();

    let mut args = vec!["sql", "--format", "csv"];
    args.extend(tables);
    args.push(sql);
    let out = ffq_with_env(&args, &server.env());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    // The same from --object-store-config, with no AWS variable set.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("s3.conf");
    let text: String = server
        .options()
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    std::fs::write(&config, format!("# the test server\n{text}")).unwrap();
    let mut args = vec![
        "sql",
        "--format",
        "csv",
        "--object-store-config",
        config.to_str().unwrap(),
    ];
    args.extend(tables);
    args.push(sql);
    let out = ffq_with_env(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[test]
fn bad_credentials_are_access_denied_naming_the_url() {
    uploaded();
    let server = s3_server();
    let url = "s3://tpch/sf001/nation/";
    for env in [
        env_with(server, "AWS_SECRET_ACCESS_KEY", "wrong-secret"),
        env_with(server, "AWS_ACCESS_KEY_ID", "unknown-key"),
    ] {
        let table = format!("t={url}");
        let out = ffq_with_env(&["sql", "--table", &table, "SELECT 1"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains(&format!("table t: {url}: access denied")),
            "{stderr}"
        );
    }
}

#[test]
fn an_unreachable_endpoint_fails_soon_naming_the_url() {
    uploaded();
    let server = s3_server();
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let url = "s3://tpch/sf001/lineitem/";
    let env = env_with(server, "AWS_ENDPOINT_URL", &endpoint);
    let start = Instant::now();
    let table = format!("t={url}");
    let out = ffq_with_env(&["sql", "--table", &table, "SELECT 1"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("table t: {url}: cannot reach the endpoint"))
            && stderr.contains(&format!("127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "failed only after {:?}: {stderr}",
        start.elapsed()
    );
}

/// `COPY` to an object and to a prefix, and `INSERT` into a table on a
/// prefix, embedded and on 2 in-process workers (which write the
/// objects); the objects read back as what was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_and_insert_write_objects() {
    uploaded();
    s3_server().create_bucket("written");
    let cluster = ffq::LocalCluster::builder()
        .allowed_paths(vec![
            PathBuf::from("/"),
            PathBuf::from("s3://written/cluster"),
        ])
        .start()
        .await
        .unwrap();
    let embedded = ffq_engine(3, 8192);
    let clustered = connect_engine(cluster.client_config(), 3, 8192).await;
    for (run, engine) in [("embedded", &embedded), ("cluster", &clustered)] {
        engine.register_tpch(SF).unwrap();
        let base = format!("s3://written/{run}");
        let grouped = "SELECT o_custkey, count(*) AS n FROM orders GROUP BY o_custkey";
        for sql in [
            format!("COPY ({grouped}) TO '{base}/grouped/' STORED AS PARQUET"),
            format!("COPY nation TO '{base}/nation.csv'"),
            format!("CREATE EXTERNAL TABLE g STORED AS PARQUET LOCATION '{base}/grouped/'"),
            format!("CREATE EXTERNAL TABLE n STORED AS CSV LOCATION '{base}/nation.csv'"),
            format!(
                "CREATE EXTERNAL TABLE ins (k BIGINT, name VARCHAR) STORED AS PARQUET \
                 LOCATION '{base}/ins/'"
            ),
            "INSERT INTO ins SELECT n_nationkey, n_name FROM nation WHERE n_nationkey < 10".into(),
            "INSERT INTO ins VALUES (100, 'new')".into(),
        ] {
            engine
                .sql(&sql)
                .await
                .unwrap()
                .collect()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        for (written, source) in [
            (
                "SELECT o_custkey, n FROM g ORDER BY o_custkey".to_string(),
                format!("{grouped} ORDER BY o_custkey"),
            ),
            (
                "SELECT * FROM n ORDER BY n_nationkey".into(),
                "SELECT * FROM nation ORDER BY n_nationkey".into(),
            ),
            (
                "SELECT k, name FROM ins ORDER BY k".into(),
                "SELECT n_nationkey AS k, n_name AS name FROM nation WHERE n_nationkey < 10 \
                 UNION ALL SELECT 100, 'new' ORDER BY k"
                    .into(),
            ),
        ] {
            let rows = |sql: String| async move {
                let batches = engine.sql(&sql).await.unwrap().collect().await.unwrap();
                render_rows(&normalize(&batches).unwrap())
            };
            assert_eq!(
                rows(written.clone()).await,
                rows(source).await,
                "{run}: {written}"
            );
        }
    }
}
