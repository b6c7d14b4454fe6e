//! Deep SQL: long chains rebalanced, nesting bounded, so that no query can
//! overflow a stack (see `ffq_dataflow::limits` for the bounds and the deep
//! stack planning runs on).
//!
//! SQL parsers build operator chains in loops, so `t1 AND t2 AND ... AND
//! t10000` parses without recursion into a tree 10,000 levels deep, and so
//! does a `UNION` of 10,000 branches. Chains of one associative operator
//! (`AND`, `OR`, `UNION [ALL]`) of more than [`BALANCE_FROM`] terms are
//! rebuilt as balanced trees — same terms, same order, depth log₂(terms) —
//! in the SQL syntax tree right after parsing and again in the optimized
//! logical plan (DataFusion's filter pushdown rebuilds conjunctions as
//! chains). Everything else is measured: an expression nested deeper than
//! `MAX_EXPR_DEPTH` or a plan deeper than `MAX_PLAN_DEPTH` is refused with
//! an error naming both numbers, before it reaches code that recurses.

mod logical;
mod syntax;
#[cfg(test)]
mod tests;

pub use logical::{balance_plan, check_plan};
pub use syntax::check_statement;

/// Chains up to this many terms are left as written (their plans read as
/// the query does); longer ones are balanced.
pub const BALANCE_FROM: usize = 32;

/// Builds a balanced tree over `terms` with `join`, keeping their order:
/// depth ⌈log₂(terms)⌉. `None` without terms.
fn balanced<T>(mut terms: Vec<T>, join: impl Fn(T, T) -> T) -> Option<T> {
    // Pairs neighbours level by level; no recursion.
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut it = terms.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => join(a, b),
                None => a,
            });
        }
        terms = next;
    }
    terms.pop()
}
