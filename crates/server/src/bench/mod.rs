//! `waymark bench`: measures ingest, journey stepping, trigger-to-send latency, delivery as
//! users feel it (webhooks to a receiver under events offered open loop) and timer capacity
//! through the real code paths (HTTP API, intake, engine, outbox), each on a fresh SQLite
//! database (or a fresh schema of a PostgreSQL database, with `--database`), and prints one
//! JSON line per figure on stdout. Progress goes to stderr. With `--database`, it also measures
//! several `waymark serve` processes sharing the database (`processes`).
//!
//! What each figure means and how to read it: `docs/benchmarks.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::{Args, ValueEnum};
use jiff::Timestamp;
use serde_json::{Value, json};
use waymark_engine::{Clock, Engine, EngineConfig, Transports, WebhookConfig, Webhooks};
use waymark_store::postgres::inspect::ScratchSchema;
use waymark_store::postgres::{PgStore, redact};
use waymark_store::sqlite::SqliteStore;
use waymark_store::{MessageQuery, MessageRow, NewEvent, Store};

use crate::api::{self, AppState, Secrets};

mod broadcast;
mod import;
mod processes;
mod replay;
mod report;
mod simulate;
mod smtp_sink;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Figure {
    /// `ingest_events_per_second`: durable ingest through POST /v1/batch.
    #[value(alias = "ingest_events_per_second")]
    Ingest,
    /// `journey_steps_per_second`: a backlog of trigger events through a 4-node journey.
    #[value(alias = "journey_steps_per_second")]
    Steps,
    /// `trigger_to_send_latency_p50_ms` and `_p99_ms`: single events at a steady rate.
    #[value(
        alias = "trigger_to_send_latency",
        alias = "trigger_to_send_latency_p50_ms",
        alias = "trigger_to_send_latency_p99_ms"
    )]
    Latency,
    /// `immediate_send_latency_p50_ms` and `_p99_ms`: trigger to webhook arrival, offered at a
    /// steady rate.
    #[value(
        name = "send",
        alias = "immediate_send_latency",
        alias = "immediate_send_latency_p50_ms",
        alias = "immediate_send_latency_p99_ms"
    )]
    ImmediateSend,
    /// `cart_reminder_lateness_p50_ms` and `_p99_ms`: abandoned-cart reminders (a webhook after
    /// a 10 s wait for the order) under a steady stream of carts.
    #[value(
        alias = "cart_reminder_lateness",
        alias = "cart_reminder_lateness_p50_ms",
        alias = "cart_reminder_lateness_p99_ms"
    )]
    Cart,
    /// `waiting_enrollments_bytes_per_enrollment` and `fire_all_due_seconds`.
    #[value(
        alias = "waiting_enrollments_bytes_per_enrollment",
        alias = "fire_all_due_seconds"
    )]
    Timers,
    /// `import_rows_per_second`: `waymark import contacts` of a generated CSV file.
    #[value(alias = "import_rows_per_second")]
    Import,
    /// `broadcast_messages_per_second`, `broadcast_report_p99_ms`,
    /// `smtp_sink_messages_per_second`, `broadcast_smtp_messages_per_second` and
    /// `broadcast_first_message_ms`: one email to a list of every contact, and its report.
    #[value(
        alias = "broadcast_messages_per_second",
        alias = "broadcast_report_p99_ms",
        alias = "smtp_sink_messages_per_second",
        alias = "broadcast_smtp_messages_per_second",
        alias = "broadcast_first_message_ms"
    )]
    Broadcast,
    /// `journey_report_p99_ms`: journey reports over HTTP for a journey with a million
    /// messages over 30 days.
    #[value(alias = "journey_report_p99_ms")]
    Report,
    /// `simulate_seconds`: `waymark simulate` of the abandoned-cart journey on 100,000
    /// synthetic contacts for 30 days (on its own private SQLite store, so only without
    /// `--database`).
    #[value(alias = "simulate_seconds")]
    Simulate,
    /// `replay_seconds`: `waymark simulate --replay` of a month of an abandoned-cart shop of
    /// 100,000 shoppers on the bench's server.
    #[value(alias = "replay_seconds")]
    Replay,
    /// `cart_journeys_per_second` with 1, 2 and 3 `waymark serve` processes on one PostgreSQL
    /// database, and the ratio of 3 to 1 (only with `--database`).
    #[value(
        alias = "cart_journeys_per_second",
        alias = "cart_journeys_per_second_1_process",
        alias = "cart_journeys_per_second_2_processes",
        alias = "cart_journeys_per_second_3_processes",
        alias = "cart_journeys_ratio_3_to_1_processes"
    )]
    Processes,
}

impl Figure {
    /// The timers figure comes after the in-process figures: its million enrollments would
    /// dominate the peak memory that the send and cart figures report. The processes figure
    /// runs its servers as child processes, so its place does not matter to the others.
    const ALL: [Figure; 12] = [
        Figure::Ingest,
        Figure::Steps,
        Figure::Latency,
        Figure::ImmediateSend,
        Figure::Cart,
        Figure::Import,
        Figure::Broadcast,
        Figure::Report,
        Figure::Simulate,
        Figure::Replay,
        Figure::Timers,
        Figure::Processes,
    ];

    fn dir_name(self) -> &'static str {
        match self {
            Figure::Ingest => "ingest",
            Figure::Steps => "steps",
            Figure::Latency => "latency",
            Figure::ImmediateSend => "send",
            Figure::Cart => "cart",
            Figure::Timers => "timers",
            Figure::Import => "import",
            Figure::Broadcast => "broadcast",
            Figure::Report => "report",
            Figure::Simulate => "simulate",
            Figure::Replay => "replay",
            Figure::Processes => "processes",
        }
    }
}

/// Why the simulate figure is not run on PostgreSQL.
const SIMULATE_IS_PRIVATE: &str = "the simulate figure runs `waymark simulate`, which keeps its own private SQLite store; run it without --database";

/// Why the processes figure is not run on SQLite.
const PROCESSES_NEED_DATABASE: &str = "the processes figure needs --database URL: several `waymark serve` processes share one PostgreSQL database (a SQLite data directory is locked by its one process)";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Run only this figure (ingest, steps, latency, send, cart, timers, processes, or a
    /// figure's full name).
    #[arg(long, value_enum)]
    pub only: Option<Figure>,
    /// Small counts (a smoke test that finishes in well under a minute).
    #[arg(long)]
    pub quick: bool,
    /// Events sent through POST /v1/batch in the ingest figure [default: 200000; quick: 2000].
    #[arg(long)]
    pub events: Option<usize>,
    /// Events per POST /v1/batch request.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Concurrent HTTP connections sending batches.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Contacts sent through the whole journey in the steps figure [default: 20000; quick: 500].
    #[arg(long)]
    pub contacts: Option<usize>,
    /// Segments kept current while the steps figure runs (each contact is re-evaluated against
    /// every segment on each of its events) [default: 0].
    #[arg(long, default_value_t = 0)]
    pub segments: usize,
    /// Trigger events timed in the latency figure [default: 2000; quick: 200].
    #[arg(long)]
    pub samples: Option<usize>,
    /// Trigger events per second in the latency figure.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Trigger events per second in the send figure [default: 500; quick: 200].
    #[arg(long)]
    pub send_rate: Option<f64>,
    /// Seconds of trigger events in the send figure [default: 10; quick: 3].
    #[arg(long)]
    pub send_seconds: Option<f64>,
    /// Carts per second in the cart figure [default: 2000; quick: 200].
    #[arg(long)]
    pub cart_rate: Option<f64>,
    /// Seconds of carts in the cart figure [default: 30; quick: 5].
    #[arg(long)]
    pub cart_seconds: Option<f64>,
    /// Enrollments left waiting on a timer in the timers figure [default: 1000000; quick: 5000].
    #[arg(long)]
    pub enrollments: Option<usize>,
    /// Carts sent through the cart journey for each process count in the processes figure
    /// [default: 20000; quick: 300].
    #[arg(long)]
    pub process_carts: Option<usize>,
    /// Rows in the CSV file of the import figure [default: 1000000; quick: 10000].
    #[arg(long)]
    pub import_rows: Option<usize>,
    /// Contacts a broadcast goes to in the broadcast figure [default: 1000000; quick: 2000].
    #[arg(long)]
    pub broadcast_contacts: Option<usize>,
    /// Messages of the journey the report figure reports on [default: 1000000; quick: 5000].
    #[arg(long)]
    pub report_messages: Option<usize>,
    /// Synthetic contacts of the simulate figure [default: 100000; quick: 1000].
    #[arg(long)]
    pub simulate_contacts: Option<usize>,
    /// Shoppers of the month the replay figure replays [default: 100000; quick: 1000].
    #[arg(long)]
    pub replay_contacts: Option<usize>,
    /// Directory for the databases (one fresh subdirectory per figure), kept afterwards.
    /// Default: a fresh directory under the system temp dir, removed afterwards.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run on PostgreSQL instead of SQLite: each figure gets a fresh schema
    /// (`waymark_bench_<pid>_<n>`) in this database, dropped afterwards. Never read from
    /// WAYMARK_DATABASE_URL, so that a benchmark does not land in a production database.
    #[arg(long, value_name = "URL", conflicts_with = "data")]
    pub database: Option<String>,
}

/// The counts in effect (defaults depend on `--quick`).
struct Plan {
    quick: bool,
    /// The backend's name, in every line.
    database: &'static str,
    events: usize,
    batch_size: usize,
    connections: usize,
    contacts: usize,
    segments: usize,
    samples: usize,
    rate: f64,
    send: OpenLoopPlan,
    cart: OpenLoopPlan,
    enrollments: usize,
    process_carts: usize,
    import_rows: usize,
    broadcast_contacts: usize,
    report_messages: usize,
    simulate_contacts: usize,
    replay_contacts: usize,
}

/// Offers at a steady rate for a while.
#[derive(Clone, Copy)]
struct OpenLoopPlan {
    rate: f64,
    seconds: f64,
}

impl OpenLoopPlan {
    fn offers(self) -> usize {
        ((self.rate * self.seconds).round() as usize).max(1)
    }

    fn check(self, name: &str) -> anyhow::Result<Self> {
        ensure!(
            self.rate > 0.0 && self.rate <= 100_000.0,
            "--{name}-rate must be between 0 and 100000 per second"
        );
        ensure!(
            self.seconds > 0.0 && self.seconds <= 3_600.0,
            "--{name}-seconds must be between 0 and 3600"
        );
        Ok(self)
    }
}

impl Plan {
    fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        let pick = |given: Option<usize>, full: usize, quick: usize| {
            given.unwrap_or(if args.quick { quick } else { full })
        };
        let pick_f64 = |given: Option<f64>, full: f64, quick: f64| {
            given.unwrap_or(if args.quick { quick } else { full })
        };
        let plan = Plan {
            quick: args.quick,
            database: match args.database {
                Some(_) => "postgresql",
                None => "sqlite",
            },
            events: pick(args.events, 200_000, 2_000),
            batch_size: args.batch_size,
            connections: args.connections,
            contacts: pick(args.contacts, 20_000, 500),
            segments: args.segments,
            samples: pick(args.samples, 2_000, 200),
            rate: args.rate,
            send: OpenLoopPlan {
                rate: pick_f64(args.send_rate, 500.0, 200.0),
                seconds: pick_f64(args.send_seconds, 10.0, 3.0),
            }
            .check("send")?,
            cart: OpenLoopPlan {
                rate: pick_f64(args.cart_rate, 2_000.0, 200.0),
                seconds: pick_f64(args.cart_seconds, 30.0, 5.0),
            }
            .check("cart")?,
            enrollments: pick(args.enrollments, 1_000_000, 5_000),
            process_carts: pick(args.process_carts, 20_000, 300),
            import_rows: pick(args.import_rows, 1_000_000, 10_000),
            broadcast_contacts: pick(args.broadcast_contacts, 1_000_000, 2_000),
            report_messages: pick(args.report_messages, 1_000_000, 5_000),
            simulate_contacts: pick(args.simulate_contacts, 100_000, 1_000),
            replay_contacts: pick(args.replay_contacts, 100_000, 1_000),
        };
        ensure!(plan.events > 0, "--events must be at least 1");
        ensure!(
            (1..=10_000).contains(&plan.batch_size),
            "--batch-size must be between 1 and 10000"
        );
        ensure!(
            (1..=1024).contains(&plan.connections),
            "--connections must be between 1 and 1024"
        );
        ensure!(plan.contacts > 0, "--contacts must be at least 1");
        ensure!(plan.segments <= 100, "--segments must be at most 100");
        ensure!(plan.samples > 0, "--samples must be at least 1");
        ensure!(
            plan.rate > 0.0 && plan.rate <= 100_000.0,
            "--rate must be between 0 and 100000 per second"
        );
        ensure!(plan.enrollments > 0, "--enrollments must be at least 1");
        ensure!(plan.import_rows > 0, "--import-rows must be at least 1");
        ensure!(
            plan.report_messages > 0,
            "--report-messages must be at least 1"
        );
        ensure!(
            plan.simulate_contacts > 0,
            "--simulate-contacts must be at least 1"
        );
        ensure!(
            plan.replay_contacts > 0,
            "--replay-contacts must be at least 1"
        );
        ensure!(
            plan.broadcast_contacts > 0,
            "--broadcast-contacts must be at least 1"
        );
        ensure!(
            plan.process_carts >= 2,
            "--process-carts must be at least 2 (a cart that orders and one that does not)"
        );
        Ok(plan)
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let plan = Plan::new(&args)?;
    let mut figures: Vec<Figure> = match args.only {
        Some(f) => vec![f],
        None => Figure::ALL.to_vec(),
    };
    if args.database.is_none() && figures.contains(&Figure::Processes) {
        ensure!(args.only.is_none(), PROCESSES_NEED_DATABASE);
        figures.retain(|&f| f != Figure::Processes);
        progress(
            Figure::Processes,
            "skipped: several `waymark serve` processes share one PostgreSQL database, so this figure runs only with --database URL",
        );
    }
    if args.database.is_some() && figures.contains(&Figure::Simulate) {
        ensure!(args.only.is_none(), SIMULATE_IS_PRIVATE);
        figures.retain(|&f| f != Figure::Simulate);
        progress(
            Figure::Simulate,
            "skipped: a simulation runs on a private SQLite store of its own, not on --database",
        );
    }
    if let Some(url) = &args.database {
        return run_figures(&plan, &figures, &Backend::Postgres(url.clone())).await;
    }
    let (root, temporary) = match &args.data {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "waymark-bench-{}-{}",
                std::process::id(),
                api::ingest::random_hex(4)
            )),
            true,
        ),
    };
    let result = run_figures(&plan, &figures, &Backend::Sqlite(root.clone())).await;
    if temporary {
        if let Err(e) = std::fs::remove_dir_all(&root)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("bench: could not remove {}: {e}", root.display());
        }
    } else {
        eprintln!("bench: databases kept in {}", root.display());
    }
    result
}

/// Where the figures keep their data.
enum Backend {
    /// A subdirectory per figure of this directory.
    Sqlite(PathBuf),
    /// A schema per figure in the PostgreSQL database at this URL.
    Postgres(String),
}

/// Where one figure keeps its data, fresh for it.
enum FigureData {
    Sqlite(PathBuf),
    /// The URL of the figure's schema.
    Postgres(String),
}

async fn run_figures(plan: &Plan, figures: &[Figure], backend: &Backend) -> anyhow::Result<()> {
    for (n, &figure) in figures.iter().enumerate() {
        let started = Instant::now();
        let schema = format!("waymark_bench_{}_{n}", std::process::id());
        match backend {
            Backend::Sqlite(root) => {
                let dir = root.join(figure.dir_name());
                fresh_dir(&dir)?;
                run_figure(plan, figure, &FigureData::Sqlite(dir)).await?;
            }
            // A fresh schema for each process count.
            Backend::Postgres(url) if figure == Figure::Processes => {
                processes::processes(plan, url, &schema)
                    .await
                    .with_context(|| format!("the {} figure failed", figure.dir_name()))?;
            }
            Backend::Postgres(url) => {
                on_scratch_schema(figure, url, schema, |schema_url| async move {
                    run_figure(plan, figure, &FigureData::Postgres(schema_url)).await
                })
                .await?;
            }
        }
        progress(
            figure,
            format!("done in {:.1}s", started.elapsed().as_secs_f64()),
        );
    }
    Ok(())
}

async fn run_figure(plan: &Plan, figure: Figure, data: &FigureData) -> anyhow::Result<()> {
    match figure {
        Figure::Ingest => ingest(plan, data).await,
        Figure::Steps => steps(plan, data).await,
        Figure::Latency => latency(plan, data).await,
        Figure::ImmediateSend => immediate_send(plan, data).await,
        Figure::Cart => cart(plan, data).await,
        Figure::Timers => timers(plan, data).await,
        Figure::Import => import::import(plan, data).await,
        Figure::Broadcast => broadcast::broadcast(plan, data).await,
        Figure::Report => report::report(plan, data).await,
        Figure::Simulate => simulate::simulate(plan).await,
        Figure::Replay => replay::replay(plan, data).await,
        Figure::Processes => Err(anyhow::anyhow!(PROCESSES_NEED_DATABASE)),
    }
    .with_context(|| format!("the {} figure failed", figure.dir_name()))
}

/// Runs `run` on a fresh schema `name` of the database at `url` (it gets the schema's URL),
/// and drops the schema afterwards, whether `run` passed or not (and on a panic, by the
/// value's drop).
async fn on_scratch_schema<T, F>(
    figure: Figure,
    url: &str,
    name: String,
    run: impl FnOnce(String) -> F,
) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    progress(
        figure,
        format!("on a fresh schema {name} in {}", redact(url)),
    );
    let url = url.to_string();
    let schema = blocking(move || {
        ScratchSchema::create(&url, &name)
            .with_context(|| format!("cannot create the schema {name} in {}", redact(&url)))
    })
    .await?;
    let ran = run(schema.url()).await;
    let name = schema.name().to_string();
    let dropped = blocking(move || {
        schema
            .drop_now()
            .with_context(|| format!("cannot drop the schema {name}"))
    })
    .await;
    let value = ran?;
    dropped?;
    Ok(value)
}

/// Each figure gets a database of its own, which must not exist yet.
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        bail!(
            "{} is not empty; every figure needs a fresh database (remove it or pick another --data)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn progress(figure: Figure, message: impl AsRef<str>) {
    eprintln!("bench {}: {}", figure.dir_name(), message.as_ref());
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One figure as one JSON line on stdout.
fn emit(plan: &Plan, bench: &str, value: f64, unit: &str, params: Value) {
    let mut line = json!({
        "bench": bench,
        "value": round(value, 3),
        "unit": unit,
        "cores": cores(),
        "quick": plan.quick,
        "database": plan.database,
    });
    if let (Some(line), Value::Object(params)) = (line.as_object_mut(), params) {
        line.extend(params);
    }
    println!("{line}");
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Runs a blocking store call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Polls `probe` every `every` until it holds; the result is the time since `since` at which it
/// was first seen to hold.
fn watch(
    since: Instant,
    every: Duration,
    probe: impl Fn() -> anyhow::Result<bool> + Send + Sync + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<f64>> {
    let probe = Arc::new(probe);
    tokio::spawn(async move {
        loop {
            let p = probe.clone();
            if blocking(move || (*p)()).await? {
                return Ok(since.elapsed().as_secs_f64());
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// A memory figure (`VmHWM`, `VmRSS`, ...) in KiB from `/proc/{pid}/status` (`pid` may be
/// `self`); `None` once the process is gone, or off Linux.
fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(300))
        .build()?)
}

/// How the harness's engine delivers messages; `restart` starts the same kind again.
#[derive(Clone)]
enum Delivery {
    /// Email and SMS to the built-in outbox, as `waymark serve` without SMTP; no webhooks.
    Outbox,
    /// The outbox, and webhooks signed with `secret`, allowed to reach the loopback receiver.
    Webhooks { secret: String },
    /// Email through SMTP at `url`, over a pool of `connections` (`--email-concurrency`).
    Smtp { url: String, connections: usize },
}

impl Delivery {
    fn webhooks() -> Self {
        Delivery::Webhooks {
            secret: format!("wm_webhook_{}", api::ingest::random_hex(16)),
        }
    }

    fn transports(&self) -> anyhow::Result<Transports> {
        Ok(match self {
            Delivery::Outbox => Transports::outbox(),
            Delivery::Webhooks { secret } => Transports {
                webhooks: waymark_engine::WebhookTransport::Http(
                    Webhooks::new(WebhookConfig {
                        secret: secret.clone(),
                        allow_hosts: vec![RECEIVER_HOST.into()],
                    })
                    .map_err(anyhow::Error::msg)?,
                ),
                ..Transports::outbox()
            },
            Delivery::Smtp { url, connections } => Transports {
                email: waymark_engine::EmailTransport::smtp(
                    url,
                    "bench@waymark.test",
                    "bench",
                    None,
                    *connections,
                )
                .map_err(anyhow::Error::msg)?,
                ..Transports::outbox()
            },
        })
    }

    /// Deliveries at once, as `waymark serve`'s `--email-concurrency` and the others set them.
    fn concurrency(&self) -> waymark_engine::Concurrency {
        match self {
            Delivery::Smtp { connections, .. } => waymark_engine::Concurrency {
                email: *connections,
                ..Default::default()
            },
            Delivery::Outbox | Delivery::Webhooks { .. } => Default::default(),
        }
    }
}

/// The engine as `waymark serve` starts it (the one place the bench builds an `EngineConfig`).
fn start_engine(
    store: &Arc<dyn Store>,
    clock: &Clock,
    delivery: &Delivery,
) -> anyhow::Result<Arc<Engine>> {
    Ok(Engine::start(
        store.clone(),
        EngineConfig {
            clock: clock.clone(),
            transports: delivery.transports()?,
            tracking: None,
            send_rates: Default::default(),
            frequency_caps: Vec::new(),
            send_window: Default::default(),
            retry_lifetime: waymark_engine::DEFAULT_RETRY_LIFETIME,
            concurrency: delivery.concurrency(),
        },
    )?)
}

/// The figures' views of the database beside the server (sizes, timers left, messages by
/// status), whichever backend holds it.
#[derive(Clone)]
enum Inspect {
    /// The SQLite file, opened on a connection of its own for each look.
    Sqlite(PathBuf),
    /// The PostgreSQL store itself (its pooled connections).
    Postgres(Arc<PgStore>),
}

impl Inspect {
    /// Opens the store of a figure's data, as `waymark serve` opens it, and the view of it.
    fn open(data: &FigureData) -> anyhow::Result<(Arc<dyn Store>, Inspect)> {
        Ok(match data {
            FigureData::Sqlite(dir) => {
                let sqlite = SqliteStore::open(dir).context("cannot open the database")?;
                let path = sqlite.path().to_path_buf();
                (Arc::new(sqlite), Inspect::Sqlite(path))
            }
            FigureData::Postgres(url) => {
                let pg = Arc::new(PgStore::open(url).with_context(|| {
                    format!("cannot open the PostgreSQL database {}", redact(url))
                })?);
                (pg.clone(), Inspect::Postgres(pg))
            }
        })
    }

    /// True when no enrollment is waiting on a timer.
    fn no_timer_left(&self) -> anyhow::Result<bool> {
        Ok(match self {
            Inspect::Sqlite(path) => waymark_store::sqlite::inspect::no_timer_left(path)?,
            Inspect::Postgres(pg) => waymark_store::postgres::inspect::no_timer_left(pg)?,
        })
    }

    /// How many messages there are of each status.
    fn message_counts(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        Ok(match self {
            Inspect::Sqlite(path) => waymark_store::sqlite::inspect::message_counts(path)?,
            Inspect::Postgres(pg) => waymark_store::postgres::inspect::message_counts(pg)?,
        })
    }

    /// The bytes of each table, largest first, in the steady state: on SQLite each table and
    /// index after checkpointing the WAL; on PostgreSQL each table with its indexes.
    fn table_sizes(&self) -> anyhow::Result<Vec<(String, u64)>> {
        Ok(match self {
            Inspect::Sqlite(path) => waymark_store::sqlite::inspect::checkpoint_and_measure(path)?,
            Inspect::Postgres(pg) => waymark_store::postgres::inspect::table_sizes(pg)?,
        })
    }

    /// How `table_sizes` and `disk_bytes` measured, for the figure's line.
    fn size_measured(&self) -> &'static str {
        match self {
            Inspect::Sqlite(_) => {
                "database files after PRAGMA wal_checkpoint(TRUNCATE); includes the contacts, their identify and track events and the step log"
            }
            Inspect::Postgres(_) => {
                "pg_total_relation_size of the schema's tables (with indexes and TOAST); includes the contacts, their identify and track events and the step log"
            }
        }
    }
}

/// The server as `waymark serve` runs it: the store, engine with outbox transports, the API
/// on a loopback port. Requests go through a real HTTP client.
struct Harness {
    inspect: Inspect,
    store: Arc<dyn Store>,
    clock: Clock,
    delivery: Delivery,
    engine: Arc<Engine>,
    secrets: Arc<Secrets>,
    base: String,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn start(data: &FigureData, clock: Clock) -> anyhow::Result<Self> {
        Self::start_with(data, clock, Delivery::Outbox).await
    }

    async fn start_with(
        data: &FigureData,
        clock: Clock,
        delivery: Delivery,
    ) -> anyhow::Result<Self> {
        let (store, inspect) = Inspect::open(data)?;
        let engine = start_engine(&store, &clock, &delivery)?;
        let secrets = Arc::new(Secrets {
            admin_token: format!("wm_admin_{}", api::ingest::random_hex(24)),
            write_key: format!("wm_write_{}", api::ingest::random_hex(16)),
            inbound_webhook_secret: format!("wm_inbound_{}", api::ingest::random_hex(24)),
        });
        let http = http_client()?;
        let mut h = Harness {
            inspect,
            store,
            clock,
            delivery,
            engine,
            secrets,
            base: String::new(),
            http,
            shutdown: None,
            server: None,
        };
        h.serve().await?;
        Ok(h)
    }

    /// Serves the API for the current engine, exactly as `waymark serve` does.
    async fn serve(&mut self) -> anyhow::Result<()> {
        let state = AppState {
            engine: self.engine.clone(),
            secrets: self.secrets.clone(),
            metrics: None,
            public: Arc::new(crate::api::PublicPages::default()),
            policy: Arc::new(crate::serve::SendingPolicy::default()),
            simulation: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        self.base = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.server = Some(tokio::spawn(async move {
            let served = axum::serve(listener, api::router(state))
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                eprintln!("bench: the HTTP server failed: {e}");
            }
        }));
        Ok(())
    }

    async fn stop_server(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            // Idle keep-alive connections of the client would hold a graceful shutdown open.
            self.http = http_client()?;
            tokio::time::timeout(Duration::from_secs(30), server)
                .await
                .context("the HTTP server did not stop")??;
        }
        Ok(())
    }

    /// Stops the engine's loop and dispatcher after their current batch. The intake (and so
    /// the tracking API) keeps accepting events; nothing processes them until `restart`.
    async fn stop_engine(&self) -> anyhow::Result<()> {
        let engine = self.engine.clone();
        blocking(move || {
            engine.stop();
            Ok(())
        })
        .await
    }

    /// Starts a fresh engine (same store, same clock) and serves the API for it.
    async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop_server().await?;
        self.stop_engine().await?;
        self.engine = start_engine(&self.store, &self.clock, &self.delivery)?;
        self.serve().await
    }

    async fn finish(mut self) -> anyhow::Result<()> {
        self.stop_server().await?;
        self.stop_engine().await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn api(&self) -> Api<'_> {
        Api {
            http: &self.http,
            base: &self.base,
            admin_token: &self.secrets.admin_token,
        }
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.api().admin(method, path, body).await
    }

    /// Creates the journey (with its templates) through the API and publishes it.
    async fn publish(&self, doc: &Value) -> anyhow::Result<()> {
        self.api().publish(doc).await
    }

    async fn stats(&self, id: &str) -> anyhow::Result<Value> {
        self.api().stats(id).await
    }

    async fn run_until_idle(&self) -> anyhow::Result<()> {
        self.engine.run_until_idle().await?;
        Ok(())
    }
}

/// A server's management API as the figures call it, whether the server runs in the bench
/// process (`Harness`) or as a child process (the processes figure).
struct Api<'a> {
    http: &'a reqwest::Client,
    /// `http://ADDR`
    base: &'a str,
    admin_token: &'a str,
}

impl Api<'_> {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(self.admin_token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        json_of(resp, &format!("{method} {path}")).await
    }

    /// Creates the journey (with its templates) through the API and publishes it.
    async fn publish(&self, doc: &Value) -> anyhow::Result<()> {
        let id = doc["id"].as_str().context("journey without id")?;
        let draft = self
            .admin(
                reqwest::Method::PUT,
                &format!("/v1/journeys/{id}"),
                Some(doc),
            )
            .await?;
        ensure!(
            draft["valid"] == json!(true),
            "the bench journey `{id}` is not valid: {}",
            draft["errors"]
        );
        let live = self
            .admin(
                reqwest::Method::POST,
                &format!("/v1/journeys/{id}/publish"),
                None,
            )
            .await?;
        ensure!(
            live["status"] == json!("live"),
            "journey `{id}` did not go live: {live}"
        );
        Ok(())
    }

    async fn stats(&self, id: &str) -> anyhow::Result<Value> {
        self.admin(
            reqwest::Method::GET,
            &format!("/v1/journeys/{id}/stats"),
            None,
        )
        .await
    }
}

async fn json_of(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = resp.status();
    let text = resp.text().await.with_context(|| what.to_string())?;
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: the answer is not JSON: {text}"))
}

/// Sum of `entered` over a stats document's nodes, and one node's counters.
fn entered_sum(stats: &Value) -> i64 {
    nodes(stats)
        .map(|n| n["entered"].as_i64().unwrap_or(0))
        .sum()
}

fn nodes(stats: &Value) -> impl Iterator<Item = &Value> {
    stats["nodes"].as_array().into_iter().flatten()
}

fn node_counter(stats: &Value, node: &str, counter: &str) -> i64 {
    nodes(stats)
        .find(|n| n["node"] == json!(node))
        .and_then(|n| n[counter].as_i64())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Events as a Segment client sends them.

fn identify_json(prefix: &str, i: usize) -> String {
    format!(
        r#"{{"type":"identify","userId":"{prefix}-{i}","messageId":"{prefix}-identify-{i}","traits":{{"email":"{prefix}-{i}@example.com","first_name":"Ada{i}","plan":"pro"}}}}"#
    )
}

fn track_json(prefix: &str, i: usize, event: &str, timestamp: &str) -> String {
    format!(
        r#"{{"type":"track","userId":"{prefix}-{i}","event":"{event}","messageId":"{prefix}-track-{i}","timestamp":"{timestamp}","properties":{{"plan":"pro","source":"bench","value":{}}},"context":{{"library":{{"name":"waymark-bench","version":"{}"}}}}}}"#,
        i % 100,
        env!("CARGO_PKG_VERSION")
    )
}

/// `{"batch":[...]}` bodies of `batch` events each.
fn batch_bodies(total: usize, batch: usize, event: impl Fn(usize) -> String) -> Vec<String> {
    (0..total)
        .step_by(batch)
        .map(|start| {
            let end = (start + batch).min(total);
            let mut body = String::with_capacity((end - start) * 300 + 16);
            body.push_str(r#"{"batch":["#);
            for i in start..end {
                if i > start {
                    body.push(',');
                }
                body.push_str(&event(i));
            }
            body.push_str("]}");
            body
        })
        .collect()
}

struct BatchRun {
    accepted: u64,
    duplicates: u64,
    /// From the first request to the last 200 answer.
    seconds: f64,
    request_ms: Vec<f64>,
}

/// Sends the bodies through POST /v1/batch over `connections` concurrent connections and
/// checks that every one was answered 200.
async fn post_batches(
    h: &Harness,
    bodies: Vec<String>,
    connections: usize,
) -> anyhow::Result<BatchRun> {
    let urls = [h.url("/v1/batch")];
    post_batches_to(&h.http, &urls, &h.secrets.write_key, bodies, connections).await
}

/// `post_batches` to several servers: body `b` goes to `urls[b % urls.len()]`, round robin.
async fn post_batches_to(
    http: &reqwest::Client,
    urls: &[String],
    write_key: &str,
    bodies: Vec<String>,
    connections: usize,
) -> anyhow::Result<BatchRun> {
    let bodies = Arc::new(bodies);
    let urls: Arc<[String]> = urls.into();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections.min(bodies.len()) {
        let (bodies, next, urls) = (bodies.clone(), next.clone(), urls.clone());
        let http = http.clone();
        let key = write_key.to_string();
        tasks.spawn(async move {
            let mut accepted = 0u64;
            let mut duplicates = 0u64;
            let mut request_ms = Vec::new();
            let mut last = started;
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(b) else { break };
                let sent = Instant::now();
                let resp = http
                    .post(&urls[b % urls.len()])
                    .basic_auth(&key, Some(""))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .context("POST /v1/batch")?;
                let answer = json_of(resp, "POST /v1/batch").await?;
                last = Instant::now();
                request_ms.push((last - sent).as_secs_f64() * 1e3);
                accepted += answer["accepted"].as_u64().context("no `accepted` count")?;
                duplicates += answer["duplicates"].as_u64().unwrap_or(0);
            }
            Ok::<_, anyhow::Error>((accepted, duplicates, request_ms, last))
        });
    }
    let mut run = BatchRun {
        accepted: 0,
        duplicates: 0,
        seconds: 0.0,
        request_ms: Vec::new(),
    };
    let mut last = started;
    while let Some(done) = tasks.join_next().await {
        let (accepted, duplicates, request_ms, at) = done??;
        run.accepted += accepted;
        run.duplicates += duplicates;
        run.request_ms.extend(request_ms);
        last = last.max(at);
    }
    run.seconds = (last - started).as_secs_f64();
    Ok(run)
}

/// Ingests events that the figure needs but does not time, and checks they were all accepted.
async fn ingest_untimed(
    h: &Harness,
    total: usize,
    event: impl Fn(usize) -> String,
) -> anyhow::Result<()> {
    let run = post_batches(h, batch_bodies(total, 500, event), 8).await?;
    ensure!(
        run.accepted == total as u64 && run.duplicates == 0,
        "{} of {total} events accepted ({} duplicates)",
        run.accepted,
        run.duplicates
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. ingest_events_per_second

async fn ingest(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::Ingest;
    let h = Harness::start(data, Clock::System).await?;
    let timestamp = Timestamp::now().to_string();
    let run_id = api::ingest::random_hex(4);
    let prefix = format!("ingest-{run_id}");
    let bodies = batch_bodies(plan.events, plan.batch_size, |i| {
        track_json(&prefix, i, "Product Viewed", &timestamp)
    });
    progress(
        figure,
        format!(
            "{} events in {} batches over {} connections",
            plan.events,
            bodies.len(),
            plan.connections
        ),
    );
    let run = post_batches(&h, bodies, plan.connections).await?;
    // How far the engine (running as in production) got meanwhile.
    let store = h.store.clone();
    let pending = blocking(move || Ok(store.pending_event_count()?)).await?;
    ensure!(
        run.accepted == plan.events as u64 && run.duplicates == 0,
        "only {} of {} events were accepted ({} duplicates)",
        run.accepted,
        plan.events,
        run.duplicates
    );
    let requests = sorted(run.request_ms);
    emit(
        plan,
        "ingest_events_per_second",
        plan.events as f64 / run.seconds,
        "events/s",
        json!({
            "events": plan.events,
            "batch_size": plan.batch_size,
            "connections": plan.connections,
            "seconds": round(run.seconds, 3),
            "request_p50_ms": round(percentile(&requests, 50.0), 2),
            "request_p99_ms": round(percentile(&requests, 99.0), 2),
            "processed_by_engine_meanwhile": plan.events as i64 - pending,
            "target": 20_000,
        }),
    );
    h.finish().await
}

// ---------------------------------------------------------------------------------------------
// 2. journey_steps_per_second

fn email_template(id: &str, subject: &str, line: &str) -> Value {
    json!({
        "id": id,
        "channel": "email",
        "subject": subject,
        "html": format!("<h1>Hi {{{{ contact.first_name | default: \"there\" }}}},</h1><p>{line}</p><p>Your plan: {{{{ event.plan | default: \"free\" }}}}</p>"),
        "text": format!("Hi {{{{ contact.first_name | default: \"there\" }}}}, {line} Your plan: {{{{ event.plan | default: \"free\" }}}}"),
    })
}

const STEPS_JOURNEY: &str = "bench-welcome";

async fn steps(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::Steps;
    let n = plan.contacts;
    let start = Timestamp::now();
    let mut h = Harness::start(data, Clock::simulated(start)).await?;
    h.publish(&json!({
        "id": STEPS_JOURNEY,
        "name": "Bench: welcome series",
        "entry": { "reentry": "once" },
        "nodes": [
            { "id": "signed-up", "type": "trigger", "event": "Signed Up" },
            { "id": "welcome", "type": "send_email", "template": "bench-welcome" },
            { "id": "wait-1d", "type": "delay", "duration": "1d" },
            { "id": "tips", "type": "send_email", "template": "bench-tips" },
        ],
        "edges": [
            { "from": "signed-up", "to": "welcome" },
            { "from": "welcome", "to": "wait-1d" },
            { "from": "wait-1d", "to": "tips" },
        ],
        "templates": [
            email_template("bench-welcome", "Welcome, {{ contact.first_name | default: 'friend' }}!", "Your account is ready."),
            email_template("bench-tips", "Three things to try first", "Here is what our happiest customers do first."),
        ],
    }))
    .await?;

    // Segments of the usual kinds (traits, event history, sums, engagement), cycled.
    for i in 0..plan.segments {
        let text = match i % 4 {
            0 => format!("first_name exists and plan != \"plan-{i}\""),
            1 => format!("did \"Signed Up\" in last {}d", 30 + i),
            2 => format!(
                "sum(total) of \"Order Completed\" in last 365d >= {}",
                100 + i
            ),
            _ => format!("opened any email in last {}d", 7 + i),
        };
        h.admin(
            reqwest::Method::POST,
            "/v1/segments",
            Some(&json!({ "id": format!("bench-{i}"), "text": text })),
        )
        .await?;
    }

    // Contacts with an email address (not timed).
    progress(figure, format!("creating {n} contacts (not timed)"));
    ingest_untimed(&h, n, |i| identify_json("steps", i)).await?;
    h.run_until_idle().await?;

    // A backlog of trigger events, accepted while the engine is stopped (not timed).
    h.stop_engine().await?;
    let timestamp = start.to_string();
    ingest_untimed(&h, n, |i| track_json("steps", i, "Signed Up", &timestamp)).await?;
    let store = h.store.clone();
    let backlog = blocking(move || Ok(store.pending_event_count()?)).await?;
    ensure!(
        backlog == n as i64,
        "expected a backlog of {n} events, found {backlog}"
    );

    // Timed: a fresh engine works through the backlog and delivers what it sends.
    h.stop_server().await?;
    progress(figure, format!("processing {n} trigger events (timed)"));
    let started = Instant::now();
    h.restart().await?;
    let store = h.store.clone();
    let processed = watch(started, Duration::from_millis(5), move || {
        Ok(store.pending_event_count()? == 0)
    });
    h.run_until_idle().await?;
    let event_phase = started.elapsed().as_secs_f64();
    let events_processed = processed.await??;
    let after_events = h.stats(STEPS_JOURNEY).await?;
    let event_steps = entered_sum(&after_events);
    ensure!(
        event_steps == 3 * n as i64,
        "expected {} steps after the trigger events, counted {event_steps}: {after_events}",
        3 * n
    );
    ensure!(
        node_counter(&after_events, "welcome", "sent") == n as i64,
        "not every welcome email was sent: {after_events}"
    );

    // Timed: a day later every contact's timer fires and the second email goes out.
    progress(figure, format!("advancing 1 day: {n} timers (timed)"));
    let started = Instant::now();
    let inspect = h.inspect.clone();
    let fired = watch(started, Duration::from_millis(5), move || {
        inspect.no_timer_left()
    });
    h.engine.advance(86_400).await?;
    let timer_phase = started.elapsed().as_secs_f64();
    let timers_fired = tokio::time::timeout(Duration::from_secs(10), fired)
        .await
        .context("timers still waiting after the advance")???;
    let done = h.stats(STEPS_JOURNEY).await?;
    let steps = entered_sum(&done);
    ensure!(
        steps == 4 * n as i64,
        "expected {} steps in all, counted {steps}: {done}",
        4 * n
    );
    let sent = node_counter(&done, "welcome", "sent") + node_counter(&done, "tips", "sent");
    ensure!(
        sent == 2 * n as i64,
        "expected {} emails sent, counted {sent}: {done}",
        2 * n
    );
    ensure!(
        done["completed"] == json!(n),
        "expected {n} completed enrollments: {done}"
    );
    let seconds = event_phase + timer_phase;
    emit(
        plan,
        "journey_steps_per_second",
        steps as f64 / seconds,
        "steps/s",
        json!({
            "contacts": n,
            "steps": steps,
            "messages_sent": sent,
            "seconds": round(seconds, 3),
            "events_processed_seconds": round(events_processed, 3),
            "event_phase_seconds": round(event_phase, 3),
            "event_phase_steps": event_steps,
            "timer_phase_seconds": round(timer_phase, 3),
            "timer_phase_steps": steps - event_steps,
            "timers_fired_seconds": round(timers_fired, 3),
            "processing_steps_per_second": round(steps as f64 / (events_processed + timers_fired), 1),
            "journey": "trigger > send_email > delay 1d > send_email",
            "segments": plan.segments,
            "clock": "simulated",
            "target": 10_000,
        }),
    );
    h.finish().await
}

// ---------------------------------------------------------------------------------------------
// 3. trigger_to_send_latency

const LATENCY_JOURNEY: &str = "bench-latency";

async fn latency(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::Latency;
    let n = plan.samples;
    let h = Harness::start(data, Clock::System).await?;
    h.publish(&json!({
        "id": LATENCY_JOURNEY,
        "name": "Bench: instant welcome",
        "entry": { "reentry": "once" },
        "nodes": [
            { "id": "signed-up", "type": "trigger", "event": "Signed Up" },
            { "id": "welcome", "type": "send_email", "template": "bench-instant" },
        ],
        "edges": [ { "from": "signed-up", "to": "welcome" } ],
        "templates": [
            email_template("bench-instant", "Welcome, {{ contact.first_name | default: 'friend' }}!", "Your account is ready."),
        ],
    }))
    .await?;
    progress(figure, format!("creating {n} contacts (not timed)"));
    ingest_untimed(&h, n, |i| identify_json("latency", i)).await?;
    let store = h.store.clone();
    watch(Instant::now(), Duration::from_millis(5), move || {
        Ok(store.pending_event_count()? == 0)
    })
    .await??;

    progress(
        figure,
        format!("{n} trigger events at {}/s, one per request", plan.rate),
    );
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        ticker.tick().await;
        let posted = post_one(
            &h,
            "/v1/track",
            format!(
                r#"{{"userId":"latency-{i}","event":"Signed Up","messageId":"latency-track-{i}","properties":{{"plan":"pro"}}}}"#
            ),
        );
        tasks.spawn(async move {
            let posted = posted.await.with_context(|| format!("event {i}"))?;
            Ok::<_, anyhow::Error>((format!("latency-{i}"), posted.sent, posted.ack_ms))
        });
    }
    let mut started: HashMap<String, Timestamp> = HashMap::new();
    let mut acks = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        let (user, wall, ack_ms) = done??;
        started.insert(user, wall);
        acks.push(ack_ms);
    }
    // Everything processed and delivered.
    let store = h.store.clone();
    tokio::time::timeout(
        Duration::from_secs(120),
        watch(Instant::now(), Duration::from_millis(10), move || {
            Ok(store.pending_event_count()? == 0 && store.next_message_attempt_at()?.is_none())
        }),
    )
    .await
    .context("the messages were not all sent within 2 minutes")???;

    let store = h.store.clone();
    let messages = blocking(move || {
        let mut all: Vec<MessageRow> = Vec::new();
        loop {
            let page = store.messages(&MessageQuery {
                journey_id: Some(LATENCY_JOURNEY.into()),
                limit: 1000,
                after_id: all.last().map_or(0, |m| m.id),
                ..Default::default()
            })?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    })
    .await?;
    ensure!(
        messages.len() == n,
        "expected {n} messages, found {}",
        messages.len()
    );
    let mut latencies = Vec::with_capacity(n);
    for m in &messages {
        ensure!(
            m.status == "sent",
            "message {} is {}: {:?}",
            m.id,
            m.status,
            m.error
        );
        let user = m.user_id.as_deref().unwrap_or_default();
        let wall = started
            .get(user)
            .with_context(|| format!("a message for an unknown user `{user}`"))?;
        let sent_at = m.sent_at.context("a sent message without sent_at")?;
        latencies.push(sent_at.duration_since(*wall).as_secs_f64() * 1e3);
    }
    let latencies = sorted(latencies);
    let acks = sorted(acks);
    let params = json!({
        "samples": n,
        "rate_per_second": plan.rate,
        "max_ms": round(latencies[latencies.len() - 1], 2),
        "ack_p50_ms": round(percentile(&acks, 50.0), 2),
        "ack_p99_ms": round(percentile(&acks, 99.0), 2),
        "measured": "message sent_at (ms resolution) minus the wall time just before the request",
        "clock": "system",
        "transport": "outbox",
        "target_p99": 100,
    });
    for (name, p) in [
        ("trigger_to_send_latency_p50_ms", 50.0),
        ("trigger_to_send_latency_p99_ms", 99.0),
    ] {
        emit(plan, name, percentile(&latencies, p), "ms", params.clone());
    }
    h.finish().await
}

// ---------------------------------------------------------------------------------------------
// Delivery as users feel it: a loopback webhook receiver, offers on an open-loop schedule,
// the spread of a sample and the process's peak memory (the send and cart figures).

/// Where the receiver listens; the webhook transport is allowed to reach it.
const RECEIVER_HOST: &str = "127.0.0.1";

/// The webhook body of the bench journeys: who the call is about, so that the receiver can
/// match each request to the event that caused it.
const WEBHOOK_BODY: &str =
    r#"{"user": {{ contact.user_id | json }}, "journey": {{ journey.id | json }}}"#;

/// `WEBHOOK_BODY` with a `kind`, for a journey that calls the receiver from more than one node.
fn webhook_body_of_kind(kind: &str) -> String {
    let fields = WEBHOOK_BODY
        .strip_suffix('}')
        .expect("WEBHOOK_BODY is an object");
    format!(r#"{fields}, "kind": {}}}"#, json!(kind))
}

/// One request as the receiver saw it.
struct Arrival {
    at: Timestamp,
    idempotency_key: String,
    /// `user` from the body (`WEBHOOK_BODY`).
    user: String,
    /// `kind` from the body (`webhook_body_of_kind`); empty without one.
    kind: String,
}

type Arrivals = Arc<Mutex<Vec<Arrival>>>;

/// A webhook endpoint inside the bench process, standing for the system a journey notifies:
/// it notes each request's arrival and answers 200 at once. Stops when dropped.
struct Receiver {
    url: String,
    /// `HOST:PORT`, as `--webhook-allow-host` takes it.
    host_port: String,
    arrivals: Arrivals,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind((RECEIVER_HOST, 0)).await?;
        let host_port = listener.local_addr()?.to_string();
        let url = format!("http://{host_port}/hook");
        let arrivals = Arrivals::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(arrivals.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("bench: the webhook receiver failed: {e}");
            }
        });
        Ok(Receiver {
            url,
            host_port,
            arrivals,
            server,
        })
    }

    fn count(&self) -> usize {
        self.arrivals.lock().expect("arrivals lock").len()
    }

    /// Every arrival so far (the receiver starts over).
    fn take(&self) -> Vec<Arrival> {
        std::mem::take(&mut *self.arrivals.lock().expect("arrivals lock"))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(arrivals): State<Arrivals>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Timestamp::now();
    let idempotency_key = headers
        .get(waymark_engine::webhook::IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_string();
    arrivals.lock().expect("arrivals lock").push(Arrival {
        at,
        idempotency_key,
        user: field("user"),
        kind: field("kind"),
    });
    StatusCode::OK
}

/// Checks that each user's requests at the receiver number what `expected` says (none for a
/// user it does not name), and that each request carried an idempotency key of its own.
fn check_arrivals(
    arrivals: &[Arrival],
    expected: &HashMap<String, usize>,
    what: &str,
) -> anyhow::Result<()> {
    let keys: HashSet<&str> = arrivals
        .iter()
        .map(|a| a.idempotency_key.as_str())
        .collect();
    ensure!(
        !keys.contains("") && keys.len() == arrivals.len(),
        "{what}: {} requests carried {} distinct idempotency keys (one missing or repeated)",
        arrivals.len(),
        keys.len()
    );
    let mut got: HashMap<&str, usize> = HashMap::new();
    for a in arrivals {
        *got.entry(a.user.as_str()).or_default() += 1;
    }
    let mut wrong: Vec<String> = got
        .iter()
        .filter_map(|(user, &n)| {
            let want = expected.get(*user).copied().unwrap_or(0);
            (n != want).then(|| format!("`{user}` got {n} (expected {want})"))
        })
        .chain(
            expected
                .iter()
                .filter(|(user, want)| **want > 0 && !got.contains_key(user.as_str()))
                .map(|(user, want)| format!("`{user}` got 0 (expected {want})")),
        )
        .collect();
    if !wrong.is_empty() {
        wrong.sort();
        bail!(
            "{what}: {} users got the wrong number of requests, e.g. {}",
            wrong.len(),
            wrong[..wrong.len().min(5)].join(", ")
        );
    }
    Ok(())
}

/// An offer's result, with when its task began and how far behind its schedule that was.
struct Offered<T> {
    began: Instant,
    late_by: Duration,
    result: T,
}

/// Makes offers on a fixed schedule, open loop as real users do: each offer is a task of its
/// own, started at its time after the start whether or not earlier offers were answered, so a
/// slow server does not slow the offers down. `schedule` is in time order. The results come
/// back in no particular order; the first failed offer fails the whole.
async fn open_loop<O, T, F>(
    schedule: Vec<(Duration, O)>,
    offer: impl Fn(O) -> F,
) -> anyhow::Result<Vec<Offered<T>>>
where
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut done = Vec::with_capacity(schedule.len());
    for (at, o) in schedule {
        let due = start + at;
        // A finished task keeps its whole allocation (a request future is kilobytes) until it
        // is joined: join as we go, or the client alone holds hundreds of megabytes.
        while let Some(offered) = tasks.try_join_next() {
            done.push(offered??);
        }
        tokio::time::sleep_until(due).await;
        let work = offer(o);
        tasks.spawn(async move {
            let began = tokio::time::Instant::now();
            let result = work.await?;
            Ok::<_, anyhow::Error>(Offered {
                began: began.into_std(),
                late_by: began.saturating_duration_since(due),
                result,
            })
        });
    }
    while let Some(offered) = tasks.join_next().await {
        done.push(offered??);
    }
    Ok(done)
}

/// Offer `i` of a steady `rate` per second.
fn offer_time(i: usize, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

/// The rate the offers really began at (between the first and the last), and the most any
/// began behind its schedule: together they say whether the client kept to the schedule.
fn achieved<T>(offers: &[&Offered<T>]) -> (f64, f64) {
    let first = offers.iter().map(|o| o.began).min();
    let last = offers.iter().map(|o| o.began).max();
    let rate = match (first, last) {
        (Some(first), Some(last)) if last > first => {
            (offers.len() - 1) as f64 / (last - first).as_secs_f64()
        }
        _ => f64::NAN,
    };
    let late_ms = offers
        .iter()
        .map(|o| o.late_by.as_secs_f64() * 1e3)
        .fold(0.0, f64::max);
    (rate, late_ms)
}

/// One event as a client sends it, on its own, and when it was sent and accepted.
struct Posted {
    /// Wall time just before the request.
    sent: Timestamp,
    /// Wall time of the `200` answer (the event is durable).
    accepted: Timestamp,
    ack_ms: f64,
}

/// Sends one `track` event through POST /v1/batch, as a client sending events one at a time.
fn post_event(
    h: &Harness,
    user: &str,
    event: &str,
    properties: Value,
) -> impl Future<Output = anyhow::Result<Posted>> + Send + use<> {
    let body = json!({ "batch": [{
        "type": "track",
        "userId": user,
        "event": event,
        "messageId": format!("{user}-{}", event.to_ascii_lowercase().replace(' ', "-")),
        "properties": properties,
    }] })
    .to_string();
    post_one(h, "/v1/batch", body)
}

/// Sends a request carrying one event to the tracking API at `path` and checks that the event
/// was accepted. The future owns what it needs, so that it can be a task of its own.
fn post_one(
    h: &Harness,
    path: &str,
    body: String,
) -> impl Future<Output = anyhow::Result<Posted>> + Send + use<> {
    let (http, url, key) = (h.http.clone(), h.url(path), h.secrets.write_key.clone());
    let what = format!("POST {path}");
    async move {
        let sent = Timestamp::now();
        let started = Instant::now();
        let resp = http
            .post(&url)
            .basic_auth(&key, Some(""))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .context(what.clone())?;
        let answer = json_of(resp, &what).await?;
        let ack_ms = started.elapsed().as_secs_f64() * 1e3;
        let accepted = Timestamp::now();
        ensure!(
            answer["accepted"] == json!(1),
            "event not accepted: {answer}"
        );
        Ok(Posted {
            sent,
            accepted,
            ack_ms,
        })
    }
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier).
fn ms_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64() * 1e3
}

/// The median, 99th percentile and maximum of a sample.
struct Spread {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Spread {
    fn of(values: Vec<f64>) -> Self {
        let values = sorted(values);
        Spread {
            p50: percentile(&values, 50.0),
            p99: percentile(&values, 99.0),
            max: values.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// Requests per second at the receiver, from the first arrival to the last.
fn arrival_rate(arrivals: &[Arrival]) -> f64 {
    let first = arrivals.iter().map(|a| a.at).min();
    let last = arrivals.iter().map(|a| a.at).max();
    match (first, last) {
        (Some(first), Some(last)) if last > first => {
            (arrivals.len() - 1) as f64 * 1e3 / ms_between(first, last)
        }
        _ => f64::NAN,
    }
}

/// Sets the process's peak resident set size (VmHWM) back to its current size, so that the
/// next reading covers one figure (Linux; false where that is not possible).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident set size (VmHWM) in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// What `peak_rss_mib` covers, for the figures' parameters.
fn peak_rss_scope(reset: bool) -> &'static str {
    if reset {
        "VmHWM of the whole bench process (server, engine, bench client and receiver), reset at the start of the figure"
    } else {
        "VmHWM of the whole bench process (server, engine, bench client and receiver) since it started"
    }
}

/// A send or cart figure's server: the engine delivers webhooks to a receiver of its own, and
/// the peak memory is counted from the start.
struct WebhookBench {
    figure: Figure,
    h: Harness,
    receiver: Receiver,
    peak_rss_reset: bool,
}

impl WebhookBench {
    /// Starts the receiver and the server, and publishes `journey(receiver_url)`.
    async fn start(
        figure: Figure,
        data: &FigureData,
        journey: impl FnOnce(&str) -> Value,
    ) -> anyhow::Result<Self> {
        let peak_rss_reset = reset_peak_rss();
        let receiver = Receiver::start().await?;
        let h = Harness::start_with(data, Clock::System, Delivery::webhooks()).await?;
        h.publish(&journey(&receiver.url)).await?;
        Ok(WebhookBench {
            figure,
            h,
            receiver,
            peak_rss_reset,
        })
    }

    /// Waits (at most `limit`) until the engine has nothing left to do, then checks that every
    /// webhook was sent and that the receiver got what `expected` says per user (`what` names
    /// them in a failure), and returns the arrivals.
    async fn delivered(
        &self,
        limit: Duration,
        expected: &HashMap<String, usize>,
        what: &str,
    ) -> anyhow::Result<Vec<Arrival>> {
        self.settle(limit).await?;
        self.check_sent(expected.values().sum()).await?;
        let arrivals = self.receiver.take();
        check_arrivals(&arrivals, expected, what)?;
        Ok(arrivals)
    }

    /// Waits until no event is pending, no enrollment active (every wait ended) and no message
    /// queued (every webhook answered). Fails after `limit`, with what is left.
    async fn settle(&self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let store = self.h.store.clone();
        let mut settled = watch(started, Duration::from_millis(50), move || {
            let g = store.gauges()?;
            Ok(g.events_pending == 0 && g.enrollments_active == 0 && g.messages_queued == 0)
        });
        let (store, arrivals, figure) = (
            self.h.store.clone(),
            self.receiver.arrivals.clone(),
            self.figure,
        );
        let reporter = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let s = store.clone();
                if let Ok(g) = blocking(move || Ok(s.gauges()?)).await {
                    let arrived = arrivals.lock().expect("arrivals lock").len();
                    progress(
                        figure,
                        format!(
                            "{arrived} webhooks received, {} enrollments active, {} messages queued after {:.0}s",
                            g.enrollments_active,
                            g.messages_queued,
                            started.elapsed().as_secs_f64()
                        ),
                    );
                }
            }
        });
        let outcome = tokio::time::timeout(limit, &mut settled).await;
        reporter.abort();
        if let Ok(done) = outcome {
            done??;
            return Ok(());
        }
        settled.abort();
        let store = self.h.store.clone();
        let gauges = blocking(move || Ok(store.gauges()?)).await?;
        let inspect = self.h.inspect.clone();
        let by_status = blocking(move || inspect.message_counts()).await?;
        bail!(
            "not everything was delivered within {}s: {} webhooks received; {gauges:?}; messages by status {by_status:?}",
            limit.as_secs(),
            self.receiver.count()
        )
    }

    /// Checks that there are exactly `expected` messages, all sent (a failed webhook is
    /// reported with its reason).
    async fn check_sent(&self, expected: usize) -> anyhow::Result<()> {
        let inspect = self.h.inspect.clone();
        let by_status = blocking(move || inspect.message_counts()).await?;
        let sent = by_status.get("sent").copied().unwrap_or(0);
        if sent == expected as i64 && by_status.values().sum::<i64>() == expected as i64 {
            return Ok(());
        }
        let store = self.h.store.clone();
        let failed = blocking(move || {
            Ok(store.messages(&MessageQuery {
                status: Some("failed".into()),
                limit: 1,
                ..Default::default()
            })?)
        })
        .await?;
        bail!(
            "expected {expected} sent messages, found {by_status:?}{}",
            failed
                .first()
                .map(|m| format!("; a failed one: {:?}", m.error))
                .unwrap_or_default()
        )
    }

    /// Emits `{name}_p50_ms` and `{name}_p99_ms` of `spread` with the figure's own `params`,
    /// plus, from the `offers` the figure is about and the `arrivals`: how true the offers were
    /// to their schedule, their acknowledgements, the maximum, the delivery rate at the receiver
    /// and the peak memory.
    fn emit<T>(
        &self,
        plan: &Plan,
        name: &str,
        spread: &Spread,
        offers: &[&Offered<(T, Posted)>],
        arrivals: &[Arrival],
        mut params: Value,
    ) {
        let ack = Spread::of(offers.iter().map(|o| o.result.1.ack_ms).collect());
        let (achieved_rate, late_ms) = achieved(offers);
        let shared = json!({
            "achieved_offer_rate": round(achieved_rate, 1),
            "offer_late_max_ms": round(late_ms, 2),
            "max_ms": round(spread.max, 2),
            "ack_p50_ms": round(ack.p50, 2),
            "ack_p99_ms": round(ack.p99, 2),
            "delivered_per_second": round(arrival_rate(arrivals), 1),
            "peak_rss_mib": peak_rss_mib().map(|m| round(m, 1)),
            "peak_rss": peak_rss_scope(self.peak_rss_reset),
            "clock": "system",
            "transport": "outbox; webhooks to a receiver in the bench process",
        });
        if let (Value::Object(params), Value::Object(shared)) = (&mut params, shared) {
            params.extend(shared);
        }
        for (p, value) in [(50, spread.p50), (99, spread.p99)] {
            emit(
                plan,
                &format!("{name}_p{p}_ms"),
                value,
                "ms",
                params.clone(),
            );
        }
    }

    async fn finish(self) -> anyhow::Result<()> {
        self.h.finish().await
    }
}

// ---------------------------------------------------------------------------------------------
// 4. immediate_send_latency

const SEND_JOURNEY: &str = "bench-send";

async fn immediate_send(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::ImmediateSend;
    let OpenLoopPlan { rate, seconds } = plan.send;
    let n = plan.send.offers();
    let bench = WebhookBench::start(figure, data, |receiver| {
        json!({
            "id": SEND_JOURNEY,
            "name": "Bench: tell the CRM about a sign-up",
            "entry": { "reentry": "once" },
            "nodes": [
                { "id": "signed-up", "type": "trigger", "event": "Signed Up" },
                { "id": "notify-crm", "type": "webhook", "url": receiver, "body": WEBHOOK_BODY },
            ],
            "edges": [ { "from": "signed-up", "to": "notify-crm" } ],
        })
    })
    .await?;

    // The trigger creates each contact: a sign-up is a new user.
    progress(
        figure,
        format!("{n} trigger events at {rate}/s for {seconds}s, one per request, open loop"),
    );
    let schedule = (0..n).map(|i| (offer_time(i, rate), i)).collect();
    let offered = open_loop(schedule, |i| {
        let user = format!("send-{i}");
        let posted = post_event(&bench.h, &user, "Signed Up", json!({ "plan": "pro" }));
        async move { Ok((user, posted.await?)) }
    })
    .await?;
    progress(figure, "all events accepted; waiting for the webhooks");
    let expected: HashMap<String, usize> =
        offered.iter().map(|o| (o.result.0.clone(), 1)).collect();
    let arrivals = bench
        .delivered(
            Duration::from_secs(300),
            &expected,
            "webhooks (one per event)",
        )
        .await?;

    let sent: HashMap<&str, Timestamp> = offered
        .iter()
        .map(|o| (o.result.0.as_str(), o.result.1.sent))
        .collect();
    let latency = Spread::of(
        arrivals
            .iter()
            .map(|a| ms_between(sent[a.user.as_str()], a.at))
            .collect(),
    );
    let params = json!({
        "events": n,
        "rate_per_second": rate,
        "seconds": seconds,
        "measured": "arrival at the webhook receiver minus the wall time just before the request (POST /v1/batch, one event)",
        "journey": "trigger > webhook",
    });
    let offers: Vec<_> = offered.iter().collect();
    bench.emit(
        plan,
        "immediate_send_latency",
        &latency,
        &offers,
        &arrivals,
        params,
    );
    bench.finish().await
}

// ---------------------------------------------------------------------------------------------
// 5. cart_reminder_lateness

const CART_JOURNEY: &str = "bench-cart";
/// How long the journey waits for the order before it reminds.
const CART_WAIT: Duration = Duration::from_secs(10);
/// When a buyer orders, after adding to the cart.
const ORDER_AFTER: Duration = Duration::from_secs(2);
/// How long the reminders may take beyond the last one's due time before the figure fails.
const REMINDER_SLACK: Duration = Duration::from_secs(300);

#[derive(Clone, Copy)]
enum CartOffer {
    Cart(usize),
    Order(usize),
}

/// Every even cart is bought.
fn buys(cart: usize) -> bool {
    cart.is_multiple_of(2)
}

fn cart_user(cart: usize) -> String {
    format!("cart-{cart}")
}

async fn cart(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::Cart;
    let OpenLoopPlan { rate, seconds } = plan.cart;
    let n = plan.cart.offers();
    let bench = WebhookBench::start(figure, data, |receiver| {
        json!({
            "id": CART_JOURNEY,
            "name": "Bench: abandoned cart",
            "entry": { "reentry": "once" },
            "nodes": [
                { "id": "added-to-cart", "type": "trigger", "event": "Added To Cart" },
                { "id": "wait-for-order", "type": "wait_for_event", "event": "Order Completed",
                  "timeout": format!("{}s", CART_WAIT.as_secs()) },
                { "id": "bought", "type": "exit" },
                { "id": "remind", "type": "webhook", "url": receiver, "body": WEBHOOK_BODY },
            ],
            "edges": [
                { "from": "added-to-cart", "to": "wait-for-order" },
                { "from": "wait-for-order", "to": "bought", "output": "event" },
                { "from": "wait-for-order", "to": "remind", "output": "timeout" },
            ],
        })
    })
    .await?;

    // Each cart is a new contact, created by its trigger event; every even one orders
    // `ORDER_AFTER` after its cart was offered, on the same open-loop schedule.
    let mut schedule: Vec<(Duration, CartOffer)> = Vec::with_capacity(n + n / 2 + 1);
    for i in 0..n {
        let at = offer_time(i, rate);
        schedule.push((at, CartOffer::Cart(i)));
        if buys(i) {
            schedule.push((at + ORDER_AFTER, CartOffer::Order(i)));
        }
    }
    schedule.sort_by_key(|(at, _)| *at);
    let buyers = (0..n).filter(|&i| buys(i)).count();
    progress(
        figure,
        format!(
            "{n} carts at {rate}/s for {seconds}s ({buyers} ordered {}s later), one event per request, open loop",
            ORDER_AFTER.as_secs()
        ),
    );
    let offered = open_loop(schedule, |offer| {
        let posted = match offer {
            CartOffer::Cart(i) => post_event(
                &bench.h,
                &cart_user(i),
                "Added To Cart",
                json!({ "cart_id": cart_user(i), "value": 42 }),
            ),
            CartOffer::Order(i) => post_event(
                &bench.h,
                &cart_user(i),
                "Order Completed",
                json!({ "cart_id": cart_user(i), "total": 42 }),
            ),
        };
        async move { Ok((offer, posted.await?)) }
    })
    .await?;
    let carts: Vec<(usize, &Offered<(CartOffer, Posted)>)> = offered
        .iter()
        .filter_map(|o| match o.result.0 {
            CartOffer::Cart(i) => Some((i, o)),
            CartOffer::Order(_) => None,
        })
        .collect();
    progress(
        figure,
        format!(
            "all events accepted; waiting for {} reminders (due {}s after their cart)",
            n - buyers,
            CART_WAIT.as_secs()
        ),
    );
    let expected: HashMap<String, usize> = (0..n)
        .map(|i| (cart_user(i), usize::from(!buys(i))))
        .collect();
    let arrivals = bench
        .delivered(
            CART_WAIT + REMINDER_SLACK,
            &expected,
            "reminders (one per cart without an order, none to a buyer)",
        )
        .await?;

    let due: HashMap<String, Timestamp> = carts
        .iter()
        .map(|(i, o)| Ok((cart_user(*i), o.result.1.accepted.checked_add(CART_WAIT)?)))
        .collect::<anyhow::Result<_>>()?;
    let lateness = Spread::of(
        arrivals
            .iter()
            .map(|a| ms_between(due[&a.user], a.at))
            .collect(),
    );
    let params = json!({
        "carts": n,
        "rate_per_second": rate,
        "seconds": seconds,
        "buyers": buyers,
        "reminders": arrivals.len(),
        "measured": "arrival of the reminder at the webhook receiver minus (the wall time of the cart's 200 answer + 10 s); ack: the cart requests' answer times",
        "journey": "trigger (Added To Cart) > wait_for_event (Order Completed, 10s) > timeout: webhook, event: exit",
    });
    // The acknowledgements and the offer rate are the carts'; the orders only end waits.
    let offers: Vec<_> = carts.iter().map(|(_, o)| *o).collect();
    bench.emit(
        plan,
        "cart_reminder_lateness",
        &lateness,
        &offers,
        &arrivals,
        params,
    );
    bench.finish().await
}

// ---------------------------------------------------------------------------------------------
// 6. waiting_enrollments_bytes_per_enrollment and fire_all_due_seconds

const TIMERS_JOURNEY: &str = "bench-reminder";
/// Contacts per intake append (each contributes an identify and a track event).
const SETUP_CHUNK: usize = 5_000;
const SETUP_IN_FLIGHT: usize = 4;

async fn timers(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::Timers;
    let n = plan.enrollments;
    let start = Timestamp::now();
    let h = Harness::start(data, Clock::simulated(start)).await?;
    h.publish(&json!({
        "id": TIMERS_JOURNEY,
        "name": "Bench: reminder after an hour",
        "entry": { "reentry": "once" },
        "nodes": [
            { "id": "signed-up", "type": "trigger", "event": "Signed Up" },
            { "id": "wait-1h", "type": "delay", "duration": "1h" },
            { "id": "reminder", "type": "send_email", "template": "bench-reminder" },
        ],
        "edges": [
            { "from": "signed-up", "to": "wait-1h" },
            { "from": "wait-1h", "to": "reminder" },
        ],
        "templates": [
            email_template("bench-reminder", "Did you get started, {{ contact.first_name | default: 'friend' }}?", "Here is how to get started."),
        ],
    }))
    .await?;

    // Setup: n contacts identify and sign up. Events are parsed as the API parses them and
    // handed to the intake in big chunks; the engine processes them as they commit.
    progress(
        figure,
        format!("setup: {n} contacts sign up ({} events)", 2 * n),
    );
    let setup_started = Instant::now();
    let mut appends = tokio::task::JoinSet::new();
    let mut appended = 0usize;
    let mut reported = 0usize;
    for chunk_start in (0..n).step_by(SETUP_CHUNK) {
        let chunk_end = (chunk_start + SETUP_CHUNK).min(n);
        let now = h.clock.now();
        let events = blocking(move || setup_events(chunk_start..chunk_end, now)).await?;
        while appends.len() >= SETUP_IN_FLIGHT {
            appended += appends.join_next().await.context("append task")???;
        }
        let intake = h.engine.intake().clone();
        appends.spawn(async move {
            let total = events.len();
            let fresh = intake.append(events).await?;
            let new = fresh.iter().filter(|f| **f).count();
            ensure!(new == total, "{new} of {total} events were new");
            Ok::<_, anyhow::Error>(total)
        });
        if appended >= reported + 200_000 {
            reported = appended;
            progress(
                figure,
                format!(
                    "setup: {appended} events accepted after {:.0}s",
                    setup_started.elapsed().as_secs_f64()
                ),
            );
        }
    }
    while let Some(done) = appends.join_next().await {
        appended += done??;
    }
    ensure!(appended == 2 * n, "{appended} of {} events accepted", 2 * n);
    progress(
        figure,
        format!(
            "setup: all {appended} events accepted after {:.0}s; processing",
            setup_started.elapsed().as_secs_f64()
        ),
    );
    let store = h.store.clone();
    let reporter = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(15)).await;
            let s = store.clone();
            if let Ok(pending) = blocking(move || Ok(s.pending_event_count()?)).await {
                progress(figure, format!("setup: {pending} events still to process"));
            }
        }
    });
    let settled = h.run_until_idle().await;
    reporter.abort();
    settled?;
    let setup_seconds = setup_started.elapsed().as_secs_f64();

    let store = h.store.clone();
    let gauges = blocking(move || Ok(store.gauges()?)).await?;
    ensure!(
        gauges.timers_waiting == n as i64
            && gauges.enrollments_active == n as i64
            && gauges.events_pending == 0,
        "expected {n} enrollments waiting on a timer, found {gauges:?}"
    );
    let stats_started = Instant::now();
    let stats = h.stats(TIMERS_JOURNEY).await?;
    let stats_ms = stats_started.elapsed().as_secs_f64() * 1e3;
    ensure!(
        node_counter(&stats, "wait-1h", "waiting") == n as i64,
        "expected {n} enrollments waiting at wait-1h: {stats}"
    );
    let store = h.store.clone();
    let wake_started = Instant::now();
    let next_wake = blocking(move || Ok(store.next_wake_at()?)).await?;
    let next_wake_ms = wake_started.elapsed().as_secs_f64() * 1e3;
    ensure!(next_wake.is_some(), "no timer is waiting after the setup");

    // Disk in the steady state (on SQLite, the WAL checkpointed into the database file first).
    let inspect = h.inspect.clone();
    let tables = blocking(move || inspect.table_sizes()).await?;
    let store = h.store.clone();
    let total_bytes = blocking(move || Ok(store.disk_bytes()?)).await?;
    let enrollment_bytes: u64 = tables
        .iter()
        .filter(|(name, _)| name.starts_with("enrollments"))
        .map(|(_, b)| b)
        .sum();
    emit(
        plan,
        "waiting_enrollments_bytes_per_enrollment",
        total_bytes as f64 / n as f64,
        "bytes",
        json!({
            "enrollments": n,
            "total_bytes": total_bytes,
            "total_mb": round(total_bytes as f64 / 1e6, 1),
            "enrollments_table_and_index_bytes": enrollment_bytes,
            "bytes_by_table": tables,
            "measured": h.inspect.size_measured(),
            "setup_seconds": round(setup_seconds, 1),
            "stats_request_ms": round(stats_ms, 1),
            "next_wake_at_query_ms": round(next_wake_ms, 2),
            "target_total_mb": 200,
        }),
    );

    // Fire: one simulated hour later every timer is due at once.
    progress(figure, format!("advancing 1 hour: {n} timers due (timed)"));
    let started = Instant::now();
    let inspect = h.inspect.clone();
    let fired = watch(started, Duration::from_millis(50), move || {
        // Every timer fired and its message written to the outbox.
        inspect.no_timer_left()
    });
    let store = h.store.clone();
    let reporter = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let s = store.clone();
            if let Ok(g) = blocking(move || Ok(s.gauges()?)).await {
                progress(
                    figure,
                    format!(
                        "fire: {} timers waiting, {} messages queued after {:.0}s",
                        g.timers_waiting,
                        g.messages_queued,
                        started.elapsed().as_secs_f64()
                    ),
                );
            }
        }
    });
    let advanced = h.engine.advance(3_600).await;
    let seconds = started.elapsed().as_secs_f64();
    reporter.abort();
    advanced?;
    let fired_seconds = tokio::time::timeout(Duration::from_secs(10), fired)
        .await
        .context("timers still waiting after the advance")???;

    let inspect = h.inspect.clone();
    let by_status = blocking(move || inspect.message_counts()).await?;
    let sent = by_status.get("sent").copied().unwrap_or(0);
    ensure!(
        sent == n as i64 && by_status.values().sum::<i64>() == n as i64,
        "expected {n} sent messages, found {by_status:?}"
    );
    let stats = h.stats(TIMERS_JOURNEY).await?;
    ensure!(
        node_counter(&stats, "reminder", "sent") == n as i64 && stats["completed"] == json!(n),
        "expected {n} completed enrollments and sent reminders: {stats}"
    );
    emit(
        plan,
        "fire_all_due_seconds",
        seconds,
        "s",
        json!({
            "enrollments": n,
            "messages_sent": sent,
            "timers_fired_seconds": round(fired_seconds, 3),
            "timers_per_second": round(n as f64 / fired_seconds, 1),
            "delivered_per_second": round(n as f64 / seconds, 1),
            "measured": "engine.advance(3600) on a simulated clock: fire every timer, render and write each message, deliver it (outbox)",
            "setup_seconds": round(setup_seconds, 1),
        }),
    );
    h.finish().await
}

/// Identify (with an email address) and `Signed Up` for each contact, parsed at the edge as
/// the tracking API parses them.
fn setup_events(range: std::ops::Range<usize>, now: Timestamp) -> anyhow::Result<Vec<NewEvent>> {
    let mut events = Vec::with_capacity(2 * range.len());
    let timestamp = now.to_string();
    for i in range.clone() {
        events.push(parse(&identify_json("timers", i), now)?);
    }
    for i in range {
        events.push(parse(
            &track_json("timers", i, "Signed Up", &timestamp),
            now,
        )?);
    }
    Ok(events)
}

fn parse(text: &str, now: Timestamp) -> anyhow::Result<NewEvent> {
    let value: Value = serde_json::from_str(text)?;
    api::ingest::parse_call(&value, None, "", now)
        .map_err(|e| anyhow::anyhow!("invalid bench event ({}: {}): {text}", e.field, e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(user: &str, key: &str) -> Arrival {
        Arrival {
            at: Timestamp::UNIX_EPOCH,
            idempotency_key: key.into(),
            user: user.into(),
            kind: String::new(),
        }
    }

    /// Carts 0 (bought) and 1 (not bought), as the cart figure expects them.
    fn expected_reminders() -> HashMap<String, usize> {
        HashMap::from([("cart-0".into(), 0), ("cart-1".into(), 1)])
    }

    #[test]
    fn one_reminder_per_cart_without_an_order_passes() {
        check_arrivals(
            &[arrival("cart-1", "e1:remind:1")],
            &expected_reminders(),
            "x",
        )
        .unwrap();
    }

    #[test]
    fn a_reminder_to_a_buyer_or_a_stranger_fails() {
        let buyer = [arrival("cart-1", "a"), arrival("cart-0", "b")];
        let e = check_arrivals(&buyer, &expected_reminders(), "reminders").unwrap_err();
        assert!(e.to_string().contains("`cart-0` got 1 (expected 0)"), "{e}");
        let stranger = [arrival("cart-1", "a"), arrival("someone", "b")];
        let e = check_arrivals(&stranger, &expected_reminders(), "reminders").unwrap_err();
        assert!(
            e.to_string().contains("`someone` got 1 (expected 0)"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_or_repeated_reminder_fails() {
        let e = check_arrivals(&[], &expected_reminders(), "reminders").unwrap_err();
        assert!(e.to_string().contains("`cart-1` got 0 (expected 1)"), "{e}");
        let twice = [arrival("cart-1", "a"), arrival("cart-1", "b")];
        let e = check_arrivals(&twice, &expected_reminders(), "reminders").unwrap_err();
        assert!(e.to_string().contains("`cart-1` got 2 (expected 1)"), "{e}");
    }

    #[test]
    fn a_repeated_or_missing_idempotency_key_fails() {
        let expected = HashMap::from([("a".into(), 1), ("b".into(), 1)]);
        let repeated = [arrival("a", "k"), arrival("b", "k")];
        assert!(check_arrivals(&repeated, &expected, "x").is_err());
        let missing = [arrival("a", "k"), arrival("b", "")];
        assert!(check_arrivals(&missing, &expected, "x").is_err());
    }

    #[test]
    fn a_webhook_body_of_a_kind_adds_the_kind_to_the_body() {
        assert_eq!(
            webhook_body_of_kind("thanks"),
            r#"{"user": {{ contact.user_id | json }}, "journey": {{ journey.id | json }}, "kind": "thanks"}"#
        );
    }

    #[test]
    fn spread_is_nearest_rank() {
        let s = Spread::of((1..=200).rev().map(f64::from).collect());
        assert_eq!((s.p50, s.p99, s.max), (100.0, 198.0, 200.0));
        assert!(Spread::of(Vec::new()).max.is_nan());
    }

    #[test]
    fn achieved_rate_counts_intervals_between_offers() {
        let start = Instant::now();
        let offers: Vec<Offered<()>> = (0..5)
            .map(|i| Offered {
                began: start + Duration::from_millis(250 * i),
                late_by: Duration::from_millis(i),
                result: (),
            })
            .collect();
        let (rate, late_ms) = achieved(&offers.iter().collect::<Vec<_>>());
        assert!((rate - 4.0).abs() < 1e-9, "{rate}");
        assert_eq!(late_ms, 4.0);
    }

    #[test]
    fn an_open_loop_plan_offers_rate_times_seconds() {
        let plan = OpenLoopPlan {
            rate: 200.0,
            seconds: 5.0,
        };
        assert_eq!(plan.offers(), 1000);
        assert_eq!(offer_time(100, plan.rate), Duration::from_millis(500));
        assert!(
            OpenLoopPlan {
                rate: 0.0,
                seconds: 1.0
            }
            .check("cart")
            .is_err()
        );
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_mib().is_some_and(|m| m > 0.0));
        }
    }
}
