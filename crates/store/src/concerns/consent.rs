//! Consent: per-channel, per-topic subscriptions of a contact and the suppression list of
//! addresses nothing may be sent to.

use crate::{Result, Subscription, Suppression, SuppressionQuery};

/// The suppression list as the API manages it.
pub trait Consent {
    fn suppressions(&self, query: &SuppressionQuery) -> Result<Vec<Suppression>>;

    /// Puts an address on the list, or updates the reason of an existing entry (keeping its
    /// first `created_at`). True when the entry is new.
    fn suppress(&self, entry: &Suppression) -> Result<bool>;

    /// Takes an address off the list; false when it was not on it.
    fn unsuppress(&self, channel: &str, address: &str) -> Result<bool>;
}

/// Subscriptions and suppressions the engine checks and changes while it sends and handles
/// inbound events.
pub trait ConsentTx {
    /// A contact's subscriptions, by channel and topic.
    fn subscriptions(&mut self, contact_id: i64) -> Result<Vec<Subscription>>;

    /// Sets one subscription; returns the status it had before (`None`: no record).
    fn set_subscription(&mut self, subscription: &Subscription) -> Result<Option<String>>;

    /// Why `address` is suppressed on `channel`, if it is.
    fn suppression(&mut self, channel: &str, address: &str) -> Result<Option<String>>;

    /// Puts an address on the suppression list (or updates its reason and source); `true` if
    /// it was not on it.
    fn suppress(&mut self, entry: &Suppression) -> Result<bool>;

    /// Takes an address off the suppression list, with the hashed entry an erasure left for
    /// it; `true` if it was on it.
    fn unsuppress(&mut self, channel: &str, address: &str) -> Result<bool>;
}
