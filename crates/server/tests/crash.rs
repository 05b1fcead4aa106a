//! Crash safety of the real process (DESIGN.md, "Durable before visible"): SIGKILL at awkward
//! moments, restart on the same data directory, and check that every acknowledged event is
//! there, that durable timers still fire, that no message is ever created twice, that no
//! enrollment is left stuck, and that the simulated clock resumes where it stood. SIGTERM must
//! drain, print `waymark stopped` and exit 0.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

// ---- small private helpers ----

/// splitmix64: a tiny deterministic PRNG, so that every iteration of the crash loop is
/// reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Every message matching the filters, following `after` across pages, oldest first.
fn all_messages(s: &Server, filters: &[(&str, &str)]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut after = 0i64;
    loop {
        let after_s = after.to_string();
        let mut f = filters.to_vec();
        f.push(("after", &after_s));
        let page = s.messages_where(&f);
        let n = page.len();
        if let Some(last) = page.last() {
            after = last["id"].as_i64().expect("message id");
        }
        out.extend(page);
        if n < 1000 {
            return out;
        }
    }
}

/// Asserts that no two messages share an idempotency key (nor a row id).
#[track_caller]
fn assert_unique_keys(messages: &[Value]) {
    let mut keys = HashSet::new();
    let mut ids = HashSet::new();
    for m in messages {
        let key = m["idempotency_key"].as_str().expect("idempotency_key");
        assert!(
            !key.is_empty(),
            "a message has an empty idempotency key: {m}"
        );
        assert!(
            keys.insert(key.to_string()),
            "two messages share the idempotency key `{key}`: {m}"
        );
        assert!(
            ids.insert(m["id"].as_i64().expect("id")),
            "duplicate id: {m}"
        );
    }
}

/// A gauge or counter from `/metrics` (after the endpoint refreshed its gauges).
#[track_caller]
fn metric(s: &Server, name: &str) -> f64 {
    let r = s.get("/metrics");
    assert_eq!(r.status, 200, "/metrics: {}", r.text);
    r.text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{name}` in /metrics:\n{}", r.text))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("`{name}` is not a number: {e}"))
}

/// The contact's events (timeline entries of type `event`), in ingest order (by `seq`).
#[track_caller]
fn events_of(s: &Server, contact_id: i64) -> Vec<Value> {
    let body = s
        .admin_get(&format!("/v1/contacts/{contact_id}/timeline?limit=10000"))
        .ok();
    let mut events: Vec<Value> = body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["type"] == "event")
        .cloned()
        .collect();
    events.sort_by_key(|e| e["seq"].as_i64().expect("seq"));
    events
}

#[track_caller]
fn event_names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect()
}

/// Asserts that the contact has no enrollment still `active`.
#[track_caller]
fn assert_no_active_enrollment(contact: &Value) {
    for e in contact["enrollments"].as_array().expect("enrollments") {
        assert_ne!(
            e["status"], "active",
            "enrollment left active at node `{}` of `{}` after every timeout passed: {contact}",
            e["node"], e["journey_id"]
        );
        assert!(
            e["wake_at"].is_null(),
            "a finished enrollment keeps a timer: {e}"
        );
    }
}

/// The status of the contact's single enrollment in `journey`.
#[track_caller]
fn enrollment_status(contact: &Value, journey: &str) -> String {
    let all: Vec<&Value> = contact["enrollments"]
        .as_array()
        .expect("enrollments")
        .iter()
        .filter(|e| e["journey_id"] == journey)
        .collect();
    assert_eq!(
        all.len(),
        1,
        "expected one enrollment in `{journey}`: {contact}"
    );
    all[0]["status"].as_str().expect("status").to_string()
}

// ---- bursts of batch requests for the crash loop ----

/// One `/v1/batch` request: for each of its users an identify (with email), a `Signed Up`
/// track and a page call, each with its own `messageId`.
#[derive(Clone)]
struct Burst {
    id: String,
    users: Vec<String>,
    items: Vec<Value>,
}

fn burst(tag: &str, thread: usize, n: usize, users: usize) -> Burst {
    let id = format!("{tag}-t{thread}-b{n:02}");
    let users: Vec<String> = (0..users).map(|k| format!("{id}-u{k}")).collect();
    let mut items = Vec::new();
    for u in &users {
        items.push(json!({
            "type": "identify", "userId": u, "messageId": format!("{u}-identify"),
            "traits": { "email": format!("{u}@example.com"), "burst": id },
        }));
        items.push(json!({
            "type": "track", "userId": u, "messageId": format!("{u}-signed-up"),
            "event": "Signed Up", "properties": { "burst": id },
        }));
        items.push(json!({
            "type": "page", "userId": u, "messageId": format!("{u}-page"),
            "name": "Welcome", "properties": { "burst": id },
        }));
    }
    Burst { id, users, items }
}

#[derive(Debug)]
enum Outcome {
    /// 200 with `success: true`: the server says every call is durable.
    Acked(Value),
    /// Any other complete answer (never expected here).
    Refused(u16, String),
    /// No complete answer: the process died under the request.
    Unanswered(String),
    /// Not sent, because the server had already gone.
    NotSent,
}

/// Sends the bursts one after the other on one connection, stopping at the first request that
/// gets no answer. `answered` counts complete answers, so that the killer can aim.
fn send_bursts(base: String, bursts: Vec<Burst>, answered: Arc<AtomicUsize>) -> Vec<Outcome> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    let mut out = Vec::with_capacity(bursts.len());
    let mut gone = false;
    for b in &bursts {
        if gone {
            out.push(Outcome::NotSent);
            continue;
        }
        let sent = client
            .post(format!("{base}/v1/batch"))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&json!({ "batch": b.items }))
            .send();
        let outcome = match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.text() {
                    Ok(text) => {
                        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        if status == 200 && body["success"] == true {
                            Outcome::Acked(body)
                        } else {
                            Outcome::Refused(status, text)
                        }
                    }
                    Err(e) => Outcome::Unanswered(format!("status {status}, body lost: {e}")),
                }
            }
            Err(e) => Outcome::Unanswered(e.to_string()),
        };
        gone = matches!(outcome, Outcome::Unanswered(_));
        if !gone {
            answered.fetch_add(1, Ordering::SeqCst);
        }
        out.push(outcome);
    }
    out
}

/// Waits until the senders got `n` answers in all (or all finished), at most 60 s.
fn wait_for_answers(
    answered: &AtomicUsize,
    n: usize,
    senders: &[thread::JoinHandle<Vec<Outcome>>],
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < n
        && !senders.iter().all(|h| h.is_finished())
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_micros(200));
    }
}

/// The burst's users that have a contact, by user id (one exact look-up per user).
#[track_caller]
fn burst_contacts(s: &Server, b: &Burst) -> BTreeMap<String, Value> {
    b.users
        .iter()
        .filter_map(|u| {
            let body = s
                .admin_get(&format!("/v1/contacts?user_id={}", encode(u)))
                .ok();
            let found = body["contacts"].as_array().expect("contacts");
            assert!(found.len() <= 1, "several contacts for {u}: {body}");
            found.first().map(|c| (u.clone(), c.clone()))
        })
        .collect()
}

/// Asserts that every call of the burst is stored exactly once.
#[track_caller]
fn assert_burst_present(s: &Server, b: &Burst, why: &str) {
    let contacts = burst_contacts(s, b);
    let found: Vec<&String> = contacts.keys().collect();
    let wanted: Vec<&String> = b.users.iter().collect();
    assert_eq!(found, wanted, "{why}: contacts of burst {}", b.id);
    for u in &b.users {
        let c = &contacts[u];
        assert_eq!(
            c["email"],
            format!("{u}@example.com"),
            "{why}: email of {u}: {c}"
        );
        assert_eq!(c["traits"]["burst"], b.id, "{why}: traits of {u}: {c}");
        let events = events_of(s, c["id"].as_i64().unwrap());
        assert_eq!(
            event_names(&events),
            ["Identify", "Signed Up", "Page Viewed"],
            "{why}: events of {u}: {events:?}"
        );
        for e in &events {
            assert_eq!(e["properties"]["burst"], b.id, "{why}: {u}: {e}");
        }
    }
}

/// Asserts that the welcome series sent exactly one message per user, each from `nodes[i]`
/// after `nodes.len()` steps, and nothing to anyone else.
#[track_caller]
fn assert_welcome_messages(s: &Server, users: &HashSet<String>, nodes: &[&str]) {
    let messages = all_messages(s, &[("journey_id", "welcome-series")]);
    assert_unique_keys(&messages);
    let mut per_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &messages {
        let u = m["user_id"].as_str().expect("user_id").to_string();
        assert!(users.contains(&u), "a message for an unknown user: {m}");
        assert_eq!(m["recipient"], format!("{u}@example.com"), "{m}");
        per_user
            .entry(u)
            .or_default()
            .push(m["node"].as_str().unwrap().to_string());
    }
    for u in users {
        let got = per_user.get(u).cloned().unwrap_or_default();
        assert_eq!(got, nodes, "welcome-series messages of {u}");
    }
    assert_eq!(messages.len(), users.len() * nodes.len());
}

// ---- the tests ----

#[test]
fn sigkill_mid_journey_keeps_acknowledged_events_and_timers_and_sends_each_message_once() {
    let mut s = Server::simulated();
    for j in [
        "welcome-series",
        "abandoned-cart",
        "first-purchase-feedback",
    ] {
        assert_eq!(s.apply_example(j)["live_version"], 1, "{j}");
    }
    let welcome: Vec<String> = (0..6).map(|i| format!("crash-w{i}")).collect();
    let carts: Vec<String> = (0..4).map(|i| format!("crash-c{i}")).collect();
    for (i, u) in welcome.iter().chain(&carts).enumerate() {
        let r = s.identify(
            u,
            json!({ "email": format!("{u}@example.com"), "phone": format!("+336123450{i:02}") }),
        );
        assert_eq!(r.ok()["accepted"], 1, "identify {u}");
    }
    for u in &welcome {
        let r = s.track(u, "Signed Up", json!({ "plan": "free" }));
        assert_eq!(r.ok()["accepted"], 1, "Signed Up {u}");
    }
    let added = |u: &str| json!({ "cart_id": format!("cart-{u}"), "products": [{ "name": "Mug", "quantity": 2 }] });
    for u in &carts[..2] {
        assert_eq!(s.track(u, "Product Added", added(u)).ok()["accepted"], 1);
    }
    let cart_batch: Vec<Value> = carts[2..]
        .iter()
        .map(|u| {
            json!({ "type": "track", "userId": u, "event": "Product Added",
                    "messageId": format!("{u}-added"), "properties": added(u) })
        })
        .collect();
    let r = s.batch(cart_batch.clone()).ok();
    assert_eq!(
        (r["accepted"].clone(), r["duplicates"].clone()),
        (json!(2), json!(0))
    );

    let start = s.now();

    // SIGKILL right after the last 200: nothing was settled on purpose.
    s.kill();
    s.restart();
    assert_eq!(
        s.now(),
        start,
        "the simulated clock moved across the restart"
    );
    // A client retrying the batch after the crash must not enrol anyone twice.
    let r = s.batch(cart_batch).ok();
    assert_eq!(
        (r["accepted"].clone(), r["duplicates"].clone()),
        (json!(0), json!(2))
    );
    s.settle();

    for u in &welcome {
        let c = s.contact_by_user(u);
        assert_eq!(c["email"], format!("{u}@example.com"));
        let events = events_of(&s, c["id"].as_i64().unwrap());
        assert_eq!(event_names(&events), ["Identify", "Signed Up"], "{u}");
        assert_eq!(events[1]["properties"]["plan"], "free");
        let m = s.messages(u);
        assert_eq!(templates_of(&m), ["welcome-confirmation"], "{u}: {m:?}");
        assert_eq!(m[0]["recipient"], format!("{u}@example.com"));
        assert_eq!(m[0]["status"], "sent", "{u}: {m:?}");
        // Waiting two days, on a durable timer.
        let e = &c["enrollments"][0];
        assert_eq!(
            (
                e["journey_id"].clone(),
                e["node"].clone(),
                e["status"].clone()
            ),
            (
                json!("welcome-series"),
                json!("wait-2-days"),
                json!("active")
            ),
            "{c}"
        );
        assert!(e["wake_at"].is_string(), "no timer: {e}");
    }
    for u in &carts {
        let c = s.contact_by_user(u);
        let events = events_of(&s, c["id"].as_i64().unwrap());
        assert_eq!(event_names(&events), ["Identify", "Product Added"], "{u}");
        assert_eq!(events[1]["properties"]["cart_id"], format!("cart-{u}"));
        assert!(s.messages(u).is_empty(), "{u} got a message too early");
        assert_eq!(enrollment_status(&c, "abandoned-cart"), "active");
    }

    // One day later the cart reminders go out; then crash-c0 orders its cart, and the process
    // dies straight after acknowledging that order.
    let day1 = s.advance(DAY);
    for u in &carts {
        assert_eq!(templates_of(&s.messages(u)), ["cart-reminder-email"], "{u}");
    }
    for u in &welcome {
        assert_eq!(s.messages(u).len(), 1, "{u} got the content email early");
    }
    let r = s.track(
        "crash-c0",
        "Order Completed",
        json!({ "cart_id": "cart-crash-c0", "total": 30 }),
    );
    assert_eq!(r.ok()["accepted"], 1);
    s.kill();
    s.restart();
    assert_eq!(
        s.now(),
        day1,
        "the simulated clock moved across the restart"
    );
    s.settle();
    assert_eq!(
        templates_of(&s.messages("crash-c0")),
        ["cart-reminder-email", "feedback-request"],
        "the acknowledged order was lost or processed twice"
    );
    let c0 = s.contact_by_user("crash-c0");
    assert_eq!(enrollment_status(&c0, "abandoned-cart"), "converted");

    // Die in the middle of a long advance (timers firing, messages being dispatched).
    let base = s.base.clone();
    let advancing = thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(format!("{base}/v1/clock/advance"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "seconds": 10 * DAY }))
            .timeout(Duration::from_secs(60))
            .send()
            .map(|r| r.status().as_u16())
    });
    thread::sleep(Duration::from_millis(20));
    s.kill();
    let _ = advancing.join().expect("advance thread");
    s.restart();
    s.advance(10 * DAY);

    // Every timer fired exactly once, nothing was sent twice, nobody is stuck.
    for u in &welcome {
        let m = s.messages(u);
        assert_eq!(
            templates_of(&m),
            [
                "welcome-confirmation",
                "welcome-content",
                "welcome-feedback"
            ],
            "{u}"
        );
        assert_eq!(nodes_of(&m), ["confirmation", "content", "feedback"]);
        let c = s.contact_by_user(u);
        assert_eq!(enrollment_status(&c, "welcome-series"), "completed");
        assert_no_active_enrollment(&c);
    }
    assert_eq!(
        templates_of(&s.messages("crash-c0")),
        ["cart-reminder-email", "feedback-request"]
    );
    let c0 = s.contact_by_user("crash-c0");
    assert_eq!(
        event_names(&events_of(&s, c0["id"].as_i64().unwrap())),
        ["Identify", "Product Added", "Order Completed"]
    );
    assert_eq!(enrollment_status(&c0, "abandoned-cart"), "converted");
    assert_no_active_enrollment(&c0);
    for u in &carts[1..] {
        let m = s.messages(u);
        assert_eq!(
            templates_of(&m),
            ["cart-reminder-email", "cart-reminder-sms"],
            "{u}"
        );
        let k: usize = u.trim_start_matches("crash-c").parse().unwrap();
        assert_eq!(
            m[1]["recipient"],
            format!("+336123450{:02}", 6 + k),
            "{m:?}"
        );
        let c = s.contact_by_user(u);
        assert_ne!(enrollment_status(&c, "abandoned-cart"), "active");
        assert_no_active_enrollment(&c);
    }
    let all = all_messages(&s, &[]);
    assert_unique_keys(&all);
    assert_eq!(all.len(), 6 * 3 + 2 + 3 * 2, "{all:?}");
    for m in &all {
        assert_eq!(m["status"], "sent", "{m}");
    }
    assert_eq!(metric(&s, "waymark_enrollments_active"), 0.0);
    assert_eq!(metric(&s, "waymark_timers_waiting"), 0.0);
    assert_eq!(metric(&s, "waymark_events_pending"), 0.0);
    assert_eq!(metric(&s, "waymark_messages_queued"), 0.0);
}

#[test]
fn kill_during_batch_bursts_loses_no_acknowledged_event_and_never_sends_twice() {
    const ITERATIONS: u64 = 20;
    const THREADS: usize = 2;
    const BURSTS_PER_THREAD: usize = 25;
    let mut s = Server::simulated();
    s.apply_example("welcome-series");
    let mut everyone: HashSet<String> = HashSet::new();
    let (mut acked_total, mut unanswered_total, mut committed_unanswered) = (0, 0, 0);
    for iteration in 0..ITERATIONS {
        let mut rng = Rng::new(0x00C0_FFEE ^ (iteration * 7919));
        let tag = format!("loop{iteration:02}");
        let plans: Vec<Vec<Burst>> = (0..THREADS)
            .map(|t| {
                (0..BURSTS_PER_THREAD)
                    .map(|n| burst(&tag, t, n, 1 + rng.below(4) as usize))
                    .collect()
            })
            .collect();
        let answered = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = plans
            .iter()
            .map(|plan| {
                let base = s.base.clone();
                let plan = plan.clone();
                let answered = answered.clone();
                thread::spawn(move || send_bursts(base, plan, answered))
            })
            .collect();
        // Aim somewhere inside the stream of requests, then a little further at random.
        let after = rng.below((THREADS * BURSTS_PER_THREAD) as u64 - 4) as usize;
        let delay = rng.below(3000);
        wait_for_answers(&answered, after, &senders);
        thread::sleep(Duration::from_micros(delay));
        s.kill();
        let outcomes: Vec<Vec<Outcome>> = senders
            .into_iter()
            .map(|h| h.join().expect("sender thread"))
            .collect();
        s.restart();
        s.settle();

        let why = |what: &str| {
            format!("iteration {iteration} (killed {delay} µs after {after} answers), {what}")
        };
        let mut acked: Vec<&Burst> = Vec::new();
        for (plan, outs) in plans.iter().zip(&outcomes) {
            for (b, outcome) in plan.iter().zip(outs) {
                match outcome {
                    Outcome::Acked(body) => {
                        assert_eq!(
                            body["accepted"].as_u64(),
                            Some(b.items.len() as u64),
                            "{}",
                            why(&format!("answer for {}", b.id))
                        );
                        assert_burst_present(&s, b, &why("acknowledged batch"));
                        acked.push(b);
                        acked_total += 1;
                    }
                    Outcome::Refused(status, text) => {
                        panic!("{}: {status} {text}", why(&format!("{} refused", b.id)))
                    }
                    Outcome::Unanswered(error) => {
                        // One transaction: all of it or none of it.
                        unanswered_total += 1;
                        let found = burst_contacts(&s, b);
                        if found.is_empty() {
                            let r = s.batch(b.items.clone()).ok();
                            assert_eq!(r["accepted"].as_u64(), Some(b.items.len() as u64));
                        } else {
                            committed_unanswered += 1;
                            assert_burst_present(
                                &s,
                                b,
                                &why(&format!("unanswered batch ({error}), half-stored?")),
                            );
                            let r = s.batch(b.items.clone()).ok();
                            assert_eq!(
                                (r["accepted"].as_u64(), r["duplicates"].as_u64()),
                                (Some(0), Some(b.items.len() as u64)),
                                "{}",
                                why("retrying a committed batch")
                            );
                        }
                    }
                    Outcome::NotSent => {
                        assert!(burst_contacts(&s, b).is_empty(), "{}", why(&b.id));
                        let r = s.batch(b.items.clone()).ok();
                        assert_eq!(r["accepted"].as_u64(), Some(b.items.len() as u64));
                    }
                }
            }
        }
        // A client that retries a batch it already got a 200 for changes nothing.
        if !acked.is_empty() {
            let b = acked[rng.below(acked.len() as u64) as usize];
            let r = s.batch(b.items.clone()).ok();
            assert_eq!(
                (r["accepted"].as_u64(), r["duplicates"].as_u64()),
                (Some(0), Some(b.items.len() as u64)),
                "{}",
                why("retrying an acknowledged batch")
            );
        }
        s.settle();
        for (plan, outs) in plans.iter().zip(&outcomes) {
            for (b, outcome) in plan.iter().zip(outs) {
                // Acknowledged ones were checked above and their retry changed nothing.
                if !matches!(outcome, Outcome::Acked(_)) {
                    assert_burst_present(&s, b, &why("after retries"));
                }
                everyone.extend(b.users.iter().cloned());
            }
        }
        // One confirmation per user who signed up, never more.
        assert_welcome_messages(&s, &everyone, &["confirmation"]);
        assert_eq!(metric(&s, "waymark_events_pending"), 0.0, "{}", why(""));
        assert_eq!(metric(&s, "waymark_messages_queued"), 0.0, "{}", why(""));
    }
    eprintln!(
        "{ITERATIONS} crashes: {acked_total} batches acknowledged, {unanswered_total} unanswered \
         ({committed_unanswered} of them committed), {} users",
        everyone.len()
    );
    assert!(
        acked_total > 0,
        "no batch was ever acknowledged before a kill"
    );
    assert!(
        unanswered_total > 0,
        "no kill ever landed in the middle of a request; the test proves little"
    );

    // The timers of every enrollment survived all those crashes.
    s.advance(8 * DAY);
    assert_welcome_messages(&s, &everyone, &["confirmation", "content", "feedback"]);
    assert_eq!(metric(&s, "waymark_enrollments_active"), 0.0);
    assert_eq!(metric(&s, "waymark_timers_waiting"), 0.0);
    let stats = s.stats("welcome-series");
    assert_eq!(
        stats["entered"].as_u64(),
        Some(everyone.len() as u64),
        "{stats}"
    );
    assert_eq!(
        stats["completed"].as_u64(),
        Some(everyone.len() as u64),
        "{stats}"
    );
}

/// Signs up `per_hour` users (with an email) at each of `hours` consecutive simulated hours,
/// so that the welcome series' timers fall due at many different times. Returns the users.
fn spread_signups(s: &Server, hours: usize, per_hour: usize) -> HashSet<String> {
    let mut users = HashSet::new();
    for h in 0..hours {
        let mut items = Vec::new();
        for k in 0..per_hour {
            let u = format!("spread-{h:02}-{k:02}");
            items.push(json!({ "type": "identify", "userId": u,
                               "traits": { "email": format!("{u}@example.com") } }));
            items.push(json!({ "type": "track", "userId": u, "event": "Signed Up" }));
            users.insert(u);
        }
        s.batch(items).ok();
        s.advance(HOUR);
    }
    users
}

/// Starts `advance(seconds)` and SIGKILLs the server as soon as the advance has visibly fired
/// timers (more than `messages_before` messages), i.e. in the middle of it. Returns whether the
/// kill landed before the advance answered.
fn kill_mid_advance(s: &mut Server, seconds: i64, messages_before: usize) -> bool {
    let base = s.base.clone();
    let advancing = thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(format!("{base}/v1/clock/advance"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "seconds": seconds }))
            .timeout(Duration::from_secs(120))
            .send()
            .map(|r| r.status().as_u16())
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !advancing.is_finished() && Instant::now() < deadline {
        let n = s.admin_get("/v1/messages?limit=1000").ok()["messages"]
            .as_array()
            .map_or(0, Vec::len);
        if n > messages_before {
            break;
        }
        thread::sleep(Duration::from_millis(2));
    }
    s.kill();
    let answered = advancing.join().expect("advance thread");
    !matches!(answered, Ok(200))
}

#[test]
fn kill_in_the_middle_of_an_advance_fires_every_timer_exactly_once() {
    let mut s = Server::simulated();
    s.apply_example("welcome-series");
    let users = spread_signups(&s, 24, 20);
    assert_welcome_messages(&s, &users, &["confirmation"]);
    let mid = kill_mid_advance(&mut s, 10 * DAY, users.len());
    assert!(
        mid,
        "the advance finished before the kill; the test proves little"
    );
    s.restart();
    s.settle();
    // Whatever fired before the kill is there once; the rest fires now, once.
    s.advance(10 * DAY);
    assert_welcome_messages(&s, &users, &["confirmation", "content", "feedback"]);
    assert_eq!(metric(&s, "waymark_enrollments_active"), 0.0);
    assert_eq!(metric(&s, "waymark_timers_waiting"), 0.0);
    assert_eq!(metric(&s, "waymark_messages_queued"), 0.0);
}

#[test]
fn simulated_clock_never_restarts_behind_what_already_happened() {
    let mut s = Server::simulated();
    s.apply_example("welcome-series");
    let users = spread_signups(&s, 24, 20);
    let mid = kill_mid_advance(&mut s, 10 * DAY, users.len());
    assert!(
        mid,
        "the advance finished before the kill; the test proves little"
    );
    s.restart();
    let now = s.now();
    let latest = all_messages(&s, &[])
        .iter()
        .map(|m| m["created_at"].as_str().expect("created_at").to_string())
        .max()
        .expect("messages");
    let (now_t, latest_t): (jiff::Timestamp, jiff::Timestamp) =
        (now.parse().unwrap(), latest.parse().unwrap());
    assert!(
        now_t >= latest_t,
        "after the restart the simulated clock reads {now}, but a message was already \
         created at {latest}: time went backwards"
    );
}

#[test]
fn simulated_clock_survives_a_kill_after_advancing() {
    let mut s = Server::simulated();
    let advanced = s.advance(5 * DAY + 3 * HOUR + 7);
    assert_eq!(s.now(), advanced);
    s.kill();
    s.restart();
    let clock = s.admin_get("/v1/clock").ok();
    assert_eq!(clock["now"], advanced, "{clock}");
    assert_eq!(clock["simulated"], true);
    // And it goes on from there.
    let later = s.advance(HOUR);
    let (a, b): (jiff::Timestamp, jiff::Timestamp) =
        (advanced.parse().unwrap(), later.parse().unwrap());
    assert_eq!(
        b.duration_since(a).as_secs(),
        HOUR,
        "{advanced} + 1 h gave {later}"
    );
    let status = s.terminate();
    assert!(status.success(), "{status}");
    s.restart();
    assert_eq!(s.now(), later);
}

#[test]
fn simulated_clock_stands_still_across_restarts_without_advancing() {
    let mut s = Server::simulated();
    let t0 = s.now();
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.now(), t0, "a simulated clock must not move by itself");
    s.kill();
    s.restart();
    assert_eq!(s.now(), t0, "restart without any advance");
    let t1 = s.advance(0);
    thread::sleep(Duration::from_millis(1500));
    s.kill();
    s.restart();
    assert_eq!(s.now(), t1, "restart after advance(0)");
}

#[test]
fn sigterm_drains_prints_waymark_stopped_exits_zero_and_keeps_state() {
    let mut s = Server::simulated();
    s.apply_example("welcome-series");
    for i in 0..3 {
        let u = format!("term-{i}");
        s.identify(&u, json!({ "email": format!("{u}@example.com") }))
            .ok();
        s.track(&u, "Signed Up", json!({})).ok();
    }
    let clock = s.advance(HOUR);

    // Requests in flight while SIGTERM arrives.
    let plan: Vec<Burst> = (0..40).map(|n| burst("term", 0, n, 2)).collect();
    let base = s.base.clone();
    let answered = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (plan, answered) = (plan.clone(), answered.clone());
        thread::spawn(move || send_bursts(base, plan, answered))
    };
    wait_for_answers(&answered, 5, std::slice::from_ref(&sender));
    let status = s
        .terminate_within(Duration::from_secs(20))
        .expect("waymark did not exit within 20 s of SIGTERM");
    let output = s.output();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; output:\n{output}"
    );
    assert!(
        output.lines().any(|l| l == "waymark stopped"),
        "no `waymark stopped` line; output:\n{output}"
    );
    let outcomes = sender.join().expect("sender thread");
    let acked = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Acked(_)))
        .count();
    eprintln!(
        "SIGTERM: {acked} of {} batches acknowledged; then {:?}",
        plan.len(),
        outcomes.iter().find(|o| !matches!(o, Outcome::Acked(_)))
    );

    s.restart();
    assert_eq!(s.now(), clock, "the simulated clock moved across SIGTERM");
    assert_eq!(s.stats("welcome-series")["status"], "live");
    s.settle();
    let mut users: HashSet<String> = (0..3).map(|i| format!("term-{i}")).collect();
    for (b, outcome) in plan.iter().zip(&outcomes) {
        match outcome {
            Outcome::Acked(_) => {
                assert_burst_present(&s, b, "acknowledged before SIGTERM");
                users.extend(b.users.iter().cloned());
            }
            Outcome::Refused(status, text) => panic!("{} refused: {status} {text}", b.id),
            Outcome::Unanswered(_) | Outcome::NotSent => {
                // Draining means: what was being handled is answered; what was not read yet
                // is refused before anything is stored. Never stored-but-unanswered.
                let found = burst_contacts(&s, b);
                assert!(
                    found.is_empty(),
                    "batch {} was stored but got no answer ({outcome:?}): SIGTERM must drain \
                     in-flight requests; stored: {found:?}",
                    b.id
                );
            }
        }
    }
    assert!(
        outcomes.iter().any(|o| matches!(o, Outcome::Acked(_))),
        "no batch was acknowledged before SIGTERM: {outcomes:?}"
    );
    assert_welcome_messages(&s, &users, &["confirmation"]);
    s.advance(8 * DAY);
    assert_welcome_messages(&s, &users, &["confirmation", "content", "feedback"]);
    assert_eq!(metric(&s, "waymark_enrollments_active"), 0.0);
}
