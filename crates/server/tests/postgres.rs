//! What only `waymark serve --database` does: several processes sharing the engine's work on one
//! database. Everything else runs on both backends: the store's conformance suite, and the
//! end-to-end tests that `scripts/test` runs again with `WAYMARK_TEST_E2E_POSTGRES`. Skipped,
//! with a note, without `WAYMARK_TEST_DATABASE_URL`.

mod common;
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Lease time of the test processes: short, so that a takeover is quick to wait for.
const LEASE: &str = "2s";

fn process(url: &str) -> Server {
    Server::start(ServerOptions {
        backend: Backend::Postgres(url.to_string()),
        args: vec!["--lease-time".into(), LEASE.into()],
        ..ServerOptions::system_clock()
    })
}

/// Waits until `check` holds (or panics after `limit`, with `what`).
#[track_caller]
fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The partitions each live process holds, as `GET /v1/cluster` on `s` says, by process id.
fn holdings(s: &Server) -> (Vec<(String, usize)>, Vec<i64>) {
    let cluster = s.admin_get("/v1/cluster").ok();
    let held = cluster["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|p| p["alive"] == true)
        .map(|p| {
            (
                p["id"].as_str().expect("id").to_string(),
                p["partitions"].as_array().expect("partitions").len(),
            )
        })
        .collect();
    let unowned = cluster["unowned"]
        .as_array()
        .expect("unowned")
        .iter()
        .map(|p| p.as_i64().expect("partition"))
        .collect();
    (held, unowned)
}

/// Every user's sign-up gave exactly one confirmation (on whichever process it was sent to).
#[track_caller]
fn each_confirmed_once(s: &Server, users: &[String]) {
    for user in users {
        wait_until(
            Duration::from_secs(20),
            &format!("{user} confirmed"),
            || !s.messages(user).is_empty(),
        );
    }
    for user in users {
        assert_eq!(nodes_of(&s.messages(user)), ["confirmation"], "{user}");
    }
}

#[test]
fn processes_share_the_partitions_take_over_a_killed_ones_and_get_a_stopped_ones_at_once() {
    let Some(db) = TestDatabase::create("cluster") else {
        return;
    };
    let url = db.url();
    let a = process(&url);
    a.apply_example("welcome-series");
    let mut b = process(&url);
    let mut c = process(&url);

    // Three processes: 32 partitions shared 11, 11, 10, none left over.
    wait_until(Duration::from_secs(10), "three shares", || {
        let (held, unowned) = holdings(&a);
        let mut shares: Vec<usize> = held.iter().map(|(_, n)| *n).collect();
        shares.sort_unstable();
        shares == [10, 11, 11] && unowned.is_empty()
    });
    let cluster = a.admin_get("/v1/cluster").ok();
    assert_eq!(cluster["partitions"], 32, "{cluster}");
    assert_eq!(
        cluster["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["this_process"] == true)
            .count(),
        1,
        "{cluster}"
    );

    // Sign-ups sent to any process: each processed once, by the process holding its contact.
    let mut users = Vec::new();
    for i in 0..60 {
        let user = format!("first-{i}");
        let to = [&a, &b, &c][i % 3];
        to.batch(sign_up_batch(&user)).ok();
        users.push(user);
    }
    each_confirmed_once(&a, &users);

    // B is killed: its partitions are taken over once its lease runs out, and its contacts'
    // events, accepted by the others meanwhile, are processed then.
    b.kill();
    let killed = Instant::now();
    let mut later = Vec::new();
    for i in 0..30 {
        let user = format!("after-kill-{i}");
        [&a, &c][i % 2].batch(sign_up_batch(&user)).ok();
        later.push(user);
    }
    wait_until(Duration::from_secs(10), "B's partitions taken over", || {
        let (held, unowned) = holdings(&a);
        held.len() == 2 && held.iter().map(|(_, n)| n).sum::<usize>() == 32 && unowned.is_empty()
    });
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(4), "takeover took {took:?}");
    each_confirmed_once(&a, &later);
    assert!(
        a.output().contains("took over a partition")
            || c.output().contains("took over a partition"),
        "the takeover is logged"
    );

    // C stops cleanly: its partitions are free at once, and A takes them at its next heartbeat
    // (well before C's lease would have run out).
    let stopped = Instant::now();
    assert!(c.terminate().success());
    wait_until(Duration::from_secs(2), "C's partitions handed to A", || {
        let (held, _) = holdings(&a);
        held.len() == 1 && held[0].1 == 32
    });
    assert!(stopped.elapsed() < Duration::from_secs(2));
    let mut last = Vec::new();
    for i in 0..10 {
        let user = format!("alone-{i}");
        a.batch(sign_up_batch(&user)).ok();
        last.push(user);
    }
    each_confirmed_once(&a, &last);
    // Nobody else got a confirmation, and no sign-up was processed twice.
    let confirmations = a
        .messages_where(&[])
        .into_iter()
        .filter(|m| m["node"] == "confirmation")
        .count();
    assert_eq!(confirmations, users.len() + later.len() + last.len());

    // B comes back: it gets a share again, handed over by A.
    b.restart();
    wait_until(Duration::from_secs(10), "A hands B its share", || {
        let (held, _) = holdings(&a);
        held.len() == 2 && held.iter().all(|(_, n)| *n == 16)
    });
}

#[test]
fn a_journey_published_on_one_process_runs_on_the_others() {
    let Some(db) = TestDatabase::create("cluster_publish") else {
        return;
    };
    let url = db.url();
    let a = process(&url);
    let b = process(&url);
    wait_until(Duration::from_secs(10), "two shares", || {
        holdings(&a).0.iter().map(|(_, n)| *n).collect::<Vec<_>>() == [16, 16]
    });
    // Published through A, after B started: B reloads its journeys and enrolls the contacts
    // of its partitions.
    a.apply_example("welcome-series");
    std::thread::sleep(Duration::from_secs(1));
    let users: Vec<String> = (0..20).map(|i| format!("user-{i}")).collect();
    for user in &users {
        b.batch(sign_up_batch(user)).ok();
    }
    each_confirmed_once(&b, &users);
}

/// How long a cart waits for its order before the reminder (real time).
const CART_WAIT_SECONDS: u64 = 3;

/// A webhook receiver that answers 200 and keeps, per user in the body, the idempotency keys
/// of the deliveries it got (a copy after a crash carries the same key).
struct Reminders {
    port: u16,
    by_user: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl Reminders {
    fn start() -> Reminders {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        let by_user: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let log = by_user.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    while let Some(request) = read_request(&mut reader) {
                        let body: Value = serde_json::from_str(&request.body).unwrap_or_default();
                        let user = body["user"].as_str().unwrap_or("?").to_string();
                        let key = request
                            .headers
                            .get("x-waymark-idempotency-key")
                            .cloned()
                            .unwrap_or_default();
                        log.lock().unwrap().entry(user).or_default().push(key);
                        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Reminders { port, by_user }
    }

    fn got(&self) -> HashMap<String, Vec<String>> {
        self.by_user.lock().unwrap().clone()
    }
}

fn cart_journey(receiver: u16) -> Value {
    json!({
        "id": "cart", "name": "Abandoned cart",
        "entry": { "reentry": "once" },
        "nodes": [
            { "id": "added", "type": "trigger", "event": "Added To Cart" },
            { "id": "wait", "type": "wait_for_event", "event": "Order Completed",
              "timeout": format!("{CART_WAIT_SECONDS}s") },
            { "id": "bought", "type": "exit" },
            { "id": "remind", "type": "webhook", "url": format!("http://127.0.0.1:{receiver}/remind"),
              "body": r#"{"user": {{ contact.user_id | json }}}"# },
        ],
        "edges": [
            { "from": "added", "to": "wait" },
            { "from": "wait", "to": "bought", "output": "event" },
            { "from": "wait", "to": "remind", "output": "timeout" },
        ],
    })
}

/// Posts one event until some process accepts it (200), trying the processes in turn: the
/// one asked may have just been killed. The message id makes a repeat harmless.
fn post_until_accepted(addresses: &Mutex<Vec<String>>, user: &str, event: &str, turn: &mut usize) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let body = json!({"batch": [{"type": "track", "userId": user, "event": event,
                                 "messageId": format!("{user}-{event}")}]});
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let base = {
            let addresses = addresses.lock().unwrap();
            *turn += 1;
            addresses[*turn % addresses.len()].clone()
        };
        let answer = client
            .post(format!("{base}/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&body)
            .send();
        if matches!(&answer, Ok(a) if a.status().as_u16() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{user} {event} never accepted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `text` without the terminal colour codes of the log lines (`ESC [ … m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn three_processes_killed_in_turn_lose_no_cart_and_remind_each_abandoned_one_once() {
    let Some(db) = TestDatabase::create("cluster_crash") else {
        return;
    };
    let url = db.url();
    let receiver = Reminders::start();
    let start = || {
        Server::start(ServerOptions {
            backend: Backend::Postgres(url.clone()),
            args: vec![
                "--lease-time".into(),
                LEASE.into(),
                "--webhook-allow-host".into(),
                format!("127.0.0.1:{}", receiver.port),
            ],
            ..ServerOptions::system_clock()
        })
    };
    let mut processes = [start(), start(), start()];
    processes[0].apply_journey(cart_journey(receiver.port));
    let addresses = Arc::new(Mutex::new(
        processes.iter().map(|p| p.url("")).collect::<Vec<_>>(),
    ));

    // Shoppers: every cart is a new contact; every even one orders half a second later, well
    // before its reminder is due. Each event is retried until a process accepts it.
    let carts = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let shoppers: Vec<_> = (0..2)
        .map(|shopper| {
            let (addresses, carts, stop) = (addresses.clone(), carts.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut turn = shopper;
                while !stop.load(Ordering::SeqCst) {
                    let i = carts.fetch_add(1, Ordering::SeqCst);
                    let user = format!("shopper-{i}");
                    post_until_accepted(&addresses, &user, "Added To Cart", &mut turn);
                    if i % 2 == 0 {
                        std::thread::sleep(Duration::from_millis(500));
                        post_until_accepted(&addresses, &user, "Order Completed", &mut turn);
                    }
                }
            })
        })
        .collect();

    // A random process is killed every second or two, and restarted after 0 to 3 s: at once it
    // takes its partitions back as the same node; later, the others have taken them over.
    let mut seed: u64 = 0x5eed_cafe;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(1_000 + random(1_000)));
        let victim = random(3) as usize;
        processes[victim].kill();
        std::thread::sleep(Duration::from_millis(random(3_000)));
        processes[victim].restart();
        addresses.lock().unwrap()[victim] = processes[victim].url("");
    }
    stop.store(true, Ordering::SeqCst);
    for shopper in shoppers {
        shopper.join().expect("shopper");
    }
    let n = carts.load(Ordering::SeqCst);
    assert!(n >= 50, "only {n} carts");

    // Every abandoned cart gets its reminder; none of the others.
    let abandoned: Vec<String> = (0..n)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("shopper-{i}"))
        .collect();
    wait_until(Duration::from_secs(60), "every reminder", || {
        let got = receiver.got();
        abandoned.iter().all(|u| got.contains_key(u))
    });
    std::thread::sleep(Duration::from_secs(CART_WAIT_SECONDS + 2));
    let got = receiver.got();
    let a = &processes[0];
    let mut copies = 0;
    for i in 0..n {
        let user = format!("shopper-{i}");
        let keys: HashSet<&String> = got
            .get(&user)
            .map(|k| k.iter().collect())
            .unwrap_or_default();
        if i % 2 == 0 {
            assert!(keys.is_empty(), "{user} ordered but was reminded");
        } else {
            assert_eq!(keys.len(), 1, "{user}: one reminder (by idempotency key)");
            copies += got[&user].len() - 1;
        }
        // Every accepted event is stored once.
        let contact = a.contact_by_user(&user);
        let id = contact["id"].as_i64().expect("contact id");
        assert_eq!(a.events_named(id, "Added To Cart").len(), 1, "{user}");
        let orders = a.events_named(id, "Order Completed").len();
        assert_eq!(orders, usize::from(i % 2 == 0), "{user}");
        // No enrollment is left waiting.
        let enrollments = contact["enrollments"].as_array().expect("enrollments");
        assert_eq!(enrollments.len(), 1, "{user}: {contact}");
        assert_ne!(
            enrollments[0]["status"], "active",
            "{user} stuck: {contact}"
        );
    }
    // The longest takeover, as the processes logged it.
    let longest = processes
        .iter()
        .flat_map(|p| {
            without_colours(&p.all_output())
                .lines()
                .filter_map(|l| {
                    let at = l.find("seconds_since_heard=")? + "seconds_since_heard=".len();
                    l[at..].split_whitespace().next()?.parse::<f64>().ok()
                })
                .collect::<Vec<_>>()
        })
        .fold(0.0, f64::max);
    eprintln!(
        "{n} carts, 12 kills; longest takeover {longest:.2}s after the holder was last heard; \
         {copies} reminder deliveries repeated after a kill (same idempotency key)"
    );
    assert!(longest < 5.0, "takeover took {longest}s");
}
