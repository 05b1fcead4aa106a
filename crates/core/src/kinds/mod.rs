//! Node kinds as components. Each kind lives in one module of this directory: its settings type
//! (serde and JSON Schema), its description, its outputs, an example, its validation and what
//! the stepper does when an enrollment reaches the node or wakes there. The `node_kinds!` list
//! at the end of this file registers them: it generates `NodeKind` (the `type`-tagged enum of
//! documents), its dispatch to each kind, and its JSON Schema, in which every kind carries its
//! description, its `x-outputs` and its example.
//!
//! Kinds produce `Effect`s (send, webhook, set traits, ...) and never do I/O; the engine applies
//! effects, not kinds, so a new kind that reuses the existing effects needs no engine change.
//!
//! To add a kind: write its module (a settings type, a marker type implementing [`Kind`]), add
//! one line to `node_kinds!`, a row to the node kinds table of `docs/journeys.md`, and the
//! `kinds` test checks the rest (schema, outputs, example, docs).

use std::borrow::Cow;

use jiff::Timestamp;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::EventRecord;
use crate::stepper::{EnrollmentStatus, Run};
use crate::validate::NodeCheck;

pub mod branch;
pub mod delay;
pub mod emit_event;
pub mod enroll_in_journey;
pub mod flow;
pub mod lists;
pub mod send;
pub mod split;
pub mod traits;
pub mod trigger;
pub mod unsubscribe;
pub mod wait_for_event;
pub mod wait_until;
pub mod webhook;

/// One part of a kind's outputs, as published in its schema's `x-outputs` list. The outputs of
/// a node are its parts in order, each name once; the builder computes them from the schema
/// alone, and [`NodeKind::outputs`] computes them the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    /// Always this output: `"next"`.
    Named(&'static str),
    /// The `field` of each object in the settings list `from` (e.g. a split's branch names):
    /// `{"from": "branches", "field": "name"}`.
    Each {
        from: &'static str,
        field: &'static str,
    },
    /// This output while the setting `when` is set (present and not `null`, `false`, `0`, `""`
    /// or empty): `{"output": "holdout", "when": "holdout"}`.
    When {
        output: &'static str,
        when: &'static str,
    },
}

/// The output of most nodes: the path simply goes on.
pub const NEXT: &str = "next";

/// The outputs of a node that goes on along one path.
pub const NEXT_ONLY: &[Output] = &[Output::Named(NEXT)];

impl Output {
    /// The output names these parts give for a node with these settings (as JSON).
    pub fn names(parts: &[Output], settings: &Value) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if !name.is_empty() && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        };
        for part in parts {
            match part {
                Output::Named(name) => add(name),
                Output::Each { from, field } => {
                    for item in settings
                        .get(from)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(name) = item.get(field).and_then(Value::as_str) {
                            add(name);
                        }
                    }
                }
                Output::When { output, when } => {
                    if settings.get(when).is_some_and(is_set) {
                        add(output);
                    }
                }
            }
        }
        names
    }

    fn depends_on_settings(parts: &[Output]) -> bool {
        parts.iter().any(|p| !matches!(p, Output::Named(_)))
    }
}

/// Whether a setting counts as given for an [`Output::When`].
pub fn is_set(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(true) => true,
    }
}

/// What a node does with an enrollment that reaches it (or wakes at it).
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// Leave at once through this output.
    Leave(Cow<'static, str>),
    /// Stay at the node until this moment (its timer), unless an event ends the wait first.
    Wait(Timestamp),
    /// End the enrollment here.
    End {
        status: EnrollmentStatus,
        reason: String,
    },
}

impl Arrival {
    /// Leave through `next`.
    pub fn next() -> Self {
        Arrival::Leave(Cow::Borrowed(NEXT))
    }
}

/// A node kind: what it reads (its settings type) and what it does. Implemented by a marker
/// type per kind, so that two kinds may share a settings type (`send_email` and `send_sms`).
pub(crate) trait Kind {
    type Settings: JsonSchema + Serialize;

    /// What the kind does, for people: the schema's `description` (the builder's palette).
    const DESCRIPTION: &'static str;
    /// The kind's outputs (the schema's `x-outputs`).
    const OUTPUTS: &'static [Output];
    /// The settings of a typical node as JSON (without `id` and `type`): the schema's
    /// `examples`, and a test checks that it parses and validates.
    const EXAMPLE: &'static str;
    /// An enrollment may stop at such a node and wait for time to pass; every cycle in a
    /// journey must pass through one.
    const WAITS: bool = false;
    /// The node sends a message, so engagement conditions (`message: {node: ...}`) may name it.
    const SENDS_MESSAGE: bool = false;

    fn outputs(settings: &Self::Settings) -> Vec<String> {
        if Output::depends_on_settings(Self::OUTPUTS) {
            let value = serde_json::to_value(settings).unwrap_or(Value::Null);
            Output::names(Self::OUTPUTS, &value)
        } else {
            Output::names(Self::OUTPUTS, &Value::Null)
        }
    }

    /// Checks the settings, reporting every error through `check`.
    fn validate(_settings: &Self::Settings, _check: &mut NodeCheck<'_>) {}

    /// An enrollment reaches the node.
    fn arrive(settings: &Self::Settings, run: &mut Run<'_>) -> Arrival;

    /// The enrollment's timer fell due at this node; `None`: nothing happens.
    fn timer(_settings: &Self::Settings, _run: &mut Run<'_>) -> Option<Arrival> {
        None
    }

    /// An event of the contact while the enrollment is at this node: the output to leave by,
    /// if the event ends the wait.
    fn event(
        _settings: &Self::Settings,
        _run: &mut Run<'_>,
        _event: &EventRecord,
    ) -> Option<Cow<'static, str>> {
        None
    }

    /// The journey was resumed after a pause while the enrollment waited here: the output to
    /// leave by, if what it waited for happened meanwhile.
    fn resume(_settings: &Self::Settings, _run: &mut Run<'_>) -> Option<Cow<'static, str>> {
        None
    }

    /// The node the path continues at when that is a setting rather than an edge (`jump`).
    fn continues_at(_settings: &Self::Settings) -> Option<&str> {
        None
    }

    /// The event name the node waits for, if any (the engine loads the journeys that react
    /// to an event name).
    fn waits_for_event(_settings: &Self::Settings) -> Option<&str> {
        None
    }
}

/// What is published about a kind: its `type`, description, outputs and example.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// The `type` tag.
    pub name: &'static str,
    pub description: &'static str,
    pub outputs: &'static [Output],
    /// Settings of a typical node, as JSON text.
    pub example: &'static str,
    pub waits: bool,
    settings_schema: fn(&mut SchemaGenerator) -> Schema,
}

impl KindInfo {
    const fn of<K: Kind>(name: &'static str) -> Self {
        KindInfo {
            name,
            description: K::DESCRIPTION,
            outputs: K::OUTPUTS,
            example: K::EXAMPLE,
            waits: K::WAITS,
            settings_schema: <K::Settings as JsonSchema>::json_schema,
        }
    }

    /// The schema of a node of this kind: the settings' object schema with the `type` tag, the
    /// description, `x-outputs` and the example.
    fn node_schema(&self, generator: &mut SchemaGenerator) -> Value {
        let mut schema = (self.settings_schema)(generator).to_value();
        let example: Value = serde_json::from_str(self.example).unwrap_or(Value::Null);
        if let Value::Object(o) = &mut schema {
            o.remove("title");
            o.insert("type".into(), "object".into());
            let properties = o
                .entry("properties")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(p) = properties {
                p.insert(
                    "type".into(),
                    serde_json::json!({ "type": "string", "const": self.name }),
                );
            }
            let required = o
                .entry("required")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(r) = required {
                r.insert(0, Value::from("type"));
            }
            o.insert("description".into(), self.description.into());
            o.insert(
                "x-outputs".into(),
                serde_json::to_value(self.outputs).unwrap_or_default(),
            );
            if let Value::Object(mut e) = example {
                e.insert("type".into(), self.name.into());
                o.insert("examples".into(), Value::Array(vec![Value::Object(e)]));
            }
        }
        schema
    }
}

/// Registers the node kinds: `Variant(SettingsType) = "type" => marker::Type,` per kind.
macro_rules! node_kinds {
    ($( $variant:ident($settings:ty) = $name:literal => $kind:ty, )*) => {
        /// A node's kind with its settings; `type` in documents. One variant per kind module
        /// of `crate::kinds`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum NodeKind {
            $( #[serde(rename = $name)] $variant($settings), )*
        }

        impl NodeKind {
            /// Every registered kind, in the order of the builder's palette.
            pub const ALL: &'static [KindInfo] = &[ $( KindInfo::of::<$kind>($name), )* ];

            /// The `type` tag of this node.
            pub fn type_name(&self) -> &'static str {
                match self { $( NodeKind::$variant(_) => $name, )* }
            }

            /// The named outputs an edge may leave this node from.
            pub fn outputs(&self) -> Vec<String> {
                match self { $( NodeKind::$variant(s) => <$kind as Kind>::outputs(s), )* }
            }

            /// Whether an enrollment may stop at this node and wait for time to pass; every
            /// cycle in a journey must pass through such a node.
            pub fn waits(&self) -> bool {
                match self { $( NodeKind::$variant(_) => <$kind as Kind>::WAITS, )* }
            }

            /// Whether the node sends a message (engagement conditions may name it).
            pub fn sends_message(&self) -> bool {
                match self { $( NodeKind::$variant(_) => <$kind as Kind>::SENDS_MESSAGE, )* }
            }

            /// The node the path continues at when a setting says so (`jump`).
            pub fn continues_at(&self) -> Option<&str> {
                match self { $( NodeKind::$variant(s) => <$kind as Kind>::continues_at(s), )* }
            }

            /// The event name the node waits for, if any.
            pub fn waits_for_event(&self) -> Option<&str> {
                match self {
                    $( NodeKind::$variant(s) => <$kind as Kind>::waits_for_event(s), )*
                }
            }

            pub(crate) fn validate(&self, check: &mut NodeCheck<'_>) {
                match self { $( NodeKind::$variant(s) => <$kind as Kind>::validate(s, check), )* }
            }

            pub(crate) fn arrive(&self, run: &mut Run<'_>) -> Arrival {
                match self { $( NodeKind::$variant(s) => <$kind as Kind>::arrive(s, run), )* }
            }

            pub(crate) fn timer(&self, run: &mut Run<'_>) -> Option<Arrival> {
                match self { $( NodeKind::$variant(s) => <$kind as Kind>::timer(s, run), )* }
            }

            pub(crate) fn event(
                &self,
                run: &mut Run<'_>,
                event: &EventRecord,
            ) -> Option<Cow<'static, str>> {
                match self {
                    $( NodeKind::$variant(s) => <$kind as Kind>::event(s, run, event), )*
                }
            }

            pub(crate) fn resume(&self, run: &mut Run<'_>) -> Option<Cow<'static, str>> {
                match self { $( NodeKind::$variant(s) => <$kind as Kind>::resume(s, run), )* }
            }
        }
    };
}

impl JsonSchema for NodeKind {
    fn schema_name() -> Cow<'static, str> {
        "NodeKind".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let variants: Vec<Value> = NodeKind::ALL
            .iter()
            .map(|kind| kind.node_schema(generator))
            .collect();
        schemars::json_schema!({ "oneOf": variants })
    }
}

node_kinds! {
    Trigger(Box<trigger::TriggerNode>) = "trigger" => trigger::Trigger,
    Delay(delay::DelayNode) = "delay" => delay::Delay,
    WaitForEvent(wait_for_event::WaitForEventNode) = "wait_for_event" => wait_for_event::WaitForEvent,
    Branch(branch::BranchNode) = "branch" => branch::Branch,
    RandomSplit(split::RandomSplitNode) = "random_split" => split::RandomSplit,
    WaitUntil(wait_until::WaitUntilNode) = "wait_until" => wait_until::WaitUntil,
    WaitUntilDate(wait_until::WaitUntilDateNode) = "wait_until_date" => wait_until::WaitUntilDate,
    SendEmail(send::SendNode) = "send_email" => send::Send<send::Email>,
    SendSms(send::SendNode) = "send_sms" => send::Send<send::Sms>,
    UpdateTraits(traits::UpdateTraitsNode) = "update_traits" => traits::UpdateTraits,
    AddToList(lists::ListNode) = "add_to_list" => lists::ListChange<lists::Add>,
    RemoveFromList(lists::ListNode) = "remove_from_list" => lists::ListChange<lists::Remove>,
    Exit(flow::ExitNode) = "exit" => flow::Exit,
    Webhook(webhook::WebhookNode) = "webhook" => webhook::Webhook,
    EmitEvent(emit_event::EmitEventNode) = "emit_event" => emit_event::EmitEvent,
    Unsubscribe(unsubscribe::UnsubscribeNode) = "unsubscribe" => unsubscribe::Unsubscribe,
    EnrollInJourney(enroll_in_journey::EnrollNode) = "enroll_in_journey" => enroll_in_journey::EnrollInJourney,
    Jump(flow::JumpNode) = "jump" => flow::Jump,
    Score(traits::ScoreNode) = "score" => traits::Score,
    Experiment(split::ExperimentNode) = "experiment" => split::Experiment,
}
