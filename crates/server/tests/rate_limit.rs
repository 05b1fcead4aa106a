//! Per-transport send-rate limits (`--email-rate`, `--sms-rate`): messages over the rate stay
//! queued until a token is due on the engine's clock (no real-time sleep with the simulated
//! clock) and are then sent once, without counting a failed attempt.

mod common;
use common::*;

/// Signed Up → SMS → email.
fn journey() -> Value {
    json!({
        "id": "rate-welcome",
        "name": "Rate: welcome",
        "nodes": [
            {"id": "signed-up", "type": "trigger", "event": "Signed Up"},
            {"id": "text", "type": "send_sms", "template": "rate-sms"},
            {"id": "mail", "type": "send_email", "template": "rate-email"}
        ],
        "edges": [
            {"from": "signed-up", "to": "text"},
            {"from": "text", "to": "mail"}
        ],
        "templates": [
            {"id": "rate-sms", "channel": "sms", "body": "Hi {{ contact.first_name }}"},
            {"id": "rate-email", "channel": "email", "subject": "Welcome",
             "text": "Hi {{ contact.first_name }}"}
        ]
    })
}

fn count(messages: &[Value], channel: &str, status: &str) -> usize {
    messages
        .iter()
        .filter(|m| m["channel"] == channel && m["status"] == status)
        .count()
}

#[test]
fn email_rate_limit_defers_messages_without_counting_attempts() {
    let s = Server::start(ServerOptions {
        args: vec!["--email-rate".into(), "2".into()],
        ..Default::default()
    });
    s.apply_journey(journey());
    for i in 0..5 {
        let user = format!("u{i}");
        s.identify(
            &user,
            json!({"email": format!("{user}@example.com"), "phone": format!("+1415555010{i}"),
                   "first_name": "Sam"}),
        )
        .ok();
        s.track(&user, "Signed Up", json!({})).ok();
    }
    s.settle();

    // A burst of one second's worth: two emails now, the other three queued. SMS is unlimited.
    let all = s.messages_where(&[]);
    assert_eq!(count(&all, "sms", "sent"), 5, "{all:#?}");
    assert_eq!(count(&all, "email", "sent"), 2, "{all:#?}");
    assert_eq!(count(&all, "email", "queued"), 3, "{all:#?}");
    for m in all.iter().filter(|m| m["status"] == "queued") {
        assert_eq!(m["attempts"], 0, "deferred, not attempted: {m:#}");
    }

    // Two more a second.
    s.advance(1);
    let sent = count(&s.messages_where(&[]), "email", "sent");
    assert!((3..5).contains(&sent), "after 1 s: {sent} sent");
    s.advance(1);
    let all = s.messages_where(&[]);
    assert_eq!(count(&all, "email", "sent"), 5, "{all:#?}");

    // Each contact got its email exactly once, at the first attempt.
    s.advance(MINUTE);
    let all = s.messages_where(&[]);
    assert_eq!(all.len(), 10, "{all:#?}");
    for i in 0..5 {
        let mine = s.messages(&format!("u{i}"));
        let emails: Vec<_> = mine.iter().filter(|m| m["channel"] == "email").collect();
        assert_eq!(emails.len(), 1, "{mine:#?}");
        assert_eq!(emails[0]["status"], "sent", "{:#}", emails[0]);
        assert_eq!(emails[0]["attempts"], 1, "{:#}", emails[0]);
    }
}

#[test]
fn send_rates_must_be_positive() {
    let out = std::process::Command::new(bin())
        .args(["serve", "--email-rate", "0"])
        .output()
        .expect("run waymark");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a send rate"), "{err}");
}
