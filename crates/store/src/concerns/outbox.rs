//! Outbox and messages: every message the engine queued, its delivery attempts and outcome,
//! and the opens and clicks it got. The dispatcher reads the queue; the engine writes it.

use jiff::Timestamp;
use waymark_core::condition::MessageRecord;
use waymark_core::filter::Engagement;

use crate::{
    DueQuery, Finished, LastTouch, MessageQuery, MessageRow, NewMessage, QueueLevel, RequeueFilter,
    Result,
};

/// The delivery queue as the dispatcher and the API see it: due work, outcomes, requeues,
/// message listings.
pub trait Outbox {
    /// Up to `limit` queued messages whose next attempt is due, oldest due first, none of
    /// `query.skip`.
    fn due_messages(&self, query: &DueQuery<'_>) -> Result<Vec<MessageRow>>;

    /// The journeys (at most `limit`, by id) that have
    /// [`Priority::Journey`](crate::Priority::Journey) messages of `channel` due at `now`.
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

    fn messages(&self, query: &MessageQuery) -> Result<Vec<MessageRow>>;

    /// The message with this idempotency key, if any (open and click tracking).
    fn message_by_key(&self, idempotency_key: &str) -> Result<Option<MessageRow>>;

    /// Records that the recipient unsubscribed through this message's link (once per
    /// message); returns false for an unknown message or one already marked.
    fn mark_message_unsubscribed(&self, idempotency_key: &str, at: Timestamp) -> Result<bool>;
}

/// Queuing messages and reading a contact's messages inside an engine transaction (engagement
/// conditions, frequency caps).
pub trait OutboxTx {
    /// Inserts a message unless one with the same idempotency key exists (returns false then).
    fn insert_message(&mut self, message: &NewMessage) -> Result<bool>;

    /// Marketing messages (queued or sent, from non-transactional templates) created for the
    /// contact on the channel since `since`, for frequency caps.
    fn count_marketing_messages(
        &mut self,
        contact_id: i64,
        channel: &str,
        since: Timestamp,
    ) -> Result<i64>;

    /// Every queued or sent message of the contact, for engagement conditions.
    fn contact_messages(&mut self, contact_id: i64) -> Result<Vec<MessageRecord>>;

    /// Whether the message this enrollment sent at `node` reached `engagement` (sent and
    /// delivered: accepted by the transport; opened includes clicked).
    fn message_engaged(
        &mut self,
        enrollment_id: i64,
        node: &str,
        engagement: Engagement,
    ) -> Result<bool>;

    /// When a message was sent (`None`: unknown, or not sent).
    fn message_sent_at(&mut self, message_id: i64) -> Result<Option<Timestamp>>;

    /// Records an open or click of a message, by a person or (`human` false) a machine: the
    /// first of each per message is counted, and a person's first open and click measure the
    /// reaction time since the send. Returns false for an unknown message.
    fn mark_engagement(
        &mut self,
        message_id: i64,
        clicked: bool,
        human: bool,
        at: Timestamp,
    ) -> Result<bool>;

    /// The last message this enrollment sent (status `sent`) at or before `before`: the last
    /// touch a conversion is credited to.
    fn last_touch(&mut self, enrollment_id: i64, before: Timestamp) -> Result<Option<LastTouch>>;

    /// A spam complaint a provider reported: the last message sent on `channel` to `address`
    /// by one of `contacts` since `since` is marked complained (once). Returns its id.
    fn complain_sent_message(
        &mut self,
        contacts: &[i64],
        channel: &str,
        address: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<Option<i64>>;

    /// A bounce the receiving side reported after accepting a message (a provider's
    /// webhook): the last message sent on `channel` to `address` (as the suppression list
    /// keeps it) by one of `contacts` since `since` becomes `bounced` with `error`, and its
    /// node's statistics count it bounced and no longer delivered. Returns its id, `None`
    /// when no such message was found.
    fn bounce_sent_message(
        &mut self,
        contacts: &[i64],
        channel: &str,
        address: &str,
        since: Timestamp,
        error: &str,
        now: Timestamp,
    ) -> Result<Option<i64>>;
}
