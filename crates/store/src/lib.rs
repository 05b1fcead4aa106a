//! Storage for Waymark: the traits the engine and the API use, and the embedded SQLite
//! implementation.
//!
//! The traits are shaped around units of work rather than tables: `append_events` is one group
//! commit; `engine_tx` runs one batch of engine work (event processing or timer firing) in one
//! transaction, so a step, its effects and its counters commit together or not at all.
//! `claim_*` methods return work in the order it must be done; a multi-process backend
//! (PostgreSQL) implements them with leases (`FOR UPDATE SKIP LOCKED`).
//! The surface is split by concern (`concerns`): each trait owns one kind of data, so a backend
//! can be written and reviewed a concern at a time; `Store` and `EngineTx` gather them.
//! Architecture invariant: no engine logic lives here; this crate only stores and loads.

mod broadcast_sql;
pub mod concerns;
#[cfg(test)]
mod conformance;
mod contact_sql;
mod drill_sql;
pub mod migrate;
mod millis;
mod model;
pub mod personal_data;
pub mod postgres;
pub mod sqlite;

pub use concerns::*;
pub use drill_sql::PEOPLE_STATUSES;
pub use model::*;

/// The idempotency key of a broadcast's message to a contact: one per recipient.
pub fn broadcast_message_key(broadcast_id: &str, contact_id: i64) -> String {
    format!("broadcast:{broadcast_id}:{contact_id}")
}

/// Everything needed to call the store's methods: `Store`, `EngineTx` and every concern trait.
/// A method of a concern trait can be called on `dyn Store` or `dyn EngineTx` without this, but
/// on a concrete backend (`SqliteStore` in tests and tools) its trait must be in scope.
pub mod prelude {
    pub use crate::concerns::*;
    pub use crate::{EngineTx, Store};
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(String),
    /// The database cannot be reached: a connection could not be made, or it was lost or
    /// timed out during the call. Nothing is wrong with the request, and retrying it once the
    /// database is back is safe (a write whose commit was cut off may or may not have been
    /// made; writes are de-duplicated or idempotent where a client may retry them). Only a
    /// database server (PostgreSQL) gives it: an embedded SQLite file is never unreachable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
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

/// The operations of one engine transaction: every `Tx` concern trait (see [`concerns`]).
pub trait EngineTx:
    ContactsTx
    + EventsTx
    + TemplatesTx
    + EnrollmentsTx
    + TimersTx
    + OutboxTx
    + AudiencesTx
    + BroadcastsTx
    + ExperimentsTx
    + ConsentTx
    + ReportingTx
    + PrivacyTx
    + MetaTx
{
    /// See [`ReadAhead`]. A backend that gains nothing by it does nothing.
    fn read_ahead(&mut self, _plan: &ReadAhead<'_>) -> Result<()> {
        Ok(())
    }
}

/// What an engine transaction is about to step, told before it steps it one contact at a time, so
/// that a backend whose every read is a round trip (PostgreSQL) can load for the whole batch, in a
/// few statements, what the steps will then ask for one by one. Only a hint: every read answers
/// the same with or without it.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadAhead<'a> {
    /// The contacts about to be stepped: their rows, active enrollments, subscriptions and the
    /// suppression entries of their addresses.
    pub contacts: &'a [i64],
    /// Journeys these contacts may enter: their earlier enrollments in them (entry rules).
    pub journeys: &'a [&'a str],
    /// Events the steps will read (e.g. the events that started the enrollments of due timers).
    pub events: &'a [i64],
}

/// The whole storage surface: every concern trait (see [`concerns`]), and `engine_tx`, the
/// transaction that spans the `Tx` ones. Methods are blocking; the server calls them off its
/// async threads.
pub trait Store:
    Contacts
    + Events
    + Journeys
    + Templates
    + Timers
    + Outbox
    + Audiences
    + Broadcasts
    + Experiments
    + Consent
    + Reporting
    + Privacy
    + Meta
    + Cluster
    + Send
    + Sync
    + 'static
{
    fn engine_tx(&self, work: &mut dyn FnMut(&mut dyn EngineTx) -> Result<()>) -> Result<()>;
}
