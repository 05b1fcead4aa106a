//! Concurrent delivery: many messages in flight at once over kept-alive connections, each
//! delivered once; a slow receiver does not hold up another; a send rate holds exactly however
//! many are in flight; a message someone waits for (a test send) goes before a journey's
//! backlog.
//!
//! The receivers here are real HTTP/1.1 servers with keep-alive, one thread per connection.
//! Nothing here is timed: the tests look at what the receivers saw (how many at once, in which
//! order, how many within a second), not at how long it took.

mod common;

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Arrival {
    at: Instant,
    path: String,
    /// Which TCP connection it came on (numbered from 0 in accept order).
    connection: usize,
    idempotency_key: String,
    body: String,
}

/// An HTTP/1.1 server that keeps connections alive, answers 200 after `delay`, and records
/// every request and the most requests it was handling at once.
struct Receiver {
    port: u16,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    most_at_once: Arc<AtomicUsize>,
}

impl Receiver {
    fn start(delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let now_handling = Arc::new(AtomicUsize::new(0));
        let (log, most) = (arrivals.clone(), most_at_once.clone());
        std::thread::spawn(move || {
            for (connection, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let (log, most, now_handling) = (log.clone(), most.clone(), now_handling.clone());
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    while let Some(ReceivedRequest {
                        path,
                        headers,
                        body,
                        ..
                    }) = read_request(&mut reader)
                    {
                        let at = Instant::now();
                        let handling = now_handling.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(handling, Ordering::SeqCst);
                        log.lock().unwrap().push(Arrival {
                            at,
                            path,
                            connection,
                            idempotency_key: headers
                                .get("x-waymark-idempotency-key")
                                .or_else(|| headers.get("idempotency-key"))
                                .cloned()
                                .unwrap_or_default(),
                            body,
                        });
                        std::thread::sleep(delay);
                        now_handling.fetch_sub(1, Ordering::SeqCst);
                        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if writer.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver {
            port,
            arrivals,
            most_at_once,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }

    /// Waits (real time, at most `limit`) until `n` requests arrived; returns them all.
    fn wait_for(&self, n: usize, limit: Duration) -> Vec<Arrival> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.arrivals();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A server on the system clock that may call these receivers, with `args` besides.
fn webhook_server(receivers: &[&Receiver], args: &[&str]) -> Server {
    let mut opts = ServerOptions::system_clock();
    opts.args = args.iter().map(|a| a.to_string()).collect();
    for r in receivers {
        opts.args.push("--webhook-allow-host".into());
        opts.args.push(format!("127.0.0.1:{}", r.port));
    }
    Server::start(opts)
}

/// Waits (real time, at most 30 s) until `n` webhooks are recorded sent.
fn wait_recorded_sent(s: &Server, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = s
            .messages_where(&[("channel", "webhook"), ("status", "sent")])
            .len();
        if sent == n {
            return;
        }
        assert!(Instant::now() < deadline, "{sent} of {n} recorded sent");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// On `event`, a webhook to `url`.
fn webhook_journey(id: &str, event: &str, url: &str) -> Value {
    json!({
        "id": id, "name": id,
        "nodes": [
            {"id": "start", "type": "trigger", "event": event},
            {"id": "call", "type": "webhook", "url": url},
        ],
        "edges": [{"from": "start", "to": "call"}],
    })
}

/// Sends `event` for users `{prefix}0` .. `{prefix}{n-1}`, in batches.
fn track_many(s: &Server, prefix: &str, n: usize, event: &str, traits: impl Fn(usize) -> Value) {
    let ids: Vec<usize> = (0..n).collect();
    for chunk in ids.chunks(250) {
        let mut items = Vec::new();
        for i in chunk {
            let user = format!("{prefix}{i}");
            items.push(json!({"type": "identify", "userId": user, "traits": traits(*i)}));
            items.push(json!({"type": "track", "userId": user, "event": event}));
        }
        s.batch(items).ok();
    }
}

/// Every key arrived exactly once.
fn assert_each_once(arrivals: &[Arrival], expected: usize) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for a in arrivals {
        *seen.entry(a.idempotency_key.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(seen.len(), expected, "distinct messages received");
}

#[test]
fn webhooks_go_out_many_at_once_over_kept_alive_connections_and_each_once() {
    let r = Receiver::start(Duration::from_millis(100));
    let s = webhook_server(&[&r], &[]);
    s.apply_journey(webhook_journey("notify", "Signed Up", &r.url("/hook")));
    let n = 300;
    track_many(&s, "u", n, "Signed Up", |_| json!({}));
    let got = r.wait_for(n, Duration::from_secs(120));
    assert_each_once(&got, n);
    // At 100 ms an answer, one at a time would take 30 s; the default allows 32 per host.
    let most = r.most_at_once.load(Ordering::SeqCst);
    assert!(
        (8..=32).contains(&most),
        "{most} requests at once (the default is at most 32 to one host)"
    );
    let connections: std::collections::BTreeSet<usize> = got.iter().map(|a| a.connection).collect();
    assert!(
        connections.len() <= 64,
        "{} connections for {n} requests: they are not kept alive",
        connections.len()
    );
    // The outbox says the same.
    wait_recorded_sent(&s, n);
}

#[test]
fn a_slow_receiver_does_not_hold_up_another() {
    let slow = Receiver::start(Duration::from_secs(3));
    let fast = Receiver::start(Duration::ZERO);
    let s = webhook_server(
        &[&slow, &fast],
        &[
            "--webhook-concurrency",
            "8",
            "--webhook-host-concurrency",
            "4",
        ],
    );
    s.apply_journey(webhook_journey("to-slow", "Slow", &slow.url("/hook")));
    s.apply_journey(webhook_journey("to-fast", "Fast", &fast.url("/hook")));
    // The slow receiver's messages are queued first.
    track_many(&s, "s", 40, "Slow", |_| json!({}));
    slow.wait_for(4, Duration::from_secs(30));
    track_many(&s, "f", 40, "Fast", |_| json!({}));
    let fast_got = fast.wait_for(40, Duration::from_secs(60));
    assert_each_once(&fast_got, 40);
    // The slow receiver answers 4 at a time every 3 s: its 9th request comes 6 s after its
    // first. Every fast one arrived before that.
    let slow_got = slow.wait_for(9, Duration::from_secs(60));
    assert!(slow_got.len() >= 9, "{} slow requests", slow_got.len());
    let last_fast = fast_got.iter().map(|a| a.at).max().unwrap();
    assert!(
        last_fast < slow_got[8].at,
        "the fast receiver's messages waited behind the slow receiver's"
    );
    assert!(
        slow.most_at_once.load(Ordering::SeqCst) <= 4,
        "more than 4 at once to one host"
    );
}

#[test]
fn an_sms_rate_of_50_a_second_holds_with_many_in_flight_and_every_sms_arrives_once() {
    let provider = Receiver::start(Duration::from_millis(5));
    let mut opts = ServerOptions::system_clock();
    opts.args = vec![
        "--sms-url".into(),
        provider.url("/sms"),
        "--sms-provider".into(),
        "json".into(),
        "--sms-from".into(),
        "+15550000000".into(),
        "--sms-rate".into(),
        "50".into(),
    ];
    let s = Server::start(opts);
    s.apply_journey(json!({
        "id": "texts", "name": "texts",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "text", "type": "send_sms", "template": "hello-sms"},
        ],
        "edges": [{"from": "start", "to": "text"}],
        "templates": [{"id": "hello-sms", "channel": "sms", "body": "Hello"}],
    }));
    let n = 2000;
    track_many(
        &s,
        "p",
        n,
        "Signed Up",
        |i| json!({"phone": format!("+1415555{i:04}")}),
    );
    let got = provider.wait_for(n, Duration::from_secs(120));
    assert_each_once(&got, n);
    let mut times: Vec<Instant> = got.iter().map(|a| a.at).collect();
    times.sort();
    let most_in_a_second = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| t.duration_since(times[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most_in_a_second <= 50,
        "{most_in_a_second} SMS reached the provider within one second"
    );
    assert!(
        provider.most_at_once.load(Ordering::SeqCst) > 1,
        "the SMS went one at a time"
    );
    assert!(got.iter().all(|a| a.body.contains("Hello")));
}

#[test]
fn a_test_send_goes_before_a_journeys_backlog() {
    // One email a second: the journey's 20 emails queue up behind their rate.
    let s = Server::start(ServerOptions {
        args: vec!["--email-rate".into(), "1".into()],
        ..Default::default()
    });
    s.apply_journey(json!({
        "id": "welcome", "name": "welcome",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "mail", "type": "send_email", "template": "hello"},
        ],
        "edges": [{"from": "start", "to": "mail"}],
        "templates": [{"id": "hello", "channel": "email", "subject": "Hello", "text": "Hello"}],
    }));
    track_many(
        &s,
        "e",
        20,
        "Signed Up",
        |i| json!({"email": format!("e{i}@example.com")}),
    );
    s.settle();
    let sent = |s: &Server| {
        s.messages_where(&[("channel", "email"), ("status", "sent")])
            .len()
    };
    assert_eq!(sent(&s), 1);
    s.advance(3);
    assert_eq!(sent(&s), 4);
    s.admin_post(
        "/v1/templates/hello/test-send",
        json!({"to": "tester@example.com"}),
    )
    .expect(202);
    // The next place is the test send's, although 16 journey emails were due before it.
    s.advance(1);
    let test_send = s
        .messages_where(&[("channel", "email")])
        .into_iter()
        .find(|m| m["recipient"] == "tester@example.com")
        .expect("the test send");
    assert_eq!(test_send["status"], "sent", "{test_send}");
    assert_eq!(test_send["priority"], "transactional", "{test_send}");
    assert_eq!(sent(&s), 5);
    s.advance(20);
    assert_eq!(sent(&s), 21);
}

#[test]
fn a_settle_waits_for_the_dispatch_loops_deliveries_then_delivers_the_rest() {
    // The dispatch loop takes both webhook slots for a receiver answering in 400 ms; a settle
    // (what `advance` does at every stop) called meanwhile returns only once all 10 are recorded
    // sent. It once found every slot taken, started nothing and returned with 8 still queued.
    let receiver = Receiver::start(Duration::from_millis(400));
    let s = Server::start(ServerOptions {
        args: vec![
            "--webhook-concurrency".into(),
            "2".into(),
            "--webhook-host-concurrency".into(),
            "2".into(),
            "--webhook-allow-host".into(),
            format!("127.0.0.1:{}", receiver.port),
        ],
        ..Default::default()
    });
    s.apply_journey(webhook_journey("hooks", "Go", &receiver.url("/hook")));
    track_many(&s, "u", 10, "Go", |_| json!({}));
    receiver.wait_for(1, Duration::from_secs(30));
    s.settle();
    let sent = s.messages_where(&[("channel", "webhook"), ("status", "sent")]);
    assert_eq!(sent.len(), 10, "recorded sent when the settle returned");
    assert_each_once(&receiver.arrivals(), 10);
}

#[test]
fn a_shutdown_waits_for_the_deliveries_in_flight_so_none_is_sent_again_after_a_restart() {
    let r = Receiver::start(Duration::from_secs(2));
    let mut s = webhook_server(&[&r], &[]);
    s.apply_journey(webhook_journey("notify", "Signed Up", &r.url("/hook")));
    track_many(&s, "t", 10, "Signed Up", |_| json!({}));
    // All ten are in flight, each answered 2 s after it arrived.
    let got = r.wait_for(10, Duration::from_secs(30));
    assert_eq!(got.len(), 10);
    let status = s.terminate();
    assert!(status.success(), "{status}: {}", s.all_output());
    assert!(s.output().contains("waymark stopped"), "{}", s.all_output());
    s.restart();
    let sent = s.messages_where(&[("channel", "webhook"), ("status", "sent")]);
    assert_eq!(sent.len(), 10, "recorded sent before the process stopped");
    std::thread::sleep(Duration::from_secs(3));
    assert_each_once(&r.arrivals(), 10);
}

#[test]
fn a_burst_of_one_journey_does_not_hold_up_another() {
    let r = Receiver::start(Duration::from_millis(100));
    let s = webhook_server(
        &[&r],
        &[
            "--webhook-concurrency",
            "2",
            "--webhook-host-concurrency",
            "2",
        ],
    );
    s.apply_journey(webhook_journey("burst", "Burst", &r.url("/burst")));
    s.apply_journey(webhook_journey("other", "Other", &r.url("/other")));
    // 60 webhooks of one journey, 2 at a time and 100 ms each: 3 s of work queued first.
    track_many(&s, "b", 60, "Burst", |_| json!({}));
    r.wait_for(2, Duration::from_secs(30));
    track_many(&s, "o", 4, "Other", |_| json!({}));
    let got = r.wait_for(64, Duration::from_secs(60));
    assert_each_once(&got, 64);
    // The journeys take turns: the other journey's four go out among the next few, not after
    // the whole burst.
    // The outbox shows each channel's queue, with the lane's size as configured.
    wait_recorded_sent(&s, 64);
    let outbox = s.admin_get("/v1/outbox").ok();
    let lanes = outbox["channels"].as_array().unwrap();
    let channels: Vec<&str> = lanes
        .iter()
        .map(|l| l["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["email", "sms", "webhook"], "{outbox}");
    let webhook = &lanes[2];
    assert_eq!(webhook["concurrency"], 2, "{outbox}");
    assert_eq!(webhook["queued"], 0, "{outbox}");
    assert_eq!(webhook["in_flight"], 0, "{outbox}");
    assert!(webhook["oldest_queued_at"].is_null(), "{outbox}");
    let last_other = got.iter().rposition(|a| a.path == "/other").unwrap();
    assert!(
        last_other < 24,
        "the other journey's last webhook was the {}th of 64: {:?}",
        last_other + 1,
        got.iter().map(|a| a.path.as_str()).collect::<Vec<_>>()
    );
}

#[test]
fn a_kill_in_the_middle_of_delivery_loses_nothing_and_repeats_at_most_what_was_in_flight() {
    let r = Receiver::start(Duration::from_millis(50));
    let mut s = webhook_server(&[&r], &[]);
    s.apply_journey(webhook_journey("notify", "Signed Up", &r.url("/hook")));
    let n = 400;
    track_many(&s, "k", n, "Signed Up", |_| json!({}));
    r.wait_for(100, Duration::from_secs(60));
    s.kill();
    let at_kill = r.arrivals().len();
    assert!(at_kill < n, "all {n} were delivered before the kill");
    s.restart();
    let deadline = Instant::now() + Duration::from_secs(120);
    let distinct = |got: &[Arrival]| {
        got.iter()
            .map(|a| a.idempotency_key.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    while distinct(&r.arrivals()) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = r.arrivals();
    // Every message arrived; only those in flight when the process died (at most 32 to this
    // host) may have come twice, with the same idempotency key for the receiver to drop.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for a in &got {
        *seen.entry(a.idempotency_key.as_str()).or_default() += 1;
    }
    assert_eq!(seen.len(), n, "distinct messages received");
    let repeated = seen.values().filter(|c| **c > 1).count();
    assert!(seen.values().all(|c| *c <= 2), "a message came three times");
    assert!(
        repeated <= 32,
        "{repeated} repeated: more than were in flight"
    );
    wait_recorded_sent(&s, n);
}
