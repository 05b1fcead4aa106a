//! The official Segment Python client (`segment-analytics-python`, pinned in
//! `tests/py/requirements.txt`) against the real server: identify, track, page, screen, group
//! and alias, in batching and in sync mode, then checked through the management API.
//!
//! The interpreter comes from `WAYMARK_TEST_PYTHON` (default `python3`; a relative path is
//! taken from the repository root). Prepare it with
//! `python3 -m venv tests/py/.venv && tests/py/.venv/bin/pip install -r tests/py/requirements.txt`
//! and run with `WAYMARK_TEST_PYTHON=tests/py/.venv/bin/python`. A missing client fails the
//! test; it is never skipped.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::*;

const INSTALL: &str = "run `pip install -r tests/py/requirements.txt` (or `python3 -m venv \
     tests/py/.venv && tests/py/.venv/bin/pip install -r tests/py/requirements.txt` and set \
     WAYMARK_TEST_PYTHON=tests/py/.venv/bin/python)";

/// The interpreter to use: `WAYMARK_TEST_PYTHON`, a path relative to the repository root when
/// it has a `/`, else a name looked up in PATH.
fn python() -> PathBuf {
    let given = std::env::var("WAYMARK_TEST_PYTHON")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "python3".into());
    let path = PathBuf::from(&given);
    if path.is_relative() && given.contains('/') {
        repo_root().join(path)
    } else {
        path
    }
}

fn run_python(args: &[&str]) -> Output {
    let py = python();
    Command::new(&py)
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the Python interpreter `{}` ({e}); set WAYMARK_TEST_PYTHON or {INSTALL}",
                py.display()
            )
        })
}

/// The version pinned in `tests/py/requirements.txt`.
fn pinned_version() -> String {
    let path = repo_root().join("tests/py/requirements.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("segment-analytics-python=="))
        .unwrap_or_else(|| panic!("{} does not pin segment-analytics-python", path.display()))
        .trim()
        .to_string()
}

/// Fails (never skips) when the client is not importable, or is not the pinned version.
fn require_segment_client() {
    let out = run_python(&["-c", "import segment.analytics as a; print(a.VERSION)"]);
    assert!(
        out.status.success(),
        "the Segment Python client is not importable with `{}`: {}\n{INSTALL}",
        python().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        version,
        pinned_version(),
        "`{}` has segment-analytics-python {version}, not the pinned version; {INSTALL}",
        python().display()
    );
}

/// Runs `tests/py/segment_client_check.py HOST WRITE_KEY` and asserts it succeeded.
#[track_caller]
fn run_check_script(s: &Server) {
    let script = repo_root().join("tests/py/segment_client_check.py");
    let out = run_python(&[script.to_str().unwrap(), &s.base, WRITE_KEY]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "segment_client_check.py failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}\n--- server\n{}",
        out.status,
        s.output()
    );
    assert!(
        stdout.contains("all calls accepted"),
        "unexpected output:\n{stdout}{stderr}"
    );
}

/// The contact's events in ingest order, as (kind, name, properties).
#[track_caller]
fn events(s: &Server, contact_id: i64) -> Vec<(String, String, Value)> {
    let body = s
        .admin_get(&format!("/v1/contacts/{contact_id}/timeline"))
        .ok();
    let mut entries: Vec<&Value> = body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["type"] == "event")
        .collect();
    entries.sort_by_key(|e| e["seq"].as_i64().expect("seq"));
    entries
        .into_iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
                e["properties"].clone(),
            )
        })
        .collect()
}

fn kinds_and_names(events: &[(String, String, Value)]) -> Vec<(&str, &str)> {
    events
        .iter()
        .map(|(k, n, _)| (k.as_str(), n.as_str()))
        .collect()
}

#[test]
fn the_official_segment_python_client_is_accepted() {
    require_segment_client();
    let s = Server::simulated();
    run_check_script(&s);
    s.settle();

    // identify, track, page, screen and group of one user.
    let alice = s.contact_by_user("py-alice");
    assert_eq!(alice["email"], "alice.smith@example.com", "{alice}");
    assert_eq!(alice["timezone"], "Europe/Paris", "{alice}");
    assert_eq!(alice["traits"]["first_name"], "Alice", "{alice}");
    assert_eq!(alice["traits"]["plan"], "pro", "{alice}");
    let ev = events(&s, alice["id"].as_i64().unwrap());
    assert_eq!(
        kinds_and_names(&ev),
        [
            ("identify", "Identify"),
            ("track", "Order Completed"),
            ("page", "Page Viewed"),
            ("screen", "Screen Viewed"),
            ("group", "Group"),
        ],
        "{ev:?}"
    );
    assert_eq!(ev[0].2["email"], "alice.smith@example.com");
    assert_eq!(
        ev[1].2,
        json!({ "order_id": "o-1001", "total": 42.5, "currency": "EUR" })
    );
    assert_eq!(
        ev[2].2,
        json!({ "name": "Pricing", "category": "Docs", "url": "https://acme.example/pricing" })
    );
    assert_eq!(
        ev[3].2,
        json!({ "name": "Home", "category": "App", "build": 311 })
    );
    assert_eq!(ev[4].2["group_id"], "acme-inc");
    assert_eq!(
        ev[4].2["traits"],
        json!({ "name": "Acme Inc", "employees": 42 })
    );

    // An anonymous visitor aliased to a new user: one contact with the whole history.
    let bob = s.contact_by_user("py-bob");
    assert_eq!(bob["email"], "bob@example.org", "{bob}");
    assert_eq!(bob["anonymous_ids"], json!(["anon-py-bob"]), "{bob}");
    let by_anon = s.admin_get("/v1/contacts?anonymous_id=anon-py-bob").ok();
    let by_anon = by_anon["contacts"].as_array().unwrap();
    assert_eq!(by_anon.len(), 1, "{by_anon:?}");
    assert_eq!(by_anon[0]["id"], bob["id"]);
    let ev = events(&s, bob["id"].as_i64().unwrap());
    assert_eq!(
        kinds_and_names(&ev),
        [
            ("track", "Product Viewed"),
            ("page", "Page Viewed"),
            ("alias", "Alias"),
            ("identify", "Identify"),
            ("track", "Signed Up"),
        ],
        "{ev:?}"
    );
    assert_eq!(ev[0].2["sku"], "SKU-7");
    assert_eq!(ev[4].2["source"], "python");

    // A known user renamed by alias: one contact, its history and traits moved; the previous
    // id finds it.
    let carol = s.contact_by_user("py-carol");
    assert_eq!(
        s.contact_by_user("py-carol-old")["id"],
        carol["id"],
        "the previous id has a contact of its own"
    );
    assert_eq!(carol["email"], "carol@example.net", "{carol}");
    assert_eq!(carol["traits"]["city"], "Lyon", "{carol}");
    let ev = events(&s, carol["id"].as_i64().unwrap());
    assert_eq!(
        kinds_and_names(&ev),
        [
            ("identify", "Identify"),
            ("track", "Trial Started"),
            ("alias", "Alias")
        ],
        "{ev:?}"
    );

    let all = s.admin_get("/v1/contacts").ok();
    assert_eq!(
        all["contacts"].as_array().unwrap().len(),
        3,
        "one contact per person: {all}"
    );

    // The client sends messageIds: running the same script again changes nothing.
    let before: Vec<_> = [&alice, &bob, &carol]
        .iter()
        .map(|c| events(&s, c["id"].as_i64().unwrap()))
        .collect();
    run_check_script(&s);
    s.settle();
    let after: Vec<_> = [&alice, &bob, &carol]
        .iter()
        .map(|c| events(&s, c["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(before, after, "re-sent calls were not de-duplicated");
    let all = s.admin_get("/v1/contacts").ok();
    assert_eq!(all["contacts"].as_array().unwrap().len(), 3, "{all}");
}

#[test]
fn the_segment_client_triggers_a_journey() {
    require_segment_client();
    let s = Server::simulated();
    s.apply_example("welcome-series");
    run_check_script(&s);
    s.settle();
    // py-bob signed up (after an identify with an email): one confirmation, to that email.
    let m = s.messages("py-bob");
    assert_eq!(templates_of(&m), ["welcome-confirmation"], "{m:?}");
    assert_eq!(m[0]["recipient"], "bob@example.org");
    assert_eq!(m[0]["subject"], "Welcome to Acme, Bob!");
    for u in ["py-alice", "py-carol"] {
        assert!(s.messages(u).is_empty(), "{u} did not sign up");
    }
}

#[test]
fn a_cart_sent_by_the_segment_client_as_the_ecommerce_spec_says_is_listed_in_the_reminder() {
    require_segment_client();
    let s = Server::simulated();
    s.apply_example("abandoned-cart");
    let script = repo_root().join("tests/py/segment_cart.py");
    let out = run_python(&[script.to_str().unwrap(), &s.base, WRITE_KEY]);
    assert!(
        out.status.success(),
        "segment_cart.py failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.settle();
    s.advance(24 * 3600);
    let m = s.messages("py-shopper");
    assert_eq!(templates_of(&m), ["cart-reminder-email"], "{m:?}");
    assert_eq!(m[0]["recipient"], "dora@example.org");
    let html = m[0]["html"].as_str().unwrap_or_default();
    assert!(
        html.contains("<li>Monopoly: 3rd Edition × 1</li>"),
        "{html}"
    );
    assert!(html.contains("<li>Uno Card Game × 2</li>"), "{html}");
    assert!(html.contains("Hi Dora, your cart is waiting"), "{html}");
}

#[test]
fn contacts_are_found_by_email_whatever_its_case() {
    let s = Server::simulated();
    s.identify("mixed-case", json!({ "email": "Alice.Smith@Example.COM" }))
        .ok();
    s.settle();
    let stored = s.contact_by_user("mixed-case");
    assert_eq!(stored["email"], "alice.smith@example.com", "{stored}");
    for query in [
        "Alice.Smith@example.com",
        "Alice.Smith@Example.COM",
        "alice.smith@example.com",
    ] {
        let body = s
            .admin_get(&format!("/v1/contacts?email={}", encode(query)))
            .ok();
        let found = body["contacts"].as_array().unwrap();
        assert_eq!(
            found.len(),
            1,
            "no contact found by email `{query}` (stored as {}): {body}",
            stored["email"]
        );
        assert_eq!(found[0]["id"], stored["id"]);
    }
}

#[test]
fn timeline_lists_events_with_the_same_timestamp_in_ingest_order() {
    let s = Server::simulated();
    let at = "2026-01-05T10:00:00.000Z";
    let items: Vec<Value> = ["First", "Second", "Third"]
        .iter()
        .map(|name| {
            json!({ "type": "track", "userId": "same-time", "event": name, "timestamp": at })
        })
        .collect();
    s.batch(items).ok();
    s.settle();
    let c = s.contact_by_user("same-time");
    let body = s
        .admin_get(&format!("/v1/contacts/{}/timeline", c["id"]))
        .ok();
    let names: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "event")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["First", "Second", "Third"], "{body}");
}

#[test]
fn contacts_are_found_by_a_search_prefix() {
    let s = Server::simulated();
    s.identify(
        "search-me",
        json!({ "email": "searcher@example.com", "phone": "+33612345678" }),
    )
    .ok();
    s.identify("other", json!({ "email": "other@example.com" }))
        .ok();
    s.settle();
    let id = s.contact_by_user("search-me")["id"].clone();
    for q in ["search", "searcher@", "+336123"] {
        let body = s.admin_get(&format!("/v1/contacts?q={}", encode(q))).ok();
        let found = body["contacts"].as_array().unwrap();
        assert_eq!(found.len(), 1, "q={q}: {body}");
        assert_eq!(found[0]["id"], id, "q={q}: {body}");
    }
}
