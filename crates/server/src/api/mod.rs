//! The HTTP API: routes, shared state, authentication and body parsing.

mod consent;
pub mod error;
pub mod ingest;
mod journeys;
mod manage;
pub mod openapi;
mod privacy;
pub mod public_limits;
mod segments;
mod tracking;
mod webhooks_in;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::Value;
use waymark_engine::Engine;

use error::ApiError;

/// Largest request body accepted (Segment's own batch limit is 500 KB).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub secrets: Arc<Secrets>,
    pub metrics: Option<PrometheusHandle>,
    pub public: Arc<PublicPages>,
}

/// What the pages anyone can reach without a key are allowed to do.
pub struct PublicPages {
    pub limits: public_limits::PublicLimits,
    /// Hosts (lower case) that the subscribe form's `redirect` may lead to.
    pub redirect_hosts: Vec<String>,
}

impl Default for PublicPages {
    fn default() -> Self {
        PublicPages {
            limits: public_limits::PublicLimits::new(&Default::default()),
            redirect_hosts: Vec::new(),
        }
    }
}

pub struct Secrets {
    pub admin_token: String,
    pub write_key: String,
    /// Authenticates inbound provider webhooks (bounces, complaints, SMS keywords).
    pub inbound_webhook_secret: String,
}

/// Constant-time comparison, so that response times do not leak a secret's prefix.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The write key is the basic-auth user name (Segment's convention), or `writeKey` in the body.
pub fn authorize_write_key(
    state: &AppState,
    headers: &HeaderMap,
    body: &Value,
) -> Result<(), ApiError> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
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
                .map_or(userpass.clone(), |(u, _)| u.to_string())
        });
    let key = from_header.or_else(|| {
        body.get("writeKey")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match key {
        Some(k) if same_secret(&k, &state.secrets.write_key) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("the write key is not valid")),
        None => Err(ApiError::unauthorized(
            "send the write key as the basic-auth user name",
        )),
    }
}

fn authorize_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    match token {
        Some(t) if same_secret(t.trim(), &state.secrets.admin_token) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("the admin token is not valid")),
        None => Err(ApiError::unauthorized(
            "send the admin token as `Authorization: Bearer <token>`",
        )),
    }
}

async fn admin_only(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    // The web app's session cookie stands in for the bearer token (see crate::session).
    if !crate::session::uses_bearer(&request)
        && let Some(sessions) = request.extensions().get::<crate::session::Sessions>()
    {
        return match crate::session::authorize(sessions, &request) {
            Ok(id) => {
                request.extensions_mut().insert(id);
                next.run(request).await
            }
            Err(e) => e.into_response(),
        };
    }
    match authorize_admin(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// A JSON body whose parse errors become API errors with line and column.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        json_from_bytes(&bytes).map(JsonBody)
    }
}

fn json_from_bytes(bytes: &[u8]) -> Result<Value, ApiError> {
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

/// A document body in JSON or, with a YAML content type, YAML.
pub struct DocBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for DocBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let yaml = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("yaml"));
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::bad_request("invalid_body", "the body is not UTF-8"))?;
        if text.trim().is_empty() {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the request body is empty",
            ));
        }
        if yaml {
            serde_yaml_ng::from_str(text).map(DocBody).map_err(|e| {
                ApiError::bad_request("invalid_yaml", format!("the body is not valid YAML: {e}"))
            })
        } else {
            serde_json::from_str(text).map(DocBody).map_err(|e| {
                ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
            })
        }
    }
}

fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let mut err = ApiError::bad_request(
            "body_too_large",
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        );
        err.status = StatusCode::PAYLOAD_TOO_LARGE;
        err
    } else if let Some(timeout) = body_timed_out(&e) {
        let mut err = ApiError::bad_request("body_timeout", timeout.to_string());
        err.status = StatusCode::REQUEST_TIMEOUT;
        err
    } else {
        ApiError::bad_request("invalid_body", e.body_text())
    }
}

/// The body deadline of the connection layer (crate::connections), when that is what failed.
fn body_timed_out<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a crate::connections::BodyTimedOut> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<crate::connections::BodyTimedOut>() {
            return Some(t);
        }
        cause = c.source();
    }
    None
}

async fn method_not_allowed() -> ApiError {
    let mut e = ApiError::bad_request(
        "method_not_allowed",
        "this endpoint does not take this method; see /v1/openapi.json",
    );
    e.status = StatusCode::METHOD_NOT_ALLOWED;
    e
}

/// `GET /healthz`: 200 `ok`, 200 `degraded` when stored definitions cannot be used (counted;
/// the admin API's `/v1/problems` names them), 503 `stalled` when the engine's rounds of work
/// fail, with the error, so that a load balancer or an operator sees an engine that cannot
/// make progress.
async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let report = state.engine.problems();
    let broken = report.broken.len();
    match report.stalled {
        Some(stall) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "stalled",
                "engine": stall,
                "broken": broken,
            })),
        )
            .into_response(),
        None if broken > 0 => {
            Json(serde_json::json!({ "status": "degraded", "broken": broken })).into_response()
        }
        None => Json(serde_json::json!({ "status": "ok" })).into_response(),
    }
}

/// `GET /v1/problems` (admin): the stored definitions the engine cannot use and why, and
/// whether it is stalled.
async fn problems(axum::extract::State(state): axum::extract::State<AppState>) -> Json<Value> {
    Json(serde_json::json!(state.engine.problems()))
}

async fn metrics_endpoint(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are not enabled").into_response();
    };
    let store = state.engine.store().clone();
    if let Ok(Ok(g)) = tokio::task::spawn_blocking(move || store.gauges()).await {
        metrics::gauge!("waymark_timers_waiting").set(g.timers_waiting as f64);
        metrics::gauge!("waymark_enrollments_active").set(g.enrollments_active as f64);
        metrics::gauge!("waymark_events_pending").set(g.events_pending as f64);
        metrics::gauge!("waymark_messages_queued").set(g.messages_queued as f64);
    }
    // The dispatcher sets these after each round; set them again so the age is current even
    // while the dispatcher waits for the next retry.
    if let Err(e) = state.engine.record_queue_levels().await {
        tracing::warn!(error = %e, "cannot read the outbox queue levels");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

pub fn router(state: AppState) -> Router {
    let ingest = Router::new()
        .route("/v1/identify", post(ingest::identify))
        .route("/v1/track", post(ingest::track))
        .route("/v1/page", post(ingest::page))
        .route("/v1/screen", post(ingest::screen))
        .route("/v1/group", post(ingest::group))
        .route("/v1/alias", post(ingest::alias))
        .route("/v1/batch", post(ingest::batch))
        .route("/v1/import", post(ingest::batch));

    let admin = Router::new()
        .route("/v1/contacts", get(manage::find_contacts))
        .route("/v1/contacts/import", post(manage::import_contacts))
        .route(
            "/v1/contacts/{id}",
            get(manage::get_contact).delete(privacy::erase_contact),
        )
        .route("/v1/contacts/{id}/export", get(privacy::export_contact))
        .route("/v1/audit", get(privacy::audit))
        .route("/v1/contacts/{id}/timeline", get(manage::timeline))
        .route(
            "/v1/contacts/{id}/subscriptions",
            get(consent::list_subscriptions),
        )
        .route(
            "/v1/contacts/{id}/subscriptions/{channel}/{topic}",
            axum::routing::put(consent::put_subscription),
        )
        .route("/v1/topics", get(consent::topics))
        .route("/v1/lists", get(manage::lists).post(manage::create_list))
        .route(
            "/v1/lists/{name}/members",
            get(manage::list_members)
                .post(manage::add_list_members)
                .delete(manage::remove_list_members),
        )
        .route(
            "/v1/templates",
            get(manage::templates).post(manage::create_template),
        )
        .route(
            "/v1/templates/{id}",
            get(manage::get_template)
                .put(manage::put_template)
                .delete(manage::delete_template),
        )
        .route(
            "/v1/templates/{id}/versions",
            get(manage::template_versions),
        )
        .route(
            "/v1/templates/{id}/versions/{version}",
            get(manage::template_version),
        )
        .route("/v1/templates/{id}/preview", post(manage::preview_template))
        .route(
            "/v1/templates/{id}/test-send",
            post(manage::test_send_template),
        )
        .route("/v1/messages", get(manage::messages))
        .route("/v1/messages/requeue", post(manage::requeue_messages))
        .route(
            "/v1/suppressions",
            get(webhooks_in::list_suppressions).post(webhooks_in::add_suppression),
        )
        .route(
            "/v1/suppressions/{channel}/{address}",
            axum::routing::delete(webhooks_in::delete_suppression),
        )
        .route("/v1/clock", get(manage::clock))
        .route("/v1/clock/advance", post(manage::advance_clock))
        .route("/v1/journeys", get(journeys::list).post(journeys::create))
        .route("/v1/journeys/validate", post(journeys::validate))
        .route("/v1/journeys/{id}", get(journeys::get).put(journeys::put))
        .route("/v1/journeys/{id}/publish", post(journeys::publish))
        .route("/v1/journeys/{id}/pause", post(journeys::pause))
        .route("/v1/journeys/{id}/resume", post(journeys::resume))
        .route("/v1/journeys/{id}/archive", post(journeys::archive))
        .route("/v1/journeys/{id}/versions", get(journeys::versions))
        .route(
            "/v1/journeys/{id}/versions/{version}",
            get(journeys::version),
        )
        .route("/v1/journeys/{id}/stats", get(journeys::stats))
        .route("/v1/journeys/{id}/enroll", post(journeys::enroll))
        .route("/v1/journeys/{id}/experiments", get(journeys::experiments))
        .route("/v1/segments", get(segments::list).post(segments::create))
        .route("/v1/segments/preview", post(segments::preview))
        .route(
            "/v1/segments/{id}",
            get(segments::get)
                .put(segments::put)
                .delete(segments::delete),
        )
        .route("/v1/segments/{id}/members", get(segments::members))
        .route("/v1/problems", get(problems))
        // The web app: session check and sign-out, the journey gallery.
        .route(
            "/v1/session",
            axum::routing::delete(crate::session::sign_out),
        )
        .route("/v1/journey-templates", get(crate::ui::journey_templates))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin_only,
        ));

    // Authenticated by the inbound webhook secret, not the admin token.
    let inbound = Router::new()
        .route("/v1/webhooks/ses", post(webhooks_in::ses))
        .route("/v1/webhooks/postmark", post(webhooks_in::postmark))
        .route("/v1/webhooks/suppressions", post(webhooks_in::generic))
        .route(
            "/v1/webhooks/twilio/inbound",
            post(webhooks_in::twilio_inbound),
        );

    // Anybody may reach these without a key: rate-limited per client address.
    let public = Router::new()
        .route("/t/o/{token}", get(tracking::open))
        .route("/t/c/{token}", get(tracking::click))
        .route(
            "/u/{token}",
            get(consent::unsubscribe_page).post(consent::unsubscribe_post),
        )
        .route(
            "/confirm/{token}",
            get(consent::confirm_page).post(consent::confirm),
        )
        .route("/v1/subscribe", post(consent::subscribe))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            public_limits::limit,
        ));

    Router::new()
        .merge(ingest)
        .merge(admin)
        .merge(inbound)
        .route(
            "/v1/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
        .route(
            "/v1/schema/journey.json",
            get(|| async { Json(openapi::journey_schema()) }),
        )
        .merge(public)
        .route(
            "/v1/session",
            get(crate::session::current).post(crate::session::sign_in),
        )
        .route("/metrics", get(metrics_endpoint))
        .route("/healthz", get(health))
        // The embedded web app and its client routes; the JSON 404 otherwise.
        .fallback(crate::ui::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(crate::session::Sessions::default()))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
