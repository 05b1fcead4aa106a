//! Events: the intake log. Accepted events are appended in ingest order and processed in
//! that order; the engine also reads a contact's past events (conditions, recommendations).

use jiff::Timestamp;
use serde_json::Value;
use waymark_core::EventRecord;

use crate::{NewEvent, Result, StoredEvent};

/// Accepting events (one group commit per batch) and the intake backlog.
pub trait Events {
    /// Commits a batch of events in one transaction; for each, whether it was new (false:
    /// a duplicate `messageId`, ignored).
    fn append_events(&self, events: &[NewEvent]) -> Result<Vec<bool>>;

    fn pending_event_count(&self) -> Result<i64>;

    /// The `seq` of the newest accepted event (0 when there is none).
    fn last_event_seq(&self) -> Result<i64>;

    /// Accepted events received in `[since, until)` with `seq > after_seq`, in ingest order,
    /// at most `limit`: a past period read page by page (a replay). Events the engine recorded
    /// itself are included (they carry a contact id and no user or anonymous id).
    fn events_received(
        &self,
        since: Timestamp,
        until: Timestamp,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>>;
}

/// Reading and recording events inside an engine transaction, and advancing the processed mark.
pub trait EventsTx {
    /// Accepted events not yet processed with `seq <= upto_seq`, in ingest order.
    fn pending_events(&mut self, upto_seq: i64, limit: usize) -> Result<Vec<StoredEvent>>;

    /// Marks events up to `seq` as processed (on PostgreSQL: in the partitions of the events
    /// `pending_events` returned in this transaction).
    fn set_processed_upto(&mut self, seq: i64) -> Result<()>;

    /// How far the events that may concern this contact are processed: the `seq` up to which
    /// its conditions may read its events.
    fn processed_upto(&mut self, contact_id: i64) -> Result<i64>;

    fn set_event_contact(&mut self, seq: i64, contact_id: i64) -> Result<()>;

    /// The contact's processed events named `name` with `after_seq < seq <= upto_seq`.
    fn events_between(
        &mut self,
        contact_id: i64,
        name: &str,
        after_seq: i64,
        upto_seq: i64,
    ) -> Result<Vec<EventRecord>>;

    fn event(&mut self, seq: i64) -> Result<Option<StoredEvent>>;

    /// Records an event the engine produced for a known contact, after every accepted event
    /// in ingest order. `false` if an event with its message id exists.
    fn record_event(&mut self, contact_id: i64, event: &NewEvent) -> Result<bool>;

    /// `properties.products` of the contact's newest `limit` processed `Order Completed`
    /// events, newest first (for recommendations).
    fn contact_order_products(&mut self, contact_id: i64, limit: usize) -> Result<Vec<Value>>;

    /// `properties.products` of the newest `limit` `Order Completed` events of other contacts
    /// that contain at least one of `product_ids`, newest first. (Backends may read up to
    /// `limit` orders per product to find them.)
    fn orders_with_products(
        &mut self,
        product_ids: &[String],
        exclude_contact: i64,
        limit: usize,
    ) -> Result<Vec<Value>>;

    /// How many `Order Completed` events contain each of `product_ids`, counting no further
    /// than `cap` (absent: none).
    fn product_order_counts(
        &mut self,
        product_ids: &[String],
        cap: usize,
    ) -> Result<Vec<(String, i64)>>;
}
