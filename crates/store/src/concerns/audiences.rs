//! Audiences: segments (a stored condition, its members and their re-check times) and
//! static lists of contacts.
//!
//! A segment's size over time (`segment_history`) is kept by the store itself, in the
//! transaction that changes a membership, so no path that changes one can forget it: the
//! engine's `set_segment_member`, an erasure (the contact's memberships leave with it) and a
//! merge (two members of a segment become one). Per segment and UTC hour it holds how many
//! entered and how many left, as increments only: a change never reads the segment's size
//! (no count of the members on the hot path), and PostgreSQL transactions of several
//! processes add to the same hour without losing each other's counts. The members at any
//! time are the sum of the hours up to it (at most 8,760 rows a year per segment). Deleting a
//! segment deletes its history. Counts only: nothing says who.

use jiff::Timestamp;
use serde_json::Value;

use crate::{Contact, ListSummary, Result, SegmentHistory, SegmentRow};

/// The width of a history bucket.
pub const SEGMENT_HISTORY_HOUR_MS: i64 = 3_600_000;

/// The start of the UTC hour `at_ms` falls in (milliseconds), the key of its history bucket.
pub(crate) fn history_hour(at_ms: i64) -> i64 {
    at_ms.div_euclid(SEGMENT_HISTORY_HOUR_MS) * SEGMENT_HISTORY_HOUR_MS
}

/// Managing segments and lists and listing their members from the API.
pub trait Audiences {
    fn lists(&self) -> Result<Vec<ListSummary>>;

    fn create_list(&self, name: &str, now: Timestamp) -> Result<ListSummary>;

    fn list_members(&self, name: &str, limit: usize, after_id: i64) -> Result<Vec<Contact>>;

    fn segments(&self) -> Result<Vec<SegmentRow>>;

    fn segment(&self, id: &str) -> Result<SegmentRow>;

    /// Creates or replaces a segment; `true` when it was created.
    fn put_segment(&self, id: &str, name: &str, condition: &Value, now: Timestamp) -> Result<bool>;

    /// Deletes a segment with its memberships, checks and history.
    fn delete_segment(&self, id: &str) -> Result<()>;

    fn segment_members(&self, id: &str, limit: usize, after_id: i64) -> Result<Vec<Contact>>;

    /// The segment's changes in the hours starting in `from..to`, and its members at `from`
    /// (give whole hours: an hour is counted whole where it starts).
    fn segment_history(&self, id: &str, from: Timestamp, to: Timestamp) -> Result<SegmentHistory>;
}

/// Segment membership and list membership inside an engine transaction.
pub trait AudiencesTx {
    /// Whether the contact is in the list.
    fn in_list(&mut self, contact_id: i64, list: &str) -> Result<bool>;

    /// Adds the contact to the list (created if needed); `true` if it was not a member.
    fn add_to_list(&mut self, contact_id: i64, list: &str, now: Timestamp) -> Result<bool>;

    /// Removes the contact from the list; `true` if it was a member.
    fn remove_from_list(&mut self, contact_id: i64, list: &str) -> Result<bool>;

    /// Members of a list with ids greater than `after_id`, ascending.
    fn list_member_ids(&mut self, list: &str, after_id: i64, limit: usize) -> Result<Vec<i64>>;

    /// Every segment's id and condition (JSON form).
    fn segment_definitions(&mut self) -> Result<Vec<(String, Value)>>;

    fn is_segment_member(&mut self, segment_id: &str, contact_id: i64) -> Result<bool>;

    /// Adds or removes a member; `true` when that changed anything, which is then counted in
    /// the segment's history (in the hour of `now`).
    fn set_segment_member(
        &mut self,
        segment_id: &str,
        contact_id: i64,
        member: bool,
        now: Timestamp,
    ) -> Result<bool>;

    /// Members of a segment with ids greater than `after_id`, ascending.
    fn segment_member_ids(
        &mut self,
        segment_id: &str,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<i64>>;

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
}
