//! Broadcasts through the API: one email to a list or segment minus exclusions, each
//! recipient's message decided by the send gate; pause, resume and cancel; a send rate; and a
//! kill in the middle of a large send.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;

const NEWSLETTER: &str = "newsletter";

fn setup_template(s: &Server) {
    s.admin_put(
        &format!("/v1/templates/{NEWSLETTER}"),
        json!({
            "channel": "email",
            "topic": "news",
            "subject": "{{ broadcast.name }} for {{ contact.first_name | default: 'you' }}",
            "text": "Hello {{ contact.first_name }}",
        }),
    )
    .ok();
}

fn contact_id(s: &Server, user: &str) -> i64 {
    s.contact_by_user(user)["id"].as_i64().unwrap()
}

fn broadcast(s: &Server, id: &str) -> Value {
    s.admin_get(&format!("/v1/broadcasts/{id}")).ok()
}

/// Sends the draft and waits (settling a simulated clock) until it is `sent`.
fn send_and_finish(s: &Server, id: &str) -> Value {
    s.admin_post(&format!("/v1/broadcasts/{id}/send"), json!({}))
        .ok();
    s.settle();
    let b = broadcast(s, id);
    assert_eq!(b["status"], "sent", "{b}");
    b
}

#[test]
fn a_broadcast_reaches_its_audience_once_minus_exclusions_and_refusals() {
    let s = Server::simulated();
    setup_template(&s);
    for (user, traits) in [
        (
            "ann",
            json!({"email": "ann@example.com", "first_name": "Ann"}),
        ),
        (
            "bob",
            json!({"email": "bob@example.com", "first_name": "Bob"}),
        ),
        ("cat", json!({"email": "cat@example.com"})),
        ("dan", json!({"first_name": "Dan"})),
        ("eve", json!({"email": "eve@example.com"})),
        ("fay", json!({"email": "fay@example.com"})),
    ] {
        s.identify(user, traits).ok();
    }
    s.settle();
    s.admin_post("/v1/lists", json!({"name": "readers"}))
        .expect(201);
    s.admin_post("/v1/lists", json!({"name": "press"}))
        .expect(201);
    let ids: Vec<i64> = ["ann", "bob", "cat", "dan", "eve", "fay"]
        .iter()
        .map(|u| contact_id(&s, u))
        .collect();
    s.admin_post("/v1/lists/readers/members", json!({"contact_ids": ids}))
        .ok();
    s.admin_post("/v1/lists/press/members", json!({"contact_ids": [ids[4]]}))
        .ok();
    // Fay said no to news.
    s.admin_put(
        &format!("/v1/contacts/{}/subscriptions/email/news", ids[5]),
        json!({"status": "unsubscribed"}),
    )
    .ok();

    let doc = json!({
        "name": "November news",
        "channel": "email",
        "template": NEWSLETTER,
        "audience": {"list": "readers"},
        "exclude": [{"list": "press"}],
    });
    // Checked at the edge, each problem with its field.
    let mut bad = doc.clone();
    bad["template"] = json!("no-such-template");
    s.admin_post("/v1/broadcasts", bad)
        .expect_error(400, "invalid_broadcast");
    let mut bad = doc.clone();
    bad["exclude"] = json!([{"segment": "no-such-segment"}]);
    let e = s.admin_post("/v1/broadcasts", bad).expect(400);
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_broadcast"), Some("exclude[0]")),
        "{e}"
    );
    let mut bad = doc.clone();
    bad["local_time"] = json!("9am");
    let e = s.admin_post("/v1/broadcasts", bad).expect(400);
    assert_eq!(e["field"], "local_time", "{e}");
    let mut bad = doc.clone();
    bad["audiences"] = json!([]);
    s.admin_post("/v1/broadcasts", bad).expect(400);

    let size = s
        .admin_post(
            "/v1/broadcasts/audience",
            json!({"audience": {"list": "readers"}, "exclude": [{"list": "press"}]}),
        )
        .ok();
    assert_eq!(size["size"], 5, "{size}");
    s.admin_post(
        "/v1/broadcasts/audience",
        json!({"audience": {"lists": "readers"}}),
    )
    .expect_error(400, "invalid_broadcast");
    let draft = s
        .admin_put("/v1/broadcasts/november", doc.clone())
        .expect(201);
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["name"], "November news");
    let b = send_and_finish(&s, "november");
    assert_eq!(b["audience_size"], 5, "readers minus press: {b}");
    assert_eq!(b["processed"], 5);
    assert_eq!(b["messages"], json!({"sent": 3, "suppressed": 2}), "{b}");
    let ann = s.messages("ann");
    assert_eq!(ann.len(), 1);
    assert_eq!(ann[0]["subject"], "November news for Ann");
    assert_eq!(ann[0]["priority"], "bulk");
    assert_eq!(ann[0]["status"], "sent");
    let only = |user: &str| {
        let m = s.messages(user);
        assert_eq!(m.len(), 1, "{user}: {m:?}");
        (
            m[0]["status"].as_str().unwrap().to_string(),
            m[0]["error"].as_str().unwrap_or("").to_string(),
        )
    };
    assert_eq!(only("cat").0, "sent");
    let (status, error) = only("dan");
    assert_eq!(status, "suppressed");
    assert!(error.contains("no email"), "{error}");
    assert!(s.messages("eve").is_empty(), "excluded");
    assert_eq!(only("fay").0, "suppressed");

    // A broadcast is sent once; a sent one is neither changed, deleted nor sent again.
    s.admin_post("/v1/broadcasts/november/send", json!({}))
        .expect(409);
    s.admin_put("/v1/broadcasts/november", doc.clone())
        .expect(409);
    s.admin_delete("/v1/broadcasts/november", None).expect(409);
    s.admin_post("/v1/broadcasts/november/cancel", json!({}))
        .expect(409);
    assert_eq!(s.messages("ann").len(), 1);
    let of_broadcast = s.admin_get("/v1/messages?broadcast_id=november").ok();
    let of_broadcast = of_broadcast["messages"].as_array().unwrap();
    assert_eq!(of_broadcast.len(), 5);
    assert!(of_broadcast.iter().all(|m| m["broadcast_id"] == "november"));
    let listed = s.admin_get("/v1/broadcasts").ok();
    assert_eq!(listed["broadcasts"][0]["id"], "november");
}

#[test]
fn a_send_rate_spaces_the_messages_and_pause_resume_and_cancel_hold_them() {
    let s = Server::simulated();
    setup_template(&s);
    let users: Vec<String> = (0..12).map(|i| format!("r{i:02}")).collect();
    for u in &users {
        s.identify(u, json!({"email": format!("{u}@example.com")}))
            .ok();
    }
    s.settle();
    let ids: Vec<i64> = users.iter().map(|u| contact_id(&s, u)).collect();
    s.admin_post("/v1/lists", json!({"name": "all"}))
        .expect(201);
    s.admin_post("/v1/lists/all/members", json!({"contact_ids": ids}))
        .ok();
    s.admin_put(
        "/v1/broadcasts/slow",
        json!({
            "name": "Slow", "channel": "email", "template": NEWSLETTER,
            "audience": {"list": "all"}, "rate_per_second": 2,
        }),
    )
    .expect(201);
    s.admin_post("/v1/broadcasts/slow/send", json!({})).ok();
    s.settle();
    let total = |s: &Server| -> i64 {
        broadcast(s, "slow")["messages"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum()
    };
    assert_eq!(
        total(&s),
        1,
        "the first message leaves at once, the rest wait their turn"
    );
    s.advance(2);
    assert_eq!(total(&s), 5, "two a second");
    let paused = s.admin_post("/v1/broadcasts/slow/pause", json!({})).ok();
    assert_eq!(paused["status"], "paused");
    s.admin_post("/v1/broadcasts/slow/pause", json!({}))
        .expect(409);
    s.advance(60);
    assert_eq!(total(&s), 5, "nothing is written while paused");
    s.admin_post("/v1/broadcasts/slow/resume", json!({})).ok();
    s.settle();
    assert_eq!(total(&s), 6, "the rate starts over from the resume");
    s.advance(2);
    assert_eq!(total(&s), 10);
    let cancelled = s.admin_post("/v1/broadcasts/slow/cancel", json!({})).ok();
    assert_eq!(cancelled["status"], "cancelled");
    s.advance(60);
    assert_eq!(total(&s), 10, "recipients not reached get nothing");
    let got: usize = users.iter().map(|u| s.messages(u).len()).sum();
    assert_eq!(got, 10);
}

#[test]
fn a_kill_in_the_middle_of_a_large_broadcast_loses_no_recipient_and_repeats_none() {
    const RECIPIENTS: usize = 100_000;
    let mut s = Server::start(ServerOptions::system_clock());
    setup_template(&s);
    let started = Instant::now();
    // 5,000 a request, the import's largest.
    for chunk in (0..RECIPIENTS).collect::<Vec<_>>().chunks(5000) {
        let contacts: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"user_id": format!("k{i}"), "email": format!("k{i}@example.com")}))
            .collect();
        let r = s
            .admin_post(
                "/v1/contacts/import",
                json!({"contacts": contacts, "list": "everyone"}),
            )
            .ok();
        assert_eq!(r["rejected"].as_array().map_or(0, Vec::len), 0, "{r}");
    }
    s.admin_put(
        "/v1/broadcasts/big",
        json!({"name": "Big", "channel": "email", "template": NEWSLETTER, "audience": {"list": "everyone"}}),
    )
    .expect(201);
    let imported = started.elapsed();
    s.admin_post("/v1/broadcasts/big/send", json!({})).ok();
    // Killed once a tenth of the audience has been reached.
    let deadline = Instant::now() + Duration::from_secs(120);
    let before_kill = loop {
        let b = broadcast(&s, "big");
        let processed = b["processed"].as_i64().unwrap();
        if processed >= RECIPIENTS as i64 / 10 || b["status"] == "sent" {
            assert!(processed < RECIPIENTS as i64, "too late to kill: {b}");
            break processed;
        }
        assert!(
            Instant::now() < deadline,
            "the broadcast did not start: {b}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let sending = started.elapsed() - imported;
    s.kill();
    s.restart();
    let restarted = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(300);
    let b = loop {
        let b = broadcast(&s, "big");
        let queued = b["messages"]["queued"].as_i64().unwrap_or(0);
        if b["status"] == "sent" && queued == 0 {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "the broadcast did not finish: {b}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "{RECIPIENTS} recipients: imported in {imported:?}, killed after {sending:?} \
         ({before_kill} reached), finished {:?} after the restart",
        restarted.elapsed()
    );
    // Every recipient reached exactly once: the progress counts each page once, so a restart
    // that went through the audience again from the start would count more than the
    // audience; it went on from the cursor committed with the last page before the kill.
    assert_eq!(b["processed"], RECIPIENTS as i64, "{b}");
    assert_eq!(b["audience_size"], RECIPIENTS as i64, "{b}");
    // One message each, every one sent (the idempotency keys would refuse a second).
    assert_eq!(
        b["messages"],
        json!({"sent": RECIPIENTS}),
        "one message each: {b}"
    );
    // And the report counts as many: each recipient written and sent once.
    let r = s.admin_get("/v1/broadcasts/big/report").ok();
    assert_eq!(r["totals"]["entered"], RECIPIENTS as i64, "{}", r["totals"]);
    assert_eq!(r["totals"]["sent"], RECIPIENTS as i64, "{}", r["totals"]);
}

/// The server-relative path of the open pixel in `html` (`--public-url` is `PUBLIC`).
fn open_pixel(html: &str) -> String {
    let prefix = format!("{PUBLIC}/t/o/");
    let at = html.find(&prefix).expect("an open pixel") + prefix.len();
    let token: String = html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    format!("/t/o/{token}")
}

const PUBLIC: &str = "http://mail.example.test";

#[test]
fn an_ab_test_sends_its_share_first_then_the_winner_to_everyone_else() {
    let s = Server::start(ServerOptions {
        args: vec!["--public-url".into(), format!("{PUBLIC}/")],
        ..Default::default()
    });
    for (id, subject) in [
        ("news-a", "Our November news"),
        ("news-b", "Ann, 3 things for you"),
    ] {
        s.admin_put(
            &format!("/v1/templates/{id}"),
            json!({"channel": "email", "subject": subject,
                   "html": "<html><body><p>Hello</p></body></html>"}),
        )
        .ok();
    }
    let users: Vec<String> = (0..60).map(|i| format!("t{i:02}")).collect();
    for u in &users {
        s.identify(u, json!({"email": format!("{u}@example.com")}))
            .ok();
    }
    s.settle();
    let ids: Vec<i64> = users.iter().map(|u| contact_id(&s, u)).collect();
    s.admin_post("/v1/lists", json!({"name": "testers"}))
        .expect(201);
    s.admin_post("/v1/lists/testers/members", json!({"contact_ids": ids}))
        .ok();
    let mut doc = json!({
        "name": "November", "channel": "email", "template": "news-a",
        "audience": {"list": "testers"},
        "test": {"variants": ["news-b"], "share_percent": 50, "decide_after": "4h", "metric": "opens"},
    });
    doc["test"]["variants"] = json!(["no-such-template"]);
    let e = s.admin_put("/v1/broadcasts/ab", doc.clone()).expect(400);
    assert_eq!(e["field"], "test.variants[0]", "{e}");
    doc["test"]["variants"] = json!(["news-b"]);
    s.admin_put("/v1/broadcasts/ab", doc).expect(201);
    s.admin_post("/v1/broadcasts/ab/send", json!({})).ok();
    s.settle();

    // The test share got its variants; everyone else waits for the winner.
    let b = broadcast(&s, "ab");
    assert_eq!(b["status"], "sending", "{b}");
    let tried: Vec<Value> = users.iter().flat_map(|u| s.messages(u)).collect();
    let of = |t: &str| tried.iter().filter(|m| m["template"] == t).count();
    let (a, bee) = (of("news-a"), of("news-b"));
    assert!(a > 0 && bee > 0 && a + bee < 60, "{a} + {bee}");
    assert_eq!(b["waiting"], 60 - (a + bee) as i64, "{b}");
    // Everyone who got B opens it; nobody who got A does.
    for m in tried.iter().filter(|m| m["template"] == "news-b") {
        let pixel = open_pixel(m["html"].as_str().unwrap());
        assert_eq!(s.get(&pixel).status, 200);
    }
    // An open is recorded by the engine, after the pixel answered.
    s.settle();
    let test = &broadcast(&s, "ab")["test"];
    assert_eq!(test["variants"][1]["opened"], bee as i64, "{test}");
    assert_eq!(test["winner"], Value::Null);

    s.advance(4 * HOUR);
    let b = broadcast(&s, "ab");
    assert_eq!(b["status"], "sent", "{b}");
    assert_eq!(b["test"]["winner"]["template"], "news-b", "{b}");
    let reason = b["test"]["winner"]["reason"].as_str().unwrap();
    assert!(reason.contains("best rate of opens"), "{reason}");
    // The results stay those of the test's share, not of the winner sent to the others.
    assert_eq!(b["test"]["variants"][0]["sent"], a as i64, "{b}");
    assert_eq!(b["test"]["variants"][1]["sent"], bee as i64, "{b}");
    assert_eq!(b["test"]["variants"][1]["opened"], bee as i64, "{b}");
    for u in &users {
        let got = s.messages(u);
        assert_eq!(got.len(), 1, "{u}: {got:?}");
    }
    let all: Vec<Value> = users.iter().flat_map(|u| s.messages(u)).collect();
    let winners = all.iter().filter(|m| m["template"] == "news-b").count();
    assert_eq!(winners, 60 - a, "the rest got the winner");
}

/// A person's open of the message (a browser's user agent, a minute after the send).
fn open_as_a_person(s: &Server, m: &Value) {
    let pixel = open_pixel(m["html"].as_str().unwrap());
    let r = s.send(s.request(Method::GET, &pixel).header(
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    ));
    assert_eq!(r.status, 200);
}

#[test]
fn an_ab_test_on_conversions_picks_the_template_that_sells_and_the_report_counts_it() {
    let s = Server::start(ServerOptions {
        args: vec!["--public-url".into(), format!("{PUBLIC}/")],
        ..Default::default()
    });
    for id in ["sale-a", "sale-b"] {
        s.admin_put(
            &format!("/v1/templates/{id}"),
            json!({"channel": "email", "subject": id,
                   "html": "<html><body><p>Hello</p></body></html>"}),
        )
        .ok();
    }
    let users: Vec<String> = (0..60).map(|i| format!("c{i:02}")).collect();
    for u in &users {
        s.identify(u, json!({"email": format!("{u}@example.com")}))
            .ok();
    }
    s.settle();
    let ids: Vec<i64> = users.iter().map(|u| contact_id(&s, u)).collect();
    s.admin_post("/v1/lists", json!({"name": "buyers"}))
        .expect(201);
    s.admin_post("/v1/lists/buyers/members", json!({"contact_ids": ids}))
        .ok();
    let mut doc = json!({
        "name": "Sale", "channel": "email", "template": "sale-a",
        "audience": {"list": "buyers"},
        "test": {"variants": ["sale-b"], "share_percent": 50, "decide_after": "4h",
                 "metric": "conversions"},
    });
    // Conversions need a goal, said at the edge.
    let e = s
        .admin_put("/v1/broadcasts/sale", doc.clone())
        .expect_error(400, "invalid_broadcast");
    assert_eq!(e["field"], "test.metric", "{e}");
    assert!(e["message"].as_str().unwrap().contains("goal"), "{e}");
    doc["goal"] =
        json!({"event": "Order Completed", "within": "3d", "revenue_property": "revenue"});
    s.admin_put("/v1/broadcasts/sale", doc).expect(201);
    // Ordered before any message: converts nothing.
    s.track(&users[0], "Order Completed", json!({"revenue": 99}))
        .ok();
    s.admin_post("/v1/broadcasts/sale/send", json!({})).ok();
    s.settle();
    s.advance(60);

    let tried: Vec<(String, Value)> = users
        .iter()
        .flat_map(|u| s.messages(u).into_iter().map(|m| (u.clone(), m)))
        .collect();
    let of = |t: &str| -> Vec<&(String, Value)> {
        tried.iter().filter(|(_, m)| m["template"] == t).collect()
    };
    let (a, b) = (of("sale-a"), of("sale-b"));
    assert!(
        a.len() > 2 && b.len() > 2 && a.len() + b.len() < 60,
        "{} + {}",
        a.len(),
        b.len()
    );
    // A is opened by everyone, but B sells: every B recipient orders (one of them twice,
    // counted once); one A recipient orders.
    for (_, m) in &a {
        open_as_a_person(&s, m);
    }
    for (u, _) in &b {
        s.track(u, "Order Completed", json!({"revenue": 20})).ok();
    }
    s.track(&b[0].0, "Order Completed", json!({"revenue": 20}))
        .ok();
    s.track(&a[0].0, "Order Completed", json!({"revenue": "15.50"}))
        .ok();
    // Not the goal event.
    s.track(&a[1].0, "Product Viewed", json!({"revenue": 1}))
        .ok();
    s.settle();
    let test = &broadcast(&s, "sale")["test"];
    assert_eq!(test["variants"][1]["converted"], b.len() as i64, "{test}");
    assert_eq!(test["variants"][0]["converted"], 1, "{test}");

    s.advance(4 * HOUR);
    let bc = broadcast(&s, "sale");
    assert_eq!(bc["status"], "sent", "{bc}");
    assert_eq!(bc["test"]["winner"]["template"], "sale-b", "{bc}");
    let reason = bc["test"]["winner"]["reason"].as_str().unwrap();
    assert!(reason.contains("best rate of conversions"), "{reason}");
    for u in &users {
        assert_eq!(s.messages(u).len(), 1, "{u}");
    }

    // Past the window (3 days after the send), an order converts no more.
    s.advance(3 * 24 * HOUR);
    s.track(&a[2].0, "Order Completed", json!({"revenue": 5}))
        .ok();
    s.settle();

    let r = s.admin_get("/v1/broadcasts/sale/report?bucket=hour").ok();
    let t = &r["totals"];
    assert_eq!(t["entered"], 60, "{r}");
    assert_eq!(t["sent"], 60, "{r}");
    assert_eq!(t["delivered"], 60, "{r}");
    assert_eq!(t["opened"], a.len() as i64, "{r}");
    assert_eq!(t["human_opened"], a.len() as i64, "{r}");
    assert_eq!(t["converted"], b.len() as i64 + 1, "{r}");
    let revenue = t["revenue"].as_f64().unwrap();
    assert!(
        (revenue - (20.0 * b.len() as f64 + 15.5)).abs() < 1e-9,
        "{r}"
    );
    assert_eq!(t["open_rate"], a.len() as f64 / 60.0, "{r}");
    assert_eq!(t["conversion_rate"], (b.len() + 1) as f64 / 60.0, "{r}");
    assert_eq!(r["goal"]["event"], "Order Completed", "{r}");
    assert_eq!(r["winner"], "sale-b", "{r}");
    // The series adds up to the totals, each figure in the hour it happened.
    let series = r["series"].as_array().unwrap();
    let sum = |k: &str| series.iter().map(|p| p[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!(sum("sent"), 60);
    assert_eq!(sum("converted"), b.len() as i64 + 1);
    let first_sends = series
        .iter()
        .find(|p| p["sent"].as_i64().unwrap() > 0)
        .unwrap();
    assert_eq!(
        first_sends["sent"],
        (a.len() + b.len()) as i64,
        "the test share first: {r}"
    );
    // Per template: B's conversions per message sent with its Wilson interval. Its test share
    // converted whole; the winner sent to the rest after the test has none.
    let variants = r["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2, "{r}");
    let vb = &variants[1];
    assert_eq!(vb["template"], "sale-b");
    assert_eq!(vb["sent"], (60 - a.len()) as i64, "{r}");
    assert_eq!(vb["converted"], b.len() as i64, "{r}");
    let conv = &vb["per_sent"]["conversions"];
    let rate = b.len() as f64 / (60 - a.len()) as f64;
    assert_eq!(conv["rate"], rate, "{r}");
    assert!(
        conv["low"].as_f64().unwrap() < rate && rate < conv["high"].as_f64().unwrap(),
        "{r}"
    );
    let va = &variants[0];
    assert_eq!(va["per_sent"]["opens"]["rate"], 1.0, "{r}");

    // The same as CSV, a row per template.
    let csv = s.send(
        s.request(Method::GET, "/v1/broadcasts/sale/report?rows=variants")
            .bearer_auth(ADMIN_TOKEN)
            .header("Accept", "text/csv"),
    );
    assert_eq!(csv.status, 200);
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", csv.text);
    assert!(
        lines[0].starts_with("template,entered,sent,"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("conversions_per_sent,conversions_low,conversions_high"));
    assert!(
        lines[2].starts_with(&format!("sale-b,{},", 60 - a.len())),
        "{}",
        lines[2]
    );
    // Journey-only parameters and an unknown broadcast are refused.
    s.admin_get("/v1/broadcasts/sale/report?node=x")
        .expect_error(400, "invalid_parameter");
    s.admin_get("/v1/broadcasts/sale/report?rows=nodes")
        .expect_error(400, "invalid_parameter");
    s.admin_get("/v1/broadcasts/nope/report").expect(404);
}

#[test]
fn an_sms_broadcast_goes_to_phone_numbers_and_an_email_template_is_refused() {
    let s = Server::simulated();
    setup_template(&s);
    s.admin_put(
        "/v1/templates/flash-sms",
        json!({"channel": "sms", "body": "Flash sale today, {{ contact.first_name }}!"}),
    )
    .ok();
    s.identify(
        "pia",
        json!({"phone": "+393471234567", "first_name": "Pia"}),
    )
    .ok();
    s.identify(
        "ugo",
        json!({"email": "ugo@example.com", "first_name": "Ugo"}),
    )
    .ok();
    s.settle();
    let ids = [contact_id(&s, "pia"), contact_id(&s, "ugo")];
    s.admin_post("/v1/lists", json!({"name": "shoppers"}))
        .expect(201);
    s.admin_post("/v1/lists/shoppers/members", json!({"contact_ids": ids}))
        .ok();
    let mut doc = json!({
        "name": "Flash", "channel": "sms", "template": NEWSLETTER,
        "audience": {"list": "shoppers"},
    });
    let e = s.admin_put("/v1/broadcasts/flash", doc.clone()).expect(400);
    assert_eq!(e["field"], "template", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("is for email"),
        "{e}"
    );
    doc["template"] = json!("flash-sms");
    s.admin_put("/v1/broadcasts/flash", doc).expect(201);
    let b = send_and_finish(&s, "flash");
    assert_eq!(b["messages"], json!({"sent": 1, "suppressed": 1}), "{b}");
    let pia = s.messages("pia");
    assert_eq!(pia.len(), 1);
    assert_eq!(pia[0]["channel"], "sms");
    assert_eq!(pia[0]["recipient"], "+393471234567");
    assert_eq!(pia[0]["text"], "Flash sale today, Pia!");
    let ugo = s.messages("ugo");
    assert_eq!(ugo[0]["status"], "suppressed");
    assert!(
        ugo[0]["error"].as_str().unwrap().contains("no phone"),
        "{ugo:?}"
    );
}
