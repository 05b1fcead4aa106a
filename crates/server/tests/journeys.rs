//! The three example journeys, run by the real server on a simulated clock: who gets which
//! message, when, and what the statistics and the timeline say about it.

mod common;

use common::*;

/// Time of the simulated clock, in ms since the epoch.
fn now_ms(s: &Server) -> i64 {
    ts_ms(&s.now())
}

/// `created_at` of a message, in ms.
fn sent_at(m: &Value) -> i64 {
    ms_of(&m["created_at"])
}

/// Asserts the template ids of a user's messages, in order.
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

fn enrollments(s: &Server, user: &str) -> Vec<Value> {
    s.contact_by_user(user)["enrollments"]
        .as_array()
        .expect("enrollments")
        .clone()
}

/// The one enrollment of a user; panics if there is not exactly one.
#[track_caller]
fn only_enrollment(s: &Server, user: &str) -> Value {
    let e = enrollments(s, user);
    assert_eq!(e.len(), 1, "enrollments of {user}: {e:#?}");
    e[0].clone()
}

/// A node's counters as (entered, waiting, completed, exited, converted, sent, failed, suppressed).
#[track_caller]
fn counters(s: &Server, journey: &str, node: &str) -> [i64; 8] {
    let n = s.node_stats(journey, node);
    [
        "entered",
        "waiting",
        "completed",
        "exited",
        "converted",
        "sent",
        "failed",
        "suppressed",
    ]
    .map(|k| {
        n[k].as_i64()
            .unwrap_or_else(|| panic!("stats of {node} lack {k}: {n}"))
    })
}

/// Journey-level counters as (entered, active, completed, exited, converted).
#[track_caller]
fn totals(s: &Server, journey: &str) -> [i64; 5] {
    let st = s.stats(journey);
    ["entered", "active", "completed", "exited", "converted"].map(|k| {
        st[k]
            .as_i64()
            .unwrap_or_else(|| panic!("stats lack {k}: {st}"))
    })
}

// ---------------------------------------------------------------------------------------------
// welcome-series

#[test]
fn welcome_series_sends_confirmation_now_content_after_two_days_feedback_after_a_week() {
    let s = Server::simulated();
    let published = s.apply_example("welcome-series");
    assert_eq!(published["live_version"], 1);
    assert_eq!(published["status"], "live");

    s.identify(
        "ada",
        json!({ "email": "Ada@Example.com", "first_name": "Ada" }),
    )
    .ok();
    let t0 = now_ms(&s);
    let answer = s.track("ada", "Signed Up", json!({ "plan": "pro" })).ok();
    assert_eq!(
        answer,
        json!({ "success": true, "accepted": 1, "duplicates": 0 })
    );
    s.settle();

    let m = assert_templates(&s, "ada", &["welcome-confirmation"]);
    let confirmation = &m[0];
    assert_eq!(confirmation["channel"], "email");
    assert_eq!(confirmation["status"], "sent");
    assert_eq!(confirmation["journey_id"], "welcome-series");
    assert_eq!(confirmation["node"], "confirmation");
    // The domain is normalised to lower case; the local part is kept as given.
    assert_eq!(confirmation["recipient"], "ada@example.com");
    assert_eq!(confirmation["subject"], "Welcome to Acme, Ada!");
    assert_eq!(
        confirmation["html"],
        "<h1>Welcome, Ada!</h1>\n<p>Your account is ready. Sign in any time at acme.example.</p>\n"
    );
    assert_eq!(
        confirmation["text"],
        "Welcome, Ada! Your account is ready.\n"
    );
    assert_eq!(sent_at(confirmation), t0);

    let e = only_enrollment(&s, "ada");
    assert_eq!(e["status"], "active");
    assert_eq!(e["node"], "wait-2-days");
    assert_eq!(ms_of(&e["wake_at"]), t0 + 2 * DAY * 1000);

    // Nothing more until exactly two days have passed.
    s.advance(2 * DAY - MINUTE);
    assert_templates(&s, "ada", &["welcome-confirmation"]);
    s.advance(MINUTE);
    let m = assert_templates(&s, "ada", &["welcome-confirmation", "welcome-content"]);
    assert_eq!(m[1]["subject"], "Three things to try in your first week");
    assert_eq!(
        m[1]["text"],
        "Hi Ada, here are three things our happiest customers do first.\n"
    );
    assert_eq!(sent_at(&m[1]), t0 + 2 * DAY * 1000);
    assert_eq!(only_enrollment(&s, "ada")["node"], "wait-until-week-1");

    // Feedback a week after sign-up (2 days + 5 days), not a minute earlier.
    s.advance(5 * DAY - MINUTE);
    assert_eq!(s.messages("ada").len(), 2);
    s.advance(MINUTE);
    let m = assert_templates(
        &s,
        "ada",
        &[
            "welcome-confirmation",
            "welcome-content",
            "welcome-feedback",
        ],
    );
    assert_eq!(m[2]["subject"], "How is it going so far?");
    assert_eq!(sent_at(&m[2]), t0 + 7 * DAY * 1000);
    assert!(m.iter().all(|m| m["status"] == "sent"), "{m:#?}");

    let e = only_enrollment(&s, "ada");
    assert_eq!(e["status"], "completed");
    assert_eq!(e["node"], "feedback");
    assert!(e["wake_at"].is_null());

    // The journey is over: a month later there is still nothing new.
    s.advance(30 * DAY);
    assert_eq!(s.messages("ada").len(), 3);

    assert_eq!(totals(&s, "welcome-series"), [1, 0, 1, 0, 0]);
    // entered, waiting, completed, exited, converted, sent, failed, suppressed
    assert_eq!(
        counters(&s, "welcome-series", "signed-up"),
        [1, 0, 1, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        counters(&s, "welcome-series", "confirmation"),
        [1, 0, 1, 0, 0, 1, 0, 0]
    );
    assert_eq!(
        counters(&s, "welcome-series", "wait-2-days"),
        [1, 0, 1, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        counters(&s, "welcome-series", "content"),
        [1, 0, 1, 0, 0, 1, 0, 0]
    );
    assert_eq!(
        counters(&s, "welcome-series", "wait-until-week-1"),
        [1, 0, 1, 0, 0, 0, 0, 0]
    );
    // The last node has no way out: the enrollment completes there.
    let feedback = counters(&s, "welcome-series", "feedback");
    // The enrollment ends at the last node: it counts as completed there, and node-level
    // `exited` counts every enrollment that ended at the node.
    assert_eq!(feedback, [1, 0, 1, 1, 0, 1, 0, 0]);
}

#[test]
fn welcome_series_enters_once_per_contact() {
    let s = Server::simulated();
    s.apply_example("welcome-series");
    s.identify(
        "bob",
        json!({ "email": "bob@example.com", "first_name": "Bob" }),
    )
    .ok();
    s.track("bob", "Signed Up", json!({})).ok();
    s.settle();
    assert_templates(&s, "bob", &["welcome-confirmation"]);

    // A second sign-up while the first enrollment is active: no second confirmation.
    s.advance(HOUR);
    s.track("bob", "Signed Up", json!({})).ok();
    s.settle();
    assert_templates(&s, "bob", &["welcome-confirmation"]);

    // Run the series to its end, then sign up again: still once ever.
    s.advance(8 * DAY);
    s.track("bob", "Signed Up", json!({})).ok();
    s.settle();
    s.advance(8 * DAY);
    assert_templates(
        &s,
        "bob",
        &[
            "welcome-confirmation",
            "welcome-content",
            "welcome-feedback",
        ],
    );
    let e = only_enrollment(&s, "bob");
    assert_eq!(e["status"], "completed");
    assert_eq!(totals(&s, "welcome-series")[0], 1);
    assert_eq!(counters(&s, "welcome-series", "signed-up")[0], 1);
    assert_eq!(counters(&s, "welcome-series", "confirmation")[5], 1);

    // Another contact is not affected by Bob's history.
    s.identify("cy", json!({ "email": "cy@example.com" })).ok();
    s.track("cy", "Signed Up", json!({})).ok();
    s.settle();
    assert_templates(&s, "cy", &["welcome-confirmation"]);
    assert_eq!(totals(&s, "welcome-series")[0], 2);
}

#[test]
fn welcome_series_uses_liquid_default_when_first_name_is_missing() {
    let s = Server::simulated();
    s.apply_example("welcome-series");
    s.identify("anon-name", json!({ "email": "noname@example.com" }))
        .ok();
    s.track("anon-name", "Signed Up", json!({})).ok();
    s.settle();
    let m = assert_templates(&s, "anon-name", &["welcome-confirmation"]);
    assert_eq!(m[0]["subject"], "Welcome to Acme, friend!");
    assert_eq!(
        m[0]["html"],
        "<h1>Welcome, friend!</h1>\n<p>Your account is ready. Sign in any time at acme.example.</p>\n"
    );
    assert_eq!(m[0]["text"], "Welcome, friend! Your account is ready.\n");
    s.advance(2 * DAY);
    let m = assert_templates(
        &s,
        "anon-name",
        &["welcome-confirmation", "welcome-content"],
    );
    assert_eq!(
        m[1]["html"],
        "<p>Hi there, here are three things our happiest customers do first.</p>\n"
    );

    // A first name given later (before the content email) is used by the later email.
    s.identify("late", json!({ "email": "late@example.com" }))
        .ok();
    s.track("late", "Signed Up", json!({})).ok();
    s.settle();
    s.advance(DAY);
    s.identify("late", json!({ "first_name": "Lea" })).ok();
    s.advance(DAY);
    let m = assert_templates(&s, "late", &["welcome-confirmation", "welcome-content"]);
    assert_eq!(m[0]["subject"], "Welcome to Acme, friend!");
    assert_eq!(
        m[1]["text"],
        "Hi Lea, here are three things our happiest customers do first.\n"
    );
}

#[test]
fn welcome_series_without_email_address_records_suppressed_messages() {
    let s = Server::simulated();
    s.apply_example("welcome-series");
    s.track("no-email", "Signed Up", json!({})).ok();
    s.settle();
    let m = assert_templates(&s, "no-email", &["welcome-confirmation"]);
    assert_eq!(m[0]["status"], "suppressed");
    assert!(m[0]["recipient"].is_null());
    assert_eq!(m[0]["error"], "the contact has no email address");
    assert_eq!(
        counters(&s, "welcome-series", "confirmation")[5..],
        [0, 0, 1]
    );
    // The journey goes on regardless.
    assert_eq!(only_enrollment(&s, "no-email")["node"], "wait-2-days");
}

// ---------------------------------------------------------------------------------------------
// abandoned-cart

fn cart_server() -> Server {
    let s = Server::simulated();
    s.apply_example("abandoned-cart");
    s
}

fn shopper(s: &Server, user: &str) {
    s.identify(
        user,
        json!({ "email": format!("{user}@example.com"), "phone": "+14155550100", "first_name": "Sam" }),
    )
    .ok();
}

fn add_to_cart(s: &Server, user: &str, cart: &str) {
    s.track(
        user,
        "Product Added",
        json!({
            "cart_id": cart,
            "products": [
                { "name": "Red Shoes", "quantity": 2 },
                { "name": "Blue Hat", "quantity": 1 }
            ]
        }),
    )
    .ok();
}

fn order(s: &Server, user: &str, cart: &str) {
    s.track(
        user,
        "Order Completed",
        json!({ "cart_id": cart, "order_id": format!("order-{cart}"), "total": 42.5 }),
    )
    .ok();
}

#[test]
fn abandoned_cart_emails_after_24_hours_then_texts_a_day_later() {
    let s = cart_server();
    shopper(&s, "sam");
    let t0 = now_ms(&s);
    add_to_cart(&s, "sam", "cart-1");
    s.settle();
    assert_eq!(s.messages("sam").len(), 0);
    let e = only_enrollment(&s, "sam");
    assert_eq!(e["key"], "cart-1");
    assert_eq!(e["node"], "wait-for-order");
    assert_eq!(ms_of(&e["wake_at"]), t0 + DAY * 1000);

    s.advance(DAY - MINUTE);
    assert_eq!(s.messages("sam").len(), 0, "no reminder before 24 hours");
    s.advance(MINUTE);
    let m = assert_templates(&s, "sam", &["cart-reminder-email"]);
    let email = &m[0];
    assert_eq!(sent_at(email), t0 + DAY * 1000);
    assert_eq!(email["channel"], "email");
    assert_eq!(email["status"], "sent");
    assert_eq!(email["recipient"], "sam@example.com");
    assert_eq!(email["subject"], "You left something in your cart");
    let html = email["html"].as_str().unwrap();
    assert!(
        html.contains("<p>Hi Sam, your cart is waiting:</p>"),
        "{html}"
    );
    assert!(html.contains("<li>Red Shoes × 2</li>"), "{html}");
    assert!(html.contains("<li>Blue Hat × 1</li>"), "{html}");
    assert!(
        html.contains(r#"<a href="https://shop.example/cart/cart-1">Complete your order</a>"#),
        "{html}"
    );
    assert_eq!(
        email["text"],
        "Your cart is waiting:\n- Red Shoes x 2\n- Blue Hat x 1\nhttps://shop.example/cart/cart-1\n"
    );

    s.advance(DAY - MINUTE);
    assert_eq!(s.messages("sam").len(), 1, "no SMS before another day");
    s.advance(MINUTE);
    let m = assert_templates(&s, "sam", &["cart-reminder-email", "cart-reminder-sms"]);
    let sms = &m[1];
    assert_eq!(sent_at(sms), t0 + 2 * DAY * 1000);
    assert_eq!(sms["channel"], "sms");
    assert_eq!(sms["status"], "sent");
    assert_eq!(sms["recipient"], "+14155550100");
    assert_eq!(
        sms["text"],
        "Your cart at Acme is still waiting: https://shop.example/cart/cart-1"
    );

    let e = only_enrollment(&s, "sam");
    assert_eq!(e["status"], "completed");
    assert_eq!(e["node"], "cart-sms");

    s.advance(10 * DAY);
    assert_eq!(s.messages("sam").len(), 2);

    // entered, waiting, completed, exited, converted, sent, failed, suppressed
    assert_eq!(
        counters(&s, "abandoned-cart", "product-added"),
        [1, 0, 1, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        counters(&s, "abandoned-cart", "wait-for-order"),
        [1, 0, 1, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        counters(&s, "abandoned-cart", "cart-email"),
        [1, 0, 1, 0, 0, 1, 0, 0]
    );
    assert_eq!(
        counters(&s, "abandoned-cart", "wait-a-day"),
        [1, 0, 1, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        counters(&s, "abandoned-cart", "cart-sms"),
        [1, 0, 1, 1, 0, 1, 0, 0]
    );
    assert_eq!(counters(&s, "abandoned-cart", "ordered"), [0; 8]);
    assert_eq!(totals(&s, "abandoned-cart"), [1, 0, 1, 0, 0]);
}

#[test]
fn abandoned_cart_email_lists_every_product_added_to_that_cart_one_event_each() {
    // Segment's e-commerce spec: one `Product Added` per product, flat, with a shared cart_id.
    let s = cart_server();
    shopper(&s, "flat");
    let add = |cart: &str, name: &str, quantity: i64| {
        s.track(
            "flat",
            "Product Added",
            json!({ "cart_id": cart, "product_id": name.to_lowercase(), "name": name,
                    "price": 9.5, "quantity": quantity }),
        )
        .ok();
    };
    add("cart-f", "Red Shoes", 2);
    s.advance(HOUR);
    add("cart-f", "Blue Hat", 1);
    add("cart-g", "Green Scarf", 1);
    s.advance(HOUR);
    add("cart-f", "Yellow Socks", 3);
    s.settle();
    // One enrollment per cart: the later adds joined cart-f's.
    let enrollments = s.contact_by_user("flat")["enrollments"].clone();
    assert_eq!(enrollments.as_array().unwrap().len(), 2, "{enrollments}");
    s.advance(DAY);
    let m = assert_templates(&s, "flat", &["cart-reminder-email", "cart-reminder-email"]);
    let by_cart = |cart: &str| {
        m.iter()
            .find(|m| {
                m["text"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with(&format!("/cart/{cart}\n"))
            })
            .unwrap_or_else(|| panic!("no reminder for {cart}: {m:#?}"))
            .clone()
    };
    let f = by_cart("cart-f");
    assert_eq!(
        f["text"],
        "Your cart is waiting:\n- Red Shoes x 2\n- Blue Hat x 1\n- Yellow Socks x 3\nhttps://shop.example/cart/cart-f\n"
    );
    let html = f["html"].as_str().unwrap();
    assert!(html.contains("<li>Red Shoes × 2</li>"), "{html}");
    assert!(html.contains("<li>Yellow Socks × 3</li>"), "{html}");
    assert!(
        !html.contains("Green Scarf"),
        "another cart's product: {html}"
    );
    assert_eq!(
        by_cart("cart-g")["text"],
        "Your cart is waiting:\n- Green Scarf x 1\nhttps://shop.example/cart/cart-g\n"
    );
}

#[test]
fn abandoned_cart_email_counts_items_without_quantity_as_one() {
    let s = cart_server();
    shopper(&s, "nq");
    s.track(
        "nq",
        "Product Added",
        json!({
            "cart_id": "cart-nq",
            "products": [{ "name": "Red Shoes", "quantity": 2 }, { "name": "Blue Hat" }]
        }),
    )
    .ok();
    s.advance(DAY);
    let m = assert_templates(&s, "nq", &["cart-reminder-email"]);
    assert_eq!(m[0]["status"], "sent", "{:#}", m[0]);
    let html = m[0]["html"].as_str().unwrap_or_default();
    assert!(html.contains("<li>Red Shoes × 2</li>"), "{html}");
    assert!(html.contains("<li>Blue Hat × 1</li>"), "{html}");
    assert_eq!(
        m[0]["text"],
        "Your cart is waiting:\n- Red Shoes x 2\n- Blue Hat x 1\nhttps://shop.example/cart/cart-nq\n"
    );
    assert_eq!(counters(&s, "abandoned-cart", "cart-email")[5..], [1, 0, 0]);
}

#[test]
fn abandoned_cart_order_within_24_hours_converts_without_messages() {
    let s = cart_server();
    shopper(&s, "olga");
    add_to_cart(&s, "olga", "cart-9");
    s.settle();
    s.advance(5 * HOUR);
    order(&s, "olga", "cart-9");
    s.settle();
    let e = only_enrollment(&s, "olga");
    assert_eq!(e["status"], "converted");
    assert_eq!(e["node"], "wait-for-order");
    assert!(e["wake_at"].is_null());

    s.advance(5 * DAY);
    assert_eq!(s.messages("olga").len(), 0);
    assert_eq!(totals(&s, "abandoned-cart"), [1, 0, 0, 0, 1]);
    assert_eq!(counters(&s, "abandoned-cart", "product-added")[4], 1);
    assert_eq!(counters(&s, "abandoned-cart", "wait-for-order")[4], 1);
    assert_eq!(counters(&s, "abandoned-cart", "wait-for-order")[0], 1);
    for node in ["cart-email", "wait-a-day", "cart-sms", "ordered"] {
        assert_eq!(
            counters(&s, "abandoned-cart", node),
            [0; 8],
            "node {node} was never visited"
        );
    }
}

#[test]
fn abandoned_cart_order_for_another_cart_does_not_stop_the_reminder() {
    let s = cart_server();
    shopper(&s, "paul");
    let t0 = now_ms(&s);
    add_to_cart(&s, "paul", "cart-a");
    s.settle();
    s.advance(2 * HOUR);
    order(&s, "paul", "cart-other");
    s.settle();
    let e = only_enrollment(&s, "paul");
    assert_eq!(e["status"], "active");
    assert_eq!(e["node"], "wait-for-order");

    s.advance(2 * DAY);
    let m = assert_templates(&s, "paul", &["cart-reminder-email", "cart-reminder-sms"]);
    assert_eq!(sent_at(&m[0]), t0 + DAY * 1000);
    assert_eq!(sent_at(&m[1]), t0 + 2 * DAY * 1000);
    assert!(m[0]["html"].as_str().unwrap().contains("/cart/cart-a\""));
    assert_eq!(only_enrollment(&s, "paul")["status"], "completed");
    assert_eq!(totals(&s, "abandoned-cart")[4], 0, "no conversion");
}

#[test]
fn abandoned_cart_keys_enrollments_by_cart() {
    let s = cart_server();
    shopper(&s, "kim");
    let t0 = now_ms(&s);
    add_to_cart(&s, "kim", "c1");
    s.settle();
    s.advance(HOUR);
    add_to_cart(&s, "kim", "c2");
    s.settle();
    s.advance(HOUR);
    // The same cart again: still one enrollment for c1.
    add_to_cart(&s, "kim", "c1");
    s.settle();
    let e = enrollments(&s, "kim");
    let keys: Vec<_> = e.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["c1", "c2"], "{e:#?}");
    assert!(e.iter().all(|e| e["status"] == "active"));
    assert_eq!(ms_of(&e[0]["wake_at"]), t0 + DAY * 1000);
    assert_eq!(ms_of(&e[1]["wake_at"]), t0 + (DAY + HOUR) * 1000);

    // A product added without a cart id cannot enter (the trigger's filter).
    s.track("kim", "Product Added", json!({ "products": [] }))
        .ok();
    s.settle();
    assert_eq!(enrollments(&s, "kim").len(), 2);

    s.advance(DAY - HOUR); // t0 + 25h: both emails are out
    let m = assert_templates(&s, "kim", &["cart-reminder-email", "cart-reminder-email"]);
    assert_eq!(sent_at(&m[0]), t0 + DAY * 1000);
    assert_eq!(sent_at(&m[1]), t0 + (DAY + HOUR) * 1000);
    assert!(m[0]["text"].as_str().unwrap().ends_with("/cart/c1\n"));
    assert!(m[1]["text"].as_str().unwrap().ends_with("/cart/c2\n"));

    // Ordering c1 stops c1 only.
    s.advance(HOUR);
    order(&s, "kim", "c1");
    s.advance(3 * DAY);
    let m = assert_templates(
        &s,
        "kim",
        &[
            "cart-reminder-email",
            "cart-reminder-email",
            "cart-reminder-sms",
        ],
    );
    assert_eq!(sent_at(&m[2]), t0 + (2 * DAY + HOUR) * 1000);
    assert!(m[2]["text"].as_str().unwrap().ends_with("/cart/c2"));
    let e = enrollments(&s, "kim");
    let status: Vec<_> = e
        .iter()
        .map(|e| (e["key"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    assert_eq!(status, [("c1", "converted"), ("c2", "completed")]);
    assert_eq!(totals(&s, "abandoned-cart"), [2, 0, 1, 0, 1]);

    // After c1 converted, adding to c1 again starts a new enrollment (re-entry every time).
    add_to_cart(&s, "kim", "c1");
    s.settle();
    let e = enrollments(&s, "kim");
    assert_eq!(e.len(), 3);
    assert_eq!(e[2]["key"], "c1");
    assert_eq!(e[2]["status"], "active");
}

#[test]
fn abandoned_cart_order_between_email_and_sms_stops_the_sms() {
    let s = cart_server();
    shopper(&s, "eve");
    add_to_cart(&s, "eve", "cart-e");
    s.settle();
    s.advance(DAY);
    assert_templates(&s, "eve", &["cart-reminder-email"]);
    s.advance(6 * HOUR);
    order(&s, "eve", "cart-e");
    s.settle();
    s.advance(5 * DAY);
    assert_templates(&s, "eve", &["cart-reminder-email"]);
    let e = only_enrollment(&s, "eve");
    assert_eq!(e["status"], "converted");
    assert_eq!(e["node"], "wait-a-day");
    assert_eq!(totals(&s, "abandoned-cart"), [1, 0, 0, 0, 1]);
    for node in [
        "product-added",
        "wait-for-order",
        "cart-email",
        "wait-a-day",
    ] {
        assert_eq!(
            counters(&s, "abandoned-cart", node)[4],
            1,
            "node {node} led to the conversion"
        );
    }
    assert_eq!(counters(&s, "abandoned-cart", "cart-email")[5], 1);
    assert_eq!(counters(&s, "abandoned-cart", "cart-sms"), [0; 8]);
}

#[test]
fn abandoned_cart_accepted_order_wins_over_a_timer_passed_in_the_same_advance() {
    let s = cart_server();
    shopper(&s, "fay");
    shopper(&s, "gus");
    add_to_cart(&s, "fay", "cart-f");
    add_to_cart(&s, "gus", "cart-g");
    s.settle();
    // One second before the reminder falls due, the order is accepted (200) and then the clock
    // jumps ten days in one call: the order must be applied first.
    s.advance(DAY - 1);
    order(&s, "fay", "cart-f");
    s.advance(10 * DAY);
    assert_eq!(s.messages("fay").len(), 0, "{:#?}", s.messages("fay"));
    assert_eq!(only_enrollment(&s, "fay")["status"], "converted");
    // The other shopper, who did not order, got both reminders in the same jump.
    assert_templates(&s, "gus", &["cart-reminder-email", "cart-reminder-sms"]);
    assert_eq!(totals(&s, "abandoned-cart"), [2, 0, 1, 0, 1]);
}

#[test]
fn abandoned_cart_many_orders_accepted_before_the_timeout_all_win() {
    let s = cart_server();
    let n = 40;
    let adds: Vec<Value> = (0..n)
        .flat_map(|i| {
            let user = format!("bulk-{i}");
            [
                json!({ "type": "identify", "userId": user, "traits": { "email": format!("{user}@example.com") } }),
                json!({ "type": "track", "userId": user, "event": "Product Added",
                        "properties": { "cart_id": format!("bulk-cart-{i}"), "products": [] } }),
            ]
        })
        .collect();
    s.batch(adds).ok();
    s.settle();
    s.advance(DAY - 1);
    // Every even shopper orders one second before the reminder is due.
    let orders: Vec<Value> = (0..n)
        .step_by(2)
        .map(|i| {
            json!({ "type": "track", "userId": format!("bulk-{i}"), "event": "Order Completed",
                    "properties": { "cart_id": format!("bulk-cart-{i}") } })
        })
        .collect();
    assert_eq!(s.batch(orders).ok()["accepted"], n / 2);
    s.advance(30 * DAY);
    let emails = s.messages_where(&[("journey_id", "abandoned-cart"), ("channel", "email")]);
    let mut reminded: Vec<String> = emails
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_string())
        .collect();
    reminded.sort();
    let mut odd: Vec<String> = (0..n)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("bulk-{i}"))
        .collect();
    odd.sort();
    assert_eq!(
        reminded, odd,
        "only shoppers without an order get the reminder"
    );
    assert_eq!(totals(&s, "abandoned-cart"), [n, 0, n / 2, 0, n / 2]);
}

#[test]
fn abandoned_cart_matches_numeric_and_string_cart_ids() {
    let s = cart_server();
    shopper(&s, "num");
    s.track(
        "num",
        "Product Added",
        json!({ "cart_id": 42, "products": [] }),
    )
    .ok();
    s.settle();
    assert_eq!(only_enrollment(&s, "num")["key"], "42");
    s.advance(HOUR);
    s.track("num", "Order Completed", json!({ "cart_id": "42" }))
        .ok();
    s.advance(3 * DAY);
    assert!(s.messages("num").is_empty());
    assert_eq!(only_enrollment(&s, "num")["status"], "converted");
}

// ---------------------------------------------------------------------------------------------
// first-purchase-feedback

fn feedback_server() -> Server {
    let s = Server::simulated();
    s.apply_example("first-purchase-feedback");
    s
}

fn buyer(s: &Server, user: &str, first_name: &str) {
    s.identify(
        user,
        json!({ "email": format!("{user}@example.com"), "first_name": first_name }),
    )
    .ok();
}

fn lists_of(s: &Server, user: &str) -> Vec<String> {
    s.contact_by_user(user)["lists"]
        .as_array()
        .expect("lists")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn loyal_members(s: &Server) -> Vec<String> {
    let r = s.admin_get("/v1/lists/loyal/members");
    if r.status == 404 {
        return Vec::new();
    }
    r.ok()["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["user_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn first_purchase_feedback_routes_happy_and_unhappy_buyers() {
    let s = feedback_server();
    buyer(&s, "happy", "Hana");
    buyer(&s, "unhappy", "Udo");
    let t0 = now_ms(&s);
    s.track("happy", "Order Completed", json!({ "order_id": "o-1" }))
        .ok();
    s.track("unhappy", "Order Completed", json!({ "order_id": "o-2" }))
        .ok();
    s.settle();
    for user in ["happy", "unhappy"] {
        let m = assert_templates(&s, user, &["feedback-request"]);
        assert_eq!(m[0]["subject"], "How was your order?");
        assert_eq!(sent_at(&m[0]), t0);
        assert_eq!(only_enrollment(&s, user)["node"], "wait-for-feedback");
    }
    let m = s.messages("happy");
    assert!(
        m[0]["html"]
            .as_str()
            .unwrap()
            .contains("Thanks for your first order, Hana!")
    );

    s.advance(DAY);
    s.track("happy", "Feedback Submitted", json!({ "rating": 5 }))
        .ok();
    s.track("unhappy", "Feedback Submitted", json!({ "rating": 2 }))
        .ok();
    s.settle();

    let m = assert_templates(&s, "happy", &["feedback-request", "review-request"]);
    assert_eq!(
        m[1]["subject"],
        "Glad you liked it! Would you leave a review?"
    );
    assert!(
        m[1]["html"]
            .as_str()
            .unwrap()
            .contains("Thank you for your kind rating, Hana!")
    );
    assert_eq!(sent_at(&m[1]), t0 + DAY * 1000);
    assert_eq!(lists_of(&s, "happy"), ["loyal"]);
    let e = only_enrollment(&s, "happy");
    assert_eq!(
        (e["status"].as_str(), e["node"].as_str()),
        (Some("completed"), Some("join-loyal"))
    );

    let m = assert_templates(&s, "unhappy", &["feedback-request", "feedback-apology"]);
    assert_eq!(m[1]["subject"], "We are sorry");
    assert!(lists_of(&s, "unhappy").is_empty());
    let e = only_enrollment(&s, "unhappy");
    assert_eq!(
        (e["status"].as_str(), e["node"].as_str()),
        (Some("completed"), Some("apology"))
    );

    assert_eq!(loyal_members(&s), ["happy"]);

    // Nothing else happens later.
    s.advance(10 * DAY);
    assert_eq!(s.messages("happy").len(), 2);
    assert_eq!(s.messages("unhappy").len(), 2);

    // entered, waiting, completed, exited, converted, sent, failed, suppressed
    let j = "first-purchase-feedback";
    assert_eq!(counters(&s, j, "first-order")[0], 2);
    assert_eq!(counters(&s, j, "ask-feedback")[5], 2);
    assert_eq!(counters(&s, j, "wait-for-feedback")[..3], [2, 0, 2]);
    assert_eq!(counters(&s, j, "happy")[..3], [2, 0, 2]);
    assert_eq!(counters(&s, j, "review-request"), [1, 0, 1, 0, 0, 1, 0, 0]);
    assert_eq!(counters(&s, j, "join-loyal"), [1, 0, 1, 1, 0, 0, 0, 0]);
    assert_eq!(counters(&s, j, "apology"), [1, 0, 1, 1, 0, 1, 0, 0]);
    assert_eq!(counters(&s, j, "no-answer"), [0; 8]);
    assert_eq!(totals(&s, j), [2, 0, 2, 0, 0]);
}

#[test]
fn first_purchase_feedback_boundary_rating_4_is_happy_and_3_is_not() {
    let s = feedback_server();
    for (user, rating) in [
        ("four", json!(4)),
        ("three", json!(3)),
        ("four-str", json!("4")),
    ] {
        buyer(&s, user, "X");
        s.track(user, "Order Completed", json!({})).ok();
        s.settle();
        s.track(user, "Feedback Submitted", json!({ "rating": rating }))
            .ok();
        s.settle();
    }
    assert_templates(&s, "four", &["feedback-request", "review-request"]);
    assert_templates(&s, "three", &["feedback-request", "feedback-apology"]);
    assert_templates(&s, "four-str", &["feedback-request", "review-request"]);
    assert_eq!(loyal_members(&s), ["four", "four-str"]);
}

#[test]
fn first_purchase_feedback_without_answer_sends_neither() {
    let s = feedback_server();
    buyer(&s, "quiet", "Q");
    s.track("quiet", "Order Completed", json!({ "order_id": "o-3" }))
        .ok();
    s.settle();
    s.advance(3 * DAY - MINUTE);
    let e = only_enrollment(&s, "quiet");
    assert_eq!(e["status"], "active");
    assert_eq!(e["node"], "wait-for-feedback");
    s.advance(MINUTE);
    let e = only_enrollment(&s, "quiet");
    assert_eq!(e["status"], "exited");
    assert_eq!(e["node"], "no-answer");

    // A late answer changes nothing.
    s.track("quiet", "Feedback Submitted", json!({ "rating": 5 }))
        .ok();
    s.advance(10 * DAY);
    assert_templates(&s, "quiet", &["feedback-request"]);
    assert!(lists_of(&s, "quiet").is_empty());
    assert!(loyal_members(&s).is_empty());
    let j = "first-purchase-feedback";
    assert_eq!(counters(&s, j, "no-answer"), [1, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(
        counters(&s, j, "wait-for-feedback"),
        [1, 0, 1, 0, 0, 0, 0, 0]
    );
    assert_eq!(counters(&s, j, "happy"), [0; 8]);
    assert_eq!(totals(&s, j), [1, 0, 0, 1, 0]);
}

#[test]
fn first_purchase_feedback_only_the_first_order_triggers() {
    let s = feedback_server();
    buyer(&s, "repeat", "R");
    s.track("repeat", "Order Completed", json!({ "order_id": "o-1" }))
        .ok();
    s.settle();
    // A second order while waiting for feedback, and a third after the journey ended.
    s.advance(HOUR);
    s.track("repeat", "Order Completed", json!({ "order_id": "o-2" }))
        .ok();
    s.settle();
    s.advance(4 * DAY);
    s.track("repeat", "Order Completed", json!({ "order_id": "o-3" }))
        .ok();
    s.advance(4 * DAY);
    assert_templates(&s, "repeat", &["feedback-request"]);
    assert_eq!(enrollments(&s, "repeat").len(), 1);
    assert_eq!(totals(&s, "first-purchase-feedback")[0], 1);
}

#[test]
fn first_purchase_feedback_ignores_feedback_given_before_the_order() {
    let s = feedback_server();
    buyer(&s, "early", "E");
    s.track("early", "Feedback Submitted", json!({ "rating": 5 }))
        .ok();
    s.settle();
    s.advance(HOUR);
    s.track("early", "Order Completed", json!({})).ok();
    s.settle();
    // The earlier feedback does not answer this wait.
    let e = only_enrollment(&s, "early");
    assert_eq!(e["node"], "wait-for-feedback");
    assert_eq!(e["status"], "active");
    assert_templates(&s, "early", &["feedback-request"]);
    s.advance(HOUR);
    s.track("early", "Feedback Submitted", json!({ "rating": 1 }))
        .ok();
    s.settle();
    assert_templates(&s, "early", &["feedback-request", "feedback-apology"]);
    assert!(lists_of(&s, "early").is_empty());
}

// ---------------------------------------------------------------------------------------------
// timeline

/// A compact description of a timeline entry.
fn describe(e: &Value) -> String {
    match e["type"].as_str().unwrap() {
        "event" => format!("event {}", e["name"].as_str().unwrap()),
        "step" => format!(
            "step {} {}",
            e["action"].as_str().unwrap(),
            e["node"].as_str().unwrap()
        ),
        "message" => format!(
            "message {} {}",
            e["template"].as_str().unwrap(),
            e["status"].as_str().unwrap()
        ),
        other => panic!("unknown timeline entry type {other}: {e}"),
    }
}

/// The abandoned-cart story of one contact: added at t0, email at t0+24h, order at t0+30h.
fn cart_story(s: &Server) -> (i64, i64) {
    shopper(s, "tim");
    s.advance(MINUTE);
    let t0 = now_ms(s);
    add_to_cart(s, "tim", "cart-t");
    s.settle();
    s.advance(DAY);
    s.advance(6 * HOUR);
    order(s, "tim", "cart-t");
    s.settle();
    let id = s.contact_by_user("tim")["id"].as_i64().unwrap();
    (id, t0)
}

#[test]
fn timeline_groups_events_steps_and_messages_by_time() {
    let s = cart_server();
    let (id, t0) = cart_story(&s);
    let entries = s.timeline(id);
    let at = |e: &Value| ms_of(&e["at"]);

    // Oldest first overall.
    let times: Vec<i64> = entries.iter().map(at).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "{entries:#?}");

    // What happened at each instant (as sets, since entries of one instant share a time).
    let at_time = |t: i64| {
        let mut v: Vec<String> = entries
            .iter()
            .filter(|e| at(e) == t)
            .map(describe)
            .collect();
        v.sort();
        v
    };
    let mut expect_t0 = vec![
        "event Product Added",
        "step entered product-added",
        "step left product-added",
        "step entered wait-for-order",
        "step waiting wait-for-order",
    ];
    expect_t0.sort();
    assert_eq!(at_time(t0), expect_t0);
    let mut expect_24h = vec![
        "step left wait-for-order",
        "step entered cart-email",
        "step left cart-email",
        "step entered wait-a-day",
        "step waiting wait-a-day",
        "message cart-reminder-email sent",
    ];
    expect_24h.sort();
    assert_eq!(at_time(t0 + DAY * 1000), expect_24h);
    let mut expect_30h = vec!["event Order Completed", "step converted wait-a-day"];
    expect_30h.sort();
    assert_eq!(at_time(t0 + 30 * HOUR * 1000), expect_30h);
    let end = entries
        .iter()
        .find(|e| e["action"] == "converted")
        .expect("the conversion step");
    assert_eq!(end["journey_id"], "abandoned-cart");
    assert_eq!(end["detail"]["reason"], "goal `Order Completed`");
    let identify: Vec<_> = entries
        .iter()
        .filter(|e| at(e) < t0)
        .map(describe)
        .collect();
    assert_eq!(identify, ["event Identify"]);
    assert_eq!(entries.len(), 1 + 5 + 6 + 2, "{entries:#?}");

    // Details: the message entry names its journey, node and subject; the event its properties.
    let msg = entries.iter().find(|e| e["type"] == "message").unwrap();
    assert_eq!(msg["journey_id"], "abandoned-cart");
    assert_eq!(msg["node"], "cart-email");
    assert_eq!(msg["subject"], "You left something in your cart");
    let added = entries
        .iter()
        .find(|e| e["type"] == "event" && e["name"] == "Product Added")
        .unwrap();
    assert_eq!(added["kind"], "track");
    assert_eq!(added["properties"]["cart_id"], "cart-t");
    let waiting = entries
        .iter()
        .find(|e| e["action"] == "waiting" && e["node"] == "wait-for-order")
        .unwrap();
    assert_eq!(ms_of(&waiting["detail"]["until"]), t0 + DAY * 1000);
}

#[test]
fn timeline_lists_entries_in_the_order_they_happened() {
    let s = cart_server();
    let (id, _) = cart_story(&s);
    let got: Vec<String> = s.timeline(id).iter().map(describe).collect();
    let expected = [
        "event Identify",
        // t0: the trigger event, then the steps it caused, in order.
        "event Product Added",
        "step entered product-added",
        "step left product-added",
        "step entered wait-for-order",
        "step waiting wait-for-order",
        // t0 + 24h: the timeout, the email, the next wait.
        "step left wait-for-order",
        "step entered cart-email",
        "step left cart-email",
        "step entered wait-a-day",
        "step waiting wait-a-day",
        "message cart-reminder-email sent",
        // t0 + 30h: the order converts.
        "event Order Completed",
        "step converted wait-a-day",
    ];
    assert_eq!(got, expected);
}

/// A branch on engagement with an earlier message of the same enrollment: an `Email Opened`
/// event naming the message (as tracking pixels and ESP webhooks report it) sends the contact
/// down the `yes` path; a contact who did not open goes down `no`.
#[test]
fn branch_on_whether_an_earlier_email_was_opened() {
    let s = Server::simulated();
    s.apply_journey(json!({
        "id": "nudge", "name": "Nudge",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "hello", "type": "send_email", "template": "nudge-hello"},
            {"id": "wait", "type": "delay", "duration": "1d"},
            {"id": "opened", "type": "branch", "condition": {"message": {"node": "hello", "engagement": "opened"}}},
            {"id": "thanks", "type": "send_email", "template": "nudge-thanks"},
            {"id": "reminder", "type": "send_email", "template": "nudge-reminder"}
        ],
        "edges": [
            {"from": "start", "to": "hello"}, {"from": "hello", "to": "wait"},
            {"from": "wait", "to": "opened"},
            {"from": "opened", "to": "thanks", "output": "yes"},
            {"from": "opened", "to": "reminder", "output": "no"}
        ],
        "templates": [
            {"id": "nudge-hello", "channel": "email", "subject": "Hello", "text": "hi"},
            {"id": "nudge-thanks", "channel": "email", "subject": "Thanks for reading", "text": "thanks"},
            {"id": "nudge-reminder", "channel": "email", "subject": "Did you see this?", "text": "again"}
        ]
    }));
    for user in ["reader", "skipper"] {
        s.identify(user, json!({"email": format!("{user}@example.com")}))
            .ok();
        s.track(user, "Signed Up", json!({})).ok();
    }
    s.settle();
    let hello = s.messages("reader");
    assert_eq!(templates_of(&hello), ["nudge-hello"]);
    let message_id = hello[0]["id"].as_i64().unwrap();
    s.track("reader", "Email Opened", json!({"message_id": message_id}))
        .ok();
    s.settle();
    assert!(
        s.messages("reader")[0]["opened_at"].is_string(),
        "{:?}",
        s.messages("reader")
    );
    s.advance(DAY);
    assert_eq!(
        templates_of(&s.messages("reader")),
        ["nudge-hello", "nudge-thanks"]
    );
    assert_eq!(
        templates_of(&s.messages("skipper")),
        ["nudge-hello", "nudge-reminder"]
    );
    assert_eq!(s.node_stats("nudge", "thanks")["entered"], 1);
    assert_eq!(s.node_stats("nudge", "reminder")["entered"], 1);
}
