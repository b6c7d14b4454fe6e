//! EXPLAIN ANALYZE, embedded and on a cluster: the query runs and every
//! operator line carries what it did.

use ffq::{Engine, LocalCluster};

use crate::common::{explain_rows, tpch_cluster_engine, tpch_engine};

const SQL: &str = "EXPLAIN ANALYZE SELECT l_returnflag, count(*) AS n FROM lineitem \
                   WHERE l_quantity < 10 GROUP BY l_returnflag ORDER BY l_returnflag";

/// (plan_type, plan) rows.
async fn explain(engine: &Engine) -> Vec<(String, String)> {
    explain_rows(engine, SQL).await
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

fn value_of(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

#[tokio::test]
async fn explain_analyze_embedded_shows_rows_batches_time_and_memory() {
    let engine = tpch_engine(0.01, 3);
    let rows = explain(&engine).await;
    assert_eq!(rows[0].0, "Plan with Metrics");
    let plan = &rows[0].1;
    for line in plan.lines() {
        assert!(
            line.contains(" rows=") && line.contains(" batches=") && line.contains(" time="),
            "{line}"
        );
    }
    // Every lineitem row is scanned; the filter keeps fewer; 3 groups out.
    let scan = line_with(plan, "TpchScan: lineitem");
    assert_eq!(value_of(scan, "rows"), 60175);
    let filter = value_of(line_with(plan, "Filter:"), "rows");
    assert!(filter > 0 && filter < 60175, "{plan}");
    assert_eq!(value_of(line_with(plan, "SortPreservingMerge"), "rows"), 3);
    assert!(
        line_with(plan, "Aggregate(Partial)").contains("peak_mem="),
        "{plan}"
    );
    assert_eq!(rows[1].0, "Output");
    assert!(rows[1].1.starts_with("3 rows in "), "{}", rows[1].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn explain_analyze_on_a_cluster_shows_stages_attempts_and_bytes() {
    let cluster = LocalCluster::start(2).await.unwrap();
    let engine = tpch_cluster_engine(cluster.client_config(), 0.01, 3).await;
    let rows = explain(&engine).await;
    let plan = &rows[0].1;
    assert!(plan.contains("Stage 0 (client)"), "{plan}");
    let stage = line_with(plan, "Exchange(hash");
    assert!(
        stage.contains("3 tasks, 3 attempts (0 failed, 0 requeued)"),
        "{plan}"
    );
    assert!(
        line_with(plan, "task 2: attempt 0 on w-").contains(" to ffq/<cluster>/data/"),
        "{plan}"
    );
    // Counters are summed over the stage's tasks, which run on workers.
    assert_eq!(
        value_of(line_with(plan, "TpchScan: lineitem"), "rows"),
        60175
    );
    assert!(rows[1].1.starts_with("3 rows in "), "{}", rows[1].1);
    cluster.shutdown().await;
}

async fn stages_drawing(engine: &Engine, sql: &str) -> String {
    let rows = explain_rows(engine, sql).await;
    assert_eq!(rows.len(), 1);
    rows[0].1.clone()
}

#[tokio::test]
async fn explain_format_dot_and_mermaid_draw_the_stage_dag() {
    let engine = tpch_engine(0.01, 3);
    let q = "SELECT n_name, count(*) FROM nation JOIN supplier ON n_nationkey = s_nationkey GROUP BY n_name";
    let dot = stages_drawing(&engine, &format!("EXPLAIN (FORMAT dot) {q}")).await;
    assert!(dot.starts_with("digraph stages {"), "{dot}");
    assert!(
        dot.contains("stage2 -> stage1 [label=\"Exchange(hash [n_name@0] -> 3)\"]"),
        "{dot}"
    );
    assert!(dot.contains("stage1 -> stage0"), "{dot}");
    assert!(dot.trim_end().ends_with('}'));
    let mermaid = stages_drawing(&engine, &format!("EXPLAIN FORMAT mermaid {q}")).await;
    assert!(mermaid.starts_with("flowchart BT\n"), "{mermaid}");
    assert!(
        mermaid.contains("stage2 -->|\"Exchange(hash [n_name@0] -#gt; 3)\"| stage1"),
        "{mermaid}"
    );
    // In a script, and with a bad query inside.
    let pieces = Engine::split_sql(&format!("EXPLAIN FORMAT dot {q}; SELECT 1")).unwrap();
    assert_eq!(pieces.len(), 2);
    let e = engine
        .sql("EXPLAIN FORMAT dot SELECT nope FROM nation")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}
