//! In-process exchange over bounded tokio channels.
//!
//! One bounded channel per consumer partition; every producer holds a
//! sender of each. A consumer's stream ends once all producers dropped
//! their senders. The bound gives backpressure: a producer waits while the
//! consumer it sends to has `capacity` batches queued.

use super::{ExchangeTransport, PartitionWriter};
use crate::error::{DataflowError, Result};
use crate::stream::{boxed, SendableRecordBatchStream};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

/// The embedded exchange.
#[derive(Debug, Clone)]
pub struct ChannelExchange {
    capacity: usize,
}

impl ChannelExchange {
    /// `capacity`: batches queued per consumer before producers wait.
    pub fn new(capacity: usize) -> Self {
        ChannelExchange {
            capacity: capacity.max(1),
        }
    }
}

impl Default for ChannelExchange {
    fn default() -> Self {
        ChannelExchange::new(4)
    }
}

struct ChannelWriter {
    senders: Vec<mpsc::Sender<Result<RecordBatch>>>,
}

impl PartitionWriter for ChannelWriter {
    fn send(&mut self, partition: usize, item: Result<RecordBatch>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let sender = self.senders.get(partition).ok_or_else(|| {
                DataflowError::Internal(format!("no exchange partition {partition}"))
            })?;
            sender
                .send(item)
                .await
                .map_err(|_| DataflowError::Cancelled)
        })
    }
}

impl ExchangeTransport for ChannelExchange {
    fn open(
        &self,
        producers: usize,
        consumers: usize,
        schema: SchemaRef,
    ) -> Result<(
        Vec<Box<dyn PartitionWriter>>,
        Vec<SendableRecordBatchStream>,
    )> {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..consumers).map(|_| mpsc::channel(self.capacity)).unzip();
        let writers = (0..producers)
            .map(|_| {
                Box::new(ChannelWriter {
                    senders: senders.clone(),
                }) as Box<dyn PartitionWriter>
            })
            .collect();
        drop(senders);
        let readers = receivers
            .into_iter()
            .map(|mut rx| {
                let stream = async_stream::stream! {
                    while let Some(item) = rx.recv().await {
                        let failed = item.is_err();
                        yield item;
                        if failed {
                            break;
                        }
                    }
                };
                boxed(schema.clone(), stream)
            })
            .collect();
        Ok((writers, readers))
    }
}
