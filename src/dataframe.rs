//! The result of planning one statement: run it as a stream, collect it,
//! or explain it.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion_expr::LogicalPlan;
use ffq_dataflow::plan::PhysicalPlan;
use ffq_dataflow::runner::QueryStream;
use ffq_dataflow::stream::{boxed, SendableRecordBatchStream};
use futures::TryStreamExt;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::session::SessionState;
use crate::stages;

enum Body {
    /// A query to run.
    Query {
        logical: Box<LogicalPlan>,
        physical: Box<PhysicalPlan>,
    },
    /// Rows known at planning time (EXPLAIN output, statement results).
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
}

/// A planned statement.
pub struct DataFrame {
    session: Arc<SessionState>,
    body: Body,
}

impl DataFrame {
    pub(crate) fn query(
        session: Arc<SessionState>,
        logical: LogicalPlan,
        physical: PhysicalPlan,
    ) -> Self {
        DataFrame {
            session,
            body: Body::Query {
                logical: Box::new(logical),
                physical: Box::new(physical),
            },
        }
    }

    pub(crate) fn rows(
        session: Arc<SessionState>,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Self {
        DataFrame {
            session,
            body: Body::Rows { schema, batches },
        }
    }

    /// The schema of the result: names, types and nullability.
    pub fn schema(&self) -> SchemaRef {
        match &self.body {
            Body::Query { physical, .. } => physical.schema(),
            Body::Rows { schema, .. } => Arc::clone(schema),
        }
    }

    /// The optimized logical plan, when this is a query.
    pub fn logical_plan(&self) -> Option<&LogicalPlan> {
        match &self.body {
            Body::Query { logical, .. } => Some(logical),
            Body::Rows { .. } => None,
        }
    }

    /// The physical plan, when this is a query.
    pub fn physical_plan(&self) -> Option<&PhysicalPlan> {
        match &self.body {
            Body::Query { physical, .. } => Some(physical),
            Body::Rows { .. } => None,
        }
    }

    /// Starts the query and returns its output as a stream. Batches arrive
    /// while the query runs; dropping the stream cancels every task of the
    /// query.
    pub fn execute_stream(&self) -> Result<SendableRecordBatchStream> {
        match &self.body {
            Body::Query { physical, .. } => self
                .session
                .backend
                .execute(physical, &self.session.resources()),
            Body::Rows { schema, batches } => {
                let batches = batches.clone();
                Ok(boxed(
                    Arc::clone(schema),
                    futures::stream::iter(batches.into_iter().map(Ok)),
                ))
            }
        }
    }

    /// Like [`DataFrame::execute_stream`], with a handle on the query's
    /// progress (rows scanned, stages done).
    pub fn execute_with_progress(&self) -> Result<(SendableRecordBatchStream, Progress)> {
        match &self.body {
            Body::Query { physical, .. } => self
                .session
                .backend
                .execute_with_progress(physical, &self.session.resources()),
            Body::Rows { .. } => Ok((self.execute_stream()?, Progress::done())),
        }
    }

    /// Like [`DataFrame::execute_stream`], with access to the query's task
    /// set (to observe cancellation). Embedded engines only.
    pub fn execute_query(&self) -> Result<QueryStream> {
        match &self.body {
            Body::Query { physical, .. } => self
                .session
                .backend
                .execute_query(physical, &self.session.resources()),
            Body::Rows { .. } => Err(Error::InvalidArgument(
                "this statement has no query to run".into(),
            )),
        }
    }

    /// This query's result fed through the custom operator registered as
    /// `name` ([`crate::Engine::register_operator`]), configured by
    /// `config` (a string the factory interprets, e.g. JSON). The logical
    /// plan stays the input's; the physical plan ends with the operator.
    pub fn with_operator(&self, name: &str, config: &str) -> Result<DataFrame> {
        let Body::Query { logical, physical } = &self.body else {
            return Err(Error::InvalidArgument(
                "with_operator needs a query (this statement has no query plan)".into(),
            ));
        };
        let operators = self.session.operators();
        let factory = operators.get(name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "operator {name} is not registered (registered: [{}])",
                operators.names().join(", ")
            ))
        })?;
        let input = (**physical).clone();
        let schema = factory.schema(config, &[input.schema()])?;
        let partitions = factory.output_partitions(config, &[input.output_partitions()]);
        let mut plan = PhysicalPlan::Custom {
            name: name.to_string(),
            config: config.to_string(),
            inputs: vec![input],
            schema,
            partitions,
        };
        if partitions > 1 {
            plan = PhysicalPlan::Exchange {
                input: Box::new(plan),
                partitioning: ffq_dataflow::plan::Partitioning::Gather,
            };
        }
        Ok(DataFrame::query(
            Arc::clone(&self.session),
            (**logical).clone(),
            plan,
        ))
    }

    /// Runs the query to completion and returns all batches.
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        let stream = self.execute_stream()?;
        Ok(stream.try_collect().await?)
    }

    /// The plans of the query as text: logical, physical, and the stages
    /// this engine runs.
    pub fn explain(&self) -> String {
        match self.plan_texts() {
            Some([logical, physical, stages]) => format!(
                "== Logical plan ==\n{}\n\n== Physical plan ==\n{}\n== Stages ==\n{}",
                logical.1, physical.1, stages.1
            ),
            None => "(a statement without a query plan)\n".to_string(),
        }
    }

    /// The plans of the query as `(plan_type, plan)` pairs, the rows of
    /// EXPLAIN: `logical_plan`, `physical_plan` and `stages`.
    pub(crate) fn plan_texts(&self) -> Option<[(&'static str, String); 3]> {
        let Body::Query { logical, physical } = &self.body else {
            return None;
        };
        let stage_plan = self.session.backend.stage_plan(physical);
        Some([
            ("logical_plan", logical.display_indent().to_string()),
            ("physical_plan", physical.display_indent()),
            ("stages", stages::display(&stage_plan)),
        ])
    }
}
