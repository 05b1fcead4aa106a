//! A small fixed contact for evaluating fuzzed conditions: a few traits of every JSON type,
//! events with properties, a list and messages, seen at a fixed moment.

use std::sync::OnceLock;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use waymark_core::EventKind;
use waymark_core::condition::{
    Channel, Condition, ContactSnapshot, EvalClock, MessageRecord, evaluate, next_change,
};
use waymark_core::event::EventRecord;

fn at(s: &str) -> Timestamp {
    s.parse().expect("a fixed timestamp")
}

fn properties(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn contact() -> &'static ContactSnapshot {
    static CONTACT: OnceLock<ContactSnapshot> = OnceLock::new();
    CONTACT.get_or_init(|| {
        let mut c = ContactSnapshot {
            traits: properties(json!({
                "plan": "pro",
                "email": "ada@example.com",
                "age": 36,
                "score": 12.5,
                "vip": true,
                "nothing": null,
                "tags": ["a", "b", 3],
                "birthday": "1990-02-28",
                "signed_up_at": "2026-01-15T10:00:00Z",
                "address": {"city": "Milan", "lat": 45.46, "lon": 9.19},
                "location": {"lat": 45.46, "lon": 9.19},
            })),
            ..ContactSnapshot::default()
        };
        c.lists.insert("vip".into());
        let events = [
            (
                "Order Completed",
                json!({"total": 120.5, "items": [{"price": 3}]}),
                "2026-03-01T09:00:00Z",
            ),
            (
                "Order Completed",
                json!({"total": "n/a"}),
                "2026-03-20T09:00:00Z",
            ),
            ("Logged In", json!({}), "2026-03-30T12:00:00Z"),
            (
                "Page Viewed",
                json!({"url": "/pricing"}),
                "2026-04-01T08:00:00Z",
            ),
        ];
        for (seq, (name, props, ts)) in events.into_iter().enumerate() {
            c.push_event(EventRecord {
                seq: seq as i64,
                kind: EventKind::Track,
                name: name.into(),
                properties: properties(props),
                timestamp: at(ts),
            });
        }
        c.messages.push(MessageRecord {
            journey: Some("welcome".into()),
            template: Some("welcome-1".into()),
            node: Some("send".into()),
            channel: Channel::Email,
            sent_at: at("2026-03-29T08:00:00Z"),
            delivered_at: Some(at("2026-03-29T08:00:05Z")),
            opened_at: None,
            clicked_at: Some(at("2026-03-29T09:00:00Z")),
        });
        c
    })
}

/// Evaluates `condition` for the fixed contact, and asks when the answer may change; neither
/// may panic, and a change is never in the past.
pub fn evaluate_both(condition: &Condition) {
    let clock = EvalClock::utc(at("2026-04-02T10:00:00Z"));
    let _ = evaluate(condition, contact(), &clock);
    if let Some(t) = next_change(condition, contact(), &clock) {
        assert!(
            t > clock.now,
            "next_change {t} is not after now {}",
            clock.now
        );
    }
}
