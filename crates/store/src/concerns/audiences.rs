//! Audiences: segments (a stored condition, its members and their re-check times) and
//! static lists of contacts.

use jiff::Timestamp;
use serde_json::Value;

use crate::{Contact, ListSummary, Result, SegmentRow};

/// Managing segments and lists and listing their members from the API.
pub trait Audiences {
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

    /// Adds or removes a member; `true` when that changed anything.
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
