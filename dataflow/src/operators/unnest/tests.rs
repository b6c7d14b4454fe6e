use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields, Int64Type, Schema, SchemaRef};

use super::kernel::{BatchUnnest, UnnestSpec};
use crate::plan::{UnnestList, UnnestNulls};

fn ints(values: Vec<Option<Vec<Option<i64>>>>) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(values))
}

fn int_list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)))
}

/// Every output batch of unnesting `batch`, with at most `max_rows` rows
/// each.
fn run(spec: &UnnestSpec, batch: &RecordBatch, max_rows: usize) -> Vec<RecordBatch> {
    let mut unnest = BatchUnnest::new(spec, batch).unwrap();
    let mut out = Vec::new();
    while let Some(b) = unnest.next_batch(max_rows).unwrap() {
        assert!(
            b.num_rows() <= max_rows,
            "{} rows > {max_rows}",
            b.num_rows()
        );
        out.push(b);
    }
    out
}

fn column_i64(batches: &[RecordBatch], i: usize) -> Vec<Option<i64>> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(i)
                .as_primitive::<Int64Type>()
                .iter()
                .collect::<Vec<_>>()
        })
        .collect()
}

fn id_and_list() -> (RecordBatch, SchemaRef) {
    let input = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("l", int_list_type(), true),
    ]));
    let batch = RecordBatch::try_new(
        input,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            ints(vec![
                Some(vec![Some(10), Some(11), Some(12)]),
                Some(vec![]),
                None,
                Some(vec![Some(40), None]),
            ]),
        ],
    )
    .unwrap();
    let output = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("e", DataType::Int64, true),
    ]));
    (batch, output)
}

fn list_spec(nulls: UnnestNulls, schema: SchemaRef) -> UnnestSpec {
    UnnestSpec {
        lists: vec![UnnestList {
            column: 1,
            depth: 1,
        }],
        structs: vec![],
        nulls,
        schema,
    }
}

#[test]
fn lists_become_rows_and_other_columns_repeat() {
    let (batch, schema) = id_and_list();
    let out = run(&list_spec(UnnestNulls::Drop, schema), &batch, 100);
    assert_eq!(column_i64(&out, 0), [1, 1, 1, 4, 4].map(Some));
    assert_eq!(
        column_i64(&out, 1),
        [Some(10), Some(11), Some(12), Some(40), None]
    );
}

#[test]
fn null_and_empty_lists_follow_the_null_rule() {
    let (batch, schema) = id_and_list();
    let ids = |nulls| column_i64(&run(&list_spec(nulls, Arc::clone(&schema)), &batch, 100), 0);
    assert_eq!(ids(UnnestNulls::Preserve), [1, 1, 1, 3, 4, 4].map(Some));
    assert_eq!(
        ids(UnnestNulls::PreserveAndExpandEmpty),
        [1, 1, 1, 2, 3, 4, 4].map(Some)
    );
}

#[test]
fn a_long_list_comes_out_in_bounded_batches() {
    let (_, schema) = id_and_list();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("l", int_list_type(), true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![7, 8])),
            ints(vec![
                Some((0..1000).map(Some).collect()),
                Some(vec![Some(-1)]),
            ]),
        ],
    )
    .unwrap();
    let out = run(&list_spec(UnnestNulls::Drop, schema), &batch, 64);
    assert_eq!(out.len(), 1001usize.div_ceil(64));
    let mut expected: Vec<Option<i64>> = (0..1000).map(Some).collect();
    expected.push(Some(-1));
    assert_eq!(column_i64(&out, 1), expected);
    assert_eq!(
        column_i64(&out, 0)
            .iter()
            .filter(|v| **v == Some(8))
            .count(),
        1
    );
}

#[test]
fn several_lists_are_zipped_to_the_longest() {
    let input = Arc::new(Schema::new(vec![
        Field::new("a", int_list_type(), true),
        Field::new("b", int_list_type(), true),
    ]));
    let batch = RecordBatch::try_new(
        input,
        vec![
            ints(vec![Some(vec![Some(1), Some(2)]), None]),
            ints(vec![Some(vec![Some(5)]), Some(vec![Some(6), Some(7)])]),
        ],
    )
    .unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Int64, true),
    ]));
    let spec = UnnestSpec {
        lists: vec![
            UnnestList {
                column: 0,
                depth: 1,
            },
            UnnestList {
                column: 1,
                depth: 1,
            },
        ],
        structs: vec![],
        nulls: UnnestNulls::Drop,
        schema,
    };
    let out = run(&spec, &batch, 3);
    assert_eq!(column_i64(&out, 0), [Some(1), Some(2), None, None]);
    assert_eq!(column_i64(&out, 1), [Some(5), None, Some(6), Some(7)]);
}

#[test]
fn nested_lists_flatten_level_by_level() {
    // [[1, 2], [], [3]] and NULL, unnested twice and once.
    let inner = ints(vec![
        Some(vec![Some(1), Some(2)]),
        Some(vec![]),
        Some(vec![Some(3)]),
    ]);
    let outer_field = Arc::new(Field::new_list_field(int_list_type(), true));
    let outer = ListArray::new(
        Arc::clone(&outer_field),
        arrow::buffer::OffsetBuffer::new(vec![0, 3, 3].into()),
        inner,
        Some(NullBuffer::from(vec![true, false])),
    );
    let input = Arc::new(Schema::new(vec![Field::new(
        "l",
        DataType::List(outer_field),
        true,
    )]));
    let batch = RecordBatch::try_new(input, vec![Arc::new(outer)]).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("deep", DataType::Int64, true),
        Field::new("shallow", int_list_type(), true),
    ]));
    let spec = UnnestSpec {
        lists: vec![
            UnnestList {
                column: 0,
                depth: 2,
            },
            UnnestList {
                column: 0,
                depth: 1,
            },
        ],
        structs: vec![],
        nulls: UnnestNulls::Drop,
        schema,
    };
    let out = run(&spec, &batch, 100);
    // Level 2 flattens the outer list of the deep entry into its 3 inner
    // lists, repeating the column (the shallow entry starts below). Level 1
    // zips each inner list's elements with the outer list's 3 elements.
    assert_eq!(
        column_i64(&out, 0),
        [
            Some(1),
            Some(2),
            None,
            None,
            None,
            None,
            Some(3),
            None,
            None
        ]
    );
    let shallow: Vec<Option<usize>> = out
        .iter()
        .flat_map(|b| {
            let l = b.column(1).as_list::<i32>();
            (0..l.len())
                .map(|i| l.is_valid(i).then(|| l.value(i).len()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(shallow, [2, 0, 1, 2, 0, 1, 2, 0, 1].map(Some));
}

#[test]
fn structs_become_their_fields_null_structs_null_fields() {
    let fields = Fields::from(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("y", DataType::Utf8, true),
    ]);
    let st = StructArray::new(
        fields.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["a", "b"])),
        ],
        Some(NullBuffer::from(vec![true, false])),
    );
    let input = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("s", DataType::Struct(fields), true),
    ]));
    let batch = RecordBatch::try_new(
        input,
        vec![Arc::new(Int64Array::from(vec![5, 6])), Arc::new(st)],
    )
    .unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("s.x", DataType::Int64, true),
        Field::new("s.y", DataType::Utf8, true),
    ]));
    let spec = UnnestSpec {
        lists: vec![],
        structs: vec![1],
        nulls: UnnestNulls::Drop,
        schema,
    };
    let out = run(&spec, &batch, 100);
    assert_eq!(column_i64(&out, 1), [Some(1), None]);
    let y = out[0].column(2).as_string::<i32>();
    assert_eq!(y.iter().collect::<Vec<_>>(), [Some("a"), None]);
}
