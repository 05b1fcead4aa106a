//! The Segment-compatible tracking API: `/v1/identify`, `/v1/track`, `/v1/page`, `/v1/screen`,
//! `/v1/group`, `/v1/alias` and `/v1/batch`, authenticated by the write key as the basic-auth
//! user name (or `writeKey` in the body, as Segment also allows).
//!
//! Each call is parsed into validated events at the edge. A request answers 200 only after its
//! events are committed. In a batch, valid events are committed and invalid ones are reported
//! (400 with the index and field of each); retrying the whole batch is safe because events are
//! de-duplicated by `messageId`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::HeaderMap;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use waymark_core::{Email, EventKind, Phone, TimeZoneName};
use waymark_store::NewEvent;

use super::error::{ApiError, ApiResult};
use super::{AppState, authorize_write_key};

pub const PAGE_VIEWED: &str = "Page Viewed";
pub const SCREEN_VIEWED: &str = "Screen Viewed";
const MAX_ID_LEN: usize = 512;

/// Limits of a tracking call's contents (docs/api.md, "Limits of a call"). Events are kept
/// forever and read by every journey and segment: an unbounded name or property would cost
/// storage and evaluation time on every later read.
pub mod limits {
    /// Characters of an event name (`event` of a track call).
    pub const EVENT_NAME_CHARS: usize = 200;
    /// Characters of a key of `traits` or `properties`, at any depth.
    pub const KEY_CHARS: usize = 200;
    /// Bytes (UTF-8) of a string value in `traits` or `properties`, and of a page's `name` and
    /// `category`.
    pub const STRING_BYTES: usize = 32 * 1024;
    /// Keys of one object in `traits` or `properties` (at any depth).
    pub const KEYS_PER_OBJECT: usize = 1000;
    /// Nesting of objects and arrays: `properties` itself is level 1.
    pub const DEPTH: usize = 16;
}

#[derive(Debug)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn field_err(prefix: &str, field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: format!("{prefix}{field}"),
        message: message.into(),
    }
}

/// A Segment id may be a string or a number; empty means absent.
fn id_field(
    obj: &Map<String, Value>,
    key: &str,
    prefix: &str,
) -> Result<Option<String>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_ID_LEN => Err(field_err(
            prefix,
            key,
            format!("must be at most {MAX_ID_LEN} characters"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(field_err(prefix, key, "must be a string")),
    }
}

fn object_field(
    obj: &Map<String, Value>,
    key: &str,
    prefix: &str,
) -> Result<Map<String, Value>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o.clone()),
        Some(_) => Err(field_err(prefix, key, "must be an object")),
    }
}

/// The path of a key inside a field, shortened when the key is long (the message says why).
fn child_path(path: &str, key: &str) -> String {
    let shown: String = key.chars().take(40).collect();
    let ellipsis = if shown.len() < key.len() { "…" } else { "" };
    format!("{path}.{shown}{ellipsis}")
}

/// Checks `value` (the field `path` of a call, at nesting level `depth`) against [`limits`].
fn check_limits(value: &Value, path: &str, depth: usize, prefix: &str) -> Result<(), FieldError> {
    match value {
        Value::String(s) if s.len() > limits::STRING_BYTES => Err(field_err(
            prefix,
            path,
            format!(
                "is {} bytes long; a string value may have at most {} bytes (32 KiB)",
                s.len(),
                limits::STRING_BYTES
            ),
        )),
        Value::Array(items) => {
            check_depth(path, depth, prefix)?;
            items.iter().enumerate().try_for_each(|(i, item)| {
                check_limits(item, &format!("{path}[{i}]"), depth + 1, prefix)
            })
        }
        Value::Object(map) => check_map(map, path, depth, prefix),
        _ => Ok(()),
    }
}

fn check_depth(path: &str, depth: usize, prefix: &str) -> Result<(), FieldError> {
    if depth > limits::DEPTH {
        return Err(field_err(
            prefix,
            path,
            format!(
                "nests deeper than {} levels of objects and arrays",
                limits::DEPTH
            ),
        ));
    }
    Ok(())
}

/// [`check_limits`] of an object; `traits` and `properties` themselves are level 1.
fn check_map(
    map: &Map<String, Value>,
    path: &str,
    depth: usize,
    prefix: &str,
) -> Result<(), FieldError> {
    check_depth(path, depth, prefix)?;
    if map.len() > limits::KEYS_PER_OBJECT {
        return Err(field_err(
            prefix,
            path,
            format!(
                "has {} keys; an object may have at most {}",
                map.len(),
                limits::KEYS_PER_OBJECT
            ),
        ));
    }
    for (key, item) in map {
        let child = child_path(path, key);
        if key.chars().count() > limits::KEY_CHARS {
            return Err(field_err(
                prefix,
                &child,
                format!("is a key longer than {} characters", limits::KEY_CHARS),
            ));
        }
        check_limits(item, &child, depth + 1, prefix)?;
    }
    Ok(())
}

/// A page's or screen's `name` or `category`, within the string limit.
fn short_string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    prefix: &str,
) -> Result<Option<&'a str>, FieldError> {
    match obj.get(key).and_then(Value::as_str) {
        Some(s) if s.len() > limits::STRING_BYTES => Err(field_err(
            prefix,
            key,
            format!("may have at most {} bytes (32 KiB)", limits::STRING_BYTES),
        )),
        other => Ok(other),
    }
}

/// Checks the traits Waymark uses for sending and scheduling, normalising them in place.
pub fn check_traits(traits: &mut Map<String, Value>, prefix: &str) -> Result<(), FieldError> {
    for key in ["email", "phone", "timezone"] {
        let Some(v) = traits.get(key) else { continue };
        if v.is_null() {
            continue;
        }
        let Some(s) = v.as_str() else {
            return Err(field_err(
                prefix,
                &format!("traits.{key}"),
                "must be a string",
            ));
        };
        let normalised = match key {
            "email" => Email::parse(s).map(|e| e.as_str().to_string()),
            "phone" => Phone::parse(s).map(|p| p.as_str().to_string()),
            _ => TimeZoneName::parse(s).map(|t| t.as_str().to_string()),
        }
        .map_err(|e| field_err(prefix, &format!("traits.{key}"), e.0))?;
        traits.insert(key.to_string(), Value::String(normalised));
    }
    Ok(())
}

/// Parses one Segment call. `kind` comes from the endpoint, or from `type` inside a batch.
pub fn parse_call(
    value: &Value,
    kind: Option<EventKind>,
    prefix: &str,
    now: Timestamp,
) -> Result<NewEvent, FieldError> {
    let obj = value
        .as_object()
        .ok_or_else(|| field_err(prefix, "", "must be a JSON object"))?;
    let kind = match kind {
        Some(k) => k,
        None => {
            let t = obj
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| field_err(prefix, "type", "is required"))?;
            EventKind::parse(t).ok_or_else(|| {
                field_err(
                    prefix,
                    "type",
                    format!("`{t}` is not one of identify, track, page, screen, group, alias"),
                )
            })?
        }
    };
    let user_id = id_field(obj, "userId", prefix)?;
    let anonymous_id = id_field(obj, "anonymousId", prefix)?;
    let message_id = id_field(obj, "messageId", prefix)?;
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => now,
        Some(Value::String(s)) => s.parse::<Timestamp>().map_err(|_| {
            field_err(
                prefix,
                "timestamp",
                format!("`{s}` is not an ISO-8601 timestamp with a UTC offset"),
            )
        })?,
        Some(_) => return Err(field_err(prefix, "timestamp", "must be an ISO-8601 string")),
    };
    let mut previous_id = None;
    let (name, properties) = match kind {
        EventKind::Track => {
            let name = match obj.get("event") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
                _ => return Err(field_err(prefix, "event", "is required (the event name)")),
            };
            if name.chars().count() > limits::EVENT_NAME_CHARS {
                return Err(field_err(
                    prefix,
                    "event",
                    format!(
                        "is {} characters long; an event name may have at most {}",
                        name.chars().count(),
                        limits::EVENT_NAME_CHARS
                    ),
                ));
            }
            let properties = object_field(obj, "properties", prefix)?;
            check_map(&properties, "properties", 1, prefix)?;
            (name, properties)
        }
        EventKind::Identify => {
            let mut traits = object_field(obj, "traits", prefix)?;
            let mut traits_field = "traits";
            // Segment clients may also send traits under context.traits.
            if traits.is_empty()
                && let Some(Value::Object(ctx)) = obj.get("context")
                && let Some(Value::Object(t)) = ctx.get("traits")
            {
                traits = t.clone();
                traits_field = "context.traits";
            }
            check_map(&traits, traits_field, 1, prefix)?;
            check_traits(&mut traits, prefix)?;
            ("Identify".to_string(), traits)
        }
        EventKind::Page | EventKind::Screen => {
            let mut props = object_field(obj, "properties", prefix)?;
            check_map(&props, "properties", 1, prefix)?;
            if let Some(n) = short_string(obj, "name", prefix)? {
                props.entry("name").or_insert(json!(n));
            }
            if let Some(c) = short_string(obj, "category", prefix)? {
                props.entry("category").or_insert(json!(c));
            }
            (
                if kind == EventKind::Page {
                    PAGE_VIEWED
                } else {
                    SCREEN_VIEWED
                }
                .to_string(),
                props,
            )
        }
        EventKind::Group => {
            let group_id = id_field(obj, "groupId", prefix)?
                .ok_or_else(|| field_err(prefix, "groupId", "is required"))?;
            let traits = object_field(obj, "traits", prefix)?;
            check_map(&traits, "traits", 1, prefix)?;
            (
                "Group".to_string(),
                Map::from_iter([
                    ("group_id".to_string(), json!(group_id)),
                    ("traits".to_string(), Value::Object(traits)),
                ]),
            )
        }
        EventKind::Alias => {
            previous_id = Some(
                id_field(obj, "previousId", prefix)?
                    .ok_or_else(|| field_err(prefix, "previousId", "is required"))?,
            );
            if user_id.is_none() {
                return Err(field_err(prefix, "userId", "is required for alias"));
            }
            ("Alias".to_string(), Map::new())
        }
    };
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(field_err(
            prefix,
            "userId",
            "userId or anonymousId is required",
        ));
    }
    Ok(NewEvent {
        // Without a messageId there is nothing to de-duplicate on: give it a unique one.
        message_id: message_id.unwrap_or_else(|| format!("wm-{}", random_hex(16))),
        kind,
        name,
        user_id,
        anonymous_id,
        previous_id,
        properties,
        timestamp,
        received_at: now,
    })
}

/// The body of a tracking call or batch: JSON, with numeric ids kept exactly as sent.
pub struct SegmentBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for SegmentBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(super::body_error)?;
        parse_body(&bytes).map(SegmentBody)
    }
}

/// A tracking call (or, with `batch`, several) as Segment's HTTP tracking API sends it. The
/// body is read by [`parse_call`], which takes ids as strings or numbers (as Segment does)
/// and names the field of every error; this schema says what it accepts.
impl schemars::JsonSchema for SegmentBody {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SegmentCall".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let id = serde_json::json!({ "type": ["string", "number"] });
        let object = serde_json::json!({ "type": "object" });
        schemars::json_schema!({
            "type": "object",
            "properties": {
                "type": {
                    "description": "The kind of call; implied by the endpoint except in a batch",
                    "enum": ["identify", "track", "page", "screen", "group", "alias"]
                },
                "userId": id, "anonymousId": id, "messageId": id, "previousId": id,
                "groupId": id,
                "timestamp": { "type": "string", "format": "date-time" },
                "event": { "type": "string", "description": "track: the event name" },
                "name": { "type": "string", "description": "page and screen: the name" },
                "properties": object,
                "traits": object,
                "context": object,
                "writeKey": { "type": "string", "description": "The write key, when it is not the basic-auth user name" },
                "batch": {
                    "type": "array",
                    "description": "batch and import: the calls",
                    "items": { "$ref": "#/components/schemas/SegmentCall" }
                }
            }
        })
    }
}

/// How many calls of a request were stored, and how many were already (same `messageId`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Accepted {
    pub success: bool,
    pub accepted: usize,
    pub duplicates: usize,
}

/// Reads the body of a tracking call or batch as [`SegmentBody`] does: JSON, with numeric ids
/// kept exactly as sent. Each call is then checked by [`parse_call`]. Public for the fuzz
/// target `segment_payload`.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut value = super::json_from_bytes(bytes)?;
    keep_numeric_ids_exact(bytes, &mut value);
    Ok(value)
}

/// The id fields of a call, which Segment lets be strings or numbers.
const ID_FIELDS: [&str; 5] = [
    "userId",
    "anonymousId",
    "previousId",
    "groupId",
    "messageId",
];

/// Replaces each numeric id of the call (or of each call of a batch) by its literal text:
/// serde_json reads a number too large for 64 bits as a float, and a 30-digit `userId` would
/// become `1.2345678901234568e29`. The raw text is read again only when a numeric id is there.
fn keep_numeric_ids_exact(raw: &[u8], value: &mut Value) {
    fn has_numeric_id(call: &Value) -> bool {
        ID_FIELDS
            .iter()
            .any(|k| call.get(k).is_some_and(Value::is_number))
    }
    fn fix(raw: &str, call: &mut Value) {
        let (Ok(fields), Some(obj)) = (
            serde_json::from_str::<HashMap<String, &RawValue>>(raw),
            call.as_object_mut(),
        ) else {
            return;
        };
        for key in ID_FIELDS {
            if obj.get(key).is_some_and(Value::is_number)
                && let Some(text) = fields.get(key)
            {
                obj.insert(
                    key.to_string(),
                    Value::String(text.get().trim().to_string()),
                );
            }
        }
    }
    let batch_has = value
        .get("batch")
        .and_then(Value::as_array)
        .is_some_and(|items| items.iter().any(has_numeric_id));
    if !has_numeric_id(value) && !batch_has {
        return;
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return;
    };
    if has_numeric_id(value) {
        fix(text, value);
    }
    if batch_has
        && let Ok(top) = serde_json::from_str::<HashMap<String, &RawValue>>(text)
        && let Some(raw_batch) = top.get("batch")
        && let Ok(raw_items) = serde_json::from_str::<Vec<&RawValue>>(raw_batch.get())
        && let Some(items) = value.get_mut("batch").and_then(Value::as_array_mut)
    {
        for (item, raw_item) in items.iter_mut().zip(raw_items) {
            if has_numeric_id(item) {
                fix(raw_item.get(), item);
            }
        }
    }
}

pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

async fn accept(state: &AppState, events: Vec<NewEvent>) -> ApiResult<(usize, usize)> {
    let total = events.len();
    let fresh = state.engine.intake().append(events).await?;
    let accepted = fresh.iter().filter(|f| **f).count();
    Ok((accepted, total - accepted))
}

async fn single(
    state: AppState,
    headers: HeaderMap,
    body: Value,
    kind: EventKind,
) -> ApiResult<Json<Accepted>> {
    authorize_write_key(&state, &headers, &body)?;
    let now = state.engine.clock().now();
    let event = parse_call(&body, Some(kind), "", now).map_err(|e| {
        ApiError::invalid(
            "invalid_event",
            e.field.trim_end_matches('.').to_string(),
            e.message,
        )
    })?;
    let (accepted, duplicates) = accept(&state, vec![event]).await?;
    Ok(Json(Accepted {
        success: true,
        accepted,
        duplicates,
    }))
}

macro_rules! endpoint {
    ($name:ident, $kind:expr) => {
        pub async fn $name(
            State(state): State<AppState>,
            headers: HeaderMap,
            body: SegmentBody,
        ) -> ApiResult<Json<Accepted>> {
            single(state, headers, body.0, $kind).await
        }
    };
}

endpoint!(identify, EventKind::Identify);
endpoint!(track, EventKind::Track);
endpoint!(page, EventKind::Page);
endpoint!(screen, EventKind::Screen);
endpoint!(group, EventKind::Group);
endpoint!(alias, EventKind::Alias);

pub async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: SegmentBody,
) -> ApiResult<Json<Accepted>> {
    let body = body.0;
    authorize_write_key(&state, &headers, &body)?;
    let Some(items) = body.get("batch").and_then(Value::as_array) else {
        return Err(ApiError::invalid(
            "invalid_batch",
            "batch",
            "must be a list of calls",
        ));
    };
    let now = state.engine.clock().now();
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse_call(item, None, &format!("batch[{i}]."), now) {
            Ok(e) => events.push(e),
            Err(e) => errors.push(
                json!({ "index": i, "field": e.field.trim_end_matches('.'), "message": e.message }),
            ),
        }
    }
    let (accepted, duplicates) = accept(&state, events).await?;
    if !errors.is_empty() {
        let first = errors[0]["field"].as_str().unwrap_or("batch").to_string();
        let mut err = ApiError::invalid(
            "invalid_events",
            first,
            format!(
                "{} of {} calls are invalid and were not stored; the other {} were",
                errors.len(),
                items.len(),
                items.len() - errors.len()
            ),
        )
        .with_errors(Value::Array(errors));
        err.message
            .push_str(&format!(" ({accepted} new, {duplicates} duplicates)"));
        return Err(err);
    }
    Ok(Json(Accepted {
        success: true,
        accepted,
        duplicates,
    }))
}
