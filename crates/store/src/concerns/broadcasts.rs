//! Broadcasts: one message to a whole audience (see `waymark_core::broadcast`). The API saves
//! and changes them; the engine goes through the audience in contact-id order, a page per
//! transaction, writing each page's messages and its progress together, so that a crash
//! redoes at most the page it was in (and the messages' idempotency keys keep it from sending
//! twice).

use jiff::Timestamp;
use serde_json::Value;
use waymark_core::broadcast::{Audience, VariantResult};

use waymark_core::report::BroadcastRollupRow;

use crate::{BroadcastChange, BroadcastProgress, BroadcastRow, NewBroadcastConversion, Result};

/// Saving, listing and changing broadcasts from the API.
pub trait Broadcasts {
    /// Saves a new `draft`; a conflict if the id is taken.
    fn create_broadcast(&self, id: &str, document: &Value, now: Timestamp) -> Result<BroadcastRow>;

    /// Replaces a draft's document; a conflict if it is no longer a draft.
    fn update_broadcast(&self, id: &str, document: &Value, now: Timestamp) -> Result<BroadcastRow>;

    /// Deletes a draft; a conflict if it is no longer one (its messages are history).
    fn delete_broadcast(&self, id: &str) -> Result<()>;

    /// Every broadcast, newest first.
    fn broadcasts(&self) -> Result<Vec<BroadcastRow>>;

    fn broadcast(&self, id: &str) -> Result<BroadcastRow>;

    /// Applies `change` (see [`BroadcastChange`]) and changes the broadcast's messages with
    /// it, in one transaction; a conflict if the broadcast's status does not allow it.
    fn change_broadcast(
        &self,
        id: &str,
        change: BroadcastChange,
        now: Timestamp,
    ) -> Result<BroadcastRow>;

    /// The broadcast's messages per status (`queued`, `sent`, `suppressed`, ...).
    fn broadcast_message_counts(&self, id: &str) -> Result<Vec<(String, i64)>>;

    /// Per template of the broadcast's messages (only those written before `before`, when
    /// given): sent, opened, clicked (an A/B test).
    fn broadcast_results(
        &self,
        broadcast_id: &str,
        before: Option<Timestamp>,
    ) -> Result<Vec<VariantResult>>;

    /// The broadcast's hourly roll-up rows (per template) from the hour holding `from` up to
    /// `to` (exclusive), in hour and template order.
    fn broadcast_rollups(
        &self,
        broadcast_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<BroadcastRollupRow>>;

    /// How many contacts are in `audience` and in none of `exclude` now.
    fn count_audience(&self, audience: &Audience, exclude: &[Audience]) -> Result<i64>;
}

/// The engine's side: taking a broadcast's due work and saving what was done with it.
pub trait BroadcastsTx {
    /// A broadcast with work due at `now` (scheduled to start by then, or sending with its
    /// next run due), locked until the transaction ends; another process looking at the same
    /// time gets another one or none.
    fn claim_due_broadcast(&mut self, now: Timestamp) -> Result<Option<BroadcastRow>>;

    /// Up to `limit` contact ids greater than `after_id`, ascending, that are in `audience`
    /// and in none of `exclude`.
    fn audience_page(
        &mut self,
        audience: &Audience,
        exclude: &[Audience],
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<i64>>;

    /// Keeps these recipients of the broadcast, each until its message is due.
    fn defer_broadcast_recipients(
        &mut self,
        broadcast_id: &str,
        due: &[(i64, Timestamp)],
    ) -> Result<()>;

    /// Removes and returns up to `limit` waiting recipients due at `now`, earliest first.
    fn take_due_broadcast_recipients(
        &mut self,
        broadcast_id: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<i64>>;

    /// When the broadcast's next waiting recipient is due.
    fn next_broadcast_recipient_due(&mut self, broadcast_id: &str) -> Result<Option<Timestamp>>;

    /// Per template of the broadcast's messages: sent, opened, clicked, converted (an A/B
    /// test's decision).
    fn broadcast_variant_counts(&mut self, broadcast_id: &str) -> Result<Vec<VariantResult>>;

    /// Credits a goal event to the contact's message of the broadcast, if it was sent at or
    /// before the event and within the window before it, and adds it to the roll-ups (with
    /// its revenue when in the goal's currency). A recipient converts once: false when it
    /// already had, or when no such message exists.
    fn record_broadcast_conversion(&mut self, conversion: &NewBroadcastConversion) -> Result<bool>;

    /// Saves the broadcast's progress.
    fn save_broadcast_progress(
        &mut self,
        broadcast_id: &str,
        progress: &BroadcastProgress,
        now: Timestamp,
    ) -> Result<()>;
}
