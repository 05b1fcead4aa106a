//! `waymark simulate`: runs a journey on a population for a period on a private simulated
//! clock, and predicts what it will do: the funnel per node, messages per channel and day,
//! suppressions and why, conversions and revenue, the busiest hour. The journey runs on the
//! real engine (a private server with a scratch store; nothing is sent and live data is never
//! changed); the population's behaviour (`scenario`) is drawn from a seed, so a run repeats
//! exactly. `docs/simulate.md` explains it for users.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use waymark_core::journey::{JourneyDocument, NodeKind};

use crate::serve::SendingPolicy;

mod chart;
mod driver;
mod inputs;
mod population;
mod private;
mod replay;
pub mod scenario;
mod tally;
mod target;

use driver::{Entry, People, Plan};
use scenario::{JourneyShape, Measured, Scenario, ScenarioFile};
use target::Target;

pub use inputs::{MEASURED_OVER, measured_from, ship_template, templates_to_ship};
use inputs::{load_journey, measured, read_scenario, ship_templates};
pub use population::member_copy;
use population::{copy_contacts, copy_csv, copy_members};

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("scenario: {0}")]
    Scenario(String),
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A journey file (YAML or JSON), as `waymark journeys apply` takes it. Or `--journey`.
    pub file: Option<PathBuf>,
    /// A journey of `--server` instead of a file: its live version, its draft (`--draft`) or
    /// one version (`--version N`). Its templates are copied from the server.
    #[arg(long, requires = "server", conflicts_with = "file")]
    pub journey: Option<String>,
    #[arg(long, requires = "journey", conflicts_with = "version")]
    pub draft: bool,
    #[arg(long, requires = "journey", value_parser = clap::value_parser!(i64).range(1..))]
    pub version: Option<i64>,
    /// The server to read from (only read): `--journey`, `--segment`, `--list`, templates a
    /// journey file uses but does not ship, and the measured rates used as default behaviour.
    #[arg(long, env = "WAYMARK_SERVER")]
    pub server: Option<String>,
    /// Admin token of `--server`.
    #[arg(long, env = "WAYMARK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// N synthetic contacts (shaped by the scenario's `population`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=scenario::MAX_CONTACTS))]
    pub contacts: Option<u64>,
    /// The population from a CSV file (as `waymark import contacts` reads it).
    #[arg(long, conflicts_with_all = ["contacts", "segment", "list"])]
    pub population: Option<PathBuf>,
    /// The members of this segment of `--server`, copied at the start.
    #[arg(long, requires = "server", conflicts_with_all = ["contacts", "list"])]
    pub segment: Option<String>,
    /// The members of this list of `--server`, copied at the start.
    #[arg(long, requires = "server", conflicts_with = "contacts")]
    pub list: Option<String>,
    /// Replay a past period of `--server` instead: its contacts who did something in the last
    /// `--days` (or from `--start`) are copied as they are now, its events of the period sent
    /// again at the times they came in, and what the journey would have sent is set beside
    /// what the server's journey of the same id did. Opens and clicks are drawn from the
    /// behaviour rules.
    #[arg(long, requires = "server", conflicts_with_all = ["contacts", "population", "segment", "list", "target"])]
    pub replay: bool,
    /// With `--replay`: start replaying this many days before the period, so that contacts
    /// who entered the journey shortly before it are in it too; only the period is counted.
    #[arg(long, requires = "replay", default_value_t = 7, value_parser = clap::value_parser!(u32).range(0..=90))]
    pub warm_up_days: u32,
    /// With `--replay`: write each contact each sending node reached, this journey's messages
    /// beside the server's, to this CSV file.
    #[arg(long, requires = "replay")]
    pub recipients: Option<PathBuf>,
    /// The scenario (YAML or JSON): population shares, arrivals and behaviour; see
    /// docs/simulate.md. What it leaves out is assumed and printed with the result.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// How many days to simulate.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
    /// When the simulation starts (RFC 3339); default: the start of the current hour (with
    /// `--replay`: `--days` before the server's current hour).
    #[arg(long)]
    pub start: Option<Timestamp>,
    /// The seed of every random choice: the same seed, the same result.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The step the population acts on: entries and reactions happen at the first step at or
    /// after their time (1m to 1d). The journey's own timers are exact.
    #[arg(long, default_value = "15m", value_parser = parse_resolution)]
    pub resolution: SignedDuration,
    /// Where to write the result (JSON); default: standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also draw the messages per day and the funnel as an SVG image here.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Drive this server instead of a private one. It must run with `--clock simulated`; the
    /// journey is published and the population imported into it, and its clock moved: for a
    /// staging copy, never for live data.
    #[arg(long)]
    pub target: Option<String>,
    /// Admin token of `--target`.
    #[arg(
        long,
        env = "WAYMARK_TARGET_ADMIN_TOKEN",
        hide_env_values = true,
        requires = "target"
    )]
    pub target_admin_token: Option<String>,
    /// Write key of `--target`.
    #[arg(
        long,
        env = "WAYMARK_TARGET_WRITE_KEY",
        hide_env_values = true,
        requires = "target"
    )]
    pub target_write_key: Option<String>,
    #[command(flatten)]
    pub policy: SendingPolicy,
}

fn parse_resolution(raw: &str) -> Result<SignedDuration, String> {
    let d = waymark_core::Duration::parse(raw)?;
    if !(60..=86_400).contains(&d.seconds()) {
        return Err(format!("`{raw}` must be from 1m to 1d"));
    }
    Ok(SignedDuration::from_secs(d.seconds()))
}

/// What to simulate, gathered from the command line or an API request.
pub struct Simulation {
    /// The journey document, with every template it sends shipped in it.
    pub journey: Value,
    /// Where it came from, for the result (`file ...`, `draft of ...`).
    pub journey_source: String,
    pub scenario: ScenarioFile,
    /// The installation's measured behaviour, used where the scenario is silent.
    pub measured: Measured,
    pub population: Population,
    pub days: u32,
    /// Default: the start of the current hour.
    pub start: Option<Timestamp>,
    pub seed: u64,
    pub resolution: SignedDuration,
}

/// Who the people are.
pub enum Population {
    /// Synthetic contacts: this many, else the scenario's `population.contacts`.
    Synthetic(Option<u64>),
    /// The rows of a CSV file (as `waymark import contacts` reads it).
    Csv(PathBuf),
    /// The members of a segment or list of a server, copied at the start: the server, the
    /// members path (`/v1/segments/ID/members`) and what to call them (`segment ID`).
    Members {
        server: Target,
        path: String,
        label: String,
    },
    /// Contacts given as `POST /v1/contacts/import` takes them, and what to call them.
    Contacts { contacts: Vec<Value>, label: String },
    /// Those who did something in a past period of a server, doing it again.
    Replay(replay::Period),
}

/// Where the simulation runs.
pub enum Runner<'a> {
    /// A private server with the installation's sending rules.
    Private(&'a SendingPolicy),
    /// A server started with `--clock simulated` (the trust check, a staging copy).
    Target(Target),
}

/// What a simulation predicts: the result, and its chart as SVG.
pub struct Prediction {
    pub result: Value,
    pub chart: String,
    /// A replay's recipients, this journey's beside the server's (CSV).
    pub recipients: Option<String>,
}

/// Runs the simulation and writes its result; false when it could not.
pub async fn run(args: SimulateArgs) -> anyhow::Result<bool> {
    let source = match (&args.server, &args.admin_token) {
        (Some(url), Some(token)) => Some(Target::new(url, token, None)?),
        (Some(_), None) => bail!("--server needs --admin-token (or WAYMARK_ADMIN_TOKEN)"),
        _ => None,
    };
    let (mut journey, journey_source) = load_journey(&args, source.as_ref()).await?;
    if let Some(source) = &source {
        ship_templates(&mut journey, source).await?;
    }
    let measured = match (&source, &args.journey) {
        (Some(source), Some(id)) => measured(source, id).await?,
        _ => Measured::default(),
    };
    let members = |path: String, label: String| -> anyhow::Result<Population> {
        let source = source
            .as_ref()
            .context("--segment and --list need --server")?;
        Ok(Population::Members {
            server: source.clone_client()?,
            path,
            label,
        })
    };
    let mut start = args.start;
    let population = match (&args.population, &args.segment, &args.list) {
        _ if args.replay => {
            let source = source.as_ref().context("--replay needs --server")?;
            let since = match args.start {
                Some(t) => t,
                None => {
                    let now = source.now().await?;
                    hour_of(now)? - SignedDuration::from_hours(24 * i64::from(args.days))
                }
            };
            start = Some(since);
            Population::Replay(replay::Period {
                source: source.clone_client()?,
                read_from: since - SignedDuration::from_hours(24 * i64::from(args.warm_up_days)),
                since,
                until: since + SignedDuration::from_hours(24 * i64::from(args.days)),
            })
        }
        (Some(path), ..) => Population::Csv(path.clone()),
        (None, Some(segment), _) => members(
            format!("/v1/segments/{segment}/members"),
            format!("segment {segment}"),
        )?,
        (None, None, Some(list)) => {
            members(format!("/v1/lists/{list}/members"), format!("list {list}"))?
        }
        (None, None, None) => Population::Synthetic(args.contacts),
    };
    let runner = match &args.target {
        Some(url) => {
            let token = args
                .target_admin_token
                .as_deref()
                .context("--target needs --target-admin-token")?;
            Runner::Target(Target::new(url, token, args.target_write_key.as_deref())?)
        }
        None => Runner::Private(&args.policy),
    };
    let simulation = Simulation {
        journey,
        journey_source,
        scenario: read_scenario(args.scenario.as_deref())?,
        measured,
        population,
        days: args.days,
        start,
        seed: args.seed,
        resolution: args.resolution,
    };
    let prediction = simulate(simulation, runner).await?;
    if let (Some(path), Some(csv)) = (&args.recipients, &prediction.recipients) {
        std::fs::write(path, csv).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.chart {
        std::fs::write(path, &prediction.chart)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let text = serde_json::to_string_pretty(&prediction.result)? + "\n";
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(true)
}

/// Runs a simulation to its end and gathers what it predicts.
pub async fn simulate(sim: Simulation, runner: Runner<'_>) -> anyhow::Result<Prediction> {
    let began = Instant::now();
    let journey_id = sim.journey["id"]
        .as_str()
        .context("the journey has no `id`")?
        .to_string();
    let parsed: JourneyDocument = serde_json::from_value(sim.journey.clone())
        .map_err(|e| anyhow::anyhow!("the journey is not valid: {e}"))?;
    let shape = JourneyShape::of(&parsed);
    let entry = entry_of(&parsed);
    if matches!(sim.population, Population::Replay(_)) && !matches!(entry, Entry::Event(_)) {
        bail!(
            "only a journey whose trigger is an event can be replayed (list additions and API \
             enrollments are not events; a segment or date trigger would enter every contact \
             copied at the start)"
        );
    }
    let period = SignedDuration::from_hours(24 * i64::from(sim.days));
    // A replay's private clock starts a warm-up before the period, so that contacts who
    // entered shortly before it are on their way when it begins; only the period counts.
    let warm_up_days = match &sim.population {
        Population::Replay(p) => (p.since.duration_since(p.read_from).as_hours() / 24) as u32,
        _ => 0,
    };
    let warm_up = SignedDuration::from_hours(24 * i64::from(warm_up_days));
    let synthetic = match sim.population {
        Population::Synthetic(n) => n.or(sim.scenario.population.contacts),
        _ => None,
    };
    let mut scenario = Scenario::build(sim.scenario, &shape, sim.seed, period, &sim.measured)?;
    if matches!(sim.population, Population::Replay(_)) {
        // Everything else people do comes from the period replayed.
        scenario.keep_engagement_only();
    }

    // The server driven: a private one, or the given one.
    let mut private = None;
    let given;
    let target: &Target = match runner {
        Runner::Target(t) => {
            given = t;
            &given
        }
        Runner::Private(policy) => {
            let start = match sim.start {
                Some(t) => t - warm_up,
                None => hour_of(Timestamp::now())?,
            };
            private
                .insert(private::PrivateServer::start(start, policy).await?)
                .target()
        }
    };
    let run_start = target.clock().await?;
    let start = run_start + warm_up;
    publish(target, &journey_id, &sim.journey).await?;

    let mut replayed = None;
    let (people, label) = match sim.population {
        Population::Replay(period) => {
            let copied = replay::copy_active(target, &period).await?;
            let label = format!(
                "replay of {} from {} to {}",
                period.source.base(),
                period.since,
                period.until
            );
            replayed = Some((period, copied));
            (
                People::Listed {
                    user_ids: Vec::new(),
                },
                label,
            )
        }
        Population::Csv(path) => (
            People::Listed {
                user_ids: copy_csv(target, &path).await?,
            },
            format!("file {}", path.display()),
        ),
        Population::Members {
            server,
            path,
            label,
        } => (
            People::Listed {
                user_ids: copy_members(target, &server, &path).await?,
            },
            label,
        ),
        Population::Contacts { contacts, label } => (
            People::Listed {
                user_ids: copy_contacts(target, contacts).await?,
            },
            label,
        ),
        Population::Synthetic(_) => {
            let count = synthetic.context(
                "who is the population? --contacts N (or population.contacts in the scenario), \
                 --population FILE.csv, or --segment / --list with --server",
            )?;
            driver::import_synthetic(target, &scenario, count).await?;
            (People::Synthetic { count }, "synthetic".to_string())
        }
    };
    let contacts = match &replayed {
        Some((_, copied)) => copied.count(),
        None => people.count(),
    };
    let population = json!({ "contacts": contacts, "source": label });
    let plan = Plan {
        journey_id: &journey_id,
        shape: &shape,
        entry,
        scenario: &scenario,
        people,
        start: run_start,
        counted_from: start,
        days: (sim.days + warm_up_days) as usize,
        resolution: sim.resolution,
    };
    let mut feed = replayed
        .as_ref()
        .map(|(period, copied)| replay::Feed::new(period, copied));
    let observed = driver::run(target, &plan, feed.as_mut()).await?;
    let end = start + period;
    let report = target
        .get(&format!(
            "/v1/journeys/{journey_id}/report?from={}&to={}&bucket=day",
            start,
            end + SignedDuration::from_secs(1)
        ))
        .await?;

    let funnel: Vec<Value> = report["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|n| funnel_row(&n))
        .collect();
    let totals = &report["totals"];
    let mut result = json!({
        "journey": {"id": journey_id, "name": parsed.name, "source": sim.journey_source},
        "population": population,
        "period": {
            "start": start,
            "end": end,
            "days": sim.days,
            "resolution": format!("{:#}", sim.resolution),
        },
        "seed": sim.seed,
        "assumptions": scenario.assumptions(),
        "entered": totals["entered"],
        "arrivals_sent": observed.entries,
        "funnel": funnel,
        "waiting": observed.waiting.iter().map(|(day, nodes)| json!({"day": day, "nodes": nodes})).collect::<Vec<_>>(),
        "messages": observed.tally.json(),
        "conversions": {
            "count": totals["converted"],
            "rate": totals["conversion_rate"],
            "revenue": totals["revenue"],
        },
        "behaviour_events": observed.reactions,
        "elapsed_seconds": (began.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    });

    let mut recipients = None;
    if let (Some((period, copied)), Some(feed)) = (&replayed, &feed) {
        let comparison = replay::compare(target, period, copied, &journey_id, &report).await?;
        result["replay"] = json!({
            "events": {"replayed": feed.replayed, "left_out": feed.left_out},
            "compared_with": format!("journey {journey_id} on {}", period.source.base()),
            "totals": comparison.result["totals"],
            "nodes": comparison.result["nodes"],
        });
        recipients = Some(comparison.csv);
    }

    let labels: Vec<String> = (0..sim.days)
        .map(|d| {
            let day = start + SignedDuration::from_hours(24 * i64::from(d));
            day.strftime("%m-%d").to_string()
        })
        .collect();
    let rows: Vec<chart::FunnelRow<'_>> = funnel
        .iter()
        .map(|n| chart::FunnelRow {
            node: n["node"].as_str().unwrap_or("?"),
            kind: n["type"].as_str().unwrap_or(""),
            entered: n["entered"].as_i64().unwrap_or(0),
        })
        .collect();
    let chart = chart::svg(
        &format!("{} — {} days, {} contacts", parsed.name, sim.days, contacts),
        &observed.tally.sent_per_day(),
        &labels,
        &rows,
    );
    if let Some(private) = private {
        private.stop().await?;
    }
    Ok(Prediction {
        result,
        chart,
        recipients,
    })
}

/// The start of the hour `t` is in.
fn hour_of(t: Timestamp) -> anyhow::Result<Timestamp> {
    Ok(t.round(
        jiff::TimestampRound::new()
            .smallest(jiff::Unit::Hour)
            .mode(jiff::RoundMode::Trunc),
    )?)
}

/// One node of the funnel: how many entered, left (by which output), ended and converted
/// there, and what it sent or deferred.
fn funnel_row(n: &Value) -> Value {
    let mut row = Map::new();
    row.insert("node".into(), n["node"].clone());
    row.insert("type".into(), n["kind"].clone());
    for field in [
        "entered",
        "completed",
        "outputs",
        "exited",
        "converted",
        "deferred",
        "sent",
        "suppressed",
        "failed",
        "human_opened",
        "human_clicked",
        "attributed",
        "revenue",
    ] {
        row.insert(field.into(), n[field].clone());
    }
    Value::Object(row)
}

/// How the journey's contacts enter, as far as the population has to act.
fn entry_of(doc: &JourneyDocument) -> Entry {
    for node in &doc.nodes {
        if let NodeKind::Trigger(t) = &node.kind {
            if let Some(event) = &t.event {
                return Entry::Event(event.clone());
            }
            if let Some(list) = &t.list {
                return Entry::List(list.clone());
            }
            if t.api {
                return Entry::Api;
            }
        }
    }
    Entry::ByTheEngine
}

async fn publish(target: &Target, id: &str, doc: &Value) -> anyhow::Result<()> {
    let draft = target.put(&format!("/v1/journeys/{id}"), doc).await?;
    if draft["valid"] != json!(true) {
        let errors: Vec<String> = draft["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("  - {}", crate::cli::format_validation_error(e)))
            .collect();
        bail!("the journey is not valid:\n{}", errors.join("\n"));
    }
    target
        .post(&format!("/v1/journeys/{id}/publish"), &json!({}))
        .await?;
    Ok(())
}
