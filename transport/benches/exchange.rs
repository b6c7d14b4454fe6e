//! Throughput of Arrow batches through the exchanges: the in-process
//! channels, and the zenoh data path (output store, queryable, fetch with
//! verification) between two sessions over loopback TCP, in one process
//! and between two processes (the bench re-executes itself as the
//! producer). Between two processes it runs over TCP and over zenoh's
//! shared memory, each both through FFQ's frames (fetch + verification +
//! IPC decoding) and as raw zenoh (the same frame bytes replied to one
//! get and only made contiguous), in turns against one producer: the
//! ratio of the two is the cost of framing and verification.
//!
//! Run: `cargo bench -p ffq-transport --bench exchange` (release). Env:
//! `FFQ_BENCH_SF` (TPC-H scale factor of the lineitem batches, default
//! 0.1), `FFQ_BENCH_RUNS` (runs per row, best is shown, default 3),
//! `FFQ_BENCH_BATCH` (rows per batch, default 8192: about 1 MiB frames).
//! Prints a table; MB/s counts Arrow memory of the batches, wire MB/s the
//! frame bytes received (1 MB = 10^6 B).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use ffq_dataflow::exchange::{ExchangeTransport, PartitionWriter};
use ffq_dataflow::operators::tpch_scan::{tpch_generator, tpch_schema};
use ffq_dataflow::plan::TpchTable;
use ffq_transport::zenoh_exchange::frame::{Frame, FrameEncoder, StreamVerifier};
use ffq_transport::zenoh_exchange::{
    fetch_partition, loopback_endpoint, peer_config, shared_memory, AttemptId, AttemptRef,
    ClusterId, DataKey, OutputServer, OutputStore, PartitionId, QueryId, ServeOptions, StageId,
    TaskId, ZenohPartitionWriter,
};
use ffq_transport::ChannelExchange;
use futures::StreamExt;
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::query::{ConsolidationMode, Reply};
use zenoh::Wait;

const ROLE_ENV: &str = "FFQ_BENCH_ROLE";
const ENDPOINT_ENV: &str = "FFQ_BENCH_ENDPOINT";
const SHM_ENV: &str = "FFQ_BENCH_SHM";
const CLUSTER: &str = "bench";
/// The key of the raw replies (the producer's frames without the store).
const RAW_KEY: &str = "bench/raw";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn lineitem(sf: f64) -> Vec<RecordBatch> {
    tpch_generator(
        TpchTable::LineItem,
        sf,
        1,
        1,
        env_or("FFQ_BENCH_BATCH", 8192),
    )
    .collect::<Result<Vec<_>, _>>()
    .expect("tpch generation")
}

fn arrow_bytes(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.get_array_memory_size()).sum()
}

fn attempt(task: u32) -> AttemptRef {
    AttemptRef::new(
        QueryId::new("bench").unwrap(),
        StageId(0),
        TaskId(task),
        AttemptId(0),
    )
}

struct Row {
    path: String,
    rows: usize,
    arrow: usize,
    wire: Option<u64>,
    secs: f64,
}

fn print(rows: &[Row]) {
    println!(
        "\n| {:<56} | {:>9} | {:>9} | {:>9} | {:>8} | {:>9} | {:>10} |",
        "path", "rows", "arrow MB", "wire MB", "seconds", "MB/s", "wire MB/s"
    );
    println!(
        "|{:-<58}|{:->11}|{:->11}|{:->11}|{:->10}|{:->11}|{:->12}|",
        "", "", "", "", "", "", ""
    );
    for r in rows {
        println!(
            "| {:<56} | {:>9} | {:>9.1} | {:>9} | {:>8.3} | {:>9.0} | {:>10} |",
            r.path,
            r.rows,
            r.arrow as f64 / 1e6,
            r.wire
                .map(|w| format!("{:.1}", w as f64 / 1e6))
                .unwrap_or_else(|| "-".into()),
            r.secs,
            r.arrow as f64 / 1e6 / r.secs,
            r.wire
                .map(|w| format!("{:.0}", w as f64 / 1e6 / r.secs))
                .unwrap_or_else(|| "-".into()),
        );
    }
}

async fn best<F, Fut>(runs: usize, mut f: F) -> (f64, Option<u64>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (Duration, Option<u64>)>,
{
    let mut best: Option<(f64, Option<u64>)> = None;
    for _ in 0..runs {
        let (d, w) = f().await;
        let s = d.as_secs_f64();
        if best.is_none_or(|(b, _)| s < b) {
            best = Some((s, w));
        }
    }
    best.unwrap_or((f64::NAN, None))
}

/// ChannelExchange, 1 producer -> 1 consumer.
async fn channel_run(batches: Arc<Vec<RecordBatch>>) -> (Duration, Option<u64>) {
    let ex = ChannelExchange::default();
    let (mut writers, mut readers) = ex.open(1, 1, batches[0].schema()).unwrap();
    let mut w = writers.pop().unwrap();
    let mut r = readers.pop().unwrap();
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        for b in batches.iter() {
            w.send(0, Ok(b.clone())).await.unwrap();
        }
    });
    let mut n = 0;
    while let Some(b) = r.next().await {
        n += b.unwrap().num_rows();
    }
    producer.await.unwrap();
    assert!(n > 0);
    (start.elapsed(), None)
}

/// Encoding only: batches into frames (no store, no network).
fn encode_only(batches: &[RecordBatch]) -> (Duration, Vec<Vec<u8>>, usize) {
    let start = Instant::now();
    let mut enc = FrameEncoder::new(
        attempt(0).stream(PartitionId(0)),
        batches[0].schema(),
        4 << 20,
    );
    let mut frames = vec![enc.schema_frame().unwrap()];
    let schema_frame = frames[0].len();
    for b in batches {
        frames.extend(enc.batch_frames(b).unwrap());
    }
    frames.push(enc.end_frame().unwrap());
    (start.elapsed(), frames, schema_frame)
}

/// Decoding and verification only (frames already in memory).
fn decode_only(frames: &[Vec<u8>]) -> Duration {
    let start = Instant::now();
    let mut v = StreamVerifier::new(attempt(0).stream(PartitionId(0)));
    for f in frames {
        v.accept(&Frame::decode_slice(f).unwrap()).unwrap();
    }
    assert!(v.is_finished());
    start.elapsed()
}

/// Writes `batches` into `store` as partition 0 of task `task`.
fn produce(store: &OutputStore, task: u32, batches: &[RecordBatch]) {
    let mut w = ZenohPartitionWriter::new(store, attempt(task), 1, batches[0].schema()).unwrap();
    for b in batches {
        futures::executor::block_on(w.send(0, Ok(b.clone()))).unwrap();
    }
    w.finish().unwrap();
}

async fn consume(session: &zenoh::Session, task: u32) -> (usize, u64) {
    let key = DataKey::new(
        ClusterId::new(CLUSTER).unwrap(),
        attempt(task).stream(PartitionId(0)),
    );
    let mut fetch = fetch_partition(session, &key);
    let stats = fetch.stats();
    let mut rows = 0;
    while let Some(b) = fetch.next().await {
        rows += b.unwrap().num_rows();
    }
    (rows, stats.bytes())
}

struct Sessions {
    store: OutputStore,
    _server: OutputServer,
    producer: zenoh::Session,
    consumer: zenoh::Session,
}

/// An empty output store served on `session` under the bench's cluster.
async fn serve_store(session: &zenoh::Session) -> (OutputStore, OutputServer) {
    let store = OutputStore::default();
    let server = store
        .serve(
            session,
            &ClusterId::new(CLUSTER).unwrap(),
            ServeOptions::default(),
        )
        .await
        .unwrap();
    (store, server)
}

async fn sessions() -> Sessions {
    let endpoint = loopback_endpoint().unwrap();
    let producer = zenoh::open(peer_config(Some(&endpoint), &[]).unwrap())
        .await
        .unwrap();
    let (store, server) = serve_store(&producer).await;
    let consumer = zenoh::open(peer_config(None, &[&endpoint]).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    Sessions {
        store,
        _server: server,
        producer,
        consumer,
    }
}

/// A session config for the two-process runs: shared memory on or off.
fn two_process_config(listen: Option<&str>, connect: &[&str], shm: bool) -> zenoh::Config {
    let mut config = peer_config(listen, connect).unwrap();
    shared_memory(&mut config, shm).unwrap();
    config
}

/// The child process: serves the batches, prefilled, until stdin closes:
/// from its output store (runs 0..RUNS) and raw on [`RAW_KEY`].
fn producer_main() {
    let endpoint = std::env::var(ENDPOINT_ENV).expect("endpoint");
    let shm = std::env::var(SHM_ENV).as_deref() == Ok("1");
    let sf: f64 = env_or("FFQ_BENCH_SF", 0.1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let session = zenoh::open(two_process_config(Some(&endpoint), &[], shm))
            .await
            .unwrap();
        let (store, _server) = serve_store(&session).await;
        let batches = lineitem(sf);
        let runs: u32 = env_or("FFQ_BENCH_RUNS", 3);
        for task in 0..runs {
            produce(&store, task, &batches);
        }
        let (_, frames, _) = encode_only(&batches);
        let frames: Arc<Vec<ZBytes>> = Arc::new(frames.into_iter().map(ZBytes::from).collect());
        let _raw = session
            .declare_queryable(RAW_KEY)
            .callback(move |query| {
                let frames = Arc::clone(&frames);
                std::thread::spawn(move || {
                    for f in frames.iter() {
                        if query.reply(RAW_KEY, f.clone()).wait().is_err() {
                            return;
                        }
                    }
                });
            })
            .await
            .unwrap();
        println!("READY");
        std::io::stdout().flush().unwrap();
        // Serve until the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await
        .unwrap();
        session.close().await.unwrap();
    });
}

/// Raw zenoh: one get answered with the producer's frames, each made
/// contiguous and counted, nothing decoded or verified.
async fn consume_raw(session: &zenoh::Session) -> (usize, u64) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Reply>();
    session
        .get(RAW_KEY)
        .callback(move |reply| {
            let _ = tx.send(reply);
        })
        .consolidation(ConsolidationMode::None)
        .congestion_control(CongestionControl::Block)
        .timeout(Duration::from_secs(60))
        .await
        .unwrap();
    let (mut frames, mut bytes) = (0, 0u64);
    while let Some(reply) = rx.recv().await {
        let sample = reply.result().expect("a raw frame");
        let payload = sample.payload().to_bytes();
        bytes += std::hint::black_box(payload.as_ref()).len() as u64;
        frames += 1;
    }
    (frames, bytes)
}

fn main() {
    if std::env::var(ROLE_ENV).as_deref() == Ok("producer") {
        producer_main();
        return;
    }
    let sf: f64 = env_or("FFQ_BENCH_SF", 0.1);
    let runs: usize = env_or("FFQ_BENCH_RUNS", 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let batches = Arc::new(lineitem(sf));
    let nrows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let arrow = arrow_bytes(&batches);
    println!(
        "lineitem SF {sf}: {nrows} rows in {} batches, {:.1} MB of Arrow memory (generated in {:.1}s)",
        batches.len(),
        arrow as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(batches[0].schema(), tpch_schema(TpchTable::LineItem));
    let mut table = Vec::new();
    let mut overheads: Vec<String> = Vec::new();

    rt.block_on(async {
        let (secs, _) = best(runs, || channel_run(Arc::clone(&batches))).await;
        table.push(Row {
            path: "ChannelExchange (in process)".into(),
            rows: nrows,
            arrow,
            wire: None,
            secs,
        });

        let mut enc_best = f64::MAX;
        let mut dec_best = f64::MAX;
        let mut enc_info = (0, 0, 0);
        for _ in 0..runs {
            let (d, frames, schema_frame) = encode_only(&batches);
            enc_best = enc_best.min(d.as_secs_f64());
            dec_best = dec_best.min(decode_only(&frames).as_secs_f64());
            let bytes: usize = frames.iter().map(Vec::len).sum();
            enc_info = (bytes as u64, frames.len(), schema_frame);
        }
        table.push(Row {
            path: "frame encoding only (IPC + header)".into(),
            rows: nrows,
            arrow,
            wire: Some(enc_info.0),
            secs: enc_best,
        });
        table.push(Row {
            path: "frame decoding + verification only".into(),
            rows: nrows,
            arrow,
            wire: Some(enc_info.0),
            secs: dec_best,
        });
        println!(
            "frames: {} of up to 4 MiB; the schema repeated in each costs ~{} B/frame ({:.3}% of the wire bytes)",
            enc_info.1,
            enc_info.2,
            100.0 * (enc_info.2 as f64 * enc_info.1 as f64) / enc_info.0 as f64
        );

        // zenoh, one process, two sessions.
        let s = sessions().await;
        let mut task = 0;
        let (secs, wire) = best(runs, || {
            task += 1;
            let t = task;
            let store = s.store.clone();
            let b = Arc::clone(&batches);
            let consumer = s.consumer.clone();
            async move {
                produce(&store, t, &b);
                let start = Instant::now();
                let (rows, wire) = consume(&consumer, t).await;
                assert_eq!(rows, nrows);
                store.release_all();
                (start.elapsed(), Some(wire))
            }
        })
        .await;
        table.push(Row {
            path: "zenoh, 1 process: fetch of a stored partition".into(),
            rows: nrows,
            arrow,
            wire,
            secs,
        });
        let (secs, wire) = best(runs, || {
            task += 1;
            let t = task;
            let store = s.store.clone();
            let b = Arc::clone(&batches);
            let consumer = s.consumer.clone();
            async move {
                let start = Instant::now();
                let mut w =
                    ZenohPartitionWriter::new(&store, attempt(t), 1, b[0].schema()).unwrap();
                let producer = tokio::task::spawn_blocking(move || {
                    for batch in b.iter() {
                        futures::executor::block_on(w.send(0, Ok(batch.clone()))).unwrap();
                    }
                    w.finish().unwrap();
                });
                let (rows, wire) = consume(&consumer, t).await;
                producer.await.unwrap();
                assert_eq!(rows, nrows);
                store.release_all();
                (start.elapsed(), Some(wire))
            }
        })
        .await;
        table.push(Row {
            path: "zenoh, 1 process: encode + store + fetch, streamed".into(),
            rows: nrows,
            arrow,
            wire,
            secs,
        });
        s.consumer.close().await.unwrap();
        s.producer.close().await.unwrap();

        // zenoh, two processes: over TCP, then over shared memory.
        for shm in [false, true] {
            let over = if shm { "shared memory" } else { "TCP" };
            let short = if shm { "SHM" } else { "TCP" };
            match two_processes(sf, runs, nrows, shm).await {
                Ok(r) => {
                    for (what, (secs, wire)) in [
                        ("fetch (framed, verified)", r.framed),
                        ("raw get of the same bytes", r.raw),
                    ] {
                        table.push(Row {
                            path: format!("zenoh, 2 processes, {short}: {what}"),
                            rows: nrows,
                            arrow,
                            wire,
                            secs,
                        });
                    }
                    overheads.push(format!(
                        "{over}: framed fetch {:.3} s, raw {:.3} s: framing + verification cost \
                         {:+.1}% of raw (median of {} paired runs: {:+.1}%)",
                        r.framed.0,
                        r.raw.0,
                        100.0 * (r.framed.0 / r.raw.0 - 1.0),
                        r.ratios.len(),
                        100.0 * (r.median_ratio() - 1.0),
                    ));
                }
                Err(e) => println!("two-process run over {over} skipped: {e}"),
            }
        }
    });
    print(&table);
    println!();
    for o in overheads {
        println!("{o}");
    }
}

/// What the two-process runs measured: the best framed and raw times
/// (seconds, wire bytes) and the framed/raw ratio of each pair of runs.
struct TwoProcess {
    framed: (f64, Option<u64>),
    raw: (f64, Option<u64>),
    ratios: Vec<f64>,
}

impl TwoProcess {
    fn median_ratio(&self) -> f64 {
        let mut r = self.ratios.clone();
        r.sort_by(f64::total_cmp);
        r.get(r.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

async fn two_processes(
    sf: f64,
    runs: usize,
    nrows: usize,
    shm: bool,
) -> Result<TwoProcess, String> {
    let endpoint = loopback_endpoint().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .env(ROLE_ENV, "producer")
        .env(ENDPOINT_ENV, &endpoint)
        .env(SHM_ENV, if shm { "1" } else { "0" })
        .env("FFQ_BENCH_SF", sf.to_string())
        .env("FFQ_BENCH_RUNS", runs.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if ready.trim() != "READY" {
        let _ = child.kill();
        return Err(format!("producer said {ready:?}"));
    }
    let consumer = zenoh::open(two_process_config(None, &[&endpoint], shm))
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One run of each first warms the link (and the shared-memory pools).
    consume(&consumer, 0).await;
    consume_raw(&consumer).await;
    let mut out = TwoProcess {
        framed: (f64::MAX, None),
        raw: (f64::MAX, None),
        ratios: Vec::new(),
    };
    for task in 0..runs as u32 {
        let start = Instant::now();
        let (rows, wire) = consume(&consumer, task).await;
        let framed = start.elapsed().as_secs_f64();
        assert_eq!(rows, nrows);
        let start = Instant::now();
        let (_, raw_wire) = consume_raw(&consumer).await;
        let raw = start.elapsed().as_secs_f64();
        if framed < out.framed.0 {
            out.framed = (framed, Some(wire));
        }
        if raw < out.raw.0 {
            out.raw = (raw, Some(raw_wire));
        }
        out.ratios.push(framed / raw);
    }
    consumer.close().await.map_err(|e| e.to_string())?;
    drop(child.stdin.take());
    let _ = child.wait();
    Ok(out)
}
