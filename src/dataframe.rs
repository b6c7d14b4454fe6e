//! The result of planning one statement: run it as a stream, collect it,
//! or explain it.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_expr::LogicalPlan;
use ffq_dataflow::plan::PhysicalPlan;
use ffq_dataflow::runner::{self, QueryStream};
use ffq_dataflow::stream::{boxed, SendableRecordBatchStream};
use futures::TryStreamExt;

use crate::engine::EngineState;
use crate::error::Result;
use crate::stages::display_stages;

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
    state: Arc<EngineState>,
    body: Body,
}

impl DataFrame {
    pub(crate) fn query(
        state: Arc<EngineState>,
        logical: LogicalPlan,
        physical: PhysicalPlan,
    ) -> Self {
        DataFrame {
            state,
            body: Body::Query {
                logical: Box::new(logical),
                physical: Box::new(physical),
            },
        }
    }

    pub(crate) fn rows(
        state: Arc<EngineState>,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Self {
        DataFrame {
            state,
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
            Body::Query { physical, .. } => match &self.state.cluster {
                Some(cluster) => Ok(cluster.execute(
                    physical,
                    self.state.memory.clone(),
                    Arc::clone(&self.state.registry),
                    self.state.operators(),
                    self.state.exec_config(),
                )?),
                None => Ok(Box::pin(self.execute_query()?)),
            },
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
    pub fn execute_with_progress(
        &self,
    ) -> Result<(SendableRecordBatchStream, crate::progress::Progress)> {
        use crate::progress::Progress;
        match (&self.body, &self.state.cluster) {
            (Body::Query { physical, .. }, Some(cluster)) => {
                let (stream, progress) = cluster.execute_with_progress(
                    physical,
                    self.state.memory.clone(),
                    Arc::clone(&self.state.registry),
                    self.state.operators(),
                    self.state.exec_config(),
                )?;
                Ok((stream, Progress::cluster(progress)))
            }
            (Body::Query { physical, .. }, None) => {
                let stream = self.execute_query()?;
                let progress = Progress::embedded(stream.metrics(), physical);
                Ok((Box::pin(stream), progress))
            }
            (Body::Rows { .. }, _) => Ok((self.execute_stream()?, Progress::done())),
        }
    }

    /// Like [`DataFrame::execute_stream`], with access to the query's task
    /// set (to observe cancellation). Embedded engines only.
    pub fn execute_query(&self) -> Result<QueryStream> {
        if self.state.cluster.is_some() {
            return Err(crate::Error::NotSupported(
                "execute_query on a cluster engine (use execute_stream)".into(),
            ));
        }
        match &self.body {
            Body::Query { physical, .. } => Ok(runner::CompiledPlan::try_new(
                physical,
                self.state.exec_config(),
                Arc::clone(&self.state.registry),
                self.state.memory.clone(),
                self.state.exchange.clone(),
                None,
                self.state.operators(),
            )?
            .into_stream()?),
            Body::Rows { .. } => Err(crate::Error::InvalidArgument(
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
            return Err(crate::Error::InvalidArgument(
                "with_operator needs a query (this statement has no query plan)".into(),
            ));
        };
        let operators = self.state.operators();
        let factory = operators.get(name).ok_or_else(|| {
            crate::Error::InvalidArgument(format!(
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
            Arc::clone(&self.state),
            (**logical).clone(),
            plan,
        ))
    }

    /// Runs the query to completion and returns all batches.
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        let stream = self.execute_stream()?;
        Ok(stream.try_collect().await?)
    }

    /// The plans of the query as text: logical, physical, and stages.
    pub fn explain(&self) -> String {
        match &self.body {
            Body::Query { logical, physical } => explain_text(logical, physical),
            Body::Rows { .. } => "(a statement without a query plan)\n".to_string(),
        }
    }
}

pub(crate) fn explain_text(logical: &LogicalPlan, physical: &PhysicalPlan) -> String {
    format!(
        "== Logical plan ==\n{}\n\n== Physical plan ==\n{}\n== Stages ==\n{}",
        logical.display_indent(),
        physical.display_indent(),
        display_stages(physical)
    )
}

/// EXPLAIN output as rows: (plan_type, plan).
pub(crate) fn explain_batch(
    logical: &LogicalPlan,
    physical: &PhysicalPlan,
) -> Result<(SchemaRef, RecordBatch)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("plan_type", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
    ]));
    let kinds = StringArray::from(vec!["logical_plan", "physical_plan", "stages"]);
    let plans = StringArray::from(vec![
        logical.display_indent().to_string(),
        physical.display_indent(),
        display_stages(physical),
    ]);
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(kinds), Arc::new(plans)])?;
    Ok((schema, batch))
}
