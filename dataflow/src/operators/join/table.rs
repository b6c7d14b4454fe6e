//! The hash table over the build side and the probing of it: the table
//! maps a hash to a chain of build rows (in build order) through a `next`
//! array; probing walks the chain and compares the encoded keys.

use arrow::array::RecordBatch;
use arrow::buffer::NullBuffer;
use arrow::datatypes::SchemaRef;
use hashbrown::hash_table::{Entry, HashTable};

use super::build::concat;
use super::keys::{JoinKeys, KeyBuf, NONE};
use crate::error::{DataflowError, Result};
use crate::execution::{read_batch_size, OperatorMemory};
use crate::expr::evaluate_all;

/// `(hash, first row, last row)` of a chain of build rows.
pub(super) type Slot = (u64, u32, u32);

/// The built left side: its rows, encoded keys and hash table.
pub struct JoinTable {
    pub(super) batch: RecordBatch,
    pub(super) keys: KeyBuf,
    pub(super) map: HashTable<Slot>,
    pub(super) next: Vec<u32>,
    /// What `batch` holds.
    batch_bytes: usize,
    /// The reservation of what the table holds; freed with the table.
    memory: OperatorMemory,
}

impl JoinTable {
    /// Bytes held: build rows, keys, hash table and chains (approximately).
    pub fn size(&self) -> usize {
        self.batch_bytes
            + self.keys.size()
            + self.map.capacity() * std::mem::size_of::<Slot>()
            + self.next.capacity() * std::mem::size_of::<u32>()
    }

    /// The table's reservation, emptied, for the next table (a grace join
    /// builds one table per partition pair under one reservation, so the
    /// fair pool sees one consumer throughout).
    pub(super) fn into_memory(self) -> OperatorMemory {
        self.memory.free();
        self.memory
    }

    pub(super) fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}

/// A [`JoinTable`] being built batch by batch, reserving what it holds.
pub(super) struct TableBuilder {
    batches: Vec<RecordBatch>,
    held_rows: usize,
    buf: KeyBuf,
    hashes: Vec<u64>,
    map: HashTable<Slot>,
    next: Vec<u32>,
    /// Rows inserted so far.
    offset: usize,
    memory: OperatorMemory,
    /// What a batch holds.
    measure: fn(&RecordBatch) -> usize,
}

/// What [`TableBuilder::finish`] gives.
pub(super) enum Built {
    Table(JoinTable),
    /// The pool refused to hold the table: the refusal, the rows (to
    /// spill, or to fail with the refusal) and the emptied reservation.
    Refused(DataflowError, Vec<RecordBatch>, OperatorMemory),
}

impl TableBuilder {
    pub(super) fn new(keys: &JoinKeys, memory: OperatorMemory) -> Self {
        TableBuilder {
            batches: Vec::new(),
            held_rows: 0,
            buf: keys.encoding.empty_buf(),
            hashes: Vec::new(),
            map: HashTable::new(),
            next: Vec::new(),
            offset: 0,
            memory,
            measure: RecordBatch::get_array_memory_size,
        }
    }

    /// A builder of batches read back from spill runs (measured by what
    /// they use: see [`read_batch_size`]).
    pub(super) fn of_spilled(keys: &JoinKeys, memory: OperatorMemory) -> Self {
        TableBuilder {
            measure: read_batch_size,
            ..TableBuilder::new(keys, memory)
        }
    }

    /// Adds the rows of `batch`. Returns the pool's refusal
    /// ([`DataflowError::ResourcesExhausted`]) when it would not reserve
    /// what the builder now holds; the batch is held all the same, and
    /// [`TableBuilder::into_batches`] gives every held row back.
    pub(super) fn push(
        &mut self,
        keys: &JoinKeys,
        batch: RecordBatch,
    ) -> Result<Option<DataflowError>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(None);
        }
        let offset = self.offset;
        if offset + n >= NONE as usize {
            return Err(DataflowError::Execution(format!(
                "hash join build side exceeds {} rows",
                NONE - 1
            )));
        }
        let arrays = evaluate_all(&keys.left, &batch)?;
        keys.encoding.append(&arrays, &mut self.buf)?;
        keys.encoding
            .hash(&self.buf, offset..offset + n, &mut self.hashes);
        let nulls = keys.nulls(&arrays);
        self.next.resize(offset + n, NONE);
        for (k, &h) in self.hashes.iter().enumerate() {
            if nulls.as_ref().is_some_and(|nb| nb.is_null(k)) {
                continue;
            }
            let row = (offset + k) as u32;
            match self.map.entry(h, |s| s.0 == h, |s| s.0) {
                Entry::Occupied(mut o) => {
                    let slot = o.get_mut();
                    self.next[slot.2 as usize] = row;
                    slot.2 = row;
                }
                Entry::Vacant(v) => {
                    v.insert((h, row, row));
                }
            }
        }
        self.offset += n;
        self.held_rows += (self.measure)(&batch);
        self.batches.push(batch);
        let held = self.held_rows
            + self.buf.size()
            + self.map.capacity() * std::mem::size_of::<Slot>()
            + self.next.capacity() * std::mem::size_of::<u32>();
        refusal(self.memory.try_resize(held))
    }

    /// The built table, or the refusal to hold it with its rows.
    pub(super) fn finish(self, schema: &SchemaRef) -> Result<Built> {
        if self.buf.len() != self.offset {
            return Err(DataflowError::Internal(format!(
                "join keys encoded {} rows of {}",
                self.buf.len(),
                self.offset
            )));
        }
        let single = self.batches.len() == 1;
        let batch = concat(schema, self.batches)?;
        // One batch is kept as it is (measured when pushed); several are
        // copied into a new one.
        let batch_bytes = if single {
            self.held_rows
        } else {
            batch.get_array_memory_size()
        };
        let table = JoinTable {
            batch,
            batch_bytes,
            keys: self.buf,
            map: self.map,
            next: self.next,
            memory: self.memory,
        };
        Ok(match refusal(table.memory.try_resize(table.size()))? {
            None => Built::Table(table),
            Some(refused) => {
                table.memory.free();
                Built::Refused(refused, vec![table.batch], table.memory)
            }
        })
    }

    /// The rows held so far, and the reservation, emptied (what the rows
    /// held goes back to the pool).
    pub(super) fn into_batches(self) -> (Vec<RecordBatch>, OperatorMemory) {
        self.memory.free();
        (self.batches, self.memory)
    }
}

/// A refused reservation as a value (the signal to spill); other errors
/// stay errors.
pub(super) fn refusal(r: Result<()>) -> Result<Option<DataflowError>> {
    match r {
        Ok(()) => Ok(None),
        Err(e @ DataflowError::ResourcesExhausted { .. }) => Ok(Some(e)),
        Err(e) => Err(e),
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
