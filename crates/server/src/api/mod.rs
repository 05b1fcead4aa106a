//! The HTTP API: routes, shared state, authentication and body parsing.

mod broadcasts;
mod consent;
mod contact_query;
pub mod error;
mod event_log;
pub mod ingest;
mod journeys;
mod manage;
pub mod openapi;
pub mod operations;
mod privacy;
pub mod public_limits;
mod reports;
mod segment_history;
mod segments;
mod simulate;
mod tracking;
mod webhooks_in;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine as _;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::de::DeserializeOwned;
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
    /// The installation's sending rules, which a simulation (`POST
    /// /v1/journeys/{id}/simulate`) runs with.
    pub policy: Arc<crate::serve::SendingPolicy>,
    /// Held while a simulation runs: one at a time per server.
    pub simulation: Arc<tokio::sync::Mutex<()>>,
}

/// What the pages anyone can reach without a key are allowed to do.
pub struct PublicPages {
    pub limits: public_limits::PublicLimits,
    /// Hosts (lower case) that the subscribe form's `redirect` may lead to.
    pub redirect_hosts: Vec<String>,
    /// Tells tracking hits by proxies and scanners from people's.
    pub machines: waymark_engine::machine_activity::MachineDetector,
}

impl Default for PublicPages {
    fn default() -> Self {
        PublicPages {
            limits: public_limits::PublicLimits::new(&Default::default()),
            redirect_hosts: Vec::new(),
            machines: Default::default(),
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

/// A JSON body read into `T`. A body that is not JSON is `invalid_json` (with line and column);
/// a JSON body of the wrong shape is `T::INVALID`, with `field` naming where it went wrong
/// (`contacts[3].traits`, or the missing field).
pub struct Body<T>(pub T);

/// A request body type, and the error code of a body that does not fit it.
pub trait RequestBody: DeserializeOwned {
    const INVALID: &'static str = "invalid_parameter";
    /// The code of an error in `field` (its first path segment), when fields have their own.
    fn invalid_code(field: &str) -> &'static str {
        let _ = field;
        Self::INVALID
    }
}

impl<S: Send + Sync, T: RequestBody> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        let value = json_from_bytes(&bytes)?;
        typed(value).map(Body)
    }
}

/// Reads a JSON value into `T`, naming the field it fails on. Every request body is an object.
pub fn typed<T: RequestBody>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // A missing field is reported at its parent; name the field itself. (An unknown
        // field's path names it already.)
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name,
            (_, Some(name)) => format!("{path}.{name}"),
            (".", None) => "body".to_string(),
            (_, None) => path,
        };
        let top = field.split(['.', '[']).next().unwrap_or_default();
        ApiError::invalid(T::invalid_code(top), field, inner)
    })
}

/// Query parameters read into `T`; a value of the wrong type is `invalid_parameter` naming the
/// parameter. Parameters `T` does not name are ignored.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(QueryParams)
    }
}

/// Reads a query string as `T`; a bad parameter is `invalid_parameter` naming it.
pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(pairs).map_err(|e| {
        let message = e.inner().to_string();
        let mut field = e.path().to_string();
        // A parameter given twice or missing is no path into the value: serde names it in
        // its message.
        let named = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string)
        };
        if field == "."
            && let Some(name) = named("duplicate field `")
        {
            field = name;
        }
        if field == "."
            && let Some(name) = named("missing field `")
        {
            return ApiError::invalid("invalid_parameter", name, "is required");
        }
        let value = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| *k == field)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        ApiError::invalid("invalid_parameter", field, format!("`{value}`: {message}"))
    })
}

/// A body as it came (within the size limit), for a handler that reads it in its own way.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(body_error)
    }
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
/// the admin API's `/v1/problems` names them), 503 `database_unavailable` when the database
/// does not answer a trivial read within [`DATABASE_CHECK_TIMEOUT`], 503 `stalled` when the
/// engine's rounds of work fail, with the error, so that a load balancer or an operator sees
/// a server that cannot take or make progress.
async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (StatusCode, Json<Health>) {
    if let Err(reason) = database_answers(&state).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "database_unavailable",
                database: Some(reason),
                engine: None,
                broken: None,
            }),
        );
    }
    let report = state.engine.problems();
    let broken = report.broken.len();
    match report.stalled {
        Some(stall) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "stalled",
                database: None,
                engine: Some(stall),
                broken: Some(broken),
            }),
        ),
        None if broken > 0 => (
            StatusCode::OK,
            Json(Health {
                status: "degraded",
                database: None,
                engine: None,
                broken: Some(broken),
            }),
        ),
        None => (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                database: None,
                engine: None,
                broken: None,
            }),
        ),
    }
}

/// How long `/healthz` waits for the database to answer.
const DATABASE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the database answers a trivial read (the last event's number) in time; why not.
async fn database_answers(state: &AppState) -> Result<(), String> {
    let store = state.engine.store().clone();
    let read = tokio::task::spawn_blocking(move || store.last_event_seq());
    match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, read).await {
        Ok(Ok(Ok(_))) => Ok(()),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s",
            DATABASE_CHECK_TIMEOUT.as_secs()
        )),
    }
}

/// The answer of `/healthz`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Health {
    #[schemars(extend("enum" = ["ok", "degraded", "stalled", "database_unavailable"]))]
    status: &'static str,
    /// Why the database does not answer (`database_unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    /// Why the engine's rounds fail (`stalled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<waymark_engine::problems::Stall>,
    /// How many stored definitions the engine cannot use (`degraded`, `stalled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    broken: Option<usize>,
}

/// `GET /v1/problems` (admin): the stored definitions the engine cannot use and why, and
/// whether it is stalled.
async fn problems(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Json<waymark_engine::problems::Report> {
    Json(state.engine.problems())
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
    if let Err(e) = state.engine.queue_levels().await {
        tracing::warn!(error = %e, "cannot read the outbox queue levels");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// `GET /v1/openapi.json`
async fn openapi_document() -> Json<Value> {
    Json(openapi::document())
}

/// `GET /v1/schema/journey.json`
async fn journey_schema() -> Json<Value> {
    Json(openapi::journey_schema())
}

/// The router: every operation of `operations::all`, behind the check its access needs.
pub fn router(state: AppState) -> Router {
    let mut admin = Router::new();
    let mut public = Router::new();
    let mut rest = Router::new();
    for op in operations::all() {
        let group = match op.access {
            operations::Access::Admin => &mut admin,
            // Anybody may reach these without a key: rate-limited per client address.
            operations::Access::Public | operations::Access::PublicOrWriteKey => &mut public,
            // The write key and the inbound secret are checked by the handlers.
            _ => &mut rest,
        };
        *group = std::mem::take(group).route(op.path, op.route);
    }
    let admin = admin.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        admin_only,
    ));
    let public = public.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        public_limits::limit,
    ));
    Router::new()
        .merge(rest)
        .merge(admin)
        .merge(public)
        // The embedded web app and its client routes; the JSON 404 otherwise.
        .fallback(crate::ui::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(crate::session::Sessions::default()))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
