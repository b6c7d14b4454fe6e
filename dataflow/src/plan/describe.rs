//! How plan nodes read in `EXPLAIN`: one line per node, indented trees.

use std::fmt;

use super::{Partitioning, PhysicalPlan, ScanSource};

impl PhysicalPlan {
    /// A one-line description of this node (without its children).
    pub fn describe(&self) -> String {
        fn list<T: fmt::Display>(items: &[T]) -> String {
            items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
        match self {
            PhysicalPlan::Scan {
                source,
                projection,
                pruning,
                schema,
                ..
            } => {
                let what = match source {
                    ScanSource::Memory { table, .. } => format!("MemoryScan: {table}"),
                    ScanSource::Parquet { partitions } => format!(
                        "ParquetScan: {} files",
                        partitions
                            .iter()
                            .flatten()
                            .map(|s| &s.path)
                            .collect::<std::collections::BTreeSet<_>>()
                            .len()
                    ),
                    ScanSource::Csv { partitions, .. } => {
                        format!("CsvScan: {} files", partitions.iter().flatten().count())
                    }
                    ScanSource::Json { partitions } => {
                        format!("JsonScan: {} files", partitions.iter().flatten().count())
                    }
                    ScanSource::Tpch {
                        table,
                        scale_factor,
                        ..
                    } => format!("TpchScan: {} sf={scale_factor}", table.name()),
                };
                let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                let mut s = format!("{what}, columns=[{}]", cols.join(", "));
                if projection.is_none() {
                    s.push_str(" (all)");
                }
                if !pruning.is_empty() {
                    s.push_str(&format!(", pruning=[{}]", list(pruning)));
                }
                s
            }
            PhysicalPlan::Values { rows, .. } => format!("Values: {} rows", rows.len()),
            PhysicalPlan::Empty {
                produce_one_row, ..
            } => format!("Empty: one_row={produce_one_row}"),
            PhysicalPlan::Filter { predicate, .. } => format!("Filter: {predicate}"),
            PhysicalPlan::Projection { exprs, schema, .. } => {
                let items: Vec<String> = exprs
                    .iter()
                    .zip(schema.fields())
                    .map(|(e, f)| format!("{e} AS {}", f.name()))
                    .collect();
                format!("Projection: {}", items.join(", "))
            }
            PhysicalPlan::Aggregate {
                mode,
                group_by,
                grouping_sets,
                aggregates,
                ..
            } => {
                let sets = if grouping_sets.is_empty() {
                    String::new()
                } else {
                    let sets: Vec<String> = grouping_sets
                        .iter()
                        .map(|set| {
                            let keys: Vec<String> = group_by
                                .iter()
                                .zip(set)
                                .filter(|(_, &null)| !null)
                                .map(|(k, _)| k.to_string())
                                .collect();
                            format!("({})", keys.join(", "))
                        })
                        .collect();
                    format!(", grouping_sets=[{}]", sets.join(", "))
                };
                format!(
                    "Aggregate({mode:?}): group_by=[{}]{sets}, aggregates=[{}]",
                    list(group_by),
                    list(aggregates)
                )
            }
            PhysicalPlan::HashJoin {
                join_type,
                on,
                filter,
                collect_left,
                ..
            } => {
                let keys: Vec<String> = on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
                let mut s = format!(
                    "HashJoin({join_type:?}{}): on=[{}]",
                    if *collect_left { ", collect_left" } else { "" },
                    keys.join(", ")
                );
                if let Some(f) = filter {
                    s.push_str(&format!(", filter={f}"));
                }
                s
            }
            PhysicalPlan::NestedLoopJoin {
                join_type, filter, ..
            } => match filter {
                Some(f) => format!("NestedLoopJoin({join_type:?}): filter={f}"),
                None => format!("NestedLoopJoin({join_type:?})"),
            },
            PhysicalPlan::Sort { order, fetch, .. } => match fetch {
                Some(k) => format!("TopK(k={k}): [{}]", list(order)),
                None => format!("Sort: [{}]", list(order)),
            },
            PhysicalPlan::SortPreservingMerge { order, fetch, .. } => match fetch {
                Some(k) => format!("SortPreservingMerge(fetch={k}): [{}]", list(order)),
                None => format!("SortPreservingMerge: [{}]", list(order)),
            },
            PhysicalPlan::Limit { skip, fetch, .. } => match fetch {
                Some(f) => format!("Limit: skip={skip}, fetch={f}"),
                None => format!("Limit: skip={skip}"),
            },
            PhysicalPlan::Union { inputs, .. } => format!("Union: {} inputs", inputs.len()),
            PhysicalPlan::SetOperation { op, on, .. } => {
                let keys: Vec<String> = on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
                format!("SetOperation({op:?}): on=[{}]", keys.join(", "))
            }
            PhysicalPlan::Window { exprs, .. } => format!("Window: [{}]", list(exprs)),
            PhysicalPlan::Unnest {
                lists,
                structs,
                nulls,
                ..
            } => {
                let lists: Vec<String> = lists
                    .iter()
                    .map(|l| match l.depth {
                        1 => format!("#{}", l.column),
                        d => format!("#{} depth={d}", l.column),
                    })
                    .collect();
                let structs: Vec<String> = structs.iter().map(|c| format!("#{c}")).collect();
                format!(
                    "Unnest: lists=[{}], structs=[{}], nulls={nulls:?}",
                    lists.join(", "),
                    structs.join(", ")
                )
            }
            PhysicalPlan::Write { sink, .. } => format!("Write: {sink}"),
            PhysicalPlan::Exchange { partitioning, .. } => match partitioning {
                Partitioning::Hash { keys, partitions } => {
                    format!("Exchange(hash [{}] -> {partitions})", list(keys))
                }
                Partitioning::RoundRobin { partitions } => {
                    format!("Exchange(round robin -> {partitions})")
                }
                Partitioning::Gather => "Exchange(gather -> 1)".to_string(),
                Partitioning::Preserve { partitions } => {
                    format!("Exchange(preserve -> {partitions})")
                }
            },
            PhysicalPlan::Custom { name, config, .. } => format!("Custom({name}): {config}"),
            PhysicalPlan::StageInput {
                stage, preserve, ..
            } => {
                if *preserve {
                    format!("StageInput: stage {stage} (task p -> partition p)")
                } else {
                    format!("StageInput: stage {stage}")
                }
            }
        }
    }

    /// An indented tree, one node a line, with output partitions.
    pub fn display_indent(&self) -> String {
        let mut out = String::new();
        self.fmt_indent(0, &mut out);
        out
    }

    fn fmt_indent(&self, depth: usize, out: &mut String) {
        out.push_str(&format!(
            "{}{} [partitions={}]\n",
            "  ".repeat(depth),
            self.describe(),
            self.output_partitions()
        ));
        for c in self.children() {
            c.fmt_indent(depth + 1, out);
        }
    }
}
