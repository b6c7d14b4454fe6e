//! Record batch streams: the currency between operators.

use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::Stream;

use crate::error::Result;

/// A stream of record batches that knows its schema, also before the first
/// batch arrives (and when none does).
pub trait RecordBatchStream: Stream<Item = Result<RecordBatch>> {
    fn schema(&self) -> SchemaRef;
}

/// The stream type every operator returns.
pub type SendableRecordBatchStream = Pin<Box<dyn RecordBatchStream + Send>>;

/// Pairs any batch stream with its schema.
pub struct RecordBatchStreamAdapter<S> {
    schema: SchemaRef,
    inner: S,
}

impl<S> RecordBatchStreamAdapter<S> {
    pub fn new(schema: SchemaRef, inner: S) -> Self {
        Self { schema, inner }
    }
}

impl<S> Stream for RecordBatchStreamAdapter<S>
where
    S: Stream<Item = Result<RecordBatch>> + Unpin,
{
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S> RecordBatchStream for RecordBatchStreamAdapter<S>
where
    S: Stream<Item = Result<RecordBatch>> + Unpin,
{
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Boxes a (possibly `!Unpin`) batch stream, such as an `async_stream`
/// generator, into a [`SendableRecordBatchStream`].
pub fn boxed<S>(schema: SchemaRef, stream: S) -> SendableRecordBatchStream
where
    S: Stream<Item = Result<RecordBatch>> + Send + 'static,
{
    Box::pin(RecordBatchStreamAdapter::new(schema, Box::pin(stream)))
}

/// A stream that yields nothing.
pub fn empty(schema: SchemaRef) -> SendableRecordBatchStream {
    boxed(schema, futures::stream::empty())
}
