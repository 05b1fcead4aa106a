//! Property filters and branch conditions.
//!
//! A `Filter` maps a (dotted) property path to a predicate: `{plan: pro}` means equality,
//! `{rating: {gte: 4}}` a comparison. A `Condition` combines filters over traits, event history
//! and message engagement with `all`, `any` and `not`. Evaluation is pure: history comes in
//! through the `Facts` the stepper is given.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Property path → predicate. Every entry must hold.
pub type Filter = BTreeMap<String, Predicate>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Predicate {
    /// Comparison operators; all given must hold.
    Ops(Ops),
    /// A plain value means equality.
    Equals(Value),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ops {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eq: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ne: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
    /// Substring of a string, or element of an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<Value>,
    /// `true`: the property is present and not null; `false`: it is absent or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// The value is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "in")]
    pub one_of: Option<Vec<Value>>,
}

/// Follows a dotted path (`product.price`) into a JSON object.
pub fn lookup<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut current = map.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Object(o) => o.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Loose equality: numbers compare by value (`"4"` equals `4`), strings exactly.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), _) | (_, Value::Number(_)) => match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => a == b,
    }
}

impl Predicate {
    pub fn matches(&self, actual: Option<&Value>) -> bool {
        let present = actual.filter(|v| !v.is_null());
        match self {
            Predicate::Equals(expected) => present.is_some_and(|a| loosely_equal(a, expected)),
            Predicate::Ops(ops) => {
                if let Some(want) = ops.exists
                    && present.is_some() != want
                {
                    return false;
                }
                let needs_value = ops.eq.is_some()
                    || ops.gt.is_some()
                    || ops.gte.is_some()
                    || ops.lt.is_some()
                    || ops.lte.is_some()
                    || ops.contains.is_some()
                    || ops.one_of.is_some();
                let Some(a) = present else {
                    // `ne` holds for an absent value; everything else needs one.
                    return !needs_value;
                };
                let num = as_number(a);
                let cmp = |bound: Option<f64>, ok: fn(f64, f64) -> bool| {
                    bound.is_none_or(|b| num.is_some_and(|n| ok(n, b)))
                };
                ops.eq.as_ref().is_none_or(|e| loosely_equal(a, e))
                    && ops.ne.as_ref().is_none_or(|e| !loosely_equal(a, e))
                    && cmp(ops.gt, |n, b| n > b)
                    && cmp(ops.gte, |n, b| n >= b)
                    && cmp(ops.lt, |n, b| n < b)
                    && cmp(ops.lte, |n, b| n <= b)
                    && ops.contains.as_ref().is_none_or(|c| match (a, c) {
                        (Value::String(s), Value::String(needle)) => s.contains(needle.as_str()),
                        (Value::Array(items), needle) => {
                            items.iter().any(|i| loosely_equal(i, needle))
                        }
                        _ => false,
                    })
                    && ops
                        .one_of
                        .as_ref()
                        .is_none_or(|set| set.iter().any(|e| loosely_equal(a, e)))
            }
        }
    }
}

pub fn filter_matches(filter: &Filter, properties: &Map<String, Value>) -> bool {
    filter
        .iter()
        .all(|(path, predicate)| predicate.matches(lookup(properties, path)))
}

/// A branch condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The contact's traits match this filter.
    Traits(Filter),
    /// The contact did (or did not) perform an event since entering the journey.
    Event(EventCondition),
    /// Engagement with a message sent earlier in the same enrollment.
    Message(MessageCondition),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventCondition {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: Filter,
    /// `true` (default): did perform it; `false`: did not.
    #[serde(default = "yes")]
    pub performed: bool,
    /// Only count events whose journey key property equals this enrollment's key.
    #[serde(default)]
    pub match_key: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Engagement {
    Opened,
    Clicked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageCondition {
    /// The id of a send node earlier in the journey.
    pub node: String,
    pub engagement: Engagement,
}

impl Condition {
    /// Every event name and message node this condition refers to, for validation.
    pub fn visit(&self, f: &mut dyn FnMut(&Condition)) {
        f(self);
        match self {
            Condition::All(cs) | Condition::Any(cs) => cs.iter().for_each(|c| c.visit(f)),
            Condition::Not(c) => c.visit(f),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(v: Value) -> Filter {
        serde_json::from_value(v).unwrap()
    }
    fn props(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn equality_and_operators() {
        let p =
            props(json!({"plan": "pro", "rating": "5", "tags": ["a", "b"], "cart": {"total": 42}}));
        assert!(filter_matches(&filter(json!({"plan": "pro"})), &p));
        assert!(!filter_matches(&filter(json!({"plan": "free"})), &p));
        assert!(filter_matches(&filter(json!({"rating": {"gte": 4}})), &p));
        assert!(!filter_matches(&filter(json!({"rating": {"lt": 4}})), &p));
        assert!(filter_matches(
            &filter(json!({"cart.total": {"gt": 40, "lte": 42}})),
            &p
        ));
        assert!(filter_matches(
            &filter(json!({"tags": {"contains": "b"}})),
            &p
        ));
        assert!(filter_matches(
            &filter(json!({"plan": {"in": ["pro", "team"]}})),
            &p
        ));
        assert!(filter_matches(
            &filter(json!({"missing": {"exists": false}})),
            &p
        ));
        assert!(!filter_matches(&filter(json!({"missing": {"gte": 1}})), &p));
        assert!(filter_matches(&filter(json!({"missing": {"ne": 1}})), &p));
    }

    #[test]
    fn unknown_operator_is_rejected() {
        let parsed: Result<Ops, _> = serde_json::from_value(json!({"greater": 3}));
        assert!(parsed.is_err());
    }
}
