//! Inbound provider webhooks and the suppression list.
//!
//! Bounces and complaints come back from Amazon SES (through SNS), Postmark and a generic JSON
//! form; SMS keywords (STOP, START) from a Twilio-style inbound webhook. Each one changes the
//! suppression list and becomes a track event (`Email Bounced`, `Email Complained`,
//! `SMS Opted Out`, ...) on the contact with that address, so it shows on the timeline and can
//! drive journeys.
//!
//! Authentication: every inbound webhook needs the `inbound_webhook_secret`, given as
//! `?token=SECRET` in the URL (SES/SNS and Twilio, whose own signatures need a certificate
//! download or the public URL), as the basic-auth password (Postmark) or as a bearer token
//! (the generic form). Any of the three is accepted on every inbound endpoint.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use waymark_core::EventKind;
use waymark_core::contact::{Email, Phone};
use waymark_store::{
    ContactQuery, NewEvent, Suppression, SuppressionQuery, SuppressionReason, suppression_address,
};

use super::error::{ApiError, ApiResult};
use super::ingest::random_hex;
use super::manage::blocking;
use super::{AppState, JsonBody, same_secret};

type Params = Query<HashMap<String, String>>;

fn authorize_inbound(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let secret = &state.secrets.inbound_webhook_secret;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let bearer = auth.and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    let basic_password = auth
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .map(|userpass| {
            userpass
                .split_once(':')
                .map_or(userpass.clone(), |(_, p)| p.to_string())
        });
    let given: Vec<String> = [
        params.get("token").cloned(),
        bearer.map(|b| b.trim().to_string()),
        basic_password,
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.is_empty() {
        return Err(ApiError::unauthorized(
            "send the inbound webhook secret as `?token=`, the basic-auth password or a bearer token",
        ));
    }
    if given.iter().any(|g| same_secret(g, secret)) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "the inbound webhook secret is not valid",
        ))
    }
}

/// One thing a provider told us about an address.
struct Inbound {
    channel: &'static str,
    address: String,
    /// `None`: recorded on the timeline only (e.g. a transient bounce).
    reason: Option<SuppressionReason>,
    /// `Some(false)`: take the address off the list (SMS START).
    remove: bool,
    event: &'static str,
    source: &'static str,
    /// Makes the track event idempotent when the provider retries.
    event_id: Option<String>,
    properties: Map<String, Value>,
}

impl Inbound {
    fn new(
        channel: &'static str,
        address: String,
        reason: Option<SuppressionReason>,
        event: &'static str,
        source: &'static str,
    ) -> Self {
        Inbound {
            channel,
            address,
            reason,
            remove: false,
            event,
            source,
            event_id: None,
            properties: Map::new(),
        }
    }
}

/// Applies the changes to the suppression list, then records the events on the contacts with
/// those addresses. Returns a summary per event.
async fn apply(state: &AppState, items: Vec<Inbound>) -> ApiResult<Vec<Value>> {
    let now = state.engine.clock().now();
    let mut summary = Vec::new();
    let mut events = Vec::new();
    for item in items {
        let address = suppression_address(item.channel, &item.address);
        let (channel, source) = (item.channel, item.source);
        let changed = if item.remove {
            let a = address.clone();
            blocking(state, move |s| s.unsuppress(channel, &a)).await?
        } else if let Some(reason) = item.reason {
            let entry = Suppression {
                channel: channel.to_string(),
                address: address.clone(),
                reason: reason.as_str().to_string(),
                source: source.to_string(),
                created_at: now,
            };
            blocking(state, move |s| s.suppress(&entry)).await?
        } else {
            false
        };
        let action = match (item.remove, item.reason) {
            (true, _) => "unsuppressed",
            (false, Some(_)) => "suppressed",
            (false, None) => "recorded",
        };
        tracing::info!(channel, %address, action, source, event = item.event, "inbound webhook");
        // The contacts with this address get the event on their timeline.
        let query = ContactQuery {
            email: (channel == "email").then(|| address.clone()),
            phone: (channel == "sms").then(|| address.clone()),
            limit: 10,
            ..Default::default()
        };
        let contacts = blocking(state, move |s| {
            let mut ids = Vec::new();
            for c in s.find_contacts(&query)? {
                let anonymous = match c.user_id {
                    Some(_) => None,
                    None => s.contact(c.id)?.anonymous_ids.into_iter().next(),
                };
                ids.push((c.user_id, anonymous));
            }
            Ok(ids)
        })
        .await?;
        let mut properties = item.properties.clone();
        properties.insert("channel".into(), channel.into());
        properties.insert("address".into(), address.clone().into());
        properties.insert("source".into(), source.into());
        if let Some(r) = item.reason {
            properties.insert("reason".into(), r.as_str().into());
        }
        for (i, (user_id, anonymous_id)) in contacts.into_iter().enumerate() {
            if user_id.is_none() && anonymous_id.is_none() {
                continue;
            }
            let message_id = match &item.event_id {
                Some(id) => format!("{source}-{id}-{address}-{i}"),
                None => format!("{source}-{}", random_hex(16)),
            };
            events.push(NewEvent {
                message_id,
                kind: EventKind::Track,
                name: item.event.to_string(),
                user_id,
                anonymous_id,
                previous_id: None,
                properties: properties.clone(),
                timestamp: now,
                received_at: now,
            });
        }
        summary.push(json!({
            "channel": channel,
            "address": address,
            "action": action,
            "changed": changed,
            "event": item.event,
        }));
    }
    state
        .engine
        .intake()
        .append(events)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(summary)
}

fn parse_json(bytes: &Bytes) -> ApiResult<Value> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })
}

fn str_field<'a>(v: &'a Value, key: &str, field: &str) -> ApiResult<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("invalid_webhook", field, format!("`{key}` is missing")))
}

/// `"Name" <a@b.c>` or `a@b.c`, validated.
fn email_address(raw: &str, field: &str) -> ApiResult<String> {
    let inner = match (raw.rfind('<'), raw.rfind('>')) {
        (Some(a), Some(b)) if a < b => &raw[a + 1..b],
        _ => raw,
    };
    Email::parse(inner)
        .map(|e| e.as_str().to_string())
        .map_err(|e| ApiError::invalid("invalid_address", field, e.0))
}

/// `POST /v1/webhooks/ses`: Amazon SES bounce and complaint notifications through SNS.
/// SNS posts JSON with `Content-Type: text/plain`, so the body is read as bytes.
pub async fn ses(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    authorize_inbound(&state, &headers, &params)?;
    let envelope = parse_json(&body)?;
    let kind = str_field(&envelope, "Type", "Type")?;
    match kind {
        "SubscriptionConfirmation" => {
            let url = str_field(&envelope, "SubscribeURL", "SubscribeURL")?.to_string();
            let topic = envelope
                .get("TopicArn")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            // Waymark does not fetch the URL itself (it would be a request to an address taken
            // from a request body); the operator opens it, or pastes it into the SNS console's
            // "Confirm subscription". It is logged and kept in the database.
            tracing::warn!(topic = %topic, subscribe_url = %url,
                "SNS subscription awaiting confirmation: open the SubscribeURL to confirm it");
            let (key, value) = (format!("sns_subscribe_url:{topic}"), url.clone());
            blocking(&state, move |s| s.set_meta(&key, &value)).await?;
            Ok(Json(json!({
                "status": "confirmation_required",
                "topic_arn": topic,
                "subscribe_url": url,
            })))
        }
        "UnsubscribeConfirmation" => Ok(Json(json!({ "status": "ignored" }))),
        "Notification" => {
            let raw = str_field(&envelope, "Message", "Message")?;
            let message: Value = serde_json::from_str(raw).map_err(|e| {
                ApiError::invalid(
                    "invalid_webhook",
                    "Message",
                    format!("`Message` is not an SES event in JSON: {e}"),
                )
            })?;
            let sns_id = envelope
                .get("MessageId")
                .and_then(Value::as_str)
                .map(str::to_string);
            let items = ses_items(&message, sns_id)?;
            let results = apply(&state, items).await?;
            Ok(Json(json!({ "status": "ok", "results": results })))
        }
        other => Err(ApiError::invalid(
            "invalid_webhook",
            "Type",
            format!("unknown SNS message type `{other}`"),
        )),
    }
}

fn ses_items(message: &Value, sns_id: Option<String>) -> ApiResult<Vec<Inbound>> {
    let kind = message
        .get("notificationType")
        .or_else(|| message.get("eventType"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_webhook",
                "Message.notificationType",
                "the SES event has no `notificationType` or `eventType`",
            )
        })?;
    let (section, list, event) = match kind {
        "Bounce" => ("bounce", "bouncedRecipients", "Email Bounced"),
        "Complaint" => ("complaint", "complainedRecipients", "Email Complained"),
        // Deliveries, sends, opens: not about suppression.
        _ => return Ok(Vec::new()),
    };
    let detail = message.get(section).ok_or_else(|| {
        ApiError::invalid(
            "invalid_webhook",
            format!("Message.{section}"),
            format!("a {kind} event needs `{section}`"),
        )
    })?;
    let recipients = detail.get(list).and_then(Value::as_array).ok_or_else(|| {
        ApiError::invalid(
            "invalid_webhook",
            format!("Message.{section}.{list}"),
            "must be a list of recipients",
        )
    })?;
    let bounce_type = detail.get("bounceType").and_then(Value::as_str);
    let reason = match (kind, bounce_type) {
        ("Bounce", Some("Permanent")) => Some(SuppressionReason::HardBounce),
        ("Bounce", _) => None,
        _ => Some(SuppressionReason::Complaint),
    };
    let mut items = Vec::new();
    for (i, r) in recipients.iter().enumerate() {
        let field = format!("Message.{section}.{list}[{i}].emailAddress");
        let raw = r
            .get("emailAddress")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("invalid_webhook", &field, "is missing"))?;
        let mut item = Inbound::new("email", email_address(raw, &field)?, reason, event, "ses");
        item.event_id = sns_id.clone();
        for (from, to) in [
            ("bounceType", "bounce_type"),
            ("bounceSubType", "bounce_sub_type"),
            ("complaintFeedbackType", "feedback_type"),
        ] {
            if let Some(v) = detail.get(from).and_then(Value::as_str) {
                item.properties.insert(to.into(), v.into());
            }
        }
        if let Some(d) = r.get("diagnosticCode").and_then(Value::as_str) {
            item.properties.insert("diagnostic".into(), d.into());
        }
        items.push(item);
    }
    Ok(items)
}

/// `POST /v1/webhooks/postmark`: Postmark's bounce and spam-complaint webhooks.
pub async fn postmark(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    authorize_inbound(&state, &headers, &params)?;
    let v = parse_json(&body)?;
    let record = str_field(&v, "RecordType", "RecordType")?;
    let (reason, event) = match record {
        "Bounce" => {
            let kind = str_field(&v, "Type", "Type")?;
            let reason = matches!(kind, "HardBounce" | "BadEmailAddress")
                .then_some(SuppressionReason::HardBounce);
            (reason, "Email Bounced")
        }
        "SpamComplaint" => (Some(SuppressionReason::Complaint), "Email Complained"),
        _ => return Ok(Json(json!({ "status": "ignored", "results": [] }))),
    };
    let address = email_address(str_field(&v, "Email", "Email")?, "Email")?;
    let mut item = Inbound::new("email", address, reason, event, "postmark");
    item.event_id = v.get("ID").map(|id| match id {
        Value::String(s) => format!("{record}-{s}"),
        other => format!("{record}-{other}"),
    });
    for (from, to) in [
        ("Type", "bounce_type"),
        ("Description", "description"),
        ("Details", "diagnostic"),
    ] {
        if let Some(s) = v.get(from).and_then(Value::as_str) {
            item.properties.insert(to.into(), s.into());
        }
    }
    let results = apply(&state, vec![item]).await?;
    Ok(Json(json!({ "status": "ok", "results": results })))
}

/// `POST /v1/webhooks/suppressions`: `{events: [{type, channel?, address}]}`.
pub async fn generic(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    authorize_inbound(&state, &headers, &params)?;
    let v = parse_json(&body)?;
    let list = v
        .get("events")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty() && l.len() <= 1000)
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_webhook",
                "events",
                "must be a list of 1 to 1000 events",
            )
        })?;
    let mut items = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let kind = str_field(e, "type", &format!("events[{i}].type"))?;
        let channel = match e.get("channel") {
            None | Some(Value::Null) => "email",
            Some(Value::String(c)) if c == "email" => "email",
            Some(Value::String(c)) if c == "sms" => "sms",
            Some(_) => {
                return Err(ApiError::invalid(
                    "invalid_webhook",
                    format!("events[{i}].channel"),
                    "must be `email` or `sms`",
                ));
            }
        };
        let (reason, event) = match (kind, channel) {
            ("bounce", "email") => (SuppressionReason::HardBounce, "Email Bounced"),
            ("complaint", "email") => (SuppressionReason::Complaint, "Email Complained"),
            ("unsubscribe", "email") => (SuppressionReason::Unsubscribe, "Email Unsubscribed"),
            ("bounce", _) => (SuppressionReason::HardBounce, "SMS Bounced"),
            ("complaint", _) => (SuppressionReason::Complaint, "SMS Complained"),
            ("unsubscribe", _) => (SuppressionReason::Unsubscribe, "SMS Opted Out"),
            _ => {
                return Err(ApiError::invalid(
                    "invalid_webhook",
                    format!("events[{i}].type"),
                    format!("`{kind}` is not one of bounce, complaint, unsubscribe"),
                ));
            }
        };
        let field = format!("events[{i}].address");
        let raw = str_field(e, "address", &field)?;
        let address = validate_address(channel, raw, &field)?;
        items.push(Inbound::new(
            channel,
            address,
            Some(reason),
            event,
            "webhook",
        ));
    }
    let results = apply(&state, items).await?;
    Ok(Json(json!({ "status": "ok", "results": results })))
}

fn validate_address(channel: &str, raw: &str, field: &str) -> ApiResult<String> {
    if channel == "sms" {
        Phone::parse(raw)
            .map(|p| p.as_str().to_string())
            .map_err(|e| ApiError::invalid("invalid_address", field, e.0))
    } else {
        email_address(raw, field)
    }
}

const STOP_WORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
const START_WORDS: [&str; 3] = ["START", "YES", "UNSTOP"];

/// `POST /v1/webhooks/twilio/inbound`: an incoming SMS, form-encoded like Twilio's. STOP words
/// suppress the sender's number for SMS; START words lift that. Answers empty TwiML.
pub async fn twilio_inbound(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    authorize_inbound(&state, &headers, &params)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "the body is not UTF-8"))?;
    // Parsed as the query string of a URL: the same encoding as a form body.
    let url = reqwest::Url::parse(&format!("http://form.invalid/?{text}"))
        .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
    let form: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let from = form
        .get("From")
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("invalid_webhook", "From", "`From` is missing"))?;
    let from = validate_address("sms", from, "From")?;
    let word = form
        .get("Body")
        .map(|b| b.trim().trim_end_matches(['.', '!']).to_uppercase())
        .unwrap_or_default();
    let item = if STOP_WORDS.contains(&word.as_str()) {
        Some(Inbound::new(
            "sms",
            from,
            Some(SuppressionReason::Unsubscribe),
            "SMS Opted Out",
            "twilio",
        ))
    } else if START_WORDS.contains(&word.as_str()) {
        let mut item = Inbound::new("sms", from, None, "SMS Opted In", "twilio");
        item.remove = true;
        Some(item)
    } else {
        // Any other text is a conversation, not a consent change.
        None
    };
    if let Some(mut item) = item {
        item.event_id = form.get("MessageSid").cloned();
        item.properties.insert("keyword".into(), word.into());
        apply(&state, vec![item]).await?;
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
    )
        .into_response())
}

fn channel_param(raw: &str, field: &str) -> ApiResult<&'static str> {
    match raw {
        "email" => Ok("email"),
        "sms" => Ok("sms"),
        other => Err(ApiError::invalid(
            "invalid_parameter",
            field,
            format!("`{other}` is not a channel (email or sms)"),
        )),
    }
}

/// `GET /v1/suppressions?channel=&address=&limit=`
pub async fn list_suppressions(
    State(state): State<AppState>,
    Query(p): Params,
) -> ApiResult<Json<Value>> {
    let channel = p
        .get("channel")
        .map(|c| channel_param(c, "channel"))
        .transpose()?;
    let limit = match p.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::invalid("invalid_parameter", "limit", "must be between 1 and 1000")
            })?,
    };
    let query = SuppressionQuery {
        channel: channel.map(str::to_string),
        address: p.get("address").cloned(),
        limit,
    };
    let list = blocking(&state, move |s| s.suppressions(&query)).await?;
    Ok(Json(json!({ "suppressions": list })))
}

/// `POST /v1/suppressions {channel, address, reason?}` (reason defaults to `manual`).
pub async fn add_suppression(
    State(state): State<AppState>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let v = body.0;
    let channel = channel_param(
        v.get("channel")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("invalid_suppression", "channel", "is missing"))?,
        "channel",
    )?;
    let raw = v
        .get("address")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("invalid_suppression", "address", "is missing"))?;
    let address = validate_address(channel, raw, "address")?;
    let reason = match v.get("reason") {
        None | Some(Value::Null) => SuppressionReason::Manual,
        Some(r) => r
            .as_str()
            .and_then(SuppressionReason::parse)
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_suppression",
                    "reason",
                    "must be one of hard_bounce, complaint, unsubscribe, manual",
                )
            })?,
    };
    let entry = Suppression {
        channel: channel.to_string(),
        address,
        reason: reason.as_str().to_string(),
        source: "api".into(),
        created_at: state.engine.clock().now(),
    };
    let stored = entry.clone();
    let created = blocking(&state, move |s| s.suppress(&stored)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(entry))))
}

/// `DELETE /v1/suppressions/{channel}/{address}`
pub async fn delete_suppression(
    State(state): State<AppState>,
    Path((channel, address)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let channel = channel_param(&channel, "channel")?;
    let removed = blocking(&state, move |s| s.unsuppress(channel, &address)).await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("this address is not suppressed"))
    }
}
