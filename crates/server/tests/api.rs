//! The HTTP API of the real server: ingestion (Segment-compatible), identity resolution and the
//! management endpoints, with their error answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use reqwest::Method;

// ---------------------------------------------------------------------------------------------
// helpers

/// A journey that sends one email per `Ping` (re-entry every time).
fn ping_journey() -> Value {
    json!({
        "id": "ping",
        "name": "Ping",
        "entry": { "reentry": "every_time" },
        "nodes": [
            { "id": "got-ping", "type": "trigger", "event": "Ping" },
            { "id": "pong", "type": "send_email", "template": "pong-email" }
        ],
        "edges": [ { "from": "got-ping", "to": "pong" } ],
        "templates": [
            { "id": "pong-email", "channel": "email", "subject": "Pong {{ event.n }}", "text": "pong" }
        ]
    })
}

/// Trigger `Start`, then wait up to a day for `Confirm`: `confirmed` email on the event,
/// `reminder` email on the timeout.
fn waiter_journey() -> Value {
    json!({
        "id": "waiter",
        "name": "Waiter",
        "entry": { "reentry": "once" },
        "nodes": [
            { "id": "start", "type": "trigger", "event": "Start" },
            { "id": "wait", "type": "wait_for_event", "event": "Confirm", "timeout": "1d" },
            { "id": "thanks", "type": "send_email", "template": "confirmed" },
            { "id": "nudge", "type": "send_email", "template": "reminder" }
        ],
        "edges": [
            { "from": "start", "to": "wait" },
            { "from": "wait", "to": "thanks", "output": "event" },
            { "from": "wait", "to": "nudge", "output": "timeout" }
        ],
        "templates": [
            { "id": "confirmed", "channel": "email", "subject": "Thanks", "text": "confirmed" },
            { "id": "reminder", "channel": "email", "subject": "Reminder", "text": "please confirm" }
        ]
    })
}

/// Trigger `Start`, wait a day, send `template`.
fn versioned_journey(template: &str) -> Value {
    json!({
        "id": "vers",
        "name": "Versioned",
        "entry": { "reentry": "once" },
        "nodes": [
            { "id": "start", "type": "trigger", "event": "Start" },
            { "id": "later", "type": "delay", "duration": "1d" },
            { "id": "mail", "type": "send_email", "template": template }
        ],
        "edges": [
            { "from": "start", "to": "later" },
            { "from": "later", "to": "mail" }
        ],
        "templates": [
            { "id": "v-one", "channel": "email", "subject": "Version one", "text": "one" },
            { "id": "v-two", "channel": "email", "subject": "Version two", "text": "two" }
        ]
    })
}

fn user(s: &Server, id: &str) -> i64 {
    s.identify(id, json!({ "email": format!("{id}@example.com") }))
        .ok();
    s.settle();
    s.contact_by_user(id)["id"].as_i64().unwrap()
}

fn event_names(s: &Server, contact_id: i64) -> Vec<String> {
    s.timeline(contact_id)
        .iter()
        .filter(|e| e["type"] == "event")
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn all_contacts(s: &Server) -> Vec<Value> {
    s.admin_get("/v1/contacts?limit=1000").ok()["contacts"]
        .as_array()
        .unwrap()
        .clone()
}

fn raw_post(s: &Server, path: &str, body: &'static str, auth: bool) -> Resp {
    let mut req = s
        .request(Method::POST, path)
        .header("content-type", "application/json")
        .body(body);
    if auth {
        req = req.basic_auth(WRITE_KEY, Some(""));
    }
    s.send(req)
}

#[track_caller]
fn assert_success(r: Resp, accepted: i64, duplicates: i64) {
    let body = r.expect(200);
    assert_eq!(
        body,
        json!({ "success": true, "accepted": accepted, "duplicates": duplicates })
    );
}

#[track_caller]
fn assert_error_shape(body: &Value) {
    for k in ["code", "type", "message", "link"] {
        assert!(body[k].is_string(), "error without `{k}`: {body}");
    }
}

// ---------------------------------------------------------------------------------------------
// ingestion

#[test]
fn every_ingestion_endpoint_accepts_valid_calls_and_stores_them() {
    let s = Server::simulated();
    let calls = [
        (
            "/v1/identify",
            json!({ "userId": "u1", "traits": { "email": "u1@example.com" } }),
        ),
        (
            "/v1/track",
            json!({ "userId": "u1", "event": "Clicked", "properties": { "x": 1 } }),
        ),
        (
            "/v1/page",
            json!({ "userId": "u1", "name": "Home", "properties": { "url": "/" } }),
        ),
        (
            "/v1/screen",
            json!({ "userId": "u1", "name": "Settings", "category": "App" }),
        ),
        (
            "/v1/group",
            json!({ "userId": "u1", "groupId": "g-1", "traits": { "plan": "pro" } }),
        ),
        (
            "/v1/alias",
            json!({ "userId": "u1", "previousId": "visitor-7" }),
        ),
        (
            "/v1/batch",
            json!({ "batch": [
                { "type": "track", "userId": "u1", "event": "Batched" },
                { "type": "identify", "userId": "u1", "traits": { "first_name": "Uma" } }
            ] }),
        ),
        (
            "/v1/import",
            json!({ "batch": [ { "type": "track", "userId": "u1", "event": "Imported" } ] }),
        ),
    ];
    for (path, body) in calls {
        let expected = body["batch"].as_array().map_or(1, |b| b.len() as i64);
        let r = s.ingest(path, body);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.json["success"], true, "{path}");
        assert_eq!(r.json["accepted"], expected, "{path}");
        assert_eq!(r.json["duplicates"], 0, "{path}");
        // One second apart, so that the timeline order is the order of the calls.
        s.advance(1);
    }
    // Segment also allows the write key in the body.
    let r = s.send(
        s.request(Method::POST, "/v1/track")
            .json(&json!({ "writeKey": WRITE_KEY, "userId": "u1", "event": "Body Key" })),
    );
    assert_success(r, 1, 0);
    s.settle();

    let contacts = all_contacts(&s);
    assert_eq!(contacts.len(), 1, "{contacts:#?}");
    let c = s.contact_by_user("u1");
    assert_eq!(c["email"], "u1@example.com");
    assert_eq!(c["traits"]["first_name"], "Uma");
    assert_eq!(c["anonymous_ids"], json!(["visitor-7"]));
    let id = c["id"].as_i64().unwrap();
    let events: Vec<Value> = s
        .timeline(id)
        .into_iter()
        .filter(|e| e["type"] == "event")
        .collect();
    let got: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("identify", "Identify"),
        ("track", "Clicked"),
        ("page", "Page Viewed"),
        ("screen", "Screen Viewed"),
        ("group", "Group"),
        ("alias", "Alias"),
        ("track", "Batched"),
        ("identify", "Identify"),
        ("track", "Imported"),
        ("track", "Body Key"),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    // The batch's two calls share an instant; compare the batch as a set.
    assert_eq!(got.len(), expected.len(), "{got:?}");
    assert_eq!(got[..6], expected[..6]);
    assert_eq!(
        got[6..8].iter().collect::<BTreeSet<_>>(),
        expected[6..8].iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(got[8..], expected[8..]);
    assert_eq!(events[1]["properties"], json!({ "x": 1 }));
    assert_eq!(
        events[2]["properties"],
        json!({ "name": "Home", "url": "/" })
    );
    assert_eq!(
        events[3]["properties"],
        json!({ "name": "Settings", "category": "App" })
    );
    assert_eq!(
        events[4]["properties"],
        json!({ "group_id": "g-1", "traits": { "plan": "pro" } })
    );
}

#[test]
fn ingestion_requires_the_write_key() {
    let s = Server::simulated();
    let body = json!({ "userId": "intruder", "event": "Hack", "traits": {}, "batch": [] });
    for path in [
        "/v1/identify",
        "/v1/track",
        "/v1/page",
        "/v1/screen",
        "/v1/group",
        "/v1/alias",
        "/v1/batch",
        "/v1/import",
    ] {
        // No credentials at all.
        let r = s.send(s.request(Method::POST, path).json(&body));
        let e = r.expect_error(401, "unauthorized");
        assert_error_shape(&e);
        assert_eq!(e["type"], "authentication");
        // A wrong key, and the admin token used as a write key.
        for key in ["wrong-key", ADMIN_TOKEN] {
            let r = s.send(
                s.request(Method::POST, path)
                    .basic_auth(key, Some(""))
                    .json(&body),
            );
            r.expect_error(401, "unauthorized");
        }
        // A wrong key in the body.
        let mut with_key = body.clone();
        with_key["writeKey"] = json!("nope");
        let r = s.send(s.request(Method::POST, path).json(&with_key));
        r.expect_error(401, "unauthorized");
        // The admin token as a bearer token does not open ingestion either.
        let r = s.send(
            s.request(Method::POST, path)
                .bearer_auth(ADMIN_TOKEN)
                .json(&body),
        );
        r.expect_error(401, "unauthorized");
    }
    s.settle();
    assert!(all_contacts(&s).is_empty(), "nothing may be stored");
}

#[test]
fn ingestion_rejects_invalid_calls_with_the_field() {
    let s = Server::simulated();
    // Malformed JSON and empty bodies.
    for path in ["/v1/track", "/v1/identify", "/v1/batch"] {
        let e = raw_post(&s, path, "{\"userId\": \"x\", ", true).expect_error(400, "invalid_json");
        assert_error_shape(&e);
        raw_post(&s, path, "", true).expect_error(400, "invalid_json");
    }
    // track without an event name.
    let e = s
        .ingest("/v1/track", json!({ "userId": "x" }))
        .expect_error(400, "invalid_event");
    assert_eq!(e["field"], "event");
    let e = s
        .ingest("/v1/track", json!({ "userId": "x", "event": "   " }))
        .expect_error(400, "invalid_event");
    assert_eq!(e["field"], "event");
    // Neither userId nor anonymousId.
    for path in ["/v1/track", "/v1/identify", "/v1/page"] {
        let e = s
            .ingest(path, json!({ "event": "E", "traits": {} }))
            .expect_error(400, "invalid_event");
        assert_eq!(e["field"], "userId", "{path}");
        let e = s
            .ingest(
                path,
                json!({ "userId": "", "anonymousId": "", "event": "E" }),
            )
            .expect_error(400, "invalid_event");
        assert_eq!(e["field"], "userId", "{path}");
    }
    // Invalid traits.
    for (traits, field) in [
        (json!({ "email": "not-an-email" }), "traits.email"),
        (json!({ "email": 42 }), "traits.email"),
        (json!({ "phone": "0123" }), "traits.phone"),
        (json!({ "timezone": "Mars/Olympus" }), "traits.timezone"),
    ] {
        let e = s
            .identify("bad-traits", traits.clone())
            .expect_error(400, "invalid_event");
        assert_eq!(e["field"], field, "{traits}");
    }
    // Other fields.
    let e = s
        .ingest(
            "/v1/track",
            json!({ "userId": "x", "event": "E", "timestamp": "yesterday" }),
        )
        .expect_error(400, "invalid_event");
    assert_eq!(e["field"], "timestamp");
    let e = s
        .ingest(
            "/v1/track",
            json!({ "userId": "x", "event": "E", "properties": [1] }),
        )
        .expect_error(400, "invalid_event");
    assert_eq!(e["field"], "properties");
    let e = s
        .ingest("/v1/group", json!({ "userId": "x" }))
        .expect_error(400, "invalid_event");
    assert_eq!(e["field"], "groupId");
    let e = s
        .ingest("/v1/alias", json!({ "userId": "x" }))
        .expect_error(400, "invalid_event");
    assert_eq!(e["field"], "previousId");
    let e = s
        .ingest("/v1/batch", json!({ "items": [] }))
        .expect_error(400, "invalid_batch");
    assert_eq!(e["field"], "batch");

    // A body over the limit (4 MiB).
    let answer = post_big_body(&s, "/v1/track", 5 * 1024 * 1024);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"body_too_large\""), "{answer}");

    s.settle();
    assert!(all_contacts(&s).is_empty(), "{:#?}", all_contacts(&s));
}

#[test]
fn batch_with_invalid_items_stores_the_valid_ones_and_lists_the_others() {
    let s = Server::simulated();
    let batch = json!({ "batch": [
        { "type": "track", "userId": "bu", "event": "First", "messageId": "b-0" },
        { "type": "track", "userId": "bu", "messageId": "b-1" },
        { "type": "identify", "userId": "bu", "traits": { "email": "bu@example.com" }, "messageId": "b-2" },
        { "type": "bogus", "userId": "bu", "messageId": "b-3" },
        { "type": "identify", "userId": "bu", "traits": { "email": "nope" }, "messageId": "b-4" }
    ] });
    let e = s
        .ingest("/v1/batch", batch.clone())
        .expect_error(400, "invalid_events");
    assert_error_shape(&e);
    assert_eq!(e["field"], "batch[1].event");
    let errors = e["errors"].as_array().expect("errors");
    let got: Vec<(i64, &str)> = errors
        .iter()
        .map(|e| (e["index"].as_i64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "batch[1].event"),
            (3, "batch[3].type"),
            (4, "batch[4].traits.email")
        ]
    );
    assert!(errors.iter().all(|e| e["message"].is_string()));
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("(2 new, 0 duplicates)"), "{msg}");

    s.settle();
    let c = s.contact_by_user("bu");
    assert_eq!(c["email"], "bu@example.com");
    let id = c["id"].as_i64().unwrap();
    let mut names = event_names(&s, id);
    names.sort();
    assert_eq!(names, ["First", "Identify"]);

    // Retrying the same batch stores nothing twice.
    let e = s
        .ingest("/v1/batch", batch)
        .expect_error(400, "invalid_events");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("(0 new, 2 duplicates)"),
        "{e}"
    );
    s.settle();
    assert_eq!(event_names(&s, id).len(), 2);
}

#[test]
fn message_id_deduplicates_events_and_journey_entries() {
    let s = Server::simulated();
    s.apply_journey(ping_journey());
    user(&s, "dd");
    let ping = |id: &str, n: i64| {
        s.ingest(
            "/v1/track",
            json!({ "userId": "dd", "event": "Ping", "messageId": id, "properties": { "n": n } }),
        )
    };
    assert_success(ping("m-1", 1), 1, 0);
    assert_success(ping("m-1", 1), 0, 1);
    s.settle();
    let m = s.messages("dd");
    assert_eq!(templates_of(&m), ["pong-email"]);
    assert_eq!(m[0]["subject"], "Pong 1");

    // A different messageId is a different event: the journey runs again.
    assert_success(ping("m-2", 2), 1, 0);
    s.settle();
    assert_eq!(s.messages("dd").len(), 2);

    // Duplicates inside one batch, and of an earlier single call.
    let r = s.batch(vec![
        json!({ "type": "track", "userId": "dd", "event": "Ping", "messageId": "m-3", "properties": { "n": 3 } }),
        json!({ "type": "track", "userId": "dd", "event": "Ping", "messageId": "m-3", "properties": { "n": 3 } }),
        json!({ "type": "track", "userId": "dd", "event": "Ping", "messageId": "m-1", "properties": { "n": 1 } }),
    ]);
    assert_success(r, 1, 2);
    s.settle();
    let m = s.messages("dd");
    let subjects: Vec<_> = m.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["Pong 1", "Pong 2", "Pong 3"]);
    let id = s.contact_by_user("dd")["id"].as_i64().unwrap();
    let pings = event_names(&s, id).iter().filter(|n| *n == "Ping").count();
    assert_eq!(pings, 3);
    assert_eq!(s.stats("ping")["entered"], 3);
}

// ---------------------------------------------------------------------------------------------
// identity

#[test]
fn anonymous_visitor_becomes_the_identified_contact() {
    let s = Server::simulated();
    s.ingest(
        "/v1/track",
        json!({ "anonymousId": "anon-1", "event": "Viewed Pricing" }),
    )
    .ok();
    s.settle();
    let anon = all_contacts(&s);
    assert_eq!(anon.len(), 1);
    assert!(anon[0]["user_id"].is_null());
    s.advance(1);
    s.ingest(
        "/v1/identify",
        json!({ "userId": "u-anon", "anonymousId": "anon-1", "traits": { "email": "anon@example.com" } }),
    )
    .ok();
    s.settle();
    let contacts = all_contacts(&s);
    assert_eq!(contacts.len(), 1, "one person, one contact: {contacts:#?}");
    let c = s.contact_by_user("u-anon");
    assert_eq!(c["anonymous_ids"], json!(["anon-1"]));
    assert_eq!(c["email"], "anon@example.com");
    let id = c["id"].as_i64().unwrap();
    assert_eq!(event_names(&s, id), ["Viewed Pricing", "Identify"]);
    let by_anon = s.admin_get("/v1/contacts?anonymous_id=anon-1").ok();
    assert_eq!(by_anon["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(by_anon["contacts"][0]["id"], id);

    // Later anonymous calls with the same anonymousId land on the same contact.
    s.advance(1);
    s.ingest(
        "/v1/track",
        json!({ "anonymousId": "anon-1", "event": "Came Back" }),
    )
    .ok();
    s.settle();
    assert_eq!(all_contacts(&s).len(), 1);
    assert_eq!(event_names(&s, id).last().unwrap(), "Came Back");
}

#[test]
fn identify_merges_an_anonymous_contact_into_an_existing_user() {
    let s = Server::simulated();
    s.identify(
        "known",
        json!({ "email": "known@example.com", "plan": "pro" }),
    )
    .ok();
    s.advance(1);
    s.ingest(
        "/v1/track",
        json!({ "anonymousId": "anon-2", "event": "Viewed Docs" }),
    )
    .ok();
    s.ingest(
        "/v1/identify",
        json!({ "anonymousId": "anon-2", "traits": { "first_name": "Kay" } }),
    )
    .ok();
    s.settle();
    assert_eq!(all_contacts(&s).len(), 2);
    s.advance(1);
    s.ingest(
        "/v1/track",
        json!({ "userId": "known", "anonymousId": "anon-2", "event": "Logged In" }),
    )
    .ok();
    s.settle();
    let contacts = all_contacts(&s);
    assert_eq!(contacts.len(), 1, "{contacts:#?}");
    let c = s.contact_by_user("known");
    assert_eq!(c["anonymous_ids"], json!(["anon-2"]));
    assert_eq!(c["traits"]["first_name"], "Kay");
    assert_eq!(c["traits"]["plan"], "pro");
    assert_eq!(c["email"], "known@example.com");
    let id = c["id"].as_i64().unwrap();
    let names = event_names(&s, id);
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(names[0], "Identify");
    assert_eq!(
        names[1..3].iter().collect::<BTreeSet<_>>(),
        ["Identify".to_string(), "Viewed Docs".to_string()]
            .iter()
            .collect()
    );
    assert_eq!(names[3], "Logged In");

    // The engine goes on with other contacts' events.
    s.track("bystander", "Anything", json!({})).ok();
    s.settle();
    let b = s.contact_by_user("bystander")["id"].as_i64().unwrap();
    assert_eq!(event_names(&s, b), ["Anything"]);
}

#[test]
fn alias_links_an_anonymous_id_to_a_new_user_id() {
    let s = Server::simulated();
    s.ingest(
        "/v1/track",
        json!({ "anonymousId": "anon-3", "event": "Added Wishlist" }),
    )
    .ok();
    s.advance(1);
    s.ingest(
        "/v1/alias",
        json!({ "previousId": "anon-3", "userId": "u-al" }),
    )
    .ok();
    s.settle();
    assert_eq!(all_contacts(&s).len(), 1);
    let c = s.contact_by_user("u-al");
    assert_eq!(c["anonymous_ids"], json!(["anon-3"]));
    let id = c["id"].as_i64().unwrap();
    assert_eq!(event_names(&s, id), ["Added Wishlist", "Alias"]);

    // An alias whose previous id is unknown links it to the (new) user.
    s.advance(1);
    s.ingest(
        "/v1/alias",
        json!({ "previousId": "anon-9", "userId": "u-new" }),
    )
    .ok();
    s.advance(1);
    s.ingest(
        "/v1/track",
        json!({ "anonymousId": "anon-9", "event": "Seen" }),
    )
    .ok();
    s.settle();
    assert_eq!(all_contacts(&s).len(), 2);
    let c = s.contact_by_user("u-new");
    assert_eq!(c["anonymous_ids"], json!(["anon-9"]));
    assert_eq!(
        event_names(&s, c["id"].as_i64().unwrap()),
        ["Alias", "Seen"]
    );
}

#[test]
fn alias_merges_two_known_contacts() {
    let s = Server::simulated();
    // An old user id aliased to another existing user: one contact with both histories.
    s.identify(
        "old-user",
        json!({ "first_name": "Olli", "email": "old@example.com" }),
    )
    .ok();
    s.track("old-user", "Did Thing", json!({})).ok();
    s.advance(1);
    s.identify("new-user", json!({ "email": "new@example.com" }))
        .ok();
    s.advance(1);
    s.ingest(
        "/v1/alias",
        json!({ "previousId": "old-user", "userId": "new-user" }),
    )
    .ok();
    s.settle();
    assert_eq!(all_contacts(&s).len(), 1, "{:#?}", all_contacts(&s));
    let c = s.contact_by_user("new-user");
    // The merged-away user id still finds the contact it now names, by lookup and by search.
    let by_old_id = s
        .find_contact_by_user("old-user")
        .expect("found by its old id");
    assert_eq!(by_old_id["id"], c["id"]);
    let searched = s.admin_get("/v1/contacts?q=OLD-us").ok();
    assert_eq!(searched["contacts"][0]["id"], c["id"], "{searched}");
    let none = s.admin_get("/v1/contacts?q=older").ok();
    assert_eq!(none["contacts"], json!([]), "{none}");
    assert_eq!(c["email"], "new@example.com", "the target's traits win");
    assert_eq!(c["traits"]["first_name"], "Olli");
    let mut names = event_names(&s, c["id"].as_i64().unwrap());
    names.sort();
    assert_eq!(names, ["Alias", "Did Thing", "Identify", "Identify"]);

    // Segment's usual flow: an anonymous visitor, a user identified elsewhere, then alias.
    s.ingest(
        "/v1/track",
        json!({ "anonymousId": "anon-4", "event": "Browsed" }),
    )
    .ok();
    s.identify("u-x", json!({ "email": "x@example.com" })).ok();
    s.advance(1);
    s.ingest(
        "/v1/alias",
        json!({ "previousId": "anon-4", "userId": "u-x" }),
    )
    .ok();
    s.settle();
    assert_eq!(all_contacts(&s).len(), 2);
    let c = s.contact_by_user("u-x");
    assert_eq!(c["anonymous_ids"], json!(["anon-4"]));
    let mut names = event_names(&s, c["id"].as_i64().unwrap());
    names.sort();
    assert_eq!(names, ["Alias", "Browsed", "Identify"]);
}

#[test]
fn contacts_can_be_found_by_an_email_with_upper_case_letters() {
    let s = Server::simulated();
    s.identify("ada", json!({ "email": "Ada@Example.com" }))
        .ok();
    s.settle();
    for query in ["Ada@Example.com", "Ada@example.com"] {
        let found = s
            .admin_get(&format!("/v1/contacts?email={}", encode(query)))
            .ok();
        let contacts = found["contacts"].as_array().unwrap();
        assert_eq!(contacts.len(), 1, "lookup of {query}: {found}");
        assert_eq!(contacts[0]["user_id"], "ada");
    }
}

#[test]
fn contacts_can_be_found_by_user_email_and_phone() {
    let s = Server::simulated();
    s.identify(
        "pat",
        json!({ "email": "pat@example.com", "phone": "+44 20 7946 0958", "timezone": "Europe/London" }),
    )
    .ok();
    s.identify("pam", json!({ "email": "pam@example.com" }))
        .ok();
    s.identify("zed", json!({ "email": "zed@example.com" }))
        .ok();
    s.settle();
    let ids = |q: &str| -> Vec<String> {
        s.admin_get(&format!("/v1/contacts?{q}")).ok()["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["user_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("user_id=pat"), ["pat"]);
    assert_eq!(ids("email=pat%40example.com"), ["pat"]);
    assert_eq!(ids("phone=%2B442079460958"), ["pat"]);
    assert!(ids("user_id=nobody").is_empty());
    assert_eq!(ids("limit=2").len(), 2);
    let c = s.contact_by_user("pat");
    assert_eq!(c["phone"], "+442079460958");
    assert_eq!(c["timezone"], "Europe/London");
    let first = c["id"].as_i64().unwrap();
    assert_eq!(ids(&format!("after={first}")), ["pam", "zed"]);
    // Members of a list, alone or with a search; a list nobody made has none.
    s.admin_post("/v1/lists", json!({ "name": "press" }))
        .expect(201);
    let zed = s.contact_by_user("zed")["id"].as_i64().unwrap();
    s.admin_post(
        "/v1/lists/press/members",
        json!({ "contact_ids": [first, zed] }),
    )
    .ok();
    assert_eq!(ids("list=press"), ["pat", "zed"]);
    assert_eq!(ids("list=press&q=ze"), ["zed"]);
    assert!(ids("list=nobody-made-this").is_empty());
    assert!(ids("segment=no-such-segment").is_empty());
    s.admin_get("/v1/contacts?limit=0")
        .expect_error(400, "invalid_parameter");
    s.admin_get("/v1/contacts/999999")
        .expect_error(404, "not_found");
    let e = s
        .admin_get("/v1/contacts/abc")
        .expect_error(400, "invalid_parameter");
    assert_eq!(e["field"], "id");
    s.admin_get("/v1/contacts/999999/timeline")
        .expect_error(404, "not_found");
}

#[test]
fn contacts_can_be_searched_by_prefix() {
    let s = Server::simulated();
    s.identify(
        "pat",
        json!({ "email": "pat@example.com", "phone": "+442079460958" }),
    )
    .ok();
    s.identify("pam", json!({ "email": "pam@example.com" }))
        .ok();
    s.identify("zed", json!({ "email": "zed@example.com" }))
        .ok();
    s.settle();
    let ids = |q: &str| -> Vec<String> {
        s.admin_get(&format!("/v1/contacts?{q}")).ok()["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["user_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("q=pa"), ["pat", "pam"]);
    assert_eq!(ids("q=zed%40"), ["zed"]);
    assert_eq!(ids("q=%2B4420"), ["pat"]);
    assert!(ids("q=nobody").is_empty());
    // `%` and `_` are literal characters, not wildcards.
    assert!(ids("q=%25").is_empty());
    assert!(ids("q=_a").is_empty());
}

#[test]
fn contacts_are_found_by_name_trait_and_consent_sorted_and_paged_by_cursor() {
    let s = Server::simulated();
    let people = [
        (
            "u1",
            "kim@example.com",
            json!({"first_name": "Kim", "last_name": "Lee", "plan": "pro", "seats": 3}),
        ),
        (
            "u2",
            "ann@example.com",
            json!({"first_name": "Ann", "plan": "free", "seats": 3.0}),
        ),
        (
            "u3",
            "zoe@example.com",
            json!({"name": "Zoe Kimura", "plan": "pro", "vip": true}),
        ),
    ];
    for (user, email, traits) in &people {
        let mut traits = traits.clone();
        traits["email"] = json!(email);
        s.identify(user, traits).ok();
        s.settle();
        s.advance(1000);
    }
    let ids = |q: &str| -> Vec<String> {
        s.admin_get(&format!("/v1/contacts?{q}")).ok()["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["user_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids("q=kim"),
        ["u1", "u3"],
        "a first name and a part of a name"
    );
    assert_eq!(ids("q=kim%20lee"), ["u1"], "a full name");
    assert_eq!(ids("trait=plan:pro"), ["u1", "u3"]);
    assert_eq!(ids("trait=seats:3"), ["u1", "u2"], "3 and 3.0");
    assert_eq!(ids("trait=vip:true&q=zoe"), ["u3"]);
    assert_eq!(
        ids("trait=plan:pro&trait=seats:3"),
        ["u1"],
        "every trait given"
    );
    assert_eq!(ids("sort=-email"), ["u3", "u1", "u2"]);
    assert_eq!(ids("sort=-created_at"), ["u3", "u2", "u1"]);

    // Consent, as recorded by a change through the API.
    let u2 = s.contact_by_user("u2")["id"].as_i64().unwrap();
    s.admin_put(
        &format!("/v1/contacts/{u2}/subscriptions/email/news"),
        json!({"status": "unsubscribed", "reason": "asked on the phone"}),
    )
    .ok();
    assert_eq!(ids("consent=email:news:unsubscribed"), ["u2"]);
    assert_eq!(ids("consent=email:news:none"), ["u1", "u3"]);
    assert_eq!(
        ids("consent=email:news:none&consent=email:*:none&trait=plan:free"),
        Vec::<String>::new()
    );

    // Page by page with the cursor each page gives; the last page has none.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/contacts?sort=email&limit=2&cursor={c}"),
            None => "/v1/contacts?sort=email&limit=2".to_string(),
        };
        let page = s.admin_get(&q).ok();
        for c in page["contacts"].as_array().unwrap() {
            seen.push(c["user_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["u2", "u1", "u3"]);
    let u3 = s.contact_by_user("u3")["id"].as_i64().unwrap();
    assert_eq!(
        ids(&format!("sort=-id&after={u3}")),
        ["u2", "u1"],
        "`after` pages the id order"
    );

    let field = |q: &str| {
        let body = s.admin_get(&format!("/v1/contacts?{q}")).expect(400);
        assert_eq!(body["code"], "invalid_parameter", "{q}: {body}");
        body["field"].as_str().unwrap().to_string()
    };
    assert_eq!(field("trait=plan"), "trait");
    assert_eq!(field("sort=id&sort=email"), "sort", "given twice");
    assert_eq!(field("trait=plan:pro&trait=seats"), "trait");
    assert_eq!(field("consent=email:news:maybe"), "consent");
    assert_eq!(field("sort=name"), "sort");
    assert_eq!(field("sort=email&after=2"), "after");
    assert_eq!(field("cursor=nonsense"), "cursor");
    let by_email = s.admin_get("/v1/contacts?sort=email&limit=1").ok();
    let cursor = by_email["next_cursor"].as_str().unwrap();
    assert_eq!(field(&format!("sort=-email&cursor={cursor}")), "cursor");
}

#[test]
fn contact_import_stores_valid_rows_and_reports_the_others() {
    let s = Server::simulated();
    let r = s
        .admin_post(
            "/v1/contacts/import",
            json!({ "contacts": [
                { "user_id": "imp-1", "email": "imp1@example.com", "traits": { "first_name": "Ira" } },
                { "email": "broken" },
                { "email": "imp3@example.com" },
                { "traits": {} }
            ] }),
        )
        .ok();
    assert_eq!(r["imported"], 2);
    assert_eq!(r["rejected"], 2);
    let fields: Vec<_> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_i64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [(1, "contacts[1].traits.email"), (3, "contacts[3].user_id")]
    );
    s.settle();
    assert_eq!(s.contact_by_user("imp-1")["traits"]["first_name"], "Ira");
    // Without a user id, the email is the user id.
    assert_eq!(
        s.contact_by_user("imp3@example.com")["email"],
        "imp3@example.com"
    );
    assert_eq!(all_contacts(&s).len(), 2);
}

/// Rows are read one by one from the body's text: a row of the wrong shape is named by its
/// field, a repeated key counts by its last copy (as a JSON value reads it), and a body that is
/// not an import is refused as a whole.
#[test]
fn contact_import_reads_each_row_as_written_and_names_a_bad_one() {
    let s = Server::simulated();
    let post = |body: &str| {
        s.send(
            s.request(Method::POST, "/v1/contacts/import")
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    };
    let r = post(
        r#"{"contacts": [
            {"user_id": 5},
            "not a row",
            {"user_id": "twice", "email": "old@example.com", "email": "new@example.com"},
            {"user_id": "deep", "traits": {"a": {"b": [1, {"c": "\u00e9"}]}}},
            {"email": "x@example.com", "traits": []}
        ], "unknown": true}"#,
    )
    .ok();
    assert_eq!(
        (r["imported"].as_i64(), r["rejected"].as_i64()),
        (Some(2), Some(3)),
        "{r}"
    );
    let fields: Vec<_> = (r["errors"].as_array().unwrap().iter())
        .map(|e| (e["index"].as_i64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            (0, "contacts[0].user_id"),
            (1, "contacts[1]"),
            (4, "contacts[4].traits")
        ],
        "{r}"
    );
    s.settle();
    assert_eq!(s.contact_by_user("twice")["email"], "new@example.com");
    assert_eq!(s.contact_by_user("deep")["traits"]["a"]["b"][1]["c"], "é");

    // A repeated top-level key counts by its last copy too.
    let r = post(r#"{"contacts": [{"user_id": "gone"}], "contacts": [{"user_id": "kept"}]}"#).ok();
    assert_eq!(r["imported"], 1, "{r}");
    s.settle();
    assert!(s.find_contact_by_user("gone").is_none());
    assert!(s.find_contact_by_user("kept").is_some());

    for (body, code, field) in [
        (r#"[{"user_id": "a"}]"#, "invalid_body", None),
        (r#"{"contacts": [{"user_id": "a"}]"#, "invalid_json", None),
        (
            r#"{"contacts": {"user_id": "a"}}"#,
            "invalid_import",
            Some("contacts"),
        ),
        (
            r#"{"list": 3, "contacts": []}"#,
            "invalid_import",
            Some("list"),
        ),
    ] {
        let e = post(body).expect_error(400, code);
        if let Some(field) = field {
            assert_eq!(e["field"], field, "{body}: {e}");
        }
    }
}

#[test]
fn contact_import_reports_a_repeated_contact_and_merges_only_when_asked() {
    let s = Server::simulated();
    let rows = json!([
        { "user_id": "rep-1", "email": "first@example.com" },
        { "user_id": "rep-1", "email": "other@example.com" },
        { "user_id": "rep-2", "email": "FIRST@example.com" },
        { "email": "solo@example.com", "traits": { "plan": "free" } },
        { "email": "solo@example.com", "traits": { "plan": "pro" } }
    ]);
    let r = s
        .admin_post("/v1/contacts/import", json!({ "contacts": rows }))
        .ok();
    assert_eq!(
        (r["imported"].as_i64(), r["contacts"].as_i64()),
        (Some(2), Some(2)),
        "{r}"
    );
    let errors: Vec<_> = (r["errors"].as_array().unwrap().iter())
        .map(|e| (e["field"].as_str().unwrap(), e["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            (
                "contacts[1].user_id",
                "user_id `rep-1` is also on contacts[0]"
            ),
            (
                "contacts[2].email",
                "email `first@example.com` is also on contacts[0], for another contact (to import both, merge duplicates)"
            ),
            (
                "contacts[4].email",
                "email `solo@example.com` (the contact's id, as it has no user_id) is also on contacts[3]"
            ),
        ],
        "{r}"
    );
    s.settle();
    assert_eq!(s.contact_by_user("rep-1")["email"], "first@example.com");
    assert!(s.find_contact_by_user("rep-2").is_none());

    // Merged when asked: later rows win, one contact each.
    let merged = s
        .admin_post(
            "/v1/contacts/import",
            json!({ "contacts": rows, "on_duplicate": "merge" }),
        )
        .ok();
    assert_eq!(
        (merged["imported"].as_i64(), merged["contacts"].as_i64()),
        (Some(5), Some(3)),
        "{merged}"
    );
    s.settle();
    assert_eq!(s.contact_by_user("rep-1")["email"], "other@example.com");
    assert_eq!(s.contact_by_user("rep-2")["email"], "first@example.com");
    assert_eq!(
        s.contact_by_user("solo@example.com")["traits"]["plan"],
        "pro"
    );
    let bad = s
        .admin_post(
            "/v1/contacts/import",
            json!({ "contacts": [], "on_duplicate": "keep" }),
        )
        .expect(400);
    assert_eq!(bad["field"], "on_duplicate", "{bad}");
}

#[test]
fn contact_import_into_a_list_adds_the_imported_contacts_after_their_traits() {
    let s = Server::simulated();
    let known = user(&s, "known");
    let r = s
        .admin_post(
            "/v1/contacts/import",
            json!({ "list": " newsletter ", "contacts": [
                { "user_id": "known", "traits": { "plan": "pro" } },
                { "email": "new@example.com", "traits": { "first_name": "Nia" } },
                { "email": "broken" }
            ] }),
        )
        .ok();
    assert_eq!(
        (r["imported"].as_i64(), r["rejected"].as_i64()),
        (Some(2), Some(1)),
        "{r}"
    );
    s.settle();
    let members: Vec<String> = s.admin_get("/v1/lists/newsletter/members").ok()["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(members, ["known", "new@example.com"]);
    let new = s.contact_by_user("new@example.com");
    assert_eq!(new["traits"]["first_name"], "Nia");
    assert_eq!(new["lists"], json!(["newsletter"]));
    // The identify call comes first, so what the list event starts sees the imported traits.
    let names = event_names(&s, new["id"].as_i64().unwrap());
    assert_eq!(names, ["Identify", "Added To List"], "{names:?}");
    assert_eq!(s.contact(known)["traits"]["plan"], "pro");

    let bad = s
        .admin_post(
            "/v1/contacts/import",
            json!({ "list": "  ", "contacts": [{ "user_id": "never" }] }),
        )
        .expect_error(400, "invalid_import");
    assert_eq!(bad["field"], "list");
    s.settle();
    assert!(s.find_contact_by_user("never").is_none());
}

// ---------------------------------------------------------------------------------------------
// templates

#[test]
fn a_preview_shows_the_sample_enrollments_events_or_the_sample_event_as_its_first() {
    let s = Server::simulated();
    s.apply_example("abandoned-cart");
    let preview = |body: Value| {
        s.admin_post("/v1/templates/cart-reminder-email/preview", body)
            .ok()["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let flat = preview(json!({
        "event": { "cart_id": "c-1" },
        "enrollment": { "key": "c-1", "events": [
            { "name": "Product Added", "properties": { "name": "Red Shoes", "quantity": 2 } },
            { "name": "Product Added", "properties": { "name": "Blue Hat" } }
        ] }
    }));
    assert_eq!(
        flat,
        "Your cart is waiting:\n- Red Shoes x 2\n- Blue Hat x 1\nhttps://shop.example/cart/c-1\n"
    );
    let nested = preview(json!({
        "event": { "cart_id": "c-2", "products": [{ "name": "Green Scarf", "quantity": 3 }] }
    }));
    assert_eq!(
        nested,
        "Your cart is waiting:\n- Green Scarf x 3\nhttps://shop.example/cart/c-2\n"
    );
    assert_eq!(
        preview(json!({})),
        "Your cart is waiting:\nhttps://shop.example/cart/\n"
    );
}

#[test]
fn templates_crud_checks_liquid_at_save_and_previews() {
    let s = Server::simulated();
    let t = json!({
        "id": "hello",
        "channel": "email",
        "name": "Hello",
        "subject": "Hi {{ contact.first_name | default: 'you' }}",
        "html": "<p>Hello {{ contact.first_name }} from {{ event.city | default: 'nowhere' }}</p>",
        "text": "Hello {{ contact.first_name }}"
    });
    let created = s.admin_post("/v1/templates", t.clone()).expect(201);
    assert_eq!(created["id"], "hello");
    assert_eq!(created["subject"], t["subject"]);
    assert!(created["created_at"].is_string());
    let got = s.admin_get("/v1/templates/hello").ok();
    for k in ["id", "channel", "name", "subject", "html", "text"] {
        assert_eq!(got[k], t[k], "{k}");
    }
    let list = s.admin_get("/v1/templates").ok();
    let ids: Vec<_> = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["hello"]);
    // Creating it again conflicts.
    s.admin_post("/v1/templates", t.clone())
        .expect_error(409, "conflict");

    // Liquid syntax errors are rejected at save, with the field, and nothing is stored.
    let e = s
        .admin_post(
            "/v1/templates",
            json!({ "id": "broken", "channel": "email", "subject": "ok", "html": "{% if contact.vip %}VIP" }),
        )
        .expect_error(400, "invalid_template");
    assert_eq!(e["field"], "html");
    assert_eq!(e["errors"][0]["field"], "html");
    assert!(e["errors"][0]["message"].as_str().unwrap().len() > 5);
    s.admin_get("/v1/templates/broken")
        .expect_error(404, "not_found");
    let e = s
        .admin_post(
            "/v1/templates",
            json!({ "id": "broken2", "channel": "email", "subject": "Hi {{ contact.first_name ", "text": "{{ ok }}" }),
        )
        .expect_error(400, "invalid_template");
    assert_eq!(e["field"], "subject");
    // Channel rules: an SMS has only a body.
    let e = s
        .admin_post(
            "/v1/templates",
            json!({ "id": "sms1", "channel": "sms", "subject": "no", "body": "hi" }),
        )
        .expect_error(400, "invalid_template");
    assert_eq!(e["field"], "subject");
    let e = s
        .admin_post(
            "/v1/templates",
            json!({ "id": "bad id!", "channel": "sms", "body": "hi" }),
        )
        .expect_error(400, "invalid_template");
    assert_eq!(e["field"], "id");

    // Replacing: 200 for an existing id, 201 for a new one; a broken update keeps the old one.
    let mut t2 = t.clone();
    t2["subject"] = json!("Hey {{ contact.first_name | default: 'there' }}");
    let r = s.admin_put("/v1/templates/hello", t2.clone()).expect(200);
    assert_eq!(r["subject"], t2["subject"]);
    let mut broken = t2.clone();
    broken["text"] = json!("{% for %}");
    let e = s
        .admin_put("/v1/templates/hello", broken)
        .expect_error(400, "invalid_template");
    assert_eq!(e["field"], "text");
    assert_eq!(
        s.admin_get("/v1/templates/hello").ok()["subject"],
        t2["subject"]
    );
    let e = s
        .admin_put("/v1/templates/other", t2.clone())
        .expect_error(400, "invalid_template");
    assert_eq!(e["field"], "id");
    s.admin_put(
        "/v1/templates/sms-hi",
        json!({ "channel": "sms", "body": "Hi {{ contact.first_name }}" }),
    )
    .expect(201);

    // Preview with a contact's data, and with sample data.
    s.identify(
        "pia",
        json!({ "email": "pia@example.com", "first_name": "Pia" }),
    )
    .ok();
    s.settle();
    let pia = s.contact_by_user("pia")["id"].as_i64().unwrap();
    let p = s
        .admin_post(
            "/v1/templates/hello/preview",
            json!({ "contact_id": pia, "event": { "city": "Oslo" } }),
        )
        .ok();
    assert_eq!(
        p,
        json!({ "subject": "Hey Pia", "html": "<p>Hello Pia from Oslo</p>", "text": "Hello Pia" })
    );
    let p = s
        .admin_post("/v1/templates/hello/preview", json!({ "contact": {} }))
        .ok();
    assert_eq!(
        p,
        json!({ "subject": "Hey there", "html": "<p>Hello  from nowhere</p>", "text": "Hello " })
    );
    let p = s
        .admin_post(
            "/v1/templates/sms-hi/preview",
            json!({ "contact": { "first_name": "Sol" } }),
        )
        .ok();
    assert_eq!(
        p,
        json!({
            "text": "Hi Sol",
            "sms": { "encoding": "GSM-7", "characters": 6, "segments": 1 }
        })
    );
    s.admin_post("/v1/templates/nope/preview", json!({}))
        .expect_error(404, "not_found");
    s.admin_post(
        "/v1/templates/hello/preview",
        json!({ "contact_id": 987654 }),
    )
    .expect_error(404, "not_found");

    // Delete.
    assert_eq!(s.admin_delete("/v1/templates/hello", None).status, 204);
    s.admin_get("/v1/templates/hello")
        .expect_error(404, "not_found");
    s.admin_delete("/v1/templates/hello", None)
        .expect_error(404, "not_found");
    let list = s.admin_get("/v1/templates").ok();
    assert_eq!(list["templates"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// journeys

fn broken_journey() -> Value {
    json!({
        "id": "broken",
        "name": "Broken",
        "nodes": [
            { "id": "start", "type": "trigger", "event": "Go" },
            { "id": "pause-a-bit", "type": "delay", "duration": "2 days" },
            { "id": "mail", "type": "send_email", "template": "no-such-template" }
        ],
        "edges": [
            { "from": "start", "to": "pause-a-bit" },
            { "from": "pause-a-bit", "to": "mail" },
            { "from": "mail", "to": "ghost" }
        ]
    })
}

fn error_triples(errors: &Value) -> BTreeSet<(String, String, String)> {
    errors
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap_or("-").to_string(),
                e["node"].as_str().unwrap_or("-").to_string(),
                e["field"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

#[test]
fn validation_errors_suggest_what_was_meant() {
    let s = Server::simulated();
    let doc = json!({
        "id": "typos", "name": "Typos",
        "nodes": [
            { "id": "start", "type": "trigger", "event": "Go" },
            { "id": "welcome", "type": "send_mail", "template": "hello" },
            { "id": "pause", "type": "delay", "duration": "1d" }
        ],
        "edges": [
            { "from": "start", "to": "welcome" },
            { "from": "welcome", "to": "pause" },
            { "from": "pause", "to": "welcom" }
        ]
    });
    let v = s.admin_post("/v1/journeys/validate", doc.clone()).ok();
    let messages: BTreeSet<(String, String)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        (
            "invalid_node",
            "unknown node type `send_mail`; did you mean `send_email`?",
        ),
        (
            "unknown_node",
            "there is no node `welcom`; did you mean `welcome`?",
        ),
    ]
    .iter()
    .map(|(c, m)| (c.to_string(), m.to_string()))
    .collect();
    // Only those: the node with the unknown type keeps its edges.
    assert_eq!(messages, expected, "{v}");
    // A saved draft answers the same.
    let saved = s.admin_put("/v1/journeys/typos", doc).expect(201);
    assert_eq!(saved["errors"], v["errors"]);
}

#[test]
fn invalid_drafts_are_saved_with_their_errors_and_cannot_be_published() {
    let s = Server::simulated();
    let expected: BTreeSet<(String, String, String)> = [
        ("invalid_duration", "pause-a-bit", "duration"),
        ("unknown_template", "mail", "template"),
        ("unknown_node", "mail", "edges[2].to"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();

    let v = s.admin_post("/v1/journeys/validate", broken_journey()).ok();
    assert_eq!(v["valid"], false);
    assert_eq!(error_triples(&v["errors"]), expected);

    let created = s.admin_post("/v1/journeys", broken_journey()).expect(201);
    assert_eq!(created["valid"], false);
    assert_eq!(created["status"], "draft");
    assert!(created["live_version"].is_null());
    assert_eq!(error_triples(&created["errors"]), expected);
    for e in created["errors"].as_array().unwrap() {
        assert!(e["message"].as_str().unwrap().len() > 5, "{e}");
    }
    let got = s.admin_get("/v1/journeys/broken").ok();
    assert_eq!(error_triples(&got["errors"]), expected);
    assert_eq!(got["draft"]["nodes"][1]["duration"], "2 days");

    // Creating the same id again conflicts.
    s.admin_post("/v1/journeys", broken_journey())
        .expect_error(409, "journey_exists");

    let e = s
        .admin_post("/v1/journeys/broken/publish", json!({}))
        .expect_error(400, "invalid_journey");
    assert_eq!(error_triples(&e["errors"]), expected);
    assert!(e["field"].is_string());
    let got = s.admin_get("/v1/journeys/broken").ok();
    assert_eq!(got["status"], "draft");
    assert!(got["live_version"].is_null());
    assert_eq!(
        s.admin_get("/v1/journeys/broken/versions").ok()["versions"],
        json!([])
    );

    // Events do not enter a draft.
    s.track("g", "Go", json!({})).ok();
    s.settle();
    assert_eq!(s.contact_by_user("g")["enrollments"], json!([]));

    // Fixed, it publishes (templates shipped inline are stored first).
    let mut fixed = broken_journey();
    fixed["nodes"][1]["duration"] = json!("2d");
    fixed["edges"].as_array_mut().unwrap().pop();
    fixed["templates"] =
        json!([{ "id": "no-such-template", "channel": "email", "subject": "S", "text": "T" }]);
    let saved = s.admin_put("/v1/journeys/broken", fixed).expect(200);
    assert_eq!(saved["valid"], true, "{saved}");
    assert_eq!(saved["errors"], json!([]));
    let p = s.admin_post("/v1/journeys/broken/publish", json!({})).ok();
    assert_eq!(p["live_version"], 1);
    assert_eq!(p["status"], "live");

    // A template of the wrong channel, and YAML bodies.
    let yaml = "id: wrong\nname: Wrong\nnodes:\n  - { id: t, type: trigger, event: X }\n  - { id: s, type: send_sms, template: no-such-template }\nedges:\n  - { from: t, to: s }\n";
    let r = s.send(
        s.request(Method::POST, "/v1/journeys")
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/yaml")
            .body(yaml),
    );
    let body = r.expect(201);
    let expected: BTreeSet<_> = [(
        "wrong_channel".to_string(),
        "s".to_string(),
        "template".to_string(),
    )]
    .into_iter()
    .collect();
    assert_eq!(error_triples(&body["errors"]), expected);
    s.admin_get("/v1/journeys/nope")
        .expect_error(404, "not_found");
    s.admin_post("/v1/journeys/nope/publish", json!({}))
        .expect_error(404, "not_found");
}

#[test]
fn publishing_an_unchanged_draft_makes_no_new_version() {
    let s = Server::simulated();
    let versions = || {
        s.admin_get("/v1/journeys/vers/versions").ok()["versions"]
            .as_array()
            .unwrap()
            .len()
    };
    let p = s.apply_journey(versioned_journey("v-one"));
    assert_eq!(
        (&p["live_version"], &p["unchanged"]),
        (&json!(1), &json!(false))
    );
    let published = s.admin_get("/v1/journeys/vers").ok();
    let template = s.admin_get("/v1/templates/v-one").ok();
    user(&s, "early");
    s.track("early", "Start", json!({})).ok();
    s.settle();

    // Saved and published again, later: nothing is written, no version is made.
    s.advance(60);
    let saved = s
        .admin_put("/v1/journeys/vers", versioned_journey("v-one"))
        .expect(200);
    assert_eq!(saved["updated_at"], published["updated_at"], "{saved}");
    assert_eq!(s.admin_get("/v1/templates/v-one").ok(), template);
    let p = s.admin_post("/v1/journeys/vers/publish", json!({})).ok();
    assert_eq!(p["unchanged"], true, "{p}");
    assert_eq!(p["live_version"], 1, "{p}");
    assert_eq!(p["status"], "live", "{p}");
    assert_eq!(p["updated_at"], published["updated_at"], "{p}");
    assert_eq!(versions(), 1);
    // Asking for the existing contacts too is still no new version.
    let p = s
        .admin_post(
            "/v1/journeys/vers/publish",
            json!({ "enroll_existing": true }),
        )
        .ok();
    assert_eq!(
        (&p["unchanged"], &p["live_version"]),
        (&json!(true), &json!(1))
    );
    // A paused journey stays paused.
    s.admin_post("/v1/journeys/vers/pause", json!({})).ok();
    let p = s.admin_post("/v1/journeys/vers/publish", json!({})).ok();
    assert_eq!(
        (&p["unchanged"], &p["status"]),
        (&json!(true), &json!("paused"))
    );
    s.admin_post("/v1/journeys/vers/resume", json!({})).ok();
    assert_eq!(versions(), 1);

    // The enrollment goes on as before.
    s.advance(DAY);
    assert_eq!(templates_of(&s.messages("early")), ["v-one"]);

    // A template the journey sends, changed since the version was published, is a change.
    s.admin_put(
        "/v1/templates/v-one",
        json!({ "id": "v-one", "channel": "email", "subject": "Version one, again", "text": "one" }),
    )
    .ok();
    let p = s.admin_post("/v1/journeys/vers/publish", json!({})).ok();
    assert_eq!(
        (&p["unchanged"], &p["live_version"]),
        (&json!(false), &json!(2))
    );
    // So is a changed document.
    s.advance(60);
    let mut changed = versioned_journey("v-one");
    changed["nodes"][1]["duration"] = json!("2d");
    s.admin_put("/v1/journeys/vers", changed).expect(200);
    let p = s.admin_post("/v1/journeys/vers/publish", json!({})).ok();
    assert_eq!(
        (&p["unchanged"], &p["live_version"]),
        (&json!(false), &json!(3))
    );
    assert_eq!(versions(), 3);
}

#[test]
fn publishing_again_makes_a_new_version_and_enrollments_keep_theirs() {
    let s = Server::simulated();
    let p = s.apply_journey(versioned_journey("v-one"));
    assert_eq!(p["live_version"], 1);
    user(&s, "early");
    user(&s, "late");
    s.track("early", "Start", json!({})).ok();
    s.settle();

    let p = s.apply_journey(versioned_journey("v-two"));
    assert_eq!(p["live_version"], 2);
    s.track("late", "Start", json!({})).ok();
    s.settle();

    let early = s.contact_by_user("early")["enrollments"].clone();
    let late = s.contact_by_user("late")["enrollments"].clone();
    assert_eq!(early.as_array().unwrap().len(), 1);
    assert_eq!(early[0]["version"], 1);
    assert_eq!(early[0]["journey_id"], "vers");
    assert_eq!(late.as_array().unwrap().len(), 1);
    assert_eq!(late[0]["version"], 2);

    // Each follows the graph of its own version.
    s.advance(DAY);
    assert_eq!(templates_of(&s.messages("early")), ["v-one"]);
    assert_eq!(templates_of(&s.messages("late")), ["v-two"]);
    assert_eq!(s.contact_by_user("early")["enrollments"][0]["version"], 1);

    let versions = s.admin_get("/v1/journeys/vers/versions").ok()["versions"].clone();
    let vs = versions.as_array().unwrap();
    assert_eq!(vs.len(), 2);
    assert_eq!(vs[0]["version"], 1);
    assert_eq!(vs[1]["version"], 2);
    assert_eq!(vs[0]["journey_id"], "vers");
    assert!(vs[0]["published_at"].is_string());
    let v1 = s.admin_get("/v1/journeys/vers/versions/1").ok();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["document"]["nodes"][2]["template"], "v-one");
    let v2 = s.admin_get("/v1/journeys/vers/versions/2").ok();
    assert_eq!(v2["document"]["nodes"][2]["template"], "v-two");
    s.admin_get("/v1/journeys/vers/versions/3")
        .expect_error(404, "not_found");
    let e = s
        .admin_get("/v1/journeys/vers/versions/latest")
        .expect_error(400, "invalid_parameter");
    assert_eq!(e["field"], "version");

    // Editing the draft alone changes nothing live.
    let mut draft = versioned_journey("v-one");
    draft["name"] = json!("Renamed draft");
    s.admin_put("/v1/journeys/vers", draft).expect(200);
    let j = s.admin_get("/v1/journeys/vers").ok();
    assert_eq!(j["live_version"], 2);
    assert_eq!(j["draft"]["name"], "Renamed draft");
    let list = s.admin_get("/v1/journeys").ok();
    let row = list["journeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == "vers")
        .cloned()
        .expect("vers listed");
    assert_eq!(row["live_version"], 2);
    assert_eq!(row["status"], "live");
    assert_eq!(row["entered"], 2);
}

/// Like `waiter_journey`, but the event path waits an hour before the thank-you email.
fn pausable_journey() -> Value {
    let mut j = waiter_journey();
    j["nodes"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": "settle-in", "type": "delay", "duration": "1h" }));
    j["edges"] = json!([
        { "from": "start", "to": "wait" },
        { "from": "wait", "to": "settle-in", "output": "event" },
        { "from": "settle-in", "to": "thanks" },
        { "from": "wait", "to": "nudge", "output": "timeout" }
    ]);
    j
}

#[test]
fn pause_stops_entries_and_resume_continues_waits_that_saw_their_event() {
    let s = Server::simulated();
    s.apply_journey(pausable_journey());
    for u in ["w1", "w2", "w3"] {
        user(&s, u);
    }
    s.track("w1", "Start", json!({})).ok();
    s.track("w3", "Start", json!({})).ok();
    s.settle();

    let paused = s.admin_post("/v1/journeys/waiter/pause", json!({})).ok();
    assert_eq!(paused["status"], "paused");
    assert_eq!(s.stats("waiter")["status"], "paused");
    s.admin_post("/v1/journeys/waiter/pause", json!({}))
        .expect_error(409, "invalid_transition");

    // During the pause: no new entries, and waits hold even when their event arrives.
    s.track("w2", "Start", json!({})).ok();
    s.advance(HOUR);
    s.track("w1", "Confirm", json!({})).ok();
    s.advance(HOUR);
    assert_eq!(s.contact_by_user("w2")["enrollments"], json!([]));
    let e = &s.contact_by_user("w1")["enrollments"][0];
    assert_eq!(e["node"], "wait");
    assert_eq!(e["status"], "active");
    // Timers do not fire while paused either.
    s.advance(DAY);
    assert!(s.messages_where(&[]).is_empty());
    assert_eq!(s.contact_by_user("w3")["enrollments"][0]["node"], "wait");

    let resumed = s.admin_post("/v1/journeys/waiter/resume", json!({})).ok();
    assert_eq!(resumed["status"], "live");
    let resumed_at = ts_ms(&s.now());
    s.settle();
    // w1 confirmed during the pause: it takes the event path, not the timeout.
    let e = &s.contact_by_user("w1")["enrollments"][0];
    assert_eq!(e["node"], "settle-in");
    assert_eq!(ms_of(&e["wake_at"]), resumed_at + HOUR * 1000);
    // w3's timeout fell due during the pause: it fires after the resume.
    assert_eq!(templates_of(&s.messages("w3")), ["reminder"]);
    s.advance(HOUR);
    assert_eq!(templates_of(&s.messages("w1")), ["confirmed"]);
    assert_eq!(
        s.contact_by_user("w1")["enrollments"][0]["status"],
        "completed"
    );
    // w2's Start during the pause does not enter retroactively...
    assert_eq!(s.contact_by_user("w2")["enrollments"], json!([]));
    // ...but a Start after the resume does.
    s.track("w2", "Start", json!({})).ok();
    s.settle();
    assert_eq!(
        s.contact_by_user("w2")["enrollments"][0]["status"],
        "active"
    );
    s.admin_post("/v1/journeys/waiter/resume", json!({}))
        .expect_error(409, "invalid_transition");
    assert_eq!(s.stats("waiter")["entered"], 3);
}

#[test]
fn paused_journey_holds_a_wait_whose_path_ends_at_once() {
    let s = Server::simulated();
    s.apply_journey(waiter_journey());
    user(&s, "p1");
    s.track("p1", "Start", json!({})).ok();
    s.settle();
    s.admin_post("/v1/journeys/waiter/pause", json!({})).ok();
    s.track("p1", "Confirm", json!({})).ok();
    s.advance(HOUR);
    assert!(
        s.messages("p1").is_empty(),
        "sent during the pause: {:#?}",
        s.messages("p1")
    );
    let e = &s.contact_by_user("p1")["enrollments"][0];
    assert_eq!(e["node"], "wait");
    assert_eq!(e["status"], "active");
    s.admin_post("/v1/journeys/waiter/resume", json!({})).ok();
    s.settle();
    assert_eq!(templates_of(&s.messages("p1")), ["confirmed"]);
}

#[test]
fn archive_exits_active_enrollments() {
    let s = Server::simulated();
    s.apply_journey(waiter_journey());
    user(&s, "a1");
    user(&s, "a2");
    s.track("a1", "Start", json!({})).ok();
    s.track("a2", "Start", json!({})).ok();
    s.settle();
    s.track("a2", "Confirm", json!({})).ok();
    s.settle();
    assert_eq!(templates_of(&s.messages("a2")), ["confirmed"]);

    let archived = s.admin_post("/v1/journeys/waiter/archive", json!({})).ok();
    assert_eq!(archived["status"], "archived");
    let e = &s.contact_by_user("a1")["enrollments"][0];
    assert_eq!(e["status"], "exited");
    assert!(e["wake_at"].is_null());
    // The finished enrollment is untouched.
    assert_eq!(
        s.contact_by_user("a2")["enrollments"][0]["status"],
        "completed"
    );

    s.advance(3 * DAY);
    assert!(s.messages("a1").is_empty(), "no reminder after the archive");
    user(&s, "a3");
    s.track("a3", "Start", json!({})).ok();
    s.settle();
    assert_eq!(s.contact_by_user("a3")["enrollments"], json!([]));

    let st = s.stats("waiter");
    assert_eq!(st["status"], "archived");
    assert_eq!(st["active"], 0);
    assert_eq!(st["exited"], 1);
    assert_eq!(st["completed"], 1);
    let wait = s.node_stats("waiter", "wait");
    assert_eq!(wait["exited"], 1);
    assert_eq!(wait["waiting"], 0);

    for action in ["publish", "pause", "resume", "archive"] {
        let r = s.admin_post(&format!("/v1/journeys/waiter/{action}"), json!({}));
        assert_eq!(r.status, 409, "{action}: {}", r.text);
    }
    s.admin_post("/v1/journeys/waiter/publish", json!({}))
        .expect_error(409, "journey_archived");
}

#[test]
fn stats_report_every_node_with_all_counters() {
    let s = Server::simulated();
    s.apply_journey(waiter_journey());
    user(&s, "s1");
    s.track("s1", "Start", json!({})).ok();
    s.track("nomail", "Start", json!({})).ok();
    s.settle();
    s.track("s1", "Confirm", json!({})).ok();
    s.settle();
    let st = s.stats("waiter");
    let keys: BTreeSet<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "journey_id",
            "status",
            "version",
            "entered",
            "active",
            "completed",
            "exited",
            "converted",
            "sent",
            "delivered",
            "bounced",
            "failed",
            "suppressed",
            "opened",
            "clicked",
            "first_activity_at",
            "last_activity_at",
            "nodes"
        ])
    );
    assert_eq!(st["journey_id"], "waiter");
    assert_eq!(st["status"], "live");
    assert_eq!(st["entered"], 2);
    assert_eq!(st["active"], 1);
    assert_eq!(st["completed"], 1);
    assert!(st["first_activity_at"].is_string());
    let nodes = st["nodes"].as_array().unwrap();
    let names: Vec<_> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(names, ["start", "wait", "thanks", "nudge"]);
    let counter_keys = BTreeSet::from([
        "node",
        "entered",
        "waiting",
        "completed",
        "exited",
        "converted",
        "sent",
        "delivered",
        "bounced",
        "failed",
        "suppressed",
        "opened",
        "clicked",
    ]);
    for n in nodes {
        let keys: BTreeSet<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, counter_keys);
    }
    let by: BTreeMap<&str, &Value> = nodes
        .iter()
        .map(|n| (n["node"].as_str().unwrap(), n))
        .collect();
    assert_eq!(by["start"]["entered"], 2);
    assert_eq!(by["wait"]["entered"], 2);
    assert_eq!(by["wait"]["waiting"], 1);
    assert_eq!(by["wait"]["completed"], 1);
    assert_eq!(by["thanks"]["entered"], 1);
    assert_eq!(by["thanks"]["sent"], 1);
    assert_eq!(by["thanks"]["delivered"], 1);
    assert_eq!(by["nudge"]["entered"], 0);
    assert_eq!(
        (&st["sent"], &st["delivered"], &st["version"]),
        (&json!(1), &json!(1), &Value::Null)
    );

    // The contact without an email: its reminder is suppressed, not sent.
    s.advance(DAY);
    let nudge = s.node_stats("waiter", "nudge");
    assert_eq!(nudge["entered"], 1);
    assert_eq!(nudge["suppressed"], 1);
    assert_eq!(nudge["sent"], 0);
    assert_eq!(s.node_stats("waiter", "wait")["waiting"], 0);
    s.admin_get("/v1/journeys/nope/stats")
        .expect_error(404, "not_found");
}

// ---------------------------------------------------------------------------------------------
// lists, messages

#[test]
fn lists_create_add_and_remove_members() {
    let s = Server::simulated();
    let a = user(&s, "la");
    let b = user(&s, "lb");
    let created = s
        .admin_post("/v1/lists", json!({ "name": "vip" }))
        .expect(201);
    assert_eq!(created["name"], "vip");
    assert_eq!(created["members"], 0);
    s.admin_post("/v1/lists", json!({ "name": "vip" }))
        .expect_error(409, "conflict");
    let e = s
        .admin_post("/v1/lists", json!({ "name": "  " }))
        .expect_error(400, "invalid_list");
    assert_eq!(e["field"], "name");

    let r = s
        .admin_post("/v1/lists/vip/members", json!({ "contact_ids": [a, b] }))
        .ok();
    assert_eq!(r["changed"], 2);
    let members = |s: &Server| -> Vec<String> {
        s.admin_get("/v1/lists/vip/members").ok()["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["user_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(members(&s), ["la", "lb"]);
    let lists = s.admin_get("/v1/lists").ok();
    assert_eq!(lists["lists"][0]["name"], "vip");
    assert_eq!(lists["lists"][0]["members"], 2);
    assert_eq!(s.contact_by_user("la")["lists"], json!(["vip"]));

    let r = s
        .admin_delete("/v1/lists/vip/members", Some(json!({ "contact_ids": [a] })))
        .ok();
    assert_eq!(r["changed"], 1);
    assert_eq!(members(&s), ["lb"]);
    assert_eq!(s.contact_by_user("la")["lists"], json!([]));

    // An unknown contact fails the whole request: nothing is half-applied.
    s.admin_post(
        "/v1/lists/vip/members",
        json!({ "contact_ids": [a, 987654] }),
    )
    .expect_error(404, "not_found");
    assert_eq!(members(&s), ["lb"]);
    for body in [
        json!({ "contact_ids": [] }),
        json!({ "contact_ids": ["x"] }),
        json!({}),
    ] {
        let e = s
            .admin_post("/v1/lists/vip/members", body)
            .expect_error(400, "invalid_members");
        // The field, or the item of it that is not a contact id (`contact_ids[0]`).
        let field = e["field"].as_str().unwrap_or_default();
        assert!(field.starts_with("contact_ids"), "{e}");
    }
    s.admin_get("/v1/lists/nope/members")
        .expect_error(404, "not_found");
}

#[test]
fn messages_can_be_filtered() {
    let s = Server::simulated();
    s.apply_example("abandoned-cart");
    s.apply_example("welcome-series");
    s.identify(
        "m1",
        json!({ "email": "m1@example.com", "phone": "+14155550101" }),
    )
    .ok();
    s.identify("m2", json!({ "email": "m2@example.com" })).ok();
    s.track("m1", "Signed Up", json!({})).ok();
    s.track(
        "m1",
        "Product Added",
        json!({ "cart_id": "c", "products": [] }),
    )
    .ok();
    s.track("m2", "Signed Up", json!({})).ok();
    s.track(
        "m2",
        "Product Added",
        json!({ "cart_id": "d", "products": [] }),
    )
    .ok();
    s.advance(2 * DAY);
    // m1: confirmation, cart email, content, cart sms; m2: the same, but the SMS is suppressed.
    let all = s.messages_where(&[]);
    assert_eq!(all.len(), 8, "{all:#?}");
    let ids: Vec<i64> = all.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "oldest first");

    let count = |f: &[(&str, &str)]| s.messages_where(f).len();
    assert_eq!(count(&[("channel", "sms")]), 2);
    assert_eq!(count(&[("channel", "email")]), 6);
    assert_eq!(count(&[("journey_id", "welcome-series")]), 4);
    assert_eq!(count(&[("journey_id", "abandoned-cart")]), 4);
    assert_eq!(count(&[("status", "suppressed")]), 1);
    assert_eq!(count(&[("status", "sent")]), 7);
    assert_eq!(count(&[("user_id", "m1")]), 4);
    assert_eq!(
        count(&[
            ("user_id", "m2"),
            ("channel", "sms"),
            ("status", "suppressed")
        ]),
        1
    );
    let m1 = s.contact_by_user("m1")["id"].as_i64().unwrap().to_string();
    assert_eq!(count(&[("contact_id", &m1)]), 4);
    assert_eq!(
        count(&[("contact_id", &m1), ("journey_id", "abandoned-cart")]),
        2
    );
    for m in s.messages_where(&[("contact_id", &m1), ("channel", "sms")]) {
        assert_eq!(m["recipient"], "+14155550101");
        assert_eq!(m["journey_id"], "abandoned-cart");
    }
    // Paging.
    let page = s.admin_get("/v1/messages?limit=3").ok()["messages"].clone();
    assert_eq!(page.as_array().unwrap().len(), 3);
    let after = page[2]["id"].as_i64().unwrap();
    let rest = s.admin_get(&format!("/v1/messages?after={after}")).ok()["messages"].clone();
    assert_eq!(rest.as_array().unwrap().len(), 5);
    assert_eq!(rest[0]["id"].as_i64().unwrap(), ids[3]);
    // Without bodies: the same messages, their html and text left out.
    let lean = s.admin_get("/v1/messages?bodies=false").ok()["messages"].clone();
    assert_eq!(lean.as_array().unwrap().len(), all.len());
    for (m, full) in lean.as_array().unwrap().iter().zip(&all) {
        assert_eq!(
            (&m["html"], &m["text"]),
            (&Value::Null, &Value::Null),
            "{m:#}"
        );
        let mut without = full.clone();
        without["html"] = Value::Null;
        without["text"] = Value::Null;
        assert_eq!(m, &without);
    }
    assert!(all.iter().any(|m| m["text"].is_string()), "{all:#?}");
    for q in [
        "bodies=maybe",
        "limit=0",
        "limit=1001",
        "limit=x",
        "contact_id=abc",
        "after=z",
    ] {
        let r = s.admin_get(&format!("/v1/messages?{q}"));
        r.expect_error(400, "invalid_parameter");
    }
}

// ---------------------------------------------------------------------------------------------
// documents, metrics, auth, errors

/// Every route of `crates/server/src/api/mod.rs`, by method.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/identify"),
    ("post", "/v1/track"),
    ("post", "/v1/page"),
    ("post", "/v1/screen"),
    ("post", "/v1/group"),
    ("post", "/v1/alias"),
    ("post", "/v1/batch"),
    ("post", "/v1/import"),
    ("get", "/v1/contacts"),
    ("post", "/v1/contacts/import"),
    ("get", "/v1/contacts/{id}"),
    ("get", "/v1/contacts/{id}/timeline"),
    ("get", "/v1/events"),
    ("get", "/v1/contacts/{id}/export"),
    ("delete", "/v1/contacts/{id}"),
    ("get", "/v1/audit"),
    ("get", "/v1/lists"),
    ("post", "/v1/lists"),
    ("get", "/v1/lists/{name}/members"),
    ("post", "/v1/lists/{name}/members"),
    ("delete", "/v1/lists/{name}/members"),
    ("get", "/v1/templates"),
    ("post", "/v1/templates"),
    ("get", "/v1/templates/{id}"),
    ("put", "/v1/templates/{id}"),
    ("delete", "/v1/templates/{id}"),
    ("get", "/v1/templates/{id}/versions"),
    ("get", "/v1/templates/{id}/versions/{version}"),
    ("post", "/v1/templates/{id}/preview"),
    ("post", "/v1/templates/{id}/test-send"),
    ("get", "/v1/messages"),
    ("post", "/v1/messages/requeue"),
    ("get", "/v1/outbox"),
    ("get", "/v1/cluster"),
    ("get", "/v1/suppressions"),
    ("post", "/v1/suppressions"),
    ("delete", "/v1/suppressions/{channel}/{address}"),
    ("post", "/v1/webhooks/ses"),
    ("post", "/v1/webhooks/postmark"),
    ("post", "/v1/webhooks/suppressions"),
    ("post", "/v1/webhooks/twilio/inbound"),
    ("get", "/v1/clock"),
    ("post", "/v1/clock/advance"),
    ("get", "/v1/journeys"),
    ("post", "/v1/journeys"),
    ("post", "/v1/journeys/validate"),
    ("get", "/v1/journeys/{id}"),
    ("put", "/v1/journeys/{id}"),
    ("post", "/v1/journeys/{id}/publish"),
    ("post", "/v1/journeys/{id}/pause"),
    ("post", "/v1/journeys/{id}/resume"),
    ("post", "/v1/journeys/{id}/archive"),
    ("get", "/v1/journeys/{id}/versions"),
    ("get", "/v1/journeys/{id}/versions/{version}"),
    ("get", "/v1/journeys/{id}/stats"),
    ("get", "/v1/journeys/{id}/report"),
    ("get", "/v1/reports/overview"),
    ("get", "/v1/journeys/{id}/people"),
    ("post", "/v1/journeys/{id}/enroll"),
    ("post", "/v1/journeys/{id}/simulate"),
    ("get", "/v1/journeys/{id}/experiments"),
    ("get", "/v1/broadcasts"),
    ("post", "/v1/broadcasts"),
    ("post", "/v1/broadcasts/audience"),
    ("get", "/v1/broadcasts/{id}"),
    ("put", "/v1/broadcasts/{id}"),
    ("delete", "/v1/broadcasts/{id}"),
    ("post", "/v1/broadcasts/{id}/send"),
    ("post", "/v1/broadcasts/{id}/pause"),
    ("post", "/v1/broadcasts/{id}/resume"),
    ("post", "/v1/broadcasts/{id}/cancel"),
    ("get", "/v1/broadcasts/{id}/report"),
    ("get", "/v1/segments"),
    ("post", "/v1/segments"),
    ("post", "/v1/segments/preview"),
    ("get", "/v1/segments/{id}"),
    ("put", "/v1/segments/{id}"),
    ("delete", "/v1/segments/{id}"),
    ("get", "/v1/segments/{id}/members"),
    ("get", "/v1/segments/{id}/history"),
    ("get", "/v1/session"),
    ("post", "/v1/session"),
    ("delete", "/v1/session"),
    ("get", "/v1/journey-templates"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/schema/journey.json"),
    ("get", "/t/o/{token}"),
    ("get", "/t/c/{token}"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/v1/contacts/{id}/subscriptions"),
    ("put", "/v1/contacts/{id}/subscriptions/{channel}/{topic}"),
    ("get", "/v1/topics"),
    ("post", "/v1/subscribe"),
    ("get", "/u/{token}"),
    ("post", "/u/{token}"),
    ("get", "/confirm/{token}"),
    ("post", "/confirm/{token}"),
    ("get", "/v1/problems"),
];

/// Admin routes with sample path parameters.
fn admin_routes() -> Vec<(Method, String)> {
    ROUTES
        .iter()
        .filter(|(_, p)| {
            !matches!(
                *p,
                "/v1/identify"
                    | "/v1/track"
                    | "/v1/page"
                    | "/v1/screen"
                    | "/v1/group"
                    | "/v1/alias"
                    | "/v1/batch"
                    | "/v1/import"
                    | "/v1/openapi.json"
                    | "/v1/schema/journey.json"
                    | "/metrics"
                    | "/healthz"
                    | "/t/o/{token}"
                    | "/t/c/{token}"
                    | "/v1/subscribe"
                    | "/u/{token}"
                    | "/confirm/{token}"
                    | "/v1/session"
            )
        })
        .map(|(m, p)| {
            let method = match *m {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "delete" => Method::DELETE,
                other => panic!("{other}"),
            };
            let path = p
                .replace("{id}", "1")
                .replace("{name}", "vip")
                .replace("{version}", "1");
            (method, path)
        })
        .collect()
}

#[test]
fn openapi_describes_every_route() {
    let s = Server::simulated();
    let doc = s.get("/v1/openapi.json").ok();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
    // Every admin route says it needs the admin token, tracking routes the write key.
    for (m, p) in ROUTES {
        let op = &paths[*p][*m];
        assert!(op["summary"].is_string(), "{m} {p}");
        let security = op["security"].to_string();
        if p.starts_with("/v1/") && !admin_path_is_public(p) {
            let tracking = [
                "/v1/identify",
                "/v1/track",
                "/v1/page",
                "/v1/screen",
                "/v1/group",
                "/v1/alias",
                "/v1/batch",
                "/v1/import",
                "/v1/subscribe",
            ]
            .contains(p);
            let want = if tracking {
                "writeKey"
            } else if p.starts_with("/v1/webhooks/") {
                "inboundSecret"
            } else {
                "adminToken"
            };
            assert!(security.contains(want), "{m} {p}: {security}");
        }
    }
}

fn admin_path_is_public(p: &str) -> bool {
    matches!(p, "/v1/openapi.json" | "/v1/schema/journey.json")
}

/// Every string under a `const` key or in an `enum` list, anywhere in a JSON document.
fn constants(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("const", Value::String(s)) => {
                        out.insert(s.clone());
                    }
                    ("enum", Value::Array(items)) => {
                        out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_string)));
                    }
                    _ => {}
                }
                constants(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| constants(v, out)),
        _ => {}
    }
}

#[test]
fn journey_schema_lists_every_node_type() {
    let s = Server::simulated();
    let schema = s.get("/v1/schema/journey.json").ok();
    let mut found = BTreeSet::new();
    constants(&schema, &mut found);
    for t in [
        "trigger",
        "delay",
        "wait_for_event",
        "branch",
        "send_email",
        "send_sms",
        "update_traits",
        "add_to_list",
        "remove_from_list",
        "exit",
    ] {
        assert!(
            found.contains(t),
            "node type `{t}` missing from the schema: {found:?}"
        );
    }
    for r in ["once", "every_time"] {
        assert!(found.contains(r), "re-entry `{r}` missing");
    }
    assert_eq!(s.get("/healthz").ok(), json!({ "status": "ok" }));
}

/// The value of an unlabelled Prometheus sample.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

#[test]
fn metrics_expose_ingestion_and_timer_counts() {
    let s = Server::simulated();
    s.apply_example("welcome-series");
    s.identify("mx", json!({ "email": "mx@example.com" })).ok();
    s.ingest(
        "/v1/track",
        json!({ "userId": "mx", "event": "Signed Up", "messageId": "sig-1" }),
    )
    .ok();
    s.ingest(
        "/v1/track",
        json!({ "userId": "mx", "event": "Signed Up", "messageId": "sig-1" }),
    )
    .ok();
    s.track("other", "Something", json!({})).ok();
    s.settle();
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.content_type
            .as_deref()
            .unwrap_or("")
            .starts_with("text/plain"),
        "{:?}",
        r.content_type
    );
    let text = r.text;
    assert!(text.contains("waymark_events_ingested_total"), "{text}");
    assert!(text.contains("waymark_timers_waiting"), "{text}");
    assert_eq!(
        sample(&text, "waymark_events_ingested_total"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "waymark_events_duplicate_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "waymark_timers_waiting"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "waymark_enrollments_active"),
        Some(1.0),
        "{text}"
    );

    s.advance(8 * DAY);
    let text = s.get("/metrics").text;
    assert_eq!(sample(&text, "waymark_timers_waiting"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "waymark_enrollments_active"),
        Some(0.0),
        "{text}"
    );
}

#[test]
fn admin_endpoints_require_the_admin_token() {
    let s = Server::simulated();
    for (method, path) in admin_routes() {
        let body = json!({});
        let r = s.send(s.request(method.clone(), &path).json(&body));
        let e = r.expect_error(401, "unauthorized");
        assert_error_shape(&e);
        let r = s.send(
            s.request(method.clone(), &path)
                .bearer_auth("not-the-token")
                .json(&body),
        );
        r.expect_error(401, "unauthorized");
        let r = s.send(
            s.request(method.clone(), &path)
                .basic_auth(WRITE_KEY, Some(""))
                .json(&body),
        );
        r.expect_error(401, "unauthorized");
        let r = s.send(
            s.request(method.clone(), &path)
                .bearer_auth(WRITE_KEY)
                .json(&body),
        );
        r.expect_error(401, "unauthorized");
    }
    // The clock did not move and no journey was created.
    let before = s.now();
    s.send(
        s.request(Method::POST, "/v1/clock/advance")
            .json(&json!({ "seconds": 3600 })),
    )
    .expect_error(401, "unauthorized");
    assert_eq!(s.now(), before);
    assert_eq!(s.admin_get("/v1/journeys").ok()["journeys"], json!([]));
    // Public endpoints.
    for path in [
        "/healthz",
        "/v1/openapi.json",
        "/v1/schema/journey.json",
        "/metrics",
    ] {
        assert_eq!(s.get(path).status, 200, "{path}");
    }
}

#[test]
fn unknown_routes_answer_404_json() {
    let s = Server::simulated();
    for (method, path) in [
        (Method::GET, "/v1/nope"),
        (Method::POST, "/v1/nope"),
        (Method::GET, "/"),
        (Method::GET, "/v2/track"),
        (Method::GET, "/v1/journeys/a/b/c"),
    ] {
        let r = s.send(s.request(method.clone(), path).bearer_auth(ADMIN_TOKEN));
        let e = r.expect_error(404, "not_found");
        assert_error_shape(&e);
        assert!(
            r_content_is_json(&s, method, path),
            "{path} does not answer JSON"
        );
    }
}

#[test]
fn wrong_method_answers_405_json() {
    let s = Server::simulated();
    for (method, path) in [
        (Method::GET, "/v1/track"),
        (Method::DELETE, "/v1/journeys/x"),
        (Method::PUT, "/v1/journeys"),
    ] {
        let r = s.send(s.request(method.clone(), path).bearer_auth(ADMIN_TOKEN));
        assert_eq!(r.status, 405, "{method} {path}");
        assert!(
            r.content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/json")),
            "{method} {path}: content type {:?}, body {:?}",
            r.content_type,
            r.text
        );
        assert_error_shape(&r.json);
    }
}

fn r_content_is_json(s: &Server, method: Method, path: &str) -> bool {
    let r = s.send(s.request(method, path));
    r.content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"))
}

#[test]
fn clock_advance_validates_seconds() {
    let s = Server::simulated();
    let clock = s.admin_get("/v1/clock").ok();
    assert_eq!(clock["simulated"], true);
    let t0 = ms_of(&clock["now"]);
    for body in [
        json!({ "seconds": -1 }),
        json!({}),
        json!({ "seconds": "60" }),
        json!({ "seconds": 1.5 }),
        json!({ "seconds": null }),
        json!({ "seconds": 10 * 366 * DAY }),
    ] {
        let e = s
            .admin_post("/v1/clock/advance", body.clone())
            .expect_error(400, "invalid_parameter");
        assert_eq!(e["field"], "seconds", "{body}");
    }
    let r = s.send(
        s.request(Method::POST, "/v1/clock/advance")
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body("{seconds: 1}"),
    );
    r.expect_error(400, "invalid_json");
    assert_eq!(ts_ms(&s.now()), t0, "rejected calls do not move the clock");

    let r = s
        .admin_post("/v1/clock/advance", json!({ "seconds": 3600 }))
        .ok();
    assert_eq!(r["simulated"], true);
    assert_eq!(ms_of(&r["now"]), t0 + 3_600_000);
    assert_eq!(ts_ms(&s.now()), t0 + 3_600_000);
    let r = s
        .admin_post("/v1/clock/advance", json!({ "seconds": 0 }))
        .ok();
    assert_eq!(ms_of(&r["now"]), t0 + 3_600_000);
}

#[test]
fn clock_advance_is_refused_on_the_system_clock() {
    let s = Server::start(ServerOptions::system_clock());
    let clock = s.admin_get("/v1/clock").ok();
    assert_eq!(clock["simulated"], false);
    s.admin_post("/v1/clock/advance", json!({ "seconds": 60 }))
        .expect_error(409, "clock_not_simulated");
}

#[test]
fn every_reference_in_the_openapi_document_resolves() {
    let s = Server::simulated();
    let doc = s.get("/v1/openapi.json").ok();
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20, "{all:?}");
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    assert!(
        doc["components"]["schemas"]["Journey"]
            .get("$defs")
            .is_none()
    );
}

/// Sends a `POST path` with a body of `length` bytes on a connection of its own, writing it
/// from another thread while this one reads the answer until the server closes the
/// connection: a server that refuses the body before reading it all answers all the same
/// (a client that waits to finish writing first may see only a broken pipe).
fn post_big_body(s: &Server, path: &str, length: usize) -> String {
    use std::io::{Read, Write};
    let mut reading = std::net::TcpStream::connect(s.addr).expect("connect");
    reading
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut writing = reading.try_clone().unwrap();
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    let writer = std::thread::spawn(move || {
        // Errors are expected once the server has answered and closed.
        let _ = writing.write_all(head.as_bytes());
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = length;
        while left > 0 {
            let n = left.min(chunk.len());
            if writing.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    });
    let mut answer = Vec::new();
    let _ = reading.read_to_end(&mut answer);
    let _ = writer.join();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn the_events_of_a_period_are_listed_in_the_order_they_came_in_page_by_page() {
    let s = Server::simulated();
    s.track("ann", "Signed Up", json!({"plan": "pro"})).ok();
    s.advance(3600);
    let since = s.now();
    s.identify("bob", json!({"email": "bob@example.com"})).ok();
    s.track("ann", "Order Completed", json!({"total": 12})).ok();
    s.track("bob", "Product Added", json!({})).ok();
    s.advance(3600);
    let until = s.now();
    s.track("ann", "Later", json!({})).ok();
    s.settle();

    let page = |query: &str| s.admin_get(&format!("/v1/events?{query}")).ok();
    let first = page(&format!("since={since}&until={until}&limit=2"));
    let names: Vec<&str> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Identify", "Order Completed"]);
    let identify = &first["events"][0];
    assert_eq!(identify["type"], "identify");
    assert_eq!(identify["user_id"], "bob");
    assert_eq!(identify["properties"]["email"], "bob@example.com");
    assert_eq!(identify["received_at"].as_str(), Some(since.as_str()));
    assert!(identify["contact_id"].is_i64(), "processed: {identify}");
    let after = first["next_after"]
        .as_i64()
        .expect("a full page has a next");
    let rest = page(&format!(
        "since={since}&until={until}&limit=2&after={after}"
    ));
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert_eq!(rest["events"][0]["event"], "Product Added");
    assert!(rest["next_after"].is_null(), "{rest}");
    // A duration before now, and no `until`: up to the last one.
    let recent = page("since=90m");
    assert_eq!(recent["events"].as_array().unwrap().len(), 4, "{recent}");
    assert_eq!(recent["events"][3]["event"], "Later");

    for (query, field) in [
        ("", "since"),
        ("since=yesterday", "since"),
        (&format!("since={until}&until={since}") as &str, "until"),
        ("since=1d&limit=5000", "limit"),
    ] {
        let e = s
            .admin_get(&format!("/v1/events?{query}"))
            .expect_error(400, "invalid_parameter");
        assert_eq!(e["field"], field, "{query}: {e}");
    }
    let r = s.get("/v1/events?since=1d");
    r.expect_error(401, "unauthorized");
}
