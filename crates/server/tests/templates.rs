//! Email content through the API: MJML templates, template errors with line and column when a
//! template is saved, the preview (with a generated text part) and test sends through the outbox.

mod common;
use common::*;

const WELCOME_MJML: &str = r#"<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text>Hello {{ contact.first_name | default: "friend" }}, welcome to {{ event.plan }}.</mj-text>
        <mj-button href="https://example.com/start">Get started</mj-button>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"#;

fn mjml_template(id: &str) -> Value {
    json!({
        "id": id,
        "channel": "email",
        "subject": "Welcome, {{ contact.first_name }}",
        "mjml": WELCOME_MJML,
    })
}

#[test]
fn mjml_template_is_saved_and_previewed_with_a_text_part() {
    let s = Server::simulated();
    let saved = s
        .admin_put("/v1/templates/welcome", mjml_template("welcome"))
        .expect(201);
    assert_eq!(saved["mjml"], WELCOME_MJML, "{saved}");

    // Sample data.
    let p = s
        .admin_post(
            "/v1/templates/welcome/preview",
            json!({"contact": {"first_name": "Ann"}, "event": {"plan": "Pro"}}),
        )
        .ok();
    assert_eq!(p["subject"], "Welcome, Ann");
    let html = p["html"].as_str().expect("html");
    assert!(html.contains("Hello Ann, welcome to Pro."), "{html}");
    assert!(!html.contains("<mj-"), "{html}");
    let text = p["text"].as_str().expect("a generated text part");
    assert!(text.contains("Hello Ann, welcome to Pro."), "{text}");
    assert!(text.contains("https://example.com/start"), "{text}");

    // A stored contact.
    s.identify("u1", json!({"email": "bo@example.com", "first_name": "Bo"}))
        .ok();
    s.settle();
    let c = s.contact_by_user("u1");
    let id = c["contact"]["id"]
        .as_i64()
        .or(c["id"].as_i64())
        .expect("contact id");
    let p = s
        .admin_post("/v1/templates/welcome/preview", json!({"contact_id": id}))
        .ok();
    assert_eq!(p["subject"], "Welcome, Bo");
    assert!(
        p["text"]
            .as_str()
            .unwrap()
            .contains("Hello Bo, welcome to ."),
        "{p}"
    );

    // MJML and HTML together are refused.
    let mut both = mjml_template("both");
    both["html"] = json!("<p>x</p>");
    let err = s.admin_post("/v1/templates", both).expect(400);
    assert_eq!(err["code"], "invalid_template", "{err}");
}

#[test]
fn template_errors_are_reported_with_line_and_column_when_saved() {
    let s = Server::simulated();
    let err = s
        .admin_post(
            "/v1/templates",
            json!({
                "id": "broken",
                "channel": "email",
                "subject": "Hi",
                "html": "<p>Hello</p>\n<p>{{ contact.first_name </p>\n",
            }),
        )
        .expect(400);
    assert_eq!(err["code"], "invalid_template", "{err}");
    let e = &err["errors"][0];
    assert_eq!(e["field"], "html", "{err}");
    assert_eq!(e["line"], 2, "{err}");
    assert!(e["column"].as_u64().is_some_and(|c| c > 1), "{err}");
    // Nothing was stored.
    s.admin_get("/v1/templates/broken").expect(404);

    // Bad MJML, on PUT.
    let err = s
        .admin_put(
            "/v1/templates/bad-mjml",
            json!({
                "id": "bad-mjml",
                "channel": "email",
                "subject": "Hi",
                "mjml": "<mjml>\n  <mj-body>\n    <mj-image src=\"{{ contact.avatar }}\" width=></mj-image>\n  </mj-body>\n</mjml>",
            }),
        )
        .expect(400);
    let e = &err["errors"][0];
    assert_eq!(e["field"], "mjml", "{err}");
    assert_eq!(e["line"], 3, "{err}");
    assert!(e["column"].is_u64(), "{err}");

    // The same checks apply to templates shipped inside a journey.
    let journey = json!({
        "id": "with-bad-template",
        "name": "With a bad template",
        "templates": [{
            "id": "shipped",
            "channel": "email",
            "subject": "Hi",
            "html": "ok\n{% if contact.vip %}VIP",
        }],
        "nodes": [],
        "edges": [],
    });
    let err = s.admin_post("/v1/journeys", journey).expect(400);
    let e = &err["errors"][0];
    assert_eq!(e["field"], "html", "{err}");
    assert_eq!(
        (e["line"].clone(), e["column"].clone()),
        (json!(2), json!(1)),
        "{err}"
    );
}

#[test]
fn test_send_queues_a_message_that_is_delivered() {
    let s = Server::simulated();
    s.admin_put("/v1/templates/welcome", mjml_template("welcome"))
        .expect(201);
    let r = s
        .admin_post(
            "/v1/templates/welcome/test-send",
            json!({
                "to": "Tester@Example.com",
                "contact": {"first_name": "Cy"},
                "event": {"plan": "Team"},
            }),
        )
        .expect(202);
    assert_eq!(r["status"], "queued", "{r}");
    assert_eq!(r["subject"], "Welcome, Cy", "{r}");
    s.settle();
    let all = s.messages_where(&[("channel", "email")]);
    assert_eq!(all.len(), 1, "{all:#?}");
    let m = &all[0];
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(m["recipient"], "tester@example.com", "{m}");
    assert_eq!(m["subject"], "Welcome, Cy", "{m}");
    assert_eq!(m["template"], "welcome", "{m}");
    assert!(m["journey_id"].is_null(), "{m}");
    assert!(
        m["html"]
            .as_str()
            .is_some_and(|h| h.contains("Hello Cy, welcome to Team.")),
        "{m}"
    );
    assert!(
        m["text"]
            .as_str()
            .is_some_and(|t| t.contains("Hello Cy, welcome to Team.")),
        "{m}"
    );
    assert!(
        m["idempotency_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("test-send:")),
        "{m}"
    );
}

#[test]
fn test_send_needs_a_valid_address() {
    let s = Server::simulated();
    s.admin_put("/v1/templates/welcome", mjml_template("welcome"))
        .expect(201);
    for body in [
        json!({"to": "not an address"}),
        json!({"to": "nobody@"}),
        json!({}),
    ] {
        let err = s
            .admin_post("/v1/templates/welcome/test-send", body.clone())
            .expect(400);
        assert_eq!(err["field"], "to", "{body}: {err}");
    }
    s.admin_post(
        "/v1/templates/missing/test-send",
        json!({"to": "a@example.com"}),
    )
    .expect(404);
    s.settle();
    assert!(s.messages_where(&[]).is_empty());
}

/// A test send goes through the send gate like any message: an address on the suppression list
/// (a hard bounce, a complaint) is recorded `suppressed` with the reason, and nothing leaves.
#[test]
fn test_send_to_a_suppressed_address_is_held_back() {
    let s = Server::simulated();
    s.admin_put("/v1/templates/welcome", mjml_template("welcome"))
        .expect(201);
    s.admin_post(
        "/v1/suppressions",
        json!({"channel": "email", "address": "bounced@example.com", "reason": "hard_bounce"}),
    )
    .expect(201);
    let r = s
        .admin_post(
            "/v1/templates/welcome/test-send",
            json!({"to": "Bounced@Example.com", "contact": {"first_name": "Cy"}}),
        )
        .expect(202);
    assert_eq!(r["status"], "suppressed", "{r}");
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("suppressed") && e.contains("bounce")),
        "{r}"
    );
    s.settle();
    let all = s.messages_where(&[("channel", "email")]);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["status"], "suppressed", "{:#}", all[0]);
}
