//! Segments over HTTP on a simulated clock: defined in the text or JSON form, counted, listed
//! and previewed; membership kept current as events arrive and as time passes, with entry and
//! exit starting journeys; history conditions in branches; and an experiment that picks its
//! winner.

mod common;

use common::*;

fn email(id: &str) -> Value {
    json!({"id": id, "channel": "email", "subject": id, "text": format!("{id}")})
}

fn member_ids(s: &Server, segment: &str) -> Vec<String> {
    let body = s
        .admin_get(&format!("/v1/segments/{segment}/members?limit=1000"))
        .ok();
    let mut ids: Vec<String> = body["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user_id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

fn event_names(s: &Server, user: &str) -> Vec<String> {
    let id = s.contact_by_user(user)["id"].as_i64().unwrap();
    s.timeline(id)
        .iter()
        .filter(|e| e["type"] == "event")
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn segments_are_defined_counted_previewed_and_validated() {
    let s = Server::simulated();
    for (user, orders) in [("ann", 3), ("bob", 1), ("cy", 0)] {
        s.identify(
            user,
            json!({"email": format!("{user}@example.com"), "plan": "pro"}),
        )
        .ok();
        for i in 0..orders {
            s.track(user, "Order Completed", json!({"total": 40 + i * 10}))
                .ok();
        }
    }
    s.settle();

    let text = r#"did "Order Completed" at least 2 times in last 90d and plan = "pro""#;
    let preview = s
        .admin_post("/v1/segments/preview", json!({"text": text}))
        .ok();
    assert_eq!(preview["count"], 1, "{preview:#}");
    assert_eq!(preview["sample"][0]["user_id"], "ann");
    assert_eq!(
        preview["condition"],
        json!({"all": [
            {"did": {"event": "Order Completed", "times": {"gte": 2}, "within": "90d"}},
            {"traits": {"plan": "pro"}}
        ]})
    );

    let created = s
        .admin_post(
            "/v1/segments",
            json!({"id": "repeat-buyers", "name": "Repeat buyers", "text": text}),
        )
        .expect(201);
    assert_eq!(created["members"], 1);
    assert_eq!(created["text"], text);
    assert_eq!(member_ids(&s, "repeat-buyers"), ["ann"]);
    // A new order makes bob a member as it is processed, and records his entry.
    s.track("bob", "Order Completed", json!({"total": 15})).ok();
    s.settle();
    assert_eq!(member_ids(&s, "repeat-buyers"), ["ann", "bob"]);
    assert!(event_names(&s, "bob").contains(&"Segment Entered".to_string()));

    // The JSON form works the same; PUT replaces and re-evaluates.
    let big = s
        .admin_put(
            "/v1/segments/repeat-buyers",
            json!({"condition": {"aggregate": {"function": "sum", "property": "total",
                   "event": "Order Completed", "op": "gte", "value": 100}}}),
        )
        .ok();
    assert_eq!(big["text"], r#"sum(total) of "Order Completed" >= 100"#);
    assert_eq!(member_ids(&s, "repeat-buyers"), ["ann"]);
    assert!(event_names(&s, "bob").contains(&"Segment Exited".to_string()));
    let list = s.admin_get("/v1/segments").ok();
    assert_eq!(list["segments"][0]["members"], 1);

    // Errors say where.
    let bad = s
        .admin_post(
            "/v1/segments/preview",
            json!({"text": r#"did "Order Completed" in last soon"#}),
        )
        .expect_error(400, "invalid_condition");
    assert_eq!(bad["field"], "text");
    assert_eq!(bad["errors"][0]["line"], 1);
    assert_eq!(bad["errors"][0]["column"], 31, "{bad:#}");
    let scoped = s
        .admin_post(
            "/v1/segments",
            json!({"id": "x", "text": r#"event "Clicked" since entry"#}),
        )
        .expect_error(400, "invalid_condition");
    assert_eq!(scoped["field"], "condition.event", "{scoped:#}");
    s.admin_post(
        "/v1/segments",
        json!({"id": "repeat-buyers", "text": "plan exists"}),
    )
    .expect_error(409, "segment_exists");
    s.admin_post(
        "/v1/segments",
        json!({"id": "bad id!", "text": "plan exists"}),
    )
    .expect_error(400, "invalid_id");
    s.admin_delete("/v1/segments/repeat-buyers", None)
        .expect(204);
    s.admin_get("/v1/segments/repeat-buyers")
        .expect_error(404, "not_found");
}

#[test]
fn a_segment_names_the_journeys_that_use_it_and_is_not_deleted_under_them() {
    let s = Server::simulated();
    for id in ["vip", "spare"] {
        s.admin_post("/v1/segments", json!({"id": id, "text": "plan exists"}))
            .expect(201);
    }
    let uses = |segment: &str| -> Vec<(String, String, bool, bool)> {
        let view = s.admin_get(&format!("/v1/segments/{segment}")).ok();
        (view["used_by"].as_array().unwrap().iter())
            .map(|u| {
                (
                    u["journey_id"].as_str().unwrap().to_string(),
                    u["status"].as_str().unwrap().to_string(),
                    u["live"].as_bool().unwrap(),
                    u["draft"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let trigger_on = |segment: &str| {
        json!({"id": "welcome-vip", "name": "Welcome VIPs",
               "nodes": [{"id": "start", "type": "trigger", "segment": {"id": segment}}]})
    };
    assert!(uses("vip").is_empty());

    // A draft uses it; once published, the live version does too.
    s.admin_put("/v1/journeys/welcome-vip", trigger_on("vip"))
        .ok();
    assert_eq!(
        uses("vip"),
        [("welcome-vip".into(), "draft".into(), false, true)]
    );
    s.admin_post("/v1/journeys/welcome-vip/publish", json!({}))
        .ok();
    assert_eq!(
        uses("vip"),
        [("welcome-vip".into(), "live".into(), true, true)]
    );
    // A schedule drawing from the segment uses it as well.
    s.apply_journey(json!({"id": "weekly-vip", "name": "Weekly",
        "nodes": [{"id": "start", "type": "trigger", "schedule": {"cron": "@weekly", "segment": "vip"}}]}));
    assert_eq!(uses("vip").len(), 2);
    let listed = s.admin_get("/v1/segments").ok();
    let spare = (listed["segments"].as_array().unwrap().iter())
        .find(|g| g["id"] == "spare")
        .unwrap();
    assert_eq!(spare["used_by"], json!([]));

    let refused = s
        .admin_delete("/v1/segments/vip", None)
        .expect_error(409, "segment_in_use");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("`welcome-vip`") && message.contains("`weekly-vip`"),
        "{message}"
    );
    s.admin_get("/v1/segments/vip").ok();

    // The draft moves to the other segment: the live version still uses it, until archived.
    s.admin_put("/v1/journeys/welcome-vip", trigger_on("spare"))
        .ok();
    assert_eq!(
        uses("spare"),
        [("welcome-vip".into(), "live".into(), false, true)]
    );
    for journey in ["welcome-vip", "weekly-vip"] {
        s.admin_post(&format!("/v1/journeys/{journey}/archive"), json!({}))
            .ok();
    }
    assert!(uses("vip").is_empty());
    s.admin_delete("/v1/segments/vip", None).expect(204);
    s.admin_delete("/v1/segments/nobody", None)
        .expect_error(404, "not_found");
}

#[test]
fn membership_follows_time_and_entry_starts_a_journey() {
    let s = Server::simulated();
    s.admin_post(
        "/v1/segments",
        json!({"id": "lapsed", "text": r#"did "Logged In" and not did "Logged In" in last 30d"#}),
    )
    .expect(201);
    s.apply_journey(json!({
        "id": "win-back-login", "name": "Come back",
        "nodes": [
            {"id": "start", "type": "trigger", "segment": {"id": "lapsed"}},
            {"id": "miss-you", "type": "send_email", "template": "miss-you"},
        ],
        "edges": [{"from": "start", "to": "miss-you"}],
        "templates": [email("miss-you")],
    }));
    s.apply_journey(json!({
        "id": "welcome-back", "name": "Welcome back",
        "nodes": [
            {"id": "start", "type": "trigger", "segment": {"id": "lapsed", "on": "exit"}},
            {"id": "glad", "type": "send_email", "template": "glad"},
        ],
        "edges": [{"from": "start", "to": "glad"}],
        "templates": [email("glad")],
    }));
    s.identify("dee", json!({"email": "dee@example.com"})).ok();
    s.track("dee", "Logged In", json!({})).ok();
    s.settle();
    assert!(member_ids(&s, "lapsed").is_empty());
    // 30 days minus a second later: still active.
    s.advance(30 * DAY - 1);
    assert!(member_ids(&s, "lapsed").is_empty());
    assert!(s.messages("dee").is_empty());
    // The last login leaves the window: a member, with no new event from the client.
    s.advance(1);
    assert_eq!(member_ids(&s, "lapsed"), ["dee"]);
    assert_eq!(templates_of(&s.messages("dee")), ["miss-you"]);
    // Logging in again leaves the segment, which starts the other journey.
    s.advance(DAY);
    s.track("dee", "Logged In", json!({})).ok();
    s.settle();
    assert!(member_ids(&s, "lapsed").is_empty());
    assert_eq!(templates_of(&s.messages("dee")), ["miss-you", "glad"]);
}

#[test]
fn a_branch_reads_event_history_in_the_text_form() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "thanks", "name": "Thanks by value",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Order Completed"},
            {"id": "big", "type": "branch",
             "condition": "sum(total) of \"Order Completed\" in last 365d >= 100"},
            {"id": "vip", "type": "send_email", "template": "vip-thanks"},
            {"id": "plain", "type": "send_email", "template": "thanks"},
        ],
        "edges": [
            {"from": "start", "to": "big"},
            {"from": "big", "to": "vip", "output": "yes"},
            {"from": "big", "to": "plain", "output": "no"},
        ],
        "templates": [email("vip-thanks"), email("thanks")],
    }));
    s.identify("eve", json!({"email": "eve@example.com"})).ok();
    s.track("eve", "Order Completed", json!({"total": 60})).ok();
    s.settle();
    s.track("eve", "Order Completed", json!({"total": 50})).ok();
    s.settle();
    assert_eq!(templates_of(&s.messages("eve")), ["thanks", "vip-thanks"]);
    // A parse error in a branch condition names the node and the position.
    let bad = s
        .admin_post(
            "/v1/journeys/validate",
            json!({
                "id": "b", "name": "b",
                "nodes": [
                    {"id": "start", "type": "trigger", "event": "X"},
                    {"id": "cond", "type": "branch", "condition": "did \"X\" at least many times"},
                ],
                "edges": [{"from": "start", "to": "cond"}],
            }),
        )
        .ok();
    let errors = bad["errors"].as_array().expect("errors");
    assert!(
        errors
            .iter()
            .any(|e| e["node"] == "cond"
                && e["message"].as_str().unwrap().contains("line 1, column")),
        "{bad:#}"
    );
}

#[test]
fn an_experiment_declares_a_winner_and_sends_new_entrants_down_it() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "subject-test", "name": "Subject line test",
        "goal": {"event": "Order Completed", "within": "7d"},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "test", "type": "experiment", "min_sample": 20, "confidence": 0.95,
             "holdout": 10,
             "variants": [{"name": "plain", "percent": 45}, {"name": "bold", "percent": 45}]},
            {"id": "send-plain", "type": "send_email", "template": "offer-plain"},
            {"id": "send-bold", "type": "send_email", "template": "offer-bold"},
            {"id": "wait", "type": "delay", "duration": "7d"},
        ],
        "edges": [
            {"from": "start", "to": "test"},
            {"from": "test", "to": "send-plain", "output": "plain"},
            {"from": "test", "to": "send-bold", "output": "bold"},
            {"from": "send-plain", "to": "wait"},
            {"from": "send-bold", "to": "wait"},
        ],
        "templates": [email("offer-plain"), email("offer-bold")],
    }));
    // Everyone who got the bold offer buys; nobody else does.
    let mut assigned = Vec::new();
    for i in 0..80 {
        let user = format!("x{i}");
        s.identify(&user, json!({"email": format!("{user}@example.com")}))
            .ok();
        s.track(&user, "Signed Up", json!({})).ok();
        assigned.push(user);
    }
    s.settle();
    let mut by_variant = std::collections::BTreeMap::<String, usize>::new();
    for user in &assigned {
        let templates = templates_of(&s.messages(user));
        let variant = templates
            .first()
            .cloned()
            .unwrap_or_else(|| "holdout".into());
        if variant == "offer-bold" {
            s.track(user, "Order Completed", json!({})).ok();
        }
        *by_variant.entry(variant).or_default() += 1;
    }
    s.settle();
    assert!(
        by_variant["offer-bold"] >= 20 && by_variant["offer-plain"] >= 20,
        "{by_variant:?}"
    );
    let report = s.admin_get("/v1/journeys/subject-test/experiments").ok();
    let x = &report["experiments"][0];
    assert_eq!(x["winner"], "bold", "{report:#}");
    assert_eq!(x["test"], "one-sided two-proportion z-test");
    let bold = x["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "bold")
        .unwrap();
    assert_eq!(bold["rate"], 1.0);
    assert!(x["holdout"]["entered"].as_u64().unwrap() > 0, "{x:#}");
    // Conversions are counted on the variant's nodes too.
    assert_eq!(
        s.node_stats("subject-test", "send-bold")["converted"],
        json!(by_variant["offer-bold"])
    );
    // From now on every new entrant takes the winner.
    for i in 0..15 {
        let user = format!("late{i}");
        s.identify(&user, json!({"email": format!("{user}@example.com")}))
            .ok();
        s.track(&user, "Signed Up", json!({})).ok();
    }
    s.settle();
    for i in 0..15 {
        assert_eq!(
            templates_of(&s.messages(&format!("late{i}"))),
            ["offer-bold"]
        );
    }
}

#[test]
fn new_contacts_and_list_changes_are_evaluated_at_once() {
    let s = Server::simulated();
    s.admin_post(
        "/v1/segments",
        json!({"id": "quiet", "text": r#"not did "Logged In" in last 30d"#}),
    )
    .expect(201);
    s.admin_post(
        "/v1/segments",
        json!({"id": "vip", "text": r#"in list "vip""#}),
    )
    .expect(201);
    s.identify("fox", json!({"email": "fox@example.com"})).ok();
    s.settle();
    // A brand-new contact has not logged in: a member at once.
    assert_eq!(member_ids(&s, "quiet"), ["fox"]);
    s.track("fox", "Logged In", json!({})).ok();
    s.settle();
    assert!(member_ids(&s, "quiet").is_empty());
    let id = s.contact_by_user("fox")["id"].as_i64().unwrap();
    s.admin_post("/v1/lists/vip/members", json!({"contact_ids": [id]}))
        .ok();
    s.settle();
    assert_eq!(member_ids(&s, "vip"), ["fox"]);
    s.admin_delete("/v1/lists/vip/members", Some(json!({"contact_ids": [id]})))
        .ok();
    s.settle();
    assert!(member_ids(&s, "vip").is_empty());
    let names = event_names(&s, "fox");
    assert!(
        names.contains(&"Removed From List".to_string()),
        "{names:?}"
    );
}

/// `(members, entered, left)` of each point of a segment's history.
fn history(s: &Server, segment: &str, query: &str) -> Vec<(i64, i64, i64)> {
    let body = s
        .admin_get(&format!("/v1/segments/{segment}/history?{query}"))
        .ok();
    body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_i64().unwrap();
            (n("members"), n("entered"), n("left"))
        })
        .collect()
}

#[test]
fn a_segment_keeps_its_size_over_time_by_day_and_by_hour() {
    let s = Server::simulated();
    s.admin_post(
        "/v1/segments",
        json!({"id": "pro", "text": r#"plan = "pro""#}),
    )
    .expect(201);
    // Day 1 begins at the next UTC midnight; everything happens an hour into a day.
    let day1 = now(&s)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .start_of_day()
        .unwrap()
        .timestamp()
        + jiff::SignedDuration::from_hours(24);
    let date = |n: i64| {
        (day1 + jiff::SignedDuration::from_hours(24 * (n - 1)))
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string()
    };
    advance_to(&s, day1 + jiff::SignedDuration::from_hours(1));
    for user in ["ann", "bob"] {
        s.identify(user, json!({"plan": "pro"})).ok();
    }
    s.settle();
    s.advance(DAY);
    s.identify("bob", json!({"plan": "free"})).ok();
    s.identify("cy", json!({"plan": "pro"})).ok();
    s.settle();
    s.advance(DAY);
    // An erased contact leaves the segment's count (and nothing of it stays there).
    let ann = s.contact_by_user("ann")["id"].as_i64().unwrap();
    s.admin_delete(&format!("/v1/contacts/{ann}"), None).ok();
    s.settle();

    let range = format!("from={}&to={}", date(1), date(4));
    assert_eq!(
        history(&s, "pro", &range),
        [(2, 2, 0), (2, 1, 1), (1, 0, 1)]
    );
    let body = s
        .admin_get(&format!("/v1/segments/pro/history?{range}"))
        .ok();
    assert_eq!(
        (&body["bucket"], &body["tz"], &body["points"][1]["time"]),
        (
            &json!("day"),
            &json!("UTC"),
            &json!(format!("{}T00:00:00Z", date(2)))
        )
    );
    // By default: the last 30 days (and today), up to the members now.
    let default = history(&s, "pro", "");
    assert_eq!(default.len(), 31);
    assert_eq!(default[30], (1, 0, 1));
    assert_eq!(default[..28].iter().map(|p| p.0).max(), Some(0));
    // By the hour: the changes are in the second hour of day 2.
    let hours = history(
        &s,
        "pro",
        &format!(
            "bucket=hour&from={}T00:00:00Z&to={}T03:00:00Z",
            date(2),
            date(2)
        ),
    );
    assert_eq!(hours, [(2, 0, 0), (2, 1, 1), (2, 0, 0)]);
    // Days in another zone begin at its midnight: in Tokyo (UTC+9), 01:00 UTC is 10:00.
    let tokyo = history(
        &s,
        "pro",
        &format!("from={}&to={}&tz=Asia/Tokyo", date(1), date(3)),
    );
    assert_eq!(tokyo, [(2, 2, 0), (2, 1, 1)]);

    for (query, field) in [
        ("bucket=week", "bucket"),
        ("tz=Mars/Olympus", "tz"),
        ("from=last-week", "from"),
        ("from=2025-06-10&to=2025-06-01", "to"),
        ("from=2000-01-01", "from"),
        ("bucket=hour&from=2000-01-01T00:00:00Z", "from"),
    ] {
        let e = s
            .admin_get(&format!("/v1/segments/pro/history?{query}"))
            .expect_error(400, "invalid_parameter");
        assert_eq!(e["field"], field, "{query}: {e}");
    }
    s.admin_get("/v1/segments/nope/history")
        .expect_error(404, "not_found");
    // Deleting the segment deletes its history: one of the same id starts afresh.
    s.admin_delete("/v1/segments/pro", None).expect(204);
    s.admin_post(
        "/v1/segments",
        json!({"id": "pro", "text": r#"plan = "gold""#}),
    )
    .expect(201);
    assert_eq!(
        history(&s, "pro", &range),
        [(0, 0, 0), (0, 0, 0), (0, 0, 0)]
    );
}
