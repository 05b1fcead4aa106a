//! Data protection on SQLite: a contact's export, its erasure, the audit log, and the keyed
//! hashes that keep an erased person's addresses suppressed.
//!
//! Which table holds what about a contact, and how its export is read section by section,
//! are in [`crate::personal_data`], shared with the PostgreSQL backend.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Params, params};
use serde_json::{Map, Value, json};

use super::{SqliteStore, ms, ts};
use crate::personal_data::{
    self, ERASURE_LEAVES_SEGMENTS, ExportReads, JSON_COLUMNS, PERSONAL_TABLES, address_hash, hex,
    is_time_column,
};
use crate::{
    AuditEntry, AuditQuery, Erasure, ExportPage, NewAudit, Result, StoreError, Suppression,
    suppression_address,
};

/// Rows of a query as JSON objects, column by column.
fn json_rows(conn: &Connection, sql: &str, args: impl Params) -> Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut obj = Map::new();
        for (i, name) in names.iter().enumerate() {
            let v = match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) if is_time_column(name) => json!(ts(n)),
                ValueRef::Integer(n) => json!(n),
                ValueRef::Real(f) => json!(f),
                ValueRef::Text(t) => {
                    let s = String::from_utf8_lossy(t).into_owned();
                    if JSON_COLUMNS.contains(&name.as_str()) {
                        serde_json::from_str(&s).unwrap_or(Value::String(s))
                    } else {
                        Value::String(s)
                    }
                }
                ValueRef::Blob(b) => json!(hex(b)),
            };
            obj.insert(name.clone(), v);
        }
        out.push(Value::Object(obj));
    }
    Ok(out)
}

fn erasure_key(conn: &Connection) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'erasure_key'")?
        .query_row([], |r| r.get(0))
        .optional()?)
}

/// Why an erased contact's `address` is suppressed on `channel`, if it is.
pub(crate) fn erased_suppression(
    conn: &Connection,
    channel: &str,
    address: &str,
) -> Result<Option<String>> {
    Ok(erased_entry(conn, channel, address)?.map(|entry| entry.reason))
}

/// The hashed entry of `address`, as a suppression list entry showing the address asked for.
pub(crate) fn erased_entry(
    conn: &Connection,
    channel: &str,
    address: &str,
) -> Result<Option<Suppression>> {
    let Some(key) = erasure_key(conn)? else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached(
            "SELECT reason, created_at FROM erased_addresses WHERE channel = ?1 AND address_hash = ?2",
        )?
        .query_row(
            params![channel, address_hash(&key, channel, address)],
            |r| {
                Ok(Suppression {
                    channel: channel.to_string(),
                    address: suppression_address(channel, address),
                    reason: r.get(0)?,
                    source: "erasure".into(),
                    created_at: ts(r.get(1)?),
                })
            },
        )
        .optional()?)
}

/// Takes the hashed entry of `address` off the list; true when there was one.
pub(crate) fn unsuppress_erased(conn: &Connection, channel: &str, address: &str) -> Result<bool> {
    let Some(key) = erasure_key(conn)? else {
        return Ok(false);
    };
    let n = conn
        .prepare_cached("DELETE FROM erased_addresses WHERE channel = ?1 AND address_hash = ?2")?
        .execute(params![channel, address_hash(&key, channel, address)])?;
    Ok(n == 1)
}

/// Every address the contact has or had: its email and phone, and the recipients of its email
/// and SMS messages; normalised as the suppression list keys them.
fn contact_addresses(conn: &Connection, contact_id: i64) -> Result<BTreeSet<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT 'email', email FROM contacts WHERE id = ?1 AND email IS NOT NULL
         UNION SELECT 'sms', phone FROM contacts WHERE id = ?1 AND phone IS NOT NULL
         UNION SELECT channel, recipient FROM messages
               WHERE contact_id = ?1 AND channel IN ('email', 'sms') AND recipient IS NOT NULL",
    )?;
    let rows = stmt.query_map([contact_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = BTreeSet::new();
    for row in rows {
        let (channel, address) = row?;
        let address = suppression_address(&channel, &address);
        if !address.is_empty() {
            out.insert((channel, address));
        }
    }
    Ok(out)
}

/// Suppression entries of the contact's addresses: plain ones, and hashed ones (the address
/// was erased before and came back).
fn contact_suppressions(conn: &Connection, contact_id: i64) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (channel, address) in contact_addresses(conn, contact_id)? {
        out.extend(json_rows(
            conn,
            "SELECT * FROM suppressions WHERE channel = ?1 AND address = ?2",
            params![channel, address],
        )?);
        if let Some(entry) = erased_entry(conn, &channel, &address)? {
            let mut v = json!(entry);
            v["hashed"] = json!(true);
            out.push(v);
        }
    }
    Ok(out)
}

fn contact_exists(conn: &Connection, contact_id: i64) -> Result<()> {
    conn.prepare_cached("SELECT 1 FROM contacts WHERE id = ?1")?
        .query_row([contact_id], |_| Ok(()))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("contact {contact_id}")))
}

/// Erases the contact in the caller's transaction; see `EngineTx::erase_contact`.
pub(crate) fn erase(conn: &Connection, contact_id: i64, now: Timestamp) -> Result<Erasure> {
    contact_exists(conn, contact_id)?;
    let mut erasure = Erasure {
        contact_id,
        ..Default::default()
    };
    // The suppression entries of its addresses, and every address it has or had, are kept as
    // keyed hashes: a later import of the same address finds it suppressed.
    let addresses = contact_addresses(conn, contact_id)?;
    if !addresses.is_empty() {
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('erasure_key', lower(hex(randomblob(32))))",
            [],
        )?;
    }
    let key = erasure_key(conn)?.unwrap_or_default();
    let mut suppressions_removed = 0;
    for (channel, address) in &addresses {
        let reason: Option<String> = conn
            .prepare_cached("SELECT reason FROM suppressions WHERE channel = ?1 AND address = ?2")?
            .query_row(params![channel, address], |r| r.get(0))
            .optional()?;
        suppressions_removed += conn
            .prepare_cached("DELETE FROM suppressions WHERE channel = ?1 AND address = ?2")?
            .execute(params![channel, address])? as i64;
        // A real reason (a complaint, a bounce) wins over `erased`.
        conn.prepare_cached(
            "INSERT INTO erased_addresses (channel, address_hash, reason, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (channel, address_hash) DO UPDATE SET
               reason = CASE WHEN excluded.reason = 'erased' THEN reason ELSE excluded.reason END",
        )?
        .execute(params![
            channel,
            address_hash(&key, channel, address),
            reason.as_deref().unwrap_or("erased"),
            ms(now)
        ])?;
        erasure.addresses_hashed += 1;
    }
    erasure
        .removed
        .insert("suppressions".into(), suppressions_removed);
    // The ids in use stay used: see `next_id!`.
    for (table, column) in [
        ("contacts", "id"),
        ("events", "seq"),
        ("enrollments", "id"),
        ("messages", "id"),
    ] {
        conn.execute(
            &format!(
                "INSERT INTO meta (key, value) SELECT 'id_floor:{table}', MAX({column}) FROM {table} WHERE true
                 HAVING MAX({column}) IS NOT NULL
                 ON CONFLICT (key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))"
            ),
            [],
        )?;
    }
    let segments: Vec<String> = {
        let mut stmt = conn.prepare_cached(ERASURE_LEAVES_SEGMENTS)?;
        let rows = stmt.query_map([contact_id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for segment in &segments {
        super::tx::count_segment_change(conn, segment, now, 0, 1)?;
    }
    for (table, _, sql) in PERSONAL_TABLES {
        if let Some(sql) = sql {
            let n = conn.prepare_cached(sql)?.execute([contact_id])?;
            erasure.removed.insert((*table).to_string(), n as i64);
        }
    }
    Ok(erasure)
}

pub(crate) fn record_audit(conn: &Connection, e: &NewAudit) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, contact_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        ms(e.at),
        e.actor,
        e.action,
        e.contact_id,
        e.detail.to_string()
    ])?;
    Ok(conn.last_insert_rowid())
}

impl ExportReads for SqliteStore {
    fn rows(&self, sql: &str, args: &[i64]) -> Result<Vec<Value>> {
        json_rows(&*self.conn()?, sql, rusqlite::params_from_iter(args))
    }

    fn count(&self, sql: &str, contact_id: i64) -> Result<i64> {
        Ok(self
            .conn()?
            .prepare_cached(sql)?
            .query_row([contact_id], |r| r.get(0))?)
    }

    fn contact_suppressions(&self, contact_id: i64) -> Result<Vec<Value>> {
        contact_suppressions(&*self.conn()?, contact_id)
    }
}

impl SqliteStore {
    pub(crate) fn export_counts(&self, contact_id: i64) -> Result<BTreeMap<String, i64>> {
        personal_data::export_counts(self, contact_id)
    }

    pub(crate) fn export(
        &self,
        contact_id: i64,
        page: usize,
        emit: &mut dyn FnMut(ExportPage) -> Result<()>,
    ) -> Result<()> {
        personal_data::export(self, contact_id, page, emit)
    }

    pub(crate) fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, actor, action, contact_id, detail FROM audit_log
             WHERE id > ?1 AND (?2 IS NULL OR contact_id = ?2) AND (?3 IS NULL OR action = ?3)
             ORDER BY id LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                q.after_id,
                q.contact_id,
                q.action,
                q.limit.clamp(1, 1000) as i64
            ],
            |r| {
                let detail: String = r.get(5)?;
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: ts(r.get(1)?),
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    contact_id: r.get(4)?,
                    detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{TempDir, tables};
    use super::*;
    use crate::personal_data::{OTHER_TABLES, PAGED_SECTIONS, SECTIONS, WHOLE_SECTIONS};
    use crate::prelude::*;

    /// (name, declared type, not null, primary key position) of each column.
    fn columns(conn: &Connection, table: &str) -> Vec<(String, String, bool, i64)> {
        let mut stmt = conn
            .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")
            .unwrap();
        stmt.query_map([table], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? == 1, r.get(3)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    fn has_contact_id(conn: &Connection, table: &str) -> bool {
        columns(conn, table).iter().any(|c| c.0 == "contact_id")
    }

    /// The guard against a forgotten table: every table of the current schema is either
    /// personal (erased, exported under a section) or listed with the reason it is not; a new
    /// table with a `contact_id` column that nobody classified fails here.
    #[test]
    fn every_table_is_either_erased_and_exported_or_listed_as_not_personal() {
        let dir = TempDir::new("classified");
        let store = SqliteStore::open(&dir.0).unwrap();
        let conn = store.conn().unwrap();
        for table in tables(&conn) {
            let personal = PERSONAL_TABLES.iter().any(|(t, ..)| *t == table);
            let other = OTHER_TABLES.iter().any(|(t, _)| *t == table);
            assert!(
                personal || other,
                "table `{table}`{} is neither erased and exported (personal_data::PERSONAL_TABLES) \
                 nor listed as holding nothing personal (personal_data::OTHER_TABLES)",
                if has_contact_id(&conn, &table) {
                    " has a contact_id column but"
                } else {
                    ""
                }
            );
            assert!(!(personal && other), "table `{table}` is in both lists");
        }
        for (table, section, erase) in PERSONAL_TABLES {
            assert!(
                SECTIONS.contains(section),
                "{table}: no section `{section}`"
            );
            if has_contact_id(&conn, table) {
                assert!(
                    erase
                        .is_some_and(|sql| sql.contains(&format!("FROM {table} WHERE contact_id"))),
                    "{table} is not erased by its contact_id"
                );
            }
        }
        for section in SECTIONS {
            assert!(
                ["contact", "suppressions"].contains(section)
                    || WHOLE_SECTIONS.iter().any(|(s, _)| s == section)
                    || PAGED_SECTIONS.iter().any(|(s, ..)| s == section),
                "section `{section}` has no query"
            );
        }
    }

    /// Puts a row for `contact` in every table with a `contact_id` column, whatever its
    /// columns are (so that a table added later is seeded too).
    fn seed_every_contact_table(conn: &Connection, contact: i64) {
        conn.execute(
            "INSERT INTO contacts (id, user_id, email, phone, traits, created_at, updated_at)
             VALUES (?1, ?2, ?3, '+4915112345678', '{\"plan\":\"pro\"}', 0, 0)",
            params![
                contact,
                format!("user-{contact}"),
                format!("Ann{contact}@Example.com")
            ],
        )
        .unwrap();
        for table in tables(conn) {
            let cols = columns(conn, &table);
            if table == "contacts" || !cols.iter().any(|c| c.0 == "contact_id") {
                continue;
            }
            let mut names = Vec::new();
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            for (name, ty, _, pk) in &cols {
                // An INTEGER PRIMARY KEY is the row id: let SQLite choose it.
                if *pk == 1 && ty == "INTEGER" && !cols.iter().any(|c| c.3 > 1) {
                    continue;
                }
                names.push(name.clone());
                values.push(match (name.as_str(), ty.as_str()) {
                    ("contact_id", _) => contact.into(),
                    ("name", _) if table == "events" => "Order Completed".to_string().into(),
                    (_, "INTEGER") => 1i64.into(),
                    _ => format!("{table}-{name}-{contact}").into(),
                });
            }
            let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
            conn.execute(
                &format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    names.join(", "),
                    marks.join(", ")
                ),
                rusqlite::params_from_iter(values),
            )
            .unwrap_or_else(|e| panic!("seeding {table}: {e}"));
        }
        // Rows found through another table, and the suppression of its address.
        conn.execute(
            "INSERT INTO steps (enrollment_id, at, node, action) SELECT id, 0, 'n', 'entered' FROM enrollments WHERE contact_id = ?1",
            [contact],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO order_products (product_id, seq) SELECT 'sku-' || seq, seq FROM events WHERE contact_id = ?1",
            [contact],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO messages (idempotency_key, contact_id, template, channel, recipient, status, created_at)
             VALUES (?1, ?2, 't', 'email', ?3, 'queued', 0)",
            params![format!("k-{contact}"), contact, format!("ann{contact}@example.com")],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO suppressions (channel, address, reason, source, created_at) VALUES ('email', ?1, 'complaint', 'api', 0)",
            [format!("ann{contact}@example.com")],
        )
        .unwrap();
    }

    fn count(conn: &Connection, sql: &str, contact: i64) -> i64 {
        conn.query_row(sql, [contact], |r| r.get(0)).unwrap()
    }

    #[test]
    fn export_has_every_section_and_erasure_leaves_no_row_of_the_contact_in_any_table() {
        let dir = TempDir::new("erase");
        let store = SqliteStore::open(&dir.0).unwrap();
        {
            let conn = store.conn().unwrap();
            // The list every seeded membership (list_id 1) refers to.
            conn.execute(
                "INSERT INTO lists (id, name, created_at) VALUES (1, 'vip', 0)",
                [],
            )
            .unwrap();
            seed_every_contact_table(&conn, 7);
            seed_every_contact_table(&conn, 8);
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        store
            .export_contact(7, 2, &mut |page| {
                *seen.entry(page.section).or_default() += page.rows.len();
                Ok(())
            })
            .unwrap();
        for section in SECTIONS {
            assert!(
                seen.get(section).copied().unwrap_or(0) > 0,
                "{section}: {seen:?}"
            );
        }
        let counts = store.contact_export_counts(7).unwrap();
        assert_eq!(counts["messages"], 2, "{counts:?}");
        assert_eq!(counts["steps"], 1, "{counts:?}");

        let before_other: Vec<(String, i64)> = {
            let conn = store.conn().unwrap();
            tables(&conn)
                .into_iter()
                .filter(|t| has_contact_id(&conn, t))
                .map(|t| {
                    let n = count(
                        &conn,
                        &format!("SELECT COUNT(*) FROM {t} WHERE contact_id = ?1"),
                        8,
                    );
                    (t, n)
                })
                .collect()
        };
        let mut erasure = None;
        store
            .engine_tx(&mut |tx| {
                erasure = Some(tx.erase_contact(7, Timestamp::UNIX_EPOCH)?);
                Ok(())
            })
            .unwrap();
        let erasure = erasure.unwrap();
        assert_eq!(erasure.removed["contacts"], 1);
        assert_eq!(erasure.removed["suppressions"], 1);
        assert_eq!(erasure.addresses_hashed, 2, "{erasure:?}");

        let conn = store.conn().unwrap();
        for table in tables(&conn) {
            if has_contact_id(&conn, &table) && !OTHER_TABLES.iter().any(|(t, _)| *t == table) {
                let left = count(
                    &conn,
                    &format!("SELECT COUNT(*) FROM {table} WHERE contact_id = ?1"),
                    7,
                );
                assert_eq!(left, 0, "{table} still holds rows of the erased contact");
            }
        }
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM contacts WHERE id = ?1", 7),
            0
        );
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM steps WHERE ?1 > 0", 1),
            1,
            "contact 8's step stays"
        );
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM order_products WHERE ?1 > 0", 1),
            1
        );
        let plain: i64 = count(
            &conn,
            "SELECT COUNT(*) FROM suppressions WHERE address LIKE 'ann' || ?1 || '%'",
            7,
        );
        assert_eq!(plain, 0, "the plain address is gone");
        let stored: String = conn
            .query_row(
                "SELECT group_concat(address_hash) FROM erased_addresses",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!stored.contains("example"), "{stored}");
        // The other contact is untouched.
        for (table, n) in before_other {
            let now = count(
                &conn,
                &format!("SELECT COUNT(*) FROM {table} WHERE contact_id = ?1"),
                8,
            );
            assert_eq!(now, n, "{table} of contact 8");
        }
        drop(conn);
        assert_eq!(
            store.contact_export_counts(7).unwrap_err().to_string(),
            "not found: contact 7"
        );
        // The send path finds the erased address, in any case, by its hash; the complaint
        // that was on it is kept as the reason.
        let mut found = Vec::new();
        store
            .engine_tx(&mut |tx| {
                found.push(tx.suppression("email", " ANN7@example.com ")?);
                found.push(tx.suppression("sms", "+4915112345678")?);
                found.push(tx.suppression("email", "ann9@example.com")?);
                Ok(())
            })
            .unwrap();
        assert_eq!(
            found,
            vec![
                Some("complaint".to_string()),
                Some("erased".to_string()),
                None
            ]
        );
        // Lifting it by the plain address works, as for any suppression.
        assert!(store.unsuppress("email", "ann7@example.com").unwrap());
        let mut after = None;
        store
            .engine_tx(&mut |tx| {
                after = Some(tx.suppression("email", "ann7@example.com")?);
                Ok(())
            })
            .unwrap();
        assert_eq!(after, Some(None));
    }

    /// Ids are never handed out twice, even when the erased contact held the newest ones:
    /// a reused event seq would be behind the engine's cursor, a reused contact id would make
    /// the erased person's signed links act on someone else.
    #[test]
    fn ids_of_erased_rows_are_not_reused() {
        let dir = TempDir::new("ids");
        let store = SqliteStore::open(&dir.0).unwrap();
        {
            let conn = store.conn().unwrap();
            conn.execute(
                "INSERT INTO lists (id, name, created_at) VALUES (1, 'vip', 0)",
                [],
            )
            .unwrap();
            seed_every_contact_table(&conn, 7);
            seed_every_contact_table(&conn, 8);
        }
        let max = |sql: &str| -> i64 {
            store
                .conn()
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap()
        };
        let (seq, message) = (
            max("SELECT MAX(seq) FROM events"),
            max("SELECT MAX(id) FROM messages"),
        );
        store
            .engine_tx(&mut |tx| tx.erase_contact(8, Timestamp::UNIX_EPOCH).map(|_| ()))
            .unwrap();
        let mut new_contact = 0;
        store
            .engine_tx(&mut |tx| {
                new_contact = tx.resolve_contact(Some("newcomer"), None, Timestamp::UNIX_EPOCH)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(new_contact, 9);
        let event = crate::NewEvent {
            message_id: "m-new".into(),
            kind: waymark_core::EventKind::Track,
            name: "Signed Up".into(),
            user_id: Some("newcomer".into()),
            anonymous_id: None,
            previous_id: None,
            properties: Map::new(),
            timestamp: Timestamp::UNIX_EPOCH,
            received_at: Timestamp::UNIX_EPOCH,
        };
        store.append_events(std::slice::from_ref(&event)).unwrap();
        assert_eq!(max("SELECT MAX(seq) FROM events"), seq + 1);
        store
            .engine_tx(&mut |tx| {
                tx.record_event(
                    new_contact,
                    &crate::NewEvent {
                        message_id: "m-rec".into(),
                        ..event.clone()
                    },
                )?;
                tx.insert_message(&crate::NewMessage {
                    idempotency_key: "k-new".into(),
                    contact_id: new_contact,
                    enrollment_id: None,
                    journey_id: None,
                    node: None,
                    template: "t".into(),
                    channel: "email".into(),
                    recipient: None,
                    subject: None,
                    html: None,
                    text: None,
                    status: crate::MessageStatus::Queued,
                    error: None,
                    created_at: Timestamp::UNIX_EPOCH,
                    priority: crate::Priority::Transactional,
                    broadcast_id: None,
                    unsubscribe_url: None,
                })?;
                Ok(())
            })
            .unwrap();
        assert_eq!(max("SELECT MAX(seq) FROM events"), seq + 2);
        assert_eq!(max("SELECT MAX(id) FROM messages"), message + 1);
    }
}
