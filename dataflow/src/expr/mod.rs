//! FFQ's serializable scalar and aggregate expressions.
//!
//! A [`PhysExpr`] is a small mirror of the subset of DataFusion's logical
//! `Expr` that physical plans need, with columns resolved to input positions.
//! It is what crosses process boundaries (serde). To evaluate one, an
//! operator compiles it into a DataFusion `PhysicalExpr`: the mirror is
//! turned back into a logical `Expr` over a schema whose fields are named by
//! position (`#0`, `#1`, ...), so that duplicate column names in join outputs
//! never clash, and DataFusion's own planner builds the physical expression.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion_common::{Column, DFSchema, ScalarValue};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::expr::{self as lexpr};
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{Expr, Operator};
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr, PhysicalSortExpr};
use serde::{Deserialize, Serialize};

use crate::error::{DataflowError, Result};
use crate::functions::FunctionRegistry;
use crate::tree::Tree;

mod aggregate;
mod decimal_arith;
mod scalar;
#[cfg(test)]
mod tests;

pub use aggregate::AggExpr;
pub(crate) use decimal_arith::specialize as specialize_decimal_arith;
pub use scalar::Scalar;

/// A scalar expression over the columns of one input, by position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PhysExpr {
    /// The input column at `index`; `name` is only for display.
    Column {
        index: usize,
        name: String,
    },
    Literal(Scalar),
    Binary {
        left: Box<PhysExpr>,
        op: BinaryOp,
        right: Box<PhysExpr>,
    },
    Not(Box<PhysExpr>),
    Negative(Box<PhysExpr>),
    IsNull(Box<PhysExpr>),
    IsNotNull(Box<PhysExpr>),
    IsTrue(Box<PhysExpr>),
    IsFalse(Box<PhysExpr>),
    IsNotTrue(Box<PhysExpr>),
    IsNotFalse(Box<PhysExpr>),
    IsUnknown(Box<PhysExpr>),
    IsNotUnknown(Box<PhysExpr>),
    Between {
        expr: Box<PhysExpr>,
        negated: bool,
        low: Box<PhysExpr>,
        high: Box<PhysExpr>,
    },
    Like {
        negated: bool,
        expr: Box<PhysExpr>,
        pattern: Box<PhysExpr>,
        escape_char: Option<char>,
        case_insensitive: bool,
    },
    Case {
        expr: Option<Box<PhysExpr>>,
        when_then: Vec<(PhysExpr, PhysExpr)>,
        else_expr: Option<Box<PhysExpr>>,
    },
    Cast {
        expr: Box<PhysExpr>,
        data_type: DataType,
    },
    TryCast {
        expr: Box<PhysExpr>,
        data_type: DataType,
    },
    InList {
        expr: Box<PhysExpr>,
        list: Vec<PhysExpr>,
        negated: bool,
    },
    /// A scalar function from the [`FunctionRegistry`], by name.
    ScalarFunction {
        name: String,
        args: Vec<PhysExpr>,
    },
}

macro_rules! binary_ops {
    ($($name:ident),* $(,)?) => {
        /// Binary operators, mirroring DataFusion's [`Operator`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum BinaryOp { $($name),* }

        impl BinaryOp {
            pub fn from_df(op: Operator) -> Result<Self> {
                match op {
                    $(Operator::$name => Ok(BinaryOp::$name),)*
                    #[allow(unreachable_patterns)]
                    other => Err(DataflowError::NotSupported(format!("operator {other}"))),
                }
            }
            pub fn to_df(self) -> Operator {
                match self { $(BinaryOp::$name => Operator::$name),* }
            }
        }
    };
}

binary_ops!(
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Plus,
    Minus,
    Multiply,
    Divide,
    Modulo,
    And,
    Or,
    IsDistinctFrom,
    IsNotDistinctFrom,
    RegexMatch,
    RegexIMatch,
    RegexNotMatch,
    RegexNotIMatch,
    LikeMatch,
    ILikeMatch,
    NotLikeMatch,
    NotILikeMatch,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    BitwiseShiftRight,
    BitwiseShiftLeft,
    StringConcat,
);

/// The name of the `i`-th column in the positional schema used to compile
/// expressions.
fn positional_name(i: usize) -> String {
    format!("#{i}")
}

/// A DataFusion schema with the same types as `schema` and fields named by
/// position, so column references resolve by index only.
pub fn positional_df_schema(schema: &Schema) -> Result<DFSchema> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| f.as_ref().clone().with_name(positional_name(i)))
        .collect();
    Ok(DFSchema::try_from(Schema::new(fields))?)
}

impl PhysExpr {
    pub fn col(index: usize, name: impl Into<String>) -> Self {
        PhysExpr::Column {
            index,
            name: name.into(),
        }
    }

    pub fn lit(v: ScalarValue) -> Self {
        PhysExpr::Literal(Scalar(v))
    }

    /// Turns the mirror back into a DataFusion logical expression over the
    /// positional schema.
    pub fn to_logical(&self, registry: &FunctionRegistry) -> Result<Expr> {
        let b = |e: &PhysExpr| -> Result<Box<Expr>> { Ok(Box::new(e.to_logical(registry)?)) };
        Ok(match self {
            PhysExpr::Column { index, .. } => {
                Expr::Column(Column::new_unqualified(positional_name(*index)))
            }
            PhysExpr::Literal(v) => Expr::Literal(v.0.clone(), None),
            PhysExpr::Binary { left, op, right } => {
                Expr::BinaryExpr(lexpr::BinaryExpr::new(b(left)?, op.to_df(), b(right)?))
            }
            PhysExpr::Not(e) => Expr::Not(b(e)?),
            PhysExpr::Negative(e) => Expr::Negative(b(e)?),
            PhysExpr::IsNull(e) => Expr::IsNull(b(e)?),
            PhysExpr::IsNotNull(e) => Expr::IsNotNull(b(e)?),
            PhysExpr::IsTrue(e) => Expr::IsTrue(b(e)?),
            PhysExpr::IsFalse(e) => Expr::IsFalse(b(e)?),
            PhysExpr::IsNotTrue(e) => Expr::IsNotTrue(b(e)?),
            PhysExpr::IsNotFalse(e) => Expr::IsNotFalse(b(e)?),
            PhysExpr::IsUnknown(e) => Expr::IsUnknown(b(e)?),
            PhysExpr::IsNotUnknown(e) => Expr::IsNotUnknown(b(e)?),
            PhysExpr::Between {
                expr,
                negated,
                low,
                high,
            } => Expr::Between(lexpr::Between::new(b(expr)?, *negated, b(low)?, b(high)?)),
            PhysExpr::Like {
                negated,
                expr,
                pattern,
                escape_char,
                case_insensitive,
            } => Expr::Like(lexpr::Like::new(
                *negated,
                b(expr)?,
                b(pattern)?,
                *escape_char,
                *case_insensitive,
            )),
            PhysExpr::Case {
                expr,
                when_then,
                else_expr,
            } => Expr::Case(lexpr::Case::new(
                expr.as_deref().map(&b).transpose()?,
                when_then
                    .iter()
                    .map(|(w, t)| Ok((b(w)?, b(t)?)))
                    .collect::<Result<Vec<_>>>()?,
                else_expr.as_deref().map(&b).transpose()?,
            )),
            PhysExpr::Cast { expr, data_type } => {
                Expr::Cast(lexpr::Cast::new(b(expr)?, data_type.clone()))
            }
            PhysExpr::TryCast { expr, data_type } => {
                Expr::TryCast(lexpr::TryCast::new(b(expr)?, data_type.clone()))
            }
            PhysExpr::InList {
                expr,
                list,
                negated,
            } => Expr::InList(lexpr::InList::new(
                b(expr)?,
                list.iter()
                    .map(|e| e.to_logical(registry))
                    .collect::<Result<_>>()?,
                *negated,
            )),
            PhysExpr::ScalarFunction { name, args } => {
                let func = registry.scalar(name)?;
                Expr::ScalarFunction(lexpr::ScalarFunction::new_udf(
                    func,
                    args.iter()
                        .map(|e| e.to_logical(registry))
                        .collect::<Result<_>>()?,
                ))
            }
        })
    }

    /// Compiles the expression for evaluation over batches of `input`.
    pub fn compile(
        &self,
        input: &Schema,
        registry: &FunctionRegistry,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let df_schema = positional_df_schema(input)?;
        self.compile_with(&df_schema, registry)
    }

    pub(crate) fn compile_with(
        &self,
        df_schema: &DFSchema,
        registry: &FunctionRegistry,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let logical = self.to_logical(registry)?;
        let expr = create_physical_expr(
            &logical,
            df_schema,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )?;
        Ok(decimal_arith::specialize(expr, df_schema.as_arrow())?)
    }

    /// The column indices this expression reads.
    pub fn columns(&self, out: &mut Vec<usize>) {
        self.visit(&mut |e| {
            if let PhysExpr::Column { index, .. } = e {
                out.push(*index)
            }
        });
    }

    /// Rewrites every column index through `f`.
    pub fn map_columns(&self, f: &impl Fn(usize) -> usize) -> PhysExpr {
        let mut e = self.clone();
        e.visit_mut(&mut |e| {
            if let PhysExpr::Column { index, .. } = e {
                *index = f(*index)
            }
        });
        e
    }
}

/// The sub-expressions of an expression, as shared (`iter`, `as_ref`) or
/// mutable (`iter_mut`, `as_mut`) references: the one listing of them.
macro_rules! expr_children {
    ($expr:expr, $iter:ident, $as_ref:ident) => {
        match $expr {
            PhysExpr::Column { .. } | PhysExpr::Literal(_) => vec![],
            PhysExpr::Binary { left, right, .. } => vec![left.$as_ref(), right.$as_ref()],
            PhysExpr::Not(e)
            | PhysExpr::Negative(e)
            | PhysExpr::IsNull(e)
            | PhysExpr::IsNotNull(e)
            | PhysExpr::IsTrue(e)
            | PhysExpr::IsFalse(e)
            | PhysExpr::IsNotTrue(e)
            | PhysExpr::IsNotFalse(e)
            | PhysExpr::IsUnknown(e)
            | PhysExpr::IsNotUnknown(e)
            | PhysExpr::Cast { expr: e, .. }
            | PhysExpr::TryCast { expr: e, .. } => vec![e.$as_ref()],
            PhysExpr::Between {
                expr, low, high, ..
            } => vec![expr.$as_ref(), low.$as_ref(), high.$as_ref()],
            PhysExpr::Like { expr, pattern, .. } => vec![expr.$as_ref(), pattern.$as_ref()],
            PhysExpr::Case {
                expr,
                when_then,
                else_expr,
            } => {
                let mut v: Vec<_> = expr.$iter().map(|e| e.$as_ref()).collect();
                for (w, t) in when_then.$iter() {
                    v.push(w);
                    v.push(t);
                }
                v.extend(else_expr.$iter().map(|e| e.$as_ref()));
                v
            }
            PhysExpr::InList { expr, list, .. } => {
                let mut v = vec![expr.$as_ref()];
                v.extend(list.$iter());
                v
            }
            PhysExpr::ScalarFunction { args, .. } => args.$iter().collect(),
        }
    };
}

impl Tree for PhysExpr {
    fn children(&self) -> Vec<&Self> {
        expr_children!(self, iter, as_ref)
    }

    fn children_mut(&mut self) -> Vec<&mut Self> {
        expr_children!(self, iter_mut, as_mut)
    }
}

impl fmt::Display for PhysExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhysExpr::Column { index, name } => write!(f, "{name}@{index}"),
            PhysExpr::Literal(v) => write!(f, "{}", v.0),
            PhysExpr::Binary { left, op, right } => {
                write!(f, "({left} {} {right})", op.to_df())
            }
            PhysExpr::Not(e) => write!(f, "NOT {e}"),
            PhysExpr::Negative(e) => write!(f, "(- {e})"),
            PhysExpr::IsNull(e) => write!(f, "{e} IS NULL"),
            PhysExpr::IsNotNull(e) => write!(f, "{e} IS NOT NULL"),
            PhysExpr::IsTrue(e) => write!(f, "{e} IS TRUE"),
            PhysExpr::IsFalse(e) => write!(f, "{e} IS FALSE"),
            PhysExpr::IsNotTrue(e) => write!(f, "{e} IS NOT TRUE"),
            PhysExpr::IsNotFalse(e) => write!(f, "{e} IS NOT FALSE"),
            PhysExpr::IsUnknown(e) => write!(f, "{e} IS UNKNOWN"),
            PhysExpr::IsNotUnknown(e) => write!(f, "{e} IS NOT UNKNOWN"),
            PhysExpr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{expr} {not}BETWEEN {low} AND {high}")
            }
            PhysExpr::Like {
                negated,
                expr,
                pattern,
                case_insensitive,
                ..
            } => {
                let not = if *negated { "NOT " } else { "" };
                let op = if *case_insensitive { "ILIKE" } else { "LIKE" };
                write!(f, "{expr} {not}{op} {pattern}")
            }
            PhysExpr::Case {
                expr,
                when_then,
                else_expr,
            } => {
                write!(f, "CASE")?;
                if let Some(e) = expr {
                    write!(f, " {e}")?;
                }
                for (w, t) in when_then {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(e) = else_expr {
                    write!(f, " ELSE {e}")?;
                }
                write!(f, " END")
            }
            PhysExpr::Cast { expr, data_type } => write!(f, "CAST({expr} AS {data_type})"),
            PhysExpr::TryCast { expr, data_type } => {
                write!(f, "TRY_CAST({expr} AS {data_type})")
            }
            PhysExpr::InList {
                expr,
                list,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                let items: Vec<String> = list.iter().map(|e| e.to_string()).collect();
                write!(f, "{expr} {not}IN ({})", items.join(", "))
            }
            PhysExpr::ScalarFunction { name, args } => {
                let items: Vec<String> = args.iter().map(|e| e.to_string()).collect();
                write!(f, "{name}({})", items.join(", "))
            }
        }
    }
}

/// A sort key: an expression with direction and null placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SortExpr {
    pub expr: PhysExpr,
    pub asc: bool,
    pub nulls_first: bool,
}

impl SortExpr {
    pub fn compile(&self, input: &Schema, registry: &FunctionRegistry) -> Result<PhysicalSortExpr> {
        Ok(PhysicalSortExpr {
            expr: self.expr.compile(input, registry)?,
            options: arrow::compute::SortOptions {
                descending: !self.asc,
                nulls_first: self.nulls_first,
            },
        })
    }
}

impl fmt::Display for SortExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} NULLS {}",
            self.expr,
            if self.asc { "ASC" } else { "DESC" },
            if self.nulls_first { "FIRST" } else { "LAST" }
        )
    }
}

/// Evaluates compiled expressions on a batch into arrays.
pub fn evaluate_all(
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
) -> Result<Vec<arrow::array::ArrayRef>> {
    exprs
        .iter()
        .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
        .collect()
}

/// Output fields of compiled expressions, named as given.
pub fn output_fields(
    exprs: &[Arc<dyn PhysicalExpr>],
    names: &[String],
    input: &Schema,
) -> Result<Vec<Field>> {
    exprs
        .iter()
        .zip(names)
        .map(|(e, n)| {
            let f = e.return_field(input)?;
            Ok(Field::new(n, f.data_type().clone(), f.is_nullable()))
        })
        .collect()
}
