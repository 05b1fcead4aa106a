//! Consent endpoints: subscriptions in the management API, the hosted unsubscribe and
//! preference page (`/u/{token}`, with the RFC 8058 one-click POST), and double opt-in
//! (`POST /v1/subscribe`, `GET /confirm/{token}`). The rule that applies subscriptions to
//! sends is in `waymark_engine::consent`.
//!
//! Links are signed with the tracking secret (`--public-url`): a tampered or unknown token
//! gets a 404. Every change of a subscription records a track event on the contact through
//! the intake (`Unsubscribed`, `Subscribed`, `Subscription Confirmed`, with `channel`,
//! `topic`, `source`, and an admin's `reason` when the API was given one), so journeys can
//! branch or exit on it and the contact's timeline says why consent changed.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use waymark_core::EventKind;
use waymark_core::journey::{Channel, TemplateDefinition};
use waymark_engine::consent::{
    self, ALL_TOPICS, ConsentToken, PENDING, SUBSCRIBED, SUBSCRIBED_STATUS, SUBSCRIPTION_CONFIRMED,
    UNSUBSCRIBED, UNSUBSCRIBED_STATUS,
};
use waymark_engine::send::{Outgoing, Purpose, SendGate, TemplateSource};
use waymark_store::{MessageStatus, NewEvent, Subscription};

use super::error::{ApiError, ApiResult};
use super::ingest::random_hex;
use super::manage::blocking;
use super::{AppState, Body, RequestBody, authorize_write_key, typed};

/// The id of a template that replaces the built-in double opt-in confirmation email.
pub const CONFIRMATION_TEMPLATE: &str = "double-opt-in";

fn channel_of(raw: &str) -> ApiResult<&'static str> {
    match raw {
        "email" => Ok("email"),
        "sms" => Ok("sms"),
        _ => Err(ApiError::invalid(
            "invalid_parameter",
            "channel",
            "must be `email` or `sms`",
        )),
    }
}

fn check_topic(topic: &str) -> ApiResult<String> {
    let topic = topic.trim();
    if topic.is_empty() || topic.len() > 100 || topic.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "topic",
            "must be 1 to 100 printable characters (`*` is all marketing)",
        ));
    }
    Ok(topic.to_string())
}

async fn contact_subscriptions(state: &AppState, contact_id: i64) -> ApiResult<Vec<Subscription>> {
    blocking(state, move |s| s.contact(contact_id).map(|_| ())).await?;
    Ok(state.engine.subscriptions(contact_id).await?)
}

/// Sets a subscription and records the matching event when the status changed (with the
/// reason an admin gave, if any). Returns the previous status.
async fn change(
    state: &AppState,
    contact_id: i64,
    channel: &str,
    topic: &str,
    status: &str,
    source: &str,
    reason: Option<&str>,
) -> ApiResult<Option<String>> {
    let now = state.engine.clock().now();
    let subscription = Subscription {
        contact_id,
        channel: channel.to_string(),
        topic: topic.to_string(),
        status: status.to_string(),
        updated_at: now,
    };
    blocking(state, move |s| s.contact(contact_id).map(|_| ())).await?;
    let before = state.engine.set_subscription(subscription).await?;
    let event = match status {
        UNSUBSCRIBED_STATUS => Some(UNSUBSCRIBED),
        SUBSCRIBED_STATUS if before.as_deref() == Some(PENDING) => Some(SUBSCRIPTION_CONFIRMED),
        SUBSCRIBED_STATUS => Some(SUBSCRIBED),
        _ => None,
    };
    if let Some(name) = event
        && before.as_deref() != Some(status)
    {
        record_event(state, contact_id, name, channel, topic, source, reason).await?;
    }
    Ok(before)
}

/// Records a consent event on the contact through the intake.
async fn record_event(
    state: &AppState,
    contact_id: i64,
    name: &str,
    channel: &str,
    topic: &str,
    source: &str,
    reason: Option<&str>,
) -> ApiResult<()> {
    let detail = blocking(state, move |s| s.contact(contact_id)).await?;
    let user_id = detail.contact.user_id.clone();
    let anonymous_id = match &user_id {
        Some(_) => None,
        None => detail.anonymous_ids.first().cloned(),
    };
    if user_id.is_none() && anonymous_id.is_none() {
        tracing::warn!(contact = contact_id, "consent event not recorded: no id");
        return Ok(());
    }
    let now = state.engine.clock().now();
    let mut properties = Map::new();
    properties.insert("channel".into(), json!(channel));
    properties.insert("topic".into(), json!(topic));
    properties.insert("source".into(), json!(source));
    if let Some(reason) = reason {
        properties.insert("reason".into(), json!(reason));
    }
    let event = NewEvent {
        message_id: format!("waymark-consent-{}", random_hex(12)),
        kind: EventKind::Track,
        name: name.to_string(),
        user_id,
        anonymous_id,
        previous_id: None,
        properties,
        timestamp: now,
        received_at: now,
    };
    if let Err(e) = state.engine.intake().append(vec![event]).await {
        tracing::error!(error = %e, contact = contact_id, "consent event not recorded");
    }
    Ok(())
}

// ---- management API ----

#[derive(Debug, Serialize, JsonSchema)]
pub struct Subscriptions {
    pub subscriptions: Vec<Subscription>,
}

/// `GET /v1/contacts/{id}/subscriptions`
pub async fn list_subscriptions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Subscriptions>> {
    let id = super::manage::contact_id(&id)?;
    let subscriptions = contact_subscriptions(&state, id).await?;
    Ok(Json(Subscriptions { subscriptions }))
}

/// `PUT /v1/contacts/{id}/subscriptions/{channel}/{topic}`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SubscriptionChange {
    #[schemars(extend("enum" = ["subscribed", "pending", "unsubscribed"]))]
    pub status: String,
    /// Why it changes (an admin's note: 1 to 500 printable characters), recorded with the
    /// `Subscribed` or `Unsubscribed` event on the contact's timeline.
    #[schemars(length(min = 1, max = 500))]
    pub reason: Option<String>,
}

/// The longest reason for a change of a subscription, in characters.
const REASON_MAX: usize = 500;

fn check_reason(reason: Option<&str>) -> ApiResult<Option<String>> {
    let Some(reason) = reason.map(str::trim) else {
        return Ok(None);
    };
    if reason.is_empty()
        || reason.chars().count() > REASON_MAX
        || reason.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "reason",
            format!("must be 1 to {REASON_MAX} printable characters"),
        ));
    }
    Ok(Some(reason.to_string()))
}

impl RequestBody for SubscriptionChange {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SubscriptionChanged {
    pub contact_id: i64,
    pub channel: &'static str,
    pub topic: String,
    pub status: String,
    /// The status before, if the contact had one for this channel and topic.
    pub previous_status: Option<String>,
}

pub async fn put_subscription(
    State(state): State<AppState>,
    Path((id, channel, topic)): Path<(String, String, String)>,
    Body(body): Body<SubscriptionChange>,
) -> ApiResult<Json<SubscriptionChanged>> {
    let id = super::manage::contact_id(&id)?;
    let channel = channel_of(&channel)?;
    let topic = check_topic(&topic)?;
    if !consent::is_status(&body.status) {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "status",
            "must be `subscribed`, `pending` or `unsubscribed`",
        ));
    }
    let reason = check_reason(body.reason.as_deref())?;
    let status = body.status;
    let previous_status = change(
        &state,
        id,
        channel,
        &topic,
        &status,
        "api",
        reason.as_deref(),
    )
    .await?;
    Ok(Json(SubscriptionChanged {
        contact_id: id,
        channel,
        topic,
        status,
        previous_status,
    }))
}

/// Topics used by non-transactional templates, by channel.
async fn template_topics(state: &AppState) -> ApiResult<BTreeMap<(String, String), Vec<String>>> {
    let templates = blocking(state, |s| s.templates()).await?;
    let mut topics: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for t in templates {
        let d = &t.definition;
        if let Some(topic) = d.topic.as_ref().filter(|t| !t.trim().is_empty())
            && !d.transactional
        {
            topics
                .entry((d.channel.as_str().to_string(), topic.clone()))
                .or_default()
                .push(d.id.clone());
        }
    }
    Ok(topics)
}

/// A topic non-transactional templates declare, with those templates.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Topic {
    pub channel: String,
    pub topic: String,
    pub templates: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Topics {
    pub topics: Vec<Topic>,
}

/// `GET /v1/topics`: the topics templates declare, with the templates that use them.
pub async fn topics(State(state): State<AppState>) -> ApiResult<Json<Topics>> {
    let topics = template_topics(&state)
        .await?
        .into_iter()
        .map(|((channel, topic), templates)| Topic {
            channel,
            topic,
            templates,
        })
        .collect();
    Ok(Json(Topics { topics }))
}

// ---- hosted pages ----

use waymark_render::escape_html as escape;

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         table{{border-collapse:collapse;width:100%}}td{{padding:.4rem;border-bottom:1px solid #ddd}}\
         button{{padding:.3rem .8rem}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut response = Html(html).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The pages hold buttons that change a person's consent: no framing (clickjacking), no
    // scripts, forms only back to this server.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn unknown_link() -> ApiError {
    ApiError::not_found("no such link")
}

fn verified(state: &AppState, token: &str, confirmation: bool) -> ApiResult<ConsentToken> {
    state
        .engine
        .tracking()
        .and_then(|t| consent::verify(t, token))
        .filter(|t| {
            if confirmation {
                t.is_confirmation()
            } else {
                t.is_unsubscribe()
            }
        })
        .ok_or_else(unknown_link)
}

fn parse_form(body: &[u8]) -> ApiResult<HashMap<String, String>> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("invalid_body", "the body is not UTF-8"))?;
    let url = reqwest::Url::parse(&format!("http://form.invalid/?{}", text.trim()))
        .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
    Ok(url.query_pairs().into_owned().collect())
}

fn topic_label(topic: &str) -> String {
    if topic == ALL_TOPICS {
        "All marketing".into()
    } else {
        topic.to_string()
    }
}

/// The preference page of a token's contact.
async fn preferences(
    state: &AppState,
    token: &str,
    t: &ConsentToken,
    note: &str,
) -> ApiResult<Response> {
    let subscriptions = contact_subscriptions(state, t.c).await?;
    let mut topics: Vec<String> = template_topics(state)
        .await?
        .into_keys()
        .filter(|(channel, _)| *channel == t.ch)
        .map(|(_, topic)| topic)
        .collect();
    for s in subscriptions.iter().filter(|s| s.channel == t.ch) {
        topics.push(s.topic.clone());
    }
    topics.push(t.t.clone());
    topics.retain(|x| x != ALL_TOPICS);
    topics.sort();
    topics.dedup();
    let status_of = |topic: &str| {
        subscriptions
            .iter()
            .find(|s| s.channel == t.ch && s.topic == topic)
            .map_or(SUBSCRIBED_STATUS, |s| s.status.as_str())
    };
    let all = status_of(ALL_TOPICS);
    let action = format!("/u/{}", escape(token));
    let form = |topic: &str, act: &str, label: &str| {
        format!(
            "<form method=\"post\" action=\"{action}\" style=\"display:inline\">\
             <input type=\"hidden\" name=\"topic\" value=\"{}\">\
             <input type=\"hidden\" name=\"action\" value=\"{act}\">\
             <button type=\"submit\">{label}</button></form>",
            escape(topic)
        )
    };
    let mut rows = String::new();
    for topic in &topics {
        let status = if all == UNSUBSCRIBED_STATUS {
            UNSUBSCRIBED_STATUS
        } else {
            status_of(topic)
        };
        let button = if status == SUBSCRIBED_STATUS {
            form(topic, "unsubscribe", "Unsubscribe")
        } else {
            form(topic, "resubscribe", "Resubscribe")
        };
        rows.push_str(&format!(
            "<tr data-topic=\"{}\"><td>{}</td><td class=\"status\">{status}</td><td>{button}</td></tr>",
            escape(topic),
            escape(&topic_label(topic))
        ));
    }
    let all_button = if all == UNSUBSCRIBED_STATUS {
        form(ALL_TOPICS, "resubscribe", "Resubscribe to all")
    } else {
        form(
            ALL_TOPICS,
            "unsubscribe_all",
            "Unsubscribe from all marketing",
        )
    };
    let note = if note.is_empty() {
        String::new()
    } else {
        format!("<p class=\"note\"><strong>{}</strong></p>", escape(note))
    };
    let body = format!(
        "{note}<p>Choose which {} messages you receive. Messages you need (receipts, password \
         resets) are always sent.</p><table>{rows}<tr data-topic=\"*\"><td>{}</td>\
         <td class=\"status\">{all}</td><td>{all_button}</td></tr></table>",
        escape(&t.ch),
        topic_label(ALL_TOPICS)
    );
    Ok(page("Your subscription preferences", &body))
}

/// `GET /u/{token}`: the preference page (no login: the signed link is the authority).
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let t = verified(&state, &token, false)?;
    preferences(&state, &token, &t, "").await
}

/// `POST /u/{token}`: the RFC 8058 one-click unsubscribe (body `List-Unsubscribe=One-Click`)
/// unsubscribes from the link's topic; the preference page's forms send `action`
/// (`unsubscribe`, `unsubscribe_all`, `resubscribe`) and `topic`.
pub async fn unsubscribe_post(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let t = verified(&state, &token, false)?;
    let form = parse_form(&body)?;
    let one_click = form.get("List-Unsubscribe").map(String::as_str) == Some("One-Click");
    let action = form
        .get("action")
        .map(String::as_str)
        .unwrap_or("unsubscribe");
    let topic = match form.get("topic") {
        Some(topic) if !one_click => check_topic(topic)?,
        _ => t.t.clone(),
    };
    let source = if one_click {
        "one-click"
    } else {
        "preference page"
    };
    let note = match action {
        "unsubscribe" => {
            change(
                &state,
                t.c,
                &t.ch,
                &topic,
                UNSUBSCRIBED_STATUS,
                source,
                None,
            )
            .await?;
            format!("You are unsubscribed from {}.", topic_label(&topic))
        }
        "unsubscribe_all" => {
            change(
                &state,
                t.c,
                &t.ch,
                ALL_TOPICS,
                UNSUBSCRIBED_STATUS,
                source,
                None,
            )
            .await?;
            "You are unsubscribed from all marketing.".to_string()
        }
        "resubscribe" => {
            change(&state, t.c, &t.ch, &topic, SUBSCRIBED_STATUS, source, None).await?;
            // Resubscribing to a topic means nothing while all marketing is refused.
            let subs = contact_subscriptions(&state, t.c).await?;
            if topic != ALL_TOPICS
                && subs.iter().any(|s| {
                    s.channel == t.ch && s.topic == ALL_TOPICS && s.status == UNSUBSCRIBED_STATUS
                })
            {
                change(
                    &state,
                    t.c,
                    &t.ch,
                    ALL_TOPICS,
                    SUBSCRIBED_STATUS,
                    source,
                    None,
                )
                .await?;
            }
            format!("You are subscribed to {} again.", topic_label(&topic))
        }
        _ => {
            return Err(ApiError::invalid(
                "invalid_parameter",
                "action",
                "must be `unsubscribe`, `unsubscribe_all` or `resubscribe`",
            ));
        }
    };
    // The message whose link it was counts the unsubscription in its journey's reports.
    if action != "resubscribe"
        && let Some(key) = t.m.clone()
    {
        let now = state.engine.clock().now();
        blocking(&state, move |s| s.mark_message_unsubscribed(&key, now)).await?;
    }
    if one_click {
        return Ok(page("Unsubscribed", &format!("<p>{}</p>", escape(&note))));
    }
    preferences(&state, &token, &t, &note).await
}

// ---- double opt-in ----

/// The built-in confirmation email (a template `double-opt-in` replaces it). Its data:
/// `contact` (`email`, `name`, …), `topic` and `confirm_url`.
fn builtin_confirmation() -> TemplateDefinition {
    TemplateDefinition {
        id: CONFIRMATION_TEMPLATE.into(),
        channel: Channel::Email,
        name: Some("Double opt-in confirmation".into()),
        subject: Some("Please confirm your subscription".into()),
        html: Some(
            "<p>Hello{% if contact.name %} {{ contact.name }}{% endif %},</p>\
             <p>Please confirm that you want to receive our emails{% if topic != \"*\" %} \
             about {{ topic }}{% endif %}:</p>\
             <p><a href=\"{{ confirm_url }}\">Confirm my subscription</a></p>\
             <p>If you did not ask for this, ignore this email: nothing will be sent.</p>"
                .into(),
        ),
        mjml: None,
        text: Some(
            "Hello{% if contact.name %} {{ contact.name }}{% endif %},\n\n\
             Please confirm your subscription{% if topic != \"*\" %} to {{ topic }}{% endif %}:\n\
             {{ confirm_url }}\n\nIf you did not ask for this, ignore this email.\n"
                .into(),
        ),
        body: None,
        tracking: Some(false),
        topic: None,
        transactional: true,
    }
}

pub(super) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// `POST /v1/subscribe`: JSON with the write key, or a plain HTML form
/// (`application/x-www-form-urlencoded`, no key: the confirmation email is the check) with
/// `email`, optional `topic`, `name` and `redirect`.
/// `POST /v1/subscribe`, as JSON (with the write key) or as a form.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SubscribeRequest {
    pub email: String,
    /// Default `*`: all marketing.
    pub topic: Option<String>,
    pub name: Option<String>,
    /// Forms only: where to send the browser afterwards (a host allowed by
    /// `--subscribe-redirect-host`).
    pub redirect: Option<String>,
    /// The write key, when it is not the basic-auth user name (read by
    /// `authorize_write_key`, before this type).
    #[serde(rename = "writeKey")]
    pub _write_key: Option<String>,
}

impl RequestBody for SubscribeRequest {}

/// What a subscribe request did (JSON requests).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SubscribeResult {
    pub contact_id: i64,
    pub channel: &'static str,
    pub topic: String,
    /// `subscribed` when the contact already had consent (nothing was sent), else `pending`.
    pub status: &'static str,
}

pub async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let form = is_form(&headers);
    let fields: Map<String, Value> = if form {
        parse_form(&body)?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    } else {
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        })?;
        authorize_write_key(&state, &headers, &value)?;
        match value {
            Value::Object(m) => m,
            _ => return Err(ApiError::bad_request("invalid_json", "send a JSON object")),
        }
    };
    let request: SubscribeRequest = typed(Value::Object(fields))?;
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let email = text(&Some(request.email))
        .ok_or_else(|| ApiError::invalid("invalid_parameter", "email", "is required"))?;
    let email = waymark_core::Email::parse(&email)
        .map_err(|e| ApiError::invalid("invalid_parameter", "email", e.to_string()))?
        .to_string();
    let topic = match text(&request.topic) {
        Some(t) => check_topic(&t)?,
        None => ALL_TOPICS.to_string(),
    };
    let name = text(&request.name);
    let redirect = match text(&request.redirect) {
        Some(r) => Some(allowed_redirect(&state, &r)?),
        None => None,
    };
    let Some(tracking) = state.engine.tracking().cloned() else {
        return Err(ApiError::conflict(
            "public_url_required",
            "double opt-in needs --public-url for its confirmation link",
        ));
    };

    // At most so many confirmation emails to one address, whoever asks.
    state.public.limits.check_confirmation(&email)?;
    // The pending subscription and its confirmation email commit together.
    let now = state.engine.clock().now();
    let nonce = random_hex(8);
    let (contact_id, outcome) = {
        let email = email.clone();
        let topic = topic.clone();
        let name = name.clone();
        state
            .engine
            .send(move |tx, gate| {
                let (id, outcome) = ask_for_confirmation(tx, &email, name.as_deref(), &topic, now)?;
                if outcome == SubscribeOutcome::Pending {
                    let confirmation = Confirmation {
                        contact_id: id,
                        email: &email,
                        name: name.as_deref(),
                        topic: &topic,
                        confirm_url: consent::confirm_url(&tracking, id, "email", &topic),
                        idempotency_key: format!("double-opt-in:{id}:{nonce}"),
                    };
                    send_confirmation(tx, gate, confirmation, now)?;
                }
                Ok((id, outcome))
            })
            .await?
    };
    let already = outcome == SubscribeOutcome::AlreadyAllowed;
    if form {
        if let Some(to) = redirect {
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            return Ok(response);
        }
        // The same answer whether or not the address was known: the keyless form must not
        // tell a stranger who is subscribed.
        return Ok(page(
            "Almost done",
            "<p>Check your inbox: unless this address is already subscribed, we sent it an \
             email with a link to confirm the subscription.</p>",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(SubscribeResult {
            contact_id,
            channel: "email",
            topic,
            status: if already { SUBSCRIBED_STATUS } else { PENDING },
        }),
    )
        .into_response())
}

/// What a subscribe request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubscribeOutcome {
    /// The contact may already receive the topic: nothing changed, nothing is sent.
    AlreadyAllowed,
    /// The subscription is pending; a confirmation email is to be sent.
    Pending,
}

/// Finds or creates the contact of `email` and marks the subscription to `topic` pending,
/// without ever lowering consent the contact already has (see docs/api.md, "Consent"):
/// - a new contact (it only ever came through this form) consents to nothing until it
///   confirms: `topic` and `*` are `pending`;
/// - a known contact that may already receive `topic` is left as it is;
/// - a known contact that may not (no consent, unsubscribed, pending) gets `topic` `pending`,
///   which refuses no more than before, and a confirmation.
fn ask_for_confirmation(
    tx: &mut dyn waymark_store::EngineTx,
    email: &str,
    name: Option<&str>,
    topic: &str,
    now: jiff::Timestamp,
) -> Result<(i64, SubscribeOutcome), waymark_store::StoreError> {
    let pending = |contact_id: i64, topic: &str| Subscription {
        contact_id,
        channel: "email".into(),
        topic: topic.to_string(),
        status: PENDING.into(),
        updated_at: now,
    };
    let Some(id) = tx.contact_by_email(email)? else {
        let anonymous = format!("subscribe:{}", email.to_lowercase());
        let id = tx.resolve_contact(None, Some(&anonymous), now)?;
        let mut traits = Map::new();
        traits.insert("email".into(), json!(email));
        if let Some(name) = name {
            traits.insert("name".into(), json!(name));
        }
        tx.update_traits(id, &traits, now)?;
        tx.set_subscription(&pending(id, topic))?;
        if topic != ALL_TOPICS {
            tx.set_subscription(&pending(id, ALL_TOPICS))?;
        }
        return Ok((id, SubscribeOutcome::Pending));
    };
    let subscriptions = tx.subscriptions(id)?;
    if consent::decide(&subscriptions, "email", topic).is_none() {
        return Ok((id, SubscribeOutcome::AlreadyAllowed));
    }
    let current = subscriptions
        .iter()
        .find(|s| s.channel == "email" && s.topic == topic)
        .map(|s| s.status.as_str());
    // A confirmed topic refused only by an unsubscribe from all marketing stays as it is; the
    // preference page is where that is undone.
    if current == Some(SUBSCRIBED_STATUS) {
        return Ok((id, SubscribeOutcome::AlreadyAllowed));
    }
    tx.set_subscription(&pending(id, topic))?;
    Ok((id, SubscribeOutcome::Pending))
}

/// The subscribe form's `redirect`, when it is an http(s) URL on an allowed host (the
/// `--public-url` host or a `--subscribe-redirect-host`): anything else would make the form an
/// open redirect from the user's domain.
fn allowed_redirect(state: &AppState, raw: &str) -> ApiResult<String> {
    let url = reqwest::Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            ApiError::invalid("invalid_parameter", "redirect", "must be an http(s) URL")
        })?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if !state.public.redirect_hosts.contains(&host) {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "redirect",
            format!(
                "`{host}` is not an allowed redirect host (the --public-url host or one given \
                 with --subscribe-redirect-host)"
            ),
        ));
    }
    Ok(url.to_string())
}

/// A double opt-in confirmation email to send.
struct Confirmation<'a> {
    contact_id: i64,
    email: &'a str,
    /// The name given with the form, for a contact that has none yet.
    name: Option<&'a str>,
    topic: &'a str,
    confirm_url: String,
    idempotency_key: String,
}

/// Sends the confirmation email through the send gate (the `double-opt-in` template when one
/// is stored for email, else the built-in one). An address on the suppression list gets
/// nothing, and a template that cannot be rendered is recorded `failed`: the subscription
/// stays pending either way.
fn send_confirmation(
    tx: &mut dyn waymark_store::EngineTx,
    gate: &SendGate,
    confirmation: Confirmation<'_>,
    now: jiff::Timestamp,
) -> Result<(), waymark_store::StoreError> {
    let stored = tx
        .template(CONFIRMATION_TEMPLATE)?
        .is_some_and(|t| t.definition.channel == Channel::Email);
    let builtin = builtin_confirmation();
    let template = if stored {
        TemplateSource::Stored(CONFIRMATION_TEMPLATE)
    } else {
        TemplateSource::Builtin(&builtin)
    };
    let mut contact = waymark_engine::send::contact_data(&tx.contact(confirmation.contact_id)?);
    contact.insert("email".into(), json!(confirmation.email));
    if let Some(name) = confirmation.name {
        contact.entry("name").or_insert(json!(name));
    }
    let mut data = Map::new();
    data.insert("contact".into(), Value::Object(contact));
    data.insert("topic".into(), json!(confirmation.topic));
    data.insert("confirm_url".into(), json!(confirmation.confirm_url));
    let outgoing = Outgoing {
        idempotency_key: confirmation.idempotency_key,
        contact_id: confirmation.contact_id,
        channel: Channel::Email,
        template,
        purpose: Purpose::Requested,
        to: Some(confirmation.email.to_string()),
        data: Some(data),
    };
    let decision = gate.send(tx, outgoing, now)?;
    if decision.status != MessageStatus::Queued {
        tracing::warn!(
            contact = confirmation.contact_id,
            status = decision.status.as_str(),
            error = decision.error.as_deref().unwrap_or_default(),
            "the double opt-in confirmation was not queued"
        );
    }
    Ok(())
}

/// `GET /confirm/{token}`: a page with a button that confirms. A GET changes nothing, because
/// link scanners and mail previews follow links on the recipient's behalf.
pub async fn confirm_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let t = verified(&state, &token, true)?;
    let about = if t.t == ALL_TOPICS {
        "our emails".to_string()
    } else {
        format!("our emails about {}", escape(&t.t))
    };
    Ok(page(
        "Confirm your subscription",
        &format!(
            "<p>Do you want to receive {about}?</p>\
             <form method=\"post\" action=\"/confirm/{}\">\
             <button type=\"submit\">Confirm my subscription</button></form>\
             <p>If you did not ask for this, close this page: nothing will be sent.</p>",
            escape(&token)
        ),
    ))
}

/// `POST /confirm/{token}`: confirms a double opt-in and records `Subscription Confirmed`.
pub async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let t = verified(&state, &token, true)?;
    change(
        &state,
        t.c,
        &t.ch,
        &t.t,
        SUBSCRIBED_STATUS,
        "double opt-in",
        None,
    )
    .await?;
    Ok(page(
        "Subscription confirmed",
        "<p>Thank you: your subscription is confirmed.</p>",
    ))
}
