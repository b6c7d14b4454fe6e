use crate::Engine;

use arrow::array::{Array, RecordBatch, StringArray};

async fn run(engine: &Engine, sql: &str) -> crate::Result<Vec<RecordBatch>> {
    engine.sql(sql).await?.collect().await
}

/// (name, value) rows of a SHOW.
async fn show(engine: &Engine, sql: &str) -> Vec<(String, String)> {
    let batches = run(engine, sql).await.unwrap();
    let mut out = Vec::new();
    for b in batches {
        let names = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let values = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            out.push((names.value(i).to_string(), values.value(i).to_string()));
        }
    }
    out
}

fn pair(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_string(), value.to_string())]
}

#[tokio::test]
async fn set_show_and_reset_change_what_later_statements_use() {
    let engine = Engine::with_config(crate::EngineConfig {
        target_partitions: 3,
        batch_size: 100,
        ..crate::EngineConfig::default()
    });
    assert_eq!(
        show(&engine, "SHOW target_partitions").await,
        pair("target_partitions", "3")
    );
    run(&engine, "SET target_partitions = 5").await.unwrap();
    run(&engine, "SET datafusion.execution.batch_size TO 64")
        .await
        .unwrap();
    assert_eq!(engine.config().target_partitions, 5);
    assert_eq!(engine.config().batch_size, 64);
    assert_eq!(
        show(&engine, "SHOW datafusion.execution.batch_size").await,
        pair("batch_size", "64")
    );
    // The new partitioning is what queries plan with.
    engine.register_tpch(0.01).unwrap();
    let plan = show(&engine, "EXPLAIN SELECT count(*) FROM lineitem").await;
    assert!(
        plan.iter().any(|(_, p)| p.contains("partitions=5")),
        "{plan:?}"
    );
    run(&engine, "RESET target_partitions").await.unwrap();
    run(&engine, "RESET batch_size").await.unwrap();
    assert_eq!(engine.config().target_partitions, 3);
    assert_eq!(engine.config().batch_size, 100);
    let all = show(&engine, "SHOW ALL").await;
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "target_partitions",
            "batch_size",
            "memory_limit",
            "spill_dir"
        ]
    );
}

#[tokio::test]
async fn bad_settings_are_clear_errors() {
    let engine = Engine::new();
    let err = |sql: &'static str| {
        let engine = &engine;
        async move { run(engine, sql).await.unwrap_err().to_string() }
    };
    let e = err("SET no_such_thing = 1").await;
    assert!(
        e.contains("unknown setting 'no_such_thing'") && e.contains("batch_size"),
        "{e}"
    );
    let e = err("SHOW no_such_thing").await;
    assert!(e.contains("unknown setting"), "{e}");
    let e = err("SET batch_size = 0").await;
    assert!(e.contains("'0' is not a positive whole number"), "{e}");
    let e = err("SET target_partitions = 'many'").await;
    assert!(e.contains("'many' is not a positive whole number"), "{e}");
    let e = err("SET target_partitions = 100000000").await;
    assert!(e.contains("100000000 exceeds the limit 65536"), "{e}");
    let e = err("SET batch_size = 100000000000").await;
    assert!(e.contains("exceeds the limit 16777216"), "{e}");
    let e = err("SET memory_limit = 100").await;
    assert!(
        e.starts_with("not supported") && e.contains("--memory-limit"),
        "{e}"
    );
    // A script that begins with SET runs on.
    for statement in Engine::split_sql("SET batch_size = 10; SELECT 1 AS one").unwrap() {
        run(&engine, &statement).await.unwrap();
    }
    assert_eq!(engine.config().batch_size, 10);
}
