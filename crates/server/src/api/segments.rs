//! Segment endpoints: define segments in the condition language (JSON or text form), count and
//! list their members, and preview a condition before saving it. Membership is kept current by
//! the engine (see `waymark_engine::segments`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use waymark_core::Condition;
use waymark_core::condition::{self, Scope};
use waymark_store::SegmentRow;

use super::AppState;
use super::JsonBody;
use super::error::{ApiError, ApiResult};
use super::manage::{Params, blocking, limit, param_i64};

/// A segment with both forms of its condition; `broken` says why the engine cannot use a
/// stored condition (it is then not kept current).
fn render(row: SegmentRow) -> Value {
    let (text, broken) = match waymark_engine::segments::readable_condition(row.condition.clone()) {
        Ok(c) => (condition::print(&c), None),
        Err(reason) => (String::new(), Some(reason)),
    };
    json!({
        "id": row.id,
        "name": row.name,
        "condition": row.condition,
        "text": text,
        "broken": broken,
        "members": row.members,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

/// Reads the condition of a request: `condition` (JSON form) or `text` (text form), exactly
/// one, checked for use in a segment.
fn condition_of(body: &Value) -> ApiResult<Condition> {
    let parsed = match (body.get("condition"), body.get("text")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_body",
                "condition",
                "give `condition` (JSON form) or `text` (text form), not both",
            ));
        }
        (Some(json), None) => serde_json::from_value::<Condition>(json.clone())
            .map_err(|e| ApiError::invalid("invalid_condition", "condition", e.to_string()))?,
        (None, Some(Value::String(text))) => condition::parse(text).map_err(|e| {
            ApiError::invalid("invalid_condition", "text", e.to_string()).with_errors(json!([{
                "message": e.message,
                "line": e.line,
                "column": e.column,
                "offset": e.offset,
            }]))
        })?,
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_condition",
                "text",
                "must be a string in the text form",
            ));
        }
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
async fn save(state: AppState, id: String, body: Value) -> ApiResult<(StatusCode, Json<Value>)> {
    if !valid_segment_id(&id) {
        return Err(ApiError::invalid(
            "invalid_id",
            "id",
            format!("`{id}` must be 1-100 letters, digits, `-` or `_`"),
        ));
    }
    let name = match body.get("name") {
        None => id.clone(),
        Some(Value::String(n)) if !n.trim().is_empty() => n.clone(),
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
    let row = blocking(&state, move |s| s.segment(&id)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render(row))))
}

/// `POST /v1/segments {id, name?, condition | text}`
pub async fn create(
    State(state): State<AppState>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = match body.0.get("id") {
        Some(Value::String(id)) => id.clone(),
        _ => {
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
    save(state, id, body.0).await
}

/// `PUT /v1/segments/{id} {name?, condition | text}`
pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    save(state, id, body.0).await
}

/// `GET /v1/segments`
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let rows = blocking(&state, |s| s.segments()).await?;
    Ok(Json(
        json!({ "segments": rows.into_iter().map(render).collect::<Vec<_>>() }),
    ))
}

/// `GET /v1/segments/{id}`
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let row = blocking(&state, move |s| s.segment(&id)).await?;
    Ok(Json(render(row)))
}

/// `DELETE /v1/segments/{id}`
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(&state, move |s| s.delete_segment(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/segments/{id}/members?limit=&after=`
pub async fn members(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult<Json<Value>> {
    let n = limit(&params)?;
    let after = param_i64(&params, "after", 0)?;
    let contacts = blocking(&state, move |s| s.segment_members(&id, n, after)).await?;
    Ok(Json(json!({ "contacts": contacts })))
}

/// `POST /v1/segments/preview {condition | text}`: how many contacts match now, a sample of
/// them, and the condition in both forms, without saving anything.
pub async fn preview(State(state): State<AppState>, body: JsonBody) -> ApiResult<Json<Value>> {
    let condition = condition_of(&body.0)?;
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
    Ok(Json(json!({
        "count": count,
        "sample": contacts,
        "condition": json,
        "text": text,
    })))
}
