//! Time-based triggers: a date trait coming round, a contact falling inactive, a cron
//! schedule. Each live journey's next moment per contact (or, for a schedule, per journey) is
//! kept in the store; when it comes, the engine records `Journey Trigger Due` (with `journey`
//! and `node`) on the contact, which that trigger node alone starts on, in order with every
//! other event. The same event enrolls contacts already in a segment or list when a journey
//! is published with `enroll_existing`.

use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use waymark_core::event::{JOURNEY_PROPERTY, NODE_PROPERTY, TRIGGER_DUE};
use waymark_core::schedule::TimedTrigger;
use waymark_core::{EventRecord, Journey, NodeKind};
use waymark_store::{EngineTx, StoreError};

use crate::recorded;

/// How many contacts one transaction of a scan or a schedule run handles.
const SCAN_BATCH: usize = 500;

/// The zone of a contact's dates: its `timezone` trait, else the trigger's, else the
/// journey's, else UTC.
fn zone(traits: &Map<String, Value>, trigger: Option<&TimeZone>, journey: &Journey) -> TimeZone {
    waymark_core::contact::trait_time_zone(traits)
        .or_else(|| trigger.cloned())
        .or_else(|| journey.timezone().cloned())
        .unwrap_or(TimeZone::UTC)
}

/// After one of the contact's events was processed (its traits may have changed): the next
/// date each date trigger fires, and a fresh inactivity deadline when the event is the one
/// an inactivity trigger watches.
pub fn refresh_contact(
    tx: &mut dyn EngineTx,
    journeys: &[Arc<Journey>],
    contact_id: i64,
    event: Option<&EventRecord>,
    now: Timestamp,
) -> Result<(), StoreError> {
    if journeys.is_empty() {
        return Ok(());
    }
    let traits = tx.contact(contact_id)?.traits;
    for journey in journeys {
        for (node, timing) in journey.timed_triggers() {
            match timing {
                TimedTrigger::Date(d) => {
                    let tz = zone(&traits, d.timezone.as_ref(), journey);
                    // From just before now, so a date due this very instant still fires.
                    let from = now - SignedDuration::from_millis(1);
                    let due = traits
                        .get(&d.trait_name)
                        .and_then(|v| d.next_after(v, from, &tz));
                    tx.set_trigger_due(journey.id(), node, contact_id, due)?;
                }
                TimedTrigger::Inactivity(i) => {
                    if let Some(e) = event.filter(|e| e.name == i.event) {
                        tx.set_trigger_due(
                            journey.id(),
                            node,
                            contact_id,
                            Some(i.due(e.timestamp)),
                        )?;
                    }
                }
                TimedTrigger::Cron(_) => {}
            }
        }
    }
    Ok(())
}

/// Records that a trigger node is due for a contact (once per node, contact and moment).
pub fn record_due(
    tx: &mut dyn EngineTx,
    journey_id: &str,
    node: &str,
    contact_id: i64,
    due: Timestamp,
    mut properties: Map<String, Value>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    properties.insert(JOURNEY_PROPERTY.into(), json!(journey_id));
    properties.insert(NODE_PROPERTY.into(), json!(node));
    let id = format!(
        "due:{journey_id}:{node}:{contact_id}:{}",
        due.as_millisecond()
    );
    recorded::record(tx, contact_id, TRIGGER_DUE, properties, id, now)
}

/// Fires up to `limit` due triggers of live journeys. Returns how many were handled.
pub fn fire_due(
    tx: &mut dyn EngineTx,
    live: &dyn Fn(&str) -> Option<Arc<Journey>>,
    now: Timestamp,
    limit: usize,
) -> Result<usize, StoreError> {
    let due = tx.claim_due_triggers(now, limit)?;
    for (journey_id, node, contact, at) in &due {
        // A paused, archived or changed journey drops the entry; publishing schedules again.
        let Some(journey) = live(journey_id) else {
            continue;
        };
        let Some((_, timing)) = journey.timed_triggers().iter().find(|(n, _)| n == node) else {
            continue;
        };
        match timing {
            TimedTrigger::Date(d) => {
                let traits = tx.contact(*contact)?.traits;
                let Some(value) = traits.get(&d.trait_name).cloned() else {
                    continue;
                };
                let mut properties = Map::new();
                properties.insert("trait".into(), json!(d.trait_name));
                properties.insert("date".into(), value.clone());
                record_due(tx, journey_id, node, *contact, *at, properties, now)?;
                let tz = zone(&traits, d.timezone.as_ref(), &journey);
                let next = d.next_after(&value, *at, &tz);
                tx.set_trigger_due(journey_id, node, *contact, next)?;
            }
            TimedTrigger::Inactivity(i) => {
                let mut properties = Map::new();
                properties.insert("event".into(), json!(i.event));
                properties.insert("inactive_for".into(), json!(i.after.to_string()));
                record_due(tx, journey_id, node, *contact, *at, properties, now)?;
            }
            TimedTrigger::Cron(c) => {
                run_schedule(tx, journey_id, node, c.segment.as_deref(), *at, now)?;
                tx.set_trigger_due(journey_id, node, 0, c.next_after(*at))?;
            }
        }
    }
    Ok(due.len())
}

/// One run of a schedule: every member of the segment (or every contact) is due.
fn run_schedule(
    tx: &mut dyn EngineTx,
    journey_id: &str,
    node: &str,
    segment: Option<&str>,
    at: Timestamp,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut after = 0;
    loop {
        let batch = match segment {
            Some(s) => tx.segment_member_ids(s, after, SCAN_BATCH)?,
            None => tx.contact_ids(after, SCAN_BATCH)?,
        };
        let Some(&last) = batch.last() else {
            return Ok(());
        };
        for contact in batch {
            record_due(tx, journey_id, node, contact, at, Map::new(), now)?;
        }
        after = last;
    }
}

/// After a journey is published: schedules its time-based triggers afresh, for every contact.
/// With `enroll_existing`, contacts who already match enter now: members of a segment or list
/// trigger's segment or list, and contacts already inactive for longer than an inactivity
/// trigger's period (without it, those wait for their next quiet spell).
pub fn schedule_journey(
    tx: &mut dyn EngineTx,
    journey: &Arc<Journey>,
    enroll_existing: bool,
    after: &mut i64,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let jid = journey.id();
    if *after == 0 {
        tx.clear_journey_triggers(jid)?;
        for (node, timing) in journey.timed_triggers() {
            if let TimedTrigger::Cron(c) = timing {
                tx.set_trigger_due(jid, node, 0, c.next_after(now))?;
            }
        }
    }
    let batch = tx.contact_ids(*after, SCAN_BATCH)?;
    let Some(&last) = batch.last() else {
        return Ok(false);
    };
    for &contact in &batch {
        refresh_contact(tx, std::slice::from_ref(journey), contact, None, now)?;
        for (node, timing) in journey.timed_triggers() {
            if let TimedTrigger::Inactivity(i) = timing
                && let Some(latest) = tx.events_between(contact, &i.event, 0, i64::MAX)?.last()
            {
                let due = i.due(latest.timestamp);
                if due > now {
                    tx.set_trigger_due(jid, node, contact, Some(due))?;
                } else if enroll_existing {
                    tx.set_trigger_due(jid, node, contact, Some(now))?;
                }
            }
        }
        if enroll_existing {
            for n in &journey.document.nodes {
                let NodeKind::Trigger(t) = &n.kind else {
                    continue;
                };
                let member = match (&t.segment, &t.list) {
                    (Some(s), _) if s.on == waymark_core::journey::SegmentEdge::Enter => {
                        tx.is_segment_member(&s.id, contact)?
                    }
                    (_, Some(list)) => tx.in_list(contact, list)?,
                    _ => false,
                };
                if member {
                    record_due(tx, jid, &n.id, contact, now, Map::new(), now)?;
                }
            }
        }
    }
    *after = last;
    Ok(true)
}
