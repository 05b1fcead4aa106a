//! `add_to_list` and `remove_from_list`: change the contact's static lists.

use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, NEXT_ONLY, Output};
use crate::stepper::{Effect, Run};
use crate::validate::NodeCheck;

/// A list kind: `ListChange<Add>` is `add_to_list`, `ListChange<Remove>` is
/// `remove_from_list`.
pub struct ListChange<A>(PhantomData<A>);

/// What differs between the list kinds: the effect, and how it is described.
pub trait ListAction {
    const DESCRIPTION: &'static str;
    const EXAMPLE: &'static str;
    fn effect(list: String) -> Effect;
}

pub struct Add;

impl ListAction for Add {
    const DESCRIPTION: &'static str = "Adds the contact to a list.";
    const EXAMPLE: &'static str = r#"{"list": "customers"}"#;
    fn effect(list: String) -> Effect {
        Effect::AddToList(list)
    }
}

pub struct Remove;

impl ListAction for Remove {
    const DESCRIPTION: &'static str = "Removes the contact from a list.";
    const EXAMPLE: &'static str = r#"{"list": "prospects"}"#;
    fn effect(list: String) -> Effect {
        Effect::RemoveFromList(list)
    }
}

impl<A: ListAction> Kind for ListChange<A> {
    type Settings = ListNode;
    const DESCRIPTION: &'static str = A::DESCRIPTION;
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = A::EXAMPLE;

    fn validate(l: &ListNode, check: &mut NodeCheck<'_>) {
        if l.list.trim().is_empty() {
            check.err("required", Some("list"), "must name a list".into());
        }
    }

    fn arrive(l: &ListNode, run: &mut Run<'_>) -> Arrival {
        run.effect(A::effect(l.list.clone()));
        Arrival::next()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListNode {
    pub list: String,
}
