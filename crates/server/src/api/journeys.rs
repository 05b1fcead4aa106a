//! Journey endpoints: drafts, validation, publishing, status changes, versions and statistics.
//!
//! A draft is stored as written (it may be incomplete while someone builds it) and comes back
//! with its validation errors. Publishing validates strictly, stores an immutable version and
//! makes it live; enrollments stay on the version they entered.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use waymark_core::ValidationError;
use waymark_core::journey::{Channel, JourneyDocument};
use waymark_core::validate::parse_and_validate;
use waymark_engine::JourneyChange;
use waymark_store::{JourneyStatus, Store, StoreError};

use super::AppState;
use super::DocBody;
use super::error::{ApiError, ApiResult};
use super::manage::{blocking, parse_template};

/// Validates a document against the templates it ships and those on the server.
fn check(
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

fn invalid_journey(errors: Vec<ValidationError>) -> ApiError {
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

pub async fn validate(
    State(state): State<AppState>,
    DocBody(doc): DocBody,
) -> ApiResult<Json<Value>> {
    let result = blocking(&state, move |s| check(s, &doc)).await?;
    Ok(Json(match result {
        Ok(_) => json!({ "valid": true, "errors": [] }),
        Err(errors) => json!({ "valid": false, "errors": errors }),
    }))
}

/// The id and name a draft needs at least, and the templates it ships (stored first).
async fn save_draft(
    state: &AppState,
    url_id: Option<&str>,
    mut doc: Value,
) -> ApiResult<(bool, Value)> {
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
    let broken = broken_versions(state, &row.id);
    let mut body = json!(row);
    body["broken"] = json!(broken);
    body["errors"] = json!(errors);
    body["valid"] = json!(errors.is_empty());
    Ok((!existed, body))
}

pub async fn create(
    State(state): State<AppState>,
    DocBody(doc): DocBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
) -> ApiResult<(StatusCode, Json<Value>)> {
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
fn broken_versions(state: &AppState, journey_id: &str) -> Vec<Value> {
    state
        .engine
        .problems()
        .broken
        .into_iter()
        .filter(|b| b.kind == "journey" && b.id == journey_id)
        .map(|b| json!({ "version": b.version, "reason": b.reason }))
        .collect()
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let journeys = blocking(&state, |s| s.journeys()).await?;
    let summaries: Vec<Value> = journeys
        .into_iter()
        .map(|j| {
            json!({
                "id": j.id, "name": j.name, "status": j.status, "live_version": j.live_version,
                "entered": j.entered, "active": j.active, "converted": j.converted,
                "created_at": j.created_at, "updated_at": j.updated_at,
                "first_activity_at": j.first_activity_at, "last_activity_at": j.last_activity_at,
                "broken": broken_versions(&state, &j.id),
            })
        })
        .collect();
    Ok(Json(json!({ "journeys": summaries })))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let (row, validation) = blocking(&state, move |s| {
        let row = s.journey(&id)?;
        let validation = check(s, &row.draft)?;
        Ok((row, validation))
    })
    .await?;
    let errors = validation.err().unwrap_or_default();
    let broken = broken_versions(&state, &row.id);
    let mut body = json!(row);
    body["broken"] = json!(broken);
    body["errors"] = json!(errors);
    body["valid"] = json!(errors.is_empty());
    Ok(Json(body))
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
pub async fn publish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let enroll_existing = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        let options: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        })?;
        match options.get("enroll_existing") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::invalid(
                    "invalid_option",
                    "enroll_existing",
                    "must be true or false",
                ));
            }
        }
    };
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
    let mut body = json!(row);
    body["unchanged"] = json!(unchanged);
    Ok(Json(body))
}

async fn set_status(
    state: AppState,
    id: String,
    to: JourneyStatus,
    change: JourneyChange,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!(row)))
}

pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_status(state, id, JourneyStatus::Paused, JourneyChange::Paused).await
}

pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_status(state, id, JourneyStatus::Live, JourneyChange::Resumed).await
}

pub async fn archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_status(state, id, JourneyStatus::Archived, JourneyChange::Archived).await
}

pub async fn versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let versions = blocking(&state, move |s| s.journey_versions(&id)).await?;
    Ok(Json(json!({ "versions": versions })))
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
) -> ApiResult<Json<Value>> {
    let v = version_number(&version)?;
    let version = blocking(&state, move |s| s.journey_version(&id, v)).await?;
    Ok(Json(json!(version)))
}

pub async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let stats = blocking(&state, move |s| s.journey_stats(&id)).await?;
    Ok(Json(json!(stats)))
}

/// `POST /v1/journeys/{id}/enroll`: enrolls a contact through the journey's `api` trigger.
/// Body: `user_id` (the contact is created if new) or `contact_id`, an optional `payload`
/// object (the trigger event's properties, which templates see as `event`), and an optional
/// `message_id` that makes a retried request enroll once.
pub async fn enroll(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: DocBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = body.0;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::invalid(
            "invalid_body",
            "body",
            "must be an object with `user_id` or `contact_id`",
        ));
    };
    let user_id = match fields.get("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_user_id",
                "user_id",
                "must be a non-empty string",
            ));
        }
    };
    let contact_id = match fields.get("contact_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::invalid("invalid_contact_id", "contact_id", "must be an integer")
        })?),
    };
    if user_id.is_some() == contact_id.is_some() {
        return Err(ApiError::invalid(
            "invalid_body",
            "user_id",
            "give exactly one of `user_id` and `contact_id`",
        ));
    }
    let payload = match fields.get("payload") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_payload",
                "payload",
                "must be an object",
            ));
        }
    };
    let message_id = match fields.get("message_id") {
        None | Some(Value::Null) => format!("enroll-api:{}", super::ingest::random_hex(16)),
        Some(Value::String(s)) if !s.trim().is_empty() => format!("enroll-api:{id}:{s}"),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_message_id",
                "message_id",
                "must be a non-empty string",
            ));
        }
    };
    let now = state.engine.clock().now();
    let journey_id = id.clone();
    let (contact, fresh) = blocking(&state, move |s| {
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
        let mut result = (0, false);
        s.engine_tx(&mut |tx| {
            let contact = match (&user_id, contact_id) {
                (Some(u), _) => tx.resolve_contact(Some(u), None, now)?,
                (None, Some(c)) => {
                    tx.contact(c)
                        .map_err(|_| StoreError::NotFound(format!("contact {c}")))?;
                    c
                }
                (None, None) => unreachable!("checked above"),
            };
            let fresh = waymark_engine::recorded::request_enrollment(
                tx,
                contact,
                &journey_id,
                payload.clone(),
                message_id.clone(),
                now,
            )?;
            result = (contact, fresh);
            Ok(())
        })?;
        Ok(Ok(result))
    })
    .await??;
    state.engine.events_recorded();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "journey": id, "contact_id": contact, "duplicate": !fresh })),
    ))
}

/// `GET /v1/journeys/{id}/experiments`: every experiment node of the live version with its
/// variants' counts and conversion rates, the current verdict and the declared winner.
pub async fn experiments(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
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
    let doc: JourneyDocument =
        serde_json::from_value(doc).map_err(|e| ApiError::internal(e.to_string()))?;
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
        let verdict = waymark_core::experiment::decide(&variants, x.min_sample, x.confidence);
        let winner = winners.iter().find(|w| w.node == node.id);
        let rows: Vec<Value> = variants
            .iter()
            .map(|v| json!({"name": v.name, "entered": v.entered, "converted": v.converted, "rate": v.rate()}))
            .collect();
        let holdout = (x.holdout > 0).then(|| {
            let h = count_of(waymark_core::journey::HOLDOUT);
            json!({"entered": h.entered, "converted": h.converted, "rate": h.rate()})
        });
        out.push(json!({
            "node": node.id,
            "test": "one-sided two-proportion z-test",
            "min_sample": x.min_sample,
            "confidence": x.confidence,
            "variants": rows,
            "holdout": holdout,
            "leader": verdict.leader,
            "comparisons": verdict.comparisons,
            "enough_data": verdict.enough_data,
            "winner": winner.map(|w| w.winner.clone()),
            "decided_at": winner.map(|w| w.decided_at),
        }));
    }
    Ok(Json(json!({ "journey": id, "experiments": out })))
}
