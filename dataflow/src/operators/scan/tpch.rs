//! Scan of a TPC-H table generated in-process by `tpchgen-arrow`.
//!
//! Partition `p` of `n` generates part `p + 1` of `n`, batch by batch, so a
//! table is never materialized. Nation and region do not split into parts:
//! only partition 0 produces them.

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::plan::TpchTable;
use crate::stream::{boxed, SendableRecordBatchStream};

pub struct TpchScan {
    properties: OperatorProperties,
    table: TpchTable,
    scale_factor: f64,
    partitions: usize,
    projection: Option<Vec<usize>>,
}

/// The full Arrow schema of a TPC-H table as generated.
pub fn tpch_schema(table: TpchTable) -> SchemaRef {
    match table {
        TpchTable::Nation => NationArrow::schema_ref(),
        TpchTable::Region => RegionArrow::schema_ref(),
        TpchTable::Part => PartArrow::schema_ref(),
        TpchTable::Supplier => SupplierArrow::schema_ref(),
        TpchTable::PartSupp => PartSuppArrow::schema_ref(),
        TpchTable::Customer => CustomerArrow::schema_ref(),
        TpchTable::Orders => OrderArrow::schema_ref(),
        TpchTable::LineItem => LineItemArrow::schema_ref(),
    }
}

/// Whether the table can be generated in several parts.
pub fn tpch_splits(table: TpchTable) -> bool {
    !matches!(table, TpchTable::Nation | TpchTable::Region)
}

type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// A generator of part `part` (1-based) of `parts` of `table`.
pub fn tpch_generator(
    table: TpchTable,
    sf: f64,
    part: i32,
    parts: i32,
    batch_size: usize,
) -> BatchIter {
    match table {
        TpchTable::Nation => Box::new(
            NationArrow::new(NationGenerator::new(sf, part, parts)).with_batch_size(batch_size),
        ),
        TpchTable::Region => Box::new(
            RegionArrow::new(RegionGenerator::new(sf, part, parts)).with_batch_size(batch_size),
        ),
        TpchTable::Part => Box::new(
            PartArrow::new(PartGenerator::new(sf, part, parts)).with_batch_size(batch_size),
        ),
        TpchTable::Supplier => Box::new(
            SupplierArrow::new(SupplierGenerator::new(sf, part, parts)).with_batch_size(batch_size),
        ),
        TpchTable::PartSupp => Box::new(
            PartSuppArrow::new(PartSuppGenerator::new(sf, part, parts)).with_batch_size(batch_size),
        ),
        TpchTable::Customer => Box::new(
            CustomerArrow::new(CustomerGenerator::new(sf, part, parts)).with_batch_size(batch_size),
        ),
        TpchTable::Orders => Box::new(
            OrderArrow::new(OrderGenerator::new(sf, part, parts)).with_batch_size(batch_size),
        ),
        TpchTable::LineItem => Box::new(
            LineItemArrow::new(LineItemGenerator::new(sf, part, parts)).with_batch_size(batch_size),
        ),
    }
}

impl TpchScan {
    pub fn try_new(
        table: TpchTable,
        scale_factor: f64,
        partitions: usize,
        projection: Option<Vec<usize>>,
        schema: SchemaRef,
    ) -> Result<Self> {
        if !(scale_factor > 0.0 && scale_factor.is_finite()) {
            return Err(DataflowError::Plan(format!(
                "TPC-H scale factor must be positive, got {scale_factor}"
            )));
        }
        Ok(TpchScan {
            properties: OperatorProperties::new("TpchScan", Arc::clone(&schema), partitions.max(1)),
            table,
            scale_factor,
            partitions: partitions.max(1),
            projection,
        })
    }
}

impl Operator for TpchScan {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if !tpch_splits(self.table) && partition > 0 {
            return Ok(crate::stream::empty(self.schema()));
        }
        let parts = if tpch_splits(self.table) {
            self.partitions
        } else {
            1
        };
        let (table, sf, batch_size) = (self.table, self.scale_factor, ctx.config.batch_size);
        let projection = self.projection.clone();
        let schema = self.schema();
        let out = Arc::clone(&schema);
        let stream = async_stream::try_stream! {
            let mut gen = tpch_generator(table, sf, partition as i32 + 1, parts as i32, batch_size);
            loop {
                // Each step generates one batch: a bounded slice of CPU work.
                let Some(batch) = gen.next() else { break };
                let batch = batch?;
                let batch = match &projection {
                    Some(p) => batch.project(p)?,
                    None => batch,
                };
                yield RecordBatch::try_new_with_options(
                    Arc::clone(&out),
                    batch.columns().to_vec(),
                    &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                )?;
                tokio::task::yield_now().await;
            }
        };
        Ok(boxed(schema, stream))
    }
}
