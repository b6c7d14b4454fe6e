//! Bounds on how deep a query may nest, and the deep stack that work on
//! nested trees runs on.
//!
//! Plans and expressions are trees, and every layer that touches them —
//! SQL planning, DataFusion's optimizer, FFQ's lowering, serde, expression
//! compilation and evaluation, `Drop` — walks them recursively. A query
//! like `a + a + ... + a` with 10,000 terms is 10,000 levels deep and
//! overflows any thread's stack. FFQ therefore (1) rejects expressions and
//! plans deeper than [`MAX_EXPR_DEPTH`] / [`MAX_PLAN_DEPTH`] with a clear
//! error before planning them, and (2) runs the walks that see trees up to
//! those bounds on a stack of [`DEEP_STACK_BYTES`] ([`on_deep_stack`]), so
//! that the caller's thread (a tokio worker has 2 MiB) does not matter.
//! Long `AND`/`OR` chains are rebalanced by the planner, so they count
//! log₂(terms) levels, not one level per term.
//!
//! The CBOR decoder's nesting limit ([`CBOR_NESTING_LIMIT`]) follows from
//! the same bounds, so a plan the planner accepts always decodes on the
//! workers: embedded and distributed accept the same queries.

/// The deepest expression nesting a query may have (operators, function
/// calls, `CASE`, casts, subqueries in expressions).
pub const MAX_EXPR_DEPTH: usize = 256;

/// The deepest plan nesting a query may have (operators above one another,
/// nested subqueries, joins in a chain).
pub const MAX_PLAN_DEPTH: usize = 256;

/// The deepest nesting of subqueries inside expressions (`(SELECT ...)`,
/// `EXISTS`, `IN (SELECT ...)` within one another). DataFusion's analyzer
/// and optimizer revisit inner subqueries for each outer one, so planning
/// time doubles with each level: 12 levels plan in about a second.
pub const MAX_EXPR_SUBQUERY_DEPTH: usize = 12;

/// The SQL parser's recursion limit. The parser runs on the deep stack and
/// grows its own when needed, so the limit only needs to be above what
/// [`MAX_EXPR_DEPTH`] and [`MAX_PLAN_DEPTH`] admit (a nesting level may take
/// several parser levels): queries within the bounds always parse, deeper
/// ones are refused by the bounds' own check with a clear message.
pub const PARSER_RECURSION_LIMIT: usize = 16 * MAX_EXPR_DEPTH;

/// CBOR nesting levels one plan or expression level may take: a node is an
/// externally tagged enum (a map) holding a struct (a map) whose children
/// sit in a `Vec` or an `Option` (an array), with a boxed plan inside.
const CBOR_LEVELS_PER_NODE: usize = 4;

/// The most partitions an exchange may have. Plans arrive from the
/// network, and per-partition state is allocated up front.
pub const MAX_PARTITIONS: usize = 1 << 16;

/// Refuses a partition count above [`MAX_PARTITIONS`].
pub fn check_partitions(partitions: usize) -> crate::Result<()> {
    if partitions > MAX_PARTITIONS {
        return Err(crate::DataflowError::Plan(format!(
            "{partitions} partitions exceed the limit {MAX_PARTITIONS}"
        )));
    }
    Ok(())
}

/// The CBOR decoder's nesting limit: a plan at both depth bounds, plus the
/// envelope of the message that carries it.
pub const CBOR_NESTING_LIMIT: usize = CBOR_LEVELS_PER_NODE * (MAX_PLAN_DEPTH + MAX_EXPR_DEPTH) + 64;

/// The stack that deep walks run on. Only the touched pages are backed by
/// memory; the size is an upper bound, generous for debug builds.
pub const DEEP_STACK_BYTES: usize = 256 << 20;

/// Runs `f` on a fresh stack of [`DEEP_STACK_BYTES`] on the current thread
/// (no thread switch, so `f` may borrow anything and need not be `Send`).
pub fn on_deep_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::grow(DEEP_STACK_BYTES, f)
}

/// The error for a tree deeper than its bound: `what` names the tree.
pub fn too_deep(what: &str, depth: usize, limit: usize) -> String {
    format!(
        "{what} nesting depth {depth} exceeds the limit {limit}; \
         split the query or simplify it"
    )
}
