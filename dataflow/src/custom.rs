//! User-defined physical operators.
//!
//! A [`CustomOperator`] is a factory registered under a name with the
//! engine (and, on a cluster, with each worker that can run it). The plan
//! node [`crate::plan::PhysicalPlan::Custom`] carries only the name, a
//! configuration string and the inputs, so it ships to workers like any
//! other node; each process builds the operator from its own registry. A
//! process that lacks the factory fails to build the plan with an explicit
//! error, never runs something else instead.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::error::{DataflowError, Result};
use crate::execution::Operator;

/// The factory of a user-defined operator.
pub trait CustomOperator: Send + Sync {
    /// The output schema for `config` over inputs of `inputs` schemas.
    fn schema(&self, config: &str, inputs: &[SchemaRef]) -> Result<SchemaRef>;

    /// Output partitions for inputs with `inputs` partitions (default: as
    /// many as the first input, or one).
    fn output_partitions(&self, _config: &str, inputs: &[usize]) -> usize {
        inputs.first().copied().unwrap_or(1).max(1)
    }

    /// Builds the operator over compiled `inputs`.
    fn create(
        &self,
        config: &str,
        inputs: Vec<Arc<dyn Operator>>,
        schema: SchemaRef,
    ) -> Result<Arc<dyn Operator>>;
}

/// Custom operator factories by name.
#[derive(Clone, Default)]
pub struct OperatorRegistry {
    factories: BTreeMap<String, Arc<dyn CustomOperator>>,
}

impl std::fmt::Debug for OperatorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

impl OperatorRegistry {
    /// Registers (or replaces) the factory of operator `name`.
    pub fn register(&mut self, name: impl Into<String>, factory: Arc<dyn CustomOperator>) {
        self.factories.insert(name.into(), factory);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn CustomOperator>> {
        self.factories.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }

    /// The factory of `name`, or the error a process that cannot run it
    /// gives.
    pub fn require(&self, name: &str) -> Result<&Arc<dyn CustomOperator>> {
        self.get(name).ok_or_else(|| {
            DataflowError::Execution(format!(
                "operator {name} is not registered in this process (registered: [{}])",
                self.names().join(", ")
            ))
        })
    }
}
