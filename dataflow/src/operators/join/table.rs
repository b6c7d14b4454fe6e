//! The hash table over the build side and the probing of it: the table
//! maps a hash to a chain of build rows (in build order) through a `next`
//! array; probing walks the chain and compares the encoded keys.

use arrow::array::RecordBatch;
use arrow::buffer::NullBuffer;
use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use hashbrown::hash_table::{Entry, HashTable};

use super::build::concat;
use super::keys::{JoinKeys, KeyBuf, NONE};
use crate::error::{DataflowError, Result};
use crate::execution::OperatorMemory;
use crate::expr::evaluate_all;
use crate::stream::SendableRecordBatchStream;

/// `(hash, first row, last row)` of a chain of build rows.
pub(super) type Slot = (u64, u32, u32);

/// The built left side: its rows, encoded keys and hash table.
pub struct JoinTable {
    pub(super) batch: RecordBatch,
    pub(super) keys: KeyBuf,
    pub(super) map: HashTable<Slot>,
    pub(super) next: Vec<u32>,
    /// The reservation of what the table holds; freed with the table.
    _memory: OperatorMemory,
}

impl JoinTable {
    /// Bytes held: build rows, keys, hash table and chains (approximately).
    pub fn size(&self) -> usize {
        self.batch.get_array_memory_size()
            + self.keys.size()
            + self.map.capacity() * std::mem::size_of::<Slot>()
            + self.next.capacity() * std::mem::size_of::<u32>()
    }

    /// Builds the table from all batches of `input`, reserving what it
    /// holds from `memory` batch by batch.
    pub(super) async fn build(
        mut input: SendableRecordBatchStream,
        keys: &JoinKeys,
        schema: &SchemaRef,
        memory: OperatorMemory,
    ) -> Result<JoinTable> {
        let mut held_rows = 0;
        let mut batches = Vec::new();
        let mut buf = keys.encoding.empty_buf();
        let mut hashes = Vec::new();
        let mut map: HashTable<Slot> = HashTable::new();
        let mut next: Vec<u32> = Vec::new();
        let mut offset = 0usize;
        while let Some(batch) = input.next().await {
            let batch = batch?;
            let n = batch.num_rows();
            if n == 0 {
                continue;
            }
            if offset + n >= NONE as usize {
                return Err(DataflowError::Execution(format!(
                    "hash join build side exceeds {} rows",
                    NONE - 1
                )));
            }
            let arrays = evaluate_all(&keys.left, &batch)?;
            keys.encoding.append(&arrays, &mut buf)?;
            keys.encoding.hash(&buf, offset..offset + n, &mut hashes);
            let nulls = keys.nulls(&arrays);
            next.resize(offset + n, NONE);
            for (k, &h) in hashes.iter().enumerate() {
                if nulls.as_ref().is_some_and(|nb| nb.is_null(k)) {
                    continue;
                }
                let row = (offset + k) as u32;
                match map.entry(h, |s| s.0 == h, |s| s.0) {
                    Entry::Occupied(mut o) => {
                        let slot = o.get_mut();
                        next[slot.2 as usize] = row;
                        slot.2 = row;
                    }
                    Entry::Vacant(v) => {
                        v.insert((h, row, row));
                    }
                }
            }
            offset += n;
            held_rows += batch.get_array_memory_size();
            batches.push(batch);
            memory.try_resize(
                held_rows
                    + buf.size()
                    + map.capacity() * std::mem::size_of::<Slot>()
                    + next.capacity() * std::mem::size_of::<u32>(),
            )?;
        }
        if buf.len() != offset {
            return Err(DataflowError::Internal(format!(
                "join keys encoded {} rows of {offset}",
                buf.len()
            )));
        }
        let table = JoinTable {
            batch: concat(schema, batches)?,
            keys: buf,
            map,
            next,
            _memory: memory,
        };
        table._memory.try_resize(table.size())?;
        Ok(table)
    }

    pub(super) fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}

/// How the chain of a probe row is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProbeMode {
    /// Every matching build row gives a pair.
    AllPairs,
    /// Only the first matching build row gives a pair (right semi / anti
    /// without filter).
    FirstMatch,
    /// No pairs: matched build rows are marked directly (left semi / anti
    /// without filter).
    MarkBuild,
}

/// Where probing of a batch resumes: the probe row and, inside its chain,
/// the next build row (`NONE`: start the row's lookup).
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    pub(super) row: usize,
    pub(super) chain: u32,
}

impl Cursor {
    pub(super) fn start() -> Self {
        Cursor {
            row: 0,
            chain: NONE,
        }
    }
}

/// The encoded keys and hashes of the current probe batch (buffers reused
/// across batches).
pub(super) struct Prober {
    keys: KeyBuf,
    hashes: Vec<u64>,
    nulls: Option<NullBuffer>,
}

impl Prober {
    pub(super) fn new(keys: &JoinKeys) -> Self {
        Prober {
            keys: keys.encoding.empty_buf(),
            hashes: Vec::new(),
            nulls: None,
        }
    }

    pub(super) fn prepare(&mut self, keys: &JoinKeys, batch: &RecordBatch) -> Result<()> {
        let arrays = evaluate_all(&keys.right, batch)?;
        self.keys.clear();
        keys.encoding.append(&arrays, &mut self.keys)?;
        let n = self.keys.len();
        if n != batch.num_rows() {
            return Err(DataflowError::Internal(format!(
                "join keys encoded {n} rows of {}",
                batch.num_rows()
            )));
        }
        keys.encoding.hash(&self.keys, 0..n, &mut self.hashes);
        self.nulls = keys.nulls(&arrays);
        Ok(())
    }

    /// Collects up to `limit` candidate pairs from `cursor` on (or marks
    /// build rows, in `MarkBuild` mode). Returns whether the batch is done.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn probe(
        &self,
        table: &JoinTable,
        mode: ProbeMode,
        cursor: &mut Cursor,
        limit: usize,
        build_idx: &mut Vec<u32>,
        probe_idx: &mut Vec<u32>,
        build_matched: &mut [bool],
    ) -> Result<bool> {
        let args = ProbeArgs {
            map: &table.map,
            next: &table.next,
            hashes: &self.hashes,
            nulls: self.nulls.as_ref(),
            mode,
            limit: limit.max(1),
        };
        Ok(match (&table.keys, &self.keys) {
            (KeyBuf::Packed64(b), KeyBuf::Packed64(p)) => args.run(
                |i, j| b.get(i) == p.get(j),
                cursor,
                build_idx,
                probe_idx,
                build_matched,
            ),
            (KeyBuf::Packed128(b), KeyBuf::Packed128(p)) => args.run(
                |i, j| b.get(i) == p.get(j),
                cursor,
                build_idx,
                probe_idx,
                build_matched,
            ),
            (KeyBuf::Rows(b), KeyBuf::Rows(p)) => args.run(
                |i, j| i < b.num_rows() && j < p.num_rows() && b.row(i) == p.row(j),
                cursor,
                build_idx,
                probe_idx,
                build_matched,
            ),
            _ => return Err(DataflowError::Internal("join key encodings differ".into())),
        })
    }
}

pub(super) struct ProbeArgs<'a> {
    map: &'a HashTable<Slot>,
    next: &'a [u32],
    hashes: &'a [u64],
    nulls: Option<&'a NullBuffer>,
    mode: ProbeMode,
    limit: usize,
}

impl ProbeArgs<'_> {
    /// The probe loop, specialized per key comparison `eq(build, probe)`.
    #[inline(always)]
    pub(super) fn run<E: Fn(usize, usize) -> bool>(
        &self,
        eq: E,
        cursor: &mut Cursor,
        build_idx: &mut Vec<u32>,
        probe_idx: &mut Vec<u32>,
        build_matched: &mut [bool],
    ) -> bool {
        let n = self.hashes.len();
        let next = |i: u32| self.next.get(i as usize).copied().unwrap_or(NONE);
        let mut j = cursor.row;
        let mut i = cursor.chain;
        while j < n {
            if i == NONE {
                if self.nulls.is_some_and(|nb| nb.is_null(j)) {
                    j += 1;
                    continue;
                }
                let h = self.hashes[j];
                match self.map.find(h, |s| s.0 == h) {
                    Some(s) => i = s.1,
                    None => {
                        j += 1;
                        continue;
                    }
                }
            }
            match self.mode {
                ProbeMode::AllPairs => {
                    while i != NONE {
                        let cur = i;
                        i = next(cur);
                        if eq(cur as usize, j) {
                            build_idx.push(cur);
                            probe_idx.push(j as u32);
                            if build_idx.len() >= self.limit {
                                *cursor = if i == NONE {
                                    Cursor {
                                        row: j + 1,
                                        chain: NONE,
                                    }
                                } else {
                                    Cursor { row: j, chain: i }
                                };
                                return false;
                            }
                        }
                    }
                }
                ProbeMode::FirstMatch => {
                    while i != NONE {
                        if eq(i as usize, j) {
                            build_idx.push(i);
                            probe_idx.push(j as u32);
                            break;
                        }
                        i = next(i);
                    }
                    i = NONE;
                    if build_idx.len() >= self.limit {
                        *cursor = Cursor {
                            row: j + 1,
                            chain: NONE,
                        };
                        return false;
                    }
                }
                ProbeMode::MarkBuild => {
                    while i != NONE {
                        if eq(i as usize, j) {
                            match build_matched.get_mut(i as usize) {
                                // All rows of this key were marked together.
                                Some(true) => break,
                                Some(m) => *m = true,
                                None => break,
                            }
                        }
                        i = next(i);
                    }
                    i = NONE;
                }
            }
            j += 1;
        }
        *cursor = Cursor {
            row: n,
            chain: NONE,
        };
        true
    }
}
