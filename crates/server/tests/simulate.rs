//! `waymark simulate`, run as a real process: a journey on a population on a private simulated
//! clock. The trust test: the same population, seed and behaviour run once privately and once
//! through a live server on its simulated clock give exactly the same counts.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{Value, json};

const SCENARIO: &str = "
population:
  email: 90%
  phone: 80%
  unsubscribed: 5%
  timezones: {Europe/Rome: 50%, America/New_York: 50%}
  traits:
    plan: {free: 70%, pro: 30%}
arrivals:
  properties: {product_id: sku-1, name: Sneakers, price: 59, quantity: 1}
behaviour:
  - {event: Order Completed, after: entry, probability: 25%, delay: {median: 20h, spread: 1}, properties: {revenue: 59}}
  - {event: Order Completed, after: cart-email, probability: 10%, delay: {min: 1h, max: 6h}, properties: {revenue: 59}}
  - {event: Email Opened, after: email, probability: 40%, delay: {median: 2h}}
  - {event: Email Link Clicked, after: Email Opened, probability: 30%, delay: 5m}
";

/// Runs `waymark simulate` with a clean `WAYMARK_*` environment; returns its exit code, stdout
/// and stderr.
fn simulate(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("simulate")
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("WAYMARK_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("cannot run waymark");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn simulated(args: &[&str]) -> Value {
    let (code, stdout, stderr) = simulate(args);
    assert_eq!(code, Some(0), "simulate failed:\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// What two runs must agree on: everything predicted, not the timing of the run.
fn prediction(result: &Value) -> Value {
    json!({
        "entered": result["entered"],
        "funnel": result["funnel"],
        "waiting": result["waiting"],
        "messages": result["messages"],
        "conversions": result["conversions"],
        "behaviour_events": result["behaviour_events"],
        "period": result["period"],
    })
}

#[test]
fn a_private_simulation_and_one_through_a_live_server_agree_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(dir.path(), "scenario.yaml", SCENARIO);
    let live = Server::simulated();
    let start = live.admin_get("/v1/clock").ok()["now"]
        .as_str()
        .unwrap()
        .to_string();
    let common = [
        "examples/journeys/abandoned-cart.yaml",
        "--contacts",
        "400",
        "--days",
        "4",
        "--seed",
        "11",
        "--scenario",
        scenario.as_str(),
    ];
    let private = simulated(&[&common[..], &["--start", &start]].concat());
    let through_live = simulated(
        &[
            &common[..],
            &[
                "--target",
                &live.base,
                "--target-admin-token",
                ADMIN_TOKEN,
                "--target-write-key",
                WRITE_KEY,
            ],
        ]
        .concat(),
    );
    assert_eq!(prediction(&private), prediction(&through_live));

    // And the prediction is about something: people entered, were reminded by email and SMS
    // (not the unsubscribed, not those without an address), ordered and paid.
    let funnel = |node: &str| -> Value {
        private["funnel"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .cloned()
            .unwrap_or_else(|| panic!("no {node} in {}", private["funnel"]))
    };
    let entered = private["entered"].as_i64().unwrap();
    assert!(entered > 300, "{entered} of 400 entered in 4 days");
    let email = funnel("cart-email");
    assert!(email["sent"].as_i64().unwrap() > 100, "{email}");
    assert!(email["suppressed"].as_i64().unwrap() > 0, "{email}");
    assert!(email["human_opened"].as_i64().unwrap() > 20, "{email}");
    let reasons = &private["messages"]["suppressed_reasons"];
    assert!(
        reasons
            .as_object()
            .unwrap()
            .keys()
            .any(|r| r.contains("no email address")),
        "{reasons}"
    );
    let conversions = private["conversions"]["count"].as_i64().unwrap();
    assert!(conversions > 50, "{}", private["conversions"]);
    assert_eq!(
        private["conversions"]["revenue"].as_f64().unwrap(),
        59.0 * conversions as f64
    );
    // A cart converts once, whether its shopper ordered once or (after the reminder) again.
    let orders = private["behaviour_events"]["Order Completed"]
        .as_i64()
        .unwrap();
    assert!(
        (orders * 9 / 10..=orders).contains(&conversions),
        "{conversions} conversions of {orders} orders"
    );
    // The live server did the same work: its own report says so.
    let report = live
        .admin_get("/v1/journeys/abandoned-cart/report?from=10d")
        .ok();
    assert_eq!(report["totals"]["converted"].as_i64(), Some(conversions));
}

#[test]
fn a_seed_repeats_a_simulation_and_another_seed_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(dir.path(), "scenario.yaml", SCENARIO);
    let run = |seed: &str| {
        simulated(&[
            "examples/journeys/abandoned-cart.yaml",
            "--contacts",
            "200",
            "--days",
            "3",
            "--seed",
            seed,
            "--start",
            "2026-03-02T00:00:00Z",
            "--scenario",
            &scenario,
        ])
    };
    let (a, again, other) = (run("5"), run("5"), run("6"));
    assert_eq!(prediction(&a), prediction(&again));
    assert_ne!(prediction(&a)["funnel"], prediction(&other)["funnel"]);
    assert_eq!(a["seed"], 5);
    // The assumptions are printed: the file's rules, nothing defaulted (each event the
    // journey waits for has a rule).
    let sources: Vec<&str> = a["assumptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, vec!["scenario"; 4]);
}

#[test]
fn quiet_hours_defer_reminders_to_the_morning_and_the_chart_is_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("chart.svg");
    let out = dir.path().join("result.json");
    let (code, stdout, stderr) = simulate(&[
        "examples/journeys/abandoned-cart.yaml",
        "--contacts",
        "300",
        "--days",
        "3",
        "--start",
        "2026-03-02T00:00:00Z",
        "--quiet-hours",
        "20:00-09:00",
        "--chart",
        chart.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "the result went to --out: {stdout}");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    // Contacts have no time zone here (UTC): no email leaves between 20:00 and 09:00.
    let peak = &result["messages"]["peak_hour"]["email"];
    let hour: jiff::Timestamp = peak["hour"].as_str().unwrap().parse().unwrap();
    let h = hour.to_zoned(jiff::tz::TimeZone::UTC).hour();
    assert!(
        (9..20).contains(&h),
        "the busiest email hour is {hour}, inside quiet hours"
    );
    assert_eq!(
        h, 9,
        "the night's reminders leave together at 09:00: {peak}"
    );
    // The reminders that fell in the night waited for the morning; the funnel says so, and
    // says who left each wait by which output.
    let node = |id: &str| {
        result["funnel"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == id)
            .cloned()
            .unwrap()
    };
    let email = node("cart-email");
    assert!(email["deferred"].as_i64().unwrap() > 10, "{email}");
    assert_eq!(node("wait-a-day")["deferred"], 0);
    let wait = node("wait-for-order");
    let (ordered, timed_out) = (
        wait["outputs"]["event"].as_i64().unwrap_or(0),
        wait["outputs"]["timeout"].as_i64().unwrap(),
    );
    assert_eq!(
        wait["completed"].as_i64().unwrap(),
        ordered + timed_out,
        "{wait}"
    );
    assert_eq!(
        email["entered"].as_i64().unwrap(),
        timed_out,
        "{wait} {email}"
    );
    // Defaults were assumed, and said so.
    assert!(
        result["assumptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["source"] == "default")
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("Messages sent per day") && svg.contains("cart-email"));
}

#[test]
fn a_server_journey_and_segment_are_simulated_without_changing_the_server() {
    let server = Server::simulated();
    server
        .admin_put(
            "/v1/journeys/abandoned-cart",
            example_json("abandoned-cart"),
        )
        .ok();
    server
        .admin_post("/v1/journeys/abandoned-cart/publish", json!({}))
        .ok();
    let contacts: Vec<Value> = (0..60)
        .map(|i| {
            json!({
                "user_id": format!("u{i}"),
                "email": format!("u{i}@example.com"),
                "traits": {"plan": if i % 3 == 0 { "pro" } else { "free" }}
            })
        })
        .collect();
    server
        .admin_post("/v1/contacts/import", json!({"contacts": contacts}))
        .ok();
    server
        .admin_post(
            "/v1/segments",
            json!({"id": "pros", "name": "Pros", "text": r#"plan = "pro""#}),
        )
        .ok();
    // The imported contacts' identify calls are applied by the engine after the import
    // answers: let them be, so that "before" is not taken half-way.
    server.settle();
    let before = (
        server.admin_get("/v1/contacts?limit=1000").ok(),
        server.admin_get("/v1/messages?limit=1000").ok(),
        server.admin_get("/v1/clock").ok(),
    );

    let result = simulated(&[
        "--server",
        &server.base,
        "--admin-token",
        ADMIN_TOKEN,
        "--journey",
        "abandoned-cart",
        "--segment",
        "pros",
        "--days",
        "3",
    ]);
    assert_eq!(result["population"]["contacts"], 20);
    assert_eq!(result["population"]["source"], "segment pros");
    assert_eq!(result["entered"], 20);
    assert!(
        result["journey"]["source"]
            .as_str()
            .unwrap()
            .starts_with("version 1 of abandoned-cart on http://")
    );
    let after = (
        server.admin_get("/v1/contacts?limit=1000").ok(),
        server.admin_get("/v1/messages?limit=1000").ok(),
        server.admin_get("/v1/clock").ok(),
    );
    assert_eq!(before, after, "the server is untouched");
}

#[test]
fn bad_input_is_refused_with_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let cart = "examples/journeys/abandoned-cart.yaml";
    let fails = |args: &[&str], says: &str| {
        let (code, stdout, stderr) = simulate(args);
        assert_ne!(code, Some(0), "{args:?} should fail:\n{stdout}");
        assert!(
            stderr.contains(says),
            "{args:?} should say {says:?}:\n{stderr}"
        );
    };
    fails(&[cart], "who is the population?");
    fails(&[], "which journey?");
    let typo = write(
        dir.path(),
        "typo.yaml",
        "behaviour:\n  - {event: X, after: entry, probabilty: 1}\n",
    );
    fails(
        &[cart, "--contacts", "5", "--scenario", &typo],
        "behaviour[0].probabilty: unknown field `probabilty`, expected one of",
    );
    let share = write(
        dir.path(),
        "share.yaml",
        "behaviour:\n  - {event: X, after: entry, probability: 150%}\n",
    );
    fails(
        &[cart, "--contacts", "5", "--scenario", &share],
        "behaviour[0].probability: a share must be between 0 and 1",
    );
    let after = write(
        dir.path(),
        "after.yaml",
        "behaviour:\n  - {event: X, after: cart-mail, probability: 1}\n",
    );
    fails(
        &[cart, "--contacts", "5", "--scenario", &after],
        "behaviour[0].after: `cart-mail` is not `entry`",
    );
    fails(
        &[cart, "--contacts", "5", "--resolution", "10s"],
        "must be from 1m to 1d",
    );
    let broken = write(
        dir.path(),
        "broken.yaml",
        "id: b\nname: B\nnodes:\n  - {id: t, type: trigger, event: X}\n  - {id: m, type: send_email, template: missing}\nedges:\n  - {from: t, to: m}\n",
    );
    fails(&[&broken, "--contacts", "5"], "missing");
}

// ---- POST /v1/journeys/{id}/simulate

/// The scenario above as the API takes it (an object).
fn scenario_json() -> Value {
    serde_yaml_ng::from_str(SCENARIO).unwrap()
}

/// What the server holds that a simulation must not change.
fn server_data(server: &Server) -> Value {
    json!({
        "contacts": server.admin_get("/v1/contacts?limit=1000").ok(),
        "messages": server.admin_get("/v1/messages?limit=1000").ok(),
        "clock": server.admin_get("/v1/clock").ok(),
        "journeys": server.admin_get("/v1/journeys").ok(),
        "segments": server.admin_get("/v1/segments").ok(),
    })
}

#[test]
fn the_api_simulates_a_draft_as_the_command_line_does_without_touching_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::simulated();
    // The journey is only a draft here; its templates are stored apart from it.
    let draft = server
        .admin_put(
            "/v1/journeys/abandoned-cart",
            example_json("abandoned-cart"),
        )
        .ok();
    assert_eq!(draft["valid"], true, "{draft}");
    assert!(draft["draft"].get("templates").is_none());
    server
        .admin_post(
            "/v1/contacts/import",
            json!({"contacts": [{"user_id": "real-1", "email": "real-1@example.com"}]}),
        )
        .ok();
    server.settle();
    let before = server_data(&server);

    let start = "2026-03-02T00:00:00Z";
    let answer = server
        .admin_post(
            "/v1/journeys/abandoned-cart/simulate",
            json!({"contacts": 300, "days": 4, "seed": 11, "start": start, "scenario": scenario_json()}),
        )
        .ok();
    let scenario = write(dir.path(), "scenario.json", &scenario_json().to_string());
    let cli = simulated(&[
        "examples/journeys/abandoned-cart.yaml",
        "--contacts",
        "300",
        "--days",
        "4",
        "--seed",
        "11",
        "--start",
        start,
        "--scenario",
        &scenario,
    ]);
    assert_eq!(prediction(&answer), prediction(&cli));
    assert!(
        answer["entered"].as_i64().unwrap() > 200,
        "{}",
        answer["entered"]
    );
    assert!(answer["conversions"]["count"].as_i64().unwrap() > 0);
    assert_eq!(answer["journey"]["source"], "draft of abandoned-cart");
    assert_eq!(
        answer["population"],
        json!({"contacts": 300, "source": "synthetic"})
    );
    assert_eq!(answer["assumptions"], cli["assumptions"]);
    // The OpenAPI document describes what the answer holds, and nothing else.
    let document = server.get("/v1/openapi.json").ok();
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let schemas = &document["components"]["schemas"];
    for (schema, value) in [
        ("Prediction", &answer),
        ("FunnelNode", &answer["funnel"][0]),
        ("PredictedMessages", &answer["messages"]),
        ("MessagesDay", &answer["messages"]["per_day"][0]),
        ("WaitingDay", &answer["waiting"][0]),
        ("Assumption", &answer["assumptions"][0]),
        ("SimulatedPeriod", &answer["period"]),
    ] {
        assert_eq!(
            keys(&schemas[schema]["properties"]),
            keys(value),
            "{schema}"
        );
    }
    let svg = answer["chart_svg"].as_str().unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("cart-email"),
        "{svg}"
    );

    assert_eq!(before, server_data(&server), "the server is untouched");
}

#[test]
fn the_api_simulates_a_segment_of_the_server_and_a_published_version() {
    let server = Server::simulated();
    server
        .admin_put(
            "/v1/journeys/abandoned-cart",
            example_json("abandoned-cart"),
        )
        .ok();
    server
        .admin_post("/v1/journeys/abandoned-cart/publish", json!({}))
        .ok();
    let contacts: Vec<Value> = (0..30)
        .map(|i| {
            json!({
                "user_id": format!("u{i}"),
                "email": format!("u{i}@example.com"),
                "traits": {"plan": if i % 3 == 0 { "pro" } else { "free" }}
            })
        })
        .collect();
    server
        .admin_post("/v1/contacts/import", json!({"contacts": contacts}))
        .ok();
    server
        .admin_post(
            "/v1/segments",
            json!({"id": "pros", "name": "Pros", "text": r#"plan = "pro""#}),
        )
        .ok();
    server.settle();
    let before = server_data(&server);
    let answer = server
        .admin_post(
            "/v1/journeys/abandoned-cart/simulate",
            json!({"draft": false, "segment": "pros", "days": 2}),
        )
        .ok();
    assert_eq!(
        answer["population"],
        json!({"contacts": 10, "source": "segment pros"})
    );
    assert_eq!(answer["entered"], 10);
    assert_eq!(answer["journey"]["source"], "version 1 of abandoned-cart");
    assert_eq!(answer["period"]["days"], 2);
    assert_eq!(before, server_data(&server), "the server is untouched");
    // A list that does not exist is no population.
    server
        .admin_post(
            "/v1/journeys/abandoned-cart/simulate",
            json!({"list": "nobody"}),
        )
        .expect_error(404, "not_found");
}

#[test]
fn bad_simulation_requests_name_the_field() {
    let server = Server::simulated();
    server
        .admin_put(
            "/v1/journeys/abandoned-cart",
            example_json("abandoned-cart"),
        )
        .ok();
    let path = "/v1/journeys/abandoned-cart/simulate";
    let refused = |body: Value, field: &str, says: &str| {
        let e = server
            .admin_post(path, body.clone())
            .expect_error(400, "invalid_parameter");
        assert_eq!(e["field"], field, "{body}: {e}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{body}: {message:?} should say {says:?}"
        );
    };
    refused(json!({"days": 0}), "days", "from 1 to 90 days");
    refused(json!({"days": 91}), "days", "from 1 to 90 days");
    refused(json!({"contacts": 100_001}), "contacts", "from 1 to 100000");
    refused(json!({"contacts": "ten"}), "contacts", "invalid type");
    refused(json!({"contact": 5}), "contact", "unknown field");
    refused(json!({"start": "yesterday"}), "start", "");
    refused(json!({"segment": "a", "list": "b"}), "list", "not both");
    refused(
        json!({"segment": "a", "contacts": 5}),
        "contacts",
        "leave it out",
    );
    refused(json!({"draft": true, "version": 1}), "version", "not both");
    refused(json!({"draft": false}), "draft", "no live version");
    refused(
        json!({"scenario": {"behaviour": [{"event": "X", "after": "entry", "probability": "150%"}]}}),
        "scenario.behaviour[0].probability",
        "a share must be between 0 and 1",
    );
    refused(
        json!({"scenario": {"behaviour": [{"event": "X", "after": "entry", "probabilty": 1}]}}),
        "scenario.behaviour[0].probabilty",
        "unknown field",
    );
    refused(
        json!({"scenario": {"behaviour": [{"event": "X", "after": "cart-mail", "probability": 1}]}}),
        "scenario.behaviour[0].after",
        "`cart-mail` is not `entry`",
    );
    refused(json!({"scenario": [1]}), "scenario", "is an object");
    refused(
        json!({"scenario": {"population": {"contacts": 200_000}}}),
        "scenario.population.contacts",
        "from 1 to 100000",
    );
    server
        .admin_post("/v1/journeys/nothing-here/simulate", json!({}))
        .expect_error(404, "not_found");
    // A draft that is not valid says every error, with its node.
    let mut broken = example_json("abandoned-cart");
    broken["id"] = json!("broken");
    broken["nodes"][1]["template"] = json!("no-such-template");
    server.admin_put("/v1/journeys/broken", broken).ok();
    let e = server
        .admin_post("/v1/journeys/broken/simulate", json!({}))
        .expect_error(400, "invalid_journey");
    assert!(
        e["errors"]
            .as_array()
            .is_some_and(|errors| !errors.is_empty()),
        "{e}"
    );
}

#[test]
fn one_simulation_at_a_time() {
    let server = Server::simulated();
    server
        .admin_put(
            "/v1/journeys/abandoned-cart",
            example_json("abandoned-cart"),
        )
        .ok();
    let long = std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            // Retried if it happens to ask while the probe below holds the slot.
            loop {
                let r = server.admin_post(
                    "/v1/journeys/abandoned-cart/simulate",
                    json!({"contacts": 3000, "days": 3}),
                );
                if r.status != 429 {
                    return r;
                }
            }
        });
        // A probe for a journey that does not exist: 404 while the slot is free, 429 while
        // the simulation above holds it.
        let mut busy = None;
        while !running.is_finished() {
            let r = server.admin_post("/v1/journeys/nothing-here/simulate", json!({}));
            if r.status == 429 {
                busy = Some(r);
                break;
            }
            assert_eq!(r.status, 404, "{}", r.text);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        (running.join().unwrap(), busy)
    });
    let (done, busy) = long;
    let busy = busy.expect("a second request while the first ran");
    assert_eq!(busy.json["code"], "simulation_running", "{}", busy.text);
    assert!(busy.retry_after.is_some());
    assert_eq!(done.clone().ok()["population"]["contacts"], 3000);
    // Once it has ended, the next one runs.
    server
        .admin_post(
            "/v1/journeys/abandoned-cart/simulate",
            json!({"contacts": 10, "days": 1}),
        )
        .ok();
}

#[test]
fn a_population_from_a_csv_file_enters_as_its_rows_say() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("user_id,email,phone,timezone,plan\n");
    for i in 0..40 {
        csv.push_str(&format!(
            "c{i},c{i}@example.com,+1212555{:04},Europe/Rome,{}\n",
            1000 + i,
            if i % 2 == 0 { "pro" } else { "free" }
        ));
    }
    // A row without a user id gets one; a bad address names its line and column.
    csv.push_str(",nobody@example.com,,,free\n");
    let people = write(dir.path(), "people.csv", &csv);
    let result = simulated(&[
        "examples/journeys/abandoned-cart.yaml",
        "--population",
        &people,
        "--days",
        "2",
        "--start",
        "2026-03-02T00:00:00Z",
    ]);
    assert_eq!(result["population"]["contacts"], 41);
    assert_eq!(
        result["population"]["source"],
        format!("file {people}").as_str()
    );
    assert!(
        result["entered"].as_i64().unwrap() >= 40,
        "{}",
        result["entered"]
    );

    let bad = write(
        dir.path(),
        "bad.csv",
        "user_id;email\nok;ok@example.com\nx;not-an-address\n",
    );
    let (code, _, stderr) = simulate(&[
        "examples/journeys/abandoned-cart.yaml",
        "--population",
        &bad,
        "--days",
        "1",
    ]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("line 3, column email"), "{stderr}");
}

/// A shop's four days on a live server (simulated clock): 30 shoppers leave a cart an hour
/// apart; a third order within 5 hours, a third after 30 hours, a third never; one does not
/// want marketing email. Returns the period's start.
fn a_month_of_carts(live: &Server) -> String {
    live.apply_example("abandoned-cart");
    let start = live.now();
    let contacts: Vec<Value> = (0..30)
        .map(|i| {
            let mut c = json!({"user_id": format!("s{i}"), "email": format!("s{i}@example.com")});
            if i % 2 == 0 {
                c["phone"] = json!(format!("+1415555{i:04}"));
            }
            c
        })
        .collect();
    live.admin_post("/v1/contacts/import", json!({"contacts": contacts}))
        .ok();
    live.settle();
    // One shopper asked for no marketing email: the live server suppresses her reminder.
    let s5 = live.contact_by_user("s5")["id"].as_i64().unwrap();
    live.admin_put(
        &format!("/v1/contacts/{s5}/subscriptions/email/*"),
        json!({"status": "unsubscribed"}),
    )
    .ok();
    for hour in 0..96 {
        let mut calls = Vec::new();
        for i in 0..30 {
            let cart = json!({"cart_id": format!("c{i}"), "name": "Sneakers", "quantity": 1});
            let track = |event: &str| json!({"type": "track", "userId": format!("s{i}"), "event": event, "properties": cart});
            if hour == i {
                calls.push(track("Product Added"));
            }
            if (i % 3 == 0 && hour == i + 5) || (i % 3 == 1 && hour == i + 30) {
                calls.push(track("Order Completed"));
            }
        }
        if hour == 50 {
            // Large events (120 KB each), more in one hour than one request may carry: a
            // replay sends them in as many requests as it takes.
            let big = "x".repeat(30_000);
            for k in 0..40 {
                live.track(
                    "s0",
                    "Viewed Catalog",
                    json!({"page": k, "a": big, "b": big, "c": big, "d": big}),
                )
                .ok();
            }
        }
        if hour == 60 {
            // An open of a message the server sent: about that message, not replayed.
            let sent = live.messages("s1");
            calls.push(
                json!({"type": "track", "userId": "s1", "event": "Email Opened",
                "properties": {"message_id": sent[0]["id"]}}),
            );
        }
        if !calls.is_empty() {
            live.batch(calls).ok();
        }
        live.advance(3600);
    }
    start
}

/// A moment when more events came in than a request carries (an import's identifies, a
/// campaign's clicks) is replayed a request at a time, and whole: nothing is lost between
/// one part and the next.
#[test]
fn a_moment_with_more_events_than_a_request_carries_is_replayed_whole() {
    let live = Server::simulated();
    live.apply_example("abandoned-cart");
    let start = live.now();
    let shoppers = 1_200;
    let calls: Vec<Value> = (0..shoppers)
        .flat_map(|i| {
            [
                json!({"type": "identify", "userId": format!("b{i}"),
                    "traits": {"email": format!("b{i}@example.com")}}),
                json!({"type": "track", "userId": format!("b{i}"), "event": "Product Added",
                    "properties": {"cart_id": format!("c{i}"), "name": "Sneakers"}}),
            ]
        })
        .collect();
    for part in calls.chunks(500) {
        live.batch(part.to_vec()).ok();
    }
    live.settle();
    live.advance(26 * 3600);

    let replayed = replay_of_carts(&live, &start, "2", &[]);
    let events = &replayed["replay"]["events"];
    assert_eq!(events["replayed"]["Product Added"], shoppers, "{events}");
    let email = replay_node(&replayed, "cart-email");
    assert_eq!(email["live"]["sent"], shoppers, "{email}");
    assert_eq!(
        email["recipients"],
        json!({"both": shoppers, "only_draft": 0, "only_live": 0, "only_draft_first": [], "only_live_first": []})
    );
}

/// `waymark simulate --replay` of the abandoned-cart journey of `live` from `start` for `days`.
fn replay_of_carts(live: &Server, start: &str, days: &str, extra: &[&str]) -> Value {
    simulated(
        &[
            &[
                "--server",
                live.base.as_str(),
                "--admin-token",
                ADMIN_TOKEN,
                "--journey",
                "abandoned-cart",
                "--replay",
                "--start",
                start,
                "--days",
                days,
            ][..],
            extra,
        ]
        .concat(),
    )
}

fn replay_node<'a>(result: &'a Value, node: &str) -> &'a Value {
    result["replay"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no {node} in {}", result["replay"]))
}

#[test]
fn a_replay_sends_what_the_live_version_sent_and_sets_a_draft_beside_it() {
    let live = Server::simulated();
    let start = a_month_of_carts(&live);
    let before = live.admin_get("/v1/messages?limit=1000").ok();
    let replay = |extra: &[&str]| replay_of_carts(&live, &start, "4", extra);

    // The live version replayed does exactly what it did: same people, same messages.
    let same = replay(&[]);
    assert_eq!(same["population"]["contacts"], 30, "{}", same["population"]);
    assert_eq!(same["replay"]["events"]["replayed"]["Product Added"], 30);
    assert_eq!(same["replay"]["events"]["replayed"]["Order Completed"], 20);
    assert_eq!(same["replay"]["events"]["replayed"]["Viewed Catalog"], 40);
    assert_eq!(
        same["replay"]["events"]["left_out"]["engagement with the server's own messages"], 1,
        "{}",
        same["replay"]["events"]
    );
    let email = replay_node(&same, "cart-email");
    assert_eq!(email["live"]["sent"], 19, "{email}");
    assert_eq!(email["live"]["suppressed"], 1, "{email}");
    assert_eq!(
        email["draft"], email["live"],
        "the unsubscribed is not sent to either"
    );
    assert_eq!(
        email["recipients"],
        json!({"both": 19, "only_draft": 0, "only_live": 0, "only_draft_first": [], "only_live_first": []})
    );
    let sms = replay_node(&same, "cart-sms");
    assert_eq!(sms["recipients"]["both"], 5, "{sms}");
    assert_eq!(
        same["replay"]["totals"]["draft"],
        same["replay"]["totals"]["live"]
    );

    // A period that begins a day in: the carts of the first day are in the warm-up before it
    // (7 days by default), so their reminders in the period are replayed too; without a
    // warm-up they are not.
    let day_in = (start.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_hours(24))
        .to_string();
    let later = |warm_up: &str| replay_of_carts(&live, &day_in, "3", &["--warm-up-days", warm_up]);
    let warmed = later("7");
    let email = replay_node(&warmed, "cart-email");
    assert_eq!(
        (
            &email["recipients"]["both"],
            &email["recipients"]["only_live"]
        ),
        (&json!(19), &json!(0)),
        "{email}"
    );
    let cold = later("0");
    let email = replay_node(&cold, "cart-email");
    assert_eq!(
        (
            &email["recipients"]["both"],
            &email["recipients"]["only_live"]
        ),
        (&json!(4), &json!(15)),
        "{email}"
    );

    // A draft that reminds after 2 hours instead of 24 would have emailed the quick buyers
    // too, and texted those who took 30 hours.
    let mut draft = example_json("abandoned-cart");
    draft["nodes"][1]["timeout"] = json!("2h");
    live.admin_put("/v1/journeys/abandoned-cart", draft).ok();
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("recipients.csv");
    let changed = replay(&["--draft", "--recipients", csv_path.to_str().unwrap()]);
    let email = replay_node(&changed, "cart-email");
    assert_eq!(email["draft"]["sent"], 29, "{email}");
    assert_eq!(email["live"]["sent"], 19, "{email}");
    assert_eq!(email["recipients"]["both"], 19);
    assert_eq!(email["recipients"]["only_draft"], 10);
    assert_eq!(email["recipients"]["only_draft_first"][0], "s0");
    let sms = replay_node(&changed, "cart-sms");
    assert_eq!(
        (&sms["recipients"]["both"], &sms["recipients"]["only_draft"]),
        (&json!(5), &json!(5)),
        "{sms}"
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(
        csv.starts_with(
            "node,contact,draft_messages,live_messages,draft_first_sent_at,live_first_sent_at\n"
        ),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 29 + 10, "{csv}");
    assert!(
        csv.lines().any(|l| l.starts_with("cart-email,s0,1,0,")),
        "{csv}"
    );

    let after = live.admin_get("/v1/messages?limit=1000").ok();
    assert_eq!(before, after, "the server sent nothing more");

    // A journey that the engine enters people into (here on their birthday) has no events
    // to replay its entries from.
    let (code, _, stderr) = simulate(&[
        "examples/journeys/birthday-coupon.yaml",
        "--server",
        &live.base,
        "--admin-token",
        ADMIN_TOKEN,
        "--replay",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("only a journey whose trigger is an event can be replayed"),
        "{stderr}"
    );
}
