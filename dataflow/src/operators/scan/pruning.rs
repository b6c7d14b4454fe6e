//! Row-group pruning with Parquet min/max statistics.
//!
//! A [`PruningPredicate`] is built from the scan's pruning conjuncts (over
//! the *table* schema). Conjuncts it does not understand are ignored, so a
//! row group is only skipped when its statistics prove that some conjunct is
//! false or NULL for every row. Supported shapes, where `col` is a column
//! optionally wrapped in order-preserving casts and `v` a literal:
//! `col op v` / `v op col` with `op` in `=, <>, <, <=, >, >=`,
//! `col [NOT] BETWEEN v AND v`, `col IN (v, ...)`, `col IS [NOT] NULL`,
//! and `AND` / `OR` of those. Only integer, decimal, date/timestamp and
//! string columns are compared (floats and other types are never pruned).

use arrow::array::{Array, ArrayRef, BooleanArray, Scalar, UInt64Array};
use arrow::compute::kernels::cmp;
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Schema};
use datafusion_common::ScalarValue;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::file::metadata::ParquetMetaData;
use parquet::schema::types::SchemaDescriptor;

use crate::expr::{BinaryOp, PhysExpr};

/// Comparison of a column expression with a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    fn from_binary(op: BinaryOp) -> Option<Self> {
        Some(match op {
            BinaryOp::Eq => CmpOp::Eq,
            BinaryOp::NotEq => CmpOp::NotEq,
            BinaryOp::Lt => CmpOp::Lt,
            BinaryOp::LtEq => CmpOp::LtEq,
            BinaryOp::Gt => CmpOp::Gt,
            BinaryOp::GtEq => CmpOp::GtEq,
            _ => return None,
        })
    }

    /// `v op col` is `col flip(op) v`.
    fn flip(self) -> Self {
        match self {
            CmpOp::Eq | CmpOp::NotEq => self,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
        }
    }
}

/// A table column, possibly under order-preserving casts (innermost first).
#[derive(Debug, Clone)]
struct ColRef {
    index: usize,
    /// The column's type in the table schema.
    column_type: DataType,
    casts: Vec<DataType>,
    /// The type of the expression (after the casts).
    data_type: DataType,
}

#[derive(Debug, Clone)]
enum Pred {
    Cmp {
        col: ColRef,
        op: CmpOp,
        value: ScalarValue,
    },
    Between {
        col: ColRef,
        negated: bool,
        low: ScalarValue,
        high: ScalarValue,
    },
    InList {
        col: ColRef,
        values: Vec<ScalarValue>,
    },
    IsNull(usize),
    IsNotNull(usize),
    /// A constant FALSE or NULL: no row qualifies.
    Never,
    And(Vec<Pred>),
    Or(Vec<Pred>),
}

/// Types whose casts among each other preserve order and whose Parquet
/// statistics compare like Arrow values.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Family {
    Exact,
    String,
    Temporal,
}

fn family(dt: &DataType) -> Option<Family> {
    use DataType::*;
    match dt {
        Int8
        | Int16
        | Int32
        | Int64
        | UInt8
        | UInt16
        | UInt32
        | UInt64
        | Decimal32(_, _)
        | Decimal64(_, _)
        | Decimal128(_, _)
        | Decimal256(_, _) => Some(Family::Exact),
        Utf8 | LargeUtf8 | Utf8View => Some(Family::String),
        Date32 | Date64 | Timestamp(_, _) => Some(Family::Temporal),
        Dictionary(_, v) => family(v),
        _ => None,
    }
}

fn same_family(a: &DataType, b: &DataType) -> bool {
    matches!((family(a), family(b)), (Some(x), Some(y)) if x == y)
}

fn strict_cast() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        ..Default::default()
    }
}

fn column_ref(e: &PhysExpr, table: &Schema) -> Option<ColRef> {
    match e {
        PhysExpr::Column { index, .. } => {
            let field = table.fields().get(*index)?;
            family(field.data_type())?;
            Some(ColRef {
                index: *index,
                column_type: field.data_type().clone(),
                casts: vec![],
                data_type: field.data_type().clone(),
            })
        }
        PhysExpr::Cast { expr, data_type } => {
            let mut c = column_ref(expr, table)?;
            if !same_family(&c.data_type, data_type) {
                return None;
            }
            c.casts.push(data_type.clone());
            c.data_type = data_type.clone();
            Some(c)
        }
        _ => None,
    }
}

fn literal(e: &PhysExpr) -> Option<ScalarValue> {
    match e {
        PhysExpr::Literal(v) => Some(v.0.clone()),
        PhysExpr::Cast { expr, data_type } => literal(expr)?
            .cast_to_with_options(data_type, &strict_cast())
            .ok(),
        _ => None,
    }
}

fn plain_column(e: &PhysExpr, table: &Schema) -> Option<usize> {
    match e {
        PhysExpr::Column { index, .. } if *index < table.fields().len() => Some(*index),
        _ => None,
    }
}

fn parse(e: &PhysExpr, table: &Schema) -> Option<Pred> {
    match e {
        PhysExpr::Literal(v) => match &v.0 {
            ScalarValue::Boolean(Some(false)) | ScalarValue::Boolean(None) | ScalarValue::Null => {
                Some(Pred::Never)
            }
            _ => None,
        },
        PhysExpr::Binary { left, op, right } => match op {
            BinaryOp::And => {
                let parts: Vec<Pred> = [left, right]
                    .into_iter()
                    .filter_map(|x| parse(x, table))
                    .collect();
                (!parts.is_empty()).then_some(Pred::And(parts))
            }
            BinaryOp::Or => Some(Pred::Or(vec![parse(left, table)?, parse(right, table)?])),
            _ => {
                let op = CmpOp::from_binary(*op)?;
                if let (Some(col), Some(value)) = (column_ref(left, table), literal(right)) {
                    Some(Pred::Cmp { col, op, value })
                } else if let (Some(value), Some(col)) = (literal(left), column_ref(right, table)) {
                    Some(Pred::Cmp {
                        col,
                        op: op.flip(),
                        value,
                    })
                } else {
                    None
                }
            }
        },
        PhysExpr::Between {
            expr,
            negated,
            low,
            high,
        } => Some(Pred::Between {
            col: column_ref(expr, table)?,
            negated: *negated,
            low: literal(low)?,
            high: literal(high)?,
        }),
        PhysExpr::InList {
            expr,
            list,
            negated: false,
        } if !list.is_empty() => Some(Pred::InList {
            col: column_ref(expr, table)?,
            values: list.iter().map(literal).collect::<Option<Vec<_>>>()?,
        }),
        PhysExpr::IsNull(e) => Some(Pred::IsNull(plain_column(e, table)?)),
        PhysExpr::IsNotNull(e) => Some(Pred::IsNotNull(plain_column(e, table)?)),
        _ => None,
    }
}

/// The pruning conjuncts of a scan, in the form the statistics check uses.
#[derive(Debug, Clone, Default)]
pub struct PruningPredicate {
    conjuncts: Vec<Pred>,
}

/// Statistics of the selected row groups of one file.
pub struct FileStats<'a> {
    /// The file's Arrow schema.
    pub file_schema: &'a Schema,
    pub parquet_schema: &'a SchemaDescriptor,
    pub metadata: &'a ParquetMetaData,
    /// The row groups to check (indices into the file's row groups).
    pub row_groups: &'a [usize],
    /// Maps a table column index to the file's field index.
    pub column_map: &'a dyn Fn(usize) -> Option<usize>,
}

/// Min/max/null statistics of a column expression, one entry per row group.
struct Bounds {
    min: ArrayRef,
    max: ArrayRef,
}

impl PruningPredicate {
    /// Keeps the conjuncts that statistics can decide; the rest are ignored.
    pub fn new(conjuncts: &[PhysExpr], table_schema: &Schema) -> Self {
        PruningPredicate {
            conjuncts: conjuncts
                .iter()
                .filter_map(|c| parse(c, table_schema))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.conjuncts.is_empty()
    }

    /// For each row group of `stats.row_groups`, whether it may hold rows
    /// that satisfy every conjunct (`false` = proven empty, skip it).
    pub fn keep(&self, stats: &FileStats<'_>) -> Vec<bool> {
        let n = stats.row_groups.len();
        let mut keep = vec![true; n];
        for c in &self.conjuncts {
            if let Some(skip) = skip_mask(c, stats) {
                for (k, s) in keep.iter_mut().zip(skip) {
                    *k &= !s;
                }
            }
        }
        keep
    }
}

/// Row groups where `p` is proven not true for every row (`None` = cannot
/// tell for any).
fn skip_mask(p: &Pred, st: &FileStats<'_>) -> Option<Vec<bool>> {
    let n = st.row_groups.len();
    match p {
        Pred::Never => Some(vec![true; n]),
        Pred::And(parts) => {
            let mut out: Option<Vec<bool>> = None;
            for m in parts.iter().filter_map(|x| skip_mask(x, st)) {
                out = Some(match out {
                    None => m,
                    Some(o) => o.iter().zip(&m).map(|(a, b)| *a || *b).collect(),
                });
            }
            out
        }
        Pred::Or(parts) => {
            let mut out = vec![true; n];
            for x in parts {
                let m = skip_mask(x, st)?;
                for (o, s) in out.iter_mut().zip(m) {
                    *o &= s;
                }
            }
            Some(out)
        }
        Pred::IsNull(index) => {
            let (nulls, _) = null_counts(*index, st)?;
            Some(
                (0..n)
                    .map(|i| nulls.is_valid(i) && nulls.value(i) == 0)
                    .collect(),
            )
        }
        Pred::IsNotNull(index) => all_null(*index, st),
        Pred::Cmp { col, op, value } => {
            let (b, v) = bounds_and_value(col, value, st)?;
            let m = match op {
                CmpOp::Eq => or(
                    &definite(cmp::lt(&b.max, &v)),
                    &definite(cmp::gt(&b.min, &v)),
                ),
                CmpOp::NotEq => and(
                    &definite(cmp::eq(&b.min, &v)),
                    &definite(cmp::eq(&b.max, &v)),
                ),
                CmpOp::Lt => definite(cmp::gt_eq(&b.min, &v)),
                CmpOp::LtEq => definite(cmp::gt(&b.min, &v)),
                CmpOp::Gt => definite(cmp::lt_eq(&b.max, &v)),
                CmpOp::GtEq => definite(cmp::lt(&b.max, &v)),
            };
            Some(with_all_null(m, col.index, st))
        }
        Pred::Between {
            col,
            negated,
            low,
            high,
        } => {
            let (b, lo) = bounds_and_value(col, low, st)?;
            let (_, hi) = bounds_and_value(col, high, st)?;
            let m = if *negated {
                // NOT BETWEEN is false when every value lies in [lo, hi].
                and(
                    &definite(cmp::gt_eq(&b.min, &lo)),
                    &definite(cmp::lt_eq(&b.max, &hi)),
                )
            } else {
                or(
                    &definite(cmp::lt(&b.max, &lo)),
                    &definite(cmp::gt(&b.min, &hi)),
                )
            };
            Some(with_all_null(m, col.index, st))
        }
        Pred::InList { col, values } => {
            let mut m = vec![true; n];
            for value in values {
                let (b, v) = bounds_and_value(col, value, st)?;
                let outside = or(
                    &definite(cmp::lt(&b.max, &v)),
                    &definite(cmp::gt(&b.min, &v)),
                );
                m = and(&m, &outside);
            }
            Some(with_all_null(m, col.index, st))
        }
    }
}

fn definite(r: Result<BooleanArray, arrow::error::ArrowError>) -> Vec<bool> {
    match r {
        Ok(b) => (0..b.len()).map(|i| b.is_valid(i) && b.value(i)).collect(),
        Err(_) => vec![],
    }
}

/// Element-wise OR; an empty (failed) side counts as all false.
fn or(a: &[bool], b: &[bool]) -> Vec<bool> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| a.get(i).copied().unwrap_or(false) || b.get(i).copied().unwrap_or(false))
        .collect()
}

/// Element-wise AND; an empty (failed) side counts as all false.
fn and(a: &[bool], b: &[bool]) -> Vec<bool> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| a.get(i).copied().unwrap_or(false) && b.get(i).copied().unwrap_or(false))
        .collect()
}

/// Adds the row groups where the column is entirely NULL (comparisons are
/// then NULL for every row).
fn with_all_null(mut m: Vec<bool>, index: usize, st: &FileStats<'_>) -> Vec<bool> {
    m.resize(st.row_groups.len(), false);
    if let Some(all) = all_null(index, st) {
        for (x, a) in m.iter_mut().zip(all) {
            *x |= a;
        }
    }
    m
}

fn converter<'a>(index: usize, st: &FileStats<'a>) -> Option<StatisticsConverter<'a>> {
    let fi = (st.column_map)(index)?;
    let name = st.file_schema.fields().get(fi)?.name();
    let conv = StatisticsConverter::try_new(name, st.file_schema, st.parquet_schema).ok()?;
    conv.parquet_column_index()?;
    Some(conv.with_missing_null_counts_as_zero(false))
}

fn selected<'a>(st: &FileStats<'a>) -> Option<Vec<&'a parquet::file::metadata::RowGroupMetaData>> {
    st.row_groups
        .iter()
        .map(|&i| st.metadata.row_groups().get(i))
        .collect()
}

/// Null counts (NULL = unknown) and row counts of the column per row group.
fn null_counts(index: usize, st: &FileStats<'_>) -> Option<(UInt64Array, Vec<u64>)> {
    let conv = converter(index, st)?;
    let rgs = selected(st)?;
    let nulls = conv.row_group_null_counts(rgs.iter().copied()).ok()?;
    let rows = rgs.iter().map(|r| r.num_rows().max(0) as u64).collect();
    (nulls.len() == st.row_groups.len()).then_some((nulls, rows))
}

fn all_null(index: usize, st: &FileStats<'_>) -> Option<Vec<bool>> {
    let (nulls, rows) = null_counts(index, st)?;
    Some(
        (0..rows.len())
            .map(|i| nulls.is_valid(i) && nulls.value(i) == rows[i])
            .collect(),
    )
}

/// The min/max bounds of `col` and the literal `value`, both of the same
/// type, ready for comparison.
fn bounds_and_value(
    col: &ColRef,
    value: &ScalarValue,
    st: &FileStats<'_>,
) -> Option<(Bounds, Scalar<ArrayRef>)> {
    let mut b = bounds(col, st)?;
    let value_type = value.data_type();
    let mut v = value.to_array().ok()?;
    if value_type != col.data_type {
        if !same_family(&value_type, &col.data_type) {
            return None;
        }
        // Prefer casting the literal to the column type when exact;
        // otherwise compare in the literal's type.
        let opts = strict_cast();
        let exact = cast_with_options(&v, &col.data_type, &opts)
            .ok()
            .filter(|c| {
                cast_with_options(c, &value_type, &opts)
                    .map(|back| back.as_ref() == v.as_ref())
                    .unwrap_or(false)
            });
        match exact {
            Some(c) => v = c,
            None => {
                b = Bounds {
                    min: cast_with_options(&b.min, &value_type, &opts).ok()?,
                    max: cast_with_options(&b.max, &value_type, &opts).ok()?,
                };
            }
        }
    }
    if v.len() != 1 {
        return None;
    }
    Some((b, Scalar::new(v)))
}

/// Min/max statistics of a column expression in its type.
fn bounds(col: &ColRef, st: &FileStats<'_>) -> Option<Bounds> {
    let conv = converter(col.index, st)?;
    let rgs = selected(st)?;
    let mut min = conv.row_group_mins(rgs.iter().copied()).ok()?;
    let mut max = conv.row_group_maxes(rgs.iter().copied()).ok()?;
    if min.len() != st.row_groups.len() || max.len() != st.row_groups.len() {
        return None;
    }
    let opts = strict_cast();
    // The file's type may differ in representation from the table's; then
    // the casts of the expression apply.
    let fi = (st.column_map)(col.index)?;
    let mut current = st.file_schema.fields().get(fi)?.data_type().clone();
    for target in std::iter::once(&col.column_type).chain(&col.casts) {
        if &current != target {
            if !same_family(&current, target) {
                return None;
            }
            min = cast_with_options(&min, target, &opts).ok()?;
            max = cast_with_options(&max, target, &opts).ok()?;
            current = target.clone();
        }
    }
    Some(Bounds { min, max })
}
