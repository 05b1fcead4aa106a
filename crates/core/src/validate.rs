//! Journey validation: parses a document node by node and checks the graph, collecting every
//! error (with the node and field it concerns) instead of stopping at the first.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::duration::Duration;
use crate::filter::{Filter, Predicate};
use crate::journey::{Channel, JourneyDocument, Node, NodeKind, Reentry};
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

/// Whether `id` is 1-100 letters, digits, `-` or `_` (node, journey, segment and branch ids).
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(crate) fn check_filter(
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

pub(crate) fn check_duration(
    raw: &str,
    node: Option<&str>,
    field: &str,
    errors: &mut Vec<ValidationError>,
) {
    if let Err(message) = Duration::parse(raw) {
        errors.push(err("invalid_duration", node, Some(field), message));
    }
}

/// The document's nodes by id, those that parsed and those that did not.
struct Graph<'a> {
    by_id: HashMap<&'a str, &'a Node>,
    /// Nodes that did not parse, with the type they declare.
    unparsed_by_id: HashMap<&'a str, Option<&'a str>>,
    node_ids: Vec<&'a str>,
}

impl<'a> Graph<'a> {
    fn known(&self, id: &str) -> bool {
        self.by_id.contains_key(id) || self.unparsed_by_id.contains_key(id)
    }

    fn is_trigger(&self, id: &str) -> bool {
        match self.by_id.get(id) {
            Some(node) => matches!(node.kind, NodeKind::Trigger(_)),
            None => self.unparsed_by_id.get(id) == Some(&Some("trigger")),
        }
    }

    fn no_such_node(&self, id: &str) -> String {
        format!(
            "there is no node `{id}`{}",
            did_you_mean(id, self.node_ids.iter().copied())
        )
    }
}

/// Another node a node's settings name.
pub(crate) enum NodeRef<'a> {
    Parsed(&'a NodeKind),
    /// It exists but did not parse (its own error says why).
    Unparsed,
    Missing,
}

/// What a node kind's validation sees (`crate::kinds`): the document, the other nodes, the
/// templates, and where its errors go (tagged with the node's id).
pub(crate) struct NodeCheck<'a> {
    node: &'a str,
    document: &'a JourneyDocument,
    graph: &'a Graph<'a>,
    templates: Option<TemplateLookup<'a>>,
    inline_templates: &'a HashMap<&'a str, Channel>,
    errors: &'a mut Vec<ValidationError>,
}

impl<'a> NodeCheck<'a> {
    /// Reports an error on this node's `field` (`None`: the node as a whole).
    pub(crate) fn err(&mut self, code: &'static str, field: Option<&str>, message: String) {
        self.errors.push(err(code, Some(self.node), field, message));
    }

    pub(crate) fn duration(&mut self, raw: &str, field: &str) {
        check_duration(raw, Some(self.node), field, self.errors);
    }

    pub(crate) fn filter(&mut self, filter: &Filter, field: &str) {
        check_filter(filter, Some(self.node), field, self.errors);
    }

    pub(crate) fn document(&self) -> &'a JourneyDocument {
        self.document
    }

    /// Whether the journey has an entry key for waits and conditions to match.
    pub(crate) fn has_key(&self) -> bool {
        self.document.entry.key.is_some()
    }

    pub(crate) fn node_ref(&self, id: &str) -> NodeRef<'a> {
        match self.graph.by_id.get(id) {
            Some(node) => NodeRef::Parsed(&node.kind),
            None if self.graph.known(id) => NodeRef::Unparsed,
            None => NodeRef::Missing,
        }
    }

    pub(crate) fn is_trigger(&self, id: &str) -> bool {
        self.graph.is_trigger(id)
    }

    /// "there is no node `x`", with a suggestion.
    pub(crate) fn no_such_node(&self, id: &str) -> String {
        self.graph.no_such_node(id)
    }

    /// The channel of the template `id`: `None` when templates are not checked (no look-up
    /// given), `Some(None)` when there is no such template.
    pub(crate) fn template_channel(&self, id: &str) -> Option<Option<Channel>> {
        let lookup = self.templates?;
        Some(
            self.inline_templates
                .get(id)
                .copied()
                .or_else(|| lookup(id)),
        )
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
    if let Some(c) = doc.goal.as_ref().and_then(|g| g.currency.as_deref())
        && !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        errors.push(err(
            "invalid_setting",
            None,
            Some("goal.currency"),
            format!("`{c}` is not a currency code: three capital letters, e.g. `EUR`"),
        ));
    }
    for (i, x) in doc.exit_on.iter().enumerate() {
        let goal_only = [
            (
                "within",
                x.within.is_some(),
                "only the goal has a conversion window",
            ),
            (
                "revenue_property",
                x.revenue_property.is_some(),
                "only the goal has revenue",
            ),
            (
                "currency",
                x.currency.is_some(),
                "only the goal has revenue",
            ),
        ];
        for (field, set, why) in goal_only {
            if set {
                errors.push(err(
                    "invalid_setting",
                    None,
                    Some(&format!("exit_on[{i}].{field}")),
                    why.into(),
                ));
            }
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
    let node_ids: Vec<&str> = doc
        .nodes
        .iter()
        .map(|n| n.id.as_str())
        .chain(unparsed.iter().map(|n| n.id.as_str()))
        .collect();
    let inline_templates: HashMap<&str, Channel> = doc
        .templates
        .iter()
        .map(|t| (t.id.as_str(), t.channel))
        .collect();
    let graph = Graph {
        by_id,
        unparsed_by_id,
        node_ids,
    };
    let known = |id: &str| graph.known(id);
    let is_trigger = |id: &str| graph.is_trigger(id);
    let no_such_node = |id: &str| graph.no_such_node(id);
    let by_id = &graph.by_id;

    let mut triggers = Vec::new();
    for node in &doc.nodes {
        if matches!(node.kind, NodeKind::Trigger(_)) {
            triggers.push(node.id.as_str());
        }
        node.kind.validate(&mut NodeCheck {
            node: &node.id,
            document: doc,
            graph: &graph,
            templates,
            inline_templates: &inline_templates,
            errors: &mut errors,
        });
    }
    // A trigger that did not parse is still where its journey starts.
    triggers.extend(
        unparsed
            .iter()
            .filter(|n| n.kind.as_deref() == Some("trigger"))
            .map(|n| n.id.as_str()),
    );
    if triggers.is_empty() && !graph.node_ids.is_empty() {
        errors.push(err(
            "no_trigger",
            None,
            Some("nodes"),
            "a journey needs at least one trigger node".into(),
        ));
    }
    if graph.node_ids.is_empty() {
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
        if let Some(to) = node.kind.continues_at()
            && known(to)
        {
            adjacency.entry(node.id.as_str()).or_default().push(to);
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
    for id in &graph.node_ids {
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
