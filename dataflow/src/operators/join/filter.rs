//! The join filter: a condition over left columns followed by right
//! columns, evaluated on candidate pairs.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;

use super::gather::{rebind, Indices};
use crate::error::{DataflowError, Result};
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;

/// A join condition over left columns followed by right columns, evaluated
/// on candidate pairs. Only the columns it reads are gathered.
pub struct JoinFilter {
    expr: Arc<dyn PhysicalExpr>,
    left_cols: Vec<usize>,
    right_cols: Vec<usize>,
    schema: SchemaRef,
}

impl JoinFilter {
    pub fn try_new(
        filter: &PhysExpr,
        left: &Schema,
        right: &Schema,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let nl = left.fields().len();
        let total = nl + right.fields().len();
        let mut cols = Vec::new();
        filter.columns(&mut cols);
        cols.sort_unstable();
        cols.dedup();
        if let Some(&c) = cols.iter().find(|&&c| c >= total) {
            return Err(DataflowError::Internal(format!(
                "join filter {filter} reads column {c} of {total}"
            )));
        }
        let left_cols: Vec<usize> = cols.iter().copied().filter(|&c| c < nl).collect();
        let right_cols: Vec<usize> = cols.iter().filter(|&&c| c >= nl).map(|c| c - nl).collect();
        let mut fields: Vec<Field> = Vec::with_capacity(cols.len());
        fields.extend(left_cols.iter().map(|&c| left.field(c).clone()));
        fields.extend(right_cols.iter().map(|&c| right.field(c).clone()));
        let schema = Arc::new(Schema::new(fields));
        // Column `c` of left ++ right becomes its position among `cols`.
        let remapped = filter.map_columns(&|c| cols.binary_search(&c).unwrap_or(c));
        let expr = remapped.compile(&schema, registry)?;
        let dt = expr.data_type(&schema)?;
        if dt != DataType::Boolean && dt != DataType::Null {
            return Err(DataflowError::Plan(format!(
                "join filter must be boolean, got {dt}"
            )));
        }
        Ok(JoinFilter {
            expr,
            left_cols,
            right_cols,
            schema,
        })
    }

    /// Keeps the pairs for which the filter is true.
    pub fn retain(
        &self,
        build: &RecordBatch,
        probe: &RecordBatch,
        build_idx: &mut Vec<u32>,
        probe_idx: &mut Vec<u32>,
    ) -> Result<()> {
        let n = build_idx.len();
        if n == 0 {
            return Ok(());
        }
        let mut columns = Vec::with_capacity(self.left_cols.len() + self.right_cols.len());
        if !self.left_cols.is_empty() {
            let idx = Indices::new(build_idx.clone());
            for &c in &self.left_cols {
                columns.push(idx.gather(build.column(c))?);
            }
        }
        if !self.right_cols.is_empty() {
            let idx = Indices::new(probe_idx.clone());
            for &c in &self.right_cols {
                columns.push(idx.gather(probe.column(c))?);
            }
        }
        let batch = rebind(&self.schema, columns, n)?;
        let mask = self.expr.evaluate(&batch)?.into_array(n)?;
        let mask = match mask.as_any().downcast_ref::<BooleanArray>() {
            Some(m) => m,
            None if mask.data_type() == &DataType::Null => {
                build_idx.clear();
                probe_idx.clear();
                return Ok(());
            }
            None => {
                return Err(DataflowError::Internal(format!(
                    "join filter evaluated to {}",
                    mask.data_type()
                )))
            }
        };
        if mask.len() != n {
            return Err(DataflowError::Internal(format!(
                "join filter returned {} values for {n} rows",
                mask.len()
            )));
        }
        let mut w = 0;
        for k in 0..n {
            if mask.is_valid(k) && mask.value(k) {
                build_idx[w] = build_idx[k];
                probe_idx[w] = probe_idx[k];
                w += 1;
            }
        }
        build_idx.truncate(w);
        probe_idx.truncate(w);
        Ok(())
    }
}
