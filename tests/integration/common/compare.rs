//! Comparison of normalized results and of schemas, with readable diffs.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};

use super::order::OutputOrder;
use super::rows::{render_rows, row_sort_key, rows_eq, Row};

fn diff(label: &str, expected: &[Row], actual: &[Row]) -> String {
    format!(
        "{label}: results differ (left: expected/DataFusion {} rows, right: actual/FFQ {} rows)\n{}",
        expected.len(),
        actual.len(),
        pretty_assertions::StrComparison::new(&render_rows(expected), &render_rows(actual))
    )
}

fn sorted(rows: &[Row]) -> Vec<Row> {
    let mut keyed: Vec<(Vec<String>, Row)> =
        rows.iter().map(|r| (row_sort_key(r), r.clone())).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// Whether two row sets are equal as multisets (floats with tolerance).
fn multiset_eq(expected: &[Row], actual: &[Row]) -> bool {
    if expected.len() != actual.len() {
        return false;
    }
    let (e, a) = (sorted(expected), sorted(actual));
    if e.iter().zip(&a).all(|(x, y)| rows_eq(x, y)) {
        return true;
    }
    // Rounded float keys may sort values within the tolerance differently:
    // match greedily when the result is small.
    if e.len() > 2000 {
        return false;
    }
    let mut used = vec![false; a.len()];
    'outer: for x in &e {
        for (j, y) in a.iter().enumerate() {
            if !used[j] && rows_eq(x, y) {
                used[j] = true;
                continue 'outer;
            }
        }
        return false;
    }
    true
}

fn key_of(row: &Row, keys: &[usize]) -> Row {
    keys.iter().map(|&k| row[k].clone()).collect()
}

/// Compares normalized results; `Err` holds a readable diff.
pub fn compare_rows(
    label: &str,
    expected: &[Row],
    actual: &[Row],
    order: &OutputOrder,
) -> Result<(), String> {
    match order {
        OutputOrder::Unordered => {
            if multiset_eq(expected, actual) {
                Ok(())
            } else {
                Err(diff(label, &sorted(expected), &sorted(actual)))
            }
        }
        OutputOrder::Exact => {
            if expected.len() == actual.len()
                && expected.iter().zip(actual).all(|(x, y)| rows_eq(x, y))
            {
                Ok(())
            } else {
                Err(diff(label, expected, actual))
            }
        }
        OutputOrder::Keys { keys, limited } => {
            let fail = || {
                Err(format!(
                    "{} (ordered by output columns {keys:?}{})",
                    diff(label, expected, actual),
                    if *limited { ", with LIMIT" } else { "" }
                ))
            };
            if expected.len() != actual.len() {
                return fail();
            }
            // The sequence of key values must be the same.
            for (x, y) in expected.iter().zip(actual) {
                if !rows_eq(&key_of(x, keys), &key_of(y, keys)) {
                    return fail();
                }
            }
            // Within each group of equal keys the rows must be the same
            // multiset; the last group of a LIMIT may be cut differently.
            let mut start = 0;
            while start < expected.len() {
                let k = key_of(&expected[start], keys);
                let mut end = start + 1;
                while end < expected.len() && rows_eq(&key_of(&expected[end], keys), &k) {
                    end += 1;
                }
                // Under LIMIT the last tie group may be cut anywhere: only
                // its keys (checked above) must agree.
                let cut_by_limit = *limited && end == expected.len();
                if !cut_by_limit && !multiset_eq(&expected[start..end], &actual[start..end]) {
                    return fail();
                }
                start = end;
            }
            Ok(())
        }
    }
}

/// Compares names and types of two schemas; differences in nullability
/// only produce a note (returned as `Ok(Some(note))`).
pub fn compare_schemas(
    label: &str,
    expected: &Schema,
    actual: &Schema,
) -> Result<Option<String>, String> {
    let render = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    let (e, a) = (render(expected), render(actual));
    if e != a {
        return Err(format!(
            "{label}: schemas differ (left: DataFusion, right: FFQ)\n{}",
            pretty_assertions::StrComparison::new(&e, &a)
        ));
    }
    let notes: Vec<String> = expected
        .fields()
        .iter()
        .zip(actual.fields())
        .filter(|(x, y)| x.is_nullable() != y.is_nullable())
        .map(|(x, y)| {
            format!(
                "{}: DataFusion nullable={}, FFQ nullable={}",
                x.name(),
                x.is_nullable(),
                y.is_nullable()
            )
        })
        .collect();
    if notes.is_empty() {
        Ok(None)
    } else {
        Ok(Some(format!(
            "{label}: nullability differs: {}",
            notes.join("; ")
        )))
    }
}

/// Checks that every batch of a result has the declared column types.
pub fn check_batch_types(
    label: &str,
    declared: &Schema,
    batches: &[RecordBatch],
) -> Result<(), String> {
    for (i, b) in batches.iter().enumerate() {
        let types: Vec<&DataType> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.data_type())
            .collect();
        let want: Vec<&DataType> = declared.fields().iter().map(|f| f.data_type()).collect();
        if types != want {
            return Err(format!(
                "{label}: batch {i} has column types {types:?}, but the declared schema has {want:?}"
            ));
        }
    }
    Ok(())
}
