//! The PostgreSQL backend: the same tables and the same behaviour as the SQLite one, on a
//! server that several Waymark processes can share.
//!
//! The driver is `postgres`, the blocking client of rust-postgres (sfackler's tokio-postgres
//! underneath): the store traits are blocking and called off the async threads, so a blocking
//! client keeps this backend a line-for-line sibling of the SQLite one, with no second async
//! runtime to bridge. Connections come from a small pool of our own, like SQLite's, that drops
//! a connection the server closed, so the store recovers by itself when the database returns.
//!
//! The driver blocks on a small runtime of its own, which tokio forbids on a thread that is
//! driving async tasks; every entry point therefore runs its database work through
//! [`outside_async`], so that a call from an async thread blocks that thread (as a SQLite call
//! does) instead of panicking.
//!
//! Writers of one process take turns (as on SQLite), and appending events also takes a
//! database-wide advisory lock: an event's `seq` comes from a sequence, and the engine reads
//! events in `seq` order after a cursor, so an event must never commit after one with a
//! larger `seq` (it would fall behind the cursor and never be processed).

mod api;
pub mod inspect;
mod privacy;
mod tx;

#[cfg(test)]
pub(crate) mod test_support;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use ::postgres::{Client, Config, NoTls, Statement, Transaction};

#[allow(unused_imports)]
pub(crate) use crate::millis::{ms, ts};
use crate::{EngineTx, NewEvent, Result, StoreError};

/// Each schema version's migration, in order: version N is reached by running `MIGRATIONS[N-1]`.
const MIGRATIONS: &[&str] = &[include_str!("schema_v1.sql")];
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Advisory lock keys (one number space per database; these are "waymark" and a purpose).
const MIGRATION_LOCK: i64 = 0x7761_796d_6172_6b01;
const APPEND_LOCK: i64 = 0x7761_796d_6172_6b02;

/// Connections kept open between calls.
const IDLE_CONNECTIONS: usize = 16;

/// Statements a connection keeps prepared; past this (SQL built per call, e.g. with a list of
/// ids) the connection starts over.
const PREPARED_PER_CONNECTION: usize = 256;

/// A connection and the statements it has prepared, by their SQL text: a statement run by text
/// takes two round trips (prepare, then execute), one already prepared takes one, and the
/// engine's transactions run the same few dozen statements over and over.
pub(crate) struct Connection {
    client: Client,
    prepared: Prepared,
}

#[derive(Default)]
pub(crate) struct Prepared(HashMap<String, Statement>);

impl Prepared {
    /// `sql` prepared on `tx`'s connection: from the cache, or prepared now and kept.
    pub(crate) fn get(
        &mut self,
        tx: &mut Transaction<'_>,
        sql: &str,
    ) -> std::result::Result<Statement, ::postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = tx.prepare(sql)?;
        if self.0.len() >= PREPARED_PER_CONNECTION {
            self.0.clear();
        }
        self.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

pub struct PgStore {
    config: Config,
    /// Where the database is, for messages: host, port and database name, never a password.
    label: String,
    pool: Mutex<Vec<Connection>>,
    /// Writers of this process take turns, as on SQLite, so the engine's read-then-write steps
    /// see the same serial order on both backends.
    writer: Mutex<()>,
}

pub(crate) struct Pooled<'a> {
    store: &'a PgStore,
    client: Option<Connection>,
}

impl Pooled<'_> {
    /// The client and the statements it has prepared, to borrow both at once.
    fn parts(&mut self) -> (&mut Client, &mut Prepared) {
        let connection = self.client.as_mut().expect("present until drop");
        (&mut connection.client, &mut connection.prepared)
    }
}

impl Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client.as_ref().expect("present until drop").client
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client.as_mut().expect("present until drop").client
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let (Some(client), Ok(mut pool)) = (self.client.take(), self.store.pool.lock())
            && !client.client.is_closed()
            && pool.len() < IDLE_CONNECTIONS
        {
            pool.push(client);
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let clients = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));
        if clients.is_empty() {
            return;
        }
        // Closing a connection blocks on the driver's runtime, which tokio forbids on a thread
        // driving async tasks (and the store is often dropped on one, as the server stops);
        // a thread of its own may block.
        let _ = std::thread::spawn(move || drop(clients)).join();
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // The error's own Display says only "db error"; the server's message is in the
        // DbError underneath.
        match e.as_db_error() {
            Some(db) => StoreError::Database(match db.detail() {
                Some(detail) => format!("{} ({}): {detail}", db.message(), db.code().code()),
                None => format!("{} ({})", db.message(), db.code().code()),
            }),
            None => {
                let mut message = e.to_string();
                if let Some(source) = std::error::Error::source(&e) {
                    message = format!("{message}: {source}");
                }
                StoreError::Database(message)
            }
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// the key=value form) and brings its schema up to date. Several processes may open the
    /// same database at once: migrations run under an advisory lock.
    pub fn open(url: &str) -> Result<Self> {
        let mut config = Config::from_str(url).map_err(|e| {
            StoreError::Database(format!("`{}` is not a PostgreSQL URL: {e}", redact(url)))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // Notice a server that went away while a connection sat idle in the pool.
        config.keepalives_idle(Duration::from_secs(30));
        config.application_name("waymark");
        let label = label(&config);
        let store = PgStore {
            config,
            label,
            pool: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
        };
        outside_async(|| {
            let mut client = store.connect()?;
            migrate(&mut client)?;
            store.pool.lock().expect("pool lock").push(Connection {
                client,
                prepared: Prepared::default(),
            });
            Ok(store)
        })
    }

    /// Host, port and database, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn connect(&self) -> Result<Client> {
        self.config.connect(NoTls).map_err(|e| {
            let StoreError::Database(reason) = StoreError::from(e) else {
                unreachable!("connection errors are database errors")
            };
            StoreError::Database(format!(
                "cannot connect to PostgreSQL at {}: {reason}",
                self.label
            ))
        })
    }

    pub(crate) fn conn(&self) -> Result<Pooled<'_>> {
        let pooled = {
            let mut pool = self.pool.lock().expect("pool lock");
            loop {
                match pool.pop() {
                    Some(c) if c.client.is_closed() => continue,
                    other => break other,
                }
            }
        };
        let client = match pooled {
            Some(c) => c,
            None => Connection {
                client: self.connect()?,
                prepared: Prepared::default(),
            },
        };
        Ok(Pooled {
            store: self,
            client: Some(client),
        })
    }

    /// Runs `f` in one write transaction, this process's writers taking turns, outside any
    /// async context.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut ::postgres::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write_prepared(|tx, _| f(tx))
    }

    /// `write`, with the connection's prepared statements at hand.
    fn write_prepared<T>(
        &self,
        f: impl FnOnce(&mut ::postgres::Transaction<'_>, &mut Prepared) -> Result<T>,
    ) -> Result<T> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let (client, prepared) = conn.parts();
            let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let mut tx = client.transaction()?;
            let out = f(&mut tx, prepared)?;
            tx.commit()?;
            Ok(out)
        })
    }

    pub(crate) fn append(&self, events: &[NewEvent]) -> Result<Vec<bool>> {
        self.write(|tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])?;
            let insert = tx.prepare(tx::INSERT_EVENT)?;
            let mut fresh = Vec::with_capacity(events.len());
            for e in events {
                fresh.push(tx::insert_event(tx, &insert, e, None)?);
            }
            Ok(fresh)
        })
    }

    pub(crate) fn run_engine_tx(
        &self,
        work: &mut dyn FnMut(&mut dyn EngineTx) -> Result<()>,
    ) -> Result<()> {
        self.write_prepared(|tx, prepared| {
            let mut engine_tx = tx::PgTx { tx, prepared };
            work(&mut engine_tx)
        })
    }
}

/// Runs `f`, which blocks on the driver's own runtime, so that it may be called from anywhere:
/// on a thread of a multi-threaded tokio runtime, tokio's `block_in_place` hands the thread's
/// async work to another thread first; elsewhere `f` just runs. (On a single-threaded tokio
/// runtime, whose one thread cannot be given up, tokio panics and says so: the server does not
/// use one.)
pub(crate) fn outside_async<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(f),
        Err(_) => f(),
    }
}

/// `host:port/database` of a configuration.
fn label(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(::postgres::config::Host::Tcp(host)) => host.clone(),
        Some(::postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{database}")
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn migrate(client: &mut Client) -> Result<()> {
    // One transaction for every step, under a lock: two processes starting together apply
    // each migration once, and a crash leaves the schema at a whole version.
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS waymark_schema (
             singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
             version   BIGINT NOT NULL
         )",
    )?;
    let version: i64 = tx
        .query_opt("SELECT version FROM waymark_schema", &[])?
        .map(|row| row.get(0))
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(StoreError::Database(format!(
            "the database has schema version {version}, newer than this Waymark ({SCHEMA_VERSION}); upgrade Waymark"
        )));
    }
    for migration in MIGRATIONS.iter().skip(version as usize) {
        tx.batch_execute(migration)?;
    }
    tx.execute(
        "INSERT INTO waymark_schema (version) VALUES ($1)
         ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
        &[&SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::test_support::TestDatabase;
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(
            redact("postgres://waymark:s3cret@db.example.com:5432/waymark"),
            "postgres://waymark:***@db.example.com:5432/waymark"
        );
        assert_eq!(
            redact("postgres://db.example.com/waymark"),
            "postgres://db.example.com/waymark"
        );
    }

    #[test]
    fn an_unreachable_server_is_a_clear_error() {
        let err = PgStore::open("postgres://waymark:s3cret@127.0.0.1:1/waymark?connect_timeout=2")
            .err()
            .expect("refused");
        let message = err.to_string();
        assert!(
            message.contains("cannot connect to PostgreSQL at 127.0.0.1:1/waymark"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn two_processes_starting_together_migrate_once() {
        let Some(db) = TestDatabase::create("migrate_race") else {
            return;
        };
        let url = db.url();
        let opened: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || PgStore::open(&url).map(|_| ()))
            })
            .collect();
        for handle in opened {
            handle.join().expect("no panic").expect("opens");
        }
        let store = PgStore::open(&url).expect("opens");
        let mut conn = store.conn().unwrap();
        let version: i64 = conn
            .query_one("SELECT version FROM waymark_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(version, SCHEMA_VERSION);
        let keys: i64 = conn
            .query_one("SELECT COUNT(*) FROM meta WHERE key = 'erasure_key'", &[])
            .unwrap()
            .get(0);
        assert_eq!(keys, 1);
    }

    #[test]
    fn a_database_newer_than_this_build_is_refused() {
        let Some(db) = TestDatabase::create("newer") else {
            return;
        };
        let store = PgStore::open(&db.url()).expect("opens");
        store
            .conn()
            .unwrap()
            .execute("UPDATE waymark_schema SET version = version + 1", &[])
            .unwrap();
        let err = PgStore::open(&db.url()).err().expect("refused");
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
