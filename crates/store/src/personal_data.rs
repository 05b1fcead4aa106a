//! A contact's data as every backend holds it, written down once: which table holds what, and
//! how an export reads it (a backend supplies the reads, `ExportReads`).
//!
//! Which table holds what about a contact is in [`PERSONAL_TABLES`] (erased with the contact,
//! exported under a section) and [`OTHER_TABLES`] (nothing personal, and why). Each backend has
//! a test that fails when one of its tables is in neither, or when a table with a `contact_id`
//! column is not erased, so that a table added later cannot be forgotten. Export reads whole
//! rows (`SELECT *`), so a column added later is exported without anyone thinking of it.
//!
//! The statements number their parameters `?1`, `?2`, ...: SQLite runs them as written, and
//! PostgreSQL with each `?` written as `$` (they hold no other `?`).

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::{ExportPage, Result, StoreError, suppression_address};

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
        "conversions",
        "conversions",
        Some("DELETE FROM conversions WHERE contact_id = ?1"),
    ),
    (
        "broadcast_conversions",
        "broadcast_conversions",
        Some("DELETE FROM broadcast_conversions WHERE contact_id = ?1"),
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
        "broadcast_recipients",
        "broadcast_recipients",
        Some("DELETE FROM broadcast_recipients WHERE contact_id = ?1"),
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
    (
        "partition_cursors",
        "PostgreSQL: how far each partition's events are processed",
    ),
    (
        "partition_leases",
        "PostgreSQL: which process works on each partition",
    ),
    ("processes", "PostgreSQL: the processes sharing the work"),
    ("lists", "list names; memberships are in list_members"),
    (
        "broadcasts",
        "broadcast documents and counters; what each recipient got is in messages",
    ),
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
        "segment_history",
        "how many contacts entered and left each segment per hour: counts, never who",
    ),
    (
        "journey_rollups",
        "aggregate counters per journey node and hour, kept as numbers after an erasure",
    ),
    (
        "broadcast_rollups",
        "aggregate counters per broadcast, template and hour, kept as numbers after an erasure",
    ),
    (
        "reaction_rollups",
        "how many reactions per journey node and hour took how long: counts, never who",
    ),
    (
        "output_rollups",
        "how many enrollments left each journey node by each output per hour: counts, never who",
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

/// A merge of one contact into another (an anonymous visitor who identifies as a known
/// user, an alias) moves every row of the merged contact (`?1`) to the survivor (`?2`) in
/// this order, with `?3` the time of the merge; afterwards nothing anywhere holds the merged
/// contact's id (its contact row goes last), so that an erasure of the survivor reaches
/// everything, and no timer fires for a contact that no longer exists (a score expiry of a
/// missing contact would fail every timer batch it is claimed in). The backend applies
/// [`MERGE_SCORE_EXPIRIES`] first, and writes the merged traits (the survivor's win) last.
/// Where both contacts hold a row with the same key:
///
/// - subscriptions (channel, topic): the most restrictive status wins, `unsubscribed` over
///   `pending` over `subscribed` (an unknown status counts as `subscribed`, as the consent
///   rule reads it), then the newer `updated_at`. An opt-out given under either identity is
///   the person's, and a merge must never lose it: sending to someone who unsubscribed is
///   the one mistake that cannot be taken back, and the law says so too. A `pending` double
///   opt-in was never confirmed, so it does not turn into consent either.
/// - list and segment memberships: the survivor's row stays (with its `added_at` or
///   `entered_at`), the merged contact's other memberships are added. The merged contact's
///   `Segment Entered` events move with its other events, so the survivor's history already
///   says it entered; dropping the membership instead would make the re-check below record a
///   second entry, and start segment-triggered journeys a second time.
/// - segment checks: the earlier due time wins (an early re-check costs one evaluation; a
///   late one leaves the membership wrong meanwhile). Then every segment is re-checked for
///   the survivor at the merge: a membership of either contact may no longer hold for the
///   merged person, or one neither had may now (their events and traits are together now).
///   The re-check records `Segment Exited` or `Segment Entered` as for any other change;
///   the engine runs it with the next timers, or at once where it re-evaluates the merged
///   contact in the same transaction (an alias does).
/// - scheduled triggers: the later due time wins. A date trigger's next time is computed
///   again from the merged traits as soon as the merging event has been processed; what
///   remains is an inactivity deadline, counted from the last activity, which is the later
///   of the two: the earlier one would start a "came back after N days of silence" journey
///   for a person who was active meanwhile under the other identity.
pub(crate) const MERGE_STATEMENTS: &[(&str, &[&str])] = &[
    (
        "events",
        &["UPDATE events SET contact_id = ?2 WHERE contact_id = ?1"],
    ),
    (
        "anonymous_ids",
        &["UPDATE anonymous_ids SET contact_id = ?2 WHERE contact_id = ?1"],
    ),
    (
        "enrollments",
        &["UPDATE enrollments SET contact_id = ?2 WHERE contact_id = ?1"],
    ),
    (
        "messages",
        &["UPDATE messages SET contact_id = ?2 WHERE contact_id = ?1"],
    ),
    (
        "conversions",
        &["UPDATE conversions SET contact_id = ?2 WHERE contact_id = ?1"],
    ),
    (
        "broadcast_conversions",
        &[
            "INSERT INTO broadcast_conversions (broadcast_id, contact_id, message_id, template,
                                                event_seq, at, revenue, currency)
             SELECT broadcast_id, ?2, message_id, template, event_seq, at, revenue, currency
             FROM broadcast_conversions WHERE contact_id = ?1
             ON CONFLICT DO NOTHING",
            "DELETE FROM broadcast_conversions WHERE contact_id = ?1",
        ],
    ),
    (
        "list_members",
        &[
            "INSERT INTO list_members (list_id, contact_id, added_at)
             SELECT list_id, ?2, added_at FROM list_members WHERE contact_id = ?1
             ON CONFLICT DO NOTHING",
            "DELETE FROM list_members WHERE contact_id = ?1",
        ],
    ),
    (
        "subscriptions",
        &[
            "INSERT INTO subscriptions (contact_id, channel, topic, status, updated_at)
             SELECT ?2, channel, topic, status, updated_at FROM subscriptions WHERE contact_id = ?1
             ON CONFLICT (contact_id, channel, topic) DO UPDATE
             SET status = excluded.status, updated_at = excluded.updated_at
             WHERE (CASE excluded.status WHEN 'unsubscribed' THEN 2 WHEN 'pending' THEN 1 ELSE 0 END,
                    excluded.updated_at)
                 > (CASE subscriptions.status WHEN 'unsubscribed' THEN 2 WHEN 'pending' THEN 1 ELSE 0 END,
                    subscriptions.updated_at)",
            "DELETE FROM subscriptions WHERE contact_id = ?1",
        ],
    ),
    (
        "segment_members",
        &[
            "INSERT INTO segment_members (segment_id, contact_id, entered_at)
             SELECT segment_id, ?2, entered_at FROM segment_members WHERE contact_id = ?1
             ON CONFLICT DO NOTHING",
            "DELETE FROM segment_members WHERE contact_id = ?1",
        ],
    ),
    (
        "segment_checks",
        &[
            "INSERT INTO segment_checks (segment_id, contact_id, due_at)
             SELECT segment_id, ?2, due_at FROM segment_checks WHERE contact_id = ?1
             ON CONFLICT (segment_id, contact_id) DO UPDATE SET due_at = excluded.due_at
             WHERE excluded.due_at < segment_checks.due_at",
            "DELETE FROM segment_checks WHERE contact_id = ?1",
            "INSERT INTO segment_checks (segment_id, contact_id, due_at)
             SELECT id, ?2, ?3 FROM segments WHERE true
             ON CONFLICT (segment_id, contact_id) DO UPDATE SET due_at = excluded.due_at
             WHERE excluded.due_at < segment_checks.due_at",
        ],
    ),
    (
        "trigger_schedule",
        &[
            "INSERT INTO trigger_schedule (journey_id, node, contact_id, due_at)
             SELECT journey_id, node, ?2, due_at FROM trigger_schedule WHERE contact_id = ?1
             ON CONFLICT (journey_id, node, contact_id) DO UPDATE SET due_at = excluded.due_at
             WHERE excluded.due_at > trigger_schedule.due_at",
            "DELETE FROM trigger_schedule WHERE contact_id = ?1",
        ],
    ),
    (
        "score_expiries",
        &["UPDATE score_expiries SET contact_id = ?2 WHERE contact_id = ?1"],
    ),
    // A recipient waiting under both contacts gets one message, the earlier.
    (
        "broadcast_recipients",
        &[
            "INSERT INTO broadcast_recipients (broadcast_id, contact_id, due_at)
             SELECT broadcast_id, ?2, due_at FROM broadcast_recipients WHERE contact_id = ?1
             ON CONFLICT (broadcast_id, contact_id) DO UPDATE SET due_at = excluded.due_at
             WHERE excluded.due_at < broadcast_recipients.due_at",
            "DELETE FROM broadcast_recipients WHERE contact_id = ?1",
        ],
    ),
    ("contacts", &["DELETE FROM contacts WHERE id = ?1"]),
];

/// The segments whose size an erasure of contact `?1` lowers: those it is a member of. Its
/// memberships go with it, so each is recorded as a member leaving (see
/// `concerns::audiences`): the history keeps the counts right and says nothing of who.
pub(crate) const ERASURE_LEAVES_SEGMENTS: &str =
    "SELECT segment_id FROM segment_members WHERE contact_id = ?1 ORDER BY segment_id";

/// The segments whose size a merge of `?1` into `?2` lowers: those both are members of (two
/// members become one). A membership only the merged contact had moves to the survivor and
/// changes no size.
pub(crate) const MERGE_LEAVES_SEGMENTS: &str =
    "SELECT segment_id FROM segment_members WHERE contact_id = ?1
       AND segment_id IN (SELECT segment_id FROM segment_members WHERE contact_id = ?2)
     ORDER BY segment_id";

/// Score expiries take back points from a score trait. The merged traits keep the survivor's
/// value of a trait both contacts have, so the points the merged contact earned are not in
/// it: its expiries of such a trait are deleted (`?1` the merged contact, `?2` the trait),
/// for taking back points the survivor never got would leave its score too low for good.
/// Its expiries of a trait only it had move with the value (by [`MERGE_STATEMENTS`], run
/// after these).
pub(crate) const MERGE_SCORE_EXPIRIES: (&str, &str) = (
    "SELECT DISTINCT score_trait FROM score_expiries WHERE contact_id = ?1",
    "DELETE FROM score_expiries WHERE contact_id = ?1 AND score_trait = ?2",
);

/// How many of the parameters (`?1` merged, `?2` survivor, `?3` now) a merge statement
/// takes: the last it uses (both backends refuse one more than that).
pub(crate) fn merge_parameters(sql: &str) -> usize {
    (1..=3)
        .rev()
        .find(|n| sql.contains(&format!("?{n}")))
        .unwrap_or(0)
}

/// The sections of an export, in the order they are written.
pub const SECTIONS: &[&str] = &[
    "contact",
    "anonymous_ids",
    "events",
    "enrollments",
    "conversions",
    "messages",
    "subscriptions",
    "lists",
    "segments",
    "segment_checks",
    "broadcast_recipients",
    "broadcast_conversions",
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
        "broadcast_recipients",
        "SELECT broadcast_id, due_at FROM broadcast_recipients WHERE contact_id = ?1
         ORDER BY broadcast_id",
    ),
    (
        "broadcast_conversions",
        "SELECT broadcast_id, message_id, template, at, revenue, currency
         FROM broadcast_conversions WHERE contact_id = ?1 ORDER BY broadcast_id",
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
        "conversions",
        "SELECT * FROM conversions WHERE contact_id = ?1 AND enrollment_id > ?2
         ORDER BY enrollment_id LIMIT ?3",
        "enrollment_id",
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

/// The sections counted by their table's rows with the contact's id (besides `contact`, one
/// row, `suppressions`, by address, and `steps`, through enrollments).
const COUNTED_TABLES: &[(&str, &str)] = &[
    ("anonymous_ids", "anonymous_ids"),
    ("events", "events"),
    ("enrollments", "enrollments"),
    ("conversions", "conversions"),
    ("messages", "messages"),
    ("subscriptions", "subscriptions"),
    ("lists", "list_members"),
    ("segments", "segment_members"),
    ("segment_checks", "segment_checks"),
    ("broadcast_recipients", "broadcast_recipients"),
    ("broadcast_conversions", "broadcast_conversions"),
    ("scheduled_triggers", "trigger_schedule"),
    ("score_expiries", "score_expiries"),
];

/// What a backend reads for a contact's export. Each call is a short read of its own: nothing
/// stays open while the export's reader takes its time.
pub(crate) trait ExportReads {
    /// Rows of a query of this module (parameters `?1`, `?2`, ...) as JSON objects, column by
    /// column: times (see [`is_time_column`]) as RFC 3339, [`JSON_COLUMNS`] parsed.
    fn rows(&self, sql: &str, args: &[i64]) -> Result<Vec<Value>>;

    /// The number a `SELECT COUNT(*)` of this module, with the contact as `?1`, answers.
    fn count(&self, sql: &str, contact_id: i64) -> Result<i64>;

    /// The suppression entries of the contact's addresses: plain ones, and hashed ones (the
    /// address was erased before and came back).
    fn contact_suppressions(&self, contact_id: i64) -> Result<Vec<Value>>;
}

/// How many rows each section of the contact's export holds (`Privacy::contact_export_counts`).
pub(crate) fn export_counts(
    reads: &impl ExportReads,
    contact_id: i64,
) -> Result<BTreeMap<String, i64>> {
    if reads.count("SELECT COUNT(*) FROM contacts WHERE id = ?1", contact_id)? == 0 {
        return Err(StoreError::NotFound(format!("contact {contact_id}")));
    }
    let mut counts = BTreeMap::new();
    counts.insert("contact".to_string(), 1);
    for (section, table) in COUNTED_TABLES {
        counts.insert(
            section.to_string(),
            reads.count(
                &format!("SELECT COUNT(*) FROM {table} WHERE contact_id = ?1"),
                contact_id,
            )?,
        );
    }
    counts.insert(
        "steps".to_string(),
        reads.count(
            "SELECT COUNT(*) FROM steps WHERE enrollment_id IN (SELECT id FROM enrollments WHERE contact_id = ?1)",
            contact_id,
        )?,
    );
    counts.insert(
        "suppressions".to_string(),
        reads.contact_suppressions(contact_id)?.len() as i64,
    );
    Ok(counts)
}

/// The contact's export, section by section (`Privacy::export_contact`).
pub(crate) fn export(
    reads: &impl ExportReads,
    contact_id: i64,
    page: usize,
    emit: &mut dyn FnMut(ExportPage) -> Result<()>,
) -> Result<()> {
    let page = page.clamp(1, 10_000);
    for section in SECTIONS {
        match *section {
            "contact" => {
                let rows = reads.rows("SELECT * FROM contacts WHERE id = ?1", &[contact_id])?;
                if rows.is_empty() {
                    return Err(StoreError::NotFound(format!("contact {contact_id}")));
                }
                emit(ExportPage { section, rows })?;
            }
            "suppressions" => {
                let rows = reads.contact_suppressions(contact_id)?;
                emit(ExportPage { section, rows })?;
            }
            name => {
                if let Some((_, sql)) = WHOLE_SECTIONS.iter().find(|(s, _)| *s == name) {
                    let rows = reads.rows(sql, &[contact_id])?;
                    emit(ExportPage { section, rows })?;
                    continue;
                }
                let Some((_, sql, key)) = PAGED_SECTIONS.iter().find(|(s, ..)| *s == name) else {
                    return Err(StoreError::Database(format!(
                        "export section `{name}` has no query"
                    )));
                };
                let mut after = 0i64;
                loop {
                    let mut rows = reads.rows(sql, &[contact_id, after, page as i64])?;
                    if name == "enrollments" {
                        for row in &mut rows {
                            let id = row["id"].as_i64().unwrap_or(0);
                            row["steps"] = Value::Array(reads.rows(
                                "SELECT id, at, node, action, detail FROM steps WHERE enrollment_id = ?1 ORDER BY id",
                                &[id],
                            )?);
                        }
                    }
                    let full = rows.len() == page;
                    if let Some(last) = rows.last().and_then(|r| r[*key].as_i64()) {
                        after = last;
                    }
                    emit(ExportPage { section, rows })?;
                    if !full {
                        break;
                    }
                }
            }
        }
    }
    Ok(())
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

    /// Personal tables a merge has no statement for, and why.
    const NOT_MERGED: &[(&str, &str)] = &[
        ("suppressions", "keyed by address, not by contact"),
        ("order_products", "keyed by the event, which moves"),
        ("steps", "keyed by the enrollment, which moves"),
    ];

    #[test]
    fn a_merge_moves_every_personal_table() {
        for (table, ..) in PERSONAL_TABLES {
            let merged = MERGE_STATEMENTS.iter().any(|(t, _)| t == table);
            let explained = NOT_MERGED.iter().any(|(t, _)| t == table);
            assert!(
                merged != explained,
                "`{table}` needs exactly one of a merge statement or a reason it has none"
            );
        }
        assert_eq!(MERGE_STATEMENTS.last().map(|(t, _)| *t), Some("contacts"));
    }

    #[test]
    fn merge_statements_take_the_parameters_they_use() {
        assert_eq!(merge_parameters("DELETE FROM contacts WHERE id = ?1"), 1);
        assert_eq!(merge_parameters(MERGE_STATEMENTS[0].1[0]), 2);
        let (_, checks) = MERGE_STATEMENTS
            .iter()
            .find(|(t, _)| *t == "segment_checks")
            .unwrap();
        assert_eq!(merge_parameters(checks[2]), 3);
    }
}
