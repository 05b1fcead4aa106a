//! The SQL of broadcasts, which both backends run: PostgreSQL's `$N` placeholders (SQLite's
//! side turns them into its `?N`), and times in milliseconds in both.

use waymark_core::broadcast::Audience;

pub(crate) const COLUMNS: &str = "id, document, status, template_version, audience_size, processed, released, cursor,
     audience_done, waiting, send_at, rate_since, rate_base, next_run_at, created_at, updated_at, started_at,
     finished_at, winner, winner_at, winner_reason";

pub(crate) const INSERT: &str =
    "INSERT INTO broadcasts (id, document, status, created_at, updated_at)
     VALUES ($1, $2, 'draft', $3, $3) ON CONFLICT (id) DO NOTHING";

pub(crate) const UPDATE_DRAFT: &str =
    "UPDATE broadcasts SET document = $2, updated_at = $3 WHERE id = $1 AND status = 'draft'";

pub(crate) const DELETE_DRAFT: &str = "DELETE FROM broadcasts WHERE id = $1 AND status = 'draft'";

pub(crate) const STATUS: &str = "SELECT status FROM broadcasts WHERE id = $1";

pub(crate) const SCHEDULE: &str =
    "UPDATE broadcasts SET status = 'scheduled', send_at = $2, next_run_at = $2,
     audience_size = $3, updated_at = $4 WHERE id = $1";

pub(crate) const PAUSE: &str =
    "UPDATE broadcasts SET status = 'paused', next_run_at = NULL, updated_at = $2 WHERE id = $1";

/// The send rate counts afresh from the resume: the time paused is no credit.
pub(crate) const RESUME: &str =
    "UPDATE broadcasts SET status = 'sending', next_run_at = $2, rate_since = $2,
     rate_base = released, updated_at = $2 WHERE id = $1";

pub(crate) const CANCEL: &str =
    "UPDATE broadcasts SET status = 'cancelled', next_run_at = NULL, waiting = 0,
     finished_at = $2, updated_at = $2 WHERE id = $1";

pub(crate) const FORGET_WAITING: &str = "DELETE FROM broadcast_recipients WHERE broadcast_id = $1";

/// Moves the broadcast's messages of one status to another (pause, resume, cancel).
pub(crate) const MOVE_MESSAGES: &str =
    "UPDATE messages SET status = $3 WHERE broadcast_id = $1 AND status = $2";

pub(crate) const MESSAGE_COUNTS: &str =
    "SELECT status, COUNT(*) FROM messages WHERE broadcast_id = $1
     GROUP BY status ORDER BY status";

/// What selects the broadcast with the earliest due work, after `SELECT {COLUMNS} FROM
/// broadcasts` (PostgreSQL appends its row lock).
pub(crate) const DUE: &str = "WHERE status IN ('scheduled', 'sending') AND next_run_at <= $1
     ORDER BY next_run_at, id LIMIT 1";

pub(crate) const DEFER: &str = "INSERT INTO broadcast_recipients (broadcast_id, contact_id, due_at)
     VALUES ($1, $2, $3) ON CONFLICT (broadcast_id, contact_id) DO NOTHING";

pub(crate) const TAKE_DUE: &str = "DELETE FROM broadcast_recipients
     WHERE broadcast_id = $1 AND contact_id IN (
         SELECT contact_id FROM broadcast_recipients WHERE broadcast_id = $1 AND due_at <= $2
         ORDER BY due_at, contact_id LIMIT $3)
     RETURNING contact_id";

pub(crate) const NEXT_DUE: &str =
    "SELECT MIN(due_at) FROM broadcast_recipients WHERE broadcast_id = $1";

pub(crate) const SAVE_PROGRESS: &str =
    "UPDATE broadcasts SET status = $2, template_version = $3, processed = $4,
     released = $5, cursor = $6, audience_done = $7, waiting = $8, rate_since = $9, rate_base = $10,
     next_run_at = $11, started_at = $12, finished_at = $13, updated_at = $14, winner = $15,
     winner_at = $16, winner_reason = $17
     WHERE id = $1";

/// Per template of the broadcast's messages: sent, opened, clicked, converted (an A/B test's
/// results);
/// with `before`, only of the messages written before `$2` (the test's share, once a winner
/// went to the others).
pub(crate) fn variant_counts(before: bool) -> String {
    let before = if before { " AND created_at < $2" } else { "" };
    // Conversions of the same messages: through the message each is credited to.
    let converted_before = if before.is_empty() {
        ""
    } else {
        " AND x.created_at < $2"
    };
    format!(
        "SELECT template,
         SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END),
         SUM(CASE WHEN opened_at IS NOT NULL THEN 1 ELSE 0 END),
         SUM(CASE WHEN clicked_at IS NOT NULL THEN 1 ELSE 0 END),
         (SELECT COUNT(*) FROM broadcast_conversions v JOIN messages x ON x.id = v.message_id
          WHERE v.broadcast_id = $1 AND v.template = messages.template{converted_before})
         FROM messages WHERE broadcast_id = $1{before} GROUP BY template ORDER BY template"
    )
}

/// The members of `audience` in none of `exclude`, after an id, in id order: parameters `$1`
/// the audience's id, `$2` the id to start after, `$3`.. the exclusions' ids, then the limit.
pub(crate) fn audience_page(audience: &Audience, exclude: &[Audience]) -> String {
    let mut sql = match audience {
        Audience::Segment(_) => "SELECT a.contact_id FROM segment_members a
             WHERE a.segment_id = $1 AND a.contact_id > $2"
            .to_string(),
        Audience::List(_) => {
            "SELECT a.contact_id FROM list_members a JOIN lists l ON l.id = a.list_id
             WHERE l.name = $1 AND a.contact_id > $2"
                .to_string()
        }
    };
    for (i, excluded) in exclude.iter().enumerate() {
        let n = i + 3;
        sql.push_str(&match excluded {
            Audience::Segment(_) => format!(
                " AND NOT EXISTS (SELECT 1 FROM segment_members x
                   WHERE x.segment_id = ${n} AND x.contact_id = a.contact_id)"
            ),
            Audience::List(_) => format!(
                " AND NOT EXISTS (SELECT 1 FROM list_members x JOIN lists xl ON xl.id = x.list_id
                   WHERE xl.name = ${n} AND x.contact_id = a.contact_id)"
            ),
        });
    }
    sql.push_str(&format!(
        " ORDER BY a.contact_id LIMIT ${}",
        exclude.len() + 3
    ));
    sql
}

/// How many contacts [`audience_page`] would give from the start, without a limit.
pub(crate) fn audience_count(audience: &Audience, exclude: &[Audience]) -> String {
    format!(
        "SELECT COUNT(*) FROM ({}) AS page",
        audience_page(audience, exclude)
    )
}

/// The ids an audience query binds, in order (the caller adds the after-id and the limit).
pub(crate) fn audience_ids<'a>(audience: &'a Audience, exclude: &'a [Audience]) -> Vec<&'a str> {
    std::iter::once(audience)
        .chain(exclude)
        .map(|a| match a {
            Audience::Segment(id) | Audience::List(id) => id.as_str(),
        })
        .collect()
}

// Broadcast roll-ups (`broadcast_rollups`): one row of counters per broadcast, UTC hour and
// template, added to in the transaction that changes what it counts. Casts are written
// `CAST(.. AS BIGINT)`, which both backends read.

/// A message written for a broadcast: `$1` broadcast, `$2` hour, `$3` template, `$4`
/// suppressed, `$5` failed, `$6` bounced (0 or 1 each).
pub(crate) const ROLLUP_WRITTEN: &str =
    "INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, entered, suppressed, failed, bounced)
     VALUES ($1, $2, $3, 1, $4, $5, $6)
     ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET
       entered = broadcast_rollups.entered + 1,
       suppressed = broadcast_rollups.suppressed + excluded.suppressed,
       failed = broadcast_rollups.failed + excluded.failed,
       bounced = broadcast_rollups.bounced + excluded.bounced";

/// A batch's delivery outcomes of one broadcast template and hour: `$4` sent (and
/// delivered), `$5` failed, `$6` bounced.
pub(crate) const ROLLUP_OUTCOMES: &str =
    "INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, sent, delivered, failed, bounced)
     VALUES ($1, $2, $3, $4, $4, $5, $6)
     ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET
       sent = broadcast_rollups.sent + excluded.sent,
       delivered = broadcast_rollups.delivered + excluded.delivered,
       failed = broadcast_rollups.failed + excluded.failed,
       bounced = broadcast_rollups.bounced + excluded.bounced";

/// Adds `$2` to the counters `columns` (`opened, human_opened`) of message `$1`'s broadcast
/// roll-up of the hour `hour_sql` (of `$3`, or of the message's send); nothing for a message
/// of no broadcast.
pub(crate) fn rollup_message(columns: &str, hour_sql: &str) -> String {
    let names: Vec<&str> = columns.split(", ").collect();
    let values = vec!["CAST($2 AS BIGINT)"; names.len()].join(", ");
    let sets: Vec<String> = names
        .iter()
        .map(|c| format!("{c} = broadcast_rollups.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, {columns})
         SELECT m.broadcast_id, {hour_sql}, m.template, {values}
         FROM messages m WHERE m.id = $1 AND m.broadcast_id IS NOT NULL
         ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET {}",
        sets.join(", ")
    )
}

/// The hour of `$3` (ms, already the start of its hour).
pub(crate) const HOUR_OF_ARG: &str = "CAST($3 AS BIGINT)";
/// The hour the message was sent (else `$3`).
pub(crate) const HOUR_SENT: &str = "COALESCE(m.sent_at - m.sent_at % 3600000, CAST($3 AS BIGINT))";

/// Records a broadcast conversion: the recipient's message (found by its idempotency key,
/// `$2`) sent at or before the goal event (`$5`) and less than the window (`$6`, ms) before
/// it. `$1` broadcast, `$3` contact, `$4` event seq, `$7` revenue, `$8` currency. Inserts
/// nothing for a recipient who converted already; returns the message's template.
pub(crate) const CONVERT: &str =
    "INSERT INTO broadcast_conversions (broadcast_id, contact_id, message_id, template, event_seq, at, revenue, currency)
     SELECT $1, CAST($3 AS BIGINT), m.id, m.template, CAST($4 AS BIGINT), CAST($5 AS BIGINT),
            CAST($7 AS DOUBLE PRECISION), CAST($8 AS TEXT) FROM messages m
     WHERE m.idempotency_key = $2 AND m.broadcast_id = $1 AND m.sent_at IS NOT NULL
       AND m.sent_at <= CAST($5 AS BIGINT) AND CAST($5 AS BIGINT) < m.sent_at + CAST($6 AS BIGINT)
     ON CONFLICT (broadcast_id, contact_id) DO NOTHING
     RETURNING template";

/// Adds a conversion to its roll-up: `$1` broadcast, `$2` hour, `$3` template, `$4` revenue
/// counted.
pub(crate) const ROLLUP_CONVERSION: &str =
    "INSERT INTO broadcast_rollups (broadcast_id, hour_at, template, converted, revenue)
     VALUES ($1, $2, $3, 1, $4)
     ON CONFLICT (broadcast_id, hour_at, template) DO UPDATE SET
       converted = broadcast_rollups.converted + 1,
       revenue = broadcast_rollups.revenue + excluded.revenue";

/// A broadcast's roll-up rows from the hour `$2` up to `$3` (exclusive).
pub(crate) const ROLLUPS: &str =
    "SELECT hour_at, template, entered, sent, delivered, bounced, failed, suppressed, opened,
            clicked, human_opened, human_clicked, unsubscribed, complained, converted, revenue
     FROM broadcast_rollups WHERE broadcast_id = $1 AND hour_at >= $2 AND hour_at < $3
     ORDER BY hour_at, template";

/// Whether a message's status at its insertion counts as suppressed, failed, bounced.
pub(crate) fn written_counts(status: &str) -> (i64, i64, i64) {
    (
        i64::from(status == "suppressed"),
        i64::from(status == "failed" || status == "bounced"),
        i64::from(status == "bounced"),
    )
}
