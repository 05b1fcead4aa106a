//! The outbox dispatcher: delivers queued messages through their channel's transport and
//! records the final state of each. Temporary failures are retried with exponential backoff;
//! after the last attempt, or on a permanent failure, the message is marked failed with its
//! reason. Nothing is dropped silently. A permanent (5xx) SMTP answer marks the message
//! bounced; when it says the mailbox does not exist, the address is also suppressed
//! (`hard_bounce`).
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

use crate::clock::Clock;
use crate::transport::{Attempt, Transports};
use crate::webhook::{self, Webhooks};

pub const MAX_ATTEMPTS: i64 = 6;
const BATCH: usize = 64;

pub struct Dispatcher {
    store: Arc<dyn Store>,
    transports: Transports,
    /// Delivers `webhook` messages; without it they fail.
    webhooks: Option<Webhooks>,
    clock: Clock,
    /// One dispatch round at a time, so that a message is never handed to two deliveries.
    /// It also guards the send-rate buckets.
    round: Mutex<Buckets>,
}

/// Send-rate buckets per channel (`email`, `sms`) and per journey (its `send_rate`).
#[derive(Default)]
struct Buckets {
    channels: HashMap<&'static str, TokenBucket>,
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

/// 30 s, 1 min, 2 min, 4 min, 8 min between attempts.
pub fn backoff(attempts_so_far: i64) -> SignedDuration {
    SignedDuration::from_secs(30 * (1i64 << attempts_so_far.clamp(0, 10)))
}

impl Dispatcher {
    pub fn new(store: Arc<dyn Store>, transports: Transports, clock: Clock) -> Self {
        Dispatcher {
            store,
            transports,
            webhooks: None,
            clock,
            round: Mutex::new(Buckets::default()),
        }
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
        for (channel, rate) in [("email", rates.email), ("sms", rates.sms)] {
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

    /// Delivers `webhook` messages with these settings.
    pub fn with_webhooks(mut self, webhooks: Option<Webhooks>) -> Self {
        self.webhooks = webhooks;
        self
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
                if let Some(bucket) = buckets.channels.get_mut(m.channel.as_str()) {
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
        let attempt = match (m.channel.as_str(), &self.webhooks) {
            (webhook::CHANNEL, Some(w)) => w.deliver(m).await,
            (webhook::CHANNEL, None) => {
                Attempt::Permanent("webhooks are not configured on this server".into())
            }
            _ => self.transports.deliver(m).await,
        };
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
            Attempt::Temporary(error) if m.attempts + 1 < MAX_ATTEMPTS => {
                tracing::warn!(message = m.id, attempt = m.attempts + 1, %error, "delivery failed, will retry");
                DeliveryOutcome::Retry {
                    error,
                    at: self.clock.now() + backoff(m.attempts),
                }
            }
            Attempt::Temporary(error) => DeliveryOutcome::Failed {
                error: format!("gave up after {MAX_ATTEMPTS} attempts: {error}"),
            },
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
    fn fractional_rates_have_a_burst_of_one() {
        let mut b = TokenBucket::new(0.5);
        assert_eq!(b.take(t(0), 0), Ok(()));
        assert_eq!(b.take(t(0), 0), Err(t(2001)));
    }
}
