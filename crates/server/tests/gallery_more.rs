//! More of the template gallery (`examples/journeys/`, documented in `docs/gallery.md`), end to
//! end on the real server with a simulated clock: the birthday coupon (a yearly date trigger),
//! the win-back after 60 days without an order (an inactivity trigger and a goal window), the
//! best-customers loyalty rewards (a segment trigger) and the store opening near Milan (a branch
//! on cities and distances). Validation, headers, docs and applying every example together are
//! checked by `gallery.rs`.

mod common;

use common::*;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

// ---- helpers ----

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
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

fn lists_of(s: &Server, user: &str) -> Vec<String> {
    s.contact_by_user(user)["lists"]
        .as_array()
        .expect("lists")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn traits_of(s: &Server, user: &str) -> Value {
    s.contact_by_user(user)["traits"].clone()
}

/// The UTC date `days_ahead` days from the server's clock, or the day after if that is a
/// 29 February (whose anniversaries fall on 28 February in most years).
fn date_ahead(s: &Server, days_ahead: i64) -> Date {
    let d = (now(s) + days(days_ahead)).to_zoned(TimeZone::UTC).date();
    if (d.month(), d.day()) == (2, 29) {
        d.tomorrow().unwrap()
    } else {
        d
    }
}

/// The anniversary of `date` in `year` (29 February falls on 28 February in common years).
fn same_day_in(year: i16, date: Date) -> Date {
    Date::new(year, date.month(), date.day())
        .or_else(|_| Date::new(year, date.month(), date.day() - 1))
        .unwrap()
}

/// `date` at `hh:00` local time in `zone`.
fn local(date: Date, hour: i8, zone: &str) -> Timestamp {
    date.at(hour, 0, 0, 0)
        .to_zoned(TimeZone::get(zone).unwrap())
        .unwrap()
        .timestamp()
}

fn order(s: &Server, user: &str, properties: Value) {
    s.track(user, "Order Completed", properties).ok();
    s.settle();
}

// ---- birthday-coupon ----

#[test]
fn birthday_coupon_at_nine_local_time_with_a_reminder_only_if_unused() {
    let s = Server::simulated();
    s.apply_example("birthday-coupon");

    // Everyone's birthday is in 3 days; Rita lives in Rome, the others have no time zone (UTC).
    let day = date_ahead(&s, 3);
    let birthday = format!("1992-{:02}-{:02}", day.month(), day.day());
    s.identify(
        "rita",
        json!({"email": "rita@example.com", "first_name": "Rita", "birthday": birthday,
               "timezone": "Europe/Rome"}),
    )
    .ok();
    for user in ["bob", "carl", "dana"] {
        s.identify(
            user,
            json!({"email": format!("{user}@example.com"), "first_name": user, "birthday": birthday}),
        )
        .ok();
    }
    s.identify("nodate", json!({"email": "nodate@example.com"}))
        .ok();
    s.settle();

    // 09:00 in Rome (08:00 UTC in winter), not a second earlier; 09:00 UTC for the others.
    let nine_rome = local(day, 9, "Europe/Rome");
    let nine_utc = local(day, 9, "UTC");
    advance_to(&s, nine_rome - SignedDuration::from_secs(1));
    assert_templates(&s, "rita", &[]);
    s.advance(1);
    let m = assert_templates(&s, "rita", &["birthday-coupon-email"]);
    assert_eq!(created_at(&m[0]), nine_rome);
    assert_eq!(m[0]["recipient"], "rita@example.com");
    assert!(
        m[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Happy birthday, Rita!"),
        "{}",
        m[0]["subject"]
    );
    assert!(m[0]["html"].as_str().unwrap().contains("HAPPYBDAY"));
    assert_templates(&s, "bob", &[]);
    advance_to(&s, nine_utc);
    for user in ["bob", "carl", "dana"] {
        let m = assert_templates(&s, user, &["birthday-coupon-email"]);
        assert_eq!(created_at(&m[0]), nine_utc);
    }

    // Rita uses her coupon two days later: a thank-you at once, and no reminder.
    s.advance(2 * DAY);
    let used_at = now(&s);
    order(&s, "rita", json!({"total": 80, "coupon": "HAPPYBDAY"}));
    let m = assert_templates(
        &s,
        "rita",
        &["birthday-coupon-email", "birthday-coupon-thanks"],
    );
    assert_eq!(created_at(&m[1]), used_at);
    // Carl orders without the coupon: that does not count as using it.
    order(&s, "carl", json!({"total": 30, "coupon": "SPRING10"}));
    order(&s, "carl", json!({"total": 30}));
    assert_templates(&s, "carl", &["birthday-coupon-email"]);

    // The reminder 5 days after the birthday email (2 days before the coupon expires), only for
    // those who have not used it.
    advance_to(&s, nine_utc + days(5) - SignedDuration::from_secs(60));
    assert_templates(&s, "bob", &["birthday-coupon-email"]);
    s.advance(MINUTE);
    for user in ["bob", "carl", "dana"] {
        let m = assert_templates(
            &s,
            user,
            &["birthday-coupon-email", "birthday-coupon-reminder"],
        );
        assert_eq!(created_at(&m[1]), nine_utc + days(5));
        assert_eq!(m[1]["subject"], "Your birthday gift expires in 2 days");
    }
    assert_templates(
        &s,
        "rita",
        &["birthday-coupon-email", "birthday-coupon-thanks"],
    );

    // Carl uses it on the last day: thank-you. Dana uses it after it expired: nothing.
    s.advance(DAY);
    order(&s, "carl", json!({"total": 55, "coupon": "HAPPYBDAY"}));
    assert_templates(
        &s,
        "carl",
        &[
            "birthday-coupon-email",
            "birthday-coupon-reminder",
            "birthday-coupon-thanks",
        ],
    );
    s.advance(DAY + HOUR);
    order(&s, "dana", json!({"total": 55, "coupon": "HAPPYBDAY"}));
    assert_templates(
        &s,
        "dana",
        &["birthday-coupon-email", "birthday-coupon-reminder"],
    );
    assert_templates(
        &s,
        "bob",
        &["birthday-coupon-email", "birthday-coupon-reminder"],
    );
    assert_templates(&s, "nodate", &[]);

    let st = s.stats("birthday-coupon");
    assert_eq!(st["entered"], 4, "{st:#}");
    assert_eq!(st["active"], 0, "{st:#}");
    assert_eq!(s.node_stats("birthday-coupon", "thank-you")["sent"], 2);
    assert_eq!(
        s.node_stats("birthday-coupon", "coupon-reminder")["sent"],
        3
    );
    assert_eq!(
        s.node_stats("birthday-coupon", "coupon-expired")["exited"],
        2
    );

    // And again next year, at 09:00 in Rome.
    let next = same_day_in(day.year() + 1, day);
    advance_to(&s, local(next, 9, "Europe/Rome"));
    let m = assert_templates(
        &s,
        "rita",
        &[
            "birthday-coupon-email",
            "birthday-coupon-thanks",
            "birthday-coupon-email",
        ],
    );
    assert_eq!(created_at(&m[2]), local(next, 9, "Europe/Rome"));
}

// ---- win-back ----

#[test]
fn win_back_reaches_the_lapsed_exactly_60_days_after_their_last_order() {
    let s = Server::simulated();
    // Lea last ordered 70 days before the journey is published.
    s.identify(
        "lea",
        json!({"email": "lea@example.com", "first_name": "Lea"}),
    )
    .ok();
    order(&s, "lea", json!({"total": 40}));
    s.advance(70 * DAY);
    s.apply_example("win-back");
    s.settle();
    assert_templates(&s, "lea", &[]);
    // Publishing again with enroll_existing takes the already lapsed.
    let doc = example_json("win-back");
    s.admin_put("/v1/journeys/win-back", doc).ok();
    let published = now(&s);
    s.admin_post(
        "/v1/journeys/win-back/publish",
        json!({"enroll_existing": true}),
    )
    .ok();
    s.settle();
    let m = assert_templates(&s, "lea", &["win-back-offer"]);
    assert_eq!(created_at(&m[0]), published);
    assert_eq!(m[0]["subject"], "Lea, here's 20% to welcome you back");
    assert!(m[0]["html"].as_str().unwrap().contains("COMEBACK20"));

    // Kim keeps ordering every 30 days, Sam and Cora order twice and stop, Nina never orders.
    let start = now(&s);
    for user in ["kim", "sam", "cora", "nina"] {
        s.identify(user, json!({"email": format!("{user}@example.com")}))
            .ok();
    }
    order(&s, "kim", json!({"total": 25}));
    order(&s, "sam", json!({"total": 25}));
    order(&s, "cora", json!({"total": 25}));
    s.advance(10 * DAY);
    let last_order = now(&s);
    order(&s, "sam", json!({"total": 60}));
    order(&s, "cora", json!({"total": 60}));

    // Lea gets the last nudge 14 days after the offer.
    advance_to(&s, published + days(14));
    let m = assert_templates(&s, "lea", &["win-back-offer", "win-back-last-nudge"]);
    assert_eq!(created_at(&m[1]), published + days(14));
    assert_eq!(m[1]["subject"], "One week left to use COMEBACK20");

    // Sam and Cora: exactly 60 days after their last order, not a minute earlier.
    advance_to(&s, start + days(30));
    order(&s, "kim", json!({"total": 25}));
    advance_to(&s, start + days(60));
    order(&s, "kim", json!({"total": 25}));
    advance_to(&s, last_order + days(60) - SignedDuration::from_secs(60));
    assert_templates(&s, "sam", &[]);
    s.advance(MINUTE);
    for user in ["sam", "cora"] {
        let m = assert_templates(&s, user, &["win-back-offer"]);
        assert_eq!(created_at(&m[0]), last_order + days(60));
    }
    // Cora comes back 3 days later: converted, no nudge. Sam does not: nudge after 14 days.
    s.advance(3 * DAY);
    order(&s, "cora", json!({"total": 70, "coupon": "COMEBACK20"}));
    advance_to(&s, start + days(90));
    order(&s, "kim", json!({"total": 25}));
    s.advance(30 * DAY);
    let m = assert_templates(&s, "sam", &["win-back-offer", "win-back-last-nudge"]);
    assert_eq!(created_at(&m[1]), last_order + days(74));
    assert_templates(&s, "cora", &["win-back-offer"]);
    // Whoever keeps ordering never gets it; whoever never ordered is not "lapsed".
    assert_templates(&s, "kim", &[]);
    assert_templates(&s, "nina", &[]);

    let st = s.stats("win-back");
    assert_eq!(st["entered"], 3, "{st:#}");
    assert_eq!(st["converted"], 1, "{st:#}");
    assert_eq!(st["active"], 0, "{st:#}");
    assert_eq!(s.node_stats("win-back", "win-back-offer")["converted"], 1);
    assert_eq!(s.node_stats("win-back", "last-nudge")["sent"], 2);
    assert_eq!(s.node_stats("win-back", "last-nudge")["converted"], 0);

    // Cora's order re-armed the trigger: 60 quiet days later she is won back again.
    let cora_order = last_order + days(63);
    advance_to(&s, cora_order + days(60));
    let m = assert_templates(&s, "cora", &["win-back-offer", "win-back-offer"]);
    assert_eq!(created_at(&m[1]), cora_order + days(60));
}

#[test]
fn win_back_an_order_after_the_offer_window_does_not_convert() {
    let s = Server::simulated();
    s.apply_example("win-back");
    s.identify("tom", json!({"email": "tom@example.com"})).ok();
    order(&s, "tom", json!({"total": 10}));
    s.advance(60 * DAY);
    assert_templates(&s, "tom", &["win-back-offer"]);
    s.advance(22 * DAY);
    assert_templates(&s, "tom", &["win-back-offer", "win-back-last-nudge"]);
    order(&s, "tom", json!({"total": 10}));
    let st = s.stats("win-back");
    assert_eq!(st["converted"], 0, "{st:#}");
    assert_eq!(st["completed"], 1, "{st:#}");
}

// ---- best-customers ----

const BEST_CUSTOMERS: &str = r#"did "Order Completed" at least 5 times in last 365d or sum(total) of "Order Completed" in last 365d >= 1000"#;

#[test]
fn best_customers_rewards_frequent_and_big_spenders_once() {
    let s = Server::simulated();
    // The segment, exactly as docs/gallery.md and the file's header say.
    let created = s
        .admin_post(
            "/v1/segments",
            json!({"id": "best-customers", "name": "Best customers", "text": BEST_CUSTOMERS}),
        )
        .expect(201);
    assert_eq!(created["text"], BEST_CUSTOMERS);
    s.apply_example("best-customers");

    for (user, name) in [("fran", "Fran"), ("bea", "Bea"), ("cas", "Cas")] {
        s.identify(
            user,
            json!({"email": format!("{user}@example.com"), "first_name": name}),
        )
        .ok();
    }
    s.settle();

    // Fran orders often (small baskets): the fifth order in a year makes her a best customer.
    for _ in 0..4 {
        order(&s, "fran", json!({"total": 30}));
        s.advance(20 * DAY);
    }
    assert_templates(&s, "fran", &[]);
    let fifth = now(&s);
    order(&s, "fran", json!({"total": 30}));
    let m = assert_templates(&s, "fran", &["vip-welcome"]);
    assert_eq!(created_at(&m[0]), fifth);
    assert_eq!(m[0]["subject"], "Fran, welcome to Acme Gold ✨");
    assert!(m[0]["html"].as_str().unwrap().contains("GOLD25"));
    assert!(lists_of(&s, "fran").contains(&"vip".to_string()));
    assert_eq!(traits_of(&s, "fran")["tier"], "gold");

    // Bea buys rarely but big: 600 + 450 crosses 1,000.
    order(&s, "bea", json!({"total": 600}));
    assert_templates(&s, "bea", &[]);
    s.advance(30 * DAY);
    order(&s, "bea", json!({"total": 450}));
    assert_templates(&s, "bea", &["vip-welcome"]);
    assert!(lists_of(&s, "bea").contains(&"vip".to_string()));
    assert_eq!(traits_of(&s, "bea")["tier"], "gold");

    // Cas is a casual buyer: two small orders.
    order(&s, "cas", json!({"total": 45}));
    s.advance(10 * DAY);
    order(&s, "cas", json!({"total": 50}));
    assert_templates(&s, "cas", &[]);
    assert!(!lists_of(&s, "cas").contains(&"vip".to_string()));
    assert!(traits_of(&s, "cas").get("tier").is_none());

    let members = s
        .admin_get("/v1/segments/best-customers/members?limit=100")
        .ok();
    let mut ids: Vec<&str> = members["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["bea", "fran"]);

    // A year later Bea's orders leave the window (she leaves the segment); a big order brings
    // her back, but the VIP welcome is once ever.
    s.advance(400 * DAY);
    let members = s
        .admin_get("/v1/segments/best-customers/members?limit=100")
        .ok();
    assert_eq!(members["contacts"], json!([]), "{members:#}");
    order(&s, "bea", json!({"total": 1200}));
    assert_templates(&s, "bea", &["vip-welcome"]);
    let st = s.stats("best-customers");
    assert_eq!(st["entered"], 2, "{st:#}");
    assert_eq!(
        s.node_stats("best-customers", "set-gold-tier")["completed"],
        2
    );
}

// ---- geo-store-opening ----

#[test]
fn geo_store_opening_invites_contacts_in_the_cities_or_within_25_km() {
    let s = Server::simulated();
    s.apply_example("geo-store-opening");
    // (user, traits, invited): Milan is 45.4642, 9.19; one degree of latitude is about 111.2 km.
    let contacts = [
        ("milan-city", json!({"city": "Milan"}), true),
        ("monza-city", json!({"city": "Monza"}), true),
        // Sesto San Giovanni, about 9 km away, by its coordinates only.
        (
            "sesto",
            json!({"city": "Sesto San Giovanni", "home": {"lat": 45.5387, "lon": 9.2334}}),
            true,
        ),
        // Just inside and just outside 25 km due north.
        (
            "north-24km",
            json!({"home": {"lat": 45.6800, "lon": 9.19}}),
            true,
        ),
        (
            "north-26km",
            json!({"home": {"lat": 45.6980, "lon": 9.19}}),
            false,
        ),
        // The other accepted shapes of a location.
        ("string-home", json!({"home": "45.47,9.20"}), true),
        (
            "latitude-home",
            json!({"home": {"latitude": 45.45, "longitude": 9.15}}),
            true,
        ),
        // Pavia (about 31 km) and Bergamo (about 45 km), Rome by city, and nothing known.
        (
            "pavia",
            json!({"city": "Pavia", "home": {"lat": 45.1847, "lon": 9.1582}}),
            false,
        ),
        (
            "bergamo",
            json!({"city": "Bergamo", "home": {"lat": 45.6983, "lon": 9.6773}}),
            false,
        ),
        ("rome", json!({"city": "Rome"}), false),
        ("unknown", json!({}), false),
        // The city wins even when home is far away (e.g. a holiday address).
        (
            "monza-far-home",
            json!({"city": "Monza", "home": {"lat": 41.9, "lon": 12.5}}),
            true,
        ),
    ];
    for (user, traits, _) in &contacts {
        let mut t = traits.clone();
        t["email"] = json!(format!("{user}@example.com"));
        t["first_name"] = json!(user.to_uppercase());
        s.identify(user, t).ok();
    }
    s.settle();
    let payload = json!({"store": "Acme Milano Centrale", "address": "Via Dante 7, Milan",
                         "opens_on": "Saturday 5 December"});
    for (user, _, _) in &contacts {
        let r = s.admin_post(
            "/v1/journeys/geo-store-opening/enroll",
            json!({"user_id": user, "payload": payload}),
        );
        assert_eq!(r.status, 202, "{}", r.text);
    }
    s.settle();
    for (user, _, invited) in &contacts {
        if *invited {
            let m = assert_templates(&s, user, &["store-opening-invitation"]);
            assert_eq!(
                m[0]["subject"],
                "You're invited: Acme Milano Centrale opens Saturday 5 December"
            );
            let html = m[0]["html"].as_str().unwrap();
            assert!(html.contains("at Via Dante 7, Milan"), "{html}");
            assert!(
                html.contains(&format!("Ciao {}", user.to_uppercase())),
                "{html}"
            );
        } else {
            assert_templates(&s, user, &[]);
        }
    }
    let invited = contacts.iter().filter(|c| c.2).count() as i64;
    assert_eq!(
        s.node_stats("geo-store-opening", "opening-invitation")["sent"],
        invited
    );
    assert_eq!(
        s.node_stats("geo-store-opening", "too-far")["exited"],
        contacts.len() as i64 - invited
    );

    // Each contact is invited once, even if the campaign is run again.
    s.advance(DAY);
    s.admin_post(
        "/v1/journeys/geo-store-opening/enroll",
        json!({"user_id": "milan-city", "payload": payload}),
    )
    .expect(202);
    s.settle();
    assert_templates(&s, "milan-city", &["store-opening-invitation"]);
}

// ---- signup-anniversary ----

/// A fixed-offset zone (`Etc/GMT±N`) where it is now before 09:00, and its local date.
fn zone_where_it_is_early(s: &Server) -> (String, Date) {
    for offset in -12i32..=14 {
        let name = match offset {
            0 => "UTC".to_string(),
            o if o < 0 => format!("Etc/GMT+{}", -o),
            o => format!("Etc/GMT-{o}"),
        };
        let local = now(s).to_zoned(TimeZone::get(&name).unwrap());
        if local.hour() < 9 {
            return (name, local.date());
        }
    }
    unreachable!("some zone is always before 09:00")
}

#[test]
fn signup_anniversary_thanks_yearly_and_reminds_only_if_the_code_is_unused() {
    let s = Server::simulated();
    s.apply_example("signup-anniversary");

    // Ana, Ugo and Otto signed up a year ago in 3 days; Nell signs up today, early in the
    // morning of her time zone, so 10:00 local is still to come today.
    let day = date_ahead(&s, 3);
    let signed_up = same_day_in(day.year() - 1, day);
    for user in ["ana", "ugo", "otto"] {
        s.identify(
            user,
            json!({"email": format!("{user}@example.com"), "first_name": user,
                   "signed_up_on": signed_up.to_string()}),
        )
        .ok();
    }
    let (zone, today) = zone_where_it_is_early(&s);
    s.identify(
        "nell",
        json!({"email": "nell@example.com", "signed_up_on": today.to_string(), "timezone": zone}),
    )
    .ok();
    s.settle();

    // The sign-up day itself is no anniversary.
    advance_to(&s, local(today, 10, &zone) + SignedDuration::from_secs(60));
    assert_templates(&s, "nell", &[]);
    // A yearly date trigger starts with the first anniversary: nobody entered on the day.
    assert_eq!(
        s.node_stats("signup-anniversary", "anniversary")["entered"],
        0
    );

    let ten = local(day, 10, "UTC");
    advance_to(&s, ten - SignedDuration::from_secs(1));
    assert_templates(&s, "ana", &[]);
    s.advance(1);
    for user in ["ana", "ugo", "otto"] {
        let m = assert_templates(&s, user, &["anniversary-coupon-email"]);
        assert_eq!(created_at(&m[0]), ten);
        assert_eq!(
            m[0]["subject"],
            format!("Happy anniversary, {user}! Thanks for being with us")
        );
        let html = m[0]["html"].as_str().unwrap();
        assert!(
            html.contains(&format!("You joined Acme on {signed_up}")),
            "{html}"
        );
        assert!(html.contains("ANNIV10"), "{html}");
    }

    // Ugo uses the code two days later (the goal: no reminder); Otto orders without it.
    s.advance(2 * DAY);
    order(&s, "ugo", json!({"total": 90, "coupon": "ANNIV10"}));
    order(&s, "otto", json!({"total": 20}));
    advance_to(&s, ten + days(5) - SignedDuration::from_secs(60));
    assert_templates(&s, "ana", &["anniversary-coupon-email"]);
    s.advance(MINUTE);
    for user in ["ana", "otto"] {
        let m = assert_templates(
            &s,
            user,
            &["anniversary-coupon-email", "anniversary-coupon-reminder"],
        );
        assert_eq!(created_at(&m[1]), ten + days(5));
    }
    assert_templates(&s, "ugo", &["anniversary-coupon-email"]);
    // Ana uses it after it expired: no conversion.
    s.advance(3 * DAY);
    order(&s, "ana", json!({"total": 35, "coupon": "ANNIV10"}));
    let st = s.stats("signup-anniversary");
    assert_eq!(st["converted"], 1, "{st:#}");
    assert_eq!(st["active"], 0, "{st:#}");
    assert_eq!(
        s.node_stats("signup-anniversary", "anniversary-email")["sent"],
        3
    );

    // A year later, Nell's first anniversary at 10:00 in her zone.
    let next = same_day_in(today.year() + 1, today);
    advance_to(&s, local(next, 10, &zone));
    let m = assert_templates(&s, "nell", &["anniversary-coupon-email"]);
    assert_eq!(created_at(&m[0]), local(next, 10, &zone));
}
