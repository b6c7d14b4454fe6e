//! FFQ's physical plan: partitioned operators and explicit exchanges.
//!
//! The plan is plain data (serde) so that it can be shipped to workers; the
//! [`crate::runner`] compiles it into running stream operators. Every node
//! carries its output schema, and the number of output partitions follows
//! from the node kinds (see [`PhysicalPlan::output_partitions`]).

use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

use crate::expr::{AggExpr, PhysExpr, SortExpr};
use crate::tree::Tree;

mod describe;
mod node_id;
pub mod unnest;
pub mod window;
mod write;

pub use node_id::{NodeId, NumberedNode};
pub use unnest::{UnnestList, UnnestNulls};
pub use window::WindowExpr;
pub use write::{write_count_schema, FileFormat, FileSink, WriteTarget};

/// Where a scan reads its rows from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScanSource {
    /// A memory table registered with the engine; partition `p` of `n`
    /// reads the batches `i` with `i % n == p`.
    Memory { table: String, partitions: usize },
    /// Parquet files; each partition reads its list of splits.
    Parquet { partitions: Vec<Vec<ParquetSplit>> },
    /// CSV files; each partition reads its list of files.
    Csv {
        partitions: Vec<Vec<String>>,
        has_header: bool,
        delimiter: u8,
    },
    /// Newline-delimited JSON files; each partition reads its list of
    /// files.
    Json { partitions: Vec<Vec<String>> },
    /// A TPC-H table generated in-process; partition `p` of `n` generates
    /// part `p + 1` of `n`.
    Tpch {
        table: TpchTable,
        scale_factor: f64,
        partitions: usize,
    },
}

impl ScanSource {
    /// The files the scan opens (none for generated and memory tables).
    pub fn files(&self) -> Vec<&str> {
        match self {
            ScanSource::Parquet { partitions } => partitions
                .iter()
                .flatten()
                .map(|split| split.path.as_str())
                .collect(),
            ScanSource::Csv { partitions, .. } | ScanSource::Json { partitions } => {
                partitions.iter().flatten().map(String::as_str).collect()
            }
            ScanSource::Memory { .. } | ScanSource::Tpch { .. } => vec![],
        }
    }
}

/// Row groups of one Parquet file read by one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParquetSplit {
    pub path: String,
    pub row_groups: Vec<usize>,
}

/// The eight TPC-H tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TpchTable {
    Nation,
    Region,
    Part,
    Supplier,
    PartSupp,
    Customer,
    Orders,
    LineItem,
}

impl TpchTable {
    pub const ALL: [TpchTable; 8] = [
        TpchTable::Nation,
        TpchTable::Region,
        TpchTable::Part,
        TpchTable::Supplier,
        TpchTable::PartSupp,
        TpchTable::Customer,
        TpchTable::Orders,
        TpchTable::LineItem,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TpchTable::Nation => "nation",
            TpchTable::Region => "region",
            TpchTable::Part => "part",
            TpchTable::Supplier => "supplier",
            TpchTable::PartSupp => "partsupp",
            TpchTable::Customer => "customer",
            TpchTable::Orders => "orders",
            TpchTable::LineItem => "lineitem",
        }
    }
}

/// How an exchange distributes its input rows over its output partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Partitioning {
    /// Rows with equal key values go to the same partition.
    Hash {
        keys: Vec<PhysExpr>,
        partitions: usize,
    },
    /// Batches are dealt out in turn.
    RoundRobin { partitions: usize },
    /// Everything goes to a single partition.
    Gather,
    /// Producer `p` sends all its rows to partition `p`: the partitions
    /// move unchanged to the next stage (the distributed runtime cuts a
    /// stage there so that per-partition work runs on workers and only the
    /// merge runs in the client).
    Preserve { partitions: usize },
}

impl Partitioning {
    pub fn partitions(&self) -> usize {
        match self {
            Partitioning::Hash { partitions, .. }
            | Partitioning::RoundRobin { partitions }
            | Partitioning::Preserve { partitions } => *partitions,
            Partitioning::Gather => 1,
        }
    }
}

/// Aggregation phases: partial aggregates per input partition, then final
/// aggregates merging partial states after an exchange on the group keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggregateMode {
    /// Emits group keys followed by the accumulator states.
    Partial,
    /// Reads the output of `Partial` and emits keys and final values.
    Final,
    /// Both phases at once (the input is a single partition).
    Single,
}

/// Set operations with multiset semantics (NULL equals NULL): a row that
/// appears `m` times on the left and `n` times on the right appears
/// `min(m, n)` times in `INTERSECT ALL` and `max(m - n, 0)` times in
/// `EXCEPT ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SetOpKind {
    IntersectAll,
    ExceptAll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinType {
    Inner,
    Left,
    Right,
    Full,
    LeftSemi,
    LeftAnti,
    RightSemi,
    RightAnti,
    /// Every left row once, with one more Boolean column (the mark): true
    /// when the row has a match, false when not (DataFusion's plan of
    /// `EXISTS` / `IN (subquery)` inside `OR` or in the SELECT list).
    LeftMark,
    /// [`JoinType::LeftMark`] with the sides exchanged: every right row
    /// once, with its mark.
    RightMark,
}

impl JoinType {
    /// Whether rows of the left (build) side that found no match appear in
    /// the output: such joins must see all of the right side per build.
    pub fn emits_unmatched_left(self) -> bool {
        matches!(
            self,
            JoinType::Left
                | JoinType::Full
                | JoinType::LeftSemi
                | JoinType::LeftAnti
                | JoinType::LeftMark
        )
    }

    /// Whether the output ends with a mark column (see
    /// [`JoinType::LeftMark`]).
    pub fn is_mark(self) -> bool {
        matches!(self, JoinType::LeftMark | JoinType::RightMark)
    }
}

/// A physical plan node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PhysicalPlan {
    Scan {
        source: ScanSource,
        /// The full schema of the table.
        table_schema: SchemaRef,
        /// Indices of the table columns to read; `None` reads all.
        projection: Option<Vec<usize>>,
        /// Conjuncts over the *table* schema that may be used to skip data
        /// (row groups); rows are still filtered by a `Filter` above.
        pruning: Vec<PhysExpr>,
        /// The output schema (the projected table schema).
        schema: SchemaRef,
    },
    /// Literal rows (`VALUES`, `SELECT 1`): one partition.
    Values {
        schema: SchemaRef,
        rows: Vec<Vec<PhysExpr>>,
    },
    /// No rows, or one row of no columns.
    Empty {
        schema: SchemaRef,
        produce_one_row: bool,
    },
    Filter {
        input: Box<PhysicalPlan>,
        predicate: PhysExpr,
    },
    Projection {
        input: Box<PhysicalPlan>,
        exprs: Vec<PhysExpr>,
        schema: SchemaRef,
    },
    Aggregate {
        input: Box<PhysicalPlan>,
        mode: AggregateMode,
        /// Group keys over the aggregate's original input (for `Final`, the
        /// keys are the first columns of the partial output).
        group_by: Vec<PhysExpr>,
        /// GROUPING SETS / ROLLUP / CUBE: one entry per grouping set, with
        /// one flag per key of `group_by`, `true` when the set leaves the
        /// key out (it is NULL in that set's rows). Empty for a plain GROUP
        /// BY. When not empty, the output has a `__grouping_id` column after
        /// the keys (see [`crate::operators::aggregate`]), and `Final` reads
        /// it as one more key column.
        #[serde(default)]
        grouping_sets: Vec<Vec<bool>>,
        aggregates: Vec<AggExpr>,
        /// The schema the aggregate expressions are written against (the
        /// input of the `Partial` phase).
        aggregate_input_schema: SchemaRef,
        schema: SchemaRef,
    },
    HashJoin {
        /// The build side.
        left: Box<PhysicalPlan>,
        /// The probe side.
        right: Box<PhysicalPlan>,
        join_type: JoinType,
        /// Equi-join keys: (left expr, right expr).
        on: Vec<(PhysExpr, PhysExpr)>,
        /// An extra condition over left columns followed by right columns.
        filter: Option<PhysExpr>,
        /// `IS NOT DISTINCT FROM` keys: NULL matches NULL.
        null_equals_null: bool,
        /// `NOT IN` semantics for a left anti join (see the operator).
        null_aware: bool,
        /// Left is a single partition shared by every right partition
        /// (only for joins that never emit unmatched left rows).
        collect_left: bool,
        schema: SchemaRef,
    },
    /// Joins without equi keys: every left row against every right row.
    NestedLoopJoin {
        left: Box<PhysicalPlan>,
        right: Box<PhysicalPlan>,
        join_type: JoinType,
        filter: Option<PhysExpr>,
        schema: SchemaRef,
    },
    /// Sorts each partition; with `fetch`, keeps only the first rows (top-k).
    Sort {
        input: Box<PhysicalPlan>,
        order: Vec<SortExpr>,
        fetch: Option<usize>,
    },
    /// Merges sorted partitions into one sorted partition.
    SortPreservingMerge {
        input: Box<PhysicalPlan>,
        order: Vec<SortExpr>,
        fetch: Option<usize>,
    },
    /// Skips `skip` rows then passes at most `fetch` rows, per partition.
    Limit {
        input: Box<PhysicalPlan>,
        skip: usize,
        fetch: Option<usize>,
    },
    /// The partitions of all inputs, side by side.
    Union {
        inputs: Vec<PhysicalPlan>,
        schema: SchemaRef,
    },
    /// `INTERSECT ALL` / `EXCEPT ALL`: emits left rows, as many as
    /// [`SetOpKind`] says, comparing the key pairs `on` (all columns). Left
    /// partition `p` is matched against right partition `p` only: both
    /// sides have the same partitions, hash-partitioned on the keys (or
    /// one partition each). Output: the left columns.
    SetOperation {
        left: Box<PhysicalPlan>,
        right: Box<PhysicalPlan>,
        op: SetOpKind,
        on: Vec<(PhysExpr, PhysExpr)>,
        schema: SchemaRef,
    },
    /// Window functions over each partition. Each window partition lies in
    /// one input partition (hash exchange on the PARTITION BY keys, or a
    /// gather), and the input partitions are sorted by
    /// [`window::required_order`] of `exprs` (which must
    /// share PARTITION BY). Output: the input columns, then one column per
    /// expression.
    Window {
        input: Box<PhysicalPlan>,
        exprs: Vec<WindowExpr>,
        schema: SchemaRef,
    },
    /// Flattens list columns into rows and struct columns into their
    /// fields, per partition. Output, in input column order: for a column
    /// of `lists`, one column per entry naming it (in `lists` order); for
    /// a column of `structs`, its fields; any other column repeated once
    /// per output row of its input row. Several lists of one row are
    /// zipped: the row yields as many rows as its longest list, shorter
    /// lists padded with NULLs.
    Unnest {
        input: Box<PhysicalPlan>,
        lists: Vec<UnnestList>,
        structs: Vec<usize>,
        nulls: UnnestNulls,
        schema: SchemaRef,
    },
    /// Redistributes rows between partitions; a stage boundary.
    Exchange {
        input: Box<PhysicalPlan>,
        partitioning: Partitioning,
    },
    /// A user-defined operator, built by the factory registered as `name`
    /// (see [`crate::custom`]) from `config` and the inputs.
    Custom {
        name: String,
        config: String,
        inputs: Vec<PhysicalPlan>,
        schema: SchemaRef,
        partitions: usize,
    },
    /// Writes each input partition to a file of `sink` and emits one row
    /// per partition: the number of rows it wrote (`count`, UInt64).
    Write {
        input: Box<PhysicalPlan>,
        sink: FileSink,
        schema: SchemaRef,
    },
    /// The output of an upstream stage, in a stage cut out of a plan for
    /// the distributed runtime (see [`crate::stage`]): it replaces the
    /// stage's input exchange. Partition `p` reads partition `p` of every
    /// task of `stage`, or with `preserve` of task `p` only.
    StageInput {
        stage: u32,
        partitions: usize,
        preserve: bool,
        schema: SchemaRef,
    },
}

impl PhysicalPlan {
    pub fn schema(&self) -> SchemaRef {
        match self {
            PhysicalPlan::Scan { schema, .. }
            | PhysicalPlan::Values { schema, .. }
            | PhysicalPlan::Empty { schema, .. }
            | PhysicalPlan::Projection { schema, .. }
            | PhysicalPlan::Aggregate { schema, .. }
            | PhysicalPlan::HashJoin { schema, .. }
            | PhysicalPlan::NestedLoopJoin { schema, .. }
            | PhysicalPlan::Union { schema, .. }
            | PhysicalPlan::SetOperation { schema, .. }
            | PhysicalPlan::Window { schema, .. }
            | PhysicalPlan::Unnest { schema, .. }
            | PhysicalPlan::StageInput { schema, .. }
            | PhysicalPlan::Write { schema, .. }
            | PhysicalPlan::Custom { schema, .. } => schema.clone(),
            PhysicalPlan::Filter { input, .. }
            | PhysicalPlan::Sort { input, .. }
            | PhysicalPlan::SortPreservingMerge { input, .. }
            | PhysicalPlan::Limit { input, .. }
            | PhysicalPlan::Exchange { input, .. } => input.schema(),
        }
    }

    pub fn output_partitions(&self) -> usize {
        match self {
            PhysicalPlan::Scan { source, .. } => match source {
                ScanSource::Memory { partitions, .. } | ScanSource::Tpch { partitions, .. } => {
                    *partitions
                }
                ScanSource::Parquet { partitions } => partitions.len(),
                ScanSource::Csv { partitions, .. } | ScanSource::Json { partitions } => {
                    partitions.len()
                }
            }
            .max(1),
            PhysicalPlan::Values { .. }
            | PhysicalPlan::Empty { .. }
            | PhysicalPlan::SortPreservingMerge { .. } => 1,
            PhysicalPlan::Filter { input, .. }
            | PhysicalPlan::Projection { input, .. }
            | PhysicalPlan::Aggregate { input, .. }
            | PhysicalPlan::Sort { input, .. }
            | PhysicalPlan::Limit { input, .. }
            | PhysicalPlan::Window { input, .. }
            | PhysicalPlan::Write { input, .. }
            | PhysicalPlan::Unnest { input, .. } => input.output_partitions(),
            PhysicalPlan::HashJoin { right, .. } => right.output_partitions(),
            PhysicalPlan::NestedLoopJoin { right, .. } => right.output_partitions(),
            PhysicalPlan::SetOperation { left, .. } => left.output_partitions(),
            PhysicalPlan::Union { inputs, .. } => {
                inputs.iter().map(|i| i.output_partitions()).sum()
            }
            PhysicalPlan::Exchange { partitioning, .. } => partitioning.partitions(),
            PhysicalPlan::StageInput { partitions, .. }
            | PhysicalPlan::Custom { partitions, .. } => (*partitions).max(1),
        }
    }

    /// The inputs of this node (also through [`Tree`]; kept inherent so
    /// callers need not import the trait).
    pub fn children(&self) -> Vec<&PhysicalPlan> {
        Tree::children(self)
    }

    /// The inputs of this node, mutable (to rewrite a plan in place).
    pub fn children_mut(&mut self) -> Vec<&mut PhysicalPlan> {
        Tree::children_mut(self)
    }
}

/// The inputs of a plan node, as shared (`iter`, `as_ref`) or mutable
/// (`iter_mut`, `as_mut`) references: the one listing of a node's children.
macro_rules! plan_children {
    ($plan:expr, $iter:ident, $as_ref:ident) => {
        match $plan {
            PhysicalPlan::Scan { .. }
            | PhysicalPlan::Values { .. }
            | PhysicalPlan::Empty { .. }
            | PhysicalPlan::StageInput { .. } => vec![],
            PhysicalPlan::Filter { input, .. }
            | PhysicalPlan::Projection { input, .. }
            | PhysicalPlan::Aggregate { input, .. }
            | PhysicalPlan::Sort { input, .. }
            | PhysicalPlan::SortPreservingMerge { input, .. }
            | PhysicalPlan::Limit { input, .. }
            | PhysicalPlan::Window { input, .. }
            | PhysicalPlan::Unnest { input, .. }
            | PhysicalPlan::Write { input, .. }
            | PhysicalPlan::Exchange { input, .. } => vec![input.$as_ref()],
            PhysicalPlan::HashJoin { left, right, .. }
            | PhysicalPlan::NestedLoopJoin { left, right, .. }
            | PhysicalPlan::SetOperation { left, right, .. } => {
                vec![left.$as_ref(), right.$as_ref()]
            }
            PhysicalPlan::Union { inputs, .. } | PhysicalPlan::Custom { inputs, .. } => {
                inputs.$iter().collect()
            }
        }
    };
}

impl Tree for PhysicalPlan {
    fn children(&self) -> Vec<&Self> {
        plan_children!(self, iter, as_ref)
    }

    fn children_mut(&mut self) -> Vec<&mut Self> {
        plan_children!(self, iter_mut, as_mut)
    }
}
