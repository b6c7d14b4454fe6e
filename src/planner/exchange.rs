//! The exchanges the planner inserts: a gather into one partition, a hash
//! exchange on keys. Lowerings of aggregates, joins, windows and set
//! operations share these.

use ffq_dataflow::expr::PhysExpr;
use ffq_dataflow::plan::{Partitioning, PhysicalPlan};

/// `plan` in one partition (an exchange that gathers, when needed).
pub fn gather(plan: PhysicalPlan) -> PhysicalPlan {
    if plan.output_partitions() <= 1 {
        return plan;
    }
    PhysicalPlan::Exchange {
        input: Box::new(plan),
        partitioning: Partitioning::Gather,
    }
}

/// `plan` hash-partitioned on `keys` into `partitions` partitions.
pub fn hash_exchange(plan: PhysicalPlan, keys: Vec<PhysExpr>, partitions: usize) -> PhysicalPlan {
    PhysicalPlan::Exchange {
        input: Box::new(plan),
        partitioning: Partitioning::Hash { keys, partitions },
    }
}
