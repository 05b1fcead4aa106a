//! Exporting and erasing a contact on PostgreSQL (see `sqlite::privacy` for what is kept).
//!
//! Being ported from the SQLite backend, one concern at a time.
#![allow(unused_imports, dead_code)]

use jiff::Timestamp;

use crate::{Erasure, NewAudit, Result};

// Placeholders with the signatures `postgres::tx` calls; the privacy port replaces them.

/// Why an erased contact's `address` is suppressed on `channel`, if it is.
#[allow(unused_variables)]
pub(crate) fn erased_suppression(
    tx: &mut ::postgres::Transaction<'_>,
    channel: &str,
    address: &str,
) -> Result<Option<String>> {
    todo!("postgres: privacy::erased_suppression")
}

/// Takes the hashed entry of `address` off the list; true when there was one.
#[allow(unused_variables)]
pub(crate) fn unsuppress_erased(
    tx: &mut ::postgres::Transaction<'_>,
    channel: &str,
    address: &str,
) -> Result<bool> {
    todo!("postgres: privacy::unsuppress_erased")
}

/// Erases the contact in the caller's transaction; see `EngineTx::erase_contact`.
#[allow(unused_variables)]
pub(crate) fn erase(
    tx: &mut ::postgres::Transaction<'_>,
    contact_id: i64,
    now: Timestamp,
) -> Result<Erasure> {
    todo!("postgres: privacy::erase")
}

#[allow(unused_variables)]
pub(crate) fn record_audit(tx: &mut ::postgres::Transaction<'_>, e: &NewAudit) -> Result<i64> {
    todo!("postgres: privacy::record_audit")
}
