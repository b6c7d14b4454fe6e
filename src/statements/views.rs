//! `CREATE VIEW` and `DROP VIEW`: views are kept as their unoptimized
//! logical plans, inlined where they are used.

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion_expr::logical_plan::{CreateView, DropView};

use super::objects::{catalog_lock, check_create, check_unique_columns, object_name, resolve};
use super::output::no_rows;
use crate::catalog::{display_name, CatalogObject, ViewEntry};
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::session::SessionState;

pub(super) fn create_view(session: &Arc<SessionState>, v: CreateView) -> Result<DataFrame> {
    let name = object_name(&v.name)?;
    let plan = Arc::unwrap_or_clone(v.input);
    let schema = Arc::new(Schema::new(plan.schema().fields().clone()));
    check_unique_columns(&format!("CREATE VIEW {name}"), &schema)?;
    let _guard = catalog_lock();
    if !check_create(session, &name, true, false, v.or_replace)? {
        return Ok(no_rows(session));
    }
    session.catalog.register_view(ViewEntry {
        name,
        plan,
        schema,
        definition: v.definition,
    })?;
    Ok(no_rows(session))
}

pub(super) fn drop_view(session: &Arc<SessionState>, d: DropView) -> Result<DataFrame> {
    let name = object_name(&d.name)?;
    let _guard = catalog_lock();
    match resolve(session, &name) {
        Some((existing, CatalogObject::View(_))) => {
            session.catalog.deregister_view(&existing);
            Ok(no_rows(session))
        }
        Some((existing, CatalogObject::Table(_))) => Err(Error::Plan(format!(
            "'{existing}' is a table, not a view; use DROP TABLE {existing}"
        ))),
        None if d.if_exists => Ok(no_rows(session)),
        None => Err(Error::Plan(format!(
            "view '{}' not found",
            display_name(&name)
        ))),
    }
}
