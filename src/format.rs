//! Output formats for query results: pretty tables, CSV and JSON lines.
//!
//! - [`OutputFormat::Table`]: an aligned text table (Arrow's pretty
//!   printer); NULL is shown as `NULL`. Needs all rows before printing.
//! - [`OutputFormat::Csv`]: RFC 4180 CSV with a header row and `\n` line
//!   ends. Fields containing the delimiter, a quote, CR or LF are quoted,
//!   with embedded quotes doubled. NULL is an empty field; an empty string
//!   is written as `""` so that it stays distinct from NULL. Decimals are
//!   written at their scale (`12.30` for `decimal(15,2)`), dates as
//!   `1998-09-02`, timestamps in ISO 8601 (`1998-09-02T10:00:00`, with the
//!   offset when the type has a time zone).
//! - [`OutputFormat::Json`]: JSON lines, one object per row with every
//!   column as a key (NULL as `null`). Decimals are JSON numbers at their
//!   scale, dates and timestamps strings as in CSV, non-finite floats `null`.
//!
//! [`ResultWriter`] writes a stream of batches in any of these formats;
//! [`format_batches`] renders collected batches to a string.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::json::writer::LineDelimited;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow::util::pretty::pretty_format_batches_with_schema;
use ffq_dataflow::DataflowError;

use crate::error::{Error, Result};

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum OutputFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// JSON lines: one object per row.
    Json,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 3] = [OutputFormat::Table, OutputFormat::Csv, OutputFormat::Json];

    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Csv => "csv",
            OutputFormat::Json => "json",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutputFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        OutputFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown output format {s:?}; expected table, csv or json"
                ))
            })
    }
}

/// Wraps an I/O error of an output writer.
pub fn io_error(e: std::io::Error) -> Error {
    Error::Execution(DataflowError::Io(e))
}

/// Whether `e` is a write to a closed pipe (e.g. output piped to `head`).
pub fn is_broken_pipe(e: &Error) -> bool {
    let io = match e {
        Error::Execution(DataflowError::Io(e)) => e,
        Error::Execution(DataflowError::Arrow(arrow::error::ArrowError::IoError(_, e))) => e,
        _ => return false,
    };
    io.kind() == std::io::ErrorKind::BrokenPipe
}

/// Writes the batches of one result in an [`OutputFormat`], batch by
/// batch (CSV and JSON write each batch at once; a table is printed by
/// [`ResultWriter::finish`]).
pub struct ResultWriter<W: Write> {
    inner: Inner<W>,
    rows: usize,
}

enum Inner<W: Write> {
    Table {
        out: W,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    Csv(CsvWriter<W>),
    Json(JsonWriter<W>),
}

impl<W: Write> ResultWriter<W> {
    /// A writer of a result with `schema` to `out`.
    pub fn new(format: OutputFormat, schema: SchemaRef, out: W) -> Self {
        let inner = match format {
            OutputFormat::Table => Inner::Table {
                out,
                schema,
                batches: Vec::new(),
            },
            OutputFormat::Csv => Inner::Csv(CsvWriter::new(out, schema)),
            OutputFormat::Json => Inner::Json(JsonWriter::new(out)),
        };
        ResultWriter { inner, rows: 0 }
    }

    /// Writes (or, for a table, keeps) one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        match &mut self.inner {
            Inner::Table { batches, .. } => {
                if batch.num_rows() > 0 {
                    batches.push(batch.clone());
                }
                Ok(())
            }
            Inner::Csv(w) => w.write(batch),
            Inner::Json(w) => w.write(batch),
        }
    }

    /// Flushes the output (CSV and JSON), so that rows written so far are
    /// visible.
    pub fn flush(&mut self) -> Result<()> {
        match &mut self.inner {
            Inner::Table { .. } => Ok(()),
            Inner::Csv(w) => w.flush(),
            Inner::Json(w) => w.flush(),
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Ends the result (prints the table; writes the CSV header of an empty
    /// result), flushes and returns the output.
    pub fn finish(self) -> Result<W> {
        match self.inner {
            Inner::Table {
                mut out,
                schema,
                batches,
            } => {
                let text = format_table(schema, &batches)?;
                writeln!(out, "{text}").map_err(io_error)?;
                out.flush().map_err(io_error)?;
                Ok(out)
            }
            Inner::Csv(w) => w.finish(),
            Inner::Json(w) => w.finish(),
        }
    }
}

/// Renders `batches` (of `schema`) in `format`.
pub fn format_batches(
    format: OutputFormat,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<String> {
    let mut w = ResultWriter::new(format, schema, Vec::new());
    for b in batches {
        w.write(b)?;
    }
    let bytes = w.finish()?;
    String::from_utf8(bytes).map_err(|e| Error::Execution(DataflowError::Internal(e.to_string())))
}

/// An aligned text table of `batches`, with the column names of `schema`
/// (also for zero rows). NULL shows as `NULL`. No trailing newline.
pub fn format_table(schema: SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let options = FormatOptions::default()
        .with_null("NULL")
        .with_display_error(true);
    if batches.is_empty() {
        return Ok(pretty_format_batches_with_schema(schema, &[])?.to_string());
    }
    Ok(arrow::util::pretty::pretty_format_batches_with_options(batches, &options)?.to_string())
}

/// A CSV writer (RFC 4180 quoting, header row, NULL as an empty field).
///
/// The header is written before the first batch, or by
/// [`CsvWriter::finish`] when no batch was written.
pub struct CsvWriter<W: Write> {
    out: W,
    schema: SchemaRef,
    delimiter: u8,
    header: bool,
    started: bool,
    line: Vec<u8>,
    field: String,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W, schema: SchemaRef) -> Self {
        CsvWriter {
            out,
            schema,
            delimiter: b',',
            header: true,
            started: false,
            line: Vec::with_capacity(64 * 1024),
            field: String::new(),
        }
    }

    /// Sets the field delimiter (default `,`).
    pub fn with_delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Whether to write a header row (default true).
    pub fn with_header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }

    fn start(&mut self) -> Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        if !self.header {
            return Ok(());
        }
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        for (i, field) in self.schema.fields().iter().enumerate() {
            if i > 0 {
                line.push(self.delimiter);
            }
            push_csv_field(&mut line, field.name(), self.delimiter, false);
        }
        line.push(b'\n');
        let r = self.out.write_all(&line).map_err(io_error);
        self.line = line;
        r
    }

    /// Writes the rows of `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.start()?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let options = FormatOptions::default();
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| {
                let formatter = ArrayFormatter::try_new(c.as_ref(), &options)?;
                Ok((formatter, c.logical_nulls(), is_string(c.data_type())))
            })
            .collect::<Result<_>>()?;
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let mut result = Ok(());
        for row in 0..batch.num_rows() {
            for (i, (formatter, nulls, string)) in columns.iter().enumerate() {
                if i > 0 {
                    line.push(self.delimiter);
                }
                if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                    continue;
                }
                self.field.clear();
                formatter.value(row).write(&mut self.field)?;
                push_csv_field(&mut line, &self.field, self.delimiter, *string);
            }
            line.push(b'\n');
            if line.len() >= 64 * 1024 {
                result = self.out.write_all(&line).map_err(io_error);
                line.clear();
                if result.is_err() {
                    break;
                }
            }
        }
        if result.is_ok() && !line.is_empty() {
            result = self.out.write_all(&line).map_err(io_error);
        }
        self.line = line;
        result
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(io_error)
    }

    /// Writes the header if nothing was written yet, flushes and returns
    /// the output.
    pub fn finish(mut self) -> Result<W> {
        self.start()?;
        self.flush()?;
        Ok(self.out)
    }
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

/// Appends one CSV field, quoted when needed (RFC 4180); an empty string
/// is quoted when `quote_empty`.
fn push_csv_field(line: &mut Vec<u8>, value: &str, delimiter: u8, quote_empty: bool) {
    let needs_quotes = (quote_empty && value.is_empty())
        || value
            .bytes()
            .any(|b| b == delimiter || b == b'"' || b == b'\n' || b == b'\r');
    if !needs_quotes {
        line.extend_from_slice(value.as_bytes());
        return;
    }
    line.push(b'"');
    for b in value.bytes() {
        if b == b'"' {
            line.push(b'"');
        }
        line.push(b);
    }
    line.push(b'"');
}

/// A JSON lines writer: one object per row, NULL as `null`.
pub struct JsonWriter<W: Write> {
    inner: arrow::json::Writer<W, LineDelimited>,
}

impl<W: Write> JsonWriter<W> {
    pub fn new(out: W) -> Self {
        JsonWriter {
            inner: arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build(out),
        }
    }

    /// Writes the rows of `batch`, one line each.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() == 0 {
            for _ in 0..batch.num_rows() {
                self.inner.get_mut().write_all(b"{}\n").map_err(io_error)?;
            }
            return Ok(());
        }
        Ok(self.inner.write(batch)?)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.inner.get_mut().flush().map_err(io_error)
    }

    pub fn finish(mut self) -> Result<W> {
        self.inner.finish()?;
        self.flush()?;
        Ok(self.inner.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn csv(batches: &[RecordBatch]) -> String {
        format_batches(OutputFormat::Csv, batches[0].schema(), batches).unwrap()
    }

    fn json(batches: &[RecordBatch]) -> String {
        format_batches(OutputFormat::Json, batches[0].schema(), batches).unwrap()
    }

    fn sample() -> RecordBatch {
        let price = Decimal128Array::from(vec![Some(1230), None, Some(-5)])
            .with_precision_and_scale(15, 2)
            .unwrap();
        // 1998-09-02 is day 10471 since the epoch.
        let date = Date32Array::from(vec![Some(10471), Some(0), None]);
        let ts = TimestampMicrosecondArray::from(vec![Some(904_730_400_000_000), None, Some(0)]);
        batch(vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("price", Arc::new(price)),
            ("d", Arc::new(date)),
            ("ts", Arc::new(ts)),
        ])
    }

    #[test]
    fn csv_decimal_date_timestamp_null() {
        assert_eq!(
            csv(&[sample()]),
            "id,price,d,ts\n\
             1,12.30,1998-09-02,1998-09-02T10:00:00\n\
             2,,1970-01-01,\n\
             3,-0.05,,1970-01-01T00:00:00\n"
        );
    }

    #[test]
    fn csv_quoting() {
        let s = StringArray::from(vec![
            Some("plain"),
            Some("a,b"),
            Some("say \"hi\""),
            Some("two\nlines"),
            Some("cr\rhere"),
            Some(""),
            None,
        ]);
        let b = batch(vec![("s,t", Arc::new(s) as ArrayRef)]);
        assert_eq!(
            csv(&[b]),
            "\"s,t\"\nplain\n\"a,b\"\n\"say \"\"hi\"\"\"\n\"two\nlines\"\n\"cr\rhere\"\n\"\"\n\n"
        );
    }

    #[test]
    fn csv_delimiter_and_several_batches() {
        let b = batch(vec![
            ("a", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            ("b", Arc::new(StringArray::from(vec!["x;y", "z"]))),
        ]);
        let mut w = CsvWriter::new(Vec::new(), b.schema()).with_delimiter(b';');
        w.write(&b).unwrap();
        w.write(&b.slice(1, 1)).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(out, "a;b\n1;\"x;y\"\n2;z\n2;z\n");
    }

    #[test]
    fn csv_header_for_empty_result() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let out = format_batches(OutputFormat::Csv, Arc::clone(&schema), &[]).unwrap();
        assert_eq!(out, "a,b\n");
        let empty = RecordBatch::new_empty(schema);
        assert_eq!(csv(&[empty]), "a,b\n");
    }

    #[test]
    fn json_lines() {
        let out = json(&[sample()]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            vec![
                r#"{"id":1,"price":12.30,"d":"1998-09-02","ts":"1998-09-02T10:00:00"}"#,
                r#"{"id":2,"price":null,"d":"1970-01-01","ts":null}"#,
                r#"{"id":3,"price":-0.05,"d":null,"ts":"1970-01-01T00:00:00"}"#,
            ]
        );
    }

    #[test]
    fn json_strings_and_floats() {
        let b = batch(vec![
            (
                "s",
                Arc::new(StringArray::from(vec![Some("a\"b\n"), None])) as ArrayRef,
            ),
            ("f", Arc::new(Float64Array::from(vec![f64::NAN, 1.5]))),
        ]);
        assert_eq!(
            json(&[b]),
            "{\"s\":\"a\\\"b\\n\",\"f\":null}\n{\"s\":null,\"f\":1.5}\n"
        );
    }

    #[test]
    fn table_with_nulls_and_empty() {
        let b = batch(vec![(
            "s",
            Arc::new(StringArray::from(vec![Some("x"), None])) as ArrayRef,
        )]);
        let out = format_batches(OutputFormat::Table, b.schema(), &[b]).unwrap();
        assert_eq!(
            out,
            "+------+\n| s    |\n+------+\n| x    |\n| NULL |\n+------+\n"
        );
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let out = format_batches(OutputFormat::Table, schema, &[]).unwrap();
        assert_eq!(out, "+---+\n| a |\n+---+\n+---+\n");
    }

    #[test]
    fn parse_format() {
        assert_eq!("CSV".parse::<OutputFormat>().unwrap(), OutputFormat::Csv);
        assert_eq!("json".parse::<OutputFormat>().unwrap(), OutputFormat::Json);
        assert!("xml".parse::<OutputFormat>().is_err());
    }
}
