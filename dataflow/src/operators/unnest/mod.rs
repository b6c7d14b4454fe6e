//! Unnest: list columns become rows, struct columns become their fields
//! (`SELECT unnest(l)`, `FROM unnest(...)`, as DataFusion plans them).
//!
//! Streams batch by batch with no state across batches, so it runs per
//! partition, inside any stage. Output batches are bounded by the batch
//! size even when one row holds a huge list (see [`kernel`]); small
//! outputs are coalesced.
//!
//! ```text
//! input batch ──► levels depth..2 (whole) ──► level 1 in chunks ──► structs → fields ──► BatchBuilder
//! ```

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use futures::StreamExt;

use crate::error::{DataflowError, Result};
use crate::execution::{BatchBuilder, Operator, OperatorProperties, TaskContext};
use crate::plan::{UnnestList, UnnestNulls};
use crate::stream::{boxed, SendableRecordBatchStream};

pub mod kernel;

#[cfg(test)]
mod tests;

pub use kernel::{BatchUnnest, UnnestSpec};

pub struct Unnest {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    spec: Arc<UnnestSpec>,
}

impl Unnest {
    /// Checks that `lists` name list columns of the input and `structs`
    /// struct columns, and that `schema` has one column per output.
    pub fn try_new(
        input: Arc<dyn Operator>,
        lists: &[UnnestList],
        structs: &[usize],
        nulls: UnnestNulls,
        schema: SchemaRef,
    ) -> Result<Self> {
        let input_schema = input.schema();
        let column = |i: usize| {
            input_schema.fields().get(i).ok_or_else(|| {
                DataflowError::Plan(format!(
                    "unnest of column {i}, but the input has {} columns",
                    input_schema.fields().len()
                ))
            })
        };
        for l in lists {
            let f = column(l.column)?;
            if l.depth == 0 || !is_list(f.data_type()) {
                return Err(DataflowError::Plan(format!(
                    "unnest of column {} ({}: {}) at depth {}: expects a list and a depth of at \
                     least 1",
                    l.column,
                    f.name(),
                    f.data_type(),
                    l.depth
                )));
            }
        }
        let mut expected = 0;
        for (i, f) in input_schema.fields().iter().enumerate() {
            let times = lists.iter().filter(|l| l.column == i).count();
            expected += match f.data_type() {
                DataType::Struct(fields) if structs.contains(&i) => fields.len(),
                _ if structs.contains(&i) => {
                    return Err(DataflowError::Plan(format!(
                        "unnest of column {i} ({}: {}): expects a struct",
                        f.name(),
                        f.data_type()
                    )))
                }
                _ => times.max(1),
            };
        }
        if expected != schema.fields().len() {
            return Err(DataflowError::Plan(format!(
                "unnest produces {expected} columns, but its schema has {}",
                schema.fields().len()
            )));
        }
        let spec = UnnestSpec {
            lists: lists.to_vec(),
            structs: structs.to_vec(),
            nulls,
            schema: Arc::clone(&schema),
        };
        Ok(Unnest {
            properties: OperatorProperties::new("Unnest", schema, input.output_partitions()),
            input,
            spec: Arc::new(spec),
        })
    }
}

fn is_list(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) | DataType::Null
    )
}

impl Operator for Unnest {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, ctx)?;
        let spec = Arc::clone(&self.spec);
        let batch_size = ctx.config.batch_size.max(1);
        let stream = async_stream::try_stream! {
            let mut builder = BatchBuilder::passing_large(Arc::clone(&spec.schema), batch_size);
            while let Some(batch) = input.next().await {
                let batch = batch?;
                let mut unnest = BatchUnnest::new(&spec, &batch)?;
                while let Some(chunk) = unnest.next_batch(batch_size)? {
                    for out in builder.push(chunk)? {
                        yield out;
                    }
                }
            }
            for out in builder.finish()? {
                yield out;
            }
        };
        Ok(boxed(self.schema(), stream))
    }
}
