//! The report figure: `journey_report_p99_ms`, how long `GET /v1/journeys/{id}/report` takes
//! for a journey that sent `--report-messages` messages (default 1,000,000) over 30 days.
//!
//! The journey's history is made as in production, through the API and the engine on a
//! simulated clock (not timed): each hour of the 30 days an equal share of the contacts sign
//! up and get the journey's email; people open a quarter of them two hours later and click one in five of
//! those, a privacy proxy fetches one in ten at once, one in fifty buyers orders after the
//! journey ended (a conversion with revenue). The roll-ups follow as they do in production.
//! Then reports are asked for over HTTP as the web app asks (30 days by day, 7 days by hour,
//! one node by week, CSV per node) and their latencies measured.

use std::time::Instant;

use anyhow::{Context, ensure};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use waymark_engine::Clock;
use waymark_store::MessageQuery;

use super::{
    Figure, FigureData, Harness, Plan, Spread, blocking, emit, identify_json, ingest_untimed,
    progress, round,
};

const JOURNEY: &str = "bench-report";
const TARGET_P99_MS: f64 = 300.0;
/// The history spans this many days (3 with `--quick`).
const DAYS: usize = 30;

pub(super) async fn report(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::Report;
    let n = plan.report_messages;
    let days = if plan.quick { 3 } else { DAYS };
    let start = Timestamp::now() - SignedDuration::from_hours(24 * days as i64);
    let h = Harness::start(data, Clock::simulated(start)).await?;
    h.publish(&json!({
        "id": JOURNEY,
        "name": "Report bench",
        "goal": {"event": "Order Completed", "revenue_property": "total"},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "welcome", "type": "send_email", "template": "bench-report-welcome"}
        ],
        "edges": [{"from": "start", "to": "welcome"}],
        "templates": [
            {"id": "bench-report-welcome", "channel": "email", "subject": "Welcome", "text": "Hi"}
        ]
    }))
    .await?;
    progress(
        figure,
        format!("making the history of {n} messages over {days} days (not timed)"),
    );
    let written = Instant::now();
    ingest_untimed(&h, n, |i| identify_json("report", i)).await?;
    let mut after_id = 0;
    let hours = days * 24;
    for hour in 0..hours {
        let (first, last) = (n * hour / hours, n * (hour + 1) / hours);
        let now = h.clock.now();
        let at = |hours: i64| (now + SignedDuration::from_hours(hours)).to_string();
        let signed_up = at(0);
        if last > first {
            ingest_untimed(&h, last - first, |i| {
                event_json(first + i, "Signed Up", "signup", &signed_up, "{}")
            })
            .await?;
        }
        h.run_until_idle().await?;
        // The day's messages, in the order of their contacts.
        let store = h.store.clone();
        let (ids, next) = blocking(move || {
            let mut ids = Vec::new();
            let mut after = after_id;
            loop {
                let page = store.messages(&MessageQuery {
                    journey_id: Some(JOURNEY.into()),
                    after_id: after,
                    limit: 1000,
                    ..MessageQuery::default()
                })?;
                let Some(last) = page.last() else { break };
                after = last.id;
                ids.extend(page.iter().map(|m| m.id));
            }
            Ok((ids, after))
        })
        .await?;
        after_id = next;
        ensure!(
            ids.len() == last - first,
            "hour {hour}: {} messages for {} sign-ups",
            ids.len(),
            last - first
        );
        // What became of them, reported as the tracking endpoints and the shop report it.
        let mut events = Vec::new();
        let (proxy, read, bought) = (at(0), at(2), at(26));
        for (k, id) in ids.iter().enumerate() {
            let user = first + k;
            if user % 10 == 3 {
                let props = format!(r#"{{"message_id":{id},"machine":"bench proxy"}}"#);
                events.push(event_json(user, "Email Opened", "proxy", &proxy, &props));
            }
            if user % 4 == 1 {
                let props = format!(r#"{{"message_id":{id}}}"#);
                let name = if user % 20 == 1 {
                    "Email Link Clicked"
                } else {
                    "Email Opened"
                };
                events.push(event_json(user, name, "read", &read, &props));
            }
            if user % 50 == 1 {
                let props = format!(r#"{{"total":{}}}"#, 40 + user % 7);
                events.push(event_json(
                    user,
                    "Order Completed",
                    "order",
                    &bought,
                    &props,
                ));
            }
        }
        if !events.is_empty() {
            ingest_untimed(&h, events.len(), |i| events[i].clone()).await?;
        }
        h.engine.advance(3_600).await?;
        h.run_until_idle().await?;
    }
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
    let converted = totals["totals"]["converted"].as_i64().unwrap_or_default();
    let buyers = (0..n).filter(|u| u % 50 == 1).count() as i64;
    ensure!(
        converted == buyers,
        "{converted} conversions credited, not {buyers}: {}",
        totals["totals"]
    );

    let asks = [
        format!("/v1/journeys/{JOURNEY}/report?from=31d"),
        format!("/v1/journeys/{JOURNEY}/report?bucket=hour&from=7d&tz=Europe/Rome"),
        format!("/v1/journeys/{JOURNEY}/report?bucket=week&from=31d&node=welcome"),
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
            .get(h.url(&format!(
                "/v1/journeys/{JOURNEY}/report?rows=nodes&from=31d"
            )))
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
            "days": days,
            "reports": rounds * (asks.len() + 1),
            "p50_ms": round(spread.p50, 2),
            "max_ms": round(spread.max, 2),
            "rollup_table_bytes": table_bytes,
            "asked": "30 days by day; 7 days by hour in Europe/Rome; 30 days by week of one node; CSV per node",
            "history": "made through the API and the engine on a simulated clock",
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

/// A track event of user `i` of the bench.
fn event_json(i: usize, event: &str, kind: &str, timestamp: &str, properties: &str) -> String {
    format!(
        r#"{{"type":"track","userId":"report-{i}","event":"{event}","messageId":"report-{kind}-{i}","timestamp":"{timestamp}","properties":{properties}}}"#
    )
}
