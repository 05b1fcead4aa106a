//! Integration tests for the journey stepper (`waymark_core::step`) and the re-entry rules
//! (`may_enter`, `entry_key`).
//!
//! The stepper is a pure function; these tests drive it with an in-memory `Facts` and check
//! the exact enrollment, effects and log it returns.

use std::collections::HashSet;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use waymark_core::filter::Engagement;
use waymark_core::stepper::PriorEnrollment;
use waymark_core::{
    Channel, Effect, Enrollment, EnrollmentStatus, EventKind, EventRecord, Facts, Input, Journey,
    JourneyDocument, StepLog, StepOutcome, entry_key, may_enter, step,
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const T0: i64 = 1_700_000_000;
const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// The id of every enrollment built here; the first part of each idempotency key.
const ID: i64 = 42;

/// `T0 + offset` seconds.
fn t(offset: i64) -> Timestamp {
    Timestamp::from_second(T0 + offset).unwrap()
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn engagement_name(e: Engagement) -> &'static str {
    match e {
        Engagement::Opened => "opened",
        Engagement::Clicked => "clicked",
        Engagement::Sent => "sent",
        Engagement::Delivered => "delivered",
    }
}

/// In-memory facts about one contact.
#[derive(Debug, Clone, Default)]
struct MemFacts {
    traits: Map<String, Value>,
    history: Vec<EventRecord>,
    engaged: HashSet<(String, &'static str)>,
}

impl MemFacts {
    fn new() -> Self {
        MemFacts::default()
    }
    fn traits(mut self, v: Value) -> Self {
        self.traits = v.as_object().expect("traits are an object").clone();
        self
    }
    fn event(mut self, e: EventRecord) -> Self {
        self.history.push(e);
        self
    }
    fn engaged(mut self, node: &str, e: Engagement) -> Self {
        self.engaged.insert((node.to_string(), engagement_name(e)));
        self
    }
}

impl Facts for MemFacts {
    fn traits(&self) -> &Map<String, Value> {
        &self.traits
    }
    fn events_since(&self, name: &str, after_seq: i64) -> Vec<EventRecord> {
        let mut found: Vec<EventRecord> = self
            .history
            .iter()
            .filter(|e| e.name == name && e.seq > after_seq)
            .cloned()
            .collect();
        found.sort_by_key(|e| e.seq);
        found
    }
    fn engaged(&self, node: &str, engagement: Engagement) -> bool {
        self.engaged
            .contains(&(node.to_string(), engagement_name(engagement)))
    }
}

fn ev(seq: i64, name: &str, props: Value) -> EventRecord {
    EventRecord {
        seq,
        kind: EventKind::Track,
        name: name.to_string(),
        properties: props.as_object().cloned().unwrap_or_default(),
        timestamp: t(seq),
    }
}

fn compile(doc: JourneyDocument) -> Journey {
    Journey::compile(doc).unwrap_or_else(|errors| {
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("journey does not compile: {messages:#?}")
    })
}

fn journey_json(v: Value) -> Journey {
    compile(serde_json::from_value(v).expect("journey document parses"))
}

fn journey_yaml(text: &str) -> Journey {
    compile(serde_yaml_ng::from_str(text).expect("journey document parses"))
}

/// A fresh enrollment at its trigger node, entered at `t(0)` by the event with `entered_seq`.
fn enrollment(node: &str, key: Option<&str>, entered_seq: i64) -> Enrollment {
    Enrollment {
        id: ID,
        journey_id: "j".into(),
        version: 1,
        contact_id: 7,
        key: key.map(str::to_string),
        node: node.to_string(),
        status: EnrollmentStatus::Active,
        wake_at: None,
        entered_at: t(0),
        entered_seq,
        consumed_seq: 0,
        visits: 0,
    }
}

fn entered(node: &str) -> StepLog {
    StepLog::Entered { node: node.into() }
}
fn left(node: &str, output: &str) -> StepLog {
    StepLog::Left {
        node: node.into(),
        output: output.into(),
    }
}
fn waiting(node: &str, until: Timestamp) -> StepLog {
    StepLog::Waiting {
        node: node.into(),
        until,
    }
}
fn ended(node: &str, status: EnrollmentStatus, reason: &str) -> StepLog {
    StepLog::Ended {
        node: node.into(),
        status,
        reason: reason.into(),
    }
}

fn send(channel: Channel, node: &str, template: &str, visit: i64) -> Effect {
    Effect::Send {
        channel,
        node: node.into(),
        template: template.into(),
        idempotency_key: format!("{ID}:{node}:{visit}"),
    }
}

fn set_traits(v: Value) -> Effect {
    Effect::SetTraits(v.as_object().unwrap().clone())
}

fn must_step(
    journey: &Journey,
    enrollment: &Enrollment,
    input: Input<'_>,
    now: Timestamp,
    facts: &MemFacts,
) -> StepOutcome {
    step(journey, enrollment, input, now, facts)
        .unwrap_or_else(|| panic!("expected an outcome for {input:?} at {now} on {enrollment:?}"))
}

/// The abandoned-cart journey most tests use.
///
/// start ─▶ wait_1h ─▶ reminder ─▶ wait_checkout ─event─▶ tag_checkout (end)
///                        ▲              └─timeout─▶ opened_reminder ─yes─▶ nudge ─▶ wait_2d ─┐
///                        └──────────────────────────────────────────────────────────────────┘
///                                                      opened_reminder ─no─▶ cold ─▶ bye (exit)
const ABANDONED_CART: &str = r#"
id: abandoned-cart
name: Abandoned cart
entry:
  key: cart_id
  reentry: every_time
goal:
  event: Order Completed
exit_on:
  - event: Unsubscribed
    match_key: false
nodes:
  - {id: start, type: trigger, event: Cart Abandoned}
  - {id: wait_1h, type: delay, duration: 1h}
  - {id: reminder, type: send_email, template: cart-reminder}
  - {id: wait_checkout, type: wait_for_event, event: Checkout Started, timeout: 1d}
  - {id: tag_checkout, type: update_traits, set: {checkout_started: true}}
  - id: opened_reminder
    type: branch
    condition: {message: {node: reminder, engagement: opened}}
  - {id: nudge, type: send_sms, template: cart-sms}
  - {id: wait_2d, type: delay, duration: 2d}
  - {id: cold, type: add_to_list, list: cold-carts}
  - {id: bye, type: exit}
edges:
  - {from: start, to: wait_1h}
  - {from: wait_1h, to: reminder}
  - {from: reminder, to: wait_checkout}
  - {from: wait_checkout, to: tag_checkout, output: event}
  - {from: wait_checkout, to: opened_reminder, output: timeout}
  - {from: opened_reminder, to: nudge, output: "yes"}
  - {from: opened_reminder, to: cold, output: "no"}
  - {from: nudge, to: wait_2d}
  - {from: wait_2d, to: reminder}
  - {from: cold, to: bye}
"#;

fn abandoned_cart() -> Journey {
    journey_yaml(ABANDONED_CART)
}

/// `entered_seq` of the abandoned-cart enrollments.
const CART_SEQ: i64 = 10;

/// An abandoned-cart enrollment for cart `c1`, entered and waiting at `wait_1h`.
fn cart_at_delay(facts: &MemFacts) -> (Journey, Enrollment) {
    let j = abandoned_cart();
    let out = must_step(
        &j,
        &enrollment("start", Some("c1"), CART_SEQ),
        Input::Enter,
        t(0),
        facts,
    );
    assert_eq!(out.enrollment.node, "wait_1h");
    (j, out.enrollment)
}

/// An abandoned-cart enrollment for cart `c1`, reminded at `t(1h)` and waiting at
/// `wait_checkout` until `t(1h + 1d)`, with visits = 4.
fn cart_at_wait(facts: &MemFacts) -> (Journey, Enrollment) {
    let (j, e) = cart_at_delay(facts);
    let out = must_step(&j, &e, Input::Timer, t(HOUR), facts);
    assert_eq!(out.enrollment.node, "wait_checkout");
    assert_eq!(out.enrollment.wake_at, Some(t(HOUR + DAY)));
    assert_eq!(out.enrollment.visits, 4);
    (j, out.enrollment)
}

// ---------------------------------------------------------------------------------------------
// Enter, sends, delays, timers
// ---------------------------------------------------------------------------------------------

fn welcome_series() -> Journey {
    journey_json(json!({
        "id": "welcome",
        "name": "Welcome",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "welcome", "type": "send_email", "template": "welcome-email"},
            {"id": "text", "type": "send_sms", "template": "welcome-sms"},
            {"id": "pause", "type": "delay", "duration": "2d"},
            {"id": "followup", "type": "send_email", "template": "followup-email"}
        ],
        "edges": [
            {"from": "start", "to": "welcome"},
            {"from": "welcome", "to": "text"},
            {"from": "text", "to": "pause"},
            {"from": "pause", "to": "followup"}
        ]
    }))
}

#[test]
fn enter_runs_sends_until_the_first_delay() {
    let j = welcome_series();
    let facts = MemFacts::new();
    let start = enrollment("start", None, 5);
    let now = t(123);
    let out = must_step(&j, &start, Input::Enter, now, &facts);

    assert_eq!(
        out.enrollment,
        Enrollment {
            node: "pause".into(),
            wake_at: Some(now + secs(2 * DAY)),
            visits: 4,
            ..start.clone()
        }
    );
    assert_eq!(
        out.effects,
        vec![
            send(Channel::Email, "welcome", "welcome-email", 2),
            send(Channel::Sms, "text", "welcome-sms", 3),
        ]
    );
    assert_eq!(
        out.log,
        vec![
            entered("start"),
            left("start", "next"),
            entered("welcome"),
            left("welcome", "next"),
            entered("text"),
            left("text", "next"),
            entered("pause"),
            waiting("pause", t(123 + 2 * DAY)),
        ]
    );
    // The literal form of the key, to pin the format itself.
    match &out.effects[0] {
        Effect::Send {
            idempotency_key, ..
        } => assert_eq!(idempotency_key, "42:welcome:2"),
        other => panic!("not a send: {other:?}"),
    }
}

#[test]
fn idempotency_keys_use_the_enrollment_id_and_visit_count() {
    let j = welcome_series();
    let facts = MemFacts::new();
    let mut start = enrollment("start", None, 5);
    start.id = 9001;
    start.visits = 10;
    let out = must_step(&j, &start, Input::Enter, t(0), &facts);
    let keys: Vec<&str> = out
        .effects
        .iter()
        .map(|e| match e {
            Effect::Send {
                idempotency_key, ..
            } => idempotency_key.as_str(),
            other => panic!("not a send: {other:?}"),
        })
        .collect();
    assert_eq!(keys, ["9001:welcome:12", "9001:text:13"]);
    assert_eq!(out.enrollment.visits, 14);
}

#[test]
fn timer_before_wake_at_is_a_no_op() {
    let j = welcome_series();
    let facts = MemFacts::new();
    let waiting_at = must_step(
        &j,
        &enrollment("start", None, 5),
        Input::Enter,
        t(0),
        &facts,
    );
    let wake = waiting_at.enrollment.wake_at.unwrap();
    assert_eq!(wake, t(2 * DAY));

    assert_eq!(
        step(&j, &waiting_at.enrollment, Input::Timer, t(0), &facts),
        None
    );
    assert_eq!(
        step(
            &j,
            &waiting_at.enrollment,
            Input::Timer,
            wake - secs(1),
            &facts
        ),
        None
    );
}

#[test]
fn timer_at_wake_at_advances_and_a_path_that_ends_completes() {
    let j = welcome_series();
    let facts = MemFacts::new();
    let before = must_step(
        &j,
        &enrollment("start", None, 5),
        Input::Enter,
        t(0),
        &facts,
    )
    .enrollment;
    let wake = before.wake_at.unwrap();

    let out = must_step(&j, &before, Input::Timer, wake, &facts);
    assert_eq!(
        out.enrollment,
        Enrollment {
            node: "followup".into(),
            status: EnrollmentStatus::Completed,
            wake_at: None,
            visits: 5,
            ..before.clone()
        }
    );
    assert_eq!(
        out.effects,
        vec![send(Channel::Email, "followup", "followup-email", 5)]
    );
    assert_eq!(
        out.log,
        vec![
            left("pause", "next"),
            entered("followup"),
            left("followup", "next"),
            ended("followup", EnrollmentStatus::Completed, "end of path"),
        ]
    );

    // A late timer does the same thing: nothing depends on how late it is.
    let late = must_step(&j, &before, Input::Timer, wake + secs(3 * DAY), &facts);
    assert_eq!(late, out);

    // Once ended, nothing moves it any more.
    let done = out.enrollment;
    assert_eq!(
        step(&j, &done, Input::Timer, wake + secs(DAY), &facts),
        None
    );
    assert_eq!(step(&j, &done, Input::Enter, wake, &facts), None);
    assert_eq!(step(&j, &done, Input::Resume, wake, &facts), None);
    let e = ev(99, "Signed Up", json!({}));
    assert_eq!(step(&j, &done, Input::Event(&e), wake, &facts), None);
}

#[test]
fn timer_without_wake_at_or_off_a_waiting_node_is_a_no_op() {
    let j = welcome_series();
    let facts = MemFacts::new();
    // Not entered yet: no wake_at.
    assert_eq!(
        step(
            &j,
            &enrollment("start", None, 5),
            Input::Timer,
            t(10 * DAY),
            &facts
        ),
        None
    );
    // A wake_at on a node that never waits does nothing either. (A send node can wait: quiet
    // hours defer it.)
    let mut odd = enrollment("start", None, 5);
    odd.wake_at = Some(t(0));
    assert_eq!(step(&j, &odd, Input::Timer, t(DAY), &facts), None);
}

#[test]
fn enter_on_a_trigger_without_edges_completes_at_once() {
    let j = journey_json(json!({
        "id": "lonely", "name": "Lonely",
        "nodes": [{"id": "start", "type": "trigger", "event": "Signed Up"}]
    }));
    let out = must_step(
        &j,
        &enrollment("start", None, 1),
        Input::Enter,
        t(0),
        &MemFacts::new(),
    );
    assert_eq!(out.enrollment.status, EnrollmentStatus::Completed);
    assert_eq!(out.enrollment.node, "start");
    assert_eq!(out.enrollment.visits, 1);
    assert_eq!(out.enrollment.wake_at, None);
    assert_eq!(out.effects, vec![]);
    assert_eq!(
        out.log,
        vec![
            entered("start"),
            left("start", "next"),
            ended("start", EnrollmentStatus::Completed, "end of path"),
        ]
    );
}

#[test]
fn events_do_nothing_at_a_delay() {
    let facts = MemFacts::new();
    let (j, at_delay) = cart_at_delay(&facts);
    for e in [
        ev(11, "Checkout Started", json!({"cart_id": "c1"})),
        ev(12, "Cart Abandoned", json!({"cart_id": "c1"})),
        ev(13, "Page Viewed", json!({})),
    ] {
        assert_eq!(
            step(&j, &at_delay, Input::Event(&e), t(MINUTE), &facts),
            None,
            "{e:?}"
        );
    }
    assert_eq!(step(&j, &at_delay, Input::Resume, t(MINUTE), &facts), None);
}

#[test]
fn the_abandoned_cart_journey_from_entry_to_the_wait() {
    let facts = MemFacts::new();
    let j = abandoned_cart();
    let start = enrollment("start", Some("c1"), CART_SEQ);
    let out = must_step(&j, &start, Input::Enter, t(0), &facts);
    assert_eq!(out.enrollment.node, "wait_1h");
    assert_eq!(out.enrollment.wake_at, Some(t(HOUR)));
    assert_eq!(out.enrollment.visits, 2);
    assert_eq!(out.effects, vec![]);
    assert_eq!(
        out.log,
        vec![
            entered("start"),
            left("start", "next"),
            entered("wait_1h"),
            waiting("wait_1h", t(HOUR)),
        ]
    );

    let out = must_step(&j, &out.enrollment, Input::Timer, t(HOUR), &facts);
    assert_eq!(out.enrollment.node, "wait_checkout");
    assert_eq!(out.enrollment.status, EnrollmentStatus::Active);
    assert_eq!(out.enrollment.wake_at, Some(t(HOUR + DAY)));
    assert_eq!(
        out.effects,
        vec![send(Channel::Email, "reminder", "cart-reminder", 3)]
    );
    assert_eq!(
        out.log,
        vec![
            left("wait_1h", "next"),
            entered("reminder"),
            left("reminder", "next"),
            entered("wait_checkout"),
            waiting("wait_checkout", t(HOUR + DAY)),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// wait_for_event
// ---------------------------------------------------------------------------------------------

#[test]
fn wait_advances_through_event_on_an_event_with_the_enrollment_key() {
    let facts = MemFacts::new();
    let (j, at_wait) = cart_at_wait(&facts);
    let e = ev(
        20,
        "Checkout Started",
        json!({"cart_id": "c1", "total": 30}),
    );
    let facts = facts.event(e.clone());
    let out = must_step(&j, &at_wait, Input::Event(&e), t(2 * HOUR), &facts);
    assert_eq!(
        out.enrollment,
        Enrollment {
            node: "tag_checkout".into(),
            status: EnrollmentStatus::Completed,
            wake_at: None,
            visits: 5,
            consumed_seq: 20,
            ..at_wait.clone()
        }
    );
    assert_eq!(
        out.effects,
        vec![set_traits(json!({"checkout_started": true}))]
    );
    assert_eq!(
        out.log,
        vec![
            left("wait_checkout", "event"),
            entered("tag_checkout"),
            left("tag_checkout", "next"),
            ended("tag_checkout", EnrollmentStatus::Completed, "end of path"),
        ]
    );
}

#[test]
fn a_numeric_key_matches_its_string_form() {
    let facts = MemFacts::new();
    let j = abandoned_cart();
    let at_delay = must_step(
        &j,
        &enrollment("start", Some("123"), CART_SEQ),
        Input::Enter,
        t(0),
        &facts,
    )
    .enrollment;
    let at_wait = must_step(&j, &at_delay, Input::Timer, t(HOUR), &facts).enrollment;
    let e = ev(20, "Checkout Started", json!({"cart_id": 123}));
    let out = must_step(&j, &at_wait, Input::Event(&e), t(2 * HOUR), &facts);
    assert_eq!(out.log[0], left("wait_checkout", "event"));
}

#[test]
fn wait_ignores_events_with_another_key_no_key_or_another_name() {
    let facts = MemFacts::new();
    let (j, at_wait) = cart_at_wait(&facts);
    for e in [
        ev(20, "Checkout Started", json!({"cart_id": "c2"})),
        ev(21, "Checkout Started", json!({})),
        ev(22, "Checkout Started", json!({"cart_id": ""})),
        ev(23, "Checkout Started", json!({"cart": "c1"})),
        ev(24, "checkout started", json!({"cart_id": "c1"})),
        ev(25, "Page Viewed", json!({"cart_id": "c1"})),
        ev(26, "Cart Abandoned", json!({"cart_id": "c1"})),
    ] {
        let facts = facts.clone().event(e.clone());
        assert_eq!(
            step(&j, &at_wait, Input::Event(&e), t(2 * HOUR), &facts),
            None,
            "{e:?}"
        );
    }
}

#[test]
fn wait_ignores_events_from_before_entry() {
    let facts = MemFacts::new();
    let (j, at_wait) = cart_at_wait(&facts);
    for seq in [CART_SEQ, CART_SEQ - 1, 1] {
        let e = ev(seq, "Checkout Started", json!({"cart_id": "c1"}));
        assert_eq!(
            step(&j, &at_wait, Input::Event(&e), t(2 * HOUR), &facts),
            None,
            "seq {seq}"
        );
    }
    // The first event after entry counts.
    let e = ev(CART_SEQ + 1, "Checkout Started", json!({"cart_id": "c1"}));
    let out = must_step(&j, &at_wait, Input::Event(&e), t(2 * HOUR), &facts);
    assert_eq!(out.log[0], left("wait_checkout", "event"));
}

#[test]
fn wait_times_out_through_timeout() {
    // Reminder not opened: timeout → branch no → cold list → exit.
    let facts = MemFacts::new();
    let (j, at_wait) = cart_at_wait(&facts);
    assert_eq!(
        step(&j, &at_wait, Input::Timer, t(HOUR + DAY) - secs(1), &facts),
        None
    );
    let out = must_step(&j, &at_wait, Input::Timer, t(HOUR + DAY), &facts);
    assert_eq!(
        out.enrollment,
        Enrollment {
            node: "bye".into(),
            status: EnrollmentStatus::Exited,
            wake_at: None,
            visits: 7,
            ..at_wait.clone()
        }
    );
    assert_eq!(out.effects, vec![Effect::AddToList("cold-carts".into())]);
    assert_eq!(
        out.log,
        vec![
            left("wait_checkout", "timeout"),
            entered("opened_reminder"),
            left("opened_reminder", "no"),
            entered("cold"),
            left("cold", "next"),
            entered("bye"),
            ended("bye", EnrollmentStatus::Exited, "exit node"),
        ]
    );
}

#[test]
fn opened_reminder_loops_back_through_a_delay_with_fresh_idempotency_keys() {
    let facts = MemFacts::new().engaged("reminder", Engagement::Opened);
    let (j, at_wait) = cart_at_wait(&facts);
    let now = t(HOUR + DAY);
    let out = must_step(&j, &at_wait, Input::Timer, now, &facts);
    assert_eq!(out.enrollment.node, "wait_2d");
    assert_eq!(out.enrollment.status, EnrollmentStatus::Active);
    assert_eq!(out.enrollment.wake_at, Some(now + secs(2 * DAY)));
    assert_eq!(out.enrollment.visits, 7);
    assert_eq!(
        out.effects,
        vec![send(Channel::Sms, "nudge", "cart-sms", 6)]
    );
    assert_eq!(
        out.log,
        vec![
            left("wait_checkout", "timeout"),
            entered("opened_reminder"),
            left("opened_reminder", "yes"),
            entered("nudge"),
            left("nudge", "next"),
            entered("wait_2d"),
            waiting("wait_2d", now + secs(2 * DAY)),
        ]
    );

    // Round two: the reminder is sent again with a new key, and the wait starts over.
    let now = now + secs(2 * DAY);
    let out = must_step(&j, &out.enrollment, Input::Timer, now, &facts);
    assert_eq!(out.enrollment.node, "wait_checkout");
    assert_eq!(out.enrollment.wake_at, Some(now + secs(DAY)));
    assert_eq!(out.enrollment.visits, 9);
    assert_eq!(
        out.effects,
        vec![send(Channel::Email, "reminder", "cart-reminder", 8)]
    );
}

#[test]
fn wait_reached_after_the_event_already_happened_ends_at_once() {
    // The shopper started checkout (seq 15) while the enrollment sat in the 1h delay.
    let facts = MemFacts::new().event(ev(15, "Checkout Started", json!({"cart_id": "c1"})));
    let (j, at_delay) = cart_at_delay(&facts);
    let out = must_step(&j, &at_delay, Input::Timer, t(HOUR), &facts);
    assert_eq!(out.enrollment.node, "tag_checkout");
    assert_eq!(out.enrollment.status, EnrollmentStatus::Completed);
    assert_eq!(out.enrollment.wake_at, None);
    assert_eq!(out.enrollment.visits, 5);
    assert_eq!(
        out.effects,
        vec![
            send(Channel::Email, "reminder", "cart-reminder", 3),
            set_traits(json!({"checkout_started": true})),
        ]
    );
    assert_eq!(
        out.log,
        vec![
            left("wait_1h", "next"),
            entered("reminder"),
            left("reminder", "next"),
            entered("wait_checkout"),
            left("wait_checkout", "event"),
            entered("tag_checkout"),
            left("tag_checkout", "next"),
            ended("tag_checkout", EnrollmentStatus::Completed, "end of path"),
        ]
    );
}

#[test]
fn wait_reached_ignores_history_from_before_entry_or_for_another_key() {
    for old in [
        ev(CART_SEQ, "Checkout Started", json!({"cart_id": "c1"})),
        ev(3, "Checkout Started", json!({"cart_id": "c1"})),
        ev(15, "Checkout Started", json!({"cart_id": "c2"})),
        ev(16, "Checkout Started", json!({})),
        ev(17, "Order Started", json!({"cart_id": "c1"})),
    ] {
        let facts = MemFacts::new().event(old.clone());
        let (j, at_delay) = cart_at_delay(&facts);
        let out = must_step(&j, &at_delay, Input::Timer, t(HOUR), &facts);
        assert_eq!(out.enrollment.node, "wait_checkout", "{old:?}");
        assert_eq!(out.enrollment.wake_at, Some(t(HOUR + DAY)), "{old:?}");
        assert_eq!(
            out.log.last(),
            Some(&waiting("wait_checkout", t(HOUR + DAY))),
            "{old:?}"
        );
    }
}

#[test]
fn resume_ends_a_wait_the_history_already_satisfies() {
    let facts = MemFacts::new();
    let (j, at_wait) = cart_at_wait(&facts);
    // Nothing in history: resume does nothing.
    assert_eq!(step(&j, &at_wait, Input::Resume, t(3 * HOUR), &facts), None);
    // Another cart's checkout does not count either.
    let other = facts
        .clone()
        .event(ev(30, "Checkout Started", json!({"cart_id": "c2"})));
    assert_eq!(step(&j, &at_wait, Input::Resume, t(3 * HOUR), &other), None);
    // The checkout happened while the journey was paused.
    let facts = facts.event(ev(31, "Checkout Started", json!({"cart_id": "c1"})));
    let out = must_step(&j, &at_wait, Input::Resume, t(3 * HOUR), &facts);
    assert_eq!(out.enrollment.status, EnrollmentStatus::Completed);
    assert_eq!(out.enrollment.wake_at, None);
    assert_eq!(out.log[0], left("wait_checkout", "event"));
    assert_eq!(
        out.effects,
        vec![set_traits(json!({"checkout_started": true}))]
    );
}

fn unkeyed_wait_journey(filter: Value) -> Journey {
    journey_json(json!({
        "id": "review", "name": "Review",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Order Delivered"},
            {"id": "wait", "type": "wait_for_event", "event": "Review Submitted",
             "timeout": "3d", "filter": filter},
            {"id": "thanks", "type": "add_to_list", "list": "reviewers"},
            {"id": "ask", "type": "send_email", "template": "ask-review"}
        ],
        "edges": [
            {"from": "start", "to": "wait"},
            {"from": "wait", "to": "thanks", "output": "event"},
            {"from": "wait", "to": "ask", "output": "timeout"}
        ]
    }))
}

#[test]
fn wait_filter_and_unkeyed_matching() {
    let j = unkeyed_wait_journey(json!({"rating": {"gte": 4}}));
    let facts = MemFacts::new();
    let at_wait = must_step(
        &j,
        &enrollment("start", None, 1),
        Input::Enter,
        t(0),
        &facts,
    );
    assert_eq!(at_wait.enrollment.node, "wait");
    assert_eq!(at_wait.enrollment.wake_at, Some(t(3 * DAY)));
    let at_wait = at_wait.enrollment;

    let low = ev(2, "Review Submitted", json!({"rating": 3}));
    assert_eq!(
        step(&j, &at_wait, Input::Event(&low), t(HOUR), &facts),
        None
    );
    let missing = ev(3, "Review Submitted", json!({}));
    assert_eq!(
        step(&j, &at_wait, Input::Event(&missing), t(HOUR), &facts),
        None
    );

    // Without an entry key, any properties (including a cart_id) are fine.
    let good = ev(
        4,
        "Review Submitted",
        json!({"rating": "5", "cart_id": "zzz"}),
    );
    let out = must_step(&j, &at_wait, Input::Event(&good), t(HOUR), &facts);
    assert_eq!(out.enrollment.status, EnrollmentStatus::Completed);
    assert_eq!(out.effects, vec![Effect::AddToList("reviewers".into())]);

    // Timeout takes the other path.
    let out = must_step(&j, &at_wait, Input::Timer, t(3 * DAY), &facts);
    assert_eq!(
        out.effects,
        vec![send(Channel::Email, "ask", "ask-review", 3)]
    );
    assert_eq!(out.log[0], left("wait", "timeout"));
}

#[test]
fn wait_with_match_key_false_accepts_any_key() {
    let j = journey_json(json!({
        "id": "k", "name": "K",
        "entry": {"key": "cart_id"},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Cart Abandoned"},
            {"id": "wait", "type": "wait_for_event", "event": "Checkout Started",
             "timeout": "1d", "match_key": false}
        ],
        "edges": [{"from": "start", "to": "wait"}]
    }));
    let facts = MemFacts::new();
    let at_wait = must_step(
        &j,
        &enrollment("start", Some("c1"), 1),
        Input::Enter,
        t(0),
        &facts,
    )
    .enrollment;
    let e = ev(2, "Checkout Started", json!({"cart_id": "c2"}));
    let out = must_step(&j, &at_wait, Input::Event(&e), t(1), &facts);
    assert_eq!(out.enrollment.status, EnrollmentStatus::Completed);
    assert_eq!(out.log[0], left("wait", "event"));
}

// ---------------------------------------------------------------------------------------------
// Goal and exit events
// ---------------------------------------------------------------------------------------------

#[test]
fn goal_converts_at_once_from_a_wait_and_cancels_the_timer() {
    let facts = MemFacts::new();
    let (j, at_wait) = cart_at_wait(&facts);
    assert!(at_wait.wake_at.is_some());
    let goal = ev(20, "Order Completed", json!({"cart_id": "c1", "total": 99}));
    let out = must_step(&j, &at_wait, Input::Event(&goal), t(2 * HOUR), &facts);
    assert_eq!(
        out.enrollment,
        Enrollment {
            status: EnrollmentStatus::Converted,
            wake_at: None,
            ..at_wait.clone()
        }
    );
    assert_eq!(out.effects, vec![]);
    assert_eq!(
        out.log,
        vec![ended(
            "wait_checkout",
            EnrollmentStatus::Converted,
            "goal `Order Completed`"
        )]
    );
    // The old timer falls due: nothing happens.
    assert_eq!(
        step(&j, &out.enrollment, Input::Timer, t(HOUR + DAY), &facts),
        None
    );
}

#[test]
fn goal_converts_from_a_delay_too() {
    let facts = MemFacts::new();
    let (j, at_delay) = cart_at_delay(&facts);
    let goal = ev(11, "Order Completed", json!({"cart_id": "c1"}));
    let out = must_step(&j, &at_delay, Input::Event(&goal), t(MINUTE), &facts);
    assert_eq!(out.enrollment.status, EnrollmentStatus::Converted);
    assert_eq!(out.enrollment.node, "wait_1h");
    assert_eq!(out.enrollment.wake_at, None);
    assert_eq!(out.enrollment.visits, at_delay.visits);
    assert_eq!(out.effects, vec![]);
}

#[test]
fn goal_for_another_key_without_a_key_or_before_entry_does_nothing() {
    let facts = MemFacts::new();
    let (j, at_wait) = cart_at_wait(&facts);
    for e in [
        ev(20, "Order Completed", json!({"cart_id": "c2"})),
        ev(21, "Order Completed", json!({})),
        ev(CART_SEQ, "Order Completed", json!({"cart_id": "c1"})),
        ev(2, "Order Completed", json!({"cart_id": "c1"})),
    ] {
        assert_eq!(
            step(&j, &at_wait, Input::Event(&e), t(2 * HOUR), &facts),
            None,
            "{e:?}"
        );
    }
}

#[test]
fn goal_wins_over_a_wait_for_the_same_event() {
    let j = journey_json(json!({
        "id": "buy", "name": "Buy",
        "entry": {"key": "cart_id"},
        "goal": {"event": "Order Completed"},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Cart Abandoned"},
            {"id": "wait", "type": "wait_for_event", "event": "Order Completed", "timeout": "1d"},
            {"id": "thanks", "type": "send_email", "template": "thanks"}
        ],
        "edges": [
            {"from": "start", "to": "wait"},
            {"from": "wait", "to": "thanks", "output": "event"}
        ]
    }));
    let facts = MemFacts::new();
    let at_wait = must_step(
        &j,
        &enrollment("start", Some("c1"), 1),
        Input::Enter,
        t(0),
        &facts,
    )
    .enrollment;
    assert_eq!(at_wait.wake_at, Some(t(DAY)));
    let e = ev(2, "Order Completed", json!({"cart_id": "c1"}));
    let out = must_step(&j, &at_wait, Input::Event(&e), t(HOUR), &facts);
    assert_eq!(out.enrollment.status, EnrollmentStatus::Converted);
    assert_eq!(out.enrollment.node, "wait");
    assert_eq!(out.enrollment.wake_at, None);
    assert_eq!(out.effects, vec![], "the wait's `event` path must not run");
    assert_eq!(
        out.log,
        vec![ended(
            "wait",
            EnrollmentStatus::Converted,
            "goal `Order Completed`"
        )]
    );
}

#[test]
fn goal_filter_must_hold() {
    let j = journey_json(json!({
        "id": "big", "name": "Big",
        "goal": {"event": "Order Completed", "filter": {"total": {"gt": 100}}},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "pause", "type": "delay", "duration": "1w"}
        ],
        "edges": [{"from": "start", "to": "pause"}]
    }));
    let facts = MemFacts::new();
    let at = must_step(
        &j,
        &enrollment("start", None, 1),
        Input::Enter,
        t(0),
        &facts,
    )
    .enrollment;
    assert_eq!(at.wake_at, Some(t(7 * DAY)));
    let small = ev(2, "Order Completed", json!({"total": 100}));
    assert_eq!(step(&j, &at, Input::Event(&small), t(1), &facts), None);
    let big = ev(3, "Order Completed", json!({"total": 100.5}));
    let out = must_step(&j, &at, Input::Event(&big), t(1), &facts);
    assert_eq!(out.enrollment.status, EnrollmentStatus::Converted);
}

#[test]
fn exit_on_exits_without_converting() {
    let facts = MemFacts::new();
    let (j, at_wait) = cart_at_wait(&facts);
    let unsub = ev(20, "Unsubscribed", json!({}));
    let out = must_step(&j, &at_wait, Input::Event(&unsub), t(2 * HOUR), &facts);
    assert_eq!(
        out.enrollment,
        Enrollment {
            status: EnrollmentStatus::Exited,
            wake_at: None,
            ..at_wait.clone()
        }
    );
    assert_eq!(out.effects, vec![]);
    assert_eq!(
        out.log,
        vec![ended(
            "wait_checkout",
            EnrollmentStatus::Exited,
            "exit event `Unsubscribed`"
        )]
    );
    assert_eq!(
        step(&j, &out.enrollment, Input::Timer, t(HOUR + DAY), &facts),
        None
    );
    let goal = ev(21, "Order Completed", json!({"cart_id": "c1"}));
    assert_eq!(
        step(
            &j,
            &out.enrollment,
            Input::Event(&goal),
            t(3 * HOUR),
            &facts
        ),
        None
    );
}

#[test]
fn exit_on_with_a_default_key_match_needs_the_key() {
    let j = journey_json(json!({
        "id": "x", "name": "X",
        "entry": {"key": "cart_id"},
        "exit_on": [{"event": "Cart Emptied"}],
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Cart Abandoned"},
            {"id": "pause", "type": "delay", "duration": "1d"}
        ],
        "edges": [{"from": "start", "to": "pause"}]
    }));
    let facts = MemFacts::new();
    let at = must_step(
        &j,
        &enrollment("start", Some("c1"), 1),
        Input::Enter,
        t(0),
        &facts,
    )
    .enrollment;
    let other = ev(2, "Cart Emptied", json!({"cart_id": "c2"}));
    assert_eq!(step(&j, &at, Input::Event(&other), t(1), &facts), None);
    let mine = ev(3, "Cart Emptied", json!({"cart_id": "c1"}));
    let out = must_step(&j, &at, Input::Event(&mine), t(1), &facts);
    assert_eq!(out.enrollment.status, EnrollmentStatus::Exited);
    assert_eq!(out.enrollment.wake_at, None);
}

// ---------------------------------------------------------------------------------------------
// Branches
// ---------------------------------------------------------------------------------------------

/// start ─▶ welcome (email) ─▶ pause (1d) ─▶ decide ─yes─▶ yes-list / ─no─▶ no-list.
fn branch_journey(condition: Value, key: Option<&str>) -> Journey {
    let mut doc = json!({
        "id": "branchy", "name": "Branchy",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "welcome", "type": "send_email", "template": "welcome"},
            {"id": "pause", "type": "delay", "duration": "1d"},
            {"id": "decide", "type": "branch", "condition": condition},
            {"id": "on_yes", "type": "add_to_list", "list": "yes-list"},
            {"id": "on_no", "type": "add_to_list", "list": "no-list"}
        ],
        "edges": [
            {"from": "start", "to": "welcome"},
            {"from": "welcome", "to": "pause"},
            {"from": "pause", "to": "decide"},
            {"from": "decide", "to": "on_yes", "output": "yes"},
            {"from": "decide", "to": "on_no", "output": "no"}
        ]
    });
    if let Some(k) = key {
        doc["entry"] = json!({"key": k});
    }
    journey_json(doc)
}

const BRANCH_SEQ: i64 = 100;

/// Runs the branch journey (entered with `entered_seq` = 100, key `c1` when keyed) and returns
/// the output the branch took, after checking the whole step precisely.
fn branch_taken(condition: Value, key: Option<&str>, facts: &MemFacts) -> &'static str {
    let j = branch_journey(condition, key);
    let e_key = key.map(|_| "c1");
    let entered_out = must_step(
        &j,
        &enrollment("start", e_key, BRANCH_SEQ),
        Input::Enter,
        t(0),
        facts,
    );
    assert_eq!(
        entered_out.effects,
        vec![send(Channel::Email, "welcome", "welcome", 2)]
    );
    let out = must_step(&j, &entered_out.enrollment, Input::Timer, t(DAY), facts);
    assert_eq!(out.enrollment.status, EnrollmentStatus::Completed);
    assert_eq!(out.enrollment.visits, 5);
    let (taken, node, list) = match out.log.get(2) {
        Some(StepLog::Left { output, .. }) if output == "yes" => ("yes", "on_yes", "yes-list"),
        Some(StepLog::Left { output, .. }) if output == "no" => ("no", "on_no", "no-list"),
        other => panic!("unexpected log entry {other:?} in {:?}", out.log),
    };
    assert_eq!(out.enrollment.node, node);
    assert_eq!(out.effects, vec![Effect::AddToList(list.into())]);
    assert_eq!(
        out.log,
        vec![
            left("pause", "next"),
            entered("decide"),
            left("decide", taken),
            entered(node),
            left(node, "next"),
            ended(node, EnrollmentStatus::Completed, "end of path"),
        ]
    );
    taken
}

#[test]
fn branch_on_traits() {
    let plan_pro = json!({"traits": {"plan": "pro"}});
    let cases = [
        (json!({"plan": "pro"}), "yes"),
        (json!({"plan": "free"}), "no"),
        (json!({"plan": null}), "no"),
        (json!({}), "no"),
        (json!({"plan": "pro", "other": 1}), "yes"),
    ];
    for (traits, want) in cases {
        let facts = MemFacts::new().traits(traits.clone());
        assert_eq!(
            branch_taken(plan_pro.clone(), None, &facts),
            want,
            "{traits}"
        );
    }

    let ltv = json!({"traits": {"ltv": {"gte": 100}, "company.size": {"lt": 50}}});
    let cases = [
        (json!({"ltv": 150, "company": {"size": 10}}), "yes"),
        (json!({"ltv": 100, "company": {"size": 49}}), "yes"),
        (json!({"ltv": "120", "company": {"size": 1}}), "yes"),
        (json!({"ltv": 99.9, "company": {"size": 10}}), "no"),
        (json!({"ltv": 150, "company": {"size": 50}}), "no"),
        (json!({"ltv": 150}), "no"),
        (json!({"ltv": "lots", "company": {"size": 1}}), "no"),
    ];
    for (traits, want) in cases {
        let facts = MemFacts::new().traits(traits.clone());
        assert_eq!(branch_taken(ltv.clone(), None, &facts), want, "{traits}");
    }
}

#[test]
fn branch_on_event_history() {
    let did = json!({"event": {"name": "Review Submitted", "filter": {"rating": {"gte": 4}}}});
    let did_not = json!({"event": {"name": "Review Submitted", "filter": {"rating": {"gte": 4}},
                                   "performed": false}});
    let cases = [
        (vec![], "no"),
        (
            vec![ev(101, "Review Submitted", json!({"rating": 5}))],
            "yes",
        ),
        (
            vec![ev(101, "Review Submitted", json!({"rating": 4}))],
            "yes",
        ),
        (
            vec![ev(101, "Review Submitted", json!({"rating": 3}))],
            "no",
        ),
        (vec![ev(101, "Review Submitted", json!({}))], "no"),
        // Before (or at) entry does not count.
        (
            vec![ev(BRANCH_SEQ, "Review Submitted", json!({"rating": 5}))],
            "no",
        ),
        (vec![ev(50, "Review Submitted", json!({"rating": 5}))], "no"),
        // Another event with a good rating does not count.
        (vec![ev(101, "Review Drafted", json!({"rating": 5}))], "no"),
        // Any one matching event is enough.
        (
            vec![
                ev(101, "Review Submitted", json!({"rating": 1})),
                ev(102, "Review Submitted", json!({"rating": 4.5})),
            ],
            "yes",
        ),
    ];
    for (history, want) in cases {
        let mut facts = MemFacts::new();
        facts.history = history.clone();
        assert_eq!(branch_taken(did.clone(), None, &facts), want, "{history:?}");
        let inverse = if want == "yes" { "no" } else { "yes" };
        assert_eq!(
            branch_taken(did_not.clone(), None, &facts),
            inverse,
            "performed: false, {history:?}"
        );
    }
}

#[test]
fn branch_on_event_history_with_match_key() {
    let keyed = json!({"event": {"name": "Coupon Used", "match_key": true}});
    let any_key = json!({"event": {"name": "Coupon Used"}});
    let other_cart = MemFacts::new().event(ev(101, "Coupon Used", json!({"cart_id": "c2"})));
    let my_cart = MemFacts::new().event(ev(101, "Coupon Used", json!({"cart_id": "c1"})));
    assert_eq!(
        branch_taken(keyed.clone(), Some("cart_id"), &other_cart),
        "no"
    );
    assert_eq!(
        branch_taken(keyed.clone(), Some("cart_id"), &my_cart),
        "yes"
    );
    // match_key defaults to false for a branch, even in a keyed journey.
    assert_eq!(branch_taken(any_key, Some("cart_id"), &other_cart), "yes");
}

#[test]
fn branch_on_message_engagement() {
    let opened = json!({"message": {"node": "welcome", "engagement": "opened"}});
    let clicked = json!({"message": {"node": "welcome", "engagement": "clicked"}});
    let none = MemFacts::new();
    let did_open = MemFacts::new().engaged("welcome", Engagement::Opened);
    let did_click = MemFacts::new().engaged("welcome", Engagement::Clicked);
    let other_node = MemFacts::new().engaged("elsewhere", Engagement::Opened);

    assert_eq!(branch_taken(opened.clone(), None, &none), "no");
    assert_eq!(branch_taken(opened.clone(), None, &did_open), "yes");
    assert_eq!(branch_taken(opened.clone(), None, &did_click), "no");
    assert_eq!(branch_taken(opened, None, &other_node), "no");
    assert_eq!(branch_taken(clicked.clone(), None, &did_click), "yes");
    assert_eq!(branch_taken(clicked, None, &did_open), "no");
}

#[test]
fn branch_on_all_any_not() {
    let pro = json!({"traits": {"plan": "pro"}});
    let reviewed = json!({"event": {"name": "Review Submitted"}});
    let opened = json!({"message": {"node": "welcome", "engagement": "opened"}});

    let all = json!({"all": [pro, reviewed, opened]});
    let any = json!({"any": [pro, reviewed, opened]});
    let not_any = json!({"not": {"any": [pro, reviewed]}});
    let nested = json!({"all": [{"not": pro}, {"any": [reviewed, opened]}]});
    // The text form means the same.
    let text = json!(
        "not plan = \"pro\" and (event \"Review Submitted\" since entry or message welcome opened)"
    );

    let base = MemFacts::new().traits(json!({"plan": "free"}));
    let is_pro = MemFacts::new().traits(json!({"plan": "pro"}));
    let reviewed_f = base.clone().event(ev(101, "Review Submitted", json!({})));
    let opened_f = base.clone().engaged("welcome", Engagement::Opened);
    let everything = is_pro
        .clone()
        .event(ev(101, "Review Submitted", json!({})))
        .engaged("welcome", Engagement::Opened);

    // (condition, facts, expected)
    let cases: Vec<(&Value, &MemFacts, &str)> = vec![
        (&all, &base, "no"),
        (&all, &is_pro, "no"),
        (&all, &everything, "yes"),
        (&any, &base, "no"),
        (&any, &is_pro, "yes"),
        (&any, &reviewed_f, "yes"),
        (&any, &opened_f, "yes"),
        (&not_any, &base, "yes"),
        (&not_any, &opened_f, "yes"),
        (&not_any, &is_pro, "no"),
        (&not_any, &reviewed_f, "no"),
        (&nested, &base, "no"),
        (&nested, &reviewed_f, "yes"),
        (&nested, &opened_f, "yes"),
        (&nested, &everything, "no"),
        (&text, &base, "no"),
        (&text, &reviewed_f, "yes"),
        (&text, &opened_f, "yes"),
        (&text, &everything, "no"),
    ];
    for (i, (condition, facts, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            branch_taken(condition.clone(), None, facts),
            want,
            "case {i}: {condition}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// update_traits, lists, exit
// ---------------------------------------------------------------------------------------------

#[test]
fn update_traits_is_an_effect_and_later_branches_see_it() {
    let j = journey_json(json!({
        "id": "upgrade", "name": "Upgrade",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Upgraded"},
            {"id": "check_before", "type": "branch",
             "condition": {"traits": {"plan": "pro"}}},
            {"id": "set_plan", "type": "update_traits",
             "set": {"plan": "pro", "trial": null, "seats": 5}},
            {"id": "check_after", "type": "branch",
             "condition": {"all": [
                 {"traits": {"plan": "pro"}},
                 {"traits": {"trial": {"exists": false}}},
                 {"traits": {"seats": {"gte": 5}}},
                 {"traits": {"name": "Ada"}}
             ]}},
            {"id": "welcome_pro", "type": "add_to_list", "list": "pro-users"},
            {"id": "confused", "type": "remove_from_list", "list": "pro-users"}
        ],
        "edges": [
            {"from": "start", "to": "check_before"},
            {"from": "check_before", "to": "set_plan", "output": "no"},
            {"from": "set_plan", "to": "check_after"},
            {"from": "check_after", "to": "welcome_pro", "output": "yes"},
            {"from": "check_after", "to": "confused", "output": "no"}
        ]
    }));
    let facts = MemFacts::new().traits(json!({"plan": "free", "trial": true, "name": "Ada"}));
    let out = must_step(
        &j,
        &enrollment("start", None, 1),
        Input::Enter,
        t(0),
        &facts,
    );
    assert_eq!(
        out.effects,
        vec![
            set_traits(json!({"plan": "pro", "trial": null, "seats": 5})),
            Effect::AddToList("pro-users".into()),
        ]
    );
    assert_eq!(
        out.log,
        vec![
            entered("start"),
            left("start", "next"),
            entered("check_before"),
            left("check_before", "no"),
            entered("set_plan"),
            left("set_plan", "next"),
            entered("check_after"),
            left("check_after", "yes"),
            entered("welcome_pro"),
            left("welcome_pro", "next"),
            ended("welcome_pro", EnrollmentStatus::Completed, "end of path"),
        ]
    );
    // The facts themselves are not touched: the engine applies the effect.
    assert_eq!(facts.traits["plan"], json!("free"));
}

#[test]
fn two_update_traits_in_a_row_accumulate() {
    let j = journey_json(json!({
        "id": "two", "name": "Two",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "A"},
            {"id": "one", "type": "update_traits", "set": {"a": 1}},
            {"id": "two", "type": "update_traits", "set": {"b": 2}},
            {"id": "check", "type": "branch",
             "condition": {"traits": {"a": 1, "b": 2, "c": 3}}},
            {"id": "ok", "type": "add_to_list", "list": "ok"}
        ],
        "edges": [
            {"from": "start", "to": "one"}, {"from": "one", "to": "two"},
            {"from": "two", "to": "check"}, {"from": "check", "to": "ok", "output": "yes"}
        ]
    }));
    let facts = MemFacts::new().traits(json!({"c": 3}));
    let out = must_step(
        &j,
        &enrollment("start", None, 1),
        Input::Enter,
        t(0),
        &facts,
    );
    assert_eq!(
        out.effects,
        vec![
            set_traits(json!({"a": 1})),
            set_traits(json!({"b": 2})),
            Effect::AddToList("ok".into()),
        ]
    );
}

#[test]
fn list_effects_and_the_exit_node() {
    let j = journey_yaml(
        r#"
id: lists
name: Lists
nodes:
  - {id: start, type: trigger, event: Became VIP}
  - {id: add, type: add_to_list, list: vip}
  - {id: remove, type: remove_from_list, list: leads}
  - {id: bye, type: exit}
edges:
  - {from: start, to: add}
  - {from: add, to: remove}
  - {from: remove, to: bye}
"#,
    );
    let facts = MemFacts::new();
    let start = enrollment("start", None, 1);
    let out = must_step(&j, &start, Input::Enter, t(0), &facts);
    assert_eq!(
        out.enrollment,
        Enrollment {
            node: "bye".into(),
            status: EnrollmentStatus::Exited,
            wake_at: None,
            visits: 4,
            ..start.clone()
        }
    );
    assert_eq!(
        out.effects,
        vec![
            Effect::AddToList("vip".into()),
            Effect::RemoveFromList("leads".into()),
        ]
    );
    assert_eq!(
        out.log,
        vec![
            entered("start"),
            left("start", "next"),
            entered("add"),
            left("add", "next"),
            entered("remove"),
            left("remove", "next"),
            entered("bye"),
            ended("bye", EnrollmentStatus::Exited, "exit node"),
        ]
    );
    assert_eq!(
        step(&j, &out.enrollment, Input::Timer, t(DAY), &facts),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Re-entry
// ---------------------------------------------------------------------------------------------

fn reentry_journey(reentry: Value, key: Option<&str>) -> Journey {
    let mut entry = json!({"reentry": reentry});
    if let Some(k) = key {
        entry["key"] = json!(k);
    }
    journey_json(json!({
        "id": "re", "name": "Re",
        "entry": entry,
        "nodes": [{"id": "start", "type": "trigger", "event": "Cart Abandoned"}]
    }))
}

fn prior(key: Option<&str>, status: EnrollmentStatus, entered_at: Timestamp) -> PriorEnrollment {
    PriorEnrollment {
        key: key.map(str::to_string),
        status,
        entered_at,
    }
}

use EnrollmentStatus::{Active, Completed, Converted, Exited};

#[test]
fn may_enter_every_time() {
    let j = reentry_journey(json!("every_time"), Some("cart_id"));
    let now = t(DAY);
    assert!(may_enter(&j, &[], Some("c1"), now));
    for status in [Completed, Exited, Converted] {
        assert!(
            may_enter(&j, &[prior(Some("c1"), status, t(0))], Some("c1"), now),
            "{status:?}"
        );
    }
    // At most one active enrollment per key...
    assert!(!may_enter(
        &j,
        &[prior(Some("c1"), Active, t(0))],
        Some("c1"),
        now
    ));
    assert!(!may_enter(
        &j,
        &[
            prior(Some("c1"), Completed, t(0)),
            prior(Some("c1"), Active, t(10))
        ],
        Some("c1"),
        now
    ));
    // ...but another key is independent.
    assert!(may_enter(
        &j,
        &[prior(Some("c2"), Active, t(0))],
        Some("c1"),
        now
    ));
}

#[test]
fn may_enter_every_time_is_the_default() {
    let j = journey_json(json!({
        "id": "d", "name": "D",
        "nodes": [{"id": "start", "type": "trigger", "event": "A"}]
    }));
    assert!(may_enter(&j, &[prior(None, Completed, t(0))], None, t(1)));
    assert!(!may_enter(&j, &[prior(None, Active, t(0))], None, t(1)));
}

#[test]
fn may_enter_once() {
    let j = reentry_journey(json!("once"), Some("cart_id"));
    let now = t(365 * DAY);
    assert!(may_enter(&j, &[], Some("c1"), now));
    for status in [Active, Completed, Exited, Converted] {
        assert!(
            !may_enter(&j, &[prior(Some("c1"), status, t(0))], Some("c1"), now),
            "{status:?}"
        );
    }
    assert!(may_enter(
        &j,
        &[
            prior(Some("c2"), Completed, t(0)),
            prior(Some("c3"), Active, t(0))
        ],
        Some("c1"),
        now
    ));

    let unkeyed = reentry_journey(json!("once"), None);
    assert!(may_enter(&unkeyed, &[], None, now));
    assert!(!may_enter(
        &unkeyed,
        &[prior(None, Exited, t(0))],
        None,
        now
    ));
}

#[test]
fn may_enter_with_cooldown() {
    let j = reentry_journey(json!({"cooldown": "7d"}), None);
    let prev = [prior(None, Completed, t(0))];
    assert!(may_enter(&j, &[], None, t(0)));
    assert!(!may_enter(&j, &prev, None, t(0)));
    assert!(!may_enter(&j, &prev, None, t(7 * DAY) - secs(1)));
    assert!(may_enter(&j, &prev, None, t(7 * DAY)));
    assert!(may_enter(&j, &prev, None, t(30 * DAY)));
    // The most recent entry is what counts.
    let two = [
        prior(None, Completed, t(0)),
        prior(None, Converted, t(5 * DAY)),
    ];
    assert!(!may_enter(&j, &two, None, t(8 * DAY)));
    assert!(may_enter(&j, &two, None, t(12 * DAY)));
    // An active enrollment blocks even after the cooldown.
    assert!(!may_enter(
        &j,
        &[prior(None, Active, t(0))],
        None,
        t(30 * DAY)
    ));

    // Keyed: the cooldown is per key.
    let keyed = reentry_journey(json!({"cooldown": "1d"}), Some("cart_id"));
    let prev = [prior(Some("c1"), Completed, t(0))];
    assert!(!may_enter(&keyed, &prev, Some("c1"), t(HOUR)));
    assert!(may_enter(&keyed, &prev, Some("c2"), t(HOUR)));
    assert!(may_enter(&keyed, &prev, Some("c1"), t(DAY)));
}

#[test]
fn entry_key_comes_from_the_trigger_event() {
    let keyed = reentry_journey(json!("every_time"), Some("cart.id"));
    let unkeyed = reentry_journey(json!("every_time"), None);
    let e = ev(1, "Cart Abandoned", json!({"cart": {"id": "abc"}}));
    assert_eq!(entry_key(&keyed, &e), Ok(Some("abc".to_string())));
    assert_eq!(entry_key(&unkeyed, &e), Ok(None));
    let n = ev(2, "Cart Abandoned", json!({"cart": {"id": 77}}));
    assert_eq!(entry_key(&keyed, &n), Ok(Some("77".to_string())));
    for bad in [
        json!({}),
        json!({"cart": {"id": ""}}),
        json!({"cart": {"id": null}}),
    ] {
        let e = ev(3, "Cart Abandoned", bad.clone());
        assert_eq!(
            entry_key(&keyed, &e),
            Err(waymark_core::stepper::MissingKey),
            "{bad}"
        );
    }
}

#[test]
fn invalid_documents_do_not_compile() {
    let doc: JourneyDocument = serde_json::from_value(json!({
        "id": "bad", "name": "Bad",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "A"},
            {"id": "b", "type": "branch", "condition": {"traits": {"x": 1}}}
        ],
        "edges": [
            {"from": "start", "to": "b"},
            {"from": "b", "to": "b", "output": "no"}
        ]
    }))
    .unwrap();
    let errors = Journey::compile(doc).unwrap_err();
    assert!(
        errors.iter().any(|e| e.code == "cycle_without_wait"),
        "{errors:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Known bug (see the report): a wait inside a loop is satisfied again and again by the same
// historical event, so a cycle through a wait spins until the step limit.
// ---------------------------------------------------------------------------------------------

fn page_view_loop() -> Journey {
    journey_json(json!({
        "id": "views", "name": "Views",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "wait_view", "type": "wait_for_event", "event": "Page Viewed", "timeout": "7d"},
            {"id": "ping", "type": "send_email", "template": "ping"}
        ],
        "edges": [
            {"from": "start", "to": "wait_view"},
            {"from": "wait_view", "to": "ping", "output": "event"},
            {"from": "ping", "to": "wait_view"}
        ]
    }))
}

#[test]
fn a_cycle_through_a_wait_waits_for_a_new_event() {
    let j = page_view_loop();
    let facts = MemFacts::new();
    let at_wait = must_step(
        &j,
        &enrollment("start", None, 1),
        Input::Enter,
        t(0),
        &facts,
    )
    .enrollment;
    let view = ev(2, "Page Viewed", json!({}));
    let facts = facts.event(view.clone());
    let out = must_step(&j, &at_wait, Input::Event(&view), t(HOUR), &facts);
    // One page view, one ping, then wait for the next page view.
    assert_eq!(out.effects, vec![send(Channel::Email, "ping", "ping", 3)]);
    assert_eq!(out.enrollment.status, EnrollmentStatus::Active);
    assert_eq!(out.enrollment.node, "wait_view");
    assert_eq!(out.enrollment.wake_at, Some(t(HOUR + 7 * DAY)));
}

// ---------------------------------------------------------------------------------------------
// Property: determinism and invariants over random input sequences
// ---------------------------------------------------------------------------------------------

const NAMES: [&str; 6] = [
    "Cart Abandoned",
    "Checkout Started",
    "Checkout Started",
    "Order Completed",
    "Unsubscribed",
    "Page Viewed",
];
const KEYS: [Option<&str>; 3] = [Some("c1"), Some("c2"), None];

#[derive(Debug, Clone)]
enum Op {
    /// An event of the contact; `stale` gives it a seq from before entry.
    Event {
        name: usize,
        key: usize,
        stale: bool,
    },
    /// The clock moves on by this many seconds, then the timer is fired.
    Timer(i64),
    /// The clock moves to the enrollment's wake_at (if later), then the timer is fired.
    TimerAtWake,
    Resume,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..NAMES.len(), 0..KEYS.len(), proptest::bool::weighted(0.15))
            .prop_map(|(name, key, stale)| Op::Event { name, key, stale }),
        3 => (0i64..3 * DAY).prop_map(Op::Timer),
        2 => Just(Op::TimerAtWake),
        1 => Just(Op::Resume),
    ]
}

/// Steps twice and checks the invariants of one step; returns the outcome.
fn checked_step(
    journey: &Journey,
    state: &Enrollment,
    input: Input<'_>,
    now: Timestamp,
    facts: &MemFacts,
    send_keys: &mut HashSet<String>,
) -> Result<Option<StepOutcome>, TestCaseError> {
    let first = step(journey, state, input, now, facts);
    let second = step(journey, state, input, now, facts);
    prop_assert_eq!(&first, &second, "stepping twice differs for {:?}", input);

    if state.status != EnrollmentStatus::Active {
        prop_assert!(first.is_none(), "an ended enrollment moved: {:?}", first);
    }
    if let Input::Timer = input
        && state.wake_at.is_none_or(|w| w > now)
    {
        prop_assert!(first.is_none(), "a timer fired early: {:?}", first);
    }
    if let Input::Event(e) = input
        && e.seq <= state.entered_seq
    {
        prop_assert!(first.is_none(), "a stale event moved it: {:?}", first);
    }
    let Some(out) = &first else {
        return Ok(first);
    };
    let e = &out.enrollment;
    // Identity never changes.
    prop_assert_eq!(e.id, state.id);
    prop_assert_eq!(e.contact_id, state.contact_id);
    prop_assert_eq!(&e.key, &state.key);
    prop_assert_eq!(e.entered_seq, state.entered_seq);
    prop_assert_eq!(e.entered_at, state.entered_at);
    prop_assert!(e.visits >= state.visits);
    // Timers exist exactly while active.
    match e.status {
        EnrollmentStatus::Active => {
            prop_assert!(
                e.wake_at.is_some_and(|w| w > now),
                "active without a future wake_at: {:?}",
                e
            );
            prop_assert!(
                matches!(out.log.last(), Some(StepLog::Waiting { node, until }) if *node == e.node && Some(*until) == e.wake_at),
                "active but the log does not end waiting: {:?}",
                out.log
            );
            let kind = journey.node(&e.node).unwrap().kind.type_name();
            prop_assert!(
                kind == "delay" || kind == "wait_for_event",
                "active at a {}",
                kind
            );
        }
        status => {
            prop_assert_eq!(e.wake_at, None, "ended with a wake_at: {:?}", e);
            prop_assert!(
                matches!(out.log.last(), Some(StepLog::Ended { node, status: s, .. }) if *node == e.node && *s == status),
                "ended but the log does not say so: {:?}",
                out.log
            );
        }
    }
    // Every send has a unique, well-formed idempotency key.
    for effect in &out.effects {
        if let Effect::Send {
            node,
            idempotency_key,
            ..
        } = effect
        {
            let prefix = format!("{}:{}:", e.id, node);
            let visit: i64 = idempotency_key
                .strip_prefix(&prefix)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| TestCaseError::fail(format!("bad key {idempotency_key}")))?;
            prop_assert!(visit > state.visits && visit <= e.visits);
            prop_assert!(
                send_keys.insert(idempotency_key.clone()),
                "idempotency key {} used twice",
                idempotency_key
            );
        }
    }
    Ok(first)
}

/// Runs the abandoned-cart journey over `ops`; returns every step's outcome.
fn run(ops: &[Op], opened: bool) -> Result<Vec<Option<StepOutcome>>, TestCaseError> {
    let journey = abandoned_cart();
    let mut facts = MemFacts::new().traits(json!({"plan": "free"}));
    if opened {
        facts = facts.engaged("reminder", Engagement::Opened);
    }
    let entered_seq = 1000;
    let mut state = enrollment("start", Some("c1"), entered_seq);
    let mut now = t(0);
    let mut next_seq = entered_seq;
    let mut stale_seq = 0;
    let mut send_keys = HashSet::new();
    let mut trace = Vec::new();

    let first = checked_step(&journey, &state, Input::Enter, now, &facts, &mut send_keys)?;
    prop_assert!(first.is_some(), "Enter must produce an outcome");
    state = first.as_ref().unwrap().enrollment.clone();
    trace.push(first);

    for op in ops {
        let out = match op {
            Op::Event { name, key, stale } => {
                let seq = if *stale {
                    stale_seq += 1;
                    stale_seq
                } else {
                    next_seq += 1;
                    next_seq
                };
                let props = match KEYS[*key] {
                    Some(k) => json!({"cart_id": k}),
                    None => json!({}),
                };
                let e = ev(seq, NAMES[*name], props);
                facts.history.push(e.clone());
                checked_step(
                    &journey,
                    &state,
                    Input::Event(&e),
                    now,
                    &facts,
                    &mut send_keys,
                )?
            }
            Op::Timer(after) => {
                now += secs(*after);
                checked_step(&journey, &state, Input::Timer, now, &facts, &mut send_keys)?
            }
            Op::TimerAtWake => {
                if let Some(w) = state.wake_at {
                    now = now.max(w);
                }
                checked_step(&journey, &state, Input::Timer, now, &facts, &mut send_keys)?
            }
            Op::Resume => {
                checked_step(&journey, &state, Input::Resume, now, &facts, &mut send_keys)?
            }
        };
        if let Some(o) = &out {
            state = o.enrollment.clone();
        }
        trace.push(out);
    }
    // Once ended, every kind of input is ignored.
    if state.status != EnrollmentStatus::Active {
        let late = now + secs(365 * DAY);
        let e = ev(next_seq + 1, "Checkout Started", json!({"cart_id": "c1"}));
        for input in [Input::Timer, Input::Resume, Input::Enter, Input::Event(&e)] {
            prop_assert_eq!(step(&journey, &state, input, late, &facts), None);
        }
    }
    Ok(trace)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn stepping_is_deterministic_and_keeps_its_invariants(
        ops in prop::collection::vec(op(), 0..40),
        opened in any::<bool>(),
    ) {
        let a = run(&ops, opened)?;
        let b = run(&ops, opened)?;
        prop_assert_eq!(a, b);
    }
}
