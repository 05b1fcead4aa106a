//! Product recommendations ("frequently bought together") end to end: orders tracked through
//! the API make co-purchase pairs, and the `upsell-cross-sell` example's email, sent 3 days
//! after an order on the simulated clock, lists what others bought with the contact's products.

mod common;

use common::*;

fn product(id: &str, name: &str, price: f64) -> Value {
    json!({
        "product_id": id,
        "sku": format!("SKU-{id}"),
        "name": name,
        "price": price,
        "quantity": 1,
        "category": "Outdoor",
        "url": format!("https://shop.acme.example/p/{id}"),
        "image_url": format!("https://shop.acme.example/img/{id}.jpg"),
    })
}

fn a() -> Value {
    product("A", "Alpine Tent", 199.0)
}
fn b() -> Value {
    product("B", "Bamboo Bottle", 24.5)
}
fn c() -> Value {
    product("C", "Canvas Cap", 18.0)
}
fn d() -> Value {
    product("D", "Down Pillow", 30.0)
}

fn order(s: &Server, user: &str, order_id: &str, products: Vec<Value>) {
    s.track(
        user,
        "Order Completed",
        json!({"order_id": order_id, "products": products}),
    )
    .ok();
}

fn html_of(m: &Value) -> String {
    m["html"].as_str().expect("html").to_string()
}

#[test]
fn upsell_email_lists_what_others_bought_with_the_contacts_products() {
    let s = Server::simulated();
    for (user, name) in [
        ("ann", "Ann"),
        ("carl", "Carl"),
        ("o1", "Olga"),
        ("o2", "Omar"),
        ("o3", "Otto"),
        ("o4", "Oona"),
    ] {
        s.identify(
            user,
            json!({"email": format!("{user}@example.com"), "first_name": name}),
        )
        .ok();
    }
    // Other customers' orders, before the journey exists: A goes with B (twice) and C
    // (twice); D is bought with A too, but Ann owns it; X and Y share nothing with Ann.
    order(&s, "o1", "o-1", vec![a(), b(), d()]);
    order(&s, "o2", "o-2", vec![a(), b(), c()]);
    order(&s, "o3", "o-3", vec![c(), a()]);
    order(
        &s,
        "o4",
        "o-4",
        vec![product("X", "Xylophone", 5.0), product("Y", "Yo-yo", 3.0)],
    );
    s.settle();

    s.apply_example("upsell-cross-sell");
    // An entry without a product id is skipped; quantities do not matter.
    order(
        &s,
        "ann",
        "o-ann",
        vec![a(), d(), json!({"name": "Gift wrap", "price": 2})],
    );
    order(&s, "carl", "o-carl", vec![product("Z", "Zip Bag", 9.0)]);
    s.settle();
    let start = ts_ms(&s.now());

    s.advance(3 * DAY - HOUR);
    assert!(s.messages("ann").is_empty(), "nothing before 3 days");
    s.advance(HOUR);

    let ann = s.messages("ann");
    assert_eq!(templates_of(&ann), ["upsell-recommendations"], "{ann:#?}");
    assert_eq!(ms_of(&ann[0]["created_at"]) - start, 3 * DAY * 1000);
    assert_eq!(ann[0]["subject"], "Picked for you, Ann");
    let html = html_of(&ann[0]);
    assert!(
        html.contains("Customers who bought the same also picked"),
        "{html}"
    );
    let bottle = html
        .find(r#"<a href="https://shop.acme.example/p/B">Bamboo Bottle</a> – $24.5"#)
        .unwrap_or_else(|| panic!("no Bamboo Bottle with link and price: {html}"));
    let cap = html
        .find(r#"<a href="https://shop.acme.example/p/C">Canvas Cap</a> – $18"#)
        .unwrap_or_else(|| panic!("no Canvas Cap with link and price: {html}"));
    // Equal counts (2 each): same Jaccard here, so by name.
    assert!(bottle < cap, "{html}");
    for owned_or_unrelated in [
        "Alpine Tent",
        "Down Pillow",
        "Xylophone",
        "Yo-yo",
        "Zip Bag",
    ] {
        assert!(
            !html.contains(owned_or_unrelated),
            "{owned_or_unrelated}: {html}"
        );
    }
    assert!(!html.contains("new arrivals"), "{html}");

    // Nobody else bought what Carl bought: the fallback.
    let carl = s.messages("carl");
    assert_eq!(templates_of(&carl), ["upsell-recommendations"], "{carl:#?}");
    let html = html_of(&carl[0]);
    assert!(html.contains("this week's new arrivals"), "{html}");
    assert!(!html.contains("Customers who bought"), "{html}");

    // The preview for Ann's contact shows the same list, computed now.
    let ann_id = s.contact_by_user("ann")["id"].as_i64().expect("id");
    let preview = s
        .admin_post(
            "/v1/templates/upsell-recommendations/preview",
            json!({"contact_id": ann_id}),
        )
        .ok();
    let html = preview["html"].as_str().expect("html");
    assert!(
        html.contains("Bamboo Bottle") && html.contains("Canvas Cap"),
        "{html}"
    );
    assert!(!html.contains("Down Pillow"), "{html}");
    // Sample data can stand in for a contact.
    let preview = s
        .admin_post(
            "/v1/templates/upsell-recommendations/preview",
            json!({"contact": {"first_name": "Sam"},
                   "recommendations": [{"product_id": "S", "name": "Sample Sock", "price": 4,
                                        "url": null}]}),
        )
        .ok();
    let html = preview["html"].as_str().expect("html");
    assert!(html.contains("Sample Sock – $4"), "{html}");
    // Without a contact or sample: the fallback.
    let preview = s
        .admin_post("/v1/templates/upsell-recommendations/preview", json!({}))
        .ok();
    assert!(
        preview["html"]
            .as_str()
            .expect("html")
            .contains("new arrivals"),
        "{preview}"
    );
}

#[test]
fn a_later_order_changes_the_recommendations_and_the_list_is_limited_to_three() {
    let s = Server::simulated();
    s.apply_example("upsell-cross-sell");
    s.identify("ann", json!({"email": "ann@example.com"})).ok();
    // Five products are bought with A, with decreasing counts: P1 (5 orders) ... P5 (1).
    let mut n = 0;
    for (i, id) in ["P1", "P2", "P3", "P4", "P5"].iter().enumerate() {
        for _ in 0..(5 - i) {
            n += 1;
            order(
                &s,
                &format!("other-{n}"),
                &format!("o-{n}"),
                vec![a(), product(id, &format!("Product {id}"), 10.0)],
            );
        }
    }
    order(&s, "ann", "ann-1", vec![a()]);
    s.advance(3 * DAY);
    let html = html_of(&s.messages("ann")[0]);
    let shown: Vec<&str> = ["P1", "P2", "P3", "P4", "P5"]
        .into_iter()
        .filter(|id| html.contains(&format!("Product {id}")))
        .collect();
    assert_eq!(shown, ["P1", "P2", "P3"], "{html}");

    // Ann buys P1 and P2: they are no longer suggested (after the 14-day cooldown).
    s.advance(14 * DAY);
    order(
        &s,
        "ann",
        "ann-2",
        vec![
            product("P1", "Product P1", 10.0),
            product("P2", "Product P2", 10.0),
        ],
    );
    s.advance(3 * DAY);
    let messages = s.messages("ann");
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let html = html_of(&messages[1]);
    let shown: Vec<&str> = ["P1", "P2", "P3", "P4", "P5"]
        .into_iter()
        .filter(|id| html.contains(&format!("Product {id}")))
        .collect();
    assert_eq!(shown, ["P3", "P4", "P5"], "{html}");
}
