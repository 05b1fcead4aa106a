//! The journey document (what users write in YAML or JSON, and what the builder edits) and the
//! compiled `Journey` the stepper runs.
//!
//! A document is a list of nodes and a list of edges. Each node kind (its settings, outputs,
//! validation and step behaviour) is a module of `crate::kinds`, registered in `NodeKind`;
//! their settings types are re-exported here. The JSON Schema of the document is served by the
//! server and drives the builder's palette and the outputs it draws.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::duration::Duration;
use crate::filter::Filter;
use crate::timing::SendWindow;
use jiff::tz::TimeZone;

pub use crate::kinds::NodeKind;
pub use crate::kinds::branch::BranchNode;
pub use crate::kinds::delay::DelayNode;
pub use crate::kinds::emit_event::EmitEventNode;
pub use crate::kinds::enroll_in_journey::EnrollNode;
pub use crate::kinds::flow::{ExitNode, JumpNode};
pub use crate::kinds::lists::ListNode;
pub use crate::kinds::send::SendNode;
pub use crate::kinds::split::{ExperimentNode, HOLDOUT, RandomSplitNode, SplitBranch};
pub use crate::kinds::traits::{DEFAULT_SCORE_TRAIT, ScoreNode, UpdateTraitsNode};
pub use crate::kinds::trigger::{
    DateRepeat, DateTrigger, InactivityTrigger, ScheduleTrigger, SegmentEdge, SegmentTrigger,
    TriggerNode,
};
pub use crate::kinds::unsubscribe::UnsubscribeNode;
pub use crate::kinds::wait_for_event::WaitForEventNode;
pub use crate::kinds::wait_until::{WaitUntilDateNode, WaitUntilNode};
pub use crate::kinds::webhook::{WEBHOOK_DEFAULT_TIMEOUT, WebhookMethod, WebhookNode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JourneyDocument {
    /// Stable identifier (letters, digits, `-` and `_`); used in URLs and by `journeys apply`.
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub entry: EntrySettings,
    /// The time zone of calendar waits (e.g. `Europe/Rome`) for contacts without a `timezone`
    /// trait, unless the node names its own. Default: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A goal event ends the enrollment at once, cancels its timers and counts as a conversion
    /// (on every node the enrollment visited); with `within`, only inside that window after
    /// entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<ExitEvent>,
    /// Local hours in which this journey sends no email or SMS (in the contact's time zone,
    /// else the journey's, else UTC). Replaces the installation's `--quiet-hours`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Local dates on which this journey sends nothing: `YYYY-MM-DD`, or `MM-DD` for every
    /// year. Added to the installation's `--blocked-dates`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_dates: Vec<String>,
    /// What a send that falls in quiet hours or on a blocked date does: wait for the next
    /// allowed moment (`defer`, default) or go on without sending (`skip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_hours: Option<OutsideHours>,
    /// The most messages (email, SMS and webhook calls together) this journey hands to the
    /// transports, e.g. `100/m`, `5000/h`, `20/s`; the rest wait their turn in the outbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_rate: Option<String>,
    /// Events that end the enrollment at once without counting as a conversion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit_on: Vec<ExitEvent>,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// List changes applied whenever an enrollment ends (completed, converted or exited by an
    /// exit node or event): copy the contact to a list, or move it from one to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_end: Option<OnEnd>,
    /// Templates shipped with the journey file; `journeys apply` creates or updates them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateDefinition>,
}

impl JourneyDocument {
    /// The templates its email and SMS nodes send, each once, in node order.
    pub fn sent_templates(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for node in &self.nodes {
            if let NodeKind::SendEmail(send) | NodeKind::SendSms(send) = &node.kind
                && !ids.contains(&send.template)
            {
                ids.push(send.template.clone());
            }
        }
        ids
    }

    /// The segments its triggers start on (entry or exit) or draw from (a schedule's
    /// segment), each once, in node order.
    pub fn segments(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for node in &self.nodes {
            let NodeKind::Trigger(trigger) = &node.kind else {
                continue;
            };
            let named = [
                trigger.segment.as_ref().map(|s| &s.id),
                trigger.schedule.as_ref().and_then(|s| s.segment.as_ref()),
            ];
            for id in named.into_iter().flatten() {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
        }
        ids
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntrySettings {
    #[serde(default)]
    pub reentry: Reentry,
    /// A property of the trigger event (e.g. `cart_id`) whose value keys the enrollment: at
    /// most one active enrollment per contact and key; waits and goals can match on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Whether a contact may enter the journey again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reentry {
    /// Once ever per contact (and key, if the journey has one).
    Once,
    /// Every time the trigger fires, while no enrollment with the same key is active.
    #[default]
    EveryTime,
    /// Again once this long has passed since the previous entry, e.g. `{cooldown: 7d}`.
    Cooldown(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExitEvent {
    pub event: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: Filter,
    /// Only an event whose key property equals the enrollment's key counts. Defaults to true
    /// when the journey has an entry key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_key: Option<bool>,
    /// Goal only: the conversion window after entry, e.g. `7d`; a later goal event does not
    /// convert (nor end the enrollment). Without it, a goal event converts while the
    /// enrollment runs and for 7 days after it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// Goal only: the property of the goal event that holds its revenue (a number, or a
    /// number in a string). Default: `revenue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_property: Option<String>,
    /// Goal only: the currency revenue is reported in (ISO 4217, e.g. `EUR`). A goal event
    /// whose `currency` property names another one converts, but its revenue is not added.
    /// Default: `USD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// The revenue a goal event states.
#[derive(Debug, Clone, PartialEq)]
pub struct Revenue {
    pub amount: f64,
    /// The event's `currency` (upper-cased), else the goal's.
    pub currency: String,
    /// Whether it is in the goal's currency, so that reports add it up.
    pub counted: bool,
}

impl ExitEvent {
    /// The currency a goal's revenue is reported in.
    pub fn revenue_currency(&self) -> &str {
        self.currency.as_deref().unwrap_or("USD")
    }

    /// The revenue a goal event's `properties` state: the goal's `revenue_property` (default
    /// `revenue`) as a finite number, or a string holding one (`"19.90"`); `None` without it.
    pub fn revenue_of(&self, properties: &Map<String, Value>) -> Option<Revenue> {
        let property = self.revenue_property.as_deref().unwrap_or("revenue");
        let amount = match properties.get(property)? {
            Value::Number(n) => n.as_f64()?,
            Value::String(s) => s.trim().parse::<f64>().ok()?,
            _ => return None,
        };
        if !amount.is_finite() {
            return None;
        }
        let ours = self.revenue_currency();
        let currency = match properties.get("currency").and_then(Value::as_str) {
            Some(c) if !c.trim().is_empty() => c.trim().to_ascii_uppercase(),
            _ => ours.to_string(),
        };
        Some(Revenue {
            amount,
            counted: currency == ours,
            currency,
        })
    }
}

/// What happens to a contact's lists when its enrollment ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnEnd {
    /// Add the contact to this list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_to_list: Option<String>,
    /// Remove the contact from this list (with `add_to_list`: a move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_from_list: Option<String>,
}

/// A daily quiet period in local time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Start, `HH:MM`.
    pub start: String,
    /// End, `HH:MM`; earlier than `start` means the next morning (`21:00` to `08:00`).
    pub end: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutsideHours {
    /// Wait at the send node until the next allowed moment, then send.
    #[default]
    Defer,
    /// Go on along the path without sending; the step log says why.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Node {
    /// Unique within the journey (letters, digits, `-` and `_`).
    pub id: String,
    #[serde(flatten)]
    pub kind: NodeKind,
    /// Where the builder draws the node; ignored by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// Which output of `from`: `next` (default), `yes`/`no` for a branch, `event`/`timeout`
    /// for a wait.
    #[serde(default = "next_output")]
    pub output: String,
}

fn next_output() -> String {
    "next".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            _ => None,
        }
    }
}

/// What an outbox message goes through: a template's [`Channel`], or the `webhook` action's
/// HTTP call. Stored as its `as_str` text in `messages.channel`; parsed once where a message is
/// delivered or filtered. Templates, caps and conditions keep [`Channel`], which has no webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxChannel {
    Email,
    Sms,
    Webhook,
}

impl OutboxChannel {
    pub const ALL: [OutboxChannel; 3] = [
        OutboxChannel::Email,
        OutboxChannel::Sms,
        OutboxChannel::Webhook,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OutboxChannel::Email => "email",
            OutboxChannel::Sms => "sms",
            OutboxChannel::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl From<Channel> for OutboxChannel {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::Email => OutboxChannel::Email,
            Channel::Sms => OutboxChannel::Sms,
        }
    }
}

/// A message template: Liquid in every field. Email uses `subject` and `mjml`, `html` and/or
/// `text` (MJML or HTML, not both; a missing `text` is generated from the HTML); SMS uses
/// `body`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateDefinition {
    pub id: String,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// MJML, rendered to HTML after Liquid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mjml: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Email only: `false` turns off open and click tracking (link rewriting and the open
    /// pixel) for this template; tracking is on by default when a public URL is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<bool>,
    /// The subscription topic of a marketing message (e.g. `newsletter`); contacts who
    /// unsubscribed from it (or from all marketing) or whose double opt-in is pending do not
    /// receive it. Absent: the channel's general marketing consent (`*`) alone decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A transactional message (receipt, password reset, double opt-in confirmation) ignores
    /// subscriptions and carries no List-Unsubscribe header; suppressions still apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transactional: bool,
}

impl TemplateDefinition {
    /// Whether any of its fields mentions `text`: a cheap, conservative test of whether a
    /// template uses a variable that costs reads to fill (a mention in a comment or in plain
    /// text only costs a needless read).
    pub fn mentions(&self, text: &str) -> bool {
        [
            &self.subject,
            &self.html,
            &self.mjml,
            &self.text,
            &self.body,
        ]
        .into_iter()
        .flatten()
        .any(|source| source.contains(text))
    }
}

/// Parses a document from YAML or JSON text (JSON is YAML, but JSON errors read better).
pub fn parse_document_value(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
    }
}

/// A validated journey ready to run: edges indexed, triggers and journey settings parsed.
#[derive(Debug, Clone)]
pub struct Journey {
    pub document: JourneyDocument,
    nodes: HashMap<String, usize>,
    next: HashMap<(String, String), String>,
    timezone: Option<TimeZone>,
    cooldown: Option<Duration>,
    goal_window: Option<Duration>,
    send_window: SendWindow,
    /// (trigger node index, event name, filter) for every trigger.
    trigger_matchers: Vec<(usize, String, Filter)>,
    timed_triggers: Vec<(String, crate::schedule::TimedTrigger)>,
    /// The version of each template this journey version sends, pinned when it was
    /// published (see [`Journey::with_template_versions`]).
    template_versions: BTreeMap<String, i64>,
}

impl Journey {
    /// Builds a runnable journey. Only call with a document that passed `validate`; an invalid
    /// one is reported as the list of its errors.
    pub fn compile(document: JourneyDocument) -> Result<Self, Vec<crate::ValidationError>> {
        let errors = crate::validate::validate(&document, None);
        if !errors.is_empty() {
            return Err(errors);
        }
        let nodes = document
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let mut next: HashMap<(String, String), String> = document
            .edges
            .iter()
            .map(|e| ((e.from.clone(), e.output.clone()), e.to.clone()))
            .collect();
        // A jump is an edge drawn as a node setting.
        for n in &document.nodes {
            if let Some(to) = n.kind.continues_at() {
                next.insert((n.id.clone(), crate::kinds::NEXT.into()), to.to_string());
            }
        }
        let goal_window = document
            .goal
            .as_ref()
            .and_then(|g| g.within.as_deref())
            .map(|w| Duration::parse(w).expect("validated"));
        let send_window = SendWindow::from_settings(
            document.quiet_hours.as_ref(),
            &document.blocked_dates,
            document.outside_hours.unwrap_or_default(),
        )
        .expect("validated");
        let mut trigger_matchers = Vec::new();
        let mut timed_triggers = Vec::new();
        for (i, n) in document.nodes.iter().enumerate() {
            if let NodeKind::Trigger(t) = &n.kind {
                let (name, filter) = t.matcher(&document.id);
                if !name.is_empty() {
                    trigger_matchers.push((i, name, filter));
                }
                let (name, filter) = TriggerNode::due_matcher(&document.id, &n.id);
                trigger_matchers.push((i, name, filter));
                if let Some(timing) = t.timing() {
                    timed_triggers.push((n.id.clone(), timing.expect("validated")));
                }
            }
        }
        let timezone = document
            .timezone
            .as_deref()
            .map(|t| TimeZone::get(t).expect("validated"));
        let cooldown = match &document.entry.reentry {
            Reentry::Cooldown(d) => Some(Duration::parse(d).expect("validated")),
            _ => None,
        };
        Ok(Journey {
            document,
            nodes,
            next,
            timezone,
            cooldown,
            goal_window,
            send_window,
            trigger_matchers,
            timed_triggers,
            template_versions: BTreeMap::new(),
        })
    }

    /// The date, inactivity and schedule triggers, by node id.
    pub fn timed_triggers(&self) -> &[(String, crate::schedule::TimedTrigger)] {
        &self.timed_triggers
    }

    /// Applies the installation's quiet hours and blocked dates: the journey's own quiet hours
    /// win; blocked dates add up.
    pub fn with_installation_window(mut self, installation: &SendWindow) -> Self {
        self.send_window = self.send_window.under(installation);
        self
    }

    /// The template versions a published version pinned: its sends render them, whatever
    /// was edited since.
    pub fn with_template_versions(mut self, versions: BTreeMap<String, i64>) -> Self {
        self.template_versions = versions;
        self
    }

    /// The pinned version of template `id`; `None` when the version pinned none (a draft, or
    /// a template created after publishing), in which case the current template is sent.
    pub fn template_version(&self, id: &str) -> Option<i64> {
        self.template_versions.get(id).copied()
    }

    /// When sends are allowed.
    pub fn send_window(&self) -> &SendWindow {
        &self.send_window
    }

    /// How long after entry the goal still converts; `None`: for as long as the enrollment
    /// is active.
    pub fn goal_window(&self) -> Option<Duration> {
        self.goal_window
    }

    pub fn id(&self) -> &str {
        &self.document.id
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id).map(|&i| &self.document.nodes[i])
    }

    pub fn next(&self, from: &str, output: &str) -> Option<&str> {
        self.next
            .get(&(from.to_string(), output.to_string()))
            .map(String::as_str)
    }

    /// The journey's fallback time zone for calendar waits.
    pub fn timezone(&self) -> Option<&TimeZone> {
        self.timezone.as_ref()
    }

    pub fn cooldown(&self) -> Option<Duration> {
        self.cooldown
    }

    pub fn key_property(&self) -> Option<&str> {
        self.document.entry.key.as_deref()
    }

    /// Trigger nodes that start on this event name, with the filter the event must match.
    pub fn triggers<'a>(&'a self, event: &'a str) -> impl Iterator<Item = (&'a Node, &'a Filter)> {
        self.trigger_matchers
            .iter()
            .filter(move |(_, name, _)| name == event)
            .map(|(i, _, filter)| (&self.document.nodes[*i], filter))
    }

    /// The event names this journey's triggers start on.
    pub fn trigger_events(&self) -> impl Iterator<Item = &str> {
        self.trigger_matchers
            .iter()
            .map(|(_, name, _)| name.as_str())
    }

    /// Every event name this journey reacts to (triggers, waits, goal, exits, branch history).
    pub fn event_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        names.extend(self.trigger_events().map(str::to_string));
        names.extend(
            self.document
                .nodes
                .iter()
                .filter_map(|n| n.kind.waits_for_event())
                .map(str::to_string),
        );
        names.extend(self.document.goal.iter().map(|g| g.event.clone()));
        names.extend(self.document.exit_on.iter().map(|g| g.event.clone()));
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_segments_of_a_journey_are_those_its_triggers_name_once_each() {
        let doc: JourneyDocument = serde_json::from_value(serde_json::json!({
            "id": "j", "name": "J",
            "nodes": [
                {"id": "in", "type": "trigger", "segment": {"id": "vip"}},
                {"id": "out", "type": "trigger", "segment": {"id": "lapsed", "on": "exit"}},
                {"id": "weekly", "type": "trigger", "schedule": {"cron": "@weekly", "segment": "vip"}},
                {"id": "all", "type": "trigger", "schedule": {"cron": "@daily"}},
                {"id": "signup", "type": "trigger", "event": "Signed Up"},
                {"id": "bye", "type": "exit"}
            ]
        }))
        .expect("a journey document");
        assert_eq!(doc.segments(), ["vip", "lapsed"]);
    }
}
