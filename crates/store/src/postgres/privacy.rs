//! Exporting and erasing a contact on PostgreSQL (see `sqlite::privacy` for what is kept).
//!
//! Being ported from the SQLite backend, one concern at a time.
#![allow(unused_imports, dead_code)]

use std::collections::BTreeMap;

use ::postgres::{GenericClient, Transaction};
use jiff::Timestamp;

use super::PgStore;
use crate::{AuditEntry, AuditQuery, Erasure, ExportPage, NewAudit, Result, Suppression};

// Temporary stubs with the signatures `postgres::api` and `postgres::tx` call; the privacy
// port replaces them.

#[allow(unused_variables)]
pub(crate) fn erased_entry(
    conn: &mut impl GenericClient,
    channel: &str,
    address: &str,
) -> Result<Option<Suppression>> {
    todo!("postgres: Privacy")
}

#[allow(unused_variables)]
pub(crate) fn erased_suppression(
    tx: &mut Transaction<'_>,
    channel: &str,
    address: &str,
) -> Result<Option<String>> {
    todo!("postgres: privacy::erased_suppression")
}

#[allow(unused_variables)]
pub(crate) fn unsuppress_erased(
    tx: &mut Transaction<'_>,
    channel: &str,
    address: &str,
) -> Result<bool> {
    todo!("postgres: Privacy")
}

#[allow(unused_variables)]
pub(crate) fn erase(tx: &mut Transaction<'_>, contact_id: i64, now: Timestamp) -> Result<Erasure> {
    todo!("postgres: privacy::erase")
}

#[allow(unused_variables)]
pub(crate) fn record_audit(tx: &mut Transaction<'_>, e: &NewAudit) -> Result<i64> {
    todo!("postgres: Privacy")
}

impl PgStore {
    #[allow(unused_variables)]
    pub(crate) fn export_counts(&self, contact_id: i64) -> Result<BTreeMap<String, i64>> {
        todo!("postgres: Privacy")
    }

    #[allow(unused_variables)]
    pub(crate) fn export(
        &self,
        contact_id: i64,
        page: usize,
        emit: &mut dyn FnMut(ExportPage) -> Result<()>,
    ) -> Result<()> {
        todo!("postgres: Privacy")
    }

    #[allow(unused_variables)]
    pub(crate) fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        todo!("postgres: Privacy")
    }
}
