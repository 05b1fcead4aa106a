//! Moving an installation from SQLite to PostgreSQL (`waymark migrate`): every table of the
//! SQLite schema is copied row for row, ids as they are, into an empty PostgreSQL database, in
//! one PostgreSQL transaction, so that a failure leaves the target as it was.
//!
//! The tables copied are listed once, in [`TABLES`]; a test fails when a table of either
//! schema is not in it. Columns are not listed: each table's columns are read from the
//! PostgreSQL schema (and must be the same on SQLite), so a column added later is copied
//! without anyone thinking of it.
//!
//! SQLite keeps the largest id ever handed out in `meta` (`id_floor:<table>`, after an
//! erasure, see `sqlite::next_id!`); PostgreSQL's identity sequences never hand out an id
//! twice by themselves, so those keys are not copied: each sequence is set past both the
//! largest id copied and the floor instead.

use std::collections::BTreeMap;
use std::path::Path;

use ::postgres::Transaction;
use ::postgres::binary_copy::BinaryCopyInWriter;
use ::postgres::types::{ToSql, Type};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::postgres::{PgStore, outside_async};
use crate::{Result, StoreError};

/// A table of the schema, and its identity column (the id a new row is given) if it has one.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    pub name: &'static str,
    pub id_column: Option<&'static str>,
}

const fn table(name: &'static str) -> Table {
    Table {
        name,
        id_column: None,
    }
}

const fn with_ids(name: &'static str, id_column: &'static str) -> Table {
    Table {
        name,
        id_column: Some(id_column),
    }
}

/// Every table of the schema (SQLite's `sqlite_master`, PostgreSQL's tables but its own
/// `waymark_schema`), in the order they are copied. `order_products` comes after `events`:
/// PostgreSQL's trigger on `events` fills it as the events arrive, and the copy then replaces
/// what the trigger made with the source's rows, so the two are the same whatever the trigger
/// would make of old events.
pub const TABLES: &[Table] = &[
    table("meta"),
    with_ids("contacts", "id"),
    table("anonymous_ids"),
    with_ids("events", "seq"),
    table("order_products"),
    with_ids("lists", "id"),
    table("list_members"),
    table("templates"),
    table("template_versions"),
    table("journeys"),
    table("journey_versions"),
    table("journey_version_templates"),
    with_ids("enrollments", "id"),
    with_ids("steps", "id"),
    with_ids("messages", "id"),
    table("node_stats"),
    table("journey_rollups"),
    table("reaction_rollups"),
    table("output_rollups"),
    table("conversions"),
    table("experiment_variants"),
    table("experiment_winners"),
    table("suppressions"),
    table("erased_addresses"),
    table("subscriptions"),
    table("segments"),
    table("segment_members"),
    table("segment_checks"),
    table("segment_history"),
    table("trigger_schedule"),
    with_ids("score_expiries", "id"),
    with_ids("audit_log", "id"),
    table("broadcasts"),
    table("broadcast_recipients"),
    table("broadcast_rollups"),
    table("broadcast_conversions"),
];

/// The SQLite-only `meta` keys of the largest ids ever handed out: `id_floor:<table>`.
const ID_FLOOR_PREFIX: &str = "id_floor:";

/// Rows between two progress reports of a table.
const PROGRESS_EVERY: i64 = 10_000;

/// How far the copy is, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A table's copy begins; it has `rows` rows to copy.
    Started { table: &'a str, rows: i64 },
    /// `rows` rows of the table are copied so far.
    Copied { table: &'a str, rows: i64 },
    /// Every row of the table is copied.
    Finished { table: &'a str },
}

/// The rows of one table on each side, after the copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    /// Rows copied from SQLite (for `meta`, without the `id_floor:*` keys).
    pub source: i64,
    /// Rows in PostgreSQL.
    pub target: i64,
}

/// What a migration did.
#[derive(Clone, Debug)]
pub struct Report {
    /// The PostgreSQL database written: host, port and database name (no password).
    pub target: String,
    /// Every table of [`TABLES`], in order.
    pub counts: Vec<TableCount>,
    /// Per table with ids (`contacts.id`, ...): the id its next new row gets.
    pub next_ids: Vec<(String, i64)>,
}

/// Why a migration did not start or did not finish. The target is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source directory is missing or holds no Waymark database.
    #[error("{0}")]
    NoSource(String),
    /// The SQLite schema is not the one this Waymark copies.
    #[error("{0}")]
    SourceVersion(String),
    /// The target holds data already.
    #[error("{0}")]
    TargetNotEmpty(String),
    /// Rows went missing on the way (the copy was rolled back).
    #[error("{0}")]
    CountMismatch(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Store(e.into())
    }
}

impl From<::postgres::Error> for MigrateError {
    fn from(e: ::postgres::Error) -> Self {
        MigrateError::Store(e.into())
    }
}

/// Copies the installation in `data_dir` (its `waymark.db`, which is only read) into the
/// PostgreSQL database at `url`, which must hold no data yet (its schema is created if
/// missing). One transaction: on any error nothing is written.
pub fn sqlite_to_postgres(
    data_dir: &Path,
    url: &str,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, MigrateError> {
    let mut connection = open_source(data_dir)?;
    // A read transaction: one snapshot of the source, even if something writes to it meanwhile.
    let source = connection.transaction()?;
    check_source_tables(&source)?;
    let floors = id_floors(&source)?;
    let target = PgStore::open(url)?;
    outside_async(|| {
        let mut client = target.conn()?;
        let mut tx = client.transaction()?;
        lock_and_check_empty(&mut tx)?;
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let source_rows = copy_table(&source, &mut tx, table, progress)?;
            let target_rows: i64 = tx
                .query_one(&format!("SELECT COUNT(*) FROM {}", table.name), &[])?
                .get(0);
            counts.push(TableCount {
                table: table.name,
                source: source_rows,
                target: target_rows,
            });
        }
        let mismatched: Vec<String> = counts
            .iter()
            .filter(|c| c.source != c.target)
            .map(|c| {
                format!(
                    "{}: {} in SQLite, {} in PostgreSQL",
                    c.table, c.source, c.target
                )
            })
            .collect();
        if !mismatched.is_empty() {
            return Err(MigrateError::CountMismatch(format!(
                "the row counts differ after the copy, so nothing was written: {}",
                mismatched.join("; ")
            )));
        }
        let next_ids = set_sequences(&mut tx, &floors)?;
        set_partitions(&mut tx)?;
        tx.commit()?;
        Ok(Report {
            target: target.label().to_string(),
            counts,
            next_ids,
        })
    })
}

fn open_source(data_dir: &Path) -> Result<Connection, MigrateError> {
    if !data_dir.is_dir() {
        return Err(MigrateError::NoSource(format!(
            "{} is not a directory: give the data directory of the installation to move (the one holding waymark.db)",
            data_dir.display()
        )));
    }
    let path = data_dir.join("waymark.db");
    if !path.is_file() {
        return Err(MigrateError::NoSource(format!(
            "{} holds no Waymark database (waymark.db): give the data directory of the installation to move",
            data_dir.display()
        )));
    }
    // Read-write but never create: opening a database in WAL mode may need to recover its
    // log, which writes; nothing else is written.
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = crate::sqlite::SCHEMA_VERSION;
    if version > current {
        return Err(MigrateError::SourceVersion(format!(
            "the database in {} has schema version {version}, newer than this Waymark's ({current}): \
             migrate it with the Waymark release that last ran on it",
            data_dir.display()
        )));
    }
    if version < current {
        return Err(MigrateError::SourceVersion(format!(
            "the database in {dir} has schema version {version}, older than this Waymark's ({current}): \
             start this Waymark once on it (`waymark serve --data {dir}`), which brings it up to date, \
             stop it, then run `waymark migrate` again",
            dir = data_dir.display()
        )));
    }
    Ok(conn)
}

/// The tables of the SQLite schema, but SQLite's own.
pub(crate) fn sqlite_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?
    .query_map([], |r| r.get(0))?
    .collect()
}

/// A table this build does not know would be left behind: refuse instead.
fn check_source_tables(conn: &Connection) -> Result<(), MigrateError> {
    let unknown: Vec<String> = sqlite_tables(conn)?
        .into_iter()
        .filter(|t| !TABLES.iter().any(|known| known.name == t))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(MigrateError::SourceVersion(format!(
            "the SQLite database has tables this Waymark does not copy: {}",
            unknown.join(", ")
        )))
    }
}

/// The `id_floor:<table>` keys of the source's `meta`: table to largest id ever used.
fn id_floors(conn: &Connection) -> Result<BTreeMap<String, i64>, MigrateError> {
    let mut stmt =
        conn.prepare("SELECT key, value FROM meta WHERE substr(key, 1, length(?1)) = ?1")?;
    let rows = stmt
        .query_map([ID_FLOOR_PREFIX], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut floors = BTreeMap::new();
    for (key, value) in rows {
        let table = &key[ID_FLOOR_PREFIX.len()..];
        if !TABLES
            .iter()
            .any(|t| t.name == table && t.id_column.is_some())
        {
            return Err(
                StoreError::Corrupt(format!("meta key `{key}` names no table with ids")).into(),
            );
        }
        let floor = value.trim().parse::<i64>().map_err(|_| {
            StoreError::Corrupt(format!("meta key `{key}` holds `{value}`, not an id"))
        })?;
        floors.insert(table.to_string(), floor);
    }
    Ok(floors)
}

/// Keeps every other writer out until the copy commits (readers may go on), then refuses a
/// target that holds anything but settings.
fn lock_and_check_empty(tx: &mut Transaction<'_>) -> Result<(), MigrateError> {
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        names.join(", ")
    ))?;
    let mut holding = Vec::new();
    for table in TABLES.iter().filter(|t| t.name != "meta") {
        let rows: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {}", table.name), &[])?
            .get(0);
        if rows > 0 {
            holding.push(format!("{}: {rows}", table.name));
        }
    }
    if holding.is_empty() {
        return Ok(());
    }
    Err(MigrateError::TargetNotEmpty(format!(
        "the PostgreSQL database already holds data ({}); `waymark migrate` only fills an empty \
         database: give it a new database (or schema), or empty this one first",
        holding.join(", ")
    )))
}

/// A column's value, as both backends hold it.
#[derive(Clone, Debug)]
pub(crate) enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
    Real(Option<f64>),
}

impl Cell {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Int(v) => v,
            Cell::Text(v) => v,
            Cell::Real(v) => v,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Cell::Int(_) => 0,
            Cell::Text(_) => 1,
            Cell::Real(_) => 2,
        }
    }
}

// Rows are compared whole (sorted, checked equal); a real compares by its total order.
impl Ord for Cell {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Cell::Int(a), Cell::Int(b)) => a.cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
            (Cell::Real(a), Cell::Real(b)) => match (a, b) {
                (Some(a), Some(b)) => a.total_cmp(b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            },
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl PartialOrd for Cell {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Cell {}

/// The kinds of value a column holds: every column of the schema is one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Text,
    Real,
}

impl Kind {
    fn pg_type(self) -> Type {
        match self {
            Kind::Int => Type::INT8,
            Kind::Text => Type::TEXT,
            Kind::Real => Type::FLOAT8,
        }
    }
}

/// Columns of the PostgreSQL schema that SQLite has no counterpart of: filled by
/// [`set_partitions`] after the copy, not copied.
const POSTGRES_ONLY_COLUMNS: &[(&str, &str)] =
    &[("events", "partition"), ("messages", "partition")];

/// A table's columns in the target that the copy fills, in order, with their kinds.
pub(crate) fn pg_columns(
    tx: &mut impl ::postgres::GenericClient,
    table: &str,
) -> Result<Vec<(String, Kind)>> {
    tx.query(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        &[&table],
    )?
    .iter()
    .filter(|row| !POSTGRES_ONLY_COLUMNS.contains(&(table, row.get::<_, &str>(0))))
    .map(|row| {
        let (name, data_type): (String, String) = (row.get(0), row.get(1));
        match data_type.as_str() {
            "bigint" => Ok((name, Kind::Int)),
            "text" => Ok((name, Kind::Text)),
            "double precision" => Ok((name, Kind::Real)),
            other => Err(StoreError::Database(format!(
                "{table}.{name} is of type {other}, which `waymark migrate` does not copy"
            ))),
        }
    })
    .collect()
}

/// Reads one SQLite value as a value of `kind`; anything else is a corrupt row, named.
fn cell(value: ValueRef<'_>, kind: Kind, place: impl Fn() -> String) -> Result<Cell> {
    Ok(match (kind, value) {
        (Kind::Int, ValueRef::Null) => Cell::Int(None),
        (Kind::Int, ValueRef::Integer(i)) => Cell::Int(Some(i)),
        (Kind::Text, ValueRef::Null) => Cell::Text(None),
        (Kind::Real, ValueRef::Null) => Cell::Real(None),
        (Kind::Real, ValueRef::Real(r)) => Cell::Real(Some(r)),
        // A REAL column keeps what it is given; a whole number may have come as an integer.
        (Kind::Real, ValueRef::Integer(i)) => Cell::Real(Some(i as f64)),
        // PostgreSQL stores neither; SQLite takes any bytes as text.
        (Kind::Text, ValueRef::Text(bytes)) if bytes.contains(&0) => {
            return Err(StoreError::Corrupt(format!(
                "{}: text with a NUL character, which PostgreSQL cannot store",
                place()
            )));
        }
        (Kind::Text, ValueRef::Text(bytes)) => {
            Cell::Text(Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                StoreError::Corrupt(format!("{}: text that is not UTF-8", place()))
            })?))
        }
        (kind, other) => {
            return Err(StoreError::Corrupt(format!(
                "{}: {:?} where {} is expected",
                place(),
                other.data_type(),
                match kind {
                    Kind::Int => "an integer",
                    Kind::Text => "text",
                    Kind::Real => "a number",
                }
            )));
        }
    })
}

/// The statement that reads a table's rows from SQLite in the target's column order (the
/// `meta` rows of SQLite alone left out), and whether it has the same columns.
fn source_select(source: &Connection, table: &Table, columns: &[(String, Kind)]) -> Result<String> {
    let mut source_columns: Vec<String> = source
        .prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([table.name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut target_columns: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
    source_columns.sort();
    target_columns.sort();
    if source_columns != target_columns {
        return Err(StoreError::Database(format!(
            "table {} has columns ({}) on SQLite but ({}) on PostgreSQL",
            table.name,
            source_columns.join(", "),
            target_columns.join(", ")
        )));
    }
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    let filter = if table.name == "meta" {
        format!(
            " WHERE substr(key, 1, {}) <> '{ID_FLOOR_PREFIX}'",
            ID_FLOOR_PREFIX.len()
        )
    } else {
        String::new()
    };
    Ok(format!(
        "SELECT {} FROM {}{filter}",
        names.join(", "),
        table.name
    ))
}

/// Reads every row of `table` from SQLite, in the target's column order.
pub(crate) fn read_source_rows(
    source: &Connection,
    table: &Table,
    columns: &[(String, Kind)],
    mut each: impl FnMut(Vec<Cell>) -> Result<()>,
) -> Result<i64> {
    let select = source_select(source, table, columns)?;
    let mut stmt = source.prepare(&select)?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        n += 1;
        let mut cells = Vec::with_capacity(columns.len());
        for (i, (name, kind)) in columns.iter().enumerate() {
            cells.push(cell(row.get_ref(i)?, *kind, || {
                format!("{}.{name} of row {n}", table.name)
            })?);
        }
        each(cells)?;
    }
    Ok(n)
}

/// Copies one table (binary COPY, streamed); returns the rows read from the source.
fn copy_table(
    source: &Connection,
    tx: &mut Transaction<'_>,
    table: &Table,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<i64> {
    let columns = pg_columns(tx, table.name)?;
    let total: i64 = source.query_row(
        &format!(
            "SELECT COUNT(*) FROM ({})",
            source_select(source, table, &columns)?
        ),
        [],
        |r| r.get(0),
    )?;
    progress(Progress::Started {
        table: table.name,
        rows: total,
    });
    match table.name {
        // The target's migration made a key of its own, and a server started on it may have
        // written settings: the source's settings replace them all.
        "meta" => {
            tx.execute("DELETE FROM meta", &[])?;
        }
        // What the trigger made of the events just copied (see TABLES).
        "order_products" => {
            tx.execute("DELETE FROM order_products", &[])?;
        }
        _ => {}
    }
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    let types: Vec<Type> = columns.iter().map(|(_, kind)| kind.pg_type()).collect();
    let sink = tx.copy_in(&format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        table.name,
        names.join(", ")
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut written = 0;
    let copied = read_source_rows(source, table, &columns, |cells| {
        let values: Vec<&(dyn ToSql + Sync)> = cells.iter().map(Cell::as_sql).collect();
        writer.write(&values)?;
        written += 1;
        if written % PROGRESS_EVERY == 0 {
            progress(Progress::Copied {
                table: table.name,
                rows: written,
            });
        }
        Ok(())
    })?;
    writer.finish()?;
    progress(Progress::Finished { table: table.name });
    Ok(copied)
}

/// Tables of the PostgreSQL schema that SQLite has no counterpart of: how several processes
/// share the engine's work (`postgres::cluster`). Set up by the schema, and by
/// [`set_partitions`] for what was copied.
pub const POSTGRES_ONLY: &[&str] = &["partition_cursors", "partition_leases", "processes"];

/// Puts the copied events and messages in their contacts' partitions and starts every
/// partition's cursor where SQLite's one cursor stood. Events not processed yet have no
/// contact: they go to partition 0, whose engine resolves their contacts as SQLite's would.
fn set_partitions(tx: &mut Transaction<'_>) -> Result<()> {
    let partitions = crate::postgres::cluster::PARTITIONS;
    tx.batch_execute(&format!(
        "UPDATE events SET partition = (COALESCE(contact_id, 0) % {partitions})::SMALLINT;
         UPDATE messages SET partition = (contact_id % {partitions})::SMALLINT;
         UPDATE partition_cursors SET processed_seq =
             COALESCE((SELECT value::BIGINT FROM meta WHERE key = 'processed_seq'), 0);"
    ))?;
    Ok(())
}

/// Sets each identity sequence past the largest id copied and past the source's floor for the
/// table; returns the id each table's next row gets.
fn set_sequences(
    tx: &mut Transaction<'_>,
    floors: &BTreeMap<String, i64>,
) -> Result<Vec<(String, i64)>> {
    let mut next_ids = Vec::new();
    for table in TABLES {
        let Some(column) = table.id_column else {
            continue;
        };
        let largest: Option<i64> = tx
            .query_one(&format!("SELECT MAX({column}) FROM {}", table.name), &[])?
            .get(0);
        let floor = floors.get(table.name).copied();
        let used = largest.max(floor).filter(|&id| id > 0);
        if let Some(used) = used {
            tx.execute(
                "SELECT setval(pg_get_serial_sequence($1, $2), $3)",
                &[&table.name, &column, &used],
            )?;
        }
        next_ids.push((
            format!("{}.{column}", table.name),
            used.map_or(1, |id| id + 1),
        ));
    }
    Ok(next_ids)
}

#[cfg(test)]
mod tests {
    use ::postgres::Client;
    use jiff::Timestamp;
    use rusqlite::params_from_iter;
    use rusqlite::types::Value as SqlValue;
    use serde_json::Map;
    use waymark_core::EventKind;

    use super::*;
    use crate::NewEvent;
    use crate::postgres::test_support::TestDatabase;
    use crate::prelude::*;
    use crate::sqlite::SqliteStore;
    use crate::sqlite::test_support::TempDir;

    /// Events added on top of the seeded rows, so that a table is copied in several progress
    /// steps.
    const MANY_EVENTS: i64 = 25_000;

    fn names(tables: &[Table]) -> Vec<String> {
        let mut names: Vec<String> = tables.iter().map(|t| t.name.to_string()).collect();
        names.sort();
        names
    }

    fn pg_tables(client: &mut Client) -> Vec<String> {
        client
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                   AND table_name <> 'waymark_schema'
                 ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|t| !POSTGRES_ONLY.contains(&t.as_str()))
            .collect()
    }

    /// The guard against a table left behind: every table of the SQLite schema is copied.
    #[test]
    fn every_table_of_the_sqlite_schema_is_copied() {
        let dir = TempDir::new("migrate_tables");
        let store = SqliteStore::open(&dir.0).unwrap();
        let conn = store.conn().unwrap();
        assert_eq!(
            sqlite_tables(&conn).unwrap(),
            names(TABLES),
            "migrate::TABLES must list every table of the SQLite schema, and no other"
        );
    }

    /// ... and every table of the PostgreSQL schema is filled (but its own version table).
    #[test]
    fn every_table_of_the_postgres_schema_is_filled() {
        let Some(db) = TestDatabase::create("migrate_tables") else {
            return;
        };
        let store = db.open();
        let mut conn = store.conn().unwrap();
        assert_eq!(
            pg_tables(&mut conn),
            names(TABLES),
            "migrate::TABLES must list every table of the PostgreSQL schema but waymark_schema"
        );
        for table in TABLES {
            let columns = pg_columns(&mut *conn, table.name).unwrap();
            if let Some(id) = table.id_column {
                assert!(
                    columns
                        .iter()
                        .any(|(name, kind)| name == id && *kind == Kind::Int),
                    "{}.{id}",
                    table.name
                );
            }
        }
    }

    /// A value for row `row` of a column, unlike any other of the column: gaps between ids,
    /// negative and large numbers, text with everything a copy could mangle, NULL where the
    /// column allows it.
    fn seed_value(table: &str, column: &str, ty: &str, not_null: bool, row: i64) -> SqlValue {
        if !not_null && row == 2 {
            return SqlValue::Null;
        }
        if ty == "INTEGER" {
            let is_id = TABLES
                .iter()
                .any(|t| t.name == table && t.id_column == Some(column));
            return SqlValue::Integer(if is_id {
                [5, 17, 40][row as usize]
            } else {
                [0, -1_700_000_000_123, i64::MAX][row as usize]
            });
        }
        if ty == "REAL" {
            return SqlValue::Real([0.0, -12.75, 1e300][row as usize]);
        }
        SqlValue::Text(format!(
            "{table}.{column} #{row}: tab\there, line\nbreak, \\N \\ 'single' \"double\" é 🙂 {}",
            "x".repeat(row as usize * 100)
        ))
    }

    /// Three rows in every table of the schema, whatever its columns (so that a table or a
    /// column added later is seeded too), and the rows the engine itself writes in `meta`.
    fn seed_every_table(conn: &Connection) {
        for table in sqlite_tables(conn).unwrap() {
            let columns: Vec<(String, String, bool)> = conn
                .prepare("SELECT name, type, \"notnull\" FROM pragma_table_info(?1)")
                .unwrap()
                .query_map([&table], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? == 1))
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
            let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
            for row in 0..3 {
                let values = columns
                    .iter()
                    .map(|(name, ty, not_null)| seed_value(&table, name, ty, *not_null, row));
                conn.execute(
                    &format!(
                        "INSERT INTO {table} ({}) VALUES ({})",
                        names.join(", "),
                        marks.join(", ")
                    ),
                    params_from_iter(values),
                )
                .unwrap_or_else(|e| panic!("seeding {table}: {e}"));
            }
        }
        // An order, with its products in order_products as SQLite's event insert lists them
        // (PostgreSQL's trigger lists them again as the events are copied).
        conn.execute_batch(
            "INSERT INTO events (seq, message_id, kind, name, properties, timestamp, received_at)
             VALUES (41, 'order-1', 'track', 'Order Completed',
                     '{\"products\": [{\"product_id\": \"p1\"}, {\"sku\": \"s2\"}]}', 0, 0);
             INSERT INTO order_products (product_id, seq) VALUES ('p1', 41), ('s2', 41);",
        )
        .unwrap();
        conn.execute_batch(
            "INSERT INTO meta (key, value) VALUES
               ('processed_seq', '41'),
               ('simulated_clock_ms', '1767225600000'),
               ('installation_id', 'abcdef0123456789'),
               ('id_floor:contacts', '1000'),
               ('id_floor:events', '3');",
        )
        .unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO events (message_id, kind, name, user_id, properties, timestamp, received_at)
                     VALUES (?1, 'track', 'Viewed', 'many', '{}', ?2, ?2)",
                )
                .unwrap();
            for i in 0..MANY_EVENTS {
                insert
                    .execute(rusqlite::params![format!("many-{i}"), i])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }

    /// Every row of `table` in PostgreSQL, sorted.
    fn pg_rows(client: &mut Client, table: &Table) -> Vec<Vec<Cell>> {
        let columns = pg_columns(client, table.name).unwrap();
        let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        let mut rows: Vec<Vec<Cell>> = client
            .query(
                &format!("SELECT {} FROM {}", names.join(", "), table.name),
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| match kind {
                        Kind::Int => Cell::Int(row.get(i)),
                        Kind::Text => Cell::Text(row.get(i)),
                        Kind::Real => Cell::Real(row.get(i)),
                    })
                    .collect()
            })
            .collect();
        rows.sort();
        rows
    }

    /// Every row of `table` in SQLite (`meta` without the id floors), sorted.
    fn sqlite_rows(conn: &Connection, columns: &[(String, Kind)], table: &Table) -> Vec<Vec<Cell>> {
        let mut rows = Vec::new();
        read_source_rows(conn, table, columns, |cells| {
            rows.push(cells);
            Ok(())
        })
        .unwrap();
        rows.sort();
        rows
    }

    fn event(message_id: &str) -> NewEvent {
        NewEvent {
            message_id: message_id.to_string(),
            kind: EventKind::Track,
            name: "After".to_string(),
            user_id: Some("after".to_string()),
            anonymous_id: None,
            previous_id: None,
            properties: Map::new(),
            timestamp: Timestamp::UNIX_EPOCH,
            received_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn every_row_of_every_table_arrives_as_it_was_and_new_rows_get_fresh_ids() {
        let Some(db) = TestDatabase::create("migrate_rows") else {
            return;
        };
        let dir = TempDir::new("migrate_rows");
        let source = SqliteStore::open(&dir.0).unwrap();
        seed_every_table(&source.conn().unwrap());
        drop(source);

        let mut seen = Vec::new();
        let report = sqlite_to_postgres(&dir.0, &db.url(), &mut |p| {
            seen.push(match p {
                Progress::Started { table, rows } => format!("start {table} {rows}"),
                Progress::Copied { table, rows } => format!("copied {table} {rows}"),
                Progress::Finished { table } => format!("done {table}"),
            })
        })
        .expect("migrates");

        assert_eq!(report.counts.len(), TABLES.len());
        for count in &report.counts {
            assert!(count.source > 0, "{}: no rows were seeded", count.table);
            assert_eq!(count.source, count.target, "{}", count.table);
        }
        assert!(
            seen.contains(&"copied events 20000".to_string()),
            "{seen:?}"
        );
        assert!(seen.contains(&"done audit_log".to_string()), "{seen:?}");

        let conn = Connection::open(dir.0.join("waymark.db")).unwrap();
        let target = db.open();
        let mut client = target.conn().unwrap();
        for table in TABLES {
            let columns = pg_columns(&mut *client, table.name).unwrap();
            let expected = sqlite_rows(&conn, &columns, table);
            let copied = pg_rows(&mut client, table);
            assert_eq!(copied.len(), expected.len(), "{}", table.name);
            assert!(copied == expected, "{}: the rows differ", table.name);
        }
        let floors: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM meta WHERE key LIKE 'id\\_floor:%'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(floors, 0, "id floors become sequence positions");
        let products: Vec<String> = client
            .query(
                "SELECT product_id FROM order_products WHERE seq = 41 ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(products, ["p1", "s2"]);
        drop(client);

        // New rows through the store: past the copied ids and past SQLite's floors.
        let last_seq = 41 + MANY_EVENTS;
        assert_eq!(target.last_event_seq().unwrap(), last_seq);
        target
            .append_events(&[event("after-1"), event("after-2")])
            .unwrap();
        assert_eq!(target.last_event_seq().unwrap(), last_seq + 2);
        let contact = target.engine_tx(&mut |tx| {
            assert_eq!(
                tx.resolve_contact(Some("after"), None, Timestamp::UNIX_EPOCH)?,
                1001
            );
            Ok(())
        });
        contact.expect("a new contact after the floor");
        assert_eq!(
            report
                .next_ids
                .iter()
                .find(|(column, _)| column == "contacts.id")
                .map(|(_, next)| *next),
            Some(1001)
        );
        // Every other table with ids: its sequence is past its largest id.
        let mut client = target.conn().unwrap();
        for table in TABLES {
            let Some(column) = table.id_column else {
                continue;
            };
            let largest: i64 = client
                .query_one(&format!("SELECT MAX({column}) FROM {}", table.name), &[])
                .unwrap()
                .get(0);
            let next: i64 = client
                .query_one(
                    "SELECT nextval(pg_get_serial_sequence($1, $2))",
                    &[&table.name, &column],
                )
                .unwrap()
                .get(0);
            assert!(
                next > largest,
                "{}: next id {next}, largest {largest}",
                table.name
            );
        }
    }

    #[test]
    fn a_target_that_holds_data_is_refused_and_left_as_it_was() {
        let Some(db) = TestDatabase::create("migrate_refused") else {
            return;
        };
        let dir = TempDir::new("migrate_refused");
        SqliteStore::open(&dir.0)
            .unwrap()
            .conn()
            .unwrap()
            .execute(
                "INSERT INTO contacts (id, user_id, created_at, updated_at) VALUES (7, 'from-sqlite', 0, 0)",
                [],
            )
            .unwrap();
        let target = db.open();
        target
            .conn()
            .unwrap()
            .batch_execute(
                "INSERT INTO journeys (id, name, status, draft, created_at, updated_at)
                 VALUES ('j', 'J', 'draft', '{}', 0, 0)",
            )
            .unwrap();
        let err = sqlite_to_postgres(&dir.0, &db.url(), &mut |_| {}).expect_err("refused");
        assert!(matches!(err, MigrateError::TargetNotEmpty(_)), "{err}");
        assert!(err.to_string().contains("journeys: 1"), "{err}");
        let contacts: i64 = target
            .conn()
            .unwrap()
            .query_one("SELECT COUNT(*) FROM contacts", &[])
            .unwrap()
            .get(0);
        assert_eq!(contacts, 0);
    }

    #[test]
    fn a_failure_half_way_leaves_the_target_untouched() {
        let Some(db) = TestDatabase::create("migrate_rollback") else {
            return;
        };
        let dir = TempDir::new("migrate_rollback");
        let source = SqliteStore::open(&dir.0).unwrap();
        source
            .conn()
            .unwrap()
            .execute_batch(
                "INSERT INTO contacts (id, user_id, created_at, updated_at) VALUES (7, 'ann', 0, 0);
                 INSERT INTO audit_log (at, actor, action, detail) VALUES ('yesterday', 'a', 'b', '{}');",
            )
            .unwrap();
        drop(source);
        let key_before: String = {
            let target = db.open();
            let mut conn = target.conn().unwrap();
            conn.query_one("SELECT value FROM meta WHERE key = 'erasure_key'", &[])
                .unwrap()
                .get(0)
        };
        let err = sqlite_to_postgres(&dir.0, &db.url(), &mut |_| {}).expect_err("fails");
        let message = err.to_string();
        assert!(message.contains("audit_log.at of row 1"), "{message}");
        let target = db.open();
        let mut conn = target.conn().unwrap();
        let contacts: i64 = conn
            .query_one("SELECT COUNT(*) FROM contacts", &[])
            .unwrap()
            .get(0);
        assert_eq!(
            contacts, 0,
            "the contacts copied before the failure are gone"
        );
        let key_after: String = conn
            .query_one("SELECT value FROM meta WHERE key = 'erasure_key'", &[])
            .unwrap()
            .get(0);
        assert_eq!(key_after, key_before);
    }

    #[test]
    fn a_value_postgresql_cannot_hold_is_named_with_its_place() {
        let place = || "contacts.email of row 3".to_string();
        for (value, kind, reason) in [
            (ValueRef::Text(b"a\0b"), Kind::Text, "NUL"),
            (ValueRef::Text(b"\xff"), Kind::Text, "not UTF-8"),
            (ValueRef::Real(1.5), Kind::Int, "Real where an integer"),
            (ValueRef::Integer(1), Kind::Text, "Integer where text"),
            (ValueRef::Blob(b"x"), Kind::Text, "Blob where text"),
        ] {
            let message = cell(value, kind, place).expect_err(reason).to_string();
            assert!(message.contains("contacts.email of row 3"), "{message}");
            assert!(message.contains(reason), "{message}");
        }
        assert_eq!(
            cell(ValueRef::Text("é".as_bytes()), Kind::Text, place).unwrap(),
            Cell::Text(Some("é".to_string()))
        );
        assert_eq!(
            cell(ValueRef::Null, Kind::Int, place).unwrap(),
            Cell::Int(None)
        );
    }

    #[test]
    fn an_older_sqlite_schema_is_refused_with_what_to_do() {
        let dir = TempDir::new("migrate_old");
        SqliteStore::open(&dir.0)
            .unwrap()
            .conn()
            .unwrap()
            .execute_batch(&format!(
                "PRAGMA user_version = {}",
                crate::sqlite::SCHEMA_VERSION - 1
            ))
            .unwrap();
        // Refused before the target is opened: this one does not exist.
        let err = sqlite_to_postgres(&dir.0, "postgres://nobody@127.0.0.1:1/none", &mut |_| {})
            .expect_err("refused");
        assert!(matches!(err, MigrateError::SourceVersion(_)), "{err}");
        assert!(err.to_string().contains("start this Waymark once"), "{err}");
    }

    #[test]
    fn a_missing_data_directory_is_a_clear_error() {
        let dir = TempDir::new("migrate_missing");
        for missing in [dir.0.join("nowhere"), dir.0.clone()] {
            let err =
                sqlite_to_postgres(&missing, "postgres://nobody@127.0.0.1:1/none", &mut |_| {})
                    .expect_err("refused");
            assert!(matches!(err, MigrateError::NoSource(_)), "{err}");
            assert!(
                err.to_string().contains(&missing.display().to_string()),
                "{err}"
            );
        }
        assert!(!dir.0.join("nowhere").exists(), "nothing is created");
        assert!(!dir.0.join("waymark.db").exists(), "nothing is created");
    }

    #[test]
    fn an_unreachable_target_is_a_clear_error_without_the_password() {
        let dir = TempDir::new("migrate_unreachable");
        drop(SqliteStore::open(&dir.0).unwrap());
        let err = sqlite_to_postgres(
            &dir.0,
            "postgres://waymark:s3cret@127.0.0.1:1/waymark?connect_timeout=2",
            &mut |_| {},
        )
        .expect_err("refused");
        let message = err.to_string();
        assert!(
            message.contains("cannot connect to PostgreSQL at 127.0.0.1:1/waymark"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }
}
