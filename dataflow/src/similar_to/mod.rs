//! `SIMILAR TO` with the SQL standard's patterns (as in PostgreSQL), as
//! the scalar function `similar_to(string, pattern, escape)`.
//!
//! DataFusion evaluates `SIMILAR TO` by reading the pattern as a raw
//! regular expression (`'abc' SIMILAR TO 'a.*'` is true there, false in
//! the standard), so the SQL planner rewrites every `SIMILAR TO` into this
//! function before optimization, which also makes constant folding use it.
//! `escape` is the escape character, or empty for none. A constant pattern
//! is compiled once per batch; patterns from columns once per distinct
//! consecutive value. NULL in any argument gives NULL.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion_common::{exec_err, plan_err, Result, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

pub mod pattern;

#[cfg(test)]
mod tests;

/// The function's name in the registry.
pub const NAME: &str = "similar_to";

/// `similar_to`, for [`crate::functions::FunctionRegistry`].
pub fn function() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(SimilarTo::new()))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SimilarTo {
    signature: Signature,
}

impl SimilarTo {
    fn new() -> Self {
        SimilarTo {
            signature: Signature::string(3, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SimilarTo {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.len() != 3 {
            return plan_err!(
                "{NAME} expects a string, a pattern and an escape character, got {} arguments",
                arg_types.len()
            );
        }
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [string, pattern, escape] = args.args.as_slice() else {
            return exec_err!("{NAME} expects three arguments, got {}", args.args.len());
        };
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let strings = utf8(string, rows)?;
        let out = match (constant(pattern)?, constant(escape)?) {
            (Some(pattern), Some(escape)) => match (pattern, escape) {
                (Some(p), Some(e)) => {
                    let regex = pattern::compile(&p, escape_char(&e)?)?;
                    strings
                        .iter()
                        .map(|s| s.map(|s| regex.is_match(s)))
                        .collect::<BooleanArray>()
                }
                _ => BooleanArray::new_null(rows),
            },
            _ => per_row(&strings, &utf8(pattern, rows)?, &utf8(escape, rows)?)?,
        };
        Ok(if all_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(Arc::new(out))
        })
    }
}

/// Patterns that vary by row: a regex per row, reused while the pattern
/// and escape stay the same.
fn per_row(
    strings: &StringArray,
    patterns: &StringArray,
    escapes: &StringArray,
) -> Result<BooleanArray> {
    let mut last: Option<(&str, &str, Regex)> = None;
    let mut out = Vec::with_capacity(strings.len());
    for ((s, p), e) in strings.iter().zip(patterns).zip(escapes) {
        let (Some(s), Some(p), Some(e)) = (s, p, e) else {
            out.push(None);
            continue;
        };
        let regex = match &last {
            Some((lp, le, r)) if *lp == p && *le == e => r,
            _ => {
                let r = pattern::compile(p, escape_char(e)?)?;
                &last.insert((p, e, r)).2
            }
        };
        out.push(Some(regex.is_match(s)));
    }
    Ok(BooleanArray::from(out))
}

/// The value of a scalar argument (`Some(None)` when NULL); `None` for an
/// array.
fn constant(arg: &ColumnarValue) -> Result<Option<Option<String>>> {
    match arg {
        ColumnarValue::Scalar(s) if s.is_null() => Ok(Some(None)),
        ColumnarValue::Scalar(s) => match s.try_as_str() {
            Some(v) => Ok(Some(v.map(str::to_string))),
            None => exec_err!("{NAME} expects strings, got {}", s.data_type()),
        },
        ColumnarValue::Array(_) => Ok(None),
    }
}

/// `arg` as a Utf8 array of `rows` rows.
fn utf8(arg: &ColumnarValue, rows: usize) -> Result<StringArray> {
    let array: ArrayRef = arg.to_array(rows)?;
    let array = match array.data_type() {
        DataType::Utf8 => array,
        _ => cast(&array, &DataType::Utf8)?,
    };
    Ok(array.as_string::<i32>().clone())
}

/// The escape character: one character, or none for the empty string.
fn escape_char(escape: &str) -> Result<Option<char>> {
    let mut chars = escape.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Ok(None),
        (Some(c), None) => Ok(Some(c)),
        _ => exec_err!("the ESCAPE of SIMILAR TO must be one character, got {escape:?}"),
    }
}
