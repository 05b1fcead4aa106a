//! `branch`: takes `yes` or `no` depending on a condition (the condition language of
//! `crate::condition`), evaluated with this step's own trait updates.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, Output};
use crate::condition::{Condition, Scope};
use crate::stepper::Run;
use crate::validate::{NodeCheck, NodeRef};

pub struct Branch;

impl Kind for Branch {
    type Settings = BranchNode;
    const DESCRIPTION: &'static str = "Takes the `yes` or `no` output depending on a condition.";
    const OUTPUTS: &'static [Output] = &[Output::Named("yes"), Output::Named("no")];
    const EXAMPLE: &'static str =
        r#"{"condition": "did \"Order Completed\" at least 2 times in last 90d"}"#;

    fn validate(b: &BranchNode, check: &mut NodeCheck<'_>) {
        for e in crate::condition::validate(&b.condition, Scope::Branch) {
            let field = if e.path.is_empty() {
                "condition".to_string()
            } else {
                format!("condition.{}", e.path)
            };
            check.err(e.code, Some(&field), e.message);
        }
        b.condition.visit(&mut |c| match c {
            Condition::Event(e) if e.match_key && !check.has_key() => check.err(
                "no_key",
                Some("condition.event.match_key"),
                "the journey has no entry.key to match".into(),
            ),
            Condition::Message(m) => match check.node_ref(&m.node) {
                NodeRef::Parsed(kind) if kind.sends_message() => {}
                NodeRef::Parsed(_) => check.err(
                    "not_a_send_node",
                    Some("condition.message.node"),
                    format!("node `{}` does not send a message", m.node),
                ),
                // A node that did not parse has its own error.
                NodeRef::Unparsed => {}
                NodeRef::Missing => {
                    let message = check.no_such_node(&m.node);
                    check.err("unknown_node", Some("condition.message.node"), message)
                }
            },
            _ => {}
        })
    }

    fn arrive(b: &BranchNode, run: &mut Run<'_>) -> Arrival {
        let output = if run.holds(&b.condition) { "yes" } else { "no" };
        Arrival::Leave(Cow::Borrowed(output))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchNode {
    /// A condition in the JSON form, or the same in the text form as a string (see
    /// docs/conditions.md), e.g. `did "Order Completed" at least 2 times in last 90d`.
    #[serde(with = "crate::condition::json_or_text")]
    #[schemars(with = "crate::condition::ConditionOrText")]
    pub condition: Condition,
}
