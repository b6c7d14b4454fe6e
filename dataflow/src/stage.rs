//! Stages: a physical plan cut at its exchanges. This is the one stage
//! cutter: the distributed runtime schedules what it cuts, and EXPLAIN
//! (`ffq::stages`) shows it, for embedded and cluster engines alike.
//!
//! Stage 0 is the root (it yields the query's output); every exchange
//! starts a new stage below its consumer, numbered depth first. A stage's
//! plan reads its upstream stages through [`PhysicalPlan::StageInput`]
//! leaves, and a stage other than the root writes its output with the
//! partitioning of the exchange it replaced: task `t` of a stage runs
//! partition `t` of the stage plan.
//!
//! Embedded mode runs the uncut plan (all stages at once, joined by
//! channels); [`split_stages`] of it is what it runs. A cluster runs
//! [`distributed_stages`]: the plan rewritten by [`distribute`], then cut.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::plan::{Partitioning, PhysicalPlan};

/// One stage of a cut plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagePlan {
    pub id: u32,
    /// The operators of the stage; upstream stages are `StageInput` leaves.
    pub plan: PhysicalPlan,
    /// How the output is partitioned for the consumer stage; `None` for
    /// the root stage.
    pub output: Option<Partitioning>,
    /// The stages this stage reads.
    pub inputs: Vec<u32>,
}

impl StagePlan {
    /// Tasks of the stage: one per output partition of its plan.
    pub fn tasks(&self) -> usize {
        self.plan.output_partitions()
    }

    /// Partitions of the stage's output (what the consumer reads).
    pub fn output_partitions(&self) -> usize {
        self.output.as_ref().map_or(1, |p| p.partitions())
    }

    /// Where the stage's output goes, as EXPLAIN names it: `result` for the
    /// root stage, else the exchange it feeds (`Exchange(gather -> 1)`).
    pub fn output_name(&self) -> String {
        match &self.output {
            None => "result".to_string(),
            Some(partitioning) => PhysicalPlan::Exchange {
                input: Box::new(PhysicalPlan::Empty {
                    schema: self.plan.schema(),
                    produce_one_row: false,
                }),
                partitioning: partitioning.clone(),
            }
            .describe(),
        }
    }

    /// Names of the custom operators the stage needs, sorted.
    pub fn required_operators(&self) -> Vec<String> {
        fn walk(plan: &PhysicalPlan, out: &mut Vec<String>) {
            if let PhysicalPlan::Custom { name, .. } = plan {
                out.push(name.clone());
            }
            for c in plan.children() {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.plan, &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// Names of the memory tables the stage scans.
    pub fn memory_tables(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_memory_tables(&self.plan, &mut out);
        out.sort();
        out.dedup();
        out
    }
}

fn collect_memory_tables(plan: &PhysicalPlan, out: &mut Vec<String>) {
    if let PhysicalPlan::Scan {
        source: crate::plan::ScanSource::Memory { table, .. },
        ..
    } = plan
    {
        out.push(table.clone());
    }
    for c in plan.children() {
        collect_memory_tables(c, out);
    }
}

/// Rewrites `plan` for distributed execution so that its root stage (run
/// by the client) only merges, limits or projects what workers produced:
/// per-partition work under a sort-preserving merge moves to a stage of its
/// own (one task per partition, partitions preserved), and any other root
/// work is gathered from a single worker task.
pub fn distribute(plan: PhysicalPlan) -> PhysicalPlan {
    match plan {
        PhysicalPlan::Exchange { .. } => plan,
        PhysicalPlan::SortPreservingMerge {
            input,
            order,
            fetch,
        } => {
            let input = match *input {
                e @ PhysicalPlan::Exchange { .. } => e,
                other => {
                    let partitions = other.output_partitions();
                    PhysicalPlan::Exchange {
                        input: Box::new(other),
                        partitioning: Partitioning::Preserve { partitions },
                    }
                }
            };
            PhysicalPlan::SortPreservingMerge {
                input: Box::new(input),
                order,
                fetch,
            }
        }
        PhysicalPlan::Limit { input, skip, fetch } if input.output_partitions() == 1 => {
            PhysicalPlan::Limit {
                input: Box::new(distribute(*input)),
                skip,
                fetch,
            }
        }
        PhysicalPlan::Projection {
            input,
            exprs,
            schema,
        } if input.output_partitions() == 1 => PhysicalPlan::Projection {
            input: Box::new(distribute(*input)),
            exprs,
            schema,
        },
        other => PhysicalPlan::Exchange {
            input: Box::new(other),
            partitioning: Partitioning::Gather,
        },
    }
}

/// The stages a cluster runs `plan` as: [`distribute`], then
/// [`split_stages`].
pub fn distributed_stages(plan: &PhysicalPlan) -> Vec<StagePlan> {
    split_stages(&distribute(plan.clone()))
}

/// Cuts `plan` into stages; element `i` is stage `i`.
pub fn split_stages(plan: &PhysicalPlan) -> Vec<StagePlan> {
    let mut out = Vec::new();
    cut(plan, None, &mut out);
    out
}

fn cut(plan: &PhysicalPlan, output: Option<Partitioning>, out: &mut Vec<StagePlan>) -> u32 {
    let id = out.len() as u32;
    out.push(StagePlan {
        id,
        plan: PhysicalPlan::Empty {
            schema: plan.schema(),
            produce_one_row: false,
        },
        output,
        inputs: vec![],
    });
    let mut inputs = Vec::new();
    let stage_plan = replace_exchanges(plan, &mut inputs, out);
    let stage = &mut out[id as usize];
    stage.plan = stage_plan;
    stage.inputs = inputs;
    id
}

fn replace_exchanges(
    plan: &PhysicalPlan,
    inputs: &mut Vec<u32>,
    out: &mut Vec<StagePlan>,
) -> PhysicalPlan {
    if let PhysicalPlan::Exchange {
        input,
        partitioning,
    } = plan
    {
        let stage = cut(input, Some(partitioning.clone()), out);
        inputs.push(stage);
        return PhysicalPlan::StageInput {
            stage,
            partitions: partitioning.partitions(),
            preserve: matches!(partitioning, Partitioning::Preserve { .. }),
            schema: Arc::clone(&input.schema()),
        };
    }
    // Plans are small (tens of nodes): copying subtrees before replacing
    // them is cheaper than the code a shallow copy would need.
    let mut node = plan.clone();
    let children = plan.children();
    for (slot, child) in node.children_mut().into_iter().zip(children) {
        *slot = replace_exchanges(child, inputs, out);
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ScanSource, TpchTable};
    use arrow::datatypes::{DataType, Field, Schema};

    fn scan(partitions: usize) -> PhysicalPlan {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        PhysicalPlan::Scan {
            source: ScanSource::Tpch {
                table: TpchTable::Nation,
                scale_factor: 0.01,
                partitions,
            },
            table_schema: Arc::clone(&schema),
            projection: None,
            pruning: vec![],
            schema,
        }
    }

    fn merge(input: PhysicalPlan) -> PhysicalPlan {
        PhysicalPlan::SortPreservingMerge {
            input: Box::new(input),
            order: vec![],
            fetch: Some(3),
        }
    }

    #[test]
    fn merge_over_partitions_moves_partition_work_to_a_preserving_stage() {
        let plan = distribute(merge(scan(4)));
        let stages = split_stages(&plan);
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].inputs, vec![1]);
        assert!(matches!(
            &stages[0].plan,
            PhysicalPlan::SortPreservingMerge { input, .. }
                if matches!(**input, PhysicalPlan::StageInput { stage: 1, partitions: 4, preserve: true, .. })
        ));
        assert_eq!(stages[1].tasks(), 4);
        assert_eq!(
            stages[1].output,
            Some(Partitioning::Preserve { partitions: 4 })
        );
    }

    #[test]
    fn single_partition_work_is_gathered_from_one_task() {
        let plan = distribute(scan(1));
        let stages = split_stages(&plan);
        assert_eq!(stages.len(), 2);
        assert!(matches!(
            stages[0].plan,
            PhysicalPlan::StageInput {
                stage: 1,
                partitions: 1,
                preserve: false,
                ..
            }
        ));
        assert_eq!(stages[1].output, Some(Partitioning::Gather));
        assert_eq!(stages[1].tasks(), 1);
        assert_eq!(stages[0].output_name(), "result");
        assert_eq!(stages[1].output_name(), "Exchange(gather -> 1)");
        // What a cluster runs: the same stages.
        let distributed = distributed_stages(&scan(1));
        assert_eq!(distributed.len(), stages.len());
        assert_eq!(distributed[1].output, stages[1].output);
    }

    #[test]
    fn nested_exchanges_become_stages_depth_first() {
        let hash = |input| PhysicalPlan::Exchange {
            input: Box::new(input),
            partitioning: Partitioning::RoundRobin { partitions: 2 },
        };
        let plan = PhysicalPlan::Exchange {
            input: Box::new(hash(hash(scan(3)))),
            partitioning: Partitioning::Gather,
        };
        let stages = split_stages(&plan);
        let inputs: Vec<Vec<u32>> = stages.iter().map(|s| s.inputs.clone()).collect();
        assert_eq!(inputs, vec![vec![1], vec![2], vec![3], vec![]]);
        let tasks: Vec<usize> = stages.iter().map(|s| s.tasks()).collect();
        assert_eq!(tasks, vec![1, 2, 2, 3]);
        // Stage plans serialize like any plan.
        let mut bytes = Vec::new();
        ciborium::into_writer(&stages[1], &mut bytes).unwrap();
        let back: StagePlan = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(back.inputs, vec![2]);
    }
}
