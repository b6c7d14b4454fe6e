//! Aggregates whose accumulators need their rows in their ORDER BY order.
//!
//! DataFusion's order-sensitive aggregates come in two kinds: most
//! (`first_value`, `array_agg`, `string_agg`) compare the ordering values
//! themselves, whatever order the rows come in; `nth_value` (and any
//! function with a hard requirement) keeps the first rows it sees, so its
//! input must arrive sorted. The planner sorts the input of such an
//! aggregate once, so all of them must agree on one order: `nth_value(x, n
//! ORDER BY o)` is also `nth_value(x, -n ORDER BY o reversed)` (the n-th
//! from the end), which lets an aggregate in the opposite order share the
//! sort. Any other disagreement is not supported.

use datafusion_common::ScalarValue;
use ffq_dataflow::expr::{AggExpr, PhysExpr, Scalar, SortExpr};
use ffq_dataflow::functions::FunctionRegistry;

use crate::error::{Error, Result};

/// The order the input of `aggregates` must be sorted in (`None`: any),
/// rewriting those that agree only in reverse so that they agree.
pub(super) fn required_input_order(
    aggregates: &mut [AggExpr],
    registry: &FunctionRegistry,
) -> Result<Option<Vec<SortExpr>>> {
    let mut order: Option<Vec<SortExpr>> = None;
    for agg in aggregates.iter_mut() {
        if agg.order_by.is_empty()
            || !registry
                .aggregate(&agg.func)?
                .order_sensitivity()
                .hard_requires()
        {
            continue;
        }
        let Some(chosen) = &order else {
            order = Some(agg.order_by.clone());
            continue;
        };
        if *chosen == agg.order_by {
            continue;
        }
        match reversed_nth_value(agg) {
            Some(reversed) if reversed.order_by == *chosen => *agg = reversed,
            _ => {
                return Err(Error::NotSupported(format!(
                    "aggregates that need their input sorted in different orders ({} and {agg} \
                     ORDER BY {})",
                    display_order(chosen),
                    display_order(&agg.order_by)
                )))
            }
        }
    }
    Ok(order)
}

/// `nth_value(x, n ORDER BY o)` as `nth_value(x, -n ORDER BY o reversed)`.
fn reversed_nth_value(agg: &AggExpr) -> Option<AggExpr> {
    if agg.func != "nth_value" {
        return None;
    }
    let [value, PhysExpr::Literal(Scalar(ScalarValue::Int64(Some(n))))] = agg.args.as_slice()
    else {
        return None;
    };
    Some(AggExpr {
        args: vec![
            value.clone(),
            PhysExpr::lit(ScalarValue::Int64(Some(n.checked_neg()?))),
        ],
        order_by: agg
            .order_by
            .iter()
            .map(|s| SortExpr {
                expr: s.expr.clone(),
                asc: !s.asc,
                nulls_first: !s.nulls_first,
            })
            .collect(),
        ..agg.clone()
    })
}

fn display_order(order: &[SortExpr]) -> String {
    order
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
