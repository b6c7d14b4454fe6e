//! Lowering of joins: equi-joins build on the smaller side (swapping the
//! inputs, and projecting the columns back, when that is the right one),
//! broadcast a small build side and otherwise hash-partition both sides on
//! the keys; joins without equi keys become nested loop joins. Mark joins
//! (`EXISTS` / `IN` under `OR` or in the SELECT list) keep their outer
//! side's rows: swapped, they build on the subquery and stream the outer
//! rows (`RightMark`), which also lets a small subquery be broadcast.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::NullEquality;
use datafusion_expr::JoinType as LJoinType;
use ffq_dataflow::expr::PhysExpr;
use ffq_dataflow::plan::{JoinType, PhysicalPlan};

use super::PhysicalPlanner;
use crate::error::Result;
use crate::planner::exchange::{gather, hash_exchange};
use crate::planner::expr::lower_expr;
use crate::planner::stats::estimate_rows;

/// Build sides up to this many (estimated) rows are broadcast to every
/// probe partition instead of hash-partitioning both sides.
pub const BROADCAST_MAX_ROWS: f64 = 200_000.0;

impl PhysicalPlanner<'_> {
    pub(super) fn lower_join(
        &self,
        j: &datafusion_expr::logical_plan::Join,
    ) -> Result<PhysicalPlan> {
        let join_type = match j.join_type {
            LJoinType::Inner => JoinType::Inner,
            LJoinType::Left => JoinType::Left,
            LJoinType::Right => JoinType::Right,
            LJoinType::Full => JoinType::Full,
            LJoinType::LeftSemi => JoinType::LeftSemi,
            LJoinType::LeftAnti => JoinType::LeftAnti,
            LJoinType::RightSemi => JoinType::RightSemi,
            LJoinType::RightAnti => JoinType::RightAnti,
            LJoinType::LeftMark => JoinType::LeftMark,
            LJoinType::RightMark => JoinType::RightMark,
        };
        let left = self.lower(&j.left)?;
        let right = self.lower(&j.right)?;
        let on =
            j.on.iter()
                .map(|(l, r)| {
                    Ok((
                        lower_expr(l, j.left.schema())?,
                        lower_expr(r, j.right.schema())?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
        let both = j.left.schema().as_ref().clone().join(j.right.schema())?;
        let filter = j
            .filter
            .as_ref()
            .map(|f| lower_expr(f, &both))
            .transpose()?;
        let side = JoinSide {
            left,
            right,
            join_type,
            on,
            filter,
            null_equals_null: j.null_equality == NullEquality::NullEqualsNull,
            null_aware: j.null_aware,
            names: j.schema.fields().iter().map(|f| f.name().clone()).collect(),
            left_rows: estimate_rows(&j.left),
            right_rows: estimate_rows(&j.right),
            swapped_widths: None,
        };
        if side.on.is_empty() {
            return Ok(self.nested_loop_join(side));
        }
        // Build on the smaller side: the SQL planner builds left-deep trees
        // that often put the large intermediate on the left. Every join
        // type has a mirror image, so any join can swap.
        // A semi or anti join builds on its subquery side unless that is
        // larger: its keys are what the outer rows are tested against, and
        // a filtered aggregate there is usually much smaller than estimated.
        let subquery_side = matches!(side.join_type, JoinType::LeftSemi | JoinType::LeftAnti);
        let swap = if subquery_side {
            side.left_rows >= side.right_rows
        } else {
            side.left_rows > side.right_rows * 1.5
        };
        let side = if swap && !side.null_aware {
            side.swap()
        } else {
            side
        };
        Ok(self.hash_join(side))
    }

    fn nested_loop_join(&self, s: JoinSide) -> PhysicalPlan {
        let schema = join_schema(&s);
        let right = if s.join_type.emits_unmatched_left() {
            gather(s.right)
        } else {
            s.right
        };
        let plan = PhysicalPlan::NestedLoopJoin {
            left: Box::new(gather(s.left)),
            right: Box::new(right),
            join_type: s.join_type,
            filter: s.filter,
            schema,
        };
        restore_order(plan, s.swapped_widths)
    }

    fn hash_join(&self, s: JoinSide) -> PhysicalPlan {
        let schema = join_schema(&s);
        let n = self.target_partitions.max(1);
        let broadcast = !s.join_type.emits_unmatched_left() && s.left_rows <= BROADCAST_MAX_ROWS;
        let (left, right, collect_left) = if s.null_aware {
            // NOT IN needs to see every right row at once (a NULL anywhere
            // decides for all rows).
            (gather(s.left), gather(s.right), false)
        } else if broadcast || n == 1 {
            let right = if n == 1 { gather(s.right) } else { s.right };
            (gather(s.left), right, !s.join_type.emits_unmatched_left())
        } else {
            let lk = s.on.iter().map(|(l, _)| l.clone()).collect();
            let rk = s.on.iter().map(|(_, r)| r.clone()).collect();
            (
                hash_exchange(s.left, lk, n),
                hash_exchange(s.right, rk, n),
                false,
            )
        };
        // Joins that emit unmatched left rows with n == 1 run partitioned
        // over one partition each.
        let plan = PhysicalPlan::HashJoin {
            left: Box::new(left),
            right: Box::new(right),
            join_type: s.join_type,
            on: s.on,
            filter: s.filter,
            null_equals_null: s.null_equals_null,
            null_aware: s.null_aware,
            collect_left,
            schema,
        };
        restore_order(plan, s.swapped_widths)
    }
}

/// The pieces of a join while the planner decides how to run it.
struct JoinSide {
    left: PhysicalPlan,
    right: PhysicalPlan,
    join_type: JoinType,
    on: Vec<(PhysExpr, PhysExpr)>,
    filter: Option<PhysExpr>,
    null_equals_null: bool,
    null_aware: bool,
    /// Output column names, in the logical (unswapped) order.
    names: Vec<String>,
    left_rows: f64,
    right_rows: f64,
    /// Set once the inputs were swapped: the widths of the original left
    /// and right inputs, to restore the column order afterwards.
    swapped_widths: Option<(usize, usize)>,
}

impl JoinSide {
    /// Exchanges the inputs; `restore_order` puts the columns back.
    fn swap(self) -> JoinSide {
        let (nl, nr) = (
            self.left.schema().fields().len(),
            self.right.schema().fields().len(),
        );
        let filter = self
            .filter
            .map(|f| f.map_columns(&|i| if i < nl { i + nr } else { i - nl }));
        let join_type = match self.join_type {
            JoinType::Inner => JoinType::Inner,
            JoinType::Left => JoinType::Right,
            JoinType::Right => JoinType::Left,
            JoinType::Full => JoinType::Full,
            JoinType::LeftSemi => JoinType::RightSemi,
            JoinType::RightSemi => JoinType::LeftSemi,
            JoinType::LeftAnti => JoinType::RightAnti,
            JoinType::RightAnti => JoinType::LeftAnti,
            JoinType::LeftMark => JoinType::RightMark,
            JoinType::RightMark => JoinType::LeftMark,
        };
        let both_sides = matches!(
            self.join_type,
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full
        );
        JoinSide {
            left: self.right,
            right: self.left,
            join_type,
            on: self.on.into_iter().map(|(l, r)| (r, l)).collect(),
            filter,
            null_equals_null: self.null_equals_null,
            null_aware: self.null_aware,
            names: self.names,
            left_rows: self.right_rows,
            right_rows: self.left_rows,
            swapped_widths: both_sides.then_some((nl, nr)),
        }
    }
}

/// The physical output schema of a join as planned (after a swap, the
/// original right columns come first).
fn join_schema(s: &JoinSide) -> SchemaRef {
    let pad_left = matches!(s.join_type, JoinType::Right | JoinType::Full);
    let pad_right = matches!(s.join_type, JoinType::Left | JoinType::Full);
    let side = |plan: &PhysicalPlan, nullable: bool| -> Vec<Field> {
        plan.schema()
            .fields()
            .iter()
            .map(|f| {
                f.as_ref()
                    .clone()
                    .with_nullable(f.is_nullable() || nullable)
            })
            .collect()
    };
    let mut fields = match s.join_type {
        JoinType::LeftSemi | JoinType::LeftAnti => side(&s.left, false),
        JoinType::RightSemi | JoinType::RightAnti => side(&s.right, false),
        JoinType::LeftMark | JoinType::RightMark => {
            let preserved = if s.join_type == JoinType::LeftMark {
                &s.left
            } else {
                &s.right
            };
            let mut f = side(preserved, false);
            f.push(Field::new("mark", DataType::Boolean, false));
            f
        }
        _ => {
            let mut f = side(&s.left, pad_left);
            f.extend(side(&s.right, pad_right));
            f
        }
    };
    // Names follow the logical schema, in the physical column order.
    let names: Vec<&String> = match s.swapped_widths {
        Some((nl, _)) => s.names[nl..].iter().chain(&s.names[..nl]).collect(),
        None => s.names.iter().collect(),
    };
    for (f, n) in fields.iter_mut().zip(names) {
        *f = f.clone().with_name(n.clone());
    }
    Arc::new(Schema::new(fields))
}

/// After a swap, projects the join output back to the logical order.
fn restore_order(plan: PhysicalPlan, swapped_widths: Option<(usize, usize)>) -> PhysicalPlan {
    let Some((nl, nr)) = swapped_widths else {
        return plan;
    };
    let schema = plan.schema();
    let order: Vec<usize> = (nr..nr + nl).chain(0..nr).collect();
    let exprs = order
        .iter()
        .map(|&i| PhysExpr::col(i, schema.field(i).name()))
        .collect();
    let fields: Vec<Field> = order.iter().map(|&i| schema.field(i).clone()).collect();
    PhysicalPlan::Projection {
        input: Box::new(plan),
        exprs,
        schema: Arc::new(Schema::new(fields)),
    }
}
