//! The execution core: what every operator depends on, and nothing that
//! depends on an operator.
//!
//! - [`Operator`] and its [`OperatorProperties`] (the compiled node's
//!   contract);
//! - [`TaskContext`] and [`ExecConfig`] (what a running partition may use);
//! - the memory pool and [`OperatorMemory`], what stateful operators
//!   reserve from it (`memory.rs`);
//! - spill files: a per-query [`SpillArea`] and the runs operators write
//!   to it when a reservation is refused, plain or hash-partitioned
//!   ([`PartitionedSpill`]) (`spill/`);
//! - [`QueryTasks`] (the query's task set) and [`catch_panic`];
//! - [`Instrumented`], the wrapper `compile` puts around every operator: it
//!   checks partition indices and counts rows, batches and time;
//! - [`BatchBuilder`], the one place that coalesces small batches;
//! - [`canonical_keys`]: float keys as hash-based operators see them
//!   (`-0.0` is `0.0`, one NaN).
//!
//! Which operator a plan node becomes is decided in [`crate::compile`];
//! running a compiled plan is [`crate::runner`].

mod batch_builder;
mod canonical_keys;
pub(crate) mod context;
mod instrumented;
mod memory;
mod operator;
mod spill;
mod tasks;

pub use batch_builder::BatchBuilder;
pub use canonical_keys::{canonical_key, canonical_keys, is_nan, needs_canonical};
pub use context::{ExecConfig, QueryServices, TaskContext};
pub use datafusion_execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
pub use instrumented::Instrumented;
pub use memory::{default_memory_limit, format_bytes, memory_limit, memory_pool, OperatorMemory};
pub use operator::{Operator, OperatorProperties};
pub use spill::{
    compact_views, partition_indices, read_batch_size, remove_stale_spill_dirs, PartitionedSpill,
    SpillArea, SpillReader, SpillRun, SpillWriter, MAX_SPILL_LEVEL, PARTITION_HASH_SEED,
    SPILL_FAN_OUT,
};
pub use tasks::{catch_panic, QueryTasks};
