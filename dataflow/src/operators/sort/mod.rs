//! Sorting: the per-partition sort, top-k, and the merge of sorted
//! partitions, with the kernels they share.
//!
//! - [`keys`]: [`SortKeys`] (compiled sort expressions and their row
//!   converter) and [`SortedRun`];
//! - [`merge`]: [`Merger`], a k-way merge of sorted inputs over row-encoded
//!   keys, fed by the caller (in-memory runs, spilled runs or streams);
//! - `external`: the runs of one [`Sort`] partition, spilled to disk when
//!   its memory reservation is refused, and merged back;
//! - the operators: [`Sort`] (`full_sort`), [`topk::TopK`],
//!   [`preserving_merge::SortPreservingMerge`].

mod external;
mod full_sort;
pub mod keys;
pub mod merge;
pub mod preserving_merge;
#[cfg(test)]
pub(crate) mod tests;
pub mod topk;

pub use full_sort::Sort;
pub use keys::{take_batch, SortKeys, SortedRun};
pub use merge::{merge_runs, slices, MergeStep, Merger, RunMerge, RunSource};
