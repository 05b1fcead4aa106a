//! The report figure: `journey_report_p99_ms`, how long `GET /v1/journeys/{id}/report` takes
//! for a journey that sent `--report-messages` messages (default 1,000,000) over 30 days.
//!
//! The journey's history is written through the store's own write paths, as the engine and the
//! dispatcher write it (not timed): messages queued in engine transactions, their outcomes in
//! the dispatcher's batches, opens and clicks by people and by machines, bounces reported later
//! and conversions with revenue, spread over 30 days; the roll-ups follow as they do in
//! production. Then reports are asked for over HTTP as the web app asks (30 days by day, 7 days
//! by hour, one node, CSV) and their latencies measured.

use std::time::Instant;

use anyhow::{Context, ensure};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use waymark_core::journey::Revenue;
use waymark_engine::Clock;
use waymark_store::{
    DeliveryOutcome, Finished, LastTouch, MessageQuery, MessageStatus, NewConversion, NewMessage,
    Priority, StatsDeltas, Store,
};

use super::{Figure, FigureData, Harness, Plan, Spread, blocking, emit, progress, round};

const JOURNEY: &str = "bench-report";
const TARGET_P99_MS: f64 = 300.0;
/// Messages written per transaction while the history is made.
const BATCH: usize = 5_000;
/// The history spans this many days before now.
const DAYS: i64 = 30;

pub(super) async fn report(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::Report;
    let n = plan.report_messages;
    let h = Harness::start(data, Clock::System).await?;
    h.publish(&json!({
        "id": JOURNEY,
        "name": "Report bench",
        "goal": {"event": "Order Completed", "revenue_property": "total"},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "welcome", "type": "send_email", "template": "bench-report-welcome"},
            {"id": "wait", "type": "delay", "duration": "2d"},
            {"id": "tips", "type": "send_email", "template": "bench-report-tips"}
        ],
        "edges": [
            {"from": "start", "to": "welcome"}, {"from": "welcome", "to": "wait"},
            {"from": "wait", "to": "tips"}
        ],
        "templates": [
            {"id": "bench-report-welcome", "channel": "email", "subject": "Welcome", "text": "Hi"},
            {"id": "bench-report-tips", "channel": "email", "subject": "Tips", "text": "Tips"}
        ]
    }))
    .await?;
    progress(
        figure,
        format!("writing the history of {n} messages over {DAYS} days (not timed)"),
    );
    let store = h.store.clone();
    let now = Timestamp::now();
    let written = Instant::now();
    blocking(move || write_history(store.as_ref(), n, now)).await?;
    let history_seconds = written.elapsed().as_secs_f64();

    let totals = h
        .admin(
            reqwest::Method::GET,
            &format!("/v1/journeys/{JOURNEY}/report?from=31d"),
            None,
        )
        .await?;
    let sent = totals["totals"]["sent"].as_i64().unwrap_or_default();
    ensure!(
        sent == n as i64,
        "the report counts {sent} messages sent, not {n}: {}",
        totals["totals"]
    );

    let asks = [
        format!("/v1/journeys/{JOURNEY}/report"),
        format!("/v1/journeys/{JOURNEY}/report?bucket=hour&from=7d&tz=Europe/Rome"),
        format!("/v1/journeys/{JOURNEY}/report?bucket=week&from=30d&node=welcome"),
    ];
    let rounds = if plan.quick { 10 } else { 100 };
    progress(
        figure,
        format!("{} reports over HTTP (timed)", rounds * (asks.len() + 1)),
    );
    let mut latencies = Vec::new();
    for _ in 0..rounds {
        for path in &asks {
            let started = Instant::now();
            let body = h.admin(reqwest::Method::GET, path, None).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1e3);
            ensure!(body["totals"].is_object(), "{path}: {body}");
        }
        let started = Instant::now();
        let csv = h
            .api()
            .http
            .get(h.url(&format!("/v1/journeys/{JOURNEY}/report?rows=nodes")))
            .bearer_auth(&h.secrets.admin_token)
            .header("Accept", "text/csv")
            .send()
            .await
            .context("the CSV report")?
            .text()
            .await?;
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        ensure!(csv.starts_with("node,"), "the CSV report: {csv}");
    }
    let spread = Spread::of(latencies);
    let table_bytes = rollup_bytes(&h)?;
    emit(
        plan,
        "journey_report_p99_ms",
        spread.p99,
        "ms",
        json!({
            "messages": n,
            "days": DAYS,
            "reports": rounds * (asks.len() + 1),
            "p50_ms": round(spread.p50, 2),
            "max_ms": round(spread.max, 2),
            "rollup_table_bytes": table_bytes,
            "asked": "30 days by day; 7 days by hour in Europe/Rome; 30 days by week of one node; CSV per node",
            "history_seconds_not_timed": round(history_seconds, 1),
            "target": TARGET_P99_MS,
        }),
    );
    h.finish().await
}

fn rollup_bytes(h: &Harness) -> anyhow::Result<Value> {
    Ok(h.inspect
        .table_sizes()
        .map(|sizes| {
            json!(
                sizes
                    .into_iter()
                    .filter(|(t, _)| t.ends_with("rollups"))
                    .collect::<Vec<_>>()
            )
        })
        .unwrap_or(Value::Null))
}

/// Writes `n` messages of the journey sent evenly over the last [`DAYS`] days, with what
/// became of them: 1 in 100 bounced later, 1 in 4 opened by a person (2 hours after the send),
/// 1 in 10 opened by a privacy proxy at once, 1 in 20 clicked, 1 in 50 converted with revenue.
fn write_history(store: &dyn Store, n: usize, now: Timestamp) -> anyhow::Result<()> {
    let start = now - SignedDuration::from_hours(24 * DAYS);
    let step_ms = (DAYS * 24 * 3_600_000) as f64 / n.max(1) as f64;
    let at = |i: usize| start + SignedDuration::from_millis((i as f64 * step_ms) as i64);
    let sent_at = |i: usize| at(i) + SignedDuration::from_secs(5);
    let node_of = |i: usize| if i % 2 == 0 { "welcome" } else { "tips" };
    let mut after_id = 0;
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        // The engine's transaction: entries, and the messages queued.
        store.engine_tx(&mut |tx| {
            let mut deltas = StatsDeltas::default();
            for k in i..end {
                let node = node_of(k);
                if k % 2 == 0 {
                    deltas.node(JOURNEY, 1, "start").entered += 1;
                }
                deltas.node(JOURNEY, 1, node).entered += 1;
                tx.insert_message(&NewMessage {
                    idempotency_key: format!("bench-report-{k}"),
                    contact_id: k as i64 + 1,
                    enrollment_id: None,
                    journey_id: Some(JOURNEY.into()),
                    node: Some(node.into()),
                    template: format!("bench-report-{node}"),
                    channel: "email".into(),
                    recipient: Some(format!("r{k}@example.com")),
                    subject: Some("Hello".into()),
                    html: None,
                    text: Some("Hi".into()),
                    status: MessageStatus::Queued,
                    error: None,
                    created_at: at(k),
                    priority: Priority::Journey,
                    broadcast_id: None,
                    unsubscribe_url: None,
                })?;
            }
            tx.add_stats(&deltas, at(i))
        })?;
        // Their ids, in the order they were queued.
        let mut ids = Vec::with_capacity(end - i);
        while ids.len() < end - i {
            let page = store.messages(&MessageQuery {
                journey_id: Some(JOURNEY.into()),
                after_id,
                limit: 1000,
                ..MessageQuery::default()
            })?;
            ensure!(!page.is_empty(), "the messages just queued are not there");
            after_id = page.last().map_or(after_id, |m| m.id);
            ids.extend(page.iter().map(|m| m.id));
        }
        // The dispatcher's batch of outcomes.
        let finished: Vec<Finished> = ids
            .iter()
            .zip(i..end)
            .map(|(&id, k)| Finished {
                id,
                outcome: DeliveryOutcome::Sent,
                at: sent_at(k),
            })
            .collect();
        store.finish_messages(&finished)?;
        // Engagement, late bounces and conversions, as the engine records them.
        store.engine_tx(&mut |tx| {
            for (&id, k) in ids.iter().zip(i..end) {
                let sent = sent_at(k);
                if k % 10 == 3 {
                    tx.mark_engagement(id, false, false, sent + SignedDuration::from_millis(200))?;
                }
                if k % 4 == 1 {
                    let read = sent + SignedDuration::from_hours(2);
                    tx.mark_engagement(id, k % 20 == 1, true, read)?;
                }
                if k % 100 == 7 {
                    let address = format!("r{k}@example.com");
                    let later = sent + SignedDuration::from_hours(1);
                    tx.bounce_sent_message(
                        &[k as i64 + 1],
                        "email",
                        &address,
                        sent,
                        "bounced",
                        later,
                    )?;
                }
                if k % 50 == 1 {
                    tx.record_conversion(&NewConversion {
                        // Conversions of enrollments the bench does not make: their own ids.
                        enrollment_id: k as i64 + 1,
                        contact_id: k as i64 + 1,
                        journey_id: JOURNEY.into(),
                        version: 1,
                        node: node_of(k).into(),
                        last_touch: Some(LastTouch {
                            message_id: id,
                            node: node_of(k).into(),
                            sent_at: sent,
                        }),
                        event_seq: 0,
                        at: sent + SignedDuration::from_hours(6),
                        revenue: Some(Revenue {
                            amount: 40.0 + (k % 7) as f64,
                            currency: "USD".into(),
                            counted: true,
                        }),
                    })?;
                }
            }
            Ok(())
        })?;
        i = end;
    }
    Ok(())
}
