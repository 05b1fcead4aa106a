//! Counting what journeys do, on SQLite: the node statistics (all time) and the hourly
//! roll-ups reports read (`journey_rollups`, `reaction_rollups`), written in the transaction
//! that changes what they count, and conversions.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use waymark_core::report::{Counts, Reaction, ReactionRow, RollupRow, reaction_bucket};

use super::{ms, ts};
use crate::concerns::{
    NODE_STATS_COLUMNS, OutputRow, Unset, engagement_counts, rollup_hour as hour_of, with_outputs,
};
use crate::{NewConversion, Result, RollupQuery, StatsDeltas};

/// Which hour a message's counts go to.
#[derive(Clone, Copy)]
pub(super) enum Hour {
    /// The hour of this time (what happened now).
    Of(Timestamp),
    /// The hour the message was sent (taking back its `delivered` after a late bounce).
    Sent,
}

/// Adds `by` to the counters `columns` (`sent, delivered`) of message `id`'s journey node, in
/// the version of its enrollment: to its node statistics (those columns they have) and to
/// its roll-up of `hour`. Nothing for a message of no journey.
pub(super) fn count_message(
    tx: &Transaction<'_>,
    id: i64,
    columns: &str,
    by: i64,
    hour: Hour,
) -> Result<()> {
    let names: Vec<&str> = columns.split(", ").collect();
    let stats: Vec<&str> = names
        .iter()
        .copied()
        .filter(|c| NODE_STATS_COLUMNS.contains(c))
        .collect();
    if !stats.is_empty() {
        let ones = vec!["?2"; stats.len()].join(", ");
        let sets: Vec<String> = stats.iter().map(|c| format!("{c} = {c} + ?2")).collect();
        tx.prepare_cached(&format!(
            "INSERT INTO node_stats (journey_id, version, node, {})
             SELECT m.journey_id, COALESCE(e.version, 0), m.node, {ones}
             FROM messages m LEFT JOIN enrollments e ON e.id = m.enrollment_id
             WHERE m.id = ?1 AND m.journey_id IS NOT NULL AND m.node IS NOT NULL
             ON CONFLICT (journey_id, version, node) DO UPDATE SET {}",
            stats.join(", "),
            sets.join(", ")
        ))?
        .execute(params![id, by])?;
    }
    let (hour_sql, at) = match hour {
        Hour::Of(at) => ("?3", hour_of(at)),
        Hour::Sent => ("COALESCE(m.sent_at - m.sent_at % 3600000, ?3)", 0),
    };
    // A broadcast's message counts in its broadcast's roll-ups instead.
    let broadcast_hour = match hour {
        Hour::Of(_) => crate::broadcast_sql::HOUR_OF_ARG,
        Hour::Sent => crate::broadcast_sql::HOUR_SENT,
    };
    tx.prepare_cached(
        &crate::broadcast_sql::rollup_message(columns, broadcast_hour).replace('$', "?"),
    )?
    .execute(params![id, by, at])?;
    let ones = vec!["?2"; names.len()].join(", ");
    let sets: Vec<String> = names.iter().map(|c| format!("{c} = {c} + ?2")).collect();
    tx.prepare_cached(&format!(
        "INSERT INTO journey_rollups (journey_id, hour_at, version, node, {columns})
         SELECT m.journey_id, {hour_sql}, COALESCE(e.version, 0), m.node, {ones}
         FROM messages m LEFT JOIN enrollments e ON e.id = m.enrollment_id
         WHERE m.id = ?1 AND m.journey_id IS NOT NULL AND m.node IS NOT NULL
         ON CONFLICT (journey_id, hour_at, version, node) DO UPDATE SET {}",
        sets.join(", ")
    ))?
    .execute(params![id, by, at])?;
    Ok(())
}

/// A journey node in one hour, as a batch of delivery outcomes counts it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct MessageNode {
    pub journey_id: String,
    pub version: i64,
    pub node: String,
    pub hour_at: i64,
}

/// What a delivery outcome counts: sent (and delivered), failed, or bounced (failed too).
#[derive(Debug, Clone, Copy)]
pub(super) enum Outcome {
    Sent,
    Failed,
    Bounced,
}

/// A batch's delivery outcomes per key (a journey node and hour, a broadcast template and
/// hour): (sent, failed, bounced).
#[derive(Debug)]
pub(super) struct OutcomeCounts<K: Ord>(std::collections::BTreeMap<K, (i64, i64, i64)>);

impl<K: Ord> Default for OutcomeCounts<K> {
    fn default() -> Self {
        OutcomeCounts(Default::default())
    }
}

impl<K: Ord> OutcomeCounts<K> {
    pub(super) fn add(&mut self, key: K, outcome: Outcome) {
        let c = self.0.entry(key).or_default();
        match outcome {
            Outcome::Sent => c.0 += 1,
            Outcome::Failed => c.1 += 1,
            Outcome::Bounced => {
                c.1 += 1;
                c.2 += 1;
            }
        }
    }
}

/// A batch's delivery outcomes per journey node and hour.
pub(super) type MessageCounts = OutcomeCounts<MessageNode>;

/// A broadcast's template in one hour, as a batch of delivery outcomes counts it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct BroadcastHour {
    pub broadcast_id: String,
    pub template: String,
    pub hour_at: i64,
}

/// A batch's delivery outcomes per broadcast template and hour.
pub(super) type BroadcastCounts = OutcomeCounts<BroadcastHour>;

/// Adds a batch's delivery outcomes to the broadcasts' roll-ups, once per template and hour.
pub(super) fn add_broadcast_counts(tx: &Transaction<'_>, counts: &BroadcastCounts) -> Result<()> {
    let mut rollup = tx.prepare_cached(&crate::broadcast_sql::ROLLUP_OUTCOMES.replace('$', "?"))?;
    for (k, (sent, failed, bounced)) in &counts.0 {
        rollup.execute(params![
            k.broadcast_id,
            k.hour_at,
            k.template,
            sent,
            failed,
            bounced
        ])?;
    }
    Ok(())
}

/// Adds a batch's delivery outcomes to the node statistics and the roll-ups: what is sent is
/// delivered until a bounce says otherwise.
pub(super) fn add_message_counts(tx: &Transaction<'_>, counts: &MessageCounts) -> Result<()> {
    let mut stats = tx.prepare_cached(
        "INSERT INTO node_stats (journey_id, version, node, sent, delivered, failed, bounced)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)
         ON CONFLICT (journey_id, version, node) DO UPDATE SET
           sent = sent + excluded.sent, delivered = delivered + excluded.delivered,
           failed = failed + excluded.failed, bounced = bounced + excluded.bounced",
    )?;
    let mut rollup = tx.prepare_cached(
        "INSERT INTO journey_rollups (journey_id, version, node, sent, delivered, failed, bounced, hour_at)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)
         ON CONFLICT (journey_id, hour_at, version, node) DO UPDATE SET
           sent = sent + excluded.sent, delivered = delivered + excluded.delivered,
           failed = failed + excluded.failed, bounced = bounced + excluded.bounced",
    )?;
    for (n, (sent, failed, bounced)) in &counts.0 {
        let values = params![
            n.journey_id,
            n.version,
            n.node,
            sent,
            failed,
            bounced,
            n.hour_at
        ];
        stats.execute(&values[..6])?;
        rollup.execute(values)?;
    }
    Ok(())
}

/// Counts a reaction to message `id` (sent at `sent_at`) at `at` in its node's histogram.
pub(super) fn count_reaction(
    tx: &Transaction<'_>,
    id: i64,
    reaction: Reaction,
    sent_at: Timestamp,
    at: Timestamp,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO reaction_rollups (journey_id, hour_at, version, node, reaction, bucket, count)
         SELECT m.journey_id, ?2, COALESCE(e.version, 0), m.node, ?3, ?4, 1
         FROM messages m LEFT JOIN enrollments e ON e.id = m.enrollment_id
         WHERE m.id = ?1 AND m.journey_id IS NOT NULL AND m.node IS NOT NULL
         ON CONFLICT (journey_id, hour_at, version, node, reaction, bucket)
         DO UPDATE SET count = count + 1",
    )?
    .execute(params![
        id,
        hour_of(at),
        reaction.as_str(),
        reaction_bucket(at.duration_since(sent_at))
    ])?;
    Ok(())
}

/// Adds one engine batch's counters, at `at`.
pub(super) fn add_stats(tx: &Transaction<'_>, deltas: &StatsDeltas, at: Timestamp) -> Result<()> {
    let mut stats = tx.prepare_cached(
        "INSERT INTO node_stats (journey_id, version, node, entered, completed, exited, converted, sent, failed, suppressed)
         VALUES (?1, ?10, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (journey_id, version, node) DO UPDATE SET
           entered = entered + excluded.entered, completed = completed + excluded.completed,
           exited = exited + excluded.exited, converted = converted + excluded.converted,
           sent = sent + excluded.sent, failed = failed + excluded.failed,
           suppressed = suppressed + excluded.suppressed",
    )?;
    let mut rollup = tx.prepare_cached(
        "INSERT INTO journey_rollups (journey_id, hour_at, version, node, entered, completed, exited, converted, sent, failed, suppressed, deferred)
         VALUES (?1, ?11, ?10, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?12)
         ON CONFLICT (journey_id, hour_at, version, node) DO UPDATE SET
           entered = entered + excluded.entered, completed = completed + excluded.completed,
           exited = exited + excluded.exited, converted = converted + excluded.converted,
           sent = sent + excluded.sent, failed = failed + excluded.failed,
           suppressed = suppressed + excluded.suppressed, deferred = deferred + excluded.deferred",
    )?;
    let mut outputs = tx.prepare_cached(
        "INSERT INTO output_rollups (journey_id, hour_at, version, node, output, count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (journey_id, hour_at, version, node, output) DO UPDATE SET
           count = count + excluded.count",
    )?;
    let hour = hour_of(at);
    let mut journeys = std::collections::BTreeSet::new();
    for (key, s) in deltas.counters() {
        let (journey, version, node) = key;
        let deferred = deltas.deferred.get(key).copied().unwrap_or(0);
        let values = params![
            journey,
            node,
            s.entered,
            s.completed,
            s.exited,
            s.converted,
            s.sent,
            s.failed,
            s.suppressed,
            version,
            hour,
            deferred
        ];
        stats.execute(&values[..10])?;
        rollup.execute(values)?;
        journeys.insert(journey);
    }
    for ((journey, version, node, output), n) in &deltas.outputs {
        outputs.execute(params![journey, hour, version, node, output, n])?;
    }
    let mut activity = tx.prepare_cached(
        "UPDATE journeys SET first_activity_at = COALESCE(first_activity_at, ?2), last_activity_at = ?2 WHERE id = ?1",
    )?;
    for j in journeys {
        activity.execute(params![j, ms(at)])?;
    }
    Ok(())
}

/// Records a conversion (once per enrollment) and adds it to the roll-ups.
pub(super) fn record_conversion(tx: &Transaction<'_>, c: &NewConversion) -> Result<bool> {
    let touch = c.last_touch.as_ref();
    let revenue = c.revenue.as_ref();
    let inserted = tx
        .prepare_cached(
            "INSERT INTO conversions (enrollment_id, contact_id, journey_id, version, node, message_id, event_seq, at, revenue, currency)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (enrollment_id) DO NOTHING",
        )?
        .execute(params![
            c.enrollment_id,
            c.contact_id,
            c.journey_id,
            c.version,
            c.node,
            touch.map(|t| t.message_id),
            c.event_seq,
            ms(c.at),
            revenue.map(|r| r.amount),
            revenue.map(|r| r.currency.as_str()),
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    let counted = revenue.filter(|r| r.counted).map_or(0.0, |r| r.amount);
    tx.prepare_cached(
        "INSERT INTO journey_rollups (journey_id, hour_at, version, node, attributed, revenue)
         VALUES (?1, ?2, ?3, ?4, 1, ?5)
         ON CONFLICT (journey_id, hour_at, version, node) DO UPDATE SET
           attributed = attributed + 1, revenue = revenue + excluded.revenue",
    )?
    .execute(params![
        c.journey_id,
        hour_of(c.at),
        c.version,
        c.node,
        counted
    ])?;
    if let Some(t) = touch {
        count_reaction(tx, t.message_id, Reaction::Conversion, t.sent_at, c.at)?;
    }
    Ok(true)
}

const COUNT_COLUMNS: &str =
    "entered, completed, exited, converted, sent, delivered, bounced, failed,
     suppressed, opened, clicked, human_opened, human_clicked, unsubscribed, complained,
     attributed, revenue, deferred";

/// A journey's roll-up and reaction rows in the query's range.
pub(super) fn journey_rollups(
    conn: &Connection,
    q: &RollupQuery,
) -> Result<(Vec<RollupRow>, Vec<ReactionRow>)> {
    let args = params![q.journey_id, hour_of(q.from), ms(q.to), q.version, q.node];
    let filter = "journey_id = ?1 AND hour_at >= ?2 AND hour_at < ?3
                  AND (?4 IS NULL OR version = ?4) AND (?5 IS NULL OR node = ?5)";
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT hour_at, version, node, {COUNT_COLUMNS} FROM journey_rollups WHERE {filter}"
    ))?;
    let rows = stmt
        .query_map(args, |r| {
            Ok(RollupRow {
                hour_at: ts(r.get(0)?),
                version: r.get(1)?,
                node: r.get(2)?,
                counts: counts_from(r, 3)?,
                outputs: Default::default(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT hour_at, version, node, output, count FROM output_rollups WHERE {filter}"
    ))?;
    let outputs = stmt
        .query_map(args, |r| {
            Ok(OutputRow {
                hour_at: ts(r.get(0)?),
                version: r.get(1)?,
                node: r.get(2)?,
                output: r.get(3)?,
                count: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let rows = with_outputs(rows, outputs);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT hour_at, version, node, reaction, bucket, count FROM reaction_rollups WHERE {filter}"
    ))?;
    let reactions = stmt
        .query_map(args, |r| {
            let reaction: String = r.get(3)?;
            Ok((
                reaction,
                ReactionRow {
                    hour_at: ts(r.get(0)?),
                    version: r.get(1)?,
                    node: r.get(2)?,
                    reaction: Reaction::Open,
                    bucket: r.get(4)?,
                    count: r.get(5)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // A reaction this build does not know (written by a newer one) is left out.
    let reactions = reactions
        .into_iter()
        .filter_map(|(name, mut row)| {
            row.reaction = Reaction::parse(&name)?;
            Some(row)
        })
        .collect();
    Ok((rows, reactions))
}

/// Every journey's counters per node in a range of hours, summed.
pub(super) fn rollup_sums(
    conn: &Connection,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<(String, String, Counts)>> {
    let sums: Vec<String> = COUNT_COLUMNS
        .split(',')
        .map(|c| format!("SUM({})", c.trim()))
        .collect();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT journey_id, node, {} FROM journey_rollups WHERE hour_at >= ?1 AND hour_at < ?2
         GROUP BY journey_id, node ORDER BY journey_id, node",
        sums.join(", ")
    ))?;
    let rows = stmt.query_map(params![hour_of(from), ms(to)], |r| {
        Ok((r.get(0)?, r.get(1)?, counts_from(r, 2)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The counters of `COUNT_COLUMNS` from column `first` on.
fn counts_from(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Counts> {
    Ok(Counts {
        entered: r.get(first)?,
        completed: r.get(first + 1)?,
        exited: r.get(first + 2)?,
        converted: r.get(first + 3)?,
        sent: r.get(first + 4)?,
        delivered: r.get(first + 5)?,
        bounced: r.get(first + 6)?,
        failed: r.get(first + 7)?,
        suppressed: r.get(first + 8)?,
        opened: r.get(first + 9)?,
        clicked: r.get(first + 10)?,
        human_opened: r.get(first + 11)?,
        human_clicked: r.get(first + 12)?,
        unsubscribed: r.get(first + 13)?,
        complained: r.get(first + 14)?,
        attributed: r.get(first + 15)?,
        revenue: r.get(first + 16)?,
        deferred: r.get(first + 17)?,
    })
}

/// Marks a message's first open or click (by anyone, and by a person), counting each first.
pub(super) fn mark_engagement(
    tx: &Transaction<'_>,
    id: i64,
    clicked: bool,
    human: bool,
    at: Timestamp,
) -> Result<bool> {
    let Some((unset, sent_at)) = tx
        .prepare_cached(
            "SELECT opened_at IS NULL, clicked_at IS NULL, human_opened_at IS NULL,
                    human_clicked_at IS NULL, sent_at
             FROM messages WHERE id = ?1",
        )?
        .query_row([id], |r| {
            let unset = Unset {
                opened: r.get(0)?,
                clicked: r.get(1)?,
                human_opened: r.get(2)?,
                human_clicked: r.get(3)?,
            };
            Ok((unset, r.get::<_, Option<i64>>(4)?))
        })
        .optional()?
    else {
        return Ok(false);
    };
    // A click implies the message was opened, even if the open pixel was blocked.
    tx.prepare_cached(
        "UPDATE messages SET opened_at = COALESCE(opened_at, ?2),
                clicked_at = CASE WHEN ?3 THEN COALESCE(clicked_at, ?2) ELSE clicked_at END,
                human_opened_at = CASE WHEN ?4 THEN COALESCE(human_opened_at, ?2) ELSE human_opened_at END,
                human_clicked_at = CASE WHEN ?3 AND ?4 THEN COALESCE(human_clicked_at, ?2) ELSE human_clicked_at END
         WHERE id = ?1",
    )?
    .execute(params![id, ms(at), clicked, human])?;
    // Unique opens and clicks per journey node: only the first of each counts.
    for (column, reaction) in engagement_counts(clicked, human, unset) {
        count_message(tx, id, column, 1, Hour::Of(at))?;
        if let (Some(reaction), Some(sent)) = (reaction, sent_at) {
            count_reaction(tx, id, reaction, ts(sent), at)?;
        }
    }
    Ok(true)
}
