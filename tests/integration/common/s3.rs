//! A real S3 server on loopback for the object-storage tests: `s3s-fs`
//! serving a temporary directory over HTTP (hyper) on a thread of its own,
//! with SigV4 authentication. Buckets are directories of that temporary
//! directory; objects are uploaded through the S3 API.
//!
//! One server per test process ([`s3_server`]): the object-store options
//! of a process are process-wide, and they point at this server. Its
//! directory outlives the process; the next test process removes it
//! ([`process_temp_dir`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub const ACCESS_KEY: &str = "ffq-test-access-key";
pub const SECRET_KEY: &str = "ffq-test-secret-key";
pub const REGION: &str = "us-east-1";

/// The running server: its endpoint and the directory it serves.
pub struct S3Server {
    endpoint: String,
    root: PathBuf,
}

impl S3Server {
    /// Creates bucket `name` (empty) if it does not exist.
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.join(name))
            .unwrap_or_else(|e| panic!("creating bucket {name}: {e}"));
    }

    /// The environment a process reads this server with: the standard
    /// AWS variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    }

    /// The same as object-store options (`--object-store-config` keys).
    pub fn options(&self) -> Vec<(String, String)> {
        vec![
            ("aws_access_key_id".into(), ACCESS_KEY.into()),
            ("aws_secret_access_key".into(), SECRET_KEY.into()),
            ("aws_region".into(), REGION.into()),
            ("aws_endpoint".into(), self.endpoint.clone()),
            ("aws_allow_http".into(), "true".into()),
        ]
    }

    /// Uploads every file under `dir` (recursively) to `bucket` under
    /// `prefix`, through the S3 API (PUT object).
    pub async fn upload_dir(&self, dir: &Path, bucket: &str, prefix: &str) {
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_region(REGION)
            .build()
            .unwrap_or_else(|e| panic!("S3 client for {}: {e}", self.endpoint));
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                let key = ObjectPath::from(format!("{prefix}/{relative}"));
                let bytes = std::fs::read(&path).unwrap();
                store
                    .put(&key, PutPayload::from(bytes))
                    .await
                    .unwrap_or_else(|e| panic!("uploading {}: {e}", path.display()));
            }
        }
    }
}

/// The S3 server of this test process, started on first use.
pub fn s3_server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// Starts the server on a thread with its own runtime (it outlives every
/// test's runtime) and returns once it listens.
fn start() -> S3Server {
    let root = process_temp_dir("s3-server");
    let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs over the temp dir");
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("the S3 server's address");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    std::thread::Builder::new()
        .name("s3-server".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the S3 server's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let http = ConnBuilder::new(TokioExecutor::new());
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    let connection = http
                        .serve_connection(TokioIo::new(socket), service.clone())
                        .into_owned();
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
            });
        })
        .expect("the S3 server's thread");
    S3Server {
        endpoint: format!("http://{address}"),
        root,
    }
}

/// A new directory `ffq-NAME-PID` in the temp dir, for data that lives as
/// long as this test process: statics are never dropped, so directories
/// of earlier test processes that have ended are removed here instead.
pub fn process_temp_dir(name: &str) -> PathBuf {
    let base = std::env::temp_dir();
    let prefix = format!("ffq-{name}-");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().to_string();
            let Some(pid) = file_name.strip_prefix(&prefix) else {
                continue;
            };
            let ended = pid.parse::<u32>().is_ok_and(|pid| {
                cfg!(target_os = "linux") && !Path::new(&format!("/proc/{pid}")).exists()
            });
            if ended {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}
