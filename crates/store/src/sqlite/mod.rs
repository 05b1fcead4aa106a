//! The embedded SQLite backend: one database file in the data directory, WAL mode, and
//! `synchronous = FULL` so that an acknowledged event survives a power cut, not just a crash.
//! Connections come from a small pool; SQLite serialises writers, and every write
//! transaction is `BEGIN IMMEDIATE` so that writers queue instead of failing mid-way.

/// The id of a new row of `table`: one past the largest ever used. SQLite hands out one past
/// the largest id *present*, so after an erasure removed the newest rows it would hand their
/// ids out again: a reused event `seq` would fall behind the engine's processed cursor (and
/// never be processed), a reused contact id would make the erased person's signed links act
/// on someone else. An erasure records the largest ids in `meta` (`id_floor:<table>`).
macro_rules! next_id {
    ($table:literal, $column:literal) => {
        concat!(
            "(SELECT MAX(COALESCE((SELECT MAX(",
            $column,
            ") FROM ",
            $table,
            "), 0), ",
            "COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'id_floor:",
            $table,
            "'), 0)) + 1)"
        )
    };
}

mod api;
mod broadcasts;
pub mod inspect;
pub mod privacy;
mod rollups;
mod tx;

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::concerns::Identities;
pub(crate) use crate::millis::{ms, ts};
use crate::{EngineTx, NewEvent, Result, StoreError};

/// Each schema version's migration, in order: version N is reached by running `MIGRATIONS[N-1]`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
    include_str!("schema_v6.sql"),
    include_str!("schema_v7.sql"),
    include_str!("schema_v8.sql"),
    include_str!("schema_v9.sql"),
    include_str!("schema_v10.sql"),
    include_str!("schema_v11.sql"),
    include_str!("schema_v12.sql"),
    include_str!("schema_v13.sql"),
    include_str!("schema_v14.sql"),
    include_str!("schema_v15.sql"),
    include_str!("schema_v16.sql"),
];
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct SqliteStore {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    /// Writers of this process queue here rather than in SQLite's busy handler, which sleeps
    /// up to 100 ms at a time however soon the lock is free.
    writer: Mutex<()>,
    /// When this process opened the file (it is the one process working on it).
    pub(crate) opened_at: jiff::Timestamp,
    tuning: Tuning,
}

/// How a database's connections are set up: a server's, or a scratch one's.
#[derive(Clone, Copy)]
struct Tuning {
    /// `FULL`: a commit waits for the disk; `OFF` for a scratch database.
    synchronous: &'static str,
    /// Page cache per connection, in KiB.
    cache_kib: u32,
}

const SERVER: Tuning = Tuning {
    synchronous: "FULL",
    cache_kib: 32_000,
};

/// A simulation's private copy: nothing in it must survive a power cut, and its memory should
/// stay small whatever the population (the operating system caches the file anyway).
const SCRATCH: Tuning = Tuning {
    synchronous: "OFF",
    cache_kib: 4_000,
};

pub(crate) struct Pooled<'a> {
    store: &'a SqliteStore,
    conn: Option<Connection>,
}

impl Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut pool)) = (self.conn.take(), self.store.pool.lock())
            && pool.len() < 8
        {
            pool.push(conn);
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `waymark.db` in `dir` and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, SERVER)
    }

    /// Opens a scratch database that nothing must survive a power cut in (a simulation's
    /// private copy): commits do not wait for the disk (`synchronous = OFF`), and each
    /// connection caches less. A crash of the process still leaves it consistent.
    pub fn open_scratch(dir: &Path) -> Result<Self> {
        Self::open_with(dir, SCRATCH)
    }

    fn open_with(dir: &Path, tuning: Tuning) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", dir.display())))?;
        let store = SqliteStore {
            path: dir.join("waymark.db"),
            pool: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
            opened_at: jiff::Timestamp::now(),
            tuning,
        };
        let mut conn = store.connect()?;
        migrate(&mut conn)?;
        store.pool.lock().expect("pool lock").push(conn);
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connect(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {};
             PRAGMA foreign_keys = OFF;
             PRAGMA cache_size = -{};
             PRAGMA temp_store = MEMORY;",
            self.tuning.synchronous, self.tuning.cache_kib
        ))?;
        // Plans never depend on the values bound: without this, a statement whose plan looked at
        // a parameter (any `LIMIT ?`, a partial index compared with one) is prepared again at
        // every run, which took a third of the engine's time. Where an index matters, the
        // statement names it (`INDEXED BY`).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    pub(crate) fn conn(&self) -> Result<Pooled<'_>> {
        let pooled = self.pool.lock().expect("pool lock").pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        Ok(Pooled {
            store: self,
            conn: Some(conn),
        })
    }

    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn()?;
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    pub(crate) fn append(&self, events: &[NewEvent]) -> Result<Vec<bool>> {
        self.write(|tx| {
            let mut fresh = Vec::with_capacity(events.len());
            for e in events {
                let mut tx = tx::SqliteTx { tx };
                let contact = tx.route(e)?;
                fresh.push(tx.insert_event(contact, e)?);
            }
            Ok(fresh)
        })
    }

    pub(crate) fn run_engine_tx(
        &self,
        work: &mut dyn FnMut(&mut dyn EngineTx) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.conn()?;
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut engine_tx = tx::SqliteTx { tx: &tx };
            work(&mut engine_tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let conn = self.conn()?;
        Ok(conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    pub(crate) fn put_meta(&self, key: &str, value: &str) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute([key, value])?;
            Ok(())
        })
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Database(format!(
            "the database has schema version {version}, newer than this Waymark ({SCHEMA_VERSION}); upgrade Waymark"
        )));
    }
    // One transaction per step, so a crash leaves the database at a whole version.
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(migration)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{TempDir, tables};
    use super::*;
    use rusqlite::params;

    /// Version 11 starts each segment's history with its members then, by the hour they
    /// entered: the sizes it reports from then on are the segments' real sizes.
    #[test]
    fn the_segment_history_starts_with_the_members_at_the_upgrade() {
        use crate::Audiences;
        let dir = TempDir::new("v10-members");
        {
            let mut conn = Connection::open(dir.0.join("waymark.db")).unwrap();
            let tx = conn.transaction().unwrap();
            for migration in &MIGRATIONS[..10] {
                tx.execute_batch(migration).unwrap();
            }
            tx.execute_batch(
                "PRAGMA user_version = 10;
                 INSERT INTO segments (id, name, condition, created_at, updated_at)
                   VALUES ('pro', 'Pro', '{}', 0, 0), ('empty', 'Empty', '{}', 0, 0);
                 INSERT INTO segment_members (segment_id, contact_id, entered_at)
                   VALUES ('pro', 1, 7200000), ('pro', 2, 7300000), ('pro', 3, 36000000);",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(&dir.0).expect("opens and migrates");
        let hour = |n: i64| jiff::Timestamp::from_second(n * 3600).unwrap();
        let history = store.segment_history("pro", hour(0), hour(24)).unwrap();
        let hours: Vec<(jiff::Timestamp, i64, i64)> = history
            .hours
            .iter()
            .map(|h| (h.hour, h.entered, h.left))
            .collect();
        assert_eq!(hours, [(hour(2), 2, 0), (hour(10), 1, 0)]);
        assert_eq!(
            store
                .segment_history("pro", hour(3), hour(4))
                .unwrap()
                .members_before,
            2
        );
        assert!(
            store
                .segment_history("empty", hour(0), hour(24))
                .unwrap()
                .hours
                .is_empty()
        );
    }

    #[test]
    fn a_database_of_each_earlier_version_migrates_to_the_current_one_keeping_its_rows() {
        for version in 1..SCHEMA_VERSION {
            let dir = TempDir::new(&format!("v{version}"));
            {
                let mut conn = Connection::open(dir.0.join("waymark.db")).unwrap();
                let tx = conn.transaction().unwrap();
                for migration in &MIGRATIONS[..version as usize] {
                    tx.execute_batch(migration).unwrap();
                }
                tx.execute_batch(&format!("PRAGMA user_version = {version}"))
                    .unwrap();
                tx.execute(
                    "INSERT INTO contacts (user_id, traits, created_at, updated_at) VALUES ('kept', '{}', 0, 0)",
                    [],
                )
                .unwrap();
                tx.commit().unwrap();
            }
            let store = SqliteStore::open(&dir.0).expect("opens and migrates");
            let conn = store.connect().unwrap();
            let v: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(v, SCHEMA_VERSION, "from v{version}");
            let names = tables(&conn);
            for t in [
                "segments",
                "trigger_schedule",
                "score_expiries",
                "experiment_variants",
                "audit_log",
                "erased_addresses",
            ] {
                assert!(
                    names.iter().any(|n| n == t),
                    "from v{version}: {t} missing: {names:?}"
                );
            }
            let kept: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM contacts WHERE user_id = 'kept'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(kept, 1);
            let key: String = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'erasure_key'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(key.len(), 64, "from v{version}: a 32-byte erasure key");
        }
    }

    #[test]
    fn version_8_pins_the_templates_of_versions_published_before_it() {
        let dir = TempDir::new("v8");
        {
            let mut conn = Connection::open(dir.0.join("waymark.db")).unwrap();
            let tx = conn.transaction().unwrap();
            for migration in &MIGRATIONS[..7] {
                tx.execute_batch(migration).unwrap();
            }
            let doc = |template: &str| {
                format!(
                    r#"{{"id": "j", "name": "J", "nodes": [
                         {{"id": "start", "type": "trigger", "event": "Go"}},
                         {{"id": "a", "type": "send_email", "template": "{template}"}},
                         {{"id": "b", "type": "send_sms", "template": "text"}},
                         "not a node", 42]}}"#
                )
            };
            tx.execute_batch(
                "PRAGMA user_version = 7;
                 INSERT INTO templates (id, channel, definition, created_at, updated_at) VALUES
                   ('mail', 'email', '{\"id\": \"mail\", \"channel\": \"email\", \"text\": \"hi\"}', 1, 2),
                   ('text', 'sms', '{\"id\": \"text\", \"channel\": \"sms\", \"text\": \"hi\"}', 1, 3);
                 INSERT INTO journeys (id, name, status, draft, created_at, updated_at) VALUES
                   ('j', 'J', 'live', '{}', 0, 0);",
            )
            .unwrap();
            for (version, document) in [
                (1, doc("mail")),
                (2, doc("gone")),
                (3, "{not json".to_string()),
                (4, r#"{"nodes": {"a": 1}}"#.to_string()),
            ] {
                tx.execute(
                    "INSERT INTO journey_versions (journey_id, version, document, published_at) VALUES ('j', ?1, ?2, 0)",
                    params![version, document],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(&dir.0).expect("opens and migrates");
        let conn = store.connect().unwrap();
        let pins: Vec<(i64, String, i64)> = conn
            .prepare(
                "SELECT version, template_id, template_version FROM journey_version_templates ORDER BY version, template_id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            pins,
            [
                (1, "mail".to_string(), 1),
                (1, "text".to_string(), 1),
                (2, "text".to_string(), 1)
            ]
        );
        let versions: Vec<(String, i64, i64)> = conn
            .prepare("SELECT template_id, version, created_at FROM template_versions ORDER BY template_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            versions,
            [("mail".to_string(), 1, 2), ("text".to_string(), 1, 3)]
        );
    }

    #[test]
    fn version_5_takes_marketing_consent_from_contacts_that_only_came_through_the_form() {
        let dir = TempDir::new("v5");
        {
            let mut conn = Connection::open(dir.0.join("waymark.db")).unwrap();
            let tx = conn.transaction().unwrap();
            for migration in &MIGRATIONS[..4] {
                tx.execute_batch(migration).unwrap();
            }
            tx.execute_batch(
                "PRAGMA user_version = 4;
                 INSERT INTO contacts (id, user_id, traits, created_at, updated_at) VALUES
                   (1, NULL, '{}', 0, 5), (2, NULL, '{}', 0, 5), (3, 'u3', '{}', 0, 5),
                   (4, NULL, '{}', 0, 5), (5, NULL, '{}', 0, 5);
                 -- 1: the form only, pending on a topic; 2: the form, then identified
                 -- anonymously elsewhere; 3: the form, then a user id; 4: the form, already
                 -- confirmed all marketing; 5: an anonymous visitor who never used the form.
                 INSERT INTO anonymous_ids (anonymous_id, contact_id) VALUES
                   ('subscribe:a@example.com', 1), ('subscribe:b@example.com', 2),
                   ('web-123', 2), ('subscribe:c@example.com', 3),
                   ('subscribe:d@example.com', 4), ('web-456', 5);
                 INSERT INTO subscriptions (contact_id, channel, topic, status, updated_at) VALUES
                   (1, 'email', 'news', 'pending', 5), (4, 'email', '*', 'subscribed', 5);",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(&dir.0).expect("opens and migrates");
        let conn = store.connect().unwrap();
        let all_marketing = |contact: i64| -> Option<String> {
            conn.query_row(
                "SELECT status FROM subscriptions WHERE contact_id = ?1 AND topic = '*'",
                [contact],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
        };
        assert_eq!(all_marketing(1).as_deref(), Some("pending"));
        assert_eq!(all_marketing(2), None);
        assert_eq!(all_marketing(3), None);
        assert_eq!(all_marketing(4).as_deref(), Some("subscribed"));
        assert_eq!(all_marketing(5), None);
    }

    #[test]
    fn version_6_keeps_the_retry_lifetime_of_messages_being_retried() {
        let dir = TempDir::new("v6");
        {
            let mut conn = Connection::open(dir.0.join("waymark.db")).unwrap();
            let tx = conn.transaction().unwrap();
            for migration in &MIGRATIONS[..4] {
                tx.execute_batch(migration).unwrap();
            }
            tx.execute_batch("PRAGMA user_version = 4").unwrap();
            for (key, status, attempts) in [
                ("retrying", "queued", 2),
                ("new", "queued", 0),
                ("gone", "failed", 6),
            ] {
                tx.execute(
                    "INSERT INTO messages (idempotency_key, contact_id, template, channel, status, attempts, created_at)
                     VALUES (?1, 1, 't', 'email', ?2, ?3, 1000)",
                    params![key, status, attempts],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(&dir.0).expect("opens and migrates");
        let conn = store.connect().unwrap();
        let first = |key: &str| -> Option<i64> {
            conn.query_row(
                "SELECT first_attempt_at FROM messages WHERE idempotency_key = ?1",
                [key],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(first("retrying"), Some(1000));
        assert_eq!(first("new"), None);
        assert_eq!(first("gone"), None);
    }

    #[test]
    fn a_database_newer_than_this_build_is_refused() {
        let dir = TempDir::new("newer");
        {
            let conn = Connection::open(dir.0.join("waymark.db")).unwrap();
            conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
                .unwrap();
        }
        let err = SqliteStore::open(&dir.0).err().expect("refused");
        assert!(err.to_string().contains("newer"), "{err}");
    }
}

#[cfg(test)]
mod statement_reuse {
    /// A cached statement runs again without being prepared again, whatever values are
    /// bound, even when its plan could have looked at them (`LIMIT ?`, a partial index).
    #[test]
    fn cached_statements_are_not_prepared_again_when_their_values_change() {
        let dir = std::env::temp_dir().join(format!(
            "waymark-statement-reuse-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        let store = super::SqliteStore::open(&dir).unwrap();
        let conn = store.conn().unwrap();
        let sql = "SELECT id FROM messages INDEXED BY messages_due
                   WHERE status = 'queued' AND channel = ?1 AND priority = ?2
                     AND next_attempt_at <= ?3 ORDER BY next_attempt_at LIMIT ?4";
        for run in 0..3 {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let mut rows = stmt
                .query(rusqlite::params!["email", run, 1000 + run, 10 + run])
                .unwrap();
            while rows.next().unwrap().is_some() {}
            drop(rows);
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "run {run}"
            );
        }
        drop(conn);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
