//! Pass-through partial aggregation: a partial aggregate that does not
//! reduce its input stops hashing.
//!
//! A partial aggregate pays off by shrinking what the exchange ships and
//! the final aggregate merges. When nearly every input row is a new group
//! (`GROUP BY l_orderkey, l_linenumber`, or any key that is unique within
//! a partition), it shrinks nothing and the rows are hashed twice, once per
//! phase. So the partial aggregate watches its first [`PROBE_ROWS`] rows:
//! if they formed more than [`MIN_GROUPS_PER_ROW`] groups per row, it
//! emits the groups it holds and from then on turns every input row
//! straight into one row of partial state (the state of a group that saw
//! only that row), without a hash table. The final aggregate merges those
//! like any partial states, so the answer does not change.
//!
//! ```text
//!  rows ─▶ hash table ─┬─ groups/rows ≤ 0.8 after the probe ─▶ hash table (as before)
//!                      └─ groups/rows > 0.8 ─▶ emit the table; row ─▶ state row
//! ```
//!
//! Only plain aggregates pass through: not DISTINCT ones (their state is a
//! list of values, which one row per state would make large and slow) nor
//! order-sensitive ones, and not grouping sets. `EXPLAIN ANALYZE` counts
//! the rows that passed through as `skipped_partial_rows`.

use arrow::array::RecordBatch;

use super::aggregator::{conform, create_group_accumulator, evaluate_filter};
use super::spec::AggSpec;
use crate::error::Result;
use crate::plan::AggregateMode;

/// Input rows a partial aggregate sees before it decides.
pub(super) const PROBE_ROWS: usize = 100_000;

/// Groups per input row above which the partial aggregate passes rows
/// through.
pub(super) const MIN_GROUPS_PER_ROW: f64 = 0.8;

/// Whether `spec` is a partial aggregate that may pass its rows through
/// (see the module doc for which may not).
pub(super) fn allowed(spec: &AggSpec) -> bool {
    spec.mode == AggregateMode::Partial
        && !spec.key_types.is_empty()
        && spec.sets.is_empty()
        && spec
            .aggs
            .iter()
            .all(|a| !a.func.is_distinct() && a.func.order_bys().is_empty())
}

/// The decision, taken once: after `rows` input rows formed `groups`
/// groups (both since the table was last emptied), whether to pass the
/// rest through.
pub(super) struct Probe {
    decided: bool,
}

impl Probe {
    /// A probe for `spec`; `None` when its rows may not pass through.
    pub(super) fn of(spec: &AggSpec) -> Option<Probe> {
        allowed(spec).then_some(Probe { decided: false })
    }

    pub(super) fn pass_through(&mut self, rows: usize, groups: usize) -> bool {
        if self.decided || rows < PROBE_ROWS {
            return false;
        }
        self.decided = true;
        groups as f64 > MIN_GROUPS_PER_ROW * rows as f64
    }
}

/// The partial states of `batch` with every row its own group: the group
/// keys, then each aggregate's state columns (the layout the partial
/// aggregate emits), made by each accumulator's `convert_to_state`.
pub(super) fn rows_to_states(spec: &AggSpec, batch: &RecordBatch) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut columns = crate::expr::evaluate_all(&spec.group_exprs, batch)?;
    for item in &spec.aggs {
        let values = crate::expr::evaluate_all(&item.inputs, batch)?;
        let filter = item
            .filter
            .as_ref()
            .map(|f| evaluate_filter(f.as_ref(), batch))
            .transpose()?;
        let acc = create_group_accumulator(&item.func)?;
        let states = acc.convert_to_state(&values, filter.as_ref())?;
        columns.extend(states);
    }
    conform(columns, &spec.schema, n, spec.mode)
}
