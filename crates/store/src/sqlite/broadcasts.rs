//! Broadcasts on SQLite (the SQL is shared with PostgreSQL: `broadcast_sql`).

use jiff::Timestamp;
use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, Row, Transaction, params, params_from_iter};
use serde_json::Value;
use waymark_core::broadcast::{Audience, VariantResult};
use waymark_core::report::{BroadcastRollupRow, Counts};

use super::tx::SqliteTx;
use super::{SqliteStore, ms, ts};
use crate::broadcast_sql as sql;
use crate::concerns::rollup_hour;
use crate::{
    BroadcastChange, BroadcastProgress, BroadcastRow, BroadcastStatus, Broadcasts, BroadcastsTx,
    NewBroadcastConversion, Result, StoreError, Winner,
};

/// `sql` with SQLite's numbered placeholders (`?N`) for PostgreSQL's (`$N`).
fn q(sql: &str) -> String {
    sql.replace('$', "?")
}

fn broadcast_from_row(r: &Row<'_>) -> rusqlite::Result<BroadcastRow> {
    let document: String = r.get(1)?;
    let status: String = r.get(2)?;
    let opt_ts = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(ts));
    Ok(BroadcastRow {
        id: r.get(0)?,
        // A document that cannot be read reads as null: the engine and the API report it.
        document: serde_json::from_str(&document).unwrap_or(Value::Null),
        // An unknown status holds the broadcast where an operator sees it.
        status: BroadcastStatus::parse(&status).unwrap_or(BroadcastStatus::Paused),
        template_version: r.get(3)?,
        audience_size: r.get(4)?,
        processed: r.get(5)?,
        released: r.get(6)?,
        cursor: r.get(7)?,
        audience_done: r.get::<_, i64>(8)? != 0,
        waiting: r.get(9)?,
        send_at: opt_ts(10)?,
        rate_since: opt_ts(11)?,
        rate_base: r.get(12)?,
        next_run_at: opt_ts(13)?,
        created_at: ts(r.get(14)?),
        updated_at: ts(r.get(15)?),
        started_at: opt_ts(16)?,
        finished_at: opt_ts(17)?,
        winner: match (r.get::<_, Option<String>>(18)?, opt_ts(19)?) {
            (Some(template), Some(at)) => Some(Winner {
                template,
                at,
                reason: r.get::<_, Option<String>>(20)?.unwrap_or_default(),
            }),
            _ => None,
        },
    })
}

fn read(tx: &rusqlite::Connection, id: &str) -> Result<BroadcastRow> {
    tx.prepare_cached(&q(&format!(
        "SELECT {} FROM broadcasts WHERE id = $1",
        sql::COLUMNS
    )))?
    .query_row([id], broadcast_from_row)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("broadcast `{id}`")))
}

fn variant_counts(
    conn: &rusqlite::Connection,
    id: &str,
    before: Option<Timestamp>,
) -> Result<Vec<VariantResult>> {
    let read = |r: &Row<'_>| {
        Ok(VariantResult {
            template: r.get(0)?,
            sent: r.get::<_, i64>(1)?.max(0) as u64,
            opened: r.get::<_, i64>(2)?.max(0) as u64,
            clicked: r.get::<_, i64>(3)?.max(0) as u64,
            converted: r.get::<_, i64>(4)?.max(0) as u64,
        })
    };
    let rows = match before {
        None => conn
            .prepare_cached(&q(&sql::variant_counts(false)))?
            .query_map([id], read)?
            .collect::<rusqlite::Result<_>>()?,
        Some(before) => conn
            .prepare_cached(&q(&sql::variant_counts(true)))?
            .query_map(params![id, ms(before)], read)?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(rows)
}

/// The parameters of an audience query: its id, `after`, the exclusions' ids, `limit`.
fn audience_params(
    audience: &Audience,
    exclude: &[Audience],
    after: i64,
    limit: i64,
) -> Vec<SqlValue> {
    let ids = sql::audience_ids(audience, exclude);
    let mut out = vec![SqlValue::Text(ids[0].to_string()), SqlValue::Integer(after)];
    out.extend(ids[1..].iter().map(|id| SqlValue::Text(id.to_string())));
    out.push(SqlValue::Integer(limit));
    out
}

fn change(tx: &Transaction<'_>, id: &str, change: BroadcastChange, now: Timestamp) -> Result<()> {
    let status: String = tx
        .prepare_cached(&q(sql::STATUS))?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("broadcast `{id}`")))?;
    let status = BroadcastStatus::parse(&status).unwrap_or(BroadcastStatus::Paused);
    if !change.applies_to().contains(&status) {
        return Err(change.refused(id, status));
    }
    let now = ms(now);
    match change {
        BroadcastChange::Schedule {
            send_at,
            audience_size,
        } => tx.prepare_cached(&q(sql::SCHEDULE))?.execute(params![
            id,
            ms(send_at),
            audience_size,
            now
        ])?,
        BroadcastChange::Pause => tx
            .prepare_cached(&q(sql::PAUSE))?
            .execute(params![id, now])?,
        BroadcastChange::Resume => tx
            .prepare_cached(&q(sql::RESUME))?
            .execute(params![id, now])?,
        BroadcastChange::Cancel => {
            tx.prepare_cached(&q(sql::FORGET_WAITING))?.execute([id])?;
            tx.prepare_cached(&q(sql::CANCEL))?
                .execute(params![id, now])?
        }
    };
    if let Some((from, to)) = change.messages() {
        for from in from {
            tx.prepare_cached(&q(sql::MOVE_MESSAGES))?
                .execute(params![id, from, to])?;
        }
    }
    Ok(())
}

impl Broadcasts for SqliteStore {
    fn create_broadcast(&self, id: &str, document: &Value, now: Timestamp) -> Result<BroadcastRow> {
        self.write(|tx| {
            let n = tx.prepare_cached(&q(sql::INSERT))?.execute(params![
                id,
                document.to_string(),
                ms(now)
            ])?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "broadcast `{id}` already exists"
                )));
            }
            read(tx, id)
        })
    }

    fn update_broadcast(&self, id: &str, document: &Value, now: Timestamp) -> Result<BroadcastRow> {
        self.write(|tx| {
            let n = tx.prepare_cached(&q(sql::UPDATE_DRAFT))?.execute(params![
                id,
                document.to_string(),
                ms(now)
            ])?;
            let row = read(tx, id)?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "broadcast `{id}` is {}: only a draft can be changed",
                    row.status.as_str()
                )));
            }
            Ok(row)
        })
    }

    fn delete_broadcast(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            let row = read(tx, id)?;
            if tx.prepare_cached(&q(sql::DELETE_DRAFT))?.execute([id])? == 0 {
                return Err(StoreError::Conflict(format!(
                    "broadcast `{id}` is {}: only a draft can be deleted (cancel it instead)",
                    row.status.as_str()
                )));
            }
            Ok(())
        })
    }

    fn broadcasts(&self) -> Result<Vec<BroadcastRow>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&q(&format!(
            "SELECT {} FROM broadcasts ORDER BY created_at DESC, id",
            sql::COLUMNS
        )))?;
        let rows = stmt.query_map([], broadcast_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn broadcast(&self, id: &str) -> Result<BroadcastRow> {
        read(&*self.conn()?, id)
    }

    fn change_broadcast(
        &self,
        id: &str,
        change_: BroadcastChange,
        now: Timestamp,
    ) -> Result<BroadcastRow> {
        self.write(|tx| {
            change(tx, id, change_, now)?;
            read(tx, id)
        })
    }

    fn broadcast_message_counts(&self, id: &str) -> Result<Vec<(String, i64)>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&q(sql::MESSAGE_COUNTS))?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn broadcast_results(
        &self,
        broadcast_id: &str,
        before: Option<Timestamp>,
    ) -> Result<Vec<VariantResult>> {
        variant_counts(&*self.conn()?, broadcast_id, before)
    }

    fn broadcast_rollups(
        &self,
        broadcast_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<BroadcastRollupRow>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&q(sql::ROLLUPS))?;
        let rows = stmt.query_map(params![broadcast_id, rollup_hour(from), ms(to)], |r| {
            Ok(BroadcastRollupRow {
                hour_at: ts(r.get(0)?),
                template: r.get(1)?,
                counts: Counts {
                    entered: r.get(2)?,
                    sent: r.get(3)?,
                    delivered: r.get(4)?,
                    bounced: r.get(5)?,
                    failed: r.get(6)?,
                    suppressed: r.get(7)?,
                    opened: r.get(8)?,
                    clicked: r.get(9)?,
                    human_opened: r.get(10)?,
                    human_clicked: r.get(11)?,
                    unsubscribed: r.get(12)?,
                    complained: r.get(13)?,
                    converted: r.get(14)?,
                    attributed: r.get(14)?,
                    revenue: r.get(15)?,
                    ..Counts::default()
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn count_audience(&self, audience: &Audience, exclude: &[Audience]) -> Result<i64> {
        let conn = self.conn()?;
        let n = conn
            .prepare_cached(&q(&sql::audience_count(audience, exclude)))?
            .query_row(
                params_from_iter(audience_params(audience, exclude, 0, i64::MAX)),
                |r| r.get(0),
            )?;
        Ok(n)
    }
}

impl BroadcastsTx for SqliteTx<'_> {
    fn claim_due_broadcast(&mut self, now: Timestamp) -> Result<Option<BroadcastRow>> {
        // The engine's transaction is SQLite's one writer: nothing else claims meanwhile.
        Ok(self
            .tx
            .prepare_cached(&q(&format!(
                "SELECT {} FROM broadcasts {}",
                sql::COLUMNS,
                sql::DUE
            )))?
            .query_row([ms(now)], broadcast_from_row)
            .optional()?)
    }

    fn audience_page(
        &mut self,
        audience: &Audience,
        exclude: &[Audience],
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<i64>> {
        let mut stmt = self
            .tx
            .prepare_cached(&q(&sql::audience_page(audience, exclude)))?;
        let rows = stmt.query_map(
            params_from_iter(audience_params(audience, exclude, after_id, limit as i64)),
            |r| r.get(0),
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn defer_broadcast_recipients(
        &mut self,
        broadcast_id: &str,
        due: &[(i64, Timestamp)],
    ) -> Result<()> {
        let mut stmt = self.tx.prepare_cached(&q(sql::DEFER))?;
        for (contact_id, at) in due {
            stmt.execute(params![broadcast_id, contact_id, ms(*at)])?;
        }
        Ok(())
    }

    fn take_due_broadcast_recipients(
        &mut self,
        broadcast_id: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<i64>> {
        let mut stmt = self.tx.prepare_cached(&q(sql::TAKE_DUE))?;
        let rows = stmt.query_map(params![broadcast_id, ms(now), limit as i64], |r| r.get(0))?;
        let mut ids: Vec<i64> = rows.collect::<rusqlite::Result<_>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    fn next_broadcast_recipient_due(&mut self, broadcast_id: &str) -> Result<Option<Timestamp>> {
        let at: Option<i64> = self
            .tx
            .prepare_cached(&q(sql::NEXT_DUE))?
            .query_row([broadcast_id], |r| r.get(0))?;
        Ok(at.map(ts))
    }

    fn save_broadcast_progress(
        &mut self,
        broadcast_id: &str,
        p: &BroadcastProgress,
        now: Timestamp,
    ) -> Result<()> {
        let opt = |t: Option<Timestamp>| t.map(ms);
        self.tx
            .prepare_cached(&q(sql::SAVE_PROGRESS))?
            .execute(params![
                broadcast_id,
                p.status.as_str(),
                p.template_version,
                p.processed,
                p.released,
                p.cursor,
                i64::from(p.audience_done),
                p.waiting,
                opt(p.rate_since),
                p.rate_base,
                opt(p.next_run_at),
                opt(p.started_at),
                opt(p.finished_at),
                ms(now),
                p.winner.as_ref().map(|w| &w.template),
                opt(p.winner.as_ref().map(|w| w.at)),
                p.winner.as_ref().map(|w| &w.reason),
            ])?;
        Ok(())
    }

    fn broadcast_variant_counts(&mut self, broadcast_id: &str) -> Result<Vec<VariantResult>> {
        variant_counts(self.tx, broadcast_id, None)
    }

    fn record_broadcast_conversion(&mut self, c: &NewBroadcastConversion) -> Result<bool> {
        let revenue = c.revenue.as_ref();
        let template: Option<String> = self
            .tx
            .prepare_cached(&q(sql::CONVERT))?
            .query_row(
                params![
                    c.broadcast_id,
                    crate::broadcast_message_key(&c.broadcast_id, c.contact_id),
                    c.contact_id,
                    c.event_seq,
                    ms(c.at),
                    c.window.as_millis() as i64,
                    revenue.map(|r| r.amount),
                    revenue.map(|r| r.currency.as_str()),
                ],
                |r| r.get(0),
            )
            .optional()?;
        let Some(template) = template else {
            return Ok(false);
        };
        let counted = revenue.filter(|r| r.counted).map_or(0.0, |r| r.amount);
        self.tx
            .prepare_cached(&q(sql::ROLLUP_CONVERSION))?
            .execute(params![
                c.broadcast_id,
                rollup_hour(c.at),
                template,
                counted
            ])?;
        Ok(true)
    }
}
