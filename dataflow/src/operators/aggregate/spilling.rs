//! An [`Aggregator`] kept within its memory reservation.
//!
//! The group table is reserved as it grows. When the pool refuses:
//! - a `Partial` aggregate emits its groups' states early and starts a
//!   fresh table: the final aggregate merges states of equal groups anyway;
//! - a `Final` or `Single` aggregate writes its groups' states (the
//!   [`StateLayout`]) to [`SPILL_FAN_OUT`](crate::execution::SPILL_FAN_OUT) spill runs by hash of the group
//!   keys, starts a fresh table and, at the end of its input, spills that
//!   one too. Each run then holds every state of its groups, in input
//!   order: it is merged alone in a fresh table (in `Final` mode), which
//!   can spill one level deeper in turn, up to
//!   [`MAX_SPILL_LEVEL`](crate::execution::MAX_SPILL_LEVEL);
//! - an ungrouped `Final` or `Single` aggregate has one group, which cannot
//!   be split: the refusal is the query's error.
//!
//! ```text
//!  input ─▶ table ─refused─▶ runs 0..16 ─▶ run 0 ─▶ merge table ─▶ output
//!             │                            run 1 ─▶ merge table ─refused─▶ runs 0..16 ─▶ ...
//!             └──── never refused ────────────────────────────────────────▶ output
//! ```
//!
//! Without a limit nothing is ever refused, and a push costs one
//! reservation resize more than the aggregator's own work.

use std::sync::Arc;

use arrow::array::RecordBatch;

use super::aggregator::Aggregator;
use super::spec::{AggSpec, StateLayout};
use crate::error::DataflowError;
use crate::error::Result;
use crate::execution::{OperatorMemory, PartitionedSpill, SpillRun, TaskContext};
use crate::plan::AggregateMode;

/// What a spilling aggregate needs: where its groups go when they do not
/// fit, and how they are merged back.
pub(super) struct SpillPlan {
    pub(super) layout: StateLayout,
    /// The aggregate in `Final` mode over `layout`.
    pub(super) merge: Arc<AggSpec>,
}

impl SpillPlan {
    /// The spill plan of `spec`, if its groups can be spilled.
    pub(super) fn of(spec: &AggSpec) -> Result<Option<Self>> {
        if !spec.can_spill() {
            return Ok(None);
        }
        let layout = spec.state_layout()?;
        let merge = Arc::new(spec.merging(&layout)?);
        Ok(Some(SpillPlan { layout, merge }))
    }
}

/// The end of a [`GroupTable`]'s input.
pub(super) enum Finished {
    /// Everything fit: the output.
    Output(Vec<RecordBatch>),
    /// The groups went to spill runs: merge each at the next level.
    Spilled(Vec<SpillRun>),
}

/// One group table, at one spill level (0: the operator's input).
pub(super) struct GroupTable<'a> {
    spec: Arc<AggSpec>,
    ctx: &'a Arc<TaskContext>,
    memory: &'a OperatorMemory,
    plan: Option<&'a SpillPlan>,
    level: usize,
    batch_size: usize,
    agg: Aggregator,
    spill: Option<PartitionedSpill>,
    /// Groups were emitted early (`Partial`).
    emitted: bool,
}

impl<'a> GroupTable<'a> {
    pub(super) fn try_new(
        spec: Arc<AggSpec>,
        ctx: &'a Arc<TaskContext>,
        memory: &'a OperatorMemory,
        plan: Option<&'a SpillPlan>,
        level: usize,
        batch_size: usize,
    ) -> Result<Self> {
        let agg = Aggregator::try_new(Arc::clone(&spec))?;
        Ok(GroupTable {
            spec,
            ctx,
            memory,
            plan,
            level,
            batch_size,
            agg,
            spill: None,
            emitted: false,
        })
    }

    /// Folds `batch` into the groups; returns groups emitted early
    /// (`Partial` only).
    pub(super) fn push(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>> {
        self.agg.push(batch)?;
        let Err(refused) = self.memory.try_resize(self.agg.size()) else {
            return Ok(vec![]);
        };
        let early = match (self.spec.mode, self.plan) {
            (AggregateMode::Partial, _) if self.agg.has_rows() => {
                self.emitted = true;
                self.agg.finish(self.batch_size)?
            }
            (AggregateMode::Final | AggregateMode::Single, Some(plan)) => {
                self.spill_groups(plan, refused)?;
                vec![]
            }
            // One group, or nothing to give back: cannot be split.
            _ => return Err(refused),
        };
        self.agg = Aggregator::try_new(Arc::clone(&self.spec))?;
        self.memory.try_resize(self.agg.size())?;
        Ok(early)
    }

    /// Input rows folded into the current groups, and their number.
    pub(super) fn rows_and_groups(&self) -> (usize, usize) {
        self.agg.rows_and_groups()
    }

    /// Emits the groups held now and starts an empty table (`Partial`
    /// only: the final aggregate merges states of equal groups).
    pub(super) fn emit_all(&mut self) -> Result<Vec<RecordBatch>> {
        if self.spec.mode != AggregateMode::Partial {
            return Err(DataflowError::Internal(format!(
                "a {:?} aggregate cannot emit its groups before the end of its input",
                self.spec.mode
            )));
        }
        let out = if self.agg.has_rows() {
            self.agg.finish(self.batch_size)?
        } else {
            vec![]
        };
        self.emitted = true;
        self.agg = Aggregator::try_new(Arc::clone(&self.spec))?;
        self.memory.try_resize(self.agg.size())?;
        Ok(out)
    }

    /// Ends the input: the output, or the spill runs to merge.
    pub(super) fn finish(mut self) -> Result<Finished> {
        let Some(plan) = self.plan.filter(|_| self.spill.is_some()) else {
            if self.emitted && !self.agg.has_rows() {
                // Nothing since the last early emit (which an empty table
                // would otherwise follow with the empty input's groups).
                return Ok(Finished::Output(vec![]));
            }
            return Ok(Finished::Output(self.agg.finish(self.batch_size)?));
        };
        self.write_groups(plan)?;
        self.memory.free();
        let runs = match self.spill.take() {
            Some(spill) => spill.finish()?,
            None => vec![],
        };
        Ok(Finished::Spilled(runs.into_iter().flatten().collect()))
    }

    /// Writes the groups to this level's spill runs (opened now on the
    /// first spill, or the refusal when this level may not spill).
    fn spill_groups(&mut self, plan: &SpillPlan, refused: DataflowError) -> Result<()> {
        if self.spill.is_none() {
            self.spill = Some(PartitionedSpill::try_new(
                self.ctx,
                &plan.layout.schema,
                plan.layout.keys.clone(),
                self.level,
                refused,
            )?);
        }
        self.write_groups(plan)
    }

    fn write_groups(&mut self, plan: &SpillPlan) -> Result<()> {
        let (Some(spill), Some(states)) = (
            self.spill.as_mut(),
            self.agg.emit_states(&plan.layout.schema)?,
        ) else {
            return Ok(());
        };
        spill.write(&states)
    }
}
