//! Management endpoints for contacts, lists, templates, messages and the clock.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use waymark_core::EventKind;
use waymark_core::journey::TemplateDefinition;
use waymark_engine::send::{Outgoing, Purpose, TemplateSource};
use waymark_store::{ContactQuery, MessageQuery, NewEvent, RequeueFilter, Store, StoreError};

use super::error::{ApiError, ApiResult};
use super::ingest::{check_traits, random_hex};
use super::{AppState, JsonBody};

pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> ApiResult<T> {
    let store = state.engine.store().clone();
    Ok(tokio::task::spawn_blocking(move || f(store.as_ref())).await??)
}

pub(crate) type Params = Query<HashMap<String, String>>;

pub(crate) fn param_i64(
    params: &HashMap<String, String>,
    key: &str,
    default: i64,
) -> ApiResult<i64> {
    match params.get(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ApiError::invalid(
                "invalid_parameter",
                key,
                format!("`{v}` is not a whole number"),
            )
        }),
    }
}

pub(crate) fn limit(params: &HashMap<String, String>) -> ApiResult<usize> {
    let n = param_i64(params, "limit", 100)?;
    if !(1..=1000).contains(&n) {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "limit",
            "must be between 1 and 1000",
        ));
    }
    Ok(n as usize)
}

pub async fn find_contacts(
    State(state): State<AppState>,
    Query(p): Params,
) -> ApiResult<Json<Value>> {
    let query = ContactQuery {
        user_id: p.get("user_id").cloned(),
        email: p.get("email").map(|e| e.trim().to_lowercase()),
        phone: p.get("phone").cloned(),
        anonymous_id: p.get("anonymous_id").cloned(),
        search: p.get("q").filter(|q| !q.trim().is_empty()).cloned(),
        limit: limit(&p)?,
        after_id: param_i64(&p, "after", 0)?,
    };
    let contacts = blocking(&state, move |s| s.find_contacts(&query)).await?;
    Ok(Json(json!({ "contacts": contacts })))
}

pub(crate) fn contact_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| {
        ApiError::invalid(
            "invalid_parameter",
            "id",
            format!("`{raw}` is not a contact id (a number)"),
        )
    })
}

pub async fn get_contact(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = contact_id(&id)?;
    let contact = blocking(&state, move |s| s.contact(id)).await?;
    Ok(Json(
        serde_json::to_value(contact).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

pub async fn timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult<Json<Value>> {
    let id = contact_id(&id)?;
    let n = param_i64(&p, "limit", 500)?.clamp(1, 10_000) as usize;
    let entries = blocking(&state, move |s| {
        s.contact(id)?;
        s.timeline(id, n)
    })
    .await?;
    Ok(Json(json!({ "contact_id": id, "entries": entries })))
}

/// Imports contacts as identify calls, through the same intake as the tracking API, so that
/// identity resolution and journey triggers behave the same.
pub async fn import_contacts(
    State(state): State<AppState>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let Some(rows) = body.0.get("contacts").and_then(Value::as_array).cloned() else {
        return Err(ApiError::invalid(
            "invalid_import",
            "contacts",
            "must be a list of contacts",
        ));
    };
    if rows.len() > 5000 {
        return Err(ApiError::invalid(
            "invalid_import",
            "contacts",
            "at most 5000 contacts per request",
        ));
    }
    let now = state.engine.clock().now();
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let prefix = format!("contacts[{i}].");
        let parsed = (|| {
            let obj = row
                .as_object()
                .ok_or_else(|| (format!("contacts[{i}]"), "must be an object".to_string()))?;
            let user_id = obj
                .get("user_id")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let mut traits: Map<String, Value> = match obj.get("traits") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(t)) => t.clone(),
                Some(_) => {
                    return Err((format!("{prefix}traits"), "must be an object".to_string()));
                }
            };
            for key in ["email", "phone", "timezone"] {
                if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
                    traits.insert(key.to_string(), v.clone());
                }
            }
            check_traits(&mut traits, &prefix).map_err(|e| (e.field, e.message))?;
            let email = traits
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_string);
            let user_id = user_id.map(str::to_string).or(email).ok_or_else(|| {
                (
                    format!("{prefix}user_id"),
                    "a contact needs a user_id or an email".to_string(),
                )
            })?;
            Ok(NewEvent {
                message_id: format!("import-{}", random_hex(16)),
                kind: EventKind::Identify,
                name: "Identify".into(),
                user_id: Some(user_id),
                anonymous_id: None,
                previous_id: None,
                properties: traits,
                timestamp: now,
                received_at: now,
            })
        })();
        match parsed {
            Ok(e) => events.push(e),
            Err((field, message)) => {
                errors.push(json!({ "index": i, "field": field, "message": message }))
            }
        }
    }
    let imported = events.len();
    state
        .engine
        .intake()
        .append(events)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(
        json!({ "imported": imported, "rejected": errors.len(), "errors": errors }),
    ))
}

pub async fn lists(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let lists = blocking(&state, |s| s.lists()).await?;
    Ok(Json(json!({ "lists": lists })))
}

fn list_name(v: &Value) -> ApiResult<String> {
    match v.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 200 => Ok(n.to_string()),
        _ => Err(ApiError::invalid(
            "invalid_list",
            "name",
            "a list needs a name of 1 to 200 characters",
        )),
    }
}

pub async fn create_list(
    State(state): State<AppState>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = list_name(&body.0)?;
    let now = state.engine.clock().now();
    let list = blocking(&state, move |s| s.create_list(&name, now)).await?;
    Ok((StatusCode::CREATED, Json(json!(list))))
}

pub async fn list_members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(p): Params,
) -> ApiResult<Json<Value>> {
    let n = limit(&p)?;
    let after = param_i64(&p, "after", 0)?;
    let members = blocking(&state, move |s| s.list_members(&name, n, after)).await?;
    Ok(Json(json!({ "contacts": members })))
}

fn contact_ids(body: &Value) -> ApiResult<Vec<i64>> {
    body.get("contact_ids")
        .and_then(Value::as_array)
        .and_then(|ids| ids.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
        .filter(|ids| !ids.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_members",
                "contact_ids",
                "must be a non-empty list of contact ids",
            )
        })
}

async fn change_members(
    state: AppState,
    name: String,
    body: Value,
    add: bool,
) -> ApiResult<Json<Value>> {
    let ids = contact_ids(&body)?;
    let now = state.engine.clock().now();
    let count = ids.len();
    blocking(&state, move |s| {
        s.engine_tx(&mut |tx| {
            for id in &ids {
                tx.contact(*id)
                    .map_err(|_| StoreError::NotFound(format!("contact {id}")))?;
                if add {
                    waymark_engine::recorded::add_to_list(tx, *id, &name, now)?;
                } else {
                    waymark_engine::recorded::remove_from_list(tx, *id, &name, now)?;
                }
            }
            Ok(())
        })
    })
    .await?;
    state.engine.events_recorded();
    Ok(Json(json!({ "changed": count })))
}

pub async fn add_list_members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    change_members(state, name, body.0, true).await
}

pub async fn remove_list_members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    change_members(state, name, body.0, false).await
}

/// Parses and compiles a template definition, reporting every problem.
pub(crate) fn parse_template(value: &Value) -> ApiResult<TemplateDefinition> {
    let def: TemplateDefinition = serde_json::from_value(value.clone()).map_err(|e| {
        ApiError::bad_request(
            "invalid_template",
            format!("the template is malformed: {e}"),
        )
    })?;
    if def.id.is_empty()
        || !def
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::invalid(
            "invalid_template",
            "id",
            "template ids are letters, digits, `-` or `_`",
        ));
    }
    if let Err(errors) = waymark_render::compile(&def) {
        let first = errors[0].field.clone();
        return Err(ApiError::invalid(
            "invalid_template",
            first,
            format!("template `{}` has {} error(s)", def.id, errors.len()),
        )
        .with_errors(json!(errors)));
    }
    Ok(def)
}

pub async fn templates(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let templates = blocking(&state, |s| s.templates()).await?;
    Ok(Json(json!({ "templates": templates })))
}

pub async fn get_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = blocking(&state, move |s| s.get_template(&id)).await?;
    Ok(Json(json!(t)))
}

pub async fn create_template(
    State(state): State<AppState>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let def = parse_template(&body.0)?;
    let now = state.engine.clock().now();
    let id = def.id.clone();
    let created = blocking(&state, move |s| {
        if s.template_channel(&def.id)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "template `{}` exists; use PUT to replace it",
                def.id
            )));
        }
        s.put_template(&def, now)
    })
    .await?;
    debug_assert!(created);
    let t = blocking(&state, move |s| s.get_template(&id)).await?;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

pub async fn put_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut value = body.0;
    if let Some(obj) = value.as_object_mut() {
        match obj.get("id").and_then(Value::as_str) {
            Some(given) if given != id => {
                return Err(ApiError::invalid(
                    "invalid_template",
                    "id",
                    format!("the body's id `{given}` differs from the URL's `{id}`"),
                ));
            }
            _ => {
                obj.insert("id".into(), json!(id));
            }
        }
    }
    let def = parse_template(&value)?;
    let now = state.engine.clock().now();
    let created = blocking(&state, move |s| s.put_template(&def, now)).await?;
    let t = blocking(&state, move |s| s.get_template(&id)).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(json!(t)),
    ))
}

/// `GET /v1/templates/{id}/versions`: newest first, each with the journey versions that pin it.
pub async fn template_versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let versions = blocking(&state, move |s| s.template_versions(&id)).await?;
    Ok(Json(json!({ "versions": versions })))
}

/// `GET /v1/templates/{id}/versions/{version}`: the definition as it was in that version.
pub async fn template_version(
    State(state): State<AppState>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let v = super::journeys::version_number(&version)?;
    let template = blocking(&state, move |s| s.get_template_version(&id, v)).await?;
    Ok(Json(json!(template)))
}

pub async fn delete_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(&state, move |s| s.delete_template(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A template rendered for a preview or a test send.
struct RenderedFor {
    template: String,
    channel: waymark_core::Channel,
    contact_id: Option<i64>,
    /// What the template saw.
    data: Map<String, Value>,
    rendered: waymark_render::Rendered,
}

/// Renders template `id` with a contact's data (`contact_id`) or sample data (`contact`,
/// `event`, `journey`), as a journey's send would: Liquid, MJML, generated text part.
async fn render_with(state: &AppState, id: String, body: &Value) -> ApiResult<RenderedFor> {
    let template = blocking(state, move |s| s.get_template(&id)).await?;
    let compiled = waymark_render::compile(&template.definition).map_err(|errors| {
        ApiError::bad_request("invalid_template", "the stored template does not compile")
            .with_errors(json!(errors))
    })?;
    let mut contact = match body.get("contact") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(c)) => c.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_parameter",
                "contact",
                "must be an object",
            ));
        }
    };
    let contact_id = match body.get("contact_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::invalid(
                "invalid_parameter",
                "contact_id",
                "must be a contact id (a number)",
            )
        })?),
    };
    if let Some(cid) = contact_id {
        let detail = blocking(state, move |s| s.contact(cid)).await?;
        contact = waymark_engine::send::contact_data(&detail.contact);
    }
    let mut data = Map::new();
    data.insert("contact".into(), Value::Object(contact));
    data.insert(
        "event".into(),
        body.get("event").cloned().unwrap_or(json!({})),
    );
    data.insert(
        "journey".into(),
        body.get("journey").cloned().unwrap_or(json!({})),
    );
    // `recommendations`: sample data if given, else the contact's, computed as a send would.
    use waymark_engine::recommendations as recs;
    if let Some(sample) = body.get(recs::VARIABLE) {
        data.insert(recs::VARIABLE.into(), sample.clone());
    } else if let Some(cid) = contact_id
        && recs::uses_recommendations(&template.definition)
    {
        let list = blocking(state, move |s| {
            let mut list = Vec::new();
            s.engine_tx(&mut |tx| {
                list = recs::for_contact(tx, cid, recs::LIST_LENGTH)?;
                Ok(())
            })?;
            Ok(list)
        })
        .await?;
        data.insert(recs::VARIABLE.into(), Value::Array(list));
    }
    let rendered = compiled
        .render(&data)
        .map_err(|e| ApiError::invalid("render_failed", e.field.clone(), e.message))?;
    Ok(RenderedFor {
        template: template.definition.id,
        channel: template.definition.channel,
        contact_id,
        data,
        rendered,
    })
}

/// Renders a template with a contact's data (`contact_id`) or sample data (`contact`, `event`):
/// subject, HTML and text (generated when the template has none). For an SMS template, `sms`
/// gives the encoding (GSM-7 or UCS-2), the length in that encoding and the number of segments.
pub async fn preview_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let out = render_with(&state, id, &body.0).await?;
    let mut preview = json!(out.rendered);
    if out.channel == waymark_core::Channel::Sms {
        let text = out.rendered.text.as_deref().unwrap_or_default();
        preview["sms"] = json!(waymark_render::sms_segments(text));
    }
    Ok(Json(preview))
}

/// Renders a template like the preview and queues it to the address `to` through the outbox,
/// so that it goes through the configured transport and shows in `/v1/messages` (no journey).
pub async fn test_send_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = body.0;
    let Some(to) = body.get("to").and_then(Value::as_str) else {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "to",
            "is required: the address to send the test to",
        ));
    };
    let to = to.to_string();
    let out = render_with(&state, id, &body).await?;
    let recipient = match out.channel {
        waymark_core::Channel::Email => waymark_core::Email::parse(&to)
            .map_err(|e| ApiError::invalid("invalid_parameter", "to", e.to_string()))?
            .to_string(),
        waymark_core::Channel::Sms => waymark_core::Phone::parse(&to)
            .map_err(|e| ApiError::invalid("invalid_parameter", "to", e.to_string()))?
            .as_str()
            .to_string(),
    };
    // Through the send gate like any message: an address on the suppression list (a hard
    // bounce, a complaint, STOP) is not sent to, even for a test.
    let now = state.engine.clock().now();
    let key = format!("test-send:{}", random_hex(16));
    let decision = {
        let key = key.clone();
        let recipient = recipient.clone();
        let RenderedFor {
            template,
            channel,
            contact_id,
            data,
            ..
        } = out;
        state
            .engine
            .send(move |tx, gate| {
                let outgoing = Outgoing {
                    idempotency_key: key.clone(),
                    // A test send belongs to no contact unless one was named (0 is no contact).
                    contact_id: contact_id.unwrap_or(0),
                    channel,
                    template: TemplateSource::Stored(&template),
                    purpose: Purpose::Test,
                    to: Some(recipient.clone()),
                    data: Some(data.clone()),
                };
                gate.send(tx, outgoing, now)
            })
            .await?
    };
    let mut result = json!(decision.rendered.unwrap_or_default());
    result["to"] = json!(recipient);
    result["status"] = json!(decision.status.as_str());
    if let Some(error) = decision.error {
        result["error"] = json!(error);
    }
    result["idempotency_key"] = json!(key);
    Ok((StatusCode::ACCEPTED, Json(result)))
}

pub async fn messages(State(state): State<AppState>, Query(p): Params) -> ApiResult<Json<Value>> {
    let contact_id = match p.get("contact_id") {
        Some(_) => Some(param_i64(&p, "contact_id", 0)?),
        None => None,
    };
    let query = MessageQuery {
        user_id: p.get("user_id").cloned(),
        contact_id,
        journey_id: p.get("journey_id").cloned(),
        channel: p.get("channel").cloned(),
        status: p.get("status").cloned(),
        limit: limit(&p)?,
        after_id: param_i64(&p, "after", 0)?,
    };
    let messages = blocking(&state, move |s| s.messages(&query)).await?;
    Ok(Json(json!({ "messages": messages })))
}

/// The longest `error` text a requeue filter may search for.
pub const MAX_REQUEUE_ERROR_CHARS: usize = 500;

/// Parses a requeue filter at the edge: known fields only (a misspelt field must not widen
/// the filter to every failed message), at least one criterion, times as RFC 3339 timestamps
/// or as durations before `now` (`2h`: two hours ago).
pub fn parse_requeue_filter(body: &Value, now: jiff::Timestamp) -> ApiResult<RequeueFilter> {
    const FIELDS: [&str; 7] = [
        "journey_id",
        "channel",
        "created_since",
        "created_until",
        "failed_since",
        "failed_until",
        "error",
    ];
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object: the requeue filter",
        ));
    };
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            "invalid_parameter",
            unknown.clone(),
            format!(
                "is not a requeue filter field (known: {})",
                FIELDS.join(", ")
            ),
        ));
    }
    let text = |field: &str, max: usize| -> ApiResult<Option<String>> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) if !v.trim().is_empty() && v.chars().count() <= max => {
                Ok(Some(v.trim().to_string()))
            }
            Some(_) => Err(ApiError::invalid(
                "invalid_parameter",
                field,
                format!("must be a non-empty string of at most {max} characters"),
            )),
        }
    };
    let time = |field: &str| -> ApiResult<Option<jiff::Timestamp>> {
        let Some(raw) = text(field, 64)? else {
            return Ok(None);
        };
        if let Ok(at) = raw.parse::<jiff::Timestamp>() {
            return Ok(Some(at));
        }
        match waymark_core::Duration::parse(&raw) {
            Ok(ago) => Ok(Some(
                now.saturating_sub(jiff::SignedDuration::from_secs(ago.seconds()))
                    .unwrap_or(jiff::Timestamp::MIN),
            )),
            Err(_) => Err(ApiError::invalid(
                "invalid_parameter",
                field,
                format!(
                    "`{raw}` is neither an RFC 3339 timestamp (2025-03-01T09:00:00Z) nor a \
                     duration before now (`2h`, `3d`)"
                ),
            )),
        }
    };
    let channel = text("channel", 16)?;
    if let Some(c) = &channel
        && waymark_core::OutboxChannel::parse(c).is_none()
    {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "channel",
            format!("`{c}` is not a channel (email, sms or webhook)"),
        ));
    }
    let filter = RequeueFilter {
        journey_id: text("journey_id", 200)?,
        channel,
        created_since: time("created_since")?,
        created_until: time("created_until")?,
        failed_since: time("failed_since")?,
        failed_until: time("failed_until")?,
        error_contains: text("error", MAX_REQUEUE_ERROR_CHARS)?,
    };
    for (since, until, field) in [
        (filter.created_since, filter.created_until, "created_until"),
        (filter.failed_since, filter.failed_until, "failed_until"),
    ] {
        if let (Some(since), Some(until)) = (since, until)
            && until <= since
        {
            return Err(ApiError::invalid(
                "invalid_parameter",
                field,
                "must be later than the matching `_since`",
            ));
        }
    }
    if filter.is_empty() {
        return Err(ApiError::bad_request(
            "requeue_filter_required",
            format!(
                "give at least one of {}; to requeue every failed message, give a time range \
                 such as `failed_since`",
                FIELDS.join(", ")
            ),
        ));
    }
    Ok(filter)
}

/// Puts the failed messages matching a filter back in the queue (same id and idempotency key;
/// attempts and retry lifetime start over). Bounced and suppressed messages are never requeued.
pub async fn requeue_messages(
    State(state): State<AppState>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let now = state.engine.clock().now();
    let filter = parse_requeue_filter(&body.0, now)?;
    let requeued = blocking(&state, move |s| s.requeue_messages(&filter, now)).await?;
    if requeued > 0 {
        tracing::info!(requeued, "failed messages requeued");
        state.engine.messages_queued();
    }
    Ok(Json(json!({ "requeued": requeued })))
}

pub async fn clock(State(state): State<AppState>) -> Json<Value> {
    let clock = state.engine.clock();
    Json(json!({ "now": clock.now(), "simulated": clock.is_simulated() }))
}

pub async fn advance_clock(
    State(state): State<AppState>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let seconds = match body.0.get("seconds") {
        Some(v) => v
            .as_i64()
            .filter(|s| (0..=10 * 365 * 86_400).contains(s))
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_parameter",
                    "seconds",
                    "must be a whole number of seconds between 0 and ten years",
                )
            })?,
        None => {
            return Err(ApiError::invalid(
                "invalid_parameter",
                "seconds",
                "is required",
            ));
        }
    };
    let now = state.engine.advance(seconds).await?;
    Ok(Json(json!({ "now": now, "simulated": true })))
}
