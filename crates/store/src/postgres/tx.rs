//! `EngineTx` (every `Tx` concern trait, one impl block each) on a PostgreSQL transaction: a
//! line-for-line sibling of `sqlite::tx`, in the same order; comments here say only where
//! PostgreSQL differs and why.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ::postgres::types::{FromSql, ToSql, Type};
use ::postgres::{Row, Statement, Transaction};
use jiff::Timestamp;
use serde_json::{Map, Value};
use waymark_core::condition::MessageRecord;
use waymark_core::filter::Engagement;
use waymark_core::journey::Channel;
use waymark_core::stepper::PriorEnrollment;
use waymark_core::{Enrollment, EnrollmentStatus, EventKind, EventRecord, StepLog};

use super::cluster::{Membership, PARTITIONS, all_partitions, partition_of};
use super::privacy::numbered;
use super::rollups::Hour;
use super::seen::Seen;
use super::step_writes::StepWrites;
use super::{APPEND_LOCK, CONTACT_LOCK, Prepared, ms, ts};
use crate::concerns::history_hour;
use crate::concerns::{Identities, Merges};
use crate::personal_data::{
    ERASURE_LEAVES_SEGMENTS, MERGE_LEAVES_SEGMENTS, MERGE_SCORE_EXPIRIES, MERGE_STATEMENTS,
    address_hash, merge_parameters,
};
use crate::{
    AudiencesTx, ConsentTx, Contact, ContactsTx, EngineTx, EnrollmentsTx, Erasure, EventsTx,
    ExperimentCounts, ExperimentsTx, LastTouch, MetaTx, NewAudit, NewConversion, NewEvent,
    NewMessage, OutboxTx, PrivacyTx, ReadAhead, ReportingTx, Result, StatsDeltas, StoreError,
    StoredEvent, StoredTemplate, Subscription, Suppression, TemplatesTx, TimersTx,
    suppression_address,
};

pub(crate) struct PgTx<'a, 'b> {
    pub(crate) tx: &'a mut Transaction<'b>,
    pub(crate) prepared: &'a mut Prepared,
    /// This process's membership, when it joined a cluster (`None`: every partition).
    membership: Option<Arc<Membership>>,
    /// The partitions this transaction works on, fenced on first use (see `cluster`).
    scope: Option<Vec<i16>>,
    /// Contacts locked in this transaction (see `lock_contacts`).
    locked: HashSet<i64>,
    /// Rows read in this transaction, as they stand in it.
    seen: Seen,
    /// Enrollment updates and step logs not written yet.
    step_writes: StepWrites,
    /// Segment history increments not written yet: (segment, hour) → (entered, left). Written
    /// at commit in one statement, in key order (see `write_held`).
    segment_history: BTreeMap<(String, i64), (i64, i64)>,
}

impl<'a, 'b> PgTx<'a, 'b> {
    pub(crate) fn new(
        tx: &'a mut Transaction<'b>,
        prepared: &'a mut Prepared,
        membership: Option<Arc<Membership>>,
    ) -> Self {
        PgTx {
            tx,
            prepared,
            membership,
            scope: None,
            locked: HashSet::new(),
            seen: Seen::default(),
            step_writes: StepWrites::default(),
            segment_history: BTreeMap::new(),
        }
    }

    /// Writes everything held, before the transaction commits: the step writes, then the
    /// segment history increments. Those are held to the end, not written as they happen:
    /// an hour's row is shared by every transaction that changes the segment's members in
    /// that hour, on every process, and a row written mid-transaction would stay locked
    /// (the others waiting on it) until the commit. Written last and in key order, the
    /// locks are held only for the commit and always taken in the same order, so two
    /// transactions never wait on each other for them.
    pub(crate) fn write_held(&mut self) -> Result<()> {
        self.write_step_writes()?;
        if self.segment_history.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.segment_history);
        let mut segments = Vec::with_capacity(held.len());
        let (mut hours, mut entered, mut left) = (Vec::new(), Vec::new(), Vec::new());
        for ((segment, hour), (e, l)) in held {
            segments.push(segment);
            hours.push(hour);
            entered.push(e);
            left.push(l);
        }
        // A segment deleted meanwhile (by the API, in another transaction) gets no history.
        let statement = self.prepared.get(
            self.tx,
            "INSERT INTO segment_history (segment_id, hour_at, entered, exited)
             SELECT v.segment_id, v.hour_at, v.entered, v.exited
             FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[])
                  WITH ORDINALITY AS v(segment_id, hour_at, entered, exited, n)
             WHERE EXISTS (SELECT 1 FROM segments s WHERE s.id = v.segment_id)
             ORDER BY n
             ON CONFLICT (segment_id, hour_at) DO UPDATE SET
               entered = segment_history.entered + excluded.entered,
               exited = segment_history.exited + excluded.exited",
        )?;
        self.tx
            .execute(&statement, &[&segments, &hours, &entered, &left])?;
        Ok(())
    }

    /// Counts a membership change in the segment's history, for the hour of `at`.
    fn count_segment_change(&mut self, segment_id: &str, at: Timestamp, entered: i64, left: i64) {
        let counts = self
            .segment_history
            .entry((segment_id.to_string(), history_hour(ms(at))))
            .or_default();
        counts.0 += entered;
        counts.1 += left;
    }

    /// Writes the held step writes (before a statement that may read them, and at commit).
    pub(crate) fn write_step_writes(&mut self) -> Result<()> {
        if self.step_writes.is_empty() {
            return Ok(());
        }
        self.step_writes.write(self.tx, self.prepared)
    }

    /// The partitions this transaction may work on: every one, or, in a cluster, those this
    /// process holds, locked against a takeover until the transaction ends.
    fn scope(&mut self) -> Result<Vec<i16>> {
        if let Some(scope) = &self.scope {
            return Ok(scope.clone());
        }
        let scope = match &self.membership {
            Some(m) => m.fence(self.tx)?.partitions,
            None => all_partitions(),
        };
        self.scope = Some(scope.clone());
        Ok(scope)
    }
}

/// SQL to run: text (prepared once per connection, then reused) or a statement at hand.
pub(crate) trait Sql {
    fn statement(
        &self,
        tx: &mut Transaction<'_>,
        prepared: &mut Prepared,
    ) -> std::result::Result<Statement, ::postgres::Error>;
}

impl Sql for str {
    fn statement(
        &self,
        tx: &mut Transaction<'_>,
        prepared: &mut Prepared,
    ) -> std::result::Result<Statement, ::postgres::Error> {
        prepared.get(tx, self)
    }
}

impl Sql for String {
    fn statement(
        &self,
        tx: &mut Transaction<'_>,
        prepared: &mut Prepared,
    ) -> std::result::Result<Statement, ::postgres::Error> {
        prepared.get(tx, self)
    }
}

impl Sql for Statement {
    fn statement(
        &self,
        _: &mut Transaction<'_>,
        _: &mut Prepared,
    ) -> std::result::Result<Statement, ::postgres::Error> {
        Ok(self.clone())
    }
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// The transaction's statements go through the connection's prepared statements: one round
/// trip each instead of two. Each writes the held step writes first (see `step_writes`), except
/// the `_aside` ones: statements that neither read nor write enrollments or step logs, which
/// may run before them.
impl<'b> PgTx<'_, 'b> {
    fn prepare(&mut self, sql: &str) -> std::result::Result<Statement, ::postgres::Error> {
        self.prepared.get(self.tx, sql)
    }

    pub(super) fn execute(&mut self, sql: &(impl Sql + ?Sized), params: Params<'_>) -> Result<u64> {
        self.write_step_writes()?;
        self.execute_aside(sql, params)
    }

    pub(super) fn query(
        &mut self,
        sql: &(impl Sql + ?Sized),
        params: Params<'_>,
    ) -> Result<Vec<Row>> {
        self.write_step_writes()?;
        self.query_aside(sql, params)
    }

    fn query_one(&mut self, sql: &(impl Sql + ?Sized), params: Params<'_>) -> Result<Row> {
        self.write_step_writes()?;
        self.query_one_aside(sql, params)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &(impl Sql + ?Sized),
        params: Params<'_>,
    ) -> Result<Option<Row>> {
        self.write_step_writes()?;
        self.query_opt_aside(sql, params)
    }

    fn execute_aside(&mut self, sql: &(impl Sql + ?Sized), params: Params<'_>) -> Result<u64> {
        let statement = sql.statement(self.tx, self.prepared)?;
        Ok(self.tx.execute(&statement, params)?)
    }

    fn query_aside(&mut self, sql: &(impl Sql + ?Sized), params: Params<'_>) -> Result<Vec<Row>> {
        let statement = sql.statement(self.tx, self.prepared)?;
        Ok(self.tx.query(&statement, params)?)
    }

    fn query_one_aside(&mut self, sql: &(impl Sql + ?Sized), params: Params<'_>) -> Result<Row> {
        let statement = sql.statement(self.tx, self.prepared)?;
        Ok(self.tx.query_one(&statement, params)?)
    }

    fn query_opt_aside(
        &mut self,
        sql: &(impl Sql + ?Sized),
        params: Params<'_>,
    ) -> Result<Option<Row>> {
        let statement = sql.statement(self.tx, self.prepared)?;
        Ok(self.tx.query_opt(&statement, params)?)
    }

    /// The transaction itself, for statements made elsewhere, after the held step writes.
    fn raw(&mut self) -> Result<&mut Transaction<'b>> {
        self.write_step_writes()?;
        Ok(self.tx)
    }
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
        let row = self.query_one(
            "INSERT INTO contacts (user_id, created_at, updated_at) VALUES ($1, $2, $2) RETURNING id",
            &[&user_id, &ms(now)],
        )?;
        column(&row, 0)
    }

    fn contact_by_user(&mut self, user_id: &str) -> Result<Option<i64>> {
        self.query_opt("SELECT id FROM contacts WHERE user_id = $1", &[&user_id])?
            .map(|r| column(&r, 0))
            .transpose()
    }

    fn contact_by_anonymous(&mut self, anonymous_id: &str) -> Result<Option<i64>> {
        self.query_opt(
            "SELECT contact_id FROM anonymous_ids WHERE anonymous_id = $1",
            &[&anonymous_id],
        )?
        .map(|r| column(&r, 0))
        .transpose()
    }

    fn link_anonymous(&mut self, anonymous_id: &str, contact_id: i64) -> Result<()> {
        self.execute(
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
        // `from` may be in another process's partition: its engine waits until this ends.
        self.lock_contacts(&[from, into])?;
        let from_contact = self.contact_inner(from)?;
        let into_contact = self.contact_inner(into)?;
        // The rules for rows both contacts hold are in `personal_data`.
        let (score_traits, drop_scores) = MERGE_SCORE_EXPIRIES;
        let tx = self.raw()?;
        for row in tx.query(&numbered(score_traits), &[&from])? {
            let score_trait: String = column(&row, 0)?;
            if into_contact.traits.contains_key(&score_trait) {
                tx.execute(&numbered(drop_scores), &[&from, &score_trait])?;
            }
        }
        let fewer = tx.query(&numbered(MERGE_LEAVES_SEGMENTS), &[&from, &into])?;
        let fewer = fewer
            .iter()
            .map(|r| column::<String>(r, 0))
            .collect::<Result<Vec<_>>>()?;
        let now_ms = ms(now);
        let args: [&(dyn ToSql + Sync); 3] = [&from, &into, &now_ms];
        for (_, statements) in MERGE_STATEMENTS {
            for sql in *statements {
                // Typed: a statement may leave out a parameter before the last it uses.
                let n = merge_parameters(sql);
                let statement = tx.prepare_typed(&numbered(sql), &[Type::INT8; 3][..n])?;
                tx.execute(&statement, &args[..n])?;
            }
        }
        // The merge moves `from`'s events, enrollments, consent and memberships to `into`.
        self.seen.contacts_changed();
        for segment in &fewer {
            self.count_segment_change(segment, now, 0, 1);
        }
        let mut traits = from_contact.traits;
        traits.extend(into_contact.traits);
        let (email, phone, tz) = contact_columns(&traits);
        self.execute(
            "UPDATE contacts SET traits = $2, email = $3, phone = $4, timezone = $5, updated_at = $6 WHERE id = $1",
            &[&into, &serde_json::to_string(&traits)?, &email, &phone, &tz, &ms(now)],
        )?;
        Ok(())
    }

    fn contact_inner(&mut self, contact_id: i64) -> Result<Contact> {
        if let Some(contact) = self.seen.contacts.get(&contact_id) {
            return Ok(contact.clone());
        }
        let contact = self
            .query_opt_aside(
                &format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1"),
                &[&contact_id],
            )?
            .map(|r| contact_from_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("contact {contact_id}")))?;
        self.seen.contacts.insert(contact_id, contact.clone());
        Ok(contact)
    }

    fn list_id(&mut self, name: &str, create_at: Option<Timestamp>) -> Result<Option<i64>> {
        if let Some(now) = create_at {
            self.execute(
                "INSERT INTO lists (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &ms(now)],
            )?;
        }
        self.query_opt("SELECT id FROM lists WHERE name = $1", &[&name])?
            .map(|r| column(&r, 0))
            .transpose()
    }
}

impl EngineTx for PgTx<'_, '_> {
    fn read_ahead(&mut self, plan: &ReadAhead<'_>) -> Result<()> {
        let unseen = |seen: &dyn Fn(i64) -> bool| -> Vec<i64> {
            let mut ids: Vec<i64> = plan
                .contacts
                .iter()
                .copied()
                .filter(|c| !seen(*c))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let contacts = unseen(&|c| self.seen.contacts.contains_key(&c));
        if !contacts.is_empty() {
            let rows = self.query_aside(
                &format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = ANY($1)"),
                &[&contacts],
            )?;
            for row in &rows {
                let contact = contact_from_row(row)?;
                self.seen.contacts.insert(contact.id, contact);
            }
        }
        let active = unseen(&|c| self.seen.active.contains_key(&c));
        if !active.is_empty() {
            let rows = self.query(
                &format!(
                    "SELECT {ENROLLMENT_COLUMNS} FROM enrollments
                     WHERE contact_id = ANY($1) AND status = 'active' ORDER BY id"
                ),
                &[&active],
            )?;
            for c in &active {
                self.seen.active.insert(*c, Vec::new());
            }
            for row in &rows {
                let e = enrollment_from_row(row)?;
                self.seen.active.entry(e.contact_id).or_default().push(e);
            }
        }
        if !plan.journeys.is_empty() {
            let pairs: Vec<(String, i64)> = (plan.journeys.iter())
                .flat_map(|j| plan.contacts.iter().map(|c| (j.to_string(), *c)))
                .filter(|pair| !self.seen.prior.contains_key(pair))
                .collect();
            if !pairs.is_empty() {
                let mut contacts: Vec<i64> = pairs.iter().map(|(_, c)| *c).collect();
                contacts.sort_unstable();
                contacts.dedup();
                let journeys: Vec<&str> = plan.journeys.to_vec();
                let rows = self.query(
                    "SELECT id, journey_id, contact_id, key, status, entered_at FROM enrollments
                     WHERE contact_id = ANY($1) AND journey_id = ANY($2) ORDER BY id",
                    &[&contacts, &journeys],
                )?;
                let mut found: HashMap<(String, i64), Vec<(i64, PriorEnrollment)>> =
                    pairs.into_iter().map(|pair| (pair, Vec::new())).collect();
                for r in &rows {
                    let status: String = column(r, 4)?;
                    let prior = PriorEnrollment {
                        key: column(r, 3)?,
                        status: EnrollmentStatus::parse(&status)
                            .unwrap_or(EnrollmentStatus::Exited),
                        entered_at: ts(column(r, 5)?),
                    };
                    if let Some(list) = found.get_mut(&(column(r, 1)?, column(r, 2)?)) {
                        list.push((column(r, 0)?, prior));
                    }
                }
                self.seen.prior.extend(found);
            }
        }
        let subscribed = unseen(&|c| self.seen.subscriptions.contains_key(&c));
        if !subscribed.is_empty() {
            let rows = self.query_aside(
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions
                     WHERE contact_id = ANY($1) ORDER BY contact_id, channel, topic"
                ),
                &[&subscribed],
            )?;
            for c in &subscribed {
                self.seen.subscriptions.insert(*c, Vec::new());
            }
            for row in &rows {
                let s = subscription_from_row(row)?;
                self.seen
                    .subscriptions
                    .entry(s.contact_id)
                    .or_default()
                    .push(s);
            }
        }
        // The suppression entries of the addresses the contacts would be sent to.
        for channel in [Channel::Email, Channel::Sms] {
            let addresses: Vec<String> = (plan.contacts.iter())
                .filter_map(|c| self.seen.contacts.get(c))
                .filter_map(|c| match channel {
                    Channel::Email => c.email.clone(),
                    Channel::Sms => c.phone.clone(),
                })
                .collect();
            if !addresses.is_empty() {
                let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
                self.suppressions_of(channel.as_str(), &addresses)?;
            }
        }
        let mut events: Vec<i64> = (plan.events.iter().copied())
            .filter(|seq| !self.seen.events.contains_key(seq))
            .collect();
        events.sort_unstable();
        events.dedup();
        if !events.is_empty() {
            let rows = self.query_aside(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = ANY($1)"),
                &[&events],
            )?;
            for row in &rows {
                let event = event_from_row(row)?;
                self.seen.events.insert(event.seq, event);
            }
        }
        Ok(())
    }
}

impl PgTx<'_, '_> {
    /// Why each of `addresses` is suppressed on `channel` (`None`: it is not), in their order:
    /// on the suppression list, or as the address of an erased contact imported or identified
    /// again. Kept in `seen`.
    fn suppressions_of(
        &mut self,
        channel: &str,
        addresses: &[&str],
    ) -> Result<Vec<Option<String>>> {
        let key = self.erasure_key()?;
        let plain: Vec<String> = (addresses.iter())
            .map(|a| suppression_address(channel, a))
            .collect();
        let hashes: Vec<Option<String>> = (addresses.iter())
            .map(|a| key.as_ref().map(|k| address_hash(k, channel, a)))
            .collect();
        // The list's own entry first, as a lookup of each in turn would answer.
        let rows = self.query_aside(
            "SELECT v.n, COALESCE(s.reason, x.reason)
             FROM unnest($2::TEXT[], $3::TEXT[]) WITH ORDINALITY AS v(address, hash, n)
             LEFT JOIN suppressions s ON s.channel = $1 AND s.address = v.address
             LEFT JOIN erased_addresses x ON x.channel = $1 AND x.address_hash = v.hash",
            &[&channel, &plain, &hashes],
        )?;
        let mut reasons: Vec<Option<String>> = vec![None; addresses.len()];
        for row in &rows {
            let n: i64 = column(row, 0)?;
            let reason: Option<String> = column(row, 1)?;
            if let Some(slot) = reasons.get_mut(n as usize - 1)
                && slot.is_none()
            {
                *slot = reason;
            }
        }
        for (address, reason) in plain.into_iter().zip(&reasons) {
            (self.seen.suppressions).insert((channel.to_string(), address), reason.clone());
        }
        Ok(reasons)
    }

    /// The key erased addresses are hashed with (made with the schema; `None` only on a
    /// database that has not been given one yet).
    fn erasure_key(&mut self) -> Result<Option<String>> {
        if let Some(key) = &self.seen.erasure_key {
            return Ok(Some(key.clone()));
        }
        let key: Option<String> = self
            .query_opt_aside("SELECT value FROM meta WHERE key = 'erasure_key'", &[])?
            .map(|r| column(&r, 0))
            .transpose()?;
        self.seen.erasure_key = key.clone();
        Ok(key)
    }
}

const SUBSCRIPTION_COLUMNS: &str = "contact_id, channel, topic, status, updated_at";

fn subscription_from_row(r: &Row) -> Result<Subscription> {
    Ok(Subscription {
        contact_id: column(r, 0)?,
        channel: column(r, 1)?,
        topic: column(r, 2)?,
        status: column(r, 3)?,
        updated_at: ts(column(r, 4)?),
    })
}

impl Identities for PgTx<'_, '_> {
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
                    self.seen.contacts.remove(&a);
                    self.execute(
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
                self.seen.contacts.remove(&p);
                self.execute(
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
}

impl ContactsTx for PgTx<'_, '_> {
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

    fn lock_contacts(&mut self, contact_ids: &[i64]) -> Result<bool> {
        if self.membership.is_none() {
            // Not in a cluster: this process's writers take turns, and no other works.
            return Ok(false);
        }
        let mut fresh: Vec<i64> = contact_ids
            .iter()
            .copied()
            .filter(|id| !self.locked.contains(id))
            .collect();
        if fresh.is_empty() {
            return Ok(false);
        }
        // In one order, so that two transactions locking overlapping sets cannot deadlock.
        fresh.sort_unstable();
        fresh.dedup();
        self.execute(
            "SELECT pg_advisory_xact_lock($1, (c % 2147483648)::INT)
             FROM unnest($2::BIGINT[]) WITH ORDINALITY AS v(c, n) ORDER BY n",
            &[&CONTACT_LOCK, &fresh],
        )?;
        self.locked.extend(fresh);
        Ok(true)
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
        let mut contact = self.contact_inner(contact_id)?;
        self.seen.contacts.remove(&contact_id);
        let traits = &mut contact.traits;
        for (k, v) in patch {
            if v.is_null() {
                traits.remove(k);
            } else {
                traits.insert(k.clone(), v.clone());
            }
        }
        let (email, phone, tz) = contact_columns(traits);
        self.execute_aside(
            "UPDATE contacts SET traits = $2, email = $3, phone = $4, timezone = $5, updated_at = $6 WHERE id = $1",
            &[&contact_id, &serde_json::to_string(traits)?, &email, &phone, &tz, &ms(now)],
        )?;
        // As it now stands, without reading it back.
        (
            contact.email,
            contact.phone,
            contact.timezone,
            contact.updated_at,
        ) = (email, phone, tz, now);
        self.seen.contacts.insert(contact_id, contact);
        Ok(())
    }

    fn contact_ids(&mut self, after_id: i64, limit: usize) -> Result<Vec<i64>> {
        let rows = self.query(
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
        let rows = self.query(
            &format!("SELECT id FROM contacts WHERE {column} = $1 ORDER BY id LIMIT $2"),
            &[&address, &(limit as i64)],
        )?;
        first_column(&rows)
    }

    fn contact_by_email(&mut self, email: &str) -> Result<Option<i64>> {
        // SQLite's NOCASE folds ASCII letters only, as lower() does in the "C" collation (the
        // column's, and the contacts_email_lower index's); the parameter is put in it too, or
        // lower() would fold it in the database's locale.
        self.query_opt(
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
        // Each partition's events after its own cursor, merged in `seq` order: the first
        // `limit` of them are every pending event of these partitions up to the last one
        // taken, so every cursor can move to that one (`set_processed_upto`).
        let scope = self.scope()?;
        let rows = self.query(
            &format!(
                "SELECT e.* FROM partition_cursors c CROSS JOIN LATERAL (
                     SELECT {EVENT_COLUMNS} FROM events
                     WHERE partition = c.partition AND seq > c.processed_seq AND seq <= $1
                     ORDER BY seq LIMIT $2) e
                 WHERE c.partition = ANY($3) ORDER BY e.seq LIMIT $2"
            ),
            &[&upto_seq, &(limit as i64), &scope],
        )?;
        let events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.seen.events = events.iter().map(|e| (e.seq, e.clone())).collect();
        Ok(events)
    }

    fn set_processed_upto(&mut self, seq: i64) -> Result<()> {
        let scope = self.scope()?;
        self.execute_aside(
            "UPDATE partition_cursors SET processed_seq = $1
             WHERE partition = ANY($2) AND processed_seq < $1",
            &[&seq, &scope],
        )?;
        self.seen.cursors = None;
        Ok(())
    }

    fn processed_upto(&mut self, contact_id: i64) -> Result<i64> {
        if self.seen.cursors.is_none() {
            let rows = self.query_aside(
                "SELECT partition, processed_seq FROM partition_cursors",
                &[],
            )?;
            let cursors = rows
                .iter()
                .map(|r| Ok((column(r, 0)?, column(r, 1)?)))
                .collect::<Result<HashMap<i16, i64>>>()?;
            self.seen.cursors = Some(cursors);
        }
        let partition = partition_of(contact_id);
        self.seen
            .cursors
            .as_ref()
            .and_then(|c| c.get(&partition).copied())
            .ok_or_else(|| StoreError::Corrupt(format!("partition {partition} has no cursor")))
    }

    fn set_event_contact(&mut self, seq: i64, contact_id: i64) -> Result<()> {
        if let Some(event) = self.seen.events.get_mut(&seq) {
            event.contact_id = Some(contact_id);
        }
        self.execute(
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
        let rows = self.query(
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
        if let Some(event) = self.seen.events.get(&seq) {
            return Ok(Some(event.clone()));
        }
        self.query_opt_aside(
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
        self.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
            &[&APPEND_LOCK],
        )?;
        // Unless one with its message id exists (`false` then), in its contact's partition.
        let n = self.execute(
            "INSERT INTO events (message_id, kind, name, user_id, anonymous_id, previous_id,
                                 properties, timestamp, received_at, contact_id, partition)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
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
                &partition_of(contact_id),
            ],
        )?;
        Ok(n == 1)
    }

    fn contact_order_products(&mut self, contact_id: i64, limit: usize) -> Result<Vec<Value>> {
        let rows = self.query(
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
        let newest = self.prepare(
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
                let row = self.query_one(&properties, &[seq])?;
                Ok(products_of(&column::<String>(&row, 0)?))
            })
            .collect()
    }

    fn product_order_counts(
        &mut self,
        product_ids: &[String],
        cap: usize,
    ) -> Result<Vec<(String, i64)>> {
        let stmt = self.prepare(
            "SELECT COUNT(*) FROM (SELECT 1 FROM order_products WHERE product_id = $1 LIMIT $2) AS capped",
        )?;
        let mut counts = Vec::with_capacity(product_ids.len());
        for id in product_ids {
            let n: i64 = column(&self.query_one(&stmt, &[id, &(cap as i64)])?, 0)?;
            if n > 0 {
                counts.push((id.clone(), n));
            }
        }
        Ok(counts)
    }
}

impl TemplatesTx for PgTx<'_, '_> {
    fn template(&mut self, id: &str) -> Result<Option<StoredTemplate>> {
        super::api::template_row(self.tx, id)
    }

    fn template_version(&mut self, id: &str, version: i64) -> Result<Option<StoredTemplate>> {
        super::api::template_version_row(self.tx, id, version)
    }
}

impl EnrollmentsTx for PgTx<'_, '_> {
    fn active_enrollments(&mut self, contact_id: i64) -> Result<Vec<Enrollment>> {
        if let Some(active) = self.seen.active.get(&contact_id) {
            return Ok(active.clone());
        }
        let rows = self.query(
            &format!(
                "SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE contact_id = $1 AND status = 'active' ORDER BY id"
            ),
            &[&contact_id],
        )?;
        rows.iter().map(enrollment_from_row).collect()
    }

    fn ended_unconverted(
        &mut self,
        contact_id: i64,
        journey_id: &str,
        since: Timestamp,
    ) -> Result<Vec<(Enrollment, Timestamp)>> {
        let rows = self.query(
            &format!(
                "SELECT {ENROLLMENT_COLUMNS}, updated_at FROM enrollments e
                 WHERE contact_id = $1 AND journey_id = $2 AND status IN ('completed', 'exited')
                   AND updated_at >= $3
                   AND NOT EXISTS (SELECT 1 FROM conversions c WHERE c.enrollment_id = e.id)
                 ORDER BY id"
            ),
            &[&contact_id, &journey_id, &ms(since)],
        )?;
        rows.iter()
            .map(|r| Ok((enrollment_from_row(r)?, ts(column(r, 12)?))))
            .collect()
    }

    fn prior_enrollments(
        &mut self,
        journey_id: &str,
        contact_id: i64,
    ) -> Result<Vec<PriorEnrollment>> {
        if let Some(prior) = self.seen.prior.get(&(journey_id.to_string(), contact_id)) {
            return Ok(prior.iter().map(|(_, p)| p.clone()).collect());
        }
        // SQLite returns them in id order (its index on (contact_id, journey_id) ends with the
        // rowid); PostgreSQL promises no order without ORDER BY.
        let rows = self.query(
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
        // A new row: the held updates of other enrollments change nothing it depends on.
        let row = self.query_one_aside(
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
        let inserted = Enrollment {
            id: column(&row, 0)?,
            ..e.clone()
        };
        self.seen.enrollment_written(&inserted);
        Ok(inserted)
    }

    fn update_enrollment(&mut self, e: &Enrollment, now: Timestamp) -> Result<()> {
        self.step_writes.update_enrollment(e, now);
        self.seen.enrollment_written(e);
        Ok(())
    }

    fn claim_due_enrollments(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Enrollment>> {
        // `wake_at <= $1` leaves out the NULLs, so ordering needs no NULLS FIRST to match
        // SQLite (and without it the partial index on wake_at gives the order).
        // Another process's engine may be stepping some of these: those are skipped (and
        // locked for this transaction), so no enrollment is stepped twice at once.
        let scope = self.scope()?;
        let rows = self.query(
            &format!(
                "SELECT {} FROM enrollments e JOIN journeys j ON j.id = e.journey_id
                 WHERE e.wake_at <= $1 AND e.status = 'active' AND j.status = 'live'
                   AND (e.contact_id % {PARTITIONS})::SMALLINT = ANY($3)
                 ORDER BY e.wake_at, e.id LIMIT $2
                 FOR UPDATE OF e SKIP LOCKED",
                ENROLLMENT_COLUMNS
                    .split(", ")
                    .map(|c| format!("e.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[&ms(now), &(limit as i64), &scope],
        )?;
        rows.iter().map(enrollment_from_row).collect()
    }

    fn journey_enrollments(
        &mut self,
        journey_id: &str,
        limit: usize,
        after_id: i64,
    ) -> Result<Vec<Enrollment>> {
        let rows = self.query(
            &format!(
                "SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE journey_id = $1 AND status = 'active' AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[&journey_id, &after_id, &(limit as i64)],
        )?;
        rows.iter().map(enrollment_from_row).collect()
    }

    fn record_steps(&mut self, enrollment_id: i64, log: &[StepLog], at: Timestamp) -> Result<()> {
        self.step_writes.record_steps(enrollment_id, log, at);
        Ok(())
    }

    fn visited_nodes(&mut self, enrollment_id: i64) -> Result<Vec<String>> {
        // SQLite's DISTINCT keeps the order of first entry (it reads the steps in rowid
        // order); PostgreSQL's would hash, so the same order is asked for.
        let rows = self.query(
            "SELECT node FROM steps WHERE enrollment_id = $1 AND action = 'entered'
             GROUP BY node ORDER BY MIN(id)",
            &[&enrollment_id],
        )?;
        first_column(&rows)
    }

    fn left_outputs(&mut self, enrollment_id: i64) -> Result<Vec<(String, String)>> {
        let rows = self.query(
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
            Some(at) => self.execute(
                "INSERT INTO trigger_schedule (journey_id, node, contact_id, due_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (journey_id, node, contact_id) DO UPDATE SET due_at = excluded.due_at",
                &[&journey_id, &node, &contact_id, &ms(at)],
            )?,
            None => self.execute(
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
        let scope = self.scope()?;
        let rows = self.query(
            &format!(
                "SELECT journey_id, node, contact_id, due_at FROM trigger_schedule WHERE due_at <= $1
                   AND (contact_id % {PARTITIONS})::SMALLINT = ANY($3)
                 ORDER BY due_at, journey_id, node, contact_id LIMIT $2
                 FOR UPDATE SKIP LOCKED"
            ),
            &[&ms(now), &(limit as i64), &scope],
        )?;
        let due = rows
            .iter()
            .map(|r| {
                Ok((
                    column(r, 0)?,
                    column(r, 1)?,
                    column(r, 2)?,
                    ts(column(r, 3)?),
                ))
            })
            .collect::<Result<Vec<(String, String, i64, Timestamp)>>>()?;
        let delete = self.prepare(
            "DELETE FROM trigger_schedule WHERE journey_id = $1 AND node = $2 AND contact_id = $3",
        )?;
        for (journey, node, contact, _) in &due {
            self.execute(&delete, &[journey, node, contact])?;
        }
        Ok(due)
    }

    fn clear_journey_triggers(&mut self, journey_id: &str) -> Result<()> {
        self.execute(
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
        self.execute(
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
        let scope = self.scope()?;
        let rows = self.query(
            &format!(
                "SELECT id, contact_id, score_trait, points FROM score_expiries WHERE due_at <= $1
                   AND (contact_id % {PARTITIONS})::SMALLINT = ANY($3)
                 ORDER BY due_at, id LIMIT $2
                 FOR UPDATE SKIP LOCKED"
            ),
            &[&ms(now), &(limit as i64), &scope],
        )?;
        let due = rows
            .iter()
            .map(|r| Ok((column(r, 0)?, column(r, 1)?, column(r, 2)?, column(r, 3)?)))
            .collect::<Result<Vec<(i64, i64, String, i64)>>>()?;
        let delete = self
            .tx
            .prepare("DELETE FROM score_expiries WHERE id = $1")?;
        for (id, ..) in &due {
            self.execute(&delete, &[id])?;
        }
        Ok(due.into_iter().map(|(_, c, t, p)| (c, t, p)).collect())
    }
}

impl OutboxTx for PgTx<'_, '_> {
    fn insert_message(&mut self, m: &NewMessage) -> Result<bool> {
        // A repeated idempotency key inserts nothing (and reports false); it uses up an id of
        // the sequence, which only leaves a gap. `$14` is cast where it stands alone in a CASE,
        // which PostgreSQL would otherwise take for text.
        let n = self.execute_aside(
            "INSERT INTO messages (idempotency_key, contact_id, enrollment_id, journey_id, node, template, channel, recipient,
                                   subject, html, text, status, error, next_attempt_at, created_at, failed_at, priority, partition, broadcast_id,
                                   unsubscribe_url)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, CASE WHEN $12 = 'queued' THEN $14::BIGINT END, $14,
                     CASE WHEN $12 IN ('failed', 'bounced') THEN $14::BIGINT END, $15, $16, $17, $18)
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
                // Fixed here: the process holding this partition delivers it, even after a
                // merge moves it to a contact of another partition.
                &partition_of(m.contact_id),
                &m.broadcast_id,
                &m.unsubscribe_url,
            ],
        )?;
        if n == 1
            && let Some(broadcast_id) = &m.broadcast_id
        {
            let (suppressed, failed, bounced) =
                crate::broadcast_sql::written_counts(m.status.as_str());
            self.execute_aside(
                crate::broadcast_sql::ROLLUP_WRITTEN,
                &[
                    broadcast_id,
                    &crate::concerns::rollup_hour(m.created_at),
                    &m.template,
                    &suppressed,
                    &failed,
                    &bounced,
                ],
            )?;
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
        // messages do not count against a cap. SQLite's `COALESCE(json_extract(..), 0) = 0`
        // holds for an absent, null, false or zero `transactional`; so does this.
        let row = self.query_one(
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
        let rows = self.query(
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
        let found = self.query_opt(
            &format!(
                "SELECT 1 FROM messages WHERE enrollment_id = $1 AND node = $2 AND {condition} LIMIT 1"
            ),
            &[&enrollment_id, &node],
        )?;
        Ok(found.is_some())
    }

    fn message_sent_at(&mut self, message_id: i64) -> Result<Option<Timestamp>> {
        let row = self.query_opt("SELECT sent_at FROM messages WHERE id = $1", &[&message_id])?;
        Ok(row
            .map(|r| column::<Option<i64>>(&r, 0))
            .transpose()?
            .flatten()
            .map(ts))
    }

    fn mark_engagement(
        &mut self,
        message_id: i64,
        clicked: bool,
        human: bool,
        at: Timestamp,
    ) -> Result<bool> {
        super::rollups::mark_engagement(self.raw()?, message_id, clicked, human, at)
    }

    fn last_touch(&mut self, enrollment_id: i64, before: Timestamp) -> Result<Option<LastTouch>> {
        let row = self.query_opt(
            "SELECT id, node, sent_at FROM messages
             WHERE enrollment_id = $1 AND status = 'sent' AND sent_at <= $2 AND node IS NOT NULL
             ORDER BY sent_at DESC, id DESC LIMIT 1",
            &[&enrollment_id, &ms(before)],
        )?;
        row.map(|r| {
            Ok(LastTouch {
                message_id: column(&r, 0)?,
                node: column(&r, 1)?,
                sent_at: ts(column(&r, 2)?),
            })
        })
        .transpose()
    }

    fn complain_sent_message(
        &mut self,
        contacts: &[i64],
        channel: &str,
        address: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<Option<i64>> {
        let Some(id) =
            self.last_sent_to(contacts, channel, address, since, &["sent", "bounced"])?
        else {
            return Ok(None);
        };
        let marked = self.execute(
            "UPDATE messages SET complained_at = $2 WHERE id = $1 AND complained_at IS NULL",
            &[&id, &ms(now)],
        )?;
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
        let Some(id) = self.last_sent_to(contacts, channel, address, since, &["sent"])? else {
            return Ok(None);
        };
        self.execute(
            "UPDATE messages SET status = 'bounced', error = $2, failed_at = $3 WHERE id = $1",
            &[&id, &error, &ms(now)],
        )?;
        super::rollups::count_message(self.tx, id, "bounced", 1, Hour::Of(now))?;
        super::rollups::count_message(self.tx, id, "delivered", -1, Hour::Sent)?;
        Ok(Some(id))
    }
}

impl PgTx<'_, '_> {
    /// The last message sent on `channel` to `address` (as the suppression list keeps it) by
    /// one of `contacts` since `since`, with one of `statuses`.
    fn last_sent_to(
        &mut self,
        contacts: &[i64],
        channel: &str,
        address: &str,
        since: Timestamp,
        statuses: &[&str],
    ) -> Result<Option<i64>> {
        // The newest of the contacts' messages, through the index by contact.
        let row = self.query_opt(
            "SELECT MAX(id) FROM messages
             WHERE contact_id = ANY($1) AND channel = $2 AND status = ANY($5)
               AND sent_at >= $3 AND lower(recipient) = $4",
            &[&contacts, &channel, &ms(since), &address, &statuses],
        )?;
        Ok(row
            .map(|r| column::<Option<i64>>(&r, 0))
            .transpose()?
            .flatten())
    }
}

impl AudiencesTx for PgTx<'_, '_> {
    fn in_list(&mut self, contact_id: i64, list: &str) -> Result<bool> {
        let found = self.query_opt(
            "SELECT 1 FROM list_members m JOIN lists l ON l.id = m.list_id
             WHERE l.name = $1 AND m.contact_id = $2",
            &[&list, &contact_id],
        )?;
        Ok(found.is_some())
    }

    fn add_to_list(&mut self, contact_id: i64, list: &str, now: Timestamp) -> Result<bool> {
        let list_id = self.list_id(list, Some(now))?.expect("list just created");
        let n = self.execute(
            "INSERT INTO list_members (list_id, contact_id, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&list_id, &contact_id, &ms(now)],
        )?;
        Ok(n == 1)
    }

    fn remove_from_list(&mut self, contact_id: i64, list: &str) -> Result<bool> {
        let Some(list_id) = self.list_id(list, None)? else {
            return Ok(false);
        };
        let n = self.execute(
            "DELETE FROM list_members WHERE list_id = $1 AND contact_id = $2",
            &[&list_id, &contact_id],
        )?;
        Ok(n == 1)
    }

    fn list_member_ids(&mut self, list: &str, after_id: i64, limit: usize) -> Result<Vec<i64>> {
        let rows = self.query(
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
        let found = self.query_opt(
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
            self.execute(
                "INSERT INTO segment_members (segment_id, contact_id, entered_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&segment_id, &contact_id, &ms(now)],
            )?
        } else {
            self.execute(
                "DELETE FROM segment_members WHERE segment_id = $1 AND contact_id = $2",
                &[&segment_id, &contact_id],
            )?
        };
        if n == 1 {
            let (entered, left) = if member { (1, 0) } else { (0, 1) };
            self.count_segment_change(segment_id, now, entered, left);
        }
        Ok(n == 1)
    }

    fn segment_member_ids(
        &mut self,
        segment_id: &str,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<i64>> {
        let rows = self.query(
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
            Some(at) => self.execute(
                "INSERT INTO segment_checks (segment_id, contact_id, due_at) VALUES ($1, $2, $3)
                 ON CONFLICT (segment_id, contact_id) DO UPDATE SET due_at = excluded.due_at
                 WHERE segment_checks.due_at != excluded.due_at",
                &[&segment_id, &contact_id, &ms(at)],
            )?,
            None => self.execute(
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
        let scope = self.scope()?;
        let rows = self.query(
            &format!(
                "SELECT segment_id, contact_id FROM segment_checks WHERE due_at <= $1
                   AND (contact_id % {PARTITIONS})::SMALLINT = ANY($3)
                 ORDER BY due_at, segment_id, contact_id LIMIT $2
                 FOR UPDATE SKIP LOCKED"
            ),
            &[&ms(now), &(limit as i64), &scope],
        )?;
        let due = rows
            .iter()
            .map(|r| Ok((column(r, 0)?, column(r, 1)?)))
            .collect::<Result<Vec<(String, i64)>>>()?;
        let delete = self
            .tx
            .prepare("DELETE FROM segment_checks WHERE segment_id = $1 AND contact_id = $2")?;
        for (segment, contact) in &due {
            self.execute(&delete, &[segment, contact])?;
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
        self.execute(
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
        let rows = self.query(
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
        self.query_opt(
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
        self.execute(
            "INSERT INTO experiment_winners (journey_id, node, winner, decided_at, verdict)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (journey_id, node) DO NOTHING",
            &[&journey_id, &node, &winner, &ms(now), &verdict.to_string()],
        )?;
        Ok(())
    }
}

impl ConsentTx for PgTx<'_, '_> {
    fn subscriptions(&mut self, contact_id: i64) -> Result<Vec<Subscription>> {
        if let Some(subscriptions) = self.seen.subscriptions.get(&contact_id) {
            return Ok(subscriptions.clone());
        }
        let rows = self.query_aside(
            &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE contact_id = $1 ORDER BY channel, topic"),
            &[&contact_id],
        )?;
        rows.iter().map(subscription_from_row).collect()
    }

    fn set_subscription(&mut self, s: &Subscription) -> Result<Option<String>> {
        self.seen.subscriptions.remove(&s.contact_id);
        let before: Option<String> = self
            .tx
            .query_opt(
                "SELECT status FROM subscriptions WHERE contact_id = $1 AND channel = $2 AND topic = $3",
                &[&s.contact_id, &s.channel, &s.topic],
            )?
            .map(|r| column(&r, 0))
            .transpose()?;
        self.execute(
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
        let normalised = suppression_address(channel, address);
        if let Some(reason) = self
            .seen
            .suppressions
            .get(&(channel.to_string(), normalised))
        {
            return Ok(reason.clone());
        }
        let reasons = self.suppressions_of(channel, &[address])?;
        Ok(reasons.into_iter().next().flatten())
    }

    fn suppress(&mut self, entry: &Suppression) -> Result<bool> {
        self.seen.suppressions.clear();
        super::api::suppress_in(self.tx, entry)
    }

    fn unsuppress(&mut self, channel: &str, address: &str) -> Result<bool> {
        self.seen.suppressions.clear();
        super::api::unsuppress_in(self.tx, channel, address)
    }
}

impl ReportingTx for PgTx<'_, '_> {
    fn add_stats(&mut self, deltas: &StatsDeltas, at: Timestamp) -> Result<()> {
        let stmt = self.prepare(
            "INSERT INTO node_stats (journey_id, version, node, entered, completed, exited, converted, sent, failed, suppressed)
             VALUES ($1, $10, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (journey_id, version, node) DO UPDATE SET
               entered = node_stats.entered + excluded.entered,
               completed = node_stats.completed + excluded.completed,
               exited = node_stats.exited + excluded.exited,
               converted = node_stats.converted + excluded.converted,
               sent = node_stats.sent + excluded.sent,
               failed = node_stats.failed + excluded.failed,
               suppressed = node_stats.suppressed + excluded.suppressed",
        )?;
        let rollup = self.prepare(
            "INSERT INTO journey_rollups (journey_id, hour_at, version, node, entered, completed, exited, converted, sent, failed, suppressed, deferred)
             VALUES ($1, $11, $10, $2, $3, $4, $5, $6, $7, $8, $9, $12)
             ON CONFLICT (journey_id, hour_at, version, node) DO UPDATE SET
               entered = journey_rollups.entered + excluded.entered,
               completed = journey_rollups.completed + excluded.completed,
               exited = journey_rollups.exited + excluded.exited,
               converted = journey_rollups.converted + excluded.converted,
               sent = journey_rollups.sent + excluded.sent,
               failed = journey_rollups.failed + excluded.failed,
               suppressed = journey_rollups.suppressed + excluded.suppressed,
               deferred = journey_rollups.deferred + excluded.deferred",
        )?;
        let outputs = self.prepare(
            "INSERT INTO output_rollups (journey_id, hour_at, version, node, output, count)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (journey_id, hour_at, version, node, output) DO UPDATE SET
               count = output_rollups.count + excluded.count",
        )?;
        let hour = crate::concerns::rollup_hour(at);
        let mut journeys = std::collections::BTreeSet::new();
        for (key, s) in deltas.counters() {
            let (journey, version, node) = key;
            let deferred = deltas.deferred.get(key).copied().unwrap_or(0);
            self.execute_aside(
                &rollup,
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
                    version,
                    &hour,
                    &deferred,
                ],
            )?;
            self.execute_aside(
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
                    version,
                ],
            )?;
            journeys.insert(journey);
        }
        for ((journey, version, node, output), n) in &deltas.outputs {
            self.execute_aside(&outputs, &[journey, &hour, version, node, output, n])?;
        }
        let activity = self.prepare(
            "UPDATE journeys SET first_activity_at = COALESCE(first_activity_at, $2), last_activity_at = $2 WHERE id = $1",
        )?;
        for j in journeys {
            self.execute_aside(&activity, &[j, &ms(at)])?;
        }
        Ok(())
    }

    fn record_conversion(&mut self, conversion: &NewConversion) -> Result<bool> {
        super::rollups::record_conversion(self.raw()?, conversion)
    }
}

impl PrivacyTx for PgTx<'_, '_> {
    fn erase_contact(&mut self, contact_id: i64, now: Timestamp) -> Result<Erasure> {
        self.seen.contacts_changed();
        let segments = self.query(&numbered(ERASURE_LEAVES_SEGMENTS), &[&contact_id])?;
        let segments = segments
            .iter()
            .map(|r| column::<String>(r, 0))
            .collect::<Result<Vec<_>>>()?;
        let erasure = super::privacy::erase(self.raw()?, contact_id, now)?;
        for segment in &segments {
            self.count_segment_change(segment, now, 0, 1);
        }
        Ok(erasure)
    }

    fn record_audit(&mut self, entry: &NewAudit) -> Result<i64> {
        super::privacy::record_audit(self.tx, entry)
    }
}

impl MetaTx for PgTx<'_, '_> {
    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        self.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?
            .map(|r| column(&r, 0))
            .transpose()
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.execute(
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

#[cfg(test)]
mod tests {
    //! Each test runs the same engine transaction on SQLite and on PostgreSQL and asserts the
    //! two answer alike (and, where it matters most, what they answer).

    use std::fmt::Debug;

    use serde_json::json;
    use waymark_core::EnrollmentStatus;

    use super::*;
    use crate::postgres::test_support::TestDatabase;
    use crate::sqlite::SqliteStore;
    use crate::sqlite::test_support::TempDir;
    use crate::{MessageStatus, NodeStats, Priority, Store};

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).unwrap()
    }

    /// A fixture both backends run as is: rows inserted with plain SQL, events appended, and
    /// the query whose rows (one text column) are compared after the work.
    #[derive(Default)]
    struct Fixture<'a> {
        sql: &'a str,
        events: Vec<NewEvent>,
        check: Option<&'a str>,
    }

    fn run<T>(store: &dyn Store, work: &dyn Fn(&mut dyn EngineTx) -> Result<T>) -> T {
        let mut out = None;
        store
            .engine_tx(&mut |tx| {
                out = Some(work(tx)?);
                Ok(())
            })
            .expect("engine transaction");
        out.expect("the work ran")
    }

    /// `work` in one engine transaction on each backend; both answers (and `check` rows)
    /// must print alike. SQLite's answer, or `None` when PostgreSQL is not configured here.
    fn on_both<T: Debug>(
        name: &str,
        fixture: Fixture<'_>,
        work: impl Fn(&mut dyn EngineTx) -> Result<T>,
    ) -> Option<T> {
        let db = TestDatabase::create(name)?;
        let dir = TempDir::new(name);
        let sqlite = SqliteStore::open(&dir.0).expect("open SQLite");
        let pg = db.open();

        sqlite.conn().unwrap().execute_batch(fixture.sql).unwrap();
        pg.conn().unwrap().batch_execute(fixture.sql).unwrap();
        assert_eq!(
            sqlite.append(&fixture.events).unwrap(),
            pg.append(&fixture.events).unwrap()
        );

        let on_sqlite = run(&sqlite, &work);
        let on_pg = run(&pg, &work);
        assert_eq!(format!("{on_sqlite:#?}"), format!("{on_pg:#?}"));

        if let Some(check) = fixture.check {
            let sqlite_rows: Vec<String> = {
                let conn = sqlite.conn().unwrap();
                let mut stmt = conn.prepare(check).unwrap();
                stmt.query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap()
            };
            let pg_rows: Vec<String> = pg
                .conn()
                .unwrap()
                .query(check, &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(sqlite_rows, pg_rows);
        }
        Some(on_sqlite)
    }

    fn event(message_id: &str, name: &str, user_id: Option<&str>, properties: Value) -> NewEvent {
        NewEvent {
            message_id: message_id.into(),
            kind: EventKind::Track,
            name: name.into(),
            user_id: user_id.map(str::to_string),
            anonymous_id: None,
            previous_id: None,
            properties: properties.as_object().cloned().unwrap_or_default(),
            timestamp: t(1_000),
            received_at: t(1_001),
        }
    }

    fn traits(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    const JOURNEYS: &str = "
        INSERT INTO journeys (id, name, status, draft, created_at, updated_at) VALUES ('j-live', 'Live', 'live', '{}', 0, 0);
        INSERT INTO journeys (id, name, status, draft, created_at, updated_at) VALUES ('j-paused', 'Paused', 'paused', '{}', 0, 0);";

    #[test]
    fn contacts_resolve_merge_alias_and_look_up_alike() {
        let outcome = on_both("tx_contacts", Fixture::default(), |tx| {
            let anon = tx.resolve_contact(None, Some("anon-1"), t(10))?;
            let user = tx.resolve_contact(Some("user-1"), None, t(10))?;
            tx.add_to_list(anon, "news", t(10))?;
            tx.add_to_list(user, "news", t(10))?;
            tx.add_to_list(anon, "vip", t(10))?;
            tx.update_traits(
                anon,
                &traits(json!({"email": "Ann@Example.COM", "plan": "pro"})),
                t(11),
            )?;
            tx.update_traits(
                user,
                &traits(json!({"phone": "+1555", "plan": "free"})),
                t(11),
            )?;
            let merged = tx.resolve_contact(Some("user-1"), Some("anon-1"), t(12))?;
            let gone = tx.contact(anon).map_err(|e| e.to_string());
            let renamed = tx.alias("user-1", "user-2", t(13))?;
            let fresh = tx.alias("anon-9", "user-3", t(14))?;
            let again = tx.resolve_contact(Some("user-3"), Some("anon-9"), t(15))?;
            let accented = tx.resolve_contact(Some("user-4"), None, t(16))?;
            tx.update_traits(
                accented,
                &traits(json!({"email": "Élise@Example.org"})),
                t(16),
            )?;
            tx.update_traits(accented, &traits(json!({"nothing": null})), t(17))?;
            Ok((
                (anon, user, merged, renamed, fresh, again),
                gone,
                tx.contact(user)?,
                tx.contact_ids(0, 10)?,
                tx.contact_ids(user, 1)?,
                tx.contacts_with_address("email", "Ann@Example.COM", 10)?,
                tx.contacts_with_address("sms", "+1555", 10)?,
                tx.contacts_with_address("push", "x", 10)?,
                [
                    tx.contact_by_email(" ann@example.com ")?,
                    tx.contact_by_email("ANN@EXAMPLE.COM")?,
                    tx.contact_by_email("Élise@example.ORG")?,
                    // NOCASE folds ASCII only, on both.
                    tx.contact_by_email("élise@example.org")?,
                ],
                (tx.in_list(user, "news")?, tx.in_list(user, "vip")?),
                accented,
            ))
        });
        if let Some(((anon, user, merged, ..), gone, _, _, _, _, _, _, by_email, lists, accented)) =
            outcome
        {
            assert_eq!(merged, user);
            assert_eq!(gone.err(), Some(format!("not found: contact {anon}")));
            assert_eq!(by_email, [Some(user), Some(user), Some(accented), None]);
            assert_eq!(lists, (true, true));
        }
    }

    #[test]
    fn events_read_in_seq_order_after_the_cursor_alike() {
        let fixture = Fixture {
            events: vec![
                event(
                    "m1",
                    "Order Completed",
                    Some("u1"),
                    json!({"products": [{"product_id": "p1"}, {"sku": "p2"}]}),
                ),
                event("m2", "Viewed", Some("u1"), json!({"page": "/"})),
                event(
                    "m3",
                    "Order Completed",
                    Some("u2"),
                    json!({"products": [{"product_id": "p1"}]}),
                ),
            ],
            ..Fixture::default()
        };
        let (all, upto_two, after_cursor, recorded, ..) = on_both("tx_events", fixture, |tx| {
            let all = tx.pending_events(100, 10)?;
            let upto_two = tx.pending_events(2, 10)?;
            let c = tx.resolve_contact(Some("u1"), None, t(5))?;
            tx.set_event_contact(1, c)?;
            tx.set_event_contact(2, c)?;
            tx.set_processed_upto(1)?;
            let after_cursor = tx.pending_events(100, 10)?;
            let engine_event = event("engine-1", "Entered List", None, json!({}));
            let recorded = (
                tx.record_event(c, &engine_event)?,
                tx.record_event(c, &engine_event)?,
            );
            Ok((
                all.iter().map(|e| e.seq).collect::<Vec<_>>(),
                upto_two.iter().map(|e| e.seq).collect::<Vec<_>>(),
                after_cursor,
                recorded,
                tx.events_between(c, "Order Completed", 0, 100)?,
                tx.event(4)?,
                tx.event(99)?,
                tx.contact_order_products(c, 5)?,
                tx.orders_with_products(&["p1".into(), "p2".into()], c, 5)?,
                tx.product_order_counts(&["p1".into(), "p2".into(), "p3".into()], 10)?,
                tx.pending_events(100, 1)?.len(),
            ))
        })
        .unwrap_or_default();
        if all.is_empty() {
            return;
        }
        assert_eq!(all, [1, 2, 3]);
        assert_eq!(upto_two, [1, 2]);
        assert_eq!(
            after_cursor.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(recorded, (true, false));
    }

    #[test]
    fn templates_and_their_versions_read_alike() {
        let fixture = Fixture {
            sql: r#"
                INSERT INTO templates (id, channel, definition, created_at, updated_at, version)
                VALUES ('welcome', 'email', '{"id":"welcome","channel":"email","subject":"Hi again"}', 100, 200, 2);
                INSERT INTO template_versions (template_id, version, definition, created_at)
                VALUES ('welcome', 1, '{"id":"welcome","channel":"email","subject":"Hi"}', 100);
                INSERT INTO template_versions (template_id, version, definition, created_at)
                VALUES ('welcome', 2, '{"id":"welcome","channel":"email","subject":"Hi again"}', 200);
                INSERT INTO templates (id, channel, definition, created_at, updated_at, version)
                VALUES ('broken', 'email', 'not json', 100, 200, 1);"#,
            ..Fixture::default()
        };
        on_both("tx_templates", fixture, |tx| {
            Ok((
                tx.template("welcome")?,
                tx.template("nope")?,
                tx.template_version("welcome", 1)?,
                tx.template_version("welcome", 3)?,
                matches!(tx.template("broken"), Err(StoreError::Corrupt(_))),
            ))
        });
    }

    fn enrollment(journey: &str, contact_id: i64, wake_at: Option<i64>) -> Enrollment {
        Enrollment {
            id: 0,
            journey_id: journey.into(),
            version: 1,
            contact_id,
            key: None,
            node: "start".into(),
            status: EnrollmentStatus::Active,
            wake_at: wake_at.map(t),
            entered_at: t(1),
            entered_seq: 0,
            consumed_seq: 0,
            visits: 1,
        }
    }

    #[test]
    fn due_enrollments_are_claimed_earliest_first_alike() {
        let fixture = Fixture {
            sql: JOURNEYS,
            ..Fixture::default()
        };
        let claimed = on_both("tx_enrollments", fixture, |tx| {
            let mut ids = Vec::new();
            for (journey, wake) in [
                ("j-live", Some(200)),
                ("j-live", Some(100)),
                ("j-live", None),
                ("j-paused", Some(50)),
                ("j-live", Some(100)),
                ("j-live", Some(300)),
            ] {
                ids.push(
                    tx.insert_enrollment(&enrollment(journey, 7, wake), t(1))?
                        .id,
                );
            }
            let mut exited = enrollment("j-live", 7, Some(50));
            exited.status = EnrollmentStatus::Exited;
            exited.key = Some("k".into());
            let exited = tx.insert_enrollment(&exited, t(1))?;
            let claimed = tx.claim_due_enrollments(t(250), 10)?;
            let first_two = tx.claim_due_enrollments(t(250), 2)?;
            let mut moved = claimed[2].clone();
            moved.node = "next".into();
            moved.wake_at = None;
            moved.visits = 2;
            moved.consumed_seq = 9;
            tx.update_enrollment(&moved, t(2))?;
            tx.record_steps(
                moved.id,
                &[
                    StepLog::Entered { node: "b".into() },
                    StepLog::Left {
                        node: "b".into(),
                        output: "yes".into(),
                    },
                    StepLog::Entered { node: "a".into() },
                    StepLog::Waiting {
                        node: "a".into(),
                        until: t(500),
                    },
                    StepLog::Entered { node: "b".into() },
                    StepLog::Left {
                        node: "b".into(),
                        output: "no".into(),
                    },
                    StepLog::Skipped {
                        node: "c".into(),
                        reason: "hours".into(),
                    },
                    StepLog::Ended {
                        node: "b".into(),
                        status: EnrollmentStatus::Converted,
                        reason: "goal".into(),
                    },
                ],
                t(3),
            )?;
            let after_second = tx.journey_enrollments("j-live", 2, ids[1])?;
            Ok((
                ids,
                exited.id,
                claimed.iter().map(|e| e.id).collect::<Vec<_>>(),
                first_two.iter().map(|e| e.id).collect::<Vec<_>>(),
                tx.claim_due_enrollments(t(250), 10)?,
                tx.active_enrollments(7)?,
                tx.journey_enrollments("j-live", 10, 0)?.len(),
                after_second,
                tx.prior_enrollments("j-live", 7)?,
                tx.visited_nodes(moved.id)?,
                tx.left_outputs(moved.id)?,
            ))
        });
        if let Some((ids, _, claimed, first_two, .., visited, left)) = claimed {
            assert_eq!(claimed, [ids[1], ids[4], ids[0]]);
            assert_eq!(first_two, [ids[1], ids[4]]);
            assert_eq!(visited, ["b", "a"]);
            assert_eq!(
                left,
                [
                    ("b".to_string(), "yes".to_string()),
                    ("b".into(), "no".into())
                ]
            );
        }
    }

    #[test]
    fn timers_are_claimed_in_order_once_alike() {
        let claimed = on_both("tx_timers", Fixture::default(), |tx| {
            tx.set_trigger_due("j1", "n1", 1, Some(t(200)))?;
            tx.set_trigger_due("j1", "n0", 2, Some(t(100)))?;
            tx.set_trigger_due("j0", "n1", 3, Some(t(100)))?;
            tx.set_trigger_due("J9", "n1", 3, Some(t(100)))?;
            tx.set_trigger_due("j1", "n1", 4, None)?;
            tx.set_trigger_due("j1", "n1", 1, Some(t(150)))?;
            tx.set_trigger_due("j2", "n", 5, Some(t(400)))?;
            tx.set_trigger_due("j2", "n", 6, Some(t(100)))?;
            tx.set_trigger_due("j2", "n", 6, None)?;
            let triggers = tx.claim_due_triggers(t(250), 10)?;
            let again = tx.claim_due_triggers(t(250), 10)?;
            tx.clear_journey_triggers("j2")?;
            let cleared = tx.claim_due_triggers(t(1_000), 10)?;
            tx.add_score_expiry(1, "score", 5, t(300))?;
            tx.add_score_expiry(2, "score", 3, t(100))?;
            tx.add_score_expiry(1, "other", 2, t(300))?;
            tx.add_score_expiry(3, "score", 1, t(900))?;
            let expiries = tx.claim_due_score_expiries(t(300), 2)?;
            let rest = tx.claim_due_score_expiries(t(300), 10)?;
            Ok((triggers, again, cleared, expiries, rest))
        });
        if let Some((triggers, again, ..)) = claimed {
            let order: Vec<_> = triggers
                .iter()
                .map(|(j, n, c, _)| format!("{j}/{n}/{c}"))
                .collect();
            assert_eq!(order, ["J9/n1/3", "j0/n1/3", "j1/n0/2", "j1/n1/1"]);
            assert!(again.is_empty());
        }
    }

    fn message(key: &str, template: &str, status: MessageStatus) -> NewMessage {
        NewMessage {
            idempotency_key: key.into(),
            contact_id: 7,
            enrollment_id: Some(70),
            journey_id: Some("j1".into()),
            node: Some("n1".into()),
            template: template.into(),
            channel: "email".into(),
            recipient: Some("ann@example.com".into()),
            subject: Some("Hi".into()),
            html: None,
            text: Some("Hello".into()),
            status,
            error: None,
            created_at: t(1_000),
            priority: Priority::Journey,
            broadcast_id: None,
            unsubscribe_url: None,
        }
    }

    #[test]
    fn messages_are_queued_once_per_key_and_engagement_counts_alike() {
        let fixture = Fixture {
            sql: r#"
                INSERT INTO templates (id, channel, definition, created_at, updated_at, version)
                VALUES ('promo', 'email', '{"id":"promo","channel":"email"}', 0, 0, 1);
                INSERT INTO templates (id, channel, definition, created_at, updated_at, version)
                VALUES ('receipt', 'email', '{"id":"receipt","channel":"email","transactional":true}', 0, 0, 1);"#,
            check: Some(
                "SELECT journey_id || '/' || node || ' opened ' || opened || ' clicked ' || clicked
                 FROM node_stats ORDER BY journey_id, node",
            ),
            ..Fixture::default()
        };
        let outcome = on_both("tx_outbox", fixture, |tx| {
            let mut with_link = message("k1", "promo", MessageStatus::Queued);
            with_link.unsubscribe_url = Some("https://example.com/u".into());
            let inserted = [
                tx.insert_message(&with_link)?,
                tx.insert_message(&message("k2", "receipt", MessageStatus::Sent))?,
                tx.insert_message(&message("k3", "promo", MessageStatus::Failed))?,
                tx.insert_message(&message("k4", "promo", MessageStatus::Sent))?,
                tx.insert_message(&message("k1", "receipt", MessageStatus::Sent))?,
            ];
            let before = [
                tx.message_engaged(70, "n1", Engagement::Sent)?,
                tx.message_engaged(70, "n1", Engagement::Opened)?,
                tx.message_engaged(70, "n2", Engagement::Sent)?,
            ];
            let marked = [
                tx.mark_engagement(4, false, true, t(2_000))?,
                tx.mark_engagement(4, false, true, t(2_100))?,
                tx.mark_engagement(1, true, true, t(2_200))?,
                tx.mark_engagement(1, true, true, t(2_300))?,
                tx.mark_engagement(999, true, true, t(2_300))?,
            ];
            Ok((
                inserted,
                tx.count_marketing_messages(7, "email", t(0))?,
                tx.count_marketing_messages(7, "email", t(1_001))?,
                before,
                marked,
                [
                    tx.message_engaged(70, "n1", Engagement::Opened)?,
                    tx.message_engaged(70, "n1", Engagement::Clicked)?,
                ],
                tx.contact_messages(7)?,
            ))
        });
        if let Some((inserted, marketing, ..)) = outcome {
            assert_eq!(inserted, [true, true, true, true, false]);
            assert_eq!(marketing, 2);
        }
    }

    #[test]
    fn lists_segments_and_segment_checks_alike() {
        let fixture = Fixture {
            sql: r#"
                INSERT INTO segments (id, name, condition, created_at, updated_at) VALUES ('s2', 'Two', '{"trait":"plan"}', 0, 0);
                INSERT INTO segments (id, name, condition, created_at, updated_at) VALUES ('s1', 'One', 'not json', 0, 0);"#,
            ..Fixture::default()
        };
        on_both("tx_audiences", fixture, |tx| {
            let added = [
                tx.add_to_list(1, "a", t(1))?,
                tx.add_to_list(1, "a", t(2))?,
                tx.add_to_list(3, "a", t(2))?,
                tx.add_to_list(2, "a", t(2))?,
            ];
            let members = (
                tx.list_member_ids("a", 0, 10)?,
                tx.list_member_ids("a", 1, 1)?,
            );
            let removed = [
                tx.remove_from_list(1, "a")?,
                tx.remove_from_list(1, "a")?,
                tx.remove_from_list(1, "none")?,
            ];
            let segment = [
                tx.set_segment_member("s1", 5, true, t(1))?,
                tx.set_segment_member("s1", 5, true, t(1))?,
                tx.set_segment_member("s1", 4, true, t(1))?,
                tx.set_segment_member("s1", 4, false, t(1))?,
                tx.set_segment_member("s1", 4, false, t(1))?,
            ];
            tx.set_segment_check("s1", 1, Some(t(200)))?;
            tx.set_segment_check("s1", 2, Some(t(100)))?;
            tx.set_segment_check("s0", 3, Some(t(100)))?;
            tx.set_segment_check("s1", 1, Some(t(150)))?;
            tx.set_segment_check("s1", 1, Some(t(150)))?;
            tx.set_segment_check("s0", 9, Some(t(1)))?;
            tx.set_segment_check("s0", 9, None)?;
            tx.set_segment_check("s9", 9, Some(t(900)))?;
            Ok((
                added,
                members,
                removed,
                (
                    tx.in_list(1, "a")?,
                    tx.in_list(2, "a")?,
                    tx.in_list(2, "b")?,
                ),
                tx.segment_definitions()?,
                segment,
                (
                    tx.is_segment_member("s1", 5)?,
                    tx.is_segment_member("s1", 4)?,
                ),
                tx.segment_member_ids("s1", 0, 10)?,
                tx.claim_due_segment_checks(t(250), 10)?,
                tx.claim_due_segment_checks(t(250), 10)?,
            ))
        });
    }

    #[test]
    fn experiments_consent_reporting_and_meta_alike() {
        let fixture = Fixture {
            sql: JOURNEYS,
            check: Some(
                "SELECT n.journey_id || '/' || n.node || ' ' || n.entered || ' ' || n.completed || ' ' || n.exited
                        || ' ' || n.converted || ' ' || n.sent || ' ' || n.failed || ' ' || n.suppressed
                        || ' first ' || COALESCE(j.first_activity_at, -1) || ' last ' || COALESCE(j.last_activity_at, -1)
                 FROM node_stats n LEFT JOIN journeys j ON j.id = n.journey_id ORDER BY n.journey_id, n.node",
            ),
            ..Fixture::default()
        };
        on_both("tx_misc", fixture, |tx| {
            tx.add_experiment_counts("j-live", "split", "b", 3, 1)?;
            tx.add_experiment_counts("j-live", "split", "a", 2, 0)?;
            tx.add_experiment_counts("j-live", "split", "B", 1, 1)?;
            tx.add_experiment_counts("j-live", "split", "b", 1, 1)?;
            let no_winner = tx.experiment_winner("j-live", "split")?;
            tx.set_experiment_winner("j-live", "split", "b", &json!({"p": 0.01}), t(5))?;
            tx.set_experiment_winner("j-live", "split", "a", &json!({}), t(6))?;

            let subscription = |channel: &str, topic: &str, status: &str, at: i64| Subscription {
                contact_id: 7,
                channel: channel.into(),
                topic: topic.into(),
                status: status.into(),
                updated_at: t(at),
            };
            let before = [
                tx.set_subscription(&subscription("email", "*", "subscribed", 1))?,
                tx.set_subscription(&subscription("email", "*", "unsubscribed", 2))?,
                tx.set_subscription(&subscription("sms", "*", "subscribed", 3))?,
                tx.set_subscription(&subscription("email", "news", "pending", 4))?,
            ];
            let bounce = Suppression {
                channel: "email".into(),
                address: " Ann@Example.com ".into(),
                reason: "bounced".into(),
                source: "smtp".into(),
                created_at: t(9),
            };
            let suppressed = [tx.suppress(&bounce)?, tx.suppress(&bounce)?];

            let mut deltas = StatsDeltas::default();
            *deltas.node("j-live", 1, "start") = NodeStats {
                entered: 2,
                completed: 1,
                sent: 1,
                ..NodeStats::default()
            };
            deltas.node("j-paused", 1, "wait").exited = 1;
            deltas.node("j-gone", 1, "x").failed = 1;
            tx.add_stats(&deltas, t(50))?;
            deltas.node("j-live", 1, "start").suppressed = 4;
            tx.add_stats(&deltas, t(60))?;

            let meta_before = tx.meta("k")?;
            tx.set_meta("k", "1")?;
            tx.set_meta("k", "2")?;
            Ok((
                tx.experiment_counts("j-live", "split")?,
                tx.experiment_counts("j-live", "other")?,
                no_winner,
                tx.experiment_winner("j-live", "split")?,
                before,
                tx.subscriptions(7)?,
                tx.subscriptions(8)?,
                suppressed,
                tx.suppression("email", "ann@example.COM")?,
                (meta_before, tx.meta("k")?),
            ))
        });
    }

    /// Two processes' engines claiming at once: the second skips what the first holds
    /// instead of firing it twice.
    #[test]
    fn a_claim_skips_timers_another_transaction_holds() {
        let Some(db) = TestDatabase::create("tx_claim_skip") else {
            return;
        };
        let store = db.open();
        store
            .write(|tx| {
                let mut prepared = Prepared::default();
                let mut tx = PgTx::new(tx, &mut prepared, None);
                tx.set_trigger_due("j", "n", 1, Some(t(100)))?;
                tx.set_trigger_due("j", "n", 2, Some(t(200)))?;
                Ok(())
            })
            .unwrap();
        let mut first_conn = store.conn().unwrap();
        let mut second_conn = store.conn().unwrap();
        let mut first = first_conn.transaction().unwrap();
        let mut second = second_conn.transaction().unwrap();
        let (mut first_prepared, mut second_prepared) = (Prepared::default(), Prepared::default());
        let a = PgTx::new(&mut first, &mut first_prepared, None)
            .claim_due_triggers(t(1_000), 1)
            .unwrap();
        let b = PgTx::new(&mut second, &mut second_prepared, None)
            .claim_due_triggers(t(1_000), 10)
            .unwrap();
        assert_eq!(a.iter().map(|d| d.2).collect::<Vec<_>>(), [1]);
        assert_eq!(b.iter().map(|d| d.2).collect::<Vec<_>>(), [2]);
        first.commit().unwrap();
        second.commit().unwrap();
    }
}
