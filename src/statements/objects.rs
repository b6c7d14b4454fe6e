//! The catalog objects statements name: their catalog names, what exists
//! under a name, and the lock that makes check-then-change steps atomic.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::datatypes::Schema;
use datafusion_common::TableReference;

use crate::catalog::{display_name, reference_name, CatalogObject};
use crate::error::{Error, Result};
use crate::session::SessionState;

/// Serializes the check-then-change steps of catalog changes (short,
/// synchronous sections; queries run outside of it).
static CATALOG_CHANGE: Mutex<()> = Mutex::new(());

pub(super) fn catalog_lock() -> MutexGuard<'static, ()> {
    CATALOG_CHANGE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The catalog name of a table or view named in a statement (`t` or
/// `schema.t`; datafusion-sql has already lower-cased unquoted
/// identifiers). Registering checks that its schema exists.
pub(super) fn object_name(name: &TableReference) -> Result<String> {
    reference_name(name)
}

/// The object called `name`, with the name it is registered under (the
/// name itself, else its lower-case form, as the SQL planner looks up).
pub(super) fn resolve(session: &Arc<SessionState>, name: &str) -> Option<(String, CatalogObject)> {
    let catalog = &session.catalog;
    if let Some(o) = catalog.lookup_exact(name) {
        return Some((name.to_string(), o));
    }
    let lower = name.to_lowercase();
    catalog.lookup_exact(&lower).map(|o| (lower, o))
}

pub(super) fn kind_name(object: &CatalogObject) -> &'static str {
    match object {
        CatalogObject::Table(_) => "table",
        CatalogObject::View(_) => "view",
    }
}

/// What to do when creating `name`: `Ok(true)` to go on, `Ok(false)` when
/// the statement is a no-op (`IF NOT EXISTS` and the name exists).
/// `OR REPLACE` replaces only an object of the same kind.
pub(super) fn check_create(
    session: &Arc<SessionState>,
    name: &str,
    creating_view: bool,
    if_not_exists: bool,
    or_replace: bool,
) -> Result<bool> {
    let Some((existing, object)) = resolve(session, name) else {
        return Ok(true);
    };
    if if_not_exists {
        return Ok(false);
    }
    let is_view = matches!(object, CatalogObject::View(_));
    if or_replace && is_view == creating_view {
        return Ok(true);
    }
    let kind = kind_name(&object);
    let hint = if or_replace {
        format!(" (OR REPLACE does not replace a {kind}; drop it first)")
    } else {
        String::new()
    };
    Err(Error::Plan(format!(
        "{kind} '{}' already exists{hint}",
        display_name(&existing)
    )))
}

/// Removes what a replaced table leaves behind (its memory batches).
pub(super) fn forget_table_data(session: &Arc<SessionState>, name: &str) {
    session.memory.remove(name);
}

pub(super) fn check_unique_columns(what: &str, schema: &Schema) -> Result<()> {
    let mut seen = HashSet::new();
    for f in schema.fields() {
        if !seen.insert(f.name().as_str()) {
            return Err(Error::Plan(format!(
                "{what}: duplicate column name '{}'; give the columns distinct aliases",
                f.name()
            )));
        }
    }
    Ok(())
}
