//! Journey reports (`GET /v1/journeys/{id}/report`): counts over time from the hourly
//! roll-ups, people's opens apart from machines', conversions credited after the enrollment
//! ended (within the conversion window) with their revenue, and CSV.

mod common;
use common::*;
use reqwest::Method;

const PUBLIC: &str = "http://mail.example.test";
const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15";

/// A reminder that ends at once after its email: any conversion comes after the end.
fn apply_reminder(s: &Server) {
    s.apply_journey(json!({
        "id": "cart", "name": "Cart reminder",
        "goal": {"event": "Order Completed", "revenue_property": "total", "currency": "EUR"},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Cart Abandoned"},
            {"id": "remind", "type": "send_email", "template": "cart-remind"}
        ],
        "edges": [{"from": "start", "to": "remind"}],
        "templates": [
            {"id": "cart-remind", "channel": "email", "subject": "Your cart",
             "html": "<html><body><p>Still there? <a href=\"https://shop.example.com/cart\">Your cart</a></p></body></html>"}
        ]
    }));
}

/// The server-relative tracking path of `kind` (`o` or `c`) in a message's HTML.
fn tracking_path(message: &Value, kind: char) -> String {
    let html = message["html"].as_str().unwrap();
    let prefix = format!("{PUBLIC}/t/{kind}/");
    let at = html
        .find(&prefix)
        .unwrap_or_else(|| panic!("no /t/{kind}/ in {html}"));
    let token: String = html[at + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    format!("/t/{kind}/{token}")
}

fn hit(s: &Server, path: &str, user_agent: &str) {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let status = client
        .get(s.url(path))
        .header("User-Agent", user_agent)
        .send()
        .unwrap()
        .status()
        .as_u16();
    assert!(status == 200 || status == 302, "{path}: {status}");
}

#[test]
fn reports_count_people_apart_from_machines_and_credit_conversions_after_the_end() {
    let s = Server::start(ServerOptions {
        args: vec!["--public-url".into(), format!("{PUBLIC}/")],
        ..Default::default()
    });
    apply_reminder(&s);
    for user in ["ann", "bob", "cat"] {
        s.identify(user, json!({"email": format!("{user}@example.com")}))
            .ok();
        s.track(user, "Cart Abandoned", json!({})).ok();
    }
    s.settle();
    let reminder = |user: &str| s.messages(user).into_iter().next().expect("a reminder");
    for user in ["ann", "bob", "cat"] {
        assert_eq!(reminder(user)["status"], "sent", "{user}");
    }
    s.advance(120);
    // Ann's mail app proxies the pixel (Apple's fetch says only "Mozilla/5.0"), then she
    // opens it herself; Bob clicks; a scanner follows Cat's link.
    hit(&s, &tracking_path(&reminder("ann"), 'o'), "Mozilla/5.0");
    hit(&s, &tracking_path(&reminder("ann"), 'o'), PHONE);
    hit(&s, &tracking_path(&reminder("bob"), 'c'), PHONE);
    hit(
        &s,
        &tracking_path(&reminder("cat"), 'c'),
        "Barracuda Sentinel (EE)",
    );
    s.advance(3600);
    // Orders after the journey ended: Ann's in the goal's currency, Bob's in another one.
    s.track(
        "ann",
        "Order Completed",
        json!({"total": "42.50", "currency": "EUR"}),
    )
    .ok();
    s.track(
        "bob",
        "Order Completed",
        json!({"total": 10, "currency": "USD"}),
    )
    .ok();
    s.settle();
    // Cat orders after the 7-day window: no conversion.
    s.advance(8 * 24 * 3600);
    s.track("cat", "Order Completed", json!({"total": 99})).ok();
    s.settle();

    let report = s.admin_get("/v1/journeys/cart/report?tz=Europe/Rome").ok();
    let totals = &report["totals"];
    let count = |v: &Value, k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k}: {v}"));
    let counts = |v: &Value| {
        [
            "entered",
            "sent",
            "delivered",
            "opened",
            "human_opened",
            "clicked",
            "human_clicked",
            "converted",
        ]
        .map(|k| count(v, k))
    };
    assert_eq!(counts(totals), [3, 3, 3, 3, 2, 2, 1, 2], "{totals}");
    assert_eq!(
        totals["revenue"], 42.5,
        "Bob's dollars are not added to euros"
    );
    assert_eq!(totals["open_rate"], 2.0 / 3.0);
    assert_eq!(totals["open_rate_all"], 1.0);
    assert_eq!(totals["conversion_rate"], 2.0 / 3.0);
    assert_eq!(totals["reaction_times"]["to_conversion"]["count"], 2);
    assert_eq!(totals["reaction_times"]["to_open"]["count"], 2);
    let median = totals["reaction_times"]["to_open"]["median_seconds"]
        .as_f64()
        .unwrap();
    assert!(
        (100.0..150.0).contains(&median),
        "opened 2 minutes after: {median}"
    );
    assert_eq!(report["attribution"]["model"], "last_touch");
    assert_eq!(report["attribution"]["currency"], "EUR");
    assert_eq!(report["tz"], "Europe/Rome");
    let remind = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "remind")
        .unwrap();
    assert_eq!(remind["channel"], "email");
    assert_eq!(
        (count(remind, "attributed"), count(remind, "converted")),
        (2, 2)
    );
    assert_eq!(report["channels"][0]["channel"], "email");
    // The series adds up to the totals.
    let series = report["series"].as_array().unwrap();
    assert_eq!(series.len(), 31, "30 days up to today, in days of Rome");
    for k in ["entered", "sent", "human_opened", "converted"] {
        let sum: i64 = series.iter().map(|p| count(p, k)).sum();
        assert_eq!(sum, count(totals, k), "{k}");
    }

    // The stats endpoint now sees the conversions after the end too.
    assert_eq!(s.node_stats("cart", "remind")["converted"], 2);

    // CSV, per node.
    let csv = s.send(
        s.request(Method::GET, "/v1/journeys/cart/report?rows=nodes")
            .bearer_auth(ADMIN_TOKEN)
            .header("Accept", "text/csv"),
    );
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.as_deref().unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert!(
        lines[0].starts_with("node,kind,channel,entered,sent,"),
        "{}",
        lines[0]
    );
    let row = lines.iter().find(|l| l.starts_with("remind,")).unwrap();
    assert!(row.starts_with("remind,send_email,email,3,3,3,"), "{row}");

    // Drill-down: who is behind the numbers.
    let people = |query: &str| {
        let page = s
            .admin_get(&format!("/v1/journeys/cart/people?{query}"))
            .ok();
        let users: Vec<String> = page["people"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["user_id"].as_str().unwrap().to_string())
            .collect();
        (users, page)
    };
    let (converted, page) = people("show=converted&node=remind");
    assert_eq!(converted, ["ann", "bob"]);
    assert_eq!(page["people"][0]["revenue"], 42.5);
    assert_eq!(page["people"][1]["currency"], "USD");
    assert_eq!(
        people("show=messaged&node=remind&status=opened").0,
        ["ann", "bob"]
    );
    assert_eq!(
        people("show=messaged&status=clicked&channel=email").0,
        ["bob"]
    );
    assert!(
        people("show=waiting").0.is_empty(),
        "nobody waits in this journey"
    );
    let (first, page) = people("show=messaged&limit=2");
    assert_eq!(first, ["ann", "bob"]);
    let next = page["next_cursor"]
        .as_i64()
        .expect("a full page has a next cursor");
    let (rest, page) = people(&format!("show=messaged&limit=2&after={next}"));
    assert_eq!(rest, ["cat"]);
    assert_eq!(page["next_cursor"], Value::Null);
    let csv = s.send(
        s.request(
            Method::GET,
            "/v1/journeys/cart/people?show=messaged&status=opened",
        )
        .bearer_auth(ADMIN_TOKEN)
        .header("Accept", "text/csv"),
    );
    assert_eq!(csv.text.lines().count(), 3, "{}", csv.text);
    assert!(
        csv.text.lines().nth(1).unwrap().contains("ann@example.com"),
        "{}",
        csv.text
    );
    s.admin_get("/v1/journeys/cart/people?show=messaged&status=read")
        .expect_error(400, "invalid_parameter");
    s.admin_get("/v1/journeys/cart/people?show=waiting&status=opened")
        .expect_error(400, "invalid_parameter");
    s.admin_get("/v1/journeys/cart/people?show=everyone")
        .expect_error(400, "invalid_parameter");
    s.admin_get("/v1/journeys/nope/people?show=waiting")
        .expect_error(404, "not_found");

    // The overview across journeys: this one, and a journey that did nothing.
    s.apply_journey(json!({
        "id": "idle", "name": "Idle",
        "nodes": [{"id": "start", "type": "trigger", "event": "Never"}]
    }));
    let overview = s.admin_get("/v1/reports/overview?days=30").ok();
    let journeys = overview["journeys"].as_array().unwrap();
    assert_eq!(
        journeys[0]["journey_id"], "cart",
        "most sent first: {overview}"
    );
    assert_eq!(
        counts(&journeys[0]),
        counts(totals),
        "the overview adds up as the report"
    );
    assert_eq!(journeys[0]["revenue"], 42.5);
    assert_eq!(journeys[1]["journey_id"], "idle");
    assert_eq!(journeys[1]["sent"], 0);
    assert_eq!(overview["totals"]["converted"], 2);
    let csv = s.send(
        s.request(Method::GET, "/v1/reports/overview")
            .bearer_auth(ADMIN_TOKEN)
            .header("Accept", "text/csv"),
    );
    assert!(
        csv.text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("cart,Cart reminder,live,3,3,3,"),
        "{}",
        csv.text
    );
    s.admin_get("/v1/reports/overview?days=400")
        .expect_error(400, "invalid_parameter");

    // Bad parameters and an unknown journey.
    s.admin_get("/v1/journeys/cart/report?bucket=month")
        .expect_error(400, "invalid_parameter");
    s.admin_get("/v1/journeys/cart/report?bucket=hour&from=2020-01-01")
        .expect_error(400, "invalid_parameter");
    s.admin_get("/v1/journeys/cart/report?version=9")
        .expect_error(404, "not_found");
    s.admin_get("/v1/journeys/nope/report")
        .expect_error(404, "not_found");
}

/// An A/B test whose paths end right after the message still counts the buyers of each
/// variant, and the holdout's, so lift over the holdout is reported with intervals.
#[test]
fn experiments_count_conversions_after_the_end_with_intervals_and_lift() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "ab", "name": "Subject test",
        "goal": {"event": "Order Completed"},
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "test", "type": "experiment",
             "variants": [{"name": "plain", "percent": 40}, {"name": "bold", "percent": 40}],
             "holdout": 20, "min_sample": 1000},
            {"id": "mail-plain", "type": "send_email", "template": "ab-plain"},
            {"id": "mail-bold", "type": "send_email", "template": "ab-bold"}
        ],
        "edges": [
            {"from": "start", "to": "test"},
            {"from": "test", "to": "mail-plain", "output": "plain"},
            {"from": "test", "to": "mail-bold", "output": "bold"}
        ],
        "templates": [
            {"id": "ab-plain", "channel": "email", "subject": "Hello", "text": "Hi"},
            {"id": "ab-bold", "channel": "email", "subject": "HELLO", "text": "Hi"}
        ]
    }));
    let users: Vec<String> = (0..60).map(|i| format!("u{i}")).collect();
    for user in &users {
        s.identify(user, json!({"email": format!("{user}@example.com")}))
            .ok();
        s.track(user, "Signed Up", json!({})).ok();
    }
    s.settle();
    s.advance(3600);
    // Everyone buys after the journey ended for them.
    for user in &users {
        s.track(user, "Order Completed", json!({"revenue": 10}))
            .ok();
    }
    s.settle();
    let report = s.admin_get("/v1/journeys/ab/experiments").ok();
    let x = &report["experiments"][0];
    let variants = x["variants"].as_array().unwrap();
    let entered: u64 = variants
        .iter()
        .map(|v| v["entered"].as_u64().unwrap())
        .sum::<u64>()
        + x["holdout"]["entered"].as_u64().unwrap();
    assert_eq!(entered, 60, "{x}");
    for v in variants.iter().chain([&x["holdout"]]) {
        assert_eq!(v["converted"], v["entered"], "every buyer counts: {v}");
        let (low, high) = (
            v["rate_low"].as_f64().unwrap(),
            v["rate_high"].as_f64().unwrap(),
        );
        assert!(low > 0.5 && high > 0.999_999, "{v}");
    }
    let lift = &variants[0]["lift_over_holdout"];
    assert_eq!(lift["relative"], 0.0, "{lift}");
    assert!(
        lift["p_value"].as_f64().unwrap() > 0.49,
        "no better than the holdout: {lift}"
    );
    assert!(x["holdout"].get("lift_over_holdout").is_none());
    // The journey report credits the conversions to the messages of the variants.
    let totals = s.admin_get("/v1/journeys/ab/report").ok()["totals"].clone();
    assert_eq!(totals["converted"], 60);
    assert_eq!(totals["revenue"], 600.0);
    // One variant's report: its message, its entries, the conversions credited to it.
    let plain = s
        .admin_get("/v1/journeys/ab/report?variant=test:plain")
        .ok();
    let entered = variants[0]["entered"].as_i64().unwrap();
    assert_eq!(plain["totals"]["entered"], entered, "{plain}");
    assert_eq!(plain["totals"]["sent"], entered);
    assert_eq!(plain["totals"]["converted"], entered);
    let nodes: Vec<&str> = plain["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["mail-plain"]);
    assert_eq!(
        s.admin_get("/v1/journeys/ab/report?variant=bold").ok()["totals"]["sent"],
        variants[1]["entered"]
    );
    s.admin_get("/v1/journeys/ab/report?variant=test:italic")
        .expect_error(400, "invalid_parameter");
}
