//! Plan node ids: the one numbering of a plan's nodes.
//!
//! `compile` gives each node's metrics the node's id, and whoever reads
//! metrics back (EXPLAIN ANALYZE, progress, the distributed runtime) finds
//! a node's counters by the same id; both sides get the ids from
//! [`PhysicalPlan::numbered`].

use serde::{Deserialize, Serialize};

use super::PhysicalPlan;

/// The id of a plan node: its position in a pre-order walk of the plan
/// (this node before its inputs, inputs in order), the root being 0.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct NodeId(pub usize);

/// A plan node with its id, depth and the ids of its inputs.
#[derive(Debug)]
pub struct NumberedNode<'a> {
    pub id: NodeId,
    pub depth: usize,
    pub node: &'a PhysicalPlan,
    /// The ids of `node`'s children, in order.
    pub children: Vec<NodeId>,
}

impl PhysicalPlan {
    /// Every node of the plan, indexed by its [`NodeId`].
    pub fn numbered(&self) -> Vec<NumberedNode<'_>> {
        let mut out = Vec::new();
        number(self, 0, &mut out);
        out
    }
}

fn number<'a>(node: &'a PhysicalPlan, depth: usize, out: &mut Vec<NumberedNode<'a>>) -> NodeId {
    let id = NodeId(out.len());
    out.push(NumberedNode {
        id,
        depth,
        node,
        children: Vec::new(),
    });
    let children: Vec<NodeId> = node
        .children()
        .into_iter()
        .map(|c| number(c, depth + 1, out))
        .collect();
    out[id.0].children = children;
    id
}
