//! Builders and shorthands the conformance tests share: fixed times, events, messages,
//! enrollments and templates with plain defaults, and a way to get a value out of
//! `engine_tx`.

use jiff::Timestamp;
use serde_json::{Map, Value};
use waymark_core::journey::{Channel, TemplateDefinition};
use waymark_core::{Enrollment, EnrollmentStatus, EventKind};

use crate::{
    EngineTx, MessageStatus, NewEvent, NewMessage, NodeStats, Priority, Result, Store, Subscription,
};

/// A fixed time, `secs` seconds after an arbitrary origin (tests never read the clock).
pub(super) fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).expect("a valid time")
}

/// Runs `work` in one engine transaction and returns what it returned.
pub(super) fn in_tx<T>(
    store: &dyn Store,
    mut work: impl FnMut(&mut dyn EngineTx) -> Result<T>,
) -> T {
    let mut out = None;
    store
        .engine_tx(&mut |tx| {
            out = Some(work(tx)?);
            Ok(())
        })
        .expect("engine transaction");
    out.expect("the work ran")
}

/// A JSON object as a map (`props(json!({..}))`).
pub(super) fn props(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// A `track` event of `user_id`, sent and received at `at(secs)`.
pub(super) fn track(message_id: &str, user_id: &str, name: &str, secs: i64) -> NewEvent {
    NewEvent {
        message_id: message_id.to_string(),
        kind: EventKind::Track,
        name: name.to_string(),
        user_id: Some(user_id.to_string()),
        anonymous_id: None,
        previous_id: None,
        properties: Map::new(),
        timestamp: at(secs),
        received_at: at(secs),
    }
}

/// Appends `events` as one batch and assigns them all to `contact_id`, as processing them
/// would; returns their seqs.
pub(super) fn append_for(store: &dyn Store, contact_id: i64, events: &[NewEvent]) -> Vec<i64> {
    let after = store.last_event_seq().unwrap();
    store.append_events(events).unwrap();
    in_tx(store, |tx| {
        let mut seqs = Vec::new();
        for event in tx.pending_events(i64::MAX, 10_000)? {
            if event.seq > after {
                tx.set_event_contact(event.seq, contact_id)?;
                seqs.push(event.seq);
            }
        }
        Ok(seqs)
    })
}

/// The counters of one node of a journey, as `journey_stats` reports them.
pub(super) fn node_stats(store: &dyn Store, journey: &str, node: &str) -> NodeStats {
    store
        .journey_stats(journey, None)
        .unwrap()
        .nodes
        .into_iter()
        .find(|n| n.node == node)
        .unwrap_or_else(|| panic!("no node `{node}` in `{journey}`'s statistics"))
}

/// Creates (or finds) the contact of `user_id`.
pub(super) fn contact(store: &dyn Store, user_id: &str) -> i64 {
    in_tx(store, |tx| tx.resolve_contact(Some(user_id), None, at(0)))
}

/// A queued email of `contact_id` with this idempotency key, created at `at(secs)`.
pub(super) fn email(key: &str, contact_id: i64, secs: i64) -> NewMessage {
    NewMessage {
        idempotency_key: key.to_string(),
        contact_id,
        enrollment_id: None,
        journey_id: None,
        node: None,
        template: "welcome".to_string(),
        channel: "email".to_string(),
        recipient: Some(format!("{key}@example.com")),
        subject: Some("Hello".to_string()),
        html: None,
        text: Some("Hi".to_string()),
        status: MessageStatus::Queued,
        error: None,
        created_at: at(secs),
        priority: Priority::Transactional,
        broadcast_id: None,
        unsubscribe_url: None,
    }
}

/// The same message sent by a journey's node (priority `journey`).
pub(super) fn journey_email(key: &str, contact_id: i64, journey: &str, node: &str) -> NewMessage {
    NewMessage {
        journey_id: Some(journey.to_string()),
        node: Some(node.to_string()),
        priority: Priority::Journey,
        broadcast_id: None,
        unsubscribe_url: None,
        ..email(key, contact_id, 0)
    }
}

/// Queues messages in one engine transaction; returns the id of each (looked up by key).
pub(super) fn queue(store: &dyn Store, messages: &[NewMessage]) -> Vec<i64> {
    in_tx(store, |tx| {
        for m in messages {
            tx.insert_message(m)?;
        }
        Ok(())
    });
    messages
        .iter()
        .map(|m| {
            store
                .message_by_key(&m.idempotency_key)
                .unwrap()
                .expect("queued")
                .id
        })
        .collect()
}

/// An active enrollment of `contact_id` in `journey` (version 1) at `node`.
pub(super) fn enrollment(
    journey: &str,
    contact_id: i64,
    node: &str,
    wake_at: Option<Timestamp>,
) -> Enrollment {
    Enrollment {
        id: 0,
        journey_id: journey.to_string(),
        version: 1,
        contact_id,
        key: None,
        node: node.to_string(),
        status: EnrollmentStatus::Active,
        wake_at,
        entered_at: at(0),
        entered_seq: 0,
        consumed_seq: 0,
        visits: 1,
    }
}

/// A journey `id` published (live) with a trigger and two send nodes, `a` and `b`.
pub(super) fn live_journey(store: &dyn Store, id: &str) {
    let document = serde_json::json!({
        "id": id,
        "name": id,
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Go"},
            {"id": "a", "type": "send_email", "template": "welcome"},
            {"id": "b", "type": "send_email", "template": "welcome"}
        ]
    });
    store
        .put_journey_draft(id, id, &document, at(0))
        .expect("draft");
    store
        .publish_journey(id, &document, &[], at(0))
        .expect("published");
}

/// An email template with this subject.
pub(super) fn template(id: &str, subject: &str) -> TemplateDefinition {
    TemplateDefinition {
        id: id.to_string(),
        channel: Channel::Email,
        name: None,
        subject: Some(subject.to_string()),
        html: None,
        mjml: None,
        text: Some("Hello {{ traits.name }}".to_string()),
        body: None,
        tracking: None,
        topic: None,
        transactional: false,
    }
}

/// A subscription of `contact_id`, changed at `at(secs)`.
pub(super) fn subscription(
    contact_id: i64,
    channel: &str,
    topic: &str,
    status: &str,
    secs: i64,
) -> Subscription {
    Subscription {
        contact_id,
        channel: channel.into(),
        topic: topic.into(),
        status: status.into(),
        updated_at: at(secs),
    }
}

/// The conversion the engine records for an enrollment converted at `at` (no message
/// credited, no revenue).
pub(super) fn conversion_of(e: &waymark_core::Enrollment, at: Timestamp) -> crate::NewConversion {
    crate::NewConversion {
        enrollment_id: e.id,
        contact_id: e.contact_id,
        journey_id: e.journey_id.clone(),
        version: e.version,
        node: e.node.clone(),
        last_touch: None,
        event_seq: 0,
        at,
        revenue: None,
    }
}
