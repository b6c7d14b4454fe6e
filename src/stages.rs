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

/// The stage DAG of `plan`: one node per stage (its operators), one edge
/// per exchange from the producing stage to its consumer, labelled with
/// the partitioning.
pub fn draw_stages(plan: &PhysicalPlan, format: DagFormat) -> String {
    let all = stages(plan);
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
