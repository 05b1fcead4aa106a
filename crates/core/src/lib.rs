//! Waymark's functional core.
//!
//! Everything here is a pure function of its inputs: no clock, no database, no network. The
//! journey stepper turns (journey version, enrollment, input, now) into (new enrollment, effects);
//! the shell in `waymark-engine` loads the inputs and commits the outputs in one transaction.
//! Architecture invariant: this crate never depends on a runtime, database or network crate.

pub mod broadcast;
pub mod condition;
pub mod contact;
pub mod duration;
pub mod event;
pub mod experiment;
pub mod filter;
pub mod journey;
pub mod kinds;
pub mod limits;
pub mod recommend;
pub mod report;
pub mod schedule;
pub mod stepper;
pub mod suggest;
pub mod timing;
pub mod validate;

pub use condition::Condition;
pub use contact::{Email, Phone, TimeZoneName};
pub use duration::Duration;
pub use event::{EventKind, EventRecord};
pub use filter::{Filter, Predicate};
pub use journey::{
    Channel, Journey, JourneyDocument, NodeKind, OutboxChannel, Reentry, TemplateDefinition,
};
pub use stepper::{
    Effect, Enrollment, EnrollmentStatus, Facts, Input, PriorEnrollment, StepLog, StepOutcome,
    entry_key, may_enter, step,
};
pub use validate::ValidationError;
