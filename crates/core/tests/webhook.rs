//! The `webhook` node: its settings, the effect the stepper emits and its validation.

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use waymark_core::journey::{WebhookMethod, WebhookNode};
use waymark_core::validate::parse_and_validate;
use waymark_core::{Effect, Enrollment, EnrollmentStatus, Input, Journey, NodeKind, step};

use waymark_core::stepper::TraitsOnly as NoFacts;

fn doc(webhook: Value) -> Value {
    let mut node = json!({"id": "hook", "type": "webhook"});
    for (k, v) in webhook.as_object().unwrap() {
        node[k] = v.clone();
    }
    json!({
        "id": "j", "name": "J",
        "nodes": [
            {"id": "t", "type": "trigger", "event": "Signed Up"},
            node,
            {"id": "after", "type": "update_traits", "set": {"notified": true}}
        ],
        "edges": [{"from": "t", "to": "hook"}, {"from": "hook", "to": "after"}]
    })
}

fn codes(v: Value) -> Vec<(&'static str, Option<String>, Option<String>)> {
    match parse_and_validate(&v, None) {
        Ok(_) => vec![],
        Err(errs) => errs
            .into_iter()
            .map(|e| (e.code, e.node, e.field))
            .collect(),
    }
}

fn enrollment() -> Enrollment {
    Enrollment {
        id: 42,
        journey_id: "j".into(),
        version: 1,
        contact_id: 7,
        key: None,
        node: "t".into(),
        status: EnrollmentStatus::Active,
        wake_at: None,
        entered_at: Timestamp::from_second(1_700_000_000).unwrap(),
        entered_seq: 1,
        consumed_seq: 0,
        visits: 0,
    }
}

#[test]
fn settings_have_defaults() {
    let d = parse_and_validate(&doc(json!({"url": "https://crm.example.com/hook"})), None)
        .expect("valid");
    let NodeKind::Webhook(w) = &d.nodes[1].kind else {
        panic!("not a webhook: {:?}", d.nodes[1]);
    };
    assert_eq!(w.method, WebhookMethod::Post);
    assert!(w.headers.is_empty());
    assert_eq!(w.body, None);
    assert_eq!(w.timeout_text(), "10s");
    assert_eq!(d.nodes[1].kind.type_name(), "webhook");
    assert_eq!(d.nodes[1].kind.outputs(), &["next"]);
    assert!(!d.nodes[1].kind.waits());
}

#[test]
fn the_step_emits_a_webhook_effect_and_moves_on() {
    let settings = json!({
        "url": "https://crm.example.com/hook", "method": "PUT",
        "headers": {"Authorization": "Bearer abc"},
        "body": "{\"email\": {{ contact.email | json }}}", "timeout": "5s"
    });
    let document = parse_and_validate(&doc(settings), None).expect("valid");
    let journey = Journey::compile(document).expect("compiles");
    let facts = NoFacts(Map::new());
    let now = Timestamp::from_second(1_700_000_100).unwrap();
    let outcome = step(&journey, &enrollment(), Input::Enter, now, &facts).expect("steps");
    assert_eq!(outcome.enrollment.status, EnrollmentStatus::Completed);
    let expected = WebhookNode {
        url: "https://crm.example.com/hook".into(),
        method: WebhookMethod::Put,
        headers: [("Authorization".to_string(), "Bearer abc".to_string())].into(),
        body: Some("{\"email\": {{ contact.email | json }}}".into()),
        timeout: Some("5s".into()),
    };
    assert_eq!(
        outcome.effects,
        vec![
            Effect::Webhook {
                node: "hook".into(),
                webhook: expected,
                idempotency_key: "42:hook:2".into(),
            },
            Effect::SetTraits(json!({"notified": true}).as_object().unwrap().clone()),
        ]
    );
}

#[test]
fn urls_must_parse_and_be_http_or_https() {
    for bad in [
        "not a url",
        "ftp://example.com/x",
        "file:///etc/passwd",
        "https://user:pw@example.com/",
        "",
    ] {
        let found = codes(doc(json!({ "url": bad })));
        assert!(
            found.contains(&("invalid_url", Some("hook".into()), Some("url".into()))),
            "{bad:?}: {found:?}"
        );
    }
    for good in [
        "http://example.com",
        "https://example.com:8443/a?b=c",
        "http://127.0.0.1:9/x",
    ] {
        assert_eq!(codes(doc(json!({ "url": good }))), vec![], "{good}");
    }
}

#[test]
fn method_timeout_headers_and_body_are_checked() {
    let found = codes(doc(json!({"url": "https://x.example", "method": "DELETE"})));
    assert_eq!(
        found.first().map(|f| f.0),
        Some("invalid_node"),
        "{found:?}"
    );

    for timeout in ["soon", "0s", "2m"] {
        let found = codes(doc(json!({"url": "https://x.example", "timeout": timeout})));
        assert!(
            found.contains(&(
                "invalid_duration",
                Some("hook".into()),
                Some("timeout".into())
            )),
            "{timeout}: {found:?}"
        );
    }
    for name in ["X-Waymark-Signature", "Content-Type", "bad header"] {
        let found = codes(doc(
            json!({"url": "https://x.example", "headers": {name: "v"}}),
        ));
        assert!(
            found.contains(&(
                "invalid_header",
                Some("hook".into()),
                Some(format!("headers.{name}"))
            )),
            "{name}: {found:?}"
        );
    }
    let found = codes(doc(
        json!({"url": "https://x.example", "headers": {"X-Ok": "a\r\nInjected: 1"}}),
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "invalid_header");
    let found = codes(doc(json!({"url": "https://x.example", "body": "  "})));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "required");
}
