//! `DESCRIBE <table>` and `SHOW TABLES`: answered from the catalog.

use std::sync::Arc;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion_expr::logical_plan::DescribeTable;

use super::output::rows;
use crate::catalog::{split_catalog_name, CATALOG_NAME};
use crate::dataframe::DataFrame;
use crate::error::Result;
use crate::session::SessionState;

/// One row per column: column_name, data_type, is_nullable (as DataFusion).
pub(super) fn describe(session: &Arc<SessionState>, d: &DescribeTable) -> Result<DataFrame> {
    let output = Arc::new(Schema::new(d.output_schema.fields().clone()));
    let fields = d.schema.fields();
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    let types: Vec<String> = fields.iter().map(|f| f.data_type().to_string()).collect();
    let nullable: Vec<&str> = fields
        .iter()
        .map(|f| if f.is_nullable() { "YES" } else { "NO" })
        .collect();
    rows(
        session,
        output,
        vec![
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(types)),
            Arc::new(StringArray::from(nullable)),
        ],
    )
}

/// table_catalog, table_schema, table_name, table_type ('BASE TABLE' or
/// 'VIEW'), sorted by schema and name: the columns of DataFusion's SHOW
/// TABLES.
pub(super) fn show_tables(session: &Arc<SessionState>) -> Result<DataFrame> {
    let schema = Arc::new(Schema::new(
        ["table_catalog", "table_schema", "table_name", "table_type"]
            .map(|n| Field::new(n, DataType::Utf8, false))
            .to_vec(),
    ));
    let catalog = &session.catalog;
    let names: Vec<(String, &str)> = catalog
        .names()
        .into_iter()
        .map(|n| (n, "BASE TABLE"))
        .chain(catalog.view_names().into_iter().map(|n| (n, "VIEW")))
        .collect();
    let mut objects: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|(name, kind)| {
            let (schema, name) = split_catalog_name(name);
            (schema, name, *kind)
        })
        .collect();
    objects.sort();
    let n = objects.len();
    rows(
        session,
        schema,
        vec![
            Arc::new(StringArray::from(vec![CATALOG_NAME; n])),
            Arc::new(StringArray::from_iter_values(objects.iter().map(|o| o.0))),
            Arc::new(StringArray::from_iter_values(objects.iter().map(|o| o.1))),
            Arc::new(StringArray::from_iter_values(objects.iter().map(|o| o.2))),
        ],
    )
}
