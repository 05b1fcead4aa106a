//! `unsubscribe`: unsubscribes the contact from a marketing topic (or from all marketing) on a
//! channel; the engine records it like any unsubscribe.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, NEXT_ONLY, Output};
use crate::journey::Channel;
use crate::stepper::{Effect, Run};
use crate::validate::NodeCheck;

pub struct Unsubscribe;

impl Kind for Unsubscribe {
    type Settings = UnsubscribeNode;
    const DESCRIPTION: &'static str = "Unsubscribes the contact from a marketing topic (or from \
        all marketing) on a channel, e.g. the last step of a re-engagement journey.";
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = r#"{"topic": "newsletter", "channel": "email"}"#;

    fn validate(u: &UnsubscribeNode, check: &mut NodeCheck<'_>) {
        if u.topic.as_deref().is_some_and(|t| t.trim().is_empty()) {
            check.err(
                "required",
                Some("topic"),
                "must not be empty (leave it out for all marketing)".into(),
            );
        }
    }

    fn arrive(u: &UnsubscribeNode, run: &mut Run<'_>) -> Arrival {
        run.effect(Effect::Unsubscribe {
            channel: u.channel,
            topic: u.topic.clone(),
        });
        Arrival::next()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeNode {
    /// The topic; absent means all marketing on the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// `email` (default) or `sms`.
    #[serde(default = "email_channel")]
    pub channel: Channel,
}

fn email_channel() -> Channel {
    Channel::Email
}
