//! The broadcast figures: one email to every member of a list of `--broadcast-contacts`
//! contacts (default 1,000,000), sent through the API as a marketer sends it.
//!
//! - `broadcast_messages_per_second`: every recipient's message rendered (Liquid, a personal
//!   subject and body) and committed to the outbox, from `POST …/send` until the broadcast is
//!   `sent` (the built-in outbox transport marks them sent meanwhile, as `waymark serve`
//!   without SMTP does). Beside it, the peak resident memory of the bench process while it
//!   ran.
//! - `smtp_sink_messages_per_second`: the local SMTP sink alone, fed by the same SMTP client
//!   (Waymark's SMTP pool, the same number of connections) without the rest of Waymark: the ceiling of the next
//!   figure.
//! - `broadcast_smtp_messages_per_second`: a second broadcast to the same list delivered
//!   through SMTP to that sink, from `POST …/send` until the sink has every message and none
//!   is queued; with `broadcast_first_message_ms`, from the send to the sink's first message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;
use waymark_engine::{Clock, EmailTransport, Transports};
use waymark_store::{ContactPosition, ContactQuery, ContactSortKey, MessageRow, Priority};

use super::smtp_sink::SmtpSink;
use super::{Delivery, Figure, FigureData, Harness, Plan, blocking, emit, parse, progress, round};

const LIST: &str = "bench-everyone";
const TEMPLATE: &str = "bench-newsletter";
/// Connections to the SMTP sink (`--email-concurrency`).
const SMTP_CONNECTIONS: usize = 32;
/// Targets.
const ENQUEUE_TARGET: f64 = 20_000.0;
const SMTP_TARGET: f64 = 5_000.0;
const FIRST_MESSAGE_TARGET_MS: f64 = 1_000.0;
const PEAK_RSS_TARGET_MIB: f64 = 300.0;
const REPORT_TARGET_MS: f64 = 300.0;

pub(super) async fn broadcast(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::Broadcast;
    let n = plan.broadcast_contacts;
    let h = Harness::start(data, Clock::System).await?;
    setup(&h, n).await?;

    // Rendered and committed to the outbox.
    progress(
        figure,
        format!("broadcast to {n} contacts, outbox transport (timed)"),
    );
    let rss = PeakRss::start();
    let enqueue = send_and_wait(&h, "bench-outbox", n, None).await?;
    let peak_mib = rss.stop().await;
    emit(
        plan,
        "broadcast_messages_per_second",
        n as f64 / enqueue.written_seconds,
        "messages/s",
        json!({
            "contacts": n,
            "written_seconds": round(enqueue.written_seconds, 3),
            "delivered_seconds": round(enqueue.delivered_seconds, 3),
            "delivery": "built-in outbox transport",
            "peak_rss_mib": round(peak_mib, 1),
            "peak_rss_measured": "largest VmRSS of the bench process (engine, API and store together), read every 50 ms while the broadcast ran",
            "target": ENQUEUE_TARGET,
            "peak_rss_target_mib": PEAK_RSS_TARGET_MIB,
        }),
    );
    report_latency(plan, &h, "bench-outbox", n).await?;
    h.finish().await?;

    // The sink alone, then Waymark through it.
    let sink = SmtpSink::start().await?;
    let alone = n.min(200_000);
    progress(
        figure,
        format!("the SMTP sink alone: {alone} messages (timed)"),
    );
    let sink_rate = sink_alone(&sink, alone).await?;
    emit(
        plan,
        "smtp_sink_messages_per_second",
        sink_rate,
        "messages/s",
        json!({
            "messages": alone,
            "connections": SMTP_CONNECTIONS,
            "measured": "Waymark's pooled SMTP client straight to the local sink, without the engine, store or dispatcher: the ceiling of broadcast_smtp_messages_per_second",
        }),
    );
    let h = Harness::start_with(
        data,
        Clock::System,
        Delivery::Smtp {
            url: sink.url(),
            connections: SMTP_CONNECTIONS,
        },
    )
    .await?;
    progress(
        figure,
        format!("broadcast to {n} contacts through SMTP (timed)"),
    );
    let before = sink.count();
    let smtp = send_and_wait(&h, "bench-smtp", n, Some(&sink)).await?;
    ensure!(
        sink.count() - before == n,
        "the sink received {} messages, not {n}",
        sink.count() - before
    );
    emit(
        plan,
        "broadcast_smtp_messages_per_second",
        n as f64 / smtp.delivered_seconds,
        "messages/s",
        json!({
            "contacts": n,
            "delivered_seconds": round(smtp.delivered_seconds, 3),
            "written_seconds": round(smtp.written_seconds, 3),
            "connections": SMTP_CONNECTIONS,
            "sink_alone_messages_per_second": round(sink_rate, 1),
            "target": SMTP_TARGET,
        }),
    );
    emit(
        plan,
        "broadcast_first_message_ms",
        smtp.first_message_ms
            .context("no message reached the sink")?,
        "ms",
        json!({
            "measured": "from POST /v1/broadcasts/{id}/send until the SMTP sink accepted the first message",
            "target": FIRST_MESSAGE_TARGET_MS,
        }),
    );
    h.finish().await
}

/// `broadcast_report_p99_ms`: `GET /v1/broadcasts/{id}/report` of the broadcast just sent to
/// `n` contacts, as the web app asks for it (the whole broadcast by hour, by day in a time
/// zone, and the CSV per template).
async fn report_latency(plan: &Plan, h: &Harness, id: &str, n: usize) -> anyhow::Result<()> {
    let figure = Figure::Broadcast;
    let rounds = if plan.quick { 10 } else { 100 };
    progress(
        figure,
        format!("{} broadcast reports over HTTP (timed)", rounds * 3),
    );
    let whole = h
        .admin(
            reqwest::Method::GET,
            &format!("/v1/broadcasts/{id}/report"),
            None,
        )
        .await?;
    ensure!(
        whole["totals"]["entered"].as_i64() == Some(n as i64),
        "the report counts {} recipients, not {n}",
        whole["totals"]
    );
    let asks = [
        format!("/v1/broadcasts/{id}/report?bucket=hour"),
        format!("/v1/broadcasts/{id}/report?bucket=day&tz=Europe/Rome&from=30d"),
    ];
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
            .get(h.url(&format!("/v1/broadcasts/{id}/report?rows=variants")))
            .bearer_auth(&h.secrets.admin_token)
            .header("Accept", "text/csv")
            .send()
            .await
            .context("the CSV report")?
            .text()
            .await?;
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        ensure!(csv.starts_with("template,"), "the CSV report: {csv}");
    }
    let spread = super::Spread::of(latencies);
    emit(
        plan,
        "broadcast_report_p99_ms",
        spread.p99,
        "ms",
        json!({
            "contacts": n,
            "reports": rounds * 3,
            "p50_ms": round(spread.p50, 2),
            "max_ms": round(spread.max, 2),
            "asked": "the whole broadcast by hour; 30 days by day in Europe/Rome; CSV per template",
            "read": "broadcast_rollups: one row per template and hour with activity",
            "target": REPORT_TARGET_MS,
        }),
    );
    Ok(())
}

/// `n` contacts, each with an email address and a first name, all in the list (not timed).
async fn setup(h: &Harness, n: usize) -> anyhow::Result<()> {
    let figure = Figure::Broadcast;
    progress(figure, format!("setup: {n} contacts in list `{LIST}`"));
    let started = Instant::now();
    let now = h.clock.now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let range = chunk[0]..chunk[chunk.len() - 1] + 1;
        let events = blocking(move || {
            range
                .map(|i| parse(&super::identify_json("bc", i), now))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await?;
        let total = events.len();
        let fresh = h.engine.intake().append(events).await?;
        ensure!(
            fresh.iter().filter(|f| **f).count() == total,
            "setup events were not new"
        );
    }
    h.run_until_idle().await?;
    // Every contact into the list, a page at a time, as the API adds members (each addition
    // is recorded on the contact; the engine has processed them all before the timing starts).
    let mut after = None;
    let mut added = 0;
    loop {
        let store = h.store.clone();
        let page = blocking(move || {
            Ok(store.find_contacts(&ContactQuery {
                after: after.clone(),
                limit: 10_000,
                ..Default::default()
            })?)
        })
        .await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(ContactPosition::of(last, ContactSortKey::Id));
        let ids: Vec<i64> = page.iter().map(|c| c.id).collect();
        added += ids.len();
        h.engine
            .change_list_members(LIST.to_string(), ids, true)
            .await?;
    }
    h.run_until_idle().await?;
    ensure!(added == n, "{added} contacts, not {n}");
    h.admin(
        reqwest::Method::PUT,
        &format!("/v1/templates/{TEMPLATE}"),
        Some(&json!({
            "channel": "email",
            "topic": "newsletter",
            "subject": "{{ broadcast.name }}: what is new this month, {{ contact.first_name }}",
            "text": "Hello {{ contact.first_name }},\n\nHere is what is new on your {{ contact.plan }} plan this month.\n\nUnsubscribe: {{ unsubscribe_url }}",
            "html": "<p>Hello {{ contact.first_name }},</p><p>Here is what is new on your <b>{{ contact.plan }}</b> plan this month.</p>",
        })),
    )
    .await?;
    progress(
        figure,
        format!("setup done in {:.0}s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

struct Sent {
    /// Until every recipient's message was written (the broadcast `sent`).
    written_seconds: f64,
    /// Until none is queued (and, with a sink, the sink has them all).
    delivered_seconds: f64,
    first_message_ms: Option<f64>,
}

async fn send_and_wait(
    h: &Harness,
    id: &str,
    n: usize,
    sink: Option<&SmtpSink>,
) -> anyhow::Result<Sent> {
    h.admin(
        reqwest::Method::PUT,
        &format!("/v1/broadcasts/{id}"),
        Some(&json!({
            "name": "Bench news",
            "channel": "email",
            "template": TEMPLATE,
            "audience": {"list": LIST},
        })),
    )
    .await?;
    let sink_before = sink.map_or(0, SmtpSink::count);
    if let Some(sink) = sink {
        sink.forget_first();
    }
    let started = Instant::now();
    h.admin(
        reqwest::Method::POST,
        &format!("/v1/broadcasts/{id}/send"),
        None,
    )
    .await?;
    let mut written = None;
    let mut first_message_ms = None;
    loop {
        // Often enough for the times measured (seconds), seldom enough not to weigh on the
        // broadcast: the counts by status are a pass over the broadcast's messages.
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(sink) = sink
            && first_message_ms.is_none()
            && let Some(first) = sink.first_at()
        {
            first_message_ms = Some(first.saturating_duration_since(started).as_secs_f64() * 1e3);
        }
        let b = h
            .admin(reqwest::Method::GET, &format!("/v1/broadcasts/{id}"), None)
            .await?;
        if written.is_none() && b["status"] == "sent" {
            written = Some(started.elapsed().as_secs_f64());
            ensure!(
                b["processed"] == n as i64,
                "the broadcast reached {} of {n} contacts",
                b["processed"]
            );
        }
        let queued = b["messages"]["queued"].as_i64().unwrap_or(0);
        let arrived = sink.is_none_or(|s| s.count() - sink_before >= n);
        if written.is_some() && queued == 0 && arrived {
            ensure!(
                b["messages"]["sent"] == n as i64,
                "not every message was sent: {}",
                b["messages"]
            );
            return Ok(Sent {
                written_seconds: written.unwrap_or_default(),
                delivered_seconds: started.elapsed().as_secs_f64(),
                first_message_ms,
            });
        }
        ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "the broadcast did not finish within an hour: {b}"
        );
    }
}

/// Messages per second that the SMTP pool delivers to the sink with nothing else running.
async fn sink_alone(sink: &SmtpSink, n: usize) -> anyhow::Result<f64> {
    let transports = Arc::new(Transports {
        email: EmailTransport::smtp(
            &sink.url(),
            "bench@waymark.test",
            "bench",
            None,
            SMTP_CONNECTIONS,
        )
        .map_err(anyhow::Error::msg)?,
        ..Transports::outbox()
    });
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per_connection = n.div_ceil(SMTP_CONNECTIONS);
    for c in 0..SMTP_CONNECTIONS {
        let transports = transports.clone();
        let range = (c * per_connection)..((c + 1) * per_connection).min(n);
        tasks.spawn(async move {
            for i in range {
                let attempt = transports.deliver(&sample_message(i)).await;
                ensure!(
                    matches!(attempt, waymark_engine::Attempt::Sent),
                    "the sink refused a message: {attempt:?}"
                );
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// A message like the broadcast's, for the sink alone.
fn sample_message(i: usize) -> MessageRow {
    MessageRow {
        id: i as i64 + 1,
        idempotency_key: format!("sink-alone:{i}"),
        contact_id: i as i64 + 1,
        user_id: None,
        enrollment_id: None,
        journey_id: None,
        node: None,
        template: TEMPLATE.into(),
        channel: "email".into(),
        priority: Priority::Bulk,
        recipient: Some(format!("bc-{i}@example.com")),
        subject: Some(format!("Bench news: what is new this month, Ada{i}")),
        html: Some(format!(
            "<p>Hello Ada{i},</p><p>Here is what is new on your <b>pro</b> plan this month.</p>"
        )),
        text: Some(format!(
            "Hello Ada{i},\n\nHere is what is new on your pro plan this month."
        )),
        status: "queued".into(),
        error: None,
        attempts: 0,
        next_attempt_at: None,
        created_at: jiff::Timestamp::now(),
        sent_at: None,
        opened_at: None,
        clicked_at: None,
        unsubscribe_url: None,
        first_attempt_at: None,
        failed_at: None,
        requeued_at: None,
        broadcast_id: None,
    }
}

/// The largest resident memory of this process while it runs, read every 50 ms.
struct PeakRss(
    tokio::task::JoinHandle<u64>,
    Arc<std::sync::atomic::AtomicBool>,
);

impl PeakRss {
    fn start() -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        PeakRss(
            tokio::spawn(async move {
                let mut peak = 0;
                while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    peak = peak.max(super::proc_status_kib("self", "VmRSS").unwrap_or(0));
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                peak
            }),
            stop,
        )
    }

    async fn stop(self) -> f64 {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        self.0.await.unwrap_or(0) as f64 / 1024.0
    }
}
