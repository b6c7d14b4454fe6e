//! File encoders: Parquet through parquet's async writer, CSV and
//! newline-delimited JSON encoded batch by batch into bytes (plain
//! kernels, tested alone) and appended to the destination.

use std::str::FromStr;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tokio::io::AsyncWriteExt;

use crate::error::{DataflowError, Result};
use crate::plan::FileFormat;

/// Encodes `batch` as CSV; with `header`, the column names come first.
pub(crate) fn encode_csv(batch: &RecordBatch, header: bool, delimiter: u8) -> Result<Vec<u8>> {
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(header)
        .with_delimiter(delimiter)
        .build(Vec::new());
    writer.write(batch)?;
    Ok(writer.into_inner())
}

/// Encodes `batch` as newline-delimited JSON (NULL fields left out).
pub(crate) fn encode_json(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write(batch)?;
    writer.finish()?;
    Ok(writer.into_inner())
}

/// The parquet compression named `name` (`snappy`, `zstd(3)`, ...).
pub fn parquet_compression(name: &str) -> Result<Compression> {
    Compression::from_str(name).map_err(|e| {
        DataflowError::Plan(format!(
            "unknown Parquet compression '{name}' ({e}); use uncompressed, snappy, gzip(n), \
             brotli(n), lz4, lz4_raw or zstd(n)"
        ))
    })
}

/// An open file of one format.
pub(crate) enum FormatWriter {
    Parquet(Box<AsyncArrowWriter<BufWriter>>),
    Csv {
        out: BufWriter,
        has_header: bool,
        delimiter: u8,
        /// The header is written with the first batch, or at the end of an
        /// empty file.
        header_written: bool,
        schema: SchemaRef,
    },
    Json(BufWriter),
}

impl FormatWriter {
    pub(crate) fn try_new(out: BufWriter, format: &FileFormat, schema: SchemaRef) -> Result<Self> {
        Ok(match format {
            FileFormat::Parquet { compression } => {
                let properties = WriterProperties::builder()
                    .set_compression(parquet_compression(compression)?)
                    .build();
                FormatWriter::Parquet(Box::new(AsyncArrowWriter::try_new(
                    out,
                    schema,
                    Some(properties),
                )?))
            }
            FileFormat::Csv {
                has_header,
                delimiter,
            } => FormatWriter::Csv {
                out,
                has_header: *has_header,
                delimiter: *delimiter,
                header_written: false,
                schema,
            },
            FileFormat::Json => FormatWriter::Json(out),
        })
    }

    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            FormatWriter::Parquet(writer) => writer.write(batch).await?,
            FormatWriter::Csv {
                out,
                has_header,
                delimiter,
                header_written,
                ..
            } => {
                let bytes = encode_csv(batch, *has_header && !*header_written, *delimiter)?;
                *header_written = true;
                out.write_all(&bytes).await?;
            }
            FormatWriter::Json(out) => out.write_all(&encode_json(batch)?).await?,
        }
        Ok(())
    }

    /// Completes the file (the footer, the last part of an upload).
    pub(crate) async fn finish(self) -> Result<()> {
        match self {
            FormatWriter::Parquet(writer) => {
                writer.close().await?;
            }
            FormatWriter::Csv {
                mut out,
                has_header,
                delimiter,
                header_written,
                schema,
            } => {
                if has_header && !header_written {
                    let empty = RecordBatch::new_empty(schema);
                    out.write_all(&encode_csv(&empty, true, delimiter)?).await?;
                }
                out.shutdown().await?;
            }
            FormatWriter::Json(mut out) => out.shutdown().await?,
        }
        Ok(())
    }

    /// Abandons the file: an upload in progress is aborted, nothing stays.
    pub(crate) async fn abort(self) {
        let mut out = match self {
            FormatWriter::Parquet(writer) => writer.into_inner(),
            FormatWriter::Csv { out, .. } | FormatWriter::Json(out) => out,
        };
        // Best effort: the error being reported is the write's.
        let _ = out.abort().await;
    }
}
