//! The condition language: text ⇄ AST ⇄ JSON, evaluation (windows, relative dates across
//! daylight-saving changes, 29 February), validation, and the property that an incremental
//! maintainer driven by `next_change` always agrees with a brute-force evaluation.

use jiff::civil::date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use waymark_core::condition::{
    self, AggregateCondition, AggregateFunction, Channel, CompareOp, Condition, ContactSnapshot,
    Engagement, EngagementCondition, EntryEventCondition, EntryMessageCondition, EvalClock,
    HistoryCondition, MessageRecord, Scope, Times, evaluate, next_change, parse, print, validate,
};
use waymark_core::event::{EventKind, EventRecord};
use waymark_core::filter::{Filter, Ops, Predicate};

fn cond(v: Value) -> Condition {
    serde_json::from_value(v).unwrap()
}

fn assert_parses(text: &str, json: Value) {
    let parsed = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(parsed, cond(json), "{text}");
    // And back: the printed form parses to the same AST.
    let printed = print(&parsed);
    assert_eq!(
        parse(&printed).unwrap(),
        parsed,
        "{text} printed as {printed}"
    );
}

#[test]
fn parses_every_construct() {
    assert_parses(r#"plan = "pro""#, json!({"traits": {"plan": "pro"}}));
    assert_parses(
        r#"plan = "pro" and (age >= 18 or country in ["IT", "FR"])"#,
        json!({"all": [
            {"traits": {"plan": "pro"}},
            {"any": [{"traits": {"age": {"gte": 18.0}}}, {"traits": {"country": {"in": ["IT", "FR"]}}}]}
        ]}),
    );
    assert_parses(
        r#"tags contains "vip""#,
        json!({"traits": {"tags": {"contains": "vip"}}}),
    );
    assert_parses(
        "email exists",
        json!({"traits": {"email": {"exists": true}}}),
    );
    assert_parses(
        "phone NOT exists",
        json!({"traits": {"phone": {"exists": false}}}),
    );
    assert_parses("score != 3", json!({"traits": {"score": {"ne": 3}}}));
    assert_parses("score < -1.5", json!({"traits": {"score": {"lt": -1.5}}}));
    assert_parses(
        "address.city = \"Roma\"",
        json!({"traits": {"address.city": "Roma"}}),
    );
    assert_parses(
        "`first name` = null",
        json!({"traits": {"first name": null}}),
    );
    assert_parses("`event` = true", json!({"traits": {"event": true}}));
    assert_parses(
        "signed_up_at within last 30d",
        json!({"traits": {"signed_up_at": {"within_last": "30d"}}}),
    );
    assert_parses(
        "signed_up_at within the last 1d12h",
        json!({"traits": {"signed_up_at": {"within_last": "1d12h"}}}),
    );
    assert_parses(
        "last_order_at older than 90d",
        json!({"traits": {"last_order_at": {"older_than": "90d"}}}),
    );
    assert_parses(
        "renewal_at within next 7d",
        json!({"traits": {"renewal_at": {"within_next": "7d"}}}),
    );
    assert_parses(
        "birthday anniversary today",
        json!({"traits": {"birthday": {"anniversary": "today"}}}),
    );
    assert_parses(
        r#"created_at before "2026-01-01" and created_at after "2025-06-01T00:00:00Z""#,
        json!({"all": [
            {"traits": {"created_at": {"before": "2026-01-01"}}},
            {"traits": {"created_at": {"after": "2025-06-01T00:00:00Z"}}}
        ]}),
    );
    assert_parses(
        r#"did "Order Completed" at least 2 times in last 90d where total > 10"#,
        json!({"did": {"event": "Order Completed", "times": {"gte": 2}, "within": "90d",
            "filter": {"total": {"gt": 10.0}}}}),
    );
    assert_parses(
        r#"DID "Order Completed" where (total > 10 and total <= 50 and currency = "EUR") exactly 1 time"#,
        json!({"did": {"event": "Order Completed", "times": {"eq": 1},
            "filter": {"total": {"gt": 10.0, "lte": 50.0}, "currency": "EUR"}}}),
    );
    assert_parses(
        r#"did "Order Completed" at most 3 times"#,
        json!({"did": {"event": "Order Completed", "times": {"lte": 3}}}),
    );
    assert_parses(
        r#"did not "Logged In" in last 30d"#,
        json!({"not": {"did": {"event": "Logged In", "within": "30d"}}}),
    );
    assert_parses(
        r#"sum(revenue) of "Order Completed" in last 90d >= 500"#,
        json!({"aggregate": {"function": "sum", "property": "revenue", "event": "Order Completed",
            "within": "90d", "op": "gte", "value": 500.0}}),
    );
    assert_parses(
        r#"avg(cart.total) of "Order Completed" where (status = "paid") < 20.5"#,
        json!({"aggregate": {"function": "avg", "property": "cart.total",
            "event": "Order Completed", "filter": {"status": "paid"}, "op": "lt", "value": 20.5}}),
    );
    assert_parses(
        r#"opened email from journey "welcome" in last 7d"#,
        json!({"engaged": {"engagement": "opened", "channel": "email", "journey": "welcome",
            "within": "7d"}}),
    );
    assert_parses(
        "clicked any email in last 30d",
        json!({"engaged": {"engagement": "clicked", "channel": "email", "within": "30d"}}),
    );
    assert_parses(
        r#"delivered any message with template "promo""#,
        json!({"engaged": {"engagement": "delivered", "template": "promo"}}),
    );
    assert_parses(
        "sent sms",
        json!({"engaged": {"engagement": "sent", "channel": "sms"}}),
    );
    assert_parses(r#"in list "vip""#, json!({"in_list": "vip"}));
    assert_parses(r#"not in list "vip""#, json!({"not": {"in_list": "vip"}}));
    assert_parses(
        r#"not (plan = "free" or plan = "trial")"#,
        json!({"not": {"any": [{"traits": {"plan": "free"}}, {"traits": {"plan": "trial"}}]}}),
    );
    assert_parses(
        r#"event "Product Viewed" since entry"#,
        json!({"event": {"name": "Product Viewed"}}),
    );
    assert_parses(
        r#"no event "Order Completed" since entry matching key where total > 0"#,
        json!({"event": {"name": "Order Completed", "performed": false, "match_key": true,
            "filter": {"total": {"gt": 0.0}}}}),
    );
    assert_parses(
        "message send_1 opened",
        json!({"message": {"node": "send_1", "engagement": "opened"}}),
    );
    assert_parses(
        r#"message "send-2" clicked"#,
        json!({"message": {"node": "send-2", "engagement": "clicked"}}),
    );
    assert_parses("all()", json!({"all": []}));
    assert_parses(r#"any(in list "a")"#, json!({"any": [{"in_list": "a"}]}));
    // `and` binds tighter than `or`; parentheses keep their grouping.
    assert_parses(
        "a = 1 or b = 2 and c = 3",
        json!({"any": [{"traits": {"a": 1}}, {"all": [{"traits": {"b": 2}}, {"traits": {"c": 3}}]}]}),
    );
    assert_parses(
        "(a = 1 and b = 2) and c = 3",
        json!({"all": [{"all": [{"traits": {"a": 1}}, {"traits": {"b": 2}}]}, {"traits": {"c": 3}}]}),
    );
}

#[test]
fn dependencies_list_what_is_read() {
    let c = parse(
        r#"plan = "pro" and (did "A" in last 1d or sum(x) of "B" > 1) and not in list "vip" and opened email"#,
    )
    .unwrap();
    let d = c.dependencies();
    assert_eq!(d.events.into_iter().collect::<Vec<_>>(), ["A", "B"]);
    assert_eq!(d.lists.into_iter().collect::<Vec<_>>(), ["vip"]);
    assert_eq!(d.traits.into_iter().collect::<Vec<_>>(), ["plan"]);
    assert!(d.messages);
    assert!(!c.uses_enrollment_scope());
    assert!(
        parse(r#"a = 1 or message m opened"#)
            .unwrap()
            .uses_enrollment_scope()
    );
}

#[test]
fn prints_readably() {
    let c = cond(json!({"all": [
        {"traits": {"plan": "pro", "age": {"gte": 18}}},
        {"did": {"event": "Order Completed", "times": {"gte": 2}, "within": "90d",
            "filter": {"total": {"gt": 10}}}},
        {"not": {"did": {"event": "Logged In", "within": "30d"}}}
    ]}));
    assert_eq!(
        print(&c),
        r#"(age >= 18 and plan = "pro") and did "Order Completed" at least 2 times in last 90d where (total > 10) and did not "Logged In" in last 30d"#
    );
    let c = cond(json!({"did": {"event": "Order Completed", "filter": {"total": {"gt": 10}}}}));
    assert_eq!(print(&c), r#"did "Order Completed" where total > 10"#);
    assert_eq!(c.to_string(), print(&c));
    assert_eq!(
        "in list \"vip\"".parse::<Condition>().unwrap(),
        cond(json!({"in_list": "vip"}))
    );
}

fn error_of(text: &str) -> condition::ParseError {
    parse(text).expect_err(text)
}

#[test]
fn parse_errors_say_where_and_what() {
    let e = error_of(r#"did "Order Completed" in last 30"#);
    assert_eq!((e.line, e.column, e.offset), (1, 31, 30));
    assert_eq!(
        e.to_string(),
        "expected a duration such as 30d at line 1, column 31 (found `30`)"
    );
    let e = error_of("signed_up_at within last 30x");
    assert_eq!(e.message, "expected a duration such as 30d");
    assert_eq!(e.column, 26);
    let e = error_of("plan = \"pro\" and\n  (age >= )");
    assert_eq!((e.line, e.column), (2, 11));
    assert_eq!(e.message, "expected a number");
    let e = error_of("plan = \"pro");
    assert_eq!(e.column, 8);
    assert!(e.message.contains("closing"));
    let e = error_of("plan");
    assert!(e.message.starts_with("expected a comparison"));
    assert_eq!(e.found, "");
    let e = error_of("plan = 1 plan = 2");
    assert_eq!(
        e.message,
        "expected `and`, `or` or the end of the condition"
    );
    assert_eq!(e.column, 10);
    let e = error_of("did Order");
    assert!(e.message.contains("event name in double quotes"));
    let e = error_of(r#"did "X" at least two times"#);
    assert!(e.message.contains("whole number"));
    let e = error_of("(a = 1");
    assert_eq!(e.message, "expected `)`");
    let e = error_of(r#"created_at before "soon""#);
    assert!(e.message.contains("date"));
    let e = error_of("phone not contains 1");
    assert!(e.message.contains("not (…)"));
    let e = error_of(r#"did "X" where (a = 1 and a = 2)"#);
    assert!(e.message.contains("twice"));
    let e = error_of(r#"sum(x) of "X" 500"#);
    assert!(e.message.contains("comparison"));
    let e = error_of("opened fax");
    assert_eq!(e.message, "expected `email`, `sms` or `message`");
    let e = error_of("a = 1 # b");
    assert_eq!(e.column, 7);
    let e = error_of("città = \"é\" # b");
    assert_eq!(
        (e.column, e.offset),
        (13, 14),
        "columns count characters, offsets bytes"
    );
    assert_parses("città = 1", json!({"traits": {"città": 1}}));
}

#[test]
fn old_branch_condition_json_still_parses() {
    let old = json!({"any": [
        {"traits": {"vip": true, "rating": {"gte": 4}}},
        {"event": {"name": "Order Completed", "filter": {"total": {"gt": 0}}, "performed": true, "match_key": false}},
        {"event": {"name": "Cart Updated", "performed": false, "match_key": true}},
        {"message": {"node": "send_1", "engagement": "clicked"}},
        {"not": {"all": [{"traits": {"plan": {"in": ["a", "b"]}}}]}}
    ]});
    let as_new: Condition = serde_json::from_value(old.clone()).unwrap();
    // Same shape back out (modulo defaults no longer written).
    let back = serde_json::to_value(&as_new).unwrap();
    assert_eq!(
        serde_json::from_value::<Condition>(back).unwrap(),
        serde_json::from_value::<Condition>(old).unwrap()
    );
    assert!(validate(&as_new, Scope::Branch).is_empty());
    let segment_errors = validate(&as_new, Scope::Segment);
    assert_eq!(
        segment_errors
            .iter()
            .map(|e| e.path.as_str())
            .collect::<Vec<_>>(),
        ["any[1].event", "any[2].event", "any[3].message"]
    );
    assert!(serde_json::from_value::<Condition>(json!({"traits": {}, "did": {}})).is_err());
    assert!(
        serde_json::from_value::<Condition>(json!({"did": {"event": "X", "when": 1}})).is_err()
    );
    let schema = serde_json::to_value(schemars::schema_for!(Condition)).unwrap();
    assert!(schema.to_string().contains("within_last"));
}

#[test]
fn validation_collects_every_problem_with_its_path() {
    let c = cond(json!({"all": [
        {"did": {"event": "", "within": "0d", "times": {"gte": 0}}},
        {"traits": {"signed_up_at": {"within_last": "30x"}, "b": {"anniversary": "tomorrow"},
            "c": {"withinlast": "3d"}, "d": {"before": "soon"}}},
        {"not": {"engaged": {"engagement": "opened", "journey": "", "within": "-1d"}}},
        {"in_list": " "},
        {"any": []},
        {"aggregate": {"function": "sum", "property": "", "event": "Order Completed",
            "op": "gte", "value": 1}},
        {"did": {"event": "X", "filter": {"coupon": null}}}
    ]}));
    let errors = validate(&c, Scope::Segment);
    let got: Vec<(&str, &str)> = errors.iter().map(|e| (e.code, e.path.as_str())).collect();
    assert_eq!(
        got,
        [
            ("empty_name", "all[0].did.event"),
            ("invalid_duration", "all[0].did.within"),
            ("invalid_count", "all[0].did.times"),
            ("invalid_filter", "all[1].traits.b.anniversary"),
            ("invalid_filter", "all[1].traits.c"),
            ("invalid_date", "all[1].traits.d.before"),
            ("invalid_duration", "all[1].traits.signed_up_at.within_last"),
            ("empty_name", "all[2].not.engaged.journey"),
            ("invalid_duration", "all[2].not.engaged.within"),
            ("empty_name", "all[3].in_list"),
            ("empty_condition", "all[4].any"),
            ("empty_name", "all[5].aggregate.property"),
            ("never_holds", "all[6].did.filter.coupon"),
        ]
    );
    assert!(errors[1].to_string().contains("zero"), "{}", errors[1]);
}

// ---------------------------------------------------------------------------------------------
// Evaluation

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}
fn rome() -> TimeZone {
    TimeZone::get("Europe/Rome").unwrap()
}
fn at(s: &str, tz: &TimeZone) -> EvalClock {
    EvalClock::new(ts(s), tz.clone())
}
fn local(y: i16, m: i8, d: i8, h: i8, tz: &TimeZone) -> EvalClock {
    let now = date(y, m, d)
        .at(h, 0, 0, 0)
        .to_zoned(tz.clone())
        .unwrap()
        .timestamp();
    EvalClock::new(now, tz.clone())
}
fn with_traits(traits: Value) -> ContactSnapshot {
    ContactSnapshot {
        traits: traits.as_object().unwrap().clone(),
        ..ContactSnapshot::default()
    }
}
fn event(seq: i64, name: &str, at: &str, properties: Value) -> EventRecord {
    EventRecord {
        seq,
        kind: EventKind::Track,
        name: name.into(),
        properties: properties.as_object().cloned().unwrap_or_default(),
        timestamp: ts(at),
    }
}
fn holds(text: &str, facts: &ContactSnapshot, clock: &EvalClock) -> bool {
    evaluate(&parse(text).unwrap(), facts, clock)
}
fn change(text: &str, facts: &ContactSnapshot, clock: &EvalClock) -> Option<Timestamp> {
    next_change(&parse(text).unwrap(), facts, clock)
}

#[test]
fn relative_dates_have_exact_boundaries() {
    let utc = TimeZone::UTC;
    let c = with_traits(json!({"signed_up_at": "2026-03-01T12:00:00Z", "renewal": "2026-04-01"}));
    let q = "signed_up_at within last 30d";
    assert!(!holds(q, &c, &at("2026-03-01T11:59:59Z", &utc)), "not yet");
    assert!(holds(q, &c, &at("2026-03-01T12:00:00Z", &utc)));
    assert!(holds(q, &c, &at("2026-03-31T11:59:59Z", &utc)));
    assert!(
        !holds(q, &c, &at("2026-03-31T12:00:00Z", &utc)),
        "exactly 30d old has left"
    );
    assert_eq!(
        change(q, &c, &at("2026-03-10T00:00:00Z", &utc)),
        Some(ts("2026-03-31T12:00:00Z"))
    );
    let q = "signed_up_at older than 30d";
    assert!(holds(q, &c, &at("2026-03-31T12:00:00Z", &utc)));
    assert!(!holds(q, &c, &at("2026-03-31T11:59:59Z", &utc)));
    assert_eq!(change(q, &c, &at("2026-04-01T00:00:00Z", &utc)), None);
    // `YYYY-MM-DD` is midnight in the evaluation zone.
    let q = "renewal within next 7d";
    assert!(!holds(q, &c, &at("2026-03-24T23:59:59Z", &utc)));
    assert!(holds(q, &c, &at("2026-03-25T00:00:00Z", &utc)));
    assert!(holds(q, &c, &at("2026-03-31T23:59:59Z", &utc)));
    assert!(
        !holds(q, &c, &at("2026-04-01T00:00:00Z", &utc)),
        "the day itself is not next"
    );
    // In Rome the renewal day starts at 22:00 UTC (summer time).
    assert!(!holds(q, &c, &at("2026-03-31T22:00:00Z", &rome())));
    assert!(holds(q, &c, &at("2026-03-31T21:59:59Z", &rome())));
    // Without a clock (plain `matches`) date operators are false.
    let p: Predicate = serde_json::from_value(json!({"within_last": "3650d"})).unwrap();
    assert!(!p.matches(Some(&json!("2026-03-01"))));
    // Not a date: false either way.
    assert!(!holds(
        "signed_up_at within last 30d",
        &with_traits(json!({"signed_up_at": "soon"})),
        &at("2026-03-01T00:00:00Z", &utc)
    ));
    assert!(holds(
        r#"signed_up_at before "2026-03-02" and signed_up_at after "2026-03-01""#,
        &c,
        &at("2020-01-01T00:00:00Z", &utc)
    ));
}

#[test]
fn dates_across_daylight_saving_changes() {
    let tz = rome();
    // Summer time starts in Rome on 2026-03-29 at 02:00 (clocks go to 03:00).
    let c = with_traits(json!({"day": "2026-03-29", "renewal": "2026-03-30"}));
    // "within last 1d" is 24 hours from local midnight (23:00 UTC the day before).
    let q = "day within last 1d";
    assert!(holds(q, &c, &local(2026, 3, 29, 0, &tz)));
    assert!(
        holds(q, &c, &at("2026-03-29T22:59:59Z", &tz)),
        "00:59 local on the 30th"
    );
    assert!(!holds(q, &c, &at("2026-03-29T23:00:00Z", &tz)));
    // Midnight of the 30th is 22:00 UTC after the change: "within next" ends there.
    let q = "renewal within next 2d";
    assert!(holds(q, &c, &at("2026-03-29T21:59:59Z", &tz)));
    assert!(!holds(q, &c, &at("2026-03-29T22:00:00Z", &tz)));
    assert_eq!(
        change(q, &c, &at("2026-03-29T12:00:00Z", &tz)),
        Some(ts("2026-03-29T22:00:00Z"))
    );
    // Anniversaries follow local midnights, whichever offset is in force.
    let c = with_traits(json!({"birthday": "1990-03-29"}));
    let q = "birthday anniversary today";
    assert!(!holds(q, &c, &at("2027-03-28T21:59:59Z", &tz)));
    assert!(
        holds(q, &c, &at("2027-03-28T22:00:00Z", &tz)),
        "00:00 CEST on the 29th"
    );
    assert!(holds(q, &c, &at("2027-03-29T21:59:59Z", &tz)));
    assert!(!holds(q, &c, &at("2027-03-29T22:00:00Z", &tz)));
    assert_eq!(
        change(q, &c, &at("2027-03-01T10:00:00Z", &tz)),
        Some(ts("2027-03-28T22:00:00Z"))
    );
    assert_eq!(
        change(q, &c, &at("2027-03-29T10:00:00Z", &tz)),
        Some(ts("2027-03-29T22:00:00Z"))
    );
    // A timestamp trait has its anniversary on its local date: 23:30 UTC is the next day in Rome.
    let c = with_traits(json!({"birthday": "1990-10-27T23:30:00Z"}));
    assert!(holds(q, &c, &local(2026, 10, 28, 12, &tz)));
    assert!(!holds(q, &c, &local(2026, 10, 28, 12, &TimeZone::UTC)));
    // Autumn: 2026-10-25 has 25 hours in Rome; the day still ends at local midnight.
    let c = with_traits(json!({"birthday": "1990-10-25"}));
    assert!(holds(q, &c, &at("2026-10-25T22:59:59Z", &tz)));
    assert!(!holds(q, &c, &at("2026-10-25T23:00:00Z", &tz)));
}

#[test]
fn leap_day_birthdays_count_on_28_february() {
    let tz = rome();
    let c = with_traits(json!({"birthday": "2000-02-29"}));
    let q = "birthday anniversary today";
    assert!(holds(q, &c, &local(2027, 2, 28, 9, &tz)));
    assert!(!holds(q, &c, &local(2027, 3, 1, 9, &tz)));
    assert!(!holds(q, &c, &local(2028, 2, 28, 9, &tz)));
    assert!(holds(q, &c, &local(2028, 2, 29, 9, &tz)));
    assert!(!holds(q, &c, &local(2028, 3, 1, 0, &tz)));
    let next = change(q, &c, &local(2027, 3, 1, 9, &tz)).unwrap();
    assert_eq!(next, local(2028, 2, 29, 0, &tz).now);
    let next = change(q, &c, &local(2028, 1, 10, 9, &tz)).unwrap();
    assert_eq!(next, local(2028, 2, 29, 0, &tz).now);
}

fn shop() -> ContactSnapshot {
    let mut c = with_traits(json!({"plan": "pro"}));
    c.push_event(event(
        1,
        "Order Completed",
        "2026-01-10T10:00:00Z",
        json!({"total": 300, "status": "paid"}),
    ));
    c.push_event(event(
        2,
        "Order Completed",
        "2026-03-01T10:00:00Z",
        json!({"total": "150.5", "status": "paid"}),
    ));
    c.push_event(event(
        3,
        "Order Completed",
        "2026-03-20T10:00:00Z",
        json!({"total": 80, "status": "refunded"}),
    ));
    c.push_event(event(4, "Logged In", "2026-03-05T08:00:00Z", json!({})));
    c.lists.insert("vip".into());
    c.messages.push(MessageRecord {
        journey: Some("welcome".into()),
        template: Some("welcome-1".into()),
        node: Some("send_1".into()),
        channel: Channel::Email,
        sent_at: ts("2026-03-10T09:00:00Z"),
        delivered_at: Some(ts("2026-03-10T09:00:05Z")),
        opened_at: None,
        clicked_at: Some(ts("2026-03-12T18:00:00Z")),
    });
    c
}

#[test]
fn history_sums_engagement_and_lists() {
    let c = shop();
    let now = at("2026-03-25T00:00:00Z", &TimeZone::UTC);
    assert!(holds(r#"did "Order Completed" at least 3 times"#, &c, &now));
    assert!(holds(
        r#"did "Order Completed" exactly 2 times in last 30d"#,
        &c,
        &now
    ));
    assert!(holds(
        r#"did "Order Completed" at least 1 time in last 30d where status = "paid""#,
        &c,
        &now
    ));
    assert!(!holds(
        r#"did "Order Completed" at least 2 times in last 30d where status = "paid""#,
        &c,
        &now
    ));
    assert!(holds(
        r#"did "Order Completed" at most 1 time in last 10d"#,
        &c,
        &now
    ));
    assert!(holds(r#"did not "Logged In" in last 14d"#, &c, &now));
    assert!(!holds(r#"did not "Logged In" in last 30d"#, &c, &now));
    assert!(holds(r#"did not "Signed Up""#, &c, &now));
    // Numbers in strings count; the sum of nothing is 0; min/max/avg of nothing never compare.
    assert!(holds(
        r#"sum(total) of "Order Completed" >= 530.5"#,
        &c,
        &now
    ));
    assert!(!holds(
        r#"sum(total) of "Order Completed" > 530.5"#,
        &c,
        &now
    ));
    assert!(holds(
        r#"sum(total) of "Order Completed" in last 90d where (status = "paid") = 450.5"#,
        &c,
        &now
    ));
    assert!(holds(
        r#"max(total) of "Order Completed" in last 30d = 150.5"#,
        &c,
        &now
    ));
    assert!(holds(r#"min(total) of "Order Completed" = 80"#, &c, &now));
    assert!(holds(
        r#"avg(total) of "Order Completed" in last 30d > 115"#,
        &c,
        &now
    ));
    assert!(holds(r#"sum(total) of "Nothing" = 0"#, &c, &now));
    assert!(!holds(r#"avg(total) of "Nothing" = 0"#, &c, &now));
    assert!(holds(r#"not avg(total) of "Nothing" != 0"#, &c, &now));
    // A click counts as an open.
    assert!(holds(
        r#"opened email from journey "welcome" in last 14d"#,
        &c,
        &now
    ));
    assert!(holds(
        r#"clicked any message with template "welcome-1""#,
        &c,
        &now
    ));
    assert!(!holds(r#"opened sms"#, &c, &now));
    assert!(!holds(r#"opened email from journey "promo""#, &c, &now));
    assert!(!holds(r#"delivered email in last 14d"#, &c, &now));
    assert!(holds(r#"sent email in last 15d"#, &c, &now));
    assert!(holds(
        r#"in list "vip" and not in list "blocked""#,
        &c,
        &now
    ));
    // Enrollment scope outside a journey: nothing happened since entry.
    assert!(!holds(r#"event "Order Completed" since entry"#, &c, &now));
    assert!(holds(r#"no event "Order Completed" since entry"#, &c, &now));
    assert!(!holds("message send_1 clicked", &c, &now));
}

#[test]
fn windows_are_half_open_and_next_change_finds_their_edges() {
    let c = shop();
    let q = r#"did "Order Completed" at least 2 times in last 30d"#;
    // Orders at 03-01 10:00 and 03-20 10:00: two in the window until 03-31 10:00.
    let utc = TimeZone::UTC;
    assert!(!holds(q, &c, &at("2026-03-20T09:59:59Z", &utc)));
    assert!(holds(q, &c, &at("2026-03-20T10:00:00Z", &utc)));
    assert!(holds(q, &c, &at("2026-03-31T09:59:59Z", &utc)));
    assert!(!holds(q, &c, &at("2026-03-31T10:00:00Z", &utc)));
    assert_eq!(
        change(q, &c, &at("2026-03-25T00:00:00Z", &utc)),
        Some(ts("2026-03-31T10:00:00Z"))
    );
    // No window, nothing in the future: no change without new data.
    assert_eq!(
        change(
            r#"did "Order Completed""#,
            &c,
            &at("2026-03-25T00:00:00Z", &utc)
        ),
        None
    );
    assert_eq!(
        change(
            r#"in list "vip" or plan = "pro""#,
            &c,
            &at("2026-03-25T00:00:00Z", &utc)
        ),
        None
    );
    // The "did not" case becomes true without a new event.
    let q = r#"did not "Logged In" in last 14d"#;
    assert!(!holds(q, &c, &at("2026-03-18T00:00:00Z", &utc)));
    let when = change(q, &c, &at("2026-03-18T00:00:00Z", &utc)).unwrap();
    assert_eq!(when, ts("2026-03-19T08:00:00Z"));
    assert!(holds(q, &c, &at("2026-03-19T08:00:00Z", &utc)));
    // An event stamped in the future counts from its timestamp.
    let mut c = shop();
    c.push_event(event(9, "Logged In", "2026-04-01T00:00:00Z", json!({})));
    assert!(!holds(
        r#"did "Logged In" at least 2 times"#,
        &c,
        &at("2026-03-30T00:00:00Z", &utc)
    ));
    assert_eq!(
        change(
            r#"did "Logged In" at least 2 times"#,
            &c,
            &at("2026-03-30T00:00:00Z", &utc)
        ),
        Some(ts("2026-04-01T00:00:00Z"))
    );
}

// ---------------------------------------------------------------------------------------------
// Round trip: parse(print(c)) == c.canonical() for any AST.

fn arb_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("plan".to_string()),
        Just("age".to_string()),
        Just("address.city".to_string()),
        Just("items.0.price".to_string()),
        Just("first name".to_string()),
        Just("event".to_string()),
        Just("Did".to_string()),
        Just("we`ird\\".to_string()),
        Just(String::new()),
        "[a-z_][a-z0-9_]{0,6}",
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,8}",
        "\\PC{0,6}",
        Just("quote \" back \\ nl \n tab \t bell \u{7}".to_string()),
    ]
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        arb_string().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-4000i32..4000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => arb_scalar(),
        1 => prop::collection::vec(arb_scalar(), 0..3).prop_map(Value::Array),
    ]
}

fn arb_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(f64::from),
        (-100_000i32..100_000).prop_map(|n| f64::from(n) / 100.0),
        Just(1e21),
        Just(-0.0),
    ]
}

fn arb_duration() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("30m".to_string()),
        Just("12h".to_string()),
        Just("1d".to_string()),
        Just("30d".to_string()),
        Just("2w".to_string()),
        Just("1d12h".to_string()),
        (1u32..500).prop_map(|n| format!("{n}d")),
    ]
}

fn arb_date() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("2026-01-31".to_string()),
        Just("2026-01-31T09:00:00Z".to_string()),
        Just("2000-02-29".to_string()),
        Just("2026-07-01T10:00:00+02:00".to_string()),
    ]
}

/// An operator object with 1..=4 operators set (any combination).
fn arb_ops() -> impl Strategy<Value = Ops> {
    (
        (
            proptest::option::weighted(0.2, arb_value()),
            proptest::option::weighted(0.2, arb_value()),
            proptest::option::weighted(0.2, arb_number()),
            proptest::option::weighted(0.2, arb_number()),
            proptest::option::weighted(0.2, arb_number()),
            proptest::option::weighted(0.2, arb_number()),
            proptest::option::weighted(0.2, arb_value()),
            proptest::option::weighted(0.2, any::<bool>()),
        ),
        (
            proptest::option::weighted(0.2, prop::collection::vec(arb_scalar(), 0..3)),
            proptest::option::weighted(0.2, arb_duration()),
            proptest::option::weighted(0.2, arb_duration()),
            proptest::option::weighted(0.2, arb_duration()),
            proptest::option::weighted(0.2, Just("today".to_string())),
            proptest::option::weighted(0.2, arb_date()),
            proptest::option::weighted(0.2, arb_date()),
            proptest::option::weighted(
                0.1,
                (-90.0f64..=90.0, -180.0f64..=180.0, 0.0f64..20_000.0)
                    .prop_map(|(lat, lon, km)| waymark_core::filter::Near { lat, lon, km }),
            ),
        ),
    )
        .prop_map(
            |(
                (eq, ne, gt, gte, lt, lte, contains, exists),
                (one_of, wl, ot, wn, an, be, af, near),
            )| {
                Ops {
                    eq,
                    ne,
                    gt,
                    gte,
                    lt,
                    lte,
                    contains,
                    exists,
                    one_of,
                    within_last: wl,
                    older_than: ot,
                    within_next: wn,
                    anniversary: an,
                    before: be,
                    after: af,
                    near,
                }
            },
        )
}

fn arb_predicate() -> impl Strategy<Value = Predicate> {
    prop_oneof![
        arb_value().prop_map(Predicate::Equals),
        arb_ops().prop_map(Predicate::Ops),
    ]
}

fn arb_filter(max: usize) -> impl Strategy<Value = Filter> {
    prop::collection::btree_map(arb_path(), arb_predicate(), 0..=max)
}

fn arb_times() -> impl Strategy<Value = Times> {
    prop_oneof![
        Just(Times::Gte(1)),
        (0u32..5).prop_map(Times::Gte),
        (0u32..5).prop_map(Times::Lte),
        (0u32..5).prop_map(Times::Eq),
    ]
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Order Completed".to_string()),
        Just("send_1".to_string()),
        Just("opened".to_string()),
        arb_string(),
    ]
}

fn arb_atom() -> impl Strategy<Value = Condition> {
    let engagement = prop::sample::select(Engagement::ALL.to_vec());
    prop_oneof![
        3 => arb_filter(3).prop_map(Condition::Traits),
        2 => (arb_name(), arb_times(), proptest::option::of(arb_duration()), arb_filter(2))
            .prop_map(|(event, times, within, filter)| Condition::Did(HistoryCondition { event, times, within, filter })),
        1 => (
            prop::sample::select(AggregateFunction::ALL.to_vec()),
            arb_path(),
            arb_name(),
            proptest::option::of(arb_duration()),
            arb_filter(2),
            prop::sample::select(CompareOp::ALL.to_vec()),
            arb_number(),
        )
            .prop_map(|(function, property, event, within, filter, op, value)| {
                Condition::Aggregate(AggregateCondition { function, property, event, within, filter, op, value })
            }),
        1 => (
            engagement.clone(),
            proptest::option::of(prop_oneof![Just(Channel::Email), Just(Channel::Sms)]),
            proptest::option::of(arb_name()),
            proptest::option::of(arb_name()),
            proptest::option::of(arb_duration()),
        )
            .prop_map(|(engagement, channel, journey, template, within)| {
                Condition::Engaged(EngagementCondition { engagement, channel, journey, template, within })
            }),
        1 => arb_name().prop_map(Condition::InList),
        1 => (arb_name(), arb_filter(2), any::<bool>(), any::<bool>()).prop_map(|(name, filter, performed, match_key)| {
            Condition::Event(EntryEventCondition { name, filter, performed, match_key })
        }),
        1 => (arb_name(), engagement).prop_map(|(node, engagement)| {
            Condition::Message(EntryMessageCondition { node, engagement })
        }),
        1 => prop::collection::btree_map(arb_path(), arb_value().prop_map(Predicate::Equals), 1..=2)
            .prop_map(Condition::Trigger),
    ]
}

fn arb_condition() -> impl Strategy<Value = Condition> {
    arb_atom().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::All),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::Any),
            inner.prop_map(|c| Condition::Not(Box::new(c))),
        ]
    })
}

/// Runs `f` on a thread with a large stack: the recursive strategies' value trees are deep in
/// debug builds.
fn big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

fn round_trip(c: Condition) -> Result<(), TestCaseError> {
    let canonical = c.canonical();
    prop_assert_eq!(
        canonical.canonical(),
        canonical.clone(),
        "canonical is idempotent"
    );
    let text = print(&c);
    let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
    prop_assert_eq!(&parsed, &canonical, "printed as {}", text);
    // What the parser returns is canonical, prints the same and survives JSON.
    prop_assert_eq!(print(&parsed), text);
    let json = serde_json::to_value(&parsed).unwrap();
    prop_assert_eq!(serde_json::from_value::<Condition>(json).unwrap(), parsed);
    Ok(())
}

#[test]
fn printing_then_parsing_gives_the_canonical_ast() {
    big_stack(|| {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(1024));
        if let Err(e) = runner.run(&arb_condition(), round_trip) {
            panic!("{e}");
        }
    });
}

proptest! {
    #[test]
    fn parsing_never_panics(s in "\\PC{0,40}") {
        let _ = parse(&s);
    }

    #[test]
    fn parsing_token_soup_never_panics(words in prop::collection::vec(prop::sample::select(vec![
        "did", "not", "\"X\"", "at", "least", "2", "times", "in", "last", "30d", "where", "(", ")",
        "a", "=", ">=", "and", "or", "sum", "of", "list", "opened", "email", "any", "message",
        "event", "since", "entry", "no", "[", "]", ",", "within", "next", "older", "than",
        "anniversary", "today", "`p`", "-1.5", "all", "exists", "contains", "before",
    ]), 0..14)) {
        let text = words.join(" ");
        if let Ok(c) = parse(&text) {
            prop_assert_eq!(parse(&print(&c)).unwrap(), c);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Segment membership kept incrementally (re-evaluate on the contact's data changes and at
// `next_change`) agrees with brute-force evaluation at every probe time.

/// Half an hour: every generated instant, window and (for the zones used) local midnight is a
/// multiple of it, so probing each slot hits every boundary exactly.
const SLOT: i64 = 1800;
const SLOTS: i64 = 45 * 48;

#[derive(Debug, Clone)]
enum Change {
    Event {
        name: &'static str,
        backdate_slots: i64,
        total: i64,
        due_slot: i64,
    },
    Trait {
        key: &'static str,
        value: Value,
    },
    List {
        name: &'static str,
        member: bool,
    },
    Message {
        channel: Channel,
        journey: &'static str,
        opened_after: Option<i64>,
        clicked_after: Option<i64>,
    },
}

#[derive(Debug, Clone)]
struct Timeline {
    start: Timestamp,
    tz: TimeZone,
    /// (slot, change), in any order.
    changes: Vec<(i64, Change)>,
}

fn slot_time(start: Timestamp, slot: i64) -> Timestamp {
    start + SignedDuration::from_secs(slot * SLOT)
}

impl Timeline {
    /// What the store would hold at `now`: every change applied up to and including `now`.
    fn facts_at(&self, now: Timestamp) -> ContactSnapshot {
        let mut facts = ContactSnapshot::default();
        let mut changes: Vec<_> = self.changes.iter().enumerate().collect();
        changes.sort_by_key(|(i, (slot, _))| (*slot, *i));
        for (i, (slot, change)) in changes {
            let t = slot_time(self.start, *slot);
            match change {
                Change::Message {
                    channel,
                    journey,
                    opened_after,
                    clicked_after,
                } => {
                    if t > now {
                        continue;
                    }
                    let known = |after: &Option<i64>| {
                        after
                            .map(|a| t + SignedDuration::from_secs(a * SLOT))
                            .filter(|x| *x <= now)
                    };
                    facts.messages.push(MessageRecord {
                        journey: Some(journey.to_string()),
                        template: Some(format!("{journey}-t")),
                        node: None,
                        channel: *channel,
                        sent_at: t,
                        delivered_at: Some(t),
                        opened_at: known(opened_after),
                        clicked_at: known(clicked_after),
                    });
                }
                _ if t > now => {}
                Change::Event {
                    name,
                    backdate_slots,
                    total,
                    due_slot,
                } => {
                    let stamp = t - SignedDuration::from_secs(backdate_slots * SLOT);
                    let due = slot_time(self.start, *due_slot);
                    facts.push_event(EventRecord {
                        seq: i as i64,
                        kind: EventKind::Track,
                        name: name.to_string(),
                        properties: json!({"total": total, "due": due.to_string()})
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                        timestamp: stamp,
                    });
                }
                Change::Trait { key, value } => {
                    facts.traits.insert(key.to_string(), value.clone());
                }
                Change::List { name, member } => {
                    if *member {
                        facts.lists.insert(name.to_string());
                    } else {
                        facts.lists.remove(*name);
                    }
                }
            }
        }
        facts
    }

    /// Instants at which the contact's data changes (event arrival, trait or list change, a
    /// message sent, opened or clicked).
    fn data_changes(&self) -> Vec<Timestamp> {
        let mut out = Vec::new();
        for (slot, change) in &self.changes {
            let t = slot_time(self.start, *slot);
            out.push(t);
            if let Change::Message {
                opened_after,
                clicked_after,
                ..
            } = change
            {
                for a in [opened_after, clicked_after].into_iter().flatten() {
                    out.push(t + SignedDuration::from_secs(a * SLOT));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

const NAMES: [&str; 2] = ["Order Completed", "Logged In"];

fn sim_duration() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["30m", "1h", "12h", "1d", "2d", "3d", "7d", "30d"])
        .prop_map(str::to_string)
}

fn sim_atom() -> impl Strategy<Value = Condition> {
    let traits = prop_oneof![
        Just(json!({"plan": "pro"})),
        Just(json!({"age": {"gte": 18}})),
        sim_duration().prop_map(|d| json!({"signed_up_at": {"within_last": d}})),
        sim_duration().prop_map(|d| json!({"signed_up_at": {"older_than": d}})),
        sim_duration().prop_map(|d| json!({"renewal": {"within_next": d}})),
        Just(json!({"birthday": {"anniversary": "today"}})),
        Just(json!({"signed_up_at": {"before": "2027-03-01"}})),
        Just(json!({"renewal": {"exists": true, "within_last": "2d"}})),
    ]
    .prop_map(|f| json!({"traits": f}));
    let filter = prop_oneof![
        Just(json!({})),
        Just(json!({"total": {"gt": 20}})),
        sim_duration().prop_map(|d| json!({"due": {"within_next": d}})),
        sim_duration().prop_map(|d| json!({"due": {"within_last": d}})),
    ];
    let times = prop_oneof![
        (1u32..4).prop_map(|n| json!({"gte": n})),
        (0u32..3).prop_map(|n| json!({"lte": n})),
        (0u32..3).prop_map(|n| json!({"eq": n})),
    ];
    let did = (
        prop::sample::select(NAMES.to_vec()),
        times,
        proptest::option::weighted(0.8, sim_duration()),
        filter.clone(),
    )
        .prop_map(|(event, times, within, filter)| {
            json!({"did": {"event": event, "times": times, "within": within, "filter": filter}})
        });
    let aggregate = (
        prop::sample::select(vec!["sum", "min", "max", "avg"]),
        proptest::option::weighted(0.8, sim_duration()),
        filter,
        prop::sample::select(vec!["gt", "gte", "lt", "lte", "eq", "ne"]),
        (0i32..6).prop_map(|n| n * 25),
    )
        .prop_map(|(function, within, filter, op, value)| {
            json!({"aggregate": {"function": function, "property": "total",
                "event": "Order Completed", "within": within, "filter": filter, "op": op,
                "value": value}})
        });
    let engaged = (
        prop::sample::select(vec!["sent", "delivered", "opened", "clicked"]),
        prop::sample::select(vec![None, Some("email"), Some("sms")]),
        prop::sample::select(vec![None, Some("welcome"), Some("promo")]),
        proptest::option::weighted(0.8, sim_duration()),
    )
        .prop_map(|(engagement, channel, journey, within)| {
            json!({"engaged": {"engagement": engagement, "channel": channel, "journey": journey,
                "within": within}})
        });
    prop_oneof![
        3 => traits,
        3 => did,
        2 => aggregate,
        2 => engaged,
        1 => Just(json!({"in_list": "vip"})),
    ]
    .prop_map(|v| {
        // Drop the nulls the optional parts produced.
        let cleaned = strip_nulls(v);
        serde_json::from_value::<Condition>(cleaned).unwrap()
    })
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect::<Map<String, Value>>(),
        ),
        v => v,
    }
}

fn sim_condition() -> impl Strategy<Value = Condition> {
    sim_atom().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Condition::All),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Condition::Any),
            inner.prop_map(|c| Condition::Not(Box::new(c))),
        ]
    })
}

fn sim_date_value(start: Timestamp) -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2000i64..SLOTS + 1000).prop_map(move |s| Value::from(slot_time(start, s).to_string())),
        (-60i64..60).prop_map(move |d| {
            let day = start.to_zoned(TimeZone::UTC).date() + jiff::Span::new().days(d);
            Value::from(day.to_string())
        }),
    ]
}

fn sim_change(start: Timestamp) -> impl Strategy<Value = Change> {
    let birthday = prop::sample::select(vec![
        "2000-02-29",
        "1990-02-28",
        "1990-03-01",
        "1985-03-29",
        "1985-03-26",
        "1999-03-14",
        "1990-03-01T23:30:00Z",
        "1990-02-27T12:00:00+14:00",
    ])
    .prop_map(Value::from);
    prop_oneof![
        4 => (prop::sample::select(NAMES.to_vec()), -4i64..96, 0i64..60, -100i64..SLOTS + 100)
            .prop_map(|(name, backdate_slots, total, due_slot)| Change::Event { name, backdate_slots, total, due_slot }),
        1 => sim_date_value(start).prop_map(|value| Change::Trait { key: "signed_up_at", value }),
        1 => sim_date_value(start).prop_map(|value| Change::Trait { key: "renewal", value }),
        1 => birthday.prop_map(|value| Change::Trait { key: "birthday", value }),
        1 => prop::sample::select(vec!["pro", "free"]).prop_map(|p| Change::Trait { key: "plan", value: Value::from(p) }),
        1 => (10i64..30).prop_map(|a| Change::Trait { key: "age", value: Value::from(a) }),
        1 => any::<bool>().prop_map(|member| Change::List { name: "vip", member }),
        2 => (
            prop_oneof![Just(Channel::Email), Just(Channel::Sms)],
            prop::sample::select(vec!["welcome", "promo"]),
            proptest::option::of(0i64..200),
            proptest::option::of(0i64..200),
        )
            .prop_map(|(channel, journey, opened_after, clicked_after)| Change::Message { channel, journey, opened_after, clicked_after }),
    ]
}

fn sim_timeline() -> impl Strategy<Value = Timeline> {
    (
        prop::sample::select(vec!["2027-02-20T00:00:00Z", "2028-02-20T00:00:00Z"]),
        prop::sample::select(vec![
            "UTC",
            "Europe/Rome",
            "America/New_York",
            "Australia/Lord_Howe",
        ]),
    )
        .prop_flat_map(|(start, zone)| {
            let start: Timestamp = start.parse().unwrap();
            let tz = TimeZone::get(zone).unwrap();
            prop::collection::vec((-50i64..SLOTS, sim_change(start)), 0..24).prop_map(
                move |changes| Timeline {
                    start,
                    tz: tz.clone(),
                    // Changes before the start are the contact's state when tracking begins.
                    changes: changes.into_iter().map(|(s, c)| (s.max(0), c)).collect(),
                },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn incremental_membership_matches_brute_force(c in sim_condition(), timeline in sim_timeline()) {
        prop_assert!(validate(&c, Scope::Segment).is_empty(), "{:?}", validate(&c, Scope::Segment));
        let data = timeline.data_changes();
        let clock = |t: Timestamp| EvalClock::new(t, timeline.tz.clone());
        // The maintainer: evaluates at the start, then only at its contact's data changes and
        // at the `next_change` it was given.
        let start = timeline.start;
        let mut last = start;
        let mut member = evaluate(&c, &timeline.facts_at(start), &clock(start));
        let mut wake = next_change(&c, &timeline.facts_at(start), &clock(start));
        let mut checks = 0;
        for slot in 0..=SLOTS {
            for probe in [slot_time(start, slot) - SignedDuration::from_secs(1), slot_time(start, slot)] {
                if probe < start {
                    continue;
                }
                loop {
                    let next_data = data.iter().copied().find(|d| *d > last);
                    let due = [next_data, wake].into_iter().flatten().min();
                    match due {
                        Some(r) if r <= probe => {
                            let facts = timeline.facts_at(r);
                            member = evaluate(&c, &facts, &clock(r));
                            wake = next_change(&c, &facts, &clock(r));
                            prop_assert!(wake.is_none_or(|w| w > r), "next_change must be after now");
                            last = r;
                            checks += 1;
                            prop_assert!(checks < 50_000, "runaway re-checks");
                        }
                        _ => break,
                    }
                }
                let truth = evaluate(&c, &timeline.facts_at(probe), &clock(probe));
                prop_assert_eq!(
                    member, truth,
                    "at {} (last re-check {}, next {:?}) for {}", probe, last, wake, print(&c)
                );
            }
        }
    }
}

#[test]
fn timeline_sanity() {
    // The simulation's own bookkeeping: facts appear at their slot, not before.
    let start = ts("2027-02-20T00:00:00Z");
    let t = Timeline {
        start,
        tz: TimeZone::UTC,
        changes: vec![
            (
                2,
                Change::Event {
                    name: "Logged In",
                    backdate_slots: 1,
                    total: 5,
                    due_slot: 0,
                },
            ),
            (
                3,
                Change::List {
                    name: "vip",
                    member: true,
                },
            ),
        ],
    };
    assert!(t.facts_at(slot_time(start, 1)).events.is_empty());
    let f = t.facts_at(slot_time(start, 2));
    assert_eq!(f.events["Logged In"][0].timestamp, slot_time(start, 1));
    assert!(!f.lists.contains("vip"));
    assert!(t.facts_at(slot_time(start, 3)).lists.contains("vip"));
}

#[test]
fn near_a_point_reads_coordinates_in_every_usual_shape() {
    let c = parse("home near 45.4642, 9.19 within 20 km and city != \"Rome\"").unwrap();
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({"all": [
            {"traits": {"home": {"near": {"lat": 45.4642, "lon": 9.19, "km": 20.0}}}},
            {"traits": {"city": {"ne": "Rome"}}}
        ]})
    );
    assert_eq!(parse(&print(&c)).unwrap(), c);
    let clock = EvalClock::utc("2026-01-01T00:00:00Z".parse().unwrap());
    let at = |home: Value| {
        let facts = ContactSnapshot {
            traits: json!({"home": home, "city": "x"})
                .as_object()
                .unwrap()
                .clone(),
            ..Default::default()
        };
        evaluate(&c, &facts, &clock)
    };
    // Monza is about 15 km from Milan's centre; Rome about 480 km.
    assert!(at(json!({"lat": 45.5845, "lon": 9.2744})));
    assert!(at(json!({"latitude": 45.5845, "longitude": 9.2744})));
    assert!(at(json!([45.5845, 9.2744])));
    assert!(at(json!("45.5845, 9.2744")));
    assert!(!at(json!({"lat": 41.9028, "lon": 12.4964})));
    assert!(!at(json!("somewhere")));
    assert!(!at(json!({"lat": 145.0, "lon": 9.0})));
    let km = waymark_core::filter::haversine_km(45.4642, 9.19, 41.9028, 12.4964);
    assert!((km - 477.0).abs() < 5.0, "{km}");
    let e = parse("home near 95, 9 within 1 km").unwrap_err();
    assert!(e.message.contains("latitude"), "{e}");
}

#[test]
fn trigger_reads_the_event_that_started_the_enrollment() {
    let c = parse(r#"trigger where (interest = "analytics" and score >= 3)"#).unwrap();
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({"trigger": {"interest": "analytics", "score": {"gte": 3.0}}})
    );
    assert_eq!(parse(&print(&c)).unwrap(), c);
    assert!(!validate(&c, Scope::Segment).is_empty());
    assert!(validate(&c, Scope::Branch).is_empty());
    // A trait named `trigger` needs backticks now.
    let t = parse("`trigger` = 1").unwrap();
    assert_eq!(print(&t), "`trigger` = 1");
}

#[test]
fn a_comparison_without_an_operator_is_refused_in_every_filter() {
    // Found by the condition_json fuzz target: `{"trigger": {"x": {}}}` validated, then printed
    // as `trigger`, which does not parse. An empty predicate compares nothing, in any filter.
    let c = cond(json!({"any": [
        {"trigger": {"x": {}}},
        {"did": {"event": "X", "filter": {"y": {}}}},
        {"traits": {"z": {}}}
    ]}));
    let errors = validate(&c, Scope::Branch);
    let got: Vec<(&str, &str)> = errors.iter().map(|e| (e.code, e.path.as_str())).collect();
    assert_eq!(
        got,
        [
            ("empty_condition", "any[0].trigger.x"),
            ("empty_condition", "any[1].did.filter.y"),
            ("empty_condition", "any[2].traits.z"),
        ]
    );
}
