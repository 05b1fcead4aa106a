//! The `Store` concern traits on SQLite, one impl block per trait in the order of `crate::concerns`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::Value;
use waymark_core::journey::{Channel, TemplateDefinition};

use super::rollups::{BroadcastCounts, BroadcastHour, Hour, MessageCounts, MessageNode, Outcome};
use super::tx::{CONTACT_COLUMNS, EVENT_COLUMNS, contact_from_row, event_from_row};
use super::{SqliteStore, ms, ts};
use crate::contact_sql::{self, Arg, Dialect};
use crate::*;

pub(crate) fn template_row(conn: &Connection, id: &str) -> Result<Option<StoredTemplate>> {
    conn.prepare_cached(
        "SELECT definition, version, created_at, updated_at FROM templates WHERE id = ?1",
    )?
    .query_row([id], raw_template)
    .optional()?
    .map(RawTemplate::finish)
    .transpose()
}

/// One version of a template, also of a deleted one (`created_at`: its first version's).
pub(crate) fn template_version_row(
    conn: &Connection,
    id: &str,
    version: i64,
) -> Result<Option<StoredTemplate>> {
    conn.prepare_cached(
        "SELECT v.definition, v.version,
                (SELECT MIN(f.created_at) FROM template_versions f WHERE f.template_id = v.template_id),
                v.created_at
         FROM template_versions v WHERE v.template_id = ?1 AND v.version = ?2",
    )?
    .query_row(params![id, version], raw_template)
    .optional()?
    .map(RawTemplate::finish)
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

fn raw_template(r: &Row<'_>) -> rusqlite::Result<RawTemplate> {
    Ok(RawTemplate(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// The template versions a journey version pinned when it was published.
fn pinned_templates(
    conn: &Connection,
    journey_id: &str,
    version: i64,
) -> Result<BTreeMap<String, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT template_id, template_version FROM journey_version_templates
         WHERE journey_id = ?1 AND version = ?2",
    )?;
    let rows = stmt.query_map(params![journey_id, version], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Fills each version's pinned templates.
fn with_pins(conn: &Connection, mut versions: Vec<JourneyVersion>) -> Result<Vec<JourneyVersion>> {
    for v in &mut versions {
        v.templates = pinned_templates(conn, &v.journey_id, v.version)?;
    }
    Ok(versions)
}

/// Records one delivery outcome; returns the journey node a changed message counts for, with
/// what it counts (see `MessageCounts`), `None` when it counts nowhere.
fn finish_one(
    tx: &Transaction<'_>,
    id: i64,
    outcome: &DeliveryOutcome,
    now: Timestamp,
    broadcasts: &mut BroadcastCounts,
) -> Result<Option<(MessageNode, Outcome)>> {
    let (status, error, next, counted) = match outcome {
        DeliveryOutcome::Sent => ("sent", None, None, Some(Outcome::Sent)),
        DeliveryOutcome::Retry { error, at } => {
            ("queued", Some(error.as_str()), Some(ms(*at)), None)
        }
        DeliveryOutcome::Deferred { at } => {
            tx.prepare_cached(
                "UPDATE messages SET next_attempt_at = ?2 WHERE id = ?1 AND status = 'queued'",
            )?
            .execute(params![id, ms(*at)])?;
            return Ok(None);
        }
        DeliveryOutcome::Failed { error } => {
            ("failed", Some(error.as_str()), None, Some(Outcome::Failed))
        }
        // Counted with the failures in node statistics too: the message did not arrive.
        DeliveryOutcome::Bounced { error, .. } => (
            "bounced",
            Some(error.as_str()),
            None,
            Some(Outcome::Bounced),
        ),
    };
    // Only a message still queued takes its outcome (one recorded already is left as it is),
    // or one a broadcast's pause or cancel held while it was on its way: what happened to it
    // is recorded, except that a retry leaves it held.
    #[allow(clippy::type_complexity)]
    let changed: Option<(
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
        String,
    )> = tx
        .prepare_cached(
            "UPDATE messages SET status = CASE WHEN ?2 = 'queued' THEN status ELSE ?2 END,
                    error = ?3, next_attempt_at = ?4, attempts = attempts + 1,
                    sent_at = CASE WHEN ?2 = 'sent' THEN ?5 ELSE sent_at END,
                    failed_at = CASE WHEN ?2 IN ('failed', 'bounced') THEN ?5 ELSE failed_at END,
                    first_attempt_at = COALESCE(first_attempt_at, ?5)
             WHERE id = ?1 AND status IN ('queued', 'paused', 'cancelled')
             RETURNING journey_id, node,
                       (SELECT version FROM enrollments e WHERE e.id = messages.enrollment_id),
                       broadcast_id, template",
        )?
        .query_row(params![id, status, error, next, ms(now)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((journey, node, version, broadcast_id, template)) = changed else {
        return Ok(None);
    };
    if let (Some(broadcast_id), Some(outcome)) = (broadcast_id, counted) {
        broadcasts.add(
            BroadcastHour {
                broadcast_id,
                template,
                hour_at: crate::concerns::rollup_hour(now),
            },
            outcome,
        );
    }
    if matches!(
        outcome,
        DeliveryOutcome::Bounced {
            hard_bounce: true,
            ..
        }
    ) {
        tx.prepare_cached(
            "INSERT INTO suppressions (channel, address, reason, source, created_at)
             SELECT channel, recipient, 'hard_bounce', 'smtp', ?2 FROM messages
             WHERE id = ?1 AND recipient IS NOT NULL
             ON CONFLICT (channel, address) DO UPDATE SET reason = excluded.reason, source = excluded.source",
        )?
        .execute(params![id, ms(now)])?;
    }
    Ok(match (journey, node, counted) {
        (Some(journey_id), Some(node), Some(outcome)) => Some((
            MessageNode {
                journey_id,
                version: version.unwrap_or(0),
                node,
                hour_at: crate::concerns::rollup_hour(now),
            },
            outcome,
        )),
        _ => None,
    })
}

const MESSAGE_COLUMNS: &str = "m.id, m.idempotency_key, m.contact_id, c.user_id, m.enrollment_id, m.journey_id, m.node, m.template,
     m.channel, m.recipient, m.subject, m.html, m.text, m.status, m.error, m.attempts, m.next_attempt_at, m.created_at,
     m.sent_at, m.opened_at, m.clicked_at, m.unsubscribe_url, m.first_attempt_at, m.failed_at, m.requeued_at, m.priority,
     m.broadcast_id";

/// The queued messages among `ids`, in that order (one that left the queue meanwhile is left
/// out).
fn messages_by_id(conn: &Connection, ids: &[i64]) -> Result<Vec<MessageRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id
         WHERE m.id IN (SELECT value FROM json_each(?1)) AND m.status = 'queued'"
    ))?;
    let list = serde_json::to_string(ids).map_err(|e| StoreError::Database(e.to_string()))?;
    let mut rows = stmt
        .query_map([list], message_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let position: std::collections::HashMap<i64, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    rows.sort_by_key(|m| position[&m.id]);
    Ok(rows)
}

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    let opt_ts = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(ts));
    Ok(MessageRow {
        id: r.get(0)?,
        idempotency_key: r.get(1)?,
        contact_id: r.get(2)?,
        user_id: r.get(3)?,
        enrollment_id: r.get(4)?,
        journey_id: r.get(5)?,
        node: r.get(6)?,
        template: r.get(7)?,
        channel: r.get(8)?,
        recipient: r.get(9)?,
        subject: r.get(10)?,
        html: r.get(11)?,
        text: r.get(12)?,
        status: r.get(13)?,
        error: r.get(14)?,
        attempts: r.get(15)?,
        next_attempt_at: opt_ts(16)?,
        created_at: ts(r.get(17)?),
        sent_at: opt_ts(18)?,
        opened_at: opt_ts(19)?,
        clicked_at: opt_ts(20)?,
        unsubscribe_url: r.get(21)?,
        first_attempt_at: opt_ts(22)?,
        failed_at: opt_ts(23)?,
        requeued_at: opt_ts(24)?,
        priority: Priority::from_i64(r.get(25)?),
        broadcast_id: r.get(26)?,
    })
}

const JOURNEY_COLUMNS: &str =
    "j.id, j.name, j.status, j.live_version, j.draft, j.created_at, j.updated_at,
     j.first_activity_at, j.last_activity_at,
     (SELECT COUNT(*) FROM enrollments e WHERE e.journey_id = j.id),
     (SELECT COUNT(*) FROM enrollments e WHERE e.journey_id = j.id AND e.status = 'active'),
     (SELECT COUNT(*) FROM conversions c WHERE c.journey_id = j.id)";

fn journey_from_row(r: &Row<'_>) -> rusqlite::Result<JourneyRow> {
    let status: String = r.get(2)?;
    let draft: String = r.get(4)?;
    Ok(JourneyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        status: JourneyStatus::parse(&status).unwrap_or(JourneyStatus::Draft),
        live_version: r.get(3)?,
        draft: serde_json::from_str(&draft).unwrap_or(Value::Null),
        created_at: ts(r.get(5)?),
        updated_at: ts(r.get(6)?),
        first_activity_at: r.get::<_, Option<i64>>(7)?.map(ts),
        last_activity_at: r.get::<_, Option<i64>>(8)?.map(ts),
        entered: r.get(9)?,
        active: r.get(10)?,
        converted: r.get(11)?,
    })
}

fn version_from_row(r: &Row<'_>) -> rusqlite::Result<JourneyVersion> {
    let doc: String = r.get(2)?;
    Ok(JourneyVersion {
        journey_id: r.get(0)?,
        version: r.get(1)?,
        document: serde_json::from_str(&doc).unwrap_or(Value::Null),
        published_at: ts(r.get(3)?),
        // Filled by `with_pins` (a row closure cannot query).
        templates: BTreeMap::new(),
    })
}

/// A segment row before its condition JSON is parsed (rusqlite's row closure cannot fail with
/// a JSON error).
struct RawSegment(SegmentRow, String);

impl RawSegment {
    fn finish(self) -> Result<SegmentRow> {
        let RawSegment(mut row, condition) = self;
        // Unreadable: null, which the API reports as a broken segment.
        row.condition = serde_json::from_str(&condition).unwrap_or(Value::Null);
        Ok(row)
    }
}

fn segment_from_row(r: &Row<'_>) -> rusqlite::Result<RawSegment> {
    Ok(RawSegment(
        SegmentRow {
            id: r.get(0)?,
            name: r.get(1)?,
            condition: Value::Null,
            created_at: ts(r.get(3)?),
            updated_at: ts(r.get(4)?),
            members: r.get(5)?,
        },
        r.get(2)?,
    ))
}

fn not_found(what: String) -> impl FnOnce(StoreError) -> StoreError {
    move |e| match e {
        StoreError::NotFound(_) => StoreError::NotFound(what),
        other => other,
    }
}

impl SqliteStore {
    fn journey_in(&self, conn: &rusqlite::Connection, id: &str) -> Result<JourneyRow> {
        conn.prepare_cached(&format!(
            "SELECT {JOURNEY_COLUMNS} FROM journeys j WHERE j.id = ?1"
        ))?
        .query_row([id], journey_from_row)
        .map_err(StoreError::from)
        .map_err(not_found(format!("journey `{id}`")))
    }
}

impl Store for SqliteStore {
    fn engine_tx(&self, work: &mut dyn FnMut(&mut dyn EngineTx) -> Result<()>) -> Result<()> {
        self.run_engine_tx(work)
    }
}

impl Contacts for SqliteStore {
    fn contact(&self, id: i64) -> Result<ContactDetail> {
        let conn = self.conn()?;
        let contact = conn
            .prepare_cached(&format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = ?1"
            ))?
            .query_row([id], contact_from_row)
            .map_err(StoreError::from)
            .map_err(not_found(format!("contact {id}")))?;
        let anonymous_ids = conn
            .prepare_cached("SELECT anonymous_id FROM anonymous_ids WHERE contact_id = ?1 ORDER BY anonymous_id")?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let lists = conn
            .prepare_cached(
                "SELECT l.name FROM list_members m JOIN lists l ON l.id = m.list_id WHERE m.contact_id = ?1 ORDER BY l.name",
            )?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let enrollments = conn
            .prepare_cached(
                "SELECT id, journey_id, version, key, node, status, wake_at, entered_at, updated_at
                 FROM enrollments WHERE contact_id = ?1 ORDER BY id",
            )?
            .query_map([id], |r| {
                Ok(EnrollmentRow {
                    id: r.get(0)?,
                    journey_id: r.get(1)?,
                    version: r.get(2)?,
                    key: r.get(3)?,
                    node: r.get(4)?,
                    status: r.get(5)?,
                    wake_at: r.get::<_, Option<i64>>(6)?.map(ts),
                    entered_at: ts(r.get(7)?),
                    updated_at: ts(r.get(8)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ContactDetail {
            contact,
            anonymous_ids,
            lists,
            enrollments,
        })
    }

    fn find_contacts(&self, q: &ContactQuery) -> Result<Vec<Contact>> {
        let conn = self.conn()?;
        let search = contact_sql::find_contacts(Dialect::Sqlite, CONTACT_COLUMNS, q);
        let args = search.args.into_iter().map(|a| match a {
            Arg::Int(i) => rusqlite::types::Value::Integer(i),
            Arg::Real(r) => rusqlite::types::Value::Real(r),
            Arg::Text(t) => rusqlite::types::Value::Text(t),
        });
        let mut stmt = conn.prepare(&search.sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), contact_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn timeline(&self, contact_id: i64, limit: usize) -> Result<Vec<TimelineEntry>> {
        let conn = self.conn()?;
        let limit = limit.clamp(1, 10_000) as i64;
        let mut entries: Vec<TimelineEntry> = Vec::new();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, kind, name, properties, timestamp FROM events WHERE contact_id = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let start = entries.len();
        for row in stmt.query_map(params![contact_id, limit], |r| {
            let props: String = r.get(3)?;
            Ok(TimelineEntry::Event {
                seq: r.get(0)?,
                kind: r.get(1)?,
                name: r.get(2)?,
                properties: serde_json::from_str(&props).unwrap_or(Value::Null),
                at: ts(r.get(4)?),
            })
        })? {
            entries.push(row?);
        }
        // Read newest first (for the limit); put back in the order they happened.
        entries[start..].reverse();
        let mut stmt = conn.prepare_cached(
            "SELECT s.at, e.journey_id, s.enrollment_id, s.node, s.action, s.detail
             FROM steps s JOIN enrollments e ON e.id = s.enrollment_id
             WHERE e.contact_id = ?1 ORDER BY s.id DESC LIMIT ?2",
        )?;
        let start = entries.len();
        for row in stmt.query_map(params![contact_id, limit], |r| {
            let detail: Option<String> = r.get(5)?;
            Ok(TimelineEntry::Step {
                at: ts(r.get(0)?),
                journey_id: r.get(1)?,
                enrollment_id: r.get(2)?,
                node: r.get(3)?,
                action: r.get(4)?,
                detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
            })
        })? {
            entries.push(row?);
        }
        // Read newest first (for the limit); put back in the order they happened.
        entries[start..].reverse();
        let mut stmt = conn.prepare_cached(
            "SELECT id, created_at, channel, journey_id, node, template, status, subject, error
             FROM messages WHERE contact_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let start = entries.len();
        for row in stmt.query_map(params![contact_id, limit], |r| {
            Ok(TimelineEntry::Message {
                message_id: r.get(0)?,
                at: ts(r.get(1)?),
                channel: r.get(2)?,
                journey_id: r.get(3)?,
                node: r.get(4)?,
                template: r.get(5)?,
                status: r.get(6)?,
                subject: r.get(7)?,
                error: r.get(8)?,
            })
        })? {
            entries.push(row?);
        }
        // Read newest first (for the limit); put back in the order they happened.
        entries[start..].reverse();
        Ok(TimelineEntry::newest_in_order(entries, limit as usize))
    }
}

impl Events for SqliteStore {
    fn append_events(&self, events: &[NewEvent]) -> Result<Vec<bool>> {
        self.append(events)
    }

    fn pending_event_count(&self) -> Result<i64> {
        let conn = self.conn()?;
        let upto: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'processed_seq'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(
            conn.query_row("SELECT COUNT(*) FROM events WHERE seq > ?1", [upto], |r| {
                r.get(0)
            })?,
        )
    }

    fn last_event_seq(&self) -> Result<i64> {
        let conn = self.conn()?;
        Ok(conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?
            .query_row([], |r| r.get(0))?)
    }

    fn events_received(
        &self,
        since: Timestamp,
        until: Timestamp,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let conn = self.conn()?;
        // No index on received_at (it would cost every accepted event a second index write):
        // a period is read once, from its first page's scan on in ingest order.
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE seq > ?1 AND received_at >= ?2 AND received_at < ?3 ORDER BY seq LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![after_seq, ms(since), ms(until), limit as i64],
            event_from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Journeys for SqliteStore {
    fn journeys(&self) -> Result<Vec<JourneyRow>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {JOURNEY_COLUMNS} FROM journeys j ORDER BY j.created_at, j.id"
        ))?;
        let rows = stmt.query_map([], journey_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn journey(&self, id: &str) -> Result<JourneyRow> {
        let conn = self.conn()?;
        self.journey_in(&conn, id)
    }

    fn put_journey_draft(
        &self,
        id: &str,
        name: &str,
        draft: &Value,
        now: Timestamp,
    ) -> Result<JourneyRow> {
        self.write(|tx| {
            let status: Option<String> =
                tx.query_row("SELECT status FROM journeys WHERE id = ?1", [id], |r| r.get(0)).optional()?;
            match status.as_deref() {
                Some("archived") => return Err(StoreError::Conflict(format!("journey `{id}` is archived"))),
                Some(_) => {
                    tx.execute(
                        "UPDATE journeys SET name = ?2, draft = ?3, updated_at = ?4 WHERE id = ?1",
                        params![id, name, draft.to_string(), ms(now)],
                    )?;
                }
                None => {
                    tx.execute(
                        "INSERT INTO journeys (id, name, status, draft, created_at, updated_at) VALUES (?1, ?2, 'draft', ?3, ?4, ?4)",
                        params![id, name, draft.to_string(), ms(now)],
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
            let status: String = tx
                .query_row("SELECT status FROM journeys WHERE id = ?1", [id], |r| r.get(0))
                .map_err(StoreError::from)
                .map_err(not_found(format!("journey `{id}`")))?;
            if status == "archived" {
                return Err(StoreError::Conflict(format!("journey `{id}` is archived")));
            }
            let version: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM journey_versions WHERE journey_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO journey_versions (journey_id, version, document, published_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, version, document.to_string(), ms(now)],
            )?;
            // Pins the current version of each template it sends (in this transaction, so no
            // edit can slip in between); a template that does not exist pins nothing.
            for template in templates {
                tx.execute(
                    "INSERT OR IGNORE INTO journey_version_templates (journey_id, version, template_id, template_version)
                     SELECT ?1, ?2, id, version FROM templates WHERE id = ?3",
                    params![id, version, template],
                )?;
            }
            // Publishing a paused journey keeps it paused; a draft becomes live.
            tx.execute(
                "UPDATE journeys SET live_version = ?2, status = CASE WHEN status = 'paused' THEN 'paused' ELSE 'live' END, updated_at = ?3 WHERE id = ?1",
                params![id, version, ms(now)],
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
                "UPDATE journeys SET status = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, status.as_str(), ms(now)],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("journey `{id}`")));
            }
            Ok(())
        })?;
        self.journey(id)
    }

    fn journey_versions(&self, id: &str) -> Result<Vec<JourneyVersion>> {
        let conn = self.conn()?;
        self.journey_in(&conn, id)?;
        let mut stmt = conn.prepare_cached(
            "SELECT journey_id, version, document, published_at FROM journey_versions WHERE journey_id = ?1 ORDER BY version",
        )?;
        let rows = stmt.query_map([id], version_from_row)?;
        let versions = rows.collect::<rusqlite::Result<_>>()?;
        with_pins(&conn, versions)
    }

    fn journey_version(&self, id: &str, version: i64) -> Result<JourneyVersion> {
        let conn = self.conn()?;
        let mut found = conn
            .prepare_cached(
                "SELECT journey_id, version, document, published_at FROM journey_versions WHERE journey_id = ?1 AND version = ?2",
            )?
            .query_row(params![id, version], version_from_row)
            .map_err(StoreError::from)
            .map_err(not_found(format!("version {version} of journey `{id}`")))?;
        found.templates = pinned_templates(&conn, id, version)?;
        Ok(found)
    }

    fn running_journeys(&self) -> Result<Vec<(JourneyStatus, JourneyVersion)>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT v.journey_id, v.version, v.document, v.published_at, j.status
             FROM journeys j JOIN journey_versions v ON v.journey_id = j.id
             WHERE j.status IN ('live', 'paused')
               AND (v.version = j.live_version
                    OR v.version IN (SELECT DISTINCT e.version FROM enrollments e WHERE e.journey_id = j.id AND e.status = 'active'))",
        )?;
        let rows = stmt.query_map([], |r| {
            let status: String = r.get(4)?;
            Ok((
                JourneyStatus::parse(&status).unwrap_or(JourneyStatus::Live),
                version_from_row(r)?,
            ))
        })?;
        let mut running: Vec<(JourneyStatus, JourneyVersion)> =
            rows.collect::<rusqlite::Result<_>>()?;
        for (_, v) in &mut running {
            v.templates = pinned_templates(&conn, &v.journey_id, v.version)?;
        }
        Ok(running)
    }
}

impl Templates for SqliteStore {
    fn templates(&self) -> Result<Vec<StoredTemplate>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT definition, version, created_at, updated_at FROM templates ORDER BY id",
        )?;
        let rows = stmt.query_map([], raw_template)?;
        rows.map(|row| row?.finish()).collect()
    }

    fn get_template(&self, id: &str) -> Result<StoredTemplate> {
        let conn = self.conn()?;
        template_row(&conn, id)?.ok_or_else(|| StoreError::NotFound(format!("template `{id}`")))
    }

    fn put_template(&self, def: &TemplateDefinition, now: Timestamp) -> Result<bool> {
        let definition = serde_json::to_string(def)?;
        self.write(|tx| {
            let current: Option<String> = tx
                .query_row("SELECT definition FROM templates WHERE id = ?1", [&def.id], |r| {
                    r.get(0)
                })
                .optional()?;
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
            let version: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM template_versions WHERE template_id = ?1",
                [&def.id],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO template_versions (template_id, version, definition, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![def.id, version, definition, ms(now)],
            )?;
            tx.execute(
                "INSERT INTO templates (id, channel, definition, version, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (id) DO UPDATE SET channel = excluded.channel, definition = excluded.definition,
                   version = excluded.version, updated_at = excluded.updated_at",
                params![def.id, def.channel.as_str(), definition, version, ms(now)],
            )?;
            Ok(current.is_none())
        })
    }

    fn template_versions(&self, id: &str) -> Result<Vec<TemplateVersionSummary>> {
        let conn = self.conn()?;
        let mut versions: Vec<TemplateVersionSummary> = conn
            .prepare_cached(
                "SELECT version, created_at FROM template_versions WHERE template_id = ?1 ORDER BY version DESC",
            )?
            .query_map([id], |r| {
                Ok(TemplateVersionSummary {
                    version: r.get(0)?,
                    created_at: ts(r.get(1)?),
                    pinned_by: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        if versions.is_empty() {
            return Err(StoreError::NotFound(format!("template `{id}`")));
        }
        let mut stmt = conn.prepare_cached(
            "SELECT template_version, journey_id, version FROM journey_version_templates
             WHERE template_id = ?1 ORDER BY journey_id, version",
        )?;
        let pins = stmt.query_map([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                JourneyVersionRef {
                    journey_id: r.get(1)?,
                    version: r.get(2)?,
                },
            ))
        })?;
        for pin in pins {
            let (template_version, by) = pin?;
            if let Some(v) = versions.iter_mut().find(|v| v.version == template_version) {
                v.pinned_by.push(by);
            }
        }
        Ok(versions)
    }

    fn get_template_version(&self, id: &str, version: i64) -> Result<StoredTemplate> {
        let conn = self.conn()?;
        template_version_row(&conn, id, version)?
            .ok_or_else(|| StoreError::NotFound(format!("version {version} of template `{id}`")))
    }

    fn delete_template(&self, id: &str) -> Result<()> {
        // Its versions stay: journey versions that pinned them still send them.
        self.write(|tx| {
            if tx.execute("DELETE FROM templates WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::NotFound(format!("template `{id}`")));
            }
            Ok(())
        })
    }

    fn template_channel(&self, id: &str) -> Result<Option<Channel>> {
        let conn = self.conn()?;
        let ch: Option<String> = conn
            .prepare_cached("SELECT channel FROM templates WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(ch.and_then(|c| Channel::parse(&c)))
    }
}

impl Timers for SqliteStore {
    fn next_wake_at(&self) -> Result<Option<Timestamp>> {
        let conn = self.conn()?;
        // The first timer in `enrollments_wake` order that can fire: a `MIN` over the join
        // would read every waiting enrollment, at every step of a simulated clock.
        let v: Option<i64> = conn
            .prepare_cached(
                "SELECT MIN(at) FROM (
                   SELECT (SELECT e.wake_at FROM enrollments e INDEXED BY enrollments_wake
                             JOIN journeys j ON j.id = e.journey_id
                           WHERE e.wake_at IS NOT NULL AND e.status = 'active' AND j.status = 'live'
                           ORDER BY e.wake_at LIMIT 1) AS at
                   UNION ALL SELECT MIN(due_at) FROM segment_checks
                   UNION ALL SELECT MIN(due_at) FROM trigger_schedule
                   UNION ALL SELECT MIN(due_at) FROM score_expiries
                   UNION ALL SELECT MIN(next_run_at) FROM broadcasts
                     WHERE status IN ('scheduled', 'sending'))",
            )?
            .query_row([], |r| r.get(0))?;
        Ok(v.map(ts))
    }
}

impl Outbox for SqliteStore {
    fn due_messages(&self, q: &DueQuery<'_>) -> Result<Vec<MessageRow>> {
        let conn = self.conn()?;
        // First the ids, from one range of `messages_due` alone (the rowid is in the index),
        // leaving out those in flight; then the whole rows of the others.
        let journey = match q.journey {
            Some(_) => "AND m.journey_id = ?5",
            None => "AND m.journey_id IS NULL AND ?5 IS NULL",
        };
        let mut ids = Vec::with_capacity(q.limit);
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT m.id FROM messages m INDEXED BY messages_due
                 WHERE m.status = 'queued' AND m.channel = ?1 AND m.priority = ?2 {journey}
                   AND m.next_attempt_at <= ?3
                 ORDER BY m.next_attempt_at, m.id LIMIT ?4"
            ))?;
            let mut rows = stmt.query(params![
                q.channel,
                q.priority.as_i64(),
                ms(q.now),
                (q.limit + q.skip.len()) as i64,
                q.journey
            ])?;
            while ids.len() < q.limit {
                let Some(row) = rows.next()? else { break };
                let id: i64 = row.get(0)?;
                if !q.skip.contains(&id) {
                    ids.push(id);
                }
            }
        }
        messages_by_id(&conn, &ids)
    }

    fn due_journeys(&self, channel: &str, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        let conn = self.conn()?;
        // A skip scan of `messages_due`: one seek per journey, however many messages each has
        // queued.
        let mut stmt = conn.prepare_cached(
            "WITH RECURSIVE due(journey) AS (
                 SELECT (SELECT MIN(journey_id) FROM messages INDEXED BY messages_due
                         WHERE status = 'queued' AND channel = ?1 AND priority = ?2
                           AND journey_id IS NOT NULL AND next_attempt_at <= ?3)
                 UNION ALL
                 SELECT (SELECT MIN(journey_id) FROM messages INDEXED BY messages_due
                         WHERE status = 'queued' AND channel = ?1 AND priority = ?2
                           AND journey_id > due.journey AND next_attempt_at <= ?3)
                 FROM due WHERE due.journey IS NOT NULL
             )
             SELECT journey FROM due WHERE journey IS NOT NULL LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![channel, Priority::Journey.as_i64(), ms(now), limit as i64],
            |r| r.get(0),
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn next_message_attempt_at(&self) -> Result<Option<Timestamp>> {
        let conn = self.conn()?;
        let v: Option<i64> = conn
            .prepare_cached("SELECT MIN(next_attempt_at) FROM messages WHERE status = 'queued'")?
            .query_row([], |r| r.get(0))?;
        Ok(v.map(ts))
    }

    fn finish_messages(&self, finished: &[Finished]) -> Result<()> {
        // One transaction (one fsync) for a whole batch of outcomes.
        self.write(|tx| {
            let mut counts = MessageCounts::default();
            let mut broadcasts = BroadcastCounts::default();
            for f in finished {
                if let Some((node, outcome)) =
                    finish_one(tx, f.id, &f.outcome, f.at, &mut broadcasts)?
                {
                    counts.add(node, outcome);
                }
            }
            // Once per journey node (broadcast template) and hour, not once per message.
            super::rollups::add_broadcast_counts(tx, &broadcasts)?;
            super::rollups::add_message_counts(tx, &counts)
        })
    }

    fn requeue_messages(&self, f: &RequeueFilter, now: Timestamp) -> Result<i64> {
        let opt_ms = |t: Option<Timestamp>| t.map(ms);
        let error = f.error_contains.as_deref().map(str::to_lowercase);
        let args = params![
            f.journey_id,
            f.channel,
            opt_ms(f.created_since),
            opt_ms(f.created_until),
            opt_ms(f.failed_since),
            opt_ms(f.failed_until),
            error,
            ms(now),
        ];
        const MATCHES: &str = "status = 'failed'
             AND (?1 IS NULL OR journey_id = ?1) AND (?2 IS NULL OR channel = ?2)
             AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR created_at < ?4)
             AND (?5 IS NULL OR failed_at >= ?5) AND (?6 IS NULL OR failed_at < ?6)
             AND (?7 IS NULL OR instr(lower(error), ?7) > 0)";
        self.write(|tx| {
            // The node statistics counted these as failed; they are not any more. (`?8` is
            // unused here but keeps both statements' parameters the same.)
            tx.prepare_cached(&format!(
                "UPDATE node_stats SET failed = MAX(failed - n.count, 0)
                 FROM (SELECT m.journey_id, COALESCE(e.version, 0) AS version, m.node,
                              COUNT(*) AS count
                       FROM messages m LEFT JOIN enrollments e ON e.id = m.enrollment_id
                       WHERE m.id IN (SELECT id FROM messages WHERE {MATCHES})
                         AND ?8 IS NOT NULL AND m.journey_id IS NOT NULL
                       GROUP BY m.journey_id, COALESCE(e.version, 0), m.node) AS n
                 WHERE node_stats.journey_id = n.journey_id AND node_stats.version = n.version
                   AND node_stats.node = n.node"
            ))?
            .execute(args)?;
            // And the roll-ups of the hours they failed in.
            tx.prepare_cached(&format!(
                "UPDATE journey_rollups SET failed = failed - n.count
                 FROM (SELECT m.journey_id, COALESCE(e.version, 0) AS version, m.node,
                              m.failed_at - m.failed_at % 3600000 AS hour_at, COUNT(*) AS count
                       FROM messages m LEFT JOIN enrollments e ON e.id = m.enrollment_id
                       WHERE m.id IN (SELECT id FROM messages WHERE {MATCHES})
                         AND ?8 IS NOT NULL AND m.journey_id IS NOT NULL AND m.failed_at IS NOT NULL
                       GROUP BY 1, 2, 3, 4) AS n
                 WHERE journey_rollups.journey_id = n.journey_id
                   AND journey_rollups.hour_at = n.hour_at
                   AND journey_rollups.version = n.version AND journey_rollups.node = n.node"
            ))?
            .execute(args)?;
            // And the broadcasts' roll-ups of the hours they failed in.
            tx.prepare_cached(&format!(
                "UPDATE broadcast_rollups SET failed = failed - n.count
                 FROM (SELECT m.broadcast_id, m.template,
                              m.failed_at - m.failed_at % 3600000 AS hour_at, COUNT(*) AS count
                       FROM messages m
                       WHERE m.id IN (SELECT id FROM messages WHERE {MATCHES})
                         AND ?8 IS NOT NULL AND m.broadcast_id IS NOT NULL AND m.failed_at IS NOT NULL
                       GROUP BY 1, 2, 3) AS n
                 WHERE broadcast_rollups.broadcast_id = n.broadcast_id
                   AND broadcast_rollups.hour_at = n.hour_at
                   AND broadcast_rollups.template = n.template"
            ))?
            .execute(args)?;
            let n = tx
                .prepare_cached(&format!(
                    "UPDATE messages SET status = 'queued', attempts = 0, next_attempt_at = ?8,
                            first_attempt_at = NULL, failed_at = NULL, requeued_at = ?8
                     WHERE {MATCHES}"
                ))?
                .execute(args)?;
            Ok(n as i64)
        })
    }

    fn queue_levels(&self) -> Result<Vec<QueueLevel>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT channel, COUNT(*), MIN(COALESCE(requeued_at, created_at)) FROM messages
             WHERE status = 'queued' GROUP BY channel ORDER BY channel",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(QueueLevel {
                channel: r.get(0)?,
                queued: r.get(1)?,
                oldest_queued_at: r.get::<_, Option<i64>>(2)?.map(ts),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn messages(&self, q: &MessageQuery) -> Result<Vec<MessageRow>> {
        let conn = self.conn()?;
        let mut clauses = vec!["m.id > ?1".to_string()];
        let mut args: Vec<rusqlite::types::Value> = vec![q.after_id.into()];
        let mut push = |clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            clauses.push(clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(u) = &q.user_id {
            // Any id the contact has had, as `find_contacts` takes it.
            push(
                "(c.user_id = ? OR c.id IN (SELECT contact_id FROM anonymous_ids WHERE anonymous_id = ?))",
                u.clone().into(),
            );
        }
        if let Some(c) = q.contact_id {
            push("m.contact_id = ?", c.into());
        }
        if let Some(j) = &q.journey_id {
            push("m.journey_id = ?", j.clone().into());
        }
        if let Some(ch) = &q.channel {
            push("m.channel = ?", ch.clone().into());
        }
        if let Some(s) = &q.status {
            push("m.status = ?", s.clone().into());
        }
        if let Some(b) = &q.broadcast_id {
            push("m.broadcast_id = ?", b.clone().into());
        }
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id WHERE {} ORDER BY m.id LIMIT {}",
            clauses.join(" AND "),
            q.limit.clamp(1, 1000)
        );
        // Cached: a reader that pages through messages (`waymark simulate` at every step)
        // asks the same few shapes again and again.
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), message_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn message_by_key(&self, idempotency_key: &str) -> Result<Option<MessageRow>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id WHERE m.idempotency_key = ?1"
        ))?;
        Ok(stmt
            .query_row([idempotency_key], message_from_row)
            .optional()?)
    }

    fn mark_message_unsubscribed(&self, idempotency_key: &str, at: Timestamp) -> Result<bool> {
        self.write(|tx| {
            let Some(id) = tx
                .prepare_cached(
                    "UPDATE messages SET unsubscribed_at = ?2
                     WHERE idempotency_key = ?1 AND unsubscribed_at IS NULL RETURNING id",
                )?
                .query_row(params![idempotency_key, ms(at)], |r| r.get::<_, i64>(0))
                .optional()?
            else {
                return Ok(false);
            };
            super::rollups::count_message(tx, id, "unsubscribed", 1, Hour::Of(at))?;
            Ok(true)
        })
    }
}

impl Audiences for SqliteStore {
    fn lists(&self) -> Result<Vec<ListSummary>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT l.name, (SELECT COUNT(*) FROM list_members m WHERE m.list_id = l.id), l.created_at FROM lists l ORDER BY l.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ListSummary {
                name: r.get(0)?,
                members: r.get(1)?,
                created_at: ts(r.get(2)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn create_list(&self, name: &str, now: Timestamp) -> Result<ListSummary> {
        self.write(|tx| {
            let n = tx.execute("INSERT INTO lists (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING", params![name, ms(now)])?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("a list named `{name}` exists")));
            }
            Ok(ListSummary { name: name.to_string(), members: 0, created_at: now })
        })
    }

    fn list_members(&self, name: &str, limit: usize, after_id: i64) -> Result<Vec<Contact>> {
        let conn = self.conn()?;
        let list_id: i64 = conn
            .query_row("SELECT id FROM lists WHERE name = ?1", [name], |r| r.get(0))
            .map_err(StoreError::from)
            .map_err(not_found(format!("list `{name}`")))?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM list_members m JOIN contacts c ON c.id = m.contact_id
             WHERE m.list_id = ?1 AND c.id > ?2 ORDER BY c.id LIMIT ?3",
            CONTACT_COLUMNS
                .split(", ")
                .map(|c| format!("c.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        let rows = stmt.query_map(
            params![list_id, after_id, limit.clamp(1, 1000) as i64],
            contact_from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn segments(&self) -> Result<Vec<SegmentRow>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT s.id, s.name, s.condition, s.created_at, s.updated_at,
                    (SELECT COUNT(*) FROM segment_members m WHERE m.segment_id = s.id)
             FROM segments s ORDER BY s.id",
        )?;
        let rows = stmt.query_map([], segment_from_row)?;
        let rows: Vec<_> = rows.collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(|r| r.finish()).collect()
    }

    fn segment(&self, id: &str) -> Result<SegmentRow> {
        let conn = self.conn()?;
        conn.prepare_cached(
            "SELECT s.id, s.name, s.condition, s.created_at, s.updated_at,
                    (SELECT COUNT(*) FROM segment_members m WHERE m.segment_id = s.id)
             FROM segments s WHERE s.id = ?1",
        )?
        .query_row([id], segment_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("segment `{id}`")))?
        .finish()
    }

    fn put_segment(&self, id: &str, name: &str, condition: &Value, now: Timestamp) -> Result<bool> {
        self.write(|tx| {
            let existed = tx
                .query_row("SELECT 1 FROM segments WHERE id = ?1", [id], |_| Ok(()))
                .optional()?
                .is_some();
            tx.execute(
                "INSERT INTO segments (id, name, condition, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, condition = excluded.condition,
                   updated_at = excluded.updated_at",
                params![id, name, condition.to_string(), ms(now)],
            )?;
            Ok(!existed)
        })
    }

    fn delete_segment(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM segments WHERE id = ?1", [id])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("segment `{id}`")));
            }
            tx.execute("DELETE FROM segment_members WHERE segment_id = ?1", [id])?;
            tx.execute("DELETE FROM segment_checks WHERE segment_id = ?1", [id])?;
            tx.execute("DELETE FROM segment_history WHERE segment_id = ?1", [id])?;
            Ok(())
        })
    }

    fn segment_history(&self, id: &str, from: Timestamp, to: Timestamp) -> Result<SegmentHistory> {
        self.segment(id)?;
        let conn = self.conn()?;
        let members_before: i64 = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(entered - exited), 0) FROM segment_history
                 WHERE segment_id = ?1 AND hour_at < ?2",
            )?
            .query_row(params![id, ms(from)], |r| r.get(0))?;
        let mut stmt = conn.prepare_cached(
            "SELECT hour_at, entered, exited FROM segment_history
             WHERE segment_id = ?1 AND hour_at >= ?2 AND hour_at < ?3 ORDER BY hour_at",
        )?;
        let rows = stmt.query_map(params![id, ms(from), ms(to)], |r| {
            Ok(SegmentHour {
                hour: ts(r.get(0)?),
                entered: r.get(1)?,
                left: r.get(2)?,
            })
        })?;
        Ok(SegmentHistory {
            members_before,
            hours: rows.collect::<rusqlite::Result<_>>()?,
        })
    }

    fn segment_members(&self, id: &str, limit: usize, after_id: i64) -> Result<Vec<Contact>> {
        self.segment(id)?;
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM segment_members m JOIN contacts c ON c.id = m.contact_id
             WHERE m.segment_id = ?1 AND c.id > ?2 ORDER BY c.id LIMIT ?3",
            CONTACT_COLUMNS
                .split(", ")
                .map(|c| format!("c.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        let rows = stmt.query_map(
            params![id, after_id, limit.clamp(1, 1000) as i64],
            contact_from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Experiments for SqliteStore {
    fn experiments(
        &self,
        journey_id: &str,
    ) -> Result<(Vec<ExperimentCounts>, Vec<ExperimentWinner>)> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT node, variant, entered, converted FROM experiment_variants
             WHERE journey_id = ?1 ORDER BY node, variant",
        )?;
        let counts = stmt
            .query_map([journey_id], |r| {
                Ok(ExperimentCounts {
                    node: r.get(0)?,
                    variant: r.get(1)?,
                    entered: r.get(2)?,
                    converted: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = conn.prepare_cached(
            "SELECT node, winner, decided_at, verdict FROM experiment_winners
             WHERE journey_id = ?1 ORDER BY node",
        )?;
        let winners = stmt
            .query_map([journey_id], |r| {
                let verdict: String = r.get(3)?;
                Ok(ExperimentWinner {
                    node: r.get(0)?,
                    winner: r.get(1)?,
                    decided_at: ts(r.get(2)?),
                    verdict: serde_json::from_str(&verdict).unwrap_or(Value::Null),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok((counts, winners))
    }
}

impl Consent for SqliteStore {
    fn suppressions(&self, q: &SuppressionQuery) -> Result<Vec<Suppression>> {
        let conn = self.conn()?;
        let channel = q.channel.clone();
        let address = q
            .address
            .as_deref()
            .map(|a| suppression_address(channel.as_deref().unwrap_or("email"), a));
        let mut stmt = conn.prepare_cached(
            "SELECT channel, address, reason, source, created_at FROM suppressions
             WHERE (?1 IS NULL OR channel = ?1) AND (?2 IS NULL OR address = ?2 OR address = ?3)
             ORDER BY created_at DESC, channel, address LIMIT ?4",
        )?;
        // Without a channel, the address is matched as given and lower-cased.
        let raw = q.address.as_deref().map(str::trim);
        let rows = stmt.query_map(
            params![channel, address, raw, q.limit.clamp(1, 1000) as i64],
            |r| {
                Ok(Suppression {
                    channel: r.get(0)?,
                    address: r.get(1)?,
                    reason: r.get(2)?,
                    source: r.get(3)?,
                    created_at: ts(r.get(4)?),
                })
            },
        )?;
        let mut list: Vec<Suppression> = rows.collect::<rusqlite::Result<_>>()?;
        // An address asked for by name also finds the hashed entry an erasure left.
        if let Some(raw) = raw {
            let channels = match &channel {
                Some(c) => vec![c.clone()],
                None => vec!["email".to_string(), "sms".to_string()],
            };
            for c in channels {
                if let Some(entry) = super::privacy::erased_entry(&conn, &c, raw)? {
                    list.push(entry);
                }
            }
        }
        Ok(list)
    }

    fn suppress(&self, e: &Suppression) -> Result<bool> {
        self.write(|tx| suppress_in(tx, e))
    }

    fn unsuppress(&self, channel: &str, address: &str) -> Result<bool> {
        self.write(|tx| unsuppress_in(tx, channel, address))
    }
}

impl Reporting for SqliteStore {
    fn journey_people(&self, q: &PeopleQuery) -> Result<Vec<PersonRow>> {
        let conn = self.conn()?;
        let drill = crate::drill_sql::journey_people(Dialect::Sqlite, q);
        let args = drill.args.into_iter().map(|a| match a {
            Arg::Int(i) => rusqlite::types::Value::Integer(i),
            Arg::Real(r) => rusqlite::types::Value::Real(r),
            Arg::Text(t) => rusqlite::types::Value::Text(t),
        });
        let mut stmt = conn.prepare_cached(&drill.sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
            let t = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(ts));
            Ok(PersonRow {
                cursor: r.get(0)?,
                contact_id: r.get(1)?,
                user_id: r.get(2)?,
                email: r.get(3)?,
                enrollment_id: r.get(4)?,
                node: r.get(5)?,
                entered_at: t(6)?,
                wake_at: t(7)?,
                message_id: r.get(8)?,
                channel: r.get(9)?,
                status: r.get(10)?,
                sent_at: t(11)?,
                opened_at: t(12)?,
                human_opened_at: t(13)?,
                clicked_at: t(14)?,
                human_clicked_at: t(15)?,
                unsubscribed_at: t(16)?,
                complained_at: t(17)?,
                converted_at: t(18)?,
                revenue: r.get(19)?,
                currency: r.get(20)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn rollup_sums(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, String, waymark_core::report::Counts)>> {
        super::rollups::rollup_sums(&*self.conn()?, from, to)
    }

    fn journey_rollups(
        &self,
        query: &RollupQuery,
    ) -> Result<(
        Vec<waymark_core::report::RollupRow>,
        Vec<waymark_core::report::ReactionRow>,
    )> {
        super::rollups::journey_rollups(&*self.conn()?, query)
    }

    fn journey_stats(&self, id: &str, version: Option<i64>) -> Result<JourneyStats> {
        let conn = self.conn()?;
        let journey = self.journey_in(&conn, id)?;
        // Nodes in the order of the version asked for, else of the live (or draft) document;
        // unknown ones after.
        let document = match version {
            Some(v) => self.journey_version(id, v)?.document,
            None => journey
                .live_version
                .and_then(|v| self.journey_version(id, v).ok())
                .map(|v| v.document)
                .unwrap_or(journey.draft.clone()),
        };
        let nodes: Vec<NodeStats> = conn
            .prepare_cached(
                "SELECT node, SUM(entered), SUM(completed), SUM(exited), SUM(converted), SUM(sent),
                        SUM(delivered), SUM(bounced), SUM(failed), SUM(suppressed), SUM(opened),
                        SUM(clicked)
                 FROM node_stats WHERE journey_id = ?1 AND (?2 IS NULL OR version = ?2)
                 GROUP BY node ORDER BY node",
            )?
            .query_map(params![id, version], |r| {
                Ok(NodeStats {
                    node: r.get(0)?,
                    entered: r.get(1)?,
                    waiting: 0,
                    completed: r.get(2)?,
                    exited: r.get(3)?,
                    converted: r.get(4)?,
                    sent: r.get(5)?,
                    delivered: r.get(6)?,
                    bounced: r.get(7)?,
                    failed: r.get(8)?,
                    suppressed: r.get(9)?,
                    opened: r.get(10)?,
                    clicked: r.get(11)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let waiting: Vec<(String, i64)> = conn
            .prepare_cached(
                "SELECT node, COUNT(*) FROM enrollments
                 WHERE journey_id = ?1 AND status = 'active' AND (?2 IS NULL OR version = ?2)
                 GROUP BY node",
            )?
            .query_map(params![id, version], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let nodes = NodeStats::arrange(nodes, waiting, &document);
        let enrollments = conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(status = 'active'), 0),
                    COALESCE(SUM(status = 'completed'), 0), COALESCE(SUM(status = 'exited'), 0),
                    (SELECT COUNT(*) FROM conversions
                     WHERE journey_id = ?1 AND (?2 IS NULL OR version = ?2))
             FROM enrollments WHERE journey_id = ?1 AND (?2 IS NULL OR version = ?2)",
            params![id, version],
            |r| {
                Ok(EnrollmentCounts {
                    entered: r.get(0)?,
                    active: r.get(1)?,
                    completed: r.get(2)?,
                    exited: r.get(3)?,
                    converted: r.get(4)?,
                })
            },
        )?;
        Ok(JourneyStats::of(journey, version, enrollments, nodes))
    }

    fn gauges(&self) -> Result<Gauges> {
        let conn = self.conn()?;
        let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        Ok(Gauges {
            timers_waiting: one("SELECT COUNT(*) FROM enrollments WHERE wake_at IS NOT NULL")?,
            enrollments_active: one("SELECT COUNT(*) FROM enrollments WHERE status = 'active'")?,
            events_pending: self.pending_event_count()?,
            messages_queued: one("SELECT COUNT(*) FROM messages WHERE status = 'queued'")?,
        })
    }

    fn disk_bytes(&self) -> Result<u64> {
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path().as_os_str().to_owned();
            p.push(suffix);
            total += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        }
        Ok(total)
    }
}

impl Privacy for SqliteStore {
    fn contact_export_counts(&self, contact_id: i64) -> Result<BTreeMap<String, i64>> {
        self.export_counts(contact_id)
    }

    fn export_contact(
        &self,
        contact_id: i64,
        page: usize,
        emit: &mut dyn FnMut(ExportPage) -> Result<()>,
    ) -> Result<()> {
        self.export(contact_id, page, emit)
    }

    fn record_audit(&self, entry: &NewAudit) -> Result<i64> {
        self.write(|tx| super::privacy::record_audit(tx, entry))
    }

    fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.audit(query)
    }
}

impl Meta for SqliteStore {
    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.get_meta(key)
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.put_meta(key, value)
    }
}

impl Cluster for SqliteStore {
    /// One process works on a SQLite file: this one, with all the work (one partition).
    fn cluster(&self) -> Result<ClusterStatus> {
        let since = jiff::Timestamp::now().duration_since(self.opened_at);
        Ok(ClusterStatus {
            partitions: 1,
            lease_time_seconds: 0.0,
            processes: vec![ClusterProcess {
                id: format!("{}:{}", this_host(), std::process::id()),
                host: this_host(),
                pid: std::process::id() as i64,
                started_at: self.opened_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                heartbeat_age_seconds: 0.0,
                alive: true,
                this_process: true,
                partitions: vec![ClusterLease {
                    partition: 0,
                    held_seconds: since.as_secs_f64(),
                }],
            }],
            unowned: Vec::new(),
        })
    }

    fn on_events_elsewhere(&self, _wake: std::sync::Arc<dyn Fn() + Send + Sync>) {}
}

/// `Store::suppress` and `EngineTx::suppress`, in the caller's transaction.
pub(crate) fn suppress_in(tx: &Transaction<'_>, e: &Suppression) -> Result<bool> {
    let address = suppression_address(&e.channel, &e.address);
    let existed: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM suppressions WHERE channel = ?1 AND address = ?2)",
        )?
        .query_row(params![e.channel, address], |r| r.get(0))?;
    tx.prepare_cached(
        "INSERT INTO suppressions (channel, address, reason, source, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (channel, address) DO UPDATE SET reason = excluded.reason, source = excluded.source",
    )?
    .execute(params![e.channel, address, e.reason, e.source, ms(e.created_at)])?;
    Ok(!existed)
}

/// `Store::unsuppress` and `EngineTx::unsuppress`, in the caller's transaction.
pub(crate) fn unsuppress_in(tx: &Transaction<'_>, channel: &str, address: &str) -> Result<bool> {
    let address = suppression_address(channel, address);
    let n = tx
        .prepare_cached("DELETE FROM suppressions WHERE channel = ?1 AND address = ?2")?
        .execute(params![channel, address])?;
    // Also lifts the hashed entry an erasure left for this address.
    let erased = super::privacy::unsuppress_erased(tx, channel, &address)?;
    Ok(n == 1 || erased)
}
