//! Validation: every problem of a condition, each with the JSON path to the part concerned
//! (`all[1].did.within`) and a stable code.

use serde::Serialize;
use serde_json::Value;

use super::dates::is_date_literal;
use super::{Condition, Times};
use crate::duration::Duration;
use crate::filter::{Filter, Ops, Predicate};
use crate::limits::{MAX_CONDITION_DEPTH, MAX_VALUE_DEPTH, json_depth};

/// Where a condition is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A segment: about the contact only; `event … since entry` and `message …` are not allowed.
    Segment,
    /// A branch node in a journey: the enrollment scope is allowed too.
    Branch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{path}: {message} [{code}]")]
pub struct ConditionError {
    /// Stable machine-readable code, e.g. `invalid_duration`.
    pub code: &'static str,
    /// The JSON path of the offending part, e.g. `all[1].did.within` (empty: the whole).
    pub path: String,
    pub message: String,
}

/// Whether a compared value is or holds an object (its depth is already bounded).
fn contains_object(value: &Value) -> bool {
    match value {
        Value::Object(_) => true,
        Value::Array(items) => items.iter().any(contains_object),
        _ => false,
    }
}

/// Every problem of `condition` used in `scope`; empty when it is valid.
pub fn validate(condition: &Condition, scope: Scope) -> Vec<ConditionError> {
    let mut v = Validator {
        scope,
        errors: Vec::new(),
    };
    v.condition(condition, "", 0);
    v.errors
}

struct Validator {
    scope: Scope,
    errors: Vec<ConditionError>,
}

fn join(path: &str, part: &str) -> String {
    if path.is_empty() {
        part.to_string()
    } else if part.starts_with('[') {
        format!("{path}{part}")
    } else {
        format!("{path}.{part}")
    }
}

impl Validator {
    fn push(&mut self, code: &'static str, path: String, message: impl Into<String>) {
        self.errors.push(ConditionError {
            code,
            path,
            message: message.into(),
        });
    }

    fn name(&mut self, value: &str, path: String, what: &str) {
        if value.trim().is_empty() {
            self.push("empty_name", path, format!("{what} must not be empty"));
        }
    }

    fn duration(&mut self, raw: &str, path: String) {
        if let Err(message) = Duration::parse(raw) {
            self.push("invalid_duration", path, message);
        }
    }

    fn window(&mut self, within: Option<&str>, path: &str) {
        if let Some(w) = within {
            self.duration(w, join(path, "within"));
        }
    }

    /// `depth`: how many `all`, `any` and `not` enclose `c`.
    fn condition(&mut self, c: &Condition, path: &str, depth: usize) {
        if depth > MAX_CONDITION_DEPTH {
            // Reported once, at the outermost part that is too deep; nothing below is checked.
            self.push(
                "too_deep",
                path.to_string(),
                format!("conditions nest at most {MAX_CONDITION_DEPTH} levels deep"),
            );
            return;
        }
        match c {
            Condition::Traits(filter) => {
                let p = join(path, "traits");
                if filter.is_empty() {
                    self.push(
                        "empty_condition",
                        p.clone(),
                        "a traits condition needs at least one property",
                    );
                }
                self.filter(filter, &p);
            }
            Condition::Did(h) => {
                let p = join(path, "did");
                self.name(&h.event, join(&p, "event"), "the event name");
                self.window(h.within.as_deref(), &p);
                self.filter(&h.filter, &join(&p, "filter"));
                if h.times == Times::Gte(0) {
                    self.push(
                        "invalid_count",
                        join(&p, "times"),
                        "`at least 0 times` always holds; use a count of 1 or more",
                    );
                }
            }
            Condition::Aggregate(a) => {
                let p = join(path, "aggregate");
                self.name(&a.event, join(&p, "event"), "the event name");
                self.name(&a.property, join(&p, "property"), "the property");
                self.window(a.within.as_deref(), &p);
                self.filter(&a.filter, &join(&p, "filter"));
                if !a.value.is_finite() {
                    self.push(
                        "invalid_number",
                        join(&p, "value"),
                        "must be a finite number",
                    );
                }
            }
            Condition::Engaged(e) => {
                let p = join(path, "engaged");
                if let Some(j) = &e.journey {
                    self.name(j, join(&p, "journey"), "the journey id");
                }
                if let Some(t) = &e.template {
                    self.name(t, join(&p, "template"), "the template id");
                }
                self.window(e.within.as_deref(), &p);
            }
            Condition::InList(list) => self.name(list, join(path, "in_list"), "the list name"),
            Condition::Event(e) => {
                let p = join(path, "event");
                self.enrollment_only(&p, "`event … since entry`");
                self.name(&e.name, join(&p, "name"), "the event name");
                self.filter(&e.filter, &join(&p, "filter"));
            }
            Condition::Message(m) => {
                let p = join(path, "message");
                self.enrollment_only(&p, "`message … opened`");
                self.name(&m.node, join(&p, "node"), "the node id");
            }
            Condition::Trigger(f) => {
                let p = join(path, "trigger");
                self.enrollment_only(&p, "`trigger where …`");
                if f.is_empty() {
                    self.push(
                        "empty_condition",
                        p.clone(),
                        "`trigger` needs at least one property comparison",
                    );
                }
                self.filter(f, &p);
            }
            Condition::All(cs) | Condition::Any(cs) => {
                let key = if matches!(c, Condition::All(_)) {
                    "all"
                } else {
                    "any"
                };
                let p = join(path, key);
                if cs.is_empty() {
                    self.push(
                        "empty_condition",
                        p.clone(),
                        format!("`{key}` needs at least one condition"),
                    );
                }
                for (i, child) in cs.iter().enumerate() {
                    self.condition(child, &join(&p, &format!("[{i}]")), depth + 1);
                }
            }
            Condition::Not(inner) => self.condition(inner, &join(path, "not"), depth + 1),
        }
    }

    fn enrollment_only(&mut self, path: &str, what: &str) {
        if self.scope == Scope::Segment {
            self.push(
                "enrollment_scope",
                path.to_string(),
                format!("{what} is about a journey enrollment and cannot be used in a segment"),
            );
        }
    }

    fn filter(&mut self, filter: &Filter, path: &str) {
        for (property, predicate) in filter {
            let p = join(path, property);
            if property.trim().is_empty() {
                self.push("empty_name", p.clone(), "the property must not be empty");
            }
            // `{"email": {}}` compares nothing: it has no text form, and in a traits condition
            // its canonical form would be an empty `all`.
            if matches!(predicate, Predicate::Ops(ops) if *ops == Ops::default()) {
                self.push(
                    "empty_condition",
                    p.clone(),
                    "give an operator (eq, ne, gt, gte, lt, lte, contains, exists, in, ...)",
                );
            }
            let value_depth = match predicate {
                Predicate::Equals(v) => json_depth(v),
                Predicate::Ops(ops) => {
                    serde_json::to_value(ops).map_or(0, |v| json_depth(&v).saturating_sub(1))
                }
            };
            if value_depth > MAX_VALUE_DEPTH {
                self.push(
                    "too_deep",
                    p,
                    format!("a compared value nests at most {MAX_VALUE_DEPTH} levels deep"),
                );
                continue;
            }
            let compared: Vec<&Value> = match predicate {
                Predicate::Equals(Value::Object(_)) => Vec::new(),
                Predicate::Equals(v) => vec![v],
                Predicate::Ops(o) => [&o.eq, &o.ne, &o.contains]
                    .into_iter()
                    .flatten()
                    .chain(o.one_of.iter().flatten())
                    .collect(),
            };
            if compared.into_iter().any(contains_object) {
                // The text form has no objects, and comparing one whole is never meant.
                self.push(
                    "invalid_value",
                    p.clone(),
                    "an object cannot be compared; compare a property inside it \
                     (`address.city = \"Milan\"`)",
                );
            }
            match predicate {
                Predicate::Equals(Value::Object(o)) => {
                    let keys: Vec<_> = o.keys().map(String::as_str).collect();
                    self.push(
                        "invalid_filter",
                        p,
                        format!(
                            "unknown operator in {keys:?}; use eq, ne, gt, gte, lt, lte, contains, \
                             exists, in, within_last, older_than, within_next, anniversary, \
                             before or after"
                        ),
                    );
                }
                Predicate::Equals(Value::Null) => self.never_null(p),
                Predicate::Equals(_) => {}
                Predicate::Ops(ops) => {
                    if ops.eq == Some(Value::Null) {
                        self.never_null(join(&p, "eq"));
                    }
                    self.ops(ops, &p);
                }
            }
        }
    }

    fn never_null(&mut self, path: String) {
        self.push(
            "never_holds",
            path,
            "`= null` never holds (a null value counts as absent); use `not exists`",
        );
    }

    fn ops(&mut self, ops: &Ops, path: &str) {
        for (name, value) in [
            ("within_last", &ops.within_last),
            ("older_than", &ops.older_than),
            ("within_next", &ops.within_next),
        ] {
            if let Some(raw) = value {
                self.duration(raw, join(path, name));
            }
        }
        if let Some(a) = &ops.anniversary
            && a.trim() != "today"
        {
            self.push(
                "invalid_filter",
                join(path, "anniversary"),
                format!("`{a}` is not supported; use `today`"),
            );
        }
        for (name, value) in [("before", &ops.before), ("after", &ops.after)] {
            if let Some(raw) = value
                && !is_date_literal(raw)
            {
                self.push(
                    "invalid_date",
                    join(path, name),
                    format!("`{raw}` is not a date such as 2026-01-31 or 2026-01-31T09:00:00Z"),
                );
            }
        }
        for (name, value) in [
            ("gt", ops.gt),
            ("gte", ops.gte),
            ("lt", ops.lt),
            ("lte", ops.lte),
        ] {
            if value.is_some_and(|v| !v.is_finite()) {
                self.push(
                    "invalid_number",
                    join(path, name),
                    "must be a finite number",
                );
            }
        }
        if let Some(n) = &ops.near
            && !((-90.0..=90.0).contains(&n.lat)
                && (-180.0..=180.0).contains(&n.lon)
                && n.km.is_finite()
                && n.km >= 0.0)
        {
            self.push(
                "invalid_location",
                join(path, "near"),
                "a latitude is -90 to 90, a longitude -180 to 180, a distance at least 0 km",
            );
        }
    }
}
