//! Where messages go. The built-in outbox transport only records them (they are listed by
//! `/v1/messages`), so Waymark runs with nothing else installed; SMTP goes through lettre over
//! the pooled connections of `crate::smtp` (feature `smtp`); SMS through a Twilio-compatible
//! HTTP API or a generic JSON HTTP API (feature `sms`).

#[cfg(feature = "smtp")]
use crate::smtp::SendError;
#[cfg(feature = "smtp")]
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
#[cfg(feature = "smtp")]
use lettre::message::header::HeaderName;
#[cfg(feature = "smtp")]
use lettre::message::{Mailbox, MultiPart, SinglePart, header};
use waymark_core::OutboxChannel;
use waymark_store::MessageRow;

use crate::Attempt;
use crate::webhook::Webhooks;

/// SMTP reply codes about authentication (RFC 4954): a permanent answer with one of these is
/// a problem of the server's configuration, not of the message, so it is not a bounce.
#[cfg(feature = "smtp")]
fn is_auth_refusal(code: Option<u16>) -> bool {
    matches!(code, Some(530 | 534 | 535 | 538))
}

/// Whether a permanent SMTP answer says the mailbox does not exist: an enhanced status code
/// 5.1.x (RFC 3463 "addressing status": bad mailbox, bad domain, mailbox moved), or, from a
/// server without enhanced codes, 550/551/553 with words that say so.
pub fn is_hard_bounce(code: Option<u16>, text: &str) -> bool {
    let enhanced = text.split_whitespace().find_map(|word| {
        let word = word.trim_matches(|c: char| !c.is_ascii_digit() && c != '.');
        let mut parts = word.split('.');
        let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
        let all_digits = [class, subject, detail]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        (all_digits && parts.next().is_none()).then(|| (class.to_string(), subject.to_string()))
    });
    match enhanced {
        Some((class, subject)) => class == "5" && subject == "1",
        None => {
            let lower = text.to_lowercase();
            matches!(code, Some(550 | 551 | 553))
                && [
                    "user unknown",
                    "unknown user",
                    "no such user",
                    "does not exist",
                    "no mailbox",
                ]
                .iter()
                .any(|w| lower.contains(w))
        }
    }
}

pub enum EmailTransport {
    Outbox,
    #[cfg(feature = "smtp")]
    Smtp {
        pool: Box<crate::smtp::SmtpPool>,
        from: Mailbox,
        /// Makes Message-IDs unique across installations sending from one domain.
        installation: String,
        dkim: Option<Box<DkimConfig>>,
    },
}

pub enum SmsTransport {
    Outbox,
    #[cfg(feature = "sms")]
    Twilio(TwilioSms),
    #[cfg(feature = "sms")]
    Json(JsonSms),
}

/// The transport of every channel.
pub struct Transports {
    pub email: EmailTransport,
    pub sms: SmsTransport,
    pub webhooks: WebhookTransport,
}

/// What becomes of `webhook` messages.
pub enum WebhookTransport {
    /// Not configured: they fail at once.
    Off,
    /// Recorded as sent without calling anyone (a simulation's private server).
    Record,
    Http(Webhooks),
}

impl Transports {
    /// Email and SMS to the built-in outbox, no webhooks.
    pub fn outbox() -> Self {
        Transports {
            email: EmailTransport::Outbox,
            sms: SmsTransport::Outbox,
            webhooks: WebhookTransport::Off,
        }
    }

    /// Every channel recorded as sent and nothing handed to anyone: what a simulation uses.
    pub fn record_only() -> Self {
        Transports {
            webhooks: WebhookTransport::Record,
            ..Self::outbox()
        }
    }

    /// Whether `channel`'s messages are only recorded, not handed to a provider (the built-in
    /// outbox; webhooks when they are not configured, which fail at once).
    pub fn only_records(&self, channel: OutboxChannel) -> bool {
        match channel {
            OutboxChannel::Email => matches!(self.email, EmailTransport::Outbox),
            OutboxChannel::Sms => matches!(self.sms, SmsTransport::Outbox),
            OutboxChannel::Webhook => !matches!(self.webhooks, WebhookTransport::Http(_)),
        }
    }

    /// Delivers a message through its channel's transport. The stored channel is parsed here,
    /// once; a value no transport knows fails the message.
    pub async fn deliver(&self, message: &MessageRow) -> Attempt {
        match OutboxChannel::parse(&message.channel) {
            Some(OutboxChannel::Email) => self.email.deliver(message).await,
            Some(OutboxChannel::Sms) => self.sms.deliver(message).await,
            Some(OutboxChannel::Webhook) => match &self.webhooks {
                WebhookTransport::Http(w) => w.deliver(message).await,
                WebhookTransport::Record => Attempt::Sent,
                WebhookTransport::Off => {
                    Attempt::Permanent("webhooks are not configured on this server".into())
                }
            },
            None => Attempt::Permanent(format!("unknown channel `{}`", message.channel)),
        }
    }
}

impl EmailTransport {
    /// `smtps://user:pass@host:465` (implicit TLS), `smtp://user:pass@host:587` (STARTTLS
    /// required, so a password never travels in clear), `smtp://host:25` (STARTTLS when the
    /// server offers it). An explicit `?tls=required|opportunistic` is kept as given.
    /// `installation` goes into every Message-ID, which must be unique across installations.
    /// At most `connections` connections are open at once (the pool's size, which should be
    /// the number of emails delivered at once). Without the `smtp` feature this answers an
    /// error.
    pub fn smtp(
        url: &str,
        from: &str,
        installation: &str,
        dkim: Option<&DkimSettings>,
        connections: usize,
    ) -> Result<Self, String> {
        #[cfg(feature = "smtp")]
        return Self::smtp_pool(url, from, installation, dkim, connections);
        #[cfg(not(feature = "smtp"))]
        {
            let _ = (url, from, installation, dkim, connections);
            Err("this build has no SMTP transport (the `smtp` feature)".into())
        }
    }

    #[cfg(feature = "smtp")]
    fn smtp_pool(
        url: &str,
        from: &str,
        installation: &str,
        dkim: Option<&DkimSettings>,
        connections: usize,
    ) -> Result<Self, String> {
        let dkim = dkim.map(DkimSettings::config).transpose()?.map(Box::new);
        let pool = Box::new(crate::smtp::SmtpPool::new(
            crate::smtp::Relay::parse(url)?,
            connections,
        )?);
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("invalid sender address `{from}`: {e}"))?;
        Ok(EmailTransport::Smtp {
            pool,
            from,
            installation: installation.to_string(),
            dkim,
        })
    }

    #[cfg(not(feature = "smtp"))]
    async fn deliver(&self, _m: &MessageRow) -> Attempt {
        Attempt::Sent
    }

    #[cfg(feature = "smtp")]
    async fn deliver(&self, m: &MessageRow) -> Attempt {
        let EmailTransport::Smtp {
            pool,
            from,
            installation,
            dkim,
        } = self
        else {
            return Attempt::Sent;
        };
        let Some(to) = m.recipient.as_deref() else {
            return Attempt::Permanent("no recipient".into());
        };
        let to: Mailbox = match to.parse() {
            Ok(t) => t,
            Err(e) => return Attempt::Permanent(format!("invalid recipient `{to}`: {e}")),
        };
        let domain = from.email.domain().to_string();
        // Derived from the idempotency key: a resend after a crash carries the same Message-ID,
        // so receivers and providers can recognise it.
        let message_id = format!(
            "<{}.{installation}@{domain}>",
            m.idempotency_key.replace(':', ".")
        );
        let builder = lettre::Message::builder()
            .from(from.clone())
            .to(to)
            .subject(m.subject.clone().unwrap_or_default())
            .message_id(Some(message_id));
        let builder = list_unsubscribe_headers(m.unsubscribe_url.as_deref())
            .into_iter()
            .fold(builder, |b, (name, value)| {
                b.raw_header(header::HeaderValue::new(
                    HeaderName::new_from_ascii_str(name),
                    value,
                ))
            });
        let email = match (&m.html, &m.text) {
            (Some(html), Some(text)) => builder.multipart(MultiPart::alternative_plain_html(
                text.clone(),
                html.clone(),
            )),
            (Some(html), None) => builder.singlepart(
                SinglePart::builder()
                    .header(header::ContentType::TEXT_HTML)
                    .body(html.clone()),
            ),
            (None, text) => builder.singlepart(
                SinglePart::builder()
                    .header(header::ContentType::TEXT_PLAIN)
                    .body(text.clone().unwrap_or_default()),
            ),
        };
        let mut email = match email {
            Ok(e) => e,
            Err(e) => return Attempt::Permanent(format!("cannot build the email: {e}")),
        };
        if let Some(dkim) = dkim {
            email.sign(dkim);
        }
        let sent = pool.send(email.envelope(), &email.formatted()).await;
        match sent {
            Ok(()) => Attempt::Sent,
            Err(SendError::Smtp(e)) if e.is_permanent() => {
                let code = e.status().map(u16::from);
                let text = e.to_string();
                // The reply text follows `permanent error (550): `.
                let reply = text.split_once("): ").map_or(text.as_str(), |(_, r)| r);
                if is_auth_refusal(code) {
                    Attempt::Permanent(format!("SMTP: {e}"))
                } else {
                    Attempt::Bounced {
                        error: format!("SMTP: {e}"),
                        hard_bounce: is_hard_bounce(code, reply),
                    }
                }
            }
            Err(e) => Attempt::Temporary(format!("SMTP: {e}")),
        }
    }
}

/// The RFC 2369 / RFC 8058 headers of a marketing email with a one-click unsubscribe URL.
pub fn list_unsubscribe_headers(url: Option<&str>) -> Vec<(&'static str, String)> {
    match url {
        Some(url) => vec![
            ("List-Unsubscribe", format!("<{url}>")),
            (
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".to_string(),
            ),
        ],
        None => Vec::new(),
    }
}

/// DKIM signing of outgoing email: `d=` domain, `s=` selector and an RSA private key.
#[derive(Debug, Clone)]
pub struct DkimSettings {
    pub domain: String,
    pub selector: String,
    /// PEM text of an RSA private key in PKCS#1 form (`BEGIN RSA PRIVATE KEY`).
    pub private_key_pem: String,
}

impl DkimSettings {
    #[cfg(feature = "smtp")]
    fn config(&self) -> Result<DkimConfig, String> {
        if self.private_key_pem.contains("BEGIN PRIVATE KEY") {
            return Err("the DKIM key is in PKCS#8 form; convert it with \
                        `openssl rsa -in key.pem -traditional -out key-rsa.pem`"
                .into());
        }
        let key =
            DkimSigningKey::new(&self.private_key_pem, DkimSigningAlgorithm::Rsa).map_err(|e| {
                format!("the DKIM key is not an RSA private key in PEM (PKCS#1) form: {e:?}")
            })?;
        // Not Content-Type: for multipart bodies lettre writes it with the body, out of the
        // signer's sight, and a signature over it would never verify.
        // The RFC 8058 headers must be signed for one-click unsubscribe to be honoured; a
        // listed header a message lacks is signed as absent (RFC 6376 §5.4).
        let headers = [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ]
        .into_iter()
        .map(HeaderName::new_from_ascii_str)
        .collect();
        // relaxed/relaxed survives the whitespace changes relays are allowed to make.
        let canonicalization = DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        };
        Ok(DkimConfig::new(
            self.selector.clone(),
            self.domain.clone(),
            key,
            headers,
            canonicalization,
        ))
    }
}

/// A Twilio-compatible Messages API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`
/// with `To`, `From` and `Body`, basic auth `sid:token`.
#[cfg(feature = "sms")]
pub struct TwilioSms {
    client: reqwest::Client,
    endpoint: String,
    sid: String,
    token: String,
    from: String,
}

#[cfg(feature = "sms")]
impl TwilioSms {
    /// `url` is `https://SID:TOKEN@api.twilio.com` (or any compatible base URL).
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid SMS URL: {e}"))?;
        let sid = parsed.username().to_string();
        let token = parsed.password().unwrap_or_default().to_string();
        if sid.is_empty() {
            return Err(
                "the SMS URL needs the account SID as user name (https://SID:TOKEN@host)".into(),
            );
        }
        if from.is_empty() {
            return Err("SMS sending needs a sender number (--sms-from)".into());
        }
        let mut base = parsed.clone();
        base.set_username("").ok();
        base.set_password(None).ok();
        let endpoint = format!(
            "{}/2010-04-01/Accounts/{sid}/Messages.json",
            base.as_str().trim_end_matches('/')
        );
        let client = crate::http_client()?;
        Ok(TwilioSms {
            client,
            endpoint,
            sid,
            token,
            from: from.to_string(),
        })
    }
}

/// A generic JSON HTTP SMS API: `POST {url}` with `Content-Type: application/json` and body
/// `{"to", "from", "body", "idempotency_key", "message_id"}`, an `Idempotency-Key` header, and
/// `Authorization: Bearer TOKEN` when the URL carries a password (`https://:TOKEN@host/path`;
/// the user name is ignored and the credentials are stripped from the URL).
#[cfg(feature = "sms")]
pub struct JsonSms {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    token: Option<String>,
    from: String,
}

#[cfg(feature = "sms")]
impl JsonSms {
    /// `url` is the full endpoint, e.g. `https://:TOKEN@sms.example.com/v1/messages`.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid SMS URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "the SMS URL must be http:// or https://, not `{}`",
                parsed.scheme()
            ));
        }
        let token = match parsed.password() {
            Some(p) => Some(percent_decode(p)?),
            None if !parsed.username().is_empty() => {
                return Err("the JSON SMS URL carries the bearer token as password \
                            (https://:TOKEN@host/path); a user name alone is not used"
                    .into());
            }
            None => None,
        };
        if from.is_empty() {
            return Err("SMS sending needs a sender number (--sms-from)".into());
        }
        let mut endpoint = parsed;
        endpoint.set_username("").ok();
        endpoint.set_password(None).ok();
        let client = crate::http_client()?;
        Ok(JsonSms {
            client,
            endpoint,
            token: token.filter(|t| !t.is_empty()),
            from: from.to_string(),
        })
    }
}

/// Decodes `%XX` escapes (URL user info is kept percent-encoded).
#[cfg(any(feature = "sms", feature = "smtp"))]
pub(crate) fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the SMS URL password is not UTF-8".to_string())
}

impl SmsTransport {
    #[cfg(not(feature = "sms"))]
    async fn deliver(&self, _m: &MessageRow) -> Attempt {
        Attempt::Sent
    }

    #[cfg(feature = "sms")]
    async fn deliver(&self, m: &MessageRow) -> Attempt {
        if let SmsTransport::Outbox = self {
            return Attempt::Sent;
        }
        let Some(to) = m.recipient.as_deref() else {
            return Attempt::Permanent("no recipient".into());
        };
        let body = m.text.clone().unwrap_or_default();
        let response = match self {
            SmsTransport::Outbox => return Attempt::Sent,
            SmsTransport::Twilio(t) => {
                t.client
                    .post(&t.endpoint)
                    .basic_auth(&t.sid, Some(&t.token))
                    .form(&[
                        ("To", to),
                        ("From", t.from.as_str()),
                        ("Body", body.as_str()),
                    ])
                    .send()
                    .await
            }
            SmsTransport::Json(j) => {
                let request = j
                    .client
                    .post(j.endpoint.clone())
                    .header("Idempotency-Key", &m.idempotency_key)
                    .json(&serde_json::json!({
                        "to": to,
                        "from": j.from,
                        "body": body,
                        "idempotency_key": m.idempotency_key,
                        "message_id": m.id,
                    }));
                let request = match &j.token {
                    Some(token) => request.bearer_auth(token),
                    None => request,
                };
                request.send().await
            }
        };
        match response {
            Ok(r) => crate::http_outcome("SMS provider", r).await,
            Err(e) => Attempt::Temporary(format!("SMS provider unreachable: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_hard_bounce;
    #[cfg(feature = "sms")]
    use super::{JsonSms, percent_decode};

    #[cfg(feature = "sms")]
    #[test]
    fn json_sms_takes_the_password_as_bearer_token_and_strips_credentials() {
        let j = JsonSms::new(
            "https://ignored:t%2Fok%40en@sms.example.com/v1/send",
            "+1555",
        )
        .unwrap();
        assert_eq!(j.token.as_deref(), Some("t/ok@en"));
        assert_eq!(j.endpoint.as_str(), "https://sms.example.com/v1/send");
        let j = JsonSms::new("http://127.0.0.1:9/send", "+1555").unwrap();
        assert_eq!(j.token, None);
        assert!(JsonSms::new("https://user@sms.example.com/", "+1555").is_err());
        assert!(JsonSms::new("ftp://sms.example.com/", "+1555").is_err());
        assert!(JsonSms::new("https://sms.example.com/", "").is_err());
        assert_eq!(percent_decode("a%zz%41").unwrap(), "a%zzA");
    }

    #[test]
    fn hard_bounces_are_the_5_1_x_answers() {
        assert!(is_hard_bounce(Some(550), "5.1.1 mailbox unavailable"));
        assert!(is_hard_bounce(
            Some(550),
            "5.1.10 <a@b.c>: recipient address rejected"
        ));
        assert!(is_hard_bounce(
            Some(553),
            "(5.1.3) bad destination mailbox syntax"
        ));
        assert!(is_hard_bounce(Some(550), "user unknown"));
        // Policy and content refusals are permanent but not a missing mailbox.
        assert!(!is_hard_bounce(Some(550), "5.7.1 message rejected as spam"));
        assert!(!is_hard_bounce(Some(552), "5.2.2 mailbox full"));
        assert!(!is_hard_bounce(Some(554), "transaction failed"));
        assert!(!is_hard_bounce(Some(451), "4.1.1 try later"));
    }
}
