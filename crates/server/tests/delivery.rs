//! Delivery through real transports: email to a real SMTP server (aiosmtpd, run by
//! `tests/py/smtp_sink.py` with the Python of `WAYMARK_TEST_PYTHON`) and SMS to a fake
//! Twilio-compatible endpoint served by this file. The server runs with a simulated clock, so
//! retries (30 s · 2^attempt up to 1 h, plus up to 20 % jitter, for the retry lifetime) are
//! driven by `POST /v1/clock/advance`.

mod common;
use common::*;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// The SMTP sink (a real aiosmtpd server)
// ---------------------------------------------------------------------------------------------

/// `tests/py/smtp_sink.py` running on a free port, writing what it receives to a temporary
/// directory. Killed when dropped.
struct SmtpSink {
    child: Child,
    /// Kept open: the sink exits when its standard input closes.
    _stdin: ChildStdin,
    port: u16,
    dir: tempfile::TempDir,
}

/// One message the sink received (accepted or answered 451).
#[derive(Debug, Clone)]
struct Received {
    mail_from: String,
    rcpt_tos: Vec<String>,
    data: String,
}

impl SmtpSink {
    /// Starts the sink; panics (fails the test) with the reason when it cannot start.
    fn start() -> SmtpSink {
        SmtpSink::start_with(&[])
    }

    /// Starts the sink with extra options (`--starttls-auth`).
    fn start_with(options: &[&str]) -> SmtpSink {
        SmtpSink::start_on(0, options)
    }

    /// Starts the sink on this port (0: any free port).
    fn start_on(port: u16, options: &[&str]) -> SmtpSink {
        let python = std::env::var("WAYMARK_TEST_PYTHON").unwrap_or_else(|_| {
            panic!(
                "WAYMARK_TEST_PYTHON is not set: it must name a Python that has \
                 tests/py/requirements.txt installed (aiosmtpd), e.g. \
                 `python3 -m venv tests/py/.venv && tests/py/.venv/bin/pip install -r \
                 tests/py/requirements.txt`, then WAYMARK_TEST_PYTHON=$PWD/tests/py/.venv/bin/python"
            )
        });
        let script = repo_root().join("tests/py/smtp_sink.py");
        let dir = tempfile::Builder::new()
            .prefix("waymark-smtp-sink-")
            .tempdir()
            .expect("temporary directory for the SMTP sink");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.path())
            .args(options)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the SMTP sink `{python} {}`: {e}",
                    script.display()
                )
            });
        let stdin = child.stdin.take().expect("sink stdin");
        let stdout = child.stdout.take().expect("sink stdout");
        let mut stderr = child.stderr.take().expect("sink stderr");
        let errors = Arc::new(Mutex::new(String::new()));
        {
            let errors = errors.clone();
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = stderr.read_to_string(&mut s);
                errors.lock().unwrap().push_str(&s);
            });
        }
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line
                .strip_prefix("ready ")
                .and_then(|p| p.trim().parse::<u16>().ok())
                .unwrap_or_else(|| {
                    panic!("the SMTP sink printed `{line}` instead of `ready PORT`")
                }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "the SMTP sink (`{python} {}`) did not become ready (exit status {status:?}); \
                     is aiosmtpd installed (tests/py/requirements.txt)? stderr:\n{}",
                    script.display(),
                    errors.lock().unwrap()
                );
            }
        };
        SmtpSink {
            child,
            _stdin: stdin,
            port,
            dir,
        }
    }

    /// `smtp://127.0.0.1:PORT`: lettre's URL for plain, unencrypted SMTP (no `tls` parameter).
    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn read(&self, prefix: &str) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("sink directory")
            .map(|e| e.expect("directory entry").path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                name.starts_with(prefix) && name.ends_with(".json")
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                Received {
                    mail_from: v["mail_from"].as_str().unwrap().to_string(),
                    rcpt_tos: v["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_string())
                        .collect(),
                    data: v["data"].as_str().unwrap().to_string(),
                }
            })
            .collect()
    }

    /// Messages the sink accepted (250 after DATA), in order.
    fn accepted(&self) -> Vec<Received> {
        self.read("accepted-")
    }

    /// Copies the sink answered `451` after DATA, in order.
    fn rejected(&self) -> Vec<Received> {
        self.read("rejected-")
    }

    /// Every `RCPT TO` the sink saw, in order.
    fn rcpts(&self) -> Vec<String> {
        match std::fs::read_to_string(self.dir.path().join("rcpt.log")) {
            Ok(s) => s.lines().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Every AUTH the sink saw (`--starttls-auth`): `MECHANISM LOGIN tls|plaintext`.
    fn auths(&self) -> Vec<String> {
        match std::fs::read_to_string(self.dir.path().join("auth.log")) {
            Ok(s) => s.lines().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn rcpt_count(&self, address: &str) -> usize {
        self.rcpts().iter().filter(|r| *r == address).count()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal MIME reader (enough for what lettre writes)
// ---------------------------------------------------------------------------------------------

/// Headers (unfolded, in order) and the body of a message or a MIME part.
struct Mime {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mime {
    fn parse(raw: &str) -> Mime {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Mime {
            headers,
            body: body.to_string(),
        }
    }

    /// Every value of a header (case-insensitive name).
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The only value of a header; panics when it is missing or repeated.
    #[track_caller]
    fn header(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(
            all.len(),
            1,
            "expected exactly one `{name}` header, found {all:?} in {:?}",
            self.headers
        );
        all[0]
    }

    /// The body with its transfer encoding undone (7bit, 8bit or quoted-printable).
    fn decoded_body(&self) -> String {
        let encoding = self
            .all("Content-Transfer-Encoding")
            .first()
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_else(|| "7bit".into());
        match encoding.as_str() {
            "7bit" | "8bit" => self.body.clone(),
            "quoted-printable" => decode_quoted_printable(&self.body),
            other => panic!("unexpected Content-Transfer-Encoding `{other}`"),
        }
    }

    /// The parts of a multipart body.
    #[track_caller]
    fn parts(&self) -> Vec<Mime> {
        let ct = self.header("Content-Type");
        let boundary = ct
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("boundary="))
            .unwrap_or_else(|| panic!("no boundary in `{ct}`"))
            .trim_matches('"')
            .to_string();
        let delimiter = format!("--{boundary}");
        let mut parts = Vec::new();
        for chunk in self.body.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk.strip_prefix('\n').unwrap_or(chunk);
            let chunk = chunk.strip_suffix('\n').unwrap_or(chunk);
            parts.push(Mime::parse(chunk));
        }
        parts
    }
}

fn decode_quoted_printable(s: &str) -> String {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let Some(hex) = s.get(i + 1..i + 3)
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 body")
}

// ---------------------------------------------------------------------------------------------
// The fake Twilio-compatible SMS endpoint
// ---------------------------------------------------------------------------------------------

const SMS_SID: &str = "AC123";
const SMS_TOKEN: &str = "secret-token";
/// base64("AC123:secret-token")
const SMS_BASIC_AUTH: &str = "Basic QUMxMjM6c2VjcmV0LXRva2Vu";
const SMS_FROM: &str = "+14155550111";
const SMS_PATH: &str = "/2010-04-01/Accounts/AC123/Messages.json";

/// One request the fake endpoint received.
#[derive(Debug, Clone)]
struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    form: Vec<(String, String)>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Recipient (`To`) → the statuses and bodies to answer, in order.
type Script = Mutex<HashMap<String, VecDeque<(u16, String)>>>;

/// A Twilio-compatible Messages endpoint on a std `TcpListener` thread: it records every
/// request and answers from a per-recipient script (`To` → statuses to answer, in order),
/// then 201 once the script is used up.
struct FakeSms {
    port: u16,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
    script: Arc<Script>,
}

impl FakeSms {
    fn start() -> FakeSms {
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
        FakeSms {
            port,
            requests,
            script,
        }
    }

    /// `http://SID:TOKEN@127.0.0.1:PORT`
    fn url(&self) -> String {
        format!("http://{SMS_SID}:{SMS_TOKEN}@127.0.0.1:{}", self.port)
    }

    /// Answers the next requests for `to` with these statuses and bodies, in order.
    fn script(&self, to: &str, answers: &[(u16, &str)]) {
        self.script.lock().unwrap().insert(
            to.to_string(),
            answers.iter().map(|(s, b)| (*s, b.to_string())).collect(),
        );
    }

    fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }

    fn requests_to(&self, to: &str) -> Vec<HttpRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.field("To") == Some(to))
            .collect()
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
    let body = String::from_utf8_lossy(&body).to_string();
    let request = HttpRequest {
        method,
        path,
        headers,
        form: parse_form(&body),
    };
    let to = request.field("To").unwrap_or_default().to_string();
    let n = {
        let mut all = requests.lock().unwrap();
        all.push(request);
        all.len()
    };
    let (status, answer) = script
        .lock()
        .unwrap()
        .get_mut(&to)
        .and_then(VecDeque::pop_front)
        .unwrap_or_else(|| {
            (
                201,
                format!(r#"{{"sid":"SM{n:032}","status":"queued","to":"{to}"}}"#),
            )
        });
    let reason = match status {
        201 => "Created",
        400 => "Bad Request",
        500 => "Internal Server Error",
        _ => "Whatever",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("percent escape"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 form value")
}

// ---------------------------------------------------------------------------------------------
// Journeys and helpers
// ---------------------------------------------------------------------------------------------

const EMAIL_FROM: &str = "Acme News <news@acme.test>";

/// Signed Up → one email.
fn email_journey() -> Value {
    json!({
        "id": "delivery-email",
        "name": "Delivery: welcome email",
        "nodes": [
            {"id": "signed-up", "type": "trigger", "event": "Signed Up"},
            {"id": "welcome", "type": "send_email", "template": "delivery-welcome"}
        ],
        "edges": [{"from": "signed-up", "to": "welcome"}],
        "templates": [{
            "id": "delivery-welcome",
            "channel": "email",
            "subject": "Welcome, {{ contact.first_name }}!",
            "html": "<h1>Hello {{ contact.first_name }}</h1><p>Your plan: {{ event.plan }}</p>",
            "text": "Hello {{ contact.first_name }}, your plan: {{ event.plan }}"
        }]
    })
}

/// Signed Up → one SMS.
fn sms_journey() -> Value {
    json!({
        "id": "delivery-sms",
        "name": "Delivery: welcome SMS",
        "nodes": [
            {"id": "signed-up", "type": "trigger", "event": "Signed Up"},
            {"id": "text-welcome", "type": "send_sms", "template": "delivery-sms"}
        ],
        "edges": [{"from": "signed-up", "to": "text-welcome"}],
        "templates": [{
            "id": "delivery-sms",
            "channel": "sms",
            "body": "Hi {{ contact.first_name }}, welcome to Acme & co! Code {{ event.code }}"
        }]
    })
}

/// Signed Up → SMS → wait 1 hour → email.
fn sms_then_email_journey() -> Value {
    json!({
        "id": "delivery-mixed",
        "name": "Delivery: SMS then email",
        "nodes": [
            {"id": "signed-up", "type": "trigger", "event": "Signed Up"},
            {"id": "text-hello", "type": "send_sms", "template": "mixed-sms"},
            {"id": "wait-1h", "type": "delay", "duration": "1h"},
            {"id": "follow-up", "type": "send_email", "template": "mixed-email"}
        ],
        "edges": [
            {"from": "signed-up", "to": "text-hello"},
            {"from": "text-hello", "to": "wait-1h"},
            {"from": "wait-1h", "to": "follow-up"}
        ],
        "templates": [
            {"id": "mixed-sms", "channel": "sms", "body": "Hello {{ contact.first_name }}"},
            {"id": "mixed-email", "channel": "email", "subject": "Following up",
             "text": "Hi {{ contact.first_name }}, one hour later."}
        ]
    })
}

fn smtp_server(smtp_url: &str) -> Server {
    Server::start(ServerOptions {
        args: vec![
            "--smtp-url".into(),
            smtp_url.into(),
            "--email-from".into(),
            EMAIL_FROM.into(),
        ],
        ..Default::default()
    })
}

fn sms_server(sms: &FakeSms) -> Server {
    Server::start(ServerOptions {
        args: vec![
            "--sms-url".into(),
            sms.url(),
            "--sms-from".into(),
            SMS_FROM.into(),
        ],
        ..Default::default()
    })
}

/// The only message of a user; panics (with the list) when there is not exactly one.
#[track_caller]
fn only_message(s: &Server, user: &str) -> Value {
    let all = s.messages(user);
    assert_eq!(all.len(), 1, "expected one message for {user}: {all:#?}");
    all.into_iter().next().unwrap()
}

/// Identifies and signs up a user, then lets the engine process it (first delivery attempt
/// included).
fn sign_up(s: &Server, user: &str, traits: Value, properties: Value) {
    s.identify(user, traits).ok();
    s.track(user, "Signed Up", properties).ok();
    s.settle();
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a timestamp, got {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("`{v}` is not a timestamp: {e}"))
}

/// Seconds from the server's `now` to the message's `next_attempt_at` (rounded down).
#[track_caller]
fn retry_in(s: &Server, m: &Value) -> i64 {
    let now: jiff::Timestamp = s.now().parse().unwrap();
    ts(&m["next_attempt_at"]).duration_since(now).as_secs()
}

/// Asserts that the next attempt is `nominal` seconds away plus the jitter (0 to 20 %).
#[track_caller]
fn assert_retry_in(s: &Server, m: &Value, nominal: i64) {
    let wait = retry_in(s, m);
    assert!(
        (nominal..=nominal + nominal / 5).contains(&wait),
        "the next attempt should be {nominal} s (+ up to 20 %) away, not {wait} s: {m:#}"
    );
}

/// Advances the clock to the message's next attempt (the whole second at or after it).
#[track_caller]
fn advance_to_retry(s: &Server, m: &Value) {
    let at = ts(&m["next_attempt_at"]);
    let now: jiff::Timestamp = s.now().parse().unwrap();
    let ms = at.duration_since(now).as_millis();
    s.advance(((ms + 999) / 1000) as i64);
}

/// Checks that a Message-ID is derived from the message's idempotency key: `<…KEY…@acme.test>`
/// with every `:` of the key replaced by `.` (the domain is the sender's).
#[track_caller]
fn assert_message_id_of(message_id: &str, message: &Value) {
    let key = message["idempotency_key"]
        .as_str()
        .expect("idempotency_key");
    let dotted = key.replace(':', ".");
    assert!(
        message_id.starts_with('<') && message_id.ends_with("@acme.test>"),
        "Message-ID `{message_id}` must be `<...@acme.test>` (the sender's domain)"
    );
    assert!(
        message_id.contains(&dotted) && !message_id.contains(':'),
        "Message-ID `{message_id}` must contain the idempotency key `{key}` as `{dotted}`"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. SMTP
// ---------------------------------------------------------------------------------------------

#[test]
fn smtp_delivers_the_journey_email_with_headers_bodies_and_a_message_id_from_its_key() {
    let sink = SmtpSink::start();
    let s = smtp_server(&sink.url());
    s.apply_journey(email_journey());
    sign_up(
        &s,
        "ada",
        json!({"email": "ada@example.com", "first_name": "Ada"}),
        json!({"plan": "pro"}),
    );

    let m = only_message(&s, "ada");
    assert_eq!(m["status"], "sent", "{m:#}");
    assert_eq!(m["attempts"], 1, "{m:#}");
    assert_eq!(m["error"], Value::Null, "{m:#}");
    assert_eq!(m["channel"], "email");
    assert_eq!(m["recipient"], "ada@example.com");
    assert_eq!(m["node"], "welcome");
    assert!(m["sent_at"].is_string(), "{m:#}");
    let key = m["idempotency_key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("{}:welcome:", m["enrollment_id"])),
        "the idempotency key `{key}` is expected to be `enrollment:node:visit`"
    );

    let got = sink.accepted();
    assert_eq!(
        got.len(),
        1,
        "the sink must have exactly one message: {got:#?}"
    );
    let r = &got[0];
    assert_eq!(r.mail_from, "news@acme.test");
    assert_eq!(r.rcpt_tos, vec!["ada@example.com".to_string()]);
    assert!(sink.rejected().is_empty());

    let mail = Mime::parse(&r.data);
    let from = mail.header("From");
    assert!(
        from.contains("Acme News") && from.contains("<news@acme.test>"),
        "From: {from}"
    );
    assert_eq!(mail.header("To"), "ada@example.com");
    assert_eq!(mail.header("Subject"), "Welcome, Ada!");
    assert_message_id_of(mail.header("Message-ID"), &m);
    assert!(mail.header("Date").len() > 10);

    let ct = mail.header("Content-Type");
    assert!(
        ct.starts_with("multipart/alternative"),
        "Content-Type: {ct}"
    );
    let parts = mail.parts();
    assert_eq!(parts.len(), 2, "text and HTML parts expected: {}", r.data);
    assert!(
        parts[0].header("Content-Type").starts_with("text/plain"),
        "the plain part comes first: {}",
        r.data
    );
    assert_eq!(
        parts[0].decoded_body().trim_end(),
        "Hello Ada, your plan: pro"
    );
    assert!(parts[1].header("Content-Type").starts_with("text/html"));
    assert_eq!(
        parts[1].decoded_body().trim_end(),
        "<h1>Hello Ada</h1><p>Your plan: pro</p>"
    );
    // The stored message is what was sent.
    assert_eq!(m["subject"], "Welcome, Ada!");
    assert_eq!(m["text"], "Hello Ada, your plan: pro");

    // Nothing is sent again later.
    s.advance(DAY);
    assert_eq!(sink.accepted().len(), 1);
    assert_eq!(sink.rcpt_count("ada@example.com"), 1);
    assert_eq!(only_message(&s, "ada")["attempts"], 1);
    assert_eq!(s.node_stats("delivery-email", "welcome")["sent"], 1);
}

#[test]
fn smtp_451_is_retried_after_backoff_and_sent_exactly_once_with_the_same_message_id() {
    let sink = SmtpSink::start();
    let s = smtp_server(&sink.url());
    s.apply_journey(email_journey());
    // The sink answers 451 to the first two DATA transactions for this address.
    let to = "tempfail2.bob@example.com";
    sign_up(
        &s,
        "bob",
        json!({"email": to, "first_name": "Bob"}),
        json!({"plan": "basic"}),
    );

    // Attempt 1 (at once) got 451: still queued, retry in 30 s.
    let m = only_message(&s, "bob");
    assert_eq!(m["status"], "queued", "{m:#}");
    assert_eq!(m["attempts"], 1, "{m:#}");
    let error = m["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {m:#}"));
    assert!(
        error.contains("451") && error.contains("try later"),
        "error: {error}"
    );
    assert_retry_in(&s, &m, 30);
    assert_eq!(sink.rejected().len(), 1);
    assert!(sink.accepted().is_empty());

    // Not before 30 s.
    s.advance(29);
    let m = only_message(&s, "bob");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("queued"), Some(1))
    );
    assert_eq!(sink.rejected().len(), 1);

    // Attempt 2 at 30 s (+ jitter): 451 again; the next wait doubles to 60 s.
    advance_to_retry(&s, &m);
    let m = only_message(&s, "bob");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("queued"), Some(2)),
        "{m:#}"
    );
    assert!(m["error"].as_str().unwrap().contains("451"));
    assert_retry_in(&s, &m, 60);
    assert_eq!(sink.rejected().len(), 2);

    s.advance(59);
    assert_eq!(only_message(&s, "bob")["attempts"], 2);
    assert!(sink.accepted().is_empty());

    // Attempt 3 at 90 s (+ jitter): accepted.
    advance_to_retry(&s, &m);
    let m = only_message(&s, "bob");
    assert_eq!(m["status"], "sent", "{m:#}");
    assert_eq!(m["attempts"], 3);
    assert_eq!(
        m["error"],
        Value::Null,
        "a sent message keeps no error: {m:#}"
    );
    assert_eq!(m["next_attempt_at"], Value::Null, "{m:#}");

    // Exactly one copy, and every attempt carried the same Message-ID.
    s.advance(HOUR);
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    assert_eq!(accepted[0].rcpt_tos, vec![to.to_string()]);
    let rejected = sink.rejected();
    assert_eq!(rejected.len(), 2);
    assert_eq!(sink.rcpt_count(to), 3);
    let expected = Mime::parse(&accepted[0].data)
        .header("Message-ID")
        .to_string();
    assert_message_id_of(&expected, &m);
    for copy in rejected.iter().chain(accepted.iter()) {
        assert_eq!(Mime::parse(&copy.data).header("Message-ID"), expected);
    }
    let m = only_message(&s, "bob");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("sent"), Some(3))
    );
}

#[test]
fn smtp_451_at_rcpt_is_retried_on_a_fresh_transaction_and_sent_once() {
    let sink = SmtpSink::start();
    let s = smtp_server(&sink.url());
    s.apply_journey(email_journey());
    // The sink answers 451 to the first RCPT TO for this address.
    let to = "rcptfail1.bea@example.com";
    sign_up(
        &s,
        "bea",
        json!({"email": to, "first_name": "Bea"}),
        json!({"plan": "pro"}),
    );
    let m = only_message(&s, "bea");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("queued"), Some(1)),
        "{m:#}"
    );
    let error = m["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {m:#}"));
    assert!(
        error.contains("451") && error.contains("try later"),
        "error: {error}"
    );
    assert_eq!(sink.rcpt_count(to), 1);
    assert!(sink.accepted().is_empty() && sink.rejected().is_empty());

    s.advance(29);
    assert_eq!(sink.rcpt_count(to), 1, "no retry before 30 s");
    advance_to_retry(&s, &m);
    let m = only_message(&s, "bea");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("sent"), Some(2)),
        "{m:#}"
    );
    s.advance(HOUR);
    assert_eq!(sink.rcpt_count(to), 2);
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    assert_eq!(accepted[0].rcpt_tos, vec![to.to_string()]);
    assert_message_id_of(Mime::parse(&accepted[0].data).header("Message-ID"), &m);
}

/// lettre's `from_url` with `smtp://` and no `?tls=` parameter is plain text: it ignores
/// STARTTLS and, when the server advertises AUTH before STARTTLS, sends the password in clear.
/// Waymark requires STARTTLS for `smtp://` URLs with credentials, so the password never crosses
/// the wire unencrypted (here the handshake fails on the sink's self-signed certificate, so no
/// AUTH is sent at all).
#[test]
fn smtp_credentials_are_never_sent_in_clear_text_when_the_server_offers_starttls() {
    let sink = SmtpSink::start_with(&["--starttls-auth"]);
    let s = smtp_server(&format!("smtp://waymark:s3cret@127.0.0.1:{}", sink.port));
    s.apply_journey(email_journey());
    sign_up(
        &s,
        "ivy",
        json!({"email": "ivy@example.com", "first_name": "Ivy"}),
        json!({"plan": "pro"}),
    );
    let m = only_message(&s, "ivy");
    assert!(m["attempts"].as_i64() >= Some(1), "{m:#}");
    let auths = sink.auths();
    assert!(
        auths.iter().all(|a| a.ends_with(" tls")),
        "the SMTP credentials went over an unencrypted connection although the server offered \
         STARTTLS: {auths:?}; message: {m:#}"
    );
}

/// RFC 5322 §3.6.4: the Message-ID "MUST be a globally unique identifier for a message". The
/// idempotency key (`enrollment:node:visit`) is numbered from 1 in every database, so two
/// installations sending from one domain (staging and production, one per brand) must still
/// differ: the Message-ID also carries an installation id kept in the database.
#[test]
fn smtp_message_ids_differ_between_installations_sending_from_one_domain() {
    let sink = SmtpSink::start();
    let first = smtp_server(&sink.url());
    let second = smtp_server(&sink.url());
    for (s, user) in [(&first, "jade"), (&second, "kurt")] {
        s.apply_journey(email_journey());
        sign_up(
            s,
            user,
            json!({"email": format!("{user}@example.com"), "first_name": user}),
            json!({"plan": "pro"}),
        );
        assert_eq!(only_message(s, user)["status"], "sent");
    }
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 2, "{accepted:#?}");
    let ids: Vec<String> = accepted
        .iter()
        .map(|r| Mime::parse(&r.data).header("Message-ID").to_string())
        .collect();
    assert_ne!(
        ids[0], ids[1],
        "two different messages (to {:?} and {:?}) carry the same Message-ID",
        accepted[0].rcpt_tos, accepted[1].rcpt_tos
    );
}

#[test]
fn smtp_550_5_1_1_bounces_at_once_suppresses_the_address_and_is_never_retried() {
    let sink = SmtpSink::start();
    let s = smtp_server(&sink.url());
    s.apply_journey(email_journey());
    let to = "reject.carol@example.com";
    sign_up(
        &s,
        "carol",
        json!({"email": to, "first_name": "Carol"}),
        json!({"plan": "pro"}),
    );

    let m = only_message(&s, "carol");
    assert_eq!(m["status"], "bounced", "{m:#}");
    assert_eq!(m["attempts"], 1, "{m:#}");
    assert_eq!(m["next_attempt_at"], Value::Null, "{m:#}");
    let error = m["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {m:#}"));
    assert!(
        error.contains("550") && error.contains("mailbox unavailable"),
        "error: {error}"
    );
    assert!(
        !error.contains("gave up"),
        "a permanent error is not a give-up: {error}"
    );
    assert_eq!(sink.rcpt_count(to), 1);

    s.advance(HOUR);
    let m = only_message(&s, "carol");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("bounced"), Some(1))
    );
    assert_eq!(sink.rcpt_count(to), 1, "no retry after a permanent error");
    assert!(sink.accepted().is_empty() && sink.rejected().is_empty());
    let stats = s.node_stats("delivery-email", "welcome");
    assert_eq!(
        (stats["failed"].as_i64(), stats["sent"].as_i64()),
        (Some(1), Some(0)),
        "{stats}"
    );

    // "5.1.1": the mailbox does not exist, so the address is suppressed as a hard bounce.
    let list = s
        .admin_get(&format!("/v1/suppressions?channel=email&address={to}"))
        .ok();
    let entry = &list["suppressions"][0];
    assert_eq!(
        (
            entry["address"].as_str(),
            entry["reason"].as_str(),
            entry["source"].as_str()
        ),
        (Some(to), Some("hard_bounce"), Some("smtp")),
        "{list:#}"
    );

    // The same server still delivers to a good address (the failure is per message).
    sign_up(
        &s,
        "carl",
        json!({"email": "carl@example.com", "first_name": "Carl"}),
        json!({"plan": "pro"}),
    );
    assert_eq!(only_message(&s, "carl")["status"], "sent");
    assert_eq!(sink.accepted().len(), 1);
}

#[test]
fn smtp_554_5_7_1_at_data_bounces_at_once_without_suppressing_the_address() {
    let sink = SmtpSink::start();
    let s = smtp_server(&sink.url());
    s.apply_journey(email_journey());
    let to = "spam.gina@example.com";
    sign_up(
        &s,
        "gina",
        json!({"email": to, "first_name": "Gina"}),
        json!({"plan": "pro"}),
    );

    // Every permanent (5xx) SMTP answer is a bounce, never retried.
    let m = only_message(&s, "gina");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("bounced"), Some(1)),
        "{m:#}"
    );
    assert_eq!(m["next_attempt_at"], Value::Null, "{m:#}");
    let error = m["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("SMTP: ") && error.contains("554") && error.contains("rejected as spam"),
        "error: {error}"
    );
    s.advance(HOUR);
    let m = only_message(&s, "gina");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("bounced"), Some(1))
    );
    assert_eq!(sink.rcpt_count(to), 1, "no retry after a permanent error");
    assert!(sink.accepted().is_empty());
    assert_eq!(s.node_stats("delivery-email", "welcome")["failed"], 1);

    // "5.7.1" is a policy refusal, not a missing mailbox: the address is not suppressed.
    let list = s
        .admin_get(&format!("/v1/suppressions?channel=email&address={to}"))
        .ok();
    assert_eq!(list["suppressions"], json!([]), "{list:#}");
}

/// A local port that nothing listens on: connecting to it is refused.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The value of a metric with a `channel` label in `/metrics`.
#[track_caller]
fn channel_metric(s: &Server, name: &str, channel: &str) -> f64 {
    let r = s.get("/metrics");
    assert_eq!(r.status, 200, "/metrics: {}", r.text);
    let prefix = format!("{name}{{channel=\"{channel}\"}} ");
    r.text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` in /metrics:\n{}", r.text))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("`{name}` is not a number: {e}"))
}

#[test]
fn smtp_outage_of_two_hours_is_retried_and_the_message_delivered_when_the_server_comes_back() {
    let port = closed_port();
    let s = smtp_server(&format!("smtp://127.0.0.1:{port}"));
    s.apply_journey(email_journey());
    sign_up(
        &s,
        "dora",
        json!({"email": "dora@example.com", "first_name": "Dora"}),
        json!({"plan": "pro"}),
    );
    let m = only_message(&s, "dora");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("queued"), Some(1)),
        "{m:#}"
    );
    let error = m["error"].as_str().unwrap();
    assert!(
        error.starts_with("SMTP: ") && error.to_lowercase().contains("refused"),
        "error: {error}"
    );
    let created = created_at(&m);

    // Waits double from 30 s up to an hour (plus jitter), never earlier; the message stays
    // queued for the whole outage.
    let nominal = [30, 60, 120, 240, 480, 960, 1920, 3600];
    let mut attempts = 1;
    loop {
        let m = only_message(&s, "dora");
        assert_eq!(
            (m["status"].as_str(), m["attempts"].as_i64()),
            (Some("queued"), Some(attempts)),
            "{m:#}"
        );
        if now(&s).duration_since(created).as_secs() >= 2 * HOUR {
            break;
        }
        let wait = nominal[(attempts as usize - 1).min(nominal.len() - 1)];
        assert_retry_in(&s, &m, wait);
        s.advance(wait - 1);
        assert_eq!(only_message(&s, "dora")["attempts"], attempts, "not early");
        advance_to_retry(&s, &m);
        attempts += 1;
    }
    assert!(
        (9..=11).contains(&attempts),
        "{attempts} attempts in 2 hours"
    );

    // The queue gauges show the waiting message and its age.
    assert_eq!(
        channel_metric(&s, "waymark_outbox_queued_messages", "email"),
        1.0
    );
    assert_eq!(
        channel_metric(&s, "waymark_outbox_queued_messages", "sms"),
        0.0
    );
    let age = channel_metric(&s, "waymark_outbox_oldest_queued_seconds", "email");
    let elapsed = now(&s).duration_since(created).as_secs_f64();
    assert!((age - elapsed).abs() < 1.0, "age {age}, elapsed {elapsed}");

    // The server comes back on the same port: the next retry delivers, once.
    let sink = SmtpSink::start_on(port, &[]);
    let m = only_message(&s, "dora");
    advance_to_retry(&s, &m);
    let m = only_message(&s, "dora");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("sent"), Some(attempts + 1)),
        "{m:#}"
    );
    s.advance(DAY);
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    assert_message_id_of(Mime::parse(&accepted[0].data).header("Message-ID"), &m);
    assert_eq!(s.node_stats("delivery-email", "welcome")["sent"], 1);
    assert_eq!(s.node_stats("delivery-email", "welcome")["failed"], 0);
    assert_eq!(
        channel_metric(&s, "waymark_outbox_queued_messages", "email"),
        0.0
    );
    assert_eq!(
        channel_metric(&s, "waymark_outbox_oldest_queued_seconds", "email"),
        0.0
    );
}

#[test]
fn smtp_outage_longer_than_the_retry_lifetime_fails_the_message_saying_how_long() {
    let s = smtp_server(&format!("smtp://127.0.0.1:{}", closed_port()));
    s.apply_journey(email_journey());
    sign_up(
        &s,
        "finn",
        json!({"email": "finn@example.com", "first_name": "Finn"}),
        json!({"plan": "pro"}),
    );
    // The default lifetime is 3 days from the first attempt.
    s.advance(3 * DAY - 1);
    let m = only_message(&s, "finn");
    assert_eq!(m["status"], "queued", "{m:#}");
    let attempts = m["attempts"].as_i64().unwrap();
    // 7 doublings to the hour, then about one attempt an hour (60 to 72 minutes apart).
    assert!((60..=80).contains(&attempts), "{attempts} attempts");

    // The last attempt falls at the end of the lifetime; it fails too.
    s.advance(1);
    let m = only_message(&s, "finn");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("failed"), Some(attempts + 1)),
        "{m:#}"
    );
    assert_eq!(m["next_attempt_at"], Value::Null, "{m:#}");
    assert_eq!(
        ms_of(&m["failed_at"]),
        ms_of(&m["first_attempt_at"]) + 3 * DAY * 1000
    );
    let error = m["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!(
            "gave up after {} attempts over 3d (the retry lifetime is 3d): SMTP: ",
            attempts + 1
        )),
        "error: {error}"
    );
    s.advance(DAY);
    assert_eq!(only_message(&s, "finn")["attempts"], attempts + 1);
    assert_eq!(s.node_stats("delivery-email", "welcome")["failed"], 1);
}

/// `event` → one email, in a journey named `id`.
fn email_journey_named(id: &str, event: &str) -> Value {
    let mut j = email_journey();
    j["id"] = json!(id);
    j["nodes"][0]["event"] = json!(event);
    j["templates"][0]["id"] = json!(format!("{id}-welcome"));
    j["nodes"][1]["template"] = json!(format!("{id}-welcome"));
    j
}

#[test]
fn failed_messages_are_requeued_by_filter_through_the_api_and_sent_once() {
    let port = closed_port();
    let s = Server::start(ServerOptions {
        args: vec![
            "--smtp-url".into(),
            format!("smtp://127.0.0.1:{port}"),
            "--email-from".into(),
            EMAIL_FROM.into(),
        ],
        env: vec![("WAYMARK_RETRY_LIFETIME".into(), "1h".into())],
        ..Default::default()
    });
    s.apply_journey(email_journey());
    s.apply_journey(email_journey_named("other-email", "Joined"));
    // `gil` (delivery-email) and `hal` (other-email) fail after the one-hour lifetime.
    sign_up(
        &s,
        "gil",
        json!({"email": "gil@example.com", "first_name": "Gil"}),
        json!({}),
    );
    s.identify("hal", json!({"email": "hal@example.com"})).ok();
    s.track("hal", "Joined", json!({})).ok();
    s.settle();
    s.advance(HOUR);
    let gil = only_message(&s, "gil");
    assert_eq!(gil["status"], "failed", "{gil:#}");
    let error = gil["error"].as_str().unwrap();
    assert!(
        error.starts_with("gave up after ")
            && error.contains(" over 1h (the retry lifetime is 1h): SMTP: "),
        "error: {error}"
    );
    let failed_at = ms_of(&gil["failed_at"]);

    // The mail server is back; a refused address bounces (a bounce is never requeued).
    let sink = SmtpSink::start_on(port, &[]);
    sign_up(
        &s,
        "ivy",
        json!({"email": "reject.ivy@example.com", "first_name": "Ivy"}),
        json!({}),
    );
    assert_eq!(only_message(&s, "ivy")["status"], "bounced");
    assert_eq!(s.node_stats("delivery-email", "welcome")["failed"], 2);

    let requeue =
        |filter: Value| s.admin_post("/v1/messages/requeue", filter).ok()["requeued"].clone();
    // Filters that match nothing requeue nothing.
    assert_eq!(requeue(json!({"channel": "sms"})), 0);
    assert_eq!(requeue(json!({"error": "no such error text"})), 0);
    assert_eq!(requeue(json!({"journey_id": "nope"})), 0);
    let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
    assert_eq!(requeue(json!({"failed_until": at(failed_at)})), 0);
    assert_eq!(requeue(json!({"failed_since": at(failed_at + 1)})), 0);
    assert_eq!(
        requeue(json!({"created_until": at(ms_of(&gil["created_at"]))})),
        0
    );
    // Still failed.
    assert_eq!(only_message(&s, "gil")["status"], "failed");

    // Everything of the journey that failed in the last two hours with that error (any case).
    let n = requeue(json!({
        "journey_id": "delivery-email",
        "channel": "email",
        "failed_since": "2h",
        "failed_until": at(failed_at + 1),
        "error": "GAVE UP",
    }));
    assert_eq!(n, 1);
    s.settle();
    let m = only_message(&s, "gil");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("sent"), Some(1)),
        "attempts start over: {m:#}"
    );
    assert_eq!(m["id"], gil["id"]);
    assert_eq!(m["idempotency_key"], gil["idempotency_key"]);
    assert!(m["requeued_at"].is_string(), "{m:#}");
    assert_eq!(m["failed_at"], Value::Null, "{m:#}");
    assert_eq!(only_message(&s, "ivy")["status"], "bounced");
    assert_eq!(
        only_message(&s, "hal")["status"],
        "failed",
        "another journey"
    );

    // Asking again finds nothing to requeue: nothing is ever sent twice.
    assert_eq!(
        requeue(json!({"journey_id": "delivery-email", "failed_since": "1d"})),
        0
    );
    s.advance(DAY);
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    assert_eq!(accepted[0].rcpt_tos, vec!["gil@example.com".to_string()]);
    assert_message_id_of(Mime::parse(&accepted[0].data).header("Message-ID"), &m);
    let stats = s.node_stats("delivery-email", "welcome");
    assert_eq!(
        (stats["sent"].as_i64(), stats["failed"].as_i64()),
        (Some(1), Some(1)),
        "{stats}"
    );

    // Bad filters are refused with the field named.
    for (body, code, field) in [
        (json!({}), "requeue_filter_required", None),
        (
            json!({"journey": "delivery-email"}),
            "invalid_parameter",
            Some("journey"),
        ),
        (
            json!({"channel": "fax"}),
            "invalid_parameter",
            Some("channel"),
        ),
        (
            json!({"failed_since": "yesterday"}),
            "invalid_parameter",
            Some("failed_since"),
        ),
        (
            json!({"error": "x".repeat(501)}),
            "invalid_parameter",
            Some("error"),
        ),
        (json!({"error": ""}), "invalid_parameter", Some("error")),
        (
            json!({"failed_since": "1h", "failed_until": "2h"}),
            "invalid_parameter",
            Some("failed_until"),
        ),
        (json!(["channel"]), "invalid_body", None),
    ] {
        let e = s
            .admin_post("/v1/messages/requeue", body.clone())
            .expect_error(400, code);
        assert_eq!(e["field"].as_str(), field, "{body}: {e}");
        assert!(e["message"].is_string() && e["link"].is_string(), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. SMS
// ---------------------------------------------------------------------------------------------

#[test]
fn sms_500_is_retried_after_30_seconds_and_sent_once() {
    let sms = FakeSms::start();
    let s = sms_server(&sms);
    s.apply_journey(sms_journey());
    let phone = "+14155557654";
    sms.script(
        phone,
        &[(500, r#"{"code":20500,"message":"Internal Server Error"}"#)],
    );
    sign_up(
        &s,
        "erin",
        json!({"phone": phone, "first_name": "Erin"}),
        json!({"code": "X 42"}),
    );

    let m = only_message(&s, "erin");
    assert_eq!(m["channel"], "sms");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("queued"), Some(1)),
        "{m:#}"
    );
    let error = m["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {m:#}"));
    assert!(
        error.contains("500") && error.contains("20500"),
        "error: {error}"
    );
    assert_retry_in(&s, &m, 30);
    assert_eq!(sms.requests().len(), 1);

    s.advance(29);
    let m = only_message(&s, "erin");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("queued"), Some(1)),
        "{m:#}"
    );
    assert_eq!(sms.requests().len(), 1, "no retry before 30 s");

    advance_to_retry(&s, &m);
    let m = only_message(&s, "erin");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("sent"), Some(2)),
        "{m:#}"
    );
    assert_eq!(m["error"], Value::Null);

    s.advance(HOUR);
    let requests = sms.requests();
    assert_eq!(
        requests.len(),
        2,
        "one failed and one successful request: {requests:#?}"
    );
    let body = "Hi Erin, welcome to Acme & co! Code X 42";
    assert_eq!(m["text"], body);
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, SMS_PATH);
        assert_eq!(r.header("Authorization"), Some(SMS_BASIC_AUTH));
        assert!(
            r.header("Content-Type")
                .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")),
            "{r:?}"
        );
        assert_eq!(r.field("To"), Some(phone), "{r:?}");
        assert_eq!(r.field("From"), Some(SMS_FROM), "{r:?}");
        assert_eq!(r.field("Body"), Some(body), "{r:?}");
        assert_eq!(r.form.len(), 3, "only To, From and Body: {r:?}");
    }
    let m = only_message(&s, "erin");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("sent"), Some(2))
    );
    assert_eq!(s.node_stats("delivery-sms", "text-welcome")["sent"], 1);
}

#[test]
fn sms_408_429_and_503_are_retried_like_webhooks_and_the_sms_sent_once() {
    let sms = FakeSms::start();
    let s = sms_server(&sms);
    s.apply_journey(sms_journey());
    let phone = "+14155550408";
    sms.script(
        phone,
        &[
            (408, "request timeout"),
            (429, "slow down"),
            (503, "maintenance"),
        ],
    );
    sign_up(
        &s,
        "gus",
        json!({"phone": phone, "first_name": "Gus"}),
        json!({"code": "7"}),
    );
    for (attempts, answer) in [(1, "408"), (2, "429"), (3, "503")] {
        let m = only_message(&s, "gus");
        assert_eq!(
            (m["status"].as_str(), m["attempts"].as_i64()),
            (Some("queued"), Some(attempts)),
            "after the {answer}: {m:#}"
        );
        assert!(m["error"].as_str().unwrap().contains(answer), "{m:#}");
        advance_to_retry(&s, &m);
    }
    let m = only_message(&s, "gus");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("sent"), Some(4)),
        "{m:#}"
    );
    s.advance(DAY);
    assert_eq!(sms.requests_to(phone).len(), 4);
}

/// Runs `waymark messages requeue ARGS` against the server; returns (success, stdout+stderr).
fn requeue_cli(s: &Server, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["messages", "requeue", "--server", &s.base])
        .args(args)
        .env("WAYMARK_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("WAYMARK_SERVER")
        .stdin(Stdio::null());
    let out = cmd.output().expect("run waymark messages requeue");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn failed_sms_are_requeued_from_the_command_line_and_sent() {
    let sms = FakeSms::start();
    let s = sms_server(&sms);
    s.apply_journey(sms_journey());
    // Wrong credentials at the provider: a permanent failure, fixed later by the operator.
    let phone = "+14155550401";
    sms.script(phone, &[(401, r#"{"message":"Authenticate"}"#)]);
    sign_up(
        &s,
        "ida",
        json!({"phone": phone, "first_name": "Ida"}),
        json!({"code": "9"}),
    );
    let failed = only_message(&s, "ida");
    assert_eq!(
        (failed["status"].as_str(), failed["attempts"].as_i64()),
        (Some("failed"), Some(1)),
        "{failed:#}"
    );

    // Without a filter the command refuses, and a bad filter shows the server's reason.
    let (ok, out) = requeue_cli(&s, &[]);
    assert!(!ok && out.contains("at least one filter"), "{out}");
    let (ok, out) = requeue_cli(&s, &["--channel", "fax"]);
    assert!(
        !ok && out.contains("`channel`") && out.contains("fax"),
        "{out}"
    );
    let (ok, out) = requeue_cli(&s, &["--channel", "email", "--since", "1h"]);
    assert!(ok && out.contains("requeued 0 failed messages"), "{out}");
    assert_eq!(only_message(&s, "ida")["status"], "failed");

    let (ok, out) = requeue_cli(
        &s,
        &[
            "--journey",
            "delivery-sms",
            "--channel",
            "sms",
            "--since",
            "1h",
            "--error",
            "401",
        ],
    );
    assert!(ok && out.contains("requeued 1 failed messages"), "{out}");
    s.settle();
    let m = only_message(&s, "ida");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("sent"), Some(1)),
        "{m:#}"
    );
    assert_eq!(m["idempotency_key"], failed["idempotency_key"]);
    s.advance(DAY);
    assert_eq!(sms.requests_to(phone).len(), 2, "one refused, one sent");
}

#[test]
fn sms_400_fails_at_once() {
    let sms = FakeSms::start();
    let s = sms_server(&sms);
    s.apply_journey(sms_journey());
    let phone = "+14155559990";
    sms.script(
        phone,
        &[(
            400,
            r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#,
        )],
    );
    sign_up(
        &s,
        "finn",
        json!({"phone": phone, "first_name": "Finn"}),
        json!({"code": "1"}),
    );

    let m = only_message(&s, "finn");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("failed"), Some(1)),
        "{m:#}"
    );
    let error = m["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {m:#}"));
    assert!(
        error.contains("400")
            && error.contains("21211")
            && error.contains("Invalid 'To' Phone Number"),
        "error: {error}"
    );
    assert!(!error.contains("gave up"), "error: {error}");
    assert_eq!(m["next_attempt_at"], Value::Null);
    assert_eq!(sms.requests().len(), 1);

    s.advance(HOUR);
    let m = only_message(&s, "finn");
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );
    assert_eq!(sms.requests().len(), 1, "no retry after a 400");
    assert_eq!(s.node_stats("delivery-sms", "text-welcome")["failed"], 1);
}

// ---------------------------------------------------------------------------------------------
// 3. Suppression
// ---------------------------------------------------------------------------------------------

#[test]
fn sms_to_a_contact_without_phone_is_suppressed_and_the_journey_goes_on() {
    let sms = FakeSms::start();
    let s = sms_server(&sms);
    s.apply_journey(sms_then_email_journey());
    // No phone: the SMS is suppressed.
    sign_up(
        &s,
        "gail",
        json!({"email": "gail@example.com", "first_name": "Gail"}),
        json!({}),
    );
    // With a phone: the same node sends (so the suppression is about the phone).
    let phone = "+14155551230";
    sign_up(
        &s,
        "hugo",
        json!({"email": "hugo@example.com", "phone": phone, "first_name": "Hugo"}),
        json!({}),
    );

    let m = only_message(&s, "gail");
    assert_eq!(m["channel"], "sms");
    assert_eq!(m["node"], "text-hello");
    assert_eq!(m["status"], "suppressed", "{m:#}");
    assert_eq!(m["error"], "the contact has no phone number", "{m:#}");
    assert_eq!(
        m["attempts"], 0,
        "a suppressed message is never attempted: {m:#}"
    );
    assert_eq!(m["recipient"], Value::Null);
    assert_eq!(only_message(&s, "hugo")["status"], "sent");
    let requests = sms.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].field("To"), Some(phone));
    assert_eq!(requests[0].field("Body"), Some("Hello Hugo"));

    // The timeline says why Gail got no SMS.
    let gail = s.contact_by_user("gail");
    let timeline = s.timeline(gail["id"].as_i64().unwrap());
    assert!(
        timeline.iter().any(|e| e["type"] == "message"
            && e["status"] == "suppressed"
            && e["error"] == "the contact has no phone number"),
        "{timeline:#?}"
    );
    // And the enrollment went on to the delay.
    let enrollments = gail["enrollments"].as_array().expect("enrollments");
    assert_eq!(enrollments.len(), 1, "{gail:#}");
    assert_eq!(enrollments[0]["node"], "wait-1h", "{gail:#}");
    assert_eq!(enrollments[0]["status"], "active", "{gail:#}");

    // One hour later both get the follow-up email (built-in outbox transport).
    s.advance(HOUR);
    for user in ["gail", "hugo"] {
        let all = s.messages(user);
        assert_eq!(nodes_of(&all), vec!["text-hello", "follow-up"], "{all:#?}");
        assert_eq!(all[1]["channel"], "email");
        assert_eq!(all[1]["status"], "sent", "{all:#?}");
    }
    let all = s.messages("gail");
    assert_eq!(all[0]["status"], "suppressed", "still suppressed: {all:#?}");
    assert_eq!(all[1]["text"], "Hi Gail, one hour later.");
    assert_eq!(sms.requests_to(phone).len(), 1);
    assert_eq!(sms.requests().len(), 1);

    let stats = s.node_stats("delivery-mixed", "text-hello");
    assert_eq!(stats["suppressed"], 1, "{stats}");
    assert_eq!(stats["sent"], 1, "{stats}");
    assert_eq!(s.node_stats("delivery-mixed", "follow-up")["sent"], 2);
    let gail = s.contact_by_user("gail");
    assert_eq!(gail["enrollments"][0]["status"], "completed", "{gail:#}");
}

/// DKIM: with `--dkim-domain/--dkim-selector/--dkim-key`, the email that reaches a real SMTP
/// server carries a signature that dkimpy (the reference Python implementation) verifies
/// against the published public key; a tampered copy fails.
#[test]
fn smtp_email_is_dkim_signed_and_dkimpy_verifies_it() {
    let sink = SmtpSink::start();
    let fixtures = repo_root().join("tests/fixtures");
    let s = Server::start(ServerOptions {
        args: vec![
            "--smtp-url".into(),
            sink.url(),
            "--email-from".into(),
            EMAIL_FROM.into(),
            "--dkim-domain".into(),
            "acme.test".into(),
            "--dkim-selector".into(),
            "wm2026".into(),
            "--dkim-key".into(),
            fixtures.join("dkim-test-key.pem").display().to_string(),
        ],
        ..Default::default()
    });
    s.apply_journey(email_journey());
    sign_up(
        &s,
        "dora",
        json!({"email": "dora@example.com", "first_name": "Dora"}),
        json!({"plan": "pro"}),
    );
    assert_eq!(only_message(&s, "dora")["status"], "sent");
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    let raw = &accepted[0].data;
    let signature = Mime::parse(raw).header("DKIM-Signature").to_string();
    assert!(signature.contains("d=acme.test"), "{signature}");
    assert!(signature.contains("s=wm2026"), "{signature}");

    let public_key = std::fs::read_to_string(fixtures.join("dkim-test-key.pub.b64")).unwrap();
    let verify = |message: &str| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("message.eml");
        std::fs::write(&file, message).unwrap();
        let python = std::env::var("WAYMARK_TEST_PYTHON").expect("WAYMARK_TEST_PYTHON");
        Command::new(python)
            .arg(repo_root().join("tests/py/dkim_verify.py"))
            .arg(&file)
            .args(["wm2026", "acme.test", public_key.trim()])
            .output()
            .expect("run dkim_verify.py")
    };
    let good = verify(raw);
    assert!(
        good.status.success(),
        "dkimpy rejected the signature:\n{}\n{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr)
    );
    let tampered = verify(&raw.replacen("Welcome, Dora!", "Welcome, Eve!", 1));
    assert_eq!(
        tampered.status.code(),
        Some(1),
        "a tampered subject must fail"
    );
}

/// A DKIM key in the wrong form stops the server at start with a clear message.
#[test]
fn a_pkcs8_dkim_key_is_refused_at_start_with_the_conversion_command() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("pkcs8.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--smtp-url",
            "smtp://127.0.0.1:1",
        ])
        .args([
            "--dkim-domain",
            "acme.test",
            "--dkim-selector",
            "s1",
            "--dkim-key",
        ])
        .arg(&key)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .expect("run waymark serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PKCS#8") && stderr.contains("openssl rsa"),
        "{stderr}"
    );
}

/// Consent over SMTP: with `--public-url`, a marketing email carries `List-Unsubscribe` and
/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), both covered by the DKIM
/// signature (dkimpy verifies it, and fails a copy whose link was changed); the one-click POST
/// to that link stops the next marketing email while a transactional one is still sent,
/// without those headers.
#[test]
fn smtp_marketing_email_has_signed_one_click_unsubscribe_headers_that_work() {
    const PUBLIC: &str = "http://mail.example.test";
    let sink = SmtpSink::start();
    let fixtures = repo_root().join("tests/fixtures");
    let s = Server::start(ServerOptions {
        args: vec![
            "--smtp-url".into(),
            sink.url(),
            "--email-from".into(),
            EMAIL_FROM.into(),
            "--dkim-domain".into(),
            "acme.test".into(),
            "--dkim-selector".into(),
            "wm2026".into(),
            "--dkim-key".into(),
            fixtures.join("dkim-test-key.pem").display().to_string(),
            "--public-url".into(),
            PUBLIC.into(),
        ],
        ..Default::default()
    });
    s.apply_journey(json!({
        "id": "consent-smtp", "name": "Consent over SMTP",
        "nodes": [
            {"id": "signed-up", "type": "trigger", "event": "Signed Up"},
            {"id": "news-1", "type": "send_email", "template": "smtp-news-1"},
            {"id": "wait", "type": "delay", "duration": "1d"},
            {"id": "news-2", "type": "send_email", "template": "smtp-news-2"},
            {"id": "receipt", "type": "send_email", "template": "smtp-receipt"}
        ],
        "edges": [
            {"from": "signed-up", "to": "news-1"}, {"from": "news-1", "to": "wait"},
            {"from": "wait", "to": "news-2"}, {"from": "news-2", "to": "receipt"}
        ],
        "templates": [
            {"id": "smtp-news-1", "channel": "email", "subject": "News", "topic": "news", "text": "news"},
            {"id": "smtp-news-2", "channel": "email", "subject": "More news", "topic": "news", "text": "more"},
            {"id": "smtp-receipt", "channel": "email", "subject": "Receipt", "transactional": true, "text": "paid"}
        ]
    }));
    sign_up(&s, "lena", json!({"email": "lena@example.com"}), json!({}));
    let first = only_message(&s, "lena");
    assert_eq!(first["status"], "sent", "{first:#}");
    let url = first["unsubscribe_url"].as_str().expect("unsubscribe_url");
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    let raw = accepted[0].data.clone();
    let mail = Mime::parse(&raw);
    assert_eq!(mail.header("List-Unsubscribe"), format!("<{url}>"));
    assert_eq!(
        mail.header("List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let signature = mail.header("DKIM-Signature").to_lowercase();
    let signed: String = signature.split_whitespace().collect();
    assert!(
        signed.contains("list-unsubscribe:list-unsubscribe-post"),
        "{signature}"
    );

    let public_key = std::fs::read_to_string(fixtures.join("dkim-test-key.pub.b64")).unwrap();
    let verify = |message: &str| {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("message.eml");
        std::fs::write(&file, message).unwrap();
        let python = std::env::var("WAYMARK_TEST_PYTHON").expect("WAYMARK_TEST_PYTHON");
        Command::new(python)
            .arg(repo_root().join("tests/py/dkim_verify.py"))
            .arg(&file)
            .args(["wm2026", "acme.test", public_key.trim()])
            .output()
            .expect("run dkim_verify.py")
    };
    let good = verify(&raw);
    assert!(
        good.status.success(),
        "dkimpy rejected the signature:\n{}\n{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr)
    );
    let token = url.rsplit('/').next().unwrap();
    let evil = raw.replacen(token, "forged", 1);
    assert_eq!(
        verify(&evil).status.code(),
        Some(1),
        "a changed link must fail"
    );

    // What a mailbox provider does on "unsubscribe": POST the RFC 8058 body to the link.
    let path = url.strip_prefix(PUBLIC).unwrap();
    let r = s.send(
        s.request(reqwest::Method::POST, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click"),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    s.advance(DAY);
    s.settle();
    let all = s.messages("lena");
    let second = all.iter().find(|m| m["node"] == "news-2").unwrap();
    assert_eq!(second["status"], "suppressed", "{second:#}");
    let receipt = all.iter().find(|m| m["node"] == "receipt").unwrap();
    assert_eq!(receipt["status"], "sent", "{receipt:#}");
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 2, "news-1 and the receipt: {accepted:#?}");
    let receipt_mail = Mime::parse(&accepted[1].data);
    assert!(receipt_mail.all("List-Unsubscribe").is_empty());
    assert_eq!(receipt_mail.header("Subject"), "Receipt");
}

/// Tracking over SMTP: with `--public-url`, the email that reaches a real SMTP server has its
/// link rewritten to a signed `/t/c/…` URL and an open pixel; following that link (taken from
/// the received, quoted-printable message) redirects to the original URL and records the click,
/// while a tampered token answers 404 and records nothing.
#[test]
fn smtp_email_links_are_tracked_and_the_received_link_redirects_and_records_the_click() {
    const PUBLIC: &str = "http://mail.example.test";
    const OFFER: &str = "https://shop.example/offer?x=1&y=2";
    let sink = SmtpSink::start();
    let s = Server::start(ServerOptions {
        args: vec![
            "--smtp-url".into(),
            sink.url(),
            "--email-from".into(),
            EMAIL_FROM.into(),
            "--public-url".into(),
            format!("{PUBLIC}/"),
        ],
        ..Default::default()
    });
    s.apply_journey(json!({
        "id": "tracked-smtp", "name": "Tracking over SMTP",
        "nodes": [
            {"id": "signed-up", "type": "trigger", "event": "Signed Up"},
            {"id": "offer", "type": "send_email", "template": "smtp-offer"}
        ],
        "edges": [{"from": "signed-up", "to": "offer"}],
        "templates": [{
            "id": "smtp-offer", "channel": "email", "subject": "An offer",
            "html": "<html><body><p>Hi {{ contact.first_name }}, see <a href=\"https://shop.example/offer?x=1&amp;y=2\">Offer</a>.</p></body></html>",
            "text": "Hi {{ contact.first_name }}, see https://shop.example/offer?x=1&y=2"
        }]
    }));
    sign_up(
        &s,
        "mona",
        json!({"email": "mona@example.com", "first_name": "Mona"}),
        json!({}),
    );
    let m = only_message(&s, "mona");
    assert_eq!(m["status"], "sent", "{m:#}");
    assert!(m["clicked_at"].is_null(), "{m:#}");

    // What aiosmtpd received: the HTML part has the tracked link and the pixel.
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    let mail = Mime::parse(&accepted[0].data);
    let html = mail
        .parts()
        .into_iter()
        .find(|p| p.header("Content-Type").starts_with("text/html"))
        .unwrap_or_else(|| panic!("no HTML part: {}", accepted[0].data))
        .decoded_body();
    assert!(!html.contains("https://shop.example/offer"), "{html}");
    let tracked = |kind: char| -> Vec<String> {
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
    };
    let clicks = tracked('c');
    assert_eq!(clicks.len(), 1, "one tracked link: {html}");
    assert_eq!(tracked('o').len(), 1, "one open pixel: {html}");
    assert!(
        html.contains(&format!("href=\"{PUBLIC}{}\"", clicks[0])),
        "{html}"
    );

    // Following the received link redirects to the original URL.
    let no_redirects = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects.get(s.url(&clicks[0])).send().unwrap();
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(response.headers()["location"].to_str().unwrap(), OFFER);
    s.settle();
    let contact = s.contact_by_user("mona")["id"].as_i64().unwrap();
    let events = |name: &str| -> Vec<Value> {
        s.timeline(contact)
            .into_iter()
            .filter(|e| e["type"] == "event" && e["name"] == name)
            .collect()
    };
    let clicked = events("Email Link Clicked");
    assert_eq!(clicked.len(), 1, "{clicked:#?}");
    assert_eq!(clicked[0]["properties"]["url"], OFFER);
    assert_eq!(clicked[0]["properties"]["message_id"], m["id"]);
    let m = only_message(&s, "mona");
    let clicked_at = m["clicked_at"].clone();
    assert!(clicked_at.is_string(), "{m:#}");
    let timeline_len = s.timeline(contact).len();

    // A tampered token (one character flipped): 404, no redirect, nothing recorded.
    let (payload, signature) = clicks[0]
        .trim_start_matches("/t/c/")
        .split_once('.')
        .unwrap();
    let mut flipped: Vec<char> = signature.chars().collect();
    flipped[3] = if flipped[3] == 'A' { 'B' } else { 'A' };
    let flipped: String = flipped.into_iter().collect();
    let bad = format!("/t/c/{payload}.{flipped}");
    assert_ne!(bad, clicks[0]);
    let response = no_redirects.get(s.url(&bad)).send().unwrap();
    assert_eq!(response.status().as_u16(), 404, "{bad}");
    assert!(response.headers().get("location").is_none());
    s.settle();
    assert_eq!(events("Email Link Clicked").len(), 1);
    assert_eq!(s.timeline(contact).len(), timeline_len);
    assert_eq!(only_message(&s, "mona")["clicked_at"], clicked_at);
}
