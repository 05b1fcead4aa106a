//! `POST /v1/journeys/{id}/simulate`: what `waymark simulate` predicts for a journey of this
//! server (its draft, live version or one version), asked from the web app's builder. This
//! module only gathers the inputs from the store (the document with its templates shipped,
//! the members of a segment or list, the journey's measured rates, the installation's sending
//! rules) and hands them to `crate::simulate::simulate`, which runs them on a private server
//! with a scratch store.
//!
//! Must never: simulate itself, or write to this server's store, clock or engine. One
//! simulation runs at a time per server (a second one is `429 simulation_running`).

use axum::Json;
use axum::extract::{Path, State};
use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use waymark_store::StoreError;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::journeys::{check, invalid_journey};
use super::manage::blocking;
use super::reports::{ReportQuery, journey_report};
use super::{RequestBody, json_from_bytes, typed};
use crate::simulate::scenario::ScenarioFile;
use crate::simulate::{
    MEASURED_OVER, Population, Runner, SimulateError, Simulation, measured_from, member_copy,
    ship_template, templates_to_ship,
};

/// The largest population one request simulates (synthetic, or a segment's or list's members).
pub const MAX_CONTACTS: u64 = 100_000;
/// The longest period one request simulates, in days.
pub const MAX_DAYS: u32 = 90;
const DEFAULT_CONTACTS: u64 = 1000;
const DEFAULT_DAYS: u32 = 30;
/// The `Retry-After` of `simulation_running`.
const RETRY_AFTER_SECONDS: u32 = 10;
/// Members are read from the store in pages of this many.
const MEMBERS_PAGE: usize = 1000;

/// What to simulate. Everything is optional: the draft, on 1000 synthetic contacts, for 30
/// days from the start of the current hour, with seed 1 and the default behaviour.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// true (default): the draft; false: the live version (or `version`).
    pub draft: Option<bool>,
    /// A published version instead of the draft.
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
    /// How many synthetic contacts (1 to 100000; default the scenario's
    /// `population.contacts`, else 1000).
    #[schemars(range(min = 1, max = 100000))]
    pub contacts: Option<u64>,
    /// The members of this segment (its id) instead, copied at the start (at most 100000).
    #[schemars(length(min = 1, max = 200))]
    pub segment: Option<String>,
    /// The members of this list (its name) instead, copied at the start (at most 100000).
    #[schemars(length(min = 1, max = 200))]
    pub list: Option<String>,
    /// How many days (1 to 90; default 30).
    #[schemars(range(min = 1, max = 90))]
    pub days: Option<u32>,
    /// The seed of every random choice (default 1): the same seed, the same prediction.
    pub seed: Option<u64>,
    /// The scenario, as `waymark simulate --scenario` reads it: `population`, `arrivals`,
    /// `behaviour` (docs/simulate.md). What it leaves out is assumed, and said so.
    #[schemars(with = "Option<Map<String, Value>>")]
    pub scenario: Option<Value>,
    /// When the simulation starts (RFC 3339); default the start of the current hour.
    pub start: Option<Timestamp>,
}

impl RequestBody for SimulateRequest {}

/// One behaviour rule the simulation used.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct Assumption {
    /// The event the contact performs.
    pub event: String,
    /// What it follows: the entry, a channel's messages, a node's messages, another event.
    pub after: String,
    pub probability: f64,
    /// The delay distribution, in words.
    pub delay: String,
    /// `scenario` (given), `measured` (this journey's own report) or `default` (assumed).
    #[schemars(extend("enum" = ["scenario", "measured", "default"]))]
    pub source: String,
}

/// One node's predicted counts.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct FunnelNode {
    pub node: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub entered: i64,
    pub completed: i64,
    /// Who left the node by which output.
    pub outputs: std::collections::BTreeMap<String, i64>,
    pub exited: i64,
    pub converted: i64,
    /// Sends that quiet hours or blocked dates deferred.
    pub deferred: i64,
    pub sent: i64,
    pub suppressed: i64,
    pub failed: i64,
    pub human_opened: i64,
    pub human_clicked: i64,
    pub attributed: i64,
    pub revenue: f64,
}

/// Messages of one channel.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChannelCounts {
    pub sent: u64,
    pub suppressed: u64,
    pub failed: u64,
}

/// Messages of one day of the period, per channel.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct MessagesDay {
    /// The start of the day (the period's start plus whole days).
    pub day: Timestamp,
    pub email: ChannelCounts,
    pub sms: ChannelCounts,
    pub webhook: ChannelCounts,
}

/// The busiest hour of a channel.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct PeakHour {
    pub messages: u64,
    /// Its start; null when the channel sent nothing.
    pub hour: Option<Timestamp>,
}

/// Messages per channel.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChannelTotals {
    pub email: ChannelCounts,
    pub sms: ChannelCounts,
    pub webhook: ChannelCounts,
}

/// The busiest hour per channel.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct ChannelPeaks {
    pub email: PeakHour,
    pub sms: PeakHour,
    pub webhook: PeakHour,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct PredictedMessages {
    pub totals: ChannelTotals,
    pub per_day: Vec<MessagesDay>,
    pub peak_hour: ChannelPeaks,
    /// Messages held back by a frequency cap.
    pub capped: u64,
    /// Why messages were not sent, and how many each time.
    pub suppressed_reasons: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct PredictedConversions {
    pub count: i64,
    pub rate: Option<f64>,
    pub revenue: f64,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct SimulatedJourney {
    pub id: String,
    pub name: String,
    /// `draft of ID`, `version N of ID`.
    pub source: String,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct SimulatedPopulation {
    pub contacts: u64,
    /// `synthetic`, `segment ID`, `list NAME`.
    pub source: String,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct SimulatedPeriod {
    pub start: Timestamp,
    pub end: Timestamp,
    pub days: u32,
    /// The step the population acts on (`15m`).
    pub resolution: String,
}

/// Contacts waiting at nodes at the end of one day.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct WaitingDay {
    /// The end of the day.
    pub day: Timestamp,
    pub nodes: std::collections::BTreeMap<String, u64>,
}

/// The prediction, as `waymark simulate` prints it, and its chart. (The handler answers the
/// JSON the simulation made; these types describe it in the OpenAPI document, and a test
/// checks that they name what an answer holds.)
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct Prediction {
    pub journey: SimulatedJourney,
    pub population: SimulatedPopulation,
    pub period: SimulatedPeriod,
    pub seed: u64,
    /// The behaviour used, rule by rule, and where each came from.
    pub assumptions: Vec<Assumption>,
    /// Contacts who entered the journey.
    pub entered: i64,
    /// Entries the population made (trigger events, list additions, API enrollments).
    pub arrivals_sent: u64,
    pub funnel: Vec<FunnelNode>,
    pub waiting: Vec<WaitingDay>,
    pub messages: PredictedMessages,
    pub conversions: PredictedConversions,
    /// How many of each behaviour event the population performed.
    pub behaviour_events: std::collections::BTreeMap<String, u64>,
    pub elapsed_seconds: f64,
    /// Messages per day and the funnel, drawn as an SVG image.
    pub chart_svg: String,
}

/// `POST /v1/journeys/{id}/simulate`
pub async fn simulate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        SimulateRequest::default()
    } else {
        typed::<SimulateRequest>(json_from_bytes(&body)?)?
    };
    let asked = Asked::check(request)?;
    // Held until the simulation ends, even if the client goes away.
    let running = state.simulation.clone().try_lock_owned().map_err(|_| {
        ApiError::too_many_requests(
            "simulation_running",
            "a simulation is running on this server; try again when it ends",
            RETRY_AFTER_SECONDS,
        )
    })?;

    let journey_id = id.clone();
    let which = asked.which;
    let audience = asked.audience.clone();
    let (journey, journey_source, members) = blocking(&state, move |s| {
        let (doc, source) = match document(s, &journey_id, which)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        let mut doc = doc;
        for template in templates_to_ship(&doc) {
            let stored = s.get_template(&template)?;
            let value =
                serde_json::to_value(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            ship_template(&mut doc, value);
        }
        let members = match &audience {
            Audience::Synthetic(_) => None,
            Audience::Segment(segment) => {
                s.segment(segment)?;
                Some(members(|after| {
                    s.segment_members(segment, MEMBERS_PAGE, after)
                }))
            }
            Audience::List(list) => {
                if !s.lists()?.iter().any(|l| &l.name == list) {
                    return Err(StoreError::NotFound(format!("list `{list}`")));
                }
                Some(members(|after| s.list_members(list, MEMBERS_PAGE, after)))
            }
        };
        let members = match members.transpose()? {
            Some(None) => return Ok(Err(too_many_members(&audience))),
            Some(Some(m)) => Some(m),
            None => None,
        };
        Ok(Ok((doc, source, members)))
    })
    .await??;

    let report = journey_report(
        &state,
        id.clone(),
        ReportQuery {
            from: Some(MEASURED_OVER.into()),
            ..ReportQuery::default()
        },
    )
    .await?
    .0;
    let report = serde_json::to_value(&report).map_err(|e| ApiError::internal(e.to_string()))?;
    let measured = measured_from(&report["totals"]);

    let population = match (&asked.audience, members) {
        (Audience::Synthetic(n), _) => Population::Synthetic(Some(*n)),
        (audience, members) => Population::Contacts {
            contacts: members.unwrap_or_default(),
            label: audience.label(),
        },
    };
    let simulation = Simulation {
        journey,
        journey_source,
        scenario: asked.scenario,
        measured,
        population,
        days: asked.days,
        start: asked.start,
        seed: asked.seed,
        resolution: SignedDuration::from_mins(15),
    };
    let policy = state.policy.clone();
    // Its own task, so that a client that leaves does not stop it half-way (the private
    // server would not be shut down) and the lock is held until it really ends.
    let run = tokio::spawn(async move {
        let prediction = crate::simulate::simulate(simulation, Runner::Private(&policy)).await;
        drop(running);
        prediction
    });
    let prediction = run.await?.map_err(simulation_error)?;
    let mut answer = prediction.result;
    answer["chart_svg"] = json!(prediction.chart);
    Ok(Json(answer))
}

/// Which document of the journey.
#[derive(Debug, Clone, Copy)]
enum Which {
    Draft,
    Live,
    Version(i64),
}

/// Who the population is.
#[derive(Debug, Clone)]
enum Audience {
    Synthetic(u64),
    Segment(String),
    List(String),
}

impl Audience {
    fn label(&self) -> String {
        match self {
            Audience::Synthetic(_) => "synthetic".into(),
            Audience::Segment(id) => format!("segment {id}"),
            Audience::List(name) => format!("list {name}"),
        }
    }
}

/// The request, checked.
struct Asked {
    which: Which,
    audience: Audience,
    scenario: ScenarioFile,
    days: u32,
    seed: u64,
    start: Option<Timestamp>,
}

impl Asked {
    fn check(r: SimulateRequest) -> ApiResult<Asked> {
        let invalid = |field: &str, message: String| {
            Err(ApiError::invalid("invalid_parameter", field, message))
        };
        let which = match (r.draft, r.version) {
            (Some(true), Some(_)) => {
                return invalid(
                    "version",
                    "give `version` or `draft: true`, not both".into(),
                );
            }
            (_, Some(v)) if v < 1 => return invalid("version", format!("{v} is no version")),
            (_, Some(v)) => Which::Version(v),
            (Some(false), None) => Which::Live,
            (_, None) => Which::Draft,
        };
        if let Some(n) = r.contacts
            && !(1..=MAX_CONTACTS).contains(&n)
        {
            return invalid(
                "contacts",
                format!("from 1 to {MAX_CONTACTS} contacts, not {n}"),
            );
        }
        let days = r.days.unwrap_or(DEFAULT_DAYS);
        if !(1..=MAX_DAYS).contains(&days) {
            return invalid("days", format!("from 1 to {MAX_DAYS} days, not {days}"));
        }
        let scenario = match r.scenario {
            None | Some(Value::Null) => ScenarioFile::default(),
            Some(value) => scenario(value)?,
        };
        if let Some(n) = scenario.population.contacts
            && !(1..=MAX_CONTACTS).contains(&n)
        {
            return invalid(
                "scenario.population.contacts",
                format!("from 1 to {MAX_CONTACTS} contacts, not {n}"),
            );
        }
        let audience = match (r.segment, r.list, r.contacts) {
            (Some(_), Some(_), _) => {
                return invalid("list", "give `segment` or `list`, not both".into());
            }
            (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => {
                return invalid(
                    "contacts",
                    "`contacts` makes a synthetic population; leave it out with `segment` or `list`"
                        .into(),
                );
            }
            (Some(segment), None, None) => Audience::Segment(segment),
            (None, Some(list), None) => Audience::List(list),
            (None, None, n) => Audience::Synthetic(
                n.or(scenario.population.contacts)
                    .unwrap_or(DEFAULT_CONTACTS),
            ),
        };
        Ok(Asked {
            which,
            audience,
            scenario,
            days,
            seed: r.seed.unwrap_or(1),
            start: r.start,
        })
    }
}

/// The scenario of a request, read as the command line reads a scenario file; an error names
/// its place (`scenario.behaviour[0].probability`).
fn scenario(value: Value) -> ApiResult<ScenarioFile> {
    if !value.is_object() {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "scenario",
            "a scenario is an object: population, arrivals, behaviour",
        ));
    }
    if waymark_core::limits::json_depth(&value) > waymark_core::limits::MAX_DOCUMENT_DEPTH {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "scenario",
            "nested too deeply",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "scenario".to_string()
        } else {
            format!("scenario.{path}")
        };
        ApiError::invalid("invalid_parameter", field, e.into_inner().to_string())
    })
}

/// The journey document asked for (with its id) and what to call it.
fn document(
    s: &dyn waymark_store::Store,
    id: &str,
    which: Which,
) -> Result<Result<(Value, String), ApiError>, StoreError> {
    let journey = s.journey(id)?;
    let version = match which {
        Which::Draft => {
            if let Err(errors) = check(s, &journey.draft)? {
                return Ok(Err(invalid_journey(errors)));
            }
            let mut doc = journey.draft;
            doc["id"] = json!(id);
            return Ok(Ok((doc, format!("draft of {id}"))));
        }
        Which::Version(v) => v,
        Which::Live => match journey.live_version {
            Some(v) => v,
            None => {
                return Ok(Err(ApiError::invalid(
                    "invalid_parameter",
                    "draft",
                    format!("journey `{id}` has no live version; simulate its draft"),
                )));
            }
        },
    };
    let doc = s.journey_version(id, version)?.document;
    Ok(Ok((doc, format!("version {version} of {id}"))))
}

/// Every member, as a simulation copies them; `None` beyond [`MAX_CONTACTS`].
fn members(
    page: impl Fn(i64) -> Result<Vec<waymark_store::Contact>, StoreError>,
) -> Result<Option<Vec<Value>>, StoreError> {
    let mut copies = Vec::new();
    let mut after = 0;
    loop {
        let contacts = page(after)?;
        let Some(last) = contacts.last() else {
            return Ok(Some(copies));
        };
        after = last.id;
        for c in &contacts {
            let value = serde_json::to_value(c).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            copies.push(member_copy(&value));
        }
        if copies.len() as u64 > MAX_CONTACTS {
            return Ok(None);
        }
    }
}

fn too_many_members(audience: &Audience) -> ApiError {
    let field = match audience {
        Audience::List(_) => "list",
        _ => "segment",
    };
    ApiError::invalid(
        "invalid_parameter",
        field,
        format!(
            "{} has more than {MAX_CONTACTS} members: a simulation takes at most {MAX_CONTACTS} contacts",
            audience.label()
        ),
    )
}

/// A simulation that failed: a scenario that does not fit the journey is the request's fault
/// (its place, e.g. `behaviour[0].after`, leads the message); the rest is the server's.
fn simulation_error(e: anyhow::Error) -> ApiError {
    match e.downcast_ref::<SimulateError>() {
        Some(SimulateError::Scenario(message)) => {
            let place = message
                .split([':', ' '])
                .next()
                .filter(|p| !p.is_empty())
                .unwrap_or("");
            let field = if place.is_empty() {
                "scenario".to_string()
            } else {
                format!("scenario.{place}")
            };
            ApiError::invalid("invalid_parameter", field, format!("scenario: {message}"))
        }
        None => ApiError::internal(format!("the simulation failed: {e:#}")),
    }
}
