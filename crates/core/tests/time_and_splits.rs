//! Tests for the `random_split` and `wait_until` nodes and `update_traits.increment`: split
//! distribution and determinism, calendar waits across daylight-saving changes, weekdays,
//! time-zone fallbacks, and validation errors.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use serde_json::{Value, json};
use waymark_core::journey::{SplitBranch, WaitUntilNode};
use waymark_core::timing::{choose_branch, parse_time_of_day};
use waymark_core::validate::parse_and_validate;
use waymark_core::{
    Effect, Enrollment, EnrollmentStatus, Input, Journey, JourneyDocument, StepLog, StepOutcome,
    step,
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

use waymark_core::stepper::TraitsOnly as Traits;

fn traits(v: Value) -> Traits {
    Traits(v.as_object().expect("object").clone())
}

fn journey(doc: Value) -> Journey {
    let doc: JourneyDocument = parse_and_validate(&doc, None).expect("valid journey");
    Journey::compile(doc).expect("compiles")
}

/// The codes (and nodes) of the validation errors of a document.
fn errors(doc: Value) -> Vec<(String, Option<String>, Option<String>)> {
    match parse_and_validate(&doc, None) {
        Ok(_) => Vec::new(),
        Err(es) => es
            .into_iter()
            .map(|e| (e.code.to_string(), e.node, e.field))
            .collect(),
    }
}

fn enrollment(contact_id: i64) -> Enrollment {
    Enrollment {
        id: 7,
        journey_id: "j".into(),
        version: 1,
        contact_id,
        key: None,
        node: "start".into(),
        status: EnrollmentStatus::Active,
        wake_at: None,
        entered_at: Timestamp::UNIX_EPOCH,
        entered_seq: 1,
        consumed_seq: 0,
        visits: 0,
    }
}

fn enter(j: &Journey, contact_id: i64, now: Timestamp, facts: &Traits) -> StepOutcome {
    step(j, &enrollment(contact_id), Input::Enter, now, facts).expect("steps")
}

/// A UTC instant written as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// The local civil time of an instant in a zone, as `YYYY-MM-DDTHH:MM`.
fn local(t: Timestamp, zone: &str) -> String {
    t.to_zoned(TimeZone::get(zone).unwrap())
        .strftime("%Y-%m-%dT%H:%M %a")
        .to_string()
}

fn split_doc(branches: Value) -> Value {
    json!({
        "id": "j", "name": "split",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "split", "type": "random_split", "branches": branches},
        ],
        "edges": [{"from": "start", "to": "split"}],
    })
}

fn wait_doc(wait: Value, journey_tz: Option<&str>) -> Value {
    let mut node = json!({"id": "wait", "type": "wait_until"});
    node.as_object_mut()
        .unwrap()
        .extend(wait.as_object().unwrap().clone());
    let mut doc = json!({
        "id": "j", "name": "wait",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            node,
            {"id": "after", "type": "exit"},
        ],
        "edges": [{"from": "start", "to": "wait"}, {"from": "wait", "to": "after"}],
    });
    if let Some(tz) = journey_tz {
        doc["timezone"] = json!(tz);
    }
    doc
}

/// When an enrollment entering a `wait_until` journey at `now` wakes.
fn wakes(j: &Journey, now: Timestamp, facts: &Traits) -> Timestamp {
    let out = enter(j, 1, now, facts);
    assert_eq!(out.enrollment.node, "wait");
    let until = out.enrollment.wake_at.expect("waits");
    assert!(out.log.iter().any(
        |l| matches!(l, StepLog::Waiting { node, until: u } if node == "wait" && *u == until)
    ));
    until
}

// ---------------------------------------------------------------------------------------------
// random_split
// ---------------------------------------------------------------------------------------------

fn branches(spec: &[(&str, u32)]) -> Vec<SplitBranch> {
    spec.iter()
        .map(|(n, p)| SplitBranch {
            name: n.to_string(),
            percent: *p,
        })
        .collect()
}

#[test]
fn split_distribution_over_10000_contacts_is_within_2_percent() {
    for spec in [
        &[("a", 50), ("b", 50)][..],
        &[("a", 10), ("b", 20), ("c", 70)][..],
        &[("a", 25), ("b", 25), ("c", 25), ("d", 25)][..],
        &[("a", 1), ("b", 99)][..],
    ] {
        let bs = branches(spec);
        let mut counts = std::collections::HashMap::new();
        for contact in 1..=10_000 {
            *counts
                .entry(choose_branch("welcome", "split", contact, &bs))
                .or_insert(0u32) += 1;
        }
        for (name, percent) in spec {
            let got = f64::from(*counts.get(name).unwrap_or(&0)) / 100.0;
            assert!(
                (got - f64::from(*percent)).abs() <= 2.0,
                "{spec:?}: branch {name} got {got}%"
            );
        }
    }
}

#[test]
fn split_is_stable_for_known_inputs() {
    // The hash is written out; these values must never change between builds or versions.
    assert_eq!(waymark_core::timing::stable_hash(b""), {
        // fmix64 of the FNV-1a offset basis.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        h
    });
    let bs = branches(&[("a", 50), ("b", 50)]);
    let first: Vec<&str> = (1..=20)
        .map(|c| choose_branch("j", "split", c, &bs))
        .collect();
    let again: Vec<&str> = (1..=20)
        .map(|c| choose_branch("j", "split", c, &bs))
        .collect();
    assert_eq!(first, again);
    // A different node or journey reshuffles.
    let other: Vec<&str> = (1..=20)
        .map(|c| choose_branch("j", "split2", c, &bs))
        .collect();
    assert_ne!(first, other);
}

#[test]
fn a_zero_percent_branch_is_never_taken() {
    let bs = branches(&[("a", 0), ("b", 100)]);
    assert!((1..=2000).all(|c| choose_branch("j", "s", c, &bs) == "b"));
}

#[test]
fn split_node_routes_through_the_chosen_output_and_retries_go_the_same_way() {
    let mut doc = split_doc(json!([{"name": "a", "percent": 30}, {"name": "b", "percent": 70}]));
    doc["nodes"].as_array_mut().unwrap().extend([
        json!({"id": "to_a", "type": "add_to_list", "list": "A"}),
        json!({"id": "to_b", "type": "add_to_list", "list": "B"}),
    ]);
    doc["edges"].as_array_mut().unwrap().extend([
        json!({"from": "split", "to": "to_a", "output": "a"}),
        json!({"from": "split", "to": "to_b", "output": "b"}),
    ]);
    let j = journey(doc);
    let facts = traits(json!({}));
    let mut in_a = 0;
    for contact in 1..=1000 {
        let out = enter(&j, contact, Timestamp::UNIX_EPOCH, &facts);
        let again = enter(&j, contact, Timestamp::UNIX_EPOCH, &facts);
        assert_eq!(out, again, "a retry goes the same way");
        let expected = choose_branch(
            "j",
            "split",
            contact,
            &j.node("split")
                .map(|n| match &n.kind {
                    waymark_core::NodeKind::RandomSplit(r) => r.branches.clone(),
                    _ => unreachable!(),
                })
                .unwrap(),
        )
        .to_string();
        assert!(out.log.contains(&StepLog::Left {
            node: "split".into(),
            output: expected.clone()
        }));
        let list = if expected == "a" { "A" } else { "B" };
        assert_eq!(out.effects, vec![Effect::AddToList(list.into())]);
        in_a += usize::from(expected == "a");
    }
    assert!(
        (250..=350).contains(&in_a),
        "{in_a} of 1000 in a 30% branch"
    );
}

#[test]
fn split_outputs_are_the_branch_names() {
    let doc: JourneyDocument = parse_and_validate(
        &split_doc(json!([{"name": "x", "percent": 40}, {"name": "y", "percent": 60}])),
        None,
    )
    .unwrap();
    assert_eq!(doc.nodes[1].kind.outputs(), vec!["x", "y"]);
    assert_eq!(doc.nodes[1].kind.type_name(), "random_split");
    assert!(!doc.nodes[1].kind.waits());
}

#[test]
fn split_validation_errors() {
    let bad = |b: Value| errors(split_doc(b));
    let has = |es: &[(String, Option<String>, Option<String>)], field: &str| {
        es.iter().any(|(c, n, f)| {
            c == "invalid_split" && n.as_deref() == Some("split") && f.as_deref() == Some(field)
        })
    };
    let es = bad(json!([{"name": "a", "percent": 50}, {"name": "b", "percent": 40}]));
    assert!(has(&es, "branches"), "{es:?}");
    let es = bad(json!([{"name": "a", "percent": 100}]));
    assert!(has(&es, "branches"), "{es:?}");
    let es = bad(json!([{"name": "a", "percent": 50}, {"name": "a", "percent": 50}]));
    assert!(has(&es, "branches[1].name"), "{es:?}");
    let es = bad(json!([{"name": "", "percent": 50}, {"name": "b", "percent": 50}]));
    assert!(has(&es, "branches[0].name"), "{es:?}");
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"name": format!("b{i}"), "percent": if i == 0 { 90 } else { 1 }}))
        .collect();
    assert!(has(&bad(json!(eleven)), "branches"));
    // Edges must leave from a branch name.
    let mut doc = split_doc(json!([{"name": "a", "percent": 50}, {"name": "b", "percent": 50}]));
    doc["nodes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "end", "type": "exit"}));
    doc["edges"]
        .as_array_mut()
        .unwrap()
        .push(json!({"from": "split", "to": "end", "output": "c"}));
    let es = errors(doc);
    assert!(
        es.iter()
            .any(|(c, n, _)| c == "unknown_output" && n.as_deref() == Some("split")),
        "{es:?}"
    );
}

proptest! {
    #[test]
    fn split_choice_is_deterministic_and_a_branch(
        contact in any::<i64>(),
        journey_id in "[a-z0-9_-]{1,20}",
        p in 0u32..=100,
    ) {
        let bs = branches(&[("a", p), ("b", 100 - p)]);
        let c1 = choose_branch(&journey_id, "n", contact, &bs);
        let c2 = choose_branch(&journey_id, "n", contact, &bs);
        prop_assert_eq!(c1, c2);
        prop_assert!(c1 == "a" || c1 == "b");
        if p == 0 { prop_assert_eq!(c1, "b"); }
        if p == 100 { prop_assert_eq!(c1, "a"); }
    }
}

// ---------------------------------------------------------------------------------------------
// wait_until
// ---------------------------------------------------------------------------------------------

#[test]
fn wait_until_later_today_and_tomorrow_when_past_or_exact() {
    let j = journey(wait_doc(json!({"time": "09:00"}), None));
    let f = traits(json!({"timezone": "Europe/Rome"}));
    // 2026-06-10 07:00 Rome (05:00Z) → 09:00 the same day.
    let w = wakes(&j, utc("2026-06-10T05:00:00Z"), &f);
    assert_eq!(w, utc("2026-06-10T07:00:00Z"));
    // Exactly 09:00 local → tomorrow.
    let w = wakes(&j, utc("2026-06-10T07:00:00Z"), &f);
    assert_eq!(w, utc("2026-06-11T07:00:00Z"));
    // After 09:00 → tomorrow.
    let w = wakes(&j, utc("2026-06-10T12:00:00Z"), &f);
    assert_eq!(local(w, "Europe/Rome"), "2026-06-11T09:00 Thu");
}

#[test]
fn wait_until_spring_forward_gap_moves_forward() {
    // America/New_York jumps from 02:00 EST to 03:00 EDT on 2026-03-08: 02:30 does not exist.
    let j = journey(wait_doc(json!({"time": "02:30"}), None));
    let f = traits(json!({"timezone": "America/New_York"}));
    // 2026-03-07 20:00 EST.
    let w = wakes(&j, utc("2026-03-08T01:00:00Z"), &f);
    // Compatible disambiguation: shifted forward by the gap, 03:30 EDT = 07:30Z.
    assert_eq!(w, utc("2026-03-08T07:30:00Z"));
    assert_eq!(local(w, "America/New_York"), "2026-03-08T03:30 Sun");
    // The next day is the ordinary 02:30 EDT.
    let w2 = wakes(&j, w, &f);
    assert_eq!(w2, utc("2026-03-09T06:30:00Z"));
    // A 09:00 wait around the change stays at 09:00 local on both sides.
    let j9 = journey(wait_doc(json!({"time": "09:00"}), None));
    let a = wakes(&j9, utc("2026-03-07T15:00:00Z"), &f); // after 09:00 EST on the 7th
    assert_eq!(a, utc("2026-03-08T13:00:00Z"));
    assert_eq!(local(a, "America/New_York"), "2026-03-08T09:00 Sun");
}

#[test]
fn wait_until_fall_back_overlap_takes_the_first_occurrence() {
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    let j = journey(wait_doc(json!({"time": "01:30"}), None));
    let f = traits(json!({"timezone": "America/New_York"}));
    // 2026-10-31 22:00 EDT.
    let w = wakes(&j, utc("2026-11-01T02:00:00Z"), &f);
    assert_eq!(w, utc("2026-11-01T05:30:00Z"), "01:30 EDT, the first one");
    // Waking at the first 01:30 and waiting again: not the second 01:30, but the next day.
    let w2 = wakes(&j, w, &f);
    assert_eq!(w2, utc("2026-11-02T06:30:00Z"), "01:30 EST the next day");
    // Entering between the two occurrences (01:15 EST, after 01:30 EDT) also goes to tomorrow.
    let w3 = wakes(&j, utc("2026-11-01T06:15:00Z"), &f);
    assert_eq!(w3, utc("2026-11-02T06:30:00Z"));
}

#[test]
fn wait_until_weekdays_skip_to_monday() {
    let j = journey(wait_doc(
        json!({"time": "09:00", "weekdays": ["mon", "tue", "wed", "thu", "fri"]}),
        None,
    ));
    let f = traits(json!({"timezone": "Europe/Berlin"}));
    // Friday 2026-06-12 10:00 Berlin (past 09:00) → Monday 2026-06-15 09:00.
    let w = wakes(&j, utc("2026-06-12T08:00:00Z"), &f);
    assert_eq!(local(w, "Europe/Berlin"), "2026-06-15T09:00 Mon");
    // Saturday → Monday.
    let w = wakes(&j, utc("2026-06-13T05:00:00Z"), &f);
    assert_eq!(local(w, "Europe/Berlin"), "2026-06-15T09:00 Mon");
    // Only Sundays, from a Sunday after the time → a week later.
    let j = journey(wait_doc(
        json!({"time": "09:00", "weekdays": ["sun"]}),
        None,
    ));
    let w = wakes(&j, utc("2026-06-14T10:00:00Z"), &f);
    assert_eq!(local(w, "Europe/Berlin"), "2026-06-21T09:00 Sun");
}

#[test]
fn wait_until_time_zone_precedence() {
    let now = utc("2026-06-09T22:00:00Z");
    let node_tz = json!({"time": "09:00", "timezone": "Asia/Tokyo"});
    // Contact zone wins over the node's and the journey's.
    let j = journey(wait_doc(node_tz.clone(), Some("America/Los_Angeles")));
    let w = wakes(&j, now, &traits(json!({"timezone": "Europe/London"})));
    assert_eq!(local(w, "Europe/London"), "2026-06-10T09:00 Wed");
    // No contact zone: the node's.
    let w = wakes(&j, now, &traits(json!({})));
    assert_eq!(local(w, "Asia/Tokyo"), "2026-06-10T09:00 Wed");
    // An unknown contact zone falls back too.
    let w = wakes(&j, now, &traits(json!({"timezone": "Mars/Olympus"})));
    assert_eq!(local(w, "Asia/Tokyo"), "2026-06-10T09:00 Wed");
    // No node zone: the journey's.
    let j = journey(wait_doc(
        json!({"time": "09:00"}),
        Some("America/Los_Angeles"),
    ));
    let w = wakes(&j, now, &traits(json!({})));
    assert_eq!(local(w, "America/Los_Angeles"), "2026-06-10T09:00 Wed");
    // Nothing: UTC.
    let j = journey(wait_doc(json!({"time": "09:00"}), None));
    assert_eq!(
        wakes(&j, now, &traits(json!({}))),
        utc("2026-06-10T09:00:00Z")
    );
}

#[test]
fn wait_until_timer_takes_next() {
    let j = journey(wait_doc(json!({"time": "09:00"}), None));
    let f = traits(json!({}));
    let out = enter(&j, 1, utc("2026-06-10T00:00:00Z"), &f);
    let wake = out.enrollment.wake_at.unwrap();
    assert!(
        step(
            &j,
            &out.enrollment,
            Input::Timer,
            utc("2026-06-10T08:59:59Z"),
            &f
        )
        .is_none(),
        "not yet due"
    );
    let done = step(&j, &out.enrollment, Input::Timer, wake, &f).unwrap();
    assert!(done.log.contains(&StepLog::Left {
        node: "wait".into(),
        output: "next".into()
    }));
    assert_eq!(done.enrollment.status, EnrollmentStatus::Exited);
    assert!(j.node("wait").unwrap().kind.waits());
    assert_eq!(j.node("wait").unwrap().kind.outputs(), vec!["next"]);
}

#[test]
fn wait_until_validation_errors() {
    let code_of = |wait: Value, tz: Option<&str>| errors(wait_doc(wait, tz));
    for (wait, code, field) in [
        (json!({"time": "9:00"}), "invalid_time", "time"),
        (json!({"time": "24:00"}), "invalid_time", "time"),
        (json!({"time": "09:60"}), "invalid_time", "time"),
        (
            json!({"time": "09:00", "weekdays": ["mon", "funday"]}),
            "invalid_weekday",
            "weekdays",
        ),
        (
            json!({"time": "09:00", "weekdays": []}),
            "invalid_weekday",
            "weekdays",
        ),
        (
            json!({"time": "09:00", "timezone": "Mars/Olympus"}),
            "invalid_timezone",
            "timezone",
        ),
    ] {
        let es = code_of(wait.clone(), None);
        assert!(
            es.iter().any(|(c, n, f)| c == code
                && n.as_deref() == Some("wait")
                && f.as_deref() == Some(field)),
            "{wait}: {es:?}"
        );
    }
    let es = code_of(json!({"time": "09:00"}), Some("Nowhere/Land"));
    assert!(
        es.iter().any(|(c, n, f)| c == "invalid_timezone"
            && n.is_none()
            && f.as_deref() == Some("timezone")),
        "{es:?}"
    );
    assert!(parse_time_of_day("23:59").is_some());
    assert!(parse_time_of_day("00:00").is_some());
    assert!(parse_time_of_day("0900").is_none());
    // A valid node with every field parses.
    let node: WaitUntilNode = serde_json::from_value(
        json!({"time": "07:15", "weekdays": ["sat", "sun"], "timezone": "UTC"}),
    )
    .unwrap();
    assert!(node.spec().is_ok());
}

proptest! {
    /// The wake time is after now, at the wanted local time on an allowed day, within 8 days.
    #[test]
    fn wait_until_lands_on_the_local_time(
        secs in 1_700_000_000i64..1_900_000_000,
        hour in 0i8..24,
        minute in 0i8..60,
        days in proptest::collection::btree_set(0usize..7, 1..=7),
        zone in prop::sample::select(vec!["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
    ) {
        let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let weekdays: Vec<&str> = days.iter().map(|d| names[*d]).collect();
        let node: WaitUntilNode = serde_json::from_value(json!({
            "time": format!("{hour:02}:{minute:02}"), "weekdays": weekdays,
        })).unwrap();
        let spec = node.spec().unwrap();
        let tz = TimeZone::get(zone).unwrap();
        let now = Timestamp::from_second(secs).unwrap();
        let w = spec.next_after(now, &tz).unwrap();
        prop_assert!(w > now);
        prop_assert!(w.as_second() - now.as_second() <= 8 * 86_400);
        let z = w.to_zoned(tz.clone());
        prop_assert!(days.contains(&(z.weekday().to_monday_zero_offset() as usize)));
        let wanted = jiff::civil::Time::new(hour, minute, 0, 0).unwrap();
        if z.time() != wanted {
            // Only a daylight-saving gap moves the time, and only forward.
            prop_assert!(z.time() > wanted, "{z} for {wanted}");
            let gap = z.date().to_datetime(wanted).to_zoned(tz.clone()).unwrap();
            prop_assert_eq!(gap.timestamp(), w);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// update_traits.increment
// ---------------------------------------------------------------------------------------------

fn increment_journey(update: Value) -> Journey {
    let mut node = json!({"id": "up", "type": "update_traits"});
    node.as_object_mut()
        .unwrap()
        .extend(update.as_object().unwrap().clone());
    journey(json!({
        "id": "j", "name": "inc",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Visited"},
            node,
            {"id": "hot", "type": "branch", "condition": {"traits": {"score": {"gte": 50}}}},
            {"id": "sales", "type": "add_to_list", "list": "sales"},
        ],
        "edges": [
            {"from": "start", "to": "up"},
            {"from": "up", "to": "hot"},
            {"from": "hot", "to": "sales", "output": "yes"},
        ],
    }))
}

#[test]
fn increment_adds_to_numeric_traits() {
    let j = increment_journey(
        json!({"set": {"stage": "lead"}, "increment": {"score": 10, "visits": 1}}),
    );
    let out = enter(&j, 1, Timestamp::UNIX_EPOCH, &traits(json!({"score": 45})));
    let Effect::SetTraits(changes) = &out.effects[0] else {
        panic!("{:?}", out.effects)
    };
    assert_eq!(
        Value::Object(changes.clone()),
        json!({"stage": "lead", "score": 55, "visits": 1})
    );
    // The branch sees the incremented score.
    assert_eq!(out.effects[1], Effect::AddToList("sales".into()));

    // Missing counts as 0; a float stays a float; a negative subtracts; a string counts as 0.
    let j = increment_journey(json!({"increment": {"score": -2.5}}));
    let out = enter(&j, 1, Timestamp::UNIX_EPOCH, &traits(json!({"score": 10})));
    assert_eq!(
        out.effects,
        vec![Effect::SetTraits(
            json!({"score": 7.5}).as_object().unwrap().clone()
        )]
    );
    let out = enter(&j, 1, Timestamp::UNIX_EPOCH, &traits(json!({})));
    assert_eq!(
        out.effects,
        vec![Effect::SetTraits(
            json!({"score": -2.5}).as_object().unwrap().clone()
        )]
    );
    let out = enter(
        &j,
        1,
        Timestamp::UNIX_EPOCH,
        &traits(json!({"score": "high"})),
    );
    assert_eq!(
        out.effects,
        vec![Effect::SetTraits(
            json!({"score": -2.5}).as_object().unwrap().clone()
        )]
    );
}

#[test]
fn increment_validation() {
    let base = |update: Value| {
        let mut node = json!({"id": "up", "type": "update_traits"});
        node.as_object_mut()
            .unwrap()
            .extend(update.as_object().unwrap().clone());
        errors(json!({
            "id": "j", "name": "inc",
            "nodes": [{"id": "start", "type": "trigger", "event": "Visited"}, node],
            "edges": [{"from": "start", "to": "up"}],
        }))
    };
    assert!(base(json!({"increment": {"score": 1}})).is_empty());
    let es = base(json!({}));
    assert!(
        es.iter()
            .any(|(c, n, _)| c == "required" && n.as_deref() == Some("up")),
        "{es:?}"
    );
    let es = base(json!({"set": {"score": 1}, "increment": {"score": 1}}));
    assert!(
        es.iter()
            .any(|(c, _, f)| c == "conflicting_update" && f.as_deref() == Some("increment.score")),
        "{es:?}"
    );
    let es = base(json!({"increment": {"score": "ten"}}));
    assert!(es.iter().any(|(c, _, _)| c == "invalid_node"), "{es:?}");
}
