//! Writing files: `COPY (query) TO` / `COPY table TO` a file or a
//! directory in Parquet, CSV and JSON, and `INSERT INTO` file-backed
//! tables (new part files next to the old ones). Each scenario runs
//! embedded and on an in-process cluster of 2 workers (where the workers
//! write the files) and reads the files back through FFQ, comparing with
//! the same query over the source table. Process workers may only write
//! under their `--allow-path` roots.

use std::path::Path;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::util::pretty::pretty_format_batches;
use ffq::cluster::process::ProcessCluster;
use ffq::{Engine, LocalCluster};

use crate::common::ffq_binary::{ffq_cli, FFQ};
use crate::common::{assert_contains, connect_engine, query_error, tpch_engine};

/// Runs `sql` and returns its batches.
async fn run(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    let df = engine
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The rows of `sql` as a printed table.
async fn table(engine: &Engine, sql: &str) -> String {
    pretty_format_batches(&run(engine, sql).await)
        .unwrap()
        .to_string()
}

/// The single `count` a COPY or INSERT answers.
async fn count(engine: &Engine, sql: &str) -> u64 {
    let batches = run(engine, sql).await;
    let [batch] = batches.as_slice() else {
        panic!("{sql}: expected one batch, got {}", batches.len());
    };
    assert_eq!(batch.schema().field(0).name(), "count", "{sql}");
    let counts = batch
        .column(0)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap_or_else(|| panic!("{sql}: count is {}", batch.column(0).data_type()));
    assert_eq!(counts.len(), 1, "{sql}");
    counts.value(0)
}

/// The visible files of `dir` with extension `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(&format!(".{ext}")))
        .collect();
    names.sort();
    names
}

/// COPY of a query and of a table, to one file in each format and to a
/// directory; the files read back as the rows that were written.
async fn copies(engine: &Engine, dir: &Path) {
    let d = dir.display();
    let nation = "SELECT n_nationkey, n_name, n_regionkey FROM nation ORDER BY n_nationkey";
    let expected = table(engine, nation).await;
    for (ext, stored) in [("parquet", "PARQUET"), ("csv", "CSV"), ("json", "JSON")] {
        let sql = format!(
            "COPY (SELECT n_nationkey, n_name, n_regionkey FROM nation) TO '{d}/nation.{ext}'"
        );
        assert_eq!(count(engine, &sql).await, 25, "{sql}");
        let name = format!("nation_{ext}");
        run(
            engine,
            &format!("CREATE EXTERNAL TABLE {name} STORED AS {stored} LOCATION '{d}/nation.{ext}'"),
        )
        .await;
        // JSON inference orders the columns by name (as in DataFusion).
        let back =
            format!("SELECT n_nationkey, n_name, n_regionkey FROM {name} ORDER BY n_nationkey");
        assert_eq!(table(engine, &back).await, expected, "{ext}");
    }

    // COPY table, format from STORED AS with options.
    let sql = format!(
        "COPY nation TO '{d}/nation_pipe.txt' STORED AS CSV OPTIONS (format.delimiter '|', format.has_header false)"
    );
    assert_eq!(count(engine, &sql).await, 25);
    let text = std::fs::read_to_string(dir.join("nation_pipe.txt")).unwrap();
    assert_eq!(text.lines().count(), 25, "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("0|ALGERIA|0|")),
        "{text}"
    );

    // A directory: one file per partition (3, after the aggregate's hash
    // exchange), all rows.
    let grouped = "SELECT o_custkey, count(*) AS n, sum(o_totalprice) AS total FROM orders GROUP BY o_custkey";
    let sql = format!("COPY ({grouped}) TO '{d}/orders/' STORED AS PARQUET");
    let written = count(engine, &sql).await;
    assert_eq!(
        table(engine, &format!("SELECT CAST({written} AS BIGINT) AS n")).await,
        table(engine, &format!("SELECT count(*) AS n FROM ({grouped})")).await
    );
    let parts = files(&dir.join("orders"), "parquet");
    assert_eq!(parts.len(), 3, "{parts:?}");
    run(
        engine,
        &format!("CREATE EXTERNAL TABLE orders_copy STORED AS PARQUET LOCATION '{d}/orders/'"),
    )
    .await;
    let agg = "SELECT count(*) AS c, sum(o_custkey) AS k, sum(n) AS n, sum(total) AS t FROM";
    assert_eq!(
        table(engine, &format!("{agg} orders_copy")).await,
        table(engine, &format!("{agg} ({grouped})")).await
    );

    // An ordered query keeps its order in one file.
    let sql = format!(
        "COPY (SELECT o_orderkey FROM orders ORDER BY o_orderkey DESC LIMIT 5) TO '{d}/top.csv'"
    );
    assert_eq!(count(engine, &sql).await, 5);
    let text = std::fs::read_to_string(dir.join("top.csv")).unwrap();
    assert_eq!(
        text, "o_orderkey\n60000\n59975\n59974\n59973\n59972\n",
        "{text}"
    );

    // An empty result still writes its one file.
    let sql = format!("COPY (SELECT n_name FROM nation WHERE n_nationkey < 0) TO '{d}/none.csv'");
    assert_eq!(count(engine, &sql).await, 0);
    assert_eq!(
        std::fs::read_to_string(dir.join("none.csv")).unwrap(),
        "n_name\n"
    );
}

/// INSERT into Parquet and CSV tables over a directory: each statement
/// adds files, never touching the ones there.
async fn inserts(engine: &Engine, dir: &Path) {
    let d = dir.display();
    for stored in ["PARQUET", "CSV", "JSON"] {
        let ext = stored.to_lowercase();
        let tdir = dir.join(format!("ins_{ext}"));
        std::fs::create_dir_all(&tdir).unwrap();
        let t = format!("ins_{ext}");
        run(
            engine,
            &format!(
                "CREATE EXTERNAL TABLE {t} (a BIGINT, b VARCHAR) STORED AS {stored} LOCATION '{d}/ins_{ext}/'"
            ),
        )
        .await;
        assert_eq!(
            table(engine, &format!("SELECT count(*) AS n FROM {t}")).await,
            table(engine, "SELECT 0 AS n").await
        );
        let sql = format!("INSERT INTO {t} VALUES (1, 'x'), (2, 'y')");
        assert_eq!(count(engine, &sql).await, 2, "{sql}");
        let first = files(&tdir, &ext);
        assert_eq!(first.len(), 1, "{first:?}");
        let first_bytes = std::fs::read(tdir.join(&first[0])).unwrap();

        let sql = format!("INSERT INTO {t} SELECT n_nationkey, n_name FROM nation");
        assert_eq!(count(engine, &sql).await, 25, "{sql}");
        let now = files(&tdir, &ext);
        assert!(now.len() > 1 && now.contains(&first[0]), "{now:?}");
        assert_eq!(std::fs::read(tdir.join(&first[0])).unwrap(), first_bytes);

        assert_eq!(
            table(
                engine,
                &format!("SELECT count(*) AS n, sum(a) AS s, max(b) AS m FROM {t}")
            )
            .await,
            table(engine, "SELECT 27 AS n, 303 AS s, 'y' AS m").await,
            "{t}"
        );
    }
}

async fn errors(engine: &Engine, dir: &Path) {
    let d = dir.display();
    let e = query_error(engine, &format!("COPY (SELECT 1 AS a) TO '{d}/x.txt'")).await;
    assert_contains(
        &e,
        &["not supported", "'txt'", "x.txt", "PARQUET, CSV or JSON"],
    );
    let e = query_error(
        engine,
        &format!("COPY (SELECT 1 AS a) TO '{d}/x.avro' STORED AS AVRO"),
    )
    .await;
    assert_contains(&e, &["not supported", "'avro'"]);
    let e = query_error(engine, &format!("COPY (SELECT 1 AS a) TO '{d}/somedir/'")).await;
    assert_contains(&e, &["STORED AS"]);
    let e = query_error(
        engine,
        &format!("COPY (SELECT 1 AS a) TO '{d}/x.parquet' OPTIONS (format.has_header true)"),
    )
    .await;
    assert_contains(&e, &["not supported", "format.has_header", "Parquet"]);
    let e = query_error(
        engine,
        &format!(
            "COPY (SELECT x.n_name, y.n_name FROM nation x JOIN nation y ON x.n_nationkey = y.n_regionkey) TO '{d}/dup.parquet'"
        ),
    )
    .await;
    assert_contains(&e, &["duplicate column name 'n_name'"]);

    // INSERT into a table of one file; into a table whose directory is gone.
    let e = query_error(
        engine,
        "INSERT INTO nation_parquet SELECT * FROM nation_parquet",
    )
    .await;
    assert_contains(&e, &["not supported", "nation_parquet", "directory"]);
    let gone = dir.join("gone");
    std::fs::create_dir_all(&gone).unwrap();
    run(
        engine,
        &format!("CREATE EXTERNAL TABLE gone (a BIGINT) STORED AS PARQUET LOCATION '{d}/gone/'"),
    )
    .await;
    std::fs::remove_dir(&gone).unwrap();
    let e = query_error(engine, "INSERT INTO gone VALUES (1)").await;
    assert_contains(&e, &["gone", "directory of table 'gone'"]);
    assert!(!gone.exists());
}

/// JSON tables: inferred and declared schemas, a directory, and a
/// malformed line named by file and line.
async fn json_tables(engine: &Engine, dir: &Path) {
    let d = dir.display();
    let jdir = dir.join("json");
    std::fs::create_dir_all(&jdir).unwrap();
    std::fs::write(
        jdir.join("a.json"),
        "{\"k\": 1, \"s\": \"one\", \"f\": 1.5, \"b\": true}\n{\"k\": 2, \"s\": null}\n",
    )
    .unwrap();
    std::fs::write(
        jdir.join("b.json"),
        "\n{\"k\": 3, \"f\": 2, \"extra\": {\"x\": 1}}\n",
    )
    .unwrap();
    run(
        engine,
        &format!("CREATE EXTERNAL TABLE j STORED AS JSON LOCATION '{d}/json/'"),
    )
    .await;
    assert_eq!(
        table(engine, "SELECT k, s, f, b FROM j ORDER BY k").await,
        table(
            engine,
            "SELECT * FROM (VALUES (1, 'one', 1.5, true), (2, NULL, NULL, NULL), (3, NULL, 2.0, NULL)) \
             AS v(k, s, f, b) ORDER BY k"
        )
        .await
    );
    run(
        engine,
        &format!(
            "CREATE EXTERNAL TABLE jd (k INT, f DOUBLE) STORED AS JSON LOCATION '{d}/json/b.json'"
        ),
    )
    .await;
    assert_eq!(
        table(engine, "SELECT k + 1 AS k1, f FROM jd").await,
        table(engine, "SELECT 4 AS k1, 2.0 AS f").await
    );

    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"k\": 1}\n{\"k\": 2}\n{\"k\": 3, \"s\": }\n").unwrap();
    run(
        engine,
        &format!(
            "CREATE EXTERNAL TABLE bad (k BIGINT) STORED AS JSON LOCATION '{}'",
            bad.display()
        ),
    )
    .await;
    let e = query_error(engine, "SELECT sum(k) FROM bad").await;
    assert_contains(&e, &[&bad.display().to_string(), "line 3:"]);
    let e = query_error(
        engine,
        &format!("CREATE EXTERNAL TABLE missing STORED AS JSON LOCATION '{d}/nothing.json'"),
    )
    .await;
    assert_contains(&e, &["nothing.json", "no such file"]);
}

async fn all_writes(engine: &Engine, dir: &Path) {
    copies(engine, dir).await;
    inserts(engine, dir).await;
    errors(engine, dir).await;
    json_tables(engine, dir).await;
    partitioned(engine, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_and_insert_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let engine = tpch_engine(0.01, 3);
    all_writes(&engine, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_and_insert_on_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(2)
        .await
        .unwrap_or_else(|e| panic!("cluster: {e}"));
    let engine = connect_engine(cluster.client_config(), 3, 8192).await;
    engine.register_tpch(0.01).unwrap();
    all_writes(&engine, dir.path()).await;
}

/// Worker processes write only under their `--allow-path` roots, like
/// they read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_write_only_under_their_allowed_paths() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    let other = base.path().join("other");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let cluster = ProcessCluster::builder(FFQ)
        .workers(2)
        .slots(2)
        .allow_path(&root)
        .start()
        .await
        .unwrap();
    let engine = connect_engine(cluster.client_config().unwrap(), 2, 8192).await;
    engine.register_tpch(0.01).unwrap();

    let sql = format!(
        "COPY (SELECT n_nationkey FROM nation) TO '{}/n.parquet'",
        root.display()
    );
    assert_eq!(count(&engine, &sql).await, 25);
    for target in [
        other.join("n.parquet"),
        other.join("dir/"),
        root.join("../other/n.csv"),
    ] {
        let sql = format!(
            "COPY (SELECT n_nationkey FROM nation) TO '{}' STORED AS CSV",
            target.display()
        );
        let e = query_error(&engine, &sql).await;
        assert_contains(&e, &["not allowed", "outside the worker's allowed paths"]);
    }
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0);
}

/// `ffq sql --table NAME=FILE.json` reads newline-delimited JSON; a
/// malformed line is named by file and line.
#[test]
fn the_cli_registers_json_files_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("t.json");
    std::fs::write(&good, "{\"a\": 2}\n{\"a\": 1, \"b\": \"x\"}\n").unwrap();
    let table = format!("t={}", good.display());
    let (ok, out, err) = ffq_cli(&[
        "sql",
        "--table",
        &table,
        "--format",
        "csv",
        "SELECT a, b FROM t ORDER BY a",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "a,b\n1,x\n2,\n");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"a\": 1}\n{\"a\": }\n").unwrap();
    let table = format!("t={}", bad.display());
    let (ok, _, err) = ffq_cli(&["sql", "--table", &table, "SELECT * FROM t"]);
    assert!(!ok);
    assert_contains(&err, &[&bad.display().to_string(), "line 2:"]);
}

/// Hive-partitioned tables: partition columns typed as declared (strings
/// otherwise), and filters on them choose directories before any file is
/// opened: a corrupt file in a pruned directory is never read.
async fn partitioned(engine: &Engine, dir: &Path) {
    let d = dir.display();
    let root = dir.join("hive");
    for (year, month) in [(2024, 1), (2024, 2), (2025, 1)] {
        let sql = format!(
            "COPY (SELECT n_nationkey AS k, n_name AS name FROM nation \
             WHERE n_nationkey % 3 = {month} + {year} - 2024) \
             TO '{}/year={year}/month={month}/part.parquet'",
            root.display()
        );
        run(engine, &sql).await;
    }
    // A corrupt file where only unpruned queries look.
    let corrupt = root.join("year=2023").join("month=12");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("bad.parquet"), b"not parquet at all").unwrap();
    run(
        engine,
        &format!(
            "CREATE EXTERNAL TABLE h (k INT, name VARCHAR, year INT, month BIGINT) \
             STORED AS PARQUET PARTITIONED BY (year, month) LOCATION '{d}/hive/'"
        ),
    )
    .await;
    let expected = |filter: &str| {
        format!(
            "SELECT * FROM (SELECT n_nationkey AS k, n_name AS name, 2024 AS year, 1 AS month FROM nation WHERE n_nationkey % 3 = 1 \
             UNION ALL SELECT n_nationkey, n_name, 2024, 2 FROM nation WHERE n_nationkey % 3 = 2 \
             UNION ALL SELECT n_nationkey, n_name, 2025, 1 FROM nation WHERE n_nationkey % 3 = 2) v \
             WHERE {filter} ORDER BY year, month, k"
        )
    };
    for filter in [
        "year >= 2024",
        "year = 2024 AND month = 2",
        "month = 1 AND k > 10",
        "year IN (2025, 2030)",
    ] {
        assert_eq!(
            table(
                engine,
                &format!(
                    "SELECT k, name, year, month FROM h WHERE {filter} ORDER BY year, month, k"
                )
            )
            .await,
            table(engine, &expected(filter)).await,
            "{filter}"
        );
    }
    assert_eq!(
        table(engine, "SELECT count(*) AS n FROM h WHERE year > 2030").await,
        table(engine, "SELECT 0 AS n").await
    );
    // EXPLAIN: one scan per directory left.
    let plan = table(
        engine,
        "EXPLAIN SELECT k FROM h WHERE year = 2024 AND month = 2",
    )
    .await;
    assert_eq!(plan.matches("ParquetScan").count(), 2, "{plan}"); // plan and stage view
                                                                  // Without a partition filter the corrupt file is read.
    let e = query_error(engine, "SELECT count(*) FROM h").await;
    assert_contains(&e, &["bad.parquet"]);
    std::fs::remove_dir_all(&corrupt).unwrap();

    // Undeclared: partition columns are strings; columns from the files.
    run(
        engine,
        &format!(
            "CREATE EXTERNAL TABLE hs STORED AS PARQUET PARTITIONED BY (year, month) LOCATION '{d}/hive/'"
        ),
    )
    .await;
    assert_eq!(
        table(
            engine,
            "SELECT DISTINCT year, month FROM hs WHERE month = '1' ORDER BY year"
        )
        .await,
        table(
            engine,
            "SELECT * FROM (VALUES ('2024', '1'), ('2025', '1')) v(year, month)"
        )
        .await
    );

    // INSERT writes the Hive layout: new directories, new files in old ones.
    let sql = "INSERT INTO h VALUES (100, 'new', 2026, 7), (101, 'a/b=c', 2024, 1), (102, 'n', 2024, NULL)";
    assert_eq!(count(engine, sql).await, 3);
    assert!(root.join("year=2026").join("month=7").is_dir());
    assert!(root
        .join("year=2024")
        .join("month=__HIVE_DEFAULT_PARTITION__")
        .is_dir());
    assert_eq!(
        table(engine, "SELECT k, name, year, month FROM h WHERE k >= 100 ORDER BY k").await,
        table(
            engine,
            "SELECT * FROM (VALUES (100, 'new', 2026, 7), (101, 'a/b=c', 2024, 1), (102, 'n', 2024, NULL)) \
             v(k, name, year, month)"
        )
        .await
    );
    assert_eq!(
        table(
            engine,
            "SELECT count(*) AS n FROM h WHERE year = 2024 AND month = 1"
        )
        .await,
        table(engine, "SELECT 9 AS n").await
    );

    // COPY ... PARTITIONED BY: one directory per value, the column not in
    // the files.
    let sql = format!(
        "COPY (SELECT n_nationkey AS k, n_name AS name, n_regionkey AS r FROM nation) \
         TO '{d}/byregion/' STORED AS PARQUET PARTITIONED BY (r)"
    );
    assert_eq!(count(engine, &sql).await, 25);
    for r in 0..5 {
        assert!(dir.join("byregion").join(format!("r={r}")).is_dir());
    }
    run(
        engine,
        &format!(
            "CREATE EXTERNAL TABLE br (k INT, name VARCHAR, r INT) STORED AS PARQUET \
             PARTITIONED BY (r) LOCATION '{d}/byregion/'"
        ),
    )
    .await;
    assert_eq!(
        table(engine, "SELECT r, count(*) AS n, sum(k) AS s FROM br GROUP BY r ORDER BY r").await,
        table(
            engine,
            "SELECT n_regionkey AS r, count(*) AS n, sum(n_nationkey) AS s FROM nation GROUP BY 1 ORDER BY 1"
        )
        .await
    );
    let e = query_error(
        engine,
        &format!("COPY (SELECT 1 AS a, 2 AS b) TO '{d}/p.parquet' PARTITIONED BY (b)"),
    )
    .await;
    assert_contains(&e, &["PARTITIONED BY writes a directory", "p.parquet"]);
    // A directory that is not name=value.
    std::fs::create_dir_all(root.join("other")).unwrap();
    let e = query_error(
        engine,
        &format!(
            "CREATE EXTERNAL TABLE hb STORED AS PARQUET PARTITIONED BY (year, month) LOCATION '{d}/hive/'"
        ),
    )
    .await;
    assert_contains(&e, &["other", "year=<value>"]);
}
