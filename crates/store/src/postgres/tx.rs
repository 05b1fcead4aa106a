//! `EngineTx` (every `Tx` concern trait, one impl block each) on a PostgreSQL transaction: a
//! line-for-line sibling of `sqlite::tx`, in the same order; comments here say only where
//! PostgreSQL differs and why.

use ::postgres::types::{FromSql, ToSql};
use ::postgres::{GenericClient, Row, Transaction};
use jiff::Timestamp;
use serde_json::{Map, Value};
use waymark_core::condition::MessageRecord;
use waymark_core::filter::Engagement;
use waymark_core::journey::Channel;
use waymark_core::stepper::PriorEnrollment;
use waymark_core::{Enrollment, EnrollmentStatus, EventKind, EventRecord, StepLog};

use super::{APPEND_LOCK, ms, ts};
use crate::{
    AudiencesTx, ConsentTx, Contact, ContactsTx, EngineTx, EnrollmentsTx, Erasure, EventsTx,
    ExperimentCounts, ExperimentsTx, MetaTx, NewAudit, NewEvent, NewMessage, OutboxTx, PrivacyTx,
    ReportingTx, Result, StatsDeltas, StoreError, StoredEvent, StoredTemplate, Subscription,
    Suppression, TemplatesTx, TimersTx, suppression_address,
};

pub(crate) struct PgTx<'a, 'b> {
    pub(crate) tx: &'a mut Transaction<'b>,
}

/// Column `idx` of a stored row. A value that cannot be read (a NULL where none may be) is
/// reported as corrupt data: `Row::get` would panic.
pub(crate) fn column<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T> {
    row.try_get(idx).map_err(|e| {
        StoreError::Corrupt(match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        })
    })
}

pub(crate) const ENROLLMENT_COLUMNS: &str = "id, journey_id, version, contact_id, key, node, status, wake_at, entered_at, entered_seq, visits, consumed_seq";

pub(crate) fn enrollment_from_row(r: &Row) -> Result<Enrollment> {
    let status: String = column(r, 6)?;
    Ok(Enrollment {
        id: column(r, 0)?,
        journey_id: column(r, 1)?,
        version: column(r, 2)?,
        contact_id: column(r, 3)?,
        key: column(r, 4)?,
        node: column(r, 5)?,
        status: EnrollmentStatus::parse(&status).unwrap_or(EnrollmentStatus::Exited),
        wake_at: column::<Option<i64>>(r, 7)?.map(ts),
        entered_at: ts(column(r, 8)?),
        entered_seq: column(r, 9)?,
        visits: column(r, 10)?,
        consumed_seq: column(r, 11)?,
    })
}

pub(crate) const CONTACT_COLUMNS: &str =
    "id, user_id, email, phone, timezone, traits, created_at, updated_at";

pub(crate) fn contact_from_row(r: &Row) -> Result<Contact> {
    let traits: String = column(r, 5)?;
    Ok(Contact {
        id: column(r, 0)?,
        user_id: column(r, 1)?,
        email: column(r, 2)?,
        phone: column(r, 3)?,
        timezone: column(r, 4)?,
        traits: serde_json::from_str(&traits).unwrap_or_default(),
        created_at: ts(column(r, 6)?),
        updated_at: ts(column(r, 7)?),
    })
}

pub(crate) fn event_from_row(r: &Row) -> Result<StoredEvent> {
    let kind: String = column(r, 1)?;
    let props: String = column(r, 6)?;
    Ok(StoredEvent {
        seq: column(r, 0)?,
        event: NewEvent {
            message_id: column(r, 9)?,
            kind: EventKind::parse(&kind).unwrap_or(EventKind::Track),
            name: column(r, 2)?,
            user_id: column(r, 3)?,
            anonymous_id: column(r, 4)?,
            previous_id: column(r, 5)?,
            properties: serde_json::from_str(&props).unwrap_or_default(),
            timestamp: ts(column(r, 7)?),
            received_at: ts(column(r, 8)?),
        },
        contact_id: column(r, 10)?,
    })
}

pub(crate) const EVENT_COLUMNS: &str = "seq, kind, name, user_id, anonymous_id, previous_id, properties, timestamp, received_at, message_id, contact_id";

/// Traits whose values also live in their own columns, for lookups and sending.
fn contact_columns(
    traits: &Map<String, Value>,
) -> (Option<String>, Option<String>, Option<String>) {
    let s = |k: &str| traits.get(k).and_then(Value::as_str).map(str::to_string);
    (s("email"), s("phone"), s("timezone"))
}

/// The first column of each row, e.g. the ids of a page.
fn first_column<'a, T: FromSql<'a>>(rows: &'a [Row]) -> Result<Vec<T>> {
    rows.iter().map(|r| column(r, 0)).collect()
}

impl PgTx<'_, '_> {
    fn create_contact(&mut self, user_id: Option<&str>, now: Timestamp) -> Result<i64> {
        let row = self.tx.query_one(
            "INSERT INTO contacts (user_id, created_at, updated_at) VALUES ($1, $2, $2) RETURNING id",
            &[&user_id, &ms(now)],
        )?;
        column(&row, 0)
    }

    fn contact_by_user(&mut self, user_id: &str) -> Result<Option<i64>> {
        self.tx
            .query_opt("SELECT id FROM contacts WHERE user_id = $1", &[&user_id])?
            .map(|r| column(&r, 0))
            .transpose()
    }

    fn contact_by_anonymous(&mut self, anonymous_id: &str) -> Result<Option<i64>> {
        self.tx
            .query_opt(
                "SELECT contact_id FROM anonymous_ids WHERE anonymous_id = $1",
                &[&anonymous_id],
            )?
            .map(|r| column(&r, 0))
            .transpose()
    }

    fn link_anonymous(&mut self, anonymous_id: &str, contact_id: i64) -> Result<()> {
        self.tx.execute(
            "INSERT INTO anonymous_ids (anonymous_id, contact_id) VALUES ($1, $2)
             ON CONFLICT (anonymous_id) DO UPDATE SET contact_id = excluded.contact_id",
            &[&anonymous_id, &contact_id],
        )?;
        Ok(())
    }

    fn user_id_of(&mut self, contact_id: i64) -> Result<Option<String>> {
        let row = self
            .tx
            .query_opt("SELECT user_id FROM contacts WHERE id = $1", &[&contact_id])?
            .ok_or_else(|| StoreError::NotFound(format!("contact {contact_id}")))?;
        column(&row, 0)
    }

    /// Moves everything of contact `from` to contact `into` (one person, one history) and
    /// deletes `from`. Traits of `into` win over those of `from`.
    fn merge(&mut self, from: i64, into: i64, now: Timestamp) -> Result<()> {
        if from == into {
            return Ok(());
        }
        let from_contact = self.contact_inner(from)?;
        let into_contact = self.contact_inner(into)?;
        let mut traits = from_contact.traits;
        traits.extend(into_contact.traits);
        let (email, phone, tz) = contact_columns(&traits);
        // Each statement gets only the parameters it uses: PostgreSQL must infer the type of
        // every one (and one in a SELECT list is inferred as text unless cast).
        let both: &[&(dyn ToSql + Sync)] = &[&from, &into];
        let from_only: &[&(dyn ToSql + Sync)] = &[&from];
        for (sql, params) in [
            ("UPDATE events SET contact_id = $2 WHERE contact_id = $1", both),
            ("UPDATE anonymous_ids SET contact_id = $2 WHERE contact_id = $1", both),
            ("INSERT INTO list_members (list_id, contact_id, added_at) SELECT list_id, $2::BIGINT, added_at FROM list_members WHERE contact_id = $1 ON CONFLICT DO NOTHING", both),
            ("DELETE FROM list_members WHERE contact_id = $1", from_only),
            ("UPDATE enrollments SET contact_id = $2 WHERE contact_id = $1", both),
            ("UPDATE messages SET contact_id = $2 WHERE contact_id = $1", both),
            ("DELETE FROM contacts WHERE id = $1", from_only),
        ] {
            self.tx.execute(sql, params)?;
        }
        self.tx.execute(
            "UPDATE contacts SET traits = $2, email = $3, phone = $4, timezone = $5, updated_at = $6 WHERE id = $1",
            &[&into, &serde_json::to_string(&traits)?, &email, &phone, &tz, &ms(now)],
        )?;
        Ok(())
    }

    fn contact_inner(&mut self, contact_id: i64) -> Result<Contact> {
        self.tx
            .query_opt(
                &format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1"),
                &[&contact_id],
            )?
            .map(|r| contact_from_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("contact {contact_id}")))
    }

    fn list_id(&mut self, name: &str, create_at: Option<Timestamp>) -> Result<Option<i64>> {
        if let Some(now) = create_at {
            self.tx.execute(
                "INSERT INTO lists (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &ms(now)],
            )?;
        }
        self.tx
            .query_opt("SELECT id FROM lists WHERE name = $1", &[&name])?
            .map(|r| column(&r, 0))
            .transpose()
    }
}

impl EngineTx for PgTx<'_, '_> {}

impl ContactsTx for PgTx<'_, '_> {
    fn resolve_contact(
        &mut self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        now: Timestamp,
    ) -> Result<i64> {
        // A user id merged away by an alias still names its contact (kept with the anonymous ids).
        let by_user = match user_id {
            Some(u) => match self.contact_by_user(u)? {
                Some(c) => Some(c),
                None => self.contact_by_anonymous(u)?,
            },
            None => None,
        };
        let by_anon = match anonymous_id {
            Some(a) => self.contact_by_anonymous(a)?,
            None => None,
        };
        let id = match (by_user, by_anon) {
            (Some(u), Some(a)) if u != a => {
                // The anonymous visitor turns out to be this user: one person, one history.
                // An anonymous id already tied to another known user moves to this one only.
                if self.user_id_of(a)?.is_none() {
                    self.merge(a, u, now)?;
                } else if let Some(anon) = anonymous_id {
                    self.link_anonymous(anon, u)?;
                }
                u
            }
            (Some(u), _) => u,
            (None, Some(a)) => match user_id {
                Some(uid) if self.user_id_of(a)?.is_none() => {
                    self.tx.execute(
                        "UPDATE contacts SET user_id = $2, updated_at = $3 WHERE id = $1",
                        &[&a, &uid, &ms(now)],
                    )?;
                    a
                }
                Some(uid) => self.create_contact(Some(uid), now)?,
                None => a,
            },
            (None, None) => self.create_contact(user_id, now)?,
        };
        if let Some(anon) = anonymous_id
            && by_anon != Some(id)
        {
            self.link_anonymous(anon, id)?;
        }
        Ok(id)
    }

    fn alias(&mut self, previous_id: &str, user_id: &str, now: Timestamp) -> Result<i64> {
        let previous = match self.contact_by_user(previous_id)? {
            Some(c) => Some(c),
            None => self.contact_by_anonymous(previous_id)?,
        };
        let target = self.contact_by_user(user_id)?;
        Ok(match (previous, target) {
            (Some(p), Some(t)) => {
                self.merge(p, t, now)?;
                self.link_anonymous(previous_id, t)?;
                t
            }
            (Some(p), None) => {
                // The previous identity becomes (also) known by the new user id.
                self.tx.execute(
                    "UPDATE contacts SET user_id = $2, updated_at = $3 WHERE id = $1",
                    &[&p, &user_id, &ms(now)],
                )?;
                p
            }
            (None, Some(t)) => {
                self.link_anonymous(previous_id, t)?;
                t
            }
            (None, None) => {
                let t = self.create_contact(Some(user_id), now)?;
                self.link_anonymous(previous_id, t)?;
                t
            }
        })
    }

    fn contact(&mut self, contact_id: i64) -> Result<Contact> {
        self.contact_inner(contact_id)
    }

    fn update_traits(
        &mut self,
        contact_id: i64,
        patch: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<()> {
        if patch.is_empty() {
            return Ok(());
        }
        let mut traits = self.contact_inner(contact_id)?.traits;
        for (k, v) in patch {
            if v.is_null() {
                traits.remove(k);
            } else {
                traits.insert(k.clone(), v.clone());
            }
        }
        let (email, phone, tz) = contact_columns(&traits);
        self.tx.execute(
            "UPDATE contacts SET traits = $2, email = $3, phone = $4, timezone = $5, updated_at = $6 WHERE id = $1",
            &[&contact_id, &serde_json::to_string(&traits)?, &email, &phone, &tz, &ms(now)],
        )?;
        Ok(())
    }

    fn contact_ids(&mut self, after_id: i64, limit: usize) -> Result<Vec<i64>> {
        let rows = self.tx.query(
            "SELECT id FROM contacts WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after_id, &(limit as i64)],
        )?;
        first_column(&rows)
    }

    fn contacts_with_address(
        &mut self,
        channel: &str,
        address: &str,
        limit: usize,
    ) -> Result<Vec<i64>> {
        let column = match channel {
            "email" => "email",
            "sms" => "phone",
            _ => return Ok(Vec::new()),
        };
        let rows = self.tx.query(
            &format!("SELECT id FROM contacts WHERE {column} = $1 ORDER BY id LIMIT $2"),
            &[&address, &(limit as i64)],
        )?;
        first_column(&rows)
    }

    fn contact_by_email(&mut self, email: &str) -> Result<Option<i64>> {
        // SQLite's NOCASE folds ASCII letters only, as lower() does in the "C" collation (the
        // column's, and the contacts_email_lower index's); the parameter is put in it too, or
        // lower() would fold it in the database's locale.
        self.tx
            .query_opt(
                "SELECT id FROM contacts WHERE lower(email) = lower($1::TEXT COLLATE \"C\")
                 ORDER BY id LIMIT 1",
                &[&email.trim()],
            )?
            .map(|r| column(&r, 0))
            .transpose()
    }
}

impl EventsTx for PgTx<'_, '_> {
    fn pending_events(&mut self, upto_seq: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        let done = self
            .meta("processed_seq")?
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        let rows = self.tx.query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
            ),
            &[&done, &upto_seq, &(limit as i64)],
        )?;
        rows.iter().map(event_from_row).collect()
    }

    fn set_processed_upto(&mut self, seq: i64) -> Result<()> {
        self.set_meta("processed_seq", &seq.to_string())
    }

    fn set_event_contact(&mut self, seq: i64, contact_id: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE events SET contact_id = $2 WHERE seq = $1",
            &[&seq, &contact_id],
        )?;
        Ok(())
    }

    fn events_between(
        &mut self,
        contact_id: i64,
        name: &str,
        after_seq: i64,
        upto_seq: i64,
    ) -> Result<Vec<EventRecord>> {
        let rows = self.tx.query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE contact_id = $1 AND name = $2 AND seq > $3 AND seq <= $4 ORDER BY seq"
            ),
            &[&contact_id, &name, &after_seq, &upto_seq],
        )?;
        rows.iter()
            .map(|r| {
                event_from_row(r).map(|e| EventRecord {
                    seq: e.seq,
                    kind: e.event.kind,
                    name: e.event.name,
                    properties: e.event.properties,
                    timestamp: e.event.timestamp,
                })
            })
            .collect()
    }

    fn event(&mut self, seq: i64) -> Result<Option<StoredEvent>> {
        self.tx
            .query_opt(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = $1"),
                &[&seq],
            )?
            .map(|r| event_from_row(&r))
            .transpose()
    }

    fn record_event(&mut self, contact_id: i64, e: &NewEvent) -> Result<bool> {
        // As in `PgStore::append`: a `seq` is taken under the append lock, so this event
        // cannot commit before an appended one with a smaller `seq` (which would then fall
        // behind the processed cursor). The lock is held until this transaction ends.
        self.tx
            .execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])?;
        let n = self.tx.execute(
            "INSERT INTO events (message_id, kind, name, user_id, anonymous_id, previous_id, properties, timestamp, received_at, contact_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (message_id) DO NOTHING",
            &[
                &e.message_id,
                &e.kind.as_str(),
                &e.name,
                &e.user_id,
                &e.anonymous_id,
                &e.previous_id,
                &serde_json::to_string(&e.properties)?,
                &ms(e.timestamp),
                &ms(e.received_at),
                &contact_id,
            ],
        )?;
        Ok(n == 1)
    }

    fn contact_order_products(&mut self, contact_id: i64, limit: usize) -> Result<Vec<Value>> {
        let rows = self.tx.query(
            "SELECT properties FROM events
             WHERE contact_id = $1 AND name = 'Order Completed'
             ORDER BY seq DESC LIMIT $2",
            &[&contact_id, &(limit as i64)],
        )?;
        rows.iter()
            .map(|r| Ok(products_of(&column::<String>(r, 0)?)))
            .collect()
    }

    fn orders_with_products(
        &mut self,
        product_ids: &[String],
        exclude_contact: i64,
        limit: usize,
    ) -> Result<Vec<Value>> {
        // Per product, its newest `limit` orders by others, walking the index backwards; then
        // the newest `limit` of their union. The work is bounded by the number of products
        // times `limit`, however many orders hold a best-seller. Events not yet processed (no
        // contact) count as other contacts' orders.
        let newest = self.tx.prepare(
            "SELECT op.seq FROM order_products op JOIN events e ON e.seq = op.seq
             WHERE op.product_id = $1 AND e.contact_id IS DISTINCT FROM $2
             ORDER BY op.seq DESC LIMIT $3",
        )?;
        let mut seqs = std::collections::BTreeSet::new();
        for id in product_ids {
            let rows = self
                .tx
                .query(&newest, &[id, &exclude_contact, &(limit as i64)])?;
            for row in &rows {
                seqs.insert(column::<i64>(row, 0)?);
            }
        }
        let properties = self
            .tx
            .prepare("SELECT properties FROM events WHERE seq = $1")?;
        seqs.iter()
            .rev()
            .take(limit)
            .map(|seq| {
                let row = self.tx.query_one(&properties, &[seq])?;
                Ok(products_of(&column::<String>(&row, 0)?))
            })
            .collect()
    }

    fn product_order_counts(
        &mut self,
        product_ids: &[String],
        cap: usize,
    ) -> Result<Vec<(String, i64)>> {
        let stmt = self.tx.prepare(
            "SELECT COUNT(*) FROM (SELECT 1 FROM order_products WHERE product_id = $1 LIMIT $2) AS capped",
        )?;
        let mut counts = Vec::with_capacity(product_ids.len());
        for id in product_ids {
            let n: i64 = column(&self.tx.query_one(&stmt, &[id, &(cap as i64)])?, 0)?;
            if n > 0 {
                counts.push((id.clone(), n));
            }
        }
        Ok(counts)
    }
}

impl TemplatesTx for PgTx<'_, '_> {
    fn template(&mut self, id: &str) -> Result<Option<StoredTemplate>> {
        template_row(self.tx, id)
    }

    fn template_version(&mut self, id: &str, version: i64) -> Result<Option<StoredTemplate>> {
        template_version_row(self.tx, id, version)
    }
}

impl EnrollmentsTx for PgTx<'_, '_> {
    fn active_enrollments(&mut self, contact_id: i64) -> Result<Vec<Enrollment>> {
        let rows = self.tx.query(
            &format!(
                "SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE contact_id = $1 AND status = 'active' ORDER BY id"
            ),
            &[&contact_id],
        )?;
        rows.iter().map(enrollment_from_row).collect()
    }

    fn prior_enrollments(
        &mut self,
        journey_id: &str,
        contact_id: i64,
    ) -> Result<Vec<PriorEnrollment>> {
        // SQLite returns them in id order (its index on (contact_id, journey_id) ends with the
        // rowid); PostgreSQL promises no order without ORDER BY.
        let rows = self.tx.query(
            "SELECT key, status, entered_at FROM enrollments WHERE contact_id = $1 AND journey_id = $2 ORDER BY id",
            &[&contact_id, &journey_id],
        )?;
        rows.iter()
            .map(|r| {
                let status: String = column(r, 1)?;
                Ok(PriorEnrollment {
                    key: column(r, 0)?,
                    status: EnrollmentStatus::parse(&status).unwrap_or(EnrollmentStatus::Exited),
                    entered_at: ts(column(r, 2)?),
                })
            })
            .collect()
    }

    fn insert_enrollment(&mut self, e: &Enrollment, now: Timestamp) -> Result<Enrollment> {
        let row = self.tx.query_one(
            "INSERT INTO enrollments (journey_id, version, contact_id, key, node, status, wake_at, entered_at, entered_seq, visits, updated_at, consumed_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            &[
                &e.journey_id,
                &e.version,
                &e.contact_id,
                &e.key,
                &e.node,
                &e.status.as_str(),
                &e.wake_at.map(ms),
                &ms(e.entered_at),
                &e.entered_seq,
                &e.visits,
                &ms(now),
                &e.consumed_seq,
            ],
        )?;
        Ok(Enrollment {
            id: column(&row, 0)?,
            ..e.clone()
        })
    }

    fn update_enrollment(&mut self, e: &Enrollment, now: Timestamp) -> Result<()> {
        self.tx.execute(
            "UPDATE enrollments SET node = $2, status = $3, wake_at = $4, visits = $5, updated_at = $6, consumed_seq = $7 WHERE id = $1",
            &[&e.id, &e.node, &e.status.as_str(), &e.wake_at.map(ms), &e.visits, &ms(now), &e.consumed_seq],
        )?;
        Ok(())
    }

    fn claim_due_enrollments(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Enrollment>> {
        // `wake_at <= $1` leaves out the NULLs, so ordering needs no NULLS FIRST to match
        // SQLite (and without it the partial index on wake_at gives the order).
        // Another process's engine may be stepping some of these: those are skipped (and
        // locked for this transaction), so no enrollment is stepped twice at once.
        let rows = self.tx.query(
            &format!(
                "SELECT {} FROM enrollments e JOIN journeys j ON j.id = e.journey_id
                 WHERE e.wake_at <= $1 AND e.status = 'active' AND j.status = 'live'
                 ORDER BY e.wake_at, e.id LIMIT $2
                 FOR UPDATE OF e SKIP LOCKED",
                ENROLLMENT_COLUMNS
                    .split(", ")
                    .map(|c| format!("e.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[&ms(now), &(limit as i64)],
        )?;
        rows.iter().map(enrollment_from_row).collect()
    }

    fn journey_enrollments(
        &mut self,
        journey_id: &str,
        limit: usize,
        after_id: i64,
    ) -> Result<Vec<Enrollment>> {
        let rows = self.tx.query(
            &format!(
                "SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE journey_id = $1 AND status = 'active' AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[&journey_id, &after_id, &(limit as i64)],
        )?;
        rows.iter().map(enrollment_from_row).collect()
    }

    fn record_steps(&mut self, enrollment_id: i64, log: &[StepLog], at: Timestamp) -> Result<()> {
        let stmt = self.tx.prepare(
            "INSERT INTO steps (enrollment_id, at, node, action, detail) VALUES ($1, $2, $3, $4, $5)",
        )?;
        for entry in log {
            let (node, action, detail) = match entry {
                StepLog::Entered { node } => (node, "entered", None),
                StepLog::Left { node, output } => {
                    (node, "left", Some(serde_json::json!({ "output": output })))
                }
                StepLog::Waiting { node, until } => {
                    (node, "waiting", Some(serde_json::json!({ "until": until })))
                }
                StepLog::Ended {
                    node,
                    status,
                    reason,
                } => (
                    node,
                    status.as_str(),
                    Some(serde_json::json!({ "reason": reason })),
                ),
                StepLog::Skipped { node, reason } => (
                    node,
                    "skipped",
                    Some(serde_json::json!({ "reason": reason })),
                ),
            };
            self.tx.execute(
                &stmt,
                &[
                    &enrollment_id,
                    &ms(at),
                    node,
                    &action,
                    &detail.map(|d| d.to_string()),
                ],
            )?;
        }
        Ok(())
    }

    fn visited_nodes(&mut self, enrollment_id: i64) -> Result<Vec<String>> {
        // SQLite's DISTINCT keeps the order of first entry (it reads the steps in rowid
        // order); PostgreSQL's would hash, so the same order is asked for.
        let rows = self.tx.query(
            "SELECT node FROM steps WHERE enrollment_id = $1 AND action = 'entered'
             GROUP BY node ORDER BY MIN(id)",
            &[&enrollment_id],
        )?;
        first_column(&rows)
    }

    fn left_outputs(&mut self, enrollment_id: i64) -> Result<Vec<(String, String)>> {
        let rows = self.tx.query(
            "SELECT node, detail FROM steps WHERE enrollment_id = $1 AND action = 'left' ORDER BY id",
            &[&enrollment_id],
        )?;
        let mut out = Vec::new();
        for row in &rows {
            let node: String = column(row, 0)?;
            let detail: Option<String> = column(row, 1)?;
            let output = detail
                .and_then(|d| serde_json::from_str::<Value>(&d).ok())
                .and_then(|d| d.get("output").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default();
            out.push((node, output));
        }
        Ok(out)
    }
}

impl TimersTx for PgTx<'_, '_> {
    fn set_trigger_due(
        &mut self,
        journey_id: &str,
        node: &str,
        contact_id: i64,
        due: Option<Timestamp>,
    ) -> Result<()> {
        match due {
            Some(at) => self.tx.execute(
                "INSERT INTO trigger_schedule (journey_id, node, contact_id, due_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (journey_id, node, contact_id) DO UPDATE SET due_at = excluded.due_at",
                &[&journey_id, &node, &contact_id, &ms(at)],
            )?,
            None => self.tx.execute(
                "DELETE FROM trigger_schedule WHERE journey_id = $1 AND node = $2 AND contact_id = $3",
                &[&journey_id, &node, &contact_id],
            )?,
        };
        Ok(())
    }

    fn claim_due_triggers(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, String, i64, Timestamp)>> {
        // SKIP LOCKED: triggers another process is claiming are its own (see
        // `claim_due_enrollments`).
        let rows = self.tx.query(
            "SELECT journey_id, node, contact_id, due_at FROM trigger_schedule WHERE due_at <= $1
             ORDER BY due_at, journey_id, node, contact_id LIMIT $2
             FOR UPDATE SKIP LOCKED",
            &[&ms(now), &(limit as i64)],
        )?;
        let due = rows
            .iter()
            .map(|r| Ok((column(r, 0)?, column(r, 1)?, column(r, 2)?, ts(column(r, 3)?))))
            .collect::<Result<Vec<(String, String, i64, Timestamp)>>>()?;
        let delete = self.tx.prepare(
            "DELETE FROM trigger_schedule WHERE journey_id = $1 AND node = $2 AND contact_id = $3",
        )?;
        for (journey, node, contact, _) in &due {
            self.tx.execute(&delete, &[journey, node, contact])?;
        }
        Ok(due)
    }

    fn clear_journey_triggers(&mut self, journey_id: &str) -> Result<()> {
        self.tx.execute(
            "DELETE FROM trigger_schedule WHERE journey_id = $1",
            &[&journey_id],
        )?;
        Ok(())
    }

    fn add_score_expiry(
        &mut self,
        contact_id: i64,
        score_trait: &str,
        points: i64,
        due: Timestamp,
    ) -> Result<()> {
        self.tx.execute(
            "INSERT INTO score_expiries (contact_id, score_trait, points, due_at) VALUES ($1, $2, $3, $4)",
            &[&contact_id, &score_trait, &points, &ms(due)],
        )?;
        Ok(())
    }

    fn claim_due_score_expiries(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(i64, String, i64)>> {
        // SKIP LOCKED: see `claim_due_triggers`.
        let rows = self.tx.query(
            "SELECT id, contact_id, score_trait, points FROM score_expiries WHERE due_at <= $1
             ORDER BY due_at, id LIMIT $2
             FOR UPDATE SKIP LOCKED",
            &[&ms(now), &(limit as i64)],
        )?;
        let due = rows
            .iter()
            .map(|r| Ok((column(r, 0)?, column(r, 1)?, column(r, 2)?, column(r, 3)?)))
            .collect::<Result<Vec<(i64, i64, String, i64)>>>()?;
        let delete = self.tx.prepare("DELETE FROM score_expiries WHERE id = $1")?;
        for (id, ..) in &due {
            self.tx.execute(&delete, &[id])?;
        }
        Ok(due.into_iter().map(|(_, c, t, p)| (c, t, p)).collect())
    }
}

impl OutboxTx for PgTx<'_, '_> {
    fn insert_message(&mut self, m: &NewMessage) -> Result<bool> {
        // A repeated idempotency key inserts nothing (and reports false); it uses up an id of
        // the sequence, which only leaves a gap.
        let n = self.tx.execute(
            "INSERT INTO messages (idempotency_key, contact_id, enrollment_id, journey_id, node, template, channel, recipient,
                                   subject, html, text, status, error, next_attempt_at, created_at, failed_at, priority)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, CASE WHEN $12 = 'queued' THEN $14 END, $14,
                     CASE WHEN $12 IN ('failed', 'bounced') THEN $14 END, $15)
             ON CONFLICT (idempotency_key) DO NOTHING",
            &[
                &m.idempotency_key,
                &m.contact_id,
                &m.enrollment_id,
                &m.journey_id,
                &m.node,
                &m.template,
                &m.channel.as_str(),
                &m.recipient,
                &m.subject,
                &m.html,
                &m.text,
                &m.status.as_str(),
                &m.error,
                &ms(m.created_at),
                &m.priority.as_i64(),
            ],
        )?;
        Ok(n == 1)
    }

    fn set_message_unsubscribe_url(&mut self, idempotency_key: &str, url: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE messages SET unsubscribe_url = $2 WHERE idempotency_key = $1",
            &[&idempotency_key, &url],
        )?;
        Ok(())
    }

    fn count_marketing_messages(
        &mut self,
        contact_id: i64,
        channel: &str,
        since: Timestamp,
    ) -> Result<i64> {
        // Marketing: from a template that is not transactional. Held-back, failed and bounced
        // messages do not count against a cap. SQLite's `COALESCE(json_extract(..), 0) = 0`
        // holds for an absent, null, false or zero `transactional`; so does this.
        let row = self.tx.query_one(
            "SELECT COUNT(*) FROM messages m JOIN templates t ON t.id = m.template
             WHERE m.contact_id = $1 AND m.channel = $2 AND m.created_at >= $3
               AND m.status IN ('queued', 'sent')
               AND COALESCE(t.definition::jsonb -> 'transactional', 'null') IN ('null', 'false', '0')",
            &[&contact_id, &channel, &ms(since)],
        )?;
        column(&row, 0)
    }

    fn contact_messages(&mut self, contact_id: i64) -> Result<Vec<MessageRecord>> {
        // A message counts as sent from the step that queued it (so a condition evaluated in
        // the same transaction sees it); "delivered" once the transport accepted it.
        let rows = self.tx.query(
            "SELECT journey_id, template, node, channel, created_at, sent_at, opened_at, clicked_at
             FROM messages WHERE contact_id = $1 AND status IN ('queued', 'sent')
               AND channel IN ('email', 'sms') ORDER BY id",
            &[&contact_id],
        )?;
        rows.iter()
            .map(|r| {
                let channel: String = column(r, 3)?;
                let template: String = column(r, 1)?;
                Ok(MessageRecord {
                    journey: column(r, 0)?,
                    template: (!template.is_empty()).then_some(template),
                    node: column(r, 2)?,
                    channel: Channel::parse(&channel).unwrap_or(Channel::Email),
                    sent_at: ts(column(r, 4)?),
                    delivered_at: column::<Option<i64>>(r, 5)?.map(ts),
                    opened_at: column::<Option<i64>>(r, 6)?.map(ts),
                    clicked_at: column::<Option<i64>>(r, 7)?.map(ts),
                })
            })
            .collect()
    }

    fn message_engaged(
        &mut self,
        enrollment_id: i64,
        node: &str,
        engagement: Engagement,
    ) -> Result<bool> {
        let condition = match engagement {
            Engagement::Sent | Engagement::Delivered => "status = 'sent'",
            Engagement::Opened => "(opened_at IS NOT NULL OR clicked_at IS NOT NULL)",
            Engagement::Clicked => "clicked_at IS NOT NULL",
        };
        let found = self.tx.query_opt(
            &format!(
                "SELECT 1 FROM messages WHERE enrollment_id = $1 AND node = $2 AND {condition} LIMIT 1"
            ),
            &[&enrollment_id, &node],
        )?;
        Ok(found.is_some())
    }

    fn mark_engagement(&mut self, message_id: i64, clicked: bool, at: Timestamp) -> Result<bool> {
        let Some(row) = self.tx.query_opt(
            "SELECT opened_at IS NULL, clicked_at IS NULL FROM messages WHERE id = $1",
            &[&message_id],
        )?
        else {
            return Ok(false);
        };
        let (unopened, unclicked): (bool, bool) = (column(&row, 0)?, column(&row, 1)?);
        // A click implies the message was opened, even if the open pixel was blocked.
        let sql = if clicked {
            "UPDATE messages SET clicked_at = COALESCE(clicked_at, $2), opened_at = COALESCE(opened_at, $2) WHERE id = $1"
        } else {
            "UPDATE messages SET opened_at = COALESCE(opened_at, $2) WHERE id = $1"
        };
        self.tx.execute(sql, &[&message_id, &ms(at)])?;
        // Unique opens and clicks per journey node: only the first of each counts.
        for (column, first) in [("opened", unopened), ("clicked", clicked && unclicked)] {
            if first {
                self.tx.execute(
                    &format!(
                        "INSERT INTO node_stats (journey_id, node, {column})
                         SELECT journey_id, node, 1 FROM messages
                         WHERE id = $1 AND journey_id IS NOT NULL AND node IS NOT NULL
                         ON CONFLICT (journey_id, node) DO UPDATE SET {column} = node_stats.{column} + 1"
                    ),
                    &[&message_id],
                )?;
            }
        }
        Ok(true)
    }
}

impl AudiencesTx for PgTx<'_, '_> {
    fn in_list(&mut self, contact_id: i64, list: &str) -> Result<bool> {
        let found = self.tx.query_opt(
            "SELECT 1 FROM list_members m JOIN lists l ON l.id = m.list_id
             WHERE l.name = $1 AND m.contact_id = $2",
            &[&list, &contact_id],
        )?;
        Ok(found.is_some())
    }

    fn add_to_list(&mut self, contact_id: i64, list: &str, now: Timestamp) -> Result<bool> {
        let list_id = self.list_id(list, Some(now))?.expect("list just created");
        let n = self.tx.execute(
            "INSERT INTO list_members (list_id, contact_id, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&list_id, &contact_id, &ms(now)],
        )?;
        Ok(n == 1)
    }

    fn remove_from_list(&mut self, contact_id: i64, list: &str) -> Result<bool> {
        let Some(list_id) = self.list_id(list, None)? else {
            return Ok(false);
        };
        let n = self.tx.execute(
            "DELETE FROM list_members WHERE list_id = $1 AND contact_id = $2",
            &[&list_id, &contact_id],
        )?;
        Ok(n == 1)
    }

    fn list_member_ids(&mut self, list: &str, after_id: i64, limit: usize) -> Result<Vec<i64>> {
        let rows = self.tx.query(
            "SELECT m.contact_id FROM list_members m JOIN lists l ON l.id = m.list_id
             WHERE l.name = $1 AND m.contact_id > $2 ORDER BY m.contact_id LIMIT $3",
            &[&list, &after_id, &(limit as i64)],
        )?;
        first_column(&rows)
    }

    fn segment_definitions(&mut self) -> Result<Vec<(String, Value)>> {
        let rows = self
            .tx
            .query("SELECT id, condition FROM segments ORDER BY id", &[])?;
        let mut out = Vec::new();
        for row in &rows {
            let (id, condition): (String, String) = (column(row, 0)?, column(row, 1)?);
            // A row that cannot be read is the caller's to report, not an error of the batch.
            out.push((id, serde_json::from_str(&condition).unwrap_or(Value::Null)));
        }
        Ok(out)
    }

    fn is_segment_member(&mut self, segment_id: &str, contact_id: i64) -> Result<bool> {
        let found = self.tx.query_opt(
            "SELECT 1 FROM segment_members WHERE segment_id = $1 AND contact_id = $2",
            &[&segment_id, &contact_id],
        )?;
        Ok(found.is_some())
    }

    fn set_segment_member(
        &mut self,
        segment_id: &str,
        contact_id: i64,
        member: bool,
        now: Timestamp,
    ) -> Result<bool> {
        let n = if member {
            self.tx.execute(
                "INSERT INTO segment_members (segment_id, contact_id, entered_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&segment_id, &contact_id, &ms(now)],
            )?
        } else {
            self.tx.execute(
                "DELETE FROM segment_members WHERE segment_id = $1 AND contact_id = $2",
                &[&segment_id, &contact_id],
            )?
        };
        Ok(n == 1)
    }

    fn segment_member_ids(
        &mut self,
        segment_id: &str,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<i64>> {
        let rows = self.tx.query(
            "SELECT contact_id FROM segment_members WHERE segment_id = $1 AND contact_id > $2
             ORDER BY contact_id LIMIT $3",
            &[&segment_id, &after_id, &(limit as i64)],
        )?;
        first_column(&rows)
    }

    fn set_segment_check(
        &mut self,
        segment_id: &str,
        contact_id: i64,
        due: Option<Timestamp>,
    ) -> Result<()> {
        match due {
            Some(at) => self.tx.execute(
                "INSERT INTO segment_checks (segment_id, contact_id, due_at) VALUES ($1, $2, $3)
                 ON CONFLICT (segment_id, contact_id) DO UPDATE SET due_at = excluded.due_at
                 WHERE segment_checks.due_at != excluded.due_at",
                &[&segment_id, &contact_id, &ms(at)],
            )?,
            None => self.tx.execute(
                "DELETE FROM segment_checks WHERE segment_id = $1 AND contact_id = $2",
                &[&segment_id, &contact_id],
            )?,
        };
        Ok(())
    }

    fn claim_due_segment_checks(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, i64)>> {
        // SKIP LOCKED: see `claim_due_triggers`.
        let rows = self.tx.query(
            "SELECT segment_id, contact_id FROM segment_checks WHERE due_at <= $1
             ORDER BY due_at, segment_id, contact_id LIMIT $2
             FOR UPDATE SKIP LOCKED",
            &[&ms(now), &(limit as i64)],
        )?;
        let due = rows
            .iter()
            .map(|r| Ok((column(r, 0)?, column(r, 1)?)))
            .collect::<Result<Vec<(String, i64)>>>()?;
        let delete = self
            .tx
            .prepare("DELETE FROM segment_checks WHERE segment_id = $1 AND contact_id = $2")?;
        for (segment, contact) in &due {
            self.tx.execute(&delete, &[segment, contact])?;
        }
        Ok(due)
    }
}

impl ExperimentsTx for PgTx<'_, '_> {
    fn add_experiment_counts(
        &mut self,
        journey_id: &str,
        node: &str,
        variant: &str,
        entered: i64,
        converted: i64,
    ) -> Result<()> {
        // In PostgreSQL an unqualified column of DO UPDATE is ambiguous: the table names it.
        self.tx.execute(
            "INSERT INTO experiment_variants (journey_id, node, variant, entered, converted)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (journey_id, node, variant) DO UPDATE SET
               entered = experiment_variants.entered + excluded.entered,
               converted = experiment_variants.converted + excluded.converted",
            &[&journey_id, &node, &variant, &entered, &converted],
        )?;
        Ok(())
    }

    fn experiment_counts(&mut self, journey_id: &str, node: &str) -> Result<Vec<ExperimentCounts>> {
        let rows = self.tx.query(
            "SELECT node, variant, entered, converted FROM experiment_variants
             WHERE journey_id = $1 AND node = $2 ORDER BY variant",
            &[&journey_id, &node],
        )?;
        rows.iter()
            .map(|r| {
                Ok(ExperimentCounts {
                    node: column(r, 0)?,
                    variant: column(r, 1)?,
                    entered: column(r, 2)?,
                    converted: column(r, 3)?,
                })
            })
            .collect()
    }

    fn experiment_winner(&mut self, journey_id: &str, node: &str) -> Result<Option<String>> {
        self.tx
            .query_opt(
                "SELECT winner FROM experiment_winners WHERE journey_id = $1 AND node = $2",
                &[&journey_id, &node],
            )?
            .map(|r| column(&r, 0))
            .transpose()
    }

    fn set_experiment_winner(
        &mut self,
        journey_id: &str,
        node: &str,
        winner: &str,
        verdict: &Value,
        now: Timestamp,
    ) -> Result<()> {
        self.tx.execute(
            "INSERT INTO experiment_winners (journey_id, node, winner, decided_at, verdict)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (journey_id, node) DO NOTHING",
            &[
                &journey_id,
                &node,
                &winner,
                &ms(now),
                &verdict.to_string(),
            ],
        )?;
        Ok(())
    }
}

impl ConsentTx for PgTx<'_, '_> {
    fn subscriptions(&mut self, contact_id: i64) -> Result<Vec<Subscription>> {
        let rows = self.tx.query(
            "SELECT contact_id, channel, topic, status, updated_at FROM subscriptions
             WHERE contact_id = $1 ORDER BY channel, topic",
            &[&contact_id],
        )?;
        rows.iter()
            .map(|r| {
                Ok(Subscription {
                    contact_id: column(r, 0)?,
                    channel: column(r, 1)?,
                    topic: column(r, 2)?,
                    status: column(r, 3)?,
                    updated_at: ts(column(r, 4)?),
                })
            })
            .collect()
    }

    fn set_subscription(&mut self, s: &Subscription) -> Result<Option<String>> {
        let before: Option<String> = self
            .tx
            .query_opt(
                "SELECT status FROM subscriptions WHERE contact_id = $1 AND channel = $2 AND topic = $3",
                &[&s.contact_id, &s.channel, &s.topic],
            )?
            .map(|r| column(&r, 0))
            .transpose()?;
        self.tx.execute(
            "INSERT INTO subscriptions (contact_id, channel, topic, status, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (contact_id, channel, topic)
             DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
            &[
                &s.contact_id,
                &s.channel,
                &s.topic,
                &s.status,
                &ms(s.updated_at),
            ],
        )?;
        Ok(before)
    }

    fn suppression(&mut self, channel: &str, address: &str) -> Result<Option<String>> {
        let plain: Option<String> = self
            .tx
            .query_opt(
                "SELECT reason FROM suppressions WHERE channel = $1 AND address = $2",
                &[&channel, &suppression_address(channel, address)],
            )?
            .map(|r| column(&r, 0))
            .transpose()?;
        match plain {
            Some(reason) => Ok(Some(reason)),
            // The address of an erased contact, imported or identified again.
            None => super::privacy::erased_suppression(self.tx, channel, address),
        }
    }

    fn suppress(&mut self, entry: &Suppression) -> Result<bool> {
        suppress_in(self.tx, entry)
    }

    fn unsuppress(&mut self, channel: &str, address: &str) -> Result<bool> {
        unsuppress_in(self.tx, channel, address)
    }
}

impl ReportingTx for PgTx<'_, '_> {
    fn add_stats(&mut self, deltas: &StatsDeltas, at: Timestamp) -> Result<()> {
        let stmt = self.tx.prepare(
            "INSERT INTO node_stats (journey_id, node, entered, completed, exited, converted, sent, failed, suppressed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (journey_id, node) DO UPDATE SET
               entered = node_stats.entered + excluded.entered,
               completed = node_stats.completed + excluded.completed,
               exited = node_stats.exited + excluded.exited,
               converted = node_stats.converted + excluded.converted,
               sent = node_stats.sent + excluded.sent,
               failed = node_stats.failed + excluded.failed,
               suppressed = node_stats.suppressed + excluded.suppressed",
        )?;
        let mut journeys = std::collections::BTreeSet::new();
        for ((journey, node), s) in &deltas.nodes {
            self.tx.execute(
                &stmt,
                &[
                    journey,
                    node,
                    &s.entered,
                    &s.completed,
                    &s.exited,
                    &s.converted,
                    &s.sent,
                    &s.failed,
                    &s.suppressed,
                ],
            )?;
            journeys.insert(journey);
        }
        let activity = self.tx.prepare(
            "UPDATE journeys SET first_activity_at = COALESCE(first_activity_at, $2), last_activity_at = $2 WHERE id = $1",
        )?;
        for j in journeys {
            self.tx.execute(&activity, &[j, &ms(at)])?;
        }
        Ok(())
    }
}

impl PrivacyTx for PgTx<'_, '_> {
    fn erase_contact(&mut self, contact_id: i64, now: Timestamp) -> Result<Erasure> {
        super::privacy::erase(self.tx, contact_id, now)
    }

    fn record_audit(&mut self, entry: &NewAudit) -> Result<i64> {
        super::privacy::record_audit(self.tx, entry)
    }
}

impl MetaTx for PgTx<'_, '_> {
    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        self.tx
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?
            .map(|r| column(&r, 0))
            .transpose()
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.tx.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }
}

/// The `products` of an event's stored properties (`Null` when absent or unreadable).
fn products_of(properties: &str) -> Value {
    serde_json::from_str::<Map<String, Value>>(properties)
        .ok()
        .and_then(|mut p| p.remove("products"))
        .unwrap_or(Value::Null)
}

// What SQLite keeps in `sqlite::api` and both the engine transaction and the `Store` methods
// call: here, for `postgres::api` to reuse. The template readers take any client (a pooled
// connection or a transaction).

pub(crate) fn template_row(
    conn: &mut impl GenericClient,
    id: &str,
) -> Result<Option<StoredTemplate>> {
    conn.query_opt(
        "SELECT definition, version, created_at, updated_at FROM templates WHERE id = $1",
        &[&id],
    )?
    .map(|r| raw_template(&r)?.finish())
    .transpose()
}

/// One version of a template, also of a deleted one (`created_at`: its first version's).
pub(crate) fn template_version_row(
    conn: &mut impl GenericClient,
    id: &str,
    version: i64,
) -> Result<Option<StoredTemplate>> {
    conn.query_opt(
        "SELECT v.definition, v.version,
                (SELECT MIN(f.created_at) FROM template_versions f WHERE f.template_id = v.template_id),
                v.created_at
         FROM template_versions v WHERE v.template_id = $1 AND v.version = $2",
        &[&id, &version],
    )?
    .map(|r| raw_template(&r)?.finish())
    .transpose()
}

/// A template row before its definition JSON is parsed.
struct RawTemplate(String, i64, i64, i64);

impl RawTemplate {
    fn finish(self) -> Result<StoredTemplate> {
        let RawTemplate(definition, version, created, updated) = self;
        Ok(StoredTemplate {
            definition: serde_json::from_str(&definition)?,
            version,
            created_at: ts(created),
            updated_at: ts(updated),
        })
    }
}

fn raw_template(r: &Row) -> Result<RawTemplate> {
    Ok(RawTemplate(
        column(r, 0)?,
        column(r, 1)?,
        column(r, 2)?,
        column(r, 3)?,
    ))
}

/// `Store::suppress` and `EngineTx::suppress`, in the caller's transaction.
pub(crate) fn suppress_in(tx: &mut Transaction<'_>, e: &Suppression) -> Result<bool> {
    let address = suppression_address(&e.channel, &e.address);
    let existed: bool = column(
        &tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM suppressions WHERE channel = $1 AND address = $2)",
            &[&e.channel, &address],
        )?,
        0,
    )?;
    tx.execute(
        "INSERT INTO suppressions (channel, address, reason, source, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (channel, address) DO UPDATE SET reason = excluded.reason, source = excluded.source",
        &[&e.channel, &address, &e.reason, &e.source, &ms(e.created_at)],
    )?;
    Ok(!existed)
}

/// `Store::unsuppress` and `EngineTx::unsuppress`, in the caller's transaction.
pub(crate) fn unsuppress_in(tx: &mut Transaction<'_>, channel: &str, address: &str) -> Result<bool> {
    let address = suppression_address(channel, address);
    let n = tx.execute(
        "DELETE FROM suppressions WHERE channel = $1 AND address = $2",
        &[&channel, &address],
    )?;
    // Also lifts the hashed entry an erasure left for this address.
    let erased = super::privacy::unsuppress_erased(tx, channel, &address)?;
    Ok(n == 1 || erased)
}
