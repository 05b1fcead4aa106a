//! Read-only views of a store's schema, beside a running server: what the benchmark measures
//! (sizes per table, timers left, messages by status), the PostgreSQL counterparts of
//! `sqlite::inspect`; and a scratch schema per benchmark figure. The server never calls them.

use std::collections::BTreeMap;

use ::postgres::{Client, NoTls};

use super::{PgStore, outside_async};
use crate::Result;

/// Tables smaller than this are summed into one line: an empty table with its indexes takes a
/// few 8 kB pages, which says nothing.
const SMALL_TABLE_BYTES: u64 = 64 * 1024;

/// The bytes of each table of the store's schema with its indexes and TOAST
/// (`pg_total_relation_size`), largest first; small tables are summed into one line. The sum
/// is `disk_bytes()`. There is nothing to checkpoint first: a relation's size is its files.
pub fn table_sizes(store: &PgStore) -> Result<Vec<(String, u64)>> {
    outside_async(|| {
        let rows = store.conn()?.query(
            "SELECT c.relname::TEXT, pg_total_relation_size(c.oid)::BIGINT AS bytes
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind = 'r'
             ORDER BY bytes DESC, c.relname",
            &[],
        )?;
        let mut tables = Vec::with_capacity(rows.len());
        for row in &rows {
            let bytes: i64 = row.try_get(1)?;
            tables.push((
                row.try_get::<_, String>(0)?,
                u64::try_from(bytes).unwrap_or(0),
            ));
        }
        let (small, mut tables): (Vec<_>, Vec<_>) = tables
            .into_iter()
            .partition(|(_, bytes)| *bytes < SMALL_TABLE_BYTES);
        if !small.is_empty() {
            tables.push((
                format!("({} tables under 64 kB with their indexes)", small.len()),
                small.iter().map(|(_, bytes)| bytes).sum(),
            ));
        }
        Ok(tables)
    })
}

/// True when no enrollment is waiting on a timer (uses the partial index on `wake_at`).
pub fn no_timer_left(store: &PgStore) -> Result<bool> {
    outside_async(|| {
        let waiting: bool = store
            .conn()?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM enrollments WHERE wake_at IS NOT NULL)",
                &[],
            )?
            .try_get(0)?;
        Ok(!waiting)
    })
}

/// How many messages there are of each status.
pub fn message_counts(store: &PgStore) -> Result<BTreeMap<String, i64>> {
    outside_async(|| {
        let rows = store
            .conn()?
            .query("SELECT status, COUNT(*) FROM messages GROUP BY status", &[])?;
        let mut counts = BTreeMap::new();
        for row in &rows {
            counts.insert(row.try_get(0)?, row.try_get(1)?);
        }
        Ok(counts)
    })
}

/// An empty schema of its own in the database at `base_url`, dropped with this value (or by
/// [`ScratchSchema::drop_now`], which reports a failure): each benchmark figure starts from
/// nothing, as it does on SQLite in a fresh directory, without a database of its own.
pub struct ScratchSchema {
    base_url: String,
    name: String,
    dropped: bool,
}

impl ScratchSchema {
    /// Creates schema `name` (a plain lower-case identifier), replacing one left by a run that
    /// was killed.
    pub fn create(base_url: &str, name: &str) -> Result<ScratchSchema> {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "schema names here are plain identifiers: {name}"
        );
        outside_async(|| {
            connect(base_url)?.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
        })?;
        Ok(ScratchSchema {
            base_url: base_url.to_string(),
            name: name.to_string(),
            dropped: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database URL whose connections use this schema (it names every table unqualified).
    pub fn url(&self) -> String {
        schema_url(&self.base_url, &self.name)
    }

    /// Drops the schema and everything in it.
    pub fn drop_now(mut self) -> Result<()> {
        self.dropped = true;
        self.drop_schema()
    }

    fn drop_schema(&self) -> Result<()> {
        outside_async(|| {
            // A connection left inside a transaction on these tables (a figure that failed
            // midway) would hold the drop forever.
            connect(&self.base_url)?.batch_execute(&format!(
                "SET lock_timeout = '30s'; DROP SCHEMA IF EXISTS {} CASCADE",
                self.name
            ))
        })?;
        Ok(())
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        if !self.dropped
            && let Err(e) = self.drop_schema()
        {
            eprintln!("could not drop the schema {}: {e}", self.name);
        }
    }
}

/// `base_url` with `search_path` set to `schema` for every connection made from it.
pub fn schema_url(base_url: &str, schema: &str) -> String {
    let separator = if base_url.contains('?') { '&' } else { '?' };
    format!("{base_url}{separator}options=-c%20search_path%3D{schema}")
}

fn connect(url: &str) -> std::result::Result<Client, ::postgres::Error> {
    Client::connect(url, NoTls)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::TestDatabase;
    use super::*;
    use crate::Reporting;

    #[test]
    fn timers_and_messages_are_seen_and_the_tables_add_up_to_the_disk_size() {
        let Some(db) = TestDatabase::create("inspect") else {
            return;
        };
        let store = db.open();
        assert!(no_timer_left(&store).unwrap());
        assert!(message_counts(&store).unwrap().is_empty());
        store
            .conn()
            .unwrap()
            .batch_execute(
                "INSERT INTO enrollments (journey_id, version, contact_id, node, status, wake_at,
                                          entered_at, entered_seq, visits, updated_at)
                 VALUES ('j', 1, 1, 'wait', 'active', 1000, 0, 1, 1, 0);
                 INSERT INTO messages (idempotency_key, contact_id, template, channel, status,
                                       created_at)
                 VALUES ('a', 1, 't', 'email', 'sent', 0), ('b', 1, 't', 'email', 'sent', 0),
                        ('c', 1, 't', 'email', 'queued', 0)",
            )
            .unwrap();
        assert!(!no_timer_left(&store).unwrap());
        assert_eq!(
            message_counts(&store).unwrap(),
            BTreeMap::from([("queued".to_string(), 1), ("sent".to_string(), 2)])
        );
        let tables = table_sizes(&store).unwrap();
        let total: u64 = tables.iter().map(|(_, bytes)| bytes).sum();
        assert_eq!(total, store.disk_bytes().unwrap(), "{tables:?}");
        assert!(
            tables
                .last()
                .is_some_and(|(name, _)| name.contains("tables under 64 kB")),
            "{tables:?}"
        );
    }

    #[test]
    fn a_scratch_schema_holds_a_store_and_is_dropped() {
        let Some(base_url) = std::env::var("WAYMARK_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            return;
        };
        let name = format!("waymark_test_scratch_{}", std::process::id());
        let exists = |name: &str| -> bool {
            Client::connect(&base_url, NoTls)
                .unwrap()
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                    &[&name],
                )
                .unwrap()
                .get(0)
        };
        let scratch = ScratchSchema::create(&base_url, &name).unwrap();
        let store = PgStore::open(&scratch.url()).unwrap();
        assert!(store.disk_bytes().unwrap() > 0);
        drop(store);
        scratch.drop_now().unwrap();
        assert!(!exists(&name));
        // Dropped with the value too, as when a figure fails.
        drop(ScratchSchema::create(&base_url, &name).unwrap());
        assert!(!exists(&name));
    }
}
