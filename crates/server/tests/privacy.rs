//! Data-protection requests through the HTTP API: a contact's export holds every kind of data
//! Waymark keeps about it; erasure removes all of it, removes its queued messages, keeps its
//! addresses suppressed as keyed hashes (so a later identify is not mailed), and both are in
//! the audit log.

mod common;
use common::*;

const PUBLIC: &str = "http://mail.example.test";
const ANN_EMAIL: &str = "Ann@Example.com";
const ANN_PHONE: &str = "+4915112345678";

/// Signed Up → email → score (+10, expiring in 30 days) → 1 day → email.
fn journey() -> Value {
    json!({
        "id": "dp-welcome",
        "name": "Data protection: welcome",
        "nodes": [
            {"id": "signed-up", "type": "trigger", "event": "Signed Up"},
            {"id": "hello", "type": "send_email", "template": "dp-hello"},
            {"id": "points", "type": "score", "points": 10, "expires_after": "30d"},
            {"id": "wait", "type": "delay", "duration": "1d"},
            {"id": "again", "type": "send_email", "template": "dp-hello"}
        ],
        "edges": [
            {"from": "signed-up", "to": "hello"},
            {"from": "hello", "to": "points"},
            {"from": "points", "to": "wait"},
            {"from": "wait", "to": "again"}
        ],
        "templates": [{
            "id": "dp-hello",
            "channel": "email",
            "subject": "Hello {{ contact.first_name }}",
            "html": "<html><body><p>Hello {{ contact.first_name }}</p></body></html>",
            "text": "Hello {{ contact.first_name }}"
        }]
    })
}

/// Ann (anonymous first, then identified, with email, phone, time zone and traits), Bob; both
/// in list `vip`; segment `pros` (Ann); Ann subscribed to `news`; Ann's phone suppressed.
/// Returns Ann's contact id.
fn populate(s: &Server) -> i64 {
    s.apply_journey(journey());
    s.identify(
        "bob",
        json!({"email": "bob@example.com", "first_name": "Bob"}),
    )
    .ok();
    s.batch(vec![
        json!({"type": "track", "anonymousId": "anon-ann", "event": "Viewed Pricing",
               "properties": {"plan": "pro"}}),
        json!({"type": "identify", "userId": "ann", "anonymousId": "anon-ann",
               "traits": {"email": ANN_EMAIL, "phone": ANN_PHONE, "timezone": "Europe/Berlin",
                          "first_name": "Ann", "plan": "pro"}}),
    ])
    .ok();
    s.settle();
    let ann = s.contact_by_user("ann")["id"].as_i64().unwrap();
    let bob = s.contact_by_user("bob")["id"].as_i64().unwrap();
    s.admin_post("/v1/lists", json!({"name": "vip"}))
        .expect(201);
    s.admin_post("/v1/lists/vip/members", json!({"contact_ids": [ann, bob]}))
        .ok();
    s.admin_post(
        "/v1/segments",
        json!({"id": "pros", "name": "Pros", "condition": {"traits": {"plan": "pro"}}}),
    )
    .expect(201);
    s.admin_put(
        &format!("/v1/contacts/{ann}/subscriptions/email/news"),
        json!({"status": "subscribed"}),
    )
    .ok();
    s.admin_post(
        "/v1/suppressions",
        json!({"channel": "sms", "address": ANN_PHONE, "reason": "manual"}),
    )
    .expect(201);
    s.settle();
    ann
}

fn list_members(s: &Server, list: &str) -> i64 {
    let lists = s.admin_get("/v1/lists").ok();
    lists["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == list)
        .unwrap_or_else(|| panic!("no list {list}: {lists}"))["members"]
        .as_i64()
        .unwrap()
}

fn names(rows: &Value, key: &str) -> Vec<String> {
    rows.as_array()
        .unwrap_or_else(|| panic!("not an array: {rows}"))
        .iter()
        .map(|r| r[key].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_export_holds_every_kind_of_data_about_the_contact_and_is_audited() {
    let s = Server::start(ServerOptions {
        args: vec!["--public-url".into(), format!("{PUBLIC}/")],
        ..Default::default()
    });
    let ann = populate(&s);
    s.track("bob", "Signed Up", json!({})).ok();
    s.track("ann", "Signed Up", json!({"source": "ad"})).ok();
    s.settle();
    // Ann opens her email (the tracking pixel).
    let hello = &s.messages("ann")[0];
    let html = hello["html"].as_str().unwrap();
    let at = html.find(&format!("{PUBLIC}/t/o/")).expect(html) + PUBLIC.len();
    let pixel: String = html[at..].chars().take_while(|c| *c != '"').collect();
    assert_eq!(s.get(&pixel).status, 200);
    s.settle(); // the open is recorded as an event, processed like any other

    let r = s.admin_get(&format!("/v1/contacts/{ann}/export"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let x = r.json;
    assert_eq!(x["contact_id"], ann);
    // The contact: ids, addresses, time zone, traits, times.
    let c = &x["contact"];
    assert_eq!(c["user_id"], "ann");
    assert_eq!(c["email"], "ann@example.com");
    assert_eq!(c["phone"], ANN_PHONE);
    assert_eq!(c["timezone"], "Europe/Berlin");
    assert_eq!(c["traits"]["plan"], "pro");
    assert!(c["created_at"].as_str().unwrap().ends_with('Z'), "{c}");
    assert_eq!(x["anonymous_ids"], json!([{"anonymous_id": "anon-ann"}]));
    // Events, her own only: what she did, consent and list changes recorded as events.
    let events = names(&x["events"], "name");
    for name in ["Viewed Pricing", "Identify", "Signed Up", "Added To List"] {
        assert!(events.contains(&name.to_string()), "{name}: {events:?}");
    }
    assert!(
        x["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["contact_id"] == ann),
        "{}",
        x["events"]
    );
    let signed_up = x["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Signed Up")
        .unwrap();
    assert_eq!(signed_up["properties"]["source"], "ad");
    // Enrollment with its step log.
    let enrollment = &x["enrollments"][0];
    assert_eq!(enrollment["journey_id"], "dp-welcome");
    assert_eq!(enrollment["node"], "wait");
    let steps = names(&enrollment["steps"], "node");
    assert!(steps.contains(&"hello".to_string()), "{steps:?}");
    // Messages: rendered content, status, engagement.
    let message = &x["messages"][0];
    assert_eq!(message["subject"], "Hello Ann");
    assert!(message["html"].as_str().unwrap().contains("Hello Ann"));
    assert_eq!(message["status"], "sent");
    assert_eq!(message["recipient"], "ann@example.com");
    assert!(message["opened_at"].is_string(), "{message}");
    // Consent, lists, segments, scheduled work, suppressions of her addresses.
    assert_eq!(x["subscriptions"][0]["topic"], "news");
    assert_eq!(x["subscriptions"][0]["status"], "subscribed");
    assert_eq!(names(&x["lists"], "list"), ["vip"]);
    assert_eq!(names(&x["segments"], "segment_id"), ["pros"]);
    assert_eq!(x["score_expiries"][0]["points"], 10);
    assert_eq!(x["suppressions"][0]["address"], ANN_PHONE);
    assert_eq!(x["suppressions"][0]["reason"], "manual");
    // The counts up front say how long each section is.
    for (section, rows) in x.as_object().unwrap() {
        if let Some(rows) = rows.as_array() {
            assert_eq!(
                x["counts"][section].as_u64(),
                Some(rows.len() as u64),
                "{section}"
            );
        }
    }
    // Bob's data is not in it.
    assert!(!r.text.contains("bob"), "{}", r.text);

    // Audited: who, when, what, counts, and nothing personal.
    let audit = s.admin_get(&format!("/v1/audit?contact_id={ann}")).ok();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["action"], "contact.export");
    assert_eq!(entries[0]["actor"], "admin_token");
    assert_eq!(entries[0]["contact_id"], ann);
    assert_eq!(entries[0]["id"], x["audit_id"]);
    assert_eq!(
        entries[0]["detail"]["counts"]["messages"],
        x["counts"]["messages"]
    );
    let text = audit.to_string().to_lowercase();
    assert!(
        !text.contains("ann@") && !text.contains("4915112345678"),
        "{text}"
    );
    assert!(s.all_output().contains("contact exported"));

    // Errors: an unknown contact, a malformed id; neither is audited.
    s.admin_get("/v1/contacts/999999/export")
        .expect_error(404, "not_found");
    s.admin_get("/v1/contacts/abc/export")
        .expect_error(400, "invalid_parameter");
    let all = s.admin_get("/v1/audit").ok();
    assert_eq!(all["entries"].as_array().unwrap().len(), 1, "{all}");
}

#[test]
fn erasure_removes_everything_of_the_contact_and_a_later_identify_of_the_address_is_suppressed() {
    // One email a second: Ann's first email waits in the outbox behind Bob's.
    let s = Server::start(ServerOptions {
        args: vec!["--email-rate".into(), "1".into()],
        ..Default::default()
    });
    let ann = populate(&s);
    s.track("bob", "Signed Up", json!({})).ok();
    s.settle();
    s.track("ann", "Signed Up", json!({})).ok();
    s.settle();
    let queued = s.messages("ann");
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["status"], "queued", "{queued:?}");
    assert_eq!(list_members(&s, "vip"), 2);
    assert_eq!(s.admin_get("/v1/segments/pros").ok()["members"], 1);
    assert!(!s.timeline(ann).is_empty());

    let r = s.admin_delete(&format!("/v1/contacts/{ann}"), None).ok();
    assert_eq!(r["contact_id"], ann);
    assert_eq!(r["erased"], true);
    let removed = &r["removed"];
    assert_eq!(removed["contacts"], 1, "{r}");
    assert_eq!(removed["messages"], 1, "{r}");
    assert_eq!(removed["enrollments"], 1, "{r}");
    assert_eq!(removed["anonymous_ids"], 1, "{r}");
    assert_eq!(removed["list_members"], 1, "{r}");
    assert_eq!(removed["segment_members"], 1, "{r}");
    assert_eq!(removed["subscriptions"], 1, "{r}");
    assert_eq!(removed["score_expiries"], 1, "{r}");
    assert_eq!(removed["suppressions"], 1, "{r}");
    assert!(removed["events"].as_i64().unwrap() >= 4, "{r}");
    assert!(removed["steps"].as_i64().unwrap() >= 3, "{r}");
    assert_eq!(r["addresses_hashed"], 2, "email and phone: {r}");

    // Gone from every view.
    s.admin_get(&format!("/v1/contacts/{ann}/export"))
        .expect_error(404, "not_found");
    s.admin_get(&format!("/v1/contacts/{ann}"))
        .expect_error(404, "not_found");
    s.admin_get(&format!("/v1/contacts/{ann}/timeline"))
        .expect_error(404, "not_found");
    assert!(s.find_contact_by_user("ann").is_none());
    let by_anon = s.admin_get("/v1/contacts?anonymous_id=anon-ann").ok();
    assert_eq!(by_anon["contacts"], json!([]));
    assert!(s.messages("ann").is_empty());
    assert!(
        s.messages_where(&[("contact_id", &ann.to_string())])
            .is_empty()
    );
    assert_eq!(list_members(&s, "vip"), 1);
    assert_eq!(s.admin_get("/v1/segments/pros").ok()["members"], 0);
    // Her phone's suppression is no longer stored in the clear, but still found by address.
    let listed = s.admin_get("/v1/suppressions").ok();
    assert!(!listed.to_string().contains("4915112345678"), "{listed}");
    let found = s
        .admin_get(&format!(
            "/v1/suppressions?channel=sms&address={}",
            encode(ANN_PHONE)
        ))
        .ok();
    assert_eq!(found["suppressions"][0]["source"], "erasure", "{found}");
    assert_eq!(found["suppressions"][0]["reason"], "manual", "{found}");
    // Counters stay as numbers: both entered, Bob's email was sent, Ann's never will be.
    let hello = s.node_stats("dp-welcome", "hello");
    assert_eq!(hello["entered"], 2, "{hello}");
    assert_eq!(hello["sent"], 1, "{hello}");
    s.advance(2 * DAY);
    let hello = s.node_stats("dp-welcome", "hello");
    assert_eq!(
        hello["sent"], 1,
        "Ann's queued email was never sent: {hello}"
    );
    let everything = s.messages_where(&[]);
    assert!(
        everything
            .iter()
            .all(|m| !m["recipient"].as_str().unwrap_or("").contains("ann")),
        "{everything:?}"
    );

    // Audited with counts; the log says so too; no personal data in either.
    let audit = s.admin_get("/v1/audit?action=contact.erase").ok();
    let entry = &audit["entries"][0];
    assert_eq!(entry["contact_id"], ann, "{audit}");
    assert_eq!(entry["actor"], "admin_token");
    assert_eq!(entry["id"], r["audit_id"]);
    assert_eq!(entry["detail"]["removed"]["messages"], 1);
    let text = audit.to_string().to_lowercase();
    assert!(
        !text.contains("ann@") && !text.contains("anon-ann"),
        "{text}"
    );
    assert!(s.all_output().contains("contact erased"));

    // Erasing again: nothing left to erase.
    s.admin_delete(&format!("/v1/contacts/{ann}"), None)
        .expect_error(404, "not_found");

    // The same person comes back (another case of the address): a new contact, which the
    // hashed suppression keeps from being mailed.
    s.identify(
        "ann",
        json!({"email": "ANN@example.com", "first_name": "Ann"}),
    )
    .ok();
    s.track("ann", "Signed Up", json!({})).ok();
    s.advance(10);
    let again = s.contact_by_user("ann");
    assert_ne!(again["id"], ann, "a new contact");
    let messages = s.messages("ann");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["status"], "suppressed", "{messages:?}");
    assert!(
        messages[0]["error"].as_str().unwrap().contains("erased"),
        "{messages:?}"
    );
    // Lifting the suppression by its address works as for any other.
    s.admin_delete("/v1/suppressions/email/ann%40example.com", None)
        .ok();
}

#[test]
fn an_erasure_through_a_web_app_session_names_the_session_not_its_id() {
    let s = Server::simulated();
    s.identify("cy", json!({"email": "cy@example.com"})).ok();
    s.settle();
    let cy = s.contact_by_user("cy")["id"].as_i64().unwrap();
    let (cookie, csrf) = sign_in(&s);
    let r = s.send(
        s.request(reqwest::Method::DELETE, &format!("/v1/contacts/{cy}"))
            .header("cookie", &cookie)
            .header("x-waymark-csrf", csrf),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let audit = s.admin_get("/v1/audit").ok();
    let actor = audit["entries"][0]["actor"].as_str().unwrap().to_string();
    assert!(actor.starts_with("session:"), "{actor}");
    let session_id = cookie.split('=').nth(1).unwrap();
    assert!(!audit.to_string().contains(session_id), "{audit}");
}

/// Signs in to the web app: the `name=value` of the session cookie and the CSRF token.
fn sign_in(s: &Server) -> (String, String) {
    let response = reqwest::blocking::Client::new()
        .post(s.url("/v1/session"))
        .json(&json!({"token": ADMIN_TOKEN}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: Value = response.json().unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_string())
}
