//! `webhook`: calls an HTTP endpoint with a JSON body built with Liquid, signed with the
//! installation's webhook secret. The step only writes the call to the outbox
//! (`Effect::Webhook`); `waymark-channels` delivers it, with retries and its SSRF guard.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, NEXT_ONLY, Output};
use crate::duration::Duration;
use crate::stepper::{Effect, Run};
use crate::validate::NodeCheck;

pub struct Webhook;

impl Kind for Webhook {
    type Settings = WebhookNode;
    const DESCRIPTION: &'static str = "Calls an HTTP endpoint with a JSON body built with \
        Liquid, signed with the installation's webhook secret; delivered through the outbox \
        with retries.";
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = r#"{"url": "https://crm.example.com/hooks/waymark", "body": "{\"email\": {{ contact.email | json }}}"}"#;

    fn validate(w: &WebhookNode, check: &mut NodeCheck<'_>) {
        check_webhook(w, check);
    }

    fn arrive(w: &WebhookNode, run: &mut Run<'_>) -> Arrival {
        let effect = Effect::Webhook {
            node: run.node().to_string(),
            webhook: w.clone(),
            idempotency_key: run.effect_key(),
        };
        run.effect(effect);
        Arrival::next()
    }
}

/// Default timeout of a webhook call.
pub const WEBHOOK_DEFAULT_TIMEOUT: &str = "10s";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookNode {
    /// An `http` or `https` URL. Loopback, private and link-local addresses are refused unless
    /// the host is allowed with `--webhook-allow-host`.
    pub url: String,
    #[serde(default)]
    pub method: WebhookMethod,
    /// Extra request headers (the `X-Waymark-*` headers and `Content-Type` are set by Waymark).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A Liquid template producing JSON, with `contact`, `event` and `journey` (the `json`
    /// filter encodes a value as JSON). Default: `{"contact": ..., "event": ..., "journey": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// How long to wait for the answer, e.g. `5s` (default `10s`, at most `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

impl WebhookNode {
    /// The timeout as written, or the default.
    pub fn timeout_text(&self) -> &str {
        self.timeout.as_deref().unwrap_or(WEBHOOK_DEFAULT_TIMEOUT)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookMethod {
    #[default]
    Post,
    Put,
}

impl WebhookMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookMethod::Post => "POST",
            WebhookMethod::Put => "PUT",
        }
    }
}

/// The longest a webhook may wait for its answer.
pub const WEBHOOK_MAX_TIMEOUT_SECONDS: i64 = 60;

/// Headers Waymark sets itself on a webhook call; a node may not set them.
const RESERVED_WEBHOOK_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

fn check_webhook(w: &WebhookNode, check: &mut NodeCheck<'_>) {
    match url::Url::parse(w.url.trim()) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => check.err(
            "invalid_url",
            Some("url"),
            format!("`{}` must be an http or https URL", w.url),
        ),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => check.err(
            "invalid_url",
            Some("url"),
            format!("`{}` has no host", w.url),
        ),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => check.err(
            "invalid_url",
            Some("url"),
            "credentials in the URL are not allowed; send them in `headers`".into(),
        ),
        Ok(_) => {}
        Err(e) => check.err(
            "invalid_url",
            Some("url"),
            format!("`{}` is not a valid URL: {e}", w.url),
        ),
    }
    if let Some(body) = &w.body
        && crate::limits::liquid_depth(body) > crate::limits::MAX_LIQUID_DEPTH
    {
        check.err(
            "too_deep",
            Some("body"),
            format!(
                "Liquid blocks nest at most {} levels deep",
                crate::limits::MAX_LIQUID_DEPTH
            ),
        );
    }
    match Duration::parse(w.timeout_text()) {
        Err(message) => check.err("invalid_duration", Some("timeout"), message),
        Ok(d) if d.seconds() < 1 || d.seconds() > WEBHOOK_MAX_TIMEOUT_SECONDS => check.err(
            "invalid_duration",
            Some("timeout"),
            format!("a webhook timeout is between 1s and {WEBHOOK_MAX_TIMEOUT_SECONDS}s"),
        ),
        Ok(_) => {}
    }
    for (name, value) in &w.headers {
        let field = format!("headers.{name}");
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            check.err(
                "invalid_header",
                Some(&field),
                format!("`{name}` is not a valid header name"),
            );
        } else if RESERVED_WEBHOOK_HEADERS.contains(&name.to_ascii_lowercase().as_str())
            || name.to_ascii_lowercase().starts_with("x-waymark-")
        {
            check.err(
                "invalid_header",
                Some(&field),
                format!("`{name}` is set by Waymark and cannot be overridden"),
            );
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            check.err(
                "invalid_header",
                Some(&field),
                "header values cannot contain line breaks".into(),
            );
        }
    }
    if w.body.as_deref().is_some_and(|b| b.trim().is_empty()) {
        check.err(
            "required",
            Some("body"),
            "must not be empty (leave it out for the default body)".into(),
        );
    }
}
