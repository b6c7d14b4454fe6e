//! Memory tables the scan operator reads by name.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use datafusion_execution::memory_pool::MemoryPool;

use crate::error::Result;
use crate::execution::OperatorMemory;

/// Looks up the batches of a memory table.
pub trait MemoryTables: Send + Sync {
    fn batches(&self, table: &str) -> Option<Arc<Vec<RecordBatch>>>;
}

/// A map of memory tables. With a memory pool
/// ([`MemoryTableMap::with_memory_pool`]) each table reserves its bytes
/// there for as long as it is held: a table that does not fit is refused
/// with a `resources exhausted` error, and queries get what tables leave.
#[derive(Default)]
pub struct MemoryTableMap {
    tables: RwLock<HashMap<String, MemoryTable>>,
    pool: Option<Arc<dyn MemoryPool>>,
}

struct MemoryTable {
    batches: Arc<Vec<RecordBatch>>,
    /// The table's bytes in the pool; given back when the table goes.
    memory: Option<OperatorMemory>,
}

impl MemoryTableMap {
    pub fn with_memory_pool(pool: Arc<dyn MemoryPool>) -> Self {
        MemoryTableMap {
            tables: Default::default(),
            pool: Some(pool),
        }
    }

    /// Holds `batches` as table `name` (replacing one of that name). Fails
    /// with `resources exhausted` when the pool cannot hold them; the
    /// table of that name is then unchanged.
    pub fn insert(&self, name: impl Into<String>, batches: Vec<RecordBatch>) -> Result<()> {
        let name = name.into();
        let Ok(mut tables) = self.tables.write() else {
            return Ok(());
        };
        let memory = match &self.pool {
            Some(pool) => {
                let bytes = batches.iter().map(|b| b.get_array_memory_size()).sum();
                // A table replaced by a longer version of itself (INSERT)
                // shares its buffers with it: resize its reservation
                // instead of holding both.
                let m = match tables.get_mut(&name).and_then(|t| t.memory.take()) {
                    Some(m) => m,
                    None => OperatorMemory::new(
                        pool,
                        format!("memory table {name}"),
                        Arc::new(AtomicU64::new(0)),
                        false,
                    ),
                };
                let resized = m.try_resize(bytes);
                if let Some(old) = tables.get_mut(&name) {
                    if resized.is_err() {
                        old.memory = Some(m);
                        return resized;
                    }
                }
                resized?;
                Some(m)
            }
            None => None,
        };
        let table = MemoryTable {
            batches: Arc::new(batches),
            memory,
        };
        tables.insert(name, table);
        Ok(())
    }

    pub fn remove(&self, name: &str) {
        if let Ok(mut t) = self.tables.write() {
            t.remove(name);
        }
    }
}

impl MemoryTables for MemoryTableMap {
    fn batches(&self, table: &str) -> Option<Arc<Vec<RecordBatch>>> {
        self.tables
            .read()
            .ok()?
            .get(table)
            .map(|t| Arc::clone(&t.batches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::memory_pool;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .unwrap()
    }

    #[test]
    fn tables_reserve_their_bytes_and_a_refused_one_changes_nothing() {
        let pool = memory_pool(Some(64 * 1024));
        let map = MemoryTableMap::with_memory_pool(Arc::clone(&pool));
        map.insert("t", vec![batch(1000)]).unwrap();
        let held = pool.reserved();
        assert!(held >= 8000, "{held}");
        // Replacing the table with a longer version resizes its bytes.
        map.insert("t", vec![batch(1000), batch(1000)]).unwrap();
        assert!(pool.reserved() >= 16000 && pool.reserved() < 2 * held + 16000);
        let err = map
            .insert("t", vec![batch(100_000)])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("resources exhausted: memory table t needs "),
            "{err}"
        );
        assert_eq!(map.batches("t").map(|b| b.len()), Some(2));
        map.remove("t");
        assert_eq!(pool.reserved(), 0);
    }
}
