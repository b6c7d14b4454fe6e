//! The settings of an `Unnest` node (`UNNEST(list)`, `UNNEST(struct)`).

use serde::{Deserialize, Serialize};

/// One list column to flatten: each row becomes as many rows as its list
/// has elements, `depth` levels deep (`unnest(unnest(l))` is depth 2).
/// A column may be listed several times with different depths; each entry
/// is one output column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnnestList {
    /// Index of the list column in the input.
    pub column: usize,
    /// Levels to flatten, at least 1.
    pub depth: usize,
}

/// What a NULL or empty list produces (DataFusion's `NullHandling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnnestNulls {
    /// NULL and empty lists produce no row (SQL `unnest`).
    Drop,
    /// A NULL list produces one NULL row; an empty list none.
    Preserve,
    /// NULL and empty lists each produce one NULL row.
    PreserveAndExpandEmpty,
}
