//! Timers: work due at a time that is not an enrollment's own timer: time-based journey
//! triggers and score decay. `next_wake_at` is the engine's wake-up for every kind of timer.

use jiff::Timestamp;

use crate::Result;

/// When the engine next has timed work: the earliest of enrollment timers, segment checks,
/// triggers and score expiries.
pub trait Timers {
    /// The earliest timer of a live journey, if any.
    fn next_wake_at(&self) -> Result<Option<Timestamp>>;
}

/// Scheduling and claiming time-based triggers and score expiries.
pub trait TimersTx {
    /// When a time-based trigger is next due for a contact (0: the whole journey); `None`
    /// removes it.
    fn set_trigger_due(
        &mut self,
        journey_id: &str,
        node: &str,
        contact_id: i64,
        due: Option<Timestamp>,
    ) -> Result<()>;

    /// Takes up to `limit` (journey, node, contact, due) triggers due at `now`, earliest first.
    fn claim_due_triggers(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, String, i64, Timestamp)>>;

    /// Forgets every scheduled trigger of a journey (before it is scheduled again).
    fn clear_journey_triggers(&mut self, journey_id: &str) -> Result<()>;

    /// Points to take back from a contact's score trait at `due` (score decay).
    fn add_score_expiry(
        &mut self,
        contact_id: i64,
        score_trait: &str,
        points: i64,
        due: Timestamp,
    ) -> Result<()>;

    /// Takes up to `limit` (contact, trait, points) expiries due at `now`, earliest first.
    fn claim_due_score_expiries(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(i64, String, i64)>>;
}
