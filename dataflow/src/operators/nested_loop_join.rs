//! NestedLoopJoin: joins without equi keys. The left input is collected
//! once (from all its partitions) and shared by every right partition; each
//! right batch is paired with every left row, in batch-sized chunks of
//! candidate pairs that the optional filter then checks.
//!
//! Joins that emit unmatched left rows need all of the right side in one
//! stream: the planner gathers it into one partition.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::{FutureExt, StreamExt};

use super::join_util::{
    await_build, collect_batch, merged_input, JoinSpec, OnceBuild, OutputBuffer,
};
use super::{check_partition, Operator};
use crate::error::{DataflowError, Result};
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;
use crate::plan::JoinType;
use crate::runner::TaskContext;
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct NestedLoopJoin {
    left: Arc<dyn Operator>,
    right: Arc<dyn Operator>,
    spec: Arc<JoinSpec>,
    shared: OnceBuild<RecordBatch>,
}

impl NestedLoopJoin {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        left: Arc<dyn Operator>,
        right: Arc<dyn Operator>,
        join_type: JoinType,
        filter: Option<&PhysExpr>,
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        if join_type.emits_unmatched_left() && right.output_partitions() != 1 {
            return Err(DataflowError::Internal(format!(
                "nested loop join {join_type:?} needs a single right partition, got {}",
                right.output_partitions()
            )));
        }
        let spec = JoinSpec::try_new(
            join_type,
            left.schema(),
            right.schema(),
            filter,
            schema,
            registry,
        )?;
        let consumers = right.output_partitions();
        Ok(NestedLoopJoin {
            left,
            right,
            spec: Arc::new(spec),
            shared: OnceBuild::new(consumers),
        })
    }
}

/// The candidate pairs `k in range` of `build_rows x probe_rows`, probe
/// rows varying fastest.
fn cross_pairs(
    range: std::ops::Range<usize>,
    probe_rows: usize,
    build_idx: &mut Vec<u32>,
    probe_idx: &mut Vec<u32>,
) {
    build_idx.clear();
    probe_idx.clear();
    let (mut b, mut p) = (range.start / probe_rows, range.start % probe_rows);
    for _ in range {
        build_idx.push(b as u32);
        probe_idx.push(p as u32);
        p += 1;
        if p == probe_rows {
            p = 0;
            b += 1;
        }
    }
}

impl Operator for NestedLoopJoin {
    fn name(&self) -> &'static str {
        "NestedLoopJoin"
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.spec.schema)
    }

    fn output_partitions(&self) -> usize {
        self.right.output_partitions()
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        check_partition(self, partition)?;
        let (left, left_schema) = (Arc::clone(&self.left), self.spec.left_schema.clone());
        let task_ctx = Arc::clone(ctx);
        let build = self.shared.get(move || {
            async move {
                let input = merged_input(&left, &task_ctx)?;
                collect_batch(input, &left_schema).await
            }
            .boxed()
        })?;
        let mut right = self.right.execute(partition, ctx)?;
        let spec = Arc::clone(&self.spec);
        let batch_size = ctx.config.batch_size.max(1);
        let schema = self.schema();
        let stream = async_stream::try_stream! {
            let build = await_build(build).await?;
            let build_rows = build.num_rows();
            if build_rows >= u32::MAX as usize {
                Err(DataflowError::Execution(format!(
                    "nested loop join build side exceeds {} rows",
                    u32::MAX - 1
                )))?;
            }
            let mut out = OutputBuffer::new(Arc::clone(&spec.schema), batch_size);
            let mut build_matched = vec![false; if spec.tracks_build() { build_rows } else { 0 }];
            // Without a filter, every pair matches: semi and anti joins only
            // need to know whether the other side has rows.
            let all_match_no_pairs = spec.filter.is_none()
                && matches!(
                    spec.join_type,
                    JoinType::LeftSemi | JoinType::LeftAnti | JoinType::RightSemi | JoinType::RightAnti
                );
            // With an empty build side some joins have no output, but the
            // probe input is still drained: an exchange producer stops
            // feeding every partition once one consumer is gone.
            let skip_probe = build_rows == 0 && spec.empty_build_gives_empty();
            let mut build_idx: Vec<u32> = Vec::new();
            let mut probe_idx: Vec<u32> = Vec::new();
            while let Some(batch) = right.next().await {
                let batch = batch?;
                let n = batch.num_rows();
                if n == 0 || skip_probe {
                    continue;
                }
                let mut probe_matched = vec![false; if spec.tracks_probe() { n } else { 0 }];
                if all_match_no_pairs {
                    if build_rows > 0 {
                        build_matched.iter_mut().for_each(|m| *m = true);
                        probe_matched.iter_mut().for_each(|m| *m = true);
                    }
                } else {
                    let total = build_rows * n;
                    let mut k = 0;
                    while k < total {
                        let end = (k + batch_size).min(total);
                        cross_pairs(k..end, n, &mut build_idx, &mut probe_idx);
                        let joined = spec.process_pairs(
                            &build,
                            &batch,
                            std::mem::take(&mut build_idx),
                            std::mem::take(&mut probe_idx),
                            &mut build_matched,
                            &mut probe_matched,
                        )?;
                        if let Some(joined) = joined {
                            out.push(joined)?;
                            while let Some(b) = out.next_batch() {
                                yield b;
                            }
                        }
                        k = end;
                    }
                }
                if let Some(rows) = spec.finish_probe_batch(&batch, &probe_matched)? {
                    out.push(rows)?;
                    while let Some(b) = out.next_batch() {
                        yield b;
                    }
                }
            }
            drop(right);
            if spec.tracks_build() {
                let mut start = 0;
                while start < build_rows {
                    if let Some(rows) =
                        spec.finish_build_rows(&build, &build_matched, start, batch_size)?
                    {
                        out.push(rows)?;
                        while let Some(b) = out.next_batch() {
                            yield b;
                        }
                    }
                    start += batch_size;
                }
            }
            out.finish()?;
            while let Some(b) = out.next_batch() {
                yield b;
            }
        };
        Ok(boxed(schema, stream))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::RecordBatch;
    use arrow::datatypes::{Schema, SchemaRef};

    use super::*;
    use crate::expr::BinaryOp;
    use crate::operators::join_util::test_util::*;
    use crate::plan::{JoinType, PhysicalPlan};

    const ALL: [JoinType; 8] = [
        JoinType::Inner,
        JoinType::Left,
        JoinType::Right,
        JoinType::Full,
        JoinType::LeftSemi,
        JoinType::LeftAnti,
        JoinType::RightSemi,
        JoinType::RightAnti,
    ];

    async fn run_nlj(
        join_type: JoinType,
        filter: Option<PhysExpr>,
        left: Vec<(Option<i32>, &str)>,
        right: Vec<(Option<i32>, &str)>,
        right_partitions: usize,
        batch_size: usize,
    ) -> Vec<String> {
        let ls = kv_schema("lk", "lv");
        let rs = kv_schema("rk", "rv");
        let lb: Vec<RecordBatch> = left.chunks(2).map(|c| kv_batch(&ls, c)).collect();
        let rb: Vec<RecordBatch> = right.chunks(2).map(|c| kv_batch(&rs, c)).collect();
        let plan = PhysicalPlan::NestedLoopJoin {
            // Left from two partitions: collected from both.
            left: Box::new(scan("l", &ls, 2)),
            right: Box::new(scan("r", &rs, right_partitions)),
            join_type,
            filter,
            schema: join_schema(&ls, &rs, join_type),
        };
        let plan = if plan.output_partitions() > 1 {
            gather(plan)
        } else {
            plan
        };
        let out = run(&plan, vec![("l", lb), ("r", rb)], batch_size)
            .await
            .unwrap();
        assert_batch_sizes(&out, batch_size);
        rows(&out)
    }

    /// `lk < rk`
    fn lk_lt_rk() -> PhysExpr {
        PhysExpr::Binary {
            left: Box::new(PhysExpr::col(0, "lk")),
            op: BinaryOp::Lt,
            right: Box::new(PhysExpr::col(2, "rk")),
        }
    }

    fn left_rows() -> Vec<(Option<i32>, &'static str)> {
        vec![(Some(1), "a"), (Some(3), "b"), (None, "n"), (Some(9), "z")]
    }

    fn right_rows() -> Vec<(Option<i32>, &'static str)> {
        vec![(Some(2), "x"), (Some(4), "y"), (None, "m"), (Some(0), "w")]
    }

    #[tokio::test]
    async fn filter_all_join_types() {
        use JoinType::*;
        for jt in ALL {
            let parts: &[usize] = if jt.emits_unmatched_left() {
                &[1]
            } else {
                &[1, 3]
            };
            for &rp in parts {
                for bs in [1, 3, 64] {
                    let got =
                        run_nlj(jt, Some(lk_lt_rk()), left_rows(), right_rows(), rp, bs).await;
                    // Pairs with lk < rk: 1<2, 1<4, 3<4.
                    let exp: &[&str] = match jt {
                        Inner => &["1|a|2|x", "1|a|4|y", "3|b|4|y"],
                        Left => &[
                            "1|a|2|x",
                            "1|a|4|y",
                            "3|b|4|y",
                            "NULL|n|NULL|NULL",
                            "9|z|NULL|NULL",
                        ],
                        Right => &[
                            "1|a|2|x",
                            "1|a|4|y",
                            "3|b|4|y",
                            "NULL|NULL|NULL|m",
                            "NULL|NULL|0|w",
                        ],
                        Full => &[
                            "1|a|2|x",
                            "1|a|4|y",
                            "3|b|4|y",
                            "NULL|n|NULL|NULL",
                            "9|z|NULL|NULL",
                            "NULL|NULL|NULL|m",
                            "NULL|NULL|0|w",
                        ],
                        LeftSemi => &["1|a", "3|b"],
                        LeftAnti => &["NULL|n", "9|z"],
                        RightSemi => &["2|x", "4|y"],
                        RightAnti => &["NULL|m", "0|w"],
                    };
                    assert_eq!(
                        got,
                        sorted(exp),
                        "{jt:?} right_partitions={rp} batch_size={bs}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn cross_join_and_no_filter() {
        use JoinType::*;
        let got = run_nlj(Inner, None, left_rows(), right_rows(), 3, 5).await;
        assert_eq!(got.len(), 16);
        assert!(got.contains(&"NULL|n|NULL|m".to_string()));
        for jt in ALL {
            let parts = if jt.emits_unmatched_left() { 1 } else { 2 };
            let got = run_nlj(jt, None, left_rows(), right_rows(), parts, 4).await;
            let n = match jt {
                Inner | Left | Right | Full => 16,
                LeftSemi | RightSemi => 4,
                LeftAnti | RightAnti => 0,
            };
            assert_eq!(got.len(), n, "{jt:?}");
        }
    }

    #[tokio::test]
    async fn empty_sides() {
        use JoinType::*;
        for jt in ALL {
            let got = run_nlj(jt, Some(lk_lt_rk()), vec![], right_rows(), 1, 4).await;
            let n = match jt {
                Right | Full | RightAnti => 4,
                _ => 0,
            };
            assert_eq!(got.len(), n, "empty left {jt:?}");
            let got = run_nlj(jt, None, left_rows(), vec![], 1, 4).await;
            let n = match jt {
                Left | Full | LeftAnti => 4,
                _ => 0,
            };
            assert_eq!(got.len(), n, "empty right {jt:?}");
        }
    }

    #[tokio::test]
    async fn zero_column_sides() {
        // count(*) over a cross join prunes every column.
        let empty: SchemaRef = Arc::new(Schema::empty());
        let batch = |n: usize| {
            RecordBatch::try_new_with_options(
                Arc::clone(&empty),
                vec![],
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
            )
            .unwrap()
        };
        let plan = PhysicalPlan::NestedLoopJoin {
            left: Box::new(scan("l", &empty, 1)),
            right: Box::new(scan("r", &empty, 1)),
            join_type: JoinType::Inner,
            filter: None,
            schema: Arc::clone(&empty),
        };
        let out = run(
            &plan,
            vec![("l", vec![batch(3)]), ("r", vec![batch(5), batch(2)])],
            4,
        )
        .await
        .unwrap();
        assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 21);
    }

    #[test]
    fn left_emitting_needs_one_right_partition() {
        let ls = kv_schema("lk", "lv");
        let rs = kv_schema("rk", "rv");
        let left: Arc<dyn Operator> = Arc::new(crate::operators::memory_scan::MemoryScan::new(
            "l".into(),
            1,
            None,
            ls.clone(),
        ));
        let right: Arc<dyn Operator> = Arc::new(crate::operators::memory_scan::MemoryScan::new(
            "r".into(),
            2,
            None,
            rs.clone(),
        ));
        let r = NestedLoopJoin::try_new(
            left,
            right,
            JoinType::Left,
            None,
            join_schema(&ls, &rs, JoinType::Left),
            &FunctionRegistry::with_defaults(),
        );
        assert!(matches!(r, Err(DataflowError::Internal(_))));
    }

    #[test]
    fn cross_pairs_chunks() {
        let (mut b, mut p) = (Vec::new(), Vec::new());
        cross_pairs(2..7, 3, &mut b, &mut p);
        assert_eq!(b, vec![0, 1, 1, 1, 2]);
        assert_eq!(p, vec![2, 0, 1, 2, 0]);
    }
}
