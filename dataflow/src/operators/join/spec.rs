//! What a join operator needs to know about its join type: which rows it
//! tracks, and how it assembles output (matched pairs, unmatched probe
//! rows per probe batch, unmatched or matched build rows at the end, or
//! every row of the preserved side with its mark for mark joins).

use std::sync::Arc;

use arrow::array::{new_null_array, BooleanArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, SchemaRef};

use super::filter::JoinFilter;
use super::gather::{rebind, Indices};
use crate::error::{DataflowError, Result};
use crate::expr::PhysExpr;
use crate::functions::FunctionRegistry;
use crate::plan::JoinType;

/// What a join operator needs to know about its join type and output.
pub struct JoinSpec {
    pub join_type: JoinType,
    pub schema: SchemaRef,
    pub left_schema: SchemaRef,
    pub right_schema: SchemaRef,
    pub filter: Option<JoinFilter>,
}

impl JoinSpec {
    pub fn try_new(
        join_type: JoinType,
        left_schema: SchemaRef,
        right_schema: SchemaRef,
        filter: Option<&PhysExpr>,
        schema: SchemaRef,
        registry: &FunctionRegistry,
    ) -> Result<Self> {
        // The mark column of mark joins (its name comes from the output
        // schema).
        let mark = Field::new("mark", DataType::Boolean, false);
        let expected: Vec<&Field> = match join_type {
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => left_schema
                .fields()
                .iter()
                .chain(right_schema.fields().iter())
                .map(|f| f.as_ref())
                .collect(),
            JoinType::LeftSemi | JoinType::LeftAnti => {
                left_schema.fields().iter().map(|f| f.as_ref()).collect()
            }
            JoinType::RightSemi | JoinType::RightAnti => {
                right_schema.fields().iter().map(|f| f.as_ref()).collect()
            }
            JoinType::LeftMark | JoinType::RightMark => {
                let preserved = if join_type == JoinType::LeftMark {
                    &left_schema
                } else {
                    &right_schema
                };
                preserved
                    .fields()
                    .iter()
                    .map(|f| f.as_ref())
                    .chain([&mark])
                    .collect()
            }
        };
        if expected.len() != schema.fields().len() {
            return Err(DataflowError::Internal(format!(
                "{join_type:?} join: output schema has {} columns, inputs give {}",
                schema.fields().len(),
                expected.len()
            )));
        }
        for (out, inp) in schema.fields().iter().zip(expected) {
            if !out.data_type().equals_datatype(inp.data_type()) {
                return Err(DataflowError::Internal(format!(
                    "{join_type:?} join: output column {} has type {}, input gives {}",
                    out.name(),
                    out.data_type(),
                    inp.data_type()
                )));
            }
        }
        let filter = filter
            .map(|f| JoinFilter::try_new(f, &left_schema, &right_schema, registry))
            .transpose()?;
        Ok(JoinSpec {
            join_type,
            schema,
            left_schema,
            right_schema,
            filter,
        })
    }

    /// Whether matched build rows must be tracked (the join emits build rows
    /// after the probe side ends).
    pub fn tracks_build(&self) -> bool {
        self.join_type.emits_unmatched_left()
    }

    /// Whether matched probe rows must be tracked per probe batch.
    pub fn tracks_probe(&self) -> bool {
        matches!(
            self.join_type,
            JoinType::Right
                | JoinType::Full
                | JoinType::RightSemi
                | JoinType::RightAnti
                | JoinType::RightMark
        )
    }

    /// Whether probing can be skipped when the build side is empty (the
    /// output then has no rows).
    pub fn empty_build_gives_empty(&self) -> bool {
        !matches!(
            self.join_type,
            JoinType::Right | JoinType::Full | JoinType::RightAnti | JoinType::RightMark
        )
    }

    /// Filters candidate pairs, marks matched rows, and returns the joined
    /// rows of the pairs (for inner and outer joins).
    pub fn process_pairs(
        &self,
        build: &RecordBatch,
        probe: &RecordBatch,
        mut build_idx: Vec<u32>,
        mut probe_idx: Vec<u32>,
        build_matched: &mut [bool],
        probe_matched: &mut [bool],
    ) -> Result<Option<RecordBatch>> {
        if let Some(f) = &self.filter {
            f.retain(build, probe, &mut build_idx, &mut probe_idx)?;
        }
        if build_idx.is_empty() {
            return Ok(None);
        }
        if self.tracks_build() {
            for &b in &build_idx {
                if let Some(m) = build_matched.get_mut(b as usize) {
                    *m = true;
                }
            }
        }
        if self.tracks_probe() {
            for &p in &probe_idx {
                if let Some(m) = probe_matched.get_mut(p as usize) {
                    *m = true;
                }
            }
        }
        match self.join_type {
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
                Ok(Some(self.pair_output(build, probe, build_idx, probe_idx)?))
            }
            _ => Ok(None),
        }
    }

    /// The joined rows of pairs: build columns then probe columns.
    pub fn pair_output(
        &self,
        build: &RecordBatch,
        probe: &RecordBatch,
        build_idx: Vec<u32>,
        probe_idx: Vec<u32>,
    ) -> Result<RecordBatch> {
        let n = build_idx.len();
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        let bi = Indices::new(build_idx);
        for c in build.columns() {
            columns.push(bi.gather(c)?);
        }
        let pi = Indices::new(probe_idx);
        for c in probe.columns() {
            columns.push(pi.gather(c)?);
        }
        rebind(&self.schema, columns, n)
    }

    /// After all pairs of a probe batch: its unmatched rows (right and full
    /// outer, right anti), its matched rows (right semi), or all of them
    /// with their marks (right mark).
    pub fn finish_probe_batch(
        &self,
        probe: &RecordBatch,
        probe_matched: &[bool],
    ) -> Result<Option<RecordBatch>> {
        if self.join_type == JoinType::RightMark {
            return self.marked(probe, probe_matched).map(Some);
        }
        let want = match self.join_type {
            JoinType::Right | JoinType::Full | JoinType::RightAnti => false,
            JoinType::RightSemi => true,
            _ => return Ok(None),
        };
        let n = probe.num_rows();
        let mask = BooleanArray::new(
            BooleanBuffer::collect_bool(n, |i| {
                probe_matched.get(i).copied().unwrap_or(false) == want
            }),
            None,
        );
        if mask.true_count() == 0 {
            return Ok(None);
        }
        let rows = filter_record_batch(probe, &mask)?;
        let m = rows.num_rows();
        let columns = if matches!(self.join_type, JoinType::Right | JoinType::Full) {
            self.left_schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), m))
                .chain(rows.columns().iter().cloned())
                .collect()
        } else {
            rows.columns().to_vec()
        };
        Ok(Some(rebind(&self.schema, columns, m)?))
    }

    /// After the probe side ended, for build rows `start..start + len`: the
    /// unmatched ones (left and full outer, left anti), the matched ones
    /// (left semi), or all of them with their marks (left mark).
    pub fn finish_build_rows(
        &self,
        build: &RecordBatch,
        build_matched: &[bool],
        start: usize,
        len: usize,
    ) -> Result<Option<RecordBatch>> {
        if self.join_type == JoinType::LeftMark {
            let len = len.min(build.num_rows().saturating_sub(start));
            if len == 0 {
                return Ok(None);
            }
            let matched = build_matched.get(start..start + len).unwrap_or_default();
            return self.marked(&build.slice(start, len), matched).map(Some);
        }
        let want = match self.join_type {
            JoinType::Left | JoinType::Full | JoinType::LeftAnti => false,
            JoinType::LeftSemi => true,
            _ => return Ok(None),
        };
        let len = len.min(build.num_rows().saturating_sub(start));
        if len == 0 {
            return Ok(None);
        }
        let mask = BooleanArray::new(
            BooleanBuffer::collect_bool(len, |i| {
                build_matched.get(start + i).copied().unwrap_or(false) == want
            }),
            None,
        );
        if mask.true_count() == 0 {
            return Ok(None);
        }
        let rows = filter_record_batch(&build.slice(start, len), &mask)?;
        let m = rows.num_rows();
        let mut columns = rows.columns().to_vec();
        if matches!(self.join_type, JoinType::Left | JoinType::Full) {
            columns.extend(
                self.right_schema
                    .fields()
                    .iter()
                    .map(|f| new_null_array(f.data_type(), m)),
            );
        }
        Ok(Some(rebind(&self.schema, columns, m)?))
    }

    /// All `rows` of a mark join's preserved side, with the mark column:
    /// whether each row matched.
    fn marked(&self, rows: &RecordBatch, matched: &[bool]) -> Result<RecordBatch> {
        let n = rows.num_rows();
        let mark = BooleanArray::new(
            BooleanBuffer::collect_bool(n, |i| matched.get(i).copied().unwrap_or(false)),
            None,
        );
        let mut columns = rows.columns().to_vec();
        columns.push(Arc::new(mark));
        rebind(&self.schema, columns, n)
    }
}
