//! The scalar, aggregate and window functions operators can call, by name.
//!
//! Both the SQL planner and the operators read the same registry, so a name
//! that plans also runs; a name the registry lacks fails with a clear error
//! instead of silently evaluating something else.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion_expr::{AggregateUDF, ScalarUDF, WindowUDF};

use crate::error::{DataflowError, Result};

#[derive(Debug, Clone, Default)]
pub struct FunctionRegistry {
    scalars: HashMap<String, Arc<ScalarUDF>>,
    aggregates: HashMap<String, Arc<AggregateUDF>>,
    windows: HashMap<String, Arc<WindowUDF>>,
}

impl FunctionRegistry {
    /// DataFusion's default scalar (including nested/array), aggregate and
    /// window function libraries, and FFQ's vector functions ([`crate::vector`]).
    pub fn with_defaults() -> Self {
        let mut r = FunctionRegistry::default();
        for f in datafusion_functions::all_default_functions() {
            r.register_scalar(f);
        }
        // make_array (SQL array literals `[1.0, 2.0]`) and the other array
        // and map functions.
        for f in datafusion_functions_nested::all_default_nested_functions() {
            r.register_scalar(f);
        }
        // After the nested functions: `dot_product` is also an alias of
        // DataFusion's `inner_product`; FFQ's vector function takes the name.
        for f in crate::vector::functions() {
            r.register_scalar(f);
        }
        r.register_scalar(crate::similar_to::function());
        for f in datafusion_functions_aggregate::all_default_aggregate_functions() {
            r.register_aggregate(f);
        }
        for f in datafusion_functions_window::all_default_window_functions() {
            r.register_window(f);
        }
        r
    }

    pub fn register_scalar(&mut self, f: Arc<ScalarUDF>) {
        for alias in f.aliases() {
            self.scalars.insert(alias.to_lowercase(), Arc::clone(&f));
        }
        self.scalars.insert(f.name().to_lowercase(), f);
    }

    pub fn register_aggregate(&mut self, f: Arc<AggregateUDF>) {
        for alias in f.aliases() {
            self.aggregates.insert(alias.to_lowercase(), Arc::clone(&f));
        }
        self.aggregates.insert(f.name().to_lowercase(), f);
    }

    pub fn register_window(&mut self, f: Arc<WindowUDF>) {
        for alias in f.aliases() {
            self.windows.insert(alias.to_lowercase(), Arc::clone(&f));
        }
        self.windows.insert(f.name().to_lowercase(), f);
    }

    pub fn scalar(&self, name: &str) -> Result<Arc<ScalarUDF>> {
        self.scalars
            .get(&name.to_lowercase())
            .cloned()
            .ok_or_else(|| DataflowError::NotSupported(format!("scalar function {name}")))
    }

    pub fn aggregate(&self, name: &str) -> Result<Arc<AggregateUDF>> {
        self.aggregates
            .get(&name.to_lowercase())
            .cloned()
            .ok_or_else(|| DataflowError::NotSupported(format!("aggregate function {name}")))
    }

    pub fn window(&self, name: &str) -> Result<Arc<WindowUDF>> {
        self.windows
            .get(&name.to_lowercase())
            .cloned()
            .ok_or_else(|| DataflowError::NotSupported(format!("window function {name}")))
    }

    pub fn get_scalar(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.scalars.get(&name.to_lowercase()).cloned()
    }

    pub fn get_aggregate(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregates.get(&name.to_lowercase()).cloned()
    }

    pub fn get_window(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.windows.get(&name.to_lowercase()).cloned()
    }

    pub fn scalar_names(&self) -> impl Iterator<Item = &String> {
        self.scalars.keys()
    }

    pub fn aggregate_names(&self) -> impl Iterator<Item = &String> {
        self.aggregates.keys()
    }

    pub fn window_names(&self) -> impl Iterator<Item = &String> {
        self.windows.keys()
    }
}
