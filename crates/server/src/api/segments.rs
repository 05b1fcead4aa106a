//! Segment endpoints: define segments in the condition language (JSON or text form), count and
//! list their members, and preview a condition before saving it. Membership is kept current by
//! the engine (see `waymark_engine::segments`). A segment names the journeys whose triggers use
//! it, and cannot be deleted while one does.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use waymark_core::Condition;
use waymark_core::condition::{self, Scope};
use waymark_core::journey::JourneyDocument;
use waymark_store::{Contact, JourneyStatus, SegmentRow, Store, StoreError};

use super::error::{ApiError, ApiResult};
use super::manage::{ContactsPage, Page, blocking};
use super::{AppState, Body, QueryParams, RequestBody};

/// A segment with both forms of its condition; `broken` says why the engine cannot use a
/// stored condition (it is then not kept current).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SegmentView {
    pub id: String,
    pub name: String,
    /// The condition in the JSON form.
    #[schemars(with = "Condition")]
    pub condition: Value,
    /// The condition in the text form.
    pub text: String,
    pub broken: Option<String>,
    pub members: i64,
    /// The journeys (archived ones aside) whose triggers name the segment.
    pub used_by: Vec<SegmentUse>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A journey whose triggers name a segment: a segment trigger (entry or exit) or a schedule
/// drawing from the segment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SegmentUse {
    pub journey_id: String,
    pub journey_name: String,
    pub status: JourneyStatus,
    /// Its live version names the segment.
    pub live: bool,
    /// Its draft names the segment.
    pub draft: bool,
}

/// The journeys that name each segment, by segment id: every journey not archived, through its
/// draft and its live version. A document that cannot be read names nothing (the problems
/// report covers a live version that cannot be read).
fn segment_uses(store: &dyn Store) -> Result<HashMap<String, Vec<SegmentUse>>, StoreError> {
    let named = |document: Value| {
        serde_json::from_value::<JourneyDocument>(document)
            .map(|doc| doc.segments())
            .unwrap_or_default()
    };
    let mut uses: HashMap<String, Vec<SegmentUse>> = HashMap::new();
    for journey in store.journeys()? {
        if journey.status == JourneyStatus::Archived {
            continue;
        }
        let in_draft = named(journey.draft);
        let in_live = match journey.live_version {
            Some(version) => match store.journey_version(&journey.id, version) {
                Ok(v) => named(v.document),
                Err(StoreError::NotFound(_)) => Vec::new(),
                Err(e) => return Err(e),
            },
            None => Vec::new(),
        };
        let mut segments = in_live.clone();
        segments.extend(in_draft.iter().filter(|s| !in_live.contains(s)).cloned());
        for segment in segments {
            uses.entry(segment.clone()).or_default().push(SegmentUse {
                journey_id: journey.id.clone(),
                journey_name: journey.name.clone(),
                status: journey.status,
                live: in_live.contains(&segment),
                draft: in_draft.contains(&segment),
            });
        }
    }
    Ok(uses)
}

/// A stored segment, with the journeys that use it (taken from `uses`).
fn render(row: SegmentRow, uses: &mut HashMap<String, Vec<SegmentUse>>) -> SegmentView {
    let (text, broken) = match waymark_engine::segments::readable_condition(row.condition.clone()) {
        Ok(c) => (condition::print(&c), None),
        Err(reason) => (String::new(), Some(reason)),
    };
    let used_by = uses.remove(&row.id).unwrap_or_default();
    SegmentView {
        id: row.id,
        name: row.name,
        condition: row.condition,
        text,
        broken,
        members: row.members,
        used_by,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// A segment to save, or a condition to preview: `condition` (JSON form) or `text` (text
/// form), exactly one. `id` is read by `POST /v1/segments` only; `name` defaults to the id.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SegmentRequest {
    /// 1-100 letters, digits, `-` or `_`.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub id: Option<String>,
    #[schemars(length(min = 1))]
    pub name: Option<String>,
    #[schemars(with = "Option<Condition>")]
    pub condition: Option<Value>,
    pub text: Option<String>,
}

impl RequestBody for SegmentRequest {
    const INVALID: &'static str = "invalid_body";
    fn invalid_code(field: &str) -> &'static str {
        match field {
            "id" => "invalid_id",
            "name" => "invalid_name",
            "condition" | "text" => "invalid_condition",
            _ => Self::INVALID,
        }
    }
}

/// Reads the condition of a request: `condition` (JSON form) or `text` (text form), exactly
/// one, checked for use in a segment.
fn condition_of(body: &SegmentRequest) -> ApiResult<Condition> {
    let parsed = match (&body.condition, &body.text) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_body",
                "condition",
                "give `condition` (JSON form) or `text` (text form), not both",
            ));
        }
        (Some(json), None) => serde_json::from_value::<Condition>(json.clone())
            .map_err(|e| ApiError::invalid("invalid_condition", "condition", e.to_string()))?,
        (None, Some(text)) => condition::parse(text).map_err(|e| {
            ApiError::invalid("invalid_condition", "text", e.to_string()).with_errors(json!([{
                "message": e.message,
                "line": e.line,
                "column": e.column,
                "offset": e.offset,
            }]))
        })?,
        (None, None) => {
            return Err(ApiError::invalid(
                "invalid_body",
                "condition",
                "give `condition` (JSON form) or `text` (text form)",
            ));
        }
    };
    let errors = condition::validate(&parsed, Scope::Segment);
    if let Some(first) = errors.first() {
        let field = if first.path.is_empty() {
            "condition".to_string()
        } else {
            format!("condition.{}", first.path)
        };
        return Err(
            ApiError::invalid("invalid_condition", field, first.message.clone()).with_errors(
                json!(
                    errors
                        .iter()
                        .map(|e| json!({"code": e.code, "path": e.path, "message": e.message}))
                        .collect::<Vec<_>>()
                ),
            ),
        );
    }
    Ok(parsed.canonical())
}

fn valid_segment_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Saves a segment, then evaluates every contact against it.
async fn save(
    state: AppState,
    id: String,
    body: SegmentRequest,
) -> ApiResult<(StatusCode, Json<SegmentView>)> {
    if !valid_segment_id(&id) {
        return Err(ApiError::invalid(
            "invalid_id",
            "id",
            format!("`{id}` must be 1-100 letters, digits, `-` or `_`"),
        ));
    }
    let name = match &body.name {
        None => id.clone(),
        Some(n) if !n.trim().is_empty() => n.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_name",
                "name",
                "must be a non-empty string",
            ));
        }
    };
    let condition = condition_of(&body)?;
    let json = serde_json::to_value(&condition).map_err(|e| ApiError::internal(e.to_string()))?;
    let now = state.engine.clock().now();
    let saved_id = id.clone();
    let created = blocking(&state, move |s| s.put_segment(&saved_id, &name, &json, now)).await?;
    state.engine.segment_changed(&id).await?;
    let row = blocking(&state, move |s| {
        Ok(render(s.segment(&id)?, &mut segment_uses(s)?))
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(row)))
}

/// `POST /v1/segments {id, name?, condition | text}`
pub async fn create(
    State(state): State<AppState>,
    Body(body): Body<SegmentRequest>,
) -> ApiResult<(StatusCode, Json<SegmentView>)> {
    let id = match &body.id {
        Some(id) => id.clone(),
        None => {
            return Err(ApiError::invalid(
                "invalid_id",
                "id",
                "is required (a string)",
            ));
        }
    };
    let exists = {
        let id = id.clone();
        blocking(&state, move |s| Ok(s.segment(&id).is_ok())).await?
    };
    if exists {
        return Err(ApiError::conflict(
            "segment_exists",
            format!("a segment `{id}` exists; PUT /v1/segments/{id} changes it"),
        ));
    }
    save(state, id, body).await
}

/// `PUT /v1/segments/{id} {name?, condition | text}`
pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<SegmentRequest>,
) -> ApiResult<(StatusCode, Json<SegmentView>)> {
    save(state, id, body).await
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Segments {
    pub segments: Vec<SegmentView>,
}

/// `GET /v1/segments`
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Segments>> {
    let segments = blocking(&state, |s| {
        let mut uses = segment_uses(s)?;
        let rows = s.segments()?;
        Ok(rows.into_iter().map(|row| render(row, &mut uses)).collect())
    })
    .await?;
    Ok(Json(Segments { segments }))
}

/// `GET /v1/segments/{id}`
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SegmentView>> {
    let view = blocking(&state, move |s| {
        Ok(render(s.segment(&id)?, &mut segment_uses(s)?))
    })
    .await?;
    Ok(Json(view))
}

/// `DELETE /v1/segments/{id}`: refused (`segment_in_use`) while a journey that is not archived
/// names the segment in its draft or live version, whose trigger would otherwise wait for a
/// segment that is gone.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(&state, move |s| {
        s.segment(&id)?;
        let used_by = segment_uses(s)?.remove(&id).unwrap_or_default();
        if !used_by.is_empty() {
            let names: Vec<String> = used_by
                .iter()
                .map(|u| format!("`{}`", u.journey_id))
                .collect();
            return Ok(Err(ApiError::conflict(
                "segment_in_use",
                format!(
                    "segment `{id}` is used by the triggers of journey(s) {}: take it out of them, or archive them, first",
                    names.join(", ")
                ),
            )));
        }
        s.delete_segment(&id).map(Ok)
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/segments/{id}/members?limit=&after=`
pub async fn members(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult<Json<ContactsPage>> {
    let (n, after) = (page.limit()?, page.after());
    let contacts = blocking(&state, move |s| s.segment_members(&id, n, after)).await?;
    Ok(Json(ContactsPage { contacts }))
}

/// What a condition matches now.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SegmentPreview {
    pub count: i64,
    /// Up to 20 of the contacts it matches.
    pub sample: Vec<Contact>,
    #[schemars(with = "Condition")]
    pub condition: Value,
    pub text: String,
}

/// `POST /v1/segments/preview {condition | text}`: how many contacts match now, a sample of
/// them, and the condition in both forms, without saving anything.
pub async fn preview(
    State(state): State<AppState>,
    Body(body): Body<SegmentRequest>,
) -> ApiResult<Json<SegmentPreview>> {
    let condition = condition_of(&body)?;
    let text = condition::print(&condition);
    let json = serde_json::to_value(&condition).map_err(|e| ApiError::internal(e.to_string()))?;
    let (count, sample) = state.engine.preview_condition(condition, 20).await?;
    let contacts = blocking(&state, move |s| {
        sample
            .into_iter()
            .map(|id| s.contact(id).map(|d| d.contact))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(Json(SegmentPreview {
        count,
        sample: contacts,
        condition: json,
        text,
    }))
}
