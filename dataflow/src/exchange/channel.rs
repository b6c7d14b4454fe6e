//! In-process exchange over bounded tokio channels.
//!
//! One bounded channel per consumer partition; every producer holds a
//! sender of each. A consumer's stream ends once all producers dropped
//! their senders. The bound gives backpressure: a producer waits while the
//! consumer it sends to has `capacity` batches queued.
//!
//! With a memory pool ([`ChannelExchange::with_memory_pool`]) the bytes of
//! queued batches are shown in the pool ("exchange channels") while they
//! wait: what the pool reports in use and names in a refusal includes
//! them. They are bounded by their count (`capacity` per consumer), not by
//! the pool, so the reservation never refuses and is registered as
//! spillable: it does not shrink what the operators' share of the pool is.

use std::sync::Arc;

use super::{ExchangeTransport, PartitionWriter};
use crate::error::{DataflowError, Result};
use crate::stream::{boxed, SendableRecordBatchStream};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion_execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

/// The embedded exchange.
#[derive(Clone)]
pub struct ChannelExchange {
    capacity: usize,
    /// The bytes queued in all exchanges opened here (one query's).
    queued: Queued,
}

impl std::fmt::Debug for ChannelExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelExchange")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl ChannelExchange {
    /// `capacity`: batches queued per consumer before producers wait.
    pub fn new(capacity: usize) -> Self {
        ChannelExchange {
            capacity: capacity.max(1),
            queued: Queued::default(),
        }
    }

    /// The same exchange, showing the bytes of queued batches in `pool`
    /// (one consumer for all exchanges opened here, so that a query's
    /// exchanges take one share of the pool's fair split, not one each).
    pub fn with_memory_pool(mut self, pool: Arc<dyn MemoryPool>) -> Self {
        self.queued = Queued(Some(Arc::new(
            MemoryConsumer::new("exchange channels")
                .with_can_spill(true)
                .register(&pool),
        )));
        self
    }
}

/// The bytes queued in one exchange's channels, if they are counted.
#[derive(Clone, Default)]
struct Queued(Option<Arc<MemoryReservation>>);

impl Queued {
    fn add(&self, item: &Result<RecordBatch>) -> usize {
        let (Some(r), Ok(b)) = (&self.0, item) else {
            return 0;
        };
        let bytes = b.get_array_memory_size();
        r.grow(bytes);
        bytes
    }

    fn remove(&self, bytes: usize) {
        if let Some(r) = &self.0 {
            // Never more than was added: an error here cannot happen.
            let _ = r.try_shrink(bytes);
        }
    }
}

impl Default for ChannelExchange {
    fn default() -> Self {
        ChannelExchange::new(4)
    }
}

/// A queued item and the bytes it holds in the pool.
type Item = (Result<RecordBatch>, usize);

struct ChannelWriter {
    senders: Vec<mpsc::Sender<Item>>,
    queued: Queued,
}

impl PartitionWriter for ChannelWriter {
    fn send(&mut self, partition: usize, item: Result<RecordBatch>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let sender = self.senders.get(partition).ok_or_else(|| {
                DataflowError::Internal(format!("no exchange partition {partition}"))
            })?;
            let bytes = self.queued.add(&item);
            sender.send((item, bytes)).await.map_err(|_| {
                self.queued.remove(bytes);
                DataflowError::Cancelled
            })
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
        let queued = self.queued.clone();
        let writers = (0..producers)
            .map(|_| {
                Box::new(ChannelWriter {
                    senders: senders.clone(),
                    queued: queued.clone(),
                }) as Box<dyn PartitionWriter>
            })
            .collect();
        drop(senders);
        let readers = receivers
            .into_iter()
            .map(|mut rx: mpsc::Receiver<Item>| {
                let queued = queued.clone();
                let stream = async_stream::stream! {
                    while let Some((item, bytes)) = rx.recv().await {
                        queued.remove(bytes);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::memory_pool;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::StreamExt;

    #[tokio::test]
    async fn queued_batches_are_shown_in_the_pool_until_read() {
        let pool = memory_pool(Some(1 << 20));
        let exchange = ChannelExchange::new(4).with_memory_pool(Arc::clone(&pool));
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..1000))],
        )
        .unwrap();
        let (mut writers, mut readers) = exchange.open(1, 1, schema).unwrap();
        writers[0].send(0, Ok(batch.clone())).await.unwrap();
        writers[0].send(0, Ok(batch.clone())).await.unwrap();
        assert_eq!(pool.reserved(), 2 * batch.get_array_memory_size());
        drop(writers);
        let mut rows = 0;
        while let Some(b) = readers[0].next().await {
            rows += b.unwrap().num_rows();
        }
        assert_eq!(rows, 2000);
        assert_eq!(pool.reserved(), 0);
    }
}
