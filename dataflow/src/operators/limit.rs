//! Limit/offset: skips `skip` rows, then passes at most `fetch` rows, and
//! stops pulling its input as soon as it has enough.

use std::sync::Arc;

use futures::StreamExt;

use crate::error::Result;
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct Limit {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    skip: usize,
    fetch: Option<usize>,
}

impl Limit {
    pub fn new(input: Arc<dyn Operator>, skip: usize, fetch: Option<usize>) -> Self {
        Limit {
            properties: OperatorProperties::new("Limit", input.schema(), input.output_partitions()),
            input,
            skip,
            fetch,
        }
    }
}

impl Operator for Limit {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let (mut to_skip, mut remaining) = (self.skip, self.fetch.unwrap_or(usize::MAX));
        if remaining == 0 {
            return Ok(crate::stream::empty(self.schema()));
        }
        let mut input = self.input.execute(partition, ctx)?;
        let stream = async_stream::try_stream! {
            while let Some(batch) = input.next().await {
                let mut batch = batch?;
                if to_skip > 0 {
                    let n = to_skip.min(batch.num_rows());
                    to_skip -= n;
                    batch = batch.slice(n, batch.num_rows() - n);
                }
                if batch.num_rows() == 0 {
                    continue;
                }
                let n = remaining.min(batch.num_rows());
                remaining -= n;
                yield batch.slice(0, n);
                if remaining == 0 {
                    break;
                }
            }
        };
        Ok(boxed(self.schema(), stream))
    }
}
