//! The memory pool and what operators reserve from it.
//!
//! One pool per engine (embedded) or per worker: DataFusion's
//! [`FairSpillPool`] under a limit, or its [`UnboundedMemoryPool`] without
//! one, wrapped in a
//! [`TrackConsumersPool`] so that a refusal can say who holds what. Every
//! operator partition that holds state (hash tables, buffered batches)
//! takes an [`OperatorMemory`] from its [`super::TaskContext`] and resizes
//! it to what its state holds; the same call records the peak that
//! `EXPLAIN ANALYZE` shows. Dropping the `OperatorMemory` (with the
//! operator's stream, or with a shared join build) gives the bytes back.
//!
//! Reservations are spillable or not. The fair pool gives unspillable ones
//! what they ask while it lasts, and each spillable one at most an equal
//! share of the rest: a refused spillable reservation tells its operator
//! to spill (see `spill.rs`), so a large hash table cannot starve the
//! operators that come after it. A refused reservation that cannot be
//! answered by spilling ends the query with
//! [`DataflowError::ResourcesExhausted`], naming the operator, what it
//! needs, the limit and the largest holders.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion_common::DataFusionError;
use datafusion_execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryConsumerMetrics, MemoryLimit, MemoryPool,
    MemoryReservation, TrackConsumersPool, UnboundedMemoryPool,
};

use crate::error::{DataflowError, Result};

/// How many of the largest holders a resources-exhausted error names.
const TOP_HOLDERS: usize = 5;

/// A memory pool of `limit` bytes (`None`: unbounded) that tracks its
/// consumers. Make one per engine or worker and share it between queries:
/// the limit holds for all queries running at once.
pub fn memory_pool(limit: Option<usize>) -> Arc<dyn MemoryPool> {
    // `TOP_HOLDERS` is a non-zero constant; `MIN` is never used.
    let top = NonZeroUsize::new(TOP_HOLDERS).unwrap_or(NonZeroUsize::MIN);
    match limit {
        Some(bytes) => Arc::new(TrackConsumersPool::new(FairSpillPool::new(bytes), top)),
        None => Arc::new(TrackConsumersPool::new(UnboundedMemoryPool::default(), top)),
    }
}

/// The share of the machine's memory an engine or worker limits itself to
/// by default: the rest is for what the pool does not count (batches in
/// flight, exchange channels, the allocator's slack) and for other
/// processes.
const DEFAULT_SHARE: f64 = 0.75;

/// The default memory limit: three quarters of the memory this process may
/// use, the machine's (`MemTotal`) or its cgroup's limit if lower. `None`
/// where neither can be read (then there is no limit).
pub fn default_memory_limit() -> Option<usize> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024))
        });
    // cgroup v2, then v1; "max" (or an absurd v1 value) means no limit.
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok())
    .filter(|&b| b < (1 << 60));
    let total = match (machine, cgroup) {
        (Some(m), Some(c)) => m.min(c),
        (m, c) => m.or(c)?,
    };
    Some((total as f64 * DEFAULT_SHARE) as usize)
}

/// The limit of `pool` in bytes, when it has one.
pub fn memory_limit(pool: &dyn MemoryPool) -> Option<usize> {
    match pool.memory_limit() {
        MemoryLimit::Finite(bytes) => Some(bytes),
        MemoryLimit::Infinite | MemoryLimit::Unknown => None,
    }
}

/// The state memory of one operator partition: reserved from the pool and
/// recorded as the partition's peak, in one call ([`OperatorMemory::try_resize`]).
/// The bytes go back to the pool when it is dropped.
#[derive(Debug)]
pub struct OperatorMemory {
    reservation: MemoryReservation,
    pool: Arc<dyn MemoryPool>,
    /// The peak slot of the operator partition (see `Instrumented`).
    peak: Arc<AtomicU64>,
}

impl OperatorMemory {
    pub(crate) fn new(
        pool: &Arc<dyn MemoryPool>,
        name: String,
        peak: Arc<AtomicU64>,
        can_spill: bool,
    ) -> Self {
        OperatorMemory {
            reservation: MemoryConsumer::new(name)
                .with_can_spill(can_spill)
                .register(pool),
            pool: Arc::clone(pool),
            peak,
        }
    }

    /// Sets the reservation to `bytes`, what the state holds now, and
    /// records the peak. Fails with [`DataflowError::ResourcesExhausted`]
    /// when the pool cannot give the difference; the reservation is then
    /// unchanged.
    pub fn try_resize(&self, bytes: usize) -> Result<()> {
        self.peak.fetch_max(bytes as u64, Ordering::Relaxed);
        self.reservation
            .try_resize(bytes)
            .map_err(|e| self.exhausted(bytes, e))
    }

    /// Grows the reservation by `bytes` (see [`OperatorMemory::try_resize`]).
    pub fn try_grow(&self, bytes: usize) -> Result<()> {
        self.try_resize(self.size().saturating_add(bytes))
    }

    /// Bytes reserved now.
    pub fn size(&self) -> usize {
        self.reservation.size()
    }

    /// Gives every reserved byte back to the pool.
    pub fn free(&self) {
        self.reservation.free();
    }

    /// The error for a refused reservation of `needs` bytes in all.
    fn exhausted(&self, needs: usize, e: DataFusionError) -> DataflowError {
        let DataFusionError::ResourcesExhausted(detail) = e else {
            return DataflowError::DataFusion(e);
        };
        let holders = match top_holders(&self.pool) {
            Some(h) if h.is_empty() => "nothing else held".to_string(),
            Some(h) => h
                .iter()
                .map(|c| format!("{} holds {}", c.name, format_bytes(c.reserved)))
                .collect::<Vec<_>>()
                .join(", "),
            // A pool that does not track its consumers: its own words.
            None => detail,
        };
        DataflowError::ResourcesExhausted {
            operator: self.reservation.consumer().name().to_string(),
            needs,
            limit: memory_limit(self.pool.as_ref()),
            holders,
        }
    }
}

/// `bytes` for people: exact below 1 KiB, else in binary units with one
/// decimal (`1.5 MiB`), the units `--memory-limit` accepts.
pub fn format_bytes(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The consumers holding the most, largest first, if `pool` tracks them.
fn top_holders(pool: &Arc<dyn MemoryPool>) -> Option<Vec<MemoryConsumerMetrics>> {
    let mut all = if let Some(p) = pool.downcast_ref::<TrackConsumersPool<FairSpillPool>>() {
        p.metrics()
    } else if let Some(p) = pool.downcast_ref::<TrackConsumersPool<UnboundedMemoryPool>>() {
        p.metrics()
    } else {
        return None;
    };
    all.retain(|c| c.reserved > 0);
    all.sort_by_key(|c| std::cmp::Reverse(c.reserved));
    all.truncate(TOP_HOLDERS);
    Some(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(pool: &Arc<dyn MemoryPool>, name: &str) -> OperatorMemory {
        OperatorMemory::new(pool, name.to_string(), Arc::new(AtomicU64::new(0)), false)
    }

    #[test]
    fn spillable_reservations_share_what_unspillable_ones_leave() {
        let pool = memory_pool(Some(4096));
        let spillable =
            |name: &str| OperatorMemory::new(&pool, name.into(), Arc::new(AtomicU64::new(0)), true);
        let fixed = memory(&pool, "fixed");
        fixed.try_resize(1096).unwrap_or_else(|e| panic!("{e}"));
        let a = spillable("a");
        let b = spillable("b");
        // 3000 bytes left, two spillable consumers: 1500 each.
        a.try_resize(1500).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.try_resize(1501).is_err());
        b.try_resize(1500).unwrap_or_else(|e| panic!("{e}"));
        drop(b);
        // Alone, `a` may have all that is left.
        a.try_resize(3000).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn the_default_limit_is_a_share_of_the_machine() {
        if let Some(limit) = default_memory_limit() {
            assert!(limit > 0);
            if let Some(kib) = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
                t.lines()
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<usize>()
                    .ok()
            }) {
                assert!(limit <= kib * 1024 * 3 / 4 + 1, "{limit}");
            }
        }
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(format_bytes(0), "0 bytes");
        assert_eq!(format_bytes(1023), "1023 bytes");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn refusal_names_operator_limit_and_holders() {
        let pool = memory_pool(Some(4096));
        let a = memory(&pool, "HashJoin (node 2, partition 0) build");
        a.try_resize(3000).unwrap_or_else(|e| panic!("{e}"));
        let b = memory(&pool, "Sort (node 1, partition 0)");
        b.try_resize(1000).unwrap_or_else(|e| panic!("{e}"));
        let err = b.try_resize(2000).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "resources exhausted: Sort (node 1, partition 0) needs 2.0 KiB, \
                 memory limit 4.0 KiB (HashJoin (node 2, partition 0) build holds \
                 2.9 KiB, Sort (node 1, partition 0) holds 1000 bytes)"
            )
        );
        // A refused reservation is unchanged; a freed one gives bytes back.
        assert_eq!(b.size(), 1000);
        drop(a);
        b.try_resize(3000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pool.reserved(), 3000);
        b.free();
        assert_eq!(pool.reserved(), 0);
        assert_eq!(memory_limit(pool.as_ref()), Some(4096));
    }

    #[test]
    fn peak_is_recorded_and_unbounded_never_refuses() {
        let pool = memory_pool(None);
        let peak = Arc::new(AtomicU64::new(0));
        let m = OperatorMemory::new(&pool, "x".into(), Arc::clone(&peak), false);
        m.try_resize(1 << 40).unwrap_or_else(|e| panic!("{e}"));
        m.try_resize(10).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(peak.load(Ordering::Relaxed), 1 << 40);
        assert_eq!(memory_limit(pool.as_ref()), None);
        drop(m);
        assert_eq!(pool.reserved(), 0);
    }
}
