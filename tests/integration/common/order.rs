//! The order a query's output must have, read from its optimized logical
//! plan: what the comparison may treat as a multiset.

use datafusion::logical_expr::{Expr, LogicalPlan};

/// What order a result must have, found from the (optimized) logical plan.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputOrder {
    /// No top-level ORDER BY: compare as multisets.
    Unordered,
    /// A top-level ORDER BY whose keys are output columns `keys` (a prefix
    /// of the sort keys): the key values must appear in the same order;
    /// rows with equal keys compare as multisets. With `limited` (LIMIT or
    /// sort fetch) the last tie group may be cut differently: only its keys
    /// are compared.
    Keys { keys: Vec<usize>, limited: bool },
    /// A top-level ORDER BY whose keys are not output columns: compare in
    /// order exactly.
    Exact,
}

fn find_sort(
    plan: &LogicalPlan,
    limited: bool,
    through_projection: bool,
) -> Option<(&datafusion::logical_expr::Sort, bool, bool)> {
    match plan {
        LogicalPlan::Sort(s) => Some((s, limited || s.fetch.is_some(), through_projection)),
        LogicalPlan::Limit(l) => find_sort(&l.input, true, through_projection),
        LogicalPlan::Projection(p) => find_sort(&p.input, limited, true),
        LogicalPlan::SubqueryAlias(a) => find_sort(&a.input, limited, through_projection),
        _ => None,
    }
}

/// The order of the output of `plan`.
pub fn output_order(plan: &LogicalPlan) -> OutputOrder {
    let Some((sort, limited, through_projection)) = find_sort(plan, false, false) else {
        return OutputOrder::Unordered;
    };
    let out = plan.schema();
    let mut keys = Vec::new();
    for e in &sort.expr {
        let Expr::Column(col) = &e.expr else { break };
        let index = if !through_projection {
            out.index_of_column(col).ok()
        } else if col.relation.is_some() {
            out.maybe_index_of_column(col)
        } else {
            None
        };
        match index {
            Some(i) => keys.push(i),
            None => break,
        }
    }
    if keys.is_empty() {
        OutputOrder::Exact
    } else {
        OutputOrder::Keys { keys, limited }
    }
}
