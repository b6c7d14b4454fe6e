//! Statements other than queries: CREATE TABLE [AS], INSERT, views,
//! CREATE EXTERNAL TABLE, DROP, DESCRIBE, SHOW TABLES, EXPLAIN; CTEs and
//! derived tables; TPC-H q15 (a view); the CLI opening files by SQL.
//! Results are compared with DataFusion running the same statements.

use std::process::Command;
use std::sync::Arc;

use arrow::array::{Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use ffq::Engine;

use crate::common::ffq_binary::FFQ;
use crate::common::{
    assert_contains, assert_same, check_against, ffq_engine, normalize, oracle_ctx, oracle_session,
    query_error, render_rows, run_oracle, tpch_engine, tpch_query, Fixture,
};

/// Runs `sql` (one statement) in FFQ and returns its batches.
async fn ffq_run(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    let df = engine
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("FFQ failed: {e}\n{sql}"));
    df.collect()
        .await
        .unwrap_or_else(|e| panic!("FFQ failed to run: {e}\n{sql}"))
}

/// Runs `sql` (one statement) in DataFusion.
async fn df_run(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("DataFusion failed: {e}\n{sql}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("DataFusion failed to run: {e}\n{sql}"))
}

/// Runs each statement of `script` in both engines.
async fn run_both(engine: &Engine, ctx: &SessionContext, script: &str) {
    for s in Engine::split_sql(script).unwrap() {
        ffq_run(engine, &s).await;
        df_run(ctx, &s).await;
    }
}

fn strings(batches: &[RecordBatch], column: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(column)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("a string column")
                .clone();
            (0..a.len())
                .map(|i| a.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The first value of the first column, an `Int64`.
fn first_i64(batches: &[RecordBatch]) -> i64 {
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("an Int64 column")
        .value(0)
}

fn total_rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

/// Table `base` (one batch) in FFQ and DataFusion, at 3 partitions with
/// batches of 2 rows.
fn engines() -> (Engine, SessionContext) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("k", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(Int64Array::from(vec![
                Some(10),
                None,
                Some(30),
                Some(10),
                Some(20),
            ])),
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("b"),
                None,
                Some("d"),
                Some("e"),
            ])),
        ],
    )
    .unwrap();
    Fixture::new().table("base", batch).setup(3, 2)
}

// ---------------------------------------------------------------------------
// CTEs and derived tables
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cte_used_twice_and_derived_table_aliases() {
    let (engine, ctx) = engines();
    for sql in [
        "with c as (select k, count(*) as n from base group by k) \
         select x.k, x.n, y.n as m from c x join c y on x.k = y.k",
        "with c as (select id, k from base where k is not null) \
         select (select count(*) from c) as total, max(id) from c",
        "with a as (select k from base), b as (select k * 2 as k from a) \
         select * from a union all select * from b",
        "select d.x, d.y from (select id, s from base) as d (x, y) where d.x > 2",
        "select t.a + 1 as b from (values (1), (2)) as t (a)",
        "select * from (select k, sum(id) from base group by k) as g (key, total)",
    ] {
        assert_same(sql, &engine, &ctx).await;
    }
}

// ---------------------------------------------------------------------------
// CREATE TABLE, INSERT
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_as_select() {
    let (engine, ctx) = engines();
    run_both(
        &engine,
        &ctx,
        "create table t as select k, count(*) as n, max(s) as s from base group by k; \
         create table u as values (1, 'x'), (2, 'y')",
    )
    .await;
    for sql in [
        "select * from t",
        "select k, n from t where n > 1",
        "select * from u",
        "select t.k, u.column2 from t join u on t.n = u.column1",
    ] {
        assert_same(sql, &engine, &ctx).await;
    }
    // The result of CREATE TABLE AS has no columns and no rows.
    let df = engine.sql("create table w as select 1 as a").await.unwrap();
    assert!(df.schema().fields().is_empty());
    assert_eq!(total_rows(&df.collect().await.unwrap()), 0);
    // Empty result: the table exists with the query's schema.
    ffq_run(
        &engine,
        "create table e as select id, s from base where id > 100",
    )
    .await;
    assert_eq!(total_rows(&ffq_run(&engine, "select * from e").await), 0);
    let schema = engine.table_schema("e").unwrap();
    assert_eq!(schema.field(0).name(), "id");
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_and_insert() {
    let (engine, ctx) = engines();
    run_both(
        &engine,
        &ctx,
        "create table t (a int not null, b varchar, c double); \
         insert into t values (1, 'one', 1.5), (2, 'two', null); \
         insert into t (c, a) values (3, 3); \
         insert into t select id + 10, s, k from base where k is not null; \
         insert into t select * from t where a < 3",
    )
    .await;
    for sql in [
        "select * from t",
        "select a, b from t where c is null",
        "select count(*), sum(a), sum(c) from t",
    ] {
        assert_same(sql, &engine, &ctx).await;
    }
    // DESCRIBE matches DataFusion (declared types and nullability).
    assert_same("describe t", &engine, &ctx).await;

    // INSERT returns one row: the number of inserted rows, like DataFusion.
    let sql = "insert into t select id, s, 0.5 from base";
    let ours = ffq_run(&engine, sql).await;
    let theirs = df_run(&ctx, sql).await;
    assert_eq!(ours[0].schema().fields(), theirs[0].schema().fields());
    assert_eq!(
        render_rows(&normalize(&ours).unwrap()),
        render_rows(&normalize(&theirs).unwrap())
    );
    let count = ours[0]
        .column(0)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap();
    assert_eq!(count.value(0), 5);
    assert_same("select * from t", &engine, &ctx).await;

    // An empty table is queryable.
    ffq_run(&engine, "create table empty (x bigint)").await;
    assert_eq!(
        total_rows(&ffq_run(&engine, "select count(*) from empty").await),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_if_not_exists_and_or_replace() {
    let engine = ffq_engine(2, 8192);
    ffq_run(&engine, "create table t as select 1 as a").await;
    let e = query_error(&engine, "create table t as select 2 as a").await;
    assert_contains(&e, &["table 't' already exists"]);
    // IF NOT EXISTS: nothing happens.
    ffq_run(&engine, "create table if not exists t as select 2 as a").await;
    ffq_run(&engine, "create table if not exists t (x int)").await;
    let b = ffq_run(&engine, "select a from t").await;
    assert_eq!(first_i64(&b), 1);
    // OR REPLACE replaces the table and its rows.
    ffq_run(&engine, "create or replace table t as select 'x' as b").await;
    let b = ffq_run(&engine, "select * from t").await;
    assert_eq!(strings(&b, 0), vec!["x"]);
    assert_eq!(engine.table_schema("t").unwrap().field(0).name(), "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_errors() {
    let engine = tpch_engine(0.01, 2);
    ffq_run(&engine, "create table t (a int not null, b varchar)").await;
    ffq_run(&engine, "create view v as select * from t").await;

    let e = query_error(&engine, "insert into t values ('not a number', 'x')").await;
    assert_contains(&e, &["not a number", "Int32"]);
    let e = query_error(&engine, "insert into t values (null, 'x')").await;
    assert_contains(&e, &["non-nullable"]);
    let e = query_error(&engine, "insert into t values (1)").await;
    assert_contains(&e, &["planning error"]);
    let e = query_error(&engine, "insert into t (a, nope) values (1, 2)").await;
    assert_contains(&e, &["nope"]);
    let e = query_error(&engine, "insert into missing values (1)").await;
    assert_contains(&e, &["table 'missing' not found"]);
    let e = query_error(&engine, "insert into nation select * from nation").await;
    assert_contains(&e, &["not supported", "TPC-H table 'nation'"]);
    let e = query_error(&engine, "insert into v values (1, 'x')").await;
    assert_contains(&e, &["not supported", "view 'v'"]);
    // Nothing was inserted by the failed statements.
    assert_eq!(total_rows(&ffq_run(&engine, "select * from t").await), 0);
}

// ---------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views() {
    let (engine, ctx) = engines();
    run_both(
        &engine,
        &ctx,
        "create view v1 as select id, k * 2 as k2 from base where id > 1; \
         create view v2 (key, total, names) as \
           select k, sum(id), count(s) from base group by k; \
         create view v3 as select v1.id, v2.total from v1 join v2 on v1.k2 = v2.key * 2",
    )
    .await;
    for sql in [
        "select * from v1",
        "select key, total from v2 where key is not null",
        "select * from v3",
        // A view used twice, once in a subquery.
        "select a.id, b.id from v1 a join v1 b on a.id = b.id + 1",
        "select key from v2 where total = (select max(total) from v2)",
        "describe v2",
    ] {
        assert_same(sql, &engine, &ctx).await;
    }

    // CREATE OR REPLACE VIEW.
    run_both(
        &engine,
        &ctx,
        "create or replace view v1 as select s from base where s is not null",
    )
    .await;
    assert_same("select * from v1", &engine, &ctx).await;

    // Errors and IF NOT EXISTS.
    let e = query_error(&engine, "create view v1 as select 1").await;
    assert_contains(&e, &["view 'v1' already exists"]);
    let e = query_error(&engine, "create view base as select 1").await;
    assert_contains(&e, &["table 'base' already exists"]);
    let e = query_error(&engine, "create or replace view base as select 1").await;
    assert_contains(&e, &["table 'base' already exists", "OR REPLACE"]);
    let e = query_error(&engine, "create view bad (a, b) as select 1").await;
    assert_contains(&e, &["planning error"]);
    let e = query_error(
        &engine,
        "create view dup as select a.id, b.id from base a, base b",
    )
    .await;
    assert_contains(&e, &["CREATE VIEW dup", "duplicate column name 'id'"]);
    ffq_run(&engine, "create view if not exists v1 as select 42 as z").await;
    assert_same("select * from v1", &engine, &ctx).await;
    ffq_run(&engine, "create view if not exists v9 as select 42 as z").await;
    let b = ffq_run(&engine, "select z from v9").await;
    assert_eq!(total_rows(&b), 1);

    // DROP VIEW.
    let e = query_error(&engine, "drop view base").await;
    assert_contains(&e, &["'base' is a table", "DROP TABLE"]);
    let e = query_error(&engine, "drop table v1").await;
    assert_contains(&e, &["'v1' is a view", "DROP VIEW"]);
    ffq_run(&engine, "drop view v3").await;
    let e = query_error(&engine, "select * from v3").await;
    assert_contains(&e, &["table 'v3' not found"]);
    let e = query_error(&engine, "drop view v3").await;
    assert_contains(&e, &["view 'v3' not found"]);
    ffq_run(&engine, "drop view if exists v3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_see_inserts_and_notice_dropped_tables() {
    let engine = ffq_engine(2, 8192);
    ffq_run(&engine, "create table t as select 1 as a").await;
    ffq_run(&engine, "create view v as select a * 10 as b from t").await;
    ffq_run(&engine, "create view w as select sum(b) as s from v").await;
    ffq_run(&engine, "insert into t values (2)").await;
    let b = ffq_run(&engine, "select s from w").await;
    assert_eq!(first_i64(&b), 30);
    // Replaced by a table with other columns: the views say so.
    ffq_run(&engine, "drop table t").await;
    ffq_run(&engine, "create table t as select 'x' as a").await;
    for sql in ["select * from v", "select * from w", "describe w"] {
        let e = query_error(&engine, sql).await;
        assert_contains(&e, &["is out of date", "table 't'"]);
    }
    ffq_run(&engine, "drop view w").await;
    ffq_run(&engine, "create or replace view v as select a from t").await;
    assert_eq!(
        strings(&ffq_run(&engine, "select * from v").await, 0),
        ["x"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_q15_view_matches_datafusion() {
    const SF: f64 = 0.01;
    let ctx = oracle_ctx(SF);
    let engine = tpch_engine(SF, 2);
    let statements = Engine::split_sql(&tpch_query(15)).unwrap();
    assert_eq!(statements.len(), 3, "{statements:?}");
    ffq_run(&engine, &statements[0]).await;
    df_run(&ctx, &statements[0]).await;
    let oracle = run_oracle(&statements[1], &ctx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = check_against("TPC-H q15", &statements[1], &engine, &oracle)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!rows.is_empty());
    ffq_run(&engine, &statements[2]).await;
    df_run(&ctx, &statements[2]).await;
    assert!(!engine.table_names().contains(&"revenue0".to_string()));
    let e = query_error(&engine, "select * from revenue0").await;
    assert_contains(&e, &["revenue0", "not found"]);
}

// ---------------------------------------------------------------------------
// DROP TABLE, DESCRIBE, SHOW TABLES, EXPLAIN
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_table() {
    let engine = ffq_engine(2, 8192);
    ffq_run(&engine, "create table t as select 1 as a").await;
    ffq_run(&engine, "drop table t").await;
    assert!(engine.table_schema("t").is_none());
    let e = query_error(&engine, "select * from t").await;
    assert_contains(&e, &["table 't' not found"]);
    let e = query_error(&engine, "drop table t").await;
    assert_contains(&e, &["table 't' not found"]);
    ffq_run(&engine, "drop table if exists t").await;
    // The name can be used again, with a different schema.
    ffq_run(&engine, "create table t as select 'x' as b, 2 as c").await;
    assert_eq!(total_rows(&ffq_run(&engine, "select b, c from t").await), 1);
    let e = query_error(&engine, "drop table other.t").await;
    assert_contains(&e, &["table 'other.t' not found"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_matches_datafusion() {
    let ctx = oracle_ctx(0.01);
    let engine = tpch_engine(0.01, 2);
    for sql in [
        "describe lineitem",
        "describe nation",
        "desc orders",
        "describe select l_orderkey, sum(l_quantity) as q from lineitem group by l_orderkey",
    ] {
        assert_same(sql, &engine, &ctx).await;
    }
    let e = query_error(&engine, "describe nope").await;
    assert_contains(&e, &["table 'nope' not found"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_tables() {
    let engine = tpch_engine(0.01, 2);
    ffq_run(&engine, "create table t1 as select 1 as a").await;
    ffq_run(&engine, "create view v1 as select a from t1").await;
    let df = engine.sql("SHOW TABLES").await.unwrap();
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        ["table_catalog", "table_schema", "table_name", "table_type"]
    );
    let b = df.collect().await.unwrap();
    let tables = strings(&b, 2);
    let types = strings(&b, 3);
    let listed: Vec<(String, String)> = tables.into_iter().zip(types).collect();
    let expect = |n: &str, t: &str| (n.to_string(), t.to_string());
    assert!(
        listed.contains(&expect("lineitem", "BASE TABLE")),
        "{listed:?}"
    );
    assert!(listed.contains(&expect("t1", "BASE TABLE")), "{listed:?}");
    assert!(listed.contains(&expect("v1", "VIEW")), "{listed:?}");
    assert_eq!(listed.len(), 10, "{listed:?}");
    let e = query_error(&engine, "show tables like 'x%'").await;
    assert_contains(&e, &["not supported"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain() {
    let engine = tpch_engine(0.01, 2);
    ffq_run(&engine, "create view v as select n_name from nation").await;
    let b = ffq_run(&engine, "explain select count(*) from v").await;
    let kinds = strings(&b, 0);
    assert_eq!(kinds, ["logical_plan", "physical_plan", "stages"]);
    let plans = strings(&b, 1);
    assert!(plans[0].contains("nation"), "{}", plans[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_statements() {
    let engine = tpch_engine(0.01, 2);
    ffq_run(&engine, "create table t as select 1 as a").await;
    for (sql, what) in [
        ("create index i on nation (n_name)", "CREATE INDEX"),
        ("begin", "BEGIN"),
        ("commit", "not supported"),
        ("delete from t where a = 1", "DELETE"),
        ("update t set a = 2", "UPDATE"),
        ("set memory_limit = 10", "SET memory_limit"),
        ("create database d", "CREATE DATABASE"),
        ("create temporary table tt (a int)", "not supported"),
        ("create table pk (a int primary key)", "PRIMARY KEY"),
    ] {
        let e = query_error(&engine, sql).await;
        assert_contains(&e, &["not supported", what]);
    }
}

// ---------------------------------------------------------------------------
// CREATE EXTERNAL TABLE
// ---------------------------------------------------------------------------

fn write_parquet(path: &std::path::Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_external_table() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "id,name,score\n1,a,1.5\n2,b,2.5\n3,,3.5\n").unwrap();
    let pipe = dir.path().join("p.csv");
    std::fs::write(&pipe, "1|x\n2|y\n").unwrap();
    let pq = dir.path().join("t.parquet");
    write_parquet(&pq);
    let (csv, pipe, pq) = (
        csv.display().to_string(),
        pipe.display().to_string(),
        pq.display().to_string(),
    );

    let engine = ffq_engine(2, 8192);
    let ctx = oracle_session();
    // FFQ reads Parquet strings as Utf8 (DataFusion's default is Utf8View).
    df_run(
        &ctx,
        "set datafusion.execution.parquet.schema_force_view_types = false",
    )
    .await;
    run_both(
        &engine,
        &ctx,
        &format!(
            "create external table c stored as csv location '{csv}'; \
             create external table c2 (id int, name varchar, score double) \
               stored as csv location '{csv}' options ('format.has_header' 'true'); \
             create external table p (a bigint, b varchar) stored as csv location '{pipe}' \
               options ('format.has_header' 'false', 'format.delimiter' '|'); \
             create external table q stored as parquet location '{pq}'; \
             create external table q2 (id bigint not null, name varchar) \
               stored as parquet location 'file://{pq}'"
        ),
    )
    .await;
    for sql in [
        "select * from c",
        "select id, score from c2 where name is null",
        "select * from p",
        "select * from q",
        // Declared string columns of a Parquet table keep the file's
        // type (Utf8) in FFQ; DataFusion casts to the declared Utf8View.
        "select id, cast(name as varchar) from q2 where id > 1",
        "select c.name, p.b from c join p on c.id = p.a",
    ] {
        assert_same(sql, &engine, &ctx).await;
    }
    assert_same("describe p", &engine, &ctx).await;

    // IF NOT EXISTS, OR REPLACE, errors.
    let e = query_error(
        &engine,
        &format!("create external table c stored as csv location '{csv}'"),
    )
    .await;
    assert_contains(&e, &["table 'c' already exists"]);
    ffq_run(
        &engine,
        &format!("create external table if not exists c stored as parquet location '{pq}'"),
    )
    .await;
    assert_eq!(engine.table_schema("c").unwrap().fields().len(), 3);
    ffq_run(
        &engine,
        &format!("create or replace external table c stored as parquet location '{pq}'"),
    )
    .await;
    assert_eq!(engine.table_schema("c").unwrap().fields().len(), 2);

    let missing = dir.path().join("missing.csv").display().to_string();
    let e = query_error(
        &engine,
        &format!("create external table m stored as csv location '{missing}'"),
    )
    .await;
    assert_contains(&e, &["missing.csv", "no such file"]);
    let e = query_error(
        &engine,
        &format!("create external table j stored as avro location '{csv}'"),
    )
    .await;
    assert_contains(&e, &["not supported", "AVRO"]);
    // A CSV file read as JSON: the first malformed line is named.
    let e = query_error(
        &engine,
        &format!("create external table j stored as json location '{csv}'"),
    )
    .await;
    assert_contains(&e, &["t.csv", "line 1:"]);
    let e = query_error(
        &engine,
        &format!(
            "create external table o stored as csv location '{csv}' options ('format.quote' '\"')"
        ),
    )
    .await;
    assert_contains(&e, &["not supported", "format.quote"]);
    let e = query_error(
        &engine,
        &format!("create external table o stored as csv location '{csv}' options ('format.delimiter' ';;')"),
    )
    .await;
    assert_contains(&e, &["format.delimiter", "one ASCII character"]);
    let e = query_error(
        &engine,
        &format!("create external table o (x int) stored as parquet location '{pq}'"),
    )
    .await;
    assert_contains(&e, &["columns declared for table 'o'", "id Int64"]);
    assert!(engine.table_schema("o").is_none());
}

// ---------------------------------------------------------------------------
// Scripts and the CLI
// ---------------------------------------------------------------------------

#[test]
fn split_sql_keeps_statement_text() {
    let parts = Engine::split_sql(
        "create external table t (a int) stored as csv location 'x;y.csv' \
           options ('format.delimiter' ';');\n -- a comment; still a comment\n\
         select ';' as s; ; select 2",
    )
    .unwrap();
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert!(parts[0].contains("(a int)"), "{parts:?}");
    assert!(
        parts[0].contains("options ('format.delimiter' ';')"),
        "{parts:?}"
    );
    assert!(parts[1].ends_with("select ';' as s"), "{parts:?}");
    assert_eq!(parts[2], "select 2");
}

#[test]
fn cli_opens_files_by_sql() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, "k;v\n1;x\n2;y\n3;z\n").unwrap();
    let script = format!(
        "CREATE EXTERNAL TABLE t (k INT, v VARCHAR) STORED AS CSV LOCATION '{}' \
           OPTIONS ('format.has_header' 'true', 'format.delimiter' ';');\n\
         CREATE TABLE u AS SELECT k * 10 AS k10, v FROM t WHERE k > 1;\n\
         INSERT INTO u VALUES (99, 'w');\n\
         SELECT k10, v FROM u ORDER BY k10;",
        csv.display()
    );
    let out = Command::new(FFQ)
        .args(["sql", "--format", "csv", &script])
        .output()
        .expect("run ffq");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffq failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "count\n1\n\nk10,v\n20,y\n30,z\n99,w\n"
    );
}
