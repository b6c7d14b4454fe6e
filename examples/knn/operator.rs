//! An exact k-nearest-neighbours operator, as a custom FFQ operator.
//!
//! Config: `column=<name>;k=<k>;query=<x1>,<x2>,...`. The input must have a
//! `FixedSizeList<Float32>` column `<name>` with as many dimensions as the
//! query vector. The output is the `k` input rows nearest to the query by
//! Euclidean distance (rows with a NULL vector are skipped), ascending,
//! with a `distance` column (Float64) appended.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, RecordBatch, UInt32Array,
};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use ffq::dataflow::custom::CustomOperator;
use ffq::dataflow::error::{DataflowError, Result};
use ffq::dataflow::execution::{Operator, OperatorProperties};
use ffq::dataflow::runner::TaskContext;
use ffq::dataflow::stream::{boxed, SendableRecordBatchStream};
use futures::StreamExt;

/// The name the examples and tests register the operator under.
pub const NAME: &str = "knn";

#[derive(Debug, Clone)]
pub struct KnnConfig {
    pub column: String,
    pub k: usize,
    pub query: Vec<f32>,
}

impl KnnConfig {
    pub fn parse(config: &str) -> Result<KnnConfig> {
        let bad = |m: String| DataflowError::Plan(format!("knn config {config:?}: {m}"));
        let (mut column, mut k, mut query) = (None, None, None);
        for part in config.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("expected key=value, got {part:?}")))?;
            match key.trim() {
                "column" => column = Some(value.trim().to_string()),
                "k" => {
                    k = Some(
                        value
                            .trim()
                            .parse::<usize>()
                            .map_err(|e| bad(format!("k: {e}")))?,
                    )
                }
                "query" => {
                    query = Some(
                        value
                            .split(',')
                            .map(|x| x.trim().parse::<f32>())
                            .collect::<std::result::Result<Vec<_>, _>>()
                            .map_err(|e| bad(format!("query: {e}")))?,
                    )
                }
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        Ok(KnnConfig {
            column: column.ok_or_else(|| bad("missing column=".into()))?,
            k: k.ok_or_else(|| bad("missing k=".into()))?,
            query: query.ok_or_else(|| bad("missing query=".into()))?,
        })
    }

    pub fn render(&self) -> String {
        let q: Vec<String> = self.query.iter().map(|x| x.to_string()).collect();
        format!("column={};k={};query={}", self.column, self.k, q.join(","))
    }
}

/// The factory to register: `engine.register_operator(NAME, Arc::new(KnnFactory))`.
pub struct KnnFactory;

impl CustomOperator for KnnFactory {
    fn schema(&self, config: &str, inputs: &[SchemaRef]) -> Result<SchemaRef> {
        let c = KnnConfig::parse(config)?;
        let input = inputs
            .first()
            .ok_or_else(|| DataflowError::Plan("knn needs one input".into()))?;
        let field = input.field_with_name(&c.column).map_err(|_| {
            DataflowError::Plan(format!("knn: no column {} in the input", c.column))
        })?;
        match field.data_type() {
            DataType::FixedSizeList(item, n)
                if item.data_type() == &DataType::Float32 && *n as usize == c.query.len() => {}
            other => {
                return Err(DataflowError::Plan(format!(
                    "knn: column {} is {other}, expected FixedSizeList(Float32, {})",
                    c.column,
                    c.query.len()
                )))
            }
        }
        let mut fields: Vec<Arc<Field>> = input.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new("distance", DataType::Float64, false)));
        Ok(Arc::new(Schema::new(fields)))
    }

    fn output_partitions(&self, _config: &str, _inputs: &[usize]) -> usize {
        1
    }

    fn create(
        &self,
        config: &str,
        inputs: Vec<Arc<dyn Operator>>,
        schema: SchemaRef,
    ) -> Result<Arc<dyn Operator>> {
        let config = KnnConfig::parse(config)?;
        let input = inputs
            .into_iter()
            .next()
            .ok_or_else(|| DataflowError::Plan("knn needs one input".into()))?;
        let column = input.schema().index_of(&config.column)?;
        Ok(Arc::new(Knn {
            properties: OperatorProperties::new("Knn", Arc::clone(&schema), 1),
            input,
            column,
            config,
            schema,
        }))
    }
}

struct Knn {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    column: usize,
    config: KnnConfig,
    schema: SchemaRef,
}

impl Operator for Knn {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataflowError::Internal(format!(
                "knn has one partition, not {partition}"
            )));
        }
        let inputs = (0..self.input.output_partitions())
            .map(|p| self.input.execute(p, ctx))
            .collect::<Result<Vec<_>>>()?;
        let (column, config, schema) = (self.column, self.config.clone(), Arc::clone(&self.schema));
        let stream = async_stream::try_stream! {
            let mut best: Option<RecordBatch> = None;
            let mut merged = futures::stream::select_all(inputs);
            while let Some(batch) = merged.next().await {
                let scored = with_distances(&batch?, column, &config.query, &schema)?;
                let all = match best.take() {
                    Some(b) => concat_batches(&schema, [&b, &scored])?,
                    None => scored,
                };
                best = Some(nearest(&all, config.k)?);
            }
            if let Some(b) = best {
                yield b;
            }
        };
        Ok(boxed(Arc::clone(&self.schema), stream))
    }
}

/// `batch` without its NULL vectors, with the distance column appended.
fn with_distances(
    batch: &RecordBatch,
    column: usize,
    query: &[f32],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let vectors = batch
        .column(column)
        .as_any()
        .downcast_ref::<FixedSizeListArray>()
        .ok_or_else(|| {
            DataflowError::Execution("knn: the vector column is not a FixedSizeList".into())
        })?;
    let values = vectors
        .values()
        .as_any()
        .downcast_ref::<Float32Array>()
        .ok_or_else(|| DataflowError::Execution("knn: vectors are not Float32".into()))?;
    let dim = query.len();
    let mut keep = Vec::with_capacity(batch.num_rows());
    let mut distances = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        if vectors.is_null(row) {
            continue;
        }
        let start = vectors.value_offset(row) as usize;
        let d: f64 = (0..dim)
            .map(|i| {
                let x = values.value(start + i) as f64 - query[i] as f64;
                x * x
            })
            .sum::<f64>()
            .sqrt();
        keep.push(row as u32);
        distances.push(d);
    }
    let kept = take_record_batch(batch, &UInt32Array::from(keep))?;
    let mut columns: Vec<ArrayRef> = kept.columns().to_vec();
    columns.push(Arc::new(Float64Array::from(distances)));
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The `k` rows of `batch` with the smallest distance, ascending.
fn nearest(batch: &RecordBatch, k: usize) -> Result<RecordBatch> {
    let distance = batch.column(batch.num_columns() - 1);
    let order = sort_to_indices(distance, None, Some(k))?;
    Ok(take_record_batch(batch, &order)?)
}
