//! The node kinds registered in `waymark_core::kinds`: each one publishes its outputs, a
//! description and an example in the journey schema, is documented in docs/journeys.md, and
//! its example parses, validates and steps only through the outputs it publishes. A kind
//! registered without one of these fails here.

use std::collections::BTreeSet;
use std::path::PathBuf;

use jiff::Timestamp;
use serde_json::{Value, json};
use waymark_core::journey::{JourneyDocument, parse_document_value};
use waymark_core::stepper::TraitsOnly;
use waymark_core::validate::parse_and_validate;
use waymark_core::{Enrollment, EnrollmentStatus, Input, Journey, NodeKind, StepLog, step};

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The schema of each node kind: the variants of `Node` in the journey schema, by `type`.
fn kind_schemas() -> Vec<(String, Value)> {
    let schema = serde_json::to_value(schemars::schema_for!(JourneyDocument)).unwrap();
    let variants = schema["$defs"]["Node"]["oneOf"]
        .as_array()
        .expect("Node is a oneOf of the kinds")
        .clone();
    variants
        .into_iter()
        .map(|v| {
            let name = v["properties"]["type"]["const"]
                .as_str()
                .expect("each variant pins its type")
                .to_string();
            (name, v)
        })
        .collect()
}

/// The outputs of a node with these settings, computed from its kind's `x-outputs` alone, the
/// way the builder does (`ui/src/lib/outputs.ts`).
fn outputs_from_schema(x_outputs: &Value, settings: &Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        if !n.is_empty() && !names.iter().any(|m| m == n) {
            names.push(n.to_string());
        }
    };
    for part in x_outputs.as_array().expect("x-outputs is a list") {
        if let Some(name) = part.as_str() {
            add(name);
        } else if let (Some(from), Some(field)) = (part["from"].as_str(), part["field"].as_str()) {
            for item in settings[from].as_array().into_iter().flatten() {
                if let Some(n) = item[field].as_str() {
                    add(n);
                }
            }
        } else if let (Some(output), Some(when)) = (part["output"].as_str(), part["when"].as_str())
        {
            let set = waymark_core::kinds::is_set(&settings[when]);
            if set {
                add(output);
            }
        } else {
            panic!("unknown x-outputs part {part}");
        }
    }
    names
}

#[test]
fn every_kind_publishes_its_outputs_description_and_example_in_the_schema() {
    let schemas = kind_schemas();
    let published: Vec<&str> = schemas.iter().map(|(n, _)| n.as_str()).collect();
    let registered: Vec<&str> = NodeKind::ALL.iter().map(|k| k.name).collect();
    assert_eq!(
        published, registered,
        "the schema lists every kind, in order"
    );
    for (name, schema) in &schemas {
        let description = schema["description"].as_str().unwrap_or("");
        assert!(
            description.len() > 10,
            "kind `{name}` has no description in the schema"
        );
        assert!(
            schema["x-outputs"].is_array(),
            "kind `{name}` publishes no x-outputs: {schema}"
        );
        let examples = schema["examples"].as_array();
        assert!(
            examples.is_some_and(|e| !e.is_empty()),
            "kind `{name}` has no example in the schema"
        );
        assert_eq!(examples.unwrap()[0]["type"], json!(name));
    }
}

/// A journey around one node of each kind: a trigger leads to it, each of its outputs (and a
/// jump) leads to an exit, and a goal lets experiments count. A trigger is the start itself.
fn journey_around(node: Value, kind: &NodeKind) -> Value {
    let mut nodes = vec![json!({"id": "start", "type": "trigger", "event": "Signed Up"})];
    let mut edges = Vec::new();
    if matches!(kind, NodeKind::Trigger(_)) {
        nodes[0] = node;
        nodes[0]["id"] = json!("start");
        edges.push(json!({"from": "start", "to": "done"}));
    } else {
        nodes.push(node);
        edges.push(json!({"from": "start", "to": "example"}));
        for output in kind.outputs() {
            edges.push(json!({"from": "example", "to": "done", "output": output}));
        }
    }
    nodes.push(json!({"id": "done", "type": "exit"}));
    json!({
        "id": "kinds", "name": "Kinds",
        "goal": {"event": "Order Completed"},
        "nodes": nodes,
        "edges": edges
    })
}

#[test]
fn every_example_parses_validates_and_steps_through_published_outputs() {
    let schemas = kind_schemas();
    for kind in NodeKind::ALL {
        let settings: Value = serde_json::from_str(kind.example)
            .unwrap_or_else(|e| panic!("the example of `{}` is not JSON: {e}", kind.name));
        let mut node = settings.clone();
        node["id"] = json!("example");
        node["type"] = json!(kind.name);
        let parsed: waymark_core::journey::Node = serde_json::from_value(node.clone())
            .unwrap_or_else(|e| panic!("the example of `{}` does not parse: {e}", kind.name));
        assert_eq!(parsed.kind.type_name(), kind.name);
        assert_eq!(parsed.kind.waits(), kind.waits);
        let outputs = parsed.kind.outputs();
        let (_, schema) = schemas.iter().find(|(n, _)| n == kind.name).unwrap();
        assert_eq!(
            outputs_from_schema(&schema["x-outputs"], &settings),
            outputs,
            "the schema's x-outputs of `{}` give other outputs than the kind",
            kind.name
        );
        let mut document = journey_around(node, &parsed.kind);
        // An exit ends the path: nothing leads on to `done`.
        if outputs.is_empty() && parsed.kind.continues_at().is_none() {
            document["nodes"].as_array_mut().unwrap().pop();
        }
        let document = parse_and_validate(&document, None).unwrap_or_else(|errors| {
            panic!(
                "the example of `{}` is not valid in a journey: {errors:#?}",
                kind.name
            )
        });
        let journey = Journey::compile(document).expect("valid");
        let enrollment = Enrollment {
            id: 1,
            journey_id: "kinds".into(),
            version: 1,
            contact_id: 7,
            key: None,
            node: "start".into(),
            status: EnrollmentStatus::Active,
            wake_at: None,
            entered_at: Timestamp::from_second(1_700_000_000).unwrap(),
            entered_seq: 1,
            consumed_seq: 0,
            visits: 0,
        };
        let facts = TraitsOnly::default();
        let mut now = enrollment.entered_at;
        let mut outcome = step(&journey, &enrollment, Input::Enter, now, &facts).expect("entered");
        // Wake the enrollment until it ends, so that waits leave through their outputs too.
        for _ in 0..3 {
            check_left_through_outputs(&journey, &outcome.log, kind.name);
            let Some(at) = outcome.enrollment.wake_at else {
                break;
            };
            now = now.max(at);
            outcome = step(&journey, &outcome.enrollment, Input::Timer, now, &facts)
                .expect("the timer wakes the node");
        }
        check_left_through_outputs(&journey, &outcome.log, kind.name);
        assert_ne!(
            outcome.enrollment.status,
            EnrollmentStatus::Active,
            "the example journey of `{}` does not end",
            kind.name
        );
    }
}

fn check_left_through_outputs(journey: &Journey, log: &[StepLog], around: &str) {
    for entry in log {
        if let StepLog::Left { node, output } = entry {
            let kind = &journey.node(node).unwrap().kind;
            let outputs = kind.outputs();
            // A jump leaves through the `next` that its `to` setting stands for.
            let jumped = kind.continues_at().is_some() && output == "next";
            assert!(
                outputs.contains(output) || jumped,
                "around `{around}`: node `{node}` left through `{output}`, not one of {outputs:?}"
            );
        }
    }
}

/// The `type`s in the first column of the node kinds table of docs/journeys.md.
fn documented_kinds() -> BTreeSet<String> {
    let page = repo_file("docs/journeys.md");
    let start = page.find("\n## Node kinds").expect("a Node kinds section");
    let rest = &page[start + 1..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |e| e + 1);
    rest[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_kind_is_documented_in_docs_journeys() {
    let documented = documented_kinds();
    let registered: BTreeSet<String> = NodeKind::ALL.iter().map(|k| k.name.into()).collect();
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "kinds missing from the node kinds table of docs/journeys.md: {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&registered).collect();
    assert!(
        stale.is_empty(),
        "docs/journeys.md documents kinds that are not registered: {stale:?}"
    );
}

/// Every node of the gallery (`examples/journeys/`) has the outputs its schema describes.
#[test]
fn the_schema_gives_the_outputs_of_every_gallery_node() {
    let schemas = kind_schemas();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/journeys");
    let mut nodes = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let value = parse_document_value(&text).unwrap();
        let document = parse_and_validate(&value, None)
            .unwrap_or_else(|e| panic!("{}: {e:#?}", path.display()));
        for (raw, node) in value["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&document.nodes)
        {
            let (_, schema) = schemas
                .iter()
                .find(|(n, _)| n == node.kind.type_name())
                .unwrap();
            assert_eq!(
                outputs_from_schema(&schema["x-outputs"], raw),
                node.kind.outputs(),
                "{}: node `{}`",
                path.display(),
                node.id
            );
            nodes += 1;
        }
    }
    assert!(nodes > 50, "only {nodes} gallery nodes");
}

/// The builder's unit tests read the journey schema from a fixture; it must be this schema.
/// `WAYMARK_UPDATE_FIXTURES=1 cargo test -p waymark-core --test kinds` rewrites it.
#[test]
fn the_ui_fixture_is_the_current_schema() {
    let schema = serde_json::to_value(schemars::schema_for!(JourneyDocument)).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../ui/src/lib/fixtures/journey.schema.json");
    if std::env::var_os("WAYMARK_UPDATE_FIXTURES").is_some() {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        serde::Serialize::serialize(&schema, &mut serializer).unwrap();
        out.push(b'\n');
        std::fs::write(&path, out).unwrap();
    }
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        fixture == schema,
        "{} is out of date: run `WAYMARK_UPDATE_FIXTURES=1 cargo test -p waymark-core --test kinds`",
        path.display()
    );
}
