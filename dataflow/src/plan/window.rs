//! Window expressions as the plan carries them (serde), and the input
//! order a window node needs. Compiling them into DataFusion's window
//! expressions is the window operator's business
//! (`crate::operators::window`).

use std::fmt;

use datafusion_common::ScalarValue;
use datafusion_expr::{
    WindowFrame as DfWindowFrame, WindowFrameBound as DfWindowFrameBound,
    WindowFrameUnits as DfWindowFrameUnits,
};
use serde::{Deserialize, Serialize};

use crate::expr::{PhysExpr, Scalar, SortExpr};

/// The function a window expression calls, by name in the
/// [`FunctionRegistry`](crate::functions::FunctionRegistry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WindowFunc {
    /// A window function (`row_number`, `rank`, `lag`, `first_value`, ...).
    Window(String),
    /// An aggregate function over the window frame (`sum`, `count`, ...).
    Aggregate(String),
}

impl WindowFunc {
    pub fn name(&self) -> &str {
        match self {
            WindowFunc::Window(n) | WindowFunc::Aggregate(n) => n,
        }
    }
}

/// `ROWS`, `RANGE` or `GROUPS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameUnits {
    Rows,
    Range,
    Groups,
}

/// A frame bound; a NULL offset means UNBOUNDED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FrameBound {
    Preceding(Scalar),
    CurrentRow,
    Following(Scalar),
}

/// A mirror of DataFusion's `WindowFrame`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowFrame {
    pub units: FrameUnits,
    pub start: FrameBound,
    pub end: FrameBound,
}

impl WindowFrame {
    pub fn from_df(f: &DfWindowFrame) -> Self {
        let bound = |b: &DfWindowFrameBound| match b {
            DfWindowFrameBound::Preceding(v) => FrameBound::Preceding(Scalar(v.clone())),
            DfWindowFrameBound::CurrentRow => FrameBound::CurrentRow,
            DfWindowFrameBound::Following(v) => FrameBound::Following(Scalar(v.clone())),
        };
        WindowFrame {
            units: match f.units {
                DfWindowFrameUnits::Rows => FrameUnits::Rows,
                DfWindowFrameUnits::Range => FrameUnits::Range,
                DfWindowFrameUnits::Groups => FrameUnits::Groups,
            },
            start: bound(&f.start_bound),
            end: bound(&f.end_bound),
        }
    }

    pub fn to_df(&self) -> DfWindowFrame {
        let bound = |b: &FrameBound| match b {
            FrameBound::Preceding(v) => DfWindowFrameBound::Preceding(v.0.clone()),
            FrameBound::CurrentRow => DfWindowFrameBound::CurrentRow,
            FrameBound::Following(v) => DfWindowFrameBound::Following(v.0.clone()),
        };
        let units = match self.units {
            FrameUnits::Rows => DfWindowFrameUnits::Rows,
            FrameUnits::Range => DfWindowFrameUnits::Range,
            FrameUnits::Groups => DfWindowFrameUnits::Groups,
        };
        DfWindowFrame::new_bounds(units, bound(&self.start), bound(&self.end))
    }

    /// `ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING`.
    pub fn whole_partition() -> Self {
        WindowFrame {
            units: FrameUnits::Rows,
            start: FrameBound::Preceding(Scalar(ScalarValue::UInt64(None))),
            end: FrameBound::Following(Scalar(ScalarValue::UInt64(None))),
        }
    }

    /// Whether the start bound comes after the end bound (`3 PRECEDING AND
    /// 5 PRECEDING`, `CURRENT ROW AND 1 PRECEDING`, ...).
    pub fn is_inverted(&self) -> bool {
        let unbounded = |v: &Scalar| v.0.is_null();
        match (&self.start, &self.end) {
            (FrameBound::Following(_), FrameBound::Preceding(_))
            | (FrameBound::Following(_), FrameBound::CurrentRow)
            | (FrameBound::CurrentRow, FrameBound::Preceding(_)) => true,
            (FrameBound::Preceding(l), FrameBound::Preceding(r)) => {
                unbounded(r) || (!unbounded(l) && l.0 < r.0)
            }
            (FrameBound::Following(l), FrameBound::Following(r)) => {
                unbounded(l) || (!unbounded(r) && l.0 > r.0)
            }
            _ => false,
        }
    }
}

impl fmt::Display for WindowFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_df())
    }
}

/// One window expression: `func(args) [FILTER (WHERE filter)] OVER
/// (PARTITION BY .. ORDER BY .. frame)`, output column `name`. Expressions
/// are over the window node's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowExpr {
    pub func: WindowFunc,
    pub args: Vec<PhysExpr>,
    pub partition_by: Vec<PhysExpr>,
    pub order_by: Vec<SortExpr>,
    pub frame: WindowFrame,
    /// `IGNORE NULLS`.
    pub ignore_nulls: bool,
    /// `DISTINCT` (aggregates only).
    pub distinct: bool,
    /// `FILTER (WHERE ...)` (aggregates only).
    pub filter: Option<PhysExpr>,
    /// The output column name.
    pub name: String,
}

impl fmt::Display for WindowExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        write!(
            f,
            "{}({distinct}{})",
            self.func.name(),
            list(&mut self.args.iter().map(|a| a.to_string()))
        )?;
        if self.ignore_nulls {
            write!(f, " IGNORE NULLS")?;
        }
        if let Some(filter) = &self.filter {
            write!(f, " FILTER (WHERE {filter})")?;
        }
        write!(f, " OVER (")?;
        if !self.partition_by.is_empty() {
            write!(
                f,
                "PARTITION BY {} ",
                list(&mut self.partition_by.iter().map(|p| p.to_string()))
            )?;
        }
        if !self.order_by.is_empty() {
            write!(
                f,
                "ORDER BY {} ",
                list(&mut self.order_by.iter().map(|s| s.to_string()))
            )?;
        }
        write!(f, "{}) AS {}", self.frame, self.name)
    }
}

/// The order the input of a window node must have: the PARTITION BY keys
/// (ascending, NULLs first), then the longest ORDER BY list. `None` when the
/// expressions cannot share one node (different PARTITION BY, or ORDER BY
/// lists that are not prefixes of one another).
pub fn required_order(exprs: &[WindowExpr]) -> Option<Vec<SortExpr>> {
    let Some(first) = exprs.first() else {
        return Some(vec![]);
    };
    let mut longest: &[SortExpr] = &[];
    for e in exprs {
        if e.partition_by != first.partition_by {
            return None;
        }
        let (short, long) = if e.order_by.len() <= longest.len() {
            (&e.order_by[..], longest)
        } else {
            (longest, &e.order_by[..])
        };
        if long[..short.len()] != *short {
            return None;
        }
        longest = long;
    }
    let mut order: Vec<SortExpr> = first
        .partition_by
        .iter()
        .map(|p| SortExpr {
            expr: p.clone(),
            asc: true,
            nulls_first: true,
        })
        .collect();
    order.extend(longest.iter().cloned());
    Some(order)
}
