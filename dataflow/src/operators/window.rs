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
//! Output: the input columns followed by one column per window expression.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::{concat, concat_batches, partition, BatchCoalescer};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use datafusion_common::{Result as DFResult, ScalarValue};
use datafusion_expr::function::{ExpressionArgs, PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::{
    LimitEffect, PartitionEvaluator, WindowFrame as DfWindowFrame,
    WindowFrameBound as DfWindowFrameBound, WindowFrameUnits as DfWindowFrameUnits, WindowUDF,
};
use datafusion_physical_expr::aggregate::AggregateExprBuilder;
use datafusion_physical_expr::window::{
    PlainAggregateWindowExpr, SlidingAggregateWindowExpr, StandardWindowExpr,
    StandardWindowFunctionExpr, WindowExpr as DfWindowExpr,
};
use datafusion_physical_expr::PhysicalExpr;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{check_partition, Operator};
use crate::error::{DataflowError, Result};
use crate::expr::{evaluate_all, positional_df_schema, PhysExpr, Scalar, SortExpr};
use crate::functions::FunctionRegistry;
use crate::runner::TaskContext;
use crate::stream::{boxed, SendableRecordBatchStream};

// ---------------------------------------------------------------------------
// Serializable description
// ---------------------------------------------------------------------------

/// The function a window expression calls, by name in the
/// [`FunctionRegistry`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WindowFunc {
    /// A window function (`row_number`, `rank`, `lag`, `first_value`, ...).
    Window(String),
    /// An aggregate function over the window frame (`sum`, `count`, ...).
    Aggregate(String),
}

impl WindowFunc {
    pub fn name(&self) -> &str {
        match self {
            WindowFunc::Window(n) | WindowFunc::Aggregate(n) => n,
        }
    }
}

/// `ROWS`, `RANGE` or `GROUPS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameUnits {
    Rows,
    Range,
    Groups,
}

/// A frame bound; a NULL offset means UNBOUNDED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FrameBound {
    Preceding(Scalar),
    CurrentRow,
    Following(Scalar),
}

/// A mirror of DataFusion's `WindowFrame`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowFrame {
    pub units: FrameUnits,
    pub start: FrameBound,
    pub end: FrameBound,
}

impl WindowFrame {
    pub fn from_df(f: &DfWindowFrame) -> Self {
        let bound = |b: &DfWindowFrameBound| match b {
            DfWindowFrameBound::Preceding(v) => FrameBound::Preceding(Scalar(v.clone())),
            DfWindowFrameBound::CurrentRow => FrameBound::CurrentRow,
            DfWindowFrameBound::Following(v) => FrameBound::Following(Scalar(v.clone())),
        };
        WindowFrame {
            units: match f.units {
                DfWindowFrameUnits::Rows => FrameUnits::Rows,
                DfWindowFrameUnits::Range => FrameUnits::Range,
                DfWindowFrameUnits::Groups => FrameUnits::Groups,
            },
            start: bound(&f.start_bound),
            end: bound(&f.end_bound),
        }
    }

    pub fn to_df(&self) -> DfWindowFrame {
        let bound = |b: &FrameBound| match b {
            FrameBound::Preceding(v) => DfWindowFrameBound::Preceding(v.0.clone()),
            FrameBound::CurrentRow => DfWindowFrameBound::CurrentRow,
            FrameBound::Following(v) => DfWindowFrameBound::Following(v.0.clone()),
        };
        let units = match self.units {
            FrameUnits::Rows => DfWindowFrameUnits::Rows,
            FrameUnits::Range => DfWindowFrameUnits::Range,
            FrameUnits::Groups => DfWindowFrameUnits::Groups,
        };
        DfWindowFrame::new_bounds(units, bound(&self.start), bound(&self.end))
    }

    /// `ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING`.
    pub fn whole_partition() -> Self {
        WindowFrame {
            units: FrameUnits::Rows,
            start: FrameBound::Preceding(Scalar(ScalarValue::UInt64(None))),
            end: FrameBound::Following(Scalar(ScalarValue::UInt64(None))),
        }
    }

    /// Whether the start bound comes after the end bound (`3 PRECEDING AND
    /// 5 PRECEDING`, `CURRENT ROW AND 1 PRECEDING`, ...).
    fn is_inverted(&self) -> bool {
        let unbounded = |v: &Scalar| v.0.is_null();
        match (&self.start, &self.end) {
            (FrameBound::Following(_), FrameBound::Preceding(_))
            | (FrameBound::Following(_), FrameBound::CurrentRow)
            | (FrameBound::CurrentRow, FrameBound::Preceding(_)) => true,
            (FrameBound::Preceding(l), FrameBound::Preceding(r)) => {
                unbounded(r) || (!unbounded(l) && l.0 < r.0)
            }
            (FrameBound::Following(l), FrameBound::Following(r)) => {
                unbounded(l) || (!unbounded(r) && l.0 > r.0)
            }
            _ => false,
        }
    }
}

impl fmt::Display for WindowFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_df())
    }
}

/// One window expression: `func(args) [FILTER (WHERE filter)] OVER
/// (PARTITION BY .. ORDER BY .. frame)`, output column `name`. Expressions
/// are over the window node's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowExpr {
    pub func: WindowFunc,
    pub args: Vec<PhysExpr>,
    pub partition_by: Vec<PhysExpr>,
    pub order_by: Vec<SortExpr>,
    pub frame: WindowFrame,
    /// `IGNORE NULLS`.
    pub ignore_nulls: bool,
    /// `DISTINCT` (aggregates only).
    pub distinct: bool,
    /// `FILTER (WHERE ...)` (aggregates only).
    pub filter: Option<PhysExpr>,
    /// The output column name.
    pub name: String,
}

impl WindowExpr {
    /// Builds DataFusion's window expression over batches of `input`.
    pub fn compile(
        &self,
        input: &Schema,
        registry: &FunctionRegistry,
    ) -> Result<Arc<dyn DfWindowExpr>> {
        let df_schema = positional_df_schema(input)?;
        let compile = |e: &PhysExpr| e.compile_with(&df_schema, registry);
        let args = self.args.iter().map(compile).collect::<Result<Vec<_>>>()?;
        let partition_by = self
            .partition_by
            .iter()
            .map(compile)
            .collect::<Result<Vec<_>>>()?;
        let order_by = self
            .order_by
            .iter()
            .map(|s| s.compile(input, registry))
            .collect::<Result<Vec<_>>>()?;
        if self.frame.is_inverted() {
            return Err(DataflowError::Plan(format!(
                "invalid window frame {}: the start bound is after the end bound",
                self.frame
            )));
        }
        let frame = Arc::new(self.frame.to_df());
        let positional: SchemaRef = Arc::new(df_schema.as_arrow().clone());
        Ok(match &self.func {
            WindowFunc::Aggregate(name) => {
                let fun = registry.aggregate(name)?;
                let mut builder = AggregateExprBuilder::new(fun, args)
                    .schema(Arc::clone(&positional))
                    .alias(self.name.clone())
                    .with_ignore_nulls(self.ignore_nulls);
                if self.distinct {
                    builder = builder.distinct();
                }
                let aggregate = Arc::new(builder.build()?);
                let filter = self.filter.as_ref().map(compile).transpose()?;
                if frame.is_ever_expanding() {
                    Arc::new(PlainAggregateWindowExpr::new(
                        aggregate,
                        &partition_by,
                        &order_by,
                        frame,
                        filter,
                    ))
                } else {
                    Arc::new(SlidingAggregateWindowExpr::new(
                        aggregate,
                        &partition_by,
                        &order_by,
                        frame,
                        filter,
                    ))
                }
            }
            WindowFunc::Window(name) => {
                if self.distinct || self.filter.is_some() {
                    return Err(DataflowError::NotSupported(format!(
                        "DISTINCT or FILTER in window function {name}"
                    )));
                }
                let fun = registry.window(name)?;
                let input_fields = args
                    .iter()
                    .map(|a| a.return_field(&positional))
                    .collect::<DFResult<Vec<_>>>()?;
                let udwf = UdwfExpr {
                    fun,
                    args,
                    input_fields,
                    name: self.name.clone(),
                    ignore_nulls: self.ignore_nulls,
                };
                // Creating an evaluator validates the arguments (literal
                // offsets, ntile's bucket count) before anything runs.
                udwf.create_evaluator()?;
                Arc::new(StandardWindowExpr::new(
                    Arc::new(udwf),
                    &partition_by,
                    &order_by,
                    frame,
                ))
            }
        })
    }

    /// The output field (named `name`) over `input`.
    pub fn field(&self, input: &Schema, registry: &FunctionRegistry) -> Result<Field> {
        let f = self.compile(input, registry)?.field()?;
        Ok(Field::new(
            &self.name,
            f.data_type().clone(),
            f.is_nullable(),
        ))
    }
}

impl fmt::Display for WindowExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        write!(
            f,
            "{}({distinct}{})",
            self.func.name(),
            list(&mut self.args.iter().map(|a| a.to_string()))
        )?;
        if self.ignore_nulls {
            write!(f, " IGNORE NULLS")?;
        }
        if let Some(filter) = &self.filter {
            write!(f, " FILTER (WHERE {filter})")?;
        }
        write!(f, " OVER (")?;
        if !self.partition_by.is_empty() {
            write!(
                f,
                "PARTITION BY {} ",
                list(&mut self.partition_by.iter().map(|p| p.to_string()))
            )?;
        }
        if !self.order_by.is_empty() {
            write!(
                f,
                "ORDER BY {} ",
                list(&mut self.order_by.iter().map(|s| s.to_string()))
            )?;
        }
        write!(f, "{}) AS {}", self.frame, self.name)
    }
}

/// The order the input of a window node must have: the PARTITION BY keys
/// (ascending, NULLs first), then the longest ORDER BY list. `None` when the
/// expressions cannot share one node (different PARTITION BY, or ORDER BY
/// lists that are not prefixes of one another).
pub fn required_order(exprs: &[WindowExpr]) -> Option<Vec<SortExpr>> {
    let Some(first) = exprs.first() else {
        return Some(vec![]);
    };
    let mut longest: &[SortExpr] = &[];
    for e in exprs {
        if e.partition_by != first.partition_by {
            return None;
        }
        let (short, long) = if e.order_by.len() <= longest.len() {
            (&e.order_by[..], longest)
        } else {
            (longest, &e.order_by[..])
        };
        if long[..short.len()] != *short {
            return None;
        }
        longest = long;
    }
    let mut order: Vec<SortExpr> = first
        .partition_by
        .iter()
        .map(|p| SortExpr {
            expr: p.clone(),
            asc: true,
            nulls_first: true,
        })
        .collect();
    order.extend(longest.iter().cloned());
    Some(order)
}

/// A window UDF with its arguments, as DataFusion's standard window
/// expression wants it.
#[derive(Debug)]
struct UdwfExpr {
    fun: Arc<WindowUDF>,
    args: Vec<Arc<dyn PhysicalExpr>>,
    input_fields: Vec<FieldRef>,
    name: String,
    ignore_nulls: bool,
}

impl StandardWindowFunctionExpr for UdwfExpr {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn field(&self) -> DFResult<FieldRef> {
        self.fun
            .field(WindowUDFFieldArgs::new(&self.input_fields, &self.name))
    }

    fn expressions(&self) -> Vec<Arc<dyn PhysicalExpr>> {
        self.fun
            .expressions(ExpressionArgs::new(&self.args, &self.input_fields))
    }

    fn create_evaluator(&self) -> DFResult<Box<dyn PartitionEvaluator>> {
        self.fun
            .partition_evaluator_factory(PartitionEvaluatorArgs::new(
                &self.args,
                &self.input_fields,
                false,
                self.ignore_nulls,
            ))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn limit_effect(&self) -> LimitEffect {
        self.fun.inner().limit_effect(&self.args)
    }
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

/// The operator's state over one input partition: the rows of the current
/// (incomplete) window partition, and the output being coalesced.
pub struct WindowKernel {
    exprs: Arc<Vec<Arc<dyn DfWindowExpr>>>,
    keys: Arc<Vec<Arc<dyn PhysicalExpr>>>,
    input_schema: SchemaRef,
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    /// The partition key values of the last buffered row (arrays of one).
    last_key: Option<Vec<ArrayRef>>,
    coalescer: BatchCoalescer,
}

impl WindowKernel {
    pub fn new(
        exprs: Arc<Vec<Arc<dyn DfWindowExpr>>>,
        keys: Arc<Vec<Arc<dyn PhysicalExpr>>>,
        input_schema: SchemaRef,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Self {
        WindowKernel {
            exprs,
            keys,
            input_schema,
            coalescer: BatchCoalescer::new(Arc::clone(&schema), batch_size.max(1)),
            schema,
            pending: Vec::new(),
            last_key: None,
        }
    }

    /// Takes the next input batch (in the required order); returns the
    /// output batches completed so far.
    pub fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(vec![]);
        }
        if self.keys.is_empty() {
            self.pending.push(batch);
            return Ok(vec![]);
        }
        let keys = evaluate_all(&self.keys, &batch)?;
        let last_start = partition(&keys)?
            .ranges()
            .last()
            .map(|r| r.start)
            .unwrap_or(0);
        let continues = match &self.last_key {
            Some(prev) => same_key(prev, &keys, 0)?,
            None => true,
        };
        self.last_key = Some(keys.iter().map(|k| k.slice(n - 1, 1)).collect());
        if last_start == 0 && continues {
            self.pending.push(batch);
            return Ok(vec![]);
        }
        // Everything before the batch's last window partition is complete.
        let mut complete = std::mem::take(&mut self.pending);
        if last_start > 0 {
            complete.push(batch.slice(0, last_start));
        }
        self.pending.push(batch.slice(last_start, n - last_start));
        self.evaluate(complete)
    }

    /// Ends the input: evaluates the last window partition and flushes.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        let pending = std::mem::take(&mut self.pending);
        self.last_key = None;
        let mut out = self.evaluate(pending)?;
        self.coalescer.finish_buffered_batch()?;
        while let Some(b) = self.coalescer.next_completed_batch() {
            out.push(b);
        }
        Ok(out)
    }

    /// Evaluates complete window partitions (sorted rows) into output rows.
    fn evaluate(&mut self, mut batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let batch = if batches.len() > 1 {
            concat_batches(&self.input_schema, &batches)?
        } else {
            match batches.pop() {
                Some(b) => b,
                None => return Ok(vec![]),
            }
        };
        let n = batch.num_rows();
        if n == 0 {
            return Ok(vec![]);
        }
        let ranges = if self.keys.is_empty() {
            std::iter::once(0..n).collect()
        } else {
            partition(&evaluate_all(&self.keys, &batch)?)?.ranges()
        };
        let mut results: Vec<Vec<ArrayRef>> =
            vec![Vec::with_capacity(ranges.len()); self.exprs.len()];
        for r in &ranges {
            let part = batch.slice(r.start, r.end - r.start);
            for (e, out) in self.exprs.iter().zip(results.iter_mut()) {
                let values = e.evaluate(&part)?;
                if values.len() != part.num_rows() {
                    return Err(DataflowError::Internal(format!(
                        "window function {} returned {} rows for {}",
                        e.name(),
                        values.len(),
                        part.num_rows()
                    )));
                }
                out.push(values);
            }
        }
        let mut columns = batch.columns().to_vec();
        for arrays in results {
            columns.push(if arrays.len() == 1 {
                Arc::clone(&arrays[0])
            } else {
                let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
                concat(&refs)?
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let out = RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)?;
        self.coalescer.push_batch(out)?;
        let mut done = Vec::new();
        while let Some(b) = self.coalescer.next_completed_batch() {
            done.push(b);
        }
        Ok(done)
    }
}

/// Whether row `i` of `keys` has the partition key `prev` (NULLs equal).
fn same_key(prev: &[ArrayRef], keys: &[ArrayRef], i: usize) -> Result<bool> {
    let pairs = prev
        .iter()
        .zip(keys)
        .map(|(p, k)| Ok(concat(&[p.as_ref(), k.slice(i, 1).as_ref()])?))
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(partition(&pairs)?.len() == 1)
}

pub struct Window {
    input: Arc<dyn Operator>,
    exprs: Arc<Vec<Arc<dyn DfWindowExpr>>>,
    keys: Arc<Vec<Arc<dyn PhysicalExpr>>>,
    schema: SchemaRef,
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
        Ok(Window {
            input,
            exprs: Arc::new(compiled),
            keys: Arc::new(keys),
            schema,
        })
    }
}

impl Operator for Window {
    fn name(&self) -> &'static str {
        "Window"
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn output_partitions(&self) -> usize {
        self.input.output_partitions()
    }

    fn execute(
        &self,
        partition: usize,
        ctx: &Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        check_partition(self, partition)?;
        let mut input = self.input.execute(partition, ctx)?;
        let mut kernel = WindowKernel::new(
            Arc::clone(&self.exprs),
            Arc::clone(&self.keys),
            self.input.schema(),
            self.schema(),
            ctx.config.batch_size,
        );
        let stream = async_stream::try_stream! {
            while let Some(batch) = input.next().await {
                for out in kernel.push(batch?)? {
                    yield out;
                }
            }
            for out in kernel.finish()? {
                yield out;
            }
        };
        Ok(boxed(self.schema(), stream))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{Int32Array, Int64Array};
    use arrow::compute::cast;
    use arrow::datatypes::DataType;

    use super::*;
    use crate::operators::sort::tests::{run_plan, scan};
    use crate::operators::sort::SortKeys;
    use crate::plan::{Partitioning, PhysicalPlan};

    type Tuple = (i32, Option<i32>, Option<i64>);

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("k", DataType::Int32, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    /// `n` rows: k cycles through NULL, 1, 2, 3 (with a skew), v has NULLs
    /// and ties.
    fn data(n: usize) -> Vec<Tuple> {
        (0..n as i32)
            .map(|i| {
                let k = match (i * 7 + i / 3) % 5 {
                    0 => None,
                    1 | 4 => Some(1),
                    2 => Some(2),
                    _ => Some(3),
                };
                let v = if i % 6 == 5 {
                    None
                } else {
                    Some(((i * 13) % 7) as i64)
                };
                (i, k, v)
            })
            .collect()
    }

    fn batch(rows: &[Tuple]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int32Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn col(i: usize) -> PhysExpr {
        PhysExpr::col(i, ["id", "k", "v"][i])
    }

    fn asc(i: usize) -> SortExpr {
        SortExpr {
            expr: col(i),
            asc: true,
            nulls_first: false,
        }
    }

    fn rows_frame(preceding: Option<u64>, following: Option<u64>) -> WindowFrame {
        let bound = |v: Option<u64>| Scalar(ScalarValue::UInt64(v));
        WindowFrame {
            units: FrameUnits::Rows,
            start: match preceding {
                Some(0) => FrameBound::CurrentRow,
                p => FrameBound::Preceding(bound(p)),
            },
            end: match following {
                Some(0) => FrameBound::CurrentRow,
                f => FrameBound::Following(bound(f)),
            },
        }
    }

    fn range_to_current() -> WindowFrame {
        WindowFrame {
            units: FrameUnits::Range,
            start: FrameBound::Preceding(Scalar(ScalarValue::UInt64(None))),
            end: FrameBound::CurrentRow,
        }
    }

    fn wexpr(
        func: WindowFunc,
        args: Vec<PhysExpr>,
        partition_by: Vec<PhysExpr>,
        order_by: Vec<SortExpr>,
        frame: WindowFrame,
        name: &str,
    ) -> WindowExpr {
        WindowExpr {
            func,
            args,
            partition_by,
            order_by,
            frame,
            ignore_nulls: false,
            distinct: false,
            filter: None,
            name: name.into(),
        }
    }

    /// row_number, sum over 1 preceding row, lag(v, 1, -1), count(*) over
    /// the partition: PARTITION BY k ORDER BY id.
    fn by_id_exprs() -> Vec<WindowExpr> {
        let w = |f: &str| WindowFunc::Window(f.into());
        let a = |f: &str| WindowFunc::Aggregate(f.into());
        vec![
            wexpr(
                w("row_number"),
                vec![],
                vec![col(1)],
                vec![asc(0)],
                rows_frame(None, Some(0)),
                "rn",
            ),
            wexpr(
                a("sum"),
                vec![col(2)],
                vec![col(1)],
                vec![asc(0)],
                rows_frame(Some(1), Some(0)),
                "s",
            ),
            wexpr(
                w("lag"),
                vec![
                    col(2),
                    PhysExpr::lit(ScalarValue::Int64(Some(1))),
                    PhysExpr::lit(ScalarValue::Int64(Some(-1))),
                ],
                vec![col(1)],
                vec![asc(0)],
                rows_frame(None, Some(0)),
                "lag",
            ),
            wexpr(
                a("count"),
                vec![PhysExpr::lit(ScalarValue::Int64(Some(1)))],
                vec![col(1)],
                vec![],
                WindowFrame::whole_partition(),
                "cnt",
            ),
        ]
    }

    /// The expected values of [`by_id_exprs`] per id.
    fn by_id_reference(rows: &[Tuple]) -> BTreeMap<i32, Vec<Option<i64>>> {
        let mut groups: BTreeMap<Option<i32>, Vec<Tuple>> = BTreeMap::new();
        for r in rows {
            groups.entry(r.1).or_default().push(*r);
        }
        let mut out = BTreeMap::new();
        for (_, mut g) in groups {
            g.sort_by_key(|r| r.0);
            for (i, r) in g.iter().enumerate() {
                let window = &g[i.saturating_sub(1)..=i];
                let vals: Vec<i64> = window.iter().filter_map(|r| r.2).collect();
                let s = (!vals.is_empty()).then(|| vals.iter().sum());
                let lag = if i == 0 { Some(-1) } else { g[i - 1].2 };
                out.insert(r.0, vec![Some(i as i64 + 1), s, lag, Some(g.len() as i64)]);
            }
        }
        out
    }

    /// Output rows as id -> window values (cast to Int64).
    fn window_values(batches: &[RecordBatch], n_in: usize) -> BTreeMap<i32, Vec<Option<i64>>> {
        let mut out = BTreeMap::new();
        for b in batches {
            let ids = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
            let cols: Vec<Int64Array> = b.columns()[n_in..]
                .iter()
                .map(|c| {
                    let c = cast(c, &DataType::Int64).unwrap();
                    c.as_any().downcast_ref::<Int64Array>().unwrap().clone()
                })
                .collect();
            for i in 0..b.num_rows() {
                let vals = cols
                    .iter()
                    .map(|c| c.is_valid(i).then(|| c.value(i)))
                    .collect();
                assert!(out.insert(ids.value(i), vals).is_none(), "duplicate row");
            }
        }
        out
    }

    fn out_schema(exprs: &[WindowExpr]) -> SchemaRef {
        let input = schema();
        let registry = FunctionRegistry::with_defaults();
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for e in exprs {
            fields.push(e.field(&input, &registry).unwrap());
        }
        Arc::new(Schema::new(fields))
    }

    fn kernel(exprs: &[WindowExpr], batch_size: usize) -> WindowKernel {
        let input = schema();
        let registry = FunctionRegistry::with_defaults();
        let compiled = exprs
            .iter()
            .map(|e| e.compile(&input, &registry).unwrap())
            .collect();
        let keys = exprs[0]
            .partition_by
            .iter()
            .map(|k| k.compile(&input, &registry).unwrap())
            .collect();
        WindowKernel::new(
            Arc::new(compiled),
            Arc::new(keys),
            Arc::clone(&input),
            out_schema(exprs),
            batch_size,
        )
    }

    /// The rows sorted in the required order of `exprs`.
    fn sorted(rows: &[Tuple], exprs: &[WindowExpr]) -> RecordBatch {
        let order = required_order(exprs).unwrap();
        let keys =
            SortKeys::try_new(&order, &schema(), &FunctionRegistry::with_defaults()).unwrap();
        keys.sort_batch(&batch(rows), None).unwrap()
    }

    #[test]
    fn kernel_matches_reference_for_any_batch_split() {
        let rows = data(53);
        let exprs = by_id_exprs();
        let input = sorted(&rows, &exprs);
        let expected = by_id_reference(&rows);
        for chunk in [1, 2, 3, 7, 16, 53] {
            for batch_size in [1, 4, 100] {
                let mut k = kernel(&exprs, batch_size);
                let mut out = Vec::new();
                let mut offset = 0;
                while offset < input.num_rows() {
                    let len = chunk.min(input.num_rows() - offset);
                    out.extend(k.push(input.slice(offset, len)).unwrap());
                    offset += len;
                }
                out.extend(k.finish().unwrap());
                for b in &out {
                    assert!(b.num_rows() <= batch_size, "batch of {}", b.num_rows());
                }
                assert_eq!(
                    window_values(&out, 3),
                    expected,
                    "chunk {chunk}, batch_size {batch_size}"
                );
            }
        }
    }

    #[test]
    fn kernel_emits_each_partition_when_complete() {
        let rows = data(40);
        let exprs = by_id_exprs();
        let input = sorted(&rows, &exprs);
        let mut k = kernel(&exprs, 1);
        // Rows of the first partition do not produce output until the
        // first row of the second partition arrives.
        let first_len = rows.iter().filter(|r| r.1.is_none()).count();
        assert!(first_len > 1);
        let mut emitted = 0;
        for i in 0..first_len {
            emitted += k.push(input.slice(i, 1)).unwrap().len();
        }
        assert_eq!(emitted, 0);
        let out = k.push(input.slice(first_len, 1)).unwrap();
        assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), first_len);
    }

    #[test]
    fn ranks_with_ties_and_range_frames() {
        // PARTITION BY k ORDER BY v: rank, dense_rank, sum with RANGE
        // UNBOUNDED PRECEDING AND CURRENT ROW (peers included).
        let rows = data(37);
        let order = vec![asc(2)];
        let w = |f: &str| WindowFunc::Window(f.into());
        let exprs = vec![
            wexpr(
                w("rank"),
                vec![],
                vec![col(1)],
                order.clone(),
                range_to_current(),
                "r",
            ),
            wexpr(
                w("dense_rank"),
                vec![],
                vec![col(1)],
                order.clone(),
                range_to_current(),
                "dr",
            ),
            wexpr(
                WindowFunc::Aggregate("sum".into()),
                vec![col(2)],
                vec![col(1)],
                order.clone(),
                range_to_current(),
                "s",
            ),
        ];
        let input = sorted(&rows, &exprs);
        let mut k = kernel(&exprs, 5);
        let mut out = Vec::new();
        for i in (0..input.num_rows()).step_by(4) {
            out.extend(k.push(input.slice(i, 4.min(input.num_rows() - i))).unwrap());
        }
        out.extend(k.finish().unwrap());
        let got = window_values(&out, 3);

        let mut expected = BTreeMap::new();
        for r in &rows {
            let peers: Vec<&Tuple> = rows.iter().filter(|o| o.1 == r.1).collect();
            // NULLS LAST: a NULL v is after every value.
            let before = |o: &Tuple| match (o.2, r.2) {
                (Some(a), Some(b)) => a < b,
                (Some(_), None) => true,
                _ => false,
            };
            let rank = peers.iter().filter(|o| before(o)).count() as i64 + 1;
            let mut distinct: Vec<Option<i64>> =
                peers.iter().filter(|o| before(o)).map(|o| o.2).collect();
            distinct.sort();
            distinct.dedup();
            let upto: Vec<i64> = peers
                .iter()
                .filter(|o| before(o) || o.2 == r.2)
                .filter_map(|o| o.2)
                .collect();
            let sum = (!upto.is_empty()).then(|| upto.iter().sum());
            expected.insert(r.0, vec![Some(rank), Some(distinct.len() as i64 + 1), sum]);
        }
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn plan_with_hash_exchange_sort_and_window() {
        let rows = data(101);
        let exprs = by_id_exprs();
        let order = required_order(&exprs).unwrap();
        let batches: Vec<RecordBatch> = rows.chunks(9).map(batch).collect();
        for partitions in [1, 3] {
            let input = PhysicalPlan::Exchange {
                input: Box::new(scan(&schema(), 2)),
                partitioning: Partitioning::Hash {
                    keys: vec![col(1)],
                    partitions,
                },
            };
            let plan = PhysicalPlan::Exchange {
                input: Box::new(PhysicalPlan::Window {
                    input: Box::new(PhysicalPlan::Sort {
                        input: Box::new(input),
                        order: order.clone(),
                        fetch: None,
                    }),
                    exprs: exprs.clone(),
                    schema: out_schema(&exprs),
                }),
                partitioning: Partitioning::Gather,
            };
            let out = run_plan(plan, batches.clone(), 8).await.unwrap();
            assert_eq!(window_values(&out, 3), by_id_reference(&rows));
        }
    }

    #[tokio::test]
    async fn no_partition_by_uses_the_whole_input() {
        let rows = data(30);
        let exprs = vec![wexpr(
            WindowFunc::Window("ntile".into()),
            vec![PhysExpr::lit(ScalarValue::Int64(Some(4)))],
            vec![],
            vec![asc(0)],
            rows_frame(None, Some(0)),
            "tile",
        )];
        let plan = PhysicalPlan::Window {
            input: Box::new(PhysicalPlan::Sort {
                input: Box::new(PhysicalPlan::Exchange {
                    input: Box::new(scan(&schema(), 3)),
                    partitioning: Partitioning::Gather,
                }),
                order: required_order(&exprs).unwrap(),
                fetch: None,
            }),
            exprs: exprs.clone(),
            schema: out_schema(&exprs),
        };
        let out = run_plan(plan, rows.chunks(4).map(batch).collect(), 7)
            .await
            .unwrap();
        let got = window_values(&out, 3);
        // 30 rows in 4 tiles: 8, 8, 7, 7.
        for (id, vals) in got {
            let tile = if id < 8 {
                1
            } else if id < 16 {
                2
            } else if id < 23 {
                3
            } else {
                4
            };
            assert_eq!(vals, vec![Some(tile)], "id {id}");
        }
    }

    #[test]
    fn required_order_needs_shared_keys() {
        let a = by_id_exprs();
        assert_eq!(
            required_order(&a).unwrap(),
            vec![
                SortExpr {
                    expr: col(1),
                    asc: true,
                    nulls_first: true
                },
                asc(0)
            ]
        );
        let mut other_partition = a[0].clone();
        other_partition.partition_by = vec![col(2)];
        assert!(required_order(&[a[0].clone(), other_partition]).is_none());
        let mut other_order = a[0].clone();
        other_order.order_by = vec![asc(2)];
        assert!(required_order(&[a[0].clone(), other_order.clone()]).is_none());
        let mut longer = a[0].clone();
        longer.order_by = vec![asc(0), asc(2)];
        assert_eq!(
            required_order(&[a[3].clone(), a[0].clone(), longer])
                .unwrap()
                .len(),
            3
        );

        // The operator refuses incompatible expressions.
        let input: Arc<dyn Operator> = Arc::new(super::super::values::Empty::new(schema(), false));
        let exprs = vec![a[0].clone(), other_order];
        let err = Window::try_new(
            input,
            &exprs,
            out_schema(&exprs),
            &FunctionRegistry::with_defaults(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("PARTITION BY"), "{err}");
    }

    #[test]
    fn bad_expressions_fail_at_compile_time() {
        let registry = FunctionRegistry::with_defaults();
        let mut e = by_id_exprs()[1].clone();
        e.frame = rows_frame(Some(1), Some(0));
        e.frame.start = FrameBound::Following(Scalar(ScalarValue::UInt64(Some(2))));
        let err = e.compile(&schema(), &registry).err().unwrap();
        assert!(err.to_string().contains("invalid window frame"), "{err}");

        let mut e = by_id_exprs()[0].clone();
        e.func = WindowFunc::Window("no_such_window".into());
        let err = e.compile(&schema(), &registry).err().unwrap();
        assert!(matches!(err, DataflowError::NotSupported(_)), "{err}");
    }

    #[test]
    fn window_expr_roundtrips_through_cbor() {
        let mut exprs = by_id_exprs();
        exprs[1].filter = Some(PhysExpr::IsNotNull(Box::new(col(2))));
        exprs[1].frame = WindowFrame {
            units: FrameUnits::Range,
            start: FrameBound::Preceding(Scalar(ScalarValue::Int64(Some(3)))),
            end: FrameBound::Following(Scalar(ScalarValue::Int64(None))),
        };
        for e in exprs {
            let mut buf = Vec::new();
            ciborium::into_writer(&e, &mut buf).unwrap();
            let back: WindowExpr = ciborium::from_reader(buf.as_slice()).unwrap();
            assert_eq!(back, e);
            assert_eq!(back.frame.to_df(), e.frame.to_df());
        }
        let plan = PhysicalPlan::Window {
            input: Box::new(scan(&schema(), 1)),
            exprs: by_id_exprs(),
            schema: out_schema(&by_id_exprs()),
        };
        assert!(plan
            .describe()
            .starts_with("Window: [row_number() OVER (PARTITION BY k@1"));
    }
}
