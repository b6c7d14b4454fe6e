//! The catalog and function library as datafusion-sql sees them.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion_common::config::ConfigOptions;
use datafusion_common::file_options::file_type::{FileType, GetExt};
use datafusion_common::{plan_datafusion_err, plan_err, Result as DFResult, TableReference};
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF};
use ffq_dataflow::functions::FunctionRegistry;

use crate::catalog::{reference_name, Catalog};
// The table sources are the catalog's; re-exported where they were.
pub use crate::catalog::{FfqTableSource, FfqViewSource};

pub struct PlannerContext<'a> {
    pub catalog: &'a Catalog,
    pub registry: &'a FunctionRegistry,
    pub options: ConfigOptions,
    pub expr_planners: Vec<Arc<dyn ExprPlanner>>,
}

impl<'a> PlannerContext<'a> {
    pub fn new(catalog: &'a Catalog, registry: &'a FunctionRegistry) -> Self {
        PlannerContext {
            catalog,
            registry,
            options: ConfigOptions::new(),
            expr_planners: vec![
                Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
                Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
                Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
                // array literals `[1.0, 2.0]` -> make_array(1.0, 2.0); `||` and
                // `@>` / `<@` on arrays
                Arc::new(datafusion_functions_nested::planner::NestedFunctionPlanner),
                // `l[1]` -> array_element, `l[1:2]` -> array_slice, `s['f']`
                // -> get_field, `m['k']` on maps
                Arc::new(datafusion_functions_nested::planner::FieldAccessPlanner),
                Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
                // count(*) OVER (...) -> count(1) OVER (...)
                Arc::new(datafusion_functions_window::planner::WindowFunctionPlanner),
            ],
        }
    }
}

impl ContextProvider for PlannerContext<'_> {
    fn get_table_source(&self, reference: TableReference) -> DFResult<Arc<dyn TableSource>> {
        let name = reference_name(&reference).map_err(|e| plan_datafusion_err!("{e}"))?;
        if let Some(schema) = reference.schema() {
            if !self.catalog.has_schema(schema) {
                return plan_err!("schema '{schema}' not found (in {reference})");
            }
        }
        if let Some(entry) = self.catalog.get(&name) {
            let defaults = self.catalog.defaults(&entry.name);
            return Ok(Arc::new(FfqTableSource { entry, defaults }));
        }
        match self.catalog.get_view(&name) {
            Some(view) => match self.catalog.stale_view(&view) {
                Some(problem) => plan_err!("{problem}"),
                None => Ok(Arc::new(FfqViewSource { view })),
            },
            None => {
                let mut names = self.catalog.names();
                names.extend(self.catalog.view_names());
                let hint = closest(&name, &names)
                    .map(|n| format!(" (did you mean {n}?)"))
                    .unwrap_or_default();
                plan_err!("table '{reference}' not found{hint}")
            }
        }
    }

    /// Any name: `COPY` checks the format when it runs
    /// (`statements::copy`), with an error naming the target.
    fn get_file_type(&self, ext: &str) -> DFResult<Arc<dyn FileType>> {
        Ok(Arc::new(NamedFileType(ext.to_lowercase())))
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.expr_planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.registry.get_scalar(name)
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.registry.get_aggregate(name)
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.registry.get_window(name)
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn create_cte_work_table(
        &self,
        name: &str,
        schema: arrow::datatypes::SchemaRef,
    ) -> DFResult<Arc<dyn TableSource>> {
        Ok(Arc::new(super::recursive_cte::CteWorkTable::new(
            name, schema,
        )))
    }

    fn udf_names(&self) -> Vec<String> {
        self.registry.scalar_names().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        vec![]
    }

    fn udaf_names(&self) -> Vec<String> {
        self.registry.aggregate_names().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.registry.window_names().cloned().collect()
    }
}

/// A file format as `COPY ... STORED AS` or the target's extension names
/// it (lower-cased).
#[derive(Debug)]
pub struct NamedFileType(pub String);

impl std::fmt::Display for NamedFileType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl GetExt for NamedFileType {
    fn get_ext(&self) -> String {
        self.0.clone()
    }
}

impl FileType for NamedFileType {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The candidate closest to `name` by edit distance, if close enough.
pub fn closest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a String> {
    candidates
        .iter()
        .map(|c| (edit_distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// FFQ's function library as DataFusion's `FunctionRegistry` (read-only).
pub struct DfRegistry<'a>(pub &'a FunctionRegistry);

impl datafusion_expr::registry::FunctionRegistry for DfRegistry<'_> {
    fn udfs(&self) -> std::collections::HashSet<String> {
        self.0.scalar_names().cloned().collect()
    }

    fn higher_order_function_names(&self) -> std::collections::HashSet<String> {
        Default::default()
    }

    fn udafs(&self) -> std::collections::HashSet<String> {
        self.0.aggregate_names().cloned().collect()
    }

    fn udwfs(&self) -> std::collections::HashSet<String> {
        self.0.window_names().cloned().collect()
    }

    fn udf(&self, name: &str) -> DFResult<Arc<ScalarUDF>> {
        self.0
            .get_scalar(name)
            .ok_or_else(|| datafusion_common::DataFusionError::Plan(format!("no function {name}")))
    }

    fn higher_order_function(&self, name: &str) -> DFResult<Arc<HigherOrderUDF>> {
        plan_err!("no higher-order function {name}")
    }

    fn expr_planners(&self) -> Vec<Arc<dyn ExprPlanner>> {
        vec![]
    }

    fn udaf(&self, name: &str) -> DFResult<Arc<AggregateUDF>> {
        self.0.get_aggregate(name).ok_or_else(|| {
            datafusion_common::DataFusionError::Plan(format!("no aggregate function {name}"))
        })
    }

    fn udwf(&self, name: &str) -> DFResult<Arc<WindowUDF>> {
        self.0.get_window(name).ok_or_else(|| {
            datafusion_common::DataFusionError::Plan(format!("no window function {name}"))
        })
    }
}
