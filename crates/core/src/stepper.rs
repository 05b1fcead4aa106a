//! The journey stepper: a pure function of (journey version, enrollment, input, now, facts)
//! that returns the new enrollment, the effects to commit with it and a log of what happened.
//!
//! It never performs I/O. The facts it needs about the contact (traits, events since entry,
//! engagement with earlier messages) come in through the `Facts` trait, which the engine
//! answers from the same transaction it commits the outcome in.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::EventRecord;
use std::borrow::Cow;

use crate::condition::{self, Condition, ContactFacts, EvalClock, MessageRecord};
use crate::filter::{Engagement, filter_matches};
use crate::journey::{Channel, ExitEvent, Journey, Reentry, WebhookNode};
use crate::kinds::Arrival;

/// More node visits than this in one step means a journey bug; the enrollment is ended
/// instead of looping. Validation rejects cycles without a wait, so this is a backstop.
const MAX_VISITS_PER_STEP: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    Active,
    Completed,
    Exited,
    Converted,
}

impl EnrollmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentStatus::Active => "active",
            EnrollmentStatus::Completed => "completed",
            EnrollmentStatus::Exited => "exited",
            EnrollmentStatus::Converted => "converted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => EnrollmentStatus::Active,
            "completed" => EnrollmentStatus::Completed,
            "exited" => EnrollmentStatus::Exited,
            "converted" => EnrollmentStatus::Converted,
            _ => return None,
        })
    }
}

/// One contact's trip through one journey version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    pub id: i64,
    pub journey_id: String,
    pub version: i64,
    pub contact_id: i64,
    pub key: Option<String>,
    /// The node the enrollment is at (or ended at).
    pub node: String,
    pub status: EnrollmentStatus,
    /// When the current delay or wait times out.
    pub wake_at: Option<Timestamp>,
    pub entered_at: Timestamp,
    /// `seq` of the trigger event: "since entry" means events with a larger `seq`.
    pub entered_seq: i64,
    /// `seq` of the last event that ended a wait. A wait looks only at later events, so one
    /// event never satisfies two waits (or the same wait twice, in a loop).
    pub consumed_seq: i64,
    /// Nodes entered so far; part of each effect's idempotency key.
    pub visits: i64,
}

#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// The enrollment was just created at its trigger node.
    Enter,
    /// An event of the enrollment's contact, in ingest order.
    Event(&'a EventRecord),
    /// The enrollment's timer fell due.
    Timer,
    /// The journey was resumed after a pause: waits look at history again.
    Resume,
}

/// What a step asks the world to do. Sends go to the outbox; the others are applied to the
/// contact in the same transaction as the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    Send {
        channel: Channel,
        node: String,
        template: String,
        /// `enrollment:node:visit`: stable across retries of the same step.
        idempotency_key: String,
    },
    /// An HTTP call, written to the outbox (channel `webhook`) with the step.
    Webhook {
        node: String,
        webhook: WebhookNode,
        /// `enrollment:node:visit`, as for sends.
        idempotency_key: String,
    },
    SetTraits(Map<String, Value>),
    AddToList(String),
    RemoveFromList(String),
    /// Record a `track` event for the contact; processed after this step in ingest order.
    EmitEvent {
        name: String,
        properties: Map<String, Value>,
        /// `enrollment:node:visit`: the event's message id, so it is recorded once.
        idempotency_key: String,
    },
    /// Unsubscribe the contact from a topic (`None`: all marketing) on a channel.
    Unsubscribe {
        channel: Channel,
        topic: Option<String>,
    },
    /// Take `points` back from the score trait at `at` (a `score` node's decay).
    ExpireScore {
        score_trait: String,
        points: i64,
        at: Timestamp,
    },
    /// Ask to enroll the contact in another journey (through its `api` trigger), with the
    /// trigger event's properties as the payload.
    Enroll {
        journey: String,
        idempotency_key: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StepLog {
    Entered {
        node: String,
    },
    Left {
        node: String,
        output: String,
    },
    Waiting {
        node: String,
        until: Timestamp,
    },
    Ended {
        node: String,
        status: EnrollmentStatus,
        reason: String,
    },
    /// A send node went on without sending (outside the journey's sending hours, with
    /// `outside_hours: skip`).
    Skipped {
        node: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub enrollment: Enrollment,
    pub effects: Vec<Effect>,
    pub log: Vec<StepLog>,
}

/// What the stepper may ask about the enrollment's contact.
pub trait Facts {
    fn traits(&self) -> &Map<String, Value>;
    /// The contact's processed events named `name` with `seq > after_seq`, oldest first.
    fn events_since(&self, name: &str, after_seq: i64) -> Vec<EventRecord>;
    /// Engagement with the message this enrollment sent at `node`.
    fn engaged(&self, node: &str, engagement: Engagement) -> bool;
    /// All the contact's processed events named `name`, oldest first (branch conditions on
    /// event history).
    fn events(&self, name: &str) -> Vec<EventRecord> {
        self.events_since(name, 0)
    }
    /// Whether the contact is in the list.
    fn in_list(&self, _list: &str) -> bool {
        false
    }
    /// Every message sent to the contact (branch conditions on engagement).
    fn messages(&self) -> Vec<MessageRecord> {
        Vec::new()
    }
    /// The event with this `seq` (the trigger event, for `trigger where ...` conditions).
    fn event_at(&self, _seq: i64) -> Option<EventRecord> {
        None
    }
    /// The declared winner of the experiment at `node` of the enrollment's journey, if any.
    fn experiment_winner(&self, _node: &str) -> Option<String> {
        None
    }
}

/// A contact of whom only the traits are known: no events, no engagement. Enough where only
/// the event matters (goal and exit checks, with no traits), and for tests.
#[derive(Debug, Default)]
pub struct TraitsOnly(pub Map<String, Value>);

impl Facts for TraitsOnly {
    fn traits(&self) -> &Map<String, Value> {
        &self.0
    }
    fn events_since(&self, _: &str, _: i64) -> Vec<EventRecord> {
        Vec::new()
    }
    fn engaged(&self, _: &str, _: Engagement) -> bool {
        false
    }
}

/// A previous enrollment of the same contact in the same journey, for re-entry decisions.
#[derive(Debug, Clone)]
pub struct PriorEnrollment {
    pub key: Option<String>,
    pub status: EnrollmentStatus,
    pub entered_at: Timestamp,
}

/// Whether a contact may enter now with this key, given its earlier enrollments in the
/// journey (all versions).
pub fn may_enter(
    journey: &Journey,
    prior: &[PriorEnrollment],
    key: Option<&str>,
    now: Timestamp,
) -> bool {
    let same_key: Vec<_> = prior.iter().filter(|p| p.key.as_deref() == key).collect();
    if same_key
        .iter()
        .any(|p| p.status == EnrollmentStatus::Active)
    {
        return false;
    }
    match &journey.document.entry.reentry {
        Reentry::EveryTime => true,
        Reentry::Once => same_key.is_empty(),
        Reentry::Cooldown(_) => {
            let cooldown = SignedDuration::from_secs(journey.cooldown().map_or(0, |d| d.seconds()));
            same_key.iter().all(|p| p.entered_at + cooldown <= now)
        }
    }
}

/// The enrollment key an event gives in this journey: `None` without an entry key; `Err` when
/// the journey needs a key and the event has none (it cannot enter).
pub fn entry_key(journey: &Journey, event: &EventRecord) -> Result<Option<String>, MissingKey> {
    match journey.key_property() {
        None => Ok(None),
        Some(p) => event.key_value(p).map(Some).ok_or(MissingKey),
    }
}

/// Whether `event` started `enrollment` or joined it: it matches one of the journey's triggers
/// (name and filter), carries the enrollment's key, and came at or after the event that started
/// it. While an enrollment runs, such an event starts no other one with its key (at most one
/// active enrollment per contact and key); it joins that one instead, so that, say, a cart
/// reminder can list every item added to the cart, not only the first.
pub fn joins(journey: &Journey, enrollment: &Enrollment, event: &EventRecord) -> bool {
    enrollment.entered_seq > 0
        && event.seq >= enrollment.entered_seq
        && journey
            .triggers(&event.name)
            .any(|(_, filter)| filter_matches(filter, &event.properties))
        && match journey.key_property() {
            Some(property) => event.key_value(property) == enrollment.key,
            None => true,
        }
}

/// The trigger event lacks the journey's key property, so it cannot start an enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingKey;

/// Whether this event ends the enrollment through the journey's goal or an exit event. While a
/// journey is paused, only such events are applied.
pub fn interrupts(journey: &Journey, enrollment: &Enrollment, event: &EventRecord) -> bool {
    let facts = TraitsOnly::default();
    let run = Run {
        journey,
        enrollment: enrollment.clone(),
        effects: Vec::new(),
        log: Vec::new(),
        now: Timestamp::UNIX_EPOCH,
        facts: &facts,
        traits: None,
    };
    event.seq > enrollment.entered_seq
        && (journey
            .document
            .goal
            .iter()
            .any(|g| run.exit_matches(g, event))
            || journey
                .document
                .exit_on
                .iter()
                .any(|x| run.exit_matches(x, event)))
}

/// How long after an enrollment ended its journey's goal still converts, when the goal has no
/// `within` of its own: an order placed the day after the last reminder is the reminder's.
pub const CONVERSION_AFTER_END: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Whether `event` converts an enrollment that already ended (completed or exited, at
/// `ended_at`) without converting: it is the journey's goal (with its filter and key) and
/// falls within the conversion window: the goal's `within` after entry, else
/// [`CONVERSION_AFTER_END`] after the end. Exposures are kept, so a conversion is credited
/// whether or not the enrollment was still running.
pub fn converts_after_end(
    journey: &Journey,
    enrollment: &Enrollment,
    ended_at: Timestamp,
    event: &EventRecord,
    now: Timestamp,
) -> bool {
    if !matches!(
        enrollment.status,
        EnrollmentStatus::Completed | EnrollmentStatus::Exited
    ) || event.seq <= enrollment.entered_seq
    {
        return false;
    }
    let Some(goal) = &journey.document.goal else {
        return false;
    };
    let facts = TraitsOnly::default();
    let run = Run {
        journey,
        enrollment: enrollment.clone(),
        effects: Vec::new(),
        log: Vec::new(),
        now,
        facts: &facts,
        traits: None,
    };
    let deadline = match journey.goal_window() {
        Some(w) => enrollment.entered_at + SignedDuration::from_secs(w.seconds()),
        None => ended_at + CONVERSION_AFTER_END,
    };
    run.exit_matches(goal, event) && now <= deadline
}

pub fn step(
    journey: &Journey,
    enrollment: &Enrollment,
    input: Input<'_>,
    now: Timestamp,
    facts: &dyn Facts,
) -> Option<StepOutcome> {
    if enrollment.status != EnrollmentStatus::Active {
        return None;
    }
    let mut run = Run {
        journey,
        enrollment: enrollment.clone(),
        effects: Vec::new(),
        log: Vec::new(),
        now,
        facts,
        traits: None,
    };
    let here = enrollment.node.clone();
    let node_kind = journey.node(&here).map(|n| &n.kind);
    match input {
        Input::Enter => {
            run.enrollment.visits += 1;
            run.log.push(StepLog::Entered { node: here.clone() });
            run.advance(here, Arrival::next());
        }
        Input::Event(event) => {
            if event.seq <= enrollment.entered_seq {
                return None;
            }
            if let Some(goal) = &journey.document.goal
                && run.exit_matches(goal, event)
                && journey.goal_window().is_none_or(|w| {
                    now <= enrollment.entered_at + SignedDuration::from_secs(w.seconds())
                })
            {
                run.end(
                    EnrollmentStatus::Converted,
                    format!("goal `{}`", event.name),
                );
                return Some(run.finish());
            }
            if journey
                .document
                .exit_on
                .iter()
                .any(|x| run.exit_matches(x, event))
            {
                run.end(
                    EnrollmentStatus::Exited,
                    format!("exit event `{}`", event.name),
                );
                return Some(run.finish());
            }
            let output = node_kind?.event(&mut run, event)?;
            run.advance(here, Arrival::Leave(output));
        }
        Input::Timer => {
            if enrollment.wake_at.is_none_or(|at| at > now) {
                return None;
            }
            let arrival = node_kind?.timer(&mut run)?;
            run.advance(here, arrival);
        }
        Input::Resume => {
            let output = node_kind?.resume(&mut run)?;
            run.advance(here, Arrival::Leave(output));
        }
    }
    Some(run.finish())
}

/// One step in progress: the enrollment as it changes, the effects and the log so far. Node
/// kinds (`crate::kinds`) see it when an enrollment reaches their node or wakes there.
pub(crate) struct Run<'a> {
    journey: &'a Journey,
    enrollment: Enrollment,
    effects: Vec<Effect>,
    log: Vec<StepLog>,
    now: Timestamp,
    facts: &'a dyn Facts,
    /// The contact's traits with this step's own updates applied, once there are any.
    traits: Option<Map<String, Value>>,
}

impl<'a> Run<'a> {
    fn finish(self) -> StepOutcome {
        StepOutcome {
            enrollment: self.enrollment,
            effects: self.effects,
            log: self.log,
        }
    }

    fn end(&mut self, status: EnrollmentStatus, reason: String) {
        self.enrollment.status = status;
        self.enrollment.wake_at = None;
        if let Some(on_end) = &self.journey.document.on_end {
            if let Some(list) = &on_end.remove_from_list {
                self.effects.push(Effect::RemoveFromList(list.clone()));
            }
            if let Some(list) = &on_end.add_to_list {
                self.effects.push(Effect::AddToList(list.clone()));
            }
        }
        self.log.push(StepLog::Ended {
            node: self.enrollment.node.clone(),
            status,
            reason,
        });
    }

    /// Stays at the current node until `until`.
    fn wait(&mut self, until: Timestamp) {
        self.enrollment.wake_at = Some(until);
        self.log.push(StepLog::Waiting {
            node: self.enrollment.node.clone(),
            until,
        });
    }

    fn key_required(&self, explicit: Option<bool>) -> bool {
        explicit.unwrap_or(self.journey.key_property().is_some())
    }

    /// Whether the event carries the enrollment's key, when the matcher (`match_key`, else
    /// whether the journey has an entry key) asks for it.
    pub(crate) fn key_matches(&self, explicit: Option<bool>, event: &EventRecord) -> bool {
        if !self.key_required(explicit) {
            return true;
        }
        match (self.journey.key_property(), &self.enrollment.key) {
            (Some(p), Some(k)) => event.key_value(p).as_deref() == Some(k.as_str()),
            _ => false,
        }
    }

    fn exit_matches(&self, exit: &ExitEvent, event: &EventRecord) -> bool {
        exit.event == event.name
            && filter_matches(&exit.filter, &event.properties)
            && self.key_matches(exit.match_key, event)
    }

    /// Events with a larger `seq` than this are new to the enrollment's waits: later than its
    /// trigger and than the last event a wait consumed.
    pub(crate) fn consumed_upto(&self) -> i64 {
        self.enrollment
            .entered_seq
            .max(self.enrollment.consumed_seq)
    }

    /// Whether no wait consumed this event yet.
    pub(crate) fn unconsumed(&self, event: &EventRecord) -> bool {
        event.seq > self.enrollment.consumed_seq
    }

    /// Records that a wait ended with the event `seq`, so that it ends no other wait.
    pub(crate) fn consume(&mut self, seq: i64) {
        self.enrollment.consumed_seq = seq;
    }

    pub(crate) fn journey(&self) -> &'a Journey {
        self.journey
    }

    pub(crate) fn facts(&self) -> &'a dyn Facts {
        self.facts
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    /// The node the enrollment is at.
    pub(crate) fn node(&self) -> &str {
        &self.enrollment.node
    }

    pub(crate) fn contact_id(&self) -> i64 {
        self.enrollment.contact_id
    }

    pub(crate) fn effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Logs that the current node went on without doing its work.
    pub(crate) fn skipped(&mut self, reason: &str) {
        self.log.push(StepLog::Skipped {
            node: self.enrollment.node.clone(),
            reason: reason.to_string(),
        });
    }

    pub(crate) fn traits(&self) -> &Map<String, Value> {
        self.traits.as_ref().unwrap_or_else(|| self.facts.traits())
    }

    pub(crate) fn holds(&self, condition: &Condition) -> bool {
        let clock = EvalClock::new(self.now, self.local_zone(None));
        condition::evaluate(condition, &BranchFacts(self), &clock)
    }

    /// The contact's time zone (trait `timezone`), else the node's, else the journey's, else
    /// UTC.
    pub(crate) fn local_zone(&self, node_zone: Option<&TimeZone>) -> TimeZone {
        crate::contact::trait_time_zone(self.traits())
            .or_else(|| node_zone.cloned())
            .or_else(|| self.journey.timezone().cloned())
            .unwrap_or(TimeZone::UTC)
    }

    /// `enrollment:node:visit` for the current node: the same for a retried step, different
    /// for a loop's next visit.
    pub(crate) fn effect_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.enrollment.id, self.enrollment.node, self.enrollment.visits
        )
    }

    /// Sets and increments traits: an effect for the store, and the traits later nodes of
    /// this step see.
    pub(crate) fn apply_trait_changes<'k>(
        &mut self,
        set: &Map<String, Value>,
        increments: impl IntoIterator<Item = (&'k str, &'k serde_json::Number)>,
    ) {
        let mut traits = self.traits().clone();
        let mut changes = set.clone();
        for (k, by) in increments {
            changes.insert(k.to_string(), increment(traits.get(k), by));
        }
        for (k, v) in &changes {
            if v.is_null() {
                traits.remove(k);
            } else {
                traits.insert(k.clone(), v.clone());
            }
        }
        self.traits = Some(traits);
        self.effects.push(Effect::SetTraits(changes));
    }

    /// Settles what the node `from` decided: waits there, ends there, or leaves it through an
    /// output and runs the nodes that follow until the enrollment waits or ends.
    fn advance(&mut self, from: String, arrival: Arrival) {
        let journey = self.journey;
        let mut from = from;
        let mut output = match arrival {
            Arrival::Leave(output) => output,
            Arrival::Wait(until) => return self.wait(until),
            Arrival::End { status, reason } => return self.end(status, reason),
        };
        self.enrollment.wake_at = None;
        for _ in 0..MAX_VISITS_PER_STEP {
            self.log.push(StepLog::Left {
                node: from.clone(),
                output: output.to_string(),
            });
            let Some(next) = journey.next(&from, &output) else {
                self.end(EnrollmentStatus::Completed, "end of path".into());
                return;
            };
            let node = journey.node(next).expect("validated edge");
            self.enrollment.node = next.to_string();
            self.enrollment.visits += 1;
            self.log.push(StepLog::Entered {
                node: next.to_string(),
            });
            output = match node.kind.arrive(self) {
                Arrival::Leave(output) => output,
                Arrival::Wait(until) => return self.wait(until),
                Arrival::End { status, reason } => return self.end(status, reason),
            };
            from = next.to_string();
        }
        self.end(EnrollmentStatus::Exited, "step limit reached".into());
    }
}

/// What a branch condition sees: the contact's facts, with this step's own trait updates, and
/// "since entry" meaning since this enrollment began.
struct BranchFacts<'r, 'a>(&'r Run<'a>);

impl ContactFacts for BranchFacts<'_, '_> {
    fn traits(&self) -> &Map<String, Value> {
        self.0.traits()
    }
    fn events(&self, name: &str) -> Cow<'_, [EventRecord]> {
        Cow::Owned(self.0.facts.events(name))
    }
    fn in_list(&self, list: &str) -> bool {
        self.0.facts.in_list(list)
    }
    fn messages(&self) -> Cow<'_, [MessageRecord]> {
        Cow::Owned(self.0.facts.messages())
    }
    fn events_since_entry(&self, name: &str, match_key: bool) -> Cow<'_, [EventRecord]> {
        let run = self.0;
        Cow::Owned(
            run.facts
                .events_since(name, run.enrollment.entered_seq)
                .into_iter()
                .filter(|e| run.key_matches(Some(match_key), e))
                .collect(),
        )
    }
    fn engaged_at_node(&self, node: &str, engagement: Engagement) -> bool {
        self.0.facts.engaged(node, engagement)
    }
    fn trigger_event(&self) -> Option<EventRecord> {
        self.0.facts.event_at(self.0.enrollment.entered_seq)
    }
}

/// A numeric trait plus `by`: integers stay integers while they fit; a missing or non-numeric
/// trait counts as 0.
pub fn increment(current: Option<&Value>, by: &serde_json::Number) -> Value {
    let current = match current {
        Some(Value::Number(n)) => n.clone(),
        _ => serde_json::Number::from(0),
    };
    if let (Some(a), Some(b)) = (current.as_i64(), by.as_i64())
        && let Some(sum) = a.checked_add(b)
    {
        return Value::from(sum);
    }
    let sum = current.as_f64().unwrap_or(0.0) + by.as_f64().unwrap_or(0.0);
    serde_json::Number::from_f64(sum).map_or(Value::Null, Value::Number)
}
