//! The kinds that only move the enrollment: `exit` ends it, `jump` continues at another node
//! (an edge drawn as a setting, so a jump has no outputs of its own).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, Output};
use crate::stepper::{EnrollmentStatus, Run};
use crate::validate::{NodeCheck, NodeRef};

pub struct Exit;

impl Kind for Exit {
    type Settings = ExitNode;
    const DESCRIPTION: &'static str = "Ends the enrollment.";
    const OUTPUTS: &'static [Output] = &[];
    const EXAMPLE: &'static str = "{}";

    fn arrive(_: &ExitNode, _: &mut Run<'_>) -> Arrival {
        Arrival::End {
            status: EnrollmentStatus::Exited,
            reason: "exit node".into(),
        }
    }
}

pub struct Jump;

impl Kind for Jump {
    type Settings = JumpNode;
    const DESCRIPTION: &'static str =
        "Continues at another node of this journey (no outgoing edges).";
    const OUTPUTS: &'static [Output] = &[];
    const EXAMPLE: &'static str = r#"{"to": "done"}"#;

    fn validate(j: &JumpNode, check: &mut NodeCheck<'_>) {
        match check.node_ref(&j.to) {
            NodeRef::Missing => {
                let message = check.no_such_node(&j.to);
                check.err("unknown_node", Some("to"), message);
            }
            _ if check.is_trigger(&j.to) => check.err(
                "edge_into_trigger",
                Some("to"),
                "a jump cannot lead to a trigger".into(),
            ),
            _ => {}
        }
    }

    /// The path goes on from the jump's own `next`, which `Journey::compile` points at `to`.
    fn arrive(_: &JumpNode, _: &mut Run<'_>) -> Arrival {
        Arrival::next()
    }

    fn continues_at(j: &JumpNode) -> Option<&str> {
        Some(&j.to)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExitNode {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JumpNode {
    /// The node to continue at.
    pub to: String,
}
