//! Journey versions pin their templates: editing a template makes a new template version,
//! contacts already on a journey version receive the copy that version was published with,
//! and publishing again pins the new copy for those who enter after.

mod common;
use common::*;

fn gift_template(text: &str) -> Value {
    json!({"id": "gift", "channel": "email", "subject": "Your gift", "text": text})
}

fn gift_journey() -> Value {
    json!({
        "id": "gift", "name": "Gift",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "wait", "type": "delay", "duration": "1d"},
            {"id": "send", "type": "send_email", "template": "gift"}
        ],
        "edges": [{"from": "start", "to": "wait"}, {"from": "wait", "to": "send"}]
    })
}

fn sign_up(s: &Server, user: &str) {
    s.identify(user, json!({"email": format!("{user}@example.com")}));
    s.track(user, "Signed Up", json!({}));
    s.settle();
}

#[test]
fn contacts_finish_on_the_template_copy_of_the_version_they_entered() {
    let s = Server::simulated();
    let created = s
        .admin_put(
            "/v1/templates/gift",
            gift_template("A gift is waiting for you."),
        )
        .expect(201);
    assert_eq!(created["version"], 1, "{created}");
    assert_eq!(s.apply_journey(gift_journey())["live_version"], 1);
    let v1 = s.admin_get("/v1/journeys/gift/versions/1").ok();
    assert_eq!(v1["templates"], json!({"gift": 1}), "{v1}");
    sign_up(&s, "ann");

    // Saving the same copy again makes no version; a change does.
    let same = s
        .admin_put(
            "/v1/templates/gift",
            gift_template("A gift is waiting for you."),
        )
        .expect(200);
    assert_eq!(same["version"], 1, "{same}");
    let edited = s
        .admin_put("/v1/templates/gift", gift_template("Thanks for joining."))
        .expect(200);
    assert_eq!(edited["version"], 2, "{edited}");

    // The live version still pins version 1; publishing again makes journey version 2 with
    // the new copy (not `unchanged`, although the document is the same).
    let republished = s.admin_post("/v1/journeys/gift/publish", json!({})).ok();
    assert_eq!(republished["unchanged"], false, "{republished}");
    assert_eq!(republished["live_version"], 2, "{republished}");
    let v2 = s.admin_get("/v1/journeys/gift/versions/2").ok();
    assert_eq!(v2["templates"], json!({"gift": 2}), "{v2}");
    let again = s.admin_post("/v1/journeys/gift/publish", json!({})).ok();
    assert_eq!(again["unchanged"], true, "{again}");
    sign_up(&s, "bob");

    let history = s.admin_get("/v1/templates/gift/versions").ok();
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{history:#}");
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(
        versions[0]["pinned_by"],
        json!([{"journey_id": "gift", "version": 2}]),
        "{history:#}"
    );
    assert_eq!(
        versions[1]["pinned_by"],
        json!([{"journey_id": "gift", "version": 1}]),
        "{history:#}"
    );
    let old = s.admin_get("/v1/templates/gift/versions/1").ok();
    assert_eq!(old["text"], "A gift is waiting for you.", "{old}");
    assert_eq!(old["version"], 1, "{old}");

    // Even a deleted template keeps sending the copy its journey versions pinned.
    s.admin_delete("/v1/templates/gift", None).expect(204);
    s.advance(86_400 + 60);
    let text_to = |user: &str| {
        let messages = s.messages(user);
        assert_eq!(messages.len(), 1, "{user}: {messages:#?}");
        assert_eq!(messages[0]["status"], "sent", "{:#}", messages[0]);
        messages[0]["text"].as_str().unwrap().to_string()
    };
    assert!(text_to("ann").contains("A gift is waiting for you."));
    assert!(text_to("bob").contains("Thanks for joining."));
    s.admin_get("/v1/templates/gift/versions/2").ok();
    s.admin_get("/v1/templates/gift/versions/3").expect(404);
    s.admin_get("/v1/templates/gift/versions/x").expect(400);
}
