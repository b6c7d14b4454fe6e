//! Scans: the leaves of a plan, one module per source (memory tables,
//! generated TPC-H tables, Parquet, CSV and JSON files), plus what the file
//! scans share ([`files`]) and Parquet row-group pruning ([`pruning`]).

pub mod csv;
pub mod files;
pub mod json;
pub mod memory;
pub mod parquet;
pub mod pruning;
pub mod tpch;
