//! Test helpers shared by the operator tests.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::error::{DataflowError, Result};
use crate::exchange::{ExchangeTransport, PartitionWriter};
use crate::stream::{boxed, SendableRecordBatchStream};

/// A minimal in-process exchange over bounded channels of capacity 1 (the
/// smallest bound, so that tests exercise backpressure).
pub struct TestExchange;

struct Writer(Vec<mpsc::Sender<Result<RecordBatch>>>);

impl PartitionWriter for Writer {
    fn send(&mut self, partition: usize, item: Result<RecordBatch>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let tx = self
                .0
                .get(partition)
                .ok_or_else(|| DataflowError::Internal("no partition".into()))?;
            tx.send(item).await.map_err(|_| DataflowError::Cancelled)
        })
    }
}

impl ExchangeTransport for TestExchange {
    fn open(
        &self,
        producers: usize,
        consumers: usize,
        schema: SchemaRef,
    ) -> Result<(
        Vec<Box<dyn PartitionWriter>>,
        Vec<SendableRecordBatchStream>,
    )> {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..consumers).map(|_| mpsc::channel(1)).unzip();
        let writers = (0..producers)
            .map(|_| Box::new(Writer(txs.clone())) as Box<dyn PartitionWriter>)
            .collect();
        let readers = rxs
            .into_iter()
            .map(|mut rx| {
                let s = async_stream::stream! {
                    while let Some(item) = rx.recv().await {
                        yield item;
                    }
                };
                boxed(Arc::clone(&schema), s)
            })
            .collect();
        Ok((writers, readers))
    }
}
