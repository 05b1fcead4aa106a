//! Journey endpoints: drafts, validation, publishing, status changes, versions and statistics.
//!
//! A draft is stored as written (it may be incomplete while someone builds it) and comes back
//! with its validation errors. Publishing validates strictly, stores an immutable version and
//! makes it live; enrollments stay on the version they entered.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use waymark_core::ValidationError;
use waymark_core::journey::{Channel, JourneyDocument};
use waymark_core::validate::parse_and_validate;
use waymark_engine::JourneyChange;
use waymark_engine::recorded::ContactRef;
use waymark_store::{JourneyRow, JourneyStatus, JourneyVersion, Store, StoreError};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::manage::{blocking, parse_template};
use super::{DocBody, QueryParams, RequestBody, typed};

/// Validates a document against the templates it ships and those on the server.
pub(super) fn check(
    store: &dyn Store,
    doc: &Value,
) -> Result<Result<JourneyDocument, Vec<ValidationError>>, StoreError> {
    // Look-ups hit the database; collect the ids first so the validator's callback is pure.
    let mut known = std::collections::HashMap::new();
    for t in store.templates()? {
        known.insert(t.definition.id.clone(), t.definition.channel);
    }
    let lookup = |id: &str| -> Option<Channel> { known.get(id).copied() };
    Ok(parse_and_validate(doc, Some(&lookup)))
}

pub(super) fn invalid_journey(errors: Vec<ValidationError>) -> ApiError {
    let first = errors
        .first()
        .and_then(|e| e.field.clone())
        .unwrap_or_else(|| "nodes".into());
    ApiError::invalid(
        "invalid_journey",
        first,
        format!("the journey has {} error(s)", errors.len()),
    )
    .with_errors(json!(errors))
}

/// Whether a document is valid, and every error with its node and field.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Validation {
    pub valid: bool,
    pub errors: Vec<ValidationError>,
}

pub async fn validate(
    State(state): State<AppState>,
    DocBody(doc): DocBody,
) -> ApiResult<Json<Validation>> {
    let result = blocking(&state, move |s| check(s, &doc)).await?;
    let errors = result.err().unwrap_or_default();
    Ok(Json(Validation {
        valid: errors.is_empty(),
        errors,
    }))
}

/// A version of a journey the engine cannot use, and why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BrokenVersion {
    pub version: Option<i64>,
    pub reason: String,
}

/// A journey with its draft, the draft's validation errors and its unusable versions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Draft {
    #[serde(flatten)]
    pub journey: JourneyRow,
    pub broken: Vec<BrokenVersion>,
    pub errors: Vec<ValidationError>,
    pub valid: bool,
}

impl Draft {
    fn new(state: &AppState, journey: JourneyRow, errors: Vec<ValidationError>) -> Draft {
        Draft {
            broken: broken_versions(state, &journey.id),
            valid: errors.is_empty(),
            errors,
            journey,
        }
    }
}

/// The id and name a draft needs at least, and the templates it ships (stored first).
async fn save_draft(
    state: &AppState,
    url_id: Option<&str>,
    mut doc: Value,
) -> ApiResult<(bool, Draft)> {
    let Some(obj) = doc.as_object_mut() else {
        return Err(ApiError::bad_request(
            "invalid_journey",
            "a journey must be an object",
        ));
    };
    let id = match (obj.get("id").and_then(Value::as_str), url_id) {
        (Some(given), Some(url)) if given != url => {
            return Err(ApiError::invalid(
                "invalid_journey",
                "id",
                format!("the body's id `{given}` differs from the URL's `{url}`"),
            ));
        }
        (Some(given), _) => given.to_string(),
        (None, Some(url)) => {
            obj.insert("id".into(), json!(url));
            url.to_string()
        }
        (None, None) => return Err(ApiError::invalid("invalid_journey", "id", "is required")),
    };
    if id.is_empty()
        || id.len() > 100
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::invalid(
            "invalid_journey",
            "id",
            "journey ids are 1-100 letters, digits, `-` or `_`",
        ));
    }
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&id)
        .to_string();
    // Templates shipped inside the document are validated first, and stored only if all are.
    let templates = match obj.remove("templates") {
        Some(Value::Array(items)) => items
            .iter()
            .map(parse_template)
            .collect::<ApiResult<Vec<_>>>()?,
        Some(Value::Null) | None => Vec::new(),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_journey",
                "templates",
                "must be a list",
            ));
        }
    };
    let now = state.engine.clock().now();
    let result = blocking(state, move |s| {
        // What is already stored as given is left alone, so that saving the same file again
        // (every CI deploy) changes no `updated_at` and, at publish, counts as no change.
        for t in &templates {
            let same = s
                .get_template(&t.id)
                .is_ok_and(|stored| stored.definition == *t);
            if !same {
                s.put_template(t, now)?;
            }
        }
        let (existed, row) = match s.journey(&id) {
            Ok(row)
                if row.status != JourneyStatus::Archived
                    && row.name == name
                    && row.draft == doc =>
            {
                (true, row)
            }
            found => (found.is_ok(), s.put_journey_draft(&id, &name, &doc, now)?),
        };
        let validation = check(s, &doc)?;
        Ok((existed, row, validation))
    })
    .await?;
    let (existed, row, validation) = result;
    let errors = validation.err().unwrap_or_default();
    Ok((!existed, Draft::new(state, row, errors)))
}

pub async fn create(
    State(state): State<AppState>,
    DocBody(doc): DocBody,
) -> ApiResult<(StatusCode, Json<Draft>)> {
    if let Some(id) = doc.get("id").and_then(Value::as_str).map(str::to_string) {
        let exists = blocking(&state, move |s| Ok(s.journey(&id).is_ok())).await?;
        if exists {
            return Err(ApiError::conflict(
                "journey_exists",
                "a journey with this id exists; use PUT /v1/journeys/{id} to change its draft",
            ));
        }
    }
    let (_, body) = save_draft(&state, None, doc).await?;
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    DocBody(doc): DocBody,
) -> ApiResult<(StatusCode, Json<Draft>)> {
    let (created, body) = save_draft(&state, Some(&id), doc).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(body),
    ))
}

/// The versions of a journey that the engine cannot use, with the reason (empty when none).
fn broken_versions(state: &AppState, journey_id: &str) -> Vec<BrokenVersion> {
    state
        .engine
        .problems()
        .broken
        .into_iter()
        .filter(|b| b.kind == "journey" && b.id == journey_id)
        .map(|b| BrokenVersion {
            version: b.version,
            reason: b.reason,
        })
        .collect()
}

/// A journey in the list: its status and counts, without the draft.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JourneySummary {
    pub id: String,
    pub name: String,
    pub status: JourneyStatus,
    pub live_version: Option<i64>,
    pub entered: i64,
    pub active: i64,
    pub converted: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub first_activity_at: Option<Timestamp>,
    pub last_activity_at: Option<Timestamp>,
    pub broken: Vec<BrokenVersion>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Journeys {
    pub journeys: Vec<JourneySummary>,
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Journeys>> {
    let journeys = blocking(&state, |s| s.journeys()).await?;
    let journeys = journeys
        .into_iter()
        .map(|j| JourneySummary {
            broken: broken_versions(&state, &j.id),
            id: j.id,
            name: j.name,
            status: j.status,
            live_version: j.live_version,
            entered: j.entered,
            active: j.active,
            converted: j.converted,
            created_at: j.created_at,
            updated_at: j.updated_at,
            first_activity_at: j.first_activity_at,
            last_activity_at: j.last_activity_at,
        })
        .collect();
    Ok(Json(Journeys { journeys }))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Draft>> {
    let (row, validation) = blocking(&state, move |s| {
        let row = s.journey(&id)?;
        let validation = check(s, &row.draft)?;
        Ok((row, validation))
    })
    .await?;
    let errors = validation.err().unwrap_or_default();
    Ok(Json(Draft::new(&state, row, errors)))
}

/// Whether publishing `canonical` would repeat the live version: the same document (both read
/// through the current types, so a field added since with its default is no difference) and
/// no template it sends changed since that version was published.
fn repeats_live_version(
    store: &dyn Store,
    journey: &waymark_store::JourneyRow,
    doc: &JourneyDocument,
    canonical: &Value,
) -> Result<bool, StoreError> {
    let Some(live) = journey.live_version else {
        return Ok(false);
    };
    // A live version that cannot be read is no reason to refuse a new one.
    let Ok(version) = store.journey_version(&journey.id, live) else {
        return Ok(false);
    };
    let same_document = serde_json::from_value::<JourneyDocument>(version.document)
        .ok()
        .and_then(|stored| serde_json::to_value(stored).ok())
        .is_some_and(|stored| stored == *canonical);
    if !same_document {
        return Ok(false);
    }
    // A template edited since makes a new version, which pins the new copy.
    for template in doc.sent_templates() {
        match store.get_template(&template) {
            Ok(t) if version.templates.get(&template) == Some(&t.version) => {}
            Ok(_) | Err(StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// `POST /v1/journeys/{id}/publish`, optionally with `{"enroll_existing": true}`: contacts
/// who already match a segment, list or inactivity trigger enter now (default: only those who
/// match from now on). A draft that repeats the live version makes no new version: the answer
/// says `"unchanged": true` with the same `live_version`.
/// `POST /v1/journeys/{id}/publish`: the body is optional.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct PublishOptions {
    /// Contacts who already match a segment, list or inactivity trigger enter now (default:
    /// only those who match from now on).
    pub enroll_existing: Option<bool>,
}

impl RequestBody for PublishOptions {
    const INVALID: &'static str = "invalid_option";
}

/// The journey after publishing. Publishing a draft identical to the live version (templates
/// included) is `200` too, with `unchanged: true`: no new version, the same `live_version`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Published {
    #[serde(flatten)]
    pub journey: JourneyRow,
    /// true: the draft repeated the live version and no version was made.
    pub unchanged: bool,
}

pub async fn publish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Published>> {
    let options = if body.iter().all(u8::is_ascii_whitespace) {
        PublishOptions::default()
    } else {
        typed::<PublishOptions>(super::json_from_bytes(&body)?)?
    };
    let enroll_existing = options.enroll_existing.unwrap_or(false);
    let now = state.engine.clock().now();
    let (row, unchanged) = blocking(&state, move |s| {
        let journey = s.journey(&id)?;
        if journey.status == JourneyStatus::Archived {
            return Ok(Err(ApiError::conflict(
                "journey_archived",
                format!("journey `{id}` is archived"),
            )));
        }
        match check(s, &journey.draft)? {
            Err(errors) => Ok(Err(invalid_journey(errors))),
            Ok(doc) => {
                let canonical =
                    serde_json::to_value(&doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if repeats_live_version(s, &journey, &doc, &canonical)? {
                    return Ok(Ok((journey, true)));
                }
                let templates = doc.sent_templates();
                Ok(Ok((
                    s.publish_journey(&id, &canonical, &templates, now)?,
                    false,
                )))
            }
        }
    })
    .await??;
    // Nothing to tell the engine about an unchanged journey, unless existing contacts are
    // asked in (re-entry rules still apply to them).
    if !unchanged || enroll_existing {
        state
            .engine
            .journey_changed(&row.id, JourneyChange::Published { enroll_existing })
            .await?;
    }
    Ok(Json(Published {
        journey: row,
        unchanged,
    }))
}

async fn set_status(
    state: AppState,
    id: String,
    to: JourneyStatus,
    change: JourneyChange,
) -> ApiResult<Json<JourneyRow>> {
    let now = state.engine.clock().now();
    let row = blocking(&state, move |s| {
        let journey = s.journey(&id)?;
        let allowed = match to {
            JourneyStatus::Paused => journey.status == JourneyStatus::Live,
            JourneyStatus::Live => journey.status == JourneyStatus::Paused,
            JourneyStatus::Archived => journey.status != JourneyStatus::Archived,
            JourneyStatus::Draft => false,
        };
        if !allowed {
            return Ok(Err(ApiError::conflict(
                "invalid_transition",
                format!(
                    "journey `{id}` is {}; it cannot become {}",
                    journey.status.as_str(),
                    to.as_str()
                ),
            )));
        }
        Ok(Ok(s.set_journey_status(&id, to, now)?))
    })
    .await??;
    state.engine.journey_changed(&row.id, change).await?;
    let id = row.id.clone();
    let row = blocking(&state, move |s| s.journey(&id)).await?;
    Ok(Json(row))
}

pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JourneyRow>> {
    set_status(state, id, JourneyStatus::Paused, JourneyChange::Paused).await
}

pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JourneyRow>> {
    set_status(state, id, JourneyStatus::Live, JourneyChange::Resumed).await
}

pub async fn archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JourneyRow>> {
    set_status(state, id, JourneyStatus::Archived, JourneyChange::Archived).await
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Versions {
    pub versions: Vec<JourneyVersion>,
}

pub async fn versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Versions>> {
    let versions = blocking(&state, move |s| s.journey_versions(&id)).await?;
    Ok(Json(Versions { versions }))
}

/// A version number from a path (`/versions/{version}`) of a journey or a template.
pub(super) fn version_number(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| {
        ApiError::invalid(
            "invalid_parameter",
            "version",
            format!("`{raw}` is not a version number"),
        )
    })
}

pub async fn version(
    State(state): State<AppState>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<JourneyVersion>> {
    let v = version_number(&version)?;
    let version = blocking(&state, move |s| s.journey_version(&id, v)).await?;
    Ok(Json(version))
}

/// `GET /v1/journeys/{id}/stats`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct StatsQuery {
    /// Only the enrollments of this published version (and the messages they were sent);
    /// without it, every version together.
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
}

pub async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<StatsQuery>,
) -> ApiResult<Json<waymark_store::JourneyStats>> {
    let stats = blocking(&state, move |s| s.journey_stats(&id, q.version)).await?;
    Ok(Json(stats))
}

/// `POST /v1/journeys/{id}/enroll`: `user_id` (the contact is created if new) or
/// `contact_id`, exactly one.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Enroll {
    #[schemars(length(min = 1))]
    pub user_id: Option<String>,
    pub contact_id: Option<i64>,
    /// The trigger event's properties, which templates see as `event`.
    pub payload: Option<Map<String, Value>>,
    /// Makes a retried request enroll once.
    #[schemars(length(min = 1))]
    pub message_id: Option<String>,
}

impl RequestBody for Enroll {
    const INVALID: &'static str = "invalid_body";
    fn invalid_code(field: &str) -> &'static str {
        match field {
            "user_id" => "invalid_user_id",
            "contact_id" => "invalid_contact_id",
            "payload" => "invalid_payload",
            "message_id" => "invalid_message_id",
            _ => Self::INVALID,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Enrolled {
    pub journey: String,
    pub contact_id: i64,
    /// The same `message_id` enrolled before: nothing new happened.
    pub duplicate: bool,
}

/// `POST /v1/journeys/{id}/enroll`: enrolls a contact through the journey's `api` trigger.
pub async fn enroll(
    State(state): State<AppState>,
    Path(id): Path<String>,
    DocBody(body): DocBody,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    let request: Enroll = typed(body)?;
    let non_empty = |value: Option<String>, code, field| match value {
        Some(s) if s.trim().is_empty() => {
            Err(ApiError::invalid(code, field, "must be a non-empty string"))
        }
        other => Ok(other),
    };
    let user_id = non_empty(request.user_id, "invalid_user_id", "user_id")?;
    let contact_id = request.contact_id;
    if user_id.is_some() == contact_id.is_some() {
        return Err(ApiError::invalid(
            "invalid_body",
            "user_id",
            "give exactly one of `user_id` and `contact_id`",
        ));
    }
    let payload = request.payload.unwrap_or_default();
    let message_id = match non_empty(request.message_id, "invalid_message_id", "message_id")? {
        None => format!("enroll-api:{}", super::ingest::random_hex(16)),
        Some(s) => format!("enroll-api:{id}:{s}"),
    };
    let journey_id = id.clone();
    blocking(&state, move |s| {
        let journey = s.journey(&journey_id)?;
        let live = journey
            .live_version
            .map(|v| s.journey_version(&journey_id, v))
            .transpose()?;
        let has_api_trigger = live.as_ref().is_some_and(|v| {
            serde_json::from_value::<JourneyDocument>(v.document.clone()).is_ok_and(|d| {
                d.nodes
                    .iter()
                    .any(|n| matches!(&n.kind, waymark_core::NodeKind::Trigger(t) if t.api))
            })
        });
        if journey.status != JourneyStatus::Live || !has_api_trigger {
            return Ok(Err(ApiError::conflict(
                "not_enrollable",
                format!("journey `{journey_id}` is not live with an `api` trigger"),
            )));
        }
        Ok(Ok(()))
    })
    .await??;
    let who = match (user_id, contact_id) {
        (Some(user), _) => ContactRef::User(user),
        (None, Some(id)) => ContactRef::Id(id),
        (None, None) => unreachable!("checked above"),
    };
    let (contact, fresh) = state
        .engine
        .request_enrollment(id.clone(), who, payload, message_id)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Enrolled {
            journey: id,
            contact_id: contact,
            duplicate: !fresh,
        }),
    ))
}

/// One variant's (or the holdout's) counts and conversion rate. Conversions count whether the
/// enrollment was still running or had ended within the conversion window.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VariantReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub entered: u64,
    pub converted: u64,
    pub rate: f64,
    /// The Wilson interval of `rate` at the experiment's confidence (`null` without entries).
    pub rate_low: Option<f64>,
    pub rate_high: Option<f64>,
    /// Against the holdout, when the experiment has one (variants only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lift_over_holdout: Option<waymark_core::experiment::Lift>,
}

impl VariantReport {
    fn of(
        counts: &waymark_core::experiment::VariantCounts,
        named: bool,
        confidence: f64,
        holdout: Option<&waymark_core::experiment::VariantCounts>,
    ) -> VariantReport {
        let interval =
            waymark_core::experiment::wilson_interval(counts.converted, counts.entered, confidence);
        VariantReport {
            name: named.then(|| counts.name.clone()),
            entered: counts.entered,
            converted: counts.converted,
            rate: counts.rate(),
            rate_low: interval.map(|i| i.0),
            rate_high: interval.map(|i| i.1),
            lift_over_holdout: holdout.and_then(|h| waymark_core::experiment::lift(counts, h)),
        }
    }
}

/// An experiment node: its variants, the test's verdict and the declared winner.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExperimentReport {
    pub node: String,
    pub test: &'static str,
    pub min_sample: u64,
    pub confidence: f64,
    pub variants: Vec<VariantReport>,
    pub holdout: Option<VariantReport>,
    pub leader: Option<String>,
    pub comparisons: Vec<waymark_core::experiment::Comparison>,
    pub enough_data: bool,
    pub winner: Option<String>,
    pub decided_at: Option<Timestamp>,
    /// Why the winner was declared: the test, the confidence, the counts and the comparisons
    /// at that moment.
    pub decision: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Experiments {
    pub journey: String,
    pub experiments: Vec<ExperimentReport>,
}

/// `GET /v1/journeys/{id}/experiments`: every experiment node of the live version with its
/// variants' counts and conversion rates, the current verdict and the declared winner.
pub async fn experiments(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Experiments>> {
    let journey_id = id.clone();
    let (doc, counts, winners) = blocking(&state, move |s| {
        let journey = s.journey(&journey_id)?;
        let doc = match journey.live_version {
            Some(v) => s.journey_version(&journey_id, v)?.document,
            None => journey.draft,
        };
        let (counts, winners) = s.experiments(&journey_id)?;
        Ok((doc, counts, winners))
    })
    .await?;
    // A draft may be unfinished, and a stored version the engine cannot read is reported in
    // /v1/problems: neither has experiments to report.
    let Ok(doc) = serde_json::from_value::<JourneyDocument>(doc) else {
        return Ok(Json(Experiments {
            journey: id,
            experiments: Vec::new(),
        }));
    };
    let mut out = Vec::new();
    for node in &doc.nodes {
        let waymark_core::NodeKind::Experiment(x) = &node.kind else {
            continue;
        };
        let count_of = |name: &str| {
            let c = counts
                .iter()
                .find(|c| c.node == node.id && c.variant == name);
            waymark_core::experiment::VariantCounts {
                name: name.to_string(),
                entered: c.map_or(0, |c| c.entered.max(0) as u64),
                converted: c.map_or(0, |c| c.converted.max(0) as u64),
            }
        };
        let variants: Vec<_> = x.variants.iter().map(|v| count_of(&v.name)).collect();
        let holdout = (x.holdout > 0).then(|| count_of(waymark_core::journey::HOLDOUT));
        let verdict = waymark_core::experiment::decide(&variants, x.min_sample, x.confidence);
        let winner = winners.iter().find(|w| w.node == node.id);
        out.push(ExperimentReport {
            node: node.id.clone(),
            test: "one-sided two-proportion z-test",
            min_sample: x.min_sample,
            confidence: x.confidence,
            variants: variants
                .iter()
                .map(|v| VariantReport::of(v, true, x.confidence, holdout.as_ref()))
                .collect(),
            holdout: holdout
                .as_ref()
                .map(|h| VariantReport::of(h, false, x.confidence, None)),
            leader: verdict.leader,
            comparisons: verdict.comparisons,
            enough_data: verdict.enough_data,
            winner: winner.map(|w| w.winner.clone()),
            decided_at: winner.map(|w| w.decided_at),
            decision: winner.map(|w| w.verdict.clone()),
        });
    }
    Ok(Json(Experiments {
        journey: id,
        experiments: out,
    }))
}
