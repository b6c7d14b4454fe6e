//! Results in canonical form: rows of [`Cell`]s, floats kept as numbers
//! (compared with a tolerance), every other value as arrow displays it.

use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Relative tolerance of float comparisons.
pub const FLOAT_REL_TOLERANCE: f64 = 1e-6;
/// Absolute tolerance of float comparisons (for values near zero).
pub const FLOAT_ABS_TOLERANCE: f64 = 1e-9;

/// One value of a result, in canonical form.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    /// Float columns (compared with a tolerance).
    Float(f64),
    /// Every other type, rendered by arrow's display (decimals exact).
    Text(String),
}

impl Cell {
    pub fn approx_eq(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Float(a), Cell::Float(b)) => float_eq(*a, *b),
            (Cell::Text(a), Cell::Text(b)) => a == b,
            _ => false,
        }
    }

    /// Rendering for diffs.
    pub fn render(&self) -> String {
        match self {
            Cell::Null => "NULL".to_string(),
            Cell::Float(f) => format!("{f:?}"),
            Cell::Text(s) if s.is_empty() => "''".to_string(),
            Cell::Text(s) => s.clone(),
        }
    }

    /// A key for sorting rows canonically: floats rounded so that values
    /// equal within the tolerance usually get the same key.
    fn sort_key(&self) -> String {
        match self {
            Cell::Null => "\u{0}NULL".to_string(),
            Cell::Float(f) if f.is_nan() => "\u{1}NaN".to_string(),
            Cell::Float(f) => format!("{f:.5e}"),
            Cell::Text(s) => format!("\u{2}{s}"),
        }
    }
}

pub fn float_eq(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= FLOAT_REL_TOLERANCE * a.abs().max(b.abs()) || diff <= FLOAT_ABS_TOLERANCE
}

pub type Row = Vec<Cell>;

pub fn rows_eq(a: &Row, b: &Row) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.approx_eq(y))
}

pub fn row_sort_key(row: &Row) -> Vec<String> {
    row.iter().map(Cell::sort_key).collect()
}

pub fn render_row(row: &Row) -> String {
    row.iter().map(Cell::render).collect::<Vec<_>>().join(" | ")
}

pub fn render_rows(rows: &[Row]) -> String {
    let mut s = String::new();
    for r in rows {
        s.push_str(&render_row(r));
        s.push('\n');
    }
    s
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

fn column_cells(array: &ArrayRef) -> Result<Vec<Cell>, String> {
    let n = array.len();
    let nulls = array.logical_nulls();
    let is_null = |i: usize| nulls.as_ref().map(|b| b.is_null(i)).unwrap_or(false);
    if is_float(array.data_type()) {
        let f = cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
        let f = f
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or("cast to Float64 failed")?;
        return Ok((0..n)
            .map(|i| {
                if is_null(i) {
                    Cell::Null
                } else {
                    Cell::Float(f.value(i))
                }
            })
            .collect());
    }
    let options = FormatOptions::new().with_null("NULL");
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options).map_err(|e| e.to_string())?;
    Ok((0..n)
        .map(|i| {
            if is_null(i) {
                Cell::Null
            } else {
                Cell::Text(formatter.value(i).to_string())
            }
        })
        .collect())
}

/// Flattens batches into rows of canonical cells.
pub fn normalize(batches: &[RecordBatch]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .map(column_cells)
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    Ok(rows)
}
