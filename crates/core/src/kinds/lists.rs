//! `add_to_list` and `remove_from_list`: change the contact's static lists.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, NEXT_ONLY, Output};
use crate::stepper::{Effect, Run};
use crate::validate::NodeCheck;

pub struct AddToList;

impl Kind for AddToList {
    type Settings = ListNode;
    const DESCRIPTION: &'static str = "Adds the contact to a list.";
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = r#"{"list": "customers"}"#;

    fn validate(l: &ListNode, check: &mut NodeCheck<'_>) {
        check_list(l, check);
    }

    fn arrive(l: &ListNode, run: &mut Run<'_>) -> Arrival {
        run.effect(Effect::AddToList(l.list.clone()));
        Arrival::next()
    }
}

pub struct RemoveFromList;

impl Kind for RemoveFromList {
    type Settings = ListNode;
    const DESCRIPTION: &'static str = "Removes the contact from a list.";
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = r#"{"list": "prospects"}"#;

    fn validate(l: &ListNode, check: &mut NodeCheck<'_>) {
        check_list(l, check);
    }

    fn arrive(l: &ListNode, run: &mut Run<'_>) -> Arrival {
        run.effect(Effect::RemoveFromList(l.list.clone()));
        Arrival::next()
    }
}

fn check_list(l: &ListNode, check: &mut NodeCheck<'_>) {
    if l.list.trim().is_empty() {
        check.err("required", Some("list"), "must name a list".into());
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListNode {
    pub list: String,
}
