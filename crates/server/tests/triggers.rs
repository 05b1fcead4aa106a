//! Time-based triggers over HTTP on a simulated clock: a birthday every year at 09:00 in the
//! contact's time zone, a renewal reminder days before a date, inactivity (no order for N
//! days), a weekly schedule over a segment, and publishing with `enroll_existing`.

mod common;

use common::*;
use jiff::{Timestamp, ToSpan};

fn one_email(id: &str, text: &str) -> Value {
    json!({"id": id, "channel": "email", "subject": id, "text": text})
}

fn simple(id: &str, trigger: Value, template: Value) -> Value {
    let mut start = json!({"id": "start", "type": "trigger"});
    start
        .as_object_mut()
        .unwrap()
        .extend(trigger.as_object().unwrap().clone());
    json!({
        "id": id, "name": id,
        "nodes": [start, {"id": "send", "type": "send_email", "template": template["id"]}],
        "edges": [{"from": "start", "to": "send"}],
        "templates": [template],
    })
}

/// The next `MM-DD` at least two days ahead of the server's clock, and its year.
fn upcoming(s: &Server, days_ahead: i64) -> (i16, String) {
    let d = (now(s) + jiff::SignedDuration::from_hours(24 * days_ahead))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    (d.year(), format!("{:02}-{:02}", d.month(), d.day()))
}

#[test]
fn a_birthday_fires_every_year_at_nine_in_the_contacts_zone() {
    let s = Server::simulated();
    s.apply_journey(simple(
        "birthday",
        json!({"date": {"trait": "birthday", "time": "09:00"}}),
        one_email("happy-birthday", "Happy birthday! ({{ event.date }})"),
    ));
    let (year, md) = upcoming(&s, 3);
    s.identify(
        "rita",
        json!({"email": "rita@example.com", "birthday": format!("1990-{md}"), "timezone": "Europe/Rome"}),
    )
    .ok();
    s.identify("nodate", json!({"email": "nodate@example.com"}))
        .ok();
    s.settle();
    let nine_rome: Timestamp = format!("{year}-{md}T09:00:00+01:00[Europe/Rome]")
        .parse::<jiff::Zoned>()
        .unwrap()
        .timestamp();
    advance_to(&s, nine_rome - jiff::SignedDuration::from_secs(1));
    assert!(s.messages("rita").is_empty());
    s.advance(1);
    let m = s.messages("rita");
    assert_eq!(templates_of(&m), ["happy-birthday"]);
    assert_eq!(created_at(&m[0]), nine_rome);
    assert_eq!(m[0]["text"], format!("Happy birthday! (1990-{md})"));
    // And again a year later, once.
    s.advance(366 * DAY);
    assert_eq!(s.messages("rita").len(), 2);
    assert!(s.messages("nodate").is_empty());
    // Changing the date reschedules: a date three days out fires in three days.
    let (_, soon) = upcoming(&s, 3);
    s.identify("rita", json!({"birthday": format!("1985-{soon}")}))
        .ok();
    s.settle();
    s.advance(4 * DAY);
    assert_eq!(s.messages("rita").len(), 3);
}

#[test]
fn a_renewal_reminder_fires_days_before_a_one_time_date() {
    let s = Server::simulated();
    s.apply_journey(simple(
        "renewal",
        json!({"date": {"trait": "renews_on", "offset": "-3d", "time": "10:00", "repeat": "once"}}),
        one_email(
            "renewal-soon",
            "Your plan renews on {{ contact.renews_on }}",
        ),
    ));
    let (year, md) = upcoming(&s, 10);
    s.identify(
        "ren",
        json!({"email": "ren@example.com", "renews_on": format!("{year}-{md}")}),
    )
    .ok();
    s.settle();
    s.advance(6 * DAY);
    assert!(s.messages("ren").is_empty());
    s.advance(2 * DAY);
    let m = s.messages("ren");
    assert_eq!(templates_of(&m), ["renewal-soon"]);
    let local = created_at(&m[0]).to_zoned(jiff::tz::TimeZone::UTC);
    assert_eq!((local.hour(), local.minute()), (10, 0));
    s.advance(400 * DAY);
    assert_eq!(s.messages("ren").len(), 1, "once means once");
}

#[test]
fn inactivity_fires_after_the_last_event_and_enroll_existing_takes_the_already_lapsed() {
    let s = Server::simulated();
    s.identify("old", json!({"email": "old@example.com"})).ok();
    s.track("old", "Order Completed", json!({})).ok();
    s.settle();
    s.advance(40 * DAY);
    let win_back = simple(
        "win-back",
        json!({"inactivity": {"event": "Order Completed", "for": "30d"}}),
        one_email("miss-you", "We miss you"),
    );
    s.apply_journey(win_back.clone());
    s.identify("new", json!({"email": "new@example.com"})).ok();
    s.track("new", "Order Completed", json!({})).ok();
    s.settle();
    s.advance(20 * DAY);
    // Another order pushes the deadline.
    s.track("new", "Order Completed", json!({})).ok();
    s.settle();
    s.advance(20 * DAY);
    assert!(s.messages("new").is_empty());
    s.advance(10 * DAY);
    assert_eq!(templates_of(&s.messages("new")), ["miss-you"]);
    // `old` was already lapsed when the journey was published: not enrolled by default.
    assert!(s.messages("old").is_empty());
    // Publishing again with enroll_existing takes contacts who already match.
    s.admin_put("/v1/journeys/win-back", win_back).ok();
    s.admin_post(
        "/v1/journeys/win-back/publish",
        json!({"enroll_existing": true}),
    )
    .ok();
    s.settle();
    assert_eq!(templates_of(&s.messages("old")), ["miss-you"]);
    s.admin_post(
        "/v1/journeys/win-back/publish",
        json!({"enroll_existing": "yes"}),
    )
    .expect_error(400, "invalid_option");
}

#[test]
fn a_weekly_schedule_enrolls_a_segments_members() {
    let s = Server::simulated();
    for (user, plan) in [("pia", "pro"), ("fay", "free")] {
        s.identify(
            user,
            json!({"email": format!("{user}@example.com"), "plan": plan}),
        )
        .ok();
    }
    s.settle();
    s.admin_post(
        "/v1/segments",
        json!({"id": "pros", "text": "plan = \"pro\""}),
    )
    .expect(201);
    s.apply_journey(simple(
        "digest",
        json!({"schedule": {"cron": "0 9 * * 1", "timezone": "UTC", "segment": "pros"}}),
        one_email("weekly-digest", "Your week"),
    ));
    s.advance(7 * DAY);
    let m = s.messages("pia");
    assert_eq!(templates_of(&m), ["weekly-digest"]);
    let at = created_at(&m[0]).to_zoned(jiff::tz::TimeZone::UTC);
    assert_eq!(
        (at.weekday(), at.hour(), at.minute()),
        (jiff::civil::Weekday::Monday, 9, 0)
    );
    assert!(s.messages("fay").is_empty());
    s.advance(7 * DAY);
    assert_eq!(s.messages("pia").len(), 2);
    let bad = simple(
        "bad-cron",
        json!({"schedule": {"cron": "every monday"}}),
        one_email("x", "x"),
    );
    let saved = s.admin_put("/v1/journeys/bad-cron", bad).ok();
    assert_eq!(saved["errors"][0]["code"], "invalid_cron", "{saved:#}");
}

#[test]
fn publishing_with_enroll_existing_enrolls_current_segment_members() {
    let s = Server::simulated();
    s.identify("vic", json!({"email": "vic@example.com", "vip": true}))
        .ok();
    s.settle();
    s.admin_post("/v1/segments", json!({"id": "vips", "text": "vip = true"}))
        .expect(201);
    let journey = simple(
        "vip-perks",
        json!({"segment": {"id": "vips"}}),
        one_email("perks", "Perks"),
    );
    s.apply_journey(journey.clone());
    s.settle();
    assert!(
        s.messages("vic").is_empty(),
        "entered before the journey existed"
    );
    s.admin_put("/v1/journeys/vip-perks", journey).ok();
    s.admin_post(
        "/v1/journeys/vip-perks/publish",
        json!({"enroll_existing": true}),
    )
    .ok();
    s.settle();
    assert_eq!(templates_of(&s.messages("vic")), ["perks"]);
}

#[test]
fn wait_until_date_sends_days_before_the_contacts_date() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "trial", "name": "Trial ending",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Trial Started"},
            {"id": "before-end", "type": "wait_until_date", "trait": "trial_ends_on", "offset": "-2d", "time": "08:30"},
            {"id": "remind", "type": "send_email", "template": "trial-ending"},
            {"id": "no-date", "type": "send_email", "template": "trial-no-date"},
        ],
        "edges": [
            {"from": "start", "to": "before-end"},
            {"from": "before-end", "to": "remind"},
            {"from": "before-end", "to": "no-date", "output": "missed"},
        ],
        "templates": [one_email("trial-ending", "Two days left"), one_email("trial-no-date", "Hi")],
    }));
    let (year, md) = upcoming(&s, 14);
    s.identify(
        "tia",
        json!({"email": "tia@example.com", "trial_ends_on": format!("{year}-{md}")}),
    )
    .ok();
    s.identify("ned", json!({"email": "ned@example.com"})).ok();
    s.track("tia", "Trial Started", json!({})).ok();
    s.track("ned", "Trial Started", json!({})).ok();
    s.settle();
    assert_eq!(templates_of(&s.messages("ned")), ["trial-no-date"]);
    assert!(s.messages("tia").is_empty());
    s.advance(14 * DAY);
    let m = s.messages("tia");
    assert_eq!(templates_of(&m), ["trial-ending"]);
    let at = created_at(&m[0]).to_zoned(jiff::tz::TimeZone::UTC);
    assert_eq!(
        (at.date().to_string(), at.hour(), at.minute()),
        (
            (jiff::civil::Date::new(year, md[..2].parse().unwrap(), md[3..].parse().unwrap())
                .unwrap()
                - 2.days())
            .to_string(),
            8,
            30
        )
    );
}
