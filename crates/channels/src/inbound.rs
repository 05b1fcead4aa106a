//! The parsers of inbound provider webhooks: what a provider's request body says about
//! addresses, as a list of [`InboundFact`]s. Bounces and complaints come from Amazon SES
//! (through SNS), Postmark and a generic JSON form; SMS keywords (STOP, START) from a
//! Twilio-style form. No I/O here: the server authenticates the request and hands the facts to
//! the engine, which applies them (suppression list and timeline events) in one transaction.

use std::collections::HashMap;

use serde_json::{Map, Value};
use waymark_core::Channel;
use waymark_core::contact::{Email, Phone};
use waymark_store::SuppressionReason;

/// One thing a provider told us about an address.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundFact {
    pub channel: Channel,
    /// Validated and normalised (an email address without its display name, an E.164 number).
    pub address: String,
    /// `None`: recorded on the timeline only (e.g. a transient bounce).
    pub reason: Option<SuppressionReason>,
    /// Take the address off the list (SMS START).
    pub remove: bool,
    /// The track event recorded on the contacts with this address (`Email Bounced`, ...).
    pub event: &'static str,
    /// Which provider said it (`ses`, `postmark`, `webhook`, `twilio`).
    pub source: &'static str,
    /// The provider's id of the notification: makes the event idempotent when it retries.
    pub event_id: Option<String>,
    /// Extra event properties (bounce type, diagnostic, keyword...).
    pub properties: Map<String, Value>,
}

impl InboundFact {
    fn new(
        channel: Channel,
        address: String,
        reason: Option<SuppressionReason>,
        event: &'static str,
        source: &'static str,
    ) -> Self {
        InboundFact {
            channel,
            address,
            reason,
            remove: false,
            event,
            source,
            event_id: None,
            properties: Map::new(),
        }
    }

    /// Copies the provider's string fields `from` into the event properties `to`.
    fn copy_strings(&mut self, source: &Value, fields: &[(&str, &str)]) {
        for (from, to) in fields {
            if let Some(v) = source.get(*from).and_then(Value::as_str) {
                self.properties.insert((*to).into(), v.into());
            }
        }
    }
}

/// Why a body was refused: `code` is the API error code, `field` the offending field (`None`
/// when the body as a whole is unreadable).
#[derive(Debug, Clone, PartialEq)]
pub struct InboundError {
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

impl InboundError {
    fn body(code: &'static str, message: impl Into<String>) -> Self {
        InboundError {
            code,
            field: None,
            message: message.into(),
        }
    }

    fn field(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        InboundError {
            code,
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

type Parsed<T> = Result<T, InboundError>;

fn parse_json(bytes: &[u8]) -> Parsed<Value> {
    if bytes.is_empty() {
        return Err(InboundError::body(
            "invalid_json",
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| InboundError::body("invalid_json", format!("the body is not valid JSON: {e}")))
}

fn str_field<'a>(v: &'a Value, key: &str, field: &str) -> Parsed<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| InboundError::field("invalid_webhook", field, format!("`{key}` is missing")))
}

/// `"Name" <a@b.c>` or `a@b.c`, validated.
fn email_address(raw: &str, field: &str) -> Parsed<String> {
    let inner = match (raw.rfind('<'), raw.rfind('>')) {
        (Some(a), Some(b)) if a < b => &raw[a + 1..b],
        _ => raw,
    };
    Email::parse(inner)
        .map(|e| e.as_str().to_string())
        .map_err(|e| InboundError::field("invalid_address", field, e.0))
}

/// Validates an address of `channel` (an email address, possibly with a display name; a phone
/// number) and returns its normal form.
pub fn parse_address(channel: Channel, raw: &str, field: &str) -> Parsed<String> {
    match channel {
        Channel::Sms => Phone::parse(raw)
            .map(|p| p.as_str().to_string())
            .map_err(|e| InboundError::field("invalid_address", field, e.0)),
        Channel::Email => email_address(raw, field),
    }
}

/// An SNS message posted to the SES endpoint.
#[derive(Debug, PartialEq)]
pub enum SnsMessage {
    /// A new subscription: someone must open `subscribe_url` to confirm it.
    SubscriptionConfirmation {
        topic_arn: String,
        subscribe_url: String,
    },
    UnsubscribeConfirmation,
    /// An SES event: the bounce or complaint facts it holds (none for deliveries, opens...).
    Notification(Vec<InboundFact>),
}

/// Amazon SES bounce and complaint notifications through SNS (posted as JSON with
/// `Content-Type: text/plain`).
pub fn parse_ses(body: &[u8]) -> Parsed<SnsMessage> {
    let envelope = parse_json(body)?;
    match str_field(&envelope, "Type", "Type")? {
        "SubscriptionConfirmation" => {
            let subscribe_url = str_field(&envelope, "SubscribeURL", "SubscribeURL")?.to_string();
            let topic_arn = envelope
                .get("TopicArn")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            Ok(SnsMessage::SubscriptionConfirmation {
                topic_arn,
                subscribe_url,
            })
        }
        "UnsubscribeConfirmation" => Ok(SnsMessage::UnsubscribeConfirmation),
        "Notification" => {
            let raw = str_field(&envelope, "Message", "Message")?;
            let message: Value = serde_json::from_str(raw).map_err(|e| {
                InboundError::field(
                    "invalid_webhook",
                    "Message",
                    format!("`Message` is not an SES event in JSON: {e}"),
                )
            })?;
            let sns_id = envelope
                .get("MessageId")
                .and_then(Value::as_str)
                .map(str::to_string);
            ses_facts(&message, sns_id).map(SnsMessage::Notification)
        }
        other => Err(InboundError::field(
            "invalid_webhook",
            "Type",
            format!("unknown SNS message type `{other}`"),
        )),
    }
}

fn ses_facts(message: &Value, sns_id: Option<String>) -> Parsed<Vec<InboundFact>> {
    let kind = message
        .get("notificationType")
        .or_else(|| message.get("eventType"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            InboundError::field(
                "invalid_webhook",
                "Message.notificationType",
                "the SES event has no `notificationType` or `eventType`",
            )
        })?;
    let (section, list, event) = match kind {
        "Bounce" => ("bounce", "bouncedRecipients", "Email Bounced"),
        "Complaint" => ("complaint", "complainedRecipients", "Email Complained"),
        // Deliveries, sends, opens: not about suppression.
        _ => return Ok(Vec::new()),
    };
    let detail = message.get(section).ok_or_else(|| {
        InboundError::field(
            "invalid_webhook",
            format!("Message.{section}"),
            format!("a {kind} event needs `{section}`"),
        )
    })?;
    let recipients = detail.get(list).and_then(Value::as_array).ok_or_else(|| {
        InboundError::field(
            "invalid_webhook",
            format!("Message.{section}.{list}"),
            "must be a list of recipients",
        )
    })?;
    let bounce_type = detail.get("bounceType").and_then(Value::as_str);
    let reason = match (kind, bounce_type) {
        ("Bounce", Some("Permanent")) => Some(SuppressionReason::HardBounce),
        ("Bounce", _) => None,
        _ => Some(SuppressionReason::Complaint),
    };
    let mut facts = Vec::new();
    for (i, r) in recipients.iter().enumerate() {
        let field = format!("Message.{section}.{list}[{i}].emailAddress");
        let raw = r
            .get("emailAddress")
            .and_then(Value::as_str)
            .ok_or_else(|| InboundError::field("invalid_webhook", &field, "is missing"))?;
        let address = email_address(raw, &field)?;
        let mut fact = InboundFact::new(Channel::Email, address, reason, event, "ses");
        fact.event_id = sns_id.clone();
        fact.copy_strings(
            detail,
            &[
                ("bounceType", "bounce_type"),
                ("bounceSubType", "bounce_sub_type"),
                ("complaintFeedbackType", "feedback_type"),
            ],
        );
        fact.copy_strings(r, &[("diagnosticCode", "diagnostic")]);
        facts.push(fact);
    }
    Ok(facts)
}

/// Postmark's bounce and spam-complaint webhooks; `None` for the other record types.
pub fn parse_postmark(body: &[u8]) -> Parsed<Option<InboundFact>> {
    let v = parse_json(body)?;
    let record = str_field(&v, "RecordType", "RecordType")?;
    let (reason, event) = match record {
        "Bounce" => {
            let kind = str_field(&v, "Type", "Type")?;
            let reason = matches!(kind, "HardBounce" | "BadEmailAddress")
                .then_some(SuppressionReason::HardBounce);
            (reason, "Email Bounced")
        }
        "SpamComplaint" => (Some(SuppressionReason::Complaint), "Email Complained"),
        _ => return Ok(None),
    };
    let address = email_address(str_field(&v, "Email", "Email")?, "Email")?;
    let mut fact = InboundFact::new(Channel::Email, address, reason, event, "postmark");
    fact.event_id = v.get("ID").map(|id| match id {
        Value::String(s) => format!("{record}-{s}"),
        other => format!("{record}-{other}"),
    });
    fact.copy_strings(
        &v,
        &[
            ("Type", "bounce_type"),
            ("Description", "description"),
            ("Details", "diagnostic"),
        ],
    );
    Ok(Some(fact))
}

/// The most events one generic request may carry.
pub const MAX_GENERIC_EVENTS: usize = 1000;

/// The generic form: `{events: [{type, channel?, address}]}`, `type` one of bounce, complaint,
/// unsubscribe, `channel` email (the default) or sms.
pub fn parse_generic(body: &[u8]) -> Parsed<Vec<InboundFact>> {
    let v = parse_json(body)?;
    let list = v
        .get("events")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty() && l.len() <= MAX_GENERIC_EVENTS)
        .ok_or_else(|| {
            InboundError::field(
                "invalid_webhook",
                "events",
                format!("must be a list of 1 to {MAX_GENERIC_EVENTS} events"),
            )
        })?;
    let mut facts = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let kind = str_field(e, "type", &format!("events[{i}].type"))?;
        let channel = match e.get("channel") {
            None | Some(Value::Null) => Channel::Email,
            Some(Value::String(c)) if c == "email" => Channel::Email,
            Some(Value::String(c)) if c == "sms" => Channel::Sms,
            Some(_) => {
                return Err(InboundError::field(
                    "invalid_webhook",
                    format!("events[{i}].channel"),
                    "must be `email` or `sms`",
                ));
            }
        };
        let (reason, event) = match (kind, channel) {
            ("bounce", Channel::Email) => (SuppressionReason::HardBounce, "Email Bounced"),
            ("complaint", Channel::Email) => (SuppressionReason::Complaint, "Email Complained"),
            ("unsubscribe", Channel::Email) => {
                (SuppressionReason::Unsubscribe, "Email Unsubscribed")
            }
            ("bounce", Channel::Sms) => (SuppressionReason::HardBounce, "SMS Bounced"),
            ("complaint", Channel::Sms) => (SuppressionReason::Complaint, "SMS Complained"),
            ("unsubscribe", Channel::Sms) => (SuppressionReason::Unsubscribe, "SMS Opted Out"),
            _ => {
                return Err(InboundError::field(
                    "invalid_webhook",
                    format!("events[{i}].type"),
                    format!("`{kind}` is not one of bounce, complaint, unsubscribe"),
                ));
            }
        };
        let field = format!("events[{i}].address");
        let address = parse_address(channel, str_field(e, "address", &field)?, &field)?;
        facts.push(InboundFact::new(
            channel,
            address,
            Some(reason),
            event,
            "webhook",
        ));
    }
    Ok(facts)
}

const STOP_WORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
const START_WORDS: [&str; 3] = ["START", "YES", "UNSTOP"];

/// An incoming SMS, form-encoded like Twilio's: STOP words suppress the sender's number for
/// SMS, START words lift that; any other text is a conversation, not a consent change (`None`).
pub fn parse_twilio_inbound(body: &[u8]) -> Parsed<Option<InboundFact>> {
    let text = std::str::from_utf8(body)
        .map_err(|_| InboundError::body("invalid_body", "the body is not UTF-8"))?;
    // Parsed as the query string of a URL: the same encoding as a form body.
    let url = url::Url::parse(&format!("http://form.invalid/?{text}"))
        .map_err(|e| InboundError::body("invalid_body", e.to_string()))?;
    let form: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let from = form
        .get("From")
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| InboundError::field("invalid_webhook", "From", "`From` is missing"))?;
    let from = parse_address(Channel::Sms, from, "From")?;
    let word = form
        .get("Body")
        .map(|b| b.trim().trim_end_matches(['.', '!']).to_uppercase())
        .unwrap_or_default();
    let fact = if STOP_WORDS.contains(&word.as_str()) {
        Some(InboundFact::new(
            Channel::Sms,
            from,
            Some(SuppressionReason::Unsubscribe),
            "SMS Opted Out",
            "twilio",
        ))
    } else if START_WORDS.contains(&word.as_str()) {
        let mut fact = InboundFact::new(Channel::Sms, from, None, "SMS Opted In", "twilio");
        fact.remove = true;
        Some(fact)
    } else {
        None
    };
    Ok(fact.map(|mut fact| {
        fact.event_id = form.get("MessageSid").cloned();
        fact.properties.insert("keyword".into(), word.into());
        fact
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ses_permanent_bounces_suppress_transient_ones_only_record() {
        let event = |bounce_type: &str| {
            let message = json!({
                "notificationType": "Bounce",
                "bounce": {"bounceType": bounce_type, "bouncedRecipients": [
                    {"emailAddress": "\"Ann\" <Ann@Example.com>", "diagnosticCode": "550 5.1.1"}
                ]}
            });
            json!({"Type": "Notification", "MessageId": "m-1", "Message": message.to_string()})
                .to_string()
        };
        let SnsMessage::Notification(facts) = parse_ses(event("Permanent").as_bytes()).unwrap()
        else {
            panic!("not a notification");
        };
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].reason, Some(SuppressionReason::HardBounce));
        assert_eq!(facts[0].address, "ann@example.com");
        assert_eq!(facts[0].event_id.as_deref(), Some("m-1"));
        assert_eq!(facts[0].properties["diagnostic"], "550 5.1.1");
        let SnsMessage::Notification(facts) = parse_ses(event("Transient").as_bytes()).unwrap()
        else {
            panic!("not a notification");
        };
        assert_eq!(facts[0].reason, None);
        let error = parse_ses(br#"{"Type": "Nope"}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("Type"));
        assert_eq!(parse_ses(b"").unwrap_err().code, "invalid_json");
    }

    #[test]
    fn generic_events_name_the_failing_field() {
        let facts = parse_generic(
            br#"{"events": [{"type": "unsubscribe", "channel": "sms", "address": "+14155550100"}]}"#,
        )
        .unwrap();
        assert_eq!(facts[0].channel, Channel::Sms);
        assert_eq!(facts[0].event, "SMS Opted Out");
        let error =
            parse_generic(br#"{"events": [{"type": "bounce", "address": "nope"}]}"#).unwrap_err();
        assert_eq!(
            (error.code, error.field.as_deref()),
            ("invalid_address", Some("events[0].address"))
        );
    }

    #[test]
    fn twilio_stop_and_start_words() {
        let stop = parse_twilio_inbound(b"From=%2B14155550100&Body=stop.&MessageSid=SM1")
            .unwrap()
            .unwrap();
        assert_eq!(stop.reason, Some(SuppressionReason::Unsubscribe));
        assert_eq!(stop.properties["keyword"], "STOP");
        let start = parse_twilio_inbound(b"From=%2B14155550100&Body=Start")
            .unwrap()
            .unwrap();
        assert!(start.remove);
        assert_eq!(
            parse_twilio_inbound(b"From=%2B14155550100&Body=hello").unwrap(),
            None
        );
        assert!(parse_twilio_inbound(b"Body=STOP").is_err());
    }
}
