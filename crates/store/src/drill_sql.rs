//! The SQL of a drill-down (`Reporting::journey_people`): who is behind a journey's numbers,
//! which both backends run. Every kind selects the same columns (NULL where
//! they do not apply) in the order of `PersonRow`'s fields, so that each backend reads a row
//! one way; pages follow the key of the kind's table, never an offset.

use crate::contact_sql::{Arg, Dialect};
use crate::{PeopleKind, PeopleQuery};

pub(crate) struct Drill {
    pub sql: String,
    pub args: Vec<Arg>,
}

/// The statement that reads one page of `q`.
pub(crate) fn journey_people(dialect: Dialect, q: &PeopleQuery) -> Drill {
    let mut args: Vec<Arg> = Vec::new();
    let mut bind = |arg: Arg| {
        args.push(arg);
        match dialect {
            Dialect::Sqlite => format!("?{}", args.len()),
            Dialect::Postgres => format!("${}", args.len()),
        }
    };
    // Typed NULLs: PostgreSQL needs to know what a column of NULLs is.
    let (int, text, real) = match dialect {
        Dialect::Sqlite => ("NULL", "NULL", "NULL"),
        Dialect::Postgres => ("NULL::BIGINT", "NULL::TEXT", "NULL::DOUBLE PRECISION"),
    };
    let journey = bind(Arg::Text(q.journey_id.clone()));
    let after = bind(Arg::Int(q.after));
    let mut filters = Vec::new();
    let (sql_head, table, key) = match q.kind {
        PeopleKind::Waiting => (
            format!(
                "SELECT e.id, e.contact_id, c.user_id, c.email, e.id, e.node, e.entered_at, e.wake_at,
                        {int}, {text}, {text}, {int}, {int}, {int}, {int}, {int}, {int}, {int},
                        {int}, {real}, {text}
                 FROM enrollments e LEFT JOIN contacts c ON c.id = e.contact_id
                 WHERE e.journey_id = {journey} AND e.status = 'active' AND e.id > {after}"
            ),
            "e",
            "e.id",
        ),
        PeopleKind::Messaged => (
            format!(
                "SELECT m.id, m.contact_id, c.user_id, c.email, m.enrollment_id, m.node, {int}, {int},
                        m.id, m.channel, m.status, m.sent_at, m.opened_at, m.human_opened_at,
                        m.clicked_at, m.human_clicked_at, m.unsubscribed_at, m.complained_at,
                        {int}, {real}, {text}
                 FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id
                 WHERE m.journey_id = {journey} AND m.id > {after}"
            ),
            "m",
            "m.id",
        ),
        PeopleKind::Converted => (
            format!(
                "SELECT v.enrollment_id, v.contact_id, c.user_id, c.email, v.enrollment_id, v.node,
                        {int}, {int}, v.message_id, {text}, {text}, {int}, {int}, {int}, {int},
                        {int}, {int}, {int}, v.at, v.revenue, v.currency
                 FROM conversions v LEFT JOIN contacts c ON c.id = v.contact_id
                 WHERE v.journey_id = {journey} AND v.enrollment_id > {after}"
            ),
            "v",
            "v.enrollment_id",
        ),
    };
    if let Some(node) = &q.node {
        filters.push(format!("{table}.node = {}", bind(Arg::Text(node.clone()))));
    }
    if let Some(version) = q.version {
        let v = bind(Arg::Int(version));
        filters.push(match q.kind {
            PeopleKind::Waiting | PeopleKind::Converted => format!("{table}.version = {v}"),
            PeopleKind::Messaged => format!(
                "m.enrollment_id IN (SELECT id FROM enrollments WHERE journey_id = {journey} AND version = {v})"
            ),
        });
    }
    if q.kind == PeopleKind::Messaged {
        if let Some(channel) = &q.channel {
            filters.push(format!("m.channel = {}", bind(Arg::Text(channel.clone()))));
        }
        if let Some(status) = &q.status {
            filters.push(match status.as_str() {
                // What the recipient did (people's opens and clicks).
                "delivered" => "m.status = 'sent'".to_string(),
                "opened" => "m.human_opened_at IS NOT NULL".to_string(),
                "clicked" => "m.human_clicked_at IS NOT NULL".to_string(),
                "unsubscribed" => "m.unsubscribed_at IS NOT NULL".to_string(),
                "complained" => "m.complained_at IS NOT NULL".to_string(),
                other => format!("m.status = {}", bind(Arg::Text(other.to_string()))),
            });
        }
    }
    let limit = bind(Arg::Int(q.limit.clamp(1, 1000) as i64));
    let mut sql = sql_head;
    for f in filters {
        sql.push_str(" AND ");
        sql.push_str(&f);
    }
    sql.push_str(&format!(" ORDER BY {key} LIMIT {limit}"));
    Drill { sql, args }
}

/// What a drill-down's `status` may be: a message status, or what the recipient did.
pub const PEOPLE_STATUSES: &[&str] = &[
    "queued",
    "sent",
    "delivered",
    "failed",
    "suppressed",
    "bounced",
    "opened",
    "clicked",
    "unsubscribed",
    "complained",
];
