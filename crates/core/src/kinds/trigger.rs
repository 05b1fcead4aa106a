//! `trigger`: where an enrollment starts. Its matching (which events start it) is read by
//! `Journey::compile`; the time-based triggers' schedules live in `crate::schedule`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Arrival, Kind, NEXT_ONLY};
use crate::filter::Filter;
use crate::stepper::Run;
use crate::validate::NodeCheck;

pub struct Trigger;

impl Kind for Trigger {
    type Settings = TriggerNode;
    const DESCRIPTION: &'static str = "Starts an enrollment when the contact performs an event, \
        joins a list or segment, is enrolled through the API, when a date trait comes round, \
        after a spell of inactivity or on a schedule.";
    const OUTPUTS: &'static [super::Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = r#"{"event": "Signed Up"}"#;

    fn validate(t: &TriggerNode, check: &mut NodeCheck<'_>) {
        check_trigger(t, check);
    }

    fn arrive(_: &TriggerNode, _: &mut Run<'_>) -> Arrival {
        Arrival::next()
    }
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

fn check_trigger(t: &TriggerNode, check: &mut NodeCheck<'_>) {
    let kinds = [
        t.event.is_some(),
        t.list.is_some(),
        t.segment.is_some(),
        t.api,
        t.date.is_some(),
        t.inactivity.is_some(),
        t.schedule.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if kinds != 1 {
        check.err(
            "invalid_trigger",
            None,
            "a trigger needs exactly one of `event`, `list`, `segment`, `api`, `date`, `inactivity` and `schedule`".into(),
        );
    }
    if let Some(Err((field, message))) = t.timing() {
        let code = if field.ends_with("timezone") {
            "invalid_timezone"
        } else if field.ends_with("cron") {
            "invalid_cron"
        } else if field.ends_with("time") {
            "invalid_time"
        } else if field.ends_with("offset") || field.ends_with("for") {
            "invalid_duration"
        } else {
            "required"
        };
        check.err(code, Some(field), message);
    }
    if let Some(s) = t.schedule.as_ref().and_then(|s| s.segment.as_ref())
        && !crate::validate::valid_id(s)
    {
        check.err(
            "invalid_id",
            Some("schedule.segment"),
            format!("`{s}` is not a segment id"),
        );
    }
    let empty = |v: &Option<String>| v.as_deref().is_some_and(|s| s.trim().is_empty());
    if empty(&t.event) {
        check.err("required", Some("event"), "must name an event".into());
    }
    if empty(&t.list) {
        check.err("required", Some("list"), "must name a list".into());
    }
    if let Some(s) = &t.segment
        && !crate::validate::valid_id(&s.id)
    {
        check.err(
            "invalid_id",
            Some("segment.id"),
            format!("`{}` is not a segment id", s.id),
        );
    }
    check.filter(&t.filter, "filter");
}
