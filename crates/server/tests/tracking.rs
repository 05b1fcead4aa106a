//! Open and click tracking (`--public-url`): rewritten links, the open pixel, signed tokens,
//! the events they record and the branch conditions they feed.

mod common;
use common::*;

const PUBLIC: &str = "http://mail.example.test";

fn tracking_server() -> Server {
    Server::start(ServerOptions {
        args: vec!["--public-url".into(), format!("{PUBLIC}/")],
        ..Default::default()
    })
}

/// A journey whose first email has links (and a `tracking: false` sibling), then a branch on
/// whether that first email was clicked.
fn apply_click_journey(s: &Server) {
    s.apply_journey(json!({
        "id": "promo", "name": "Promo",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "hello", "type": "send_email", "template": "promo-hello"},
            {"id": "plain", "type": "send_email", "template": "promo-plain"},
            {"id": "wait", "type": "delay", "duration": "1d"},
            {"id": "clicked", "type": "branch", "condition": {"message": {"node": "hello", "engagement": "clicked"}}},
            {"id": "thanks", "type": "send_email", "template": "promo-thanks"},
            {"id": "reminder", "type": "send_email", "template": "promo-reminder"}
        ],
        "edges": [
            {"from": "start", "to": "hello"}, {"from": "hello", "to": "plain"},
            {"from": "plain", "to": "wait"}, {"from": "wait", "to": "clicked"},
            {"from": "clicked", "to": "thanks", "output": "yes"},
            {"from": "clicked", "to": "reminder", "output": "no"}
        ],
        "templates": [
            {"id": "promo-hello", "channel": "email", "subject": "Our sale",
             "html": "<html><body><p>Hi {{ contact.email }}, see <a href=\"https://shop.example.com/sale?a=1&amp;b=2\">the sale</a> or <a href=\"mailto:help@example.com\">write</a> or <a data-waymark-notrack href=\"https://shop.example.com/account\">your account</a>.</p></body></html>"},
            {"id": "promo-plain", "channel": "email", "subject": "Receipt", "tracking": false,
             "html": "<html><body><a href=\"https://shop.example.com/receipt\">receipt</a></body></html>"},
            {"id": "promo-thanks", "channel": "email", "subject": "Thanks", "text": "thanks"},
            {"id": "promo-reminder", "channel": "email", "subject": "Reminder", "text": "again"}
        ]
    }));
}

fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The server-relative paths (`/t/c/…`, `/t/o/…`) of the tracking URLs of `kind` in `html`.
fn tracking_paths(html: &str, kind: char) -> Vec<String> {
    let prefix = format!("{PUBLIC}/t/{kind}/");
    html.match_indices(&prefix)
        .map(|(at, _)| {
            let token: String = html[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            format!("/t/{kind}/{token}")
        })
        .collect()
}

fn message_of(s: &Server, user: &str, template: &str) -> Value {
    s.messages(user)
        .into_iter()
        .find(|m| m["template"] == template)
        .unwrap_or_else(|| panic!("no `{template}` message for {user}"))
}

fn events_named(s: &Server, user: &str, name: &str) -> Vec<Value> {
    let id = s.contact_by_user(user)["id"].as_i64().unwrap();
    s.timeline(id)
        .into_iter()
        .filter(|e| e["type"] == "event" && e["name"] == name)
        .collect()
}

fn sign_up(s: &Server, users: &[&str]) {
    for user in users {
        s.identify(user, json!({"email": format!("{user}@example.com")}))
            .ok();
        s.track(user, "Signed Up", json!({})).ok();
    }
    s.settle();
}

#[test]
fn clicks_redirect_record_events_and_feed_branches() {
    let s = tracking_server();
    apply_click_journey(&s);
    sign_up(&s, &["clicker", "idle"]);

    let hello = message_of(&s, "clicker", "promo-hello");
    let html = hello["html"].as_str().unwrap();
    let clicks = tracking_paths(html, 'c');
    assert_eq!(clicks.len(), 1, "only the sale link is tracked: {html}");
    assert_eq!(tracking_paths(html, 'o').len(), 1, "one open pixel: {html}");
    assert!(html.contains(r#"href="mailto:help@example.com""#), "{html}");
    assert!(
        html.contains(r#"data-waymark-notrack href="https://shop.example.com/account""#),
        "{html}"
    );
    assert!(!html.contains("https://shop.example.com/sale"), "{html}");
    assert!(
        html.find("/t/o/").unwrap() < html.find("</body>").unwrap(),
        "the pixel goes before </body>: {html}"
    );
    // The text part keeps the original links.
    let text = hello["text"].as_str().unwrap();
    assert!(
        text.contains("https://shop.example.com/sale?a=1&b=2"),
        "{text}"
    );

    // The tracking: false template is not rewritten.
    let plain = message_of(&s, "clicker", "promo-plain");
    let plain_html = plain["html"].as_str().unwrap();
    assert!(
        plain_html.contains(r#"href="https://shop.example.com/receipt""#),
        "{plain_html}"
    );
    assert!(!plain_html.contains(PUBLIC), "{plain_html}");

    // The click redirects to the original URL and records the click (and an open).
    let response = no_redirects().get(s.url(&clicks[0])).send().unwrap();
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        "https://shop.example.com/sale?a=1&b=2"
    );
    s.settle();
    let clicked = events_named(&s, "clicker", "Email Link Clicked");
    assert_eq!(clicked.len(), 1, "{clicked:?}");
    assert_eq!(clicked[0]["properties"]["message_id"], hello["id"]);
    assert_eq!(
        clicked[0]["properties"]["url"],
        "https://shop.example.com/sale?a=1&b=2"
    );
    assert_eq!(events_named(&s, "clicker", "Email Opened").len(), 1);
    let hello = message_of(&s, "clicker", "promo-hello");
    assert!(hello["clicked_at"].is_string(), "{hello}");
    assert!(hello["opened_at"].is_string(), "{hello}");
    assert!(message_of(&s, "idle", "promo-hello")["clicked_at"].is_null());
    // Unique counts per node: one message of two opened and clicked.
    let stats = s.node_stats("promo", "hello");
    assert_eq!(
        (
            stats["sent"].as_i64(),
            stats["opened"].as_i64(),
            stats["clicked"].as_i64()
        ),
        (Some(2), Some(1), Some(1)),
        "{stats}"
    );
    // A second click is another event but not another unique click.
    assert_eq!(
        no_redirects()
            .get(s.url(&clicks[0]))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        302
    );
    s.settle();
    assert_eq!(events_named(&s, "clicker", "Email Link Clicked").len(), 2);
    assert_eq!(events_named(&s, "clicker", "Email Opened").len(), 1);
    let stats = s.node_stats("promo", "hello");
    assert_eq!(
        (stats["opened"].as_i64(), stats["clicked"].as_i64()),
        (Some(1), Some(1)),
        "{stats}"
    );

    // The clicker takes `yes`, the other contact `no`.
    s.advance(DAY);
    assert_eq!(
        templates_of(&s.messages("clicker")),
        ["promo-hello", "promo-plain", "promo-thanks"]
    );
    assert_eq!(
        templates_of(&s.messages("idle")),
        ["promo-hello", "promo-plain", "promo-reminder"]
    );
}

#[test]
fn the_pixel_records_one_open_and_tampered_tokens_get_404() {
    let s = tracking_server();
    apply_click_journey(&s);
    sign_up(&s, &["reader"]);
    let hello = message_of(&s, "reader", "promo-hello");
    let html = hello["html"].as_str().unwrap();
    let pixel = tracking_paths(html, 'o').remove(0);
    let click = tracking_paths(html, 'c').remove(0);

    // Tampered or unknown tokens: 404 JSON, no redirect, nothing recorded.
    let (payload, signature) = click.trim_start_matches("/t/c/").split_once('.').unwrap();
    let mut flipped: Vec<char> = signature.chars().collect();
    flipped[3] = if flipped[3] == 'A' { 'B' } else { 'A' };
    let flipped: String = flipped.into_iter().collect();
    let other_payload = "eyJtIjoieCIsImwiOjAsInUiOiJodHRwczovL2V2aWwuZXhhbXBsZS8ifQ";
    for bad in [
        format!("/t/c/{payload}.{flipped}"),
        format!("/t/c/{other_payload}.{signature}"),
        "/t/c/garbage".to_string(),
        // An open token used as a click, and the other way round.
        pixel.replace("/t/o/", "/t/c/"),
        click.replace("/t/c/", "/t/o/"),
    ] {
        let response = no_redirects().get(s.url(&bad)).send().unwrap();
        assert_eq!(response.status().as_u16(), 404, "{bad}");
        assert!(response.headers().get("location").is_none());
        let body: Value = response.json().unwrap();
        assert_eq!(body["code"], "not_found", "{body}");
    }
    s.settle();
    assert!(events_named(&s, "reader", "Email Opened").is_empty());
    assert!(events_named(&s, "reader", "Email Link Clicked").is_empty());
    assert!(message_of(&s, "reader", "promo-hello")["opened_at"].is_null());

    // The pixel: a GIF that is not cached, recording one open however often it is fetched.
    let response = no_redirects().get(s.url(&pixel)).send().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "image/gif");
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    assert!(response.bytes().unwrap().starts_with(b"GIF89a"));
    s.settle();
    let opened_at = message_of(&s, "reader", "promo-hello")["opened_at"].clone();
    assert!(opened_at.is_string());
    let opened = events_named(&s, "reader", "Email Opened");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["properties"]["message_id"], hello["id"]);

    s.advance(HOUR);
    assert_eq!(s.get(&pixel).status, 200);
    s.settle();
    assert_eq!(
        message_of(&s, "reader", "promo-hello")["opened_at"],
        opened_at
    );
    assert_eq!(events_named(&s, "reader", "Email Opened").len(), 1);
    assert!(message_of(&s, "reader", "promo-hello")["clicked_at"].is_null());
    let stats = s.node_stats("promo", "hello");
    assert_eq!(
        (stats["opened"].as_i64(), stats["clicked"].as_i64()),
        (Some(1), Some(0)),
        "{stats}"
    );
}

/// The admin app asks for messages with `preview=true`: their HTML has no open pixel and its
/// links lead to their destinations, so looking at one records no open and no click.
#[test]
fn a_preview_of_a_sent_email_carries_no_tracking() {
    let s = tracking_server();
    apply_click_journey(&s);
    sign_up(&s, &["ann"]);

    let sent = message_of(&s, "ann", "promo-hello");
    let preview = s.messages_where(&[("user_id", "ann"), ("preview", "true")]);
    let preview = preview
        .iter()
        .find(|m| m["template"] == "promo-hello")
        .unwrap();
    let (sent_html, html) = (
        sent["html"].as_str().unwrap(),
        preview["html"].as_str().unwrap(),
    );
    assert_eq!(tracking_paths(sent_html, 'o').len(), 1, "{sent_html}");
    assert!(!html.contains("/t/o/") && !html.contains("/t/c/"), "{html}");
    assert_eq!(
        html,
        "<html><body><p>Hi ann@example.com, see <a href=\"https://shop.example.com/sale?a=1&amp;b=2\">the sale</a> or <a href=\"mailto:help@example.com\">write</a> or <a data-waymark-notrack href=\"https://shop.example.com/account\">your account</a>.</p></body></html>"
    );
    // Everything else is as listed without `preview`.
    assert_eq!(preview["id"], sent["id"]);
    assert_eq!(preview["subject"], sent["subject"]);

    // Nothing was opened or clicked by looking.
    s.settle();
    assert!(events_named(&s, "ann", "Email Opened").is_empty());
    let stats = s.node_stats("promo", "hello");
    assert_eq!(
        (stats["opened"].as_i64(), stats["clicked"].as_i64()),
        (Some(0), Some(0))
    );
    assert!(message_of(&s, "ann", "promo-hello")["opened_at"].is_null());
}

#[test]
fn without_a_public_url_nothing_is_rewritten() {
    let s = Server::simulated();
    apply_click_journey(&s);
    sign_up(&s, &["u1"]);
    let html = message_of(&s, "u1", "promo-hello")["html"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        html.contains(r#"href="https://shop.example.com/sale?a=1&amp;b=2""#),
        "{html}"
    );
    assert!(!html.contains("/t/o/"), "{html}");
    s.get("/t/o/anything").expect_error(404, "not_found");
}

/// A contact known only by an anonymous id is still credited with its clicks.
#[test]
fn anonymous_contacts_are_credited() {
    let s = tracking_server();
    apply_click_journey(&s);
    s.ingest(
        "/v1/identify",
        json!({"anonymousId": "anon-1", "traits": {"email": "anon@example.com"}}),
    )
    .ok();
    s.ingest(
        "/v1/track",
        json!({"anonymousId": "anon-1", "event": "Signed Up"}),
    )
    .ok();
    s.settle();
    let all = s.messages_where(&[("journey_id", "promo")]);
    let hello = all
        .iter()
        .find(|m| m["template"] == "promo-hello")
        .expect("the first email");
    let click = tracking_paths(hello["html"].as_str().unwrap(), 'c').remove(0);
    let response = no_redirects().get(s.url(&click)).send().unwrap();
    assert_eq!(response.status().as_u16(), 302);
    s.settle();
    let contact = hello["contact_id"].as_i64().unwrap();
    let names: Vec<Value> = s
        .timeline(contact)
        .into_iter()
        .filter(|e| e["type"] == "event")
        .map(|e| e["name"].clone())
        .collect();
    assert!(names.contains(&json!("Email Link Clicked")), "{names:?}");
    let hello = s
        .messages_where(&[("journey_id", "promo")])
        .into_iter()
        .find(|m| m["template"] == "promo-hello")
        .unwrap();
    assert!(hello["clicked_at"].is_string(), "{hello}");
}
