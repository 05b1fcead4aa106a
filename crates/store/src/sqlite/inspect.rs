//! Read-only views of a database file, opened beside a running server: what the benchmark
//! measures (sizes per table, timers left, messages by status). The server never calls them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{Result, StoreError};

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(60))?;
    Ok(conn)
}

/// Checkpoints the WAL into the database (and truncates it), then returns the bytes of each
/// table and index, largest first (from SQLite's `dbstat`), plus free pages.
pub fn checkpoint_and_measure(path: &Path) -> Result<Vec<(String, u64)>> {
    let conn = open(path)?;
    for attempt in 0.. {
        let (busy, _, _): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        if busy == 0 {
            break;
        }
        if attempt >= 100 {
            return Err(StoreError::Database(
                "the WAL checkpoint stayed busy".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stmt = conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY SUM(pgsize) DESC")?;
    let tables: Vec<(String, u64)> = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let free: i64 = conn.query_row(
        "SELECT freelist_count * page_size FROM pragma_freelist_count, pragma_page_size",
        [],
        |r| r.get(0),
    )?;
    // Empty tables and indexes (one page each) in one line.
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let (small, mut tables): (Vec<_>, Vec<_>) =
        tables.into_iter().partition(|(_, b)| *b <= page as u64);
    if !small.is_empty() {
        tables.push((
            format!("({} single-page tables and indexes)", small.len()),
            small.iter().map(|(_, b)| b).sum(),
        ));
    }
    if free > 0 {
        tables.push(("(free pages)".into(), free as u64));
    }
    Ok(tables)
}

/// True when no enrollment is waiting on a timer (uses the partial index on `wake_at`).
pub fn no_timer_left(path: &Path) -> Result<bool> {
    let waiting: i64 = open(path)?.query_row(
        "SELECT EXISTS (SELECT 1 FROM enrollments WHERE wake_at IS NOT NULL)",
        [],
        |r| r.get(0),
    )?;
    Ok(waiting == 0)
}

/// How many messages there are of each status.
pub fn message_counts(path: &Path) -> Result<BTreeMap<String, i64>> {
    let conn = open(path)?;
    let mut stmt = conn.prepare("SELECT status, COUNT(*) FROM messages GROUP BY status")?;
    let counts = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(counts)
}
