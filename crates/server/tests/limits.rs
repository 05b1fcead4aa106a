//! Hardening: nothing a request sends can crash the process or store what cannot be read back
//! (depth limits on conditions, journeys, segments and templates, in the API and the CLI), a
//! stored row that cannot be read is reported and skipped while everything else runs on, and
//! an engine that cannot make progress says so on `/healthz`.

mod common;

use std::process::Command;

use common::*;

/// `n` parenthesised levels around one comparison, in the text form.
fn nested_text(n: usize) -> String {
    format!("{}plan = \"pro\"{}", "(".repeat(n), ")".repeat(n))
}

/// `n` levels of `{"all": [...]}` around one comparison, in the JSON form.
fn nested_json(n: usize) -> Value {
    let mut c = json!({"traits": {"plan": "pro"}});
    for _ in 0..n {
        c = json!({ "all": [c] });
    }
    c
}

/// A journey whose branch has this condition.
fn journey_with_condition(id: &str, condition: Value) -> Value {
    json!({
        "id": id,
        "name": id,
        "templates": [{"id": format!("{id}-mail"), "channel": "email", "subject": "Hi", "text": "Hi"}],
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "pick", "type": "branch", "condition": condition},
            {"id": "mail", "type": "send_email", "template": format!("{id}-mail")},
            {"id": "end", "type": "exit"}
        ],
        "edges": [
            {"from": "start", "to": "pick"},
            {"from": "pick", "to": "mail", "output": "yes"},
            {"from": "pick", "to": "end", "output": "no"},
            {"from": "mail", "to": "end"}
        ]
    })
}

fn plain_journey(id: &str) -> Value {
    json!({
        "id": id,
        "name": id,
        "templates": [{"id": format!("{id}-mail"), "channel": "email", "subject": "Hi {{ contact.first_name }}", "text": "Welcome"}],
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "mail", "type": "send_email", "template": format!("{id}-mail")},
            {"id": "end", "type": "exit"}
        ],
        "edges": [{"from": "start", "to": "mail"}, {"from": "mail", "to": "end"}]
    })
}

fn error_text(body: &Value) -> String {
    body.to_string()
}

#[test]
fn deep_conditions_are_refused_at_the_edge_and_the_server_still_starts() {
    let mut s = Server::simulated();

    // Text form, 62 levels (accepted and then unreadable before the limit).
    let doc = journey_with_condition("deep-text", json!(nested_text(62)));
    let saved = s.admin_put("/v1/journeys/deep-text", doc).ok();
    assert_eq!(saved["valid"], false, "{saved}");
    assert!(
        error_text(&saved["errors"]).contains("at most 32 levels"),
        "{saved}"
    );
    let refused = s.admin_post("/v1/journeys/deep-text/publish", json!({}));
    assert!(
        (400..500).contains(&refused.status),
        "publish: {}",
        refused.text
    );

    // JSON form, 40 levels: within the request parser's limit, beyond the language's.
    let doc = journey_with_condition("deep-json", nested_json(40));
    let saved = s.admin_put("/v1/journeys/deep-json", doc).ok();
    assert_eq!(saved["valid"], false, "{saved}");
    let errors = error_text(&saved["errors"]);
    assert!(errors.contains("too_deep"), "{saved}");
    assert!(errors.contains("condition"), "names the field: {saved}");

    // A value nested deep inside a node's settings (stored deeper than it is sent).
    let mut value = json!(1);
    for _ in 0..110 {
        value = json!([value]);
    }
    let mut doc = plain_journey("deep-value");
    doc["nodes"][1] = json!({"id": "mail", "type": "update_traits", "traits": {"x": value}});
    let saved = s.admin_put("/v1/journeys/deep-value", doc);
    assert!(
        saved.status == 400 || saved.json["valid"] == false,
        "{}",
        saved.text
    );

    // A condition at the limit still works.
    let doc = journey_with_condition("fine", json!(nested_text(30)));
    let saved = s.admin_put("/v1/journeys/fine", doc).ok();
    assert_eq!(saved["valid"], true, "{saved}");
    s.admin_post("/v1/journeys/fine/publish", json!({})).ok();

    // Segments: the text form with 150 `not`s and the JSON form, refused with a clear 400.
    let deep_not = format!("{}plan = \"pro\"", "not ".repeat(150));
    let body = s
        .admin_post("/v1/segments", json!({"id": "deep", "text": deep_not}))
        .expect_error(400, "invalid_condition");
    assert!(error_text(&body).contains("32 levels"), "{body}");
    let body = s
        .admin_post(
            "/v1/segments",
            json!({"id": "deep", "condition": nested_json(40)}),
        )
        .expect_error(400, "invalid_condition");
    assert!(error_text(&body).contains("too_deep"), "{body}");
    assert_eq!(s.admin_get("/v1/segments/deep").status, 404, "not stored");

    // Previews that used to overflow the stack and abort the process.
    for text in [
        nested_text(2_000),
        format!("{}plan = \"pro\"", "not ".repeat(2_000)),
        format!("plan in {}1{}", "[".repeat(100_000), "]".repeat(100_000)),
    ] {
        let r = s.admin_post("/v1/segments/preview", json!({ "text": text }));
        assert_eq!(r.status, 400, "{}", r.text);
    }

    // Templates: Liquid blocks and MJML elements nested beyond the parsers' stack.
    let deep_liquid = format!(
        "{}x{}",
        "{% if a %}".repeat(1_000),
        "{% endif %}".repeat(1_000)
    );
    let r = s.admin_post(
        "/v1/templates",
        json!({"id": "deep-liquid", "channel": "email", "subject": "Hi", "html": deep_liquid}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("32 levels"), "{}", r.text);
    let deep_mjml = format!(
        "<mjml><mj-body>{}{}</mj-body></mjml>",
        "<mj-wrapper>".repeat(300),
        "</mj-wrapper>".repeat(300)
    );
    let r = s.admin_post(
        "/v1/templates",
        json!({"id": "deep-mjml", "channel": "email", "subject": "Hi", "mjml": deep_mjml}),
    );
    assert_eq!(r.status, 400, "{}", r.text);

    assert!(s.is_running(), "the process survived every request");
    s.restart();
    assert_eq!(s.get("/healthz").ok()["status"], "ok");
    s.identify("ann", json!({"email": "ann@example.com", "plan": "pro"}))
        .ok();
    s.track("ann", "Signed Up", json!({})).ok();
    s.settle();
    assert_eq!(s.messages("ann").len(), 1, "the journey at the limit runs");
}

/// Tags that close nothing in Liquid (an `end` inside `raw`, or ignored inside a comment, or
/// inside a quoted string) used to hide the nesting from the depth check, and the Liquid
/// parser then overflowed the stack (found while writing the template_render fuzz target).
#[test]
fn liquid_nesting_cannot_hide_behind_tags_that_close_nothing() {
    let mut s = Server::simulated();
    for (i, unit) in [
        "{% if a %}{% raw %}{% endif %}{% endraw %}",
        "{% if a %}{% comment %}{% endif %}{% endcomment %}",
        "{% if a == \"%}{% endif %}\" %}",
    ]
    .into_iter()
    .enumerate()
    {
        let html = format!("{}x{}", unit.repeat(5_000), "{% endif %}".repeat(5_000));
        let r = s.admin_post(
            "/v1/templates",
            json!({"id": format!("hidden-{i}"), "channel": "email", "subject": "Hi", "html": html}),
        );
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("32 levels"), "{}", r.text);
    }
    assert!(s.is_running(), "the process survived every request");
}

#[test]
fn the_cli_refuses_a_deep_journey_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.json");
    let doc = journey_with_condition("deep-file", json!(nested_text(62)));
    std::fs::write(&path, doc.to_string()).unwrap();
    let out = Command::new(bin())
        .args(["journeys", "validate", path.to_str().unwrap()])
        .output()
        .expect("run waymark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("at most 32 levels"), "{stdout}");
}

fn database(s: &Server) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(s.data_dir().join("waymark.db")).expect("open db");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

/// JSON nested deeper than any JSON reader accepts by default.
fn unreadable_json() -> String {
    format!("{}1{}", "[".repeat(300), "]".repeat(300))
}

#[test]
fn a_stored_row_that_cannot_be_read_is_reported_and_skipped() {
    let mut s = Server::simulated();
    s.apply_journey(plain_journey("good"));
    s.apply_journey(plain_journey("bad"));
    s.admin_post(
        "/v1/segments",
        json!({"id": "pros", "text": "plan = \"pro\""}),
    )
    .ok();
    s.admin_post(
        "/v1/segments",
        json!({"id": "spoiled", "text": "plan = \"basic\""}),
    )
    .ok();
    s.terminate();

    // Rows an older version (or a disk) left behind that cannot be read any more.
    {
        let db = database(&s);
        db.execute(
            "UPDATE journey_versions SET document = ?1 WHERE journey_id = 'bad'",
            [unreadable_json()],
        )
        .unwrap();
        db.execute(
            "UPDATE segments SET condition = ?1 WHERE id = 'spoiled'",
            [unreadable_json()],
        )
        .unwrap();
    }
    s.restart();

    let health = s.get("/healthz").ok();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["broken"], 2, "{health}");
    let problems = s.admin_get("/v1/problems").ok();
    let broken = problems["broken"].as_array().unwrap();
    assert!(
        broken
            .iter()
            .any(|b| b["kind"] == "journey" && b["id"] == "bad" && b["version"] == 1),
        "{problems}"
    );
    assert!(
        broken
            .iter()
            .any(|b| b["kind"] == "segment" && b["id"] == "spoiled"),
        "{problems}"
    );
    assert!(
        s.admin_get("/v1/journeys/bad").ok()["broken"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be read")
    );
    assert!(s.admin_get("/v1/journeys/good").ok()["broken"] == json!([]));
    let spoiled = s.admin_get("/v1/segments/spoiled").ok();
    assert!(spoiled["broken"].is_string(), "{spoiled}");

    // Everything else runs on: the good journey sends, the good segment is kept current.
    s.identify("ann", json!({"email": "ann@example.com", "plan": "pro"}))
        .ok();
    s.track("ann", "Signed Up", json!({})).ok();
    s.settle();
    let sent = s.messages("ann");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["journey_id"], "good");
    assert_eq!(s.admin_get("/v1/segments/pros").ok()["members"], 1);
    let metrics = s.get("/metrics").text;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("waymark_broken_definitions{kind=\"journey\"} 1")),
        "{metrics}"
    );
    assert!(
        s.wait_for_output("stored definition cannot be used"),
        "logged"
    );
}

#[test]
fn an_engine_that_cannot_make_progress_says_so_and_recovers() {
    let s = Server::simulated();
    s.apply_journey(plain_journey("welcome"));
    assert_eq!(s.get("/healthz").ok()["status"], "ok");
    // The engine's progress is recorded once before the trigger below exists: the first
    // record is an insert, which the trigger would not stop (and a round that took both
    // events below at once would then never fail).
    s.identify("ann", json!({"email": "ann@example.com"})).ok();
    s.settle();

    // Every round of engine work now fails when it records its progress.
    database(&s)
        .execute_batch(
            "CREATE TRIGGER stall BEFORE UPDATE ON meta WHEN NEW.key = 'processed_seq' \
             BEGIN SELECT RAISE(ABORT, 'the disk says no'); END;",
        )
        .unwrap();
    s.track("ann", "Signed Up", json!({})).ok();
    // Up to 30 s: on a loaded machine the engine's first round may come late.
    let mut health = s.get("/healthz");
    for _ in 0..300 {
        if health.status == 503 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        health = s.get("/healthz");
    }
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.json["status"], "stalled");
    assert!(
        health.json["engine"]["error"]
            .as_str()
            .unwrap()
            .contains("the disk says no"),
        "{}",
        health.text
    );
    assert!(s.get("/metrics").text.contains("waymark_engine_stalled 1"));
    assert!(s.wait_for_output("engine round failed"), "logged");

    // Once the cause is gone the engine catches up: nothing accepted was lost.
    database(&s).execute_batch("DROP TRIGGER stall;").unwrap();
    let mut health = s.get("/healthz");
    for _ in 0..100 {
        if health.status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        health = s.get("/healthz");
    }
    assert_eq!(health.json["status"], "ok", "{}", health.text);
    s.settle();
    assert_eq!(s.messages("ann").len(), 1);
}
