//! Parquet over an object store: the footer with one suffix request, then
//! only the byte ranges the reader asks for (the column chunks of the
//! selected row groups and columns). Never the whole object.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, MetadataSuffixFetch};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

/// An [`AsyncFileReader`] of one object.
#[derive(Debug, Clone)]
pub(crate) struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    /// Bytes fetched so far (shared by clones).
    fetched: Arc<AtomicU64>,
}

impl ObjectReader {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, path: ObjectPath) -> Self {
        ObjectReader {
            store,
            path,
            fetched: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes this reader (and its clones) fetched.
    #[cfg(test)]
    pub(crate) fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    fn count<T: AsRef<[u8]>>(&self, chunks: &[T]) {
        let n: usize = chunks.iter().map(|c| c.as_ref().len()).sum();
        self.fetched.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let bytes = self
                .store
                .get_range(&self.path, range)
                .await
                .map_err(external)?;
            self.count(std::slice::from_ref(&bytes));
            Ok(bytes)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let chunks = self
                .store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)?;
            self.count(&chunks);
            Ok(chunks)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_via_suffix_and_finish(self)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl MetadataSuffixFetch for &mut ObjectReader {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let options = GetOptions {
            range: Some(GetRange::Suffix(suffix as u64)),
            ..Default::default()
        };
        async move {
            let result = self
                .store
                .get_opts(&self.path, options)
                .await
                .map_err(external)?;
            let bytes = result.bytes().await.map_err(external)?;
            self.count(std::slice::from_ref(&bytes));
            Ok(bytes)
        }
        .boxed()
    }
}
