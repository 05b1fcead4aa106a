//! SMS through the generic JSON HTTP provider (`--sms-provider json`): each SMS is one
//! `POST {sms-url}` with a JSON body, an `Idempotency-Key` header and, when the URL carries a
//! password, `Authorization: Bearer PASSWORD`. The endpoint is faked on a std `TcpListener`;
//! the server runs with a simulated clock, so retries are driven by `POST /v1/clock/advance`.

mod common;
use common::*;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "tok/en+1";
/// `TOKEN` as it goes in a URL's user info.
const TOKEN_IN_URL: &str = "tok%2Fen+1";
const FROM: &str = "+14155550111";
const PATH: &str = "/v1/sms/send?region=eu";

/// One request the fake endpoint received.
#[derive(Debug, Clone)]
struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Recipient (`to`) → the statuses and bodies to answer, in order (then 200).
type Script = Mutex<HashMap<String, VecDeque<(u16, String)>>>;

struct FakeJsonSms {
    port: u16,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
    script: Arc<Script>,
}

impl FakeJsonSms {
    fn start() -> FakeJsonSms {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake SMS endpoint");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::default();
        {
            let requests = requests.clone();
            let script = script.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let requests = requests.clone();
                    let script = script.clone();
                    std::thread::spawn(move || serve_one(stream, &requests, &script));
                }
            });
        }
        FakeJsonSms {
            port,
            requests,
            script,
        }
    }

    fn script(&self, to: &str, answers: &[(u16, &str)]) {
        self.script.lock().unwrap().insert(
            to.to_string(),
            answers.iter().map(|(s, b)| (*s, b.to_string())).collect(),
        );
    }

    fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_one(mut stream: TcpStream, requests: &Mutex<Vec<HttpRequest>>, script: &Script) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(format!("not JSON: {}", String::from_utf8_lossy(&body))));
    let to = body["to"].as_str().unwrap_or_default().to_string();
    requests.lock().unwrap().push(HttpRequest {
        method,
        path,
        headers,
        body,
    });
    let (status, answer) = script
        .lock()
        .unwrap()
        .get_mut(&to)
        .and_then(VecDeque::pop_front)
        .unwrap_or_else(|| (200, r#"{"status":"accepted"}"#.to_string()));
    let response = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Signed Up → one SMS.
fn sms_journey() -> Value {
    json!({
        "id": "json-sms",
        "name": "JSON SMS",
        "nodes": [
            {"id": "signed-up", "type": "trigger", "event": "Signed Up"},
            {"id": "text-welcome", "type": "send_sms", "template": "json-sms"}
        ],
        "edges": [{"from": "signed-up", "to": "text-welcome"}],
        "templates": [{
            "id": "json-sms",
            "channel": "sms",
            "body": "Hi {{ contact.first_name }} \"& co\", code {{ event.code }}"
        }]
    })
}

fn json_sms_server(sms_url: String) -> Server {
    Server::start(ServerOptions {
        args: vec![
            "--sms-provider".into(),
            "json".into(),
            "--sms-url".into(),
            sms_url,
            "--sms-from".into(),
            FROM.into(),
        ],
        ..Default::default()
    })
}

#[track_caller]
fn only_message(s: &Server, user: &str) -> Value {
    let all = s.messages(user);
    assert_eq!(all.len(), 1, "expected one message for {user}: {all:#?}");
    all.into_iter().next().unwrap()
}

fn sign_up(s: &Server, user: &str, phone: &str, code: &str) {
    s.identify(user, json!({"phone": phone, "first_name": "Erin"}))
        .ok();
    s.track(user, "Signed Up", json!({"code": code})).ok();
    s.settle();
}

#[track_caller]
fn status(s: &Server, user: &str) -> (String, i64) {
    let m = only_message(s, user);
    (
        m["status"].as_str().unwrap_or_default().to_string(),
        m["attempts"].as_i64().unwrap_or(-1),
    )
}

#[test]
fn json_sms_posts_json_with_bearer_token_and_idempotency_key_and_retries_a_500_after_30_s() {
    let sms = FakeJsonSms::start();
    // The user name is ignored; the password is the bearer token.
    let s = json_sms_server(format!(
        "http://ignored:{TOKEN_IN_URL}@127.0.0.1:{}{PATH}",
        sms.port
    ));
    s.apply_journey(sms_journey());
    let phone = "+14155557654";
    sms.script(phone, &[(500, r#"{"error":"upstream down 7731"}"#)]);
    sign_up(&s, "erin", phone, "X 42");

    let m = only_message(&s, "erin");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("queued"), Some(1)),
        "{m:#}"
    );
    let error = m["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("500") && error.contains("upstream down 7731"),
        "error: {error}"
    );
    assert_eq!(sms.requests().len(), 1);

    s.advance(29);
    assert_eq!(status(&s, "erin"), ("queued".into(), 1));
    assert_eq!(sms.requests().len(), 1, "no retry before 30 s");
    // The retry comes 30 s after the failure, plus up to 20 % jitter.
    s.advance(7);
    assert_eq!(status(&s, "erin"), ("sent".into(), 2));
    s.advance(HOUR);
    assert_eq!(status(&s, "erin"), ("sent".into(), 2));

    let m = only_message(&s, "erin");
    let key = m["idempotency_key"].as_str().expect("idempotency_key");
    let requests = sms.requests();
    assert_eq!(
        requests.len(),
        2,
        "one failed and one successful request: {requests:#?}"
    );
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, PATH, "the URL's path and query are kept");
        assert!(
            r.header("Content-Type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{r:?}"
        );
        assert_eq!(
            r.header("Authorization"),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{r:?}"
        );
        assert_eq!(r.header("Idempotency-Key"), Some(key), "{r:?}");
        assert_eq!(
            r.body,
            json!({
                "to": phone,
                "from": FROM,
                "body": "Hi Erin \"& co\", code X 42",
                "idempotency_key": key,
                "message_id": m["id"],
            }),
            "{r:?}"
        );
    }
    assert_eq!(s.node_stats("json-sms", "text-welcome")["sent"], 1);
}

#[test]
fn json_sms_400_fails_at_once_and_no_credentials_send_no_authorization() {
    let sms = FakeJsonSms::start();
    let s = json_sms_server(format!("http://127.0.0.1:{}{PATH}", sms.port));
    s.apply_journey(sms_journey());
    let phone = "+14155559990";
    sms.script(phone, &[(400, r#"{"error":"invalid number 21211"}"#)]);
    sign_up(&s, "finn", phone, "1");

    let m = only_message(&s, "finn");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("failed"), Some(1)),
        "{m:#}"
    );
    let error = m["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("400") && error.contains("invalid number 21211"),
        "error: {error}"
    );
    assert!(!error.contains("gave up"), "error: {error}");
    assert_eq!(m["next_attempt_at"], Value::Null);

    s.advance(HOUR);
    assert_eq!(status(&s, "finn"), ("failed".into(), 1));
    let requests = sms.requests();
    assert_eq!(requests.len(), 1, "no retry after a 400: {requests:#?}");
    assert_eq!(
        requests[0].header("Authorization"),
        None,
        "{:?}",
        requests[0]
    );
    assert_eq!(s.node_stats("json-sms", "text-welcome")["failed"], 1);
}
