//! One window partition too large to buffer: evaluated in chunks, through
//! a spill file when some expression needs the whole partition first.
//!
//! ```text
//!  rows ──► streamed expressions only? ──yes──► StreamingWindow ──► output
//!                    │ no
//!                    ▼
//!           SpillRun + whole-partition accumulators
//!                    │ partition ends
//!                    ▼
//!           read back ──► StreamingWindow + the whole-partition values ──► output
//! ```
//!
//! Each expression of the node is streamed ([`streams`]), a
//! whole-partition aggregate (an aggregate whose frame is the whole
//! partition, e.g. `sum(x) OVER (PARTITION BY k)`: one value for every
//! row, known once every row was seen), or a function of the partition's
//! size (`ntile`, `percent_rank`, `cume_dist`, `sized.rs`: a streamed
//! helper gives each row's position, the size is counted while spilling).
//! When a node has any other expression (a frame reaching UNBOUNDED
//! FOLLOWING that does not start at UNBOUNDED PRECEDING, IGNORE NULLS
//! outside a whole-partition aggregate), [`ChunkedPlan::try_new`] gives
//! `None` and a window partition that does not fit fails with resources
//! exhausted.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::compute::filter;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::ScalarValue;
use datafusion_expr::Accumulator;
use datafusion_physical_expr::window::{PlainAggregateWindowExpr, WindowExpr as DfWindowExpr};
use datafusion_physical_expr::PhysicalExpr;

use super::sized::SizedFunc;
use super::streaming::{streams, with_columns, StreamingWindow};
use crate::error::{DataflowError, Result};
use crate::execution::{SpillReader, SpillWriter};
use crate::expr::positional_df_schema;
use crate::functions::FunctionRegistry;
use crate::plan::window::{FrameBound, FrameUnits, WindowExpr, WindowFunc};

/// How one expression is evaluated over a large window partition.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The `i`th streamed expression.
    Streamed(usize),
    /// The `i`th whole-partition aggregate.
    Whole(usize),
    /// A function of the position (the `position`th streamed expression,
    /// if any) and the size of the partition.
    Sized {
        func: SizedFunc,
        position: Option<usize>,
    },
}

/// A whole-partition aggregate: its window expression (arguments) and
/// FILTER.
struct WholeAggregate {
    expr: Arc<dyn DfWindowExpr>,
    filter: Option<Arc<dyn PhysicalExpr>>,
}

impl WholeAggregate {
    fn accumulator(&self) -> Result<Box<dyn Accumulator>> {
        match self
            .expr
            .as_any()
            .downcast_ref::<PlainAggregateWindowExpr>()
        {
            Some(e) => Ok(e.get_aggregate_expr().create_accumulator()?),
            None => Err(DataflowError::Internal(format!(
                "window: {} is not a plain aggregate",
                self.expr.name()
            ))),
        }
    }

    /// Feeds `rows` to `acc` as the in-memory evaluation does (arguments,
    /// then the FILTER mask).
    fn update(&self, acc: &mut dyn Accumulator, rows: &RecordBatch) -> Result<()> {
        let mut values = self.expr.evaluate_args(rows)?;
        if let Some(f) = &self.filter {
            let mask = f.evaluate(rows)?.into_array(rows.num_rows())?;
            if mask.data_type() != &DataType::Boolean {
                return Err(DataflowError::Plan(format!(
                    "window FILTER of {} is {}, not boolean",
                    self.expr.name(),
                    mask.data_type()
                )));
            }
            let mask = mask.as_boolean();
            values = values
                .iter()
                .map(|v| Ok(filter(v.as_ref(), mask)?))
                .collect::<Result<Vec<ArrayRef>>>()?;
        }
        Ok(acc.update_batch(&values)?)
    }
}

/// How a window node evaluates a window partition that does not fit.
pub struct ChunkedPlan {
    streamed: Vec<Arc<dyn DfWindowExpr>>,
    whole: Vec<WholeAggregate>,
    slots: Vec<Slot>,
    input: SchemaRef,
    output: SchemaRef,
}

/// Whether `e`'s frame makes an aggregate one value over its partition
/// (the rule DataFusion's plain aggregate uses for that).
fn is_whole_partition(e: &WindowExpr) -> bool {
    let unbounded = |b: &FrameBound| match b {
        FrameBound::Preceding(v) | FrameBound::Following(v) => v.0.is_null(),
        FrameBound::CurrentRow => e.frame.units == FrameUnits::Range && e.order_by.is_empty(),
    };
    matches!(e.func, WindowFunc::Aggregate(_))
        && unbounded(&e.frame.start)
        && unbounded(&e.frame.end)
}

impl ChunkedPlan {
    /// The plan for `exprs` (compiled into `compiled`) over `input`,
    /// `None` when some expression is neither streamed, nor a
    /// whole-partition aggregate, nor a function of the partition's size.
    pub fn try_new(
        exprs: &[WindowExpr],
        compiled: &[Arc<dyn DfWindowExpr>],
        input: &SchemaRef,
        output: &SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Option<Self>> {
        let mut plan = ChunkedPlan {
            streamed: vec![],
            whole: vec![],
            slots: vec![],
            input: Arc::clone(input),
            output: Arc::clone(output),
        };
        for (e, c) in exprs.iter().zip(compiled) {
            // First: a whole-partition aggregate may look bounded
            // (`RANGE UNBOUNDED PRECEDING AND CURRENT ROW` without ORDER
            // BY) but gives no row before the partition ends.
            if is_whole_partition(e)
                && c.as_any()
                    .downcast_ref::<PlainAggregateWindowExpr>()
                    .is_some()
            {
                let filter = match &e.filter {
                    Some(f) => Some(f.compile_with(&positional_df_schema(input)?, registry)?),
                    None => None,
                };
                plan.slots.push(Slot::Whole(plan.whole.len()));
                plan.whole.push(WholeAggregate {
                    expr: Arc::clone(c),
                    filter,
                });
            } else if streams(e, c) {
                plan.slots.push(Slot::Streamed(plan.streamed.len()));
                plan.streamed.push(Arc::clone(c));
            } else if let Some((func, helper)) = SizedFunc::of(e, c)? {
                let position = match helper {
                    Some(h) => {
                        let compiled = h.compile(input, registry)?;
                        if !streams(&h, &compiled) {
                            return Ok(None);
                        }
                        plan.streamed.push(compiled);
                        Some(plan.streamed.len() - 1)
                    }
                    None => None,
                };
                plan.slots.push(Slot::Sized { func, position });
            } else {
                return Ok(None);
            }
        }
        Ok(Some(plan))
    }

    /// Whether a large window partition goes through a spill file: when
    /// some value needs all of its rows first.
    pub fn spills(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s, Slot::Whole(_) | Slot::Sized { .. }))
    }

    /// Output rows: `rows` with the streamed `values`, the whole-partition
    /// `constants`, and the functions of the partition's `size`, in the
    /// node's column order.
    fn assemble(
        &self,
        rows: &RecordBatch,
        values: Vec<ArrayRef>,
        constants: &[ScalarValue],
        size: usize,
    ) -> Result<RecordBatch> {
        let n = rows.num_rows();
        let columns = self
            .slots
            .iter()
            .map(|s| match s {
                Slot::Streamed(i) => values.get(*i).cloned().ok_or_else(|| {
                    DataflowError::Internal("window: streamed value missing".into())
                }),
                Slot::Whole(i) => match constants.get(*i) {
                    Some(c) => Ok(c.to_array_of_size(n)?),
                    None => Err(DataflowError::Internal(
                        "window: aggregate value missing".into(),
                    )),
                },
                Slot::Sized { func, position } => {
                    func.evaluate(position.and_then(|p| values.get(p)), n, size)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        with_columns(&self.output, rows, columns)
    }
}

/// A window partition being fed in chunks.
pub struct LargePartition {
    plan: Arc<ChunkedPlan>,
    /// The partition key (arrays of one row).
    pub key: Vec<ArrayRef>,
    streaming: StreamingWindow,
    /// When the plan spills: the whole-partition aggregates' accumulators,
    /// the rows so far, and the run the rows go to until the partition
    /// ends.
    accumulators: Vec<Box<dyn Accumulator>>,
    rows: usize,
    spill: Option<SpillWriter>,
}

/// A large window partition whose rows all arrived.
pub enum Finished {
    /// Streamed: its last output rows.
    Done(Option<RecordBatch>),
    /// Spilled: read back in [`Drain`].
    Spilled(Box<Drain>),
}

impl LargePartition {
    /// A partition with `key`; `spill` is a new run when the plan
    /// [`ChunkedPlan::spills`].
    pub fn try_new(
        plan: Arc<ChunkedPlan>,
        key: Vec<ArrayRef>,
        spill: Option<SpillWriter>,
    ) -> Result<Self> {
        let accumulators = plan
            .whole
            .iter()
            .map(WholeAggregate::accumulator)
            .collect::<Result<Vec<_>>>()?;
        Ok(LargePartition {
            streaming: StreamingWindow::new(plan.streamed.clone(), Arc::clone(&plan.input)),
            plan,
            key,
            accumulators,
            rows: 0,
            spill,
        })
    }

    /// Bytes held (the accumulators are not counted: one value each for
    /// most aggregates).
    pub fn size(&self) -> usize {
        self.streaming.size()
    }

    /// Takes the next rows of the partition; returns the output rows that
    /// are complete.
    pub fn push(&mut self, rows: &RecordBatch) -> Result<Option<RecordBatch>> {
        if rows.num_rows() == 0 {
            return Ok(None);
        }
        match &mut self.spill {
            Some(run) => {
                run.write(rows)?;
                self.rows += rows.num_rows();
                for (w, acc) in self.plan.whole.iter().zip(&mut self.accumulators) {
                    w.update(acc.as_mut(), rows)?;
                }
                Ok(None)
            }
            None => match self.streaming.push(rows)? {
                Some((rows, values)) => Ok(Some(self.plan.assemble(&rows, values, &[], 0)?)),
                None => Ok(None),
            },
        }
    }

    /// Ends the partition.
    pub fn finish(mut self) -> Result<Finished> {
        match self.spill.take() {
            Some(run) => {
                let constants = self
                    .accumulators
                    .iter_mut()
                    .map(|a| Ok(a.evaluate()?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Finished::Spilled(Box::new(Drain {
                    reader: Some(run.finish()?.read()?),
                    streaming: self.streaming,
                    constants,
                    size: self.rows,
                    plan: self.plan,
                })))
            }
            None => match self.streaming.finish()? {
                Some((rows, values)) => Ok(Finished::Done(Some(self.plan.assemble(
                    &rows,
                    values,
                    &[],
                    0,
                )?))),
                None => Ok(Finished::Done(None)),
            },
        }
    }
}

/// A spilled large window partition, read back one batch at a time.
pub struct Drain {
    /// `None` once the run is read.
    reader: Option<SpillReader>,
    streaming: StreamingWindow,
    constants: Vec<ScalarValue>,
    /// Rows of the partition.
    size: usize,
    plan: Arc<ChunkedPlan>,
}

impl Drain {
    /// Bytes held.
    pub fn size(&self) -> usize {
        self.streaming.size()
    }

    /// Reads the next spilled batch; returns the output rows it completes
    /// (`Some(None)`: none yet), `None` when the partition is done.
    pub fn next(&mut self) -> Result<Option<Option<RecordBatch>>> {
        let Some(reader) = &mut self.reader else {
            return Ok(None);
        };
        let computed = match reader.next() {
            Some(rows) => self.streaming.push(&rows?)?,
            None => {
                self.reader = None;
                self.streaming.finish()?
            }
        };
        Ok(Some(match computed {
            Some((rows, values)) => {
                Some(
                    self.plan
                        .assemble(&rows, values, &self.constants, self.size)?,
                )
            }
            None => None,
        }))
    }
}
