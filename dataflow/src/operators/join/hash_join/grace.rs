//! The grace hash join: what a hash join partition does when its build
//! side does not fit in its share of memory.
//!
//! ```text
//!   build rows ──TableBuilder──▶ refused? ──no──▶ in-memory join
//!                                  │yes
//!                                  ▼
//!   held + further build rows ──hash(keys, level 0) % 16──▶ build runs b0..b15
//!   probe rows ────────────────hash(keys, level 0) % 16──▶ probe runs p0..p15
//!   for each pair (bi, pi): build bi in memory, stream pi through it
//!     refused again? split (bi, pi) with the next level's seed (at most
//!     MAX_SPILL_LEVEL; past that the refusal is the query's error)
//! ```
//!
//! Both sides are partitioned by the operator-neutral kernel
//! [`PartitionedSpill`], which the hash aggregate and the set operations
//! share.
//!
//! Rows with equal keys share a partition on both sides, so each pair
//! joins on its own: unmatched rows of the preserved side are emitted per
//! pair (every row is in exactly one pair), rows with a NULL key (which
//! match nothing unless NULL = NULL) are spread over all partitions and
//! come out as unmatched rows, and a join filter applies to the pairs of
//! each partition. Each pair's table is built under the partition's one
//! spillable reservation, in turn. The one global
//! fact, what a null-aware anti join (`NOT IN`) knows about the whole
//! probe side, is gathered while the probe side is partitioned and given
//! to every pair.
//!
//! A shared build (`collect_left`) spills the same way, once: every probe
//! partition then partitions its own probe rows and reads each build run
//! itself. Shared builds only serve joins that never emit build rows, so
//! no matched-bits have to be combined across probe partitions.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::{Stream, StreamExt};

use super::super::keys::JoinKeys;
use super::super::spec::JoinSpec;
use super::super::table::{Built, JoinTable, TableBuilder};
use super::probe::{NotInFacts, ProbeSettings, TableProbe};
use crate::error::{DataflowError, Result};
use crate::execution::{OperatorMemory, PartitionedSpill, SpillRun, TaskContext};
use crate::stream::SendableRecordBatchStream;

/// The build side of a partition: a table in memory, or spilled in
/// [`SPILL_FAN_OUT`](crate::execution::SPILL_FAN_OUT) runs (`None`: no
/// row) split at level 0.
#[derive(Clone)]
pub(super) enum BuildSide {
    Table(Arc<JoinTable>),
    Spilled(Vec<Option<Arc<SpillRun>>>),
}

/// Builds the table from `input`, or, when the pool refuses to hold it,
/// spills what was held and the rest of `input` into partition runs.
pub(super) async fn build_or_spill(
    mut input: SendableRecordBatchStream,
    keys: &JoinKeys,
    schema: &SchemaRef,
    memory: OperatorMemory,
    ctx: &Arc<TaskContext>,
) -> Result<BuildSide> {
    let mut builder = TableBuilder::new(keys, memory);
    while let Some(batch) = input.next().await {
        if builder.push(keys, batch?)?.is_some() {
            let (held, _) = builder.into_batches();
            return spill_build(held, input, keys, schema, ctx).await;
        }
    }
    match builder.finish(schema)? {
        Built::Table(table) => Ok(BuildSide::Table(Arc::new(table))),
        Built::Refused(_, held, _) => spill_build(held, input, keys, schema, ctx).await,
    }
}

async fn spill_build(
    held: Vec<RecordBatch>,
    mut input: SendableRecordBatchStream,
    keys: &JoinKeys,
    schema: &SchemaRef,
    ctx: &Arc<TaskContext>,
) -> Result<BuildSide> {
    let mut runs = null_spreading(PartitionedSpill::new(ctx, schema, keys.left.clone()), keys);
    for batch in held {
        runs.write(&batch)?;
    }
    while let Some(batch) = input.next().await {
        runs.write(&batch?)?;
    }
    let runs = runs.finish()?;
    Ok(BuildSide::Spilled(
        runs.into_iter().map(|r| r.map(Arc::new)).collect(),
    ))
}

/// `runs`, spreading rows with a NULL key unless NULLs are equal: such
/// rows match nothing, so they may go to any partition; spread, they
/// cannot pile up in one that no split makes smaller.
fn null_spreading(runs: PartitionedSpill, keys: &JoinKeys) -> PartitionedSpill {
    if keys.null_equals_null {
        runs
    } else {
        runs.spreading_nulls()
    }
}

/// Build run `i` and probe run `i` of one split.
struct PartitionPair {
    build: Option<Arc<SpillRun>>,
    probe: Option<SpillRun>,
    /// The level of the split that made the pair.
    level: usize,
}

/// What to do with a partition pair.
enum Loaded {
    /// Nothing can come out of it (the reservation back).
    Skip(OperatorMemory),
    /// Its table, and its probe rows to stream through it.
    Table(Arc<JoinTable>, Option<SpillRun>),
    /// Its table does not fit: the pairs of its split (and the
    /// reservation back).
    Split(Vec<PartitionPair>, OperatorMemory),
}

/// Loads partition pairs of one hash join partition.
struct PairLoader {
    ctx: Arc<TaskContext>,
    spec: Arc<JoinSpec>,
    keys: Arc<JoinKeys>,
}

impl PairLoader {
    /// Builds the table of `pair` under `memory` (the partition's spillable
    /// reservation, empty), or splits the pair when the pool refuses it.
    fn load(&self, pair: PartitionPair, memory: OperatorMemory) -> Result<Loaded> {
        if pair.probe.is_none() && !self.spec.tracks_build() {
            return Ok(Loaded::Skip(memory));
        }
        if pair.build.is_none() && self.spec.empty_build_gives_empty() {
            return Ok(Loaded::Skip(memory));
        }
        let mut builder = TableBuilder::of_spilled(&self.keys, memory);
        if let Some(run) = &pair.build {
            for batch in SpillRun::read_shared(run)? {
                if let Some(refused) = builder.push(&self.keys, batch?)? {
                    let (_, memory) = builder.into_batches();
                    return self.split(pair, refused, memory);
                }
            }
        }
        match builder.finish(&self.spec.left_schema)? {
            Built::Table(table) => Ok(Loaded::Table(Arc::new(table), pair.probe)),
            Built::Refused(refused, _, memory) => self.split(pair, refused, memory),
        }
    }

    /// Splits both runs of `pair` with the next level's seed; past the
    /// last level `refused` is the error (one key has more rows than
    /// memory holds).
    fn split(
        &self,
        pair: PartitionPair,
        refused: DataflowError,
        memory: OperatorMemory,
    ) -> Result<Loaded> {
        let level = pair.level + 1;
        let (keys, spec) = (&self.keys, &self.spec);
        let builds = PartitionedSpill::try_new(
            &self.ctx,
            &spec.left_schema,
            keys.left.clone(),
            level,
            refused,
        )?;
        let mut builds = null_spreading(builds, keys);
        let mut probes = builds.alongside(&spec.right_schema, keys.right.clone());
        // One side's runs at a time: the build side's are ended before
        // the probe side's are opened.
        if let Some(run) = pair.build {
            for batch in SpillRun::read_shared(&run)? {
                builds.write(&batch?)?;
            }
        }
        let builds = builds.finish()?;
        if let Some(run) = pair.probe {
            for batch in run.read()? {
                probes.write(&batch?)?;
            }
        }
        Ok(Loaded::Split(
            builds
                .into_iter()
                .zip(probes.finish()?)
                .map(|(build, probe)| PartitionPair {
                    build: build.map(Arc::new),
                    probe,
                    level,
                })
                .collect(),
            memory,
        ))
    }
}

/// The grace join of a partition whose build side spilled in `build_runs`
/// (split at level 0): partitions `right` the same way, then joins the
/// pairs one at a time, splitting those whose table does not fit. Output
/// pieces are not batch-sized (the caller coalesces them).
pub(super) fn grace_join(
    build_runs: Vec<Option<Arc<SpillRun>>>,
    mut right: SendableRecordBatchStream,
    settings: ProbeSettings,
    ctx: Arc<TaskContext>,
) -> impl Stream<Item = Result<RecordBatch>> + Send {
    async_stream::try_stream! {
        let (spec, keys) = (&settings.spec, &settings.keys);
        let mut not_in = settings.null_aware.then(NotInFacts::default);
        let mut runs = null_spreading(
            PartitionedSpill::new(&ctx, &spec.right_schema, keys.right.clone()),
            keys,
        );
        while let Some(batch) = right.next().await {
            let batch = batch?;
            if let Some(facts) = not_in.as_mut() {
                facts.observe(keys, &batch)?;
            }
            runs.write(&batch)?;
        }
        drop(right);
        let mut pairs: Vec<PartitionPair> = build_runs
            .into_iter()
            .zip(runs.finish()?)
            .map(|(build, probe)| PartitionPair { build, probe, level: 0 })
            .collect();
        if not_in.is_some_and(|f| f.removes_every_row()) {
            pairs.clear();
        }
        let loader = PairLoader {
            ctx: Arc::clone(&ctx),
            spec: Arc::clone(spec),
            keys: Arc::clone(keys),
        };
        // One reservation for every pair's table in turn.
        let mut memory = ctx.reserve_spillable(Some("build"));
        while let Some(pair) = pairs.pop() {
            let (table, probe_run) = match loader.load(pair, memory)? {
                Loaded::Skip(m) => {
                    memory = m;
                    continue;
                }
                Loaded::Split(split, m) => {
                    memory = m;
                    pairs.extend(split);
                    tokio::task::yield_now().await;
                    continue;
                }
                Loaded::Table(table, probe_run) => (table, probe_run),
            };
            let mut probe = TableProbe::new(table, &settings);
            if let Some(run) = probe_run.filter(|_| !probe.skips_probe()) {
                for batch in run.read()? {
                    probe.start(batch?)?;
                    while let Some(rows) = probe.next_rows()? {
                        yield rows;
                    }
                    // Reading runs never waits: let other tasks run.
                    tokio::task::yield_now().await;
                }
            }
            probe.end_probe(not_in)?;
            while let Some(rows) = probe.next_build_rows()? {
                yield rows;
            }
            memory = probe.into_memory(&ctx);
        }
    }
}
