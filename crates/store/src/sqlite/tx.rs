//! `EngineTx` (every `Tx` concern trait, one impl block each) on a SQLite transaction: every
//! statement is prepared once per connection and cached, because the engine runs these
//! thousands of times per second.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde_json::{Map, Value};
use waymark_core::condition::MessageRecord;
use waymark_core::filter::Engagement;
use waymark_core::journey::Channel;
use waymark_core::recommend::{ORDER_EVENT, order_product_ids};
use waymark_core::stepper::PriorEnrollment;
use waymark_core::{Enrollment, EnrollmentStatus, EventKind, EventRecord, StepLog};

use super::rollups::Hour;
use super::{ms, ts};
use crate::concerns::history_hour;
use crate::concerns::{Identities, Merges, step_row};
use crate::personal_data::{
    MERGE_LEAVES_SEGMENTS, MERGE_SCORE_EXPIRIES, MERGE_STATEMENTS, merge_parameters,
};
use crate::{
    AudiencesTx, ConsentTx, Contact, ContactsTx, EngineTx, EnrollmentsTx, EventsTx,
    ExperimentCounts, ExperimentsTx, LastTouch, MetaTx, NewConversion, NewEvent, NewMessage,
    OutboxTx, PrivacyTx, ReportingTx, Result, StatsDeltas, StoreError, StoredEvent, StoredTemplate,
    Subscription, TemplatesTx, TimersTx,
};

pub(crate) struct SqliteTx<'a> {
    pub(crate) tx: &'a Transaction<'a>,
}

const ENROLLMENT_COLUMNS: &str = "id, journey_id, version, contact_id, key, node, status, wake_at, entered_at, entered_seq, visits, consumed_seq";

pub(crate) fn enrollment_from_row(r: &Row<'_>) -> rusqlite::Result<Enrollment> {
    let status: String = r.get(6)?;
    Ok(Enrollment {
        id: r.get(0)?,
        journey_id: r.get(1)?,
        version: r.get(2)?,
        contact_id: r.get(3)?,
        key: r.get(4)?,
        node: r.get(5)?,
        status: EnrollmentStatus::parse(&status).unwrap_or(EnrollmentStatus::Exited),
        wake_at: r.get::<_, Option<i64>>(7)?.map(ts),
        entered_at: ts(r.get(8)?),
        entered_seq: r.get(9)?,
        visits: r.get(10)?,
        consumed_seq: r.get(11)?,
    })
}

pub(crate) const CONTACT_COLUMNS: &str =
    "id, user_id, email, phone, timezone, traits, created_at, updated_at";

pub(crate) fn contact_from_row(r: &Row<'_>) -> rusqlite::Result<Contact> {
    let traits: String = r.get(5)?;
    Ok(Contact {
        id: r.get(0)?,
        user_id: r.get(1)?,
        email: r.get(2)?,
        phone: r.get(3)?,
        timezone: r.get(4)?,
        traits: serde_json::from_str(&traits).unwrap_or_default(),
        created_at: ts(r.get(6)?),
        updated_at: ts(r.get(7)?),
    })
}

pub(super) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let kind: String = r.get(1)?;
    let props: String = r.get(6)?;
    Ok(StoredEvent {
        seq: r.get(0)?,
        event: NewEvent {
            message_id: r.get(9)?,
            kind: EventKind::parse(&kind).unwrap_or(EventKind::Track),
            name: r.get(2)?,
            user_id: r.get(3)?,
            anonymous_id: r.get(4)?,
            previous_id: r.get(5)?,
            properties: serde_json::from_str(&props).unwrap_or_default(),
            timestamp: ts(r.get(7)?),
            received_at: ts(r.get(8)?),
        },
        contact_id: r.get(10)?,
    })
}

pub(super) const EVENT_COLUMNS: &str = "seq, kind, name, user_id, anonymous_id, previous_id, properties, timestamp, received_at, message_id, contact_id";

/// Traits whose values also live in their own columns, for lookups and sending.
fn contact_columns(
    traits: &Map<String, Value>,
) -> (Option<String>, Option<String>, Option<String>) {
    let s = |k: &str| traits.get(k).and_then(Value::as_str).map(str::to_string);
    (s("email"), s("phone"), s("timezone"))
}

impl SqliteTx<'_> {
    fn create_contact(&self, user_id: Option<&str>, now: Timestamp) -> Result<i64> {
        self.tx
            .prepare_cached(concat!(
                "INSERT INTO contacts (id, user_id, created_at, updated_at) VALUES (",
                next_id!("contacts", "id"),
                ", ?1, ?2, ?2)"
            ))?
            .execute(params![user_id, ms(now)])?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Inserts an event for its contact (false: its message id was taken already), with the
    /// products of an order in `order_products`, for recommendations. Written here rather
    /// than by a trigger: a trigger made SQLite keep a statement journal for every event.
    pub(crate) fn insert_event(&self, contact_id: i64, e: &NewEvent) -> Result<bool> {
        let n = self.tx.prepare_cached(
            concat!(
                "INSERT INTO events (seq, message_id, kind, name, user_id, anonymous_id, previous_id, properties, timestamp, received_at, contact_id)
                 VALUES (", next_id!("events", "seq"), ", ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (message_id) DO NOTHING"
            ),
        )?
        .execute(params![
            e.message_id,
            e.kind.as_str(),
            e.name,
            e.user_id,
            e.anonymous_id,
            e.previous_id,
            serde_json::to_string(&e.properties)?,
            ms(e.timestamp),
            ms(e.received_at),
            contact_id,
        ])?;
        if n == 1 && e.name == ORDER_EVENT {
            let seq = self.tx.last_insert_rowid();
            let mut product = self.tx.prepare_cached(
                "INSERT OR IGNORE INTO order_products (product_id, seq) VALUES (?1, ?2)",
            )?;
            for id in order_product_ids(&e.properties) {
                product.execute(params![id, seq])?;
            }
        }
        Ok(n == 1)
    }

    fn contact_by_user(&self, user_id: &str) -> Result<Option<i64>> {
        Ok(self
            .tx
            .prepare_cached("SELECT id FROM contacts WHERE user_id = ?1")?
            .query_row([user_id], |r| r.get(0))
            .optional()?)
    }

    fn contact_by_anonymous(&self, anonymous_id: &str) -> Result<Option<i64>> {
        Ok(self
            .tx
            .prepare_cached("SELECT contact_id FROM anonymous_ids WHERE anonymous_id = ?1")?
            .query_row([anonymous_id], |r| r.get(0))
            .optional()?)
    }

    fn link_anonymous(&self, anonymous_id: &str, contact_id: i64) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO anonymous_ids (anonymous_id, contact_id) VALUES (?1, ?2)
                 ON CONFLICT (anonymous_id) DO UPDATE SET contact_id = excluded.contact_id",
            )?
            .execute(params![anonymous_id, contact_id])?;
        Ok(())
    }

    fn user_id_of(&self, contact_id: i64) -> Result<Option<String>> {
        Ok(self
            .tx
            .prepare_cached("SELECT user_id FROM contacts WHERE id = ?1")?
            .query_row([contact_id], |r| r.get(0))?)
    }

    /// Moves everything of contact `from` to contact `into` (one person, one history) and
    /// deletes `from`. Traits of `into` win over those of `from`.
    fn merge(&self, from: i64, into: i64, now: Timestamp) -> Result<()> {
        if from == into {
            return Ok(());
        }
        let from_contact = self.contact_inner(from)?;
        let into_contact = self.contact_inner(into)?;
        // The rules for rows both contacts hold are in `personal_data`.
        let (score_traits, drop_scores) = MERGE_SCORE_EXPIRIES;
        let scored: Vec<String> = self
            .tx
            .prepare_cached(score_traits)?
            .query_map([from], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for score_trait in scored
            .iter()
            .filter(|t| into_contact.traits.contains_key(*t))
        {
            self.tx
                .prepare_cached(drop_scores)?
                .execute(params![from, score_trait])?;
        }
        let fewer: Vec<String> = {
            let mut stmt = self.tx.prepare_cached(MERGE_LEAVES_SEGMENTS)?;
            let rows = stmt.query_map(params![from, into], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for segment in &fewer {
            count_segment_change(self.tx, segment, now, 0, 1)?;
        }
        let args = params![from, into, ms(now)];
        for (_, statements) in MERGE_STATEMENTS {
            for sql in *statements {
                self.tx
                    .prepare_cached(sql)?
                    .execute(&args[..merge_parameters(sql)])?;
            }
        }
        let mut traits = from_contact.traits;
        traits.extend(into_contact.traits);
        let (email, phone, tz) = contact_columns(&traits);
        self.tx
            .prepare_cached("UPDATE contacts SET traits = ?2, email = ?3, phone = ?4, timezone = ?5, updated_at = ?6 WHERE id = ?1")?
            .execute(params![into, serde_json::to_string(&traits)?, email, phone, tz, ms(now)])?;
        Ok(())
    }

    fn contact_inner(&self, contact_id: i64) -> Result<Contact> {
        self.tx
            .prepare_cached(&format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = ?1"
            ))?
            .query_row([contact_id], contact_from_row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("contact {contact_id}")))
    }

    fn list_id(&self, name: &str, create_at: Option<Timestamp>) -> Result<Option<i64>> {
        if let Some(now) = create_at {
            self.tx
                .prepare_cached("INSERT INTO lists (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING")?
                .execute(params![name, ms(now)])?;
        }
        Ok(self
            .tx
            .prepare_cached("SELECT id FROM lists WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?)
    }
}

impl EngineTx for SqliteTx<'_> {}

impl Identities for SqliteTx<'_> {
    fn resolve_as(
        &mut self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        now: Timestamp,
        merges: Merges,
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
            // Left for the engine, as is (a link made now would hide the merge from it).
            (Some(u), Some(a)) if u != a && merges == Merges::Later => return Ok(u),
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
                    self.tx
                        .prepare_cached(
                            "UPDATE contacts SET user_id = ?2, updated_at = ?3 WHERE id = ?1",
                        )?
                        .execute(params![a, uid, ms(now)])?;
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

    fn alias_as(
        &mut self,
        previous_id: &str,
        user_id: &str,
        now: Timestamp,
        merges: Merges,
    ) -> Result<i64> {
        let previous = match self.contact_by_user(previous_id)? {
            Some(c) => Some(c),
            None => self.contact_by_anonymous(previous_id)?,
        };
        let target = self.contact_by_user(user_id)?;
        Ok(match (previous, target) {
            (Some(p), Some(t)) if p != t && merges == Merges::Later => t,
            (Some(p), Some(t)) => {
                self.merge(p, t, now)?;
                self.link_anonymous(previous_id, t)?;
                t
            }
            (Some(p), None) => {
                // The previous identity becomes (also) known by the new user id.
                self.tx
                    .prepare_cached(
                        "UPDATE contacts SET user_id = ?2, updated_at = ?3 WHERE id = ?1",
                    )?
                    .execute(params![p, user_id, ms(now)])?;
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
}

impl ContactsTx for SqliteTx<'_> {
    fn resolve_contact(
        &mut self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        now: Timestamp,
    ) -> Result<i64> {
        self.resolve_as(user_id, anonymous_id, now, Merges::Now)
    }

    fn alias(&mut self, previous_id: &str, user_id: &str, now: Timestamp) -> Result<i64> {
        self.alias_as(previous_id, user_id, now, Merges::Now)
    }

    fn lock_contacts(&mut self, _contact_ids: &[i64]) -> Result<bool> {
        // One process writes a SQLite file, one transaction at a time.
        Ok(false)
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
        self.tx
            .prepare_cached("UPDATE contacts SET traits = ?2, email = ?3, phone = ?4, timezone = ?5, updated_at = ?6 WHERE id = ?1")?
            .execute(params![contact_id, serde_json::to_string(&traits)?, email, phone, tz, ms(now)])?;
        Ok(())
    }

    fn contact_ids(&mut self, after_id: i64, limit: usize) -> Result<Vec<i64>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id FROM contacts WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(params![after_id, limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT id FROM contacts WHERE {column} = ?1 ORDER BY id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![address, limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn contact_by_email(&mut self, email: &str) -> Result<Option<i64>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT id FROM contacts WHERE email = ?1 COLLATE NOCASE ORDER BY id LIMIT 1",
            )?
            .query_row([email.trim()], |r| r.get(0))
            .optional()?)
    }
}

impl EventsTx for SqliteTx<'_> {
    fn pending_events(&mut self, upto_seq: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        let done = self
            .meta("processed_seq")?
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![done, upto_seq, limit as i64], event_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_processed_upto(&mut self, seq: i64) -> Result<()> {
        self.set_meta("processed_seq", &seq.to_string())
    }

    fn processed_upto(&mut self, _contact_id: i64) -> Result<i64> {
        Ok(self
            .meta("processed_seq")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    fn set_event_contact(&mut self, seq: i64, contact_id: i64) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE events SET contact_id = ?2 WHERE seq = ?1")?
            .execute(params![seq, contact_id])?;
        Ok(())
    }

    fn events_between(
        &mut self,
        contact_id: i64,
        name: &str,
        after_seq: i64,
        upto_seq: i64,
    ) -> Result<Vec<EventRecord>> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE contact_id = ?1 AND name = ?2 AND seq > ?3 AND seq <= ?4 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(
            params![contact_id, name, after_seq, upto_seq],
            event_from_row,
        )?;
        Ok(rows
            .map(|r| {
                r.map(|e| EventRecord {
                    seq: e.seq,
                    kind: e.event.kind,
                    name: e.event.name,
                    properties: e.event.properties,
                    timestamp: e.event.timestamp,
                })
            })
            .collect::<rusqlite::Result<_>>()?)
    }

    fn event(&mut self, seq: i64) -> Result<Option<StoredEvent>> {
        Ok(self
            .tx
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?1"
            ))?
            .query_row([seq], event_from_row)
            .optional()?)
    }

    fn record_event(&mut self, contact_id: i64, e: &NewEvent) -> Result<bool> {
        self.insert_event(contact_id, e)
    }

    fn contact_order_products(&mut self, contact_id: i64, limit: usize) -> Result<Vec<Value>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT properties FROM events
             WHERE contact_id = ?1 AND name = 'Order Completed'
             ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![contact_id, limit as i64], |r| r.get::<_, String>(0))?;
        rows.map(|r| Ok(products_of(&r?))).collect::<Result<_>>()
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
        let mut newest = self.tx.prepare_cached(
            "SELECT op.seq FROM order_products op JOIN events e ON e.seq = op.seq
             WHERE op.product_id = ?1 AND e.contact_id IS NOT ?2
             ORDER BY op.seq DESC LIMIT ?3",
        )?;
        let mut seqs = std::collections::BTreeSet::new();
        for id in product_ids {
            let rows = newest.query_map(params![id, exclude_contact, limit as i64], |r| {
                r.get::<_, i64>(0)
            })?;
            for seq in rows {
                seqs.insert(seq?);
            }
        }
        let mut properties = self
            .tx
            .prepare_cached("SELECT properties FROM events WHERE seq = ?1")?;
        seqs.iter()
            .rev()
            .take(limit)
            .map(|seq| {
                let text: String = properties.query_row([seq], |r| r.get(0))?;
                Ok(products_of(&text))
            })
            .collect()
    }

    fn product_order_counts(
        &mut self,
        product_ids: &[String],
        cap: usize,
    ) -> Result<Vec<(String, i64)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT COUNT(*) FROM (SELECT 1 FROM order_products WHERE product_id = ?1 LIMIT ?2)",
        )?;
        let mut counts = Vec::with_capacity(product_ids.len());
        for id in product_ids {
            let n: i64 = stmt.query_row(params![id, cap as i64], |r| r.get(0))?;
            if n > 0 {
                counts.push((id.clone(), n));
            }
        }
        Ok(counts)
    }
}

impl TemplatesTx for SqliteTx<'_> {
    fn template(&mut self, id: &str) -> Result<Option<StoredTemplate>> {
        super::api::template_row(self.tx, id)
    }

    fn template_version(&mut self, id: &str, version: i64) -> Result<Option<StoredTemplate>> {
        super::api::template_version_row(self.tx, id, version)
    }
}

impl EnrollmentsTx for SqliteTx<'_> {
    fn active_enrollments(&mut self, contact_id: i64) -> Result<Vec<Enrollment>> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE contact_id = ?1 AND status = 'active' ORDER BY id"
        ))?;
        let rows = stmt.query_map([contact_id], enrollment_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn prior_enrollments(
        &mut self,
        journey_id: &str,
        contact_id: i64,
    ) -> Result<Vec<PriorEnrollment>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT key, status, entered_at FROM enrollments WHERE contact_id = ?1 AND journey_id = ?2")?;
        let rows = stmt.query_map(params![contact_id, journey_id], |r| {
            let status: String = r.get(1)?;
            Ok(PriorEnrollment {
                key: r.get(0)?,
                status: EnrollmentStatus::parse(&status).unwrap_or(EnrollmentStatus::Exited),
                entered_at: ts(r.get(2)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn ended_unconverted(
        &mut self,
        contact_id: i64,
        journey_id: &str,
        since: Timestamp,
    ) -> Result<Vec<(Enrollment, Timestamp)>> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {ENROLLMENT_COLUMNS}, updated_at FROM enrollments e
             WHERE contact_id = ?1 AND journey_id = ?2 AND status IN ('completed', 'exited')
               AND updated_at >= ?3
               AND NOT EXISTS (SELECT 1 FROM conversions c WHERE c.enrollment_id = e.id)"
        ))?;
        let rows = stmt.query_map(params![contact_id, journey_id, ms(since)], |r| {
            Ok((enrollment_from_row(r)?, ts(r.get(12)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn insert_enrollment(&mut self, e: &Enrollment, now: Timestamp) -> Result<Enrollment> {
        self.tx
            .prepare_cached(
                concat!(
                    "INSERT INTO enrollments (id, journey_id, version, contact_id, key, node, status, wake_at, entered_at, entered_seq, visits, updated_at, consumed_seq)
                     VALUES (", next_id!("enrollments", "id"), ", ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
            )?
            .execute(params![
                e.journey_id,
                e.version,
                e.contact_id,
                e.key,
                e.node,
                e.status.as_str(),
                e.wake_at.map(ms),
                ms(e.entered_at),
                e.entered_seq,
                e.visits,
                ms(now),
                e.consumed_seq
            ])?;
        Ok(Enrollment {
            id: self.tx.last_insert_rowid(),
            ..e.clone()
        })
    }

    fn update_enrollment(&mut self, e: &Enrollment, now: Timestamp) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE enrollments SET node = ?2, status = ?3, wake_at = ?4, visits = ?5, updated_at = ?6, consumed_seq = ?7 WHERE id = ?1")?
            .execute(params![e.id, e.node, e.status.as_str(), e.wake_at.map(ms), e.visits, ms(now), e.consumed_seq])?;
        Ok(())
    }

    fn claim_due_enrollments(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Enrollment>> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {} FROM enrollments e JOIN journeys j ON j.id = e.journey_id
             WHERE e.wake_at <= ?1 AND e.status = 'active' AND j.status = 'live'
             ORDER BY e.wake_at, e.id LIMIT ?2",
            ENROLLMENT_COLUMNS
                .split(", ")
                .map(|c| format!("e.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        let rows = stmt.query_map(params![ms(now), limit as i64], enrollment_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn journey_enrollments(
        &mut self,
        journey_id: &str,
        limit: usize,
        after_id: i64,
    ) -> Result<Vec<Enrollment>> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE journey_id = ?1 AND status = 'active' AND id > ?2 ORDER BY id LIMIT ?3"
        ))?;
        let rows = stmt.query_map(
            params![journey_id, after_id, limit as i64],
            enrollment_from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn record_steps(&mut self, enrollment_id: i64, log: &[StepLog], at: Timestamp) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare_cached("INSERT INTO steps (enrollment_id, at, node, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for entry in log {
            let (node, action, detail) = step_row(entry);
            stmt.execute(params![enrollment_id, ms(at), node, action, detail])?;
        }
        Ok(())
    }

    fn visited_nodes(&mut self, enrollment_id: i64) -> Result<Vec<String>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT DISTINCT node FROM steps WHERE enrollment_id = ?1 AND action = 'entered'",
        )?;
        let rows = stmt.query_map([enrollment_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn left_outputs(&mut self, enrollment_id: i64) -> Result<Vec<(String, String)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT node, detail FROM steps WHERE enrollment_id = ?1 AND action = 'left' ORDER BY rowid",
        )?;
        let rows = stmt.query_map([enrollment_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (node, detail) = row?;
            let output = detail
                .and_then(|d| serde_json::from_str::<Value>(&d).ok())
                .and_then(|d| d.get("output").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default();
            out.push((node, output));
        }
        Ok(out)
    }
}

impl TimersTx for SqliteTx<'_> {
    fn set_trigger_due(
        &mut self,
        journey_id: &str,
        node: &str,
        contact_id: i64,
        due: Option<Timestamp>,
    ) -> Result<()> {
        match due {
            Some(at) => self.tx
                .prepare_cached(
                    "INSERT INTO trigger_schedule (journey_id, node, contact_id, due_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (journey_id, node, contact_id) DO UPDATE SET due_at = excluded.due_at",
                )?
                .execute(params![journey_id, node, contact_id, ms(at)])?,
            None => self.tx
                .prepare_cached("DELETE FROM trigger_schedule WHERE journey_id = ?1 AND node = ?2 AND contact_id = ?3")?
                .execute(params![journey_id, node, contact_id])?,
        };
        Ok(())
    }

    fn claim_due_triggers(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, String, i64, Timestamp)>> {
        let due: Vec<(String, String, i64, Timestamp)> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT journey_id, node, contact_id, due_at FROM trigger_schedule WHERE due_at <= ?1
                 ORDER BY due_at, journey_id, node, contact_id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![ms(now), limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, ts(r.get(3)?)))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut delete = self.tx.prepare_cached(
            "DELETE FROM trigger_schedule WHERE journey_id = ?1 AND node = ?2 AND contact_id = ?3",
        )?;
        for (journey, node, contact, _) in &due {
            delete.execute(params![journey, node, contact])?;
        }
        Ok(due)
    }

    fn clear_journey_triggers(&mut self, journey_id: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM trigger_schedule WHERE journey_id = ?1")?
            .execute([journey_id])?;
        Ok(())
    }

    fn add_score_expiry(
        &mut self,
        contact_id: i64,
        score_trait: &str,
        points: i64,
        due: Timestamp,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO score_expiries (contact_id, score_trait, points, due_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![contact_id, score_trait, points, ms(due)])?;
        Ok(())
    }

    fn claim_due_score_expiries(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(i64, String, i64)>> {
        let due: Vec<(i64, i64, String, i64)> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT id, contact_id, score_trait, points FROM score_expiries WHERE due_at <= ?1
                 ORDER BY due_at, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![ms(now), limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut delete = self
            .tx
            .prepare_cached("DELETE FROM score_expiries WHERE id = ?1")?;
        for (id, ..) in &due {
            delete.execute([id])?;
        }
        Ok(due.into_iter().map(|(_, c, t, p)| (c, t, p)).collect())
    }
}

impl OutboxTx for SqliteTx<'_> {
    fn insert_message(&mut self, m: &NewMessage) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached(
                concat!(
                    "INSERT INTO messages (id, idempotency_key, contact_id, enrollment_id, journey_id, node, template, channel, recipient,
                                           subject, html, text, status, error, next_attempt_at, created_at, failed_at, priority, broadcast_id,
                                           unsubscribe_url)
                     VALUES (", next_id!("messages", "id"), ", ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, CASE WHEN ?12 = 'queued' THEN ?14 END, ?14,
                             CASE WHEN ?12 IN ('failed', 'bounced') THEN ?14 END, ?15, ?16, ?17)
                     ON CONFLICT (idempotency_key) DO NOTHING"
                ),
            )?
            .execute(params![
                m.idempotency_key,
                m.contact_id,
                m.enrollment_id,
                m.journey_id,
                m.node,
                m.template,
                m.channel.as_str(),
                m.recipient,
                m.subject,
                m.html,
                m.text,
                m.status.as_str(),
                m.error,
                ms(m.created_at),
                m.priority.as_i64(),
                m.broadcast_id,
                m.unsubscribe_url,
            ])?;
        if n == 1
            && let Some(broadcast_id) = &m.broadcast_id
        {
            let (suppressed, failed, bounced) =
                crate::broadcast_sql::written_counts(m.status.as_str());
            self.tx
                .prepare_cached(&crate::broadcast_sql::ROLLUP_WRITTEN.replace('$', "?"))?
                .execute(params![
                    broadcast_id,
                    crate::concerns::rollup_hour(m.created_at),
                    m.template,
                    suppressed,
                    failed,
                    bounced
                ])?;
        }
        Ok(n == 1)
    }

    fn count_marketing_messages(
        &mut self,
        contact_id: i64,
        channel: &str,
        since: Timestamp,
    ) -> Result<i64> {
        // Marketing: from a template that is not transactional. Held-back, failed and bounced
        // messages do not count against a cap.
        Ok(self
            .tx
            .prepare_cached(
                "SELECT COUNT(*) FROM messages m JOIN templates t ON t.id = m.template
             WHERE m.contact_id = ?1 AND m.channel = ?2 AND m.created_at >= ?3
               AND m.status IN ('queued', 'sent')
               AND COALESCE(json_extract(t.definition, '$.transactional'), 0) = 0",
            )?
            .query_row(params![contact_id, channel, ms(since)], |r| r.get(0))?)
    }

    fn contact_messages(&mut self, contact_id: i64) -> Result<Vec<MessageRecord>> {
        // A message counts as sent from the step that queued it (so a condition evaluated in
        // the same transaction sees it); "delivered" once the transport accepted it.
        let mut stmt = self.tx.prepare_cached(
            "SELECT journey_id, template, node, channel, created_at, sent_at, opened_at, clicked_at
             FROM messages WHERE contact_id = ?1 AND status IN ('queued', 'sent')
               AND channel IN ('email', 'sms') ORDER BY id",
        )?;
        let rows = stmt.query_map([contact_id], |r| {
            let channel: String = r.get(3)?;
            let template: String = r.get(1)?;
            Ok(MessageRecord {
                journey: r.get(0)?,
                template: (!template.is_empty()).then_some(template),
                node: r.get(2)?,
                channel: Channel::parse(&channel).unwrap_or(Channel::Email),
                sent_at: ts(r.get(4)?),
                delivered_at: r.get::<_, Option<i64>>(5)?.map(ts),
                opened_at: r.get::<_, Option<i64>>(6)?.map(ts),
                clicked_at: r.get::<_, Option<i64>>(7)?.map(ts),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
        let found: Option<i64> = self
            .tx
            .prepare_cached(&format!(
                "SELECT 1 FROM messages WHERE enrollment_id = ?1 AND node = ?2 AND {condition} LIMIT 1"
            ))?
            .query_row(params![enrollment_id, node], |r| r.get(0))
            .optional()?;
        Ok(found.is_some())
    }

    fn message_sent_at(&mut self, message_id: i64) -> Result<Option<Timestamp>> {
        let sent: Option<Option<i64>> = self
            .tx
            .prepare_cached("SELECT sent_at FROM messages WHERE id = ?1")?
            .query_row([message_id], |r| r.get(0))
            .optional()?;
        Ok(sent.flatten().map(ts))
    }

    fn mark_engagement(
        &mut self,
        message_id: i64,
        clicked: bool,
        human: bool,
        at: Timestamp,
    ) -> Result<bool> {
        super::rollups::mark_engagement(self.tx, message_id, clicked, human, at)
    }

    fn last_touch(&mut self, enrollment_id: i64, before: Timestamp) -> Result<Option<LastTouch>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT id, node, sent_at FROM messages
                 WHERE enrollment_id = ?1 AND status = 'sent' AND sent_at <= ?2 AND node IS NOT NULL
                 ORDER BY sent_at DESC, id DESC LIMIT 1",
            )?
            .query_row(params![enrollment_id, ms(before)], |r| {
                Ok(LastTouch {
                    message_id: r.get(0)?,
                    node: r.get(1)?,
                    sent_at: ts(r.get(2)?),
                })
            })
            .optional()?)
    }

    fn complain_sent_message(
        &mut self,
        contacts: &[i64],
        channel: &str,
        address: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<Option<i64>> {
        let Some(id) = last_sent_to(
            self.tx,
            contacts,
            channel,
            address,
            since,
            &["sent", "bounced"],
        )?
        else {
            return Ok(None);
        };
        let marked = self
            .tx
            .prepare_cached(
                "UPDATE messages SET complained_at = ?2 WHERE id = ?1 AND complained_at IS NULL",
            )?
            .execute(params![id, ms(now)])?;
        if marked == 1 {
            super::rollups::count_message(self.tx, id, "complained", 1, Hour::Of(now))?;
        }
        Ok(Some(id))
    }

    fn bounce_sent_message(
        &mut self,
        contacts: &[i64],
        channel: &str,
        address: &str,
        since: Timestamp,
        error: &str,
        now: Timestamp,
    ) -> Result<Option<i64>> {
        let Some(id) = last_sent_to(self.tx, contacts, channel, address, since, &["sent"])? else {
            return Ok(None);
        };
        self.tx
            .prepare_cached(
                "UPDATE messages SET status = 'bounced', error = ?2, failed_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id, error, ms(now)])?;
        super::rollups::count_message(self.tx, id, "bounced", 1, Hour::Of(now))?;
        super::rollups::count_message(self.tx, id, "delivered", -1, Hour::Sent)?;
        Ok(Some(id))
    }
}

/// The last message sent on `channel` to `address` (as the suppression list keeps it) by one
/// of `contacts` since `since`, with one of `statuses`.
fn last_sent_to(
    tx: &Transaction<'_>,
    contacts: &[i64],
    channel: &str,
    address: &str,
    since: Timestamp,
    statuses: &[&str],
) -> Result<Option<i64>> {
    let mut last: Option<i64> = None;
    // The contacts' messages, newest first, through the index by contact.
    for &contact in contacts {
        let found: Option<i64> = tx
            .prepare_cached(
                "SELECT id FROM messages
                 WHERE contact_id = ?1 AND channel = ?2 AND status IN (?5, ?6)
                   AND sent_at >= ?3 AND lower(recipient) = ?4
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(
                params![
                    contact,
                    channel,
                    ms(since),
                    address,
                    statuses[0],
                    statuses.last().copied().unwrap_or(statuses[0])
                ],
                |r| r.get(0),
            )
            .optional()?;
        last = last.max(found);
    }
    Ok(last)
}

impl AudiencesTx for SqliteTx<'_> {
    fn in_list(&mut self, contact_id: i64, list: &str) -> Result<bool> {
        let found: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT 1 FROM list_members m JOIN lists l ON l.id = m.list_id
                 WHERE l.name = ?1 AND m.contact_id = ?2",
            )?
            .query_row(params![list, contact_id], |r| r.get(0))
            .optional()?;
        Ok(found.is_some())
    }

    fn add_to_list(&mut self, contact_id: i64, list: &str, now: Timestamp) -> Result<bool> {
        let list_id = self.list_id(list, Some(now))?.expect("list just created");
        let n = self.tx
            .prepare_cached("INSERT OR IGNORE INTO list_members (list_id, contact_id, added_at) VALUES (?1, ?2, ?3)")?
            .execute(params![list_id, contact_id, ms(now)])?;
        Ok(n == 1)
    }

    fn remove_from_list(&mut self, contact_id: i64, list: &str) -> Result<bool> {
        let Some(list_id) = self.list_id(list, None)? else {
            return Ok(false);
        };
        let n = self
            .tx
            .prepare_cached("DELETE FROM list_members WHERE list_id = ?1 AND contact_id = ?2")?
            .execute(params![list_id, contact_id])?;
        Ok(n == 1)
    }

    fn list_member_ids(&mut self, list: &str, after_id: i64, limit: usize) -> Result<Vec<i64>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT m.contact_id FROM list_members m JOIN lists l ON l.id = m.list_id
             WHERE l.name = ?1 AND m.contact_id > ?2 ORDER BY m.contact_id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![list, after_id, limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn segment_definitions(&mut self) -> Result<Vec<(String, Value)>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id, condition FROM segments ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, condition) = row?;
            // A row that cannot be read is the caller's to report, not an error of the batch.
            out.push((id, serde_json::from_str(&condition).unwrap_or(Value::Null)));
        }
        Ok(out)
    }

    fn is_segment_member(&mut self, segment_id: &str, contact_id: i64) -> Result<bool> {
        let found: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT 1 FROM segment_members WHERE segment_id = ?1 AND contact_id = ?2",
            )?
            .query_row(params![segment_id, contact_id], |r| r.get(0))
            .optional()?;
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
            self.tx
                .prepare_cached("INSERT OR IGNORE INTO segment_members (segment_id, contact_id, entered_at) VALUES (?1, ?2, ?3)")?
                .execute(params![segment_id, contact_id, ms(now)])?
        } else {
            self.tx
                .prepare_cached(
                    "DELETE FROM segment_members WHERE segment_id = ?1 AND contact_id = ?2",
                )?
                .execute(params![segment_id, contact_id])?
        };
        if n == 1 {
            let (entered, left) = if member { (1, 0) } else { (0, 1) };
            count_segment_change(self.tx, segment_id, now, entered, left)?;
        }
        Ok(n == 1)
    }

    fn segment_member_ids(
        &mut self,
        segment_id: &str,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<i64>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT contact_id FROM segment_members WHERE segment_id = ?1 AND contact_id > ?2
             ORDER BY contact_id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![segment_id, after_id, limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_segment_check(
        &mut self,
        segment_id: &str,
        contact_id: i64,
        due: Option<Timestamp>,
    ) -> Result<()> {
        match due {
            Some(at) => self.tx
                .prepare_cached(
                    "INSERT INTO segment_checks (segment_id, contact_id, due_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (segment_id, contact_id) DO UPDATE SET due_at = excluded.due_at
                     WHERE due_at != excluded.due_at",
                )?
                .execute(params![segment_id, contact_id, ms(at)])?,
            None => self.tx
                .prepare_cached("DELETE FROM segment_checks WHERE segment_id = ?1 AND contact_id = ?2")?
                .execute(params![segment_id, contact_id])?,
        };
        Ok(())
    }

    fn claim_due_segment_checks(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, i64)>> {
        let due: Vec<(String, i64)> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT segment_id, contact_id FROM segment_checks WHERE due_at <= ?1
                 ORDER BY due_at, segment_id, contact_id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![ms(now), limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut delete = self.tx.prepare_cached(
            "DELETE FROM segment_checks WHERE segment_id = ?1 AND contact_id = ?2",
        )?;
        for (segment, contact) in &due {
            delete.execute(params![segment, contact])?;
        }
        Ok(due)
    }
}

/// Adds to the segment's history for the hour of `at` (see `concerns::audiences`): one
/// upsert of a row in the same transaction, no read of the segment's size.
pub(crate) fn count_segment_change(
    tx: &rusqlite::Connection,
    segment_id: &str,
    at: Timestamp,
    entered: i64,
    left: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO segment_history (segment_id, hour_at, entered, exited) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (segment_id, hour_at) DO UPDATE SET
           entered = entered + excluded.entered, exited = exited + excluded.exited",
    )?
    .execute(params![segment_id, history_hour(ms(at)), entered, left])?;
    Ok(())
}

impl ExperimentsTx for SqliteTx<'_> {
    fn add_experiment_counts(
        &mut self,
        journey_id: &str,
        node: &str,
        variant: &str,
        entered: i64,
        converted: i64,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO experiment_variants (journey_id, node, variant, entered, converted)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (journey_id, node, variant) DO UPDATE SET
                   entered = entered + excluded.entered, converted = converted + excluded.converted",
            )?
            .execute(params![journey_id, node, variant, entered, converted])?;
        Ok(())
    }

    fn experiment_counts(&mut self, journey_id: &str, node: &str) -> Result<Vec<ExperimentCounts>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT node, variant, entered, converted FROM experiment_variants
             WHERE journey_id = ?1 AND node = ?2 ORDER BY variant",
        )?;
        let rows = stmt.query_map(params![journey_id, node], |r| {
            Ok(ExperimentCounts {
                node: r.get(0)?,
                variant: r.get(1)?,
                entered: r.get(2)?,
                converted: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn experiment_winner(&mut self, journey_id: &str, node: &str) -> Result<Option<String>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT winner FROM experiment_winners WHERE journey_id = ?1 AND node = ?2",
            )?
            .query_row(params![journey_id, node], |r| r.get(0))
            .optional()?)
    }

    fn set_experiment_winner(
        &mut self,
        journey_id: &str,
        node: &str,
        winner: &str,
        verdict: &Value,
        now: Timestamp,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO experiment_winners (journey_id, node, winner, decided_at, verdict)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (journey_id, node) DO NOTHING",
            )?
            .execute(params![
                journey_id,
                node,
                winner,
                ms(now),
                verdict.to_string()
            ])?;
        Ok(())
    }
}

impl ConsentTx for SqliteTx<'_> {
    fn subscriptions(&mut self, contact_id: i64) -> Result<Vec<Subscription>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT contact_id, channel, topic, status, updated_at FROM subscriptions
             WHERE contact_id = ?1 ORDER BY channel, topic",
        )?;
        let rows = stmt.query_map([contact_id], |r| {
            Ok(Subscription {
                contact_id: r.get(0)?,
                channel: r.get(1)?,
                topic: r.get(2)?,
                status: r.get(3)?,
                updated_at: ts(r.get(4)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn set_subscription(&mut self, s: &Subscription) -> Result<Option<String>> {
        let before: Option<String> = self
            .tx
            .prepare_cached(
                "SELECT status FROM subscriptions WHERE contact_id = ?1 AND channel = ?2 AND topic = ?3",
            )?
            .query_row(params![s.contact_id, s.channel, s.topic], |r| r.get(0))
            .optional()?;
        self.tx
            .prepare_cached(
                "INSERT INTO subscriptions (contact_id, channel, topic, status, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (contact_id, channel, topic)
                 DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
            )?
            .execute(params![
                s.contact_id,
                s.channel,
                s.topic,
                s.status,
                ms(s.updated_at)
            ])?;
        Ok(before)
    }

    fn suppression(&mut self, channel: &str, address: &str) -> Result<Option<String>> {
        let plain = self
            .tx
            .prepare_cached("SELECT reason FROM suppressions WHERE channel = ?1 AND address = ?2")?
            .query_row(
                params![channel, crate::suppression_address(channel, address)],
                |r| r.get(0),
            )
            .optional()?;
        match plain {
            Some(reason) => Ok(Some(reason)),
            // The address of an erased contact, imported or identified again.
            None => super::privacy::erased_suppression(self.tx, channel, address),
        }
    }

    fn suppress(&mut self, entry: &crate::Suppression) -> Result<bool> {
        super::api::suppress_in(self.tx, entry)
    }

    fn unsuppress(&mut self, channel: &str, address: &str) -> Result<bool> {
        super::api::unsuppress_in(self.tx, channel, address)
    }
}

impl ReportingTx for SqliteTx<'_> {
    fn add_stats(&mut self, deltas: &StatsDeltas, at: Timestamp) -> Result<()> {
        super::rollups::add_stats(self.tx, deltas, at)
    }

    fn record_conversion(&mut self, conversion: &NewConversion) -> Result<bool> {
        super::rollups::record_conversion(self.tx, conversion)
    }
}

impl PrivacyTx for SqliteTx<'_> {
    fn erase_contact(&mut self, contact_id: i64, now: Timestamp) -> Result<crate::Erasure> {
        super::privacy::erase(self.tx, contact_id, now)
    }

    fn record_audit(&mut self, entry: &crate::NewAudit) -> Result<i64> {
        super::privacy::record_audit(self.tx, entry)
    }
}

impl MetaTx for SqliteTx<'_> {
    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self
            .tx
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.tx
            .prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
            .execute([key, value])?;
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
