//! Open and click tracking (`--public-url`): `GET /t/o/{token}` answers the open pixel and
//! `GET /t/c/{token}` redirects to a tracked link. Neither needs authentication: the token is
//! HMAC-signed and carries the message's idempotency key (and the link), so a tampered or
//! unknown token gets a 404 and never a redirect.
//!
//! Each hit becomes a track event on the message's contact, through the intake like any other
//! event: `Email Opened` (once per message: its event id is derived from the message) and, for a
//! click, `Email Link Clicked` with the `url`, preceded by that same `Email Opened` (a click
//! implies an open). The engine then records `opened_at` / `clicked_at` on the message.
//!
//! A hit by a machine (a privacy proxy, a link scanner: see `waymark_engine::machine_activity`)
//! carries the reason in its `machine` property, and its open has an event id of its own, so
//! that the person's open that follows is still recorded.

use std::net::{IpAddr, SocketAddr};

use axum::Extension;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use waymark_core::EventKind;
use waymark_engine::machine_activity::{MACHINE_PROPERTY, MACHINE_REACTION};
use waymark_engine::processor::{EMAIL_CLICKED, EMAIL_OPENED};
use waymark_engine::tracking::{Tracked, redirect_location};
use waymark_store::{NewEvent, StoreError};

use super::AppState;
use super::error::{ApiError, ApiResult};

/// A transparent 1x1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

const NO_CACHE: &str = "no-store, no-cache, must-revalidate, max-age=0";

/// `GET /t/o/{token}`: the open pixel.
pub async fn open(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let hit = Hit::of(&state, &headers, connection);
    match record(&state, &token, false, hit).await {
        Ok(_) => (
            [
                (header::CONTENT_TYPE, "image/gif"),
                (header::CACHE_CONTROL, NO_CACHE),
                (header::PRAGMA, "no-cache"),
                (header::EXPIRES, "0"),
            ],
            PIXEL,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /t/c/{token}`: records the click and redirects to the link's destination.
pub async fn click(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let hit = Hit::of(&state, &headers, connection);
    match record(&state, &token, true, hit).await {
        Ok(Tracked::Click { url, .. }) => match HeaderValue::from_str(&redirect_location(&url)) {
            Ok(location) => {
                let mut response = StatusCode::FOUND.into_response();
                let headers = response.headers_mut();
                headers.insert(header::LOCATION, location);
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
                headers.insert(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                );
                response
            }
            Err(_) => unknown().into_response(),
        },
        Ok(Tracked::Open { .. }) => unknown().into_response(),
        Err(e) => e.into_response(),
    }
}

/// What a tracking request shows of who made it.
struct Hit {
    user_agent: Option<String>,
    /// Its client's address, read as for the rate limits (`--client-ip-header`).
    client: IpAddr,
}

impl Hit {
    fn of(
        state: &AppState,
        headers: &HeaderMap,
        connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    ) -> Self {
        let connection = connection.map(|Extension(c)| c);
        Hit {
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(300).collect()),
            client: state.public.limits.client(headers, connection.as_ref()),
        }
    }
}

fn unknown() -> ApiError {
    ApiError::not_found("no such tracking link")
}

/// Verifies the token, finds its message and records the events; returns what the token
/// stands for.
async fn record(state: &AppState, token: &str, click: bool, hit: Hit) -> ApiResult<Tracked> {
    let tracked = state
        .engine
        .tracking()
        .and_then(|t| t.verify(token))
        .filter(|t| matches!(t, Tracked::Click { .. }) == click)
        .ok_or_else(unknown)?;
    let store = state.engine.store().clone();
    let key = tracked.message().to_string();
    let found = tokio::task::spawn_blocking(move || {
        let Some(message) = store.message_by_key(&key)? else {
            return Ok(None);
        };
        // Address the contact by user id, else by one of its anonymous ids.
        let identity = match &message.user_id {
            Some(user) => (Some(user.clone()), None),
            None => (
                None,
                store
                    .contact(message.contact_id)
                    .ok()
                    .and_then(|c| c.anonymous_ids.first().cloned()),
            ),
        };
        Ok::<_, StoreError>(Some((message, identity)))
    })
    .await??;
    let Some((message, (user_id, anonymous_id))) = found else {
        return Err(unknown());
    };
    if user_id.is_none() && anonymous_id.is_none() {
        tracing::warn!(
            message = message.id,
            "tracked message's contact has no id; hit not recorded"
        );
        return Ok(tracked);
    }
    let now = state.engine.clock().now();
    let machine = state
        .public
        .machines
        .classify(hit.user_agent.as_deref(), Some(hit.client))
        .or_else(|| {
            let sent = message.sent_at?;
            (now.duration_since(sent) < MACHINE_REACTION)
                .then(|| "within a second of the send".into())
        });
    let mut properties = Map::new();
    properties.insert("message_id".into(), json!(message.id));
    if let Some(agent) = &hit.user_agent {
        properties.insert("user_agent".into(), json!(agent));
    }
    if let Some(reason) = &machine {
        properties.insert(MACHINE_PROPERTY.into(), json!(reason));
    }
    properties.insert("template".into(), json!(message.template));
    if let Some(journey) = &message.journey_id {
        properties.insert("journey_id".into(), json!(journey));
    }
    let event = |name: &str, id: String, properties: Map<String, Value>| NewEvent {
        message_id: id,
        kind: EventKind::Track,
        name: name.to_string(),
        user_id: user_id.clone(),
        anonymous_id: anonymous_id.clone(),
        previous_id: None,
        properties,
        timestamp: now,
        received_at: now,
    };
    // The open's event id is fixed per message, so it is recorded once however often the
    // pixel is fetched or links are clicked.
    let open_id = match machine {
        None => format!("waymark-open-{}", message.id),
        Some(_) => format!("waymark-machine-open-{}", message.id),
    };
    let mut events = vec![event(EMAIL_OPENED, open_id, properties.clone())];
    if let Tracked::Click { index, url, .. } = &tracked {
        let mut properties = properties;
        properties.insert("url".into(), json!(url));
        properties.insert("link_index".into(), json!(index));
        events.push(event(
            EMAIL_CLICKED,
            format!(
                "waymark-click-{}-{}",
                message.id,
                super::ingest::random_hex(12)
            ),
            properties,
        ));
    }
    // A lost hit must not cost the reader the link: the token is genuine, so answer anyway.
    if let Err(e) = state.engine.intake().append(events).await {
        tracing::error!(error = %e, message = message.id, "tracking hit not recorded");
    }
    Ok(tracked)
}
