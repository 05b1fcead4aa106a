//! Privacy: exporting and erasing everything held about a contact, and the audit log of
//! those requests.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::{AuditEntry, AuditQuery, Erasure, ExportPage, NewAudit, Result};

/// Exporting a contact and reading and writing the audit log.
pub trait Privacy {
    /// How many rows the export of the contact holds, per section; `NotFound` when there is
    /// no such contact.
    fn contact_export_counts(&self, contact_id: i64) -> Result<BTreeMap<String, i64>>;

    /// Everything held about the contact, section by section (`personal_data::SECTIONS`),
    /// handed to `emit` at most `page` rows (enrollments: with their steps) at a time. No read
    /// transaction stays open between pages, so a slow reader holds nothing up; the pages of
    /// a contact changed meanwhile may mix before and after.
    fn export_contact(
        &self,
        contact_id: i64,
        page: usize,
        emit: &mut dyn FnMut(ExportPage) -> Result<()>,
    ) -> Result<()>;

    /// Appends to the audit log; returns the entry's id.
    fn record_audit(&self, entry: &NewAudit) -> Result<i64>;

    fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
}

/// Erasing a contact and auditing it in the same transaction.
pub trait PrivacyTx {
    /// Erases the contact and everything personal about it (see `personal_data`): its rows
    /// in every per-contact table, its queued messages included. Its addresses stay suppressed
    /// as keyed hashes; aggregate counters are kept. `NotFound` when there is no such contact.
    fn erase_contact(&mut self, contact_id: i64, now: Timestamp) -> Result<Erasure>;

    /// Appends to the audit log (in this transaction); returns the entry's id.
    fn record_audit(&mut self, entry: &NewAudit) -> Result<i64>;
}
