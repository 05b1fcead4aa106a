//! The storage surface, one trait per concern. Each concern has up to two traits: the plain one
//! (`&self`) is what the API and the dispatcher call, each call its own unit of work; the `Tx` one
//! (`&mut self`) is what the engine calls inside one `engine_tx` transaction. A backend
//! implements every trait; `Store` and `EngineTx` (in the crate root) gather them.

mod audiences;
mod broadcasts;
mod cluster;
mod consent;
mod contacts;
mod enrollments;
mod events;
mod experiments;
mod journeys;
mod meta;
mod outbox;
mod privacy;
mod reporting;
mod templates;
mod timers;

pub use audiences::*;
pub use broadcasts::*;
pub use cluster::*;
pub use consent::*;
pub use contacts::*;
pub use enrollments::*;
pub use events::*;
pub use experiments::*;
pub use journeys::*;
pub use meta::*;
pub use outbox::*;
pub use privacy::*;
pub use reporting::*;
pub use templates::*;
pub use timers::*;
