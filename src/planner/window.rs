//! Lowering of a logical `Window` node.
//!
//! The window expressions are grouped into nodes whose expressions share
//! PARTITION BY and whose ORDER BY lists are prefixes of one another
//! (DataFusion's planner usually produces one such group per logical node;
//! a mixed node becomes a chain of physical window nodes). Each group runs
//! as
//!
//! ```text
//! Window(exprs)
//!   Sort(PARTITION BY keys, ORDER BY keys)       -- per partition
//!     Exchange(hash on the PARTITION BY keys)    -- or gather without keys
//! ```
//!
//! so that every window partition lies in one sorted partition; the
//! exchange is left out with `target_partitions` 1, and when the input is
//! already hash-partitioned on the same keys (by a previous window node,
//! or a final aggregation on those keys). A projection
//! restores the column order of the logical node when groups were
//! reordered.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use datafusion_common::DFSchema;
use datafusion_expr::expr::{Alias, WindowFunction, WindowFunctionParams};
use datafusion_expr::logical_plan::Window;
use datafusion_expr::{Expr, WindowFunctionDefinition};
use ffq_dataflow::expr::PhysExpr;
use ffq_dataflow::operators::window::{required_order, WindowExpr, WindowFrame, WindowFunc};
use ffq_dataflow::plan::{Partitioning, PhysicalPlan};

use ffq_dataflow::functions::FunctionRegistry;

use super::exchange::{gather, hash_exchange};
use super::expr::{lower_expr, lower_exprs, lower_sort};
use crate::error::{Error, Result};

/// Lowers the logical window node `w` over the already lowered `input`,
/// exchanging into `target_partitions` partitions; `registry` types the
/// window functions' outputs.
pub fn lower_window(
    w: &Window,
    input: PhysicalPlan,
    registry: &FunctionRegistry,
    target_partitions: usize,
) -> Result<PhysicalPlan> {
    let in_df = w.input.schema();
    let n_in = in_df.fields().len();
    let exprs = w
        .window_expr
        .iter()
        .enumerate()
        .map(|(i, e)| lower_window_expr(e, in_df, w.schema.field(n_in + i).name()))
        .collect::<Result<Vec<_>>>()?;

    // Group compatible expressions, keeping the first appearance order.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, e) in exprs.iter().enumerate() {
        let fits = groups.iter_mut().find(|g| {
            let mut candidate: Vec<WindowExpr> = g.iter().map(|&j| exprs[j].clone()).collect();
            candidate.push(e.clone());
            required_order(&candidate).is_some()
        });
        match fits {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }

    let n = target_partitions.max(1);
    // The keys the current plan is hash-partitioned on.
    let mut hashed_on = hash_keys(&input);
    let mut plan = input;
    // Output position of each window expression.
    let mut position = vec![0; exprs.len()];
    for group in &groups {
        let group_exprs: Vec<WindowExpr> = group.iter().map(|&i| exprs[i].clone()).collect();
        let keys = &group_exprs[0].partition_by;
        if keys.is_empty() || n == 1 {
            plan = gather(plan);
            hashed_on = None;
        } else if !hashed_on.as_ref().is_some_and(|h| same_keys(h, keys)) {
            // Also from one partition: window partitions run in parallel.
            plan = hash_exchange(plan, keys.clone(), n);
            hashed_on = Some(keys.clone());
        }
        let order = required_order(&group_exprs).ok_or_else(|| {
            Error::Plan("window expressions grouped with different PARTITION BY".into())
        })?;
        if !order.is_empty() {
            plan = PhysicalPlan::Sort {
                input: Box::new(plan),
                order,
                fetch: None,
            };
        }
        let input_schema = plan.schema();
        let mut fields: Vec<Field> = input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (&i, e) in group.iter().zip(&group_exprs) {
            position[i] = fields.len();
            fields.push(e.field(&input_schema, registry)?);
        }
        plan = PhysicalPlan::Window {
            input: Box::new(plan),
            exprs: group_exprs,
            schema: Arc::new(Schema::new(fields)),
        };
    }

    // Restore the logical column order if the groups changed it.
    let logical_order: Vec<usize> = (0..n_in).chain(position.iter().copied()).collect();
    if logical_order.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(plan);
    }
    let schema = plan.schema();
    let exprs = logical_order
        .iter()
        .map(|&p| PhysExpr::col(p, schema.field(p).name()))
        .collect();
    let fields: Vec<Field> = logical_order
        .iter()
        .map(|&p| schema.field(p).clone())
        .collect();
    Ok(PhysicalPlan::Projection {
        input: Box::new(plan),
        exprs,
        schema: Arc::new(Schema::new(fields)),
    })
}

/// The keys `plan` is hash-partitioned on (over its output columns), when
/// that follows from its top nodes: an exchange, seen through operators
/// that keep rows in their partition and columns in place.
fn hash_keys(plan: &PhysicalPlan) -> Option<Vec<PhysExpr>> {
    match plan {
        PhysicalPlan::Exchange {
            partitioning: Partitioning::Hash { keys, .. },
            ..
        } => Some(keys.clone()),
        PhysicalPlan::Window { input, .. }
        | PhysicalPlan::Sort {
            input, fetch: None, ..
        }
        | PhysicalPlan::Filter { input, .. } => hash_keys(input),
        // The final phase after a hash exchange on the group keys, which
        // are the first columns of both the partial and the final output.
        PhysicalPlan::Aggregate {
            input,
            mode: ffq_dataflow::plan::AggregateMode::Final,
            ..
        } => hash_keys(input),
        // Column keys stay keys where the projection passes them through.
        PhysicalPlan::Projection { input, exprs, .. } => {
            let keys = hash_keys(input)?;
            keys.iter()
                .map(|k| match k {
                    PhysExpr::Column { index, .. } => exprs
                        .iter()
                        .position(|e| matches!(e, PhysExpr::Column { index: i, .. } if i == index))
                        .map(|p| PhysExpr::col(p, k_name(k))),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

fn k_name(e: &PhysExpr) -> String {
    match e {
        PhysExpr::Column { name, .. } => name.clone(),
        other => other.to_string(),
    }
}

/// Whether two key lists are the same expressions (columns by index).
fn same_keys(a: &[PhysExpr], b: &[PhysExpr]) -> bool {
    let same = |x: &PhysExpr, y: &PhysExpr| match (x, y) {
        (PhysExpr::Column { index: i, .. }, PhysExpr::Column { index: j, .. }) => i == j,
        _ => x == y,
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

/// Lowers one window function call (possibly aliased), output column `name`.
pub fn lower_window_expr(expr: &Expr, schema: &DFSchema, name: &str) -> Result<WindowExpr> {
    match expr {
        Expr::Alias(Alias { expr, .. }) => lower_window_expr(expr, schema, name),
        Expr::WindowFunction(wf) => {
            let WindowFunction { fun, params } = wf.as_ref();
            let WindowFunctionParams {
                args,
                partition_by,
                order_by,
                window_frame,
                filter,
                null_treatment,
                distinct,
            } = params;
            let func = match fun {
                WindowFunctionDefinition::AggregateUDF(f) => {
                    WindowFunc::Aggregate(f.name().to_string())
                }
                WindowFunctionDefinition::WindowUDF(f) => WindowFunc::Window(f.name().to_string()),
            };
            Ok(WindowExpr {
                func,
                args: lower_exprs(args, schema)?,
                partition_by: lower_exprs(partition_by, schema)?,
                order_by: order_by
                    .iter()
                    .map(|s| lower_sort(s, schema))
                    .collect::<Result<_>>()?,
                frame: WindowFrame::from_df(window_frame),
                ignore_nulls: matches!(
                    null_treatment,
                    Some(datafusion_expr::expr::NullTreatment::IgnoreNulls)
                ),
                distinct: *distinct,
                filter: filter
                    .as_deref()
                    .map(|f| lower_expr(f, schema))
                    .transpose()?,
                name: name.to_string(),
            })
        }
        other => Err(Error::NotSupported(format!("window expression {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::DataType;
    use datafusion_common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion_expr::LogicalPlan;

    use super::*;
    use crate::{Engine, EngineConfig};

    fn engine(partitions: usize) -> Engine {
        let engine = Engine::with_config(EngineConfig {
            target_partitions: partitions,
            batch_size: 8192,
            memory_limit: None,
            spill_dir: None,
        });
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("k", DataType::Int32, true),
            Field::new("g", DataType::Int32, true),
            Field::new("v", DataType::Int64, true),
        ]));
        engine
            .register_memory("t", schema, vec![])
            .expect("register t");
        engine
    }

    async fn plan(sql: &str, partitions: usize) -> PhysicalPlan {
        let df = engine(partitions).sql(sql).await.expect("plans");
        df.physical_plan().expect("a query").clone()
    }

    fn count(plan: &PhysicalPlan, what: &str) -> usize {
        plan.display_indent()
            .lines()
            .filter(|l| l.trim_start().starts_with(what))
            .count()
    }

    #[tokio::test]
    async fn hash_exchange_on_partition_keys() {
        let p = plan(
            "SELECT id, rank() OVER (PARTITION BY k ORDER BY v) FROM t",
            3,
        )
        .await;
        let text = p.display_indent();
        assert!(text.contains("Exchange(hash [k@1] -> 3)"), "{text}");
        assert!(
            text.contains("Sort: [k@1 ASC NULLS FIRST, v@2 ASC NULLS LAST]"),
            "{text}"
        );
        assert_eq!(count(&p, "Window:"), 1, "{text}");
    }

    #[tokio::test]
    async fn no_partition_by_gathers() {
        let p = plan("SELECT id, row_number() OVER (ORDER BY id) FROM t", 3).await;
        let text = p.display_indent();
        assert!(!text.contains("Exchange(hash"), "{text}");
        assert!(text.contains("Exchange(gather"), "{text}");
    }

    #[tokio::test]
    async fn one_partition_needs_no_exchange() {
        let p = plan(
            "SELECT id, sum(v) OVER (PARTITION BY k ORDER BY id) FROM t",
            1,
        )
        .await;
        let text = p.display_indent();
        assert!(!text.contains("Exchange"), "{text}");
    }

    #[tokio::test]
    async fn same_partition_keys_are_not_exchanged_twice() {
        let p = plan(
            "SELECT id, rank() OVER (PARTITION BY k ORDER BY v), \
             row_number() OVER (PARTITION BY k ORDER BY id) FROM t",
            3,
        )
        .await;
        let text = p.display_indent();
        assert_eq!(count(&p, "Window:"), 2, "{text}");
        assert_eq!(count(&p, "Exchange(hash"), 1, "{text}");
    }

    #[tokio::test]
    async fn grouped_input_is_already_partitioned() {
        let p = plan(
            "SELECT k, sum(v), rank() OVER (PARTITION BY k ORDER BY sum(v)) FROM t GROUP BY k",
            3,
        )
        .await;
        let text = p.display_indent();
        assert_eq!(count(&p, "Exchange(hash"), 1, "{text}");
        assert_eq!(count(&p, "Window:"), 1, "{text}");
    }

    #[tokio::test]
    async fn mixed_node_is_split_into_groups_and_reordered() {
        // DataFusion puts differently partitioned expressions in separate
        // logical nodes; build a mixed node from them by hand.
        let engine = engine(2);
        let df = engine
            .sql(
                "SELECT count(*) OVER (PARTITION BY g) AS a, \
                 count(*) OVER (PARTITION BY k) AS b, \
                 sum(v) OVER (PARTITION BY g) AS c FROM t",
            )
            .await
            .expect("plans");
        let mut windows = Vec::new();
        df.logical_plan()
            .expect("a query")
            .apply(|n| {
                if let LogicalPlan::Window(w) = n {
                    windows.push(w.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .expect("walk");
        assert_eq!(windows.len(), 2);
        let base = windows
            .iter()
            .find(|w| matches!(w.input.as_ref(), LogicalPlan::TableScan(_)))
            .expect("innermost window");
        let all: Vec<&Expr> = windows.iter().flat_map(|w| &w.window_expr).collect();
        let by = |f: &str, key: &str| {
            all.iter()
                .find(|e| {
                    let name = e.schema_name().to_string();
                    name.starts_with(f) && name.contains(key)
                })
                .map(|e| (*e).clone())
                .expect("expression")
        };
        let mixed = Window::try_new(
            vec![
                by("count", "[t.g]"),
                by("count", "[t.k]"),
                by("sum", "[t.g]"),
            ],
            Arc::clone(&base.input),
        )
        .expect("mixed window");
        let input = PhysicalPlan::Values {
            schema: Arc::new(mixed.input.schema().as_arrow().clone()),
            rows: vec![],
        };
        let input = PhysicalPlan::Union {
            schema: input.schema(),
            inputs: vec![input.clone(), input],
        };
        let registry = FunctionRegistry::with_defaults();
        let p = lower_window(&mixed, input, &registry, 2).expect("lowers");
        let text = p.display_indent();
        assert_eq!(count(&p, "Window:"), 2, "{text}");
        assert!(text.starts_with("Projection:"), "{text}");
        let names: Vec<String> = p
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let want: Vec<String> = mixed
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, want, "{text}");
    }
}
