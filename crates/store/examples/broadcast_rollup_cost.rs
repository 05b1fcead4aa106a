//! What keeping a broadcast's roll-ups costs the writing of its messages, and what reading
//! its report costs, on SQLite: `n` messages written in pages of 500 (one transaction each, as
//! the engine's broadcast rounds do), once as a broadcast's (with the roll-up upsert) and once
//! without a broadcast id (no roll-up), alternating rounds, then the roll-ups of a million
//! messages read.
use std::time::Instant;

use jiff::Timestamp;
use waymark_store::prelude::*;
use waymark_store::sqlite::SqliteStore;
use waymark_store::{MessageStatus, NewMessage, Priority};

fn message(i: i64, broadcast: Option<&str>, at: Timestamp) -> NewMessage {
    NewMessage {
        idempotency_key: format!("k:{}:{i}", broadcast.unwrap_or("none")),
        contact_id: i,
        enrollment_id: None,
        journey_id: None,
        node: None,
        template: if i % 2 == 0 { "a" } else { "b" }.to_string(),
        channel: "email".to_string(),
        recipient: Some(format!("u{i}@example.com")),
        subject: Some("November news for you".to_string()),
        html: Some(format!("<html><body>{}</body></html>", "x".repeat(3000))),
        text: Some("Hello".to_string()),
        status: MessageStatus::Queued,
        error: None,
        created_at: at,
        priority: Priority::Bulk,
        broadcast_id: broadcast.map(str::to_string),
        unsubscribe_url: None,
    }
}

fn write(store: &SqliteStore, from: i64, n: i64, broadcast: Option<&str>) -> f64 {
    let start = Timestamp::from_second(1_800_000_000).unwrap();
    let t = Instant::now();
    for page in (from..from + n).step_by(500) {
        store
            .engine_tx(&mut |tx| {
                for i in page..(page + 500).min(from + n) {
                    let at = start + jiff::SignedDuration::from_millis(i * 36);
                    tx.insert_message(&message(i, broadcast, at))?;
                }
                Ok(())
            })
            .unwrap();
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    let n: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("waymark-rollup-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(&dir).unwrap();
    let (mut with, mut without) = (0.0, 0.0);
    let rounds = 10;
    let per = n / rounds;
    for r in 0..rounds {
        with += write(&store, r * per, per, Some("big"));
        without += write(&store, r * per, per, None);
    }
    println!(
        "{n} messages: {:.0}/s with the roll-up, {:.0}/s without ({:+.1}%)",
        n as f64 / with,
        n as f64 / without,
        (with / without - 1.0) * 100.0
    );
    let from = Timestamp::from_second(1_800_000_000).unwrap();
    let to = from + jiff::SignedDuration::from_hours(24 * 30);
    let mut ms = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let rows = store.broadcast_rollups("big", from, to).unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(rows.iter().map(|r| r.counts.entered).sum::<i64>() == n);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "roll-ups of {n} messages read ({} rows): p50 {:.3} ms, p99 {:.3} ms",
        store.broadcast_rollups("big", from, to).unwrap().len(),
        ms[ms.len() / 2],
        ms[ms.len() * 99 / 100]
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
