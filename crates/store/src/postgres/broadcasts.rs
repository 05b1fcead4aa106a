//! Broadcasts on PostgreSQL (the SQL is shared with SQLite: `broadcast_sql`).

use ::postgres::types::ToSql;
use ::postgres::{GenericClient, Row};
use jiff::Timestamp;
use serde_json::Value;
use waymark_core::broadcast::{Audience, VariantResult};
use waymark_core::report::{BroadcastRollupRow, Counts};

use super::tx::{PgTx, column};
use super::{PgStore, ms, outside_async, ts};
use crate::broadcast_sql as sql;
use crate::concerns::rollup_hour;
use crate::{
    BroadcastChange, BroadcastProgress, BroadcastRow, BroadcastStatus, Broadcasts, BroadcastsTx,
    NewBroadcastConversion, Result, StoreError, Winner,
};

fn broadcast_from_row(r: &Row) -> Result<BroadcastRow> {
    let document: String = column(r, 1)?;
    let status: String = column(r, 2)?;
    let opt_ts = |i: usize| Ok::<_, StoreError>(column::<Option<i64>>(r, i)?.map(ts));
    Ok(BroadcastRow {
        id: column(r, 0)?,
        // A document that cannot be read reads as null: the engine and the API report it.
        document: serde_json::from_str(&document).unwrap_or(Value::Null),
        // An unknown status holds the broadcast where an operator sees it.
        status: BroadcastStatus::parse(&status).unwrap_or(BroadcastStatus::Paused),
        template_version: column(r, 3)?,
        audience_size: column(r, 4)?,
        processed: column(r, 5)?,
        released: column(r, 6)?,
        cursor: column(r, 7)?,
        audience_done: column::<i64>(r, 8)? != 0,
        waiting: column(r, 9)?,
        send_at: opt_ts(10)?,
        rate_since: opt_ts(11)?,
        rate_base: column(r, 12)?,
        next_run_at: opt_ts(13)?,
        created_at: ts(column(r, 14)?),
        updated_at: ts(column(r, 15)?),
        started_at: opt_ts(16)?,
        finished_at: opt_ts(17)?,
        winner: match (column::<Option<String>>(r, 18)?, opt_ts(19)?) {
            (Some(template), Some(at)) => Some(Winner {
                template,
                at,
                reason: column::<Option<String>>(r, 20)?.unwrap_or_default(),
            }),
            _ => None,
        },
    })
}

fn read(client: &mut impl GenericClient, id: &str, lock: bool) -> Result<BroadcastRow> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!(
                "SELECT {} FROM broadcasts WHERE id = $1{lock}",
                sql::COLUMNS
            ),
            &[&id],
        )?
        .ok_or_else(|| StoreError::NotFound(format!("broadcast `{id}`")))?;
    broadcast_from_row(&row)
}

/// The parameters of an audience query: its id, `after`, the exclusions' ids, `limit`.
fn audience_params(
    audience: &Audience,
    exclude: &[Audience],
    after: i64,
    limit: i64,
) -> Vec<Box<dyn ToSql + Sync>> {
    let ids = sql::audience_ids(audience, exclude);
    let mut out: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(ids[0].to_string()), Box::new(after)];
    out.extend(
        ids[1..]
            .iter()
            .map(|id| Box::new(id.to_string()) as Box<dyn ToSql + Sync>),
    );
    out.push(Box::new(limit));
    out
}

fn variant_from_row(r: &Row) -> Result<VariantResult> {
    Ok(VariantResult {
        template: column(r, 0)?,
        sent: column::<i64>(r, 1)?.max(0) as u64,
        opened: column::<i64>(r, 2)?.max(0) as u64,
        clicked: column::<i64>(r, 3)?.max(0) as u64,
        converted: column::<i64>(r, 4)?.max(0) as u64,
    })
}

fn refs(args: &[Box<dyn ToSql + Sync>]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a.as_ref()).collect()
}

impl Broadcasts for PgStore {
    fn create_broadcast(&self, id: &str, document: &Value, now: Timestamp) -> Result<BroadcastRow> {
        self.write(|tx| {
            let n = tx.execute(sql::INSERT, &[&id, &document.to_string(), &ms(now)])?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "broadcast `{id}` already exists"
                )));
            }
            read(tx, id, false)
        })
    }

    fn update_broadcast(&self, id: &str, document: &Value, now: Timestamp) -> Result<BroadcastRow> {
        self.write(|tx| {
            let n = tx.execute(sql::UPDATE_DRAFT, &[&id, &document.to_string(), &ms(now)])?;
            let row = read(tx, id, false)?;
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
            let row = read(tx, id, true)?;
            if tx.execute(sql::DELETE_DRAFT, &[&id])? == 0 {
                return Err(StoreError::Conflict(format!(
                    "broadcast `{id}` is {}: only a draft can be deleted (cancel it instead)",
                    row.status.as_str()
                )));
            }
            Ok(())
        })
    }

    fn broadcasts(&self) -> Result<Vec<BroadcastRow>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            conn.query(
                &format!(
                    "SELECT {} FROM broadcasts ORDER BY created_at DESC, id",
                    sql::COLUMNS
                ),
                &[],
            )?
            .iter()
            .map(broadcast_from_row)
            .collect()
        })
    }

    fn broadcast(&self, id: &str) -> Result<BroadcastRow> {
        outside_async(|| read(&mut *self.conn()?, id, false))
    }

    fn change_broadcast(
        &self,
        id: &str,
        change: BroadcastChange,
        now: Timestamp,
    ) -> Result<BroadcastRow> {
        self.write(|tx| {
            // Locked: an engine round writing this broadcast's messages finishes first, and
            // the messages it wrote are then changed with the others.
            let status = read(tx, id, true)?.status;
            if !change.applies_to().contains(&status) {
                return Err(change.refused(id, status));
            }
            let now = ms(now);
            match change {
                BroadcastChange::Schedule {
                    send_at,
                    audience_size,
                } => tx.execute(sql::SCHEDULE, &[&id, &ms(send_at), &audience_size, &now])?,
                BroadcastChange::Pause => tx.execute(sql::PAUSE, &[&id, &now])?,
                BroadcastChange::Resume => tx.execute(sql::RESUME, &[&id, &now])?,
                BroadcastChange::Cancel => {
                    tx.execute(sql::FORGET_WAITING, &[&id])?;
                    tx.execute(sql::CANCEL, &[&id, &now])?
                }
            };
            if let Some((from, to)) = change.messages() {
                for from in from {
                    tx.execute(sql::MOVE_MESSAGES, &[&id, from, &to])?;
                }
            }
            read(tx, id, false)
        })
    }

    fn broadcast_message_counts(&self, id: &str) -> Result<Vec<(String, i64)>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            conn.query(sql::MESSAGE_COUNTS, &[&id])?
                .iter()
                .map(|r| Ok((column(r, 0)?, column(r, 1)?)))
                .collect()
        })
    }

    fn broadcast_results(
        &self,
        broadcast_id: &str,
        before: Option<Timestamp>,
    ) -> Result<Vec<VariantResult>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let rows = match before {
                None => conn.query(&sql::variant_counts(false), &[&broadcast_id])?,
                Some(before) => {
                    conn.query(&sql::variant_counts(true), &[&broadcast_id, &ms(before)])?
                }
            };
            rows.iter().map(variant_from_row).collect()
        })
    }

    fn broadcast_rollups(
        &self,
        broadcast_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<BroadcastRollupRow>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let rows = conn.query(sql::ROLLUPS, &[&broadcast_id, &rollup_hour(from), &ms(to)])?;
            rows.iter()
                .map(|r| {
                    Ok(BroadcastRollupRow {
                        hour_at: ts(column(r, 0)?),
                        template: column(r, 1)?,
                        counts: Counts {
                            entered: column(r, 2)?,
                            sent: column(r, 3)?,
                            delivered: column(r, 4)?,
                            bounced: column(r, 5)?,
                            failed: column(r, 6)?,
                            suppressed: column(r, 7)?,
                            opened: column(r, 8)?,
                            clicked: column(r, 9)?,
                            human_opened: column(r, 10)?,
                            human_clicked: column(r, 11)?,
                            unsubscribed: column(r, 12)?,
                            complained: column(r, 13)?,
                            converted: column(r, 14)?,
                            attributed: column(r, 14)?,
                            revenue: column(r, 15)?,
                            ..Counts::default()
                        },
                    })
                })
                .collect()
        })
    }

    fn count_audience(&self, audience: &Audience, exclude: &[Audience]) -> Result<i64> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let args = audience_params(audience, exclude, 0, i64::MAX);
            let row = conn.query_one(&sql::audience_count(audience, exclude), &refs(&args))?;
            column(&row, 0)
        })
    }
}

impl BroadcastsTx for PgTx<'_, '_> {
    fn claim_due_broadcast(&mut self, now: Timestamp) -> Result<Option<BroadcastRow>> {
        // Another process's round on the same broadcast holds its row: this one takes the
        // next due one, or none.
        let row = self.query_opt(
            &format!(
                "SELECT {} FROM broadcasts {} FOR UPDATE SKIP LOCKED",
                sql::COLUMNS,
                sql::DUE
            ),
            &[&ms(now)],
        )?;
        row.as_ref().map(broadcast_from_row).transpose()
    }

    fn audience_page(
        &mut self,
        audience: &Audience,
        exclude: &[Audience],
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<i64>> {
        let args = audience_params(audience, exclude, after_id, limit as i64);
        let rows = self.query(&sql::audience_page(audience, exclude), &refs(&args))?;
        rows.iter().map(|r| column(r, 0)).collect()
    }

    fn defer_broadcast_recipients(
        &mut self,
        broadcast_id: &str,
        due: &[(i64, Timestamp)],
    ) -> Result<()> {
        if due.is_empty() {
            return Ok(());
        }
        let (ids, ats): (Vec<i64>, Vec<i64>) = due.iter().map(|(id, at)| (*id, ms(*at))).unzip();
        self.execute(
            "INSERT INTO broadcast_recipients (broadcast_id, contact_id, due_at)
             SELECT $1, c, d FROM unnest($2::BIGINT[], $3::BIGINT[]) AS v(c, d)
             ON CONFLICT (broadcast_id, contact_id) DO NOTHING",
            &[&broadcast_id, &ids, &ats],
        )?;
        Ok(())
    }

    fn take_due_broadcast_recipients(
        &mut self,
        broadcast_id: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<i64>> {
        let rows = self.query(sql::TAKE_DUE, &[&broadcast_id, &ms(now), &(limit as i64)])?;
        let mut ids = rows
            .iter()
            .map(|r| column(r, 0))
            .collect::<Result<Vec<i64>>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    fn next_broadcast_recipient_due(&mut self, broadcast_id: &str) -> Result<Option<Timestamp>> {
        let row = self.query_opt(sql::NEXT_DUE, &[&broadcast_id])?;
        Ok(match row {
            Some(r) => column::<Option<i64>>(&r, 0)?.map(ts),
            None => None,
        })
    }

    fn save_broadcast_progress(
        &mut self,
        broadcast_id: &str,
        p: &BroadcastProgress,
        now: Timestamp,
    ) -> Result<()> {
        let opt = |t: Option<Timestamp>| t.map(ms);
        self.execute(
            sql::SAVE_PROGRESS,
            &[
                &broadcast_id,
                &p.status.as_str(),
                &p.template_version,
                &p.processed,
                &p.released,
                &p.cursor,
                &i64::from(p.audience_done),
                &p.waiting,
                &opt(p.rate_since),
                &p.rate_base,
                &opt(p.next_run_at),
                &opt(p.started_at),
                &opt(p.finished_at),
                &ms(now),
                &p.winner.as_ref().map(|w| &w.template),
                &opt(p.winner.as_ref().map(|w| w.at)),
                &p.winner.as_ref().map(|w| &w.reason),
            ],
        )?;
        Ok(())
    }

    fn broadcast_variant_counts(&mut self, broadcast_id: &str) -> Result<Vec<VariantResult>> {
        let rows = self.query(&sql::variant_counts(false), &[&broadcast_id])?;
        rows.iter().map(variant_from_row).collect()
    }

    fn record_broadcast_conversion(&mut self, c: &NewBroadcastConversion) -> Result<bool> {
        let revenue = c.revenue.as_ref();
        let key = crate::broadcast_message_key(&c.broadcast_id, c.contact_id);
        let amount = revenue.map(|r| r.amount);
        let currency = revenue.map(|r| r.currency.as_str());
        let rows = self.query(
            sql::CONVERT,
            &[
                &c.broadcast_id,
                &key,
                &c.contact_id,
                &c.event_seq,
                &ms(c.at),
                &(c.window.as_millis() as i64),
                &amount,
                &currency,
            ],
        )?;
        let Some(row) = rows.first() else {
            return Ok(false);
        };
        let template: String = column(row, 0)?;
        let counted = revenue.filter(|r| r.counted).map_or(0.0, |r| r.amount);
        self.execute(
            sql::ROLLUP_CONVERSION,
            &[&c.broadcast_id, &rollup_hour(c.at), &template, &counted],
        )?;
        Ok(true)
    }
}
