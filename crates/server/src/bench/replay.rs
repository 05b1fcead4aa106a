//! `replay_seconds`: `waymark simulate --replay` of a month of an abandoned-cart shop, run as
//! a child process exactly as a user runs it, against the bench's server, timed until it exits.
//!
//! The month is made as in production, through the API and the engine on a simulated clock
//! (not timed): `--replay-contacts` shoppers (default 100,000) identify themselves, then leave
//! a cart each at an hour spread over the month; three in ten order within five hours (before
//! the reminder), two in ten after thirty (before the SMS), the rest never. The replay runs
//! the journey's live version on that month and must send exactly what the server sent.

use std::time::Instant;

use anyhow::{Context, ensure};
use jiff::Timestamp;
use serde_json::{Value, json};
use waymark_engine::Clock;

use super::{Figure, FigureData, Harness, Plan, emit, ingest_untimed, progress, round};

const JOURNEY: &str = include_str!("../../../../examples/journeys/abandoned-cart.yaml");

pub(super) async fn replay(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::Replay;
    let n = plan.replay_contacts;
    let days: usize = if plan.quick { 3 } else { 30 };
    let hours = days * 24;
    // Whole hours, so that the replay's steps meet the hours the history was made in.
    let start = Timestamp::from_second(1_772_409_600)?; // 2026-03-02T00:00:00Z
    let h = Harness::start(data, Clock::simulated(start)).await?;
    let journey: Value = serde_yaml_ng::from_str(JOURNEY).context("the example journey")?;
    h.publish(&journey).await?;

    progress(
        figure,
        format!("making a month of {n} shoppers over {days} days (not timed)"),
    );
    let made = Instant::now();
    ingest_untimed(&h, n, |i| {
        format!(
            r#"{{"type":"identify","userId":"cart-{i}","messageId":"cart-identify-{i}","traits":{{"email":"cart-{i}@example.com","phone":"+1415{}"}}}}"#,
            // 415-200-0000 and on: valid numbers, one each.
            2_000_000 + i
        )
    })
    .await?;
    // Who does what in which hour: a cart at `cart_hour(i)`, an order 5 or 30 hours later.
    let cart_hour = |i: usize| i * (hours - 48).max(1) / n;
    let mut due: Vec<Vec<(usize, &str)>> = vec![Vec::new(); hours];
    for i in 0..n {
        let at = cart_hour(i);
        due[at].push((i, "Product Added"));
        let order = match i % 10 {
            0..=2 => Some(at + 5),
            3 | 4 => Some(at + 30),
            _ => None,
        };
        if let Some(o) = order.filter(|&o| o < hours) {
            due[o].push((i, "Order Completed"));
        }
    }
    for calls in &due {
        if !calls.is_empty() {
            ingest_untimed(&h, calls.len(), |k| {
                let (i, event) = calls[k];
                let kind = if event == "Product Added" { "cart" } else { "order" };
                format!(
                    r#"{{"type":"track","userId":"cart-{i}","event":"{event}","messageId":"cart-{kind}-{i}","properties":{{"cart_id":"c{i}","name":"Sneakers","quantity":1,"price":59}}}}"#
                )
            })
            .await?;
        }
        h.run_until_idle().await?;
        h.engine.advance(3_600).await?;
    }
    h.run_until_idle().await?;
    let history_seconds = made.elapsed().as_secs_f64();

    progress(figure, format!("replaying the {days} days (timed)"));
    let args: Vec<std::ffi::OsString> = [
        "--server",
        h.base.as_str(),
        "--admin-token",
        h.secrets.admin_token.as_str(),
        "--journey",
        "abandoned-cart",
        "--replay",
        "--start",
        &start.to_string(),
        "--days",
        &days.to_string(),
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    let run = super::simulate::run_simulate(&args).await?;
    let (seconds, result) = (run.seconds, run.result);
    h.finish().await?;

    // It must send exactly what the server sent, to the same people.
    let totals = &result["replay"]["totals"];
    ensure!(
        totals["draft"] == totals["live"],
        "the replay of the live version differs from what it did: {totals}"
    );
    for node in result["replay"]["nodes"].as_array().into_iter().flatten() {
        let r = &node["recipients"];
        ensure!(
            r.is_null() || (r["only_draft"] == json!(0) && r["only_live"] == json!(0)),
            "node {}: the replay sent to other people than the server: {r}",
            node["node"]
        );
    }
    let events: u64 = result["replay"]["events"]["replayed"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    emit(
        plan,
        "replay_seconds",
        seconds,
        "s",
        json!({
            "contacts": result["population"]["contacts"],
            "days": days,
            "journey": "abandoned-cart",
            "events_replayed": events,
            "entered": totals["draft"]["entered"],
            "messages_sent": totals["draft"]["sent"],
            "same_as_live": true,
            "peak_rss_mib": round(run.peak_kib as f64 / 1024.0, 1),
            "peak_rss_measured": "VmHWM of the `waymark simulate --replay` process, read every 50 ms while it ran",
            "history_seconds": round(history_seconds, 1),
            "source": plan.database,
        }),
    );
    Ok(())
}
