//! Storage for Waymark: the traits the engine and the API use, and the embedded SQLite
//! implementation.
//!
//! The traits are shaped around units of work rather than tables: `append_events` is one group
//! commit; `engine_tx` runs one batch of engine work (event processing or timer firing) in one
//! transaction, so a step, its effects and its counters commit together or not at all.
//! `claim_*` methods return work in the order it must be done; a multi-process backend
//! (PostgreSQL) implements them with leases (`FOR UPDATE SKIP LOCKED`).
//! Architecture invariant: no engine logic lives here; this crate only stores and loads.

mod model;
pub mod sqlite;

pub use model::*;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value};
use waymark_core::condition::MessageRecord;
use waymark_core::filter::Engagement;
use waymark_core::journey::{Channel, TemplateDefinition};
use waymark_core::stepper::PriorEnrollment;
use waymark_core::{Enrollment, EventRecord, StepLog};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound("row".into()),
            other => StoreError::Database(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The operations of one engine transaction.
pub trait EngineTx {
    /// Accepted events not yet processed with `seq <= upto_seq`, in ingest order.
    fn pending_events(&mut self, upto_seq: i64, limit: usize) -> Result<Vec<StoredEvent>>;
    /// Marks events up to `seq` as processed.
    fn set_processed_upto(&mut self, seq: i64) -> Result<()>;
    /// Finds or creates the contact for these identities, merging an anonymous contact into an
    /// identified one when the event links them.
    fn resolve_contact(
        &mut self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        now: Timestamp,
    ) -> Result<i64>;
    /// Merges the contact known by `previous_id` (a user or anonymous id) into `user_id`'s.
    fn alias(&mut self, previous_id: &str, user_id: &str, now: Timestamp) -> Result<i64>;
    fn set_event_contact(&mut self, seq: i64, contact_id: i64) -> Result<()>;
    fn contact(&mut self, contact_id: i64) -> Result<Contact>;
    /// Merges traits (null removes one) and keeps email, phone and timezone columns in step.
    fn update_traits(
        &mut self,
        contact_id: i64,
        traits: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<()>;
    /// The contact's processed events named `name` with `after_seq < seq <= upto_seq`.
    fn events_between(
        &mut self,
        contact_id: i64,
        name: &str,
        after_seq: i64,
        upto_seq: i64,
    ) -> Result<Vec<EventRecord>>;
    fn event(&mut self, seq: i64) -> Result<Option<StoredEvent>>;
    /// Whether the message this enrollment sent at `node` reached `engagement` (sent and
    /// delivered: accepted by the transport; opened includes clicked).
    fn message_engaged(
        &mut self,
        enrollment_id: i64,
        node: &str,
        engagement: Engagement,
    ) -> Result<bool>;
    /// Whether the contact is in the list.
    fn in_list(&mut self, contact_id: i64, list: &str) -> Result<bool>;
    /// Every queued or sent message of the contact, for engagement conditions.
    fn contact_messages(&mut self, contact_id: i64) -> Result<Vec<MessageRecord>>;
    /// Every segment's id and condition (JSON form).
    fn segment_definitions(&mut self) -> Result<Vec<(String, Value)>>;
    fn is_segment_member(&mut self, segment_id: &str, contact_id: i64) -> Result<bool>;
    /// Adds or removes a member; `true` when that changed anything.
    fn set_segment_member(
        &mut self,
        segment_id: &str,
        contact_id: i64,
        member: bool,
        now: Timestamp,
    ) -> Result<bool>;
    /// When to re-evaluate the contact for the segment (`None`: no time-based change).
    fn set_segment_check(
        &mut self,
        segment_id: &str,
        contact_id: i64,
        due: Option<Timestamp>,
    ) -> Result<()>;
    /// Takes up to `limit` (segment, contact) checks due at `now`, earliest first.
    fn claim_due_segment_checks(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, i64)>>;
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
    /// Forgets every scheduled trigger of a journey (before it is scheduled again).
    fn clear_journey_triggers(&mut self, journey_id: &str) -> Result<()>;
    /// Members of a segment with ids greater than `after_id`, ascending.
    fn segment_member_ids(
        &mut self,
        segment_id: &str,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<i64>>;
    /// Members of a list with ids greater than `after_id`, ascending.
    fn list_member_ids(&mut self, list: &str, after_id: i64, limit: usize) -> Result<Vec<i64>>;
    /// Contact ids greater than `after_id`, ascending, for scans.
    fn contact_ids(&mut self, after_id: i64, limit: usize) -> Result<Vec<i64>>;
    /// The (node, output) of every node this enrollment left, in order.
    fn left_outputs(&mut self, enrollment_id: i64) -> Result<Vec<(String, String)>>;
    fn add_experiment_counts(
        &mut self,
        journey_id: &str,
        node: &str,
        variant: &str,
        entered: i64,
        converted: i64,
    ) -> Result<()>;
    fn experiment_counts(&mut self, journey_id: &str, node: &str) -> Result<Vec<ExperimentCounts>>;
    fn experiment_winner(&mut self, journey_id: &str, node: &str) -> Result<Option<String>>;
    fn set_experiment_winner(
        &mut self,
        journey_id: &str,
        node: &str,
        winner: &str,
        verdict: &Value,
        now: Timestamp,
    ) -> Result<()>;
    /// Records an open or click of a message; returns false for an unknown message.
    fn mark_engagement(&mut self, message_id: i64, clicked: bool, at: Timestamp) -> Result<bool>;
    fn active_enrollments(&mut self, contact_id: i64) -> Result<Vec<Enrollment>>;
    fn prior_enrollments(
        &mut self,
        journey_id: &str,
        contact_id: i64,
    ) -> Result<Vec<PriorEnrollment>>;
    /// Inserts an enrollment and returns it with its id.
    fn insert_enrollment(&mut self, enrollment: &Enrollment, now: Timestamp) -> Result<Enrollment>;
    fn update_enrollment(&mut self, enrollment: &Enrollment, now: Timestamp) -> Result<()>;
    /// Active enrollments of live journeys whose timer is due, earliest first.
    fn claim_due_enrollments(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Enrollment>>;
    /// Active enrollments of a journey (for resume and archive).
    fn journey_enrollments(
        &mut self,
        journey_id: &str,
        limit: usize,
        after_id: i64,
    ) -> Result<Vec<Enrollment>>;
    fn record_steps(&mut self, enrollment_id: i64, log: &[StepLog], at: Timestamp) -> Result<()>;
    fn visited_nodes(&mut self, enrollment_id: i64) -> Result<Vec<String>>;
    fn add_stats(&mut self, deltas: &StatsDeltas, at: Timestamp) -> Result<()>;
    /// Inserts a message unless one with the same idempotency key exists (returns false then).
    fn insert_message(&mut self, message: &NewMessage) -> Result<bool>;
    /// The current version of a template.
    fn template(&mut self, id: &str) -> Result<Option<StoredTemplate>>;
    /// One version of a template (kept after the template is changed or deleted).
    fn template_version(&mut self, id: &str, version: i64) -> Result<Option<StoredTemplate>>;
    /// Why `address` is suppressed on `channel`, if it is.
    fn suppression(&mut self, channel: &str, address: &str) -> Result<Option<String>>;
    /// Puts an address on the suppression list (or updates its reason and source); `true` if
    /// it was not on it.
    fn suppress(&mut self, entry: &Suppression) -> Result<bool>;
    /// Takes an address off the suppression list, with the hashed entry an erasure left for
    /// it; `true` if it was on it.
    fn unsuppress(&mut self, channel: &str, address: &str) -> Result<bool>;
    /// The ids of the contacts whose email address (channel `email`) or phone number (`sms`)
    /// is exactly `address`, oldest first, at most `limit`.
    fn contacts_with_address(
        &mut self,
        channel: &str,
        address: &str,
        limit: usize,
    ) -> Result<Vec<i64>>;
    /// Adds the contact to the list (created if needed); `true` if it was not a member.
    fn add_to_list(&mut self, contact_id: i64, list: &str, now: Timestamp) -> Result<bool>;
    /// Records an event the engine produced for a known contact, after every accepted event
    /// in ingest order. `false` if an event with its message id exists.
    fn record_event(&mut self, contact_id: i64, event: &NewEvent) -> Result<bool>;
    /// Marketing messages (queued or sent, from non-transactional templates) created for the
    /// contact on the channel since `since`, for frequency caps.
    fn count_marketing_messages(
        &mut self,
        contact_id: i64,
        channel: &str,
        since: Timestamp,
    ) -> Result<i64>;
    /// Removes the contact from the list; `true` if it was a member.
    fn remove_from_list(&mut self, contact_id: i64, list: &str) -> Result<bool>;
    fn meta(&mut self, key: &str) -> Result<Option<String>>;
    fn set_meta(&mut self, key: &str, value: &str) -> Result<()>;

    /// A contact's subscriptions, by channel and topic.
    fn subscriptions(&mut self, contact_id: i64) -> Result<Vec<Subscription>>;
    /// Sets one subscription; returns the status it had before (`None`: no record).
    fn set_subscription(&mut self, subscription: &Subscription) -> Result<Option<String>>;
    /// Records the one-click unsubscribe URL of a queued message.
    fn set_message_unsubscribe_url(&mut self, idempotency_key: &str, url: &str) -> Result<()>;
    /// The contact with this email address (case-insensitive), the oldest if several.
    fn contact_by_email(&mut self, email: &str) -> Result<Option<i64>>;

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

    /// Erases the contact and everything personal about it (see `sqlite::privacy`): its rows
    /// in every per-contact table, its queued messages included. Its addresses stay suppressed
    /// as keyed hashes; aggregate counters are kept. `NotFound` when there is no such contact.
    fn erase_contact(&mut self, contact_id: i64, now: Timestamp) -> Result<Erasure>;
    /// Appends to the audit log (in this transaction); returns the entry's id.
    fn record_audit(&mut self, entry: &NewAudit) -> Result<i64>;
}

/// The whole storage surface. Methods are blocking; the server calls them off its async
/// threads.
pub trait Store: Send + Sync + 'static {
    // Ingestion and engine.
    /// Commits a batch of events in one transaction; for each, whether it was new (false:
    /// a duplicate `messageId`, ignored).
    fn append_events(&self, events: &[NewEvent]) -> Result<Vec<bool>>;
    fn engine_tx(&self, work: &mut dyn FnMut(&mut dyn EngineTx) -> Result<()>) -> Result<()>;
    /// The earliest timer of a live journey, if any.
    fn next_wake_at(&self) -> Result<Option<Timestamp>>;
    fn pending_event_count(&self) -> Result<i64>;
    /// The `seq` of the newest accepted event (0 when there is none).
    fn last_event_seq(&self) -> Result<i64>;
    fn meta(&self, key: &str) -> Result<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> Result<()>;

    // Outbox.
    /// Up to `limit` queued messages whose next attempt is due, oldest due first.
    fn due_messages(&self, query: &DueQuery<'_>) -> Result<Vec<MessageRow>>;
    /// The journeys (at most `limit`, by id) that have [`Priority::Journey`] messages of
    /// `channel` due at `now`.
    fn due_journeys(&self, channel: &str, now: Timestamp, limit: usize) -> Result<Vec<String>>;
    fn next_message_attempt_at(&self) -> Result<Option<Timestamp>>;
    /// Records the outcomes of delivery attempts, all in one transaction.
    fn finish_messages(&self, finished: &[Finished]) -> Result<()>;
    /// Puts the `failed` messages that match `filter` back in the queue, due at `now`, with
    /// their attempts and retry lifetime started over (same id, same idempotency key). Returns
    /// how many were requeued.
    fn requeue_messages(&self, filter: &RequeueFilter, now: Timestamp) -> Result<i64>;
    /// Queued messages per channel (only channels that have some).
    fn queue_levels(&self) -> Result<Vec<QueueLevel>>;

    // Suppression list.
    fn suppressions(&self, query: &SuppressionQuery) -> Result<Vec<Suppression>>;
    /// Puts an address on the list, or updates the reason of an existing entry (keeping its
    /// first `created_at`). True when the entry is new.
    fn suppress(&self, entry: &Suppression) -> Result<bool>;
    /// Takes an address off the list; false when it was not on it.
    fn unsuppress(&self, channel: &str, address: &str) -> Result<bool>;

    // Contacts and lists.
    fn contact(&self, id: i64) -> Result<ContactDetail>;
    fn find_contacts(&self, query: &ContactQuery) -> Result<Vec<Contact>>;
    fn timeline(&self, contact_id: i64, limit: usize) -> Result<Vec<TimelineEntry>>;
    fn lists(&self) -> Result<Vec<ListSummary>>;
    fn create_list(&self, name: &str, now: Timestamp) -> Result<ListSummary>;
    fn list_members(&self, name: &str, limit: usize, after_id: i64) -> Result<Vec<Contact>>;

    fn segments(&self) -> Result<Vec<SegmentRow>>;
    fn segment(&self, id: &str) -> Result<SegmentRow>;
    /// Creates or replaces a segment; `true` when it was created.
    fn put_segment(&self, id: &str, name: &str, condition: &Value, now: Timestamp) -> Result<bool>;
    /// Deletes a segment with its memberships and checks.
    fn delete_segment(&self, id: &str) -> Result<()>;
    fn segment_members(&self, id: &str, limit: usize, after_id: i64) -> Result<Vec<Contact>>;
    /// Every experiment's counts and winners in a journey.
    fn experiments(
        &self,
        journey_id: &str,
    ) -> Result<(Vec<ExperimentCounts>, Vec<ExperimentWinner>)>;

    // Templates.
    fn templates(&self) -> Result<Vec<StoredTemplate>>;
    fn get_template(&self, id: &str) -> Result<StoredTemplate>;
    /// Creates a template or makes a new version of it; true when it was created. A definition
    /// equal to the current version changes nothing.
    fn put_template(&self, def: &TemplateDefinition, now: Timestamp) -> Result<bool>;
    /// A template's versions, newest first, with the journey versions that pin each.
    fn template_versions(&self, id: &str) -> Result<Vec<TemplateVersionSummary>>;
    /// One version of a template, also of a deleted one.
    fn get_template_version(&self, id: &str, version: i64) -> Result<StoredTemplate>;
    fn delete_template(&self, id: &str) -> Result<()>;
    fn template_channel(&self, id: &str) -> Result<Option<Channel>>;

    // Journeys.
    fn journeys(&self) -> Result<Vec<JourneyRow>>;
    fn journey(&self, id: &str) -> Result<JourneyRow>;
    /// Creates a journey as a draft, or replaces the draft of an existing one (not archived).
    fn put_journey_draft(
        &self,
        id: &str,
        name: &str,
        draft: &Value,
        now: Timestamp,
    ) -> Result<JourneyRow>;
    /// Stores a new immutable version from the draft and makes it live, pinning the current
    /// version of each of `templates` (the templates it sends).
    fn publish_journey(
        &self,
        id: &str,
        document: &Value,
        templates: &[String],
        now: Timestamp,
    ) -> Result<JourneyRow>;
    fn set_journey_status(
        &self,
        id: &str,
        status: JourneyStatus,
        now: Timestamp,
    ) -> Result<JourneyRow>;
    fn journey_versions(&self, id: &str) -> Result<Vec<JourneyVersion>>;
    fn journey_version(&self, id: &str, version: i64) -> Result<JourneyVersion>;
    /// Every live or paused journey's live version, for the engine's routing table.
    fn running_journeys(&self) -> Result<Vec<(JourneyStatus, JourneyVersion)>>;
    fn journey_stats(&self, id: &str) -> Result<JourneyStats>;

    // Messages.
    fn messages(&self, query: &MessageQuery) -> Result<Vec<MessageRow>>;
    /// The message with this idempotency key, if any (open and click tracking).
    fn message_by_key(&self, idempotency_key: &str) -> Result<Option<MessageRow>>;

    // Data protection.
    /// How many rows the export of the contact holds, per section; `NotFound` when there is
    /// no such contact.
    fn contact_export_counts(&self, contact_id: i64) -> Result<BTreeMap<String, i64>>;
    /// Everything held about the contact, section by section (`sqlite::privacy::SECTIONS`),
    /// handed to `emit` at most `page` rows (enrollments: with their steps) at a time. No read
    /// transaction stays open between pages, so a slow reader holds nothing up; the pages of
    /// a contact changed meanwhile may mix before and after.
    fn export_contact(
        &self,
        contact_id: i64,
        page: usize,
        emit: &mut dyn FnMut(ExportPage) -> Result<()>,
    ) -> Result<()>;
    /// Appends to the audit log; returns the entry's id.
    fn record_audit(&self, entry: &NewAudit) -> Result<i64>;
    fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Current levels for the metrics endpoint.
    fn gauges(&self) -> Result<Gauges>;
    /// Size of the database files in bytes.
    fn disk_bytes(&self) -> Result<u64>;
}
