//! Literal values in plans, as they cross process boundaries.
//!
//! The common types (integers, floats, booleans, strings, dates, 128-bit
//! decimals) are written as a small tagged value; every other type as a
//! one-row Arrow IPC stream, so that it round-trips exactly (timestamps
//! keep their unit and zone, nested types their fields). The IPC form costs
//! a schema and a batch message per value, which a plan with an `IN` list
//! of 100,000 literals cannot afford.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Field, Schema};
use arrow::ipc::writer::StreamWriter;
use datafusion_common::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::error::{DataflowError, Result};

/// A literal value (see the module doc for how it is serialized).
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub ScalarValue);

/// The serialized form of a [`Scalar`]. Floats travel as their bits, so
/// that every NaN payload and the sign of zero survive.
#[derive(Serialize, Deserialize)]
enum Wire {
    Null,
    Boolean(Option<bool>),
    Int8(Option<i8>),
    Int16(Option<i16>),
    Int32(Option<i32>),
    Int64(Option<i64>),
    UInt8(Option<u8>),
    UInt16(Option<u16>),
    UInt32(Option<u32>),
    UInt64(Option<u64>),
    Float32(Option<u32>),
    Float64(Option<u64>),
    Utf8(Option<String>),
    LargeUtf8(Option<String>),
    Utf8View(Option<String>),
    Date32(Option<i32>),
    Date64(Option<i64>),
    Decimal128(Option<i128>, u8, i8),
    /// Any other type: a one-row Arrow IPC stream.
    Arrow(serde_bytes_compat::ByteBuf),
}

impl Wire {
    fn from_scalar(v: &ScalarValue) -> Result<Wire> {
        use ScalarValue as S;
        Ok(match v {
            S::Null => Wire::Null,
            S::Boolean(v) => Wire::Boolean(*v),
            S::Int8(v) => Wire::Int8(*v),
            S::Int16(v) => Wire::Int16(*v),
            S::Int32(v) => Wire::Int32(*v),
            S::Int64(v) => Wire::Int64(*v),
            S::UInt8(v) => Wire::UInt8(*v),
            S::UInt16(v) => Wire::UInt16(*v),
            S::UInt32(v) => Wire::UInt32(*v),
            S::UInt64(v) => Wire::UInt64(*v),
            S::Float32(v) => Wire::Float32(v.map(f32::to_bits)),
            S::Float64(v) => Wire::Float64(v.map(f64::to_bits)),
            S::Utf8(v) => Wire::Utf8(v.clone()),
            S::LargeUtf8(v) => Wire::LargeUtf8(v.clone()),
            S::Utf8View(v) => Wire::Utf8View(v.clone()),
            S::Date32(v) => Wire::Date32(*v),
            S::Date64(v) => Wire::Date64(*v),
            S::Decimal128(v, p, s) => Wire::Decimal128(*v, *p, *s),
            other => Wire::Arrow(serde_bytes_compat::ByteBuf(scalar_to_ipc(other)?)),
        })
    }

    fn into_scalar(self) -> Result<ScalarValue> {
        use ScalarValue as S;
        Ok(match self {
            Wire::Null => S::Null,
            Wire::Boolean(v) => S::Boolean(v),
            Wire::Int8(v) => S::Int8(v),
            Wire::Int16(v) => S::Int16(v),
            Wire::Int32(v) => S::Int32(v),
            Wire::Int64(v) => S::Int64(v),
            Wire::UInt8(v) => S::UInt8(v),
            Wire::UInt16(v) => S::UInt16(v),
            Wire::UInt32(v) => S::UInt32(v),
            Wire::UInt64(v) => S::UInt64(v),
            Wire::Float32(v) => S::Float32(v.map(f32::from_bits)),
            Wire::Float64(v) => S::Float64(v.map(f64::from_bits)),
            Wire::Utf8(v) => S::Utf8(v),
            Wire::LargeUtf8(v) => S::LargeUtf8(v),
            Wire::Utf8View(v) => S::Utf8View(v),
            Wire::Date32(v) => S::Date32(v),
            Wire::Date64(v) => S::Date64(v),
            Wire::Decimal128(v, p, s) => {
                // A precision and scale from the wire must make a type.
                arrow::datatypes::validate_decimal_precision_and_scale::<
                    arrow::datatypes::Decimal128Type,
                >(p, s)?;
                S::Decimal128(v, p, s)
            }
            Wire::Arrow(bytes) => scalar_from_ipc(&bytes.0)?,
        })
    }
}

impl Serialize for Scalar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        Wire::from_scalar(&self.0)
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Wire::deserialize(d)?
            .into_scalar()
            .map(Scalar)
            .map_err(serde::de::Error::custom)
    }
}

/// Accepts both a CBOR byte string and a sequence of numbers, so that the
/// encoding does not depend on the serde format's preference.
mod serde_bytes_compat {
    pub struct ByteBuf(pub Vec<u8>);
    impl serde::Serialize for ByteBuf {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }
    impl<'de> serde::Deserialize<'de> for ByteBuf {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<ByteBuf, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = seq.next_element::<u8>()? {
                        out.push(b);
                    }
                    Ok(ByteBuf(out))
                }
            }
            // `byte_buf`: ciborium reads byte strings longer than its scratch
            // buffer (4 KiB) only this way.
            d.deserialize_byte_buf(V)
        }
    }
}

fn scalar_to_ipc(v: &ScalarValue) -> Result<Vec<u8>> {
    let array = v.to_array()?;
    let schema = Arc::new(Schema::new(vec![Field::new(
        "v",
        array.data_type().clone(),
        true,
    )]));
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![array])?;
    let mut out = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut out, &schema)?;
        w.write(&batch)?;
        w.finish()?;
    }
    Ok(out)
}

fn scalar_from_ipc(bytes: &[u8]) -> Result<ScalarValue> {
    let (_, batches) = crate::ipc::decode_stream(arrow::buffer::Buffer::from_slice_ref(bytes))?;
    let batch = batches
        .first()
        .filter(|b| b.num_rows() == 1 && b.num_columns() == 1)
        .ok_or_else(|| DataflowError::Plan("a literal that is not one value".into()))?;
    Ok(ScalarValue::try_from_array(batch.column(0), 0)?)
}
