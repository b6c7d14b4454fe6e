//! Window: evaluates window functions (`rank() OVER (...)`, `sum(x) OVER
//! (...)`) with DataFusion's window function library.
//!
//! Contract of the input (the planner arranges it): every window partition
//! (rows with equal PARTITION BY values) lies entirely in one input
//! partition (hash-partitioned on the PARTITION BY keys, or gathered), and
//! each input partition is sorted by [`required_order`] (the PARTITION BY
//! keys, then the ORDER BY keys). All expressions of one node share their
//! PARTITION BY keys, and their ORDER BY lists are prefixes of one another.
//!
//! The operator streams: it buffers the rows of the current window
//! partition only, and evaluates and emits each window partition as soon as
//! the first row of the next one arrives (or the input ends). Without
//! PARTITION BY the whole input partition is one window partition.
//!
//! Memory: the buffered rows are reserved (spillable), and before a
//! window partition is evaluated, also its copy into one batch and its
//! output. Without a limit, or while that fits, nothing else happens: one
//! evaluation over each whole window partition, no extra copies.
//!
//! Spilling: when the reservation is refused, the first buffered window
//! partition is evaluated in chunks instead (`large.rs`), with the rows
//! of that partition still to come fed to it as they arrive:
//!
//! ```text
//!  input ─► buffer ─► fits? ──yes──► evaluate whole window partitions ─► output
//!                       │ no
//!                       ▼
//!     first window partition in chunks (DataFusion's stateful evaluation)
//!       · streamed expressions only: rows go straight through, dropped
//!         once no frame reaches them (memory: frames and peer groups)
//!       · with whole-partition aggregates (`sum(x) OVER (PARTITION BY
//!         k)`) or functions of the partition's size (`ntile`,
//!         `percent_rank`, `cume_dist`): rows go to a spill run while the
//!         aggregates accumulate and the rows are counted, then the run is
//!         read back through the streamed expressions
//! ```
//!
//! The rows after it are buffered again as usual. Running and sliding
//! frames (ROWS, RANGE, GROUPS) ending at CURRENT ROW or n FOLLOWING,
//! `row_number`, `rank`, `dense_rank`, `lag`, `lead`, `first_value`,
//! `last_value` and `nth_value` over such frames stream; aggregates over
//! the whole partition and the functions of its size spill. A node with
//! anything else (frames from a bounded start to UNBOUNDED FOLLOWING, as
//! `sum(x) OVER (ORDER BY t ROWS BETWEEN CURRENT ROW AND UNBOUNDED
//! FOLLOWING)`; value functions over the whole partition; IGNORE NULLS
//! outside aggregates) keeps a window partition in memory, and one that
//! does not fit fails the query with resources exhausted, naming the
//! Window operator's reservation (`Window (node n, partition p) window
//! partition`); so does a frame or peer group that alone does not fit.
//! Chunked evaluation gives the rows of the in-memory one, in the same
//! order; only floating-point whole-partition aggregates (`sum`, `avg` of
//! floats) may differ in the last digits, being summed chunk by chunk.
//! Its input, a Sort, spills too.
//!
//! Output: the input columns followed by one column per window expression.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion_physical_expr::window::WindowExpr as DfWindowExpr;
use datafusion_physical_expr::PhysicalExpr;
use futures::StreamExt;

use crate::error::{DataflowError, Result};
use crate::execution::{Operator, OperatorProperties, TaskContext};
use crate::functions::FunctionRegistry;
use crate::stream::{boxed, SendableRecordBatchStream};
use large::ChunkedPlan;

mod expr;
mod kernel;
mod large;
mod sized;
#[cfg(test)]
mod spill_tests;
mod streaming;
#[cfg(test)]
mod tests;

/// The plan's window types, kept at their old path for callers outside the
/// crate.
pub use crate::plan::window::{
    required_order, FrameBound, FrameUnits, WindowExpr, WindowFrame, WindowFunc,
};
pub use kernel::WindowKernel;

pub struct Window {
    properties: OperatorProperties,
    input: Arc<dyn Operator>,
    exprs: Arc<Vec<Arc<dyn DfWindowExpr>>>,
    keys: Arc<Vec<Arc<dyn PhysicalExpr>>>,
    /// How a window partition that does not fit is evaluated, if it can.
    chunked: Option<Arc<ChunkedPlan>>,
}

impl Window {
    pub fn try_new(
        input: Arc<dyn Operator>,
        exprs: &[WindowExpr],
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        let input_schema = input.schema();
        if required_order(exprs).is_none() {
            return Err(DataflowError::Internal(
                "the expressions of a window node must share PARTITION BY and ORDER BY".into(),
            ));
        }
        let compiled = exprs
            .iter()
            .map(|e| e.compile(&input_schema, registry))
            .collect::<Result<Vec<_>>>()?;
        let n_in = input_schema.fields().len();
        if schema.fields().len() != n_in + exprs.len() {
            return Err(DataflowError::Internal(format!(
                "window node has {} columns for {n_in} input columns and {} expressions",
                schema.fields().len(),
                exprs.len()
            )));
        }
        for (i, e) in compiled.iter().enumerate() {
            let want = schema.field(n_in + i).data_type();
            let got = e.field()?;
            if got.data_type() != want {
                return Err(DataflowError::Internal(format!(
                    "window column {} is {} but the function returns {}",
                    schema.field(n_in + i).name(),
                    want,
                    got.data_type()
                )));
            }
        }
        let keys = match exprs.first() {
            Some(e) => e
                .partition_by
                .iter()
                .map(|k| k.compile(&input_schema, registry))
                .collect::<Result<Vec<_>>>()?,
            None => vec![],
        };
        let chunked = ChunkedPlan::try_new(exprs, &compiled, &input_schema, &schema, registry)?;
        Ok(Window {
            properties: OperatorProperties::new("Window", schema, input.output_partitions()),
            input,
            exprs: Arc::new(compiled),
            keys: Arc::new(keys),
            chunked: chunked.map(Arc::new),
        })
    }
}

impl Operator for Window {
    fn properties(&self) -> &OperatorProperties {
        &self.properties
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, ctx)?;
        let mut kernel = WindowKernel::new(
            Arc::clone(&self.exprs),
            Arc::clone(&self.keys),
            self.input.schema(),
            self.schema(),
            ctx.config.batch_size,
        )
        .with_chunked(self.chunked.clone());
        // The buffered rows, and while complete window partitions are
        // evaluated, their copy and output; a refusal hands the first
        // buffered window partition to chunked evaluation.
        let memory = ctx.reserve_spillable(Some("window partition"));
        let ctx = Arc::clone(ctx);
        let stream = async_stream::try_stream! {
            let mut ended = false;
            while !ended {
                match input.next().await {
                    Some(batch) => kernel.buffer(batch?)?,
                    None => {
                        kernel.end_input();
                        ended = true;
                    }
                }
                loop {
                    while let Some(outs) = kernel.step()? {
                        // Working off the rows buffered at a refusal only
                        // shrinks what is held; after that, what the
                        // chunked evaluation holds must fit.
                        if let Err(refused) = memory.try_resize(kernel.size()) {
                            if !kernel.has_backlog() {
                                Err(refused)?;
                            }
                        }
                        for out in outs {
                            yield out;
                        }
                    }
                    match memory.try_resize(kernel.size() + kernel.evaluation_size()) {
                        Ok(()) => break,
                        Err(refused) => {
                            if !kernel.start_chunked(|schema| ctx.spill_writer(schema))? {
                                Err(refused)?;
                            }
                        }
                    }
                }
                for out in kernel.evaluate_complete()? {
                    yield out;
                }
            }
            for out in kernel.flush()? {
                yield out;
            }
        };
        Ok(boxed(self.schema(), stream))
    }
}
