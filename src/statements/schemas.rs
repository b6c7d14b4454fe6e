//! `CREATE SCHEMA [IF NOT EXISTS] s` and `DROP SCHEMA [IF EXISTS] s
//! [CASCADE]`: namespaces for tables and views, named as `s.t` (see
//! [`crate::catalog::catalog_name`]).

use std::sync::Arc;

use datafusion_common::SchemaReference;
use datafusion_expr::logical_plan::{CreateCatalogSchema, DropCatalogSchema};

use super::objects::{catalog_lock, forget_table_data};
use super::output::no_rows;
use crate::catalog::CATALOG_NAME;
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::session::SessionState;

pub(super) fn create_schema(
    session: &Arc<SessionState>,
    c: CreateCatalogSchema,
) -> Result<DataFrame> {
    // datafusion-sql joins the parts of `catalog.schema` with a dot.
    if c.schema_name.contains('.') {
        return Err(Error::NotSupported(format!(
            "CREATE SCHEMA {}: schema names with a catalog or a dot",
            c.schema_name
        )));
    }
    let _guard = catalog_lock();
    if !session.catalog.create_schema(&c.schema_name)? && !c.if_not_exists {
        return Err(Error::Plan(format!(
            "schema '{}' already exists",
            c.schema_name
        )));
    }
    Ok(no_rows(session))
}

pub(super) fn drop_schema(session: &Arc<SessionState>, d: DropCatalogSchema) -> Result<DataFrame> {
    let schema = match &d.name {
        SchemaReference::Bare { schema } => schema,
        SchemaReference::Full { schema, catalog } if catalog.as_ref() == CATALOG_NAME => schema,
        SchemaReference::Full { catalog, .. } => {
            return Err(Error::Plan(format!(
                "catalog '{catalog}' not found (the engine has one catalog, {CATALOG_NAME})"
            )))
        }
    };
    let _guard = catalog_lock();
    match session.catalog.drop_schema(schema, d.cascade)? {
        Some(tables) => {
            for t in tables {
                forget_table_data(session, &t);
            }
            Ok(no_rows(session))
        }
        None if d.if_exists => Ok(no_rows(session)),
        None => Err(Error::Plan(format!("schema '{schema}' not found"))),
    }
}
