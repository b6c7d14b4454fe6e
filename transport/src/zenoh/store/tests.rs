use super::*;
use crate::zenoh_exchange::frame::tests::{mixed_batch, sid};
use crate::zenoh_exchange::frame::{Frame, StreamVerifier, Verified};

fn read_all(store: &OutputStore, id: &StreamId) -> StreamVerifier {
    let r = store.read_from(id, 0, usize::MAX).unwrap();
    let mut v = StreamVerifier::new(id.clone());
    for f in r.frames.unwrap() {
        let frame = Frame::decode_slice(&f.to_bytes()).unwrap();
        match v.accept(&frame) {
            Ok(Verified::Batch(_) | Verified::Schema(_) | Verified::End { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    v
}

#[test]
fn write_finish_release() {
    let store = OutputStore::default();
    let mut w = store
        .open_stream(sid(1), mixed_batch(1, 1).schema())
        .unwrap();
    w.write(&mixed_batch(100, 1)).unwrap();
    w.write(&mixed_batch(50, 2)).unwrap();
    w.finish().unwrap();
    let s = store.stats();
    assert_eq!((s.streams, s.complete_streams, s.frames), (1, 1, 4));
    assert!(s.bytes > 0);
    let v = read_all(&store, &sid(1));
    assert!(v.is_finished());
    assert_eq!(v.counts(), (2, 150));
    assert!(store
        .open_stream(sid(1), mixed_batch(1, 1).schema())
        .is_err());
    assert_eq!(store.release(&sid(1).query), 1);
    assert_eq!(store.stats(), StoreStats::default());
}

#[test]
fn dropped_writer_ends_with_error() {
    let store = OutputStore::default();
    let mut w = store
        .open_stream(sid(1), mixed_batch(1, 1).schema())
        .unwrap();
    w.write(&mixed_batch(10, 1)).unwrap();
    drop(w);
    let r = store.read_from(&sid(1), 0, usize::MAX).unwrap();
    assert!(r.complete);
    let mut v = StreamVerifier::new(sid(1));
    let mut err = None;
    for f in r.frames.unwrap() {
        if let Err(e) = v.accept(&Frame::decode_slice(&f.to_bytes()).unwrap()) {
            err = Some(e.to_string());
        }
    }
    assert!(err.unwrap().contains("stopped before finishing"));
}

fn small_store(spill_dir: Option<&std::path::Path>, max_spill_bytes: Option<u64>) -> OutputStore {
    OutputStore::new(StoreConfig {
        max_buffered_bytes: 64 * 1024,
        max_frame_bytes: 16 * 1024,
        spill_dir: spill_dir.map(|d| d.to_path_buf()),
        max_spill_bytes,
    })
}

#[test]
fn budget_is_enforced_without_spill_dir() {
    let store = small_store(None, None);
    let mut w = store
        .open_stream(sid(1), mixed_batch(1, 1).schema())
        .unwrap();
    let e = w.write(&mixed_batch(5000, 1)).unwrap_err().to_string();
    assert!(e.contains("output buffers full"), "{e}");
    assert!(e.contains("no spill directory"), "{e}");
    // The stream can still be ended.
    w.fail("out of memory").unwrap();
    assert_eq!(store.stats().complete_streams, 1);
}

#[test]
fn frames_beyond_the_budget_spill_and_read_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(Some(dir.path()), None);
    let batches: Vec<_> = (0..20).map(|i| mixed_batch(2000, i)).collect();
    for s in [1, 2] {
        let mut w = store.open_stream(sid(s), batches[0].schema()).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
    }
    let stats = store.stats();
    assert!(stats.bytes <= 64 * 1024, "{stats:?}");
    assert!(stats.spilled_bytes > 0, "{stats:?}");
    // Both streams are of one stage of one query: one file.
    assert_eq!(stats.spill_files, 1, "{stats:?}");
    for s in [1, 2] {
        let v = read_all(&store, &sid(s));
        assert!(v.is_finished());
        // Batches are sliced into frames of at most 16 KiB.
        let (frames, rows) = v.counts();
        assert!(frames > 20, "{frames}");
        assert_eq!(rows, 40_000);
    }
    // Read in small steps from the middle, as a resumed fetch does.
    let mut from = 3;
    while let Some(r) = store.read_from(&sid(1), from, 1) {
        let frames = r.frames.unwrap();
        from += frames.len() as u64;
        if r.complete && from >= r.total {
            break;
        }
    }
    assert_eq!(from, store.read_from(&sid(1), 0, 1).unwrap().total);
    // Spill files are unnamed: the directory never shows them.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    store.release(&sid(1).query);
    assert_eq!(store.stats(), StoreStats::default());
}

#[test]
fn spill_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(Some(dir.path()), Some(100 * 1024));
    let mut w = store
        .open_stream(sid(1), mixed_batch(1, 1).schema())
        .unwrap();
    let mut err = None;
    for i in 0..50 {
        if let Err(e) = w.write(&mixed_batch(2000, i)) {
            err = Some(e.to_string());
            break;
        }
    }
    let e = err.expect("the spill limit was never reached");
    assert!(e.contains("output buffers full"), "{e}");
    assert!(e.contains("limit 102400"), "{e}");
}

#[test]
fn a_released_query_cannot_open_streams_again() {
    let store = OutputStore::default();
    let schema = mixed_batch(1, 1).schema();
    store
        .open_stream(sid(1), schema.clone())
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(store.release(&sid(1).query), 1);
    let e = store.open_stream(sid(2), schema).unwrap_err().to_string();
    assert!(e.contains("was released"), "{e}");
    assert_eq!(store.stats(), StoreStats::default());
}

#[test]
fn release_stage_keeps_other_stages() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(Some(dir.path()), None);
    let a = sid(1);
    let mut b = sid(1);
    b.stage = StageId(a.stage.0 + 1);
    for id in [&a, &b] {
        let mut w = store
            .open_stream(id.clone(), mixed_batch(1, 1).schema())
            .unwrap();
        for i in 0..10 {
            w.write(&mixed_batch(2000, i)).unwrap();
        }
        w.finish().unwrap();
    }
    assert_eq!(store.stats().spill_files, 2);
    assert_eq!(store.release_stage(&a.query, a.stage), 1);
    assert_eq!(store.stream_ids(), vec![b.clone()]);
    assert_eq!(store.stats().spill_files, 1);
    assert!(read_all(&store, &b).is_finished());
}

#[test]
fn release_attempt_keeps_others() {
    let store = OutputStore::default();
    let schema = mixed_batch(1, 1).schema();
    for attempt in [0, 1] {
        store
            .open_stream(sid(attempt), schema.clone())
            .unwrap()
            .finish()
            .unwrap();
    }
    assert_eq!(store.release_attempt(&sid(0).attempt_ref()), 1);
    assert_eq!(store.stream_ids(), vec![sid(1)]);
    let mut w = store.open_stream(sid(2), schema).unwrap();
    store.release_all();
    let e = w.write(&mixed_batch(3, 1)).unwrap_err().to_string();
    assert!(e.contains("released"), "{e}");
    drop(w);
    assert_eq!(store.stats(), StoreStats::default());
}

#[test]
fn wait_for_more_wakes_on_write() {
    let store = OutputStore::default();
    let mut w = store
        .open_stream(sid(1), mixed_batch(1, 1).schema())
        .unwrap();
    let s2 = store.clone();
    let t = std::thread::spawn(move || {
        s2.wait_for_more(
            &sid(1),
            1,
            Instant::now() + std::time::Duration::from_secs(10),
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    w.write(&mixed_batch(3, 1)).unwrap();
    assert!(t.join().unwrap());
    assert!(!store.wait_for_more(
        &sid(1),
        2,
        Instant::now() + std::time::Duration::from_millis(20)
    ));
    w.finish().unwrap();
}

#[test]
fn frames_the_memory_pool_refuses_spill_and_release_gives_the_bytes_back() {
    let dir = tempfile::tempdir().unwrap();
    let pool = ffq_dataflow::execution::memory_pool(Some(32 * 1024));
    // A generous budget of its own: the pool is what limits the store.
    let store = OutputStore::new(StoreConfig {
        max_buffered_bytes: 1 << 30,
        max_frame_bytes: 16 * 1024,
        spill_dir: Some(dir.path().to_path_buf()),
        max_spill_bytes: None,
    })
    .with_memory_pool(&pool);
    let batches: Vec<_> = (0..10).map(|i| mixed_batch(2000, i)).collect();
    let mut w = store.open_stream(sid(1), batches[0].schema()).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    let stats = store.stats();
    assert!(stats.spilled_bytes > 0, "{stats:?}");
    assert!(stats.bytes <= 32 * 1024 + 1024, "{stats:?}");
    assert_eq!(pool.reserved(), stats.bytes);
    let v = read_all(&store, &sid(1));
    assert!(v.is_finished());
    assert_eq!(v.counts().1, 20_000);
    store.release_all();
    assert_eq!(pool.reserved(), 0);
}
