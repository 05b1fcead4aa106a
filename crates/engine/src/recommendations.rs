//! The `recommendations` template variable: products often bought together with what the
//! contact bought, from `Order Completed` events (see `waymark_core::recommend` for the
//! ranking).
//!
//! It is computed only for templates whose text mentions `recommendations`, so other sends pay
//! nothing. The cost is bounded: the contact's newest [`OWN_ORDERS`] orders define what they
//! own, and at most [`OTHER_ORDERS`] other orders (the newest that share a product with those)
//! are read, found through the `order_products` index (schema v3); for the tie-break, only the
//! candidates that can reach the list have their orders counted, up to [`ORDER_COUNT_CAP`].
//! Architecture invariant: this module loads and shapes data; it never ranks.

use std::collections::HashMap;

use serde_json::{Value, json};
use waymark_core::TemplateDefinition;
use waymark_core::recommend::{CoPurchases, Product, Recommendation};
use waymark_store::{EngineTx, StoreError};

/// The template variable.
pub const VARIABLE: &str = "recommendations";
/// How many products the list holds; a template shows fewer with Liquid's `limit:`.
pub const LIST_LENGTH: usize = 10;
/// The contact's newest orders whose products count as theirs.
pub const OWN_ORDERS: usize = 50;
/// The most other orders read per contact: the newest ones sharing a product with the contact.
/// Bounds the work of a send on a large shop; older co-purchases then no longer count.
pub const OTHER_ORDERS: usize = 2000;
/// Order counts for the tie-break stop here: a product in this many orders is a best-seller
/// whatever the exact number, and counting it further would cost a send more.
pub const ORDER_COUNT_CAP: usize = 10_000;

/// Whether any field of the template mentions the variable (a cheap, conservative test: a
/// mention in a comment or in plain text only costs a needless computation).
pub fn uses_recommendations(def: &TemplateDefinition) -> bool {
    def.mentions(VARIABLE)
}

/// The contact's recommendations, best first, as templates see them: objects with
/// `product_id`, `sku`, `name`, `price`, `category`, `url`, `image_url` (as last seen in an
/// order; `null` when never given) and `bought_together` (how many other orders hold the
/// product with something the contact bought).
pub fn for_contact(
    tx: &mut dyn EngineTx,
    contact_id: i64,
    limit: usize,
) -> Result<Vec<Value>, StoreError> {
    let own: Vec<Vec<Product>> = tx
        .contact_order_products(contact_id, OWN_ORDERS)?
        .iter()
        .map(Product::list)
        .collect();
    let owned: Vec<String> = {
        let mut ids: Vec<String> = own.iter().flatten().map(|p| p.product_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    if owned.is_empty() {
        return Ok(Vec::new());
    }
    let others: Vec<Vec<Product>> = tx
        .orders_with_products(&owned, contact_id, OTHER_ORDERS)?
        .iter()
        .map(Product::list)
        .collect();
    let counts = CoPurchases::count(&own, &others);
    let candidates: Vec<String> = counts
        .tie_break_ids(limit)
        .into_iter()
        .map(str::to_string)
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let orders_with: HashMap<String, u64> = tx
        .product_order_counts(&candidates, ORDER_COUNT_CAP)?
        .into_iter()
        .map(|(id, n)| (id, n.max(0) as u64))
        .collect();
    Ok(counts
        .rank(&orders_with, limit)
        .into_iter()
        .map(template_item)
        .collect())
}

fn template_item(r: Recommendation) -> Value {
    let p = r.product;
    json!({
        "product_id": p.product_id,
        "sku": p.sku,
        "name": p.name,
        "price": p.price,
        "category": p.category,
        "url": p.url,
        "image_url": p.image_url,
        "bought_together": r.count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use waymark_core::EventKind;
    use waymark_store::NewEvent;
    use waymark_store::prelude::*;
    use waymark_store::sqlite::SqliteStore;

    /// A fresh data directory, removed afterwards.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos();
            let dir = std::env::temp_dir().join(format!(
                "waymark-recommendations-{}-{nanos}",
                std::process::id()
            ));
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn order(n: usize, user: &str, products: Value) -> NewEvent {
        let properties = json!({ "order_id": n, "products": products });
        NewEvent {
            message_id: format!("order-{n}"),
            kind: EventKind::Track,
            name: "Order Completed".into(),
            user_id: Some(user.into()),
            anonymous_id: None,
            previous_id: None,
            properties: properties.as_object().cloned().unwrap_or_default(),
            timestamp: Timestamp::UNIX_EPOCH,
            received_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn p(id: &str) -> Value {
        json!({ "product_id": id, "name": format!("Product {id}") })
    }

    /// Stores the orders, links them to contacts as the engine would, and returns the
    /// recommendations of `user` (product ids) with the contact id.
    fn with_orders<T: Default>(
        orders: &[(&str, Value)],
        user: &str,
        mut f: impl FnMut(&mut dyn EngineTx, i64) -> Result<T, StoreError>,
    ) -> T {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.0).expect("store");
        let events: Vec<NewEvent> = orders
            .iter()
            .enumerate()
            .map(|(n, (u, products))| order(n, u, products.clone()))
            .collect();
        store.append_events(&events).expect("append");
        let mut out = T::default();
        store
            .engine_tx(&mut |tx| {
                let mut me = 0;
                for (seq, (u, _)) in orders.iter().enumerate() {
                    let contact = tx.resolve_contact(Some(u), None, Timestamp::UNIX_EPOCH)?;
                    tx.set_event_contact(seq as i64 + 1, contact)?;
                    if *u == user {
                        me = contact;
                    }
                }
                out = f(tx, me)?;
                Ok(())
            })
            .expect("engine tx");
        out
    }

    fn recommend(orders: &[(&str, Value)], user: &str, limit: usize) -> Vec<String> {
        with_orders(orders, user, |tx, me| {
            Ok(for_contact(tx, me, limit)?
                .iter()
                .map(|r| r["product_id"].as_str().unwrap_or_default().to_string())
                .collect())
        })
    }

    #[test]
    fn the_store_reads_the_newest_other_orders_and_caps_counts() {
        let orders = [
            ("o1", json!([p("A"), p("B")])),
            ("o2", json!([p("A"), p("C")])),
            ("ann", json!([p("A")])),
            ("o3", json!([p("D"), p("A")])),
            ("o4", json!([p("E")])),
        ];
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (newest, counts) = with_orders(&orders, "ann", |tx, me| {
            let newest = tx.orders_with_products(&ids(&["A", "E"]), me, 2)?;
            let counts = tx.product_order_counts(&ids(&["A", "B", "none"]), 3)?;
            Ok((newest, counts))
        });
        // Newest first, Ann's own order left out, at most 2.
        let first_ids: Vec<Value> = newest.iter().map(|o| o[0]["product_id"].clone()).collect();
        assert_eq!(first_ids, [json!("E"), json!("D")]);
        // A is in 4 orders, counted up to 3; unknown products are absent.
        assert_eq!(counts, [("A".to_string(), 3), ("B".to_string(), 1)]);
    }

    #[test]
    fn the_store_finds_co_purchases_through_the_order_index() {
        let orders = [
            ("o1", json!([p("A"), p("B")])),
            ("o2", json!([p("A"), p("B"), p("C")])),
            ("o3", json!([p("C"), {"product_id": "A", "quantity": 4}])),
            ("o4", json!([p("X"), p("Y")])),
            // The contact's own second order of A with D does not make D a suggestion.
            ("ann", json!([p("A"), {"name": "no id"}])),
            ("ann", json!([p("D"), p("A")])),
            ("o5", json!("not a list")),
        ];
        assert_eq!(recommend(&orders, "ann", 10), ["B", "C"]);
        assert_eq!(recommend(&orders, "ann", 1), ["B"]);
        // o4 shares nothing with anyone.
        assert!(recommend(&orders, "o4", 10).is_empty());
        // o3 owns A and C: B (with A twice) first.
        assert_eq!(recommend(&orders, "o3", 10), ["B", "D"]);

        // Equal counts: the product also in many other orders (a best-seller) comes last,
        // although its name comes first.
        let orders = [
            ("o1", json!([p("A"), p("aaa-pop")])),
            ("o2", json!([p("A"), p("zzz-niche")])),
            ("o3", json!([p("aaa-pop"), p("Y")])),
            ("o4", json!([p("Z"), p("aaa-pop")])),
            ("ann", json!([p("A")])),
        ];
        assert_eq!(recommend(&orders, "ann", 10), ["zzz-niche", "aaa-pop"]);
    }

    #[test]
    fn only_templates_that_mention_the_variable_pay_for_it() {
        let def = |html: &str| -> TemplateDefinition {
            serde_json::from_value(json!({
                "id": "t", "channel": "email", "subject": "Hi", "html": html
            }))
            .expect("template")
        };
        assert!(uses_recommendations(&def(
            "{% for p in recommendations limit: 3 %}{{ p.name }}{% endfor %}"
        )));
        assert!(!uses_recommendations(&def(
            "<p>{{ contact.first_name }}</p>"
        )));
    }
}
