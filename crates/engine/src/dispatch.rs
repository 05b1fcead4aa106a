//! The outbox dispatcher: delivers queued messages through their channel's transport and
//! records the final state of each. Nothing is dropped silently.
//!
//! A temporary failure (connection refused, a timeout, an SMTP 4xx answer, an HTTP 408, 429 or
//! 5xx from an SMS or webhook provider) is retried, as mail servers do, for the retry lifetime
//! (`--retry-lifetime`, 3 days by default) counted from the message's first attempt, with a
//! capped exponential backoff and jitter (see [`backoff`]); the last attempt falls exactly at the
//! end of the lifetime, and if it fails too the message is marked failed with an error saying
//! how long and how many attempts. A permanent failure marks the message failed at once. A
//! permanent (5xx) SMTP answer marks the message bounced; when it says the mailbox does not
//! exist, the address is also suppressed (`hard_bounce`). Failed messages can be put back in
//! the queue (`Store::requeue_messages`), which starts their attempts and lifetime over.
//!
//! A message is marked sent after the transport accepted it. A crash between the two means the
//! message is offered again on restart (at-least-once); SMTP copies carry the same Message-ID.
//!
//! Email and SMS may each have a send-rate limit (a token bucket over the engine's clock, with a
//! burst of one second's worth). A message over the rate stays queued until a token is due,
//! without counting an attempt, so the limiter never sleeps (the simulated clock stays exact).

use std::collections::HashMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Mutex;
use waymark_store::{DeliveryOutcome, MessageRow, Store, StoreError};

use waymark_channels::{Attempt, Transports};
use waymark_core::OutboxChannel;

use crate::clock::Clock;

/// How long temporary failures are retried by default: 3 days, as mail servers do.
pub const DEFAULT_RETRY_LIFETIME: SignedDuration = SignedDuration::from_hours(72);
/// The wait after the first failed attempt; it doubles after each failure, up to the cap.
const FIRST_BACKOFF_SECS: i64 = 30;
/// The longest wait between two attempts (before jitter).
const MAX_BACKOFF_SECS: i64 = 3600;
/// Each wait is lengthened by up to this fraction (1/5 = 20 %), so that messages that failed
/// together (an outage) do not all come back at the same second.
const JITTER_DIVISOR: i64 = 5;
const BATCH: usize = 64;

pub struct Dispatcher {
    store: Arc<dyn Store>,
    transports: Transports,
    clock: Clock,
    /// How long temporary failures are retried, from a message's first attempt.
    retry_lifetime: SignedDuration,
    /// One dispatch round at a time, so that a message is never handed to two deliveries.
    /// It also guards the send-rate buckets.
    round: Mutex<Buckets>,
}

/// Send-rate buckets per channel (`email`, `sms`) and per journey (its `send_rate`).
#[derive(Default)]
struct Buckets {
    channels: HashMap<OutboxChannel, TokenBucket>,
    journeys: HashMap<String, TokenBucket>,
}

/// Maximum send rates per transport, in messages per second; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SendRates {
    pub email: Option<f64>,
    pub sms: Option<f64>,
}

/// A token bucket over the engine's clock: `rate` tokens a second, at most `burst` saved.
#[derive(Debug, Clone)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Option<Timestamp>,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        let burst = rate.max(1.0);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at: None,
        }
    }

    /// Takes a token at `now`, or says when to try again: when the token for the
    /// (`waiting` + 1)-th message still waiting in this round will be there.
    fn take(&mut self, now: Timestamp, waiting: u32) -> Result<(), Timestamp> {
        if let Some(at) = self.at {
            let elapsed = now.duration_since(at).as_secs_f64().max(0.0);
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = (f64::from(waiting) + 1.0 - self.tokens) / self.rate;
        // Whole milliseconds (what the store keeps), rounded up, and always in the future.
        let ms = now.as_millisecond() + (wait * 1000.0).ceil() as i64 + 1;
        Err(Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX))
    }
}

impl Buckets {
    fn set_journey_rates(&mut self, rates: HashMap<String, f64>) {
        self.journeys.retain(|id, b| rates.get(id) == Some(&b.rate));
        for (id, rate) in rates {
            if rate.is_finite() && rate > 0.0 {
                self.journeys
                    .entry(id)
                    .or_insert_with(|| TokenBucket::new(rate));
            }
        }
    }
}

/// The wait before the next attempt of message `message_id` after `attempts_so_far` earlier
/// failed attempts (0 for the first failure): 30 s doubling after each failure (30 s, 1, 2, 4,
/// 8, 16, 32 min) and capped at 1 hour, plus a jitter of 0 to 20 % of that. The jitter is a
/// hash of the message id and the attempt number, so it differs between messages and between
/// attempts but a simulated clock replays it exactly. Never shorter than the nominal wait.
pub fn backoff(message_id: i64, attempts_so_far: i64) -> SignedDuration {
    let nominal_ms =
        (FIRST_BACKOFF_SECS << attempts_so_far.clamp(0, 20)).min(MAX_BACKOFF_SECS) * 1000;
    let spread = nominal_ms / JITTER_DIVISOR;
    let jitter = (mix(message_id as u64 ^ (attempts_so_far as u64).rotate_left(32))
        % (spread as u64 + 1)) as i64;
    SignedDuration::from_millis(nominal_ms + jitter)
}

/// A 64-bit mixing function (splitmix64's finaliser): nearby inputs give unrelated outputs.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What to do after a temporary failure of a message that has failed `attempts_so_far` times
/// before, at `now`, in a run of attempts that began at `first_attempt_at` (`None`: this was
/// the first): retry at a time no later than the end of the lifetime, or give up once it is over.
pub fn after_temporary_failure(
    message_id: i64,
    attempts_so_far: i64,
    first_attempt_at: Option<Timestamp>,
    now: Timestamp,
    lifetime: SignedDuration,
    error: String,
) -> DeliveryOutcome {
    let started = first_attempt_at.unwrap_or(now).min(now);
    let deadline = started.saturating_add(lifetime).unwrap_or(Timestamp::MAX);
    if now >= deadline {
        let attempts = attempts_so_far + 1;
        let elapsed = waymark_core::Duration::from_seconds(now.duration_since(started).as_secs());
        let lifetime = waymark_core::Duration::from_seconds(lifetime.as_secs());
        return DeliveryOutcome::Failed {
            error: format!(
                "gave up after {attempts} attempts over {elapsed} (the retry lifetime is \
                 {lifetime}): {error}"
            ),
        };
    }
    let next = now
        .saturating_add(backoff(message_id, attempts_so_far))
        .unwrap_or(Timestamp::MAX);
    DeliveryOutcome::Retry {
        error,
        at: next.min(deadline),
    }
}

impl Dispatcher {
    pub fn new(store: Arc<dyn Store>, transports: Transports, clock: Clock) -> Self {
        Dispatcher {
            store,
            transports,
            clock,
            retry_lifetime: DEFAULT_RETRY_LIFETIME,
            round: Mutex::new(Buckets::default()),
        }
    }

    /// Retries temporary failures for this long from a message's first attempt.
    pub fn with_retry_lifetime(mut self, lifetime: SignedDuration) -> Self {
        self.retry_lifetime = lifetime;
        self
    }

    /// The send rates of live journeys (messages per second), replacing the previous ones; a
    /// journey whose rate did not change keeps its bucket.
    pub async fn set_journey_rates(&self, rates: HashMap<String, f64>) {
        self.round.lock().await.set_journey_rates(rates);
    }

    /// The send rates of live journeys at start.
    pub fn with_journey_rates(mut self, rates: HashMap<String, f64>) -> Self {
        self.round.get_mut().set_journey_rates(rates);
        self
    }

    /// Limits the send rate of email and SMS.
    pub fn with_send_rates(self, rates: SendRates) -> Self {
        let mut buckets = HashMap::new();
        for (channel, rate) in [
            (OutboxChannel::Email, rates.email),
            (OutboxChannel::Sms, rates.sms),
        ] {
            if let Some(rate) = rate.filter(|r| r.is_finite() && *r > 0.0) {
                buckets.insert(channel, TokenBucket::new(rate));
            }
        }
        Dispatcher {
            round: Mutex::new(Buckets {
                channels: buckets,
                journeys: HashMap::new(),
            }),
            ..self
        }
    }

    /// Waits for the delivery round in progress, if any, and keeps the next from starting
    /// until the guard is dropped: what is removed from the outbox meanwhile is never sent.
    pub(crate) async fn between_rounds(&self) -> impl Sized + '_ {
        self.round.lock().await
    }

    /// Delivers every message due now; returns how many attempts were made.
    pub async fn dispatch_due(&self) -> Result<usize, StoreError> {
        let mut buckets = self.round.lock().await;
        let buckets = &mut *buckets;
        let mut attempts = 0;
        // Messages left waiting for a token in this round, per channel and per journey.
        let mut waiting: HashMap<String, u32> = HashMap::new();
        let mut journey_waiting: HashMap<String, u32> = HashMap::new();
        loop {
            let now = self.clock.now();
            let store = self.store.clone();
            let due = tokio::task::spawn_blocking(move || store.due_messages(now, BATCH))
                .await
                .map_err(|e| StoreError::Database(e.to_string()))??;
            if due.is_empty() {
                self.record_queue_levels().await?;
                return Ok(attempts);
            }
            let mut outcomes = Vec::with_capacity(due.len());
            for m in &due {
                // The journey's own rate first: a message it holds back takes no channel token.
                if let Some(journey) = &m.journey_id
                    && let Some(bucket) = buckets.journeys.get_mut(journey)
                {
                    let waiting = journey_waiting.entry(journey.clone()).or_default();
                    if let Err(at) = bucket.take(now, *waiting) {
                        *waiting += 1;
                        metrics::counter!("waymark_messages_rate_limited_total", "channel" => m.channel.clone())
                            .increment(1);
                        outcomes.push((m.id, DeliveryOutcome::Deferred { at }));
                        continue;
                    }
                }
                if let Some(bucket) = OutboxChannel::parse(&m.channel)
                    .and_then(|channel| buckets.channels.get_mut(&channel))
                {
                    let waiting = waiting.entry(m.channel.clone()).or_default();
                    if let Err(at) = bucket.take(now, *waiting) {
                        *waiting += 1;
                        metrics::counter!("waymark_messages_rate_limited_total", "channel" => m.channel.clone())
                            .increment(1);
                        outcomes.push((m.id, DeliveryOutcome::Deferred { at }));
                        continue;
                    }
                }
                attempts += 1;
                outcomes.push(self.deliver(m).await);
            }
            let store = self.store.clone();
            let now = self.clock.now();
            tokio::task::spawn_blocking(move || store.finish_messages(&outcomes, now))
                .await
                .map_err(|e| StoreError::Database(e.to_string()))??;
        }
    }

    async fn deliver(&self, m: &MessageRow) -> (i64, DeliveryOutcome) {
        let started = std::time::Instant::now();
        let attempt = self.transports.deliver(m).await;
        metrics::histogram!("waymark_delivery_attempt_seconds", "channel" => m.channel.clone())
            .record(started.elapsed().as_secs_f64());
        let outcome = match attempt {
            Attempt::Sent => {
                let latency = self
                    .clock
                    .now()
                    .duration_since(m.created_at)
                    .as_secs_f64()
                    .max(0.0);
                metrics::histogram!("waymark_step_to_send_seconds", "channel" => m.channel.clone())
                    .record(latency);
                DeliveryOutcome::Sent
            }
            Attempt::Temporary(error) => {
                let outcome = after_temporary_failure(
                    m.id,
                    m.attempts,
                    m.first_attempt_at,
                    self.clock.now(),
                    self.retry_lifetime,
                    error,
                );
                match &outcome {
                    DeliveryOutcome::Retry { error, at } => {
                        tracing::warn!(message = m.id, attempt = m.attempts + 1, %error, retry_at = %at, "delivery failed, will retry")
                    }
                    DeliveryOutcome::Failed { error } => {
                        tracing::error!(message = m.id, %error, "delivery failed for the whole retry lifetime")
                    }
                    _ => {}
                }
                outcome
            }
            Attempt::Permanent(error) => DeliveryOutcome::Failed { error },
            Attempt::Bounced { error, hard_bounce } => {
                DeliveryOutcome::Bounced { error, hard_bounce }
            }
        };
        let status = match outcome {
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::Retry { .. } => "retry",
            DeliveryOutcome::Deferred { .. } => "deferred",
            DeliveryOutcome::Failed { .. } => "failed",
            DeliveryOutcome::Bounced { .. } => "bounced",
        };
        metrics::counter!("waymark_messages_total", "channel" => m.channel.clone(), "status" => status).increment(1);
        (m.id, outcome)
    }

    /// Sets the queue gauges: queued messages and the age of the oldest one, per channel.
    pub async fn record_queue_levels(&self) -> Result<(), StoreError> {
        let store = self.store.clone();
        let levels = tokio::task::spawn_blocking(move || store.queue_levels())
            .await
            .map_err(|e| StoreError::Database(e.to_string()))??;
        let now = self.clock.now();
        // Every channel is reported, 0 when none is queued.
        let channels = OutboxChannel::ALL
            .iter()
            .map(|c| c.as_str().to_string())
            .chain(levels.iter().map(|l| l.channel.clone()))
            .collect::<std::collections::BTreeSet<_>>();
        for channel in channels {
            let level = levels.iter().find(|l| l.channel == channel);
            let queued = level.map_or(0, |l| l.queued);
            let age = level
                .and_then(|l| l.oldest_queued_at)
                .map_or(0.0, |at| now.duration_since(at).as_secs_f64().max(0.0));
            metrics::gauge!("waymark_outbox_queued_messages", "channel" => channel.clone())
                .set(queued as f64);
            metrics::gauge!("waymark_outbox_oldest_queued_seconds", "channel" => channel).set(age);
        }
        Ok(())
    }

    /// When the next retry is due, if any.
    pub fn next_attempt_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.store.next_message_attempt_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn token_bucket_bursts_one_second_then_spaces_sends() {
        let mut b = TokenBucket::new(2.0);
        assert_eq!(b.take(t(0), 0), Ok(()));
        assert_eq!(b.take(t(0), 0), Ok(()));
        // The next three wait for the 1st, 2nd and 3rd token to come (every 500 ms).
        assert_eq!(b.take(t(0), 0), Err(t(501)));
        assert_eq!(b.take(t(0), 1), Err(t(1001)));
        assert_eq!(b.take(t(0), 2), Err(t(1501)));
        // At the time given, the token is there.
        assert_eq!(b.take(t(501), 0), Ok(()));
        assert!(b.take(t(501), 0).is_err());
        assert_eq!(b.take(t(1001), 0), Ok(()));
        // Idle time refills up to the burst only.
        assert_eq!(b.take(t(60_000), 0), Ok(()));
        assert_eq!(b.take(t(60_000), 0), Ok(()));
        assert!(b.take(t(60_000), 0).is_err());
    }

    #[test]
    fn token_bucket_retry_time_is_in_the_future_and_enough() {
        // A rate whose period is not a whole number of milliseconds.
        let mut b = TokenBucket::new(3.0);
        let mut now = t(0);
        let mut sent = 0;
        while sent < 20 {
            match b.take(now, 0) {
                Ok(()) => sent += 1,
                Err(at) => {
                    assert!(at > now);
                    now = at;
                    assert_eq!(b.take(now, 0), Ok(()), "a token at {at}");
                    sent += 1;
                }
            }
        }
        // 3 at once, then 17 more at 3 a second.
        let secs = now.duration_since(t(0)).as_secs_f64();
        assert!((17.0 / 3.0..17.0 / 3.0 + 0.1).contains(&secs), "{secs}");
    }

    #[test]
    fn backoff_doubles_from_30_seconds_to_an_hour_with_up_to_20_percent_jitter() {
        let nominal = [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600];
        for id in [1, 2, 3, 1000, 987_654_321] {
            for (attempts, secs) in nominal.iter().enumerate() {
                let wait = backoff(id, attempts as i64).as_millis() as i64;
                assert!(
                    (secs * 1000..=secs * 1200).contains(&wait),
                    "message {id}, attempt {attempts}: {wait} ms"
                );
                assert_eq!(
                    backoff(id, attempts as i64).as_millis() as i64,
                    wait,
                    "deterministic"
                );
            }
        }
        assert!(backoff(7, i64::MAX).as_secs() <= 4320);
        // Messages that failed together spread out.
        let waits: std::collections::BTreeSet<i64> =
            (0..100).map(|id| backoff(id, 8).as_secs()).collect();
        assert!(waits.len() > 50, "{waits:?}");
    }

    #[test]
    fn temporary_failures_are_retried_until_the_lifetime_ends_then_fail_with_how_long() {
        let lifetime = SignedDuration::from_hours(72);
        let start = t(0);
        let (mut now, mut first, mut attempts) = (start, None, 0);
        let mut last_retry = start;
        loop {
            match after_temporary_failure(
                42,
                attempts,
                first,
                now,
                lifetime,
                "SMTP: refused".into(),
            ) {
                DeliveryOutcome::Retry { at, error } => {
                    assert_eq!(error, "SMTP: refused");
                    assert!(at > now && at <= start + lifetime, "{at}");
                    last_retry = at;
                    first = first.or(Some(now));
                    now = at;
                    attempts += 1;
                }
                DeliveryOutcome::Failed { error } => {
                    assert_eq!(now, start + lifetime, "the last attempt is at the end");
                    assert_eq!(
                        error,
                        format!(
                            "gave up after {} attempts over 3d (the retry lifetime is 3d): SMTP: refused",
                            attempts + 1
                        )
                    );
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(last_retry, start + lifetime);
        // 7 doublings to the hour, then about one attempt an hour (60 to 72 minutes apart).
        assert!((60..=80).contains(&attempts), "{attempts} attempts");
        // A requeued message (no first attempt yet) gets the whole lifetime again.
        assert!(matches!(
            after_temporary_failure(42, 0, None, t(0), lifetime, String::new()),
            DeliveryOutcome::Retry { .. }
        ));
    }

    #[test]
    fn fractional_rates_have_a_burst_of_one() {
        let mut b = TokenBucket::new(0.5);
        assert_eq!(b.take(t(0), 0), Ok(()));
        assert_eq!(b.take(t(0), 0), Err(t(2001)));
    }
}
