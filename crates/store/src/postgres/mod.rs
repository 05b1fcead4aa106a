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
//! Writers of one process take turns (as on SQLite), but for appends of events, which take an
//! advisory lock of the installation (its schema) instead: an event's `seq` comes from a
//! sequence, and the engine reads each partition's events in `seq` order after a cursor, so an
//! event must never commit after one with a larger `seq` (it would fall behind the cursor and
//! never be processed). Several processes share the engine's work: see `cluster`.

mod api;
mod broadcasts;
pub mod cluster;
pub mod inspect;
mod intake;
mod privacy;
mod rollups;
mod seen;
mod step_writes;
mod tls;
mod tx;

#[cfg(test)]
pub(crate) mod test_support;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::postgres::{Client, Config, NoTls, Statement};

pub(crate) use crate::millis::{ms, ts};
use crate::{EngineTx, NewEvent, Result, StoreError};

/// Each schema version's migration, in order: version N is reached by running `MIGRATIONS[N-1]`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
    include_str!("schema_v6.sql"),
    include_str!("schema_v7.sql"),
    include_str!("schema_v8.sql"),
];
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Advisory lock keys (one number space per database; this one is "waymark" and a purpose).
/// Migrations lock the whole database: they may create schemas.
const MIGRATION_LOCK: i64 = 0x7761_796d_6172_6b01;
/// Locks of one installation take two keys, a purpose and the hash of the schema, so that
/// installations in different schemas of one database do not hold each other up. Use as
/// `pg_advisory_xact_lock($1, hashtext(current_schema()))`.
const APPEND_LOCK: i32 = 0x776d_0002;
/// Engine work on one contact: `pg_advisory_xact_lock(CONTACT_LOCK, contact_id)` (see
/// `ContactsTx::lock_contacts`).
const CONTACT_LOCK: i32 = 0x776d_0004;
/// Saving a template: `pg_advisory_xact_lock(TEMPLATE_LOCK, hashtext(id))`.
const TEMPLATE_LOCK: i32 = 0x776d_0005;

/// Connections kept open between calls.
const IDLE_CONNECTIONS: usize = 16;
/// How long making a connection may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection attempts that may wait for an answer after they were given up on, at most (each
/// holds a thread and a socket until the server answers or the connection dies).
const MAX_STUCK_CONNECTS: usize = 4;
/// A connection idle in the pool for longer is checked (a round trip) before it is used: the
/// driver only notices that the server closed a connection when it uses it.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(2);
/// How long that check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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
        tx: &mut impl ::postgres::GenericClient,
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
    /// How connections are encrypted (`None`: they are not; see `tls`).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// Where the database is, for messages: host, port and database name, never a password.
    label: String,
    pool: Mutex<Vec<Idle>>,
    /// This process's place among those sharing the engine's work, once it joined (see
    /// `cluster`).
    membership: Mutex<Option<Arc<cluster::Membership>>>,
    /// Set when the store is dropped: threads of its own (see `cluster`) end.
    closed: Arc<std::sync::atomic::AtomicBool>,
    /// Writers of this process take turns, as on SQLite, so the engine's read-then-write steps
    /// see the same serial order on both backends.
    writer: Mutex<()>,
    /// Connection attempts given up on after the connect timeout that still wait for an
    /// answer (see [`PgStore::connect`]).
    stuck_connects: Arc<Mutex<usize>>,
}

/// A connection attempt of [`PgStore::connect`].
#[derive(Default)]
struct Attempt {
    /// The caller stopped waiting for it (the connect timeout passed).
    given_up: bool,
    ended: bool,
}

/// A connection waiting in the pool, and since when.
struct Idle {
    connection: Connection,
    since: Instant,
}

pub(crate) struct Pooled<'a> {
    store: &'a PgStore,
    client: Option<Connection>,
}

impl Pooled<'_> {
    /// `sql`, prepared on this connection once (see [`Prepared`]).
    pub(crate) fn statement(
        &mut self,
        sql: &str,
    ) -> std::result::Result<Statement, ::postgres::Error> {
        let (client, prepared) = self.parts();
        prepared.get(client, sql)
    }

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
        let Some(connection) = self.client.take() else {
            return;
        };
        let Ok(mut pool) = self.store.pool.lock() else {
            return;
        };
        if connection.client.is_closed() {
            // The server closed it, or the network between lost it: the connections waiting
            // in the pool most likely went the same way, and each would fail a call of its
            // own. New ones cost a connect each.
            let dead = std::mem::take(&mut *pool);
            drop(pool);
            drop(dead);
        } else if pool.len() < IDLE_CONNECTIONS {
            pool.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let clients: Vec<Client> =
            std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|idle| idle.connection.client)
                .collect();
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
        let message = match e.as_db_error() {
            Some(db) => match db.detail() {
                Some(detail) => format!("{} ({}): {detail}", db.message(), db.code().code()),
                None => format!("{} ({})", db.message(), db.code().code()),
            },
            None => match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            },
        };
        if is_connection_failure(&e) {
            StoreError::Unavailable(message)
        } else {
            StoreError::Database(message)
        }
    }
}

/// Whether `e` says the database could not be reached (no connection, a connection lost or
/// timed out, a server shutting down or starting up) rather than that a statement failed: the
/// first is retried until the database is back, the second is a bug or bad data.
fn is_connection_failure(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        // Class 08: connection exception; 57P01-57P03: the server is shutting down, crashed
        // or is not accepting connections yet; 53300: it has all the connections it takes.
        use ::postgres::error::SqlState;
        return code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code);
    }
    // Reading, writing or connecting failed (refused, reset, timed out, no route). The driver
    // also wraps malformed messages in an I/O error, of kind InvalidData or InvalidInput:
    // those are not an outage.
    std::error::Error::source(e)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| {
            !matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            )
        })
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// the key=value form) and brings its schema up to date. Several processes may open the
    /// same database at once: migrations run under an advisory lock.
    pub fn open(url: &str) -> Result<Self> {
        let (driver_url, verify) = tls::split(url)?;
        let tls = tls::connector(&verify)?;
        let mut config = Config::from_str(&driver_url).map_err(|e| {
            StoreError::Database(format!("`{}` is not a PostgreSQL URL: {e}", redact(url)))
        })?;
        // A database that cannot be reached must make calls fail within seconds, not hang
        // them (and every writer queued behind them): the API answers 503 and the engine
        // retries. The URL may set each of these itself.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // Notice a server that went away while a connection sat idle in the pool, or while a
        // call waited for its answer: probes after 10 s of silence, every 5 s, 3 unanswered
        // ones close the connection.
        if !url.contains("keepalives_idle") {
            // (Its getter cannot tell the driver's default of 2 hours from a chosen value.)
            config.keepalives_idle(Duration::from_secs(10));
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(Duration::from_secs(5));
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(3);
        }
        // And a request the server does not acknowledge at all (the network dropped it).
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(20));
        }
        config.application_name("waymark");
        let label = label(&config);
        let store = PgStore {
            config,
            tls,
            label,
            pool: Mutex::new(Vec::new()),
            membership: Mutex::new(None),
            closed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            writer: Mutex::new(()),
            stuck_connects: Arc::new(Mutex::new(0)),
        };
        outside_async(|| {
            let mut client = store.connect()?;
            migrate(&mut client)?;
            store.pool.lock().expect("pool lock").push(Idle {
                connection: Connection {
                    client,
                    prepared: Prepared::default(),
                },
                since: Instant::now(),
            });
            Ok(store)
        })
    }

    /// Host, port and database, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A new connection, made within the connect timeout. The driver's `connect_timeout`
    /// bounds only the TCP connection, not the startup and authentication after it: a server
    /// (or a proxy in front of it) that accepts connections and then never answers would hang
    /// the call, and every writer queued behind it. So the connection is made on a thread of
    /// its own and given up after the timeout; while [`MAX_STUCK_CONNECTS`] given-up attempts
    /// are still waiting for an answer, calls fail at once instead of starting more. Such an
    /// attempt ends when the server answers at last or its connection dies (TCP keepalive
    /// ends it once the host is gone), and with it the refusal.
    fn connect(&self) -> Result<Client> {
        let context = format!("cannot connect to PostgreSQL at {}", self.label);
        if *self
            .stuck_connects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            >= MAX_STUCK_CONNECTS
        {
            return Err(StoreError::Unavailable(format!(
                "{context}: earlier attempts are still waiting for an answer"
            )));
        }
        let timeout = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT);
        // Both fields change under `stuck_connects`' lock, so that an attempt given up on is
        // counted until it ends.
        let attempt = Arc::new(Mutex::new(Attempt::default()));
        let (answer, made) = std::sync::mpsc::sync_channel(1);
        let config = self.config.clone();
        let tls = self.tls.clone();
        let stuck = self.stuck_connects.clone();
        let ending = attempt.clone();
        std::thread::Builder::new()
            .name("waymark-pg-connect".into())
            .spawn(move || {
                let result = match tls {
                    Some(tls) => config.connect(tls),
                    None => config.connect(NoTls),
                };
                {
                    let mut stuck = stuck.lock().unwrap_or_else(|e| e.into_inner());
                    let mut attempt = ending.lock().unwrap_or_else(|e| e.into_inner());
                    if attempt.given_up {
                        *stuck -= 1;
                    }
                    attempt.ended = true;
                }
                // After a timeout nobody receives it, and the connection is closed here.
                let _ = answer.send(result);
            })
            .map_err(|e| StoreError::Database(format!("{context}: cannot start a thread: {e}")))?;
        let result = match made.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => {
                let mut stuck = self
                    .stuck_connects
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let mut attempt = attempt.lock().unwrap_or_else(|e| e.into_inner());
                if attempt.ended {
                    // It ended just now.
                    drop((stuck, attempt));
                    made.recv().map_err(|_| {
                        StoreError::Unavailable(format!("{context}: the attempt stopped"))
                    })?
                } else {
                    attempt.given_up = true;
                    *stuck += 1;
                    return Err(StoreError::Unavailable(format!(
                        "{context}: no answer within {} s",
                        timeout.as_secs_f64()
                    )));
                }
            }
        };
        result.map_err(|e| match StoreError::from(e) {
            StoreError::Unavailable(reason) => {
                StoreError::Unavailable(format!("{context}: {reason}"))
            }
            other => StoreError::Database(format!("{context}: {other}")),
        })
    }

    /// A connection from the pool, or a new one. A pooled connection that is closed, or that
    /// sat idle a while and no longer answers (the database restarted meanwhile, or the
    /// network between cut it), is dropped with the rest of the pool rather than handed out:
    /// after an outage, calls get fresh connections instead of failing one by one on dead
    /// ones. Called outside async (see [`outside_async`]).
    pub(crate) fn conn(&self) -> Result<Pooled<'_>> {
        let pooled = loop {
            let candidate = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(Idle {
                mut connection,
                since,
            }) = candidate
            else {
                break None;
            };
            if connection.client.is_closed() {
                continue;
            }
            if since.elapsed() < CHECK_AFTER_IDLE
                || connection.client.is_valid(CHECK_TIMEOUT).is_ok()
            {
                break Some(connection);
            }
            let dead = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));
            drop(dead);
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

    /// Appends events, each routed to its contact's partition (see `intake`). Appends do not
    /// take turns with this process's other writers: they take turns among themselves, across
    /// processes, under the append lock, and the engine's transactions meet them there only
    /// (an event the engine records), as they meet other processes' appends.
    pub(crate) fn append(&self, events: &[NewEvent]) -> Result<Vec<bool>> {
        outside_async(|| {
            let mut conn = self.conn()?;
            let (client, prepared) = conn.parts();
            let mut tx = client.transaction()?;
            let lock = prepared.get(
                &mut tx,
                "SELECT pg_advisory_xact_lock($1, hashtext(current_schema())),
                        pg_notify($2, current_schema())",
            )?;
            // The notification is delivered when this commits, to every process listening
            // (see `cluster`).
            tx.execute(&lock, &[&APPEND_LOCK, &cluster::EVENTS_CHANNEL])?;
            let fresh = intake::append(&mut tx, prepared, events)?;
            tx.commit()?;
            Ok(fresh)
        })
    }

    pub(crate) fn run_engine_tx(
        &self,
        work: &mut dyn FnMut(&mut dyn EngineTx) -> Result<()>,
    ) -> Result<()> {
        self.write_prepared(|tx, prepared| {
            let mut engine_tx = tx::PgTx::new(tx, prepared, self.membership());
            work(&mut engine_tx)?;
            engine_tx.write_held()
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

    impl PgStore {
        /// A trivial read through the pool.
        fn trivial_read(&self) -> Result<i64> {
            let mut conn = self.conn()?;
            Ok(conn.query_one("SELECT 1::BIGINT", &[])?.get(0))
        }
    }

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
    fn an_unreachable_server_is_unavailable_not_a_database_error() {
        let err = PgStore::open("postgres://waymark@127.0.0.1:1/waymark?connect_timeout=2")
            .err()
            .expect("refused");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    #[test]
    fn a_failing_statement_is_a_database_error_not_an_outage() {
        let Some(db) = TestDatabase::create("sql_error") else {
            return;
        };
        let store = db.open();
        let err = store
            .write(|tx| Ok(tx.execute("SELECT * FROM no_such_table", &[])?))
            .expect_err("no such table");
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    }

    /// Fills the pool with three connections and has the server end them (as a restart of
    /// the database does); only these, as other tests share the server.
    fn pool_of_ended_connections(db: &TestDatabase, store: &PgStore) {
        let pids: Vec<i32> = {
            let mut held: Vec<_> = (0..3).map(|_| store.conn().unwrap()).collect();
            held.iter_mut()
                .map(|c| c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0))
                .collect()
        };
        assert_eq!(store.pool.lock().unwrap().len(), 3);
        let mut admin = ::postgres::Client::connect(&db.url(), NoTls).unwrap();
        for pid in pids {
            let ended: bool = admin
                .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                .unwrap()
                .get(0);
            assert!(ended, "ended {pid}");
        }
    }

    #[test]
    fn connections_that_idled_while_the_server_closed_them_are_not_handed_out() {
        let Some(db) = TestDatabase::create("closed_idle") else {
            return;
        };
        let store = db.open();
        pool_of_ended_connections(&db, &store);
        std::thread::sleep(CHECK_AFTER_IDLE + Duration::from_millis(200));
        for _ in 0..4 {
            store.trivial_read().expect("a fresh connection");
        }
    }

    #[test]
    fn one_dead_connection_empties_the_pool() {
        let Some(db) = TestDatabase::create("closed_busy") else {
            return;
        };
        let store = db.open();
        pool_of_ended_connections(&db, &store);
        // Used at once, a connection is not checked first: the call that finds it dead fails
        // (and is retried by its caller), the ones after it get fresh connections.
        std::thread::sleep(Duration::from_millis(200));
        let first = store.trivial_read();
        assert!(
            matches!(first, Ok(_) | Err(StoreError::Unavailable(_))),
            "{first:?}"
        );
        for _ in 0..4 {
            store.trivial_read().expect("a fresh connection");
        }
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
