//! Losing the database (PostgreSQL): a server that cannot reach it at start says so and exits;
//! one that loses it while running answers 503 `database_unavailable` (never 200, never 500),
//! keeps every event it acknowledged, and recovers by itself when the database returns.
//!
//! The running case needs PostgreSQL (`WAYMARK_TEST_DATABASE_URL`) and reaches it through a
//! proxy the test cuts ([`common::db_proxy`]); it skips, and says so, without it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::db_proxy::DbProxy;
use common::*;

/// How long an answer may take while the database is gone: it must fail fast, not hang.
const FAIL_FAST: Duration = Duration::from_secs(5);
/// How long the server may take to notice that the database is back.
const RECOVERY: Duration = Duration::from_secs(30);

#[test]
fn an_unreachable_database_at_start_is_a_clear_error_and_a_failed_exit() {
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args([
            "--database",
            "postgres://waymark:s3cret@127.0.0.1:1/waymark?connect_timeout=3",
        ])
        .env("WAYMARK_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("WAYMARK_WRITE_KEY", WRITE_KEY)
        .env_remove("WAYMARK_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run waymark");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exits with failure: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gives up within its connect timeout"
    );
    assert!(
        stderr.contains("cannot connect to PostgreSQL at 127.0.0.1:1/waymark"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cret"),
        "the password is not shown: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "it never listened"
    );
}

/// Sends `user`'s sign-up and returns the answer and how long it took.
fn send_sign_up(s: &Server, user: &str) -> (Resp, Duration) {
    let started = Instant::now();
    let answer = s.batch(sign_up_batch(user));
    (answer, started.elapsed())
}

#[track_caller]
fn assert_database_unavailable(answer: &Resp, took: Duration, what: &str) {
    assert_eq!(
        answer.status, 503,
        "{what} answers 503 while the database is gone: {}",
        answer.text
    );
    assert_eq!(
        answer.json["code"], "database_unavailable",
        "{}",
        answer.text
    );
    assert_eq!(
        answer.json["link"], "docs/api.md#error-database_unavailable",
        "{}",
        answer.text
    );
    assert!(
        answer.json["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("database unavailable")),
        "{}",
        answer.text
    );
    assert!(answer.retry_after.is_some(), "{what} says when to retry");
    assert!(took < FAIL_FAST, "{what} failed fast, not after {took:?}");
}

#[test]
fn losing_the_database_answers_503_keeps_what_was_acknowledged_and_recovers_by_itself() {
    let Some(db) = TestDatabase::create("db_loss") else {
        return;
    };
    let proxy = DbProxy::start(db.server_addr());
    let mut s = Server::start(ServerOptions {
        args: vec!["--database".into(), db.url_via(proxy.addr)],
        ..Default::default()
    });
    s.apply_example("welcome-series");

    // Before: accepted.
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let user = format!("before-{i}");
        send_sign_up(&s, &user).0.ok();
        acknowledged.push(user);
    }

    // The database goes away: tracking calls and the rest of the API answer 503 at once.
    proxy.cut();
    let mut refused = Vec::new();
    for i in 0..5 {
        let user = format!("during-{i}");
        let (answer, took) = send_sign_up(&s, &user);
        assert_database_unavailable(&answer, took, "a batch");
        refused.push(user);
    }
    let started = Instant::now();
    let track = s.track("during-track", "Signed Up", json!({}));
    assert_database_unavailable(&track, started.elapsed(), "a track call");
    let started = Instant::now();
    let journeys = s.admin_get("/v1/journeys");
    assert_database_unavailable(&journeys, started.elapsed(), "the management API");
    let health = s.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(
        health.json["status"], "database_unavailable",
        "{}",
        health.text
    );
    // The engine and the dispatcher retry meanwhile, without crashing.
    std::thread::sleep(Duration::from_secs(3));
    assert!(s.is_running(), "the server survives: {}", s.output());
    let (answer, took) = send_sign_up(&s, "during-late");
    assert_database_unavailable(&answer, took, "a batch after a while");
    refused.push("during-late".into());

    // The database returns: the same process accepts again, the refused calls sent again
    // included (once each).
    proxy.restore();
    let deadline = Instant::now() + RECOVERY;
    for user in &refused {
        loop {
            let (answer, _) = send_sign_up(&s, user);
            if answer.status == 200 {
                break;
            }
            assert_eq!(
                answer.status, 503,
                "only 503 until it is back: {}",
                answer.text
            );
            assert!(
                Instant::now() < deadline,
                "accepts again within {RECOVERY:?}: {}",
                answer.text
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        acknowledged.push(user.clone());
    }
    for i in 0..5 {
        let user = format!("after-{i}");
        send_sign_up(&s, &user).0.ok();
        acknowledged.push(user);
    }
    assert_eq!(s.starts, 1, "no restart");

    // Every acknowledged sign-up is stored once and processed once: one confirmation each.
    let deadline = Instant::now() + RECOVERY;
    for user in &acknowledged {
        let messages = loop {
            let messages = s.messages(user);
            if !messages.is_empty() || Instant::now() > deadline {
                break messages;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(
            nodes_of(&messages),
            ["confirmation"],
            "{user}: one confirmation; output:\n{}",
            s.output()
        );
        let contact = s.contact_by_user(user);
        let id = contact["id"].as_i64().expect("contact id");
        assert_eq!(
            s.events_named(id, "Signed Up").len(),
            1,
            "{user}: stored once"
        );
    }
    let stored: Vec<_> = s
        .messages_where(&[])
        .into_iter()
        .filter(|m| m["node"] == "confirmation")
        .collect();
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "no message for anyone else"
    );
    assert_eq!(s.get("/healthz").ok()["status"], "ok");

    // Logged once per outage, not once per attempt.
    let output = s.output();
    for what in ["engine round failed", "group commit failed"] {
        assert!(output.contains(what), "logs `{what}`:\n{output}");
    }
    assert!(
        output.matches("group commit failed").count() == 1,
        "one outage, logged once:\n{output}"
    );
    assert!(output.contains("group commit succeeds again"), "{output}");
    assert!(s.is_running());
}

#[test]
fn a_database_that_accepts_connections_but_never_answers_fails_calls_within_the_connect_timeout() {
    let Some(db) = TestDatabase::create("db_stall") else {
        return;
    };
    let proxy = DbProxy::start(db.server_addr());
    let s = Server::start(ServerOptions {
        args: vec![
            "--database".into(),
            format!("{}&connect_timeout=2", db.url_via(proxy.addr)),
        ],
        ..Default::default()
    });
    s.apply_example("welcome-series");
    send_sign_up(&s, "before").0.ok();

    // Connections are made but the database never answers their startup: each call gives up
    // after the connect timeout (2 s) and, once a few attempts hang, at once.
    proxy.stall();
    let mut refused = Vec::new();
    for i in 0..8 {
        let user = format!("stalled-{i}");
        let (answer, took) = send_sign_up(&s, &user);
        assert_database_unavailable(&answer, took, "a batch while the database hangs");
        refused.push(user);
    }
    let (answer, took) = send_sign_up(&s, "stalled-last");
    assert_database_unavailable(&answer, took, "a batch after attempts hung");
    assert!(
        took < Duration::from_secs(1),
        "fails at once, not after {took:?}"
    );
    refused.push("stalled-last".into());

    proxy.restore();
    let deadline = Instant::now() + RECOVERY;
    for user in &refused {
        while send_sign_up(&s, user).0.status != 200 {
            assert!(
                Instant::now() < deadline,
                "accepts again within {RECOVERY:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let deadline = Instant::now() + RECOVERY;
    for user in refused.iter().chain([&"before".to_string()]) {
        while s.messages(user).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(nodes_of(&s.messages(user)), ["confirmation"], "{user}");
    }
}
