//! `waymark serve`: opens the store, starts the engine and serves the API until SIGTERM or
//! Ctrl-C, then drains in-flight requests and stops the engine after its current batch.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use waymark_core::journey::{OutsideHours, QuietHours};
use waymark_core::timing::SendWindow;
use waymark_engine::caps::FrequencyCap;
use waymark_engine::machine_activity::MachineDetector;
use waymark_engine::{
    Clock, Concurrency, DkimSettings, EmailTransport, Engine, EngineConfig, SendRates,
    SmsTransport, Transports, TwilioSms,
};
use waymark_store::Store;
use waymark_store::postgres::PgStore;
use waymark_store::postgres::cluster::ClusterOptions;
use waymark_store::sqlite::SqliteStore;

use crate::api::public_limits::{PublicLimits, PublicLimitsConfig, Rate};
use crate::api::{self, AppState, PublicPages};
use crate::connections::ConnectionLimits;
use crate::secrets::{self, SecretArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClockKind {
    /// The machine's clock.
    System,
    /// A clock that only moves through `POST /v1/clock/advance` (for tests and simulations).
    Simulated,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file of settings, keyed by these flags' long names (`smtp-url = "…"`); flags and
    /// WAYMARK_* environment variables take precedence over it.
    #[arg(long, env = "WAYMARK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the database and generated secrets.
    #[arg(long, env = "WAYMARK_DATA", default_value = "./waymark-data")]
    pub data: PathBuf,
    /// Keep everything in this PostgreSQL database (`postgres://user:password@host:port/name`)
    /// instead of the SQLite file in --data. Generated secrets stay in --data.
    #[arg(
        long,
        env = "WAYMARK_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// With --database: how long the engine's work on a partition of contacts waits for a
    /// process that stopped (killed, cut off) before another process takes it over. Processes
    /// heartbeat five times per lease time.
    #[arg(long, env = "WAYMARK_LEASE_TIME", value_name = "DURATION", default_value = "10s", value_parser = parse_lease_time)]
    pub lease_time: std::time::Duration,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "WAYMARK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Which clock the engine reads.
    #[arg(long, env = "WAYMARK_CLOCK", value_enum, default_value_t = ClockKind::System)]
    pub clock: ClockKind,
    /// Let the webhook action call this host (`HOST` or `HOST:PORT`) even when it resolves to a
    /// loopback, private or link-local address. Repeatable; the variable is comma-separated.
    #[arg(
        long = "webhook-allow-host",
        value_name = "HOST[:PORT]",
        env = "WAYMARK_WEBHOOK_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub webhook_allow_hosts: Vec<String>,
    /// Send email through this SMTP server: smtps://user:pass@host:465 (TLS),
    /// smtp://user:pass@host:587 (STARTTLS, required with a password), smtp://host:25
    /// (STARTTLS when offered). Without it, email goes to the built-in outbox.
    #[arg(long, env = "WAYMARK_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of emails.
    #[arg(
        long,
        env = "WAYMARK_EMAIL_FROM",
        default_value = "Waymark <waymark@localhost>"
    )]
    pub email_from: String,
    /// Send SMS through this provider URL. With --sms-provider twilio, a Twilio-compatible
    /// API (https://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com); with json, the endpoint to POST
    /// each SMS to as JSON (https://:TOKEN@sms.example.com/v1/messages, the password sent as
    /// `Authorization: Bearer TOKEN`). Without it, SMS go to the built-in outbox.
    #[arg(long, env = "WAYMARK_SMS_URL", hide_env_values = true)]
    pub sms_url: Option<String>,
    /// The API behind --sms-url.
    #[arg(long, env = "WAYMARK_SMS_PROVIDER", value_enum, default_value_t = SmsProvider::Twilio)]
    pub sms_provider: SmsProvider,
    /// Sender number of SMS (E.164).
    #[arg(long, env = "WAYMARK_SMS_FROM", default_value = "")]
    pub sms_from: String,
    /// Sign outgoing email with DKIM for this domain (the `d=` tag); needs --dkim-selector and
    /// --dkim-key.
    #[arg(long, env = "WAYMARK_DKIM_DOMAIN", requires_all = ["dkim_selector", "dkim_key"])]
    pub dkim_domain: Option<String>,
    /// DKIM selector (the `s=` tag): the public key is published at SELECTOR._domainkey.DOMAIN.
    #[arg(long, env = "WAYMARK_DKIM_SELECTOR", requires = "dkim_domain")]
    pub dkim_selector: Option<String>,
    /// PEM file with the RSA private key for DKIM (PKCS#1, `BEGIN RSA PRIVATE KEY`).
    #[arg(long, env = "WAYMARK_DKIM_KEY", requires = "dkim_domain")]
    pub dkim_key: Option<PathBuf>,
    /// The base URL at which recipients reach this server (e.g. https://mail.example.com).
    /// When set, email links are rewritten to click-tracking redirects under {URL}/t/c/ and an
    /// open pixel ({URL}/t/o/) is added; tokens are signed with `WAYMARK_TRACKING_SECRET`
    /// (else `tracking_secret` in secrets.json, generated there).
    #[arg(long, env = "WAYMARK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Emails delivered at once, which is also the size of the SMTP connection pool.
    #[arg(long, env = "WAYMARK_EMAIL_CONCURRENCY", value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub email_concurrency: u32,
    /// SMS delivered at once (requests in flight to the SMS provider).
    #[arg(long, env = "WAYMARK_SMS_CONCURRENCY", value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub sms_concurrency: u32,
    /// Webhook calls in flight at once, to all receivers together.
    #[arg(long, env = "WAYMARK_WEBHOOK_CONCURRENCY", value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub webhook_concurrency: u32,
    /// Webhook calls in flight at once to one receiving host (`host:port`), so that a slow
    /// receiver leaves room for the others.
    #[arg(long, env = "WAYMARK_WEBHOOK_HOST_CONCURRENCY", value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub webhook_host_concurrency: u32,
    /// Requests a minute (or per any window) that one client address may make to the pages
    /// anyone can reach without a key: the subscribe form, /confirm/… and /u/…
    #[arg(
        long,
        env = "WAYMARK_PUBLIC_RATE",
        value_name = "COUNT/WINDOW",
        default_value = "30/1m"
    )]
    pub public_rate: Rate,
    /// Requests that one client address may make to the open and click tracking links (mail
    /// clients' image proxies fetch many people's opens from few addresses).
    #[arg(
        long,
        env = "WAYMARK_TRACKING_RATE",
        value_name = "COUNT/WINDOW",
        default_value = "6000/1m"
    )]
    pub tracking_rate: Rate,
    /// Double opt-in confirmation emails that may go to one address.
    #[arg(
        long,
        env = "WAYMARK_CONFIRMATION_RATE",
        value_name = "COUNT/WINDOW",
        default_value = "3/1h"
    )]
    pub confirmation_rate: Rate,
    /// Behind a reverse proxy: the header that carries the client's address (e.g.
    /// X-Forwarded-For, whose right-most entry is used, or X-Real-IP). Only set it when every
    /// request comes through that proxy, or clients can pick their own address.
    #[arg(long, env = "WAYMARK_CLIENT_IP_HEADER", value_name = "HEADER")]
    pub client_ip_header: Option<String>,
    /// A host that the subscribe form's `redirect` may lead to, besides the --public-url host.
    /// Repeatable; the variable is comma-separated.
    #[arg(
        long = "subscribe-redirect-host",
        value_name = "HOST",
        env = "WAYMARK_SUBSCRIBE_REDIRECT_HOSTS",
        value_delimiter = ','
    )]
    pub subscribe_redirect_hosts: Vec<String>,
    /// Address ranges (CIDR) whose open-pixel fetches and link clicks are machines', not
    /// people's (privacy proxies, link scanners): reports count them apart. Repeatable; the
    /// variable is comma-separated. Known proxy and scanner user agents, and hits within a
    /// second of the send, count as machines' too.
    #[arg(
        long = "machine-ip-range",
        value_name = "CIDR",
        env = "WAYMARK_MACHINE_IP_RANGES",
        value_delimiter = ',',
        default_value = "17.0.0.0/8"
    )]
    pub machine_ip_ranges: Vec<String>,
    /// How long a message whose delivery fails temporarily (connection refused, timeout, SMTP
    /// 4xx, HTTP 408/429/5xx) is retried, from its first attempt: `3d`, `12h`, `90m`. Waits
    /// double from 30 s to at most 1 h (plus up to 20 % jitter); then the message is failed.
    #[arg(long, env = "WAYMARK_RETRY_LIFETIME", value_name = "DURATION", default_value = "3d", value_parser = parse_retry_lifetime)]
    pub retry_lifetime: jiff::SignedDuration,
    /// Close a connection that has not sent a request's complete headers this long after it
    /// opened (or after the first byte of a later request), e.g. `10s`.
    #[arg(long, env = "WAYMARK_HEADER_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub header_timeout: std::time::Duration,
    /// Answer 408 to a request whose body has not fully arrived this long after its headers.
    #[arg(long, env = "WAYMARK_BODY_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub body_timeout: std::time::Duration,
    /// Close a keep-alive connection that has been waiting this long for its next request.
    #[arg(long, env = "WAYMARK_IDLE_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    pub idle_timeout: std::time::Duration,
    /// At most this many HTTP connections open at once; a connection beyond it is answered 503
    /// and closed. Lowered at start to fit the open-file limit.
    #[arg(long, env = "WAYMARK_MAX_CONNECTIONS", value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    #[command(flatten)]
    pub policy: SendingPolicy,
    #[command(flatten)]
    pub secrets: SecretArgs,
}

/// The rules of sending that hold across journeys: rates, frequency caps, quiet hours and
/// blocked dates. `waymark simulate` takes them too, so that it predicts what this
/// installation would do.
#[derive(Debug, Clone, Default, Args)]
pub struct SendingPolicy {
    /// Send at most N emails a second (a token bucket with a burst of one second's worth);
    /// the rest wait, queued. Default: unlimited.
    #[arg(long, env = "WAYMARK_EMAIL_RATE", value_name = "N", value_parser = parse_rate)]
    pub email_rate: Option<f64>,
    /// Send at most N SMS a second; the rest wait, queued. Default: unlimited.
    #[arg(long, env = "WAYMARK_SMS_RATE", value_name = "N", value_parser = parse_rate)]
    pub sms_rate: Option<f64>,
    /// At most COUNT marketing messages per contact on a channel within a rolling window,
    /// across all journeys, e.g. `email=3/7d` (repeat the flag, or separate with commas, for
    /// several caps). A message over a cap is recorded `suppressed`. Transactional templates
    /// are never capped.
    #[arg(
        long,
        env = "WAYMARK_FREQUENCY_CAP",
        value_name = "CHANNEL=COUNT/WINDOW",
        value_delimiter = ','
    )]
    pub frequency_cap: Vec<FrequencyCap>,
    /// Local hours in which no journey sends email or SMS, e.g. `21:00-08:00` (in each
    /// contact's time zone, else the journey's, else UTC). Sends wait for the end, unless the
    /// journey says `outside_hours: skip`. A journey's own `quiet_hours` replace these.
    #[arg(long, env = "WAYMARK_QUIET_HOURS", value_name = "HH:MM-HH:MM", value_parser = parse_quiet_hours)]
    pub quiet_hours: Option<QuietHours>,
    /// Local dates on which no journey sends: `YYYY-MM-DD`, or `MM-DD` for every year,
    /// comma-separated (e.g. `12-25,01-01`).
    #[arg(
        long,
        env = "WAYMARK_BLOCKED_DATES",
        value_name = "DATES",
        value_delimiter = ','
    )]
    pub blocked_dates: Vec<String>,
}

impl SendingPolicy {
    /// The installation's quiet hours and blocked dates, checked.
    pub fn send_window(&self) -> anyhow::Result<SendWindow> {
        SendWindow::from_settings(
            self.quiet_hours.as_ref(),
            &self.blocked_dates,
            OutsideHours::Defer,
        )
        .map_err(|(field, message)| {
            let flag = if field.starts_with("blocked") {
                "--blocked-dates"
            } else {
                "--quiet-hours"
            };
            anyhow::anyhow!("{flag}: {message}")
        })
    }

    pub fn send_rates(&self) -> SendRates {
        SendRates {
            email: self.email_rate,
            sms: self.sms_rate,
        }
    }
}

/// A retry lifetime: a duration such as `3d` or `12h`, at most 30 days.
fn parse_retry_lifetime(raw: &str) -> Result<jiff::SignedDuration, String> {
    let d = waymark_core::Duration::parse(raw)?;
    if d.seconds() > 30 * 86_400 {
        return Err(format!(
            "`{raw}` is longer than 30 days; a message that old is better failed and requeued"
        ));
    }
    Ok(jiff::SignedDuration::from_secs(d.seconds()))
}

/// A timeout such as `10s`, `500ms` or `2m`: positive, at most a day.
fn parse_timeout(raw: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("`{raw}` is not a duration such as `10s`, `500ms` or `2m`");
    let signed: jiff::SignedDuration = raw.trim().parse().map_err(|_| bad())?;
    let duration = std::time::Duration::try_from(signed).map_err(|_| bad())?;
    if duration.is_zero() || duration > std::time::Duration::from_secs(86_400) {
        return Err(format!("`{raw}` must be more than 0 and at most a day"));
    }
    Ok(duration)
}

/// A lease time: from 1 s (heartbeats every 200 ms) to 10 minutes.
fn parse_lease_time(raw: &str) -> Result<std::time::Duration, String> {
    let lease = parse_timeout(raw)?;
    if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(600)).contains(&lease) {
        return Err(format!("`{raw}` must be from 1s to 10m"));
    }
    Ok(lease)
}

/// `21:00-08:00`.
fn parse_quiet_hours(raw: &str) -> Result<QuietHours, String> {
    let (start, end) = raw
        .split_once('-')
        .ok_or_else(|| format!("`{raw}` is not a range of local times such as `21:00-08:00`"))?;
    let hours = QuietHours {
        start: start.trim().to_string(),
        end: end.trim().to_string(),
    };
    SendWindow::from_settings(Some(&hours), &[], OutsideHours::Defer)
        .map_err(|(_, message)| message)?;
    Ok(hours)
}

/// A send rate: a positive number of messages per second (fractions allowed, e.g. 0.5).
fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "`{raw}` is not a send rate (a positive number of messages per second)"
        )),
    }
}

/// Holds the data directory for as long as the process runs (the lock goes with the process,
/// however it ends): two processes on one data directory would both run the engine on its
/// SQLite file, and on PostgreSQL the data directory names the process's node (see
/// `ClusterOptions::node`).
fn lock_data_dir(data: &Path) -> anyhow::Result<std::fs::File> {
    let path = data.join("serve.lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `waymark serve` is running on the data directory {} (one process per data \
             directory; processes sharing a PostgreSQL database each need their own --data)",
            data.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The store: PostgreSQL at `database` when given, else the SQLite file in `data`.
pub enum OpenedStore {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl OpenedStore {
    pub fn open(data: &Path, database: Option<&str>) -> anyhow::Result<Self> {
        Ok(match database {
            Some(url) => {
                OpenedStore::Postgres(Arc::new(PgStore::open(url).with_context(|| {
                    format!(
                        "cannot open the PostgreSQL database {}",
                        waymark_store::postgres::redact(url)
                    )
                })?))
            }
            None => OpenedStore::Sqlite(Arc::new(
                SqliteStore::open(data).context("cannot open the database")?,
            )),
        })
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            OpenedStore::Sqlite(s) => s.clone(),
            OpenedStore::Postgres(s) => s.clone(),
        }
    }
}

/// A random id kept in the database, so that Message-IDs differ between installations.
fn installation_id(store: &dyn Store) -> anyhow::Result<String> {
    if let Some(id) = store.meta("installation_id")? {
        return Ok(id);
    }
    let id = api::ingest::random_hex(8);
    store.set_meta("installation_id", &id)?;
    Ok(id)
}

fn dkim(args: &ServeArgs) -> anyhow::Result<Option<DkimSettings>> {
    let (Some(domain), Some(selector), Some(key)) =
        (&args.dkim_domain, &args.dkim_selector, &args.dkim_key)
    else {
        return Ok(None);
    };
    let private_key_pem = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read the DKIM key {}", key.display()))?;
    Ok(Some(DkimSettings {
        domain: domain.clone(),
        selector: selector.clone(),
        private_key_pem,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmsProvider {
    /// Twilio's Messages API (or a compatible one): form POST, basic auth SID:TOKEN.
    Twilio,
    /// A generic JSON HTTP API: `POST {url}` with {"to", "from", "body", "idempotency_key",
    /// "message_id"}, an `Idempotency-Key` header and a bearer token.
    Json,
}

/// How long a shutdown waits for the deliveries in flight (a webhook times out after 10 s
/// unless its node says otherwise); one still in flight then is offered again after a restart.
const SHUTDOWN_DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

fn concurrency(args: &ServeArgs) -> Concurrency {
    Concurrency {
        email: args.email_concurrency as usize,
        sms: args.sms_concurrency as usize,
        webhook: args.webhook_concurrency as usize,
        webhook_per_host: args.webhook_host_concurrency as usize,
    }
}

fn transports(args: &ServeArgs, installation: &str) -> anyhow::Result<Transports> {
    let email = match &args.smtp_url {
        Some(url) => EmailTransport::smtp(
            url,
            &args.email_from,
            installation,
            dkim(args)?.as_ref(),
            args.email_concurrency as usize,
        )
        .map_err(anyhow::Error::msg)?,
        None => EmailTransport::Outbox,
    };
    let sms = match &args.sms_url {
        Some(url) => match args.sms_provider {
            SmsProvider::Twilio => SmsTransport::Twilio(
                TwilioSms::new(url, &args.sms_from).map_err(anyhow::Error::msg)?,
            ),
            SmsProvider::Json => SmsTransport::Json(
                waymark_engine::JsonSms::new(url, &args.sms_from).map_err(anyhow::Error::msg)?,
            ),
        },
        None => SmsTransport::Outbox,
    };
    Ok(Transports {
        email,
        sms,
        webhooks: waymark_engine::WebhookTransport::Http(webhooks(args)?),
    })
}

pub async fn run(mut args: ServeArgs) -> anyhow::Result<()> {
    args.smtp_url = secrets::given(
        "smtp-url",
        args.smtp_url.as_deref(),
        args.secrets.smtp_url_file.as_deref(),
    )?;
    args.sms_url = secrets::given(
        "sms-url",
        args.sms_url.as_deref(),
        args.secrets.sms_url_file.as_deref(),
    )?;
    if args.sms_url.is_some() && args.sms_from.is_empty() {
        bail!("--sms-url needs --sms-from (the sender number)");
    }
    secrets::make_data_dir_private(&args.data)?;
    let _data_dir = lock_data_dir(&args.data)?;
    let secrets = secrets::load(&args.data, &args.secrets)?;
    let open_files = crate::connections::raise_open_file_limit();
    let limits = ConnectionLimits {
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: crate::connections::fit_to_open_files(
            args.max_connections as usize,
            open_files,
        ),
    };
    let opened = OpenedStore::open(&args.data, args.database.as_deref())?;
    // On PostgreSQL, this process shares the engine's work with the others on the database.
    if let OpenedStore::Postgres(pg) = &opened {
        let data = args
            .data
            .canonicalize()
            .unwrap_or_else(|_| args.data.clone());
        pg.join_cluster(ClusterOptions {
            lease_time: args.lease_time,
            node: format!("{}:{}", waymark_store::this_host(), data.display()),
        })
        .context("cannot join the processes on the database")?;
    }
    let store = opened.store();
    let clock = match args.clock {
        ClockKind::System => Clock::System,
        ClockKind::Simulated => Clock::simulated(jiff::Timestamp::now()),
    };
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let transports = transports(&args, &installation_id(store.as_ref())?)?;
    let engine = Engine::start(
        store,
        EngineConfig {
            clock,
            transports,
            tracking: tracking(&args)?,
            send_rates: args.policy.send_rates(),
            frequency_caps: args.policy.frequency_cap.clone(),
            send_window: args.policy.send_window()?,
            retry_lifetime: args.retry_lifetime,
            concurrency: concurrency(&args),
        },
    )?;
    let state = AppState {
        engine: engine.clone(),
        secrets: Arc::new(secrets),
        metrics,
        public: Arc::new(public_pages(&args)?),
        policy: Arc::new(args.policy.clone()),
        simulation: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "waymark listening on http://{addr} (data in {}, {} clock)",
        match &args.database {
            Some(url) => waymark_store::postgres::redact(url),
            None => args.data.display().to_string(),
        },
        match args.clock {
            ClockKind::System => "system",
            ClockKind::Simulated => "simulated",
        }
    );
    tracing::info!(%addr, ?limits, open_files, "serving");
    crate::connections::serve(listener, api::router(state), limits, shutdown_signal()).await;
    tracing::info!("shutting down: finishing the deliveries in flight");
    if !engine.finish_deliveries(SHUTDOWN_DELIVERY_WAIT).await {
        tracing::warn!(
            "deliveries still in flight after {SHUTDOWN_DELIVERY_WAIT:?}; they will be offered again after a restart"
        );
    }
    tracing::info!("shutting down: stopping the engine after its current batch");
    let stopping = engine.clone();
    tokio::task::spawn_blocking(move || stopping.stop()).await?;
    if let OpenedStore::Postgres(pg) = opened {
        // The others take this process's partitions over at their next heartbeat.
        tokio::task::spawn_blocking(move || pg.leave_cluster()).await?;
    }
    println!("waymark stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The limits, the redirect hosts and the machine detection of the pages anyone can reach.
fn public_pages(args: &ServeArgs) -> anyhow::Result<PublicPages> {
    let mut redirect_hosts: Vec<String> = args
        .subscribe_redirect_hosts
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if let Some(host) = args
        .public_url
        .as_deref()
        .and_then(|u| reqwest::Url::parse(u.trim()).ok())
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    {
        redirect_hosts.push(host);
    }
    Ok(PublicPages {
        limits: PublicLimits::new(&PublicLimitsConfig {
            pages: args.public_rate,
            tracking: args.tracking_rate,
            confirmations: args.confirmation_rate,
            client_ip_header: args.client_ip_header.clone(),
        }),
        redirect_hosts,
        machines: MachineDetector::new(&args.machine_ip_ranges)
            .map_err(|e| anyhow::anyhow!("--machine-ip-range: {e}"))?,
    })
}

/// The webhook action: the signing secret (`--webhook-secret` or its file, else
/// `webhook_secret` in secrets.json, generated there on first use) and the allow-list.
fn webhooks(args: &ServeArgs) -> anyhow::Result<waymark_engine::Webhooks> {
    let secret = secrets::given_or_stored(
        &args.data,
        "webhook-secret",
        args.secrets.webhook_secret.as_ref(),
        args.secrets.webhook_secret_file.as_deref(),
        "webhook_secret",
        "wm_whsec_",
        32,
    )?;
    waymark_engine::Webhooks::new(waymark_engine::WebhookConfig {
        secret,
        allow_hosts: args.webhook_allow_hosts.clone(),
    })
    .map_err(anyhow::Error::msg)
}

/// Open and click tracking when `--public-url` is set: the signing secret comes from
/// `--tracking-secret` or its file, else `tracking_secret` in secrets.json (generated there).
fn tracking(args: &ServeArgs) -> anyhow::Result<Option<waymark_engine::Tracking>> {
    let Some(public_url) = args.public_url.as_deref().filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let secret = secrets::given_or_stored(
        &args.data,
        "tracking-secret",
        args.secrets.tracking_secret.as_ref(),
        args.secrets.tracking_secret_file.as_deref(),
        "tracking_secret",
        "wm_trsec_",
        32,
    )?;
    waymark_engine::Tracking::new(public_url, &secret)
        .map(Some)
        .map_err(anyhow::Error::msg)
}
