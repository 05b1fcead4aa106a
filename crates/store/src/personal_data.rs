//! Which data about a contact each table holds, and how a contact's export is read: the same
//! on every backend, written down once here.
//!
//! Which table holds what about a contact is in [`PERSONAL_TABLES`] (erased with the contact,
//! exported under a section) and [`OTHER_TABLES`] (nothing personal, and why). Each backend has
//! a test that fails when one of its tables is in neither, or when a table with a `contact_id`
//! column is not erased, so that a table added later cannot be forgotten. Export reads whole
//! rows (`SELECT *`), so a column added later is exported without anyone thinking of it.
//!
//! The statements number their parameters `?1`, `?2`, ...: SQLite runs them as written, and
//! PostgreSQL with each `?` written as `$` (they hold no other `?`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::suppression_address;

/// Tables that hold personal data of a contact: (table, export section, erasing statement
/// with the contact id as `?1`). Erased in this order: rows found through another table go
/// before that table's own rows, the contact last. `suppressions` is keyed by address, not
/// contact: its entries become keyed hashes (see the backends' `erase`).
pub const PERSONAL_TABLES: &[(&str, &str, Option<&str>)] = &[
    ("suppressions", "suppressions", None),
    (
        "order_products",
        "events",
        Some(
            "DELETE FROM order_products WHERE seq IN (SELECT seq FROM events WHERE contact_id = ?1 AND name = 'Order Completed')",
        ),
    ),
    (
        "steps",
        "enrollments",
        Some(
            "DELETE FROM steps WHERE enrollment_id IN (SELECT id FROM enrollments WHERE contact_id = ?1)",
        ),
    ),
    (
        "events",
        "events",
        Some("DELETE FROM events WHERE contact_id = ?1"),
    ),
    (
        "enrollments",
        "enrollments",
        Some("DELETE FROM enrollments WHERE contact_id = ?1"),
    ),
    // Queued messages go too: they are never sent.
    (
        "messages",
        "messages",
        Some("DELETE FROM messages WHERE contact_id = ?1"),
    ),
    (
        "subscriptions",
        "subscriptions",
        Some("DELETE FROM subscriptions WHERE contact_id = ?1"),
    ),
    (
        "list_members",
        "lists",
        Some("DELETE FROM list_members WHERE contact_id = ?1"),
    ),
    (
        "segment_members",
        "segments",
        Some("DELETE FROM segment_members WHERE contact_id = ?1"),
    ),
    (
        "segment_checks",
        "segment_checks",
        Some("DELETE FROM segment_checks WHERE contact_id = ?1"),
    ),
    (
        "trigger_schedule",
        "scheduled_triggers",
        Some("DELETE FROM trigger_schedule WHERE contact_id = ?1"),
    ),
    (
        "score_expiries",
        "score_expiries",
        Some("DELETE FROM score_expiries WHERE contact_id = ?1"),
    ),
    (
        "anonymous_ids",
        "anonymous_ids",
        Some("DELETE FROM anonymous_ids WHERE contact_id = ?1"),
    ),
    (
        "contacts",
        "contact",
        Some("DELETE FROM contacts WHERE id = ?1"),
    ),
];

/// Tables that hold nothing personal about a contact, and why they are kept as they are.
pub const OTHER_TABLES: &[(&str, &str)] = &[
    ("meta", "settings and cursors of the installation"),
    ("lists", "list names; memberships are in list_members"),
    ("templates", "message content as the operator wrote it"),
    ("journeys", "journey documents"),
    ("journey_versions", "published journey documents"),
    (
        "template_versions",
        "earlier copies of message templates as the operator wrote them",
    ),
    (
        "journey_version_templates",
        "which template version a journey version sends",
    ),
    (
        "node_stats",
        "aggregate counters per journey node, kept as numbers after an erasure",
    ),
    (
        "segments",
        "segment definitions; memberships are in segment_members",
    ),
    (
        "experiment_variants",
        "aggregate counts per experiment variant",
    ),
    ("experiment_winners", "declared experiment winners"),
    (
        "audit_log",
        "who exported or erased which contact id, with row counts: the record that the request \
         was honoured, never the data itself",
    ),
    (
        "erased_addresses",
        "keyed one-way hashes of erased contacts' addresses, so that they stay suppressed",
    ),
    (
        "waymark_schema",
        "the schema version (PostgreSQL only; SQLite keeps it in `user_version`)",
    ),
];

/// The sections of an export, in the order they are written.
pub const SECTIONS: &[&str] = &[
    "contact",
    "anonymous_ids",
    "events",
    "enrollments",
    "messages",
    "subscriptions",
    "lists",
    "segments",
    "segment_checks",
    "scheduled_triggers",
    "score_expiries",
    "suppressions",
];

/// Sections read whole: their size is bounded by what the operator defines (lists, segments,
/// topics, journeys), not by how active the contact is.
pub(crate) const WHOLE_SECTIONS: &[(&str, &str)] = &[
    (
        "anonymous_ids",
        "SELECT anonymous_id FROM anonymous_ids WHERE contact_id = ?1 ORDER BY anonymous_id",
    ),
    (
        "subscriptions",
        "SELECT * FROM subscriptions WHERE contact_id = ?1 ORDER BY channel, topic",
    ),
    (
        "lists",
        "SELECT l.name AS list, m.added_at FROM list_members m JOIN lists l ON l.id = m.list_id
         WHERE m.contact_id = ?1 ORDER BY l.name",
    ),
    (
        "segments",
        "SELECT m.segment_id, s.name AS segment, m.entered_at FROM segment_members m
         LEFT JOIN segments s ON s.id = m.segment_id WHERE m.contact_id = ?1 ORDER BY m.segment_id",
    ),
    (
        "segment_checks",
        "SELECT segment_id, due_at FROM segment_checks WHERE contact_id = ?1 ORDER BY segment_id",
    ),
    (
        "scheduled_triggers",
        "SELECT journey_id, node, due_at FROM trigger_schedule WHERE contact_id = ?1
         ORDER BY journey_id, node",
    ),
];

/// Sections that grow with the contact's activity, read a page at a time in key order:
/// (section, query with the contact `?1`, the key to start after `?2` and the page size `?3`,
/// the key column).
pub(crate) const PAGED_SECTIONS: &[(&str, &str, &str)] = &[
    (
        "events",
        "SELECT * FROM events WHERE contact_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        "seq",
    ),
    (
        "enrollments",
        "SELECT * FROM enrollments WHERE contact_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        "id",
    ),
    (
        "messages",
        "SELECT * FROM messages WHERE contact_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        "id",
    ),
    (
        "score_expiries",
        "SELECT * FROM score_expiries WHERE contact_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        "id",
    ),
];

/// Columns stored as JSON text, exported as JSON.
pub(crate) const JSON_COLUMNS: &[&str] = &["traits", "properties", "detail"];

/// Times are stored as milliseconds; exported as RFC 3339.
pub(crate) fn is_time_column(name: &str) -> bool {
    name == "at" || name == "timestamp" || name.ends_with("_at")
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one-way hash an erased address is kept under: HMAC-SHA-256 of `channel:address`
/// (normalised as the suppression list does) with the installation's key. Keyed rather than
/// plain so that the stored hashes cannot be matched against the plain SHA-256 lists of
/// e-mail addresses that circulate, nor reversed with a precomputed table; someone holding
/// the whole database (key included) can still test a guessed address, which is exactly what
/// the send path needs to do.
pub(crate) fn address_hash(key: &str, channel: &str, address: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(channel.as_bytes());
    mac.update(b":");
    mac.update(suppression_address(channel, address).as_bytes());
    hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_hashes_are_keyed_and_normalised() {
        let a = address_hash("k1", "email", "Ann@Example.com ");
        assert_eq!(a, address_hash("k1", "email", "ann@example.com"));
        assert_ne!(a, address_hash("k2", "email", "ann@example.com"));
        assert_ne!(a, address_hash("k1", "sms", "ann@example.com"));
        assert_eq!(a.len(), 64);
    }
}
