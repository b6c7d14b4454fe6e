//! GROUPING SETS / ROLLUP / CUBE: the sets a row is fed to and their
//! grouping ids (see the module doc of [`super`]).

use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;
use hashbrown::{DefaultHashBuilder, HashMap};

use crate::error::{DataflowError, Result};

/// One grouping set: which keys it leaves out (NULL) and its grouping id.
pub(super) struct GroupingSet {
    pub(super) null_keys: Vec<bool>,
    pub(super) id: ScalarValue,
}

/// The grouping id of every set, and the id's type (see the module doc).
pub fn grouping_ids(sets: &[Vec<bool>]) -> Result<(Vec<u64>, DataType)> {
    let keys = sets.first().map(|s| s.len()).unwrap_or(0);
    if let Some(bad) = sets.iter().find(|s| s.len() != keys) {
        return Err(DataflowError::Internal(format!(
            "grouping sets of {} and {keys} keys",
            bad.len()
        )));
    }
    // Occurrence number of each set among equal sets.
    let mut seen: HashMap<&[bool], u64> = HashMap::with_hasher(DefaultHashBuilder::default());
    let mut ordinals = Vec::with_capacity(sets.len());
    for s in sets {
        let n = seen.entry(s.as_slice()).or_insert(0);
        ordinals.push(*n);
        *n += 1;
    }
    let max_ordinal = ordinals.iter().copied().max().unwrap_or(0);
    let bits = keys + (u64::BITS - max_ordinal.leading_zeros()) as usize;
    let data_type = match bits {
        0..=8 => DataType::UInt8,
        9..=16 => DataType::UInt16,
        17..=32 => DataType::UInt32,
        33..=64 => DataType::UInt64,
        _ => {
            return Err(DataflowError::NotSupported(format!(
                "{} grouping sets over {keys} keys (the grouping id needs {bits} bits)",
                sets.len()
            )))
        }
    };
    let ids = sets
        .iter()
        .zip(ordinals)
        .map(|(s, ordinal)| {
            let mask = s
                .iter()
                .fold(0u64, |acc, &null| (acc << 1) | u64::from(null));
            // bits <= 64, so the shift only overflows when there is no ordinal.
            mask | ordinal.checked_shl(keys as u32).unwrap_or(0)
        })
        .collect();
    Ok((ids, data_type))
}

pub(super) fn grouping_id_scalar(id: u64, data_type: &DataType) -> ScalarValue {
    match data_type {
        DataType::UInt8 => ScalarValue::UInt8(Some(id as u8)),
        DataType::UInt16 => ScalarValue::UInt16(Some(id as u16)),
        DataType::UInt32 => ScalarValue::UInt32(Some(id as u32)),
        _ => ScalarValue::UInt64(Some(id)),
    }
}
