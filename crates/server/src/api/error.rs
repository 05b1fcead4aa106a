//! One table of API errors: every error has an HTTP status, a stable `code`, a `type` and a
//! message; validation errors also say which field (and, for journeys, which node). Every code
//! is in [`CODES`], and its `link` leads to its own explanation in docs/api.md
//! (`#error-<code>`); tests keep the table, the server and the page in step.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use waymark_engine::{EngineError, IntakeError};
use waymark_store::StoreError;

/// An error code the server answers with, the status it comes with, and where it is explained.
pub struct ErrorCode {
    pub code: &'static str,
    pub status: u16,
    /// `docs/api.md#error-<code>`
    pub link: &'static str,
}

macro_rules! code {
    ($code:literal, $status:literal) => {
        ErrorCode {
            code: $code,
            status: $status,
            link: concat!("docs/api.md#error-", $code),
        }
    };
}

/// Every `code` of an error answer. docs/api.md explains each under `#error-<code>`.
pub const CODES: &[ErrorCode] = &[
    code!("invalid_json", 400),
    code!("invalid_yaml", 400),
    code!("invalid_body", 400),
    code!("invalid_parameter", 400),
    code!("invalid_event", 400),
    code!("invalid_events", 400),
    code!("invalid_batch", 400),
    code!("invalid_journey", 400),
    code!("invalid_broadcast", 400),
    code!("invalid_template", 400),
    code!("invalid_condition", 400),
    code!("invalid_list", 400),
    code!("invalid_members", 400),
    code!("invalid_import", 400),
    code!("render_failed", 400),
    code!("invalid_suppression", 400),
    code!("invalid_address", 400),
    code!("invalid_webhook", 400),
    code!("invalid_id", 400),
    code!("invalid_name", 400),
    code!("invalid_user_id", 400),
    code!("invalid_contact_id", 400),
    code!("invalid_payload", 400),
    code!("invalid_message_id", 400),
    code!("invalid_option", 400),
    code!("requeue_filter_required", 400),
    code!("unauthorized", 401),
    code!("csrf_failed", 403),
    code!("not_found", 404),
    code!("method_not_allowed", 405),
    code!("body_timeout", 408),
    code!("conflict", 409),
    code!("journey_exists", 409),
    code!("journey_archived", 409),
    code!("invalid_transition", 409),
    code!("clock_not_simulated", 409),
    code!("segment_exists", 409),
    code!("segment_in_use", 409),
    code!("not_enrollable", 409),
    code!("public_url_required", 409),
    code!("body_too_large", 413),
    code!("too_many_attempts", 429),
    code!("rate_limited", 429),
    code!("simulation_running", 429),
    code!("internal", 500),
    code!("unavailable", 503),
    code!("database_unavailable", 503),
    code!("too_many_connections", 503),
];

/// Where the explanation of an error code is (the section of all errors for a code that is
/// not in the table, which a test and debug builds rule out).
pub fn link(code: &str) -> &'static str {
    CODES
        .iter()
        .find(|c| c.code == code)
        .map_or("docs/api.md#errors", |c| c.link)
}

fn code_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let codes: Vec<&str> = CODES.iter().map(|c| c.code).collect();
    schemars::json_schema!({
        "type": "string",
        "description": "Stable; explained in docs/api.md under #error-<code>",
        "enum": codes
    })
}

/// The `Retry-After` of a `database_unavailable` answer: the server reconnects on the next
/// request, so a client may try again soon.
pub const DATABASE_RETRY_AFTER_SECONDS: u32 = 2;

/// The body of every error answer (`Error` in the OpenAPI document).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Error")]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    #[schemars(schema_with = "code_schema")]
    pub code: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every individual problem, for requests that can have several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Box<Value>>,
    /// The explanation of `code` (docs/api.md#error-<code>).
    pub link: &'static str,
    /// Seconds to wait, sent as `Retry-After` (429 answers, `database_unavailable`).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        kind: &'static str,
        message: impl Into<String>,
    ) -> Self {
        debug_assert!(
            CODES.iter().any(|c| c.code == code),
            "error code `{code}` is not in error::CODES"
        );
        ApiError {
            status,
            code,
            kind,
            message: message.into(),
            field: None,
            errors: None,
            link: link(code),
            retry_after: None,
        }
    }

    pub fn invalid(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, code, "invalid_request", message);
        e.field = Some(field.into());
        e
    }

    pub fn with_errors(mut self, errors: Value) -> Self {
        self.errors = Some(Box::new(errors));
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, "invalid_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authentication",
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, "conflict", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "internal",
            message,
        )
    }

    /// The database cannot be reached ([`StoreError::Unavailable`]): nothing is wrong with
    /// the request; `Retry-After` says when to try again.
    pub fn database_unavailable(message: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "unavailable",
            format!("database unavailable: {}", message.into()),
        );
        e.retry_after = Some(DATABASE_RETRY_AFTER_SECONDS);
        e
    }

    pub fn too_many_requests(
        code: &'static str,
        message: impl Into<String>,
        retry_after_seconds: u32,
    ) -> Self {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, "rate_limit", message);
        e.retry_after = Some(retry_after_seconds);
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal",
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code == "database_unavailable" {
            // Every request fails while the database is away; the intake and the engine log
            // the outage once, when it begins and when it ends.
            tracing::debug!(message = %self.message, "request failed");
        } else if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let retry_after = self.retry_after;
        let mut response = (self.status, Json(self)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
            StoreError::Conflict(what) => ApiError::conflict("conflict", what),
            StoreError::Unavailable(why) => ApiError::database_unavailable(why),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::DatabaseUnavailable(why) => ApiError::database_unavailable(why),
            other @ IntakeError::Unavailable(_) => ApiError::unavailable(other.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::NotSimulated => ApiError::conflict("clock_not_simulated", e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The string literal right after each occurrence of `before` (spaces and line breaks in
    /// between allowed).
    fn literals_after(source: &str, before: &str, out: &mut BTreeSet<String>) {
        for (at, _) in source.match_indices(before) {
            let rest = source[at + before.len()..].trim_start();
            if let Some(literal) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                out.insert(literal.to_string());
            }
        }
    }

    /// Every error code the server's code (and the inbound parsers it answers with) can put in
    /// an answer: the first argument of the constructors that take one, the codes of typed
    /// bodies, and the connection limit's hand-written answer.
    fn codes_in_source() -> BTreeSet<String> {
        let mut files = Vec::new();
        rust_files(&repo().join("crates/server/src"), &mut files);
        files.push(repo().join("crates/channels/src/inbound.rs"));
        let mut found = BTreeSet::new();
        for file in files {
            let source = std::fs::read_to_string(&file).expect("source file");
            // Up to the unit tests.
            let source = source.split("#[cfg(test)]").next().unwrap_or_default();
            for before in [
                "ApiError::invalid(",
                "ApiError::bad_request(",
                "ApiError::conflict(",
                "ApiError::too_many_requests(",
                "InboundError::field(",
                "InboundError::body(",
                "const INVALID: &'static str =",
                "\"code\":",
            ] {
                literals_after(source, before, &mut found);
            }
            // The per-field codes of a typed body (`"user_id" => "invalid_user_id"`).
            for (at, _) in source.match_indices("fn invalid_code(") {
                let body = &source[at..source[at..]
                    .find("\n    }")
                    .map_or(source.len(), |e| at + e)];
                literals_after(body, "=>", &mut found);
            }
        }
        found.retain(|c| !c.is_empty());
        found
    }

    #[test]
    fn every_code_the_server_answers_is_in_the_table() {
        let known: BTreeSet<&str> = CODES.iter().map(|c| c.code).collect();
        let used = codes_in_source();
        assert!(
            used.len() > 30,
            "the source scan found too few codes: {used:?}"
        );
        let missing: Vec<_> = used
            .iter()
            .filter(|c| !known.contains(c.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "codes missing from error::CODES: {missing:?}"
        );
        // And the table holds nothing the server never says.
        let fixed = [
            "unauthorized",
            "not_found",
            "internal",
            "unavailable",
            "database_unavailable",
        ];
        for fixed in fixed {
            assert!(known.contains(fixed));
        }
        let unused: Vec<_> = known
            .iter()
            .filter(|c| !used.contains(**c) && !fixed.contains(c))
            .collect();
        assert!(
            unused.is_empty(),
            "codes in error::CODES the server never answers: {unused:?}"
        );
    }

    #[test]
    fn every_code_has_its_own_explanation_in_the_docs() {
        let docs = std::fs::read_to_string(repo().join("docs/api.md")).expect("docs/api.md");
        let mut seen = BTreeSet::new();
        for c in CODES {
            assert!(seen.insert(c.code), "`{}` is in error::CODES twice", c.code);
            let anchor = format!("id=\"error-{}\"", c.code);
            assert_eq!(
                docs.matches(&anchor).count(),
                1,
                "docs/api.md needs exactly one anchor {anchor} explaining `{}`",
                c.code
            );
            assert_eq!(link(c.code), format!("docs/api.md#error-{}", c.code));
            let row = docs
                .lines()
                .find(|l| l.contains(&anchor))
                .expect("the anchor's row");
            assert!(
                row.contains(&format!("| {} |", c.status)),
                "docs/api.md gives `{}` another status than {}: {row}",
                c.code,
                c.status
            );
        }
    }
}
