//! Control messages are hostile input: random bytes and mutations of
//! valid encodings decode to an error or a value, never a panic or an
//! allocation the message does not pay for.

use datafusion_common::ScalarValue;
use ffq_dataflow::expr::{BinaryOp, PhysExpr};
use ffq_dataflow::plan::{Partitioning, PhysicalPlan};
use ffq_dataflow::stage::split_stages;
use ffq_transport::zenoh_exchange::{ClientId, QueryId};
use proptest::prelude::*;

use super::call::{decode, encode};
use super::{
    AttemptProgress, EventsRequest, Release, SubmitQuery, TaskReport, WorkerInfo, WorkerState,
};

/// A submit whose plan has a scan, a filter with a literal (an Arrow IPC
/// body inside the CBOR) and an exchange.
fn submit() -> SubmitQuery {
    let scan = crate::scheduler::tests::nation_scan();
    let filter = PhysicalPlan::Filter {
        input: Box::new(scan),
        predicate: PhysExpr::Binary {
            left: Box::new(PhysExpr::col(0, "a")),
            op: BinaryOp::Eq,
            right: Box::new(PhysExpr::lit(ScalarValue::Int64(Some(7)))),
        },
    };
    let plan = PhysicalPlan::Exchange {
        input: Box::new(PhysicalPlan::Exchange {
            input: Box::new(filter),
            partitioning: Partitioning::RoundRobin { partitions: 2 },
        }),
        partitioning: Partitioning::Gather,
    };
    SubmitQuery {
        query: QueryId::new("q1").unwrap(),
        client: ClientId::new("c").unwrap(),
        stages: split_stages(&plan),
        batch_size: 1024,
    }
}

/// Decodes `bytes` as every control message type.
fn decode_as_every_message(bytes: &[u8]) {
    let _ = decode::<SubmitQuery>(bytes);
    let _ = decode::<TaskReport>(bytes);
    let _ = decode::<AttemptProgress>(bytes);
    let _ = decode::<Release>(bytes);
    let _ = decode::<EventsRequest>(bytes);
    let _ = decode::<WorkerInfo>(bytes);
    let _ = decode::<WorkerState>(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        decode_as_every_message(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut bytes = encode(&submit()).unwrap();
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        decode_as_every_message(&bytes);
    }
}

#[test]
fn a_valid_submit_round_trips() {
    let bytes = encode(&submit()).unwrap();
    let back: SubmitQuery = decode(&bytes).unwrap();
    assert_eq!(encode(&back).unwrap(), bytes);
}

#[test]
fn a_small_message_claiming_huge_lengths_is_refused_without_allocating() {
    // CBOR heads: a map of 4 entries, then "query" as a text string whose
    // length claims 2^60 bytes; and an array claiming 2^60 elements.
    for head in [&[0x7b][..], &[0x9b][..], &[0x5b][..]] {
        let mut bytes = vec![0xa4, 0x65];
        bytes.extend_from_slice(b"query");
        bytes.extend_from_slice(head);
        bytes.extend_from_slice(&(1u64 << 60).to_be_bytes());
        bytes.resize(1024, b'x');
        let err = decode::<SubmitQuery>(&bytes).unwrap_err().to_string();
        assert!(err.contains("decoding"), "{err}");
    }
}
