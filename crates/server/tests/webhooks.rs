//! The `webhook` journey action end to end: a tiny HTTP receiver on 127.0.0.1 gets the signed
//! JSON body; 5xx answers are retried with the outbox backoff; loopback (an address, or a name
//! that resolves to one) is refused without the allow-list; a body that is not JSON fails the
//! message.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "test-webhook-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    /// Lower-cased names.
    headers: BTreeMap<String, String>,
    body: String,
}

/// An HTTP/1.1 receiver answering each request with the next scripted status (then 200).
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(script: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let Some(request) = read_request(&mut reader) else {
                    continue;
                };
                log.lock().unwrap().push(Received {
                    method: request.method,
                    path: request.path,
                    headers: request.headers,
                    body: request.body,
                });
                let status = statuses.lock().unwrap().pop_front().unwrap_or(200);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                stream.write_all(answer.as_bytes()).ok();
                stream.flush().ok();
            }
        });
        Receiver { port, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn server(allow: Option<&Receiver>) -> Server {
    let mut opts = ServerOptions::default();
    opts.env
        .push(("WAYMARK_WEBHOOK_SECRET".into(), SECRET.into()));
    if let Some(r) = allow {
        opts.args.push("--webhook-allow-host".into());
        opts.args.push(format!("127.0.0.1:{}", r.port));
    }
    Server::start(opts)
}

fn journey(id: &str, webhook: Value) -> Value {
    let mut node = json!({"id": "notify", "type": "webhook"});
    for (k, v) in webhook.as_object().unwrap() {
        node[k] = v.clone();
    }
    json!({
        "id": id, "name": "Notify the CRM",
        "nodes": [{"id": "start", "type": "trigger", "event": "Signed Up"}, node],
        "edges": [{"from": "start", "to": "notify"}]
    })
}

fn webhook_messages(s: &Server, user: &str) -> Vec<Value> {
    s.messages(user)
        .into_iter()
        .filter(|m| m["channel"] == "webhook")
        .collect()
}

/// Waits (real time) until the receiver has seen `n` requests; the dispatcher runs in the
/// background after a step.
fn wait_for(r: &Receiver, n: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = r.received();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_webhook_arrives_signed_with_the_rendered_body() {
    let r = Receiver::start(&[]);
    let s = server(Some(&r));
    s.apply_journey(journey(
        "crm",
        json!({
            "url": r.url("/hooks/crm"),
            "method": "PUT",
            "headers": {"Authorization": "Bearer crm-token"},
            "body": "{\"email\": {{ contact.email | json }}, \"plan\": {{ event.plan | json }}, \"journey\": \"{{ journey.id }}\"}"
        }),
    ));
    s.identify("u1", json!({"email": "ada\"quote@example.com"}))
        .ok();
    s.track("u1", "Signed Up", json!({"plan": "pro"})).ok();
    s.settle();
    let got = wait_for(&r, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    let req = &got[0];
    assert_eq!(req.method, "PUT");
    assert_eq!(req.path, "/hooks/crm");
    let body: Value = serde_json::from_str(&req.body).expect("JSON body");
    assert_eq!(
        body,
        json!({"email": "ada\"quote@example.com", "plan": "pro", "journey": "crm"})
    );
    assert_eq!(req.headers["x-waymark-signature"], sign(&req.body));
    assert_eq!(req.headers["authorization"], "Bearer crm-token");
    assert_eq!(req.headers["content-type"], "application/json");
    let messages = webhook_messages(&s, "u1");
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(
        req.headers["x-waymark-idempotency-key"],
        m["idempotency_key"].as_str().unwrap()
    );
    assert_eq!(m["recipient"], r.url("/hooks/crm"));
    assert_eq!(m["subject"], "PUT");
    // The dispatcher records the outcome right after the call.
    s.settle();
    let m = &webhook_messages(&s, "u1")[0];
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(s.node_stats("crm", "notify")["entered"], 1);
}

#[test]
fn the_default_body_has_contact_event_and_journey() {
    let r = Receiver::start(&[]);
    let s = server(Some(&r));
    s.apply_journey(journey("plain", json!({"url": r.url("/")})));
    s.identify("u2", json!({"email": "u2@example.com", "name": "Bo"}))
        .ok();
    s.track("u2", "Signed Up", json!({"source": "ad"})).ok();
    s.settle();
    let got = wait_for(&r, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["contact"]["email"], "u2@example.com");
    assert_eq!(body["contact"]["name"], "Bo");
    assert_eq!(body["event"]["name"], "Signed Up");
    assert_eq!(body["event"]["source"], "ad");
    assert_eq!(body["journey"]["id"], "plain");
    assert_eq!(got[0].headers["x-waymark-signature"], sign(&got[0].body));
}

#[test]
fn a_server_error_is_retried_after_30_seconds_and_delivered_once() {
    let r = Receiver::start(&[500]);
    let s = server(Some(&r));
    s.apply_journey(journey("retry", json!({"url": r.url("/h")})));
    s.identify("u3", json!({"email": "u3@example.com"})).ok();
    s.track("u3", "Signed Up", json!({})).ok();
    s.settle();
    assert_eq!(wait_for(&r, 1).len(), 1);
    s.settle();
    let m = &webhook_messages(&s, "u3")[0];
    assert_eq!(m["status"], "queued", "{m}");
    assert_eq!(m["attempts"], 1, "{m}");
    assert!(
        m["error"].as_str().unwrap_or_default().contains("500"),
        "{m}"
    );
    // Not yet due.
    s.advance(29);
    assert_eq!(r.received().len(), 1);
    // Due 30 s after the failure, plus up to 20 % jitter.
    s.advance(7);
    let got = wait_for(&r, 2);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(
        got[0].headers["x-waymark-idempotency-key"],
        got[1].headers["x-waymark-idempotency-key"]
    );
    s.advance(HOUR);
    let m = &webhook_messages(&s, "u3")[0];
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(r.received().len(), 2, "delivered more than once");
}

#[test]
fn loopback_is_refused_without_the_allow_list() {
    let r = Receiver::start(&[]);
    let s = server(None);
    s.apply_journey(journey("ssrf", json!({"url": r.url("/internal")})));
    s.identify("u4", json!({"email": "u4@example.com"})).ok();
    s.track("u4", "Signed Up", json!({})).ok();
    s.settle();
    s.advance(HOUR);
    let messages = webhook_messages(&s, "u4");
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["status"], "failed", "{m}");
    let error = m["error"].as_str().unwrap();
    assert!(error.contains("127.0.0.1"), "{error}");
    assert!(error.contains("loopback"), "{error}");
    assert_eq!(m["attempts"], 1, "a refused URL is not retried: {m}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(r.received().is_empty(), "{:?}", r.received());
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_by_the_clients_resolver() {
    let r = Receiver::start(&[]);
    let s = server(None);
    let url = format!("http://localhost:{}/internal", r.port);
    s.apply_journey(journey("ssrf-name", json!({ "url": url })));
    s.identify("u6", json!({"email": "u6@example.com"})).ok();
    s.track("u6", "Signed Up", json!({})).ok();
    s.settle();
    let messages = webhook_messages(&s, "u6");
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["status"], "failed", "{m}");
    let error = m["error"].as_str().unwrap();
    assert!(
        error.starts_with("refused: `localhost` resolves to") && error.contains("loopback"),
        "{error}"
    );
    assert_eq!(m["attempts"], 1, "a refused host is not retried: {m}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(r.received().is_empty(), "{:?}", r.received());
}

#[test]
fn a_body_that_is_not_json_fails_the_message() {
    let r = Receiver::start(&[]);
    let s = server(Some(&r));
    s.apply_journey(journey(
        "broken",
        json!({"url": r.url("/h"), "body": "{\"email\": {{ contact.email }}}"}),
    ));
    s.identify("u5", json!({"email": "u5@example.com"})).ok();
    s.track("u5", "Signed Up", json!({})).ok();
    s.settle();
    s.advance(HOUR);
    let m = &webhook_messages(&s, "u5")[0];
    assert_eq!(m["status"], "failed", "{m}");
    assert!(
        m["error"].as_str().unwrap().contains("not valid JSON"),
        "{m}"
    );
    assert_eq!(s.node_stats("broken", "notify")["failed"], 1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(r.received().is_empty());
}

#[test]
fn an_invalid_url_is_a_validation_error() {
    let s = server(None);
    let answer = s
        .admin_put(
            "/v1/journeys/bad",
            journey("bad", json!({"url": "ftp://example.com/x"})),
        )
        .ok();
    assert_eq!(answer["valid"], false, "{answer}");
    let errors = answer["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["code"] == "invalid_url" && e["node"] == "notify"),
        "{answer}"
    );
    let schema = s.get("/v1/schema/journey.json").ok().to_string();
    assert!(
        schema.contains("\"webhook\""),
        "the schema lacks the webhook node"
    );
}
