//! Window functions of a row's position and its window partition's size
//! (`ntile`, `percent_rank`, `cume_dist`) over a window partition that
//! does not fit: the size is counted while the partition is spilled, and
//! a streamed helper expression gives each row's position when it is read
//! back (`row_number` for `ntile`, `rank` for `percent_rank`, the rows up
//! to the end of its peer group for `cume_dist`). The values are computed
//! with the formulas of DataFusion's in-memory evaluation, so they are the
//! same.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, UInt64Type};
use datafusion_common::ScalarValue;
use datafusion_physical_expr::window::WindowExpr as DfWindowExpr;

use crate::error::{DataflowError, Result};
use crate::expr::{PhysExpr, Scalar};
use crate::plan::window::{FrameBound, FrameUnits, WindowExpr, WindowFrame, WindowFunc};

/// A function of a row's position and its window partition's size.
#[derive(Debug, Clone, Copy)]
pub enum SizedFunc {
    /// `ntile(buckets)`.
    Ntile(u64),
    PercentRank,
    /// `cume_dist()`; without ORDER BY every row is a peer of all (no
    /// helper: the position is the size).
    CumeDist,
}

impl SizedFunc {
    /// `e` as a sized function, with the helper expression that gives the
    /// position (`None`: none needed); `None` for any other function.
    pub fn of(
        e: &WindowExpr,
        compiled: &Arc<dyn DfWindowExpr>,
    ) -> Result<Option<(SizedFunc, Option<WindowExpr>)>> {
        let WindowFunc::Window(name) = &e.func else {
            return Ok(None);
        };
        if e.ignore_nulls {
            return Ok(None);
        }
        let helper = |func: WindowFunc, args: Vec<PhysExpr>, frame: WindowFrame| WindowExpr {
            func,
            args,
            frame,
            ignore_nulls: false,
            distinct: false,
            filter: None,
            name: format!("{} position", e.name),
            ..e.clone()
        };
        let to_current_row = WindowFrame {
            units: FrameUnits::Range,
            start: FrameBound::Preceding(Scalar(ScalarValue::UInt64(None))),
            end: FrameBound::CurrentRow,
        };
        let (func, helper, output) = match name.to_ascii_lowercase().as_str() {
            "ntile" => {
                let Some(buckets) = e.args.first().and_then(literal_u64).filter(|n| *n > 0) else {
                    return Ok(None);
                };
                let rn = helper(
                    WindowFunc::Window("row_number".into()),
                    vec![],
                    to_current_row,
                );
                (SizedFunc::Ntile(buckets), Some(rn), DataType::UInt64)
            }
            "percent_rank" => {
                let rank = helper(WindowFunc::Window("rank".into()), vec![], to_current_row);
                (SizedFunc::PercentRank, Some(rank), DataType::Float64)
            }
            "cume_dist" => {
                let ordered = !e.order_by.is_empty();
                let count = ordered.then(|| {
                    let one = PhysExpr::lit(ScalarValue::Int64(Some(1)));
                    helper(
                        WindowFunc::Aggregate("count".into()),
                        vec![one],
                        to_current_row,
                    )
                });
                (SizedFunc::CumeDist, count, DataType::Float64)
            }
            _ => return Ok(None),
        };
        // The formulas below give these types; anything else would not be
        // DataFusion's function of that name.
        if compiled.field()?.data_type() != &output {
            return Ok(None);
        }
        Ok(Some((func, helper)))
    }

    /// The values of `rows` rows of a window partition of `size` rows,
    /// whose positions the helper gave as `position`.
    pub fn evaluate(
        &self,
        position: Option<&ArrayRef>,
        rows: usize,
        size: usize,
    ) -> Result<ArrayRef> {
        let positions = match position {
            Some(p) => {
                let p = cast(p, &DataType::UInt64)?;
                let p = p.as_primitive::<UInt64Type>();
                if p.null_count() > 0 || p.len() != rows {
                    return Err(DataflowError::Internal(
                        "window: the position of a row is missing".into(),
                    ));
                }
                p.values().to_vec()
            }
            None => vec![size as u64; rows],
        };
        let n = size as u64;
        Ok(match self {
            SizedFunc::Ntile(buckets) => {
                // The first `n % buckets` buckets have one row more.
                let base = n / buckets;
                let remainder = n % buckets;
                let large_rows = remainder * (base + 1);
                Arc::new(UInt64Array::from_iter_values(positions.iter().map(|rn| {
                    let i = rn.saturating_sub(1);
                    if i < large_rows {
                        i / (base + 1) + 1
                    } else {
                        remainder + (i - large_rows) / base.max(1) + 1
                    }
                })))
            }
            SizedFunc::PercentRank => {
                let denominator = (n as f64 - 1.0).max(1.0);
                Arc::new(Float64Array::from_iter_values(
                    positions
                        .iter()
                        .map(|rank| rank.saturating_sub(1) as f64 / denominator),
                ))
            }
            SizedFunc::CumeDist => Arc::new(Float64Array::from_iter_values(
                positions.iter().map(|end| *end as f64 / n as f64),
            )),
        })
    }
}

/// A literal argument as a positive integer (`ntile`'s bucket count).
fn literal_u64(arg: &PhysExpr) -> Option<u64> {
    let PhysExpr::Literal(Scalar(v)) = arg else {
        return None;
    };
    match v.cast_to(&DataType::UInt64).ok()? {
        ScalarValue::UInt64(Some(n)) => Some(n),
        _ => None,
    }
}
