//! The `ffq` binary of this package (built by cargo for the integration
//! tests): running one of its commands, and clusters of its processes.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ffq::cluster::process::ProcessCluster;

/// The path of the `ffq` binary.
pub const FFQ: &str = env!("CARGO_BIN_EXE_ffq");

/// Runs `ffq ARGS` with `stdin` as its standard input (none if `None`).
pub fn ffq(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(FFQ);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start ffq");
    if let Some(text) = stdin {
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("run ffq")
}

/// Runs `ffq ARGS` without input: whether it succeeded, its standard
/// output and its standard error.
pub fn ffq_cli(args: &[&str]) -> (bool, String, String) {
    let out = ffq(args, None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A coordinator and `workers` worker processes of `ffq` with `slots` slots
/// each and a zenoh lease of `lease_ms`, once every worker joined.
/// `FFQ_TEST_LOGS=DIR` keeps each process's log in DIR.
pub async fn ffq_process_cluster(workers: usize, slots: u32, lease_ms: u64) -> ProcessCluster {
    let mut builder = ProcessCluster::builder(FFQ)
        .workers(workers)
        .slots(slots)
        .lease(Duration::from_millis(lease_ms))
        .env("RUST_LOG", "info,ffq_cluster=debug,zenoh=warn");
    if let Some(dir) = std::env::var_os("FFQ_TEST_LOGS") {
        builder = builder.log_dir(dir);
    }
    builder
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting a cluster of ffq processes: {e}"))
}
