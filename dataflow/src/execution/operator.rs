//! The compiled operator and its fixed properties.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::TaskContext;
use crate::error::Result;
use crate::stream::SendableRecordBatchStream;

/// What a compiled operator is, fixed when it is built: its name (for
/// errors and metrics), output schema and number of output partitions.
#[derive(Debug, Clone)]
pub struct OperatorProperties {
    pub name: &'static str,
    pub schema: SchemaRef,
    pub partitions: usize,
}

impl OperatorProperties {
    pub fn new(name: &'static str, schema: SchemaRef, partitions: usize) -> Self {
        OperatorProperties {
            name,
            schema,
            partitions,
        }
    }
}

/// A compiled physical operator.
///
/// Runtime contract:
/// - `execute(partition)` only builds a stream: nothing runs before the
///   stream is first polled (exchanges spawn their producer tasks then);
/// - the stream stops at the first error it yields;
/// - dropping the stream cancels its work; tasks belong to the query's
///   [`super::QueryTasks`] and are aborted with it;
/// - CPU work happens in batch-sized steps, so a task never holds a tokio
///   worker thread for long.
///
/// The partition index is checked once, by the [`super::Instrumented`]
/// wrapper that `compile` puts around every operator.
pub trait Operator: Send + Sync {
    /// Name, schema and partitions, computed once by the constructor.
    fn properties(&self) -> &OperatorProperties;

    fn name(&self) -> &'static str {
        self.properties().name
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.properties().schema)
    }

    fn output_partitions(&self) -> usize {
        self.properties().partitions
    }

    /// The stream of output partition `partition`. Called at most once per
    /// partition per query.
    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream>;
}
