//! Engine settings, shared by the session (which plans and runs with them)
//! and the public [`Engine`](crate::Engine) API.

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Partitions per operator (parallelism); default: number of cores.
    pub target_partitions: usize,
    /// Target rows per batch; default 8192.
    pub batch_size: usize,
    /// Bytes that operator state (hash tables, sort and join buffers) of
    /// all queries of the engine may hold at once. Operators that reach it
    /// spill to `spill_dir`; state that cannot spill fails the query with
    /// a `resources exhausted` error. Default: three quarters of the
    /// machine's (or the cgroup's) memory
    /// ([`ffq_dataflow::execution::default_memory_limit`]); `None`: no
    /// limit.
    pub memory_limit: Option<usize>,
    /// Where queries spill operator state when the memory limit is
    /// reached (a directory per query, removed when it ends); default
    /// `None`: the system temp dir.
    pub spill_dir: Option<std::path::PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            batch_size: 8192,
            memory_limit: ffq_dataflow::execution::default_memory_limit(),
            spill_dir: None,
        }
    }
}

impl EngineConfig {
    /// The settings with every count at least 1.
    pub(crate) fn normalized(self) -> Self {
        EngineConfig {
            target_partitions: self.target_partitions.max(1),
            batch_size: self.batch_size.max(1),
            memory_limit: self.memory_limit,
            spill_dir: self.spill_dir,
        }
    }
}
