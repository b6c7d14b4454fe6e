//! Deep and huge SQL: long operator chains, wide UNIONs and deep nesting
//! give an answer or a clear error, never a stack overflow — embedded, on
//! a cluster of 2 workers, and through the `ffq` binary. Embedded and the
//! cluster accept the same queries.

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;
use ffq::{Engine, LocalCluster};

use crate::common::connect_engine;
use crate::common::ffq_binary::ffq;

const VALUES: &str = "(VALUES (1)) t(a)";

/// What a query must give: its one value, or an error containing the text.
enum Expect {
    Value(String),
    Error(&'static str),
}

fn chain(op: &str, terms: impl Iterator<Item = String>) -> String {
    terms.collect::<Vec<_>>().join(op)
}

/// The cases, each as (name, SQL, expected).
fn cases() -> Vec<(&'static str, String, Expect)> {
    let plus = |n: usize| {
        format!(
            "SELECT {} AS v FROM {VALUES}",
            chain(" + ", (0..n).map(|_| "a".into()))
        )
    };
    let nested = |open: &str, close: &str, n: usize, body: &str| {
        format!("{}{body}{}", open.repeat(n), close.repeat(n))
    };
    vec![
        (
            "10,000-term + chain",
            plus(10_000),
            Expect::Error("expression nesting depth 10000 exceeds the limit 256"),
        ),
        ("200-term + chain", plus(200), Expect::Value("200".into())),
        (
            "10,000-term AND chain",
            format!(
                "SELECT count(*) FROM {VALUES} WHERE {}",
                chain(" AND ", (0..10_000).map(|i| format!("a <> {}", i + 2)))
            ),
            Expect::Value("1".into()),
        ),
        (
            "10,000-term OR chain",
            format!(
                "SELECT count(*) FROM {VALUES} WHERE {}",
                chain(" OR ", (0..10_000).map(|i| format!("a = {}", 10_000 - i)))
            ),
            Expect::Value("1".into()),
        ),
        (
            "UNION ALL of 300 branches",
            union_all(300),
            Expect::Value((0..300).sum::<i64>().to_string()),
        ),
        (
            "300 parentheses",
            format!("SELECT {} AS v", nested("(", ")", 300, "1")),
            Expect::Error("expression nesting depth 257 exceeds the limit 256"),
        ),
        (
            "200 parentheses",
            format!("SELECT {} AS v", nested("(", ")", 200, "1")),
            Expect::Value("1".into()),
        ),
        (
            "5,000 parentheses",
            format!("SELECT {} AS v", nested("(", ")", 5_000, "1")),
            Expect::Error("nests deeper than the parser's limit"),
        ),
        (
            "300 nested subqueries in FROM",
            format!(
                "SELECT * FROM {}",
                nested("(SELECT * FROM ", ") s", 300, VALUES)
            ),
            Expect::Error("subquery nesting depth 257 exceeds the limit 256"),
        ),
        (
            "100 nested subqueries in FROM",
            format!(
                "SELECT * FROM {}",
                nested("(SELECT * FROM ", ") s", 100, VALUES)
            ),
            Expect::Value("1".into()),
        ),
        (
            "30 nested scalar subqueries",
            format!("SELECT {} AS v", nested("(SELECT ", ")", 30, "1")),
            Expect::Error("subquery-in-expression nesting depth 13 exceeds the limit 12"),
        ),
        (
            "8 nested scalar subqueries",
            format!("SELECT {} AS v", nested("(SELECT ", ")", 8, "1")),
            Expect::Value("1".into()),
        ),
        (
            "300 nested CASE",
            format!(
                "SELECT {} AS v FROM {VALUES}",
                nested("CASE WHEN a = 1 THEN ", " END", 300, "1")
            ),
            Expect::Error("expression nesting depth 257 exceeds the limit 256"),
        ),
        (
            "100 nested CASE",
            format!(
                "SELECT {} AS v FROM {VALUES}",
                nested("CASE WHEN a = 1 THEN ", " END", 100, "7")
            ),
            Expect::Value("7".into()),
        ),
        (
            "a join of 300 tables",
            format!(
                "SELECT count(*) FROM {}",
                chain(", ", (0..300).map(|i| format!("(VALUES (1)) t{i}(a{i})")))
            ),
            Expect::Error("plan nesting depth 257 exceeds the limit 256"),
        ),
    ]
}

fn union_all(branches: i64) -> String {
    format!(
        "SELECT sum(x) FROM ({}) u",
        chain(
            " UNION ALL ",
            (0..branches).map(|i| format!("SELECT {i} AS x"))
        )
    )
}

/// The one value of the result, or the error.
async fn run(engine: &Engine, sql: &str) -> Result<String, String> {
    let df = engine.sql(sql).await.map_err(|e| e.to_string())?;
    let batches: Vec<RecordBatch> = df.collect().await.map_err(|e| e.to_string())?;
    let batch = batches.iter().find(|b| b.num_rows() > 0).ok_or("no rows")?;
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        1,
        "{sql:.80}"
    );
    array_value_to_string(batch.column(0), 0).map_err(|e| e.to_string())
}

fn check(mode: &str, name: &str, got: &Result<String, String>, expect: &Expect) {
    match (got, expect) {
        (Ok(v), Expect::Value(want)) => assert_eq!(v, want, "{name} ({mode})"),
        (Err(e), Expect::Error(want)) => {
            assert!(
                e.contains(want),
                "{name} ({mode}): error {e:?} lacks {want:?}"
            )
        }
        (got, Expect::Value(want)) => panic!("{name} ({mode}): want {want}, got {got:?}"),
        (got, Expect::Error(want)) => panic!("{name} ({mode}): want error {want:?}, got {got:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_queries_give_an_answer_or_a_clear_error_embedded_and_on_a_cluster() {
    let embedded = crate::common::ffq_engine(2, 8192);
    let cluster = LocalCluster::start(2).await.unwrap();
    let distributed = connect_engine(cluster.client_config(), 2, 8192).await;
    for (name, sql, expect) in cases() {
        check("embedded", name, &run(&embedded, &sql).await, &expect);
        check("cluster", name, &run(&distributed, &sql).await, &expect);
    }
    cluster.shutdown().await;
}

/// Embedded only: on a cluster every task of the union's stage carries the
/// whole stage plan, so 3,000 one-row branches cost 3,000 plans of 3,000
/// branches each (see the report of issue 12).
#[tokio::test]
async fn a_union_all_of_3000_branches_gives_its_answer() {
    let embedded = crate::common::ffq_engine(2, 8192);
    let got = run(&embedded, &union_all(3_000)).await;
    assert_eq!(got, Ok((0..3_000i64).sum::<i64>().to_string()));
}

/// A `WHERE` of `n` ANDed terms.
fn and_chain(n: usize) -> String {
    format!(
        "SELECT count(*) FROM {VALUES} WHERE {}",
        chain(" AND ", (0..n).map(|i| format!("a < {}", i + 2)))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_and_a_cluster_accept_the_same_and_chains() {
    let embedded = crate::common::ffq_engine(2, 8192);
    let cluster = LocalCluster::start(2).await.unwrap();
    let distributed = connect_engine(cluster.client_config(), 2, 8192).await;
    for n in [150, 1000] {
        let sql = and_chain(n);
        let e = run(&embedded, &sql).await;
        let d = run(&distributed, &sql).await;
        assert_eq!(e, Ok("1".to_string()), "{n} terms embedded");
        assert_eq!(d, e, "{n} terms on the cluster");
    }
    cluster.shutdown().await;
}

#[test]
fn the_cli_and_the_repl_report_deep_queries_instead_of_crashing() {
    let deep = format!(
        "SELECT {} FROM {VALUES}",
        chain(" + ", (0..10_000).map(|_| "a".into()))
    );
    let out = ffq(&["sql", &deep], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exceeds the limit 256"), "{stderr}");

    let script = format!(
        "{deep};\nSELECT {} AS ok;\n",
        chain(" AND ", (0..10_000).map(|_| "true".into()))
    );
    let out = ffq(&["repl"], Some(&script));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code().is_some(), "the REPL was killed: {stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("exceeds the limit 256"),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains("true"), "{stdout}{stderr}");
}
