//! `enrollment.events` in a journey's templates: the event that started the enrollment and every
//! later one that joined it (the same trigger, the same key; see `waymark_core::stepper::joins`),
//! oldest first. A shop that follows Segment's e-commerce spec sends one `Product Added` per
//! product with a shared `cart_id`; the cart reminder lists them all from here.

use serde_json::{Value, json};
use waymark_core::journey::TemplateDefinition;
use waymark_core::stepper::joins;
use waymark_core::{Enrollment, Journey};
use waymark_store::{EngineTx, StoreError};

/// How templates name the list.
pub const VARIABLE: &str = "enrollment.events";

/// The most events listed (the first ones): a template renders them all, and an enrollment
/// that runs for months could gather thousands.
pub const MOST: usize = 100;

/// Whether the template mentions the list (see `TemplateDefinition::mentions`).
pub fn uses(def: &TemplateDefinition) -> bool {
    def.mentions(VARIABLE)
}

/// The events of `enrollment` as templates see them, up to the last event the step saw
/// (`upto_seq`): objects with `name`, `timestamp` and `properties`.
pub fn of(
    tx: &mut dyn EngineTx,
    journey: &Journey,
    enrollment: &Enrollment,
    upto_seq: i64,
) -> Result<Vec<Value>, StoreError> {
    if enrollment.entered_seq <= 0 {
        // Entered without an event (through the API, a segment or a schedule).
        return Ok(Vec::new());
    }
    let mut names: Vec<&str> = journey.trigger_events().collect();
    names.sort_unstable();
    names.dedup();
    let mut events = Vec::new();
    for name in names {
        let after = enrollment.entered_seq - 1;
        for event in tx.events_between(enrollment.contact_id, name, after, upto_seq)? {
            if joins(journey, enrollment, &event) {
                events.push(event);
            }
        }
    }
    events.sort_unstable_by_key(|e| e.seq);
    events.truncate(MOST);
    Ok(events
        .into_iter()
        .map(|e| {
            json!({
                "name": e.name,
                "timestamp": e.timestamp.to_string(),
                "properties": e.properties,
            })
        })
        .collect())
}
