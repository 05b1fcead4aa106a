//! The Segment-compatible tracking API: any bytes as the body of a single call (each of the six
//! kinds) and of a batch go through `parse_body` and `parse_call` without panicking. An
//! accepted call respects the limits (docs/api.md, "Limits of a call") and its properties are
//! stored as JSON that reads back, with serde_json's default limits, to the same value.
#![no_main]

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use waymark::api::ingest::{limits, parse_body, parse_call};
use waymark_core::EventKind;
use waymark_core::limits::json_depth;

const KINDS: [EventKind; 6] = [
    EventKind::Identify,
    EventKind::Track,
    EventKind::Page,
    EventKind::Screen,
    EventKind::Group,
    EventKind::Alias,
];

fn check(call: &Value, kind: Option<EventKind>, now: Timestamp) {
    let Ok(event) = parse_call(call, kind, "", now) else {
        return;
    };
    if let Some(k) = kind {
        assert_eq!(event.kind, k);
    }
    assert!(!event.name.trim().is_empty(), "an event without a name");
    assert!(event.name.chars().count() <= limits::EVENT_NAME_CHARS);
    assert!(event.user_id.is_some() || event.anonymous_id.is_some());
    for id in [&event.user_id, &event.anonymous_id, &event.previous_id] {
        assert!(
            id.as_ref().is_none_or(|s| !s.trim().is_empty()),
            "an empty id"
        );
    }
    let properties = Value::Object(event.properties);
    // Group traits sit one level down, under `traits`.
    assert!(
        json_depth(&properties) <= limits::DEPTH + 1,
        "properties nest too deep"
    );
    let stored = serde_json::to_string(&properties).expect("properties serialise");
    let read: Value = serde_json::from_str(&stored)
        .unwrap_or_else(|e| panic!("accepted properties do not read back: {e}"));
    assert_eq!(read, properties, "accepted properties read back different");
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = parse_body(data) else {
        return;
    };
    let now: Timestamp = "2026-04-02T10:00:00Z".parse().expect("a fixed timestamp");
    for kind in KINDS {
        check(&body, Some(kind), now);
    }
    if let Some(items) = body.get("batch").and_then(Value::as_array) {
        for item in items {
            check(item, None, now);
        }
    }
});
