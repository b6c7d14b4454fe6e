//! Error expectations shared by the tests: the error a statement fails
//! with, and checks on its message.

use ffq::Engine;

/// The error `sql` fails with on `engine`, in planning or in running;
/// panics when it succeeds.
pub async fn query_error(engine: &Engine, sql: &str) -> String {
    match engine.sql(sql).await {
        Err(e) => e.to_string(),
        Ok(df) => match df.collect().await {
            Ok(b) => panic!("expected an error running {sql:?}, got {} batches", b.len()),
            Err(e) => e.to_string(),
        },
    }
}

/// Asserts that `msg` contains every one of `parts`.
pub fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(
            msg.contains(p),
            "error message {msg:?} should contain {p:?}"
        );
    }
}
