//! Property filters and branch conditions.
//!
//! A `Filter` maps a (dotted) property path to a predicate: `{plan: pro}` means equality,
//! `{rating: {gte: 4}}` a comparison. A `Condition` combines filters over traits, event history
//! and message engagement with `all`, `any` and `not`. Evaluation is pure: history comes in
//! through the `Facts` the stepper is given.
//!
//! Date operators (`within_last`, `older_than`, `within_next`, `anniversary`, `before`,
//! `after`) need the current time and a time zone: they hold only through
//! [`Predicate::matches_at`] / [`filter_matches_at`]; plain [`Predicate::matches`] treats them as
//! false. Their semantics are in `crate::condition::dates` and `docs/conditions.md`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::condition::EvalClock;
use crate::condition::dates;

/// Property path → predicate. Every entry must hold.
pub type Filter = BTreeMap<String, Predicate>;

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
// Filters hold a handful of predicates; boxing `Ops` would only make them harder to build.
#[allow(clippy::large_enum_variant)]
pub enum Predicate {
    /// Comparison operators; all given must hold.
    Ops(Ops),
    /// A plain value means equality.
    Equals(Value),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ops {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_value"
    )]
    pub eq: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_value"
    )]
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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_value"
    )]
    pub contains: Option<Value>,
    /// `true`: the property is present and not null; `false`: it is absent or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// The value is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "in")]
    pub one_of: Option<Vec<Value>>,
    /// A date within this duration before now: `now - d < date <= now` (e.g. `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_last: Option<String>,
    /// A date at least this duration before now: `date <= now - d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<String>,
    /// A date within this duration after now: `now < date <= now + d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_next: Option<String>,
    /// `today`: the date's month and day are today's in the evaluation time zone (a 29 February
    /// counts on 28 February in other years).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anniversary: Option<String>,
    /// A date strictly before this one (RFC 3339 timestamp or `YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// A date strictly after this one (RFC 3339 timestamp or `YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// A location within `km` kilometres of a point (great-circle distance). The value may be
    /// `{lat, lon}` (or `latitude`/`longitude`), `[lat, lon]` or `"lat,lon"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near: Option<Near>,
}

/// A circle on the globe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Near {
    pub lat: f64,
    pub lon: f64,
    pub km: f64,
}

impl Near {
    /// Whether a location value lies within the circle.
    pub fn contains(&self, location: &Value) -> bool {
        coordinates(location)
            .is_some_and(|(lat, lon)| haversine_km(self.lat, self.lon, lat, lon) <= self.km)
    }
}

/// Reads `{lat, lon}`, `{latitude, longitude}`, `[lat, lon]` or `"lat,lon"`.
pub fn coordinates(v: &Value) -> Option<(f64, f64)> {
    let pair = match v {
        Value::Object(o) => (
            o.get("lat")
                .or_else(|| o.get("latitude"))
                .and_then(as_number)?,
            o.get("lon")
                .or_else(|| o.get("lng"))
                .or_else(|| o.get("longitude"))
                .and_then(as_number)?,
        ),
        Value::Array(a) if a.len() == 2 => (as_number(&a[0])?, as_number(&a[1])?),
        Value::String(s) => {
            let (a, b) = s.split_once(',')?;
            (a.trim().parse().ok()?, b.trim().parse().ok()?)
        }
        _ => return None,
    };
    ((-90.0..=90.0).contains(&pair.0) && (-180.0..=180.0).contains(&pair.1)).then_some(pair)
}

/// Great-circle distance on a sphere of the Earth's mean radius.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0088;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
}

/// An object is an operator object when it parses as one (otherwise it stays an equality with
/// that object, which validation reports as an unknown operator); anything else is a value to
/// compare with. Unlike a derived `untagged`, an array is never read as an operator object.
impl<'de> Deserialize<'de> for Predicate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        if value.is_object()
            && let Ok(ops) = serde_json::from_value::<Ops>(value.clone())
        {
            return Ok(Predicate::Ops(ops));
        }
        Ok(Predicate::Equals(value))
    }
}

/// `null` given to an operator is a value to compare with (`{"ne": null}`), not "no operator",
/// so that every `Ops` survives a trip through JSON.
fn some_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Ops {
    /// Whether any operator compares the value with the current time or a date.
    pub fn has_date_ops(&self) -> bool {
        self.within_last.is_some()
            || self.older_than.is_some()
            || self.within_next.is_some()
            || self.anniversary.is_some()
            || self.before.is_some()
            || self.after.is_some()
    }
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

pub(crate) fn as_number(v: &Value) -> Option<f64> {
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
    /// Matches without a clock: date operators (`within_last`, `anniversary`, …) never hold.
    pub fn matches(&self, actual: Option<&Value>) -> bool {
        self.matches_when(actual, None)
    }

    /// Matches at a moment in a time zone, so that date operators can be evaluated.
    pub fn matches_at(&self, actual: Option<&Value>, clock: &EvalClock) -> bool {
        self.matches_when(actual, Some(clock))
    }

    /// The earliest instant after `clock.now` at which this predicate's result for `actual` may
    /// change by the passing of time alone (only date operators depend on time).
    pub fn next_change(&self, actual: Option<&Value>, clock: &EvalClock) -> Option<Timestamp> {
        match self {
            Predicate::Ops(ops) if ops.has_date_ops() => {
                dates::predicate_next_change(ops, actual.filter(|v| !v.is_null()), clock)
            }
            _ => None,
        }
    }

    fn matches_when(&self, actual: Option<&Value>, clock: Option<&EvalClock>) -> bool {
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
                    || ops.one_of.is_some()
                    || ops.near.is_some()
                    || ops.has_date_ops();
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
                    && ops.near.is_none_or(|n| n.contains(a))
                    && (!ops.has_date_ops()
                        || clock.is_some_and(|clock| dates::date_ops_hold(ops, a, clock)))
            }
        }
    }
}

pub fn filter_matches(filter: &Filter, properties: &Map<String, Value>) -> bool {
    filter
        .iter()
        .all(|(path, predicate)| predicate.matches(lookup(properties, path)))
}

/// [`filter_matches`] at a moment, with date operators.
pub fn filter_matches_at(
    filter: &Filter,
    properties: &Map<String, Value>,
    clock: &EvalClock,
) -> bool {
    filter
        .iter()
        .all(|(path, predicate)| predicate.matches_at(lookup(properties, path), clock))
}

/// The earliest instant after `clock.now` at which [`filter_matches_at`] may change for these
/// properties by the passing of time alone.
pub fn filter_next_change(
    filter: &Filter,
    properties: &Map<String, Value>,
    clock: &EvalClock,
) -> Option<Timestamp> {
    filter
        .iter()
        .filter_map(|(path, predicate)| predicate.next_change(lookup(properties, path), clock))
        .min()
}

/// What happened to a message (the condition language's engagement levels).
pub use crate::condition::Engagement;

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
