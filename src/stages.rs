//! The stage DAG as EXPLAIN shows it: a view over the stages that
//! [`ffq_dataflow::stage`] cuts, the one cutter the runtime uses too (an
//! engine's execution backend says which stages it runs: the plan cut as
//! is embedded, the distributed plan on a cluster).
//!
//! Stage 0 is the root (the query's output); every exchange starts a new
//! stage below it.

use std::fmt;

use ffq_dataflow::plan::PhysicalPlan;
use ffq_dataflow::stage::{split_stages, StagePlan};

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

impl Stage {
    /// The view of one cut stage.
    pub fn of(stage: &StagePlan) -> Stage {
        let mut operators = Vec::new();
        list_operators(&stage.plan, 0, &mut operators);
        Stage {
            id: stage.id as usize,
            tasks: stage.tasks(),
            operators,
            inputs: stage.inputs.iter().map(|&i| i as usize).collect(),
            output: stage.output_name(),
        }
    }
}

/// The stages of `plan` cut as is (as an embedded engine runs it).
pub fn stages(plan: &PhysicalPlan) -> Vec<Stage> {
    split_stages(plan).iter().map(Stage::of).collect()
}

fn list_operators(plan: &PhysicalPlan, depth: usize, out: &mut Vec<String>) {
    let indent = "  ".repeat(depth);
    if let PhysicalPlan::StageInput { stage, .. } = plan {
        out.push(format!("{indent}<- stage {stage}"));
        return;
    }
    out.push(format!("{indent}{}", plan.describe()));
    for c in plan.children() {
        list_operators(c, depth + 1, out);
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

/// Cut stages as text, one block per stage.
pub fn display(stages: &[StagePlan]) -> String {
    stages.iter().map(|s| Stage::of(s).to_string()).collect()
}

/// The stages of `plan` cut as is, as text.
pub fn display_stages(plan: &PhysicalPlan) -> String {
    display(&split_stages(plan))
}

/// How a stage DAG is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DagFormat {
    /// Graphviz `dot`.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

impl std::str::FromStr for DagFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "dot" | "graphviz" => Ok(DagFormat::Dot),
            "mermaid" => Ok(DagFormat::Mermaid),
            other => Err(format!("unknown DAG format {other:?} (dot, mermaid)")),
        }
    }
}

/// The stage DAG of `plan` cut as is; see [`draw`].
pub fn draw_stages(plan: &PhysicalPlan, format: DagFormat) -> String {
    draw(&split_stages(plan), format)
}

/// The stage DAG: one node per stage (its operators), one edge per
/// exchange from the producing stage to its consumer, labelled with the
/// partitioning.
pub fn draw(stages: &[StagePlan], format: DagFormat) -> String {
    let all: Vec<Stage> = stages.iter().map(Stage::of).collect();
    let label = |s: &Stage| {
        let mut lines = vec![format!("Stage {} [tasks={}]", s.id, s.tasks)];
        lines.extend(s.operators.iter().map(|o| o.trim().to_string()));
        lines
    };
    let mut out = String::new();
    match format {
        DagFormat::Dot => {
            out.push_str(
                "digraph stages {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n",
            );
            for s in &all {
                let text: Vec<String> = label(s).iter().map(|l| dot_escape(l)).collect();
                out.push_str(&format!(
                    "  stage{} [label=\"{}\\l\"];\n",
                    s.id,
                    text.join("\\l")
                ));
            }
            for s in &all {
                for input in &s.inputs {
                    out.push_str(&format!(
                        "  stage{input} -> stage{} [label=\"{}\"];\n",
                        s.id,
                        dot_escape(&all[*input].output)
                    ));
                }
            }
            out.push_str("}\n");
        }
        DagFormat::Mermaid => {
            out.push_str("flowchart BT\n");
            for s in &all {
                let text: Vec<String> = label(s).iter().map(|l| mermaid_escape(l)).collect();
                out.push_str(&format!("  stage{}[\"{}\"]\n", s.id, text.join("<br/>")));
            }
            for s in &all {
                for input in &s.inputs {
                    out.push_str(&format!(
                        "  stage{input} -->|\"{}\"| stage{}\n",
                        mermaid_escape(&all[*input].output),
                        s.id
                    ));
                }
            }
        }
    }
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}
