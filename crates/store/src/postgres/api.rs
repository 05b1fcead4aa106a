//! The `Store` concern traits on PostgreSQL, one impl block per trait in the order of
//! `crate::concerns`: each call its own unit of work. A side-by-side port of `sqlite::api`.

use std::collections::BTreeMap;

use ::postgres::types::ToSql;
use ::postgres::{Client, GenericClient, Row, Transaction};
use jiff::Timestamp;
use serde_json::Value;
use waymark_core::journey::{Channel, TemplateDefinition};

use super::cluster::PARTITIONS;
use super::rollups::Hour;
use super::tx::{CONTACT_COLUMNS, EVENT_COLUMNS, column, contact_from_row, event_from_row};
use super::{PgStore, ms, outside_async, ts};
use crate::contact_sql::{self, Arg, Dialect};
use crate::*;

/// Column `i`, a time in milliseconds, or none.
fn opt_ts(r: &Row, i: usize) -> Result<Option<Timestamp>> {
    Ok(column::<Option<i64>>(r, i)?.map(ts))
}

/// The parameters of a statement built at run time, as the driver takes them.
fn param_refs(args: &[Box<dyn ToSql + Sync>]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a.as_ref()).collect()
}

/// `CONTACT_COLUMNS` of the contacts table aliased `c`.
fn contact_columns_of_c() -> String {
    CONTACT_COLUMNS
        .split(", ")
        .map(|c| format!("c.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn template_row(
    conn: &mut impl GenericClient,
    id: &str,
) -> Result<Option<StoredTemplate>> {
    conn.query_opt(
        "SELECT definition, version, created_at, updated_at FROM templates WHERE id = $1",
        &[&id],
    )?
    .map(|r| template_from_row(&r))
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
    .map(|r| template_from_row(&r))
    .transpose()
}

/// A template row (SQLite reads it in two steps, as its row closures cannot fail with a JSON
/// error; here a row function returns any `StoreError`).
fn template_from_row(r: &Row) -> Result<StoredTemplate> {
    let definition: String = column(r, 0)?;
    Ok(StoredTemplate {
        definition: serde_json::from_str(&definition)?,
        version: column(r, 1)?,
        created_at: ts(column(r, 2)?),
        updated_at: ts(column(r, 3)?),
    })
}

/// The template versions a journey version pinned when it was published.
fn pinned_templates(
    conn: &mut Client,
    journey_id: &str,
    version: i64,
) -> Result<BTreeMap<String, i64>> {
    conn.query(
        "SELECT template_id, template_version FROM journey_version_templates
         WHERE journey_id = $1 AND version = $2",
        &[&journey_id, &version],
    )?
    .iter()
    .map(|r| Ok((column(r, 0)?, column(r, 1)?)))
    .collect()
}

/// Fills each version's pinned templates.
fn with_pins(conn: &mut Client, mut versions: Vec<JourneyVersion>) -> Result<Vec<JourneyVersion>> {
    for v in &mut versions {
        v.templates = pinned_templates(conn, &v.journey_id, v.version)?;
    }
    Ok(versions)
}

/// Records a batch of delivery outcomes in a few statements, whatever the batch's size: the
/// recorder holds the process's writer turn meanwhile, and the engine waits for it.
fn finish_batch(
    tx: &mut Transaction<'_>,
    prepared: &mut super::Prepared,
    finished: &[Finished],
) -> Result<()> {
    // Deferred: not attempted; only its next attempt moves.
    let (deferred, deferred_at): (Vec<i64>, Vec<i64>) = finished
        .iter()
        .filter_map(|f| match f.outcome {
            DeliveryOutcome::Deferred { at } => Some((f.id, ms(at))),
            _ => None,
        })
        .unzip();
    if !deferred.is_empty() {
        let statement = prepared.get(
            tx,
            "UPDATE messages m SET next_attempt_at = v.at
             FROM unnest($1::BIGINT[], $2::BIGINT[]) AS v(id, at)
             WHERE m.id = v.id AND m.status = 'queued'",
        )?;
        tx.execute(&statement, &[&deferred, &deferred_at])?;
    }
    let mut ids = Vec::new();
    let mut statuses = Vec::new();
    let mut errors: Vec<Option<&str>> = Vec::new();
    let mut nexts: Vec<Option<i64>> = Vec::new();
    let mut ats = Vec::new();
    let mut hard_bounces = std::collections::HashSet::new();
    for f in finished {
        let (status, error, next) = match &f.outcome {
            DeliveryOutcome::Sent => ("sent", None, None),
            DeliveryOutcome::Retry { error, at } => ("queued", Some(error.as_str()), Some(ms(*at))),
            DeliveryOutcome::Deferred { .. } => continue,
            DeliveryOutcome::Failed { error } => ("failed", Some(error.as_str()), None),
            DeliveryOutcome::Bounced { error, hard_bounce } => {
                if *hard_bounce {
                    hard_bounces.insert(f.id);
                }
                ("bounced", Some(error.as_str()), None)
            }
        };
        ids.push(f.id);
        statuses.push(status);
        errors.push(error);
        nexts.push(next);
        ats.push(ms(f.at));
    }
    if ids.is_empty() {
        return Ok(());
    }
    // Only a message still queued takes its outcome (one recorded already is left as it is),
    // or one a broadcast's pause or cancel held while it was on its way: what happened to it
    // is recorded, except that a retry leaves it held.
    let statement = prepared.get(
        tx,
        "UPDATE messages m SET status = CASE WHEN v.status = 'queued' THEN m.status ELSE v.status END,
                error = v.error, next_attempt_at = v.next,
                attempts = m.attempts + 1,
                sent_at = CASE WHEN v.status = 'sent' THEN v.at ELSE m.sent_at END,
                failed_at = CASE WHEN v.status IN ('failed', 'bounced') THEN v.at ELSE m.failed_at END,
                first_attempt_at = COALESCE(m.first_attempt_at, v.at)
         FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[])
              AS v(id, status, error, next, at)
         WHERE m.id = v.id AND m.status IN ('queued', 'paused', 'cancelled')
         RETURNING m.id, m.journey_id, m.node, v.status, m.channel, m.recipient, v.at,
                   (SELECT e.version FROM enrollments e WHERE e.id = m.enrollment_id),
                   m.broadcast_id, m.template",
    )?;
    let changed = tx.query(&statement, &[&ids, &statuses, &errors, &nexts, &ats])?;
    // Node statistics per journey version and node: sent (and delivered), or failed (a
    // bounce did not arrive either, and is counted bounced too).
    // (sent, failed, bounced) per (journey, version, node), and per (journey, hour, version,
    // node) for the roll-ups.
    type Sent = (i64, i64, i64);
    let mut counts: BTreeMap<(String, i64, String), Sent> = BTreeMap::new();
    let mut hourly: BTreeMap<(String, i64, i64, String), Sent> = BTreeMap::new();
    let mut suppress: Vec<(String, String, i64)> = Vec::new();
    // (sent, failed, bounced) per (broadcast, hour, template).
    let mut broadcasts: BTreeMap<(String, i64, String), Sent> = BTreeMap::new();
    for row in &changed {
        let id: i64 = column(row, 0)?;
        let status: String = column(row, 3)?;
        if let Some(broadcast) = column::<Option<String>>(row, 8)? {
            let hour = crate::concerns::rollup_hour(ts(column(row, 6)?));
            let c = broadcasts
                .entry((broadcast, hour, column(row, 9)?))
                .or_default();
            match status.as_str() {
                "sent" => c.0 += 1,
                "failed" => c.1 += 1,
                "bounced" => {
                    c.1 += 1;
                    c.2 += 1;
                }
                _ => {}
            }
        }
        if let (Some(journey), Some(node)) = (
            column::<Option<String>>(row, 1)?,
            column::<Option<String>>(row, 2)?,
        ) {
            let version = column::<Option<i64>>(row, 7)?.unwrap_or(0);
            let hour = crate::concerns::rollup_hour(ts(column(row, 6)?));
            let (sent, failed, bounced) = match status.as_str() {
                "sent" => (1, 0, 0),
                "failed" => (0, 1, 0),
                "bounced" => (0, 1, 1),
                _ => (0, 0, 0),
            };
            for count in [
                counts
                    .entry((journey.clone(), version, node.clone()))
                    .or_default(),
                hourly.entry((journey, hour, version, node)).or_default(),
            ] {
                count.0 += sent;
                count.1 += failed;
                count.2 += bounced;
            }
        }
        if hard_bounces.contains(&id)
            && let Some(recipient) = column::<Option<String>>(row, 5)?
        {
            suppress.push((column(row, 4)?, recipient, column(row, 6)?));
        }
    }
    // Once per broadcast template and hour, in key order.
    broadcasts.retain(|_, (sent, failed, _)| *sent + *failed > 0);
    if !broadcasts.is_empty() {
        let statement = prepared.get(tx, crate::broadcast_sql::ROLLUP_OUTCOMES)?;
        for ((broadcast, hour, template), (sent, failed, bounced)) in &broadcasts {
            tx.execute(
                &statement,
                &[broadcast, hour, template, sent, failed, bounced],
            )?;
        }
    }
    counts.retain(|_, (sent, failed, _)| *sent + *failed > 0);
    if !counts.is_empty() {
        // In (journey, version, node) order, as the engine's own counters are added, so that
        // the two never wait for each other's rows in opposite orders.
        let (mut journeys, mut versions, mut nodes) = (Vec::new(), Vec::new(), Vec::new());
        let (mut sent, mut failed, mut bounced) = (Vec::new(), Vec::new(), Vec::new());
        for ((journey, version, node), (s, f, b)) in counts {
            journeys.push(journey);
            versions.push(version);
            nodes.push(node);
            sent.push(s);
            failed.push(f);
            bounced.push(b);
        }
        // The counters are qualified: on PostgreSQL a bare column in DO UPDATE could also name
        // the proposed row's. What is sent is delivered until a bounce says otherwise.
        let statement = prepared.get(
            tx,
            "INSERT INTO node_stats (journey_id, version, node, sent, delivered, failed, bounced)
             SELECT j, v, n, s, s, f, b
             FROM unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[])
                  AS u(j, v, n, s, f, b)
             ON CONFLICT (journey_id, version, node) DO UPDATE
             SET sent = node_stats.sent + excluded.sent,
                 delivered = node_stats.delivered + excluded.delivered,
                 failed = node_stats.failed + excluded.failed,
                 bounced = node_stats.bounced + excluded.bounced",
        )?;
        tx.execute(
            &statement,
            &[&journeys, &versions, &nodes, &sent, &failed, &bounced],
        )?;
    }
    hourly.retain(|_, (sent, failed, _)| *sent + *failed > 0);
    if !hourly.is_empty() {
        let (mut journeys, mut hours, mut versions, mut nodes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut sent, mut failed, mut bounced) = (Vec::new(), Vec::new(), Vec::new());
        for ((journey, hour, version, node), (s, f, b)) in hourly {
            journeys.push(journey);
            hours.push(hour);
            versions.push(version);
            nodes.push(node);
            sent.push(s);
            failed.push(f);
            bounced.push(b);
        }
        let statement = prepared.get(
            tx,
            "INSERT INTO journey_rollups (journey_id, hour_at, version, node, sent, delivered, failed, bounced)
             SELECT j, h, v, n, s, s, f, b
             FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[],
                         $6::BIGINT[], $7::BIGINT[])
                  AS u(j, h, v, n, s, f, b)
             ON CONFLICT (journey_id, hour_at, version, node) DO UPDATE
             SET sent = journey_rollups.sent + excluded.sent,
                 delivered = journey_rollups.delivered + excluded.delivered,
                 failed = journey_rollups.failed + excluded.failed,
                 bounced = journey_rollups.bounced + excluded.bounced",
        )?;
        tx.execute(
            &statement,
            &[
                &journeys, &hours, &versions, &nodes, &sent, &failed, &bounced,
            ],
        )?;
    }
    for (channel, recipient, at) in suppress {
        tx.execute(
            "INSERT INTO suppressions (channel, address, reason, source, created_at)
             VALUES ($1, $2, 'hard_bounce', 'smtp', $3)
             ON CONFLICT (channel, address) DO UPDATE SET reason = excluded.reason, source = excluded.source",
            &[&channel, &recipient, &at],
        )?;
    }
    Ok(())
}

const MESSAGE_COLUMNS: &str = "m.id, m.idempotency_key, m.contact_id, c.user_id, m.enrollment_id, m.journey_id, m.node, m.template,
     m.channel, m.recipient, m.subject, m.html, m.text, m.status, m.error, m.attempts, m.next_attempt_at, m.created_at,
     m.sent_at, m.opened_at, m.clicked_at, m.unsubscribe_url, m.first_attempt_at, m.failed_at, m.requeued_at, m.priority,
     m.broadcast_id";

fn message_from_row(r: &Row) -> Result<MessageRow> {
    Ok(MessageRow {
        id: column(r, 0)?,
        idempotency_key: column(r, 1)?,
        contact_id: column(r, 2)?,
        user_id: column(r, 3)?,
        enrollment_id: column(r, 4)?,
        journey_id: column(r, 5)?,
        node: column(r, 6)?,
        template: column(r, 7)?,
        channel: column(r, 8)?,
        recipient: column(r, 9)?,
        subject: column(r, 10)?,
        html: column(r, 11)?,
        text: column(r, 12)?,
        status: column(r, 13)?,
        error: column(r, 14)?,
        attempts: column(r, 15)?,
        next_attempt_at: opt_ts(r, 16)?,
        created_at: ts(column(r, 17)?),
        sent_at: opt_ts(r, 18)?,
        opened_at: opt_ts(r, 19)?,
        clicked_at: opt_ts(r, 20)?,
        unsubscribe_url: column(r, 21)?,
        first_attempt_at: opt_ts(r, 22)?,
        failed_at: opt_ts(r, 23)?,
        requeued_at: opt_ts(r, 24)?,
        priority: Priority::from_i64(column(r, 25)?),
        broadcast_id: column(r, 26)?,
    })
}

const JOURNEY_COLUMNS: &str =
    "j.id, j.name, j.status, j.live_version, j.draft, j.created_at, j.updated_at,
     j.first_activity_at, j.last_activity_at,
     (SELECT COUNT(*) FROM enrollments e WHERE e.journey_id = j.id),
     (SELECT COUNT(*) FROM enrollments e WHERE e.journey_id = j.id AND e.status = 'active'),
     (SELECT COUNT(*) FROM conversions c WHERE c.journey_id = j.id)";

fn journey_from_row(r: &Row) -> Result<JourneyRow> {
    let status: String = column(r, 2)?;
    let draft: String = column(r, 4)?;
    Ok(JourneyRow {
        id: column(r, 0)?,
        name: column(r, 1)?,
        status: JourneyStatus::parse(&status).unwrap_or(JourneyStatus::Draft),
        live_version: column(r, 3)?,
        draft: serde_json::from_str(&draft).unwrap_or(Value::Null),
        created_at: ts(column(r, 5)?),
        updated_at: ts(column(r, 6)?),
        first_activity_at: opt_ts(r, 7)?,
        last_activity_at: opt_ts(r, 8)?,
        entered: column(r, 9)?,
        active: column(r, 10)?,
        converted: column(r, 11)?,
    })
}

fn version_from_row(r: &Row) -> Result<JourneyVersion> {
    let doc: String = column(r, 2)?;
    Ok(JourneyVersion {
        journey_id: column(r, 0)?,
        version: column(r, 1)?,
        document: serde_json::from_str(&doc).unwrap_or(Value::Null),
        published_at: ts(column(r, 3)?),
        // Filled by `with_pins`.
        templates: BTreeMap::new(),
    })
}

/// A segment row (in one step: see `template_from_row`).
fn segment_from_row(r: &Row) -> Result<SegmentRow> {
    let condition: String = column(r, 2)?;
    Ok(SegmentRow {
        id: column(r, 0)?,
        name: column(r, 1)?,
        // Unreadable: null, which the API reports as a broken segment.
        condition: serde_json::from_str(&condition).unwrap_or(Value::Null),
        created_at: ts(column(r, 3)?),
        updated_at: ts(column(r, 4)?),
        members: column(r, 5)?,
    })
}

impl PgStore {
    fn journey_in(&self, conn: &mut Client, id: &str) -> Result<JourneyRow> {
        conn.query_opt(
            &format!("SELECT {JOURNEY_COLUMNS} FROM journeys j WHERE j.id = $1"),
            &[&id],
        )?
        .ok_or_else(|| StoreError::NotFound(format!("journey `{id}`")))
        .and_then(|r| journey_from_row(&r))
    }
}

impl Store for PgStore {
    fn engine_tx(&self, work: &mut dyn FnMut(&mut dyn EngineTx) -> Result<()>) -> Result<()> {
        self.run_engine_tx(work)
    }
}

impl Contacts for PgStore {
    fn contact(&self, id: i64) -> Result<ContactDetail> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let contact = conn
                .query_opt(
                    &format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1"),
                    &[&id],
                )?
                .ok_or_else(|| StoreError::NotFound(format!("contact {id}")))
                .and_then(|r| contact_from_row(&r))?;
            let anonymous_ids = conn
                .query(
                    "SELECT anonymous_id FROM anonymous_ids WHERE contact_id = $1 ORDER BY anonymous_id",
                    &[&id],
                )?
                .iter()
                .map(|r| column(r, 0))
                .collect::<Result<_>>()?;
            let lists = conn
                .query(
                    "SELECT l.name FROM list_members m JOIN lists l ON l.id = m.list_id WHERE m.contact_id = $1 ORDER BY l.name",
                    &[&id],
                )?
                .iter()
                .map(|r| column(r, 0))
                .collect::<Result<_>>()?;
            let enrollments = conn
                .query(
                    "SELECT id, journey_id, version, key, node, status, wake_at, entered_at, updated_at
                     FROM enrollments WHERE contact_id = $1 ORDER BY id",
                    &[&id],
                )?
                .iter()
                .map(|r| {
                    Ok(EnrollmentRow {
                        id: column(r, 0)?,
                        journey_id: column(r, 1)?,
                        version: column(r, 2)?,
                        key: column(r, 3)?,
                        node: column(r, 4)?,
                        status: column(r, 5)?,
                        wake_at: opt_ts(r, 6)?,
                        entered_at: ts(column(r, 7)?),
                        updated_at: ts(column(r, 8)?),
                    })
                })
                .collect::<Result<_>>()?;
            Ok(ContactDetail {
                contact,
                anonymous_ids,
                lists,
                enrollments,
            })
        })
    }

    fn find_contacts(&self, q: &ContactQuery) -> Result<Vec<Contact>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let search = contact_sql::find_contacts(Dialect::Postgres, CONTACT_COLUMNS, q);
            let args: Vec<Box<dyn ToSql + Sync>> = search
                .args
                .into_iter()
                .map(|a| -> Box<dyn ToSql + Sync> {
                    match a {
                        Arg::Int(i) => Box::new(i),
                        Arg::Real(r) => Box::new(r),
                        Arg::Text(t) => Box::new(t),
                    }
                })
                .collect();
            conn.query(&search.sql, &param_refs(&args))?
                .iter()
                .map(contact_from_row)
                .collect()
        })
    }

    fn timeline(&self, contact_id: i64, limit: usize) -> Result<Vec<TimelineEntry>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let limit = limit.clamp(1, 10_000) as i64;
            let mut entries: Vec<TimelineEntry> = Vec::new();
            let start = entries.len();
            for r in conn.query(
                "SELECT seq, kind, name, properties, timestamp FROM events WHERE contact_id = $1 ORDER BY seq DESC LIMIT $2",
                &[&contact_id, &limit],
            )? {
                let props: String = column(&r, 3)?;
                entries.push(TimelineEntry::Event {
                    seq: column(&r, 0)?,
                    kind: column(&r, 1)?,
                    name: column(&r, 2)?,
                    properties: serde_json::from_str(&props).unwrap_or(Value::Null),
                    at: ts(column(&r, 4)?),
                });
            }
            // Read newest first (for the limit); put back in the order they happened.
            entries[start..].reverse();
            let start = entries.len();
            for r in conn.query(
                "SELECT s.at, e.journey_id, s.enrollment_id, s.node, s.action, s.detail
                 FROM steps s JOIN enrollments e ON e.id = s.enrollment_id
                 WHERE e.contact_id = $1 ORDER BY s.id DESC LIMIT $2",
                &[&contact_id, &limit],
            )? {
                let detail: Option<String> = column(&r, 5)?;
                entries.push(TimelineEntry::Step {
                    at: ts(column(&r, 0)?),
                    journey_id: column(&r, 1)?,
                    enrollment_id: column(&r, 2)?,
                    node: column(&r, 3)?,
                    action: column(&r, 4)?,
                    detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                });
            }
            // Read newest first (for the limit); put back in the order they happened.
            entries[start..].reverse();
            let start = entries.len();
            for r in conn.query(
                "SELECT id, created_at, channel, journey_id, node, template, status, subject, error
                 FROM messages WHERE contact_id = $1 ORDER BY id DESC LIMIT $2",
                &[&contact_id, &limit],
            )? {
                entries.push(TimelineEntry::Message {
                    message_id: column(&r, 0)?,
                    at: ts(column(&r, 1)?),
                    channel: column(&r, 2)?,
                    journey_id: column(&r, 3)?,
                    node: column(&r, 4)?,
                    template: column(&r, 5)?,
                    status: column(&r, 6)?,
                    subject: column(&r, 7)?,
                    error: column(&r, 8)?,
                });
            }
            // Read newest first (for the limit); put back in the order they happened.
            entries[start..].reverse();
            Ok(TimelineEntry::newest_in_order(entries, limit as usize))
        })
    }
}

impl Events for PgStore {
    fn append_events(&self, events: &[NewEvent]) -> Result<Vec<bool>> {
        self.append(events)
    }

    fn pending_event_count(&self) -> Result<i64> {
        outside_async(|| {
            let mut conn = self.conn()?;
            column(
                &conn.query_one(
                    "SELECT COUNT(*) FROM partition_cursors c
                     JOIN events e ON e.partition = c.partition AND e.seq > c.processed_seq",
                    &[],
                )?,
                0,
            )
        })
    }

    fn last_event_seq(&self) -> Result<i64> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let statement = conn.statement("SELECT COALESCE(MAX(seq), 0) FROM events")?;
            column(&conn.query_one(&statement, &[])?, 0)
        })
    }

    fn events_received(
        &self,
        since: Timestamp,
        until: Timestamp,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let statement = conn.statement(&format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE seq > $1 AND received_at >= $2 AND received_at < $3 ORDER BY seq LIMIT $4"
            ))?;
            conn.query(
                &statement,
                &[&after_seq, &ms(since), &ms(until), &(limit as i64)],
            )?
            .iter()
            .map(event_from_row)
            .collect()
        })
    }
}

impl Journeys for PgStore {
    fn journeys(&self) -> Result<Vec<JourneyRow>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            conn.query(
                &format!("SELECT {JOURNEY_COLUMNS} FROM journeys j ORDER BY j.created_at, j.id"),
                &[],
            )?
            .iter()
            .map(journey_from_row)
            .collect()
        })
    }

    fn journey(&self, id: &str) -> Result<JourneyRow> {
        outside_async(|| {
            let mut conn = self.conn()?;
            self.journey_in(&mut conn, id)
        })
    }

    fn put_journey_draft(
        &self,
        id: &str,
        name: &str,
        draft: &Value,
        now: Timestamp,
    ) -> Result<JourneyRow> {
        self.write(|tx| {
            let status: Option<String> = tx
                .query_opt("SELECT status FROM journeys WHERE id = $1", &[&id])?
                .map(|r| column(&r, 0))
                .transpose()?;
            match status.as_deref() {
                Some("archived") => return Err(StoreError::Conflict(format!("journey `{id}` is archived"))),
                Some(_) => {
                    tx.execute(
                        "UPDATE journeys SET name = $2, draft = $3, updated_at = $4 WHERE id = $1",
                        &[&id, &name, &draft.to_string(), &ms(now)],
                    )?;
                }
                None => {
                    tx.execute(
                        "INSERT INTO journeys (id, name, status, draft, created_at, updated_at) VALUES ($1, $2, 'draft', $3, $4, $4)",
                        &[&id, &name, &draft.to_string(), &ms(now)],
                    )?;
                }
            }
            Ok(())
        })?;
        self.journey(id)
    }

    fn publish_journey(
        &self,
        id: &str,
        document: &Value,
        templates: &[String],
        now: Timestamp,
    ) -> Result<JourneyRow> {
        self.write(|tx| {
            // Locked: two processes publishing the journey at once number their versions one
            // after the other.
            let status: String = tx
                .query_opt("SELECT status FROM journeys WHERE id = $1 FOR UPDATE", &[&id])?
                .ok_or_else(|| StoreError::NotFound(format!("journey `{id}`")))
                .and_then(|r| column(&r, 0))?;
            if status == "archived" {
                return Err(StoreError::Conflict(format!("journey `{id}` is archived")));
            }
            let version: i64 = column(
                &tx.query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM journey_versions WHERE journey_id = $1",
                    &[&id],
                )?,
                0,
            )?;
            tx.execute(
                "INSERT INTO journey_versions (journey_id, version, document, published_at) VALUES ($1, $2, $3, $4)",
                &[&id, &version, &document.to_string(), &ms(now)],
            )?;
            // Pins the current version of each template it sends (in this transaction, so no
            // edit can slip in between); a template that does not exist pins nothing.
            for template in templates {
                tx.execute(
                    "INSERT INTO journey_version_templates (journey_id, version, template_id, template_version)
                     SELECT $1, $2, id, version FROM templates WHERE id = $3
                     ON CONFLICT DO NOTHING",
                    &[&id, &version, template],
                )?;
            }
            // Publishing a paused journey keeps it paused; a draft becomes live.
            tx.execute(
                "UPDATE journeys SET live_version = $2, status = CASE WHEN status = 'paused' THEN 'paused' ELSE 'live' END, updated_at = $3 WHERE id = $1",
                &[&id, &version, &ms(now)],
            )?;
            Ok(())
        })?;
        self.journey(id)
    }

    fn set_journey_status(
        &self,
        id: &str,
        status: JourneyStatus,
        now: Timestamp,
    ) -> Result<JourneyRow> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE journeys SET status = $2, updated_at = $3 WHERE id = $1",
                &[&id, &status.as_str(), &ms(now)],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("journey `{id}`")));
            }
            Ok(())
        })?;
        self.journey(id)
    }

    fn journey_versions(&self, id: &str) -> Result<Vec<JourneyVersion>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            self.journey_in(&mut conn, id)?;
            let versions = conn
                .query(
                    "SELECT journey_id, version, document, published_at FROM journey_versions WHERE journey_id = $1 ORDER BY version",
                    &[&id],
                )?
                .iter()
                .map(version_from_row)
                .collect::<Result<_>>()?;
            with_pins(&mut conn, versions)
        })
    }

    fn journey_version(&self, id: &str, version: i64) -> Result<JourneyVersion> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let mut found = conn
                .query_opt(
                    "SELECT journey_id, version, document, published_at FROM journey_versions WHERE journey_id = $1 AND version = $2",
                    &[&id, &version],
                )?
                .ok_or_else(|| StoreError::NotFound(format!("version {version} of journey `{id}`")))
                .and_then(|r| version_from_row(&r))?;
            found.templates = pinned_templates(&mut conn, id, version)?;
            Ok(found)
        })
    }

    fn running_journeys(&self) -> Result<Vec<(JourneyStatus, JourneyVersion)>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let mut running = conn
                .query(
                    "SELECT v.journey_id, v.version, v.document, v.published_at, j.status
                     FROM journeys j JOIN journey_versions v ON v.journey_id = j.id
                     WHERE j.status IN ('live', 'paused')
                       AND (v.version = j.live_version
                            OR v.version IN (SELECT DISTINCT e.version FROM enrollments e WHERE e.journey_id = j.id AND e.status = 'active'))",
                    &[],
                )?
                .iter()
                .map(|r| {
                    let status: String = column(r, 4)?;
                    Ok((
                        JourneyStatus::parse(&status).unwrap_or(JourneyStatus::Live),
                        version_from_row(r)?,
                    ))
                })
                .collect::<Result<Vec<(JourneyStatus, JourneyVersion)>>>()?;
            for (_, v) in &mut running {
                v.templates = pinned_templates(&mut conn, &v.journey_id, v.version)?;
            }
            Ok(running)
        })
    }
}

impl Templates for PgStore {
    fn templates(&self) -> Result<Vec<StoredTemplate>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            conn.query(
                "SELECT definition, version, created_at, updated_at FROM templates ORDER BY id",
                &[],
            )?
            .iter()
            .map(template_from_row)
            .collect()
        })
    }

    fn get_template(&self, id: &str) -> Result<StoredTemplate> {
        outside_async(|| {
            let mut conn = self.conn()?;
            template_row(&mut *conn, id)?
                .ok_or_else(|| StoreError::NotFound(format!("template `{id}`")))
        })
    }

    fn put_template(&self, def: &TemplateDefinition, now: Timestamp) -> Result<bool> {
        let definition = serde_json::to_string(def)?;
        self.write(|tx| {
            // Two processes saving the template at once (the first save may create it) number
            // their versions one after the other.
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&super::TEMPLATE_LOCK, &def.id],
            )?;
            let current: Option<String> = tx
                .query_opt("SELECT definition FROM templates WHERE id = $1", &[&def.id])?
                .map(|r| column(&r, 0))
                .transpose()?;
            // Compared as definitions, so that a copy written with other whitespace or key
            // order is no new version.
            let unchanged = current
                .as_deref()
                .and_then(|c| serde_json::from_str::<TemplateDefinition>(c).ok())
                .is_some_and(|c| &c == def);
            if unchanged {
                return Ok(false);
            }
            // Numbers continue after a deletion: a version, once pinned, is never reused.
            let version: i64 = column(
                &tx.query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM template_versions WHERE template_id = $1",
                    &[&def.id],
                )?,
                0,
            )?;
            tx.execute(
                "INSERT INTO template_versions (template_id, version, definition, created_at) VALUES ($1, $2, $3, $4)",
                &[&def.id, &version, &definition, &ms(now)],
            )?;
            tx.execute(
                "INSERT INTO templates (id, channel, definition, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (id) DO UPDATE SET channel = excluded.channel, definition = excluded.definition,
                   version = excluded.version, updated_at = excluded.updated_at",
                &[&def.id, &def.channel.as_str(), &definition, &version, &ms(now)],
            )?;
            Ok(current.is_none())
        })
    }

    fn template_versions(&self, id: &str) -> Result<Vec<TemplateVersionSummary>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let mut versions: Vec<TemplateVersionSummary> = conn
                .query(
                    "SELECT version, created_at FROM template_versions WHERE template_id = $1 ORDER BY version DESC",
                    &[&id],
                )?
                .iter()
                .map(|r| {
                    Ok(TemplateVersionSummary {
                        version: column(r, 0)?,
                        created_at: ts(column(r, 1)?),
                        pinned_by: Vec::new(),
                    })
                })
                .collect::<Result<_>>()?;
            if versions.is_empty() {
                return Err(StoreError::NotFound(format!("template `{id}`")));
            }
            let pins = conn.query(
                "SELECT template_version, journey_id, version FROM journey_version_templates
                 WHERE template_id = $1 ORDER BY journey_id, version",
                &[&id],
            )?;
            for r in &pins {
                let template_version: i64 = column(r, 0)?;
                let by = JourneyVersionRef {
                    journey_id: column(r, 1)?,
                    version: column(r, 2)?,
                };
                if let Some(v) = versions.iter_mut().find(|v| v.version == template_version) {
                    v.pinned_by.push(by);
                }
            }
            Ok(versions)
        })
    }

    fn get_template_version(&self, id: &str, version: i64) -> Result<StoredTemplate> {
        outside_async(|| {
            let mut conn = self.conn()?;
            template_version_row(&mut *conn, id, version)?.ok_or_else(|| {
                StoreError::NotFound(format!("version {version} of template `{id}`"))
            })
        })
    }

    fn delete_template(&self, id: &str) -> Result<()> {
        // Its versions stay: journey versions that pinned them still send them.
        self.write(|tx| {
            if tx.execute("DELETE FROM templates WHERE id = $1", &[&id])? == 0 {
                return Err(StoreError::NotFound(format!("template `{id}`")));
            }
            Ok(())
        })
    }

    fn template_channel(&self, id: &str) -> Result<Option<Channel>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let ch: Option<String> = conn
                .query_opt("SELECT channel FROM templates WHERE id = $1", &[&id])?
                .map(|r| column(&r, 0))
                .transpose()?;
            Ok(ch.and_then(|c| Channel::parse(&c)))
        })
    }
}

impl Timers for PgStore {
    fn next_wake_at(&self) -> Result<Option<Timestamp>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            // Only this process's partitions: another's due timer must not keep it awake.
            let statement = conn.statement(
                &format!(
                    "SELECT MIN(at) FROM (
                       SELECT MIN(e.wake_at) AS at FROM enrollments e JOIN journeys j ON j.id = e.journey_id
                       WHERE e.wake_at IS NOT NULL AND e.status = 'active' AND j.status = 'live'
                         AND (e.contact_id % {PARTITIONS})::SMALLINT = ANY($1)
                       UNION ALL SELECT MIN(due_at) FROM segment_checks
                         WHERE (contact_id % {PARTITIONS})::SMALLINT = ANY($1)
                       UNION ALL SELECT MIN(due_at) FROM trigger_schedule
                         WHERE (contact_id % {PARTITIONS})::SMALLINT = ANY($1)
                       UNION ALL SELECT MIN(due_at) FROM score_expiries
                         WHERE (contact_id % {PARTITIONS})::SMALLINT = ANY($1)
                       -- Any process may run a broadcast's round.
                       UNION ALL SELECT MIN(next_run_at) FROM broadcasts
                         WHERE status IN ('scheduled', 'sending')) AS due"
                ),
            )?;
            let row = conn.query_one(&statement, &[&self.working_partitions()])?;
            opt_ts(&row, 0)
        })
    }
}

impl Outbox for PgStore {
    fn due_messages(&self, q: &DueQuery<'_>) -> Result<Vec<MessageRow>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            // First the ids, from one range of `messages_due` (the planner picks it; PostgreSQL
            // has no INDEXED BY), leaving out those in flight; then the whole rows of the
            // others.
            let journey = match q.journey {
                Some(_) => "AND m.journey_id = $5",
                None => "AND m.journey_id IS NULL AND $5::TEXT IS NULL",
            };
            let statement = conn.statement(&format!(
                "SELECT m.id FROM messages m
                 WHERE m.status = 'queued' AND m.channel = $1 AND m.priority = $2 {journey}
                   AND m.next_attempt_at <= $3 AND m.partition = ANY($6)
                 ORDER BY m.next_attempt_at, m.id LIMIT $4"
            ))?;
            let ids: Vec<i64> = conn
                .query(
                    &statement,
                    &[
                        &q.channel,
                        &q.priority.as_i64(),
                        &ms(q.now),
                        &((q.limit + q.skip.len()) as i64),
                        &q.journey,
                        &self.working_partitions(),
                    ],
                )?
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .filter(|id| !q.skip.contains(id))
                .take(q.limit)
                .collect();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let statement = conn.statement(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m
                 LEFT JOIN contacts c ON c.id = m.contact_id
                 WHERE m.id = ANY($1) AND m.status = 'queued'"
            ))?;
            let mut rows = conn
                .query(&statement, &[&ids])?
                .iter()
                .map(message_from_row)
                .collect::<Result<Vec<_>>>()?;
            // In the order of the ids: due time, then id.
            let position: std::collections::HashMap<i64, usize> =
                ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
            rows.sort_by_key(|m| position[&m.id]);
            Ok(rows)
        })
    }

    fn due_journeys(&self, channel: &str, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            // A skip scan of `messages_due`: one seek per journey, however many messages each has
            // queued.
            let statement = conn.statement(
                "WITH RECURSIVE due(journey) AS (
                     SELECT (SELECT MIN(journey_id) FROM messages
                             WHERE status = 'queued' AND channel = $1 AND priority = $2
                               AND journey_id IS NOT NULL AND next_attempt_at <= $3
                               AND partition = ANY($5))
                     UNION ALL
                     SELECT (SELECT MIN(journey_id) FROM messages
                             WHERE status = 'queued' AND channel = $1 AND priority = $2
                               AND journey_id > due.journey AND next_attempt_at <= $3
                               AND partition = ANY($5))
                     FROM due WHERE due.journey IS NOT NULL
                 )
                 SELECT journey FROM due WHERE journey IS NOT NULL LIMIT $4",
            )?;
            conn.query(
                &statement,
                &[
                    &channel,
                    &Priority::Journey.as_i64(),
                    &ms(now),
                    &(limit as i64),
                    &self.working_partitions(),
                ],
            )?
            .iter()
            .map(|r| column(r, 0))
            .collect()
        })
    }

    fn next_message_attempt_at(&self) -> Result<Option<Timestamp>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let statement = conn.statement(
                "SELECT MIN(next_attempt_at) FROM messages
                 WHERE status = 'queued' AND partition = ANY($1)",
            )?;
            let row = conn.query_one(&statement, &[&self.working_partitions()])?;
            opt_ts(&row, 0)
        })
    }

    fn finish_messages(&self, finished: &[Finished]) -> Result<()> {
        // One transaction (one commit) for a whole batch of outcomes.
        self.write_prepared(|tx, prepared| finish_batch(tx, prepared, finished))
    }

    fn requeue_messages(&self, f: &RequeueFilter, now: Timestamp) -> Result<i64> {
        let opt_ms = |t: Option<Timestamp>| t.map(ms);
        let error = f.error_contains.as_deref().map(str::to_lowercase);
        let (created_since, created_until) = (opt_ms(f.created_since), opt_ms(f.created_until));
        let (failed_since, failed_until) = (opt_ms(f.failed_since), opt_ms(f.failed_until));
        let now = ms(now);
        let args: [&(dyn ToSql + Sync); 8] = [
            &f.journey_id,
            &f.channel,
            &created_since,
            &created_until,
            &failed_since,
            &failed_until,
            &error,
            &now,
        ];
        // The casts give each parameter its type where `IS NULL` alone does not; `strpos` is
        // SQLite's `instr`, and `lower` under the "C" collation lowers ASCII only, as SQLite's.
        const MATCHES: &str = "status = 'failed'
             AND ($1::TEXT IS NULL OR journey_id = $1) AND ($2::TEXT IS NULL OR channel = $2)
             AND ($3::BIGINT IS NULL OR created_at >= $3) AND ($4::BIGINT IS NULL OR created_at < $4)
             AND ($5::BIGINT IS NULL OR failed_at >= $5) AND ($6::BIGINT IS NULL OR failed_at < $6)
             AND ($7::TEXT IS NULL OR strpos(lower(error), $7) > 0)";
        self.write(|tx| {
            // The node statistics counted these as failed; they are not any more. (`$8` is
            // unused here but keeps both statements' parameters the same.)
            tx.execute(
                &format!(
                    "UPDATE node_stats SET failed = GREATEST(failed - n.count, 0)
                     FROM (SELECT m.journey_id, COALESCE(e.version, 0) AS version, m.node,
                                  COUNT(*) AS count
                           FROM messages m LEFT JOIN enrollments e ON e.id = m.enrollment_id
                           WHERE m.id IN (SELECT id FROM messages WHERE {MATCHES})
                             AND $8::BIGINT IS NOT NULL AND m.journey_id IS NOT NULL
                           GROUP BY m.journey_id, COALESCE(e.version, 0), m.node) AS n
                     WHERE node_stats.journey_id = n.journey_id AND node_stats.version = n.version
                       AND node_stats.node = n.node"
                ),
                &args,
            )?;
            // And the roll-ups of the hours they failed in.
            tx.execute(
                &format!(
                    "UPDATE journey_rollups r SET failed = r.failed - n.count
                     FROM (SELECT m.journey_id, COALESCE(e.version, 0) AS version, m.node,
                                  m.failed_at - m.failed_at % 3600000 AS hour_at, COUNT(*) AS count
                           FROM messages m LEFT JOIN enrollments e ON e.id = m.enrollment_id
                           WHERE m.id IN (SELECT id FROM messages WHERE {MATCHES})
                             AND $8::BIGINT IS NOT NULL AND m.journey_id IS NOT NULL
                             AND m.failed_at IS NOT NULL
                           GROUP BY 1, 2, 3, 4) AS n
                     WHERE r.journey_id = n.journey_id AND r.hour_at = n.hour_at
                       AND r.version = n.version AND r.node = n.node"
                ),
                &args,
            )?;
            // And the broadcasts' roll-ups of the hours they failed in.
            tx.execute(
                &format!(
                    "UPDATE broadcast_rollups r SET failed = r.failed - n.count
                     FROM (SELECT m.broadcast_id, m.template,
                                  m.failed_at - m.failed_at % 3600000 AS hour_at, COUNT(*) AS count
                           FROM messages m
                           WHERE m.id IN (SELECT id FROM messages WHERE {MATCHES})
                             AND $8::BIGINT IS NOT NULL AND m.broadcast_id IS NOT NULL
                             AND m.failed_at IS NOT NULL
                           GROUP BY 1, 2, 3) AS n
                     WHERE r.broadcast_id = n.broadcast_id AND r.hour_at = n.hour_at
                       AND r.template = n.template"
                ),
                &args,
            )?;
            let n = tx.execute(
                &format!(
                    "UPDATE messages SET status = 'queued', attempts = 0, next_attempt_at = $8,
                            first_attempt_at = NULL, failed_at = NULL, requeued_at = $8
                     WHERE {MATCHES}"
                ),
                &args,
            )?;
            Ok(n as i64)
        })
    }

    fn queue_levels(&self) -> Result<Vec<QueueLevel>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            conn.query(
                "SELECT channel, COUNT(*), MIN(COALESCE(requeued_at, created_at)) FROM messages
                 WHERE status = 'queued' GROUP BY channel ORDER BY channel",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(QueueLevel {
                    channel: column(r, 0)?,
                    queued: column(r, 1)?,
                    oldest_queued_at: opt_ts(r, 2)?,
                })
            })
            .collect()
        })
    }

    fn messages(&self, q: &MessageQuery) -> Result<Vec<MessageRow>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let mut clauses = vec!["m.id > $1".to_string()];
            let mut args: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(q.after_id)];
            let mut push = |clause: &str, v: Box<dyn ToSql + Sync>| {
                args.push(v);
                clauses.push(clause.replace('?', &format!("${}", args.len())));
            };
            if let Some(u) = &q.user_id {
                // Any id the contact has had, as `find_contacts` takes it.
                push(
                    "(c.user_id = ? OR c.id IN (SELECT contact_id FROM anonymous_ids WHERE anonymous_id = ?))",
                    Box::new(u.clone()),
                );
            }
            if let Some(c) = q.contact_id {
                push("m.contact_id = ?", Box::new(c));
            }
            if let Some(j) = &q.journey_id {
                push("m.journey_id = ?", Box::new(j.clone()));
            }
            if let Some(ch) = &q.channel {
                push("m.channel = ?", Box::new(ch.clone()));
            }
            if let Some(s) = &q.status {
                push("m.status = ?", Box::new(s.clone()));
            }
            if let Some(b) = &q.broadcast_id {
                push("m.broadcast_id = ?", Box::new(b.clone()));
            }
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id WHERE {} ORDER BY m.id LIMIT {}",
                clauses.join(" AND "),
                q.limit.clamp(1, 1000)
            );
            conn.query(&sql, &param_refs(&args))?
                .iter()
                .map(message_from_row)
                .collect()
        })
    }

    fn message_by_key(&self, idempotency_key: &str) -> Result<Option<MessageRow>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            conn.query_opt(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id WHERE m.idempotency_key = $1"
                ),
                &[&idempotency_key],
            )?
            .map(|r| message_from_row(&r))
            .transpose()
        })
    }

    fn mark_message_unsubscribed(&self, idempotency_key: &str, at: Timestamp) -> Result<bool> {
        self.write(|tx| {
            let Some(row) = tx.query_opt(
                "UPDATE messages SET unsubscribed_at = $2
                 WHERE idempotency_key = $1 AND unsubscribed_at IS NULL RETURNING id",
                &[&idempotency_key, &ms(at)],
            )?
            else {
                return Ok(false);
            };
            let id: i64 = column(&row, 0)?;
            super::rollups::count_message(tx, id, "unsubscribed", 1, Hour::Of(at))?;
            Ok(true)
        })
    }
}

impl Audiences for PgStore {
    fn lists(&self) -> Result<Vec<ListSummary>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            conn.query(
                "SELECT l.name, (SELECT COUNT(*) FROM list_members m WHERE m.list_id = l.id), l.created_at FROM lists l ORDER BY l.name",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(ListSummary {
                    name: column(r, 0)?,
                    members: column(r, 1)?,
                    created_at: ts(column(r, 2)?),
                })
            })
            .collect()
        })
    }

    fn create_list(&self, name: &str, now: Timestamp) -> Result<ListSummary> {
        self.write(|tx| {
            let n = tx.execute(
                "INSERT INTO lists (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &ms(now)],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("a list named `{name}` exists")));
            }
            Ok(ListSummary {
                name: name.to_string(),
                members: 0,
                created_at: now,
            })
        })
    }

    fn list_members(&self, name: &str, limit: usize, after_id: i64) -> Result<Vec<Contact>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let list_id: i64 = conn
                .query_opt("SELECT id FROM lists WHERE name = $1", &[&name])?
                .ok_or_else(|| StoreError::NotFound(format!("list `{name}`")))
                .and_then(|r| column(&r, 0))?;
            conn.query(
                &format!(
                    "SELECT {} FROM list_members m JOIN contacts c ON c.id = m.contact_id
                     WHERE m.list_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3",
                    contact_columns_of_c()
                ),
                &[&list_id, &after_id, &(limit.clamp(1, 1000) as i64)],
            )?
            .iter()
            .map(contact_from_row)
            .collect()
        })
    }

    fn segments(&self) -> Result<Vec<SegmentRow>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            conn.query(
                "SELECT s.id, s.name, s.condition, s.created_at, s.updated_at,
                        (SELECT COUNT(*) FROM segment_members m WHERE m.segment_id = s.id)
                 FROM segments s ORDER BY s.id",
                &[],
            )?
            .iter()
            .map(segment_from_row)
            .collect()
        })
    }

    fn segment(&self, id: &str) -> Result<SegmentRow> {
        outside_async(|| {
            let mut conn = self.conn()?;
            conn.query_opt(
                "SELECT s.id, s.name, s.condition, s.created_at, s.updated_at,
                        (SELECT COUNT(*) FROM segment_members m WHERE m.segment_id = s.id)
                 FROM segments s WHERE s.id = $1",
                &[&id],
            )?
            .ok_or_else(|| StoreError::NotFound(format!("segment `{id}`")))
            .and_then(|r| segment_from_row(&r))
        })
    }

    fn put_segment(&self, id: &str, name: &str, condition: &Value, now: Timestamp) -> Result<bool> {
        self.write(|tx| {
            let existed = tx
                .query_opt("SELECT 1 FROM segments WHERE id = $1", &[&id])?
                .is_some();
            tx.execute(
                "INSERT INTO segments (id, name, condition, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, condition = excluded.condition,
                   updated_at = excluded.updated_at",
                &[&id, &name, &condition.to_string(), &ms(now)],
            )?;
            Ok(!existed)
        })
    }

    fn delete_segment(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM segments WHERE id = $1", &[&id])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("segment `{id}`")));
            }
            tx.execute("DELETE FROM segment_members WHERE segment_id = $1", &[&id])?;
            tx.execute("DELETE FROM segment_checks WHERE segment_id = $1", &[&id])?;
            tx.execute("DELETE FROM segment_history WHERE segment_id = $1", &[&id])?;
            Ok(())
        })
    }

    fn segment_history(&self, id: &str, from: Timestamp, to: Timestamp) -> Result<SegmentHistory> {
        outside_async(|| {
            self.segment(id)?;
            let mut conn = self.conn()?;
            let before = conn.query_one(
                "SELECT CAST(COALESCE(SUM(entered - exited), 0) AS BIGINT) FROM segment_history
                 WHERE segment_id = $1 AND hour_at < $2",
                &[&id, &ms(from)],
            )?;
            let hours = conn
                .query(
                    "SELECT hour_at, entered, exited FROM segment_history
                     WHERE segment_id = $1 AND hour_at >= $2 AND hour_at < $3 ORDER BY hour_at",
                    &[&id, &ms(from), &ms(to)],
                )?
                .iter()
                .map(|r| {
                    Ok(SegmentHour {
                        hour: ts(column(r, 0)?),
                        entered: column(r, 1)?,
                        left: column(r, 2)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(SegmentHistory {
                members_before: column(&before, 0)?,
                hours,
            })
        })
    }

    fn segment_members(&self, id: &str, limit: usize, after_id: i64) -> Result<Vec<Contact>> {
        outside_async(|| {
            self.segment(id)?;
            let mut conn = self.conn()?;
            conn.query(
                &format!(
                    "SELECT {} FROM segment_members m JOIN contacts c ON c.id = m.contact_id
                     WHERE m.segment_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3",
                    contact_columns_of_c()
                ),
                &[&id, &after_id, &(limit.clamp(1, 1000) as i64)],
            )?
            .iter()
            .map(contact_from_row)
            .collect()
        })
    }
}

impl Experiments for PgStore {
    fn experiments(
        &self,
        journey_id: &str,
    ) -> Result<(Vec<ExperimentCounts>, Vec<ExperimentWinner>)> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let counts = conn
                .query(
                    "SELECT node, variant, entered, converted FROM experiment_variants
                     WHERE journey_id = $1 ORDER BY node, variant",
                    &[&journey_id],
                )?
                .iter()
                .map(|r| {
                    Ok(ExperimentCounts {
                        node: column(r, 0)?,
                        variant: column(r, 1)?,
                        entered: column(r, 2)?,
                        converted: column(r, 3)?,
                    })
                })
                .collect::<Result<_>>()?;
            let winners = conn
                .query(
                    "SELECT node, winner, decided_at, verdict FROM experiment_winners
                     WHERE journey_id = $1 ORDER BY node",
                    &[&journey_id],
                )?
                .iter()
                .map(|r| {
                    let verdict: String = column(r, 3)?;
                    Ok(ExperimentWinner {
                        node: column(r, 0)?,
                        winner: column(r, 1)?,
                        decided_at: ts(column(r, 2)?),
                        verdict: serde_json::from_str(&verdict).unwrap_or(Value::Null),
                    })
                })
                .collect::<Result<_>>()?;
            Ok((counts, winners))
        })
    }
}

impl Consent for PgStore {
    fn suppressions(&self, q: &SuppressionQuery) -> Result<Vec<Suppression>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let channel = q.channel.clone();
            let address = q
                .address
                .as_deref()
                .map(|a| suppression_address(channel.as_deref().unwrap_or("email"), a));
            // Without a channel, the address is matched as given and lower-cased.
            let raw = q.address.as_deref().map(str::trim);
            let mut list = conn
                .query(
                    "SELECT channel, address, reason, source, created_at FROM suppressions
                     WHERE ($1::TEXT IS NULL OR channel = $1) AND ($2::TEXT IS NULL OR address = $2 OR address = $3)
                     ORDER BY created_at DESC, channel, address LIMIT $4",
                    &[
                        &channel,
                        &address,
                        &raw,
                        &(q.limit.clamp(1, 1000) as i64),
                    ],
                )?
                .iter()
                .map(|r| {
                    Ok(Suppression {
                        channel: column(r, 0)?,
                        address: column(r, 1)?,
                        reason: column(r, 2)?,
                        source: column(r, 3)?,
                        created_at: ts(column(r, 4)?),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            // An address asked for by name also finds the hashed entry an erasure left.
            if let Some(raw) = raw {
                let channels = match &channel {
                    Some(c) => vec![c.clone()],
                    None => vec!["email".to_string(), "sms".to_string()],
                };
                for c in channels {
                    if let Some(entry) = super::privacy::erased_entry(&mut *conn, &c, raw)? {
                        list.push(entry);
                    }
                }
            }
            Ok(list)
        })
    }

    fn suppress(&self, e: &Suppression) -> Result<bool> {
        self.write(|tx| suppress_in(tx, e))
    }

    fn unsuppress(&self, channel: &str, address: &str) -> Result<bool> {
        self.write(|tx| unsuppress_in(tx, channel, address))
    }
}

impl Reporting for PgStore {
    fn journey_people(&self, q: &PeopleQuery) -> Result<Vec<PersonRow>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let drill = crate::drill_sql::journey_people(Dialect::Postgres, q);
            let args: Vec<Box<dyn ToSql + Sync>> = drill
                .args
                .into_iter()
                .map(|a| -> Box<dyn ToSql + Sync> {
                    match a {
                        Arg::Int(i) => Box::new(i),
                        Arg::Real(r) => Box::new(r),
                        Arg::Text(t) => Box::new(t),
                    }
                })
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
            conn.query(&drill.sql, &refs)?
                .iter()
                .map(|r| {
                    let t = |i: usize| column::<Option<i64>>(r, i).map(|v| v.map(ts));
                    Ok(PersonRow {
                        cursor: column(r, 0)?,
                        contact_id: column(r, 1)?,
                        user_id: column(r, 2)?,
                        email: column(r, 3)?,
                        enrollment_id: column(r, 4)?,
                        node: column(r, 5)?,
                        entered_at: t(6)?,
                        wake_at: t(7)?,
                        message_id: column(r, 8)?,
                        channel: column(r, 9)?,
                        status: column(r, 10)?,
                        sent_at: t(11)?,
                        opened_at: t(12)?,
                        human_opened_at: t(13)?,
                        clicked_at: t(14)?,
                        human_clicked_at: t(15)?,
                        unsubscribed_at: t(16)?,
                        complained_at: t(17)?,
                        converted_at: t(18)?,
                        revenue: column(r, 19)?,
                        currency: column(r, 20)?,
                    })
                })
                .collect()
        })
    }

    fn rollup_sums(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, String, waymark_core::report::Counts)>> {
        outside_async(|| super::rollups::rollup_sums(&mut *self.conn()?, from, to))
    }

    fn journey_rollups(
        &self,
        query: &RollupQuery,
    ) -> Result<(
        Vec<waymark_core::report::RollupRow>,
        Vec<waymark_core::report::ReactionRow>,
    )> {
        outside_async(|| super::rollups::journey_rollups(&mut *self.conn()?, query))
    }

    fn journey_stats(&self, id: &str, version: Option<i64>) -> Result<JourneyStats> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let journey = self.journey_in(&mut conn, id)?;
            // Nodes in the order of the version asked for, else of the live (or draft)
            // document; unknown ones after.
            let document = match version {
                Some(v) => self.journey_version(id, v)?.document,
                None => journey
                    .live_version
                    .and_then(|v| self.journey_version(id, v).ok())
                    .map(|v| v.document)
                    .unwrap_or(journey.draft.clone()),
            };
            // Ordered by node, as SQLite reads them, so that nodes the document does not
            // name come in the same order on both backends.
            let nodes: Vec<NodeStats> = conn
                .query(
                    "SELECT node, SUM(entered)::BIGINT, SUM(completed)::BIGINT, SUM(exited)::BIGINT,
                            SUM(converted)::BIGINT, SUM(sent)::BIGINT, SUM(delivered)::BIGINT,
                            SUM(bounced)::BIGINT, SUM(failed)::BIGINT, SUM(suppressed)::BIGINT,
                            SUM(opened)::BIGINT, SUM(clicked)::BIGINT
                     FROM node_stats WHERE journey_id = $1 AND ($2::BIGINT IS NULL OR version = $2)
                     GROUP BY node ORDER BY node",
                    &[&id, &version],
                )?
                .iter()
                .map(|r| {
                    Ok(NodeStats {
                        node: column(r, 0)?,
                        entered: column(r, 1)?,
                        waiting: 0,
                        completed: column(r, 2)?,
                        exited: column(r, 3)?,
                        converted: column(r, 4)?,
                        sent: column(r, 5)?,
                        delivered: column(r, 6)?,
                        bounced: column(r, 7)?,
                        failed: column(r, 8)?,
                        suppressed: column(r, 9)?,
                        opened: column(r, 10)?,
                        clicked: column(r, 11)?,
                    })
                })
                .collect::<Result<_>>()?;
            let waiting: Vec<(String, i64)> = conn
                .query(
                    "SELECT node, COUNT(*) FROM enrollments
                     WHERE journey_id = $1 AND status = 'active' AND ($2::BIGINT IS NULL OR version = $2)
                     GROUP BY node ORDER BY node",
                    &[&id, &version],
                )?
                .iter()
                .map(|r| Ok((column(r, 0)?, column(r, 1)?)))
                .collect::<Result<_>>()?;
            let nodes = NodeStats::arrange(nodes, waiting, &document);
            let row = conn.query_one(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'active'),
                        COUNT(*) FILTER (WHERE status = 'completed'),
                        COUNT(*) FILTER (WHERE status = 'exited'),
                        (SELECT COUNT(*) FROM conversions
                         WHERE journey_id = $1 AND ($2::BIGINT IS NULL OR version = $2))
                 FROM enrollments WHERE journey_id = $1 AND ($2::BIGINT IS NULL OR version = $2)",
                &[&id, &version],
            )?;
            let enrollments = EnrollmentCounts {
                entered: column(&row, 0)?,
                active: column(&row, 1)?,
                completed: column(&row, 2)?,
                exited: column(&row, 3)?,
                converted: column(&row, 4)?,
            };
            Ok(JourneyStats::of(journey, version, enrollments, nodes))
        })
    }

    fn gauges(&self) -> Result<Gauges> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let mut one = |sql: &str| -> Result<i64> { column(&conn.query_one(sql, &[])?, 0) };
            Ok(Gauges {
                timers_waiting: one("SELECT COUNT(*) FROM enrollments WHERE wake_at IS NOT NULL")?,
                enrollments_active: one(
                    "SELECT COUNT(*) FROM enrollments WHERE status = 'active'",
                )?,
                events_pending: self.pending_event_count()?,
                messages_queued: one("SELECT COUNT(*) FROM messages WHERE status = 'queued'")?,
            })
        })
    }

    fn disk_bytes(&self) -> Result<u64> {
        outside_async(|| {
            // The store's tables with their indexes and TOAST, in the schema it lives in: the
            // database may hold other schemas (other installations, tests) that are not its size.
            let mut conn = self.conn()?;
            let bytes: i64 = column(
                &conn.query_one(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                    &[],
                )?,
                0,
            )?;
            Ok(u64::try_from(bytes).unwrap_or(0))
        })
    }
}

impl Privacy for PgStore {
    fn contact_export_counts(&self, contact_id: i64) -> Result<BTreeMap<String, i64>> {
        outside_async(|| self.export_counts(contact_id))
    }

    fn export_contact(
        &self,
        contact_id: i64,
        page: usize,
        emit: &mut dyn FnMut(ExportPage) -> Result<()>,
    ) -> Result<()> {
        outside_async(|| self.export(contact_id, page, emit))
    }

    fn record_audit(&self, entry: &NewAudit) -> Result<i64> {
        self.write(|tx| super::privacy::record_audit(tx, entry))
    }

    fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        outside_async(|| self.audit(query))
    }
}

impl Meta for PgStore {
    fn meta(&self, key: &str) -> Result<Option<String>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let statement = conn.statement("SELECT value FROM meta WHERE key = $1")?;
            conn.query_opt(&statement, &[&key])?
                .map(|r| column(&r, 0))
                .transpose()
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )?;
            Ok(())
        })
    }
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
pub(crate) fn unsuppress_in(
    tx: &mut Transaction<'_>,
    channel: &str,
    address: &str,
) -> Result<bool> {
    let address = suppression_address(channel, address);
    let n = tx.execute(
        "DELETE FROM suppressions WHERE channel = $1 AND address = $2",
        &[&channel, &address],
    )?;
    // Also lifts the hashed entry an erasure left for this address.
    let erased = super::privacy::unsuppress_erased(tx, channel, &address)?;
    Ok(n == 1 || erased)
}

#[cfg(test)]
mod tests {
    //! Each trait's methods called alike on SQLite (the reference) and PostgreSQL, over the
    //! same rows, with the same answers expected.

    use serde::Serialize;
    use serde_json::json;

    use super::super::test_support::TestDatabase;
    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::sqlite::test_support::TempDir;

    /// Rows of every kind the `&self` traits read, in SQL that both backends accept.
    const FIXTURE: &str = r#"
        INSERT INTO contacts (id, user_id, email, phone, timezone, traits, created_at, updated_at) VALUES
            (1, 'ann', 'Ann@Example.com', '+4915112345678', 'Europe/Berlin', '{"plan":"pro"}', 1000, 2000),
            (2, 'bob_x', 'bob@example.com', NULL, NULL, '{}', 1100, 1100),
            (3, 'bobby', NULL, '+4915100000000', NULL, 'not json', 1200, 1200),
            (4, NULL, 'anna@example.com', NULL, NULL, '{}', 1300, 1300);
        INSERT INTO anonymous_ids (anonymous_id, contact_id) VALUES ('anon-2', 1), ('anon-1', 1), ('anon-3', 3);
        INSERT INTO lists (id, name, created_at) VALUES (1, 'vip', 500), (2, 'alpha', 600);
        INSERT INTO list_members (list_id, contact_id, added_at) VALUES (1, 1, 700), (2, 1, 700), (1, 2, 800), (1, 4, 800);
        INSERT INTO enrollments (id, journey_id, version, contact_id, key, node, status, wake_at, entered_at, entered_seq, consumed_seq, visits, updated_at) VALUES
            (1, 'welcome', 1, 1, NULL, 'wait', 'active', 9000, 1000, 1, 0, 1, 1000),
            (2, 'welcome', 1, 2, 'k', 'send', 'completed', NULL, 1000, 2, 0, 1, 1500),
            (3, 'welcome', 1, 3, NULL, 'gone', 'active', NULL, 1000, 3, 0, 1, 1500),
            (4, 'welcome', 1, 4, NULL, 'start', 'exited', NULL, 1000, 3, 0, 1, 1500);
        INSERT INTO steps (id, enrollment_id, at, node, action, detail) VALUES
            (1, 1, 1000, 'start', 'entered', NULL),
            (2, 1, 1000, 'wait', 'waiting', '{"until":9000}'),
            (3, 1, 1200, 'wait', 'odd', 'not json');
        INSERT INTO events (seq, message_id, kind, name, user_id, anonymous_id, previous_id, properties, timestamp, received_at, contact_id) VALUES
            (1, 'e1', 'track', 'Signed Up', 'ann', NULL, NULL, '{"a":1}', 1000, 1000, 1),
            (2, 'e2', 'identify', 'identify', 'ann', NULL, NULL, '{}', 1100, 1100, 1),
            (3, 'e3', 'track', 'Viewed', NULL, 'anon-9', NULL, 'bad', 1150, 1150, NULL);
        INSERT INTO node_stats (journey_id, node, entered, completed, exited, converted, sent, failed, suppressed, opened, clicked) VALUES
            ('welcome', 'send', 3, 1, 0, 0, 2, 1, 0, 1, 0),
            ('welcome', 'zeta', 1, 0, 0, 0, 0, 0, 0, 0, 0),
            ('welcome', 'beta', 1, 0, 0, 0, 0, 0, 0, 0, 0),
            ('other', 'send', 9, 0, 0, 0, 0, 0, 0, 0, 0);
        INSERT INTO messages (id, idempotency_key, contact_id, enrollment_id, journey_id, node, template, channel, recipient, subject, status, error, attempts, next_attempt_at, created_at, failed_at, priority) VALUES
            (1, 'k1', 1, 1, 'welcome', 'send', 'hello', 'email', 'ann@example.com', 'Hi', 'queued', NULL, 0, 1500, 1000, NULL, 1),
            (2, 'k2', 1, NULL, NULL, NULL, 'receipt', 'email', 'ann@example.com', 'Receipt', 'queued', NULL, 0, 1400, 1100, NULL, 0),
            (3, 'k3', 2, 2, 'welcome', 'send', 'hello', 'email', 'bob@example.com', 'Hi', 'failed', 'SMTP 451 Try Later', 3, NULL, 1000, 1600, 1),
            (4, 'k4', 2, NULL, 'alpha', 'send', 'hello', 'email', 'bob@example.com', 'Hi', 'queued', NULL, 0, 1300, 1000, NULL, 1),
            (5, 'k5', 3, NULL, 'beta', 'send', 'sms1', 'sms', '+4915100000000', NULL, 'queued', NULL, 0, 99999, 1000, NULL, 1),
            (6, 'k6', 4, NULL, 'welcome', 'send', 'hello', 'email', 'anna@example.com', 'Hi', 'queued', NULL, 0, 1200, 1000, NULL, 1),
            (7, 'k7', 1, 1, 'welcome', 'send', 'hello', 'email', 'ann@example.com', 'Hi', 'failed', 'timeout', 1, NULL, 900, 950, 1);
        INSERT INTO experiment_variants (journey_id, node, variant, entered, converted) VALUES
            ('welcome', 'split', 'b', 10, 2), ('welcome', 'split', 'a', 12, 5), ('other', 'split', 'a', 1, 1);
        INSERT INTO experiment_winners (journey_id, node, winner, decided_at, verdict) VALUES
            ('welcome', 'split', 'a', 5000, '{"p":0.01}'), ('welcome', 'alt', 'x', 5000, 'bad');
        INSERT INTO suppressions (channel, address, reason, source, created_at) VALUES
            ('email', 'x@example.com', 'complaint', 'api', 100),
            ('sms', '+4915199999999', 'manual', 'api', 100),
            ('email', 'y@example.com', 'hard_bounce', 'smtp', 200);
        INSERT INTO segments (id, name, condition, created_at, updated_at) VALUES
            ('buyers', 'Buyers', '{"trait":"plan"}', 10, 20), ('broken', 'Broken', 'nope', 10, 10);
        INSERT INTO segment_members (segment_id, contact_id, entered_at) VALUES ('buyers', 1, 5), ('buyers', 3, 5), ('broken', 2, 5);
        INSERT INTO segment_checks (segment_id, contact_id, due_at) VALUES ('buyers', 2, 7000);
        INSERT INTO trigger_schedule (journey_id, node, contact_id, due_at) VALUES ('welcome', 'start', 1, 8000);
        INSERT INTO score_expiries (contact_id, score_trait, points, due_at) VALUES (1, 'score', 5, 6000);
        INSERT INTO meta (key, value) VALUES ('processed_seq', '1');
    "#;

    struct Both {
        sqlite: SqliteStore,
        pg: PgStore,
        _dir: TempDir,
        _db: TestDatabase,
    }

    impl Both {
        /// Both backends with the fixture's rows, and the journey `welcome` (live at version 1,
        /// pinning the template `hello`), or `None` when PostgreSQL tests are not set up.
        fn new(name: &str) -> Option<Both> {
            let db = TestDatabase::create(name)?;
            let dir = TempDir::new(name);
            let both = Both {
                sqlite: SqliteStore::open(&dir.0).unwrap(),
                pg: db.open(),
                _dir: dir,
                _db: db,
            };
            both.sqlite.conn().unwrap().execute_batch(FIXTURE).unwrap();
            both.pg.conn().unwrap().batch_execute(FIXTURE).unwrap();
            // Ids given explicitly leave the identity sequences behind: new rows come after.
            both.pg
                .conn()
                .unwrap()
                .batch_execute(
                    "SELECT setval(pg_get_serial_sequence('lists', 'id'), 2);
                     -- SQLite's one cursor, in every partition.
                     UPDATE partition_cursors SET processed_seq = 1;",
                )
                .unwrap();
            both.each(|s| {
                s.put_template(&template("hello", "Hi {{ name }}"), at(100))?;
                s.put_journey_draft(
                    "welcome",
                    "Welcome",
                    &json!({"nodes": [{"id": "start"}, {"id": "send"}, {"id": "wait"}]}),
                    at(100),
                )?;
                s.publish_journey(
                    "welcome",
                    &json!({"nodes": [{"id": "start"}, {"id": "wait"}, {"id": "send"}]}),
                    &["hello".to_string(), "missing".to_string()],
                    at(150),
                )
            });
            Some(both)
        }

        /// Runs `f` on each backend and asserts the same answer (or the same error).
        #[track_caller]
        fn each<T: Serialize>(&self, f: impl Fn(&dyn Store) -> Result<T>) -> Value {
            let answer = |r: Result<T>| match r {
                Ok(v) => serde_json::to_value(v).unwrap(),
                Err(e) => json!({ "error": e.to_string() }),
            };
            let sqlite = answer(f(&self.sqlite));
            let pg = answer(f(&self.pg));
            assert_eq!(pg, sqlite, "PostgreSQL (left) differs from SQLite (right)");
            sqlite
        }
    }

    fn at(millis: i64) -> Timestamp {
        ts(millis)
    }

    fn template(id: &str, subject: &str) -> TemplateDefinition {
        serde_json::from_value(
            json!({"id": id, "channel": "email", "subject": subject, "text": "x"}),
        )
        .unwrap()
    }

    #[test]
    fn contacts_read_alike() {
        let Some(both) = Both::new("api_contacts") else {
            return;
        };
        for id in [1, 3, 99] {
            both.each(|s| s.contact(id));
        }
        let query = |f: &dyn Fn(&mut ContactQuery)| {
            let mut q = ContactQuery {
                limit: 10,
                ..Default::default()
            };
            f(&mut q);
            q
        };
        let found = both.each(|s| s.find_contacts(&query(&|q| q.search = Some("AN".into()))));
        // ann and anna by user id and email, bobby by his anonymous id `anon-1`.
        assert_eq!(found.as_array().unwrap().len(), 3, "{found}");
        for q in [
            query(&|q| q.search = Some("bob_".into())),
            query(&|q| q.search = Some("%".into())),
            query(&|q| q.search = Some("+49151".into())),
            query(&|q| q.email = Some("bob@example.com".into())),
            query(&|q| q.user_id = Some("ann".into())),
            query(&|q| q.phone = Some("+4915100000000".into())),
            query(&|q| q.anonymous_id = Some("anon-1".into())),
            // Traits read as JSON, and one contact's cannot be read.
            query(&|q| q.search = Some("bobby".into())),
            query(&|q| {
                q.traits = vec![TraitEquals {
                    key: "name".into(),
                    value: "3".into(),
                }]
            }),
            query(&|q| {
                q.order = ContactOrder {
                    key: ContactSortKey::Email,
                    descending: true,
                }
            }),
            query(&|q| {
                q.order = ContactOrder {
                    key: ContactSortKey::CreatedAt,
                    descending: false,
                }
            }),
            query(&|q| {
                q.after = Some(ContactPosition {
                    id: 1,
                    key: SortValue::None,
                });
                q.limit = 2
            }),
        ] {
            both.each(|s| s.find_contacts(&q));
        }
        for limit in [1, 3, 100] {
            both.each(|s| s.timeline(1, limit));
        }
    }

    #[test]
    fn events_journeys_templates_and_timers_read_and_write_alike() {
        let Some(both) = Both::new("api_journeys") else {
            return;
        };
        assert_eq!(both.each(|s| s.pending_event_count()), json!(2));
        assert_eq!(both.each(|s| s.last_event_seq()), json!(3));

        both.each(|s| s.journeys());
        both.each(|s| s.journey("nope"));
        both.each(|s| s.put_journey_draft("second", "Second", &json!({"nodes": []}), at(300)));
        both.each(|s| s.set_journey_status("second", JourneyStatus::Paused, at(310)));
        both.each(|s| s.publish_journey("second", &json!({"nodes": []}), &[], at(320)));
        both.each(|s| s.set_journey_status("second", JourneyStatus::Archived, at(330)));
        both.each(|s| s.put_journey_draft("second", "Again", &json!({}), at(340)));
        both.each(|s| s.publish_journey("second", &json!({}), &[], at(340)));
        both.each(|s| s.publish_journey("nope", &json!({}), &[], at(340)));
        both.each(|s| s.set_journey_status("nope", JourneyStatus::Live, at(340)));
        both.each(|s| s.journey_versions("welcome"));
        both.each(|s| s.journey_versions("nope"));
        both.each(|s| s.journey_version("welcome", 1));
        both.each(|s| s.journey_version("welcome", 7));
        both.each(|s| s.running_journeys());
        both.each(|s| s.journeys());

        assert_eq!(
            both.each(|s| s.put_template(&template("hello", "Hi {{ name }}"), at(400))),
            json!(false)
        );
        both.each(|s| s.put_template(&template("hello", "Hello"), at(410)));
        both.each(|s| s.put_template(&template("other", "Other"), at(420)));
        both.each(|s| s.templates());
        both.each(|s| s.get_template("hello"));
        both.each(|s| s.get_template("nope"));
        both.each(|s| s.template_versions("hello"));
        both.each(|s| s.template_versions("nope"));
        both.each(|s| s.get_template_version("hello", 1));
        both.each(|s| s.get_template_version("hello", 9));
        both.each(|s| s.template_channel("hello").map(|c| c.map(|c| c.as_str())));
        both.each(|s| s.delete_template("hello"));
        both.each(|s| s.delete_template("hello"));
        both.each(|s| s.get_template_version("hello", 2));
        both.each(|s| s.template_channel("hello").map(|c| c.map(|c| c.as_str())));

        assert_eq!(both.each(|s| s.next_wake_at()), json!(ts(6000)));
    }

    #[test]
    fn the_outbox_reads_and_writes_alike() {
        let Some(both) = Both::new("api_outbox") else {
            return;
        };
        for (priority, journey) in [
            (Priority::Journey, Some("welcome")),
            (Priority::Transactional, None),
            (Priority::Journey, None),
        ] {
            both.each(|s| {
                s.due_messages(&DueQuery {
                    channel: "email",
                    priority,
                    journey,
                    now: at(1500),
                    limit: 10,
                    skip: &Default::default(),
                })
            });
        }
        assert_eq!(
            both.each(|s| s.due_journeys("email", at(1500), 10)),
            json!(["alpha", "welcome"])
        );
        both.each(|s| s.due_journeys("email", at(1250), 10));
        both.each(|s| s.due_journeys("sms", at(1500), 10));
        both.each(|s| s.next_message_attempt_at());
        both.each(|s| s.queue_levels());

        both.each(|s| {
            s.finish_messages(&[
                Finished {
                    id: 1,
                    outcome: DeliveryOutcome::Sent,
                    at: at(2000),
                },
                Finished {
                    id: 2,
                    outcome: DeliveryOutcome::Retry {
                        error: "busy".into(),
                        at: at(3000),
                    },
                    at: at(2000),
                },
                Finished {
                    id: 4,
                    outcome: DeliveryOutcome::Bounced {
                        error: "no such user".into(),
                        hard_bounce: true,
                    },
                    at: at(2000),
                },
                Finished {
                    id: 5,
                    outcome: DeliveryOutcome::Deferred { at: at(4000) },
                    at: at(2000),
                },
                Finished {
                    id: 6,
                    outcome: DeliveryOutcome::Failed {
                        error: "rejected".into(),
                    },
                    at: at(2000),
                },
                // Not queued any more: nothing changes.
                Finished {
                    id: 3,
                    outcome: DeliveryOutcome::Sent,
                    at: at(2000),
                },
            ])
        });
        let all = MessageQuery {
            limit: 100,
            ..Default::default()
        };
        both.each(|s| s.messages(&all));
        both.each(|s| s.journey_stats("welcome", None));
        both.each(|s| {
            s.suppressions(&SuppressionQuery {
                limit: 10,
                ..Default::default()
            })
        });

        let try_later = RequeueFilter {
            error_contains: Some("TRY later".into()),
            ..Default::default()
        };
        assert_eq!(
            both.each(|s| s.requeue_messages(&try_later, at(5000))),
            json!(1)
        );
        let welcome_failed = RequeueFilter {
            journey_id: Some("welcome".into()),
            failed_since: Some(at(1000)),
            created_until: Some(at(1001)),
            ..Default::default()
        };
        assert_eq!(
            both.each(|s| s.requeue_messages(&welcome_failed, at(5000))),
            json!(1)
        );
        both.each(|s| s.messages(&all));
        both.each(|s| s.journey_stats("welcome", None));
        both.each(|s| s.queue_levels());
        for q in [
            MessageQuery {
                user_id: Some("bob_x".into()),
                limit: 10,
                ..Default::default()
            },
            MessageQuery {
                contact_id: Some(1),
                channel: Some("email".into()),
                status: Some("queued".into()),
                limit: 10,
                ..Default::default()
            },
            MessageQuery {
                journey_id: Some("welcome".into()),
                after_id: 1,
                limit: 1,
                ..Default::default()
            },
        ] {
            both.each(|s| s.messages(&q));
        }
        both.each(|s| s.message_by_key("k3"));
        both.each(|s| s.message_by_key("nope"));
    }

    #[test]
    fn audiences_experiments_consent_and_reporting_read_and_write_alike() {
        let Some(both) = Both::new("api_audiences") else {
            return;
        };
        both.each(|s| s.lists());
        both.each(|s| s.create_list("new", at(900)));
        both.each(|s| s.create_list("vip", at(900)));
        both.each(|s| s.lists());
        both.each(|s| s.list_members("vip", 10, 0));
        both.each(|s| s.list_members("vip", 1, 1));
        both.each(|s| s.list_members("nope", 10, 0));

        both.each(|s| s.segments());
        both.each(|s| s.segment("broken"));
        both.each(|s| s.segment("nope"));
        assert_eq!(
            both.each(|s| s.put_segment("buyers", "Buyers!", &json!({"x": 1}), at(50))),
            json!(false)
        );
        assert_eq!(
            both.each(|s| s.put_segment("fresh", "Fresh", &json!({}), at(60))),
            json!(true)
        );
        both.each(|s| s.segment_members("buyers", 10, 0));
        both.each(|s| s.segment_members("nope", 10, 0));
        both.each(|s| s.delete_segment("buyers"));
        both.each(|s| s.delete_segment("buyers"));
        both.each(|s| s.segments());

        both.each(|s| s.experiments("welcome"));
        both.each(|s| s.experiments("nope"));

        let entry = |address: &str| Suppression {
            channel: "email".into(),
            address: address.into(),
            reason: "manual".into(),
            source: "api".into(),
            created_at: at(300),
        };
        assert_eq!(
            both.each(|s| s.suppress(&entry(" New@Example.com"))),
            json!(true)
        );
        assert_eq!(
            both.each(|s| s.suppress(&entry("X@example.com"))),
            json!(false)
        );
        for q in [
            SuppressionQuery {
                limit: 10,
                ..Default::default()
            },
            SuppressionQuery {
                channel: Some("sms".into()),
                limit: 10,
                ..Default::default()
            },
            SuppressionQuery {
                limit: 2,
                ..Default::default()
            },
        ] {
            both.each(|s| s.suppressions(&q));
        }

        let stats = both.each(|s| s.journey_stats("welcome", None));
        let nodes: Vec<&str> = stats["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node"].as_str().unwrap())
            .collect();
        // The live version's order, then counted nodes it lacks by name, then waiting ones.
        assert_eq!(nodes, ["start", "wait", "send", "beta", "zeta", "gone"]);
        both.each(|s| s.journey_stats("nope", None));
        both.each(|s| s.gauges());
        assert!(both.pg.disk_bytes().unwrap() > 0);
    }

    /// Processes (each with its own store) publishing one journey, or saving one template, at
    /// the same moment number their versions one after the other.
    #[test]
    fn versions_made_at_once_by_several_processes_are_numbered_in_turn() {
        let Some(db) = TestDatabase::create("versions_race") else {
            return;
        };
        let processes: Vec<PgStore> = (0..4).map(|_| db.open()).collect();
        let at = Timestamp::from_second(1_000).unwrap();
        processes[0]
            .put_journey_draft("j", "J", &json!({}), at)
            .unwrap();
        std::thread::scope(|scope| {
            for (p, store) in processes.iter().enumerate() {
                scope.spawn(move || {
                    for i in 0..5 {
                        store
                            .publish_journey("j", &json!({"by": p, "n": i}), &[], at)
                            .expect("published");
                        let template = TemplateDefinition {
                            id: "t".into(),
                            channel: Channel::Email,
                            name: None,
                            subject: Some(format!("{p}-{i}")),
                            html: None,
                            mjml: None,
                            text: Some("Hello".into()),
                            body: None,
                            tracking: None,
                            topic: None,
                            transactional: false,
                        };
                        store.put_template(&template, at).expect("saved");
                    }
                });
            }
        });
        let mut journeys: Vec<i64> = processes[0]
            .journey_versions("j")
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        journeys.sort_unstable();
        assert_eq!(journeys, (1..=20).collect::<Vec<_>>());
        let mut templates: Vec<i64> = processes[0]
            .template_versions("t")
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        templates.sort_unstable();
        assert_eq!(templates, (1..=20).collect::<Vec<_>>());
    }
}
