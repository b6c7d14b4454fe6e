//! Engine settings, shared by the session (which plans and runs with them)
//! and the public [`Engine`](crate::Engine) API.

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Partitions per operator (parallelism); default: number of cores.
    pub target_partitions: usize,
    /// Target rows per batch; default 8192.
    pub batch_size: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            batch_size: 8192,
        }
    }
}

impl EngineConfig {
    /// The settings with every count at least 1.
    pub(crate) fn normalized(self) -> Self {
        EngineConfig {
            target_partitions: self.target_partitions.max(1),
            batch_size: self.batch_size.max(1),
        }
    }
}
