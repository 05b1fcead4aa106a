//! Contacts: who a person is (user and anonymous ids, merged identities) and what their
//! traits say. The timeline is the read side of a contact's page.

use jiff::Timestamp;
use serde_json::Map;
use serde_json::Value;

use crate::{Contact, ContactDetail, ContactQuery, Result, TimelineEntry};

/// Reading contacts for the API: one contact with its details, searches, its timeline.
pub trait Contacts {
    fn contact(&self, id: i64) -> Result<ContactDetail>;

    fn find_contacts(&self, query: &ContactQuery) -> Result<Vec<Contact>>;

    fn timeline(&self, contact_id: i64, limit: usize) -> Result<Vec<TimelineEntry>>;
}

/// Resolving and changing contacts inside an engine transaction: identities, merges, traits.
pub trait ContactsTx {
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

    /// Makes other processes' engine work on these contacts wait until this transaction ends
    /// (a merge may touch a contact of another process's partition). Returns whether another
    /// process may have changed them before they were locked (where one process is the only
    /// writer, nothing is locked and the answer is no).
    fn lock_contacts(&mut self, contact_ids: &[i64]) -> Result<bool>;

    fn contact(&mut self, contact_id: i64) -> Result<Contact>;

    /// Merges traits (null removes one) and keeps email, phone and timezone columns in step.
    fn update_traits(
        &mut self,
        contact_id: i64,
        traits: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<()>;

    /// Contact ids greater than `after_id`, ascending, for scans.
    fn contact_ids(&mut self, after_id: i64, limit: usize) -> Result<Vec<i64>>;

    /// The ids of the contacts whose email address (channel `email`) or phone number (`sms`)
    /// is exactly `address`, oldest first, at most `limit`.
    fn contacts_with_address(
        &mut self,
        channel: &str,
        address: &str,
        limit: usize,
    ) -> Result<Vec<i64>>;

    /// The contact with this email address (case-insensitive), the oldest if several.
    fn contact_by_email(&mut self, email: &str) -> Result<Option<i64>>;
}

/// Whether resolving identities merges two known contacts now, or leaves that to the engine.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merges {
    Now,
    Later,
}

/// How a backend resolves identities; `ContactsTx::resolve_contact` and `alias` are these
/// with `Merges::Now`.
pub(crate) trait Identities {
    fn resolve_as(
        &mut self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        now: Timestamp,
        merges: Merges,
    ) -> Result<i64>;

    fn alias_as(
        &mut self,
        previous_id: &str,
        user_id: &str,
        now: Timestamp,
        merges: Merges,
    ) -> Result<i64>;

    /// The contact an event being accepted is for, found or created as it is accepted, so
    /// that the event is processed in that contact's partition (PostgreSQL) and both backends
    /// hand the engine the same events. Identities are linked as the engine would link them,
    /// except that merging two known contacts waits until the event is processed (a merge
    /// moves engine state, which only the engine changes): the event goes to the contact that
    /// will remain. The caller writes alone (SQLite) or holds the append lock (PostgreSQL), so
    /// two writers cannot create one person twice.
    fn route(&mut self, e: &crate::NewEvent) -> Result<i64> {
        match (e.kind, &e.previous_id, &e.user_id) {
            (waymark_core::EventKind::Alias, Some(previous), Some(user)) => {
                self.alias_as(previous, user, e.received_at, Merges::Later)
            }
            _ => self.resolve_as(
                e.user_id.as_deref(),
                e.anonymous_id.as_deref(),
                e.received_at,
                Merges::Later,
            ),
        }
    }
}
