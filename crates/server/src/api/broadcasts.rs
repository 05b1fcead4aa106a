//! Broadcast endpoints: one email or SMS to a segment or a list (minus exclusions), saved as a
//! draft, then sent now or at a time, paused, resumed or cancelled, with live progress. The
//! engine sends them (see `waymark_engine::broadcasts`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;
use waymark_core::broadcast::{Audience, BroadcastDocument, TestMetric, VariantResult};
use waymark_core::experiment::Comparison;
use waymark_store::{BroadcastChange, BroadcastRow, BroadcastStatus, Store, StoreError, Winner};

use super::error::{ApiError, ApiResult};
use super::manage::blocking;
use super::{AppState, Body, RequestBody};

impl RequestBody for BroadcastDocument {
    const INVALID: &'static str = "invalid_broadcast";
}

/// A broadcast and how far its sending has come.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BroadcastView {
    pub id: String,
    pub name: String,
    pub status: BroadcastStatus,
    /// What it sends, to whom and when (null when the stored one cannot be read: see `broken`).
    pub document: Option<BroadcastDocument>,
    pub broken: Option<String>,
    /// Contacts in the audience (minus exclusions) when it was sent.
    pub audience_size: Option<i64>,
    /// Contacts of the audience reached so far.
    pub processed: i64,
    /// Recipients reached whose message waits for its time (local time, quiet hours).
    pub waiting: i64,
    /// Its messages by status: `queued`, `sent`, `suppressed`, `failed`, `bounced`, `paused`,
    /// `cancelled`.
    pub messages: BTreeMap<String, i64>,
    /// The template version every recipient gets, pinned when sending started.
    pub template_version: Option<i64>,
    pub send_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// An A/B test's standing, or its result once the winner is chosen.
    pub test: Option<TestView>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TestView {
    pub metric: TestMetric,
    pub share_percent: u8,
    /// When the winner is (or was) chosen: the start plus `decide_after`.
    pub decide_at: Option<Timestamp>,
    /// Each template tried, the broadcast's own first.
    pub variants: Vec<VariantView>,
    /// The best rate so far against each other variant: one-sided two-proportion z-tests.
    pub comparisons: Vec<Comparison>,
    /// How the variants stand (before the decision) or why the winner won.
    pub standing: String,
    pub winner: Option<Winner>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VariantView {
    pub template: String,
    pub sent: u64,
    pub opened: u64,
    pub clicked: u64,
    /// Recipients converted (the broadcast's `goal`).
    pub converted: u64,
    /// Opened per sent (0 before any is sent).
    pub open_rate: f64,
    pub click_rate: f64,
    /// Converted per sent.
    pub conversion_rate: f64,
}

fn test_view(
    doc: &BroadcastDocument,
    row: &BroadcastRow,
    results: &[VariantResult],
) -> Option<TestView> {
    let test = doc.check().ok()?.test?;
    let decision = test.decide(results);
    let rate = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    Some(TestView {
        metric: test.metric,
        share_percent: test.share_percent,
        decide_at: row.started_at.map(|s| s + test.decide_after),
        variants: test
            .templates
            .iter()
            .map(|t| {
                let r = results.iter().find(|r| &r.template == t);
                let (sent, opened, clicked, converted) =
                    r.map_or((0, 0, 0, 0), |r| (r.sent, r.opened, r.clicked, r.converted));
                VariantView {
                    template: t.clone(),
                    sent,
                    opened,
                    clicked,
                    converted,
                    open_rate: rate(opened, sent),
                    click_rate: rate(clicked, sent),
                    conversion_rate: rate(converted, sent),
                }
            })
            .collect(),
        comparisons: decision.verdict.comparisons,
        standing: row
            .winner
            .as_ref()
            .map_or(decision.reason, |w| w.reason.clone()),
        winner: row.winner.clone(),
    })
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BroadcastList {
    pub broadcasts: Vec<BroadcastView>,
}

fn view(row: BroadcastRow, counts: Vec<(String, i64)>, results: &[VariantResult]) -> BroadcastView {
    let parsed = serde_json::from_value::<BroadcastDocument>(row.document.clone());
    let (document, broken) = match parsed {
        Ok(d) => (Some(d), None),
        Err(e) => (
            None,
            Some(format!("the stored broadcast cannot be read: {e}")),
        ),
    };
    let test = document
        .as_ref()
        .and_then(|doc| test_view(doc, &row, results));
    BroadcastView {
        test,
        id: row.id.clone(),
        name: document
            .as_ref()
            .map_or_else(|| row.id.clone(), |d| d.name.clone()),
        status: row.status,
        document,
        broken,
        audience_size: row.audience_size,
        processed: row.processed,
        waiting: row.waiting,
        messages: counts.into_iter().collect(),
        template_version: row.template_version,
        send_at: row.send_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// A test's results: read (a pass over the broadcast's messages) only for a broadcast with a
/// test, and once the winner is chosen, of the messages written before (the test's share, not
/// the winner sent to everyone else).
fn test_results(store: &dyn Store, row: &BroadcastRow) -> Result<Vec<VariantResult>, StoreError> {
    let has_test = row.document.get("test").is_some_and(|t| !t.is_null());
    if has_test {
        store.broadcast_results(&row.id, row.winner.as_ref().map(|w| w.at))
    } else {
        Ok(Vec::new())
    }
}

async fn load(state: &AppState, id: String) -> ApiResult<BroadcastView> {
    let (row, counts, results) = blocking(state, move |s| {
        let row = s.broadcast(&id)?;
        let results = test_results(s, &row)?;
        Ok((row, s.broadcast_message_counts(&id)?, results))
    })
    .await?;
    Ok(view(row, counts, &results))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks a document against itself and against what the server holds: its template exists
/// and is of its channel, and every segment and list it names exists.
fn check(store: &dyn Store, doc: &BroadcastDocument) -> ApiResult<()> {
    if let Err(errors) = doc.check() {
        let first = errors[0].field.clone().unwrap_or_default();
        return Err(ApiError::invalid(
            "invalid_broadcast",
            first,
            format!(
                "the broadcast has {} error(s): {}",
                errors.len(),
                errors[0].message
            ),
        )
        .with_errors(json!(errors)));
    }
    let templates = std::iter::once(("template".to_string(), &doc.template)).chain(
        doc.test.iter().flat_map(|t| {
            t.variants
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("test.variants[{i}]"), v))
        }),
    );
    for (field, template) in templates {
        match store.template_channel(template)? {
            None => {
                return Err(ApiError::invalid(
                    "invalid_broadcast",
                    field,
                    format!("template `{template}` does not exist"),
                ));
            }
            Some(channel) if channel != doc.channel => {
                return Err(ApiError::invalid(
                    "invalid_broadcast",
                    field,
                    format!(
                        "template `{template}` is for {}, the broadcast for {}",
                        channel.as_str(),
                        doc.channel.as_str()
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let lists = store.lists()?;
    let audiences = std::iter::once(("audience".to_string(), &doc.audience)).chain(
        doc.exclude
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("exclude[{i}]"), a)),
    );
    for (field, audience) in audiences {
        let exists = match audience {
            Audience::Segment(id) => match store.segment(id) {
                Ok(_) => true,
                Err(StoreError::NotFound(_)) => false,
                Err(e) => return Err(e.into()),
            },
            Audience::List(name) => lists.iter().any(|l| &l.name == name),
        };
        if !exists {
            return Err(ApiError::invalid(
                "invalid_broadcast",
                field,
                format!("{audience} does not exist"),
            ));
        }
    }
    Ok(())
}

/// `GET /v1/broadcasts`: newest first.
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<BroadcastList>> {
    let rows = blocking(&state, |s| {
        s.broadcasts()?
            .into_iter()
            .map(|row| {
                let counts = s.broadcast_message_counts(&row.id)?;
                let results = test_results(s, &row)?;
                Ok((row, counts, results))
            })
            .collect::<Result<Vec<_>, StoreError>>()
    })
    .await?;
    Ok(Json(BroadcastList {
        broadcasts: rows
            .into_iter()
            .map(|(r, c, results)| view(r, c, &results))
            .collect(),
    }))
}

/// `POST /v1/broadcasts`: a new draft, its id made from its name.
pub async fn create(
    State(state): State<AppState>,
    Body(doc): Body<BroadcastDocument>,
) -> ApiResult<(StatusCode, Json<BroadcastView>)> {
    let slug: String = doc
        .name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join("-");
    let id = format!(
        "{}-{}",
        &slug[..slug.len().min(60)],
        super::ingest::random_hex(3)
    )
    .trim_start_matches('-')
    .to_string();
    save(state, id, doc, false).await
}

/// `PUT /v1/broadcasts/{id}`: creates or replaces a draft.
pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(doc): Body<BroadcastDocument>,
) -> ApiResult<(StatusCode, Json<BroadcastView>)> {
    save(state, id, doc, true).await
}

async fn save(
    state: AppState,
    id: String,
    doc: BroadcastDocument,
    replace: bool,
) -> ApiResult<(StatusCode, Json<BroadcastView>)> {
    if !valid_id(&id) {
        return Err(ApiError::invalid(
            "invalid_id",
            "id",
            format!("`{id}` must be 1-100 letters, digits, `-` or `_`"),
        ));
    }
    let now = state.engine.clock().now();
    let value = serde_json::to_value(&doc).map_err(|e| ApiError::internal(e.to_string()))?;
    let saved = id.clone();
    let checked = state.engine.store().clone();
    let created = tokio::task::spawn_blocking(move || {
        check(checked.as_ref(), &doc)?;
        let store = checked.as_ref();
        match store.broadcast(&saved) {
            Ok(_) if replace => store.update_broadcast(&saved, &value, now).map(|_| false),
            Ok(_) => Err(StoreError::Conflict(format!(
                "broadcast `{saved}` already exists"
            ))),
            Err(StoreError::NotFound(_)) => {
                store.create_broadcast(&saved, &value, now).map(|_| true)
            }
            Err(e) => Err(e),
        }
        .map_err(ApiError::from)
    })
    .await??;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(load(&state, id).await?)))
}

/// Who a broadcast would reach: a segment or list minus exclusions.
#[derive(Debug, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceRequest {
    pub audience: Audience,
    #[serde(default)]
    pub exclude: Vec<Audience>,
}

impl RequestBody for AudienceRequest {
    const INVALID: &'static str = "invalid_broadcast";
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AudienceSize {
    /// Contacts in the audience and in none of the exclusions now.
    pub size: i64,
}

/// `POST /v1/broadcasts/audience`: how many contacts a broadcast to this audience would reach
/// now (before sending: members may still join or leave).
pub async fn audience_size(
    State(state): State<AppState>,
    Body(request): Body<AudienceRequest>,
) -> ApiResult<Json<AudienceSize>> {
    if request.exclude.len() > waymark_core::broadcast::MAX_EXCLUSIONS {
        return Err(ApiError::invalid(
            "invalid_broadcast",
            "exclude",
            format!(
                "at most {} segments and lists",
                waymark_core::broadcast::MAX_EXCLUSIONS
            ),
        ));
    }
    let size = blocking(&state, move |s| {
        s.count_audience(&request.audience, &request.exclude)
    })
    .await?;
    Ok(Json(AudienceSize { size }))
}

/// `GET /v1/broadcasts/{id}`
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BroadcastView>> {
    Ok(Json(load(&state, id).await?))
}

/// `DELETE /v1/broadcasts/{id}`: a draft only.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(&state, move |s| s.delete_broadcast(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/broadcasts/{id}/send`: starts a draft now, or schedules it for its `send_at`.
pub async fn send(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BroadcastView>> {
    let now = state.engine.clock().now();
    let store = state.engine.store().clone();
    let sent = id.clone();
    let has_goal = tokio::task::spawn_blocking(move || {
        let store = store.as_ref();
        let row = store.broadcast(&sent)?;
        if row.status != BroadcastStatus::Draft {
            return Err(ApiError::conflict(
                "conflict",
                format!(
                    "broadcast `{sent}` is {}: it cannot be sent again",
                    row.status.as_str()
                ),
            ));
        }
        let doc = serde_json::from_value::<BroadcastDocument>(row.document).map_err(|e| {
            ApiError::conflict(
                "conflict",
                format!("the stored broadcast cannot be read: {e}"),
            )
        })?;
        // Checked again: a template or a segment may have gone since the draft was saved.
        check(store, &doc)?;
        let audience_size = store.count_audience(&doc.audience, &doc.exclude)?;
        let send_at = doc.send_at.map_or(now, |at| at.max(now));
        store.change_broadcast(
            &sent,
            BroadcastChange::Schedule {
                send_at,
                audience_size,
            },
            now,
        )?;
        Ok::<_, ApiError>(doc.goal.is_some())
    })
    .await??;
    if has_goal {
        // The engine credits the goal's events from now on.
        state.engine.broadcast_goals_changed().await?;
    }
    state.engine.events_recorded();
    Ok(Json(load(&state, id).await?))
}

async fn change(
    state: AppState,
    id: String,
    change: BroadcastChange,
) -> ApiResult<Json<BroadcastView>> {
    let now = state.engine.clock().now();
    let changed = id.clone();
    blocking(&state, move |s| s.change_broadcast(&changed, change, now)).await?;
    // The engine and the dispatcher both have something new to look at.
    state.engine.events_recorded();
    state.engine.messages_queued();
    Ok(Json(load(&state, id).await?))
}

/// `POST /v1/broadcasts/{id}/pause`
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BroadcastView>> {
    change(state, id, BroadcastChange::Pause).await
}

/// `POST /v1/broadcasts/{id}/resume`
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BroadcastView>> {
    change(state, id, BroadcastChange::Resume).await
}

/// `POST /v1/broadcasts/{id}/cancel`
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BroadcastView>> {
    change(state, id, BroadcastChange::Cancel).await
}
