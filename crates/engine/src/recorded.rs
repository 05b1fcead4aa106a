//! Events the engine records itself: a contact added to a list, a journey's `emit_event` and
//! `enroll_in_journey` nodes, and API enrollments. They join the event stream after every
//! event accepted so far, so journeys see them in ingest order like any other event, and a
//! trigger on a list, a segment or an API enrollment is matched like an event trigger.

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use waymark_core::EventKind;
use waymark_core::event::{
    ENROLLMENT_REQUESTED, JOURNEY_PROPERTY, LIST_ADDED, LIST_PROPERTY, LIST_REMOVED,
};
use waymark_store::{EngineTx, NewEvent, StoreError};

/// Records a `track` event for a contact; `message_id` makes it idempotent. Returns `false`
/// when an event with that id exists.
pub fn record(
    tx: &mut dyn EngineTx,
    contact_id: i64,
    name: &str,
    properties: Map<String, Value>,
    message_id: String,
    now: Timestamp,
) -> Result<bool, StoreError> {
    tx.record_event(
        contact_id,
        &NewEvent {
            message_id,
            kind: EventKind::Track,
            name: name.to_string(),
            user_id: None,
            anonymous_id: None,
            previous_id: None,
            properties,
            timestamp: now,
            received_at: now,
        },
    )
}

/// Adds a contact to a list; a new membership records `Added To List`, which list triggers
/// start on.
pub fn add_to_list(
    tx: &mut dyn EngineTx,
    contact_id: i64,
    list: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    if tx.add_to_list(contact_id, list, now)? {
        let mut properties = Map::new();
        properties.insert(LIST_PROPERTY.into(), json!(list));
        let id = format!("list:{contact_id}:{list}:{}", now.as_millisecond());
        record(tx, contact_id, LIST_ADDED, properties, id, now)?;
    }
    Ok(())
}

/// Removes a contact from a list; a removal records `Removed From List` (for the timeline and
/// for segments on list membership).
pub fn remove_from_list(
    tx: &mut dyn EngineTx,
    contact_id: i64,
    list: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    if tx.remove_from_list(contact_id, list)? {
        let mut properties = Map::new();
        properties.insert(LIST_PROPERTY.into(), json!(list));
        let id = format!("unlist:{contact_id}:{list}:{}", now.as_millisecond());
        record(tx, contact_id, LIST_REMOVED, properties, id, now)?;
    }
    Ok(())
}

/// Asks for the contact's enrollment in `journey` (through its `api` trigger) with `payload`
/// as the trigger event's properties.
pub fn request_enrollment(
    tx: &mut dyn EngineTx,
    contact_id: i64,
    journey: &str,
    mut payload: Map<String, Value>,
    message_id: String,
    now: Timestamp,
) -> Result<bool, StoreError> {
    payload.insert(JOURNEY_PROPERTY.into(), json!(journey));
    record(
        tx,
        contact_id,
        ENROLLMENT_REQUESTED,
        payload,
        message_id,
        now,
    )
}

/// Who a request names: a user id (the contact is created if new) or an existing contact.
#[derive(Debug, Clone)]
pub enum ContactRef {
    User(String),
    Id(i64),
}

impl ContactRef {
    /// The contact's id; a contact id that does not exist is `NotFound`.
    pub fn resolve(&self, tx: &mut dyn EngineTx, now: Timestamp) -> Result<i64, StoreError> {
        match self {
            ContactRef::User(user) => tx.resolve_contact(Some(user), None, now),
            ContactRef::Id(id) => {
                tx.contact(*id)
                    .map_err(|_| StoreError::NotFound(format!("contact {id}")))?;
                Ok(*id)
            }
        }
    }
}
