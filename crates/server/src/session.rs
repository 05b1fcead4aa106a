//! Browser sessions of the web app. The admin token is exchanged once (`POST /v1/session`) for
//! a random session id, kept by the browser in an HTTP-only, `SameSite=Strict` cookie that
//! scripts cannot read; the token itself is never stored in the browser.
//!
//! Sessions live in memory: a restart, or a change of the admin token, signs everyone out.
//! A request authenticated by the cookie that changes something (any method but GET, HEAD and
//! OPTIONS) must also carry the session's CSRF token in `X-Waymark-CSRF`: SameSite=Strict keeps
//! other sites' requests from carrying the cookie in current browsers, and the token covers
//! older ones and sibling subdomains. A bearer token, when present, wins over the cookie and
//! needs no CSRF token (browsers never attach it on their own).
//!
//! Sign-in is throttled per client address (an IPv6 address by its /64): after
//! [`FREE_FAILURES`] wrong tokens in a row, every attempt from the address is answered 429 with
//! `Retry-After` for a lockout that starts at [`FIRST_LOCKOUT`] and doubles with each further
//! failure, up to [`MAX_LOCKOUT`]. A success clears the address's record.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;
use crate::api::{AppState, same_secret};

/// Name of the session cookie.
pub const COOKIE: &str = "waymark_session";
/// Header that carries the CSRF token on state-changing requests made with the cookie.
pub const CSRF_HEADER: &str = "x-waymark-csrf";
/// How long a session lasts after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// At most this many sessions at once; signing in beyond it ends the oldest.
const MAX_SESSIONS: usize = 1000;

struct Session {
    csrf: String,
    created: Instant,
}

/// A request's session, put in its extensions by [`authorize`] when the cookie opened it.
#[derive(Clone)]
pub struct SessionId(pub String);

/// Wrong tokens a client address may send in a row before it is locked out.
pub const FREE_FAILURES: u32 = 5;
/// The first lockout; each further failure doubles it.
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(30);
/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(3600);
/// A record of failures is forgotten this long after its last failure (or lockout's end).
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// At most this many addresses are remembered; beyond it the oldest record is dropped.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// The sessions of this process, and its record of failed sign-ins.
#[derive(Clone, Default)]
pub struct Sessions {
    live: Arc<Mutex<HashMap<String, Session>>>,
    failures: Arc<Mutex<HashMap<IpAddr, Failures>>>,
}

/// Failed sign-ins of one client address.
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Failures {
    fn forgotten(&self, now: Instant) -> bool {
        let end = self.locked_until.map_or(self.last, |l| l.max(self.last));
        now.saturating_duration_since(end) >= FORGET_AFTER
    }
}

/// The address a throttle record is kept under: an IPv6 client usually holds a whole /64.
fn throttle_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
        v4 => v4,
    }
}

impl Sessions {
    /// The time left of the address's lockout, if it is locked out.
    fn locked_out(&self, addr: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let map = self.failures.lock().expect("sign-in failures");
        let until = map.get(&throttle_key(addr))?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a wrong token from the address.
    fn failed(&self, addr: IpAddr) {
        let now = Instant::now();
        let mut map = self.failures.lock().expect("sign-in failures");
        if map.len() >= MAX_TRACKED_ADDRESSES {
            map.retain(|_, f| !f.forgotten(now));
        }
        if map.len() >= MAX_TRACKED_ADDRESSES
            && let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        let record = map.entry(throttle_key(addr)).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if record.forgotten(now) {
            record.count = 0;
        }
        record.count += 1;
        record.last = now;
        if record.count >= FREE_FAILURES {
            let doublings = (record.count - FREE_FAILURES).min(16);
            let lockout = FIRST_LOCKOUT
                .saturating_mul(1 << doublings)
                .min(MAX_LOCKOUT);
            record.locked_until = Some(now + lockout);
            tracing::warn!(client = %addr, failures = record.count, lockout_seconds = lockout.as_secs(), "sign-in locked out after wrong admin tokens");
        }
    }

    fn succeeded(&self, addr: IpAddr) {
        self.failures
            .lock()
            .expect("sign-in failures")
            .remove(&throttle_key(addr));
    }

    /// Starts a session: (session id, CSRF token).
    fn create(&self) -> (String, String) {
        let id = crate::api::ingest::random_hex(32);
        let csrf = crate::api::ingest::random_hex(24);
        let mut map = self.live.lock().expect("sessions");
        map.retain(|_, s| s.created.elapsed() < LIFETIME);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                created: Instant::now(),
            },
        );
        (id, csrf)
    }

    /// The CSRF token of a live session.
    fn csrf(&self, id: &str) -> Option<String> {
        let mut map = self.live.lock().expect("sessions");
        match map.get(id) {
            Some(s) if s.created.elapsed() < LIFETIME => Some(s.csrf.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    fn remove(&self, id: &str) {
        self.live.lock().expect("sessions").remove(id);
    }
}

/// The session id in the request's `Cookie` header.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

fn has_bearer(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
}

/// Admin authentication of a request whose bearer token was missing: the session cookie, with
/// the CSRF token on state-changing methods. `Ok` carries the session id.
pub fn authorize(sessions: &Sessions, request: &Request) -> Result<SessionId, ApiError> {
    let headers = request.headers();
    let Some(id) = cookie(headers) else {
        return Err(ApiError::unauthorized(
            "send the admin token as `Authorization: Bearer <token>`, or sign in (POST /v1/session)",
        ));
    };
    let Some(csrf) = sessions.csrf(&id) else {
        return Err(ApiError::unauthorized(
            "the session has ended or is not valid; sign in again",
        ));
    };
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|s| same_secret(s, &csrf)) {
            let mut e = ApiError::bad_request(
                "csrf_failed",
                "a request made with the session cookie must carry the session's CSRF token in X-Waymark-CSRF",
            );
            e.status = StatusCode::FORBIDDEN;
            e.kind = "authentication";
            return Err(e);
        }
    }
    Ok(SessionId(id))
}

/// Whether cookies must be `Secure`: the server is reached over https (its `--public-url`, or a
/// proxy that says so in `X-Forwarded-Proto`).
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    let public_https = state
        .engine
        .tracking()
        .is_some_and(|t| t.public_url().starts_with("https://"));
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    public_https || forwarded_https
}

fn set_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let mut c = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie header")
}

/// `POST /v1/session`: the body may be left out when the bearer header carries the token.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SignIn {
    /// The admin token.
    pub token: Option<String>,
}

/// A new session: its cookie is set, and state-changing requests made with it carry
/// `csrf_token` in `X-Waymark-CSRF`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SignedIn {
    pub signed_in: bool,
    pub csrf_token: String,
    /// Seconds the session lasts.
    pub expires_in: u64,
}

/// Whether a request is signed in, and how.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SessionState {
    pub signed_in: bool,
    /// `bearer` or `cookie`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<&'static str>,
    pub csrf_token: Option<String>,
}

/// `POST /v1/session`: `{"token": ADMIN_TOKEN}` (or the bearer header) → the session cookie
/// and the CSRF token.
pub async fn sign_in(
    State(state): State<AppState>,
    axum::Extension(sessions): axum::Extension<Sessions>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // The same client address as the public pages' limits (`--client-ip-header` behind a
    // proxy). Without the connection's address (a server not started by `waymark serve`),
    // all clients share one record.
    let client = state
        .public
        .limits
        .client(&headers, extensions.get::<ConnectInfo<SocketAddr>>());
    if let Some(left) = sessions.locked_out(client) {
        return too_many_attempts(left);
    }
    let from_body = serde_json::from_slice::<SignIn>(&body)
        .ok()
        .and_then(|b| b.token);
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    let token = match from_body.or(from_header) {
        Some(t) if !t.trim().is_empty() => t,
        _ => {
            return ApiError::unauthorized("send the admin token as `{\"token\": \"…\"}`")
                .into_response();
        }
    };
    if !same_secret(token.trim(), &state.secrets.admin_token) {
        sessions.failed(client);
        return ApiError::unauthorized("the admin token is not valid").into_response();
    }
    sessions.succeeded(client);
    let (id, csrf) = sessions.create();
    let mut response = Json(SignedIn {
        signed_in: true,
        csrf_token: csrf,
        expires_in: LIFETIME.as_secs(),
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&id, LIFETIME.as_secs(), secure(&state, &headers)),
    );
    response
}

/// 429 with `Retry-After` (whole seconds, rounded up).
fn too_many_attempts(left: Duration) -> Response {
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let mut e = ApiError::bad_request(
        "too_many_attempts",
        format!("too many wrong admin tokens from this address; sign-in is locked for {seconds} s"),
    );
    e.status = StatusCode::TOO_MANY_REQUESTS;
    e.kind = "rate_limit";
    let mut response = e.into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// `GET /v1/session`: whether the request is signed in (by the cookie, or a bearer token), and
/// the session's CSRF token. Answers `200 {"signed_in": false}` rather than 401 when it is not,
/// so that the app's first look does not log an error in the browser.
pub async fn current(
    State(state): State<AppState>,
    axum::Extension(sessions): axum::Extension<Sessions>,
    headers: HeaderMap,
) -> Json<SessionState> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    if let Some(token) = bearer {
        let valid = same_secret(token.trim(), &state.secrets.admin_token);
        return Json(SessionState {
            signed_in: valid,
            via: Some("bearer"),
            csrf_token: None,
        });
    }
    match cookie(&headers).and_then(|id| sessions.csrf(&id)) {
        Some(csrf) => Json(SessionState {
            signed_in: true,
            via: Some("cookie"),
            csrf_token: Some(csrf),
        }),
        None => Json(SessionState {
            signed_in: false,
            via: None,
            csrf_token: None,
        }),
    }
}

/// `DELETE /v1/session` (behind admin authentication): ends the session, clears the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    axum::Extension(sessions): axum::Extension<Sessions>,
    session: Option<axum::Extension<SessionId>>,
    headers: HeaderMap,
) -> Response {
    if let Some(s) = session {
        sessions.remove(&s.0.0);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie("", 0, secure(&state, &headers)),
    );
    response
}

/// Whether the request carries a bearer token (which then decides alone).
pub fn uses_bearer(request: &Request) -> bool {
    has_bearer(request.headers())
}
