//! Sending hours, frequency caps, per-journey send rates, conversion windows, and the
//! triggers and actions that work through recorded events (list, API enrollment,
//! `emit_event`, `enroll_in_journey`, `unsubscribe`), run by the real server on a simulated
//! clock.

mod common;

use common::*;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The next time after the server's clock at which the local time in `zone` is `hh:mm`.
fn next_local(s: &Server, zone: &str, hh: i8, mm: i8) -> Timestamp {
    let tz = TimeZone::get(zone).unwrap();
    let current = now(s);
    let mut date = current.to_zoned(tz.clone()).date();
    loop {
        let at = date
            .at(hh, mm, 0, 0)
            .to_zoned(tz.clone())
            .unwrap()
            .timestamp();
        if at > current {
            return at;
        }
        date = date.tomorrow().unwrap();
    }
}

fn email(id: &str) -> Value {
    json!({"id": id, "channel": "email", "subject": id, "text": format!("{id} for {{{{ contact.email }}}}")})
}

fn sign_up(s: &Server, user: &str, extra: Value) {
    let mut traits = json!({"email": format!("{user}@example.com")});
    traits
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    s.identify(user, traits).ok();
    s.track(user, "Signed Up", json!({})).ok();
}

fn quiet_journey() -> Value {
    json!({
        "id": "quiet",
        "name": "Quiet hours",
        "quiet_hours": {"start": "21:00", "end": "08:00"},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "hello", "type": "send_email", "template": "hello"},
        ],
        "edges": [{"from": "start", "to": "hello"}],
        "templates": [email("hello")],
    })
}

#[test]
fn quiet_hours_defer_a_message_to_the_next_morning() {
    let s = Server::simulated();
    s.apply_journey(quiet_journey());
    advance_to(&s, next_local(&s, "UTC", 22, 30));
    sign_up(&s, "owl", json!({}));
    s.settle();
    assert!(s.messages("owl").is_empty(), "sent during quiet hours");
    let morning = next_local(&s, "UTC", 8, 0);
    advance_to(&s, morning - jiff::SignedDuration::from_secs(1));
    assert!(s.messages("owl").is_empty(), "sent before 08:00");
    s.advance(1);
    let m = s.messages("owl");
    assert_eq!(nodes_of(&m), ["hello"], "{m:#?}");
    assert_eq!(created_at(&m[0]), morning);
    assert_eq!(m[0]["status"], "sent");
    // The contact's own time zone counts: 22:30 in Tokyo is 13:30 UTC.
    advance_to(&s, next_local(&s, "Asia/Tokyo", 22, 30));
    sign_up(&s, "tokyo", json!({"timezone": "Asia/Tokyo"}));
    s.settle();
    assert!(s.messages("tokyo").is_empty());
    advance_to(&s, next_local(&s, "Asia/Tokyo", 8, 0));
    let m = s.messages("tokyo");
    let local = created_at(&m[0]).to_zoned(TimeZone::get("Asia/Tokyo").unwrap());
    assert_eq!((local.hour(), local.minute()), (8, 0));
}

#[test]
fn quiet_hours_across_the_spring_forward_night() {
    // New York springs forward on 2027-03-14: 22:30 EST on the 13th waits until 07:00 EDT,
    // which is 11:00 UTC (not 12:00).
    let s = Server::simulated();
    let mut doc = quiet_journey();
    doc["quiet_hours"] = json!({"start": "22:00", "end": "07:00"});
    s.apply_journey(doc);
    let evening: Timestamp = "2027-03-14T03:30:00Z".parse().unwrap();
    advance_to(&s, evening);
    sign_up(&s, "nyc", json!({"timezone": "America/New_York"}));
    s.settle();
    assert!(s.messages("nyc").is_empty());
    advance_to(&s, "2027-03-14T10:59:59Z".parse().unwrap());
    assert!(s.messages("nyc").is_empty(), "sent before 07:00 EDT");
    s.advance(1);
    let m = s.messages("nyc");
    assert_eq!(
        created_at(&m[0]),
        "2027-03-14T11:00:00Z".parse::<Timestamp>().unwrap()
    );
}

#[test]
fn installation_quiet_hours_and_blocked_dates_apply_to_every_journey() {
    let s = Server::start(ServerOptions {
        args: vec![
            "--quiet-hours".into(),
            "21:00-08:00".into(),
            "--blocked-dates".into(),
            "12-25".into(),
        ],
        ..Default::default()
    });
    let mut doc = quiet_journey();
    doc.as_object_mut().unwrap().remove("quiet_hours");
    s.apply_journey(doc);
    // Christmas Eve at 23:00: quiet until 08:00, but the 25th is blocked, and the 26th is
    // quiet until 08:00.
    let year = now(&s).to_zoned(TimeZone::UTC).year();
    let eve: Timestamp = format!("{year}-12-24T23:00:00Z").parse().unwrap();
    let eve = if eve > now(&s) {
        eve
    } else {
        format!("{}-12-24T23:00:00Z", year + 1).parse().unwrap()
    };
    advance_to(&s, eve);
    sign_up(&s, "elf", json!({}));
    s.settle();
    let boxing_day = eve + jiff::SignedDuration::from_hours(33);
    advance_to(&s, boxing_day - jiff::SignedDuration::from_secs(1));
    assert!(s.messages("elf").is_empty());
    s.advance(1);
    assert_eq!(created_at(&s.messages("elf")[0]), boxing_day);
    // A bad setting stops the server with a clear message.
    let out = std::process::Command::new(bin())
        .args(["serve", "--clock", "simulated", "--quiet-hours", "9pm-8am"])
        .arg("--data")
        .arg(s.data_dir().join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a time of day"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_frequency_cap_holds_back_marketing_email_across_journeys() {
    let s = Server::start(ServerOptions {
        args: vec!["--frequency-cap".into(), "email=2/7d".into()],
        ..Default::default()
    });
    let series = |id: &str, event: &str| {
        json!({
            "id": id, "name": id,
            "nodes": [
                {"id": "start", "type": "trigger", "event": event},
                {"id": "one", "type": "send_email", "template": format!("{id}-1")},
                {"id": "wait", "type": "delay", "duration": "1h"},
                {"id": "two", "type": "send_email", "template": format!("{id}-2")},
                {"id": "receipt", "type": "send_email", "template": "receipt"},
            ],
            "edges": [
                {"from": "start", "to": "one"}, {"from": "one", "to": "wait"},
                {"from": "wait", "to": "two"}, {"from": "two", "to": "receipt"},
            ],
            "templates": [email(&format!("{id}-1")), email(&format!("{id}-2")),
                {"id": "receipt", "channel": "email", "subject": "Receipt", "text": "Thanks",
                 "transactional": true}],
        })
    };
    s.apply_journey(series("news", "Signed Up"));
    s.apply_journey(series("promo", "Browsed"));
    sign_up(&s, "cap", json!({}));
    s.track("cap", "Browsed", json!({})).ok();
    s.settle();
    s.advance(HOUR);
    let m = s.messages("cap");
    let status = |template: &str| -> Vec<String> {
        m.iter()
            .filter(|x| x["template"] == template)
            .map(|x| x["status"].as_str().unwrap().to_string())
            .collect()
    };
    // Two marketing emails went (news-1, promo-1); the third and fourth were held back.
    assert_eq!(status("news-1"), ["sent"], "{m:#?}");
    assert_eq!(status("promo-1"), ["sent"], "{m:#?}");
    assert_eq!(status("news-2"), ["suppressed"], "{m:#?}");
    assert_eq!(status("promo-2"), ["suppressed"], "{m:#?}");
    let held = m.iter().find(|x| x["template"] == "news-2").unwrap();
    assert!(
        held["error"].as_str().unwrap().contains("frequency cap"),
        "{held:#}"
    );
    // Transactional messages are never capped.
    assert_eq!(status("receipt"), ["sent", "sent"], "{m:#?}");
    assert_eq!(s.node_stats("news", "two")["suppressed"], 1);
    // A week later the window has room again.
    s.advance(7 * DAY);
    s.track("cap", "Signed Up", json!({})).ok();
    s.settle();
    let again: Vec<_> = s
        .messages("cap")
        .into_iter()
        .filter(|x| x["template"] == "news-1")
        .map(|x| x["status"].clone())
        .collect();
    assert_eq!(again, [json!("sent"), json!("sent")]);
}

#[test]
fn a_journey_send_rate_spaces_its_messages() {
    let s = Server::simulated();
    let mut doc = quiet_journey();
    doc.as_object_mut().unwrap().remove("quiet_hours");
    doc["send_rate"] = json!("1/m");
    s.apply_journey(doc);
    for i in 0..3 {
        sign_up(&s, &format!("r{i}"), json!({}));
    }
    s.settle();
    let sent = || {
        s.messages_where(&[])
            .iter()
            .filter(|m| m["status"] == "sent")
            .count()
    };
    assert_eq!(sent(), 1);
    // The next token is due a minute later (the limiter rounds up to the next millisecond).
    s.advance(MINUTE - 1);
    assert_eq!(sent(), 1);
    s.advance(2);
    assert_eq!(sent(), 2);
    s.advance(MINUTE);
    assert_eq!(sent(), 3);
    for m in s.messages_where(&[]) {
        assert_eq!(m["attempts"], 1, "deferred, not retried: {m:#}");
    }
}

#[test]
fn list_and_api_triggers_start_journeys_with_their_payload() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "vip", "name": "VIP welcome",
        "nodes": [
            {"id": "start", "type": "trigger", "list": "vip"},
            {"id": "hello", "type": "send_email", "template": "vip-hello"},
        ],
        "edges": [{"from": "start", "to": "hello"}],
        "templates": [email("vip-hello")],
    }));
    s.apply_journey(json!({
        "id": "coupon", "name": "Coupon by API",
        "nodes": [
            {"id": "start", "type": "trigger", "api": true},
            {"id": "give", "type": "send_email", "template": "coupon-mail"},
        ],
        "edges": [{"from": "start", "to": "give"}],
        "templates": [{"id": "coupon-mail", "channel": "email", "subject": "For you",
                       "text": "Your code: {{ event.code }}"}],
    }));
    s.identify("ann", json!({"email": "ann@example.com"})).ok();
    s.settle();
    let ann = s.contact_by_user("ann")["id"].as_i64().unwrap();
    s.admin_post("/v1/lists/vip/members", json!({"contact_ids": [ann]}))
        .ok();
    s.settle();
    assert_eq!(nodes_of(&s.messages("ann")), ["hello"]);
    // Adding a member again is no new entry.
    s.admin_post("/v1/lists/vip/members", json!({"contact_ids": [ann]}))
        .ok();
    s.settle();
    assert_eq!(s.messages("ann").len(), 1);

    let first = s
        .admin_post(
            "/v1/journeys/coupon/enroll",
            json!({"user_id": "ann", "payload": {"code": "SPRING-10"}, "message_id": "req-1"}),
        )
        .expect(202);
    assert_eq!(first["duplicate"], false);
    let again = s
        .admin_post(
            "/v1/journeys/coupon/enroll",
            json!({"user_id": "ann", "payload": {"code": "SPRING-10"}, "message_id": "req-1"}),
        )
        .expect(202);
    assert_eq!(again["duplicate"], true);
    s.settle();
    let coupons: Vec<_> = s
        .messages("ann")
        .into_iter()
        .filter(|m| m["template"] == "coupon-mail")
        .collect();
    assert_eq!(coupons.len(), 1, "{coupons:#?}");
    assert_eq!(coupons[0]["text"], "Your code: SPRING-10");
    // A new user is created; bad requests say what is wrong.
    s.admin_post("/v1/journeys/coupon/enroll", json!({"user_id": "newbie"}))
        .expect(202);
    s.admin_post("/v1/journeys/vip/enroll", json!({"user_id": "ann"}))
        .expect_error(409, "not_enrollable");
    s.admin_post("/v1/journeys/coupon/enroll", json!({"payload": {}}))
        .expect_error(400, "invalid_body");
    s.admin_post(
        "/v1/journeys/coupon/enroll",
        json!({"user_id": "ann", "payload": [1]}),
    )
    .expect_error(400, "invalid_payload");
    s.admin_post("/v1/journeys/coupon/enroll", json!({"contact_id": 999_999}))
        .expect_error(404, "not_found");
    s.admin_post("/v1/journeys/nope/enroll", json!({"user_id": "ann"}))
        .expect_error(404, "not_found");
}

#[test]
fn emit_unsubscribe_and_enroll_nodes_chain_journeys() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "last-chance", "name": "Last chance",
        "nodes": [
            {"id": "start", "type": "trigger", "api": true},
            {"id": "mail", "type": "send_email", "template": "last-chance-mail"},
        ],
        "edges": [{"from": "start", "to": "mail"}],
        "templates": [{"id": "last-chance-mail", "channel": "email", "subject": "Bye?",
                       "text": "Reason: {{ event.reason }}", "transactional": true}],
    }));
    s.apply_journey(json!({
        "id": "dormant-alert", "name": "Dormant alert",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Became Dormant", "filter": {"tier": "gold"}},
            {"id": "tag", "type": "update_traits", "set": {"dormant": true}},
        ],
        "edges": [{"from": "start", "to": "tag"}],
    }));
    s.apply_journey(json!({
        "id": "sunset", "name": "Sunset",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Went Quiet"},
            {"id": "unsub", "type": "unsubscribe", "topic": "newsletter"},
            {"id": "emit", "type": "emit_event", "event": "Became Dormant", "properties": {"tier": "gold"}},
            {"id": "enroll", "type": "enroll_in_journey", "journey": "last-chance"},
            {"id": "score", "type": "score", "points": -20},
        ],
        "edges": [
            {"from": "start", "to": "unsub"}, {"from": "unsub", "to": "emit"},
            {"from": "emit", "to": "enroll"}, {"from": "enroll", "to": "score"},
        ],
    }));
    s.identify("zed", json!({"email": "zed@example.com", "lead_score": 50}))
        .ok();
    s.track(
        "zed",
        "Went Quiet",
        json!({"reason": "no opens in 90 days"}),
    )
    .ok();
    s.settle();
    let contact = s.contact_by_user("zed");
    let id = contact["id"].as_i64().unwrap();
    let detail = s.contact(id);
    let traits = &detail["traits"];
    assert_eq!(traits["dormant"], true, "{detail:#}");
    assert_eq!(traits["lead_score"], 30, "{detail:#}");
    let subs = s
        .admin_get(&format!("/v1/contacts/{id}/subscriptions"))
        .ok();
    let newsletter = subs["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["topic"] == "newsletter")
        .cloned()
        .unwrap_or_else(|| panic!("{subs:#}"));
    assert_eq!(newsletter["status"], "unsubscribed");
    let m = s.messages("zed");
    assert_eq!(templates_of(&m), ["last-chance-mail"]);
    assert_eq!(m[0]["text"], "Reason: no opens in 90 days");
    let names: Vec<String> = s
        .timeline(id)
        .iter()
        .filter(|e| e["type"] == "event")
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect();
    for expected in [
        "Unsubscribed",
        "Became Dormant",
        "Journey Enrollment Requested",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
}

#[test]
fn score_points_decay_on_end_moves_lists_and_branches_read_the_trigger() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "interest", "name": "Interest",
        "on_end": {"add_to_list": "nurtured", "remove_from_list": "new-leads"},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Content Requested"},
            {"id": "points", "type": "score", "points": 10, "expires_after": "30d"},
            {"id": "topic", "type": "branch", "condition": "trigger where interest = \"analytics\""},
            {"id": "analytics", "type": "send_email", "template": "analytics-tips"},
            {"id": "general", "type": "send_email", "template": "general-tips"},
        ],
        "edges": [
            {"from": "start", "to": "points"}, {"from": "points", "to": "topic"},
            {"from": "topic", "to": "analytics", "output": "yes"},
            {"from": "topic", "to": "general", "output": "no"},
        ],
        "templates": [email("analytics-tips"), email("general-tips")],
    }));
    s.identify("lea", json!({"email": "lea@example.com"})).ok();
    s.settle();
    let id = s.contact_by_user("lea")["id"].as_i64().unwrap();
    s.admin_post("/v1/lists/new-leads/members", json!({"contact_ids": [id]}))
        .ok();
    s.track("lea", "Content Requested", json!({"interest": "analytics"}))
        .ok();
    s.settle();
    s.advance(10 * DAY);
    s.track("lea", "Content Requested", json!({"interest": "cooking"}))
        .ok();
    s.settle();
    assert_eq!(
        templates_of(&s.messages("lea")),
        ["analytics-tips", "general-tips"]
    );
    let detail = s.contact(id);
    assert_eq!(detail["traits"]["lead_score"], 20, "{detail:#}");
    assert_eq!(detail["lists"], json!(["nurtured"]), "{detail:#}");
    // The first 10 points expire 30 days after they were given, the second 10 days later.
    s.advance(20 * DAY - 1);
    assert_eq!(s.contact(id)["traits"]["lead_score"], 20);
    s.advance(1);
    assert_eq!(s.contact(id)["traits"]["lead_score"], 10);
    s.advance(10 * DAY);
    assert_eq!(s.contact(id)["traits"]["lead_score"], 0);
}
