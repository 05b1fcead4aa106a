//! Tests for sending hours (quiet hours, blocked dates, defer or skip, across daylight-saving
//! changes), the goal's conversion window, trigger kinds (event, list, segment, API) and the
//! action nodes `emit_event`, `unsubscribe`, `enroll_in_journey`, `jump` and `score`.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};
use waymark_core::event::{ENROLLMENT_REQUESTED, LIST_ADDED, SEGMENT_EXITED};
use waymark_core::filter::filter_matches;
use waymark_core::journey::Channel;
use waymark_core::timing::SendWindow;
use waymark_core::validate::parse_and_validate;
use waymark_core::{
    Effect, Enrollment, EnrollmentStatus, EventKind, EventRecord, Input, Journey, JourneyDocument,
    StepLog, step,
};

use waymark_core::stepper::TraitsOnly as Traits;

fn traits(v: Value) -> Traits {
    Traits(v.as_object().expect("object").clone())
}

fn journey(doc: Value) -> Journey {
    let doc: JourneyDocument = parse_and_validate(&doc, None).expect("valid journey");
    Journey::compile(doc).expect("compiles")
}

fn codes(doc: Value) -> Vec<(String, Option<String>)> {
    match parse_and_validate(&doc, None) {
        Ok(_) => Vec::new(),
        Err(es) => es
            .into_iter()
            .map(|e| (e.code.to_string(), e.field))
            .collect(),
    }
}

fn enrollment(entered_at: Timestamp) -> Enrollment {
    Enrollment {
        id: 7,
        journey_id: "j".into(),
        version: 1,
        contact_id: 1,
        key: None,
        node: "start".into(),
        status: EnrollmentStatus::Active,
        wake_at: None,
        entered_at,
        entered_seq: 1,
        consumed_seq: 0,
        visits: 0,
    }
}

fn utc(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn local(t: Timestamp, zone: &str) -> String {
    t.to_zoned(TimeZone::get(zone).unwrap())
        .strftime("%Y-%m-%dT%H:%M")
        .to_string()
}

fn send_doc(settings: Value) -> Value {
    let mut doc = json!({
        "id": "j", "name": "hours",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "mail", "type": "send_email", "template": "t"},
            {"id": "after", "type": "send_sms", "template": "s"},
        ],
        "edges": [{"from": "start", "to": "mail"}, {"from": "mail", "to": "after"}],
    });
    doc.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    doc
}

fn sends(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { node, .. } => Some(node.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn quiet_hours_defer_a_send_to_the_next_morning_in_the_contacts_zone() {
    let j = journey(send_doc(
        json!({"quiet_hours": {"start": "21:00", "end": "08:00"}}),
    ));
    let rome = traits(json!({"timezone": "Europe/Rome"}));
    // 22:30 in Rome: quiet until 08:00 the next morning.
    let now = utc("2026-06-10T20:30:00Z");
    let out = step(&j, &enrollment(now), Input::Enter, now, &rome).unwrap();
    assert!(sends(&out.effects).is_empty());
    assert_eq!(out.enrollment.node, "mail");
    let wake = out.enrollment.wake_at.expect("waits");
    assert_eq!(local(wake, "Europe/Rome"), "2026-06-11T08:00");
    // The timer sends, and the path goes on (08:00 is allowed, so the SMS goes too).
    let out = step(&j, &out.enrollment, Input::Timer, wake, &rome).unwrap();
    assert_eq!(sends(&out.effects), ["mail", "after"]);
    assert_eq!(out.enrollment.status, EnrollmentStatus::Completed);
    // The idempotency key is the node's visit, the same as an immediate send would have used.
    match &out.effects[0] {
        Effect::Send {
            idempotency_key, ..
        } => assert_eq!(idempotency_key, "7:mail:2"),
        other => panic!("{other:?}"),
    }
    // In the afternoon nothing waits.
    let now = utc("2026-06-10T13:00:00Z");
    let out = step(&j, &enrollment(now), Input::Enter, now, &rome).unwrap();
    assert_eq!(sends(&out.effects), ["mail", "after"]);
}

#[test]
fn quiet_hours_end_correctly_across_a_daylight_saving_change() {
    // New York springs forward on 2026-03-08 at 02:00. Quiet 22:00-07:00.
    let j = journey(send_doc(json!({
        "quiet_hours": {"start": "22:00", "end": "07:00"},
        "timezone": "America/New_York"
    })));
    let none = traits(json!({}));
    let now = utc("2026-03-08T03:30:00Z"); // 22:30 EST on the 7th
    let out = step(&j, &enrollment(now), Input::Enter, now, &none).unwrap();
    let wake = out.enrollment.wake_at.unwrap();
    assert_eq!(local(wake, "America/New_York"), "2026-03-08T07:00");
    // 07:00 EDT is 11:00 UTC: 7.5 hours of wall time, not 8.5.
    assert_eq!(wake, utc("2026-03-08T11:00:00Z"));
    // A quiet period that ends inside the gap (02:30 does not exist that night) ends at 03:30.
    let window = SendWindow {
        quiet: Some((
            jiff::civil::time(1, 0, 0, 0),
            jiff::civil::time(2, 30, 0, 0),
        )),
        ..Default::default()
    };
    let ny = TimeZone::get("America/New_York").unwrap();
    let at = window
        .next_allowed(utc("2026-03-08T06:15:00Z"), &ny) // 01:15 EST
        .unwrap();
    assert_eq!(local(at, "America/New_York"), "2026-03-08T03:30");
}

#[test]
fn blocked_dates_defer_to_the_next_allowed_day_and_skip_goes_on() {
    let j = journey(send_doc(json!({
        "blocked_dates": ["12-25", "2026-12-26"],
        "quiet_hours": {"start": "20:00", "end": "09:00"}
    })));
    let none = traits(json!({}));
    let now = utc("2026-12-25T12:00:00Z");
    let out = step(&j, &enrollment(now), Input::Enter, now, &none).unwrap();
    // The 25th and 26th are blocked; the 27th's quiet hours end at 09:00.
    assert_eq!(out.enrollment.wake_at, Some(utc("2026-12-27T09:00:00Z")));

    let j = journey(send_doc(json!({
        "blocked_dates": ["12-25"],
        "outside_hours": "skip"
    })));
    let out = step(&j, &enrollment(now), Input::Enter, now, &none).unwrap();
    assert!(sends(&out.effects).is_empty());
    assert_eq!(out.enrollment.status, EnrollmentStatus::Completed);
    let skipped: Vec<_> = out
        .log
        .iter()
        .filter(|l| matches!(l, StepLog::Skipped { .. }))
        .collect();
    assert_eq!(skipped.len(), 2, "{:?}", out.log);
}

#[test]
fn the_installations_window_applies_unless_the_journey_has_its_own_quiet_hours() {
    let installation = SendWindow::from_settings(
        Some(&waymark_core::journey::QuietHours {
            start: "21:00".into(),
            end: "08:00".into(),
        }),
        &["01-01".into()],
        Default::default(),
    )
    .unwrap();
    let none = traits(json!({}));
    let night = utc("2026-06-10T23:00:00Z");
    let plain = journey(send_doc(json!({}))).with_installation_window(&installation);
    let out = step(&plain, &enrollment(night), Input::Enter, night, &none).unwrap();
    assert_eq!(out.enrollment.wake_at, Some(utc("2026-06-11T08:00:00Z")));
    // The journey's own quiet hours replace the installation's; blocked dates add up.
    let own = journey(send_doc(
        json!({"quiet_hours": {"start": "23:30", "end": "06:00"}}),
    ))
    .with_installation_window(&installation);
    let out = step(&own, &enrollment(night), Input::Enter, night, &none).unwrap();
    assert_eq!(sends(&out.effects), ["mail", "after"]);
    let new_year = utc("2027-01-01T12:00:00Z");
    let out = step(&own, &enrollment(new_year), Input::Enter, new_year, &none).unwrap();
    assert_eq!(out.enrollment.wake_at, Some(utc("2027-01-02T06:00:00Z")));
}

#[test]
fn the_goal_converts_only_within_its_window() {
    let j = journey(json!({
        "id": "j", "name": "goal",
        "goal": {"event": "Order Completed", "within": "7d"},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "wait", "type": "delay", "duration": "30d"},
        ],
        "edges": [{"from": "start", "to": "wait"}],
    }));
    let entered = utc("2026-01-01T00:00:00Z");
    let none = traits(json!({}));
    let waiting = step(&j, &enrollment(entered), Input::Enter, entered, &none)
        .unwrap()
        .enrollment;
    let order = |seq: i64, at: Timestamp| EventRecord {
        seq,
        kind: EventKind::Track,
        name: "Order Completed".into(),
        properties: Map::new(),
        timestamp: at,
    };
    let day6 = utc("2026-01-07T00:00:00Z");
    let out = step(&j, &waiting, Input::Event(&order(5, day6)), day6, &none).unwrap();
    assert_eq!(out.enrollment.status, EnrollmentStatus::Converted);
    let day8 = utc("2026-01-09T00:00:00Z");
    assert!(step(&j, &waiting, Input::Event(&order(5, day8)), day8, &none).is_none());
    assert_eq!(
        codes(json!({
            "id": "j", "name": "x",
            "goal": {"event": "A", "within": "soon"},
            "exit_on": [{"event": "B", "within": "1d"}],
            "nodes": [{"id": "start", "type": "trigger", "event": "S"}],
        })),
        [
            (
                "invalid_duration".to_string(),
                Some("goal.within".to_string())
            ),
            (
                "invalid_setting".to_string(),
                Some("exit_on[0].within".to_string())
            ),
        ]
    );
}

#[test]
fn list_segment_and_api_triggers_listen_to_recorded_events() {
    let j = journey(json!({
        "id": "vip-welcome", "name": "t",
        "nodes": [
            {"id": "by_list", "type": "trigger", "list": "vip"},
            {"id": "by_segment", "type": "trigger", "segment": {"id": "churn-risk", "on": "exit"}},
            {"id": "by_api", "type": "trigger", "api": true, "filter": {"plan": "pro"}},
        ],
    }));
    let props = |v: Value| v.as_object().unwrap().clone();
    let (node, filter) = j.triggers(LIST_ADDED).next().unwrap();
    assert_eq!(node.id, "by_list");
    assert!(filter_matches(filter, &props(json!({"list": "vip"}))));
    assert!(!filter_matches(filter, &props(json!({"list": "other"}))));
    let (node, filter) = j.triggers(SEGMENT_EXITED).next().unwrap();
    assert_eq!(node.id, "by_segment");
    assert!(filter_matches(
        filter,
        &props(json!({"segment": "churn-risk"}))
    ));
    let (node, filter) = j.triggers(ENROLLMENT_REQUESTED).next().unwrap();
    assert_eq!(node.id, "by_api");
    assert!(filter_matches(
        filter,
        &props(json!({"journey": "vip-welcome", "plan": "pro"}))
    ));
    assert!(!filter_matches(
        filter,
        &props(json!({"journey": "other", "plan": "pro"}))
    ));
    assert!(!filter_matches(
        filter,
        &props(json!({"journey": "vip-welcome"}))
    ));

    let bad = codes(json!({
        "id": "j", "name": "x",
        "nodes": [
            {"id": "a", "type": "trigger", "event": "S", "list": "vip"},
            {"id": "b", "type": "trigger"},
            {"id": "c", "type": "trigger", "list": " "},
        ],
    }));
    assert_eq!(
        bad.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["invalid_trigger", "invalid_trigger", "required"]
    );
}

#[test]
fn action_nodes_emit_unsubscribe_enroll_jump_and_score() {
    let j = journey(json!({
        "id": "j", "name": "actions",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Went Quiet"},
            {"id": "score", "type": "score", "points": 15},
            {"id": "again", "type": "score", "points": -5, "trait": "engagement"},
            {"id": "emit", "type": "emit_event", "event": "Became Dormant", "properties": {"tier": "b"}},
            {"id": "unsub", "type": "unsubscribe", "topic": "newsletter"},
            {"id": "enroll", "type": "enroll_in_journey", "journey": "win-back"},
            {"id": "wait", "type": "delay", "duration": "1d"},
            {"id": "loop", "type": "jump", "to": "score"},
        ],
        "edges": [
            {"from": "start", "to": "score"}, {"from": "score", "to": "again"},
            {"from": "again", "to": "emit"}, {"from": "emit", "to": "unsub"},
            {"from": "unsub", "to": "enroll"}, {"from": "enroll", "to": "wait"},
            {"from": "wait", "to": "loop"},
        ],
    }));
    let now = utc("2026-01-01T00:00:00Z");
    let facts = traits(json!({"lead_score": 10}));
    let out = step(&j, &enrollment(now), Input::Enter, now, &facts).unwrap();
    assert_eq!(out.enrollment.node, "wait");
    let mut set = Map::new();
    set.insert("lead_score".into(), json!(25));
    let mut engagement = Map::new();
    engagement.insert("engagement".into(), json!(-5));
    assert_eq!(
        out.effects,
        [
            Effect::SetTraits(set),
            Effect::SetTraits(engagement),
            Effect::EmitEvent {
                name: "Became Dormant".into(),
                properties: json!({"tier": "b"}).as_object().unwrap().clone(),
                idempotency_key: "7:emit:4".into(),
            },
            Effect::Unsubscribe {
                channel: Channel::Email,
                topic: Some("newsletter".into()),
            },
            Effect::Enroll {
                journey: "win-back".into(),
                idempotency_key: "7:enroll:6".into(),
            },
        ]
    );
    // After the delay, the jump goes back to the score node, which counts again.
    let wake = out.enrollment.wake_at.unwrap();
    let out = step(&j, &out.enrollment, Input::Timer, wake, &facts).unwrap();
    assert_eq!(out.enrollment.node, "wait");
    assert!(out.log.contains(&StepLog::Entered {
        node: "loop".into()
    }));
    assert!(out.log.contains(&StepLog::Entered {
        node: "score".into()
    }));

    let bad = codes(json!({
        "id": "j", "name": "x",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "S"},
            {"id": "a", "type": "jump", "to": "nowhere"},
            {"id": "b", "type": "enroll_in_journey", "journey": "j"},
            {"id": "c", "type": "score", "points": 0},
            {"id": "d", "type": "emit_event", "event": ""},
            {"id": "e", "type": "jump", "to": "start"},
        ],
        "edges": [
            {"from": "start", "to": "b"}, {"from": "b", "to": "c"},
            {"from": "c", "to": "d"}, {"from": "d", "to": "a"},
            {"from": "a", "to": "e"},
        ],
    }));
    let got: Vec<_> = bad
        .iter()
        .map(|(c, f)| (c.as_str(), f.as_deref()))
        .collect();
    assert!(got.contains(&("unknown_node", Some("to"))), "{got:?}");
    assert!(
        got.contains(&("self_enrollment", Some("journey"))),
        "{got:?}"
    );
    assert!(got.contains(&("invalid_points", Some("points"))), "{got:?}");
    assert!(got.contains(&("required", Some("event"))), "{got:?}");
    assert!(got.contains(&("edge_into_trigger", Some("to"))), "{got:?}");
    assert!(
        got.contains(&("unknown_output", Some("edges[4].output"))),
        "{got:?}"
    );
    // A jump loop without a wait is a cycle like any other.
    let cycle = codes(json!({
        "id": "j", "name": "x",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "S"},
            {"id": "a", "type": "score", "points": 1},
            {"id": "b", "type": "jump", "to": "a"},
        ],
        "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}],
    }));
    assert_eq!(cycle[0].0, "cycle_without_wait");
}

#[test]
fn sending_hours_and_rates_are_validated() {
    let got = codes(send_doc(json!({
        "quiet_hours": {"start": "25:00", "end": "08:00"},
        "send_rate": "fast",
    })));
    assert_eq!(
        got,
        [
            (
                "invalid_time".to_string(),
                Some("quiet_hours.start".to_string())
            ),
            ("invalid_rate".to_string(), Some("send_rate".to_string())),
        ]
    );
    let got = codes(send_doc(json!({"blocked_dates": ["2026-02-30"]})));
    assert_eq!(got[0].1.as_deref(), Some("blocked_dates[0]"));
    assert_eq!(
        waymark_core::duration::parse_send_rate("120/m").unwrap(),
        2.0
    );
}

#[test]
fn wait_until_date_waits_for_a_date_trait_with_an_offset_or_goes_on_missed() {
    let j = journey(json!({
        "id": "j", "name": "renewal",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Subscribed"},
            {"id": "before", "type": "wait_until_date", "trait": "renews_on", "offset": "-3d", "time": "09:00"},
            {"id": "remind", "type": "send_email", "template": "t"},
            {"id": "late", "type": "send_email", "template": "late"},
        ],
        "edges": [
            {"from": "start", "to": "before"},
            {"from": "before", "to": "remind"},
            {"from": "before", "to": "late", "output": "missed"},
        ],
    }));
    let now = utc("2026-11-23T12:00:00Z");
    let rome = traits(json!({"renews_on": "2026-12-10", "timezone": "Europe/Rome"}));
    let out = step(&j, &enrollment(now), Input::Enter, now, &rome).unwrap();
    let wake = out.enrollment.wake_at.unwrap();
    assert_eq!(local(wake, "Europe/Rome"), "2026-12-07T09:00");
    let out = step(&j, &out.enrollment, Input::Timer, wake, &rome).unwrap();
    assert_eq!(sends(&out.effects), ["remind"]);
    for facts in [
        traits(json!({})),
        traits(json!({"renews_on": "2026-11-24"})),
    ] {
        let out = step(&j, &enrollment(now), Input::Enter, now, &facts).unwrap();
        assert_eq!(sends(&out.effects), ["late"]);
    }
    let bad = codes(json!({
        "id": "j", "name": "x",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "S"},
            {"id": "w", "type": "wait_until_date", "trait": "d", "offset": "-3h"},
        ],
        "edges": [{"from": "start", "to": "w"}],
    }));
    assert_eq!(
        bad,
        [("invalid_duration".to_string(), Some("offset".to_string()))]
    );
}
