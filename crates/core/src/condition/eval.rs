//! Evaluation and the time at which an answer may change.
//!
//! Windows are half-open in `now`: an event at `t` is "in the last `d`" while
//! `t <= now < t + d`. An event exactly `d` old has left the window, and an event whose
//! timestamp is after `now` (clock skew) is not counted yet, even for "all time". So every
//! change happens at an exact instant (`t` or `t + d`), which [`next_change`] returns.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::dates::{EvalClock, shift};
use super::{AggregateFunction, Channel, Condition, Engagement, EngagementCondition};
use crate::duration::Duration;
use crate::event::EventRecord;
use crate::filter::{Filter, as_number, filter_matches_at, filter_next_change, lookup};

/// A message sent to the contact, as engagement conditions see it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    /// The journey that sent it, if any.
    pub journey: Option<String>,
    /// The template it was rendered from, if any.
    pub template: Option<String>,
    /// The send node, if any.
    pub node: Option<String>,
    pub channel: Channel,
    pub sent_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// The first open.
    pub opened_at: Option<Timestamp>,
    /// The first click.
    pub clicked_at: Option<Timestamp>,
}

impl MessageRecord {
    /// When the message reached this engagement. A click counts as an open: the open moment is
    /// the earlier of the first open and the first click.
    pub fn moment(&self, engagement: Engagement) -> Option<Timestamp> {
        match engagement {
            Engagement::Sent => Some(self.sent_at),
            Engagement::Delivered => self.delivered_at,
            Engagement::Opened => match (self.opened_at, self.clicked_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            Engagement::Clicked => self.clicked_at,
        }
    }
}

/// What the evaluator may ask about a contact. Implementations load what they need up front;
/// evaluation itself never fails.
pub trait ContactFacts {
    fn traits(&self) -> &Map<String, Value>;
    /// The contact's processed events named `name` (all of them, any time), oldest first.
    fn events(&self, name: &str) -> Cow<'_, [EventRecord]>;
    fn in_list(&self, list: &str) -> bool;
    /// Every message sent to the contact.
    fn messages(&self) -> Cow<'_, [MessageRecord]>;
    /// Enrollment scope: events named `name` since the enrollment began (only those whose key
    /// property equals the enrollment's key when `match_key`), oldest first. Outside a journey
    /// there are none.
    fn events_since_entry(&self, name: &str, match_key: bool) -> Cow<'_, [EventRecord]> {
        let _ = (name, match_key);
        Cow::Borrowed(&[])
    }
    /// Enrollment scope: whether the message this enrollment sent at `node` reached
    /// `engagement`. Outside a journey it never did.
    fn engaged_at_node(&self, node: &str, engagement: Engagement) -> bool {
        let _ = (node, engagement);
        false
    }
    /// Enrollment scope: the event that started the enrollment. Outside a journey, none.
    fn trigger_event(&self) -> Option<EventRecord> {
        None
    }
}

/// Everything about one contact in memory: a ready [`ContactFacts`] for previews and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactSnapshot {
    pub traits: Map<String, Value>,
    /// By event name, oldest first.
    pub events: HashMap<String, Vec<EventRecord>>,
    pub lists: BTreeSet<String>,
    pub messages: Vec<MessageRecord>,
}

impl ContactSnapshot {
    /// Adds an event, keeping each name's events ordered by timestamp (then `seq`).
    pub fn push_event(&mut self, event: EventRecord) {
        let list = self.events.entry(event.name.clone()).or_default();
        list.push(event);
        list.sort_by_key(|e| (e.timestamp, e.seq));
    }
}

impl ContactFacts for ContactSnapshot {
    fn traits(&self) -> &Map<String, Value> {
        &self.traits
    }
    fn events(&self, name: &str) -> Cow<'_, [EventRecord]> {
        Cow::Borrowed(self.events.get(name).map_or(&[][..], Vec::as_slice))
    }
    fn in_list(&self, list: &str) -> bool {
        self.lists.contains(list)
    }
    fn messages(&self) -> Cow<'_, [MessageRecord]> {
        Cow::Borrowed(&self.messages)
    }
}

/// A parsed window: `None` is all time.
fn window(raw: Option<&str>) -> Result<Option<i64>, ()> {
    raw.map(|r| Duration::parse(r).map(Duration::seconds).map_err(|_| ()))
        .transpose()
}

/// `t <= now < t + d` (all time: `t <= now`).
fn in_window(t: Timestamp, window: Option<i64>, now: Timestamp) -> bool {
    t <= now && window.is_none_or(|d| shift(t, d).is_none_or(|end| now < end))
}

/// The instants after `now` at which an event at `t` enters or leaves the window.
fn window_changes(t: Timestamp, window: Option<i64>, now: Timestamp) -> Option<Timestamp> {
    let leave = window.and_then(|d| shift(t, d));
    [Some(t), leave]
        .into_iter()
        .flatten()
        .filter(|x| *x > now)
        .min()
}

/// Whether `condition` holds for the contact at `at.now`, dates read in `at.tz`.
///
/// A malformed part (a window that is not a duration, say) is false; [`super::validate`]
/// reports it before a condition is saved.
pub fn evaluate(condition: &Condition, facts: &dyn ContactFacts, at: &EvalClock) -> bool {
    let now = at.now;
    match condition {
        Condition::Traits(filter) => filter_matches_at(filter, facts.traits(), at),
        Condition::Did(h) => {
            let Ok(w) = window(h.within.as_deref()) else {
                return false;
            };
            let count = facts
                .events(&h.event)
                .iter()
                .filter(|e| {
                    in_window(e.timestamp, w, now)
                        && filter_matches_at(&h.filter, &e.properties, at)
                })
                .count();
            h.times.holds(count as u64)
        }
        Condition::Aggregate(a) => {
            let Ok(w) = window(a.within.as_deref()) else {
                return false;
            };
            let events = facts.events(&a.event);
            let values = events
                .iter()
                .filter(|e| {
                    in_window(e.timestamp, w, now)
                        && filter_matches_at(&a.filter, &e.properties, at)
                })
                .filter_map(|e| lookup(&e.properties, &a.property).and_then(as_number))
                .filter(|v| v.is_finite());
            aggregate(a.function, values).is_some_and(|v| a.op.holds(v, a.value))
        }
        Condition::Engaged(c) => {
            let Ok(w) = window(c.within.as_deref()) else {
                return false;
            };
            facts.messages().iter().any(|m| {
                message_selected(c, m)
                    && m.moment(c.engagement).is_some_and(|t| in_window(t, w, now))
            })
        }
        Condition::InList(list) => facts.in_list(list),
        Condition::Event(e) => {
            let did = facts
                .events_since_entry(&e.name, e.match_key)
                .iter()
                .any(|ev| filter_matches_at(&e.filter, &ev.properties, at));
            did == e.performed
        }
        Condition::Message(m) => facts.engaged_at_node(&m.node, m.engagement),
        Condition::Trigger(f) => facts
            .trigger_event()
            .is_some_and(|e| filter_matches_at(f, &e.properties, at)),
        Condition::All(cs) => cs.iter().all(|c| evaluate(c, facts, at)),
        Condition::Any(cs) => cs.iter().any(|c| evaluate(c, facts, at)),
        Condition::Not(c) => !evaluate(c, facts, at),
    }
}

fn message_selected(c: &EngagementCondition, m: &MessageRecord) -> bool {
    c.channel.is_none_or(|ch| ch == m.channel)
        && c.journey
            .as_ref()
            .is_none_or(|j| m.journey.as_ref() == Some(j))
        && c.template
            .as_ref()
            .is_none_or(|t| m.template.as_ref() == Some(t))
}

fn aggregate(function: AggregateFunction, values: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut n, mut sum) = (0u64, 0.0f64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        n += 1;
        sum += v;
        min = min.min(v);
        max = max.max(v);
    }
    match function {
        AggregateFunction::Sum => Some(sum),
        _ if n == 0 => None,
        AggregateFunction::Min => Some(min),
        AggregateFunction::Max => Some(max),
        AggregateFunction::Avg => Some(sum / n as f64),
    }
}

/// The earliest instant after `at.now` at which `evaluate(condition, facts, …)` may give a
/// different answer if nothing but time changes (no new event, trait, list or message change):
/// an event entering or leaving a window, a trait date crossing a `within_last`, `older_than` or
/// `within_next` boundary, the first or last instant of an anniversary day. It can be earlier
/// than the real change (every part of the condition contributes, whether or not it decides the
/// answer), never later. `None`: only a data change can change the answer.
pub fn next_change(
    condition: &Condition,
    facts: &dyn ContactFacts,
    at: &EvalClock,
) -> Option<Timestamp> {
    let now = at.now;
    let events_change = |name: &str, within: Option<&str>, filter: &Filter| {
        let w = window(within).ok()?;
        facts
            .events(name)
            .iter()
            .filter_map(|e| {
                let moved = window_changes(e.timestamp, w, now);
                let dated = filter_next_change(filter, &e.properties, at);
                moved.into_iter().chain(dated).min()
            })
            .min()
    };
    match condition {
        Condition::Traits(filter) => filter_next_change(filter, facts.traits(), at),
        Condition::Did(h) => events_change(&h.event, h.within.as_deref(), &h.filter),
        Condition::Aggregate(a) => events_change(&a.event, a.within.as_deref(), &a.filter),
        Condition::Engaged(c) => {
            let w = window(c.within.as_deref()).ok()?;
            facts
                .messages()
                .iter()
                .filter(|m| message_selected(c, m))
                .filter_map(|m| window_changes(m.moment(c.engagement)?, w, now))
                .min()
        }
        Condition::InList(_) | Condition::Message(_) => None,
        Condition::Trigger(f) => facts
            .trigger_event()
            .and_then(|e| filter_next_change(f, &e.properties, at)),
        Condition::Event(e) => facts
            .events_since_entry(&e.name, e.match_key)
            .iter()
            .filter_map(|ev| filter_next_change(&e.filter, &ev.properties, at))
            .min(),
        Condition::All(cs) | Condition::Any(cs) => {
            cs.iter().filter_map(|c| next_change(c, facts, at)).min()
        }
        Condition::Not(c) => next_change(c, facts, at),
    }
}
