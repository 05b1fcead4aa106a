//! "Frequently bought together": product recommendations from co-purchases in orders.
//!
//! Pure: the caller loads the orders (the product lists of `Order Completed` events, Segment's
//! e-commerce shape `properties.products: [{product_id, sku, name, price, ...}]`) and, for the
//! tie-break, how many orders contain each candidate; this module only counts and ranks.
//!
//! For a contact who owns products `A` (everything in their own orders), a product `p` they do
//! not own scores:
//!
//! 1. **count**: the number of other orders that contain `p` together with at least one product
//!    of `A` (each order counts once, whatever the quantities or how many of `A` it holds);
//! 2. **Jaccard** between "orders with something of `A`" and "orders with `p`":
//!    `count / (anchor_orders + orders_with_p - count)`, in `[0, 1]`;
//! 3. then the product name and id, so equal scores always come out in the same order.
//!
//! Count first, because it is the evidence: on a small shop most counts are 1 to 3, and a ratio
//! alone would put a product bought once, with `A`, above one bought with `A` ten times.
//! Jaccard breaks ties so that a best-seller (in many orders, with everything) does not win
//! over an item bought as often with `A` but rarely without it. Jaccard rather than lift because
//! it is bounded and needs no total number of orders, only each candidate's order count, which
//! the store answers from an index; lift explodes for products seen in one or two orders.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};

/// The event that records an order; its `properties.products` are what was bought.
pub const ORDER_EVENT: &str = "Order Completed";

/// The ids of the products an order's properties list, as [`Product::list`] reads them (the
/// stores index them, for "frequently bought together").
pub fn order_product_ids(properties: &Map<String, Value>) -> Vec<String> {
    properties
        .get("products")
        .map(Product::list)
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.product_id)
        .collect()
}

/// A product as an order lists it. Only the id is required; the display fields are kept as
/// the shop sent them (a price may be a number or a string).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    /// `product_id`, or `sku` when there is no `product_id` (numbers are written as text).
    pub product_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

/// An id or text field: a non-empty string, or a number written as text.
fn text(fields: &Map<String, Value>, key: &str) -> Option<String> {
    match fields.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Product {
    /// One entry of `properties.products`; `None` without a usable `product_id` or `sku`.
    pub fn from_json(value: &Value) -> Option<Product> {
        let fields = value.as_object()?;
        let sku = text(fields, "sku");
        Some(Product {
            product_id: text(fields, "product_id").or_else(|| sku.clone())?,
            sku,
            name: text(fields, "name"),
            price: fields
                .get("price")
                .filter(|p| p.is_number() || p.is_string())
                .cloned(),
            category: text(fields, "category"),
            url: text(fields, "url"),
            image_url: text(fields, "image_url"),
        })
    }

    /// The products of an order's `properties.products` (anything else: none), skipping
    /// entries without an id.
    pub fn list(products: &Value) -> Vec<Product> {
        products
            .as_array()
            .map(|a| a.iter().filter_map(Product::from_json).collect())
            .unwrap_or_default()
    }

    /// Fills the display fields this one lacks from an older sighting of the same product.
    fn fill_from(&mut self, older: &Product) {
        let fill = |mine: &mut Option<String>, theirs: &Option<String>| {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        };
        fill(&mut self.sku, &older.sku);
        fill(&mut self.name, &older.name);
        fill(&mut self.category, &older.category);
        fill(&mut self.url, &older.url);
        fill(&mut self.image_url, &older.image_url);
        if self.price.is_none() {
            self.price.clone_from(&older.price);
        }
    }
}

/// One recommended product with why it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub product: Product,
    /// Other orders that hold this product and something the contact bought.
    pub count: u64,
    /// The Jaccard tie-break (see the module documentation).
    pub score: f64,
}

/// Co-purchase counts for one contact, before ranking.
#[derive(Debug, Clone, Default)]
pub struct CoPurchases {
    owned: BTreeSet<String>,
    /// Other orders holding at least one owned product.
    anchor_orders: u64,
    candidates: BTreeMap<String, (Product, u64)>,
}

impl CoPurchases {
    /// Counts co-purchases. `own` are the contact's orders; `others` are other orders, newest
    /// first (a product's display fields are taken from its newest sighting, completed from
    /// older ones). Orders sharing no product with `own` are ignored; a product listed twice in
    /// an order, or with a quantity, counts once for that order.
    pub fn count(own: &[Vec<Product>], others: &[Vec<Product>]) -> CoPurchases {
        let owned: BTreeSet<String> = own.iter().flatten().map(|p| p.product_id.clone()).collect();
        let mut out = CoPurchases {
            owned,
            ..CoPurchases::default()
        };
        for order in others {
            if !order.iter().any(|p| out.owned.contains(&p.product_id)) {
                continue;
            }
            out.anchor_orders += 1;
            let mut seen = BTreeSet::new();
            for p in order {
                if out.owned.contains(&p.product_id) || !seen.insert(&p.product_id) {
                    continue;
                }
                match out.candidates.get_mut(&p.product_id) {
                    Some((known, count)) => {
                        known.fill_from(p);
                        *count += 1;
                    }
                    None => {
                        out.candidates.insert(p.product_id.clone(), (p.clone(), 1));
                    }
                }
            }
        }
        out
    }

    /// The ids of the products the contact bought.
    pub fn owned(&self) -> impl Iterator<Item = &str> {
        self.owned.iter().map(String::as_str)
    }

    /// The ids of every candidate, for looking up how many orders contain each.
    pub fn candidate_ids(&self) -> impl Iterator<Item = &str> {
        self.candidates.keys().map(String::as_str)
    }

    /// The candidates whose order count can change the best `limit`: those with a count at
    /// least the `limit`-th highest. Below it, a product is out whatever its tie-break, so a
    /// caller need not look up its order count.
    pub fn tie_break_ids(&self, limit: usize) -> Vec<&str> {
        let mut counts: Vec<u64> = self.candidates.values().map(|(_, c)| *c).collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        if limit == 0 {
            return Vec::new();
        }
        // Fewer candidates than `limit`: all of them are in.
        let floor = counts.get(limit - 1).copied().unwrap_or(0);
        self.candidates
            .iter()
            .filter(|(_, (_, c))| *c >= floor)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// The best `limit` candidates. `orders_with` gives the number of orders containing a
    /// product; a product missing from it (or with a smaller number than its count, e.g. a
    /// stale index) counts as contained only in the orders seen here.
    pub fn rank(self, orders_with: &HashMap<String, u64>, limit: usize) -> Vec<Recommendation> {
        let anchors = self.anchor_orders;
        let mut ranked: Vec<Recommendation> = self
            .candidates
            .into_values()
            .map(|(product, count)| {
                let with_p = orders_with
                    .get(&product.product_id)
                    .copied()
                    .unwrap_or(0)
                    .max(count);
                let union = (anchors + with_p - count).max(1);
                Recommendation {
                    product,
                    count,
                    score: count as f64 / union as f64,
                }
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(b.score.total_cmp(&a.score))
                .then_with(|| a.product.name.cmp(&b.product.name))
                .then_with(|| a.product.product_id.cmp(&b.product.product_id))
        });
        ranked.truncate(limit);
        ranked
    }
}

/// Counts and ranks in one go, for callers that know no order counts (the tie-break then
/// uses the orders given).
pub fn frequently_bought_together(
    own: &[Vec<Product>],
    others: &[Vec<Product>],
    limit: usize,
) -> Vec<Recommendation> {
    CoPurchases::count(own, others).rank(&HashMap::new(), limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(id: &str) -> Product {
        Product::from_json(&json!({"product_id": id, "name": format!("Name {id}")})).unwrap()
    }

    fn order(ids: &[&str]) -> Vec<Product> {
        ids.iter().map(|id| p(id)).collect()
    }

    fn ids(recs: &[Recommendation]) -> Vec<&str> {
        recs.iter().map(|r| r.product.product_id.as_str()).collect()
    }

    #[test]
    fn recommends_what_others_bought_with_the_contacts_products() {
        let own = vec![order(&["A"])];
        let others = vec![
            order(&["A", "B"]),
            order(&["A", "B", "C"]),
            order(&["A", "C", "B"]),
            order(&["A", "D"]),
            order(&["X", "Y"]), // nothing in common: ignored
        ];
        let recs = frequently_bought_together(&own, &others, 10);
        assert_eq!(ids(&recs), ["B", "C", "D"]);
        assert_eq!(recs[0].count, 3);
        assert_eq!(recs[1].count, 2);
        assert_eq!(recs[2].count, 1);
    }

    #[test]
    fn excludes_products_the_contact_already_bought() {
        let own = vec![order(&["A"]), order(&["B"])];
        let others = vec![order(&["A", "B", "C"]), order(&["B", "A"])];
        let recs = frequently_bought_together(&own, &others, 10);
        assert_eq!(ids(&recs), ["C"]);
        // An order with two owned products still counts once.
        assert_eq!(recs[0].count, 1);
    }

    #[test]
    fn empty_history_gives_nothing() {
        let others = vec![order(&["A", "B"])];
        assert!(frequently_bought_together(&[], &others, 10).is_empty());
        assert!(frequently_bought_together(&[order(&["A"])], &[], 10).is_empty());
        assert!(frequently_bought_together(&[vec![]], &others, 10).is_empty());
    }

    #[test]
    fn ties_break_by_jaccard_then_name_then_id() {
        let own = vec![order(&["A"])];
        let others = vec![
            order(&["A", "pop", "niche"]),
            order(&["A", "zeta", "alpha"]),
        ];
        let mut counts = CoPurchases::count(&own, &others);
        assert_eq!(
            counts.candidate_ids().collect::<Vec<_>>(),
            ["alpha", "niche", "pop", "zeta"]
        );
        // `pop` is in 100 orders overall, `niche` only in this one: same count, niche first.
        let orders_with = HashMap::from([("pop".to_string(), 100), ("niche".to_string(), 1)]);
        let recs = counts.clone().rank(&orders_with, 10);
        assert_eq!(ids(&recs), ["alpha", "niche", "zeta", "pop"]);
        // Without order counts, every tie falls to the name.
        let recs = counts.rank(&HashMap::new(), 10);
        assert_eq!(ids(&recs), ["alpha", "niche", "pop", "zeta"]);
        // Same name: the id decides.
        let same =
            |id: &str| Product::from_json(&json!({"product_id": id, "name": "Mug"})).unwrap();
        counts = CoPurchases::count(&own, &[vec![p("A"), same("m2"), same("m1")]]);
        assert_eq!(ids(&counts.rank(&HashMap::new(), 10)), ["m1", "m2"]);
    }

    #[test]
    fn only_candidates_at_or_above_the_cut_need_a_tie_break() {
        let own = vec![order(&["A"])];
        let others = vec![
            order(&["A", "B", "C", "D"]),
            order(&["A", "B", "C"]),
            order(&["A", "B"]),
        ];
        // Counts: B 3, C 2, D 1.
        let counts = CoPurchases::count(&own, &others);
        assert_eq!(counts.tie_break_ids(1), ["B"]);
        assert_eq!(counts.tie_break_ids(2), ["B", "C"]);
        assert_eq!(counts.tie_break_ids(10), ["B", "C", "D"]);
        assert!(counts.tie_break_ids(0).is_empty());
        assert!(CoPurchases::count(&own, &[]).tie_break_ids(3).is_empty());
    }

    #[test]
    fn count_wins_over_the_tie_break_and_limit_applies() {
        let own = vec![order(&["A"])];
        let others = vec![order(&["A", "B"]), order(&["A", "B"]), order(&["A", "C"])];
        let orders_with = HashMap::from([("B".to_string(), 1000), ("C".to_string(), 1)]);
        let recs = CoPurchases::count(&own, &others).rank(&orders_with, 1);
        assert_eq!(ids(&recs), ["B"]);
        assert!(recs[0].score < 0.01);
    }

    #[test]
    fn skips_products_without_ids_and_ignores_quantity() {
        let products = json!([
            {"name": "No id", "price": 3},
            {"product_id": "", "name": "Empty id"},
            {"sku": "SKU-1", "name": "By sku"},
            {"product_id": 42, "name": "Numeric", "quantity": 5, "price": "9.90"},
            {"product_id": 42, "name": "Numeric again", "quantity": 2},
            "not an object"
        ]);
        let listed = Product::list(&products);
        assert_eq!(
            listed
                .iter()
                .map(|p| p.product_id.as_str())
                .collect::<Vec<_>>(),
            ["SKU-1", "42", "42"]
        );
        assert_eq!(listed[1].price, Some(json!("9.90")));
        assert!(Product::list(&json!({"product_id": "A"})).is_empty());

        let own = vec![Product::list(&json!([{"product_id": "A", "quantity": 7}]))];
        let others = vec![Product::list(&json!([
            {"product_id": "A", "quantity": 3},
            {"product_id": "B", "quantity": 10},
            {"product_id": "B", "quantity": 1}
        ]))];
        let recs = frequently_bought_together(&own, &others, 10);
        assert_eq!(ids(&recs), ["B"]);
        assert_eq!(recs[0].count, 1);
    }

    #[test]
    fn display_fields_come_from_the_newest_order() {
        let own = vec![order(&["A"])];
        let newest = Product::list(&json!([
            {"product_id": "A"},
            {"product_id": "B", "name": "Bag v2", "price": 25}
        ]));
        let older = Product::list(&json!([
            {"product_id": "A"},
            {"product_id": "B", "name": "Bag", "price": 20, "url": "https://shop.example/bag"}
        ]));
        let recs = frequently_bought_together(&own, &[newest, older], 10);
        let b = &recs[0].product;
        assert_eq!(b.name.as_deref(), Some("Bag v2"));
        assert_eq!(b.price, Some(json!(25)));
        assert_eq!(b.url.as_deref(), Some("https://shop.example/bag"));
    }
}
