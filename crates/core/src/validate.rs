//! Journey validation: parses a document node by node and checks the graph, collecting every
//! error (with the node and field it concerns) instead of stopping at the first.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::condition::{Condition, Scope};
use crate::duration::Duration;
use crate::filter::{Filter, Predicate};
use crate::journey::{Channel, JourneyDocument, Node, NodeKind, Reentry, TriggerNode, WebhookNode};
use crate::limits::{MAX_DOCUMENT_DEPTH, json_depth};
use crate::suggest::{did_you_mean, explain_serde_error, parse_unknown_name};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ValidationError {
    /// Stable machine-readable code, e.g. `unknown_node`.
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.node, &self.field) {
            (Some(n), Some(fl)) => write!(f, "node `{n}`, {fl}: {} [{}]", self.message, self.code),
            (Some(n), None) => write!(f, "node `{n}`: {} [{}]", self.message, self.code),
            (None, Some(fl)) => write!(f, "{fl}: {} [{}]", self.message, self.code),
            (None, None) => write!(f, "{} [{}]", self.message, self.code),
        }
    }
}

fn err(
    code: &'static str,
    node: Option<&str>,
    field: Option<&str>,
    message: String,
) -> ValidationError {
    ValidationError {
        code,
        message,
        node: node.map(str::to_string),
        field: field.map(str::to_string),
    }
}

/// A document is stored as JSON (conditions in their JSON form, which nests deeper than the
/// text form) and must read back: each node, as stored, nests at most
/// [`MAX_DOCUMENT_DEPTH`] levels less the document's own two.
fn check_depth(document: &JourneyDocument) -> Vec<ValidationError> {
    let limit = MAX_DOCUMENT_DEPTH - 2;
    let mut errors = Vec::new();
    for (i, node) in document.nodes.iter().enumerate() {
        let depth = serde_json::to_value(node).map_or(0, |v| json_depth(&v));
        if depth > limit {
            errors.push(err(
                "too_deep",
                Some(&node.id),
                Some(&format!("nodes[{i}]")),
                format!("the node nests {depth} levels deep as JSON; at most {limit} are allowed"),
            ));
        }
    }
    let mut shell = document.clone();
    shell.nodes.clear();
    let depth = serde_json::to_value(&shell).map_or(0, |v| json_depth(&v));
    if depth > MAX_DOCUMENT_DEPTH {
        errors.push(err(
            "too_deep",
            None,
            None,
            format!(
                "the document nests {depth} levels deep as JSON; at most {MAX_DOCUMENT_DEPTH} are allowed"
            ),
        ));
    }
    errors
}

/// Looks up a template's channel by id; `None` when it does not exist.
pub type TemplateLookup<'a> = &'a dyn Fn(&str) -> Option<Channel>;

/// A node whose settings did not parse. Its id stays known, so that the edges to and from it
/// are not also reported as leading to a node that does not exist: its own error is the one
/// that says what is wrong.
struct UnparsedNode {
    id: String,
    /// The `type` it declares, when it names one (it may be the unknown one).
    kind: Option<String>,
}

/// Parses a journey document from a JSON value (as read from YAML or JSON) and validates it.
/// Nodes are parsed one by one so that one bad node does not hide the errors of the others.
pub fn parse_and_validate(
    value: &Value,
    templates: Option<TemplateLookup<'_>>,
) -> Result<JourneyDocument, Vec<ValidationError>> {
    let Some(object) = value.as_object() else {
        return Err(vec![err(
            "invalid_document",
            None,
            None,
            "a journey must be an object".into(),
        )]);
    };
    let mut errors = Vec::new();
    let mut shell = object.clone();
    let raw_nodes = shell.insert("nodes".into(), Value::Array(vec![]));
    let mut nodes = Vec::new();
    let mut unparsed = Vec::new();
    match raw_nodes {
        Some(Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let id = item.get("id").and_then(Value::as_str).map(str::to_string);
                let kind = item.get("type").and_then(Value::as_str).map(str::to_string);
                match serde_json::from_value::<Node>(item) {
                    Ok(node) => nodes.push(node),
                    Err(e) => {
                        let message = e.to_string();
                        // An unknown variant is the node's type only when it is the name the
                        // node gives as `type` (a nested setting may be an enum too).
                        let noun = parse_unknown_name(&message)
                            .filter(|u| u.what == "variant" && Some(u.name) == kind.as_deref())
                            .map(|_| "node type");
                        errors.push(err(
                            "invalid_node",
                            Some(id.as_deref().unwrap_or(&format!("#{i}"))),
                            Some(&format!("nodes[{i}]")),
                            explain_serde_error(&message, noun),
                        ));
                        if let Some(id) = id {
                            unparsed.push(UnparsedNode { id, kind });
                        }
                    }
                }
            }
        }
        Some(_) => errors.push(err(
            "invalid_document",
            None,
            Some("nodes"),
            "must be a list".into(),
        )),
        None => errors.push(err(
            "invalid_document",
            None,
            Some("nodes"),
            "is required".into(),
        )),
    }
    let document = match serde_json::from_value::<JourneyDocument>(Value::Object(shell)) {
        Ok(mut d) => {
            d.nodes = nodes;
            Some(d)
        }
        Err(e) => {
            errors.push(err(
                "invalid_document",
                None,
                None,
                explain_serde_error(&e.to_string(), None),
            ));
            None
        }
    };
    if let Some(document) = &document {
        errors.extend(check_document(document, templates, &unparsed));
        errors.extend(check_depth(document));
    }
    match document {
        Some(d) if errors.is_empty() => Ok(d),
        _ => Err(errors),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_filter(
    filter: &Filter,
    node: Option<&str>,
    field: &str,
    errors: &mut Vec<ValidationError>,
) {
    for (path, predicate) in filter {
        if let Predicate::Equals(Value::Object(o)) = predicate {
            let ops: Vec<_> = o.keys().map(String::as_str).collect();
            errors.push(err(
                "invalid_filter",
                node,
                Some(&format!("{field}.{path}")),
                format!(
                    "unknown operator in {ops:?}; use eq, ne, gt, gte, lt, lte, contains, exists or in"
                ),
            ));
        }
    }
}

fn check_trigger(t: &TriggerNode, id: Option<&str>, errors: &mut Vec<ValidationError>) {
    let kinds = [
        t.event.is_some(),
        t.list.is_some(),
        t.segment.is_some(),
        t.api,
        t.date.is_some(),
        t.inactivity.is_some(),
        t.schedule.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if kinds != 1 {
        errors.push(err(
            "invalid_trigger",
            id,
            None,
            "a trigger needs exactly one of `event`, `list`, `segment`, `api`, `date`, `inactivity` and `schedule`".into(),
        ));
    }
    if let Some(Err((field, message))) = t.timing() {
        let code = if field.ends_with("timezone") {
            "invalid_timezone"
        } else if field.ends_with("cron") {
            "invalid_cron"
        } else if field.ends_with("time") {
            "invalid_time"
        } else if field.ends_with("offset") || field.ends_with("for") {
            "invalid_duration"
        } else {
            "required"
        };
        errors.push(err(code, id, Some(field), message));
    }
    if let Some(s) = t.schedule.as_ref().and_then(|s| s.segment.as_ref())
        && !valid_id(s)
    {
        errors.push(err(
            "invalid_id",
            id,
            Some("schedule.segment"),
            format!("`{s}` is not a segment id"),
        ));
    }
    let empty = |v: &Option<String>| v.as_deref().is_some_and(|s| s.trim().is_empty());
    if empty(&t.event) {
        errors.push(err(
            "required",
            id,
            Some("event"),
            "must name an event".into(),
        ));
    }
    if empty(&t.list) {
        errors.push(err("required", id, Some("list"), "must name a list".into()));
    }
    if let Some(s) = &t.segment
        && !valid_id(&s.id)
    {
        errors.push(err(
            "invalid_id",
            id,
            Some("segment.id"),
            format!("`{}` is not a segment id", s.id),
        ));
    }
    check_filter(&t.filter, id, "filter", errors);
}

fn check_duration(raw: &str, node: Option<&str>, field: &str, errors: &mut Vec<ValidationError>) {
    if let Err(message) = Duration::parse(raw) {
        errors.push(err("invalid_duration", node, Some(field), message));
    }
}

/// The longest a webhook may wait for its answer.
pub const WEBHOOK_MAX_TIMEOUT_SECONDS: i64 = 60;

/// Headers Waymark sets itself on a webhook call; a node may not set them.
const RESERVED_WEBHOOK_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

fn check_webhook(w: &WebhookNode, id: Option<&str>, errors: &mut Vec<ValidationError>) {
    match url::Url::parse(w.url.trim()) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => errors.push(err(
            "invalid_url",
            id,
            Some("url"),
            format!("`{}` must be an http or https URL", w.url),
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => errors.push(err(
            "invalid_url",
            id,
            Some("url"),
            format!("`{}` has no host", w.url),
        )),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => errors.push(err(
            "invalid_url",
            id,
            Some("url"),
            "credentials in the URL are not allowed; send them in `headers`".into(),
        )),
        Ok(_) => {}
        Err(e) => errors.push(err(
            "invalid_url",
            id,
            Some("url"),
            format!("`{}` is not a valid URL: {e}", w.url),
        )),
    }
    if let Some(body) = &w.body
        && crate::limits::liquid_depth(body) > crate::limits::MAX_LIQUID_DEPTH
    {
        errors.push(err(
            "too_deep",
            id,
            Some("body"),
            format!(
                "Liquid blocks nest at most {} levels deep",
                crate::limits::MAX_LIQUID_DEPTH
            ),
        ));
    }
    match Duration::parse(w.timeout_text()) {
        Err(message) => errors.push(err("invalid_duration", id, Some("timeout"), message)),
        Ok(d) if d.seconds() < 1 || d.seconds() > WEBHOOK_MAX_TIMEOUT_SECONDS => errors.push(err(
            "invalid_duration",
            id,
            Some("timeout"),
            format!("a webhook timeout is between 1s and {WEBHOOK_MAX_TIMEOUT_SECONDS}s"),
        )),
        Ok(_) => {}
    }
    for (name, value) in &w.headers {
        let field = format!("headers.{name}");
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            errors.push(err(
                "invalid_header",
                id,
                Some(&field),
                format!("`{name}` is not a valid header name"),
            ));
        } else if RESERVED_WEBHOOK_HEADERS.contains(&name.to_ascii_lowercase().as_str())
            || name.to_ascii_lowercase().starts_with("x-waymark-")
        {
            errors.push(err(
                "invalid_header",
                id,
                Some(&field),
                format!("`{name}` is set by Waymark and cannot be overridden"),
            ));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            errors.push(err(
                "invalid_header",
                id,
                Some(&field),
                "header values cannot contain line breaks".into(),
            ));
        }
    }
    if w.body.as_deref().is_some_and(|b| b.trim().is_empty()) {
        errors.push(err(
            "required",
            id,
            Some("body"),
            "must not be empty (leave it out for the default body)".into(),
        ));
    }
}

/// Checks a parsed document: ids, edges, outputs, reachability, cycles without a wait,
/// durations, filters and (when a lookup is given) that templates exist with the right channel.
pub fn validate(
    doc: &JourneyDocument,
    templates: Option<TemplateLookup<'_>>,
) -> Vec<ValidationError> {
    check_document(doc, templates, &[])
}

/// [`validate`], knowing the ids of the nodes that did not parse.
fn check_document(
    doc: &JourneyDocument,
    templates: Option<TemplateLookup<'_>>,
    unparsed: &[UnparsedNode],
) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    if !valid_id(&doc.id) {
        errors.push(err(
            "invalid_id",
            None,
            Some("id"),
            format!("`{}` must be 1-100 letters, digits, `-` or `_`", doc.id),
        ));
    }
    if doc.name.trim().is_empty() {
        errors.push(err(
            "required",
            None,
            Some("name"),
            "must not be empty".into(),
        ));
    }
    if let Reentry::Cooldown(d) = &doc.entry.reentry {
        check_duration(d, None, "entry.reentry.cooldown", &mut errors);
    }
    let has_key = doc.entry.key.is_some();
    if let Some(tz) = &doc.timezone
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        errors.push(err(
            "invalid_timezone",
            None,
            Some("timezone"),
            format!("`{tz}` is not a known time zone"),
        ));
    }
    if doc
        .entry
        .key
        .as_deref()
        .is_some_and(|k| k.trim().is_empty())
    {
        errors.push(err(
            "required",
            None,
            Some("entry.key"),
            "must not be empty".into(),
        ));
    }
    for (i, exit) in doc.goal.iter().chain(doc.exit_on.iter()).enumerate() {
        let field = if doc.goal.is_some() && i == 0 {
            "goal".to_string()
        } else {
            "exit_on".to_string()
        };
        if exit.event.trim().is_empty() {
            errors.push(err(
                "required",
                None,
                Some(&format!("{field}.event")),
                "must not be empty".into(),
            ));
        }
        if exit.match_key == Some(true) && !has_key {
            errors.push(err(
                "no_key",
                None,
                Some(&format!("{field}.match_key")),
                "the journey has no entry.key to match".into(),
            ));
        }
        check_filter(&exit.filter, None, &format!("{field}.filter"), &mut errors);
    }

    if let Some(on_end) = &doc.on_end {
        for (field, list) in [
            ("on_end.add_to_list", &on_end.add_to_list),
            ("on_end.remove_from_list", &on_end.remove_from_list),
        ] {
            if list.as_deref().is_some_and(|l| l.trim().is_empty()) {
                errors.push(err(
                    "required",
                    None,
                    Some(field),
                    "must name a list".into(),
                ));
            }
        }
        if on_end.add_to_list.is_some() && on_end.add_to_list == on_end.remove_from_list {
            errors.push(err(
                "invalid_setting",
                None,
                Some("on_end"),
                "adds to and removes from the same list".into(),
            ));
        }
    }
    if let Some(w) = doc.goal.as_ref().and_then(|g| g.within.as_deref()) {
        check_duration(w, None, "goal.within", &mut errors);
    }
    for (i, x) in doc.exit_on.iter().enumerate() {
        if x.within.is_some() {
            errors.push(err(
                "invalid_setting",
                None,
                Some(&format!("exit_on[{i}].within")),
                "only the goal has a conversion window".into(),
            ));
        }
    }
    if let Err((field, message)) = crate::timing::SendWindow::from_settings(
        doc.quiet_hours.as_ref(),
        &doc.blocked_dates,
        doc.outside_hours.unwrap_or_default(),
    ) {
        let code = if field.starts_with("blocked") {
            "invalid_date"
        } else {
            "invalid_time"
        };
        errors.push(err(code, None, Some(&field), message));
    }
    if let Some(rate) = &doc.send_rate
        && let Err(message) = crate::duration::parse_send_rate(rate)
    {
        errors.push(err("invalid_rate", None, Some("send_rate"), message));
    }

    let mut by_id: HashMap<&str, &Node> = HashMap::new();
    for node in &doc.nodes {
        if !valid_id(&node.id) {
            errors.push(err(
                "invalid_id",
                Some(&node.id),
                Some("id"),
                "node ids are 1-100 letters, digits, `-` or `_`".into(),
            ));
        }
        if by_id.insert(&node.id, node).is_some() {
            errors.push(err(
                "duplicate_node",
                Some(&node.id),
                Some("id"),
                "two nodes have this id".into(),
            ));
        }
    }
    // Nodes that did not parse, by id, with the type they declare.
    let mut unparsed_by_id: HashMap<&str, Option<&str>> = HashMap::new();
    for node in unparsed {
        if !valid_id(&node.id) {
            errors.push(err(
                "invalid_id",
                Some(&node.id),
                Some("id"),
                "node ids are 1-100 letters, digits, `-` or `_`".into(),
            ));
        }
        if by_id.contains_key(node.id.as_str())
            || unparsed_by_id
                .insert(&node.id, node.kind.as_deref())
                .is_some()
        {
            errors.push(err(
                "duplicate_node",
                Some(&node.id),
                Some("id"),
                "two nodes have this id".into(),
            ));
        }
    }
    let known = |id: &str| by_id.contains_key(id) || unparsed_by_id.contains_key(id);
    let is_trigger = |id: &str| match by_id.get(id) {
        Some(node) => matches!(node.kind, NodeKind::Trigger(_)),
        None => unparsed_by_id.get(id) == Some(&Some("trigger")),
    };
    let node_ids: Vec<&str> = doc
        .nodes
        .iter()
        .map(|n| n.id.as_str())
        .chain(unparsed.iter().map(|n| n.id.as_str()))
        .collect();
    let no_such_node = |id: &str| {
        format!(
            "there is no node `{id}`{}",
            did_you_mean(id, node_ids.iter().copied())
        )
    };
    let inline_templates: HashMap<&str, Channel> = doc
        .templates
        .iter()
        .map(|t| (t.id.as_str(), t.channel))
        .collect();

    let mut triggers = Vec::new();
    for node in &doc.nodes {
        let id = Some(node.id.as_str());
        match &node.kind {
            NodeKind::Trigger(t) => {
                triggers.push(node.id.as_str());
                check_trigger(t, id, &mut errors);
            }
            NodeKind::Delay(d) => check_duration(&d.duration, id, "duration", &mut errors),
            NodeKind::WaitForEvent(w) => {
                check_duration(&w.timeout, id, "timeout", &mut errors);
                if w.event.trim().is_empty() {
                    errors.push(err(
                        "required",
                        id,
                        Some("event"),
                        "must name an event".into(),
                    ));
                }
                if w.match_key == Some(true) && !has_key {
                    errors.push(err(
                        "no_key",
                        id,
                        Some("match_key"),
                        "the journey has no entry.key to match".into(),
                    ));
                }
                check_filter(&w.filter, id, "filter", &mut errors);
            }
            NodeKind::Branch(b) => {
                for e in crate::condition::validate(&b.condition, Scope::Branch) {
                    let field = if e.path.is_empty() {
                        "condition".to_string()
                    } else {
                        format!("condition.{}", e.path)
                    };
                    errors.push(err(e.code, id, Some(&field), e.message));
                }
                b.condition.visit(&mut |c| match c {
                    Condition::Event(e) if e.match_key && !has_key => errors.push(err(
                        "no_key",
                        id,
                        Some("condition.event.match_key"),
                        "the journey has no entry.key to match".into(),
                    )),
                    Condition::Message(m) => match by_id.get(m.node.as_str()).map(|n| &n.kind) {
                        Some(NodeKind::SendEmail(_) | NodeKind::SendSms(_)) => {}
                        Some(_) => errors.push(err(
                            "not_a_send_node",
                            id,
                            Some("condition.message.node"),
                            format!("node `{}` does not send a message", m.node),
                        )),
                        // A node that did not parse has its own error.
                        None if known(&m.node) => {}
                        None => errors.push(err(
                            "unknown_node",
                            id,
                            Some("condition.message.node"),
                            no_such_node(&m.node),
                        )),
                    },
                    _ => {}
                })
            }
            NodeKind::SendEmail(s) | NodeKind::SendSms(s) => {
                let want = if matches!(node.kind, NodeKind::SendEmail(_)) {
                    Channel::Email
                } else {
                    Channel::Sms
                };
                if let Some(lookup) = templates {
                    let found = inline_templates
                        .get(s.template.as_str())
                        .copied()
                        .or_else(|| lookup(&s.template));
                    match found {
                        None => errors.push(err(
                            "unknown_template",
                            id,
                            Some("template"),
                            format!("there is no template `{}`", s.template),
                        )),
                        Some(ch) if ch != want => errors.push(err(
                            "wrong_channel",
                            id,
                            Some("template"),
                            format!(
                                "template `{}` is for {}, not {}",
                                s.template,
                                ch.as_str(),
                                want.as_str()
                            ),
                        )),
                        _ => {}
                    }
                }
            }
            NodeKind::AddToList(l) | NodeKind::RemoveFromList(l) => {
                if l.list.trim().is_empty() {
                    errors.push(err("required", id, Some("list"), "must name a list".into()));
                }
            }
            NodeKind::UpdateTraits(u) => {
                if u.set.is_empty() && u.increment.is_empty() {
                    errors.push(err(
                        "required",
                        id,
                        Some("set"),
                        "must set or increment at least one trait".into(),
                    ));
                }
                for k in u.increment.keys() {
                    if u.set.contains_key(k) {
                        errors.push(err(
                            "conflicting_update",
                            id,
                            Some(&format!("increment.{k}")),
                            format!("trait `{k}` is both set and incremented"),
                        ));
                    }
                }
            }
            NodeKind::RandomSplit(r) => check_split(&r.branches, id, &mut errors),
            NodeKind::Experiment(x) => {
                if x.variants.iter().any(|v| v.name == crate::journey::HOLDOUT) {
                    errors.push(err(
                        "invalid_split",
                        id,
                        Some("variants"),
                        "`holdout` is the holdout group's output; name the variant differently"
                            .into(),
                    ));
                }
                check_split(&x.branches(), id, &mut errors);
                if !(0.5..=0.999).contains(&x.confidence) {
                    errors.push(err(
                        "invalid_confidence",
                        id,
                        Some("confidence"),
                        "must be between 0.5 and 0.999".into(),
                    ));
                }
                if x.min_sample == 0 {
                    errors.push(err(
                        "invalid_sample",
                        id,
                        Some("min_sample"),
                        "must be at least 1".into(),
                    ));
                }
                if doc.goal.is_none() {
                    errors.push(err(
                        "no_goal",
                        id,
                        None,
                        "an experiment needs the journey's `goal` to count conversions".into(),
                    ));
                }
            }
            NodeKind::WaitUntil(w) => {
                if let Err((field, message)) = w.spec() {
                    let code = match field {
                        "time" => "invalid_time",
                        "weekdays" => "invalid_weekday",
                        _ => "invalid_timezone",
                    };
                    errors.push(err(code, id, Some(field), message));
                }
            }
            NodeKind::Webhook(w) => check_webhook(w, id, &mut errors),
            NodeKind::WaitUntilDate(w) => {
                if let Err((field, message)) = w.spec() {
                    let code = match field {
                        "time" => "invalid_time",
                        "offset" => "invalid_duration",
                        "timezone" => "invalid_timezone",
                        _ => "required",
                    };
                    errors.push(err(code, id, Some(field), message));
                }
            }
            NodeKind::Exit(_) => {}
            NodeKind::EmitEvent(e) => {
                if e.event.trim().is_empty() {
                    errors.push(err(
                        "required",
                        id,
                        Some("event"),
                        "must name an event".into(),
                    ));
                }
            }
            NodeKind::Unsubscribe(u) => {
                if u.topic.as_deref().is_some_and(|t| t.trim().is_empty()) {
                    errors.push(err(
                        "required",
                        id,
                        Some("topic"),
                        "must not be empty (leave it out for all marketing)".into(),
                    ));
                }
            }
            NodeKind::EnrollInJourney(e) => {
                if !valid_id(&e.journey) {
                    errors.push(err(
                        "invalid_id",
                        id,
                        Some("journey"),
                        format!("`{}` is not a journey id", e.journey),
                    ));
                } else if e.journey == doc.id {
                    errors.push(err(
                        "self_enrollment",
                        id,
                        Some("journey"),
                        "a journey cannot enroll contacts in itself; use a jump".into(),
                    ));
                }
            }
            NodeKind::Jump(j) => {
                if !known(&j.to) {
                    errors.push(err("unknown_node", id, Some("to"), no_such_node(&j.to)));
                } else if is_trigger(&j.to) {
                    errors.push(err(
                        "edge_into_trigger",
                        id,
                        Some("to"),
                        "a jump cannot lead to a trigger".into(),
                    ));
                }
            }
            NodeKind::Score(s) => {
                if s.points == 0 {
                    errors.push(err(
                        "invalid_points",
                        id,
                        Some("points"),
                        "must not be 0".into(),
                    ));
                }
                if let Some(after) = &s.expires_after {
                    check_duration(after, id, "expires_after", &mut errors);
                }
                if s.score_trait
                    .as_deref()
                    .is_some_and(|t| t.trim().is_empty())
                {
                    errors.push(err(
                        "required",
                        id,
                        Some("trait"),
                        "must not be empty".into(),
                    ));
                }
            }
        }
    }
    // A trigger that did not parse is still where its journey starts.
    triggers.extend(
        unparsed
            .iter()
            .filter(|n| n.kind.as_deref() == Some("trigger"))
            .map(|n| n.id.as_str()),
    );
    if triggers.is_empty() && !node_ids.is_empty() {
        errors.push(err(
            "no_trigger",
            None,
            Some("nodes"),
            "a journey needs at least one trigger node".into(),
        ));
    }
    if node_ids.is_empty() {
        errors.push(err(
            "required",
            None,
            Some("nodes"),
            "a journey needs nodes".into(),
        ));
    }

    // Edges: known nodes, valid outputs, one edge per output, nothing into a trigger.
    let mut adjacency: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut used_outputs = HashSet::new();
    for (i, edge) in doc.edges.iter().enumerate() {
        let field = format!("edges[{i}]");
        let from = by_id.get(edge.from.as_str());
        let mut usable = known(&edge.from) && known(&edge.to);
        if !known(&edge.from) {
            errors.push(err(
                "unknown_node",
                None,
                Some(&format!("{field}.from")),
                no_such_node(&edge.from),
            ));
        }
        if !known(&edge.to) {
            errors.push(err(
                "unknown_node",
                Some(&edge.from),
                Some(&format!("{field}.to")),
                no_such_node(&edge.to),
            ));
        }
        if from.is_none() && known(&edge.from) {
            // A node that did not parse: its outputs are unknown, but one output still takes
            // one edge.
            if !used_outputs.insert((edge.from.as_str(), edge.output.as_str())) {
                errors.push(err(
                    "duplicate_edge",
                    Some(&edge.from),
                    Some(&format!("{field}.output")),
                    format!("output `{}` already has an edge", edge.output),
                ));
            }
        }
        if let Some(from) = from {
            let outputs = from.kind.outputs();
            if !outputs.contains(&edge.output) {
                let allowed = if outputs.is_empty() {
                    "none".to_string()
                } else {
                    outputs.join(", ")
                };
                errors.push(err(
                    "unknown_output",
                    Some(&edge.from),
                    Some(&format!("{field}.output")),
                    format!(
                        "a {} node has no output `{}` (outputs: {allowed})",
                        from.kind.type_name(),
                        edge.output
                    ),
                ));
                usable = false;
            } else if !used_outputs.insert((edge.from.as_str(), edge.output.as_str())) {
                errors.push(err(
                    "duplicate_edge",
                    Some(&edge.from),
                    Some(&format!("{field}.output")),
                    format!("output `{}` already has an edge", edge.output),
                ));
            }
        }
        if is_trigger(&edge.to) {
            errors.push(err(
                "edge_into_trigger",
                Some(&edge.to),
                Some(&field),
                "a trigger cannot have incoming edges".into(),
            ));
        }
        if usable {
            adjacency
                .entry(edge.from.as_str())
                .or_default()
                .push(edge.to.as_str());
        }
    }

    for node in &doc.nodes {
        if let NodeKind::Jump(j) = &node.kind
            && known(&j.to)
        {
            adjacency
                .entry(node.id.as_str())
                .or_default()
                .push(j.to.as_str());
        }
    }

    // Reachability from the triggers.
    let mut reached: HashSet<&str> = triggers.iter().copied().collect();
    let mut stack = triggers.clone();
    while let Some(n) = stack.pop() {
        for &m in adjacency.get(n).into_iter().flatten() {
            if reached.insert(m) {
                stack.push(m);
            }
        }
    }
    for id in &node_ids {
        if !reached.contains(id) {
            errors.push(err(
                "unreachable_node",
                Some(id),
                None,
                "no trigger leads to this node".into(),
            ));
        }
    }

    // Cycles that never wait would step forever in one instant: find cycles among the nodes
    // that do not wait.
    let instant = |id: &str| by_id.get(id).is_some_and(|n| !n.kind.waits());
    let mut state: HashMap<&str, u8> = HashMap::new(); // 1 = on stack, 2 = done
    let mut reported = HashSet::new();
    for node in &doc.nodes {
        if instant(&node.id) && !state.contains_key(node.id.as_str()) {
            let mut path = Vec::new();
            find_cycle(
                node.id.as_str(),
                &adjacency,
                &instant,
                &mut state,
                &mut path,
                &mut |cycle| {
                    let first = cycle[0];
                    if reported.insert(first) {
                        errors.push(err(
                            "cycle_without_wait",
                            Some(first),
                            None,
                            format!("the cycle {} has no delay or wait", cycle.join(" → ")),
                        ));
                    }
                },
            );
        }
    }
    errors
}

/// Most branches a random split may have.
pub const MAX_SPLIT_BRANCHES: usize = 10;

fn check_split(
    branches: &[crate::journey::SplitBranch],
    id: Option<&str>,
    errors: &mut Vec<ValidationError>,
) {
    let n = branches.len();
    if !(2..=MAX_SPLIT_BRANCHES).contains(&n) {
        errors.push(err(
            "invalid_split",
            id,
            Some("branches"),
            format!("a split needs 2 to {MAX_SPLIT_BRANCHES} branches, not {n}"),
        ));
    }
    let mut names = HashSet::new();
    for (i, b) in branches.iter().enumerate() {
        if !valid_id(&b.name) {
            errors.push(err(
                "invalid_split",
                id,
                Some(&format!("branches[{i}].name")),
                "branch names are 1-100 letters, digits, `-` or `_`".into(),
            ));
        } else if !names.insert(b.name.as_str()) {
            errors.push(err(
                "invalid_split",
                id,
                Some(&format!("branches[{i}].name")),
                format!("two branches are named `{}`", b.name),
            ));
        }
        if b.percent > 100 {
            errors.push(err(
                "invalid_split",
                id,
                Some(&format!("branches[{i}].percent")),
                "a percent is 0-100".into(),
            ));
        }
    }
    let total: u64 = branches.iter().map(|b| u64::from(b.percent)).sum();
    if total != 100 {
        errors.push(err(
            "invalid_split",
            id,
            Some("branches"),
            format!("the percents sum to {total}, not 100"),
        ));
    }
}

fn find_cycle<'a>(
    node: &'a str,
    adjacency: &BTreeMap<&'a str, Vec<&'a str>>,
    instant: &dyn Fn(&str) -> bool,
    state: &mut HashMap<&'a str, u8>,
    path: &mut Vec<&'a str>,
    report: &mut dyn FnMut(Vec<&'a str>),
) {
    state.insert(node, 1);
    path.push(node);
    for &next in adjacency.get(node).into_iter().flatten() {
        if !instant(next) {
            continue;
        }
        match state.get(next) {
            Some(1) => {
                let start = path.iter().position(|n| *n == next).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(next);
                report(cycle);
            }
            Some(_) => {}
            None => find_cycle(next, adjacency, instant, state, path, report),
        }
    }
    path.pop();
    state.insert(node, 2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(v: Value) -> Vec<(&'static str, Option<String>)> {
        let lookup = |id: &str| (id == "hello").then_some(Channel::Email);
        match parse_and_validate(&v, Some(&lookup)) {
            Ok(_) => vec![],
            Err(errs) => errs.into_iter().map(|e| (e.code, e.node)).collect(),
        }
    }

    #[test]
    fn a_valid_journey_passes() {
        let v = json!({
            "id": "j", "name": "J",
            "nodes": [
                {"id": "t", "type": "trigger", "event": "Signed Up"},
                {"id": "d", "type": "delay", "duration": "1d"},
                {"id": "e", "type": "send_email", "template": "hello"}
            ],
            "edges": [{"from": "t", "to": "d"}, {"from": "d", "to": "e"}]
        });
        assert_eq!(codes(v), vec![]);
    }

    #[test]
    fn every_error_is_reported_with_its_node() {
        let v = json!({
            "id": "j", "name": "J",
            "nodes": [
                {"id": "t", "type": "trigger", "event": "Signed Up"},
                {"id": "d", "type": "delay", "duration": "soon"},
                {"id": "e", "type": "send_email", "template": "nope"},
                {"id": "lonely", "type": "exit"},
                {"id": "b1", "type": "branch", "condition": {"traits": {"vip": true}}},
                {"id": "b2", "type": "branch", "condition": {"traits": {"vip": true}}},
                {"id": "x", "type": "teleport"},
                {"id": "s", "type": "send_sms", "template": "hello"}
            ],
            "edges": [
                {"from": "t", "to": "d"}, {"from": "d", "to": "e"}, {"from": "e", "to": "ghost"},
                {"from": "e", "to": "b1"}, {"from": "b1", "to": "b2", "output": "yes"},
                {"from": "b2", "to": "b1", "output": "yes"}, {"from": "b2", "to": "s", "output": "maybe"}
            ]
        });
        let found = codes(v);
        let expect = [
            ("invalid_node", Some("x")),
            ("invalid_duration", Some("d")),
            ("unknown_template", Some("e")),
            ("unknown_node", Some("e")),
            ("duplicate_edge", Some("e")),
            ("unknown_output", Some("b2")),
            ("unreachable_node", Some("lonely")),
            ("unreachable_node", Some("s")),
            ("cycle_without_wait", Some("b1")),
        ];
        for (code, node) in expect {
            assert!(
                found.contains(&(code, node.map(str::to_string))),
                "missing {code} on {node:?} in {found:?}"
            );
        }
    }

    #[test]
    fn a_cycle_through_a_delay_is_fine() {
        let v = json!({
            "id": "j", "name": "J",
            "nodes": [
                {"id": "t", "type": "trigger", "event": "A"},
                {"id": "d", "type": "delay", "duration": "1d"},
                {"id": "b", "type": "branch", "condition": {"traits": {"done": true}}}
            ],
            "edges": [{"from": "t", "to": "d"}, {"from": "d", "to": "b"}, {"from": "b", "to": "d", "output": "no"}]
        });
        assert_eq!(codes(v), vec![]);
    }

    #[test]
    fn unknown_fields_and_operators_are_errors() {
        let v = json!({
            "id": "j", "name": "J",
            "nodes": [
                {"id": "t", "type": "trigger", "event": "A", "filtr": {}},
                {"id": "t2", "type": "trigger", "event": "A", "filter": {"x": {"greater": 1}}}
            ]
        });
        let found = codes(v);
        assert!(
            found.contains(&("invalid_node", Some("t".into()))),
            "{found:?}"
        );
        assert!(
            found.contains(&("invalid_filter", Some("t2".into()))),
            "{found:?}"
        );
    }
}
