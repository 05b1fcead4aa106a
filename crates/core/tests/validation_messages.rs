//! What a person reads when a journey is wrong: suggestions for misspelt node ids, node types
//! and fields; only the real error for a node whose settings are wrong; every error code
//! explained in docs/journeys.md; and the examples in that page valid.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use waymark_core::ValidationError;
use waymark_core::journey::{Channel, Node};
use waymark_core::validate::parse_and_validate;

fn errors(doc: Value) -> Vec<ValidationError> {
    let lookup = |id: &str| (id == "hello").then_some(Channel::Email);
    parse_and_validate(&doc, Some(&lookup)).expect_err("the document has errors")
}

fn find<'a>(errors: &'a [ValidationError], code: &str, node: &str) -> &'a ValidationError {
    errors
        .iter()
        .find(|e| e.code == code && e.node.as_deref() == Some(node))
        .unwrap_or_else(|| panic!("no {code} on node `{node}` in {errors:#?}"))
}

fn journey(nodes: Value, edges: Value) -> Value {
    json!({ "id": "j", "name": "J", "nodes": nodes, "edges": edges })
}

#[test]
fn an_edge_to_a_misspelt_node_suggests_the_node() {
    let found = errors(journey(
        json!([
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "welcome", "type": "send_email", "template": "hello"}
        ]),
        json!([{"from": "start", "to": "welcom"}, {"from": "strat", "to": "welcome"}]),
    ));
    let to = find(&found, "unknown_node", "start");
    assert_eq!(to.field.as_deref(), Some("edges[0].to"));
    assert_eq!(
        to.message,
        "there is no node `welcom`; did you mean `welcome`?"
    );
    let from = found
        .iter()
        .find(|e| e.field.as_deref() == Some("edges[1].from"))
        .expect("the unknown `from`");
    assert_eq!(
        from.message,
        "there is no node `strat`; did you mean `start`?"
    );
}

#[test]
fn a_node_far_from_every_id_gets_no_suggestion() {
    let found = errors(journey(
        json!([{"id": "start", "type": "trigger", "event": "A"}]),
        json!([{"from": "start", "to": "somewhere-else"}]),
    ));
    assert_eq!(
        find(&found, "unknown_node", "start").message,
        "there is no node `somewhere-else`"
    );
}

#[test]
fn a_jump_and_a_message_condition_suggest_the_node_too() {
    let found = errors(journey(
        json!([
            {"id": "start", "type": "trigger", "event": "A"},
            {"id": "mail", "type": "send_email", "template": "hello"},
            {"id": "wait", "type": "delay", "duration": "1d"},
            {"id": "opened", "type": "branch",
             "condition": {"message": {"node": "mial", "engagement": "opened"}}},
            {"id": "again", "type": "jump", "to": "wiat"}
        ]),
        json!([
            {"from": "start", "to": "mail"}, {"from": "mail", "to": "wait"},
            {"from": "wait", "to": "opened"}, {"from": "opened", "to": "again", "output": "no"}
        ]),
    ));
    assert_eq!(
        find(&found, "unknown_node", "opened").message,
        "there is no node `mial`; did you mean `mail`?"
    );
    assert_eq!(
        find(&found, "unknown_node", "again").message,
        "there is no node `wiat`; did you mean `wait`?"
    );
}

#[test]
fn an_unknown_node_type_suggests_the_kind() {
    let found = errors(journey(
        json!([
            {"id": "start", "type": "trigger", "event": "A"},
            {"id": "mail", "type": "send_mail", "template": "hello"}
        ]),
        json!([{"from": "start", "to": "mail"}]),
    ));
    let e = find(&found, "invalid_node", "mail");
    assert_eq!(
        e.message,
        "unknown node type `send_mail`; did you mean `send_email`?"
    );
    // Only that: the edge into it does not also say the node does not exist.
    assert_eq!(found.len(), 1, "{found:#?}");
}

#[test]
fn an_unknown_field_suggests_the_field() {
    let found = errors(journey(
        json!([
            {"id": "start", "type": "trigger", "event": "A", "filtr": {"plan": "pro"}},
            {"id": "wait", "type": "delay", "durration": "1d"}
        ]),
        json!([{"from": "start", "to": "wait"}]),
    ));
    assert_eq!(
        find(&found, "invalid_node", "start").message,
        "unknown field `filtr`; did you mean `filter`?"
    );
    // `durration` is unknown and `duration` missing: serde names one of them.
    let wait = find(&found, "invalid_node", "wait");
    assert!(wait.message.contains("duration"), "{}", wait.message);
    assert_eq!(found.len(), 2, "{found:#?}");
}

#[test]
fn an_unknown_value_of_a_setting_is_not_called_a_node_type() {
    let found = errors(journey(
        json!([
            {"id": "start", "type": "trigger", "event": "A"},
            {"id": "stop", "type": "unsubscribe", "channel": "emial"}
        ]),
        json!([{"from": "start", "to": "stop"}]),
    ));
    assert_eq!(
        find(&found, "invalid_node", "stop").message,
        "unknown value `emial`; did you mean `email`?"
    );
}

#[test]
fn an_unknown_document_field_suggests_the_field() {
    let mut doc = journey(
        json!([{"id": "start", "type": "trigger", "event": "A"}]),
        json!([]),
    );
    doc["exit_onn"] = json!([{"event": "Unsubscribed"}]);
    let found = errors(doc);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code, "invalid_document");
    assert_eq!(
        found[0].message,
        "unknown field `exit_onn`; did you mean `exit_on`?"
    );
}

/// A node with a missing setting used to be dropped, so every edge from and to it said
/// "there is no node", and the nodes after it were unreachable.
#[test]
fn a_node_with_a_missing_setting_keeps_its_edges() {
    let found = errors(journey(
        json!([
            {"id": "start", "type": "trigger", "event": "A"},
            {"id": "mail", "type": "send_email"},
            {"id": "wait", "type": "delay", "duration": "1d"},
            {"id": "check", "type": "branch",
             "condition": {"message": {"node": "mail", "engagement": "opened"}}},
            {"id": "back", "type": "jump", "to": "mail"}
        ]),
        json!([
            {"from": "start", "to": "mail"}, {"from": "mail", "to": "wait"},
            {"from": "wait", "to": "check"}, {"from": "check", "to": "back", "output": "no"}
        ]),
    ));
    let e = find(&found, "invalid_node", "mail");
    assert!(e.message.contains("missing field `template`"), "{e:?}");
    assert_eq!(found.len(), 1, "only the real error: {found:#?}");
}

#[test]
fn a_trigger_with_an_invalid_setting_still_starts_the_journey() {
    let found = errors(journey(
        json!([
            {"id": "start", "type": "trigger", "event": "A", "filter": "not a filter"},
            {"id": "wait", "type": "delay", "duration": "1d"}
        ]),
        json!([{"from": "start", "to": "wait"}]),
    ));
    find(&found, "invalid_node", "start");
    assert_eq!(
        found.len(),
        1,
        "no no_trigger, no unreachable_node: {found:#?}"
    );
}

#[test]
fn a_broken_node_still_counts_for_duplicates_and_edges_into_triggers() {
    let found = errors(journey(
        json!([
            {"id": "start", "type": "trigger", "event": "A"},
            {"id": "start", "type": "delay"},
            {"id": "other", "type": "trigger"},
            {"id": "wait", "type": "delay", "duration": "1d"}
        ]),
        json!([{"from": "start", "to": "wait"}, {"from": "wait", "to": "other"}]),
    ));
    find(&found, "duplicate_node", "start");
    find(&found, "edge_into_trigger", "other");
    // The edge from the broken node is checked against the outputs it cannot be known to
    // have: nothing is made up about it.
    assert!(
        !found.iter().any(|e| e.code == "unknown_node"),
        "{found:#?}"
    );
}

// ---- the docs ----

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn repo_file(path: &str) -> String {
    let full = repo_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The string literals of Rust source (up to its unit tests), each with the code before it
/// (comments and literals blanked) and the two characters after it.
fn string_literals(source: &str) -> Vec<(String, String, String)> {
    let source = source.split("#[cfg(test)]").next().unwrap_or(source);
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut code = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            // A character literal (`'-'`, `b'\r'`), not a lifetime.
            '\'' if chars.get(i + 2) == Some(&'\'') => {
                code.push_str("' '");
                i += 3;
                continue;
            }
            '\'' if chars.get(i + 1) == Some(&'\\') => {
                code.push_str("' '");
                i += 4;
                continue;
            }
            // A raw string (`r#"…"#`, the kinds' examples): never an error code; skipped.
            'r' if chars.get(i + 1) == Some(&'#') && chars.get(i + 2) == Some(&'"') => {
                i += 3;
                while i < chars.len() && !(chars[i] == '"' && chars.get(i + 1) == Some(&'#')) {
                    i += 1;
                }
                code.push_str("\"\"");
                i += 2;
                continue;
            }
            '"' => {
                let mut literal = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    literal.push(chars[i]);
                    i += 1;
                }
                let after: String = chars[i + 1..]
                    .iter()
                    .filter(|c| !c.is_whitespace())
                    .take(2)
                    .collect();
                out.push((code.trim_end().to_string(), literal, after));
                code.push_str("\"\"");
            }
            c => code.push(c),
        }
        i += 1;
    }
    out
}

/// Every error code the validator can emit: the literals handed to `err(` (in the validator
/// and in each node kind's module) and to the condition validator's `push(`, and the values of
/// a `let code = match …` or `if …`.
fn emitted_codes() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let mut files = vec![
        "crates/core/src/validate.rs".to_string(),
        "crates/core/src/condition/validate.rs".to_string(),
    ];
    let kinds = repo_root().join("crates/core/src/kinds");
    for entry in std::fs::read_dir(&kinds).expect("crates/core/src/kinds") {
        let name = entry.expect("a directory entry").file_name();
        files.push(format!("crates/core/src/kinds/{}", name.to_string_lossy()));
    }
    for file in files {
        for (before, literal, after) in string_literals(&repo_file(&file)) {
            let is_code_word =
                !literal.is_empty() && literal.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            let handed_over = before.ends_with("err(") || before.ends_with("push(");
            // Inside `let code = …;`: a value (after `=>` or `{`), not a pattern or a test.
            let statement = before.rsplit(';').next().unwrap_or("");
            let chosen = statement.contains("let code =")
                && statement
                    .rsplit("let ")
                    .next()
                    .is_some_and(|s| s.starts_with("code ="))
                && (before.ends_with("=>") || before.ends_with('{'))
                && !after.starts_with("=>");
            if is_code_word && (handed_over || chosen) {
                codes.insert(literal);
            }
        }
    }
    codes
}

/// The `## Validation` section of docs/journeys.md.
fn validation_section() -> String {
    let page = repo_file("docs/journeys.md");
    let start = page.find("\n## Validation").expect("a Validation section");
    let rest = &page[start + 1..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |e| e + 1);
    rest[..end].to_string()
}

#[test]
fn every_error_code_is_in_the_docs_table() {
    let codes = emitted_codes();
    // The scan itself must find the codes it is meant to find.
    for known in [
        "invalid_node",
        "unknown_node",
        "required",
        "invalid_time",
        "invalid_cron",
        "never_holds",
        "too_deep",
    ] {
        assert!(
            codes.contains(known),
            "the scan missed `{known}`: {codes:?}"
        );
    }
    let section = validation_section();
    let table: BTreeSet<&str> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            l.split('|')
                .nth(1)
                .unwrap_or("")
                .split('`')
                .skip(1)
                .step_by(2)
        })
        .collect();
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| !table.contains(c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "error codes missing from the table in docs/journeys.md#validation: {missing:?}"
    );
    let stale: Vec<&&str> = table.iter().filter(|c| !codes.contains(**c)).collect();
    assert!(
        stale.is_empty(),
        "docs/journeys.md#validation lists codes the validator never emits: {stale:?}"
    );
}

/// A fenced code block of a page: its language and text.
fn code_blocks(page: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```")
            && !lang.is_empty()
        {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            blocks.push((lang.to_string(), body.join("\n")));
        }
    }
    blocks
}

/// Every YAML and JSON example of docs/journeys.md is well formed; every one that is a whole
/// journey (an object with `id` and `nodes`) is valid, with the templates it ships or without a
/// template look-up; every node shown alone (an object with `id` and `type`) parses.
#[test]
fn the_examples_in_the_docs_are_valid() {
    let page = repo_file("docs/journeys.md");
    let mut journeys = 0;
    let mut nodes = 0;
    for (i, (lang, text)) in code_blocks(&page).into_iter().enumerate() {
        let value: Value = match lang.as_str() {
            "yaml" => serde_yaml_ng::from_str(&text)
                .unwrap_or_else(|e| panic!("YAML example #{i} does not parse: {e}\n{text}")),
            "json" => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("JSON example #{i} does not parse: {e}\n{text}")),
            _ => continue,
        };
        if value.get("id").is_some() && value.get("nodes").is_some() {
            if let Err(errors) = parse_and_validate(&value, None) {
                panic!("example #{i} is not a valid journey: {errors:#?}\n{text}");
            }
            journeys += 1;
            continue;
        }
        // A fragment: one node, a list of nodes, or journey settings with a few `nodes`.
        let fragments = match &value {
            Value::Array(items) => items.clone(),
            Value::Object(o) => match o.get("nodes") {
                Some(Value::Array(items)) => items.clone(),
                _ => vec![value.clone()],
            },
            _ => vec![],
        };
        for node in fragments {
            if node.get("id").is_some() && node.get("type").is_some() {
                if let Err(e) = serde_json::from_value::<Node>(node.clone()) {
                    panic!("the node in example #{i} does not parse: {e}\n{text}");
                }
                nodes += 1;
            }
        }
    }
    assert!(journeys >= 1, "no whole journey found in the docs");
    assert!(nodes >= 5, "only {nodes} node examples found in the docs");
}
