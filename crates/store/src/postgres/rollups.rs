//! Counting what journeys do, on PostgreSQL: the node statistics (all time) and the hourly
//! roll-ups reports read (`journey_rollups`, `reaction_rollups`), written in the transaction
//! that changes what they count, and conversions. Counters only ever add (`x = x + n`), so
//! processes writing the same hour's row do not lose each other's counts.

use ::postgres::{GenericClient, Transaction};
use jiff::Timestamp;
use waymark_core::report::{Counts, Reaction, ReactionRow, RollupRow, reaction_bucket};

use super::tx::column;
use super::{ms, ts};
use crate::concerns::{
    NODE_STATS_COLUMNS, OutputRow, Unset, engagement_counts, rollup_hour as hour_of, with_outputs,
};
use crate::{NewConversion, Result, RollupQuery};

/// Which hour a message's counts go to.
#[derive(Clone, Copy)]
pub(crate) enum Hour {
    /// The hour of this time (what happened now).
    Of(Timestamp),
    /// The hour the message was sent (taking back its `delivered` after a late bounce).
    Sent,
}

/// Adds `by` to the counters `columns` (`sent, delivered`) of message `id`'s journey node, in
/// the version of its enrollment: to its node statistics (those columns they have) and to
/// its roll-up of `hour`. Nothing for a message of no journey.
pub(crate) fn count_message(
    tx: &mut Transaction<'_>,
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
    // Qualified: on PostgreSQL a bare column in DO UPDATE could also name the proposed row's.
    if !stats.is_empty() {
        let values = vec!["$2::BIGINT"; stats.len()].join(", ");
        let sets: Vec<String> = stats
            .iter()
            .map(|c| format!("{c} = node_stats.{c} + $2"))
            .collect();
        tx.execute(
            &format!(
                "INSERT INTO node_stats (journey_id, version, node, {})
                 SELECT m.journey_id, COALESCE(e.version, 0), m.node, {values}
                 FROM messages m LEFT JOIN enrollments e ON e.id = m.enrollment_id
                 WHERE m.id = $1 AND m.journey_id IS NOT NULL AND m.node IS NOT NULL
                 ON CONFLICT (journey_id, version, node) DO UPDATE SET {}",
                stats.join(", "),
                sets.join(", ")
            ),
            &[&id, &by],
        )?;
    }
    let (hour_sql, at) = match hour {
        Hour::Of(at) => ("$3::BIGINT", hour_of(at)),
        Hour::Sent => ("COALESCE(m.sent_at - m.sent_at % 3600000, $3::BIGINT)", 0),
    };
    // A broadcast's message counts in its broadcast's roll-ups instead.
    let broadcast_hour = match hour {
        Hour::Of(_) => crate::broadcast_sql::HOUR_OF_ARG,
        Hour::Sent => crate::broadcast_sql::HOUR_SENT,
    };
    tx.execute(
        &crate::broadcast_sql::rollup_message(columns, broadcast_hour),
        &[&id, &by, &at],
    )?;
    let values = vec!["$2::BIGINT"; names.len()].join(", ");
    let sets: Vec<String> = names
        .iter()
        .map(|c| format!("{c} = journey_rollups.{c} + $2"))
        .collect();
    tx.execute(
        &format!(
            "INSERT INTO journey_rollups (journey_id, hour_at, version, node, {columns})
             SELECT m.journey_id, {hour_sql}, COALESCE(e.version, 0), m.node, {values}
             FROM messages m LEFT JOIN enrollments e ON e.id = m.enrollment_id
             WHERE m.id = $1 AND m.journey_id IS NOT NULL AND m.node IS NOT NULL
             ON CONFLICT (journey_id, hour_at, version, node) DO UPDATE SET {}",
            sets.join(", ")
        ),
        &[&id, &by, &at],
    )?;
    Ok(())
}

/// Counts a reaction to message `id` (sent at `sent_at`) at `at` in its node's histogram.
pub(crate) fn count_reaction(
    tx: &mut Transaction<'_>,
    id: i64,
    reaction: Reaction,
    sent_at: Timestamp,
    at: Timestamp,
) -> Result<()> {
    tx.execute(
        "INSERT INTO reaction_rollups (journey_id, hour_at, version, node, reaction, bucket, count)
         SELECT m.journey_id, $2, COALESCE(e.version, 0), m.node, $3, $4, 1
         FROM messages m LEFT JOIN enrollments e ON e.id = m.enrollment_id
         WHERE m.id = $1 AND m.journey_id IS NOT NULL AND m.node IS NOT NULL
         ON CONFLICT (journey_id, hour_at, version, node, reaction, bucket)
         DO UPDATE SET count = reaction_rollups.count + 1",
        &[
            &id,
            &hour_of(at),
            &reaction.as_str(),
            &reaction_bucket(at.duration_since(sent_at)),
        ],
    )?;
    Ok(())
}

/// Records a conversion (once per enrollment) and adds it to the roll-ups.
pub(crate) fn record_conversion(tx: &mut Transaction<'_>, c: &NewConversion) -> Result<bool> {
    let touch = c.last_touch.as_ref();
    let revenue = c.revenue.as_ref();
    let inserted = tx.execute(
        "INSERT INTO conversions (enrollment_id, contact_id, journey_id, version, node, message_id, event_seq, at, revenue, currency)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (enrollment_id) DO NOTHING",
        &[
            &c.enrollment_id,
            &c.contact_id,
            &c.journey_id,
            &c.version,
            &c.node,
            &touch.map(|t| t.message_id),
            &c.event_seq,
            &ms(c.at),
            &revenue.map(|r| r.amount),
            &revenue.map(|r| r.currency.as_str()),
        ],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    let counted = revenue.filter(|r| r.counted).map_or(0.0, |r| r.amount);
    tx.execute(
        "INSERT INTO journey_rollups (journey_id, hour_at, version, node, attributed, revenue)
         VALUES ($1, $2, $3, $4, 1, $5)
         ON CONFLICT (journey_id, hour_at, version, node) DO UPDATE SET
           attributed = journey_rollups.attributed + 1,
           revenue = journey_rollups.revenue + excluded.revenue",
        &[&c.journey_id, &hour_of(c.at), &c.version, &c.node, &counted],
    )?;
    if let Some(t) = touch {
        count_reaction(tx, t.message_id, Reaction::Conversion, t.sent_at, c.at)?;
    }
    Ok(true)
}

/// Marks a message's first open or click (by anyone, and by a person), counting each first.
pub(crate) fn mark_engagement(
    tx: &mut Transaction<'_>,
    id: i64,
    clicked: bool,
    human: bool,
    at: Timestamp,
) -> Result<bool> {
    let Some(row) = tx.query_opt(
        "SELECT opened_at IS NULL, clicked_at IS NULL, human_opened_at IS NULL,
                human_clicked_at IS NULL, sent_at
         FROM messages WHERE id = $1",
        &[&id],
    )?
    else {
        return Ok(false);
    };
    let unset = Unset {
        opened: column(&row, 0)?,
        clicked: column(&row, 1)?,
        human_opened: column(&row, 2)?,
        human_clicked: column(&row, 3)?,
    };
    let sent_at: Option<i64> = column(&row, 4)?;
    // A click implies the message was opened, even if the open pixel was blocked.
    tx.execute(
        "UPDATE messages SET opened_at = COALESCE(opened_at, $2),
                clicked_at = CASE WHEN $3 THEN COALESCE(clicked_at, $2) ELSE clicked_at END,
                human_opened_at = CASE WHEN $4 THEN COALESCE(human_opened_at, $2) ELSE human_opened_at END,
                human_clicked_at = CASE WHEN $3 AND $4 THEN COALESCE(human_clicked_at, $2) ELSE human_clicked_at END
         WHERE id = $1",
        &[&id, &ms(at), &clicked, &human],
    )?;
    // Unique opens and clicks per journey node: only the first of each counts.
    for (column, reaction) in engagement_counts(clicked, human, unset) {
        count_message(tx, id, column, 1, Hour::Of(at))?;
        if let (Some(reaction), Some(sent)) = (reaction, sent_at) {
            count_reaction(tx, id, reaction, ts(sent), at)?;
        }
    }
    Ok(true)
}

/// Every journey's counters per node in a range of hours, summed.
pub(crate) fn rollup_sums(
    conn: &mut impl GenericClient,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<(String, String, Counts)>> {
    // SUM of a BIGINT is a NUMERIC on PostgreSQL: cast back.
    let sums: Vec<String> = COUNT_COLUMNS
        .split(',')
        .map(|c| match c.trim() {
            "revenue" => "SUM(revenue)".to_string(),
            c => format!("SUM({c})::BIGINT"),
        })
        .collect();
    conn.query(
        &format!(
            "SELECT journey_id, node, {} FROM journey_rollups WHERE hour_at >= $1 AND hour_at < $2
             GROUP BY journey_id, node ORDER BY journey_id, node",
            sums.join(", ")
        ),
        &[&hour_of(from), &ms(to)],
    )?
    .iter()
    .map(|r| Ok((column(r, 0)?, column(r, 1)?, counts_from(r, 2)?)))
    .collect()
}

/// The counters of `COUNT_COLUMNS` from column `first` on.
fn counts_from(r: &::postgres::Row, first: usize) -> Result<Counts> {
    Ok(Counts {
        entered: column(r, first)?,
        completed: column(r, first + 1)?,
        exited: column(r, first + 2)?,
        converted: column(r, first + 3)?,
        sent: column(r, first + 4)?,
        delivered: column(r, first + 5)?,
        bounced: column(r, first + 6)?,
        failed: column(r, first + 7)?,
        suppressed: column(r, first + 8)?,
        opened: column(r, first + 9)?,
        clicked: column(r, first + 10)?,
        human_opened: column(r, first + 11)?,
        human_clicked: column(r, first + 12)?,
        unsubscribed: column(r, first + 13)?,
        complained: column(r, first + 14)?,
        attributed: column(r, first + 15)?,
        revenue: column(r, first + 16)?,
        deferred: column(r, first + 17)?,
    })
}

const COUNT_COLUMNS: &str =
    "entered, completed, exited, converted, sent, delivered, bounced, failed,
     suppressed, opened, clicked, human_opened, human_clicked, unsubscribed, complained,
     attributed, revenue, deferred";

/// A journey's roll-up and reaction rows in the query's range.
pub(crate) fn journey_rollups(
    conn: &mut impl GenericClient,
    q: &RollupQuery,
) -> Result<(Vec<RollupRow>, Vec<ReactionRow>)> {
    let (from, to) = (hour_of(q.from), ms(q.to));
    let args: [&(dyn ::postgres::types::ToSql + Sync); 5] =
        [&q.journey_id, &from, &to, &q.version, &q.node];
    let filter = "journey_id = $1 AND hour_at >= $2 AND hour_at < $3
                  AND ($4::BIGINT IS NULL OR version = $4) AND ($5::TEXT IS NULL OR node = $5)";
    let rows = conn
        .query(
            &format!(
                "SELECT hour_at, version, node, {COUNT_COLUMNS} FROM journey_rollups WHERE {filter}"
            ),
            &args,
        )?
        .iter()
        .map(|r| {
            Ok(RollupRow {
                hour_at: ts(column(r, 0)?),
                version: column(r, 1)?,
                node: column(r, 2)?,
                counts: counts_from(r, 3)?,
                outputs: Default::default(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let outputs = conn
        .query(
            &format!(
                "SELECT hour_at, version, node, output, count FROM output_rollups WHERE {filter}"
            ),
            &args,
        )?
        .iter()
        .map(|r| {
            Ok(OutputRow {
                hour_at: ts(column(r, 0)?),
                version: column(r, 1)?,
                node: column(r, 2)?,
                output: column(r, 3)?,
                count: column(r, 4)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let rows = with_outputs(rows, outputs);
    let mut reactions = Vec::new();
    for r in conn.query(
        &format!(
            "SELECT hour_at, version, node, reaction, bucket, count FROM reaction_rollups WHERE {filter}"
        ),
        &args,
    )? {
        // A reaction this build does not know (written by a newer one) is left out.
        let Some(reaction) = Reaction::parse(&column::<String>(&r, 3)?) else {
            continue;
        };
        reactions.push(ReactionRow {
            hour_at: ts(column(&r, 0)?),
            version: column(&r, 1)?,
            node: column(&r, 2)?,
            reaction,
            bucket: column(&r, 4)?,
            count: column(&r, 5)?,
        });
    }
    Ok((rows, reactions))
}
