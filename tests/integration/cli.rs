//! Tests of the `ffq` binary.

use std::process::{Command, Output};

use crate::common::ffq_binary::{ffq, FFQ};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs successfully and returns stdout.
fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let o = ffq(args, stdin);
    assert!(
        o.status.success(),
        "ffq {args:?} failed: {}\nstdout: {}",
        stderr(&o),
        stdout(&o)
    );
    stdout(&o)
}

/// Fails with exit code 1 and one `error: ...` line; returns that line.
fn fails(args: &[&str], stdin: Option<&str>) -> String {
    let o = ffq(args, stdin);
    assert_eq!(o.status.code(), Some(1), "ffq {args:?}: {}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(!err.contains("panicked"), "{err:?}");
    lines[0].to_string()
}

#[test]
fn tpch_query_as_csv() {
    let out = ok(
        &[
            "sql",
            "--tpch",
            "0.01",
            "--format",
            "csv",
            "select count(*) as c from nation; \
             select n_nationkey, n_name from nation where n_nationkey = 7",
        ],
        None,
    );
    assert_eq!(out, "c\n25\n\nn_nationkey,n_name\n7,GERMANY\n");
}

#[test]
fn query_from_file_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(&file, "select 1 as a, 'x,y' as b\n").unwrap();
    let at = format!("@{}", file.display());
    assert_eq!(
        ok(&["sql", "--format", "csv", &at], None),
        "a,b\n1,\"x,y\"\n"
    );
    assert_eq!(
        ok(&["sql", "--format", "csv", "-"], Some("select 2 as a;")),
        "a\n2\n"
    );

    let missing = dir.path().join("missing.sql");
    let err = fails(&["sql", &format!("@{}", missing.display())], None);
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn several_statements_and_formats() {
    let out = ok(
        &[
            "sql",
            "--format",
            "csv",
            "select 1 as a; select 'two' as b, null as c",
        ],
        None,
    );
    assert_eq!(out, "a\n1\n\nb,c\ntwo,\n");

    let out = ok(
        &[
            "sql",
            "--format",
            "json",
            "select 1 as a; select 'q\"' as b, null as c",
        ],
        None,
    );
    assert_eq!(out, "{\"a\":1}\n{\"b\":\"q\\\"\",\"c\":null}\n");

    let o = ffq(&["sql", "select 1 as a"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "+---+\n| a |\n+---+\n| 1 |\n+---+\n");
    assert!(stderr(&o).starts_with("1 row in "), "{}", stderr(&o));

    let out = ok(&["sql", "--explain", "select 1 as a"], None);
    assert!(out.contains("== Physical plan =="), "{out}");
}

#[test]
fn syntax_error() {
    let err = fails(&["sql", "select 1;\nselec 2"], None);
    assert!(err.contains("Line: 2"), "{err}");
    assert!(err.contains("Column: 1"), "{err}");
}

#[test]
fn empty_query() {
    fails(&["sql", ""], None);
    fails(&["sql", "-"], Some("  \n"));
    fails(&["sql", " -- just a comment"], None);
}

#[test]
fn planning_error() {
    let err = fails(&["sql", "select * from no_such_table"], None);
    assert!(err.contains("no_such_table"), "{err}");
}

#[test]
fn missing_table_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join("t.parquet");
    let path = path.display().to_string();
    let err = fails(
        &["sql", "--table", &format!("t={path}"), "select * from t"],
        None,
    );
    assert!(err.contains(&path), "{err}");

    let csv = dir.path().join("t.csv").display().to_string();
    let err = fails(
        &["sql", "--table", &format!("t={csv}"), "select * from t"],
        None,
    );
    assert!(err.contains(&csv), "{err}");
}

#[test]
fn csv_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    std::fs::write(&path, "k,v\n1,a\n2,b\n3,c\n").unwrap();
    let arg = format!("t={}", path.display());
    let out = ok(
        &[
            "sql",
            "--table",
            &arg,
            "--format",
            "csv",
            "select sum(k) as s, max(v) as m from t",
        ],
        None,
    );
    assert_eq!(out, "s,m\n6,c\n");
}

#[test]
fn tpch_gen_then_query_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("tpch");
    let out_arg = out_dir.display().to_string();
    let o = ffq(
        &[
            "tpch-gen",
            "--sf",
            "0.01",
            "--out",
            &out_arg,
            "--partitions",
            "2",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for table in [
        "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
    ] {
        assert!(
            out_dir.join(table).join("part-0.parquet").is_file(),
            "{table}"
        );
    }
    assert!(out_dir.join("orders").join("part-1.parquet").is_file());
    assert!(!out_dir.join("nation").join("part-1.parquet").exists());

    let nation = format!("nation={}", out_dir.join("nation").display());
    let orders = format!("orders={}", out_dir.join("orders").display());
    let out = ok(
        &[
            "sql",
            "--table",
            &nation,
            "--table",
            &orders,
            "--format",
            "csv",
            "select count(*) as n from nation; select count(*) as n from orders",
        ],
        None,
    );
    assert_eq!(out, "n\n25\n\nn\n15000\n");
}

#[test]
fn bad_arguments() {
    let o = ffq(&["tpch-gen", "--sf", "0", "--out", "/tmp/never-used"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error: "));
    // clap usage errors exit with 2.
    let o = ffq(&["sql", "--format", "xml", "select 1"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn slt_reports_each_file_and_exits_1_on_failure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write .slt");
    };
    write("a_ok.slt", "query IT\nSELECT 1, 'x'\n----\n1 x\n");
    write(
        "b_skip.slt",
        "statement ok\nBEGIN\n\nquery I\nSELECT 1\n----\n1\n",
    );
    let path = dir.path().to_str().expect("utf-8 path");

    // Skips are reported with their reason but are not failures.
    let o = ffq(&["slt", path], None);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("ok ") && lines[0].contains("a_ok.slt"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("skipped ") && lines[1].contains("not supported"),
        "{out}"
    );
    assert_eq!(lines[2], "1 passed, 0 failed, 1 skipped");

    // --strict turns the skip into a failure.
    let o = ffq(&["slt", path, "--strict"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).ends_with("1 passed, 1 failed, 0 skipped\n"),
        "{}",
        stdout(&o)
    );

    write("c_bad.slt", "query I\nSELECT 1\n----\n2\n");
    let o = ffq(&["slt", path], None);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("FAILED  ") && out.contains("c_bad.slt:1: query result mismatch"),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 1 failed, 1 skipped\n"), "{out}");
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));

    // One file.
    let file = dir.path().join("a_ok.slt");
    let o = ffq(&["slt", file.to_str().expect("utf-8 path")], None);
    assert!(o.status.success());
    assert!(stdout(&o).ends_with("1 passed, 0 failed, 0 skipped\n"));
}

#[test]
fn repl_runs_a_piped_script() {
    // Statements span lines, share lines, and hold `;` in a string and a
    // comment; an error does not stop the script.
    let script = "select n_name\n  from nation\n  where n_nationkey = 7;\n\
                  \\d\n\
                  select * from no_such_table;\n\
                  \\d lineitem\n\
                  select 'a;b' as s, -- a comment; with a semicolon\n  2 as n; select 3 as three;\n\
                  select 4 as last";
    let o = ffq(&["--tpch", "0.01"], Some(script));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{err}\n{out}");
    assert!(!out.contains("ffq>"), "no prompt when piped: {out}");

    let position = |what: &str| {
        out.find(what)
            .unwrap_or_else(|| panic!("{what:?} missing from {out}"))
    };
    let order = [
        "| GERMANY |",
        "| lineitem | table | 16",
        "| nation   | table | 4 ",
        "column_name",
        "| l_orderkey ",
        "| l_comment ",
        "| a;b | 2 |",
        "| three |",
        "| last |",
    ];
    for pair in order.windows(2) {
        assert!(position(pair[0]) < position(pair[1]), "{pair:?} in {out}");
    }

    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].starts_with("error: ") && errors[0].contains("no_such_table"));
    // Timing is on: one line per statement that ran.
    assert_eq!(err.matches(" row in ").count(), 4, "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // `ffq repl` is the same shell; \timing turns the times off.
    let o = ffq(
        &["repl", "--format", "csv"],
        Some("\\timing\nselect 1 as a;\nselect 2 as b;\n\\q\nselect 3 as c;\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "a\n1\n\nb\n2\n");
    assert!(!stderr(&o).contains(" in "), "{}", stderr(&o));
}

#[test]
fn repl_meta_command_errors() {
    let o = ffq(
        &["--format", "csv"],
        Some("\\x\n\\d no_such_table\n\\timing maybe\nselect 1 as a;\n"),
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(stdout(&o), "a\n1\n");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 3, "{err}");
    assert!(
        errors[0].starts_with("error: unknown command \\x") && errors[0].contains("\\?"),
        "{err}"
    );
    assert!(
        errors[1].contains("no table or view named no_such_table"),
        "{err}"
    );
    assert!(errors[2].contains("\\timing"), "{err}");

    // The help lists the commands.
    let out = ok(&["repl"], Some("\\?\n"));
    for command in ["\\d ", "\\d NAME", "\\timing", "\\q", "\\?"] {
        assert!(out.contains(command), "{command} missing from {out}");
    }
}

#[test]
fn progress_line_is_drawn_on_stderr_and_erased_before_results() {
    let out = Command::new(FFQ)
        .args([
            "sql",
            "--tpch",
            "0.01",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM lineitem",
        ])
        .env("FFQ_PROGRESS", "1")
        .env("FFQ_PROGRESS_AFTER_MS", "0")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n60175\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rows scanned · stages "), "{err:?}");
    assert!(err.ends_with("\r\x1b[K"), "erased at the end: {err:?}");
    // Off when stderr is not a terminal (the default here).
    let out = Command::new(FFQ)
        .args(["sql", "--tpch", "0.01", "SELECT count(*) FROM nation"])
        .env("FFQ_PROGRESS_AFTER_MS", "0")
        .env_remove("FFQ_PROGRESS")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("rows scanned"));
}

#[test]
fn explain_format_draws_the_stage_dag() {
    let run = |format: &str| {
        let out = Command::new(FFQ)
            .args([
                "sql",
                "--tpch",
                "0.01",
                "--explain-format",
                format,
                "SELECT n_regionkey, count(*) FROM nation GROUP BY n_regionkey",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run("dot").starts_with("digraph stages {"));
    assert!(run("mermaid").starts_with("flowchart BT"));
    assert!(run("text").contains("== Physical plan =="));
}
