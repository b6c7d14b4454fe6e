//! A secured cluster (mutual TLS and access control by role; user-password
//! authentication) against rogue zenoh sessions: without credentials they
//! get nothing, with a worker's identity they cannot act as a client or as
//! the coordinator, and honest queries running meanwhile return the
//! embedded rows.
//!
//! Every probe counts what arrives within a timeout; each test also runs
//! the same probe as an honest member, which must get an answer, so a
//! probe that could never see anything fails the test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ffq::cluster::protocol::{encode, StatusRequest};
use ffq::cluster::{Credentials, Role, Security, TlsFiles};
use ffq::{Engine, LocalCluster};

use crate::common::certs::TestCa;
use crate::common::{check_parity, tpch_cluster_engine, tpch_engine, tpch_query};

const SF: f64 = 0.01;

/// How long a probe waits for something to arrive.
const PROBE: Duration = Duration::from_millis(1500);

/// A raw zenoh session connecting to `endpoint`, trusting the CA of
/// `trust` and showing the certificate of `tls` (listening too, so that
/// peers may connect to it), and with no access control of its own: it
/// takes whatever peers send it.
async fn rogue(
    endpoint: &str,
    trust: Option<&TlsFiles>,
    tls: Option<&TlsFiles>,
    login: Option<(&str, &str)>,
) -> zenoh::Session {
    let mut c = zenoh::Config::default();
    let mut set = |k: &str, v: String| c.insert_json5(k, &v).unwrap();
    let path = |p: &std::path::Path| format!("{:?}", p.display().to_string());
    set("mode", "\"peer\"".into());
    set("scouting/multicast/enabled", "false".into());
    set("connect/endpoints", format!("[{endpoint:?}]"));
    set("listen/endpoints", "[]".into());
    if let Some(t) = trust {
        set("transport/link/tls/root_ca_certificate", path(&t.ca));
    }
    if let Some(t) = tls {
        for side in ["connect", "listen"] {
            set(
                &format!("transport/link/tls/{side}_certificate"),
                path(&t.cert),
            );
            set(
                &format!("transport/link/tls/{side}_private_key"),
                path(&t.key),
            );
        }
        set("transport/link/tls/enable_mtls", "true".into());
        set("listen/endpoints", "[\"quic/127.0.0.1:0\"]".into());
    }
    if let Some((user, password)) = login {
        set("transport/auth/usrpwd/user", format!("{user:?}"));
        set("transport/auth/usrpwd/password", format!("{password:?}"));
    }
    let session = zenoh::open(c).await.unwrap();
    // Connecting may go on in the background: give it time to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    session
}

/// Replies (answers or errors) to a get on `key` within [`PROBE`].
async fn replies(session: &zenoh::Session, key: &str, payload: Vec<u8>) -> usize {
    let replies = session
        .get(key)
        .payload(payload)
        .timeout(PROBE)
        .await
        .unwrap();
    let mut n = 0;
    while let Ok(Ok(_)) = tokio::time::timeout(PROBE * 2, replies.recv_async()).await {
        n += 1;
    }
    n
}

/// The token rogues declare: a session sees its own, which [`tokens`]
/// does not count.
const ROGUE_TOKEN: &str = "worker/rogue";

/// Liveliness tokens under `key` that `session` sees within [`PROBE`],
/// but the rogue's own.
async fn tokens(session: &zenoh::Session, key: &str) -> usize {
    let replies = session.liveliness().get(key).timeout(PROBE).await.unwrap();
    let mut n = 0;
    while let Ok(Ok(reply)) = tokio::time::timeout(PROBE * 2, replies.recv_async()).await {
        let own = reply
            .result()
            .is_ok_and(|s| s.key_expr().as_str().ends_with(ROGUE_TOKEN));
        n += usize::from(!own);
    }
    n
}

/// What a session without the right to anything must not get: no token,
/// no status, no answer to a submit or an assignment, no data. Returns
/// the counts, all of which must be 0.
async fn everything_seen(session: &zenoh::Session, cluster: &str) -> Vec<(&'static str, usize)> {
    let status = encode(&StatusRequest).unwrap();
    let p = format!("ffq/{cluster}");
    vec![
        ("tokens", tokens(session, &format!("{p}/**")).await),
        (
            "status",
            replies(session, &format!("{p}/ctl/coordinator/status"), status).await,
        ),
        (
            "submit",
            replies(session, &format!("{p}/ctl/coordinator/submit"), vec![0xa0]).await,
        ),
        (
            "assign",
            replies(session, &format!("{p}/ctl/worker/*/assign"), vec![0xa0]).await,
        ),
        (
            "worker state",
            replies(session, &format!("{p}/ctl/worker/*/state"), vec![]).await,
        ),
        (
            "data",
            replies(session, &format!("{p}/data/**"), vec![]).await,
        ),
    ]
}

fn assert_nothing_seen(who: &str, seen: &[(&str, usize)]) {
    let got: Vec<_> = seen.iter().filter(|(_, n)| *n > 0).collect();
    assert!(got.is_empty(), "{who} got something: {got:?}");
}

/// A cluster of a coordinator and 2 workers whose members show
/// certificates of `ca` with their role's default name.
async fn quic_cluster(ca: &TestCa, name: &str) -> LocalCluster {
    let members = Role::ALL.map(|r| (r, ca.member(&r.default_identity())));
    LocalCluster::builder()
        .workers(2)
        .cluster(name)
        .security(move |role| Security {
            tls: members
                .iter()
                .find(|(r, _)| *r == role)
                .map(|(_, t)| t.clone()),
            ..Security::default()
        })
        .start()
        .await
        .unwrap()
}

/// Runs `queries` at once on `engine` and checks each against embedded.
async fn concurrent_parity(queries: &[usize], embedded: &Engine, engine: &Engine) {
    let runs = queries.iter().map(|&q| async move {
        check_parity(&format!("q{q}"), &tpch_query(q), embedded, engine).await
    });
    let failures: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quic_cluster_answers_tpch_and_strangers_get_nothing() {
    let ca = TestCa::new("ffq test CA");
    let cluster = quic_cluster(&ca, "secure-tls").await;
    assert!(
        cluster.endpoint().starts_with("quic/"),
        "{}",
        cluster.endpoint()
    );
    let embedded = tpch_engine(SF, 4);
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 4).await;
    for q in [1, 3, 6, 13] {
        check_parity(&format!("q{q}"), &tpch_query(q), &embedded, &engine)
            .await
            .unwrap();
    }

    let endpoint = cluster.endpoint().to_string();
    // Every TLS rogue trusts the cluster's CA (it can check the server).
    let trust = ca.member("trusting");
    let foreign = TestCa::new("another CA");
    let rogues = [
        ("plain tcp", endpoint.replace("quic/", "tcp/"), None, None),
        ("no certificate", endpoint.clone(), Some(&trust), None),
        (
            "a certificate of another CA",
            endpoint.clone(),
            Some(&trust),
            Some(foreign.member("ffq-client")),
        ),
        (
            "a certificate of no member",
            endpoint.clone(),
            Some(&trust),
            Some(ca.member("stranger")),
        ),
    ];
    // Honest queries run while the rogues probe.
    let honest = concurrent_parity(&[1, 5, 10, 18], &embedded, &engine);
    let probes = async {
        for (who, endpoint, trust, tls) in &rogues {
            let session = rogue(endpoint, *trust, tls.as_ref(), None).await;
            // Announcing itself as a worker must not register it either.
            let _token = session
                .liveliness()
                .declare_token(format!("ffq/secure-tls/{ROGUE_TOKEN}"))
                .await
                .unwrap();
            assert_nothing_seen(who, &everything_seen(&session, "secure-tls").await);
            session.close().await.unwrap();
        }
    };
    tokio::join!(honest, probes);
    let status = cluster.status();
    assert_eq!(
        status
            .workers
            .iter()
            .map(|w| w.info.id.to_string())
            .filter(|id| id == "rogue")
            .count(),
        0,
        "a rogue registered as a worker: {status:?}"
    );

    // The same probe as a client member gets answers: it is not vacuous.
    let member = ca.member("ffq-client");
    let client = rogue(&endpoint, Some(&member), Some(&member), None).await;
    let seen = everything_seen(&client, "secure-tls").await;
    let count = |what| seen.iter().find(|(w, _)| *w == what).map(|(_, n)| *n);
    assert_eq!(count("status"), Some(1), "{seen:?}");
    assert!(count("tokens") >= Some(1), "{seen:?}");
    // Only the coordinator may assign.
    assert_eq!(count("assign"), Some(0), "{seen:?}");
    client.close().await.unwrap();
    drop(engine);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_identity_cannot_submit_nor_answer_as_the_coordinator() {
    let ca = TestCa::new("ffq test CA");
    let cluster = quic_cluster(&ca, "secure-roles").await;
    let embedded = tpch_engine(SF, 4);
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 4).await;
    let worker = ca.member("ffq-worker");
    let session = rogue(cluster.endpoint(), Some(&worker), Some(&worker), None).await;
    let p = "ffq/secure-roles";
    // What a worker needs still works: it sees the coordinator's token
    // (and is connected before the honest queries start).
    assert_eq!(tokens(&session, &format!("{p}/coordinator")).await, 1);

    // It would answer every control request sent to the coordinator.
    let stolen = Arc::new(AtomicUsize::new(0));
    let queryable = session
        .declare_queryable(format!("{p}/ctl/coordinator/*"))
        .await
        .unwrap();
    let server = {
        let stolen = Arc::clone(&stolen);
        tokio::spawn(async move {
            while let Ok(query) = queryable.recv_async().await {
                stolen.fetch_add(1, Ordering::Relaxed);
                let _ = query.reply(query.key_expr().clone(), vec![0u8]).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    concurrent_parity(&[3, 6, 12, 14], &embedded, &engine).await;
    assert_eq!(
        stolen.load(Ordering::Relaxed),
        0,
        "requests reached the fake coordinator"
    );
    // Its own gets would reach its own queryable: gone before probing.
    server.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let status = encode(&StatusRequest).unwrap();
    let submit = replies(&session, &format!("{p}/ctl/coordinator/submit"), vec![0xa0]).await;
    let asked = replies(&session, &format!("{p}/ctl/coordinator/status"), status).await;
    let assign = replies(&session, &format!("{p}/ctl/worker/*/assign"), vec![0xa0]).await;
    let release = replies(&session, &format!("{p}/ctl/worker/*/release"), vec![0xa0]).await;
    assert_eq!((submit, asked, assign, release), (0, 0, 0, 0));
    session.close().await.unwrap();
    drop(engine);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_password_cluster_refuses_sessions_without_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        "ffq-coordinator:c-pw\nffq-worker:w-pw\nffq-client:k-pw\n",
    )
    .unwrap();
    let users_file = users.clone();
    let cluster = LocalCluster::builder()
        .workers(2)
        .cluster("secure-pw")
        .security(move |role| {
            let pw = match role {
                Role::Coordinator => "c-pw",
                Role::Worker => "w-pw",
                Role::Client => "k-pw",
            };
            Security {
                credentials: Some(Credentials::new(role.default_identity(), pw).unwrap()),
                accepted_users: (role != Role::Client).then(|| users_file.clone()),
                ..Security::default()
            }
        })
        .start()
        .await
        .unwrap();
    let embedded = tpch_engine(SF, 4);
    let engine = tpch_cluster_engine(cluster.client_config(), SF, 4).await;
    let endpoint = cluster.endpoint().to_string();
    let honest = concurrent_parity(&[1, 6, 9], &embedded, &engine);
    let probes = async {
        for (who, login) in [
            ("no login", None),
            ("a wrong password", Some(("ffq-client", "guess"))),
            ("an unknown user", Some(("mallory", "k-pw"))),
        ] {
            let session = rogue(&endpoint, None, None, login).await;
            assert_nothing_seen(who, &everything_seen(&session, "secure-pw").await);
            session.close().await.unwrap();
        }
    };
    tokio::join!(honest, probes);
    let client = rogue(&endpoint, None, None, Some(("ffq-client", "k-pw"))).await;
    let status = encode(&StatusRequest).unwrap();
    let asked = replies(&client, "ffq/secure-pw/ctl/coordinator/status", status).await;
    assert_eq!(asked, 1, "an honest login gets the status");
    client.close().await.unwrap();
    drop(engine);
    cluster.shutdown().await;
}

/// A process killed when dropped.
struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_secure_coordinator_worker_and_client() {
    use crate::common::ffq_binary::{ffq, ffq_cli, FFQ};
    use std::process::{Command, Stdio};

    let ca = TestCa::new("ffq test CA");
    let tls = |cn: &str| -> Vec<String> {
        let t = ca.member(cn);
        [
            ("--tls-ca", t.ca),
            ("--tls-cert", t.cert),
            ("--tls-key", t.key),
        ]
        .into_iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .collect()
    };
    let port = ffq::cluster::process::free_port().unwrap();
    let endpoint = format!("quic/127.0.0.1:{port}");
    let spawn = |args: Vec<String>| {
        Node(
            Command::new(FFQ)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let common = |cn: &str| {
        let mut args = vec!["--cluster".to_string(), "secure-cli".to_string()];
        args.extend(tls(cn));
        args
    };
    let mut coordinator = vec!["coordinator".into(), "--listen".into(), endpoint.clone()];
    coordinator.extend(common("ffq-coordinator"));
    let _coordinator = spawn(coordinator);
    let mut worker: Vec<String> = [
        "worker",
        "--connect",
        &endpoint,
        "--listen",
        "quic/127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec();
    worker.extend(common("ffq-worker"));
    let _worker = spawn(worker);

    let client = common("ffq-client");
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(client.iter().map(String::as_str));
        ffq_cli(&args)
    };
    let start = std::time::Instant::now();
    loop {
        let (_, status, err) = run(&["status", "--connect", &endpoint]);
        if status.contains("workers: 1 alive") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{status}{err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sql =
        "SELECT r_name, count(*) AS nations FROM nation JOIN region ON n_regionkey = r_regionkey \
               GROUP BY r_name ORDER BY r_name";
    let embedded = ffq(&["sql", "--tpch", "0.01", "--format", "csv", sql], None);
    let (ok, distributed, err) = run(&[
        "sql",
        "--connect",
        &endpoint,
        "--tpch",
        "0.01",
        "--format",
        "csv",
        sql,
    ]);
    assert!(ok, "{err}");
    assert_eq!(distributed, String::from_utf8_lossy(&embedded.stdout));
    assert_eq!(distributed.lines().count(), 6, "{distributed}");

    // Without a certificate, no coordinator answers.
    let out = ffq(
        &[
            "sql",
            "--connect",
            &endpoint,
            "--cluster",
            "secure-cli",
            "SELECT 1",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no coordinator"),
        "{err}"
    );
    // TLS flags with a plain endpoint are refused before connecting.
    let (ok, _, err) = run(&["sql", "--connect", "tcp/127.0.0.1:1", "SELECT 1"]);
    assert!(!ok && err.contains("is not encrypted"), "{err}");
}
