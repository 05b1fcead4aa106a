//! Consent: subscription topics, the one-click unsubscribe (RFC 8058), the preference page,
//! double opt-in, and the management API for subscriptions.

mod common;
use common::*;
use reqwest::Method;

const PUBLIC: &str = "http://mail.example.test";

fn consent_server() -> Server {
    Server::start(ServerOptions {
        args: vec![
            "--public-url".into(),
            format!("{PUBLIC}/"),
            "--subscribe-redirect-host".into(),
            "example.com".into(),
        ],
        ..Default::default()
    })
}

/// `news-1` (topic news), a day later `news-2` (topic news), `promo` (topic promo) and
/// `receipt` (transactional).
fn apply_news_journey(s: &Server, trigger: &str) {
    s.apply_journey(json!({
        "id": "news", "name": "News",
        "nodes": [
            {"id": "start", "type": "trigger", "event": trigger},
            {"id": "first", "type": "send_email", "template": "news-1"},
            {"id": "wait", "type": "delay", "duration": "1d"},
            {"id": "second", "type": "send_email", "template": "news-2"},
            {"id": "promo", "type": "send_email", "template": "promo"},
            {"id": "receipt", "type": "send_email", "template": "receipt"}
        ],
        "edges": [
            {"from": "start", "to": "first"}, {"from": "first", "to": "wait"},
            {"from": "wait", "to": "second"}, {"from": "second", "to": "promo"},
            {"from": "promo", "to": "receipt"}
        ],
        "templates": [
            {"id": "news-1", "channel": "email", "subject": "News 1", "topic": "news",
             "html": "<html><body><p>News</p><a href=\"{{ unsubscribe_url }}\" data-waymark-notrack>unsubscribe</a></body></html>"},
            {"id": "news-2", "channel": "email", "subject": "News 2", "topic": "news", "text": "more news"},
            {"id": "promo", "channel": "email", "subject": "Promo", "topic": "promo", "text": "buy"},
            {"id": "receipt", "channel": "email", "subject": "Receipt", "transactional": true, "text": "thanks"}
        ]
    }));
}

fn message_of(messages: &[Value], template: &str) -> Value {
    messages
        .iter()
        .find(|m| m["template"] == template)
        .cloned()
        .unwrap_or_else(|| panic!("no `{template}` message in {messages:?}"))
}

/// The server-relative path of a public URL.
fn path_of(url: &str) -> String {
    url.strip_prefix(PUBLIC)
        .unwrap_or_else(|| panic!("`{url}` is not under {PUBLIC}"))
        .to_string()
}

/// Enrols `user` and returns the unsubscribe path of the first (marketing) email.
fn enrol(s: &Server, user: &str) -> (i64, String) {
    s.identify(user, json!({"email": format!("{user}@example.com")}))
        .ok();
    s.track(user, "Signed Up", json!({})).ok();
    s.settle();
    let first = message_of(&s.messages(user), "news-1");
    assert_eq!(first["status"], "sent", "{first}");
    let url = first["unsubscribe_url"].as_str().expect("unsubscribe_url");
    assert!(url.starts_with(&format!("{PUBLIC}/u/")), "{url}");
    // The Liquid variable carries the same link into the body.
    assert!(first["html"].as_str().unwrap().contains(url));
    let id = s.contact_by_user(user)["id"].as_i64().unwrap();
    (id, path_of(url))
}

#[test]
fn one_click_unsubscribe_suppresses_the_next_marketing_email_but_not_transactional() {
    let s = consent_server();
    apply_news_journey(&s, "Signed Up");
    let (contact, unsubscribe) = enrol(&s, "ann");

    let r = s.form_post(&unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!(r.status, 200, "{}", r.text);
    s.settle();
    assert_eq!(
        s.subscription_status(contact, "news").as_deref(),
        Some("unsubscribed")
    );
    let events = s.events_named(contact, "Unsubscribed");
    assert_eq!(events.len(), 1, "{events:?}");

    s.advance(DAY);
    s.settle();
    let messages = s.messages("ann");
    let second = message_of(&messages, "news-2");
    assert_eq!(second["status"], "suppressed", "{second}");
    assert!(
        second["error"].as_str().unwrap().contains("news"),
        "{second}"
    );
    // Another topic and transactional messages still go.
    assert_eq!(message_of(&messages, "promo")["status"], "sent");
    let receipt = message_of(&messages, "receipt");
    assert_eq!(receipt["status"], "sent");
    assert!(receipt["unsubscribe_url"].is_null(), "{receipt}");
}

#[test]
fn preference_page_renders_and_its_forms_change_subscriptions() {
    let s = consent_server();
    apply_news_journey(&s, "Signed Up");
    let (contact, page) = enrol(&s, "bob");

    let r = s.get(&page);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.content_type.as_deref().unwrap().starts_with("text/html"));
    assert!(r.text.contains("data-topic=\"news\""), "{}", r.text);
    assert!(r.text.contains("data-topic=\"promo\""), "{}", r.text);
    assert!(r.text.contains(&format!("action=\"{page}\"")), "{}", r.text);

    // Unsubscribe from all marketing, then resubscribe to news.
    let r = s.form_post(&page, "action=unsubscribe_all&topic=*");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.subscription_status(contact, "*").as_deref(),
        Some("unsubscribed")
    );
    let r = s.form_post(&page, "action=resubscribe&topic=news");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("subscribed to news again"), "{}", r.text);
    assert_eq!(
        s.subscription_status(contact, "news").as_deref(),
        Some("subscribed")
    );
    assert_eq!(
        s.subscription_status(contact, "*").as_deref(),
        Some("subscribed")
    );
    s.settle();
    assert_eq!(s.events_named(contact, "Unsubscribed").len(), 1);
    assert!(!s.events_named(contact, "Subscribed").is_empty());

    s.advance(DAY);
    s.settle();
    assert_eq!(message_of(&s.messages("bob"), "news-2")["status"], "sent");

    // A bad action is refused.
    let r = s.form_post(&page, "action=nonsense");
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn tampered_or_foreign_tokens_get_404() {
    let s = consent_server();
    apply_news_journey(&s, "Signed Up");
    let (_, page) = enrol(&s, "eve");
    let mut tampered = page.clone();
    let at = tampered.len() - 3;
    let c = if &tampered[at..at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(at..at + 1, c);
    assert_eq!(s.get(&tampered).status, 404);
    assert_eq!(
        s.form_post(&tampered, "List-Unsubscribe=One-Click").status,
        404
    );
    assert_eq!(s.get("/u/not-a-token").status, 404);
    // An unsubscribe token is no confirmation token, and the other way round.
    let token = page.trim_start_matches("/u/");
    assert_eq!(s.get(&format!("/confirm/{token}")).status, 404);
    assert_eq!(s.get("/confirm/x.y").status, 404);
    // Nothing changed.
    let contact = s.contact_by_user("eve")["id"].as_i64().unwrap();
    assert_eq!(s.subscription_status(contact, "news"), None);
}

#[test]
fn double_opt_in_end_to_end() {
    let s = consent_server();
    apply_news_journey(&s, "Newsletter Started");

    // A plain HTML form post, no key.
    let r = s.form_post(
        "/v1/subscribe",
        "email=Carol%40example.com&topic=news&name=Carol",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Check your inbox"), "{}", r.text);
    s.settle();

    let all = s.messages_where(&[("channel", "email")]);
    let confirmation = message_of(&all, "double-opt-in");
    assert_eq!(confirmation["recipient"], "carol@example.com");
    assert!(confirmation["unsubscribe_url"].is_null());
    let text = confirmation["text"].as_str().unwrap();
    assert!(text.contains("Carol"), "{text}");
    let prefix = format!("{PUBLIC}/confirm/");
    let at = text.find(&prefix).expect("confirm link") + PUBLIC.len();
    let confirm: String = text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let contact = confirmation["contact_id"].as_i64().unwrap();
    assert_eq!(
        s.subscription_status(contact, "news").as_deref(),
        Some("pending")
    );

    // Before confirming, marketing on that topic is suppressed.
    let anonymous = "subscribe:carol@example.com";
    s.ingest(
        "/v1/track",
        json!({"anonymousId": anonymous, "event": "Newsletter Started"}),
    )
    .ok();
    s.settle();
    let mine = s.messages_where(&[("contact_id", &contact.to_string())]);
    let first = message_of(&mine, "news-1");
    assert_eq!(first["status"], "suppressed", "{first}");
    assert!(
        first["error"].as_str().unwrap().contains("pending"),
        "{first}"
    );

    // Opening the link (as a link scanner would) changes nothing; its button confirms.
    let r = s.get(&confirm);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("<form method=\"post\""), "{}", r.text);
    assert_eq!(
        s.subscription_status(contact, "news").as_deref(),
        Some("pending")
    );
    let r = s.form_post(&confirm, "");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("confirmed"), "{}", r.text);
    s.settle();
    assert_eq!(
        s.subscription_status(contact, "news").as_deref(),
        Some("subscribed")
    );
    assert_eq!(s.events_named(contact, "Subscription Confirmed").len(), 1);

    s.advance(DAY);
    s.settle();
    let mine = s.messages_where(&[("contact_id", &contact.to_string())]);
    assert_eq!(message_of(&mine, "news-2")["status"], "sent");

    // Subscribing again once confirmed sends no second confirmation; a redirect is honoured.
    let no_redirects = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = s.send(
        no_redirects
            .post(s.url("/v1/subscribe"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                "email=carol%40example.com&topic=news&redirect=https%3A%2F%2Fexample.com%2Fthanks",
            ),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let confirmations = s
        .messages_where(&[("channel", "email")])
        .into_iter()
        .filter(|m| m["template"] == "double-opt-in")
        .count();
    assert_eq!(confirmations, 1);
}

#[test]
fn subscribe_with_the_write_key_and_the_subscriptions_api() {
    let s = consent_server();
    apply_news_journey(&s, "Signed Up");

    // JSON needs the write key.
    let r = s.send(
        s.request(Method::POST, "/v1/subscribe")
            .json(&json!({"email": "dan@example.com"})),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    let r = s.ingest("/v1/subscribe", json!({"email": "not an address"}));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s.ingest("/v1/subscribe", json!({"email": "dan@example.com"}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["status"], "pending");
    assert_eq!(r.json["topic"], "*");
    let contact = r.json["contact_id"].as_i64().unwrap();

    let topics = s.admin_get("/v1/topics").ok();
    let names: Vec<&str> = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["news", "promo"], "{topics}");

    let r = s.admin_put(
        &format!("/v1/contacts/{contact}/subscriptions/email/news"),
        json!({"status": "unsubscribed"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.subscription_status(contact, "news").as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(
        s.subscription_status(contact, "*").as_deref(),
        Some("pending")
    );
    let r = s.admin_put(
        &format!("/v1/contacts/{contact}/subscriptions/email/news"),
        json!({"status": "maybe"}),
    );
    assert_eq!(r.status, 400);
    // An admin's reason is recorded with the change's event, on the timeline.
    let r = s.admin_put(
        &format!("/v1/contacts/{contact}/subscriptions/email/news"),
        json!({"status": "subscribed", "reason": "  asked at the counter "}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    s.settle();
    let event = s
        .timeline(contact)
        .into_iter()
        .rfind(|e| e["name"] == "Subscribed")
        .expect("a Subscribed event");
    assert_eq!(event["properties"]["reason"], "asked at the counter");
    assert_eq!(event["properties"]["topic"], "news");
    for reason in [json!(""), json!("x".repeat(501)), json!("two\nlines")] {
        let r = s.admin_put(
            &format!("/v1/contacts/{contact}/subscriptions/email/news"),
            json!({"status": "unsubscribed", "reason": reason}),
        );
        assert_eq!(r.status, 400, "{reason}");
        assert_eq!(r.json["field"], "reason");
    }
    let r = s.admin_put(
        &format!("/v1/contacts/{contact}/subscriptions/fax/news"),
        json!({"status": "subscribed"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(s.admin_get("/v1/contacts/999999/subscriptions").status, 404);
}

/// Sends `t-news` (topic news), `t-any` (no topic) and `t-tx` (transactional) on `Go`.
fn apply_mix_journey(s: &Server) {
    s.apply_journey(json!({
        "id": "mix", "name": "Mix",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Go"},
            {"id": "news", "type": "send_email", "template": "t-news"},
            {"id": "any", "type": "send_email", "template": "t-any"},
            {"id": "tx", "type": "send_email", "template": "t-tx"}
        ],
        "edges": [
            {"from": "start", "to": "news"}, {"from": "news", "to": "any"},
            {"from": "any", "to": "tx"}
        ],
        "templates": [
            {"id": "t-news", "channel": "email", "subject": "News", "topic": "news", "text": "news"},
            {"id": "t-any", "channel": "email", "subject": "Any", "text": "any"},
            {"id": "t-tx", "channel": "email", "subject": "Receipt", "transactional": true, "text": "tx"}
        ]
    }));
}

/// The confirmation link of the latest confirmation email to `email`, as a path.
fn confirmation_path(s: &Server, email: &str) -> Option<String> {
    let confirmation = s
        .messages_where(&[("channel", "email")])
        .into_iter()
        .rfind(|m| m["template"] == "double-opt-in" && m["recipient"] == email)?;
    let text = confirmation["text"].as_str().unwrap();
    let prefix = format!("{PUBLIC}/confirm/");
    let at = text.find(&prefix).expect("confirm link") + PUBLIC.len();
    Some(
        text[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect(),
    )
}

/// The confirmation email goes through the send gate: an address on the suppression list gets
/// none (recorded `suppressed`), and the subscription stays pending.
#[test]
fn no_confirmation_email_to_a_suppressed_address() {
    let s = consent_server();
    s.admin_post(
        "/v1/suppressions",
        json!({"channel": "email", "address": "gone@example.com", "reason": "complaint"}),
    )
    .expect(201);
    let r = s.ingest("/v1/subscribe", json!({"email": "gone@example.com"}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["status"], "pending", "{}", r.text);
    let contact = r.json["contact_id"].as_i64().unwrap();
    s.settle();
    let confirmations: Vec<Value> = s
        .messages_where(&[("channel", "email")])
        .into_iter()
        .filter(|m| m["template"] == "double-opt-in")
        .collect();
    assert_eq!(confirmations.len(), 1, "{confirmations:#?}");
    assert_eq!(
        confirmations[0]["status"], "suppressed",
        "{:#}",
        confirmations[0]
    );
    assert_eq!(
        s.subscription_status(contact, "*").as_deref(),
        Some("pending")
    );
    assert!(confirmations[0]["text"].is_null(), "{:#}", confirmations[0]);
}

/// Every row of the consent table in docs/api.md: where the contact came from and what it did,
/// against a template with topic `news`, one without topic and a transactional one.
#[test]
fn the_consent_table_holds_row_by_row() {
    let s = consent_server();
    apply_mix_journey(&s);
    let put = |contact: i64, topic: &str, status: &str| {
        s.admin_put(
            &format!("/v1/contacts/{contact}/subscriptions/email/{topic}"),
            json!({ "status": status }),
        )
        .ok();
    };
    let identified = |name: &str| -> i64 {
        s.identify(name, json!({"email": format!("{name}@example.com")}))
            .ok();
        s.settle();
        s.contact_by_user(name)["id"].as_i64().unwrap()
    };
    let form = |name: &str, topic: Option<&str>| {
        let topic = topic.map(|t| format!("&topic={t}")).unwrap_or_default();
        let r = s.form_post(
            "/v1/subscribe",
            &format!("email={name}%40example.com{topic}"),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        s.settle();
    };
    let confirm = |name: &str| {
        let path = confirmation_path(&s, &format!("{name}@example.com")).expect("confirmation");
        assert_eq!(s.form_post(&path, "").status, 200);
        s.settle();
    };
    // (name, how the contact came about) → expected (news, no topic, transactional).
    type Setup<'a> = Box<dyn Fn(&str) + 'a>;
    let rows: Vec<(&str, Setup, [&str; 3], bool)> = vec![
        (
            "a-none",
            Box::new(|n| {
                identified(n);
            }),
            ["sent", "sent", "sent"],
            false,
        ),
        (
            "b-news-out",
            Box::new(|n| put(identified(n), "news", "unsubscribed")),
            ["suppressed", "sent", "sent"],
            false,
        ),
        (
            "c-all-out",
            Box::new(|n| put(identified(n), "*", "unsubscribed")),
            ["suppressed", "suppressed", "sent"],
            false,
        ),
        (
            "d-all-out-news-in",
            Box::new(|n| {
                let c = identified(n);
                put(c, "*", "unsubscribed");
                put(c, "news", "subscribed");
            }),
            ["suppressed", "suppressed", "sent"],
            false,
        ),
        (
            "e-known-form",
            Box::new(|n| {
                identified(n);
                form(n, Some("news"));
            }),
            ["sent", "sent", "sent"],
            false,
        ),
        (
            "f-news-out-form",
            Box::new(|n| {
                put(identified(n), "news", "unsubscribed");
                form(n, Some("news"));
            }),
            ["suppressed", "sent", "sent"],
            true,
        ),
        (
            "g-form-news",
            Box::new(|n| form(n, Some("news"))),
            ["suppressed", "suppressed", "sent"],
            true,
        ),
        (
            "h-form-news-confirmed",
            Box::new(|n| {
                form(n, Some("news"));
                confirm(n);
            }),
            ["sent", "suppressed", "sent"],
            true,
        ),
        (
            "i-form-all",
            Box::new(|n| form(n, None)),
            ["suppressed", "suppressed", "sent"],
            true,
        ),
        (
            "j-form-all-confirmed",
            Box::new(|n| {
                form(n, None);
                confirm(n);
            }),
            ["sent", "sent", "sent"],
            true,
        ),
    ];
    for (name, setup, expected, confirmation_sent) in rows {
        setup(name);
        let email = format!("{name}@example.com");
        assert_eq!(
            confirmation_path(&s, &email).is_some(),
            confirmation_sent,
            "{name}: confirmation email"
        );
        // Identified contacts have a user id; form contacts only the form's anonymous id.
        let event = match s.find_contact_by_user(name) {
            Some(_) => json!({"userId": name, "event": "Go"}),
            None => json!({"anonymousId": format!("subscribe:{email}"), "event": "Go"}),
        };
        s.ingest("/v1/track", event).ok();
        s.settle();
        let contact = s.admin_get(&format!("/v1/contacts?email={email}")).ok()["contacts"][0]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("{name}: no contact"));
        let mine = s.messages_where(&[("contact_id", &contact.to_string())]);
        let got = ["t-news", "t-any", "t-tx"]
            .map(|t| message_of(&mine, t)["status"].as_str().unwrap().to_string());
        assert_eq!(got, expected.map(String::from), "{name}: {mine:?}");
    }
}

#[test]
fn the_keyless_form_escapes_what_it_is_sent_and_is_rate_limited() {
    let s = Server::start(ServerOptions {
        args: vec![
            "--public-url".into(),
            format!("{PUBLIC}/"),
            "--public-rate".into(),
            "8/1h".into(),
        ],
        ..Default::default()
    });
    let r = s.form_post("/v1/subscribe",
        "email=victim%40example.com&name=%3Ca+href%3D%22https%3A%2F%2Fevil.example%22%3EClaim+your+prize%3C%2Fa%3E&topic=%3Cb%3Edeals%3C%2Fb%3E",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    s.settle();
    let confirmation = message_of(&s.messages_where(&[("channel", "email")]), "double-opt-in");
    let html = confirmation["html"].as_str().unwrap();
    assert!(!html.contains("<a href=\"https://evil"), "{html}");
    assert!(!html.contains("<b>deals"), "{html}");
    assert!(
        html.contains("&lt;a href=&quot;https://evil.example&quot;&gt;"),
        "{html}"
    );

    // At most 3 confirmation emails an hour to one address, whoever asks.
    let mut refused = 0;
    for _ in 0..5 {
        let r = s.form_post("/v1/subscribe", "email=victim%40example.com");
        if r.status == 429 {
            refused += 1;
            assert_eq!(r.json["code"], "rate_limited");
        }
    }
    s.settle();
    let confirmations = s
        .messages_where(&[("channel", "email")])
        .into_iter()
        .filter(|m| m["template"] == "double-opt-in")
        .count();
    assert_eq!(confirmations, 3);
    assert_eq!(refused, 3);

    // Per client address: the 9th keyless request in the hour is refused, with Retry-After.
    let mut last = s.form_post("/v1/subscribe", "email=other%40example.com");
    for _ in 0..3 {
        last = s.get("/confirm/not-a-token");
    }
    assert_eq!(last.status, 429, "{}", last.text);
    let r = s.send(s.request(Method::GET, "/confirm/not-a-token"));
    assert_eq!(r.status, 429);
    // The admin API is not limited.
    assert_eq!(s.admin_get("/v1/topics").status, 200);
}

#[test]
fn public_pages_cannot_be_framed_or_redirect_anywhere() {
    let s = consent_server();
    let r = s.form_post("/v1/subscribe", "email=fay%40example.com");
    assert_eq!(r.status, 200);
    assert!(r.text.contains("Check your inbox"), "{}", r.text);
    let headers = reqwest::blocking::Client::new()
        .post(s.url("/v1/subscribe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=gus%40example.com")
        .send()
        .unwrap();
    let h = headers.headers();
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    // `redirect` only to the public URL's host and the allowed ones.
    for (target, status) in [
        ("https%3A%2F%2Fevil.example%2Fphish", 400),
        ("https%3A%2F%2Fexample.com%2Fthanks", 303),
        ("http%3A%2F%2Fmail.example.test%2Fthanks", 303),
        ("javascript%3Aalert(1)", 400),
    ] {
        let no_redirects = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = s.send(
            no_redirects
                .post(s.url("/v1/subscribe"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("email=hal%40example.com&redirect={target}")),
        );
        assert_eq!(r.status, status, "{target}: {}", r.text);
    }
}

/// A visitor known only by an anonymous id gets a newsletter, unsubscribes from all of it,
/// and later logs in as a user who already has a contact: the two contacts merge, and the
/// opt-out goes with the person, so the journey emails of either contact are suppressed.
#[test]
fn an_unsubscribe_before_logging_in_survives_the_merge_into_the_known_user() {
    let s = consent_server();
    apply_news_journey(&s, "Signed Up");
    let (ann, _) = enrol(&s, "ann");

    let anonymous = |path: &str, body: Value| {
        let mut body = body;
        body["anonymousId"] = json!("web-1");
        let r = s.ingest(path, body);
        assert!(r.status < 300, "{}", r.text);
    };
    anonymous(
        "/v1/identify",
        json!({"traits": {"email": "ann.home@example.com"}}),
    );
    anonymous("/v1/track", json!({"event": "Signed Up"}));
    s.settle();
    let to_visitor: Vec<Value> = s
        .messages_where(&[("channel", "email")])
        .into_iter()
        .filter(|m| m["recipient"] == "ann.home@example.com")
        .collect();
    let first = message_of(&to_visitor, "news-1");
    assert_eq!(first["status"], "sent", "{first}");
    let visitor = first["contact_id"].as_i64().unwrap();
    assert_ne!(visitor, ann);
    let page = path_of(first["unsubscribe_url"].as_str().unwrap());
    let r = s.form_post(&page, "action=unsubscribe_all&topic=*");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.subscription_status(visitor, "*").as_deref(),
        Some("unsubscribed")
    );

    // Logging in: the visitor's contact merges into ann's.
    let r = s.ingest(
        "/v1/identify",
        json!({"userId": "ann", "anonymousId": "web-1", "traits": {}}),
    );
    assert!(r.status < 300, "{}", r.text);
    s.settle();
    assert_eq!(s.admin_get(&format!("/v1/contacts/{visitor}")).status, 404);
    assert_eq!(
        s.subscription_status(ann, "*").as_deref(),
        Some("unsubscribed")
    );

    // Both enrollments (ann's and the visitor's, now ann's) reach their next emails.
    s.advance(DAY);
    s.settle();
    let messages = s.messages("ann");
    let marketing: Vec<&Value> = messages
        .iter()
        .filter(|m| m["template"] == "news-2" || m["template"] == "promo")
        .collect();
    assert_eq!(marketing.len(), 4, "{messages:?}");
    for m in marketing {
        assert_eq!(m["status"], "suppressed", "{m}");
        assert!(
            m["error"].as_str().unwrap().contains("all marketing"),
            "{m}"
        );
    }
    // Transactional messages still go.
    assert!(
        messages
            .iter()
            .filter(|m| m["template"] == "receipt")
            .all(|m| m["status"] == "sent"),
        "{messages:?}"
    );
}
