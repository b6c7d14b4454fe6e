use super::*;
use crate::zenoh_exchange::keys::{AttemptId, PartitionId, QueryId, StageId, TaskId};
use arrow::array::{
    ArrayRef, Decimal128Array, DictionaryArray, Int32Array, Int64Array, StringArray,
    StringViewArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};

pub fn sid(attempt: u32) -> StreamId {
    StreamId {
        query: QueryId::new("q").unwrap(),
        stage: StageId(1),
        attempt: AttemptId(attempt),
        task: TaskId(2),
        partition: PartitionId(0),
    }
}

pub fn mixed_batch(rows: usize, seed: i64) -> RecordBatch {
    let ints: ArrayRef = Arc::new(Int64Array::from_iter((0..rows as i64).map(|i| {
        if i % 7 == 3 {
            None
        } else {
            Some(i * seed)
        }
    })));
    let strs: ArrayRef = Arc::new(StringArray::from_iter((0..rows).map(|i| {
        if i % 5 == 0 {
            None
        } else {
            Some(format!("s{seed}-{i}-{}", "x".repeat(i % 13)))
        }
    })));
    let views: ArrayRef = Arc::new(StringViewArray::from_iter(
        (0..rows).map(|i| Some(format!("a fairly long view string {i} {seed}"))),
    ));
    let dec: ArrayRef = Arc::new(
        Decimal128Array::from_iter((0..rows as i128).map(|i| {
            if i % 11 == 0 {
                None
            } else {
                Some(i * 1234 - 7)
            }
        }))
        .with_precision_and_scale(15, 2)
        .unwrap(),
    );
    let dict: ArrayRef = Arc::new(DictionaryArray::<Int32Type>::new(
        Int32Array::from_iter_values((0..rows as i32).map(|i| i % 3)),
        Arc::new(StringArray::from(vec!["R", "A", "N"])),
    ));
    let schema = Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("v", DataType::Utf8View, true),
        Field::new("d", DataType::Decimal128(15, 2), true),
        Field::new(
            "k",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        ),
    ]));
    RecordBatch::try_new(schema, vec![ints, strs, views, dec, dict]).unwrap()
}

fn encode_stream(batches: &[RecordBatch], max: usize) -> Vec<Vec<u8>> {
    let mut enc = FrameEncoder::new(sid(1), batches[0].schema(), max);
    let mut frames = vec![enc.schema_frame().unwrap()];
    for b in batches {
        frames.extend(enc.batch_frames(b).unwrap());
    }
    frames.push(enc.end_frame().unwrap());
    frames
}

fn verify_all(frames: &[Vec<u8>], attempt: u32) -> Result<(Vec<RecordBatch>, StreamVerifier)> {
    let mut v = StreamVerifier::new(sid(attempt));
    let mut out = Vec::new();
    for f in frames {
        if let Verified::Batch(b) = v.accept(&Frame::decode_slice(f)?)? {
            out.push(b);
        }
    }
    Ok((out, v))
}

#[test]
fn round_trip() {
    let batches = vec![mixed_batch(100, 1), mixed_batch(0, 2), mixed_batch(1000, 3)];
    let frames = encode_stream(&batches, DEFAULT_MAX_FRAME_BYTES);
    assert_eq!(frames.len(), 4); // schema, two batches (empty skipped), end
    let (got, v) = verify_all(&frames, 1).unwrap();
    assert!(v.is_finished());
    assert_eq!(v.counts(), (2, 1100));
    assert_eq!(got, vec![batches[0].clone(), batches[2].clone()]);
}

#[test]
fn big_batches_are_sliced_under_the_bound() {
    let big = mixed_batch(50_000, 5);
    let max = 256 * 1024;
    let frames = encode_stream(std::slice::from_ref(&big), max);
    assert!(frames.len() > 4, "{} frames", frames.len());
    for f in &frames {
        assert!(f.len() <= max + 4096, "frame of {} bytes", f.len());
    }
    let (got, v) = verify_all(&frames, 1).unwrap();
    assert_eq!(v.counts().1, 50_000);
    let all = arrow::compute::concat_batches(&big.schema(), &got).unwrap();
    assert_eq!(all, big);
}

#[test]
fn truncated_and_garbled_frames_fail() {
    let frames = encode_stream(&[mixed_batch(100, 1)], DEFAULT_MAX_FRAME_BYTES);
    let f = &frames[1];
    let e = Frame::decode_slice(&f[..f.len() - 10])
        .unwrap_err()
        .to_string();
    assert!(e.contains("its header says"), "{e}");
    let e = Frame::decode_slice(&f[..10]).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    let mut bad = f.clone();
    bad[0] = b'X';
    assert!(Frame::decode_slice(&bad)
        .unwrap_err()
        .to_string()
        .contains("magic"));
    // A body cut inside but with a consistent length prefix.
    let mut cut = Frame::decode_slice(f).unwrap();
    cut.body = cut.body.slice_with_length(0, cut.body.len() / 2);
    let mut v = StreamVerifier::new(sid(1));
    v.accept(&Frame::decode_slice(&frames[0]).unwrap()).unwrap();
    let e = v.accept(&cut).unwrap_err().to_string();
    assert!(e.contains("bad IPC body"), "{e}");
}

#[test]
fn sequence_errors() {
    let frames = encode_stream(
        &[mixed_batch(10, 1), mixed_batch(10, 2)],
        DEFAULT_MAX_FRAME_BYTES,
    );
    // Gap: drop frame 1.
    let gap: Vec<_> = frames
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, f)| f.clone())
        .collect();
    let e = verify_all(&gap, 1).unwrap_err().to_string();
    assert!(e.contains("gap: expected frame 1"), "{e}");
    // Duplicate.
    let dup = vec![frames[0].clone(), frames[1].clone(), frames[1].clone()];
    let e = verify_all(&dup, 1).unwrap_err().to_string();
    assert!(e.contains("duplicate"), "{e}");
    // Missing end is not an error of accept, but the stream is unfinished.
    let (_, v) = verify_all(&frames[..3], 1).unwrap();
    assert!(!v.is_finished());
    // Frame after the end.
    let mut after = frames.clone();
    after.push(frames[1].clone());
    let e = verify_all(&after, 1).unwrap_err().to_string();
    assert!(e.contains("after the end"), "{e}");
}

#[test]
fn wrong_counts_fail() {
    let mut enc = FrameEncoder::new(sid(1), mixed_batch(1, 1).schema(), DEFAULT_MAX_FRAME_BYTES);
    let schema = enc.schema_frame().unwrap();
    let b = enc.batch_frames(&mixed_batch(10, 1)).unwrap();
    let end = encode_frame(&FrameHeader {
        stream: sid(1),
        seq: 2,
        kind: FrameKind::End {
            batches: 1,
            rows: 11,
        },
    })
    .unwrap();
    let e = verify_all(&[schema, b[0].clone(), end], 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("count mismatch"), "{e}");
}

#[test]
fn wrong_row_count_in_header_fails() {
    let schema = mixed_batch(1, 1).schema();
    let mut enc = FrameEncoder::new(sid(1), schema.clone(), DEFAULT_MAX_FRAME_BYTES);
    let s = enc.schema_frame().unwrap();
    let lie = encode_ipc_frame(
        &FrameHeader {
            stream: sid(1),
            seq: 1,
            kind: FrameKind::Batch { rows: 9 },
        },
        &schema,
        Some(&mixed_batch(10, 1)),
        0,
    )
    .unwrap();
    let e = verify_all(&[s, lie], 1).unwrap_err().to_string();
    assert!(e.contains("header says 9 rows"), "{e}");
}

#[test]
fn stale_attempts_are_dropped_and_counted() {
    let mut old = FrameEncoder::new(sid(0), mixed_batch(1, 1).schema(), DEFAULT_MAX_FRAME_BYTES);
    let stale = [
        old.schema_frame().unwrap(),
        old.batch_frames(&mixed_batch(5, 9)).unwrap().remove(0),
    ];
    let good = encode_stream(&[mixed_batch(7, 1)], DEFAULT_MAX_FRAME_BYTES);
    let mixed = vec![
        good[0].clone(),
        stale[0].clone(),
        good[1].clone(),
        stale[1].clone(),
        good[2].clone(),
    ];
    let (got, v) = verify_all(&mixed, 1).unwrap();
    assert_eq!(v.stale_frames(), 2);
    assert_eq!(got, vec![mixed_batch(7, 1)]);
    assert!(v.is_finished());
    // Another task's frame is not stale but wrong.
    let mut other = sid(1);
    other.task = TaskId(99);
    let mut enc = FrameEncoder::new(other, mixed_batch(1, 1).schema(), DEFAULT_MAX_FRAME_BYTES);
    let e = verify_all(&[enc.schema_frame().unwrap()], 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("another stream"), "{e}");
}

#[test]
fn error_frames_surface_the_message() {
    let mut enc = FrameEncoder::new(sid(1), mixed_batch(1, 1).schema(), DEFAULT_MAX_FRAME_BYTES);
    let frames = vec![
        enc.schema_frame().unwrap(),
        enc.error_frame("disk on fire").unwrap(),
    ];
    let e = verify_all(&frames, 1).unwrap_err().to_string();
    assert!(e.contains("disk on fire"), "{e}");
    assert!(enc.end_frame().is_err());
}

#[test]
fn schema_overhead_is_small() {
    let b = mixed_batch(8192, 1);
    let mut enc = FrameEncoder::new(sid(1), b.schema(), DEFAULT_MAX_FRAME_BYTES);
    let s = enc.schema_frame().unwrap();
    let f = enc.batch_frames(&b).unwrap();
    assert_eq!(f.len(), 1);
    assert!(s.len() < 2048, "schema frame {} bytes", s.len());
    assert!((s.len() as f64) / (f[0].len() as f64) < 0.01);
}

/// Decodes `bytes` as a frame and its body the way a consumer does; any
/// outcome but a panic is fine.
fn decode_all(bytes: &[u8]) {
    if let Ok(frame) = Frame::decode_slice(bytes) {
        let _ = frame.decode_body();
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn valid_frames() -> Vec<Vec<u8>> {
        encode_stream(&[mixed_batch(40, 3)], DEFAULT_MAX_FRAME_BYTES)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            decode_all(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            decode_all(&framed);
        }

        #[test]
        fn mutated_frames_never_panic(
            which in 0usize..3,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let frames = valid_frames();
            let mut bytes = frames[which % frames.len()].clone();
            for (at, value) in flips {
                let i = at % bytes.len();
                bytes[i] = value;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            decode_all(&bytes);
        }
    }
}

#[test]
fn a_small_frame_claiming_huge_lengths_is_refused_without_allocating() {
    let frames = encode_stream(&[mixed_batch(4, 1)], DEFAULT_MAX_FRAME_BYTES);
    let mut body_claim = frames[0].clone();
    body_claim[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = Frame::decode_slice(&body_claim).unwrap_err().to_string();
    assert!(err.contains("its header says"), "{err}");

    let mut header_claim = vec![0u8; 1024];
    header_claim[..4].copy_from_slice(&MAGIC);
    header_claim[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = Frame::decode_slice(&header_claim).unwrap_err().to_string();
    assert!(err.contains("more than the limit 65536"), "{err}");

    // A CBOR header whose error message claims 2^60 bytes.
    let mut cbor = vec![0x7b];
    cbor.extend_from_slice(&(1u64 << 60).to_be_bytes());
    cbor.extend_from_slice(&[b'x'; 64]);
    let mut frame = MAGIC.to_vec();
    frame.extend_from_slice(&(cbor.len() as u32).to_le_bytes());
    frame.extend_from_slice(&0u64.to_le_bytes());
    frame.extend_from_slice(&cbor);
    frame.resize(1024, 0);
    let err = Frame::decode_slice(&frame).unwrap_err().to_string();
    assert!(err.contains("undecodable frame header"), "{err}");
}
