//! Segment membership, kept current. A contact is re-evaluated against every segment when
//! one of its events is processed (the event, a trait or list change, an open or a send may
//! change the answer) and at the moment `condition::next_change` names (a window edge, an
//! anniversary), so "did not log in in the last 30 days" becomes true without any new event.
//! Entering or leaving records `Segment Entered` / `Segment Exited` on the contact, which
//! segment triggers start journeys on, in order with every other event.

use std::borrow::Cow;
use std::cell::RefCell;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};
use waymark_core::Effect;
use waymark_core::EventRecord;
use waymark_core::condition::{
    self, Condition, ContactFacts, Dependencies, EvalClock, MessageRecord,
};
use waymark_core::event::{SEGMENT_ENTERED, SEGMENT_EXITED, SEGMENT_PROPERTY};
use waymark_store::{EngineTx, StoreError};

use crate::problems::Broken;
use crate::recorded;

/// A segment ready to evaluate.
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: String,
    pub condition: Condition,
    /// What the condition reads, to skip contacts whose change cannot matter.
    pub reads: Dependencies,
}

/// What changed about a contact since its segments were last evaluated.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Everything may have: a new or merged contact, or a caller that does not know.
    pub everything: bool,
    /// Events of these names were processed.
    pub events: Vec<String>,
    pub traits: bool,
    pub lists: bool,
    /// A message was sent, opened or clicked.
    pub messages: bool,
}

impl Changes {
    pub fn everything() -> Self {
        Changes {
            everything: true,
            ..Changes::default()
        }
    }

    /// Notes what a step's effects change.
    pub fn note(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Send { .. } | Effect::Webhook { .. } => self.messages = true,
                Effect::SetTraits(_) | Effect::ExpireScore { .. } => self.traits = true,
                Effect::AddToList(_) | Effect::RemoveFromList(_) => self.lists = true,
                // Recorded events are processed later, with their own re-evaluation.
                Effect::EmitEvent { .. } | Effect::Enroll { .. } | Effect::Unsubscribe { .. } => {}
            }
        }
    }

    fn matter_to(&self, segment: &Segment) -> bool {
        let r = &segment.reads;
        self.everything
            || self.events.iter().any(|e| r.events.contains(e))
            || (self.traits && !r.traits.is_empty())
            || (self.lists && !r.lists.is_empty())
            || (self.messages && r.messages)
    }
}

/// Every stored segment that can be used, and those that cannot (skipped, with the reason,
/// rather than stopping event processing).
pub fn load(tx: &mut dyn EngineTx) -> Result<(Vec<Segment>, Vec<Broken>), StoreError> {
    let mut out = Vec::new();
    let mut broken = Vec::new();
    for (id, json) in tx.segment_definitions()? {
        match readable_condition(json) {
            Ok(condition) => out.push(Segment {
                id,
                reads: condition.dependencies(),
                condition,
            }),
            Err(reason) => broken.push(Broken {
                kind: "segment",
                id,
                version: None,
                reason,
            }),
        }
    }
    Ok((out, broken))
}

/// A stored condition, or why it cannot be used (the store reads what is not JSON as null).
pub fn readable_condition(json: Value) -> Result<Condition, String> {
    if json.is_null() {
        return Err("the stored condition cannot be read (not JSON, or nested too deep)".into());
    }
    let condition = serde_json::from_value::<Condition>(json)
        .map_err(|e| format!("the stored condition is not valid: {e}"))?;
    match condition::validate(&condition, condition::Scope::Segment).first() {
        Some(e) => Err(format!("the stored condition is not valid: {e}")),
        None => Ok(condition),
    }
}

/// Re-evaluates one contact against the segments its `changes` can matter to, at `now`:
/// updates membership, records entry and exit events, and schedules the next time-based
/// check. (Time alone is covered by those checks.)
pub fn refresh_contact(
    tx: &mut dyn EngineTx,
    segments: &[Segment],
    contact_id: i64,
    changes: &Changes,
    now: Timestamp,
) -> Result<(), StoreError> {
    if segments.is_empty() {
        return Ok(());
    }
    let contact = tx.contact(contact_id)?;
    // A contact created just now has never been evaluated: every segment matters.
    let new = contact.created_at == now;
    let affected: Vec<&Segment> = segments
        .iter()
        .filter(|s| new || changes.matter_to(s))
        .collect();
    let traits = contact.traits;
    for segment in affected {
        let (member, next) = {
            let facts = TxContactFacts::new(tx, contact_id, &traits);
            let clock = EvalClock::new(now, contact_zone(&traits));
            let member = condition::evaluate(&segment.condition, &facts, &clock);
            let next = condition::next_change(&segment.condition, &facts, &clock);
            facts.finish()?;
            (member, next)
        };
        if tx.set_segment_member(&segment.id, contact_id, member, now)? {
            let name = if member {
                SEGMENT_ENTERED
            } else {
                SEGMENT_EXITED
            };
            let mut properties = Map::new();
            properties.insert(SEGMENT_PROPERTY.into(), json!(segment.id));
            let id = format!(
                "segment:{}:{contact_id}:{}:{}",
                segment.id,
                if member { "in" } else { "out" },
                now.as_millisecond()
            );
            recorded::record(tx, contact_id, name, properties, id, now)?;
        }
        tx.set_segment_check(&segment.id, contact_id, next)?;
    }
    Ok(())
}

/// Evaluates a condition for one contact now, without changing anything (previews).
pub fn matches(
    tx: &mut dyn EngineTx,
    condition: &Condition,
    contact_id: i64,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let traits = tx.contact(contact_id)?.traits;
    let facts = TxContactFacts::new(tx, contact_id, &traits);
    let clock = EvalClock::new(now, contact_zone(&traits));
    let member = condition::evaluate(condition, &facts, &clock);
    facts.finish()?;
    Ok(member)
}

/// Segments evaluate dates in the contact's `timezone` trait, else UTC.
fn contact_zone(traits: &Map<String, Value>) -> TimeZone {
    waymark_core::contact::trait_time_zone(traits).unwrap_or(TimeZone::UTC)
}

/// A contact's facts answered from the open transaction. The evaluator cannot fail, so the
/// first store error is kept and returned by `finish`.
pub(crate) struct TxContactFacts<'t, 'a, 'b> {
    tx: RefCell<&'t mut (dyn EngineTx + 'a)>,
    contact_id: i64,
    traits: &'b Map<String, Value>,
    messages: RefCell<Option<Vec<MessageRecord>>>,
    error: RefCell<Option<StoreError>>,
}

impl<'t, 'a, 'b> TxContactFacts<'t, 'a, 'b> {
    pub(crate) fn new(
        tx: &'t mut (dyn EngineTx + 'a),
        contact_id: i64,
        traits: &'b Map<String, Value>,
    ) -> Self {
        TxContactFacts {
            tx: RefCell::new(tx),
            contact_id,
            traits,
            messages: RefCell::new(None),
            error: RefCell::new(None),
        }
    }

    fn keep<T: Default>(&self, result: Result<T, StoreError>) -> T {
        result.unwrap_or_else(|e| {
            self.error.borrow_mut().get_or_insert(e);
            T::default()
        })
    }

    pub(crate) fn finish(self) -> Result<(), StoreError> {
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl ContactFacts for TxContactFacts<'_, '_, '_> {
    fn traits(&self) -> &Map<String, Value> {
        self.traits
    }
    fn events(&self, name: &str) -> Cow<'_, [EventRecord]> {
        let found = self
            .tx
            .borrow_mut()
            .events_between(self.contact_id, name, 0, i64::MAX);
        Cow::Owned(self.keep(found))
    }
    fn in_list(&self, list: &str) -> bool {
        let found = self.tx.borrow_mut().in_list(self.contact_id, list);
        self.keep(found)
    }
    fn messages(&self) -> Cow<'_, [MessageRecord]> {
        if self.messages.borrow().is_none() {
            let found = self.tx.borrow_mut().contact_messages(self.contact_id);
            *self.messages.borrow_mut() = Some(self.keep(found));
        }
        Cow::Owned(self.messages.borrow().clone().unwrap_or_default())
    }
}
