//! The SQL of a contact search (`Contacts::find_contacts`), which both backends run: one
//! builder, so that both find and order the same contacts; the dialects differ only in
//! placeholders, case-insensitive `LIKE` and reading a trait out of the JSON text of `traits`.
//!
//! Every filter is either an indexed lookup (ids, email, phone, lists, segments, a
//! subscription by its primary key) or a condition checked on the rows read in order; a page
//! reads rows in the order's index (`id`) or sorts the matching rows (the other keys), with
//! the keyset condition of its position, never an offset.

use crate::{ContactOrder, ContactPosition, ContactQuery, ContactSortKey, SortValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Int(i64),
    Real(f64),
    Text(String),
}

pub(crate) struct Search {
    pub sql: String,
    pub args: Vec<Arg>,
}

struct Builder {
    dialect: Dialect,
    args: Vec<Arg>,
    /// Whether a condition reads a trait (PostgreSQL then reads the traits as `jsonb`).
    reads_traits: bool,
}

impl Builder {
    /// The placeholder of a newly bound value.
    fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.args.len()),
            Dialect::Postgres => format!("${}", self.args.len()),
        }
    }

    fn text(&mut self, s: &str) -> String {
        self.bind(Arg::Text(s.to_string()))
    }

    /// `LIKE` ignoring ASCII case: SQLite's `LIKE` does; `ILIKE` under the "C" collation does
    /// the same (and only for ASCII).
    fn like(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        }
    }

    /// The JSON type of the top-level trait `key` (bound at `key`): `text`, `integer`, `real`,
    /// `true`, `false` in SQLite; `string`, `number`, `boolean` in PostgreSQL.
    fn trait_type(&self, key: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("json_type({TRAITS_SQLITE}, {key})"),
            Dialect::Postgres => format!("jsonb_typeof({TRAITS_PG} -> {key})"),
        }
    }

    /// The top-level trait `key` (bound at `key`), when it is a string, else null.
    fn trait_string(&self, key: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!(
                "(CASE WHEN json_type({TRAITS_SQLITE}, {key}) = 'text' THEN json_extract({TRAITS_SQLITE}, {key}) END)"
            ),
            Dialect::Postgres => format!(
                "(CASE WHEN jsonb_typeof({TRAITS_PG} -> {key}) = 'string' THEN ({TRAITS_PG} ->> {key}) END) COLLATE \"C\""
            ),
        }
    }

    /// How a trait's key is bound: a JSON path in SQLite (quoted, so that a key with `.` or
    /// `[` is one member; it cannot hold `"`), the member's name in PostgreSQL.
    fn trait_key(&mut self, key: &str) -> String {
        self.reads_traits = true;
        match self.dialect {
            Dialect::Sqlite => self.text(&format!("$.\"{key}\"")),
            Dialect::Postgres => format!("{}::text", self.text(key)),
        }
    }

    /// A number trait equal to `n` (PostgreSQL reads the trait as a number only once it knows
    /// it is one: a `CASE`, since `AND` may be evaluated in any order).
    fn trait_number(&self, key: &str, n: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!(
                "(json_type({TRAITS_SQLITE}, {key}) IN ('integer', 'real') AND json_extract({TRAITS_SQLITE}, {key}) = {n})"
            ),
            Dialect::Postgres => format!(
                "(CASE WHEN jsonb_typeof({TRAITS_PG} -> {key}) = 'number' THEN ({TRAITS_PG} ->> {key})::float8 END) = {n}"
            ),
        }
    }

    fn trait_bool(&self, key: &str, value: bool) -> String {
        match (self.dialect, value) {
            (Dialect::Sqlite, true) => format!("{} = 'true'", self.trait_type(key)),
            (Dialect::Sqlite, false) => format!("{} = 'false'", self.trait_type(key)),
            (Dialect::Postgres, v) => format!("({TRAITS_PG} -> {key}) = '{v}'::jsonb"),
        }
    }
}

/// The traits of a contact as SQLite's JSON functions read them, or null when they cannot be
/// read (a damaged row must not fail every search).
const TRAITS_SQLITE: &str = "(CASE WHEN json_valid(c.traits) THEN c.traits END)";

/// The same as `jsonb` in PostgreSQL, read once per contact (`OFFSET 0` keeps the subquery
/// from being folded into every use, which would parse the traits once per use). PostgreSQL
/// has no test of JSON before version 16: the store writes traits as one serialised object,
/// and any other text has no traits to read.
const TRAITS_PG_JOIN: &str = " CROSS JOIN LATERAL (SELECT CASE WHEN c.traits LIKE '{%}' THEN c.traits::jsonb END AS t OFFSET 0) j";
const TRAITS_PG: &str = "j.t";

/// The names a search also matches a part of.
const NAME_TRAITS: [&str; 3] = ["first_name", "last_name", "name"];

/// The statement that lists the contacts `q` asks for, selecting `columns` (each prefixed
/// `c.`), in its order, at most its limit (1 to 1000).
pub(crate) fn find_contacts(dialect: Dialect, columns: &str, q: &ContactQuery) -> Search {
    let mut b = Builder {
        dialect,
        args: Vec::new(),
        reads_traits: false,
    };
    let mut clauses: Vec<String> = Vec::new();
    if let Some(u) = &q.user_id {
        // Any id the contact has had: its user id, or one kept with its anonymous ids (an
        // anonymous id, or a user id merged into it by an alias).
        let u = b.text(u);
        clauses.push(format!(
            "(c.user_id = {u} OR c.id IN (SELECT contact_id FROM anonymous_ids WHERE anonymous_id = {u}))"
        ));
    }
    if let Some(e) = &q.email {
        clauses.push(format!("c.email = {}", b.text(e)));
    }
    if let Some(p) = &q.phone {
        clauses.push(format!("c.phone = {}", b.text(p)));
    }
    if let Some(a) = &q.anonymous_id {
        clauses.push(format!(
            "c.id IN (SELECT contact_id FROM anonymous_ids WHERE anonymous_id = {})",
            b.text(a)
        ));
    }
    if let Some(segment) = &q.segment {
        clauses.push(format!(
            "c.id IN (SELECT contact_id FROM segment_members WHERE segment_id = {})",
            b.text(segment)
        ));
    }
    if let Some(list) = &q.list {
        clauses.push(format!(
            "c.id IN (SELECT m.contact_id FROM list_members m JOIN lists l ON l.id = m.list_id WHERE l.name = {})",
            b.text(list)
        ));
    }
    if let Some(s) = &q.search {
        clauses.push(search(&mut b, s));
    }
    for t in &q.traits {
        clauses.push(trait_equals(&mut b, &t.key, &t.value));
    }
    for c in &q.consent {
        let (channel, topic) = (b.text(&c.channel), b.text(&c.topic));
        // The subscription's primary key: one lookup per contact read.
        let record = format!(
            "SELECT 1 FROM subscriptions s WHERE s.contact_id = c.id AND s.channel = {channel} AND s.topic = {topic}"
        );
        clauses.push(match &c.status {
            Some(status) => format!("EXISTS ({record} AND s.status = {})", b.text(status)),
            None => format!("NOT EXISTS ({record})"),
        });
    }
    if let Some(after) = &q.after {
        clauses.push(after_position(&mut b, q.order, after));
    }
    let columns = columns
        .split(", ")
        .map(|c| format!("c.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let join = match dialect {
        Dialect::Postgres if b.reads_traits => TRAITS_PG_JOIN,
        _ => "",
    };
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT {columns} FROM contacts c{join}{filter} ORDER BY {} LIMIT {}",
        order_by(q.order),
        q.limit.clamp(1, 1000)
    );
    Search { sql, args: b.args }
}

fn search(b: &mut Builder, s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = b.text(&format!("%{escaped}%"));
    let like = b.like();
    let matches = |expr: &str| format!("{expr} {like} {pattern} ESCAPE '\\'");
    let mut any = vec![
        matches("c.user_id"),
        matches("c.email"),
        matches("c.phone"),
        format!(
            "c.id IN (SELECT contact_id FROM anonymous_ids WHERE {})",
            matches("anonymous_id")
        ),
    ];
    let names: Vec<String> = NAME_TRAITS
        .iter()
        .map(|name| {
            let key = b.trait_key(name);
            b.trait_string(&key)
        })
        .collect();
    for name in &names {
        any.push(matches(name));
    }
    // "Ann Lee" is found by a part of the full name too.
    any.push(matches(&format!("({} || ' ' || {})", names[0], names[1])));
    format!("({})", any.join(" OR "))
}

fn trait_equals(b: &mut Builder, key: &str, value: &str) -> String {
    if key.contains('"') {
        // SQLite's JSON paths cannot name it: no contact has it, on either backend.
        return "1 = 0".to_string();
    }
    let key = b.trait_key(key);
    let text = b.text(value);
    let mut any = vec![format!("{} = {text}", b.trait_string(&key))];
    if let Some(n) = value.trim().parse::<f64>().ok().filter(|n| n.is_finite()) {
        let n = b.bind(Arg::Real(n));
        any.push(b.trait_number(&key, &n));
    }
    match value {
        "true" => any.push(b.trait_bool(&key, true)),
        "false" => any.push(b.trait_bool(&key, false)),
        _ => {}
    }
    format!("({})", any.join(" OR "))
}

/// The column of a sort key other than the id.
fn sort_column(key: ContactSortKey) -> Option<&'static str> {
    match key {
        ContactSortKey::Id => None,
        ContactSortKey::CreatedAt => Some("c.created_at"),
        ContactSortKey::UpdatedAt => Some("c.updated_at"),
        ContactSortKey::Email => Some("c.email"),
    }
}

fn order_by(order: ContactOrder) -> String {
    let dir = if order.descending { "DESC" } else { "ASC" };
    match (order.key, sort_column(order.key)) {
        // The backends put nulls at opposite ends: where they go is said.
        (ContactSortKey::Email, Some(col)) => {
            format!("CASE WHEN {col} IS NULL THEN 1 ELSE 0 END, {col} {dir}, c.id {dir}")
        }
        (_, Some(col)) => format!("{col} {dir}, c.id {dir}"),
        (_, None) => format!("c.id {dir}"),
    }
}

/// The contacts after `after` in `order` (the keyset condition: nulls last either way).
fn after_position(b: &mut Builder, order: ContactOrder, after: &ContactPosition) -> String {
    let op = if order.descending { "<" } else { ">" };
    let id = b.bind(Arg::Int(after.id));
    let Some(col) = sort_column(order.key) else {
        return format!("c.id {op} {id}");
    };
    let key = match &after.key {
        SortValue::None => return format!("({col} IS NULL AND c.id {op} {id})"),
        SortValue::Millis(ms) => b.bind(Arg::Int(*ms)),
        SortValue::Text(s) => b.text(s),
    };
    format!("({col} {op} {key} OR ({col} = {key} AND c.id {op} {id}) OR {col} IS NULL)")
}
