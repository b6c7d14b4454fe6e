use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use ffq_dataflow::plan::{ParquetSplit, PhysicalPlan, ScanSource};

use super::PathPolicy;
use crate::scheduler::tests::nation_scan;

fn scan(source: ScanSource) -> PhysicalPlan {
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
    PhysicalPlan::Scan {
        source,
        table_schema: Arc::clone(&schema),
        projection: None,
        pruning: vec![],
        schema,
    }
}

fn csv(paths: &[&Path]) -> PhysicalPlan {
    scan(ScanSource::Csv {
        partitions: vec![paths.iter().map(|p| p.display().to_string()).collect()],
        has_header: true,
        delimiter: b',',
    })
}

fn parquet(path: &Path) -> PhysicalPlan {
    scan(ScanSource::Parquet {
        partitions: vec![vec![ParquetSplit {
            path: path.display().to_string(),
            row_groups: vec![0],
        }]],
    })
}

/// A root with `inside.csv` and a sibling directory with `outside.csv`.
struct Dirs {
    _base: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn dirs() -> Dirs {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    let other = base.path().join("other");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(root.join("inside.csv"), "a\n1\n").unwrap();
    let outside = other.join("outside.csv");
    std::fs::write(&outside, "a\n2\n").unwrap();
    Dirs {
        root,
        outside,
        _base: base,
    }
}

fn refusal(policy: &PathPolicy, plan: &PhysicalPlan) -> String {
    let err = policy.check(plan).unwrap_err();
    assert!(err.is_deterministic(), "{err}");
    err.to_string()
}

#[test]
fn files_under_a_root_pass_and_others_are_named() {
    let d = dirs();
    let policy = PathPolicy::new(std::slice::from_ref(&d.root)).unwrap();
    policy.check(&csv(&[&d.root.join("inside.csv")])).unwrap();
    policy.check(&parquet(&d.root.join("inside.csv"))).unwrap();
    let message = refusal(&policy, &csv(&[&d.root.join("inside.csv"), &d.outside]));
    assert_eq!(
        message,
        format!(
            "not allowed: {} is outside the worker's allowed paths (--allow-path)",
            d.outside.display()
        )
    );
    let message = refusal(&policy, &parquet(Path::new("/etc/passwd")));
    assert!(
        message.starts_with("not allowed: /etc/passwd is outside"),
        "{message}"
    );
}

#[test]
fn no_root_refuses_every_file_but_not_generated_tables() {
    let d = dirs();
    let policy = PathPolicy::new(&[]).unwrap();
    refusal(&policy, &csv(&[&d.root.join("inside.csv")]));
    policy.check(&nation_scan()).unwrap();
    policy
        .check(&scan(ScanSource::Memory {
            table: "t".into(),
            partitions: 1,
        }))
        .unwrap();
}

#[test]
fn dot_dot_and_symlinks_do_not_lead_out() {
    let d = dirs();
    let policy = PathPolicy::new(std::slice::from_ref(&d.root)).unwrap();
    let escape = d.root.join("..").join("other").join("outside.csv");
    assert!(refusal(&policy, &csv(&[&escape])).contains(&escape.display().to_string()));
    // A missing file is judged on its lexical form.
    let missing = d.root.join("..").join("other").join("missing.csv");
    refusal(&policy, &csv(&[&missing]));
    policy
        .check(&csv(&[&d.root.join("sub").join("..").join("missing.csv")]))
        .unwrap();
    #[cfg(unix)]
    {
        let link = d.root.join("link.csv");
        std::os::unix::fs::symlink(&d.outside, &link).unwrap();
        refusal(&policy, &csv(&[&link]));
        let dir_link = d.root.join("dir");
        std::os::unix::fs::symlink(d.outside.parent().unwrap(), &dir_link).unwrap();
        refusal(&policy, &csv(&[&dir_link.join("outside.csv")]));
    }
}

#[test]
fn a_root_that_does_not_exist_is_a_config_error() {
    let err = PathPolicy::new(&[PathBuf::from("/no/such/ffq/root")]).unwrap_err();
    assert!(
        err.to_string().contains("--allow-path /no/such/ffq/root"),
        "{err}"
    );
}

#[test]
fn url_roots_allow_the_objects_under_their_prefix_only() {
    let policy = PathPolicy::new(&[
        PathBuf::from("s3://bucket/data"),
        PathBuf::from("https://files.example.com/pub/"),
    ])
    .unwrap();
    for allowed in [
        "s3://bucket/data/t.parquet",
        "s3://bucket/data/nested/t.csv",
        "s3://bucket/data/./t.parquet",
        "https://files.example.com/pub/t.parquet",
        "HTTPS://FILES.example.com/pub/t.parquet",
    ] {
        assert!(policy.allows_location(allowed), "{allowed}");
    }
    for refused in [
        "s3://bucket/database/t.parquet",
        "s3://bucket/other/t.parquet",
        "s3://other-bucket/data/t.parquet",
        "s3://bucket/data/../secret/t.parquet",
        "s3://bucket/data/%2E%2E/secret/t.parquet",
        "gs://bucket/data/t.parquet",
        "https://files.example.com/private/t.parquet",
        "http://files.example.com/pub/t.parquet",
        "/etc/passwd",
    ] {
        assert!(!policy.allows_location(refused), "{refused}");
    }
    // A URL root allows no local file, and a local root no URL.
    let local = PathPolicy::new(&[std::env::temp_dir()]).unwrap();
    assert!(!local.allows_location("s3://bucket/data/t.parquet"));
}

#[test]
fn a_url_plan_outside_the_url_roots_is_refused_with_the_url() {
    let policy = PathPolicy::new(&[PathBuf::from("s3://bucket/data/")]).unwrap();
    let url = "s3://bucket/secret/t.parquet";
    let plan = scan(ScanSource::Parquet {
        partitions: vec![vec![ParquetSplit {
            path: url.to_string(),
            row_groups: vec![],
        }]],
    });
    let err = policy.check(&plan).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("not allowed: {url} is outside the worker's allowed paths (--allow-path)")
    );
    let inside = scan(ScanSource::Csv {
        partitions: vec![vec!["s3://bucket/data/t.csv".to_string()]],
        has_header: true,
        delimiter: b',',
    });
    policy.check(&inside).unwrap();
}

fn write_to(target: ffq_dataflow::plan::WriteTarget, input: PhysicalPlan) -> PhysicalPlan {
    use ffq_dataflow::plan::{write_count_schema, FileFormat, FileSink};
    PhysicalPlan::Write {
        sink: FileSink {
            target,
            format: FileFormat::Json,
            file_schema: input.schema(),
            partition_by: vec![],
        },
        input: Box::new(input),
        schema: write_count_schema(),
    }
}

#[test]
fn writes_obey_the_roots_of_reads() {
    use ffq_dataflow::plan::WriteTarget;
    let d = dirs();
    let policy = PathPolicy::new(std::slice::from_ref(&d.root)).unwrap();
    let inside = csv(&[&d.root.join("inside.csv")]);
    let file = |p: PathBuf| WriteTarget::File {
        path: p.display().to_string(),
    };
    let dir = |p: PathBuf| WriteTarget::Directory {
        dir: format!("{}/", p.display()),
        prefix: "part".into(),
    };
    // Targets that do not exist yet are checked by name.
    for allowed in [file(d.root.join("new.json")), dir(d.root.join("new/dir"))] {
        policy
            .check(&write_to(allowed.clone(), inside.clone()))
            .unwrap_or_else(|e| panic!("{allowed:?}: {e}"));
    }
    let outside_dir = d.outside.parent().unwrap().to_path_buf();
    for refused in [
        file(outside_dir.join("x.json")),
        dir(outside_dir.clone()),
        file(d.root.join("../other/x.json")),
    ] {
        let e = policy
            .check(&write_to(refused.clone(), inside.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("not allowed: ") && e.contains(refused.location()),
            "{refused:?}: {e}"
        );
    }
}
