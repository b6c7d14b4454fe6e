//! Sort keys: compiled sort expressions and the row converter that encodes
//! them, and sorted runs (a sorted batch with its encoded keys).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::{lexsort_to_indices, take, SortColumn};
use arrow::datatypes::Schema;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_common::ScalarValue;
use datafusion_physical_expr::expressions::Literal;
use datafusion_physical_expr::PhysicalSortExpr;

use crate::error::{DataflowError, Result};
use crate::expr::SortExpr;
use crate::functions::FunctionRegistry;

/// Compiled sort keys and the row converter that encodes them.
///
/// An empty `ORDER BY` list is compiled as one constant key, so that every
/// operator works unchanged (all rows compare equal).
pub struct SortKeys {
    exprs: Vec<PhysicalSortExpr>,
    converter: RowConverter,
}

impl SortKeys {
    pub fn try_new(
        order: &[SortExpr],
        schema: &Schema,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let mut exprs = order
            .iter()
            .map(|o| o.compile(schema, registry))
            .collect::<Result<Vec<_>>>()?;
        if exprs.is_empty() {
            exprs.push(PhysicalSortExpr {
                expr: Arc::new(Literal::new(ScalarValue::Boolean(Some(true)))),
                options: Default::default(),
            });
        }
        Self::from_exprs(exprs, schema)
    }

    /// Builds keys from compiled sort expressions (at least one).
    pub fn from_exprs(exprs: Vec<PhysicalSortExpr>, schema: &Schema) -> Result<Self> {
        if exprs.is_empty() {
            return Err(DataflowError::Internal("sort without keys".into()));
        }
        let types = exprs
            .iter()
            .map(|e| Ok(e.expr.data_type(schema)?))
            .collect::<Result<Vec<_>>>()?;
        let fields: Vec<SortField> = types
            .iter()
            .zip(&exprs)
            .map(|(t, e)| SortField::new_with_options(t.clone(), e.options))
            .collect();
        if !RowConverter::supports_fields(&fields) {
            let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            return Err(DataflowError::NotSupported(format!(
                "sorting by {}",
                types.join(", ")
            )));
        }
        let converter = RowConverter::new(fields)?;
        Ok(SortKeys { exprs, converter })
    }

    /// Evaluates the key columns of `batch`.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.exprs
            .iter()
            .map(|e| Ok(e.expr.evaluate(batch)?.into_array(batch.num_rows())?))
            .collect()
    }

    /// Encodes key columns (as returned by [`Self::evaluate`]) as rows.
    pub fn convert(&self, columns: &[ArrayRef]) -> Result<Rows> {
        Ok(self.converter.convert_columns(columns)?)
    }

    /// Encodes the keys of `batch` as rows.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Rows> {
        self.convert(&self.evaluate(batch)?)
    }

    /// The indices of the first `limit` rows of `batch` in sort order
    /// (all rows without a limit).
    pub fn sort_indices(&self, batch: &RecordBatch, limit: Option<usize>) -> Result<UInt32Array> {
        let columns = self.evaluate(batch)?;
        let sort_columns: Vec<SortColumn> = columns
            .into_iter()
            .zip(&self.exprs)
            .map(|(values, e)| SortColumn {
                values,
                options: Some(e.options),
            })
            .collect();
        Ok(lexsort_to_indices(&sort_columns, limit)?)
    }

    /// Sorts `batch`, keeping only its first `limit` rows if given.
    pub fn sort_batch(&self, batch: &RecordBatch, limit: Option<usize>) -> Result<RecordBatch> {
        let indices = self.sort_indices(batch, limit)?;
        take_batch(batch, &indices)
    }

    /// Sorts `batch` into a run with row-encoded keys.
    pub fn sorted_run(&self, batch: &RecordBatch) -> Result<SortedRun> {
        let columns = self.evaluate(batch)?;
        if columns.len() == 1 {
            // One key: arrow's typed sort is fastest; encode the sorted keys.
            let options = Some(self.exprs[0].options);
            let indices = lexsort_to_indices(
                &[SortColumn {
                    values: Arc::clone(&columns[0]),
                    options,
                }],
                None,
            )?;
            let key = take(columns[0].as_ref(), &indices, None)?;
            let rows = self.convert(&[key])?;
            let batch = take_batch(batch, &indices)?;
            return Ok(SortedRun { batch, rows });
        }
        // Several keys: compare the encoded rows (memcmp).
        let unsorted = self.convert(&columns)?;
        let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
        order.sort_unstable_by(|&a, &b| unsorted.row(a as usize).cmp(&unsorted.row(b as usize)));
        let mut rows = self
            .converter
            .empty_rows(order.len(), unsorted.size().min(1 << 30));
        for &i in &order {
            rows.push(unsorted.row(i as usize));
        }
        let batch = take_batch(batch, &UInt32Array::from(order))?;
        Ok(SortedRun { batch, rows })
    }

    /// Pairs an already sorted batch with its encoded keys.
    pub fn run(&self, batch: RecordBatch) -> Result<SortedRun> {
        let rows = self.encode(&batch)?;
        Ok(SortedRun { batch, rows })
    }
}

/// `take` over all columns, keeping the row count for batches without
/// columns.
pub fn take_batch(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(indices.len()));
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &options,
    )?)
}

/// A sorted batch and its row-encoded sort keys (one row per batch row).
pub struct SortedRun {
    pub batch: RecordBatch,
    pub rows: Rows,
}

impl SortedRun {
    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Bytes held: the rows and their encoded keys.
    pub fn size(&self) -> usize {
        self.batch.get_array_memory_size() + self.rows.size()
    }
}
