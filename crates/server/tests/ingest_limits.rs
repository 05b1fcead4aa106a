//! Limits of a tracking call's contents (event names, keys, string values, keys per object,
//! nesting), each refused with a 400 that names the field and the limit; in a batch, only the
//! calls over a limit are refused. And numeric ids are kept exactly as sent.

mod common;

use reqwest::Method;

use common::*;

/// POSTs a raw JSON text (so that numbers reach the server as written) with the write key.
fn ingest_raw(s: &Server, path: &str, body: &str) -> Resp {
    s.send(
        s.request(Method::POST, path)
            .basic_auth(WRITE_KEY, Some(""))
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
}

/// Properties nested `levels` deep: `{"a": {"a": … {"a": 1}}}` with `levels` objects.
fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

#[test]
fn each_limit_of_a_track_call_is_a_400_naming_the_field_and_the_limit() {
    let s = Server::simulated();
    // At each limit: accepted.
    // An id of 512 characters is accepted whatever their size in bytes (`é` is two).
    s.ingest(
        "/v1/track",
        json!({ "userId": "é".repeat(512), "event": "E" }),
    )
    .ok();
    let at_limits = json!({
        "userId": "u1",
        "event": "e".repeat(200),
        "properties": {
            "k".repeat(200): "v".repeat(32 * 1024),
            "deep": nested(15),
            "wide": (0..1000).map(|i| (format!("p{i}"), json!(i))).collect::<serde_json::Map<_, _>>(),
        }
    });
    s.ingest("/v1/track", at_limits).ok();

    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({ "userId": "u1", "event": "e".repeat(201) }),
            "event",
            "at most 200",
        ),
        (
            json!({ "userId": "é".repeat(513), "event": "E" }),
            "userId",
            "at most 512 characters",
        ),
        (
            json!({ "userId": "u1", "event": "E", "properties": { "k".repeat(201): 1 } }),
            &*Box::leak(format!("properties.{}…", "k".repeat(40)).into_boxed_str()),
            "longer than 200 characters",
        ),
        (
            json!({ "userId": "u1", "event": "E", "properties": { "note": "v".repeat(32 * 1024 + 1) } }),
            "properties.note",
            "at most 32768 bytes",
        ),
        (
            json!({ "userId": "u1", "event": "E", "properties": { "list": [ { "x": "v".repeat(40_000) } ] } }),
            "properties.list[0].x",
            "at most 32768 bytes",
        ),
        (
            json!({ "userId": "u1", "event": "E", "properties": { "deep": nested(16) } }),
            "properties.deep.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a",
            "deeper than 16 levels",
        ),
        (
            json!({ "userId": "u1", "event": "E", "properties": (0..1001).map(|i| (format!("p{i}"), json!(i))).collect::<serde_json::Map<_, _>>() }),
            "properties",
            "at most 1000",
        ),
    ];
    for (body, field, limit) in cases {
        let e = s
            .ingest("/v1/track", body)
            .expect_error(400, "invalid_event");
        assert_eq!(e["field"], field, "{e}");
        assert!(e["message"].as_str().unwrap().contains(limit), "{e}");
    }
    // Traits of identify, and a page's name, have the same limits.
    let e = s
        .ingest(
            "/v1/identify",
            json!({ "userId": "u1", "traits": { "bio": "b".repeat(40_000) } }),
        )
        .expect_error(400, "invalid_event");
    assert_eq!(e["field"], "traits.bio", "{e}");
    let e = s
        .ingest(
            "/v1/page",
            json!({ "userId": "u1", "name": "n".repeat(40_000) }),
        )
        .expect_error(400, "invalid_event");
    assert_eq!(e["field"], "name", "{e}");
    // Nothing over a limit was stored: only the call at the limits.
    s.settle();
    let contact = s.contact_by_user("u1");
    let events: Vec<Value> = s
        .timeline(contact["id"].as_i64().unwrap())
        .into_iter()
        .filter(|e| e["type"] == "event")
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
}

#[test]
fn in_a_batch_only_the_calls_over_a_limit_are_refused_and_the_others_stored() {
    let s = Server::simulated();
    let r = s.batch(vec![
        json!({ "type": "track", "userId": "b1", "event": "Fine", "messageId": "m1" }),
        json!({ "type": "track", "userId": "b1", "event": "x".repeat(3000), "messageId": "m2" }),
        json!({ "type": "identify", "userId": "b1", "traits": { "email": "b1@example.com" }, "messageId": "m3" }),
    ]);
    let e = r.expect_error(400, "invalid_events");
    let errors = e["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{e}");
    assert_eq!(errors[0]["index"], 1);
    assert_eq!(errors[0]["field"], "batch[1].event");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 200"),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("1 of 3 calls are invalid"),
        "{e}"
    );
    s.settle();
    let contact = s.contact_by_user("b1");
    assert_eq!(contact["traits"]["email"], "b1@example.com");
}

#[test]
fn a_numeric_user_id_of_30_digits_is_kept_exactly_as_sent() {
    let s = Server::simulated();
    let id = "123456789012345678901234567890";
    ingest_raw(
        &s,
        "/v1/identify",
        &format!(r#"{{"userId": {id}, "traits": {{"email": "big@example.com"}}}}"#),
    )
    .ok();
    s.settle();
    let contact = s.contact_by_user(id);
    assert_eq!(contact["user_id"], id);
    assert_eq!(contact["traits"]["email"], "big@example.com");
    // In a batch too, and a small number stays the same digits.
    let other = "98765432109876543210987654321";
    let r = ingest_raw(
        &s,
        "/v1/batch",
        &format!(
            r#"{{"batch": [{{"type": "track", "userId": {id}, "event": "Big"}},
                          {{"type": "identify", "userId": {other}, "anonymousId": 42}}]}}"#
        ),
    );
    r.ok();
    s.settle();
    assert_eq!(s.contact_by_user(other)["user_id"], other);
    let ids = s.contact_by_user(other)["anonymous_ids"].clone();
    assert!(ids.to_string().contains("\"42\""), "{ids}");
}
