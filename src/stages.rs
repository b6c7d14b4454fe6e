//! The stage DAG: a physical plan cut at its exchanges.
//!
//! Stage 0 is the root (the query's output); every exchange starts a new
//! stage below it. Embedded mode runs all stages at once, connected by
//! channels; the distributed runtime schedules them stage by stage.

use std::fmt;

use ffq_dataflow::plan::PhysicalPlan;

/// One stage: the operators between two exchanges.
#[derive(Debug, Clone)]
pub struct Stage {
    pub id: usize,
    /// Tasks (= output partitions of the stage's top operator).
    pub tasks: usize,
    /// The operators of the stage, top first, indented.
    pub operators: Vec<String>,
    /// Stages whose output this stage reads.
    pub inputs: Vec<usize>,
    /// How this stage's output is distributed to its consumer.
    pub output: String,
}

/// Cuts `plan` into stages.
pub fn stages(plan: &PhysicalPlan) -> Vec<Stage> {
    let mut out = Vec::new();
    collect(plan, "result".to_string(), &mut out);
    out
}

fn collect(plan: &PhysicalPlan, output: String, out: &mut Vec<Stage>) -> usize {
    let id = out.len();
    out.push(Stage {
        id,
        tasks: plan.output_partitions(),
        operators: vec![],
        inputs: vec![],
        output,
    });
    let mut operators = Vec::new();
    let mut inputs = Vec::new();
    walk(plan, 0, &mut operators, &mut inputs, out);
    out[id].operators = operators;
    out[id].inputs = inputs;
    id
}

fn walk(
    plan: &PhysicalPlan,
    depth: usize,
    operators: &mut Vec<String>,
    inputs: &mut Vec<usize>,
    out: &mut Vec<Stage>,
) {
    if let PhysicalPlan::Exchange { input, .. } = plan {
        let child = collect(input, plan.describe(), out);
        operators.push(format!("{}<- stage {child}", "  ".repeat(depth)));
        inputs.push(child);
        return;
    }
    operators.push(format!("{}{}", "  ".repeat(depth), plan.describe()));
    for c in plan.children() {
        walk(c, depth + 1, operators, inputs, out);
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Stage {} [tasks={}] -> {}",
            self.id, self.tasks, self.output
        )?;
        for op in &self.operators {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// All stages as text.
pub fn display_stages(plan: &PhysicalPlan) -> String {
    stages(plan).iter().map(|s| s.to_string()).collect()
}
