//! Conversions: a journey's goal event credited to the enrollment, node, message and variant
//! that led to it, whether the enrollment is still running (the goal ends it) or ended
//! within the conversion window (see `waymark_core::stepper::converts_after_end`).
//!
//! What each contact was exposed to is kept raw (the steps it took, the messages it got and
//! what it did with them); a conversion is recorded once per enrollment with the message sent
//! last before it (last touch), its revenue and the reaction time, and counted in the node
//! statistics of every node the enrollment visited and for each experiment variant it took.

use jiff::Timestamp;
use waymark_core::filter::filter_matches;
use waymark_core::stepper::{CONVERSION_AFTER_END, converts_after_end};
use waymark_core::{Enrollment, EventRecord, Journey};
use waymark_store::{
    EngineTx, NewBroadcastConversion, NewConversion, StatsDeltas, Store, StoreError,
};

use crate::processor::{decide_experiment, experiment_node};
use crate::registry::Registry;

/// Records that `enrollment` converted with `event` (at `node`, where it is or ended) and,
/// the first time, counts it. Returns whether it was new. The revenue is read from `event`
/// only when it is the goal event (a step resumed after a pause may see a later one).
pub(crate) fn convert(
    tx: &mut dyn EngineTx,
    journey: &Journey,
    enrollment: &Enrollment,
    node: &str,
    event: Option<&EventRecord>,
    now: Timestamp,
    stats: &mut StatsDeltas,
) -> Result<bool, StoreError> {
    let last_touch = tx.last_touch(enrollment.id, now)?;
    let revenue = journey
        .document
        .goal
        .as_ref()
        .zip(event)
        .filter(|(goal, e)| goal.event == e.name)
        .and_then(|(goal, e)| goal.revenue_of(&e.properties));
    let conversion = NewConversion {
        enrollment_id: enrollment.id,
        contact_id: enrollment.contact_id,
        journey_id: enrollment.journey_id.clone(),
        version: enrollment.version,
        node: last_touch
            .as_ref()
            .map_or_else(|| node.to_string(), |t| t.node.clone()),
        last_touch,
        event_seq: event.map_or(0, |e| e.seq),
        at: now,
        revenue,
    };
    if !tx.record_conversion(&conversion)? {
        return Ok(false);
    }
    let jid = journey.id();
    let mut visited = tx.visited_nodes(enrollment.id)?;
    if !visited.iter().any(|n| n == node) {
        visited.push(node.to_string());
    }
    for n in visited {
        stats.node(jid, enrollment.version, &n).converted += 1;
    }
    // Each experiment the enrollment went through counts the conversion for the variant it
    // took (once, even if it passed the node twice).
    let mut taken = tx.left_outputs(enrollment.id)?;
    taken.sort();
    taken.dedup();
    for (n, variant) in taken {
        if let Some(x) = experiment_node(journey, &n) {
            tx.add_experiment_counts(jid, &n, &variant, 0, 1)?;
            decide_experiment(tx, jid, &n, x, now)?;
        }
    }
    Ok(true)
}

/// Credits `event` to the contact's enrollments that ended without converting, in the
/// journeys whose goal it is, while their conversion window is open. Returns how many
/// converted.
pub(crate) fn after_end(
    tx: &mut dyn EngineTx,
    store: &dyn Store,
    registry: &mut Registry,
    contact_id: i64,
    event: &EventRecord,
    now: Timestamp,
    stats: &mut StatsDeltas,
) -> Result<usize, StoreError> {
    let journeys = registry.with_goal(&event.name).to_vec();
    let mut converted = 0;
    for journey_id in journeys {
        // The widest window a version may have: its `within` after entry, else the default
        // after the end. An enrollment that ended before the earliest of those cannot convert.
        let widest = registry
            .live_journey(&journey_id)
            .and_then(|j| j.goal_window())
            .map_or(CONVERSION_AFTER_END, |w| {
                jiff::SignedDuration::from_secs(w.seconds()).max(CONVERSION_AFTER_END)
            });
        for (enrollment, ended_at) in tx.ended_unconverted(contact_id, &journey_id, now - widest)? {
            let Some(journey) = registry.version(store, &journey_id, enrollment.version)? else {
                continue;
            };
            if converts_after_end(&journey, &enrollment, ended_at, event, now)
                && convert(
                    tx,
                    &journey,
                    &enrollment,
                    &enrollment.node,
                    Some(event),
                    now,
                    stats,
                )?
            {
                converted += 1;
            }
        }
    }
    Ok(converted)
}

/// Credits `event` to the contact's message of each broadcast whose goal it is, when the
/// message was sent within the goal's window before the event (once per recipient; the store
/// finds the message by its idempotency key, so this costs one indexed lookup per broadcast
/// with this goal). Returns how many converted.
pub(crate) fn broadcasts(
    tx: &mut dyn EngineTx,
    registry: &Registry,
    contact_id: i64,
    event: &EventRecord,
) -> Result<usize, StoreError> {
    let mut converted = 0;
    for entry in registry.broadcasts_with_goal(&event.name) {
        // Every message was written by `finished_at`: an event after its window converts none.
        if entry
            .finished_at
            .is_some_and(|finished| event.timestamp >= finished + entry.window)
            || !filter_matches(&entry.goal.filter, &event.properties)
        {
            continue;
        }
        let conversion = NewBroadcastConversion {
            broadcast_id: entry.broadcast_id.clone(),
            contact_id,
            event_seq: event.seq,
            at: event.timestamp,
            window: entry.window,
            revenue: entry.goal.revenue_of(&event.properties),
        };
        if tx.record_broadcast_conversion(&conversion)? {
            converted += 1;
        }
    }
    Ok(converted)
}
