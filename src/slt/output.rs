//! Column types and value rendering: query results as sqllogictest rows,
//! in DataFusion's conventions.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float16Type, Float32Type, Float64Type, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{ColumnType, DBOutput};

/// The type letter of a result column: `I` integers, `R` floats and
/// decimals, `T` text and everything else. Other letters of external suites
/// (DataFusion's `B`, `D`, `P`, `?`) parse as [`ColType::Other`], which
/// [`column_validator`] accepts for any actual type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Integer,
    Float,
    Text,
    Other(char),
}

impl ColumnType for ColType {
    fn from_char(value: char) -> Option<Self> {
        Some(match value {
            'I' => ColType::Integer,
            'R' => ColType::Float,
            'T' => ColType::Text,
            c => ColType::Other(c),
        })
    }

    fn to_char(&self) -> char {
        match self {
            ColType::Integer => 'I',
            ColType::Float => 'R',
            ColType::Text => 'T',
            ColType::Other(c) => *c,
        }
    }
}

impl ColType {
    /// The type letter of an Arrow type.
    pub fn of(data_type: &DataType) -> ColType {
        match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => ColType::Integer,
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(_, _)
            | DataType::Decimal64(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _) => ColType::Float,
            _ => ColType::Text,
        }
    }
}

/// Checks the column types of a query: the same number of columns, and each
/// actual type equal to the expected one unless the expected letter is not
/// one of `I`, `R`, `T`.
#[allow(clippy::ptr_arg)] // the signature of sqllogictest's ColumnTypeValidator
pub fn column_validator(actual: &Vec<ColType>, expected: &Vec<ColType>) -> bool {
    actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(a, e)| matches!(e, ColType::Other(_)) || a == e)
}

/// Decimal places that floats and decimals are rounded to.
const ROUND_DIGITS: usize = 12;

/// Renders query results as sqllogictest rows, in DataFusion's conventions:
/// `NULL` for nulls, `(empty)` for empty strings, `true`/`false`, floats and
/// decimals rounded to 12 decimal places without trailing zeros (`1.5`,
/// `2`, `NaN`, `Infinity`, `-Infinity`), everything else as Arrow displays
/// it (dates `2024-01-31`, timestamps `2024-01-31T10:00:00`).
///
/// A result without columns (DDL) is `StatementComplete(0)`.
pub fn batches_to_output(
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<DBOutput<ColType>, arrow::error::ArrowError> {
    if schema.fields().is_empty() {
        return Ok(DBOutput::StatementComplete(0));
    }
    let types = schema
        .fields()
        .iter()
        .map(|f| ColType::of(f.data_type()))
        .collect();
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<String>> = batch
            .columns()
            .iter()
            .map(render_column)
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[row].clone()).collect());
        }
    }
    Ok(DBOutput::Rows { types, rows })
}

fn render_column(array: &ArrayRef) -> Result<Vec<String>, arrow::error::ArrowError> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    match array.data_type() {
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    "NULL".to_string()
                } else {
                    float_to_string(a.value(i), &a.value(i).to_string())
                });
            }
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    "NULL".to_string()
                } else {
                    float_to_string(a.value(i) as f64, &a.value(i).to_string())
                });
            }
        }
        DataType::Float16 => {
            let a = array.as_primitive::<Float16Type>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    "NULL".to_string()
                } else {
                    let v = f32::from(a.value(i));
                    float_to_string(v as f64, &v.to_string())
                });
            }
        }
        dt => {
            let decimal = matches!(
                dt,
                DataType::Decimal32(_, _)
                    | DataType::Decimal64(_, _)
                    | DataType::Decimal128(_, _)
                    | DataType::Decimal256(_, _)
            );
            let options = FormatOptions::default().with_null("NULL");
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
            for i in 0..n {
                if array.is_null(i) {
                    out.push("NULL".to_string());
                    continue;
                }
                let s = formatter.value(i).try_to_string()?;
                out.push(if decimal {
                    round_decimal_string(&s, ROUND_DIGITS)
                } else if s.is_empty() {
                    "(empty)".to_string()
                } else {
                    s
                });
            }
        }
    }
    Ok(out)
}

/// `shortest` is the shortest decimal text of the value (Rust's `Display`,
/// which never uses exponents).
fn float_to_string(v: f64, shortest: &str) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "Infinity".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".to_string()
    } else {
        round_decimal_string(shortest, ROUND_DIGITS)
    }
}

/// Rounds a plain decimal string (`-123.4567`) to `digits` decimal places
/// (half to even) and removes trailing zeros; `-0` becomes `0`. A string
/// that is not a plain decimal is returned unchanged.
pub fn round_decimal_string(s: &str, digits: usize) -> String {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    let plain = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !plain(int_part) || !plain(frac_part) {
        return s.to_string();
    }
    let mut int_digits: Vec<u8> = int_part.bytes().map(|b| b - b'0').collect();
    let mut frac_digits: Vec<u8> = frac_part.bytes().map(|b| b - b'0').collect();
    if frac_digits.len() > digits {
        let rest = frac_digits.split_off(digits);
        let last = frac_digits
            .last()
            .copied()
            .unwrap_or_else(|| int_digits.last().copied().unwrap_or(0));
        let round_up = match rest[0].cmp(&5) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => rest[1..].iter().any(|&d| d != 0) || last % 2 == 1,
        };
        if round_up {
            // Add one unit in the last kept place, carrying leftwards.
            let mut carry = true;
            for d in frac_digits
                .iter_mut()
                .rev()
                .chain(int_digits.iter_mut().rev())
            {
                if !carry {
                    break;
                }
                if *d == 9 {
                    *d = 0;
                } else {
                    *d += 1;
                    carry = false;
                }
            }
            if carry {
                int_digits.insert(0, 1);
            }
        }
    }
    while frac_digits.last() == Some(&0) {
        frac_digits.pop();
    }
    while int_digits.len() > 1 && int_digits[0] == 0 {
        int_digits.remove(0);
    }
    let mut out = String::new();
    let zero = int_digits.iter().all(|&d| d == 0) && frac_digits.is_empty();
    if negative && !zero {
        out.push('-');
    }
    out.extend(int_digits.iter().map(|d| char::from(b'0' + d)));
    if !frac_digits.is_empty() {
        out.push('.');
        out.extend(frac_digits.iter().map(|d| char::from(b'0' + d)));
    }
    out
}
