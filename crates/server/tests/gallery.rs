//! The template gallery (`examples/journeys/`, documented in `docs/gallery.md`): every example
//! validates with the command line, and each new one runs end to end on the real server with a
//! simulated clock: who gets which message, when, and what the statistics and traits say.

mod common;

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PUBLIC: &str = "http://mail.example.test";

// ---- helpers ----

fn now_ms(s: &Server) -> i64 {
    ts_ms(&s.now())
}

fn sent_at(m: &Value) -> i64 {
    ms_of(&m["created_at"])
}

/// A server whose emails carry unsubscribe links and tracked links (`--public-url`).
fn public_server() -> Server {
    Server::start(ServerOptions {
        args: vec!["--public-url".into(), format!("{PUBLIC}/")],
        ..Default::default()
    })
}

/// Asserts the template ids of a user's messages, in order; returns the messages.
#[track_caller]
fn assert_templates(s: &Server, user: &str, expected: &[&str]) -> Vec<Value> {
    let messages = s.messages(user);
    assert_eq!(
        templates_of(&messages),
        expected,
        "messages of {user}: {messages:#?}"
    );
    messages
}

/// Asserts the template ids of a contact's messages (by contact id), in order.
#[track_caller]
fn assert_contact_templates(s: &Server, contact: i64, expected: &[&str]) -> Vec<Value> {
    let messages = s.messages_where(&[("contact_id", &contact.to_string())]);
    assert_eq!(
        templates_of(&messages),
        expected,
        "messages of contact {contact}: {messages:#?}"
    );
    messages
}

/// A node's counters as (entered, waiting, completed, exited, sent, suppressed).
#[track_caller]
fn counters(s: &Server, journey: &str, node: &str) -> [i64; 6] {
    let n = s.node_stats(journey, node);
    [
        "entered",
        "waiting",
        "completed",
        "exited",
        "sent",
        "suppressed",
    ]
    .map(|k| {
        n[k].as_i64()
            .unwrap_or_else(|| panic!("stats of {node} lack {k}: {n}"))
    })
}

#[track_caller]
fn sent(s: &Server, journey: &str, node: &str) -> i64 {
    s.node_stats(journey, node)["sent"].as_i64().unwrap()
}

/// The contact's id, once every accepted event is processed (identify creates it).
fn contact_id(s: &Server, user: &str) -> i64 {
    s.settle();
    s.contact_by_user(user)["id"].as_i64().unwrap()
}

fn lists_of(s: &Server, user: &str) -> Vec<String> {
    s.contact_by_user(user)["lists"]
        .as_array()
        .expect("lists")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// The server-relative path of a public URL.
fn path_of(url: &str) -> String {
    url.strip_prefix(PUBLIC)
        .unwrap_or_else(|| panic!("`{url}` is not under {PUBLIC}"))
        .to_string()
}

fn add_to_list(s: &Server, list: &str, contacts: &[i64]) {
    let r = s.admin_post("/v1/lists", json!({ "name": list }));
    assert!(r.status == 201 || r.status == 409, "{}", r.text);
    s.admin_post(
        &format!("/v1/lists/{list}/members"),
        json!({ "contact_ids": contacts }),
    )
    .ok();
}

fn page(s: &Server, user: &str, name: &str, path: &str) {
    s.ingest(
        "/v1/page",
        json!({
            "userId": user,
            "name": name,
            "properties": { "path": path, "url": format!("https://acme.example{path}") }
        }),
    )
    .ok();
}

// ---- every example validates ----

fn example_names() -> Vec<String> {
    let dir = repo_root().join("examples/journeys");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/journeys")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".yaml")?.to_string())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_example_validates_with_the_cli_and_says_what_it_does() {
    let names = example_names();
    for expected in [
        "abandoned-cart",
        "first-purchase-feedback",
        "gated-content",
        "lead-nurturing-pages",
        "lead-scoring",
        "onboarding-profile",
        "re-engagement",
        "welcome-double-opt-in",
        "welcome-series",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    let root = repo_root();
    let mut cmd = Command::new(bin());
    cmd.args(["journeys", "validate"])
        .current_dir(&root)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("WAYMARK_") {
            cmd.env_remove(k);
        }
    }
    for name in &names {
        cmd.arg(format!("examples/journeys/{name}.yaml"));
    }
    let out = cmd.output().expect("cannot run waymark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let describe = format!(
        "exit {:?}\n--- stdout\n{stdout}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{describe}");
    for name in &names {
        let doc = example_json(name);
        assert_eq!(doc["id"], name.as_str(), "the id is the file name");
        let nodes = doc["nodes"].as_array().unwrap().len();
        let line = format!("examples/journeys/{name}.yaml: ok (journey `{name}`, {nodes} nodes)");
        assert!(
            stdout.lines().any(|l| l.ends_with(&line)),
            "missing `{line}`:\n{describe}"
        );
        let text =
            std::fs::read_to_string(root.join(format!("examples/journeys/{name}.yaml"))).unwrap();
        assert!(text.starts_with("# "), "{name}: no header comment");
        assert!(
            doc["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: no description"
        );
    }
    // The gallery documents every example.
    let gallery = std::fs::read_to_string(root.join("docs/gallery.md")).expect("docs/gallery.md");
    for name in &names {
        assert!(
            gallery.contains(&format!("examples/journeys/{name}.yaml")),
            "docs/gallery.md does not document {name}"
        );
    }
}

// ---- welcome-double-opt-in ----

#[test]
fn welcome_double_opt_in_starts_only_after_confirmation() {
    let s = public_server();
    s.apply_example("welcome-double-opt-in");

    // Nora and Otto fill in the newsletter form; only Nora confirms.
    for body in [
        "email=Nora%40example.com&topic=newsletter&name=Nora",
        "email=otto%40example.com&topic=newsletter&name=Otto",
    ] {
        let r = s.form_post("/v1/subscribe", body);
        assert_eq!(r.status, 200, "{}", r.text);
    }
    s.settle();
    let confirmations: Vec<Value> = s
        .messages_where(&[("channel", "email")])
        .into_iter()
        .filter(|m| m["template"] == "double-opt-in")
        .collect();
    assert_eq!(confirmations.len(), 2, "{confirmations:#?}");
    let nora_confirmation = &confirmations[0];
    assert_eq!(nora_confirmation["recipient"], "nora@example.com");
    // The journey's `double-opt-in` template replaces the built-in confirmation email.
    assert_eq!(
        nora_confirmation["subject"],
        "Please confirm your subscription to The Acme Letter"
    );
    let text = nora_confirmation["text"].as_str().unwrap();
    assert!(text.starts_with("Hi Nora,"), "{text}");
    let nora = nora_confirmation["contact_id"].as_i64().unwrap();
    let otto = confirmations[1]["contact_id"].as_i64().unwrap();
    assert_eq!(confirmations[1]["recipient"], "otto@example.com");
    // Nothing else until confirmed.
    assert_contact_templates(&s, nora, &["double-opt-in"]);

    // Nora clicks the link an hour later.
    s.advance(HOUR);
    let confirm = path_of(&link_in(text, &format!("{PUBLIC}/confirm/")));
    let t0 = now_ms(&s);
    // The link opens a page; its button (a POST) confirms.
    let r = s.form_post(&confirm, "");
    assert_eq!(r.status, 200, "{}", r.text);
    s.settle();
    assert_eq!(
        s.subscription_status(nora, "newsletter").as_deref(),
        Some("subscribed")
    );
    let m = assert_contact_templates(&s, nora, &["double-opt-in", "doi-welcome"]);
    let welcome = &m[1];
    assert_eq!(welcome["status"], "sent", "{welcome}");
    assert_eq!(welcome["recipient"], "nora@example.com");
    assert_eq!(
        welcome["subject"],
        "You're in, Nora! Welcome to The Acme Letter"
    );
    assert_eq!(sent_at(welcome), t0);
    // Marketing email: it carries the unsubscribe link, in the headers and the body.
    let unsubscribe = welcome["unsubscribe_url"]
        .as_str()
        .expect("unsubscribe_url");
    assert!(welcome["html"].as_str().unwrap().contains(unsubscribe));

    // Best of the archive after 3 days, not a minute earlier; the preference check after 7.
    s.advance(3 * DAY - MINUTE);
    assert_contact_templates(&s, nora, &["double-opt-in", "doi-welcome"]);
    s.advance(MINUTE);
    let m = assert_contact_templates(&s, nora, &["double-opt-in", "doi-welcome", "doi-best-of"]);
    assert_eq!(sent_at(&m[2]), t0 + 3 * DAY * 1000);
    assert_eq!(m[2]["subject"], "The 5 most-read Acme Letters");
    s.advance(4 * DAY);
    let m = assert_contact_templates(
        &s,
        nora,
        &[
            "double-opt-in",
            "doi-welcome",
            "doi-best-of",
            "doi-preferences",
        ],
    );
    assert_eq!(sent_at(&m[3]), t0 + 7 * DAY * 1000);
    assert!(m.iter().all(|m| m["status"] == "sent"), "{m:#?}");

    // Otto never confirmed: a month later he still has only the confirmation email.
    s.advance(30 * DAY);
    assert_contact_templates(&s, otto, &["double-opt-in"]);
    assert_eq!(
        s.subscription_status(otto, "newsletter").as_deref(),
        Some("pending")
    );
    assert_eq!(counters(&s, "welcome-double-opt-in", "confirmed")[0], 1);
    assert_eq!(
        counters(&s, "welcome-double-opt-in", "preferences"),
        [1, 0, 1, 1, 1, 0]
    );
}

#[test]
fn welcome_double_opt_in_stops_when_the_subscriber_unsubscribes() {
    let s = public_server();
    s.apply_example("welcome-double-opt-in");
    let r = s.form_post("/v1/subscribe", "email=pia%40example.com&topic=newsletter");
    assert_eq!(r.status, 200, "{}", r.text);
    s.settle();
    let confirmation = &s.messages_where(&[("channel", "email")])[0];
    // Without a name the greeting falls back.
    let text = confirmation["text"].as_str().unwrap();
    assert!(text.starts_with("Hi there,"), "{text}");
    let pia = confirmation["contact_id"].as_i64().unwrap();
    s.form_post(&path_of(&link_in(text, &format!("{PUBLIC}/confirm/"))), "")
        .ok();
    s.settle();
    let m = assert_contact_templates(&s, pia, &["double-opt-in", "doi-welcome"]);
    assert_eq!(
        m[1]["subject"],
        "You're in, friend! Welcome to The Acme Letter"
    );

    // One-click unsubscribe from the welcome email: the series ends at once.
    let unsubscribe = path_of(m[1]["unsubscribe_url"].as_str().unwrap());
    let r = s.form_post(&unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!(r.status, 200, "{}", r.text);
    s.settle();
    s.advance(10 * DAY);
    assert_contact_templates(&s, pia, &["double-opt-in", "doi-welcome"]);
    assert_eq!(counters(&s, "welcome-double-opt-in", "wait-3-days")[3], 1);
}

// ---- onboarding-profile ----

#[test]
fn onboarding_reminds_only_contacts_whose_profile_is_incomplete() {
    let s = Server::simulated();
    s.apply_example("onboarding-profile");
    for (user, name) in [("ada", "Ada"), ("bob", "Bob"), ("cy", "Cy")] {
        s.identify(
            user,
            json!({ "email": format!("{user}@example.com"), "first_name": name }),
        )
        .ok();
    }
    let t0 = now_ms(&s);
    for user in ["ada", "bob", "cy"] {
        s.track(user, "Signed Up", json!({})).ok();
    }
    s.settle();
    for user in ["ada", "bob", "cy"] {
        let m = assert_templates(&s, user, &["onboarding-getting-started"]);
        assert_eq!(sent_at(&m[0]), t0);
    }
    let m = s.messages("ada");
    assert_eq!(m[0]["subject"], "Getting started with Acme, Ada");
    assert!(
        m[0]["text"]
            .as_str()
            .unwrap()
            .contains("https://app.acme.example/settings/profile")
    );

    // Bob completes his profile (the event) after 12 hours.
    s.advance(12 * HOUR);
    s.track("bob", "Profile Completed", json!({})).ok();
    s.settle();

    // Day 1: Ada and Cy get the reminder, Bob does not.
    s.advance(12 * HOUR - MINUTE);
    assert_eq!(s.messages("ada").len(), 1);
    s.advance(MINUTE);
    let m = assert_templates(
        &s,
        "ada",
        &["onboarding-getting-started", "onboarding-profile-reminder"],
    );
    assert_eq!(sent_at(&m[1]), t0 + DAY * 1000);
    assert_eq!(m[1]["subject"], "Ada, your Acme profile is almost there");
    assert_templates(
        &s,
        "cy",
        &["onboarding-getting-started", "onboarding-profile-reminder"],
    );
    assert_templates(&s, "bob", &["onboarding-getting-started"]);

    // Cy's profile is marked complete through a trait on day 2.
    s.advance(DAY);
    s.identify("cy", json!({ "profile_completed": true })).ok();
    s.settle();

    // Day 4: only Ada gets the last reminder.
    s.advance(2 * DAY - MINUTE);
    assert_eq!(s.messages("ada").len(), 2);
    s.advance(MINUTE);
    let m = assert_templates(
        &s,
        "ada",
        &[
            "onboarding-getting-started",
            "onboarding-profile-reminder",
            "onboarding-profile-last-reminder",
        ],
    );
    assert_eq!(sent_at(&m[2]), t0 + 4 * DAY * 1000);
    assert_eq!(m[2]["subject"], "Last reminder: finish your Acme profile");
    s.advance(30 * DAY);
    assert_eq!(s.messages("ada").len(), 3);
    assert_templates(
        &s,
        "cy",
        &["onboarding-getting-started", "onboarding-profile-reminder"],
    );
    assert_templates(&s, "bob", &["onboarding-getting-started"]);

    let j = "onboarding-profile";
    assert_eq!(sent(&s, j, "getting-started"), 3);
    assert_eq!(sent(&s, j, "profile-reminder"), 2);
    assert_eq!(sent(&s, j, "last-reminder"), 1);
    // Bob left at the first check, Cy at the second.
    assert_eq!(counters(&s, j, "completed"), [2, 0, 0, 2, 0, 0]);
    assert_eq!(counters(&s, j, "profile-done-day-1")[0], 3);
    assert_eq!(counters(&s, j, "profile-done-day-4")[0], 2);
    assert_eq!(s.stats(j)["active"], 0);
}

// ---- re-engagement ----

#[test]
fn re_engagement_wins_back_the_engaged_and_unsubscribes_the_silent() {
    let s = public_server();
    s.apply_example("re-engagement");
    let users = ["clicker", "buyer", "late", "silent"];
    for user in users {
        s.identify(
            user,
            json!({ "email": format!("{user}@example.com"), "first_name": user.to_uppercase() }),
        )
        .ok();
    }
    let ids: Vec<i64> = users.iter().map(|u| contact_id(&s, u)).collect();
    let t0 = now_ms(&s);
    add_to_list(&s, "dormant", &ids);
    s.settle();
    for user in users {
        let m = assert_templates(&s, user, &["reengage-we-miss-you"]);
        assert_eq!(sent_at(&m[0]), t0);
        assert_eq!(m[0]["status"], "sent");
    }
    let first = &s.messages("clicker")[0];
    assert_eq!(first["subject"], "We miss you, CLICKER");

    // Day 2: the clicker clicks the tracked link of the email (Waymark's own click tracking).
    s.advance(2 * DAY);
    let html = first["html"].as_str().unwrap();
    let click = path_of(&link_in(html, &format!("{PUBLIC}/t/c/")));
    let r = s.get_no_redirect(&click);
    assert_eq!(r.status, 302, "{}", r.text);
    s.settle();
    assert!(lists_of(&s, "clicker").is_empty(), "back from dormant");

    // Day 3: the buyer orders (without clicking).
    s.advance(DAY);
    s.track("buyer", "Order Completed", json!({ "total": 42 }))
        .ok();
    s.settle();

    // Day 7: the last chance for the late clicker and the silent one; not for the buyer.
    s.advance(4 * DAY - MINUTE);
    assert_eq!(s.messages("silent").len(), 1);
    s.advance(MINUTE);
    for user in ["late", "silent"] {
        let m = assert_templates(&s, user, &["reengage-we-miss-you", "reengage-last-chance"]);
        assert_eq!(sent_at(&m[1]), t0 + 7 * DAY * 1000);
        assert_eq!(m[1]["subject"], "Should we stop writing to you?");
    }
    assert_templates(&s, "buyer", &["reengage-we-miss-you"]);
    assert_templates(&s, "clicker", &["reengage-we-miss-you"]);
    assert!(lists_of(&s, "buyer").is_empty());

    // Day 9: the late one clicks the last-chance email.
    s.advance(2 * DAY);
    let last = &s.messages("late")[1];
    let click = path_of(&link_in(
        last["html"].as_str().unwrap(),
        &format!("{PUBLIC}/t/c/"),
    ));
    assert_eq!(s.get_no_redirect(&click).status, 302);
    s.settle();
    assert!(lists_of(&s, "late").is_empty());

    // Day 14: the silent one is unsubscribed from all marketing and moved to `sunset`.
    s.advance(5 * DAY - MINUTE);
    assert_eq!(lists_of(&s, "silent"), ["dormant"]);
    s.advance(MINUTE);
    let silent = contact_id(&s, "silent");
    assert_eq!(lists_of(&s, "silent"), ["sunset"]);
    assert_eq!(
        s.subscription_status(silent, "*").as_deref(),
        Some("unsubscribed")
    );
    let unsubscribed = s.events_named(silent, "Unsubscribed");
    assert_eq!(unsubscribed.len(), 1, "{unsubscribed:#?}");
    assert!(
        unsubscribed[0]
            .to_string()
            .contains("journey:re-engagement"),
        "{}",
        unsubscribed[0]
    );
    for user in ["clicker", "buyer", "late"] {
        let id = contact_id(&s, user);
        assert_eq!(s.subscription_status(id, "*"), None, "{user}");
        assert!(lists_of(&s, user).is_empty(), "{user}");
    }

    let j = "re-engagement";
    assert_eq!(sent(&s, j, "we-miss-you"), 4);
    assert_eq!(sent(&s, j, "last-chance"), 2);
    assert_eq!(counters(&s, j, "welcome-back")[0], 3);
    assert_eq!(counters(&s, j, "unsubscribe-silent")[0], 1);
    assert_eq!(s.stats(j)["active"], 0);

    // Because the engaged left the list, they can be re-engaged when they go quiet again; the
    // silent one, unsubscribed, gets no more marketing.
    s.advance(60 * DAY);
    add_to_list(&s, "dormant", &[contact_id(&s, "clicker"), silent]);
    s.settle();
    let m = assert_templates(
        &s,
        "clicker",
        &["reengage-we-miss-you", "reengage-we-miss-you"],
    );
    assert_eq!(m[1]["status"], "sent");
    let m = s.messages("silent");
    assert_eq!(m.len(), 3, "{m:#?}");
    assert_eq!(m[2]["status"], "suppressed", "{}", m[2]);
}

// ---- gated-content ----

#[test]
fn gated_content_delivers_at_once_then_nurtures_by_interest() {
    let s = Server::simulated();
    s.apply_example("gated-content");
    for (user, name) in [
        ("ann", "Ann"),
        ("ben", "Ben"),
        ("cat", "Cat"),
        ("dan", "Dan"),
    ] {
        s.identify(
            user,
            json!({ "email": format!("{user}@example.com"), "first_name": name }),
        )
        .ok();
    }
    // Dan opted out of all marketing: he still gets his download, not the nurture.
    s.identify("dan", json!({ "unsubscribed": true })).ok();
    let request = |user: &str, content: &str, title: &str, interest: &str| {
        s.track(
            user,
            "Content Requested",
            json!({
                "content": content,
                "title": title,
                "url": format!("https://cdn.acme.example/{content}.pdf"),
                "interest": interest
            }),
        )
        .ok();
    };
    let t0 = now_ms(&s);
    request(
        "ann",
        "dashboards-guide",
        "The Dashboard Guide",
        "analytics",
    );
    request("ben", "workflow-guide", "10 Workflows", "automation");
    request("cat", "security-guide", "Security Basics", "security");
    request(
        "dan",
        "dashboards-guide",
        "The Dashboard Guide",
        "analytics",
    );
    s.settle();
    for user in ["ann", "ben", "cat", "dan"] {
        let m = assert_templates(&s, user, &["gated-download"]);
        assert_eq!(m[0]["status"], "sent", "{user}: {}", m[0]);
        assert_eq!(sent_at(&m[0]), t0);
    }
    let download = &s.messages("ann")[0];
    assert_eq!(download["subject"], "Your download: The Dashboard Guide");
    assert_eq!(
        download["text"],
        "Hi Ann,\n\nHere is your copy of The Dashboard Guide: \
         https://cdn.acme.example/dashboards-guide.pdf\nThe link stays valid for 30 days.\n"
    );
    assert_eq!(download["node"], "download-analytics");
    assert_eq!(s.messages("ben")[0]["node"], "download-automation");
    assert_eq!(s.messages("cat")[0]["node"], "download-other");

    // A day later Ann asks for an automation guide as well: a second enrollment (keyed by
    // `content`) delivers it at once and nurtures that interest too.
    s.advance(DAY);
    let t1 = now_ms(&s);
    request("ann", "workflow-guide", "10 Workflows", "automation");
    s.settle();
    let m = assert_templates(&s, "ann", &["gated-download", "gated-download"]);
    assert_eq!(m[1]["subject"], "Your download: 10 Workflows");
    assert_eq!(sent_at(&m[1]), t1);
    // The same asset asked for again while its enrollment is active starts nothing new (one
    // active enrollment per contact and key): Ben does not get a second download email.
    request("ben", "workflow-guide", "10 Workflows", "automation");
    s.settle();
    assert_templates(&s, "ben", &["gated-download"]);

    // Day 3: the first nurture email of each interest.
    s.advance(2 * DAY - MINUTE);
    assert_eq!(s.messages("ben").len(), 1);
    s.advance(MINUTE);
    let m = assert_templates(&s, "ben", &["gated-download", "gated-automation-1"]);
    assert_eq!(sent_at(&m[1]), t0 + 3 * DAY * 1000);
    assert_eq!(
        m[1]["subject"],
        "The automation playbook: 7 workflows to set up first"
    );
    let m = assert_templates(&s, "cat", &["gated-download", "gated-general"]);
    assert!(m[1]["html"].as_str().unwrap().contains("Security Basics"));
    assert_templates(
        &s,
        "ann",
        &["gated-download", "gated-download", "gated-analytics-1"],
    );
    let m = assert_templates(&s, "dan", &["gated-download", "gated-analytics-1"]);
    assert_eq!(m[1]["status"], "suppressed", "{}", m[1]);

    // Day 7: the second email of each interest; Ann's automation track runs a day behind.
    s.advance(4 * DAY);
    let m = assert_templates(
        &s,
        "ben",
        &["gated-download", "gated-automation-1", "gated-automation-2"],
    );
    assert_eq!(sent_at(&m[2]), t0 + 7 * DAY * 1000);
    let m = assert_templates(
        &s,
        "ann",
        &[
            "gated-download",
            "gated-download",
            "gated-analytics-1",
            "gated-automation-1",
            "gated-analytics-2",
        ],
    );
    assert_eq!(sent_at(&m[3]), t1 + 3 * DAY * 1000);
    assert_eq!(sent_at(&m[4]), t0 + 7 * DAY * 1000);
    s.advance(DAY);
    let m = s.messages("ann");
    assert_eq!(templates_of(&m).last().unwrap(), "gated-automation-2");
    assert_eq!(sent_at(&m[5]), t1 + 7 * DAY * 1000);
    s.advance(30 * DAY);
    assert_eq!(s.messages("ann").len(), 6);
    assert_templates(&s, "cat", &["gated-download", "gated-general"]);
    assert_templates(
        &s,
        "dan",
        &["gated-download", "gated-analytics-1", "gated-analytics-2"],
    );

    let j = "gated-content";
    assert_eq!(counters(&s, j, "requested-analytics")[0], 2);
    assert_eq!(counters(&s, j, "requested-automation")[0], 2);
    assert_eq!(counters(&s, j, "requested-other")[0], 1);
    assert_eq!(counters(&s, j, "analytics-webinar"), [2, 0, 2, 2, 1, 1]);
    assert_eq!(s.stats(j)["active"], 0);
}

// ---- lead-nurturing-pages ----

#[test]
fn lead_nurturing_picks_the_email_by_pages_viewed_since_sign_up() {
    let s = Server::simulated();
    s.apply_example("lead-nurturing-pages");
    let users = [
        ("pat", "Pat"),
        ("dora", "Dora"),
        ("bea", "Bea"),
        ("gil", "Gil"),
        ("eve", "Eve"),
    ];
    for (user, name) in users {
        s.identify(
            user,
            json!({ "email": format!("{user}@example.com"), "first_name": name }),
        )
        .ok();
    }
    // Eve looked at pricing before signing up: that does not count (pages since entry only).
    page(&s, "eve", "Pricing", "/pricing");
    s.settle();
    let t0 = now_ms(&s);
    for (user, _) in users {
        s.track(user, "Signed Up", json!({})).ok();
    }
    s.settle();
    s.advance(HOUR);
    page(&s, "pat", "Docs", "/docs/quickstart");
    page(&s, "pat", "Pricing", "/pricing");
    page(&s, "dora", "Docs", "/docs/quickstart");
    page(&s, "bea", "Blog", "/blog/best-practices");
    page(&s, "gil", "About", "/about");
    s.settle();
    for (user, _) in users {
        assert!(s.messages(user).is_empty(), "{user}");
    }

    s.advance(2 * DAY - HOUR - MINUTE);
    assert!(
        s.messages_where(&[("journey_id", "lead-nurturing-pages")])
            .is_empty()
    );
    s.advance(MINUTE);
    let m = assert_templates(&s, "pat", &["nurture-pricing"]);
    assert_eq!(m[0]["subject"], "Pat, questions about our plans?");
    assert_eq!(sent_at(&m[0]), t0 + 2 * DAY * 1000);
    let m = assert_templates(&s, "dora", &["nurture-learn"]);
    assert_eq!(
        m[0]["subject"],
        "Go deeper: the Acme guides our power users love"
    );
    assert_templates(&s, "bea", &["nurture-learn"]);
    let m = assert_templates(&s, "gil", &["nurture-tour"]);
    assert_eq!(m[0]["subject"], "A 3-minute tour of Acme");
    assert_templates(&s, "eve", &["nurture-tour"]);

    s.advance(30 * DAY);
    assert_eq!(
        s.messages_where(&[("journey_id", "lead-nurturing-pages")])
            .len(),
        5
    );
    let j = "lead-nurturing-pages";
    assert_eq!(sent(&s, j, "sales-email"), 1);
    assert_eq!(sent(&s, j, "educational-email"), 2);
    assert_eq!(sent(&s, j, "general-email"), 2);
    assert_eq!(counters(&s, j, "viewed-docs-or-blog")[0], 4);
}

// ---- lead-scoring ----

const SECRET: &str = "gallery-webhook-secret";

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A tiny HTTP/1.1 receiver on 127.0.0.1 answering 200 to everything.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
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
                    path: request.path,
                    headers: request.headers,
                    body: request.body,
                });
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                stream.write_all(answer.as_bytes()).ok();
                stream.flush().ok();
            }
        });
        Receiver { port, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (real time, at most 20 s) until `n` requests arrived.
    fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

#[track_caller]
fn score_of(s: &Server, user: &str) -> Value {
    s.contact_by_user(user)["traits"]["lead_score"].clone()
}

#[test]
fn lead_scoring_adds_points_and_alerts_sales_once_at_the_threshold() {
    let r = Receiver::start();
    let s = Server::start(ServerOptions {
        args: vec![
            "--webhook-allow-host".into(),
            format!("127.0.0.1:{}", r.port),
        ],
        env: vec![("WAYMARK_WEBHOOK_SECRET".into(), SECRET.into())],
        ..Default::default()
    });
    // The example as shipped, with the sales endpoint pointed at the local receiver.
    let mut doc = example_json("lead-scoring");
    let alert = doc["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["id"] == "alert-sales")
        .expect("alert-sales node");
    assert_eq!(alert["url"], "https://hooks.acme.example/sales/new-mql");
    alert["url"] = json!(format!("http://127.0.0.1:{}/sales/new-mql", r.port));
    s.apply_journey(doc);

    s.identify(
        "lea",
        json!({ "email": "lea@example.com", "first_name": "Lea", "last_name": "Lind", "company": "Northwind" }),
    )
    .ok();
    s.identify("lou", json!({ "email": "lou@example.com" }))
        .ok();

    // Lea: pricing +10, a download +15, an email click +5 → 30; the blog scores nothing.
    page(&s, "lea", "Blog", "/blog/hello");
    s.settle();
    assert!(score_of(&s, "lea").is_null());
    page(&s, "lea", "Pricing", "/pricing");
    s.settle();
    assert_eq!(score_of(&s, "lea"), 10);
    s.track(
        "lea",
        "Content Requested",
        json!({ "content": "roi-calculator" }),
    )
    .ok();
    s.settle();
    s.track(
        "lea",
        "Email Link Clicked",
        json!({ "url": "https://acme.example/tour" }),
    )
    .ok();
    s.settle();
    assert_eq!(score_of(&s, "lea"), 30);
    s.advance(HOUR);
    assert!(r.received().is_empty(), "no alert below 50");
    assert!(s.contact_by_user("lea")["traits"]["mql"].is_null());

    // A demo request (+30) takes her to 60: sales is alerted, she is marked MQL.
    s.advance(DAY);
    let t = now_ms(&s);
    s.track("lea", "Demo Requested", json!({ "team_size": 12 }))
        .ok();
    s.settle();
    let got = r.wait_for(1);
    assert_eq!(got.len(), 1, "{got:?}");
    let req = &got[0];
    assert_eq!(req.path, "/sales/new-mql");
    assert_eq!(req.headers["x-waymark-signature"], sign(&req.body));
    let body: Value = serde_json::from_str(&req.body).expect("JSON body");
    let lea = s.contact_by_user("lea");
    assert_eq!(
        body,
        json!({
            "text": "New MQL: lea@example.com (score 60)",
            "email": "lea@example.com",
            "name": "Lea Lind",
            "company": "Northwind",
            "lead_score": 60,
            "last_signal": "Demo Requested",
            "contact_id": lea["id"]
        })
    );
    assert_eq!(lea["traits"]["lead_score"], 60);
    assert_eq!(lea["traits"]["mql"], true);
    assert_eq!(lea["traits"]["lifecycle_stage"], "mql");
    let hooks: Vec<Value> = s
        .messages("lea")
        .into_iter()
        .filter(|m| m["channel"] == "webhook")
        .collect();
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert_eq!(hooks[0]["node"], "alert-sales");
    assert_eq!(sent_at(&hooks[0]), t);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.messages("lea")[0]["status"] != "sent" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.messages("lea")[0]["status"], "sent");
    let webhooks = |s: &Server| s.messages_where(&[("channel", "webhook")]).len();

    // More signals keep scoring but never alert twice.
    page(&s, "lea", "Pricing", "/pricing?plan=team");
    s.track("lea", "Demo Requested", json!({})).ok();
    s.settle();
    s.advance(HOUR);
    assert_eq!(score_of(&s, "lea"), 100);
    assert_eq!(webhooks(&s), 1);
    assert_eq!(r.received().len(), 1, "{:?}", r.received());

    // Lou views pricing four times: 40 points, no alert.
    for _ in 0..4 {
        page(&s, "lou", "Pricing", "/pricing");
    }
    s.settle();
    s.advance(HOUR);
    assert_eq!(score_of(&s, "lou"), 40);
    assert!(s.contact_by_user("lou")["traits"]["mql"].is_null());
    assert_eq!(webhooks(&s), 1);
    assert_eq!(r.received().len(), 1);

    let j = "lead-scoring";
    assert_eq!(counters(&s, j, "pricing-points")[0], 6);
    assert_eq!(counters(&s, j, "demo-points")[0], 2);
    assert_eq!(counters(&s, j, "became-mql")[0], 10);
    assert_eq!(counters(&s, j, "alert-sales")[0], 1);
    assert_eq!(counters(&s, j, "mark-mql")[0], 1);
    assert_eq!(s.stats(j)["active"], 0);
}

#[test]
fn all_examples_apply_together_with_the_cli_and_render_without_a_public_url() {
    let names = example_names();
    // Templates are shared by the installation: no two examples may ship the same id.
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for name in &names {
        let doc = example_json(name);
        for t in doc["templates"].as_array().into_iter().flatten() {
            let id = t["id"].as_str().unwrap().to_string();
            if let Some(other) = owner.insert(id.clone(), name.clone()) {
                panic!("template `{id}` is shipped by both {other} and {name}");
            }
        }
    }

    let s = Server::simulated();
    let mut cmd = Command::new(bin());
    cmd.args(["journeys", "apply"])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("WAYMARK_") {
            cmd.env_remove(k);
        }
    }
    for name in &names {
        cmd.arg(format!("examples/journeys/{name}.yaml"));
    }
    cmd.args(["--publish", "--server", &s.base])
        .env("WAYMARK_ADMIN_TOKEN", ADMIN_TOKEN);
    let out = cmd.output().expect("cannot run waymark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in &names {
        let line = format!("{name}\tversion 1\tlive");
        assert!(
            stdout.lines().any(|l| l == line),
            "missing `{line}`:\n{stdout}"
        );
    }

    // Every shipped template renders with sample data on a server without `--public-url`
    // (no `unsubscribe_url`, no `confirm_url`).
    for (id, name) in &owner {
        let r = s.admin_post(
            &format!("/v1/templates/{id}/preview"),
            json!({
                "contact": {"first_name": "Sam", "email": "sam@example.com"},
                "event": {"title": "The Guide", "url": "https://cdn.example/g.pdf", "cart_id": "c1"}
            }),
        );
        let body = r.ok();
        let rendered = format!("{}{}{}", body["subject"], body["html"], body["text"]);
        assert!(
            !rendered.contains("{{") && !rendered.contains("{%"),
            "{name}/{id}: {body}"
        );
        if body["html"].is_string() {
            assert!(
                !body["html"].as_str().unwrap().contains("Unsubscribe</a>"),
                "{name}/{id} shows an empty unsubscribe link: {body}"
            );
        }
    }
}
