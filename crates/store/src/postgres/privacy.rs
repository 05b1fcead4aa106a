//! Data protection on PostgreSQL: a contact's export, its erasure, the audit log, and the keyed
//! hashes that keep an erased person's addresses suppressed.
//!
//! Which table holds what about a contact, and how its export is read section by section,
//! are in [`crate::personal_data`], shared with the SQLite backend.
//!
//! Reads that also run inside a write (the erased-address lookups, the helpers of `erase`) take
//! any `GenericClient`, a pooled connection or a transaction; SQLite's transaction is a
//! connection, so there one type serves both.

use std::collections::{BTreeMap, BTreeSet};

use ::postgres::types::{ToSql, Type};
use ::postgres::{GenericClient, Transaction};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::{PgStore, ms, ts};
use crate::personal_data::{
    self, ExportReads, JSON_COLUMNS, PERSONAL_TABLES, address_hash, is_time_column,
};
use crate::{
    AuditEntry, AuditQuery, Erasure, ExportPage, NewAudit, Result, StoreError, Suppression,
    suppression_address,
};

/// A shared statement (`personal_data`, parameters `?1`, `?2`, ...) in PostgreSQL's `$1`, `$2`.
pub(crate) fn numbered(sql: &str) -> String {
    sql.replace('?', "$")
}

/// Rows of a query as JSON objects, column by column. Every column of the schema is BIGINT or
/// TEXT (see schema_v1.sql); a column of another type is refused, never exported wrongly.
fn json_rows(
    conn: &mut impl GenericClient,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Value>> {
    let rows = conn.query(sql, args)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut obj = Map::new();
        for (i, column) in r.columns().iter().enumerate() {
            let name = column.name();
            // Where the engine works on the row (`cluster`), not the contact's data.
            if name == "partition" {
                continue;
            }
            let v = match *column.type_() {
                Type::INT8 => match r.try_get::<_, Option<i64>>(i)? {
                    None => Value::Null,
                    Some(n) if is_time_column(name) => json!(ts(n)),
                    Some(n) => json!(n),
                },
                Type::FLOAT8 => match r.try_get::<_, Option<f64>>(i)? {
                    None => Value::Null,
                    Some(x) => json!(x),
                },
                Type::TEXT => match r.try_get::<_, Option<String>>(i)? {
                    None => Value::Null,
                    Some(s) if JSON_COLUMNS.contains(&name) => {
                        serde_json::from_str(&s).unwrap_or(Value::String(s))
                    }
                    Some(s) => Value::String(s),
                },
                ref other => {
                    return Err(StoreError::Database(format!(
                        "export cannot read column `{name}` of type {other}"
                    )));
                }
            };
            obj.insert(name.to_string(), v);
        }
        out.push(Value::Object(obj));
    }
    Ok(out)
}

fn erasure_key(conn: &mut impl GenericClient) -> Result<Option<String>> {
    Ok(conn
        .query_opt("SELECT value FROM meta WHERE key = 'erasure_key'", &[])?
        .map(|r| r.get(0)))
}

/// Why an erased contact's `address` is suppressed on `channel`, if it is (the engine asks
/// `PgTx::suppression`, which looks up both lists at once).
#[cfg(test)]
pub(crate) fn erased_suppression(
    conn: &mut impl GenericClient,
    channel: &str,
    address: &str,
) -> Result<Option<String>> {
    Ok(erased_entry(conn, channel, address)?.map(|entry| entry.reason))
}

/// The hashed entry of `address`, as a suppression list entry showing the address asked for.
pub(crate) fn erased_entry(
    conn: &mut impl GenericClient,
    channel: &str,
    address: &str,
) -> Result<Option<Suppression>> {
    let Some(key) = erasure_key(conn)? else {
        return Ok(None);
    };
    let row = conn.query_opt(
        "SELECT reason, created_at FROM erased_addresses WHERE channel = $1 AND address_hash = $2",
        &[&channel, &address_hash(&key, channel, address)],
    )?;
    Ok(row.map(|r| Suppression {
        channel: channel.to_string(),
        address: suppression_address(channel, address),
        reason: r.get(0),
        source: "erasure".into(),
        created_at: ts(r.get(1)),
    }))
}

/// Takes the hashed entry of `address` off the list; true when there was one.
pub(crate) fn unsuppress_erased(
    tx: &mut Transaction<'_>,
    channel: &str,
    address: &str,
) -> Result<bool> {
    let Some(key) = erasure_key(tx)? else {
        return Ok(false);
    };
    let n = tx.execute(
        "DELETE FROM erased_addresses WHERE channel = $1 AND address_hash = $2",
        &[&channel, &address_hash(&key, channel, address)],
    )?;
    Ok(n == 1)
}

/// Every address the contact has or had: its email and phone, and the recipients of its email
/// and SMS messages; normalised as the suppression list keys them.
fn contact_addresses(
    conn: &mut impl GenericClient,
    contact_id: i64,
) -> Result<BTreeSet<(String, String)>> {
    let rows = conn.query(
        "SELECT 'email', email FROM contacts WHERE id = $1 AND email IS NOT NULL
         UNION SELECT 'sms', phone FROM contacts WHERE id = $1 AND phone IS NOT NULL
         UNION SELECT channel, recipient FROM messages
               WHERE contact_id = $1 AND channel IN ('email', 'sms') AND recipient IS NOT NULL",
        &[&contact_id],
    )?;
    let mut out = BTreeSet::new();
    for row in rows {
        let (channel, address): (String, String) = (row.get(0), row.get(1));
        let address = suppression_address(&channel, &address);
        if !address.is_empty() {
            out.insert((channel, address));
        }
    }
    Ok(out)
}

/// Suppression entries of the contact's addresses: plain ones, and hashed ones (the address
/// was erased before and came back).
fn contact_suppressions(conn: &mut impl GenericClient, contact_id: i64) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (channel, address) in contact_addresses(conn, contact_id)? {
        out.extend(json_rows(
            conn,
            "SELECT * FROM suppressions WHERE channel = $1 AND address = $2",
            &[&channel, &address],
        )?);
        if let Some(entry) = erased_entry(conn, &channel, &address)? {
            let mut v = json!(entry);
            v["hashed"] = json!(true);
            out.push(v);
        }
    }
    Ok(out)
}

fn contact_exists(conn: &mut impl GenericClient, contact_id: i64) -> Result<()> {
    conn.query_opt("SELECT 1 FROM contacts WHERE id = $1", &[&contact_id])?
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(format!("contact {contact_id}")))
}

/// Erases the contact in the caller's transaction; see `EngineTx::erase_contact`.
pub(crate) fn erase(tx: &mut Transaction<'_>, contact_id: i64, now: Timestamp) -> Result<Erasure> {
    contact_exists(tx, contact_id)?;
    let mut erasure = Erasure {
        contact_id,
        ..Default::default()
    };
    // The suppression entries of its addresses, and every address it has or had, are kept as
    // keyed hashes: a later import of the same address finds it suppressed.
    let addresses = contact_addresses(tx, contact_id)?;
    if !addresses.is_empty() {
        // The migration creates the key; this makes one again if it was deleted (the same
        // 64 hex digits as schema_v1.sql).
        tx.execute(
            "INSERT INTO meta (key, value)
             VALUES ('erasure_key', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
             ON CONFLICT (key) DO NOTHING",
            &[],
        )?;
    }
    let key = erasure_key(tx)?.unwrap_or_default();
    let mut suppressions_removed = 0;
    for (channel, address) in &addresses {
        let reason: Option<String> = tx
            .query_opt(
                "SELECT reason FROM suppressions WHERE channel = $1 AND address = $2",
                &[channel, address],
            )?
            .map(|r| r.get(0));
        suppressions_removed += tx.execute(
            "DELETE FROM suppressions WHERE channel = $1 AND address = $2",
            &[channel, address],
        )? as i64;
        // A real reason (a complaint, a bounce) wins over `erased`.
        tx.execute(
            "INSERT INTO erased_addresses (channel, address_hash, reason, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel, address_hash) DO UPDATE SET
               reason = CASE WHEN excluded.reason = 'erased' THEN erased_addresses.reason ELSE excluded.reason END",
            &[
                channel,
                &address_hash(&key, channel, address),
                &reason.as_deref().unwrap_or("erased"),
                &ms(now),
            ],
        )?;
        erasure.addresses_hashed += 1;
    }
    erasure
        .removed
        .insert("suppressions".into(), suppressions_removed);
    // No `id_floor:<table>` rows as on SQLite: ids come from identity sequences, which never
    // hand out an id twice, even when the rows that held the largest ones are deleted.
    for (table, _, sql) in PERSONAL_TABLES {
        if let Some(sql) = sql {
            let n = tx.execute(numbered(sql).as_str(), &[&contact_id])?;
            erasure.removed.insert((*table).to_string(), n as i64);
        }
    }
    Ok(erasure)
}

pub(crate) fn record_audit(tx: &mut Transaction<'_>, e: &NewAudit) -> Result<i64> {
    let row = tx.query_one(
        "INSERT INTO audit_log (at, actor, action, contact_id, detail) VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
        &[
            &ms(e.at),
            &e.actor,
            &e.action,
            &e.contact_id,
            &e.detail.to_string(),
        ],
    )?;
    Ok(row.get(0))
}

impl ExportReads for PgStore {
    fn rows(&self, sql: &str, args: &[i64]) -> Result<Vec<Value>> {
        let args: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        json_rows(&mut *self.conn()?, &numbered(sql), &args)
    }

    fn count(&self, sql: &str, contact_id: i64) -> Result<i64> {
        Ok(self
            .conn()?
            .query_one(numbered(sql).as_str(), &[&contact_id])?
            .get(0))
    }

    fn contact_suppressions(&self, contact_id: i64) -> Result<Vec<Value>> {
        contact_suppressions(&mut *self.conn()?, contact_id)
    }
}

impl PgStore {
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
        let rows = self.conn()?.query(
            "SELECT id, at, actor, action, contact_id, detail FROM audit_log
             WHERE id > $1 AND ($2::BIGINT IS NULL OR contact_id = $2)
               AND ($3::TEXT IS NULL OR action = $3)
             ORDER BY id LIMIT $4",
            &[
                &q.after_id,
                &q.contact_id,
                &q.action,
                &(q.limit.clamp(1, 1000) as i64),
            ],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let detail: String = r.get(5);
                AuditEntry {
                    id: r.get(0),
                    at: ts(r.get(1)),
                    actor: r.get(2),
                    action: r.get(3),
                    contact_id: r.get(4),
                    detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use ::postgres::Client;

    use super::super::test_support::TestDatabase;
    use super::*;
    use crate::personal_data::{OTHER_TABLES, SECTIONS};
    use crate::prelude::*;
    use crate::sqlite::SqliteStore;
    use crate::sqlite::test_support::TempDir;

    fn tables(conn: &mut Client) -> Vec<String> {
        conn.query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    /// (name, data type, identity) of each column, in order.
    fn columns(conn: &mut Client, table: &str) -> Vec<(String, String, bool)> {
        conn.query(
            "SELECT column_name::text, data_type::text, is_identity = 'YES'
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    }

    fn has_contact_id(conn: &mut Client, table: &str) -> bool {
        columns(conn, table).iter().any(|c| c.0 == "contact_id")
    }

    fn count(conn: &mut Client, sql: &str, contact: i64) -> i64 {
        conn.query_one(sql, &[&contact]).unwrap().get(0)
    }

    /// The guard of `sqlite::privacy`'s test of the same name, on this backend's schema.
    #[test]
    fn every_table_is_either_erased_and_exported_or_listed_as_not_personal() {
        let Some(db) = TestDatabase::create("privacy_classified") else {
            return;
        };
        let store = db.open();
        let mut conn = store.conn().unwrap();
        for table in tables(&mut conn) {
            let personal = PERSONAL_TABLES.iter().any(|(t, ..)| *t == table);
            let other = OTHER_TABLES.iter().any(|(t, _)| *t == table);
            assert!(
                personal || other,
                "table `{table}`{} is neither erased and exported (personal_data::PERSONAL_TABLES) \
                 nor listed as holding nothing personal (personal_data::OTHER_TABLES)",
                if has_contact_id(&mut conn, &table) {
                    " has a contact_id column but"
                } else {
                    ""
                }
            );
            assert!(!(personal && other), "table `{table}` is in both lists");
        }
        for (table, _, erase) in PERSONAL_TABLES {
            if has_contact_id(&mut conn, table) {
                assert!(
                    erase
                        .is_some_and(|sql| sql.contains(&format!("FROM {table} WHERE contact_id"))),
                    "{table} is not erased by its contact_id"
                );
            }
        }
    }

    /// Puts a row for `contact` in every table with a `contact_id` column, whatever its
    /// columns are (so that a table added later is seeded too).
    fn seed_every_contact_table(conn: &mut Client, contact: i64) {
        conn.execute(
            "INSERT INTO contacts (id, user_id, email, phone, traits, created_at, updated_at)
             VALUES ($1, $2, $3, '+4915112345678', '{\"plan\":\"pro\"}', 0, 0)",
            &[
                &contact,
                &format!("user-{contact}"),
                &format!("Ann{contact}@Example.com"),
            ],
        )
        .unwrap();
        for table in tables(conn) {
            let cols = columns(conn, &table);
            if table == "contacts" || !cols.iter().any(|c| c.0 == "contact_id") {
                continue;
            }
            let mut names = Vec::new();
            let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::new();
            for (name, ty, identity) in &cols {
                // An identity column takes its next value.
                if *identity {
                    continue;
                }
                names.push(name.clone());
                values.push(match (name.as_str(), ty.as_str()) {
                    ("contact_id", _) => Box::new(contact),
                    // One conversion per enrollment: the key must differ between contacts.
                    ("enrollment_id", _) if table == "conversions" => Box::new(contact),
                    ("name", _) if table == "events" => Box::new("Order Completed"),
                    (_, "bigint") => Box::new(1i64),
                    (_, "smallint") => Box::new(0i16),
                    (_, "double precision") => Box::new(1.5f64),
                    _ => Box::new(format!("{table}-{name}-{contact}")),
                });
            }
            let marks: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let args: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
            conn.execute(
                &format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    names.join(", "),
                    marks.join(", ")
                ),
                &args,
            )
            .unwrap_or_else(|e| panic!("seeding {table}: {e}"));
        }
        // Rows found through another table, and the suppression of its address.
        conn.execute(
            "INSERT INTO steps (enrollment_id, at, node, action) SELECT id, 0, 'n', 'entered' FROM enrollments WHERE contact_id = $1",
            &[&contact],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO order_products (product_id, seq) SELECT 'sku-' || seq, seq FROM events WHERE contact_id = $1",
            &[&contact],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO messages (idempotency_key, contact_id, template, channel, recipient, status, created_at)
             VALUES ($1, $2, 't', 'email', $3, 'queued', 0)",
            &[&format!("k-{contact}"), &contact, &format!("ann{contact}@example.com")],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO suppressions (channel, address, reason, source, created_at) VALUES ('email', $1, 'complaint', 'api', 0)",
            &[&format!("ann{contact}@example.com")],
        )
        .unwrap();
    }

    #[test]
    fn export_has_every_section_and_erasure_leaves_no_row_of_the_contact_in_any_table() {
        let Some(db) = TestDatabase::create("privacy_erase") else {
            return;
        };
        let store = db.open();
        {
            let mut conn = store.conn().unwrap();
            // The list every seeded membership (list_id 1) refers to.
            conn.execute(
                "INSERT INTO lists (id, name, created_at) VALUES (1, 'vip', 0)",
                &[],
            )
            .unwrap();
            seed_every_contact_table(&mut conn, 7);
            seed_every_contact_table(&mut conn, 8);
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        store
            .export(7, 2, &mut |page| {
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
        let counts = store.export_counts(7).unwrap();
        assert_eq!(counts["messages"], 2, "{counts:?}");
        assert_eq!(counts["steps"], 1, "{counts:?}");

        let before_other: Vec<(String, i64)> = {
            let mut conn = store.conn().unwrap();
            tables(&mut conn)
                .into_iter()
                .filter_map(|t| {
                    has_contact_id(&mut conn, &t).then(|| {
                        let sql = format!("SELECT COUNT(*) FROM {t} WHERE contact_id = $1");
                        (t, count(&mut conn, &sql, 8))
                    })
                })
                .collect()
        };
        let erasure = store
            .write(|tx| erase(tx, 7, Timestamp::UNIX_EPOCH))
            .unwrap();
        assert_eq!(erasure.removed["contacts"], 1);
        assert_eq!(erasure.removed["suppressions"], 1);
        assert_eq!(erasure.addresses_hashed, 2, "{erasure:?}");

        let mut conn = store.conn().unwrap();
        for table in tables(&mut conn) {
            if has_contact_id(&mut conn, &table) && !OTHER_TABLES.iter().any(|(t, _)| *t == table) {
                let left = count(
                    &mut conn,
                    &format!("SELECT COUNT(*) FROM {table} WHERE contact_id = $1"),
                    7,
                );
                assert_eq!(left, 0, "{table} still holds rows of the erased contact");
            }
        }
        assert_eq!(
            count(&mut conn, "SELECT COUNT(*) FROM contacts WHERE id = $1", 7),
            0
        );
        assert_eq!(
            count(
                &mut conn,
                "SELECT COUNT(*) FROM steps WHERE $1::BIGINT > 0",
                1
            ),
            1,
            "contact 8's step stays"
        );
        assert_eq!(
            count(
                &mut conn,
                "SELECT COUNT(*) FROM order_products WHERE $1::BIGINT > 0",
                1
            ),
            1
        );
        let plain: i64 = count(
            &mut conn,
            "SELECT COUNT(*) FROM suppressions WHERE address LIKE 'ann' || $1::BIGINT || '%'",
            7,
        );
        assert_eq!(plain, 0, "the plain address is gone");
        let stored: String = conn
            .query_one(
                "SELECT string_agg(address_hash, ',') FROM erased_addresses",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(!stored.contains("example"), "{stored}");
        // The other contact is untouched.
        for (table, n) in before_other {
            let now = count(
                &mut conn,
                &format!("SELECT COUNT(*) FROM {table} WHERE contact_id = $1"),
                8,
            );
            assert_eq!(now, n, "{table} of contact 8");
        }
        drop(conn);
        assert_eq!(
            store.export_counts(7).unwrap_err().to_string(),
            "not found: contact 7"
        );
        // The send path finds the erased address, in any case, by its hash; the complaint
        // that was on it is kept as the reason.
        let found = store
            .write(|tx| {
                Ok(vec![
                    erased_suppression(tx, "email", " ANN7@example.com ")?,
                    erased_suppression(tx, "sms", "+4915112345678")?,
                    erased_suppression(tx, "email", "ann9@example.com")?,
                ])
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
        // Lifting it by the address works.
        assert!(
            store
                .write(|tx| unsuppress_erased(tx, "email", "ann7@example.com"))
                .unwrap()
        );
        let after = erased_suppression(&mut *store.conn().unwrap(), "email", "ann7@example.com");
        assert_eq!(after.unwrap(), None);
    }

    /// Ids are never handed out twice, even when the erased contact held the newest ones (see
    /// `sqlite::privacy`'s test of the same name): here the identity sequences see to it,
    /// with no `id_floor` rows.
    #[test]
    fn ids_of_erased_rows_are_not_reused() {
        let Some(db) = TestDatabase::create("privacy_ids") else {
            return;
        };
        let store = db.open();
        let insert = |user: &str| -> (i64, i64, i64) {
            store
                .write(|tx| {
                    let contact: i64 = tx
                        .query_one(
                            "INSERT INTO contacts (user_id, created_at, updated_at) VALUES ($1, 0, 0) RETURNING id",
                            &[&user],
                        )?
                        .get(0);
                    let seq: i64 = tx
                        .query_one(
                            "INSERT INTO events (message_id, kind, name, properties, timestamp, received_at, contact_id)
                             VALUES ($1, 'track', 'Signed Up', '{}', 0, 0, $2) RETURNING seq",
                            &[&format!("m-{user}"), &contact],
                        )?
                        .get(0);
                    let message: i64 = tx
                        .query_one(
                            "INSERT INTO messages (idempotency_key, contact_id, template, channel, status, created_at)
                             VALUES ($1, $2, 't', 'email', 'queued', 0) RETURNING id",
                            &[&format!("k-{user}"), &contact],
                        )?
                        .get(0);
                    Ok((contact, seq, message))
                })
                .unwrap()
        };
        insert("first");
        let newest = insert("second");
        store
            .write(|tx| erase(tx, newest.0, Timestamp::UNIX_EPOCH))
            .unwrap();
        let newcomer = insert("newcomer");
        assert_eq!(
            newcomer,
            (newest.0 + 1, newest.1 + 1, newest.2 + 1),
            "{newest:?}"
        );
    }

    /// A history with every kind of value an export shows (times, NULLs, JSON and not-JSON
    /// text, a membership of a deleted segment, an address a contact erased before used), in
    /// statements both backends run as they are.
    const HISTORY: &str = r#"
        INSERT INTO lists (id, name, created_at) VALUES (1, 'vip', 0), (2, 'beta', 5);
        INSERT INTO segments (id, name, condition, created_at, updated_at)
        VALUES ('s1', 'Active', '{}', 0, 0);
        INSERT INTO contacts (id, user_id, email, phone, timezone, traits, created_at, updated_at)
        VALUES (5, 'user-5', 'Gone@Example.com', NULL, NULL, '{}', 0, 0),
               (7, 'user-7', 'Ann@Example.com', '+4915112345678', 'Europe/Berlin',
                '{"plan":"pro","n":1}', 1700000000000, 1700000001000);
        INSERT INTO anonymous_ids (anonymous_id, contact_id)
        VALUES ('anon-b', 7), ('anon-a', 7), ('anon-5', 5);
        INSERT INTO events (seq, message_id, kind, name, user_id, anonymous_id, previous_id,
                            properties, timestamp, received_at, contact_id)
        VALUES (1, 'm1', 'track', 'Order Completed', 'user-7', NULL, NULL,
                '{"products":[{"sku":"a"},{"product_id":"b"}]}', 1700000000000, 1700000000001, 7),
               (2, 'm2', 'identify', 'identify', 'user-7', 'anon-a', NULL, 'not json',
                1700000000002, 1700000000003, 7),
               (3, 'm3', 'track', 'Viewed', NULL, 'anon-b', NULL, '{}', 1700000000004,
                1700000000005, 7),
               (4, 'm4', 'track', 'Viewed', 'user-5', NULL, NULL, '{}', 0, 0, 5);
        -- What SQLite's event insert lists of an order (PostgreSQL's trigger made them already).
        INSERT INTO order_products (product_id, seq) VALUES ('a', 1), ('b', 1)
        ON CONFLICT DO NOTHING;
        INSERT INTO enrollments (id, journey_id, version, contact_id, key, node, status, wake_at,
                                 entered_at, entered_seq, consumed_seq, visits, updated_at)
        VALUES (1, 'welcome', 1, 7, NULL, 'wait', 'active', 1700000100000, 1700000000000, 1, 1, 1,
                1700000000000),
               (2, 'winback', 2, 7, 'k', 'done', 'completed', NULL, 1700000000000, 3, 3, 2,
                1700000000000),
               (3, 'welcome', 1, 5, NULL, 'wait', 'active', NULL, 0, 4, 4, 1, 0);
        INSERT INTO steps (id, enrollment_id, at, node, action, detail)
        VALUES (1, 1, 1700000000000, 'start', 'entered', NULL),
               (2, 1, 1700000000001, 'wait', 'waiting', '{"until":1}'),
               (3, 2, 1700000000002, 'done', 'completed', 'plain'),
               (4, 3, 0, 'start', 'entered', NULL);
        INSERT INTO messages (id, idempotency_key, contact_id, enrollment_id, journey_id, node,
                              template, channel, recipient, subject, status, created_at, sent_at)
        VALUES (1, 'k1', 7, 1, 'welcome', 'mail', 't', 'email', 'ann@example.com', 'Hi', 'sent',
                1700000000000, 1700000000100),
               (2, 'k2', 7, NULL, NULL, NULL, 't', 'sms', '+4915112345678', NULL, 'queued',
                1700000000200, NULL),
               (3, 'k3', 7, NULL, NULL, NULL, 't', 'email', ' GONE@example.com', NULL, 'sent',
                1700000000300, 1700000000400),
               (4, 'k4', 5, NULL, NULL, NULL, 't', 'email', 'gone@example.com', NULL, 'sent', 0, 0);
        INSERT INTO subscriptions (contact_id, channel, topic, status, updated_at)
        VALUES (7, 'email', '*', 'subscribed', 0), (7, 'email', 'news', 'unsubscribed', 1);
        INSERT INTO list_members (list_id, contact_id, added_at) VALUES (1, 7, 10), (2, 7, 20);
        INSERT INTO segment_members (segment_id, contact_id, entered_at)
        VALUES ('s1', 7, 30), ('s9', 7, 40);
        INSERT INTO segment_checks (segment_id, contact_id, due_at) VALUES ('s1', 7, 50);
        INSERT INTO trigger_schedule (journey_id, node, contact_id, due_at)
        VALUES ('welcome', 'n1', 7, 60);
        INSERT INTO score_expiries (id, contact_id, score_trait, points, due_at)
        VALUES (1, 7, 'score', 5, 70), (2, 7, 'score', -2, 80), (3, 7, 'lead', 1, 90);
        INSERT INTO suppressions (channel, address, reason, source, created_at)
        VALUES ('email', 'ann@example.com', 'complaint', 'api', 100),
               ('sms', '+4915112345678', 'manual', 'api', 110),
               ('email', 'gone@example.com', 'bounce', 'webhook', 120);
    "#;

    /// The privacy calls of one backend, so that one script runs on both.
    trait Backend {
        fn run(&self, sql: &str);
        fn erase(&self, contact_id: i64, now: Timestamp) -> Result<Erasure>;
        fn counts(&self, contact_id: i64) -> Result<BTreeMap<String, i64>>;
        fn export(&self, contact_id: i64, page: usize) -> Result<Vec<(&'static str, Value)>>;
        fn record_audit(&self, entry: &NewAudit) -> Result<i64>;
        fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
        fn erased_entry(&self, channel: &str, address: &str) -> Result<Option<Suppression>>;
        fn erased_suppression(&self, channel: &str, address: &str) -> Result<Option<String>>;
        fn unsuppress_erased(&self, channel: &str, address: &str) -> Result<bool>;
    }

    impl Backend for SqliteStore {
        fn run(&self, sql: &str) {
            self.conn().unwrap().execute_batch(sql).unwrap();
        }
        fn erase(&self, contact_id: i64, now: Timestamp) -> Result<Erasure> {
            let mut erasure = None;
            self.engine_tx(&mut |tx| {
                erasure = Some(tx.erase_contact(contact_id, now)?);
                Ok(())
            })?;
            Ok(erasure.expect("erased"))
        }
        fn counts(&self, contact_id: i64) -> Result<BTreeMap<String, i64>> {
            self.contact_export_counts(contact_id)
        }
        fn export(&self, contact_id: i64, page: usize) -> Result<Vec<(&'static str, Value)>> {
            let mut pages = Vec::new();
            self.export_contact(contact_id, page, &mut |p| {
                pages.push((p.section, Value::Array(p.rows)));
                Ok(())
            })?;
            Ok(pages)
        }
        fn record_audit(&self, entry: &NewAudit) -> Result<i64> {
            Privacy::record_audit(self, entry)
        }
        fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
            self.audit_log(query)
        }
        fn erased_entry(&self, channel: &str, address: &str) -> Result<Option<Suppression>> {
            crate::sqlite::privacy::erased_entry(&*self.conn()?, channel, address)
        }
        fn erased_suppression(&self, channel: &str, address: &str) -> Result<Option<String>> {
            crate::sqlite::privacy::erased_suppression(&*self.conn()?, channel, address)
        }
        fn unsuppress_erased(&self, channel: &str, address: &str) -> Result<bool> {
            self.write(|tx| crate::sqlite::privacy::unsuppress_erased(tx, channel, address))
        }
    }

    impl Backend for PgStore {
        fn run(&self, sql: &str) {
            self.conn().unwrap().batch_execute(sql).unwrap();
        }
        fn erase(&self, contact_id: i64, now: Timestamp) -> Result<Erasure> {
            self.write(|tx| erase(tx, contact_id, now))
        }
        fn counts(&self, contact_id: i64) -> Result<BTreeMap<String, i64>> {
            self.export_counts(contact_id)
        }
        fn export(&self, contact_id: i64, page: usize) -> Result<Vec<(&'static str, Value)>> {
            let mut pages = Vec::new();
            PgStore::export(self, contact_id, page, &mut |p| {
                pages.push((p.section, Value::Array(p.rows)));
                Ok(())
            })?;
            Ok(pages)
        }
        fn record_audit(&self, entry: &NewAudit) -> Result<i64> {
            self.write(|tx| record_audit(tx, entry))
        }
        fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
            PgStore::audit(self, query)
        }
        fn erased_entry(&self, channel: &str, address: &str) -> Result<Option<Suppression>> {
            erased_entry(&mut *self.conn()?, channel, address)
        }
        fn erased_suppression(&self, channel: &str, address: &str) -> Result<Option<String>> {
            // In a transaction, as the send path asks.
            self.write(|tx| erased_suppression(tx, channel, address))
        }
        fn unsuppress_erased(&self, channel: &str, address: &str) -> Result<bool> {
            self.write(|tx| unsuppress_erased(tx, channel, address))
        }
    }

    /// What the backend answers along the script, each answer labelled, errors as their text.
    fn answers(b: &dyn Backend) -> Vec<(String, Value)> {
        fn answer<T: serde::Serialize>(r: Result<T>) -> Value {
            match r {
                Ok(v) => serde_json::to_value(v).unwrap(),
                Err(e) => json!({ "error": e.to_string() }),
            }
        }
        let at = |s: i64| Timestamp::from_second(s).unwrap();
        let mut out = Vec::new();
        b.run(HISTORY);
        out.push(("erase 5".into(), answer(b.erase(5, at(1_700_000_000)))));
        out.push(("counts 7".into(), answer(b.counts(7))));
        for page in [1, 2, 100] {
            out.push((format!("export 7 by {page}"), answer(b.export(7, page))));
        }
        out.push(("export 5".into(), answer(b.export(5, 10))));
        out.push(("counts 5".into(), answer(b.counts(5))));
        for (actor, action, contact) in [
            ("admin_token", "contact.export", Some(7)),
            ("session:ab12", "contact.erase", Some(5)),
            ("admin_token", "contact.erase", None),
        ] {
            let entry = NewAudit {
                at: at(1_700_000_100),
                actor: actor.into(),
                action: action.into(),
                contact_id: contact,
                detail: json!({ "rows": { "events": 3 }, "by": actor }),
            };
            out.push((format!("audit {action}"), answer(b.record_audit(&entry))));
        }
        for query in [
            AuditQuery {
                limit: 10,
                ..Default::default()
            },
            AuditQuery {
                contact_id: Some(5),
                limit: 10,
                ..Default::default()
            },
            AuditQuery {
                action: Some("contact.erase".into()),
                limit: 1,
                after_id: 1,
                ..Default::default()
            },
        ] {
            out.push((format!("audit log {query:?}"), answer(b.audit(&query))));
        }
        b.run("UPDATE audit_log SET detail = 'not json' WHERE id = 1");
        out.push((
            "audit log, detail not JSON".into(),
            answer(b.audit(&AuditQuery {
                limit: 1,
                ..Default::default()
            })),
        ));
        out.push(("erase 7".into(), answer(b.erase(7, at(1_700_000_200)))));
        out.push((
            "erase 7 again".into(),
            answer(b.erase(7, at(1_700_000_300))),
        ));
        for (channel, address) in [
            ("email", " ANN@example.com"),
            ("sms", "+4915112345678"),
            ("email", "gone@example.com"),
            ("email", "nobody@example.com"),
        ] {
            out.push((
                format!("erased entry {channel} {address}"),
                answer(b.erased_entry(channel, address)),
            ));
            out.push((
                format!("erased suppression {channel} {address}"),
                answer(b.erased_suppression(channel, address)),
            ));
        }
        for _ in 0..2 {
            out.push((
                "unsuppress gone".into(),
                answer(b.unsuppress_erased("email", "gone@example.com")),
            ));
        }
        out.push((
            "erased suppression gone, lifted".into(),
            answer(b.erased_suppression("email", "gone@example.com")),
        ));
        out
    }

    #[test]
    fn every_answer_is_the_same_as_on_sqlite() {
        let Some(db) = TestDatabase::create("privacy_same") else {
            return;
        };
        let dir = TempDir::new("privacy_same");
        let sqlite = answers(&SqliteStore::open(&dir.0).unwrap());
        let postgres = answers(&db.open());
        assert_eq!(sqlite.len(), postgres.len());
        for ((label, expected), (_, got)) in sqlite.iter().zip(&postgres) {
            assert_eq!(got, expected, "{label}");
        }
        // The script reached what it means to test.
        let find = |label: &str| &sqlite.iter().find(|(l, _)| l == label).unwrap().1;
        let export = find("export 7 by 2").to_string();
        assert!(export.contains("\"hashed\":true"), "{export}");
        assert!(export.contains("2023-11-14T22:13:20Z"), "{export}");
        assert_eq!(find("erase 7")["addresses_hashed"], json!(3));
        assert_eq!(
            find("erase 7 again")["error"],
            json!("not found: contact 7")
        );
        assert_eq!(
            find("erased suppression gone, lifted"),
            &Value::Null,
            "{sqlite:?}"
        );
    }
}
