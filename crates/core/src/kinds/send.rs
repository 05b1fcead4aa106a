//! `send_email` and `send_sms`: queue a message rendered from a template, within the journey's
//! sending hours (quiet hours and blocked dates defer the send, or skip it with
//! `outside_hours: skip`).

use std::marker::PhantomData;

use jiff::SignedDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, NEXT_ONLY, Output};
use crate::journey::Channel;
use crate::stepper::{Effect, Run};
use crate::validate::NodeCheck;

/// A send kind, one per channel: `Send<Email>` is `send_email`, `Send<Sms>` is `send_sms`.
pub struct Send<C>(PhantomData<C>);

/// What differs between the send kinds: the channel, and how it is described.
pub trait SendChannel {
    const CHANNEL: Channel;
    const DESCRIPTION: &'static str;
    const EXAMPLE: &'static str;
}

pub struct Email;

impl SendChannel for Email {
    const CHANNEL: Channel = Channel::Email;
    const DESCRIPTION: &'static str = "Sends an email rendered from a template.";
    const EXAMPLE: &'static str = r#"{"template": "welcome-email"}"#;
}

pub struct Sms;

impl SendChannel for Sms {
    const CHANNEL: Channel = Channel::Sms;
    const DESCRIPTION: &'static str = "Sends an SMS rendered from a template.";
    const EXAMPLE: &'static str = r#"{"template": "welcome-sms"}"#;
}

impl<C: SendChannel> Kind for Send<C> {
    type Settings = SendNode;
    const DESCRIPTION: &'static str = C::DESCRIPTION;
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = C::EXAMPLE;
    const SENDS_MESSAGE: bool = true;

    fn validate(s: &SendNode, check: &mut NodeCheck<'_>) {
        check_template(s, C::CHANNEL, check);
    }

    fn arrive(s: &SendNode, run: &mut Run<'_>) -> Arrival {
        send(s, C::CHANNEL, run)
    }

    /// A send deferred by quiet hours or a blocked date.
    fn timer(s: &SendNode, run: &mut Run<'_>) -> Option<Arrival> {
        Some(send(s, C::CHANNEL, run))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendNode {
    /// The id of a message template of the node's channel.
    pub template: String,
}

/// The template must exist (in the journey file or the store) and be of the node's channel;
/// checked only when the validator is given a template look-up.
fn check_template(s: &SendNode, want: Channel, check: &mut NodeCheck<'_>) {
    match check.template_channel(&s.template) {
        None => {}
        Some(None) => check.err(
            "unknown_template",
            Some("template"),
            format!("there is no template `{}`", s.template),
        ),
        Some(Some(ch)) if ch != want => check.err(
            "wrong_channel",
            Some("template"),
            format!(
                "template `{}` is for {}, not {}",
                s.template,
                ch.as_str(),
                want.as_str()
            ),
        ),
        Some(Some(_)) => {}
    }
}

/// Sends now if the journey's sending hours allow it; otherwise skips the send (going on) or
/// waits at the node until they do (a year without an allowed moment: tomorrow, rather than
/// never).
fn send(s: &SendNode, channel: Channel, run: &mut Run<'_>) -> Arrival {
    let window = run.journey().send_window();
    if !window.is_unrestricted() {
        let allowed = window.next_allowed(run.now(), &run.local_zone(None));
        if allowed != Some(run.now()) {
            if window.skip {
                run.skipped("outside sending hours");
                return Arrival::next();
            }
            return Arrival::Wait(allowed.unwrap_or(run.now() + SignedDuration::from_hours(24)));
        }
    }
    let effect = Effect::Send {
        channel,
        node: run.node().to_string(),
        template: s.template.clone(),
        idempotency_key: run.effect_key(),
    };
    run.effect(effect);
    Arrival::next()
}
