//! The zenoh exchange between two sessions of one process over loopback TCP.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Float64Array,
    Int32Array, Int64Array, RecordBatch, StringArray, StringViewArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use ffq_dataflow::functions::FunctionRegistry;
use ffq_dataflow::plan::{Partitioning, PhysicalPlan, ScanSource, TpchTable};
use ffq_dataflow::runner::{execute, ExecConfig};
use ffq_dataflow::tables::MemoryTableMap;
use ffq_transport::zenoh_exchange::{
    fetch_partition, fetch_partition_with, free_port, loopback_endpoint, peer_config, AttemptId,
    AttemptRef, ClusterId, DataKey, FetchOptions, OutputServer, OutputStore, PartitionId, QueryId,
    ServeOptions, StageId, StoreStats, TaskId, ZenohExchange, ZenohPartitionWriter,
};
use ffq_transport::ChannelExchange;
use futures::StreamExt;
use zenoh::Session;

struct Pair {
    cluster: ClusterId,
    store: OutputStore,
    _server: OutputServer,
    producer: Session,
    consumer: Session,
}

/// Serving that answers "nothing yet" after 100 ms, for tests of
/// partitions still being written.
fn short_idle_wait() -> ServeOptions {
    ServeOptions {
        idle_wait: Duration::from_millis(100),
        ..ServeOptions::default()
    }
}

/// The next batch of `stream`, which must come within `timeout`.
async fn next_within<S>(stream: &mut S, timeout: Duration) -> RecordBatch
where
    S: futures::Stream<Item = ffq_dataflow::error::Result<RecordBatch>> + Unpin,
{
    tokio::time::timeout(timeout, stream.next())
        .await
        .expect("a batch within the timeout")
        .expect("the stream has not ended")
        .expect("no error")
}

/// A producer session (listening, serving `store`) and a consumer session
/// connected to it.
async fn pair(store: OutputStore, options: ServeOptions) -> Pair {
    let cluster = ClusterId::new(format!("test{}", free_port().unwrap())).unwrap();
    let endpoint = loopback_endpoint().unwrap();
    let producer = zenoh::open(peer_config(Some(&endpoint), &[]).unwrap())
        .await
        .unwrap();
    let server = store.serve(&producer, &cluster, options).await.unwrap();
    let consumer = zenoh::open(peer_config(None, &[&endpoint]).unwrap())
        .await
        .unwrap();
    // Let the queryable's declaration reach the consumer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Pair {
        cluster,
        store,
        _server: server,
        producer,
        consumer,
    }
}

impl Pair {
    async fn close(self) {
        self.consumer.close().await.unwrap();
        self.producer.close().await.unwrap();
    }

    fn key(&self, attempt: &AttemptRef, p: u32) -> DataKey {
        DataKey::new(self.cluster.clone(), attempt.stream(PartitionId(p)))
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("comment", DataType::Utf8View, true),
        Field::new("price", DataType::Decimal128(15, 2), true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("ratio", DataType::Float64, true),
        Field::new("day", DataType::Date32, true),
        Field::new(
            "status",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
    ]))
}

/// `rows` rows of varied types with nulls; `text` bytes of string per row.
fn batch(rows: usize, seed: i64, text: usize) -> RecordBatch {
    let n = rows as i64;
    let filler = "abcdefghij".repeat(text / 10 + 1);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..n).map(|i| i + seed * 1_000_000),
        )),
        Arc::new(StringArray::from_iter((0..n).map(|i| {
            (i % 9 != 4)
                .then(|| format!("name-{seed}-{i}-{}", &filler[..(i as usize % text.max(1))]))
        }))),
        Arc::new(StringViewArray::from_iter((0..n).map(|i| {
            (i % 6 != 1).then(|| format!("comment {i} of batch {seed}, longer than twelve bytes"))
        }))),
        Arc::new(
            Decimal128Array::from_iter(
                (0..n as i128).map(|i| (i % 13 != 0).then_some(i * 101 - 5000)),
            )
            .with_precision_and_scale(15, 2)
            .unwrap(),
        ),
        Arc::new(BooleanArray::from_iter(
            (0..n).map(|i| (i % 5 != 0).then_some(i % 2 == 0)),
        )),
        Arc::new(Float64Array::from_iter(
            (0..n).map(|i| (i % 7 != 0).then_some(i as f64 / 3.0)),
        )),
        Arc::new(Date32Array::from_iter(
            (0..n).map(|i| (i % 8 != 0).then_some(9000 + i as i32 % 2500)),
        )),
        Arc::new(DictionaryArray::<Int32Type>::new(
            Int32Array::from_iter((0..n).map(|i| (i % 10 != 0).then_some((i % 3) as i32))),
            Arc::new(StringArray::from(vec!["F", "O", "P"])),
        )),
    ];
    RecordBatch::try_new(schema(), cols).unwrap()
}

fn attempt(query: &str, stage: u32, task: u32, attempt: u32) -> AttemptRef {
    AttemptRef::new(
        QueryId::new(query).unwrap(),
        StageId(stage),
        TaskId(task),
        AttemptId(attempt),
    )
}

async fn collect(
    stream: impl futures::Stream<Item = ffq_dataflow::error::Result<RecordBatch>>,
) -> ffq_dataflow::error::Result<Vec<RecordBatch>> {
    futures::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        out.push(b?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_partitions_round_trip_with_slicing() {
    // A small per-get budget, so that fetches take several gets.
    let pair = pair(
        OutputStore::default(),
        ServeOptions {
            max_reply_bytes: 2 << 20,
            ..ServeOptions::default()
        },
    )
    .await;
    let task = attempt("q1", 1, 0, 0);
    let mut writer = ZenohPartitionWriter::new(&pair.store, task.clone(), 3, schema()).unwrap();
    let mut written: Vec<Vec<RecordBatch>> = vec![vec![]; 3];
    for i in 0..4 {
        for (p, w) in written.iter_mut().enumerate() {
            let b = batch(500 + 100 * i + p, (p * 10 + i) as i64, 40);
            use ffq_dataflow::exchange::PartitionWriter;
            writer.send(p, Ok(b.clone())).await.unwrap();
            w.push(b);
        }
    }
    // One batch far over the 4 MiB frame bound in partition 1.
    let big = batch(60_000, 77, 120);
    assert!(big.get_array_memory_size() > 8 << 20);
    {
        use ffq_dataflow::exchange::PartitionWriter;
        writer.send(1, Ok(big.clone())).await.unwrap();
    }
    written[1].push(big.clone());
    writer.finish().unwrap();
    assert_eq!(pair.store.stats().complete_streams, 3);

    for (p, expected) in written.iter().enumerate() {
        // Partition 2 asks for small answers itself.
        let options = FetchOptions {
            max_reply_bytes: (p == 2).then_some(64 * 1024),
            ..FetchOptions::default()
        };
        let fetch = fetch_partition_with(&pair.consumer, &pair.key(&task, p as u32), options);
        let stats = fetch.stats();
        let got = collect(fetch).await.unwrap();
        if p == 1 {
            // The big batch arrives in slices of at most 4 MiB each.
            assert!(got.len() >= expected.len() + 2, "{} batches", got.len());
            assert_eq!(&got[..4], &expected[..4]);
            let tail = concat_batches(&schema(), &got[4..]).unwrap();
            assert_eq!(tail, big);
            assert!(stats.gets() > 2, "{} gets", stats.gets());
        } else {
            assert_eq!(&got, expected);
        }
        if p == 2 {
            // About one batch (~50-80 KB each) per get.
            assert!(stats.gets() >= 3, "{} gets", stats.gets());
        }
        assert_eq!(stats.stale_frames(), 0);
        assert_eq!(stats.frames(), got.len() as u64 + 2);
    }
    pair.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_reserves_its_replies_in_the_memory_pool() {
    let pair = pair(OutputStore::default(), ServeOptions::default()).await;
    let task = attempt("qm", 1, 0, 0);
    let mut writer = ZenohPartitionWriter::new(&pair.store, task.clone(), 1, schema()).unwrap();
    let mut written = Vec::new();
    for i in 0..40 {
        // About 6 MiB in all, more than one get's budget under the limit.
        let b = batch(2_000, i, 60);
        use ffq_dataflow::exchange::PartitionWriter;
        writer.send(0, Ok(b.clone())).await.unwrap();
        written.push(b);
    }
    writer.finish().unwrap();
    let total: usize = written.iter().map(|b| b.get_array_memory_size()).sum();
    assert!(total > 3 << 20, "{total} bytes");

    // A 64 MiB limit: gets of at most a 64th of it, 1 MiB, each reserved.
    let pool = ffq_dataflow::execution::memory_pool(Some(64 << 20));
    let options = FetchOptions {
        memory_pool: Some(Arc::clone(&pool)),
        ..FetchOptions::default()
    };
    let mut fetch = fetch_partition_with(&pair.consumer, &pair.key(&task, 0), options);
    let stats = fetch.stats();
    let mut got = vec![fetch.next().await.unwrap().unwrap()];
    assert_eq!(pool.reserved(), 1 << 20, "the budget of the get in flight");
    while let Some(b) = fetch.next().await {
        got.push(b.unwrap());
    }
    assert_eq!(got, written);
    assert!(stats.gets() >= 3, "{} gets of 1 MiB", stats.gets());
    drop(fetch);
    assert_eq!(pool.reserved(), 0, "a finished fetch holds nothing");

    // Without a pool the server's 32 MiB budget takes it in one get.
    let fetch = fetch_partition(&pair.consumer, &pair.key(&task, 0));
    let stats = fetch.stats();
    assert_eq!(collect(fetch).await.unwrap(), written);
    assert_eq!(stats.gets(), 1);
    pair.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_errors_clearly() {
    let pair = pair(OutputStore::default(), ServeOptions::default()).await;
    let key = pair.key(&attempt("nope", 3, 4, 5), 6);
    let err = collect(fetch_partition(&pair.consumer, &key))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ffq/") && err.contains("/data/nope/3/5/4/6"),
        "{err}"
    );
    assert!(err.contains("no worker holds this partition"), "{err}");

    // A malformed request is answered with an error reply.
    let task = attempt("q0", 0, 0, 0);
    pair.store
        .open_stream(task.stream(PartitionId(0)), schema())
        .unwrap()
        .finish()
        .unwrap();
    let replies = pair
        .consumer
        .get(format!("{}?from=abc", pair.key(&task, 0)))
        .await
        .unwrap();
    let reply = replies.recv_async().await.unwrap();
    let err = reply
        .result()
        .unwrap_err()
        .payload()
        .try_to_string()
        .unwrap()
        .into_owned();
    assert!(err.contains("bad parameter from=\"abc\""), "{err}");
    pair.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_attempt_frames_are_dropped_and_counted() {
    let pair = pair(OutputStore::default(), ServeOptions::default()).await;
    // Attempt 0 (superseded) and attempt 1 (registered) of the same task.
    let old = attempt("q2", 0, 3, 0);
    let new = attempt("q2", 0, 3, 1);
    let mut w = pair
        .store
        .open_stream(old.stream(PartitionId(0)), schema())
        .unwrap();
    w.write(&batch(100, 1, 10)).unwrap();
    w.write(&batch(100, 2, 10)).unwrap();
    w.finish().unwrap();
    let mut w = pair
        .store
        .open_stream(new.stream(PartitionId(0)), schema())
        .unwrap();
    w.write(&batch(70, 3, 10)).unwrap();
    w.finish().unwrap();

    let fetch = fetch_partition_with(
        &pair.consumer,
        &pair.key(&new, 0),
        FetchOptions {
            any_attempt: true,
            ..FetchOptions::default()
        },
    );
    let stats = fetch.stats();
    let got = collect(fetch).await.unwrap();
    assert_eq!(got, vec![batch(70, 3, 10)]);
    // The server answers matching streams in id order, so all 4 frames of
    // attempt 0 (schema, 2 batches, end) came first, and were dropped.
    assert_eq!(stats.stale_frames(), 4);

    // The exact key asks the registered attempt only.
    let fetch = fetch_partition(&pair.consumer, &pair.key(&new, 0));
    let stats = fetch.stats();
    assert_eq!(collect(fetch).await.unwrap(), vec![batch(70, 3, 10)]);
    assert_eq!(stats.stale_frames(), 0);
    pair.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_leaves_nothing() {
    let pair = pair(OutputStore::default(), ServeOptions::default()).await;
    let a = attempt("q3", 0, 0, 0);
    let b = attempt("q3", 1, 0, 0);
    let other = attempt("q4", 0, 0, 0);
    for t in [&a, &b, &other] {
        let mut w = ZenohPartitionWriter::new(&pair.store, t.clone(), 2, schema()).unwrap();
        use ffq_dataflow::exchange::PartitionWriter;
        w.send(0, Ok(batch(1000, 1, 30))).await.unwrap();
        w.send(1, Ok(batch(10, 2, 30))).await.unwrap();
    }
    let got = collect(fetch_partition(&pair.consumer, &pair.key(&a, 0)))
        .await
        .unwrap();
    assert_eq!(got, vec![batch(1000, 1, 30)]);
    assert_eq!(pair.store.stats().streams, 6);

    assert_eq!(pair.store.release_attempt(&a), 2);
    assert_eq!(pair.store.release(&QueryId::new("q3").unwrap()), 2);
    assert_eq!(pair.store.stats().streams, 2);
    assert_eq!(pair.store.release(&QueryId::new("q4").unwrap()), 2);
    // Fetches being answered finish on their own.
    for _ in 0..100 {
        if pair.store.stats().active_fetches == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pair.store.stats(), StoreStats::default());
    assert!(pair.store.stream_ids().is_empty());
    let err = collect(fetch_partition(&pair.consumer, &pair.key(&a, 0)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no worker holds"), "{err}");
    pair.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_being_written_streams() {
    let pair = pair(OutputStore::default(), short_idle_wait()).await;
    let task = attempt("q5", 2, 1, 0);
    let mut w = pair
        .store
        .open_stream(task.stream(PartitionId(0)), schema())
        .unwrap();
    w.write(&batch(10, 1, 5)).unwrap();
    w.write(&batch(20, 2, 5)).unwrap();

    let mut fetch = fetch_partition(&pair.consumer, &pair.key(&task, 0));
    let stats = fetch.stats();
    let timeout = Duration::from_secs(10);
    let first = next_within(&mut fetch, timeout).await;
    let second = next_within(&mut fetch, timeout).await;
    assert_eq!((first, second), (batch(10, 1, 5), batch(20, 2, 5)));
    // Nothing more yet: the consumer keeps asking (pending answers).
    assert!(
        tokio::time::timeout(Duration::from_millis(350), fetch.next())
            .await
            .is_err()
    );
    w.write(&batch(30, 3, 5)).unwrap();
    let third = next_within(&mut fetch, timeout).await;
    assert_eq!(third, batch(30, 3, 5));
    w.write(&batch(40, 4, 5)).unwrap();
    w.finish().unwrap();
    let rest = collect(fetch).await.unwrap();
    assert_eq!(rest, vec![batch(40, 4, 5)]);
    assert!(stats.gets() >= 3, "{} gets", stats.gets());
    assert_eq!(stats.rows(), 100);
    pair.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_errors_and_lost_streams_fail_the_fetch() {
    let pair = pair(OutputStore::default(), short_idle_wait()).await;
    let task = attempt("q6", 0, 0, 0);
    let mut w = pair
        .store
        .open_stream(task.stream(PartitionId(0)), schema())
        .unwrap();
    w.write(&batch(10, 1, 5)).unwrap();
    w.fail("scan failed: disk on fire").unwrap();
    let mut fetch = fetch_partition(&pair.consumer, &pair.key(&task, 0));
    assert_eq!(fetch.next().await.unwrap().unwrap(), batch(10, 1, 5));
    let err = fetch.next().await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("disk on fire") && err.contains("ffq/"),
        "{err}"
    );
    assert!(fetch.next().await.is_none());

    // A stream released while its consumer reads it.
    let task = attempt("q7", 0, 0, 0);
    let mut w = pair
        .store
        .open_stream(task.stream(PartitionId(0)), schema())
        .unwrap();
    w.write(&batch(10, 1, 5)).unwrap();
    let mut fetch = fetch_partition(&pair.consumer, &pair.key(&task, 0));
    assert_eq!(fetch.next().await.unwrap().unwrap(), batch(10, 1, 5));
    pair.store.release(&task.query);
    let err = tokio::time::timeout(Duration::from_secs(10), fetch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(err.contains("disappeared after 2 frame(s)"), "{err}");
    drop(w);
    pair.close().await;
}

fn tpch_plan(partitions: usize) -> PhysicalPlan {
    let schema = ffq_dataflow::operators::tpch_scan::tpch_schema(TpchTable::Orders);
    let scan = PhysicalPlan::Scan {
        source: ScanSource::Tpch {
            table: TpchTable::Orders,
            scale_factor: 0.01,
            partitions: 2,
        },
        table_schema: schema.clone(),
        projection: None,
        pruning: vec![],
        schema,
    };
    let shuffled = PhysicalPlan::Exchange {
        input: Box::new(scan),
        partitioning: Partitioning::RoundRobin { partitions },
    };
    PhysicalPlan::Exchange {
        input: Box::new(shuffled),
        partitioning: Partitioning::Gather,
    }
}

async fn run(exchange: Arc<dyn ffq_dataflow::exchange::ExchangeTransport>) -> Vec<RecordBatch> {
    let stream = execute(
        &tpch_plan(3),
        ExecConfig::default(),
        Arc::new(FunctionRegistry::with_defaults()),
        Arc::new(MemoryTableMap::default()),
        exchange,
    )
    .unwrap();
    collect(stream).await.unwrap()
}

fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows: Vec<String> = arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
        .lines()
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_operator_over_zenoh_matches_channels() {
    let pair = pair(OutputStore::default(), ServeOptions::default()).await;
    let exchange = Arc::new(ZenohExchange::new(
        pair.cluster.clone(),
        QueryId::generate(),
        pair.store.clone(),
        pair.consumer.clone(),
    ));
    let over_zenoh = run(exchange.clone()).await;
    let in_process = run(Arc::new(ChannelExchange::default())).await;
    let rows: usize = over_zenoh.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 15_000);
    assert_eq!(sorted_rows(&over_zenoh), sorted_rows(&in_process));
    // Two exchanges: 2 producers x 3 partitions, then 3 producers x 1.
    assert_eq!(pair.store.stats().streams, 9);
    assert_eq!(exchange.release(), 9);
    assert_eq!(pair.store.stats().bytes, 0);
    pair.close().await;
}
