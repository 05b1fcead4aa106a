//! The `wait_until` and `random_split` nodes run by the real server on a simulated clock: a
//! message waits for 09:00 in each contact's own time zone, and a split sends two groups down
//! two paths, each contact the way the core's stable hash says.

mod common;

use common::*;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The next 09:00 strictly after `t` in `zone`.
fn next_nine(t: Timestamp, zone: &str) -> Timestamp {
    let tz = TimeZone::get(zone).unwrap();
    let z = t.to_zoned(tz.clone());
    let today = z.date().at(9, 0, 0, 0).to_zoned(tz.clone()).unwrap();
    if today.timestamp() > t {
        today.timestamp()
    } else {
        z.date()
            .tomorrow()
            .unwrap()
            .at(9, 0, 0, 0)
            .to_zoned(tz)
            .unwrap()
            .timestamp()
    }
}

fn email_template(id: &str) -> Value {
    json!({"id": id, "channel": "email", "subject": id, "text": format!("Hello from {id}")})
}

#[test]
fn wait_until_sends_at_nine_in_each_contacts_time_zone() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "morning",
        "name": "Morning hello",
        "timezone": "Asia/Tokyo",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "nine", "type": "wait_until", "time": "09:00"},
            {"id": "hello", "type": "send_email", "template": "hello"},
        ],
        "edges": [
            {"from": "start", "to": "nine"},
            {"from": "nine", "to": "hello"},
        ],
        "templates": [email_template("hello")],
    }));
    let users = [
        ("rome", Some("Europe/Rome"), "Europe/Rome"),
        ("ny", Some("America/New_York"), "America/New_York"),
        // No time zone of its own: the journey's.
        ("tokyo", None, "Asia/Tokyo"),
    ];
    for (user, tz, _) in users {
        let mut traits = json!({"email": format!("{user}@example.com")});
        if let Some(tz) = tz {
            traits["timezone"] = json!(tz);
        }
        s.identify(user, traits).ok();
        s.track(user, "Signed Up", json!({})).ok();
    }
    s.settle();
    let start = now(&s);
    for (user, _, _) in users {
        assert!(s.messages(user).is_empty(), "{user} got a message at once");
    }

    let mut due: Vec<(Timestamp, &str, &str)> = users
        .iter()
        .map(|(u, _, zone)| (next_nine(start, zone), *u, *zone))
        .collect();
    due.sort();
    for (at, user, zone) in due {
        // One second before: nothing yet.
        let before = at.as_second() - now(&s).as_second() - 1;
        if before > 0 {
            s.advance(before);
        }
        assert!(
            s.messages(user).is_empty(),
            "{user} got a message before 09:00"
        );
        s.advance(1);
        let m = s.messages(user);
        assert_eq!(nodes_of(&m), ["hello"], "{user}: {m:#?}");
        let sent: Timestamp = m[0]["created_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(sent, at, "{user}");
        let local = sent.to_zoned(TimeZone::get(zone).unwrap());
        assert_eq!((local.hour(), local.minute()), (9, 0), "{user} in {zone}");
    }
}

#[test]
fn random_split_sends_two_groups_down_two_paths() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "ab",
        "name": "A/B",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Joined"},
            {"id": "split", "type": "random_split", "branches": [
                {"name": "a", "percent": 50}, {"name": "b", "percent": 50},
            ]},
            {"id": "send_a", "type": "send_email", "template": "offer-a"},
            {"id": "send_b", "type": "send_email", "template": "offer-b"},
        ],
        "edges": [
            {"from": "start", "to": "split"},
            {"from": "split", "to": "send_a", "output": "a"},
            {"from": "split", "to": "send_b", "output": "b"},
        ],
        "templates": [email_template("offer-a"), email_template("offer-b")],
    }));
    let users: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    for u in &users {
        s.identify(u, json!({"email": format!("{u}@example.com")}))
            .ok();
        s.track(u, "Joined", json!({})).ok();
    }
    s.settle();
    let branches = vec![
        waymark_core::journey::SplitBranch {
            name: "a".into(),
            percent: 50,
        },
        waymark_core::journey::SplitBranch {
            name: "b".into(),
            percent: 50,
        },
    ];
    let (mut a, mut b) = (0, 0);
    for u in &users {
        let m = s.messages(u);
        let id = s.contact_by_user(u)["id"].as_i64().expect("contact id");
        let expected = waymark_core::timing::choose_branch("ab", "split", id, &branches);
        let node = format!("send_{expected}");
        assert_eq!(nodes_of(&m), [node.as_str()], "{u}: {m:#?}");
        if expected == "a" {
            a += 1;
        } else {
            b += 1;
        }
    }
    assert!(a >= 8 && b >= 8, "groups of {a} and {b}");
}

#[test]
fn the_schema_has_the_new_node_kinds_and_settings() {
    let s = Server::simulated();
    let schema = s.get("/v1/schema/journey.json").ok().to_string();
    for word in [
        "\"random_split\"",
        "\"wait_until\"",
        "\"branches\"",
        "\"weekdays\"",
        "\"increment\"",
        "\"timezone\"",
    ] {
        assert!(schema.contains(word), "{word} missing from the schema");
    }
}
