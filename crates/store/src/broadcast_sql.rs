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

/// Per template of the broadcast's messages: sent, opened, clicked (an A/B test's results);
/// with `before`, only of the messages written before `$2` (the test's share, once a winner
/// went to the others).
pub(crate) fn variant_counts(before: bool) -> String {
    let before = if before { " AND created_at < $2" } else { "" };
    format!(
        "SELECT template,
         SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END),
         SUM(CASE WHEN opened_at IS NOT NULL THEN 1 ELSE 0 END),
         SUM(CASE WHEN clicked_at IS NOT NULL THEN 1 ELSE 0 END)
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
