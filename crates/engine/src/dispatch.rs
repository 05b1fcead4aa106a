//! The outbox dispatcher: delivers queued messages through their channel's transport and
//! records the final state of each. Temporary failures are retried with exponential backoff;
//! after the last attempt, or on a permanent failure, the message is marked failed with its
//! reason. Nothing is dropped silently.
//!
//! A message is marked sent after the transport accepted it. A crash between the two means the
//! message is offered again on restart (at-least-once); SMTP copies carry the same Message-ID.

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
    round: Mutex<()>,
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
            round: Mutex::new(()),
        }
    }

    /// Delivers `webhook` messages with these settings.
    pub fn with_webhooks(mut self, webhooks: Option<Webhooks>) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// Delivers every message due now; returns how many attempts were made.
    pub async fn dispatch_due(&self) -> Result<usize, StoreError> {
        let _round = self.round.lock().await;
        let mut attempts = 0;
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
                outcomes.push(self.deliver(m).await);
            }
            attempts += outcomes.len();
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
        };
        let status = match outcome {
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::Retry { .. } => "retry",
            DeliveryOutcome::Failed { .. } => "failed",
        };
        metrics::counter!("waymark_messages_total", "channel" => m.channel.clone(), "status" => status).increment(1);
        (m.id, outcome)
    }

    /// When the next retry is due, if any.
    pub fn next_attempt_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.store.next_message_attempt_at()
    }
}
