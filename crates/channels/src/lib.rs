//! Waymark's delivery channels: where a queued message goes and what comes back.
//!
//! - [`transport`]: email (the built-in outbox, or SMTP with DKIM) and SMS (the outbox, a
//!   Twilio-compatible or a generic JSON HTTP API), gathered in [`Transports`];
//! - [`webhook`]: the `webhook` journey action, its signature and its SSRF guard;
//! - [`tracking`]: the signed tokens of open and click tracking (the HTML rewriting is
//!   `waymark_render::links`);
//! - [`inbound`]: the parsers of what providers send back (bounces, complaints, SMS STOP and
//!   START), from a request body to a list of facts, with no I/O.
//!
//! Every transport reports an [`Attempt`], and every HTTP answer is classified by the one
//! [`is_transient_http_status`]. Heavy integrations are cargo features, on by default: `smtp`
//! (lettre), `sms` and `webhook` (reqwest); see `Cargo.toml` for what each turns off.

pub mod inbound;
#[cfg(feature = "smtp")]
pub mod smtp;
pub mod tracking;
pub mod transport;
pub mod webhook;

pub use tracking::Tracking;
pub use transport::{DkimSettings, EmailTransport, SmsTransport, Transports, WebhookTransport};
#[cfg(feature = "sms")]
pub use transport::{JsonSms, TwilioSms};
pub use webhook::{WebhookConfig, Webhooks};

/// The result of one delivery attempt.
#[derive(Debug)]
pub enum Attempt {
    Sent,
    /// Worth trying again later (connection trouble, 4xx, throttling).
    Temporary(String),
    /// Will never work, and the receiving server did not say so (invalid recipient syntax,
    /// a configuration error, an HTTP 4xx from an SMS provider): the message is `failed`.
    Permanent(String),
    /// The receiving SMTP server refused the message permanently (a 5xx answer): the message
    /// is `bounced`. `hard_bounce` when the answer says the mailbox does not exist (a 5.1.x
    /// answer, see [`transport::is_hard_bounce`]): the address then goes on the suppression
    /// list.
    Bounced {
        error: String,
        hard_bounce: bool,
    },
}

/// Whether an HTTP provider's answer (SMS API, webhook receiver) is worth trying again later:
/// 408 (request timeout), 429 (too many requests) and every 5xx. Any other 4xx says the request
/// itself is wrong, and sending it again would get the same answer. The one classifier of every
/// HTTP channel.
pub fn is_transient_http_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// The outcome of an HTTP provider's answer (SMS API, webhook receiver): sent on a 2xx, else
/// temporary or permanent by [`is_transient_http_status`], with the status and the first 300
/// characters of the body in the error; `who` names the provider in it.
#[cfg(any(feature = "sms", feature = "webhook"))]
async fn http_outcome(who: &str, response: reqwest::Response) -> Attempt {
    let status = response.status();
    if status.is_success() {
        return Attempt::Sent;
    }
    let body = response.text().await.unwrap_or_default();
    let error = format!(
        "{who} answered {status}: {}",
        body.chars().take(300).collect::<String>()
    );
    if is_transient_http_status(status.as_u16()) {
        Attempt::Temporary(error)
    } else {
        Attempt::Permanent(error)
    }
}

/// The HTTP client of the SMS APIs.
#[cfg(feature = "sms")]
fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::is_transient_http_status;

    #[test]
    fn providers_408_429_and_5xx_are_retried_other_4xx_are_not() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_transient_http_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 410, 413, 422, 499] {
            assert!(!is_transient_http_status(status), "{status}");
        }
    }
}
