//! Consent: subscription topics, the rule that decides whether a marketing message may go,
//! and the signed tokens of unsubscribe and double opt-in confirmation links.
//!
//! The rule, for a message whose template is not `transactional`, on its channel:
//! 1. the contact unsubscribed from all marketing (topic `*` is `unsubscribed`), or has the
//!    identify trait `unsubscribed: true`: suppressed;
//! 2. else, when the template has a topic and the contact has a record for it: `subscribed`
//!    sends, `pending` (double opt-in not confirmed) or `unsubscribed` is suppressed;
//! 3. else the `*` record decides the same way (`pending` after a subscribe form without a
//!    topic);
//! 4. no record at all counts as subscribed (imported and identified contacts).
//!
//! Transactional messages ignore subscriptions (suppressions, e.g. hard bounces, still apply).
//! A message refused here is recorded `suppressed` with the reason, never dropped.

use serde::{Deserialize, Serialize};
use waymark_core::journey::{Channel, TemplateDefinition};
use waymark_store::{Contact, EngineTx, StoreError, Subscription};

use crate::tracking::Tracking;

/// Track event recorded when a contact unsubscribes (properties `channel`, `topic`).
pub const UNSUBSCRIBED: &str = "Unsubscribed";
/// Track event recorded when a contact resubscribes from the preference page or the API.
pub const SUBSCRIBED: &str = "Subscribed";
/// Track event recorded when a double opt-in is confirmed.
pub const SUBSCRIPTION_CONFIRMED: &str = "Subscription Confirmed";
/// The topic that stands for all marketing on a channel.
pub const ALL_TOPICS: &str = "*";

pub const SUBSCRIBED_STATUS: &str = "subscribed";
pub const PENDING: &str = "pending";
pub const UNSUBSCRIBED_STATUS: &str = "unsubscribed";

/// Whether `s` is a subscription status.
pub fn is_status(s: &str) -> bool {
    matches!(s, SUBSCRIBED_STATUS | PENDING | UNSUBSCRIBED_STATUS)
}

/// Separates consent MACs from tracking MACs made with the same secret.
const DOMAIN: &[u8] = b"waymark-consent-v1\0";

/// What a consent link stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentToken {
    /// `u`: unsubscribe / preferences; `c`: double opt-in confirmation.
    pub k: String,
    /// The contact.
    pub c: i64,
    /// The channel (`email`, `sms`).
    pub ch: String,
    /// The topic (`*` for all marketing).
    pub t: String,
    /// The message's idempotency key (unsubscribe links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<String>,
}

impl ConsentToken {
    pub fn is_unsubscribe(&self) -> bool {
        self.k == "u"
    }
    pub fn is_confirmation(&self) -> bool {
        self.k == "c"
    }
}

/// Signs and checks consent links under the public URL, with the tracking secret.
pub fn sign(tracking: &Tracking, token: &ConsentToken) -> String {
    let json = serde_json::to_vec(token).expect("a token serialises");
    tracking.sign_for(DOMAIN, &json)
}

/// `None` for anything tampered, truncated or made with another secret.
pub fn verify(tracking: &Tracking, token: &str) -> Option<ConsentToken> {
    let json = tracking.verify_for(DOMAIN, token)?;
    serde_json::from_slice(&json).ok()
}

/// `{public}/u/{token}`: the one-click unsubscribe (POST) and preference page (GET).
pub fn unsubscribe_url(
    tracking: &Tracking,
    contact_id: i64,
    channel: &str,
    topic: &str,
    message: &str,
) -> String {
    let token = sign(
        tracking,
        &ConsentToken {
            k: "u".into(),
            c: contact_id,
            ch: channel.into(),
            t: topic.into(),
            m: Some(message.into()),
        },
    );
    format!("{}/u/{token}", tracking.public_url())
}

/// `{public}/confirm/{token}`: confirms a double opt-in.
pub fn confirm_url(tracking: &Tracking, contact_id: i64, channel: &str, topic: &str) -> String {
    let token = sign(
        tracking,
        &ConsentToken {
            k: "c".into(),
            c: contact_id,
            ch: channel.into(),
            t: topic.into(),
            m: None,
        },
    );
    format!("{}/confirm/{token}", tracking.public_url())
}

/// The topic of a marketing template (`*` when it names none), or `None` for a transactional
/// one, which needs no consent.
pub fn topic_of(template: &TemplateDefinition) -> Option<String> {
    (!template.transactional).then(|| {
        template
            .topic
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| ALL_TOPICS.to_string())
    })
}

/// Why a marketing message on `topic` must not go to `contact` (see the module docs), or
/// `None` when it may.
pub fn refusal(
    tx: &mut dyn EngineTx,
    contact: &Contact,
    channel: Channel,
    topic: &str,
) -> Result<Option<String>, StoreError> {
    if contact.traits.get("unsubscribed") == Some(&serde_json::Value::Bool(true)) {
        return Ok(Some(
            "the contact is unsubscribed (trait `unsubscribed`)".into(),
        ));
    }
    let subscriptions = tx.subscriptions(contact.id)?;
    Ok(decide(&subscriptions, channel.as_str(), topic))
}

/// An `unsubscribe` node: records the unsubscription and, if it changed anything, the
/// `Unsubscribed` event (source `journey:<id>`).
pub fn unsubscribe_in_journey(
    tx: &mut dyn EngineTx,
    contact_id: i64,
    channel: Channel,
    topic: &str,
    journey_id: &str,
    now: jiff::Timestamp,
) -> Result<(), StoreError> {
    let before = tx.set_subscription(&Subscription {
        contact_id,
        channel: channel.as_str().to_string(),
        topic: topic.to_string(),
        status: UNSUBSCRIBED_STATUS.to_string(),
        updated_at: now,
    })?;
    if before.as_deref() != Some(UNSUBSCRIBED_STATUS) {
        let mut properties = serde_json::Map::new();
        properties.insert("channel".into(), channel.as_str().into());
        properties.insert("topic".into(), topic.into());
        properties.insert("source".into(), format!("journey:{journey_id}").into());
        let id = format!(
            "unsubscribe:{contact_id}:{}:{topic}:{}",
            channel.as_str(),
            now.as_millisecond()
        );
        crate::recorded::record(tx, contact_id, UNSUBSCRIBED, properties, id, now)?;
    }
    Ok(())
}

/// The pure part of the rule.
pub fn decide(subscriptions: &[Subscription], channel: &str, topic: &str) -> Option<String> {
    let status = |t: &str| {
        subscriptions
            .iter()
            .find(|s| s.channel == channel && s.topic == t)
            .map(|s| s.status.as_str())
    };
    if status(ALL_TOPICS) == Some(UNSUBSCRIBED_STATUS) {
        return Some("the contact unsubscribed from all marketing".into());
    }
    let (decisive, about) = match status(topic) {
        Some(s) if topic != ALL_TOPICS => (Some(s), format!("topic `{topic}`")),
        _ => (status(ALL_TOPICS), "marketing".to_string()),
    };
    match decisive {
        Some(UNSUBSCRIBED_STATUS) => Some(format!("the contact unsubscribed from {about}")),
        Some(PENDING) => Some(format!(
            "double opt-in for {about} is pending (not confirmed)"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(topic: &str, status: &str) -> Subscription {
        Subscription {
            contact_id: 1,
            channel: "email".into(),
            topic: topic.into(),
            status: status.into(),
            updated_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_consent_rule() {
        assert_eq!(decide(&[], "email", "news"), None);
        assert!(decide(&[sub("news", "unsubscribed")], "email", "news").is_some());
        assert_eq!(decide(&[sub("news", "unsubscribed")], "sms", "news"), None);
        assert_eq!(
            decide(&[sub("news", "unsubscribed")], "email", "promo"),
            None
        );
        assert!(decide(&[sub("*", "unsubscribed")], "email", "promo").is_some());
        assert!(
            decide(
                &[sub("*", "unsubscribed"), sub("news", "subscribed")],
                "email",
                "news"
            )
            .is_some()
        );
        assert!(decide(&[sub("*", "pending")], "email", "news").is_some());
        assert_eq!(
            decide(
                &[sub("*", "pending"), sub("news", "subscribed")],
                "email",
                "news"
            ),
            None
        );
        assert!(decide(&[sub("news", "pending")], "email", "news").is_some());
        assert_eq!(decide(&[sub("news", "subscribed")], "email", "*"), None);
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let t = Tracking::new("https://mail.example.com", "0123456789abcdef0123").unwrap();
        let url = unsubscribe_url(&t, 7, "email", "news", "k:1");
        let token = url.rsplit('/').next().unwrap();
        let back = verify(&t, token).unwrap();
        assert!(back.is_unsubscribe());
        assert_eq!((back.c, back.t.as_str()), (7, "news"));
        let mut bad = token.to_string();
        bad.insert(3, 'x');
        assert_eq!(verify(&t, &bad), None);
        // A tracking token is no consent token.
        assert_eq!(verify(&t, &t.open_token("k:1")), None);
    }
}
