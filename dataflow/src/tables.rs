//! Memory tables the scan operator reads by name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;

/// Looks up the batches of a memory table.
pub trait MemoryTables: Send + Sync {
    fn batches(&self, table: &str) -> Option<Arc<Vec<RecordBatch>>>;
}

/// A simple map of memory tables.
#[derive(Default)]
pub struct MemoryTableMap {
    tables: RwLock<HashMap<String, Arc<Vec<RecordBatch>>>>,
}

impl MemoryTableMap {
    pub fn insert(&self, name: impl Into<String>, batches: Vec<RecordBatch>) {
        if let Ok(mut t) = self.tables.write() {
            t.insert(name.into(), Arc::new(batches));
        }
    }

    pub fn remove(&self, name: &str) {
        if let Ok(mut t) = self.tables.write() {
            t.remove(name);
        }
    }
}

impl MemoryTables for MemoryTableMap {
    fn batches(&self, table: &str) -> Option<Arc<Vec<RecordBatch>>> {
        self.tables.read().ok()?.get(table).cloned()
    }
}
