//! `INTERSECT ALL` and `EXCEPT ALL` with the SQL standard's multiset
//! semantics.
//!
//! DataFusion plans `a INTERSECT ALL b` as a left semi join and `a EXCEPT
//! ALL b` as a left anti join on all columns (NULL equal to NULL). That keeps
//! every left copy of a row that appears on the right (`m` instead of
//! `min(m, n)`), and drops every left copy of such a row (instead of keeping
//! `max(m - n, 0)`); see apache/datafusion#12955. The DISTINCT variants put
//! a `Distinct` on the left input, and for them the joins are right.
//!
//! [`rewrite_multiset_ops`] runs on the plan straight from the SQL planner,
//! before the analyzer and optimizer: there, a left semi/anti join whose keys
//! are all columns of both sides pairwise, with NULL equal to NULL and no
//! filter, comes only from `INTERSECT` / `EXCEPT` (ON / USING joins compare
//! with NULL unequal, and `IS NOT DISTINCT FROM` stays in the join filter
//! until the optimizer). Such a join without a `Distinct` left input is
//! replaced with a [`MultisetOp`] extension node, which the physical planner
//! lowers to FFQ's `SetOperation` operator.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use datafusion_common::tree_node::Transformed;
use datafusion_common::{DFSchemaRef, NullEquality};
use datafusion_expr::logical_plan::{Extension, Join, Projection};
use datafusion_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion_expr::{
    Expr, JoinType as LJoinType, LogicalPlan, Operator, UserDefinedLogicalNodeCore,
};
use ffq_dataflow::expr::PhysExpr;
use ffq_dataflow::plan::{PhysicalPlan, SetOpKind};

use super::exchange::{gather, hash_exchange};
use crate::error::{Error, Result};

/// `INTERSECT ALL` / `EXCEPT ALL` of two inputs with the same number of
/// columns; the output has the left input's schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultisetOp {
    pub op: SetOpKind,
    pub left: LogicalPlan,
    pub right: LogicalPlan,
    schema: DFSchemaRef,
}

impl MultisetOp {
    pub fn new(op: SetOpKind, left: LogicalPlan, right: LogicalPlan) -> Self {
        let schema = Arc::clone(left.schema());
        MultisetOp {
            op,
            left,
            right,
            schema,
        }
    }
}

impl PartialOrd for MultisetOp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let kind = |o: SetOpKind| o as u8;
        match kind(self.op).cmp(&kind(other.op)) {
            Ordering::Equal => {}
            o => return Some(o),
        }
        match self.left.partial_cmp(&other.left) {
            Some(Ordering::Equal) => self.right.partial_cmp(&other.right),
            o => o,
        }
        .filter(|o| *o != Ordering::Equal || self == other)
    }
}

impl UserDefinedLogicalNodeCore for MultisetOp {
    fn name(&self) -> &str {
        match self.op {
            SetOpKind::IntersectAll => "IntersectAll",
            SetOpKind::ExceptAll => "ExceptAll",
        }
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.left, &self.right]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.name())
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        inputs: Vec<LogicalPlan>,
    ) -> datafusion_common::Result<Self> {
        if !exprs.is_empty() {
            return datafusion_common::internal_err!("{} has no expressions", self.name());
        }
        let [left, right]: [LogicalPlan; 2] = inputs.try_into().map_err(|_| {
            datafusion_common::internal_datafusion_err!("{} has two inputs", self.name())
        })?;
        Ok(MultisetOp::new(self.op, left, right))
    }

    /// Every column of both inputs takes part in the comparison.
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![
            (0..self.left.schema().fields().len()).collect(),
            (0..self.right.schema().fields().len()).collect(),
        ])
    }
}

/// Replaces the joins DataFusion plans for `INTERSECT ALL` / `EXCEPT ALL`
/// (see the module doc), also inside subqueries. Run it before the analyzer.
pub fn rewrite_multiset_ops(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(plan
        .transform_up_with_subqueries(|plan| {
            Ok(match plan {
                LogicalPlan::Join(join) => match set_op_all(&join) {
                    Some(op) => {
                        let node = MultisetOp::new(
                            op,
                            Arc::unwrap_or_clone(join.left),
                            Arc::unwrap_or_clone(join.right),
                        );
                        // Under an identity projection: optimizer rules ask
                        // a subquery for its output expression
                        // (`head_output_expr`), which extension nodes lack.
                        let columns = node.schema.columns().into_iter().map(Expr::Column);
                        let ext = LogicalPlan::Extension(Extension {
                            node: Arc::new(node),
                        });
                        Transformed::yes(LogicalPlan::Projection(Projection::try_new(
                            columns.collect(),
                            Arc::new(ext),
                        )?))
                    }
                    None => Transformed::no(LogicalPlan::Join(join)),
                },
                other => Transformed::no(other),
            })
        })?
        .data)
}

/// Which multiset operation `join` is, if it is one.
fn set_op_all(join: &Join) -> Option<SetOpKind> {
    let op = match join.join_type {
        LJoinType::LeftSemi => SetOpKind::IntersectAll,
        LJoinType::LeftAnti => SetOpKind::ExceptAll,
        _ => return None,
    };
    let (ls, rs) = (join.left.schema(), join.right.schema());
    let all_columns = join.null_equality == NullEquality::NullEqualsNull
        && join.filter.is_none()
        && !join.on.is_empty()
        && join.on.len() == ls.fields().len()
        && join.on.len() == rs.fields().len()
        && join.on.iter().enumerate().all(|(i, (l, r))| {
            matches!((l, r), (Expr::Column(l), Expr::Column(r))
                if ls.index_of_column(l).ok() == Some(i) && rs.index_of_column(r).ok() == Some(i))
        });
    // With a DISTINCT left input, the joins are already right.
    let distinct_left = matches!(join.left.as_ref(), LogicalPlan::Distinct(_));
    (all_columns && !distinct_left).then_some(op)
}

/// Lowers a [`MultisetOp`] whose inputs were lowered to `left` and `right`:
/// both sides hash-partitioned on all columns (compared in their common
/// type, as DataFusion's join would), or gathered for one partition.
pub fn lower_multiset_op(
    node: &MultisetOp,
    left: PhysicalPlan,
    right: PhysicalPlan,
    target_partitions: usize,
) -> Result<PhysicalPlan> {
    let (ls, rs) = (left.schema(), right.schema());
    if ls.fields().len() != rs.fields().len() {
        return Err(Error::Plan(format!(
            "{}: inputs have {} and {} columns",
            node.name(),
            ls.fields().len(),
            rs.fields().len()
        )));
    }
    let mut on = Vec::with_capacity(ls.fields().len());
    for (i, (lf, rf)) in ls.fields().iter().zip(rs.fields()).enumerate() {
        let (lt, rt) = BinaryTypeCoercer::new(lf.data_type(), &Operator::Eq, rf.data_type())
            .get_input_types()
            .map_err(|e| {
                Error::Plan(format!(
                    "{}: cannot compare column {} ({}) with {} ({}): {e}",
                    node.name(),
                    lf.name(),
                    lf.data_type(),
                    rf.name(),
                    rf.data_type()
                ))
            })?;
        let key = |name: &str, from: &arrow::datatypes::DataType, to| {
            let col = PhysExpr::col(i, name);
            if from == &to {
                col
            } else {
                PhysExpr::Cast {
                    expr: Box::new(col),
                    data_type: to,
                }
            }
        };
        on.push((
            key(lf.name(), lf.data_type(), lt),
            key(rf.name(), rf.data_type(), rt),
        ));
    }
    let n = target_partitions.max(1);
    let exchange = |plan: PhysicalPlan, keys: Vec<PhysExpr>| {
        if n == 1 {
            gather(plan)
        } else {
            hash_exchange(plan, keys, n)
        }
    };
    let left = exchange(left, on.iter().map(|(l, _)| l.clone()).collect());
    let right = exchange(right, on.iter().map(|(_, r)| r.clone()).collect());
    Ok(PhysicalPlan::SetOperation {
        left: Box::new(left),
        right: Box::new(right),
        op: node.op,
        on,
        schema: ls,
    })
}

/// Lowers an extension node FFQ knows; `lower` lowers its inputs.
pub fn lower_extension(
    e: &Extension,
    target_partitions: usize,
    lower: &dyn Fn(&LogicalPlan) -> Result<PhysicalPlan>,
) -> Result<PhysicalPlan> {
    match e.node.as_any().downcast_ref::<MultisetOp>() {
        Some(node) => lower_multiset_op(
            node,
            lower(&node.left)?,
            lower(&node.right)?,
            target_partitions,
        ),
        None => Err(Error::NotSupported(format!(
            "logical extension {}",
            e.node.name()
        ))),
    }
}
