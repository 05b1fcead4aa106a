//! `emit_event`: records a custom event for the contact, once per visit (its message id is the
//! effect's idempotency key); the engine processes it after this step like any event.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Arrival, Kind, NEXT_ONLY, Output};
use crate::stepper::{Effect, Run};
use crate::validate::NodeCheck;

pub struct EmitEvent;

impl Kind for EmitEvent {
    type Settings = EmitEventNode;
    const DESCRIPTION: &'static str = "Records a custom event for the contact (processed after \
        this step, like any event: it can trigger journeys and end waits).";
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str =
        r#"{"event": "Onboarding Finished", "properties": {"plan": "pro"}}"#;

    fn validate(e: &EmitEventNode, check: &mut NodeCheck<'_>) {
        if e.event.trim().is_empty() {
            check.err("required", Some("event"), "must name an event".into());
        }
    }

    fn arrive(e: &EmitEventNode, run: &mut Run<'_>) -> Arrival {
        let effect = Effect::EmitEvent {
            name: e.event.clone(),
            properties: e.properties.clone(),
            idempotency_key: run.effect_key(),
        };
        run.effect(effect);
        Arrival::next()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmitEventNode {
    /// The event name.
    pub event: String,
    /// Its properties (plain values, not templates).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub properties: serde_json::Map<String, Value>,
}
