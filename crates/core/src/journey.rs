//! The journey document (what users write in YAML or JSON, and what the builder edits) and the
//! compiled `Journey` the stepper runs.
//!
//! A document is a list of nodes and a list of edges. Each node kind is one variant of
//! `NodeKind` with its settings; its outputs are named by `NodeKind::outputs`. The JSON Schema
//! of this module is served by the server and drives the builder's palette, so adding a node
//! kind means adding a variant here and its behaviour in `stepper`.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::condition::Condition;
use crate::duration::Duration;
use crate::filter::Filter;
use crate::timing::{SendWindow, WaitUntilSpec, parse_time_of_day, parse_weekday};
use jiff::tz::TimeZone;

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
    /// convert (nor end the enrollment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
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
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeKind {
    /// Starts an enrollment when the contact performs an event.
    Trigger(Box<TriggerNode>),
    /// Waits for a fixed duration (a day is 24 hours).
    Delay(DelayNode),
    /// Waits for an event, at most `timeout`. Ends at once if the event already happened since
    /// the enrollment began. Outputs: `event`, `timeout`.
    WaitForEvent(WaitForEventNode),
    /// Takes the `yes` or `no` output depending on a condition.
    Branch(BranchNode),
    /// Sends each contact down one of its branches by percentage. The choice is a stable hash
    /// of journey, node and contact, so a retry or re-entry goes the same way. Outputs: the
    /// branch names.
    RandomSplit(RandomSplitNode),
    /// Waits until the next moment at a local time of day (on allowed weekdays) in the
    /// contact's time zone.
    WaitUntil(WaitUntilNode),
    /// Waits until a date trait (e.g. `renews_on`) plus an offset in days, at a local time.
    /// Outputs: `next` when the moment comes, `missed` at once when the trait is not a date or
    /// the moment has passed.
    WaitUntilDate(WaitUntilDateNode),
    /// Sends an email rendered from a template.
    SendEmail(SendNode),
    /// Sends an SMS rendered from a template.
    SendSms(SendNode),
    /// Sets contact traits (values may not be templates).
    UpdateTraits(UpdateTraitsNode),
    /// Adds the contact to a list.
    AddToList(ListNode),
    /// Removes the contact from a list.
    RemoveFromList(ListNode),
    /// Ends the enrollment.
    Exit(ExitNode),
    /// Calls an HTTP endpoint with a JSON body built with Liquid, signed with the
    /// installation's webhook secret; delivered through the outbox with retries.
    Webhook(WebhookNode),
    /// Records a custom event for the contact (processed after this step, like any event:
    /// it can trigger journeys and end waits).
    EmitEvent(EmitEventNode),
    /// Unsubscribes the contact from a marketing topic (or from all marketing) on a channel,
    /// e.g. the last step of a re-engagement journey.
    Unsubscribe(UnsubscribeNode),
    /// Enrolls the contact in another journey, which must have an `api` trigger; the trigger
    /// event's properties go along as the entry payload.
    EnrollInJourney(EnrollNode),
    /// Continues at another node of this journey (no outgoing edges).
    Jump(JumpNode),
    /// Adds points (negative: removes) to a lead score trait.
    Score(ScoreNode),
    /// Splits contacts between variants (and an optional holdout) like `random_split`, counts
    /// the journey's goal per variant, and once a variant wins (one-sided two-proportion
    /// z-test at `confidence`, every variant with `min_sample` entries) sends every new
    /// entrant down the winner. Outputs: the variant names, and `holdout` with a holdout.
    Experiment(ExperimentNode),
}

/// What starts an enrollment: exactly one of `event`, `list`, `segment`, `api`, `date`,
/// `inactivity` and `schedule`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerNode {
    /// The contact performs this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Conditions on the trigger event's properties (for `api`: on the entry payload).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: Filter,
    /// The contact is added to this list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// The contact enters (or leaves) this segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentTrigger>,
    /// A client (`POST /v1/journeys/{id}/enroll`) or another journey (`enroll_in_journey`)
    /// enrolls the contact; the request's `payload` becomes the trigger event's properties.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub api: bool,
    /// A date trait comes round (birthday, anniversary, renewal date), yearly or once, at a
    /// local time, with an offset in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<DateTrigger>,
    /// The contact has not performed an event for a while (its last one is that old).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactivity: Option<InactivityTrigger>,
    /// A recurring schedule: at each run, every member of a segment (or every contact)
    /// enters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleTrigger>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateTrigger {
    /// The trait holding the date (`YYYY-MM-DD` or an RFC 3339 timestamp), e.g. `birthday`.
    #[serde(rename = "trait")]
    pub trait_name: String,
    /// Local time of day, `HH:MM` (default `09:00`), in the contact's time zone, else the
    /// trigger's `timezone`, else the journey's, else UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Whole days from the date: `-3d` is three days before, `1w` a week after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// `yearly` (default: every anniversary) or `once` (the date itself).
    #[serde(default)]
    pub repeat: DateRepeat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DateRepeat {
    #[default]
    Yearly,
    Once,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InactivityTrigger {
    /// The event whose absence counts, e.g. `Order Completed`.
    pub event: String,
    /// How long without it, e.g. `90d`. Fires once per quiet spell, counted from the
    /// contact's last such event; contacts who never performed it do not enter.
    #[serde(rename = "for")]
    pub after: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleTrigger {
    /// Five-field cron (`30 9 * * 1-5`: 09:30 on weekdays) or `@daily`, `@weekly`, ...
    pub cron: String,
    /// The schedule's time zone (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Only this segment's members enter; absent: every contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentTrigger {
    /// The segment's id.
    pub id: String,
    /// `enter` (default) or `exit`.
    #[serde(default)]
    pub on: SegmentEdge,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentEdge {
    #[default]
    Enter,
    Exit,
}

impl TriggerNode {
    /// The event (by name, with a property filter) this trigger starts on. List, segment and
    /// API triggers listen to the events the engine records for them (`event::LIST_ADDED`,
    /// ...), so every trigger is matched the same way, in ingest order.
    pub fn matcher(&self, journey_id: &str) -> (String, Filter) {
        let mut filter = self.filter.clone();
        let mut with = |k: &str, v: &str| {
            filter.insert(k.into(), crate::filter::Predicate::Equals(Value::from(v)));
        };
        let name = if let Some(list) = &self.list {
            with(crate::event::LIST_PROPERTY, list);
            crate::event::LIST_ADDED
        } else if let Some(s) = &self.segment {
            with(crate::event::SEGMENT_PROPERTY, &s.id);
            match s.on {
                SegmentEdge::Enter => crate::event::SEGMENT_ENTERED,
                SegmentEdge::Exit => crate::event::SEGMENT_EXITED,
            }
        } else if self.api {
            with(crate::event::JOURNEY_PROPERTY, journey_id);
            crate::event::ENROLLMENT_REQUESTED
        } else if let Some(event) = &self.event {
            return (event.clone(), filter);
        } else {
            // Date, inactivity and schedule triggers enter only through `due_matcher`.
            return (String::new(), filter);
        };
        (name.to_string(), filter)
    }

    /// The event the engine records when this trigger node itself is due for a contact: a
    /// date or inactivity trigger coming round, a schedule's run, or a publish that enrolls
    /// contacts already in the segment or list.
    pub fn due_matcher(journey_id: &str, node_id: &str) -> (String, Filter) {
        let mut filter = Filter::new();
        filter.insert(
            crate::event::JOURNEY_PROPERTY.into(),
            crate::filter::Predicate::Equals(Value::from(journey_id)),
        );
        filter.insert(
            crate::event::NODE_PROPERTY.into(),
            crate::filter::Predicate::Equals(Value::from(node_id)),
        );
        (crate::event::TRIGGER_DUE.to_string(), filter)
    }

    /// The time-based part of a date, inactivity or schedule trigger.
    pub fn timing(&self) -> Option<Result<crate::schedule::TimedTrigger, (&'static str, String)>> {
        use crate::schedule::{CronSchedule, DateSchedule, InactivitySchedule, TimedTrigger};
        if let Some(d) = &self.date {
            return Some(DateSchedule::parse(d).map(TimedTrigger::Date));
        }
        if let Some(i) = &self.inactivity {
            return Some(InactivitySchedule::parse(i).map(TimedTrigger::Inactivity));
        }
        self.schedule
            .as_ref()
            .map(|s| CronSchedule::parse(s).map(|c| TimedTrigger::Cron(Box::new(c))))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayNode {
    /// e.g. `30m`, `2d`, `1w`.
    pub duration: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForEventNode {
    pub event: String,
    /// e.g. `24h`.
    pub timeout: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: Filter,
    /// Only an event whose key property equals the enrollment's key counts. Defaults to true
    /// when the journey has an entry key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_key: Option<bool>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomSplitNode {
    /// 2 to 10 branches with unique names; the percents sum to 100.
    pub branches: Vec<SplitBranch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitBranch {
    /// The output an edge leaves this branch from.
    pub name: String,
    /// Share of contacts, 0-100.
    pub percent: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitUntilNode {
    /// Local time of day, `HH:MM` (24-hour).
    pub time: String,
    /// Allowed days (`mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`); default every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekdays: Option<Vec<String>>,
    /// Time zone for contacts without a `timezone` trait; before the journey's `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitUntilDateNode {
    /// The trait holding the date (`YYYY-MM-DD` or an RFC 3339 timestamp).
    #[serde(rename = "trait")]
    pub trait_name: String,
    /// Whole days from the date: `-3d` is three days before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// Local time of day, `HH:MM` (default `09:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Time zone for contacts without a `timezone` trait; before the journey's `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl WaitUntilDateNode {
    /// The settings as a one-time date schedule; `Err` names the field.
    pub fn spec(&self) -> Result<crate::schedule::DateSchedule, (&'static str, String)> {
        crate::schedule::DateSchedule::parse(&DateTrigger {
            trait_name: self.trait_name.clone(),
            time: self.time.clone(),
            offset: self.offset.clone(),
            repeat: DateRepeat::Once,
            timezone: self.timezone.clone(),
        })
        .map_err(|(field, message)| (field.trim_start_matches("date."), message))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendNode {
    /// The id of a message template of the node's channel.
    pub template: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTraitsNode {
    /// Traits to set; `null` removes a trait.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub set: serde_json::Map<String, Value>,
    /// Numbers to add to numeric traits (a missing or non-numeric trait counts as 0), e.g.
    /// `{score: 10}`; negative numbers subtract.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub increment: BTreeMap<String, serde_json::Number>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListNode {
    pub list: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExitNode {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmitEventNode {
    /// The event name.
    pub event: String,
    /// Its properties (plain values, not templates).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub properties: serde_json::Map<String, Value>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollNode {
    /// The id of the journey to enroll the contact in.
    pub journey: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JumpNode {
    /// The node to continue at.
    pub to: String,
}

/// The output of an experiment's holdout group.
pub const HOLDOUT: &str = "holdout";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentNode {
    /// 2 to 10 variants; their percents and the holdout's sum to 100.
    pub variants: Vec<SplitBranch>,
    /// Percent of contacts held out (output `holdout`): they get none of the variants and
    /// measure the lift; they do not compete.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub holdout: u32,
    /// Entries every variant needs before a winner can be declared (default 100).
    #[serde(default = "default_min_sample")]
    pub min_sample: u64,
    /// Confidence of the test, between 0.5 and 0.999 (default 0.95).
    #[serde(default = "default_confidence")]
    pub confidence: f64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn default_min_sample() -> u64 {
    100
}

fn default_confidence() -> f64 {
    0.95
}

impl ExperimentNode {
    /// The variants and, with a holdout, the holdout group, as split branches.
    pub fn branches(&self) -> Vec<SplitBranch> {
        let mut all = self.variants.clone();
        if self.holdout > 0 {
            all.push(SplitBranch {
                name: HOLDOUT.into(),
                percent: self.holdout,
            });
        }
        all
    }
}

/// The trait a `score` node changes unless it names another.
pub const DEFAULT_SCORE_TRAIT: &str = "lead_score";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreNode {
    /// Points to add; negative to remove.
    pub points: i64,
    /// The score trait, default `lead_score`.
    #[serde(default, rename = "trait", skip_serializing_if = "Option::is_none")]
    pub score_trait: Option<String>,
    /// Score decay: these points are taken back this long after they were given (e.g. `30d`),
    /// so an old burst of interest fades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after: Option<String>,
}

impl ScoreNode {
    pub fn trait_name(&self) -> &str {
        self.score_trait.as_deref().unwrap_or(DEFAULT_SCORE_TRAIT)
    }
}

/// Default timeout of a webhook call.
pub const WEBHOOK_DEFAULT_TIMEOUT: &str = "10s";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookNode {
    /// An `http` or `https` URL. Loopback, private and link-local addresses are refused unless
    /// the host is allowed with `--webhook-allow-host`.
    pub url: String,
    #[serde(default)]
    pub method: WebhookMethod,
    /// Extra request headers (the `X-Waymark-*` headers and `Content-Type` are set by Waymark).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A Liquid template producing JSON, with `contact`, `event` and `journey` (the `json`
    /// filter encodes a value as JSON). Default: `{"contact": ..., "event": ..., "journey": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// How long to wait for the answer, e.g. `5s` (default `10s`, at most `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

impl WebhookNode {
    /// The timeout as written, or the default.
    pub fn timeout_text(&self) -> &str {
        self.timeout.as_deref().unwrap_or(WEBHOOK_DEFAULT_TIMEOUT)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookMethod {
    #[default]
    Post,
    Put,
}

impl WebhookMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookMethod::Post => "POST",
            WebhookMethod::Put => "PUT",
        }
    }
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

impl NodeKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Trigger(_) => "trigger",
            NodeKind::Delay(_) => "delay",
            NodeKind::WaitForEvent(_) => "wait_for_event",
            NodeKind::Branch(_) => "branch",
            NodeKind::RandomSplit(_) => "random_split",
            NodeKind::WaitUntil(_) => "wait_until",
            NodeKind::WaitUntilDate(_) => "wait_until_date",
            NodeKind::SendEmail(_) => "send_email",
            NodeKind::SendSms(_) => "send_sms",
            NodeKind::UpdateTraits(_) => "update_traits",
            NodeKind::AddToList(_) => "add_to_list",
            NodeKind::RemoveFromList(_) => "remove_from_list",
            NodeKind::Exit(_) => "exit",
            NodeKind::Webhook(_) => "webhook",
            NodeKind::EmitEvent(_) => "emit_event",
            NodeKind::Unsubscribe(_) => "unsubscribe",
            NodeKind::EnrollInJourney(_) => "enroll_in_journey",
            NodeKind::Jump(_) => "jump",
            NodeKind::Score(_) => "score",
            NodeKind::Experiment(_) => "experiment",
        }
    }

    /// The named outputs an edge may leave this node from.
    pub fn outputs(&self) -> Vec<String> {
        let fixed: &[&str] = match self {
            NodeKind::RandomSplit(s) => {
                return s.branches.iter().map(|b| b.name.clone()).collect();
            }
            NodeKind::Experiment(x) => {
                return x.branches().into_iter().map(|b| b.name).collect();
            }
            NodeKind::WaitForEvent(_) => &["event", "timeout"],
            NodeKind::WaitUntilDate(_) => &["next", "missed"],
            NodeKind::Branch(_) => &["yes", "no"],
            NodeKind::Exit(_) | NodeKind::Jump(_) => &[],
            _ => &["next"],
        };
        fixed.iter().map(|s| s.to_string()).collect()
    }

    /// Whether an enrollment may stop at this node and wait for time to pass; every cycle in a
    /// journey must pass through such a node.
    pub fn waits(&self) -> bool {
        matches!(
            self,
            NodeKind::Delay(_)
                | NodeKind::WaitForEvent(_)
                | NodeKind::WaitUntil(_)
                | NodeKind::WaitUntilDate(_)
        )
    }
}

impl WaitUntilNode {
    /// Parses the settings; `Err` names the field and what is wrong with it.
    pub fn spec(&self) -> Result<WaitUntilSpec, (&'static str, String)> {
        let time = parse_time_of_day(&self.time).ok_or((
            "time",
            format!("`{}` is not a time of day `HH:MM` (00:00-23:59)", self.time),
        ))?;
        let weekdays = match &self.weekdays {
            None => [true; 7],
            Some(list) => {
                if list.is_empty() {
                    return Err(("weekdays", "must name at least one day".into()));
                }
                let mut days = [false; 7];
                for d in list {
                    let i = parse_weekday(d).ok_or((
                        "weekdays",
                        format!("`{d}` is not a weekday (mon, tue, wed, thu, fri, sat, sun)"),
                    ))?;
                    days[i] = true;
                }
                days
            }
        };
        let timezone = match &self.timezone {
            None => None,
            Some(t) => Some(
                TimeZone::get(t)
                    .map_err(|_| ("timezone", format!("`{t}` is not a known time zone")))?,
            ),
        };
        Ok(WaitUntilSpec {
            time,
            weekdays,
            timezone,
        })
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

/// A validated journey ready to run: durations parsed, edges indexed.
#[derive(Debug, Clone)]
pub struct Journey {
    pub document: JourneyDocument,
    nodes: HashMap<String, usize>,
    next: HashMap<(String, String), String>,
    durations: HashMap<String, Duration>,
    calendar_waits: HashMap<String, WaitUntilSpec>,
    date_waits: HashMap<String, crate::schedule::DateSchedule>,
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
            if let NodeKind::Jump(j) = &n.kind {
                next.insert((n.id.clone(), "next".into()), j.to.clone());
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
        let mut durations = HashMap::new();
        for n in &document.nodes {
            let d = match &n.kind {
                NodeKind::Delay(d) => &d.duration,
                NodeKind::WaitForEvent(w) => &w.timeout,
                _ => continue,
            };
            durations.insert(n.id.clone(), Duration::parse(d).expect("validated"));
        }
        let mut calendar_waits = HashMap::new();
        let mut date_waits = HashMap::new();
        for n in &document.nodes {
            match &n.kind {
                NodeKind::WaitUntil(w) => {
                    calendar_waits.insert(n.id.clone(), w.spec().expect("validated"));
                }
                NodeKind::WaitUntilDate(w) => {
                    date_waits.insert(n.id.clone(), w.spec().expect("validated"));
                }
                _ => {}
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
            durations,
            calendar_waits,
            date_waits,
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

    pub fn duration(&self, node: &str) -> Duration {
        self.durations[node]
    }

    /// The parsed settings of a `wait_until` node.
    pub fn calendar_wait(&self, node: &str) -> &WaitUntilSpec {
        &self.calendar_waits[node]
    }

    /// The parsed settings of a `wait_until_date` node.
    pub fn date_wait(&self, node: &str) -> &crate::schedule::DateSchedule {
        &self.date_waits[node]
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
        for n in &self.document.nodes {
            if let NodeKind::WaitForEvent(w) = &n.kind {
                names.push(w.event.clone());
            }
        }
        names.extend(self.document.goal.iter().map(|g| g.event.clone()));
        names.extend(self.document.exit_on.iter().map(|g| g.event.clone()));
        names.sort();
        names.dedup();
        names
    }
}
