//! Literal values in plans: serialized as one-row Arrow IPC so that every
//! type round-trips exactly.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Field, Schema};
use arrow::ipc::writer::StreamWriter;
use datafusion_common::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::error::{DataflowError, Result};

/// A literal value. Serialized as a one-row Arrow IPC stream so that every
/// Arrow type round-trips exactly (decimals keep precision and scale,
/// timestamps their unit and zone).
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub ScalarValue);

impl Serialize for Scalar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let bytes = scalar_to_ipc(&self.0).map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes: serde_bytes_compat::ByteBuf = Deserialize::deserialize(d)?;
        scalar_from_ipc(&bytes.0)
            .map(Scalar)
            .map_err(serde::de::Error::custom)
    }
}

/// Accepts both a CBOR byte string and a sequence of numbers, so that the
/// encoding does not depend on the serde format's preference.
mod serde_bytes_compat {
    pub struct ByteBuf(pub Vec<u8>);
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
            d.deserialize_bytes(V)
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
