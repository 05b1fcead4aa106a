//! The one clock every component reads. A simulated clock only moves when told to, which makes
//! a journey that waits for weeks testable in milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;

#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Simulated(Arc<AtomicI64>),
}

impl Clock {
    pub fn simulated(start: Timestamp) -> Self {
        Clock::Simulated(Arc::new(AtomicI64::new(start.as_millisecond())))
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Simulated(ms) => Timestamp::from_millisecond(ms.load(Ordering::SeqCst))
                .unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }

    /// Sets a simulated clock to `to`, even backwards: only for restoring it at start.
    pub(crate) fn restore(&self, to: Timestamp) {
        if let Clock::Simulated(ms) = self {
            ms.store(to.as_millisecond(), Ordering::SeqCst);
        }
    }

    pub fn is_simulated(&self) -> bool {
        matches!(self, Clock::Simulated(_))
    }

    /// Moves a simulated clock forward to `to` (never backwards). No effect on the system clock.
    pub fn advance_to(&self, to: Timestamp) {
        if let Clock::Simulated(ms) = self {
            ms.fetch_max(to.as_millisecond(), Ordering::SeqCst);
        }
    }
}
