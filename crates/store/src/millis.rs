//! Times as both backends store them: milliseconds since the Unix epoch (UTC).

use jiff::Timestamp;

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// A stored time; one out of range (a corrupt row) reads as the epoch rather than failing.
pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}
