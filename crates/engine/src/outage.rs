//! Failures in a row of work that is retried (the engine's rounds, the dispatcher's rounds,
//! group commits), so that a database outage is logged when it begins and when it ends rather
//! than once per attempt, and so that the retries back off.

use std::time::{Duration, Instant};

/// The first pause after a failure.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between two attempts: also the longest the work stays stopped after the
/// database is back, when nothing else wakes it.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

pub(crate) struct Outage {
    /// What fails, for the log: "engine round", "group commit", ...
    what: &'static str,
    failures: u32,
    since: Option<Instant>,
}

impl Outage {
    pub(crate) fn new(what: &'static str) -> Self {
        Outage {
            what,
            failures: 0,
            since: None,
        }
    }

    /// An attempt failed: logged when it is the first of a row, at debug level otherwise.
    pub(crate) fn failed(&mut self, error: &dyn std::fmt::Display) {
        self.failures += 1;
        if self.failures == 1 {
            self.since = Some(Instant::now());
            tracing::error!(
                error = %error,
                "{} failed; retrying until it succeeds (logged again when it does)",
                self.what
            );
        } else {
            tracing::debug!(error = %error, failures = self.failures, "{} failed again", self.what);
        }
    }

    /// An attempt succeeded: logged when it ends a row of failures.
    pub(crate) fn ended(&mut self) {
        if self.failures > 0 {
            let lasted = self.since.map(|s| s.elapsed()).unwrap_or_default();
            tracing::info!(
                failures = self.failures,
                lasted = ?lasted,
                "{} succeeds again",
                self.what
            );
        }
        self.failures = 0;
        self.since = None;
    }

    /// How long to wait before the next attempt: nothing while nothing fails, then doubling
    /// from [`FIRST_PAUSE`] up to [`LONGEST_PAUSE`].
    pub(crate) fn pause(&self) -> Duration {
        pause_after(self.failures)
    }
}

/// The pause before the next attempt after `failures` failures in a row (see
/// [`Outage::pause`]).
pub(crate) fn pause_after(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => FIRST_PAUSE
            .saturating_mul(1 << (n - 1).min(16))
            .min(LONGEST_PAUSE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_its_limit_and_ends_with_the_outage() {
        let mut outage = Outage::new("test");
        assert_eq!(outage.pause(), Duration::ZERO);
        let pauses: Vec<u64> = (0..6)
            .map(|_| {
                outage.failed(&"refused");
                outage.pause().as_secs()
            })
            .collect();
        assert_eq!(pauses, [1, 2, 4, 5, 5, 5]);
        for _ in 0..100 {
            outage.failed(&"refused");
        }
        assert_eq!(outage.pause(), LONGEST_PAUSE);
        outage.ended();
        assert_eq!(outage.pause(), Duration::ZERO);
    }
}
