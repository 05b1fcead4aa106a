//! Inbound provider webhooks and the suppression list.
//!
//! Bounces and complaints come back from Amazon SES (through SNS), Postmark and a generic JSON
//! form; SMS keywords (STOP, START) from a Twilio-style inbound webhook. The handlers here
//! authenticate the request; `waymark_channels::inbound` parses the body into facts, and
//! `Engine::apply_inbound` changes the suppression list and records a track event
//! (`Email Bounced`, `Email Complained`, `SMS Opted Out`, ...) on the contacts with that
//! address in one transaction, so it shows on the timeline and can drive journeys.
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
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use waymark_channels::inbound::{self, InboundError, InboundFact, SnsMessage};
use waymark_core::Channel;
use waymark_engine::inbound::InboundOutcome;
use waymark_store::{StoreError, Suppression, SuppressionQuery, SuppressionReason};

use super::error::{ApiError, ApiResult};
use super::ingest::random_hex;
use super::manage::blocking;
use super::{AppState, Body, QueryParams, RequestBody, same_secret};

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

/// A parser's refusal as the API's 400 answer.
fn refused(e: InboundError) -> ApiError {
    match e.field {
        Some(field) => ApiError::invalid(e.code, field, e.message),
        None => ApiError::bad_request(e.code, e.message),
    }
}

/// The answer to an inbound webhook: `ok` with what was done per fact, `ignored`, or (SNS)
/// `confirmation_required` with the subscription to confirm.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct InboundAnswer {
    #[schemars(extend("enum" = ["ok", "ignored", "confirmation_required"]))]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<InboundOutcome>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe_url: Option<String>,
}

/// Applies the facts (suppression list and timeline events, in one engine transaction) and
/// answers with a summary per fact.
async fn apply(state: &AppState, facts: Vec<InboundFact>) -> ApiResult<Json<InboundAnswer>> {
    let outcomes = state
        .engine
        .apply_inbound(facts, random_hex(16))
        .await
        .map_err(|e| match e {
            // The provider retries a 503 with Retry-After as it does any other.
            waymark_engine::EngineError::Store(store @ StoreError::Unavailable(_)) => {
                ApiError::from(store)
            }
            other => ApiError::unavailable(other.to_string()),
        })?;
    Ok(Json(InboundAnswer {
        status: "ok",
        results: Some(outcomes),
        ..InboundAnswer::default()
    }))
}

/// `POST /v1/webhooks/ses`: Amazon SES bounce and complaint notifications through SNS.
/// SNS posts JSON with `Content-Type: text/plain`, so the body is read as bytes.
pub async fn ses(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<InboundAnswer>> {
    authorize_inbound(&state, &headers, &params)?;
    match inbound::parse_ses(&body).map_err(refused)? {
        SnsMessage::SubscriptionConfirmation {
            topic_arn,
            subscribe_url,
        } => {
            // Waymark does not fetch the URL itself (it would be a request to an address taken
            // from a request body); the operator opens it, or pastes it into the SNS console's
            // "Confirm subscription". It is logged and kept in the database.
            tracing::warn!(topic = %topic_arn, subscribe_url = %subscribe_url,
                "SNS subscription awaiting confirmation: open the SubscribeURL to confirm it");
            let (key, value) = (
                format!("sns_subscribe_url:{topic_arn}"),
                subscribe_url.clone(),
            );
            blocking(&state, move |s| s.set_meta(&key, &value)).await?;
            Ok(Json(InboundAnswer {
                status: "confirmation_required",
                topic_arn: Some(topic_arn),
                subscribe_url: Some(subscribe_url),
                ..InboundAnswer::default()
            }))
        }
        SnsMessage::UnsubscribeConfirmation => Ok(Json(InboundAnswer {
            status: "ignored",
            ..InboundAnswer::default()
        })),
        SnsMessage::Notification(facts) => apply(&state, facts).await,
    }
}

/// `POST /v1/webhooks/postmark`: Postmark's bounce and spam-complaint webhooks.
pub async fn postmark(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<InboundAnswer>> {
    authorize_inbound(&state, &headers, &params)?;
    let Some(fact) = inbound::parse_postmark(&body).map_err(refused)? else {
        return Ok(Json(InboundAnswer {
            status: "ignored",
            results: Some(Vec::new()),
            ..InboundAnswer::default()
        }));
    };
    apply(&state, vec![fact]).await
}

/// `POST /v1/webhooks/suppressions`: `{events: [{type, channel?, address}]}`.
pub async fn generic(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<InboundAnswer>> {
    authorize_inbound(&state, &headers, &params)?;
    let facts = inbound::parse_generic(&body).map_err(refused)?;
    apply(&state, facts).await
}

/// `POST /v1/webhooks/twilio/inbound`: an incoming SMS, form-encoded like Twilio's. STOP words
/// suppress the sender's number for SMS; START words lift that. Answers empty TwiML.
pub async fn twilio_inbound(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    authorize_inbound(&state, &headers, &params)?;
    if let Some(fact) = inbound::parse_twilio_inbound(&body).map_err(refused)? {
        // Twilio expects TwiML back, not the summary.
        let _summary = apply(&state, vec![fact]).await?;
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
    )
        .into_response())
}

fn channel_param(raw: &str, field: &str) -> ApiResult<Channel> {
    Channel::parse(raw).ok_or_else(|| {
        ApiError::invalid(
            "invalid_parameter",
            field,
            format!("`{raw}` is not a channel (email or sms)"),
        )
    })
}

/// `GET /v1/suppressions`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SuppressionSearch {
    /// `email` or `sms`.
    pub channel: Option<String>,
    pub address: Option<String>,
    /// How many to list, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Suppressions {
    pub suppressions: Vec<Suppression>,
}

pub async fn list_suppressions(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<SuppressionSearch>,
) -> ApiResult<Json<Suppressions>> {
    let channel = p
        .channel
        .as_deref()
        .map(|c| channel_param(c, "channel"))
        .transpose()?;
    let query = SuppressionQuery {
        channel: channel.map(|c| c.as_str().to_string()),
        address: p.address,
        limit: super::manage::page_limit(p.limit)?,
    };
    let suppressions = blocking(&state, move |s| s.suppressions(&query)).await?;
    Ok(Json(Suppressions { suppressions }))
}

/// `POST /v1/suppressions`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NewSuppression {
    /// `email` or `sms`.
    #[schemars(extend("enum" = ["email", "sms"]))]
    pub channel: String,
    /// An email address, or an E.164 number for `sms`.
    pub address: String,
    /// Default `manual`.
    pub reason: Option<SuppressionReason>,
}

impl RequestBody for NewSuppression {
    const INVALID: &'static str = "invalid_suppression";
}

/// `POST /v1/suppressions {channel, address, reason?}` (reason defaults to `manual`).
pub async fn add_suppression(
    State(state): State<AppState>,
    Body(v): Body<NewSuppression>,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    let channel = channel_param(&v.channel, "channel")?;
    let address = inbound::parse_address(channel, &v.address, "address").map_err(refused)?;
    let reason = v.reason.unwrap_or(SuppressionReason::Manual);
    let entry = Suppression {
        channel: channel.as_str().to_string(),
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
    Ok((status, Json(entry)))
}

/// `DELETE /v1/suppressions/{channel}/{address}`
pub async fn delete_suppression(
    State(state): State<AppState>,
    Path((channel, address)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let channel = channel_param(&channel, "channel")?;
    let removed = blocking(&state, move |s| s.unsuppress(channel.as_str(), &address)).await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("this address is not suppressed"))
    }
}
