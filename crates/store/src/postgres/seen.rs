//! What an engine transaction has read, kept as it stands in that transaction: on PostgreSQL every
//! read is a round trip, and a batch's steps ask for the same rows again and again (a contact for
//! its traits, then for the send gate; a timer's trigger event), or for rows of many contacts one
//! at a time that one statement can load for the whole batch ([`crate::ReadAhead`]).
//!
//! Every write of the transaction to a kept row updates it here or drops it, so a read answers
//! the same from here as from the database. Rows another process writes meanwhile are not seen,
//! as a statement that ran a moment earlier would not have seen them; what must not be missed
//! (the partitions, a contact's events) is locked or fenced, not cached.

use std::collections::HashMap;

use waymark_core::stepper::PriorEnrollment;
use waymark_core::{Enrollment, EnrollmentStatus};

use crate::{Contact, StoredEvent, Subscription};

#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) contacts: HashMap<i64, Contact>,
    /// Every partition's cursor, read once per transaction (timers ask for one each).
    pub(crate) cursors: Option<HashMap<i16, i64>>,
    /// Events by `seq`: those `pending_events` read, and those read ahead.
    pub(crate) events: HashMap<i64, StoredEvent>,
    /// Active enrollments of contacts read ahead, in id order.
    pub(crate) active: HashMap<i64, Vec<Enrollment>>,
    /// Every enrollment of a contact (read ahead) in a journey, in id order, with its id.
    pub(crate) prior: HashMap<(String, i64), Vec<(i64, PriorEnrollment)>>,
    pub(crate) subscriptions: HashMap<i64, Vec<Subscription>>,
    /// Why an address is suppressed (`None`: it is not), by channel and normalised address.
    pub(crate) suppressions: HashMap<(String, String), Option<String>>,
    /// The key erased addresses are hashed with; it never changes once made.
    pub(crate) erasure_key: Option<String>,
}

impl Seen {
    /// `e` was inserted (with its new id) or updated in this transaction.
    pub(crate) fn enrollment_written(&mut self, e: &Enrollment) {
        if let Some(active) = self.active.get_mut(&e.contact_id) {
            let at = active.iter().position(|a| a.id == e.id);
            match (at, e.status == EnrollmentStatus::Active) {
                (Some(i), true) => active[i] = e.clone(),
                (Some(i), false) => {
                    active.remove(i);
                }
                (None, true) => {
                    active.push(e.clone());
                    active.sort_unstable_by_key(|a| a.id);
                }
                (None, false) => {}
            }
        }
        if let Some(prior) = self.prior.get_mut(&(e.journey_id.clone(), e.contact_id)) {
            let entry = PriorEnrollment {
                key: e.key.clone(),
                status: e.status,
                entered_at: e.entered_at,
            };
            match prior.iter().position(|(id, _)| *id == e.id) {
                Some(i) => prior[i].1 = entry,
                None => {
                    prior.push((e.id, entry));
                    prior.sort_unstable_by_key(|(id, _)| *id);
                }
            }
        }
    }

    /// Enrollments moved between contacts or were deleted (a merge, an erasure).
    pub(crate) fn enrollments_moved(&mut self) {
        self.active.clear();
        self.prior.clear();
    }

    /// A contact's rows changed wholesale (a merge, an erasure): nothing kept of any contact.
    pub(crate) fn contacts_changed(&mut self) {
        self.contacts.clear();
        self.events.clear();
        self.subscriptions.clear();
        self.suppressions.clear();
        self.enrollments_moved();
    }
}
