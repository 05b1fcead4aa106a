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
//! A shutdown waits for the deliveries in flight ([`Dispatcher::between_rounds`]).
//!
//! Each channel is a lane that delivers many messages at once (see [`Dispatcher`]). Email and
//! SMS may each have a send-rate limit, and each journey its own (`crate::rates`: at most N in
//! any second, as the provider counts them). A message over the rate stays queued until its
//! place is due, without counting an attempt, so the limiter never sleeps (the simulated clock
//! stays exact).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use waymark_store::{
    DeliveryOutcome, DueQuery, Finished, MessageRow, Priority, QueueLevel, Store, StoreError,
};

use waymark_channels::{Attempt, Transports};
use waymark_core::OutboxChannel;

use crate::clock::Clock;
use crate::rates::{Limits, Places, SendRates, Wait};

/// How long temporary failures are retried by default: 3 days, as mail servers do.
pub const DEFAULT_RETRY_LIFETIME: SignedDuration = SignedDuration::from_hours(72);
/// The wait after the first failed attempt; it doubles after each failure, up to the cap.
const FIRST_BACKOFF_SECS: i64 = 30;
/// The longest wait between two attempts (before jitter).
const MAX_BACKOFF_SECS: i64 = 3600;
/// Each wait is lengthened by up to this fraction (1/5 = 20 %), so that messages that failed
/// together (an outage) do not all come back at the same second.
const JITTER_DIVISOR: i64 = 5;
/// A selection reads this many due messages of a channel per free delivery slot, so that
/// messages to a receiving host that has all its slots do not hide the others behind them,
/// and a burst of one journey can be interleaved with the others.
const LOOKAHEAD: usize = 4;
/// The most due messages a selection reads of one channel.
const MAX_WINDOW: usize = 4096;
/// How long a message waits when its receiving host already has all its delivery slots.
const HOST_BUSY_WAIT: SignedDuration = SignedDuration::from_millis(200);
/// The delivery slots of a channel whose transport only records its messages (the built-in
/// outbox): as many as one selection reads, since nothing waits on a provider.
const RECORD_ONLY_SLOTS: usize = 1000;
/// The most outcomes recorded in one transaction.
const RECORD_BATCH: usize = 1000;

/// How many messages each channel delivers at once (`--email-concurrency`,
/// `--sms-concurrency`, `--webhook-concurrency`, `--webhook-host-concurrency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// Also the size of the SMTP connection pool: one connection per email in flight.
    pub email: usize,
    pub sms: usize,
    pub webhook: usize,
    /// Of the webhooks in flight, at most this many to one receiving host (`host:port`), so
    /// that a receiver that answers slowly leaves room for the others.
    pub webhook_per_host: usize,
}

impl Default for Concurrency {
    /// What suits a real provider: SMTP relays usually accept about 10 connections from one
    /// client; an SMS API or a webhook receiver many requests at once.
    fn default() -> Self {
        Concurrency {
            email: 10,
            sms: 16,
            webhook: 64,
            webhook_per_host: 32,
        }
    }
}

impl Concurrency {
    fn of(&self, channel: OutboxChannel) -> usize {
        match channel {
            OutboxChannel::Email => self.email,
            OutboxChannel::Sms => self.sms,
            OutboxChannel::Webhook => self.webhook,
        }
        .max(1)
    }
}

/// The outbox dispatcher. Each channel is a lane with a fixed number of delivery slots;
/// selections (one at a time) read the due messages of every lane that has a free slot, take
/// their send-rate places, and start one task per message. The tasks hand their outcomes to one
/// recorder, which writes them in batches. A message is "in flight" from its selection until
/// its outcome is written, and no selection takes a message in flight: a message is handed to
/// one delivery at a time.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    transports: Arc<Transports>,
    clock: Clock,
    /// How long temporary failures are retried, from a message's first attempt.
    retry_lifetime: SignedDuration,
    concurrency: Concurrency,
    /// One selection at a time; it also guards the send-rate limits.
    selection: Mutex<Limits>,
    /// The delivery slots of each channel.
    lanes: HashMap<OutboxChannel, Slots>,
    /// Free delivery slots per receiving host of webhooks.
    hosts: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    in_flight: Arc<InFlight>,
    finished: mpsc::UnboundedSender<Done>,
    /// Wakes the dispatch loop: a message was queued, a slot came free.
    wakeup: Arc<Notify>,
    /// Counts selections, so that journeys take turns at the head when there are more than
    /// one selection reads.
    turn: std::sync::atomic::AtomicUsize,
}

/// One channel's queue: how deep, how old, how busy.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Lane {
    /// `email`, `sms` or `webhook`.
    pub channel: String,
    /// Messages queued, including those waiting for a retry or for their send rate.
    pub queued: i64,
    /// When the oldest queued message was created (or requeued).
    pub oldest_queued_at: Option<Timestamp>,
    /// Its age now; 0 when none is queued. The figure to alert on.
    pub oldest_queued_seconds: f64,
    /// Messages being delivered now.
    pub in_flight: usize,
    /// The most delivered at once (`--email-concurrency`, ...).
    pub concurrency: usize,
}

/// The messages selected whose outcome is not written yet.
#[derive(Default)]
struct InFlight {
    /// Each message's channel.
    ids: std::sync::Mutex<HashMap<i64, OutboxChannel>>,
    emptied: Notify,
    /// Held by a selection from before it reads the due messages until it has set aside those
    /// in flight, and by the recorder while it takes written messages out of the set. Without
    /// it a selection could read a message still queued, then see it leave the set once its
    /// outcome is written, and deliver it again.
    reading: Mutex<()>,
}

impl InFlight {
    fn insert(&self, m: &MessageRow) {
        let channel = OutboxChannel::parse(&m.channel).unwrap_or(OutboxChannel::Email);
        self.ids
            .lock()
            .expect("in-flight lock")
            .insert(m.id, channel);
    }

    /// The messages of `channel` in flight.
    fn of_channel(&self, channel: OutboxChannel) -> HashSet<i64> {
        self.ids
            .lock()
            .expect("in-flight lock")
            .iter()
            .filter(|(_, c)| **c == channel)
            .map(|(id, _)| *id)
            .collect()
    }

    fn remove(&self, finished: &[Finished]) {
        let mut ids = self.ids.lock().expect("in-flight lock");
        for f in finished {
            ids.remove(&f.id);
        }
        if ids.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Returns once no message is in flight.
    async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.ids.lock().expect("in-flight lock").is_empty() {
                return;
            }
            emptied.await;
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
    /// Must be called inside a Tokio runtime: it starts the recorder of outcomes.
    pub fn new(store: Arc<dyn Store>, transports: Transports, clock: Clock) -> Self {
        let (finished, outcomes) = mpsc::unbounded_channel();
        let in_flight = Arc::new(InFlight::default());
        let wakeup = Arc::new(Notify::new());
        tokio::spawn(record_outcomes(
            store.clone(),
            in_flight.clone(),
            wakeup.clone(),
            outcomes,
        ));
        let concurrency = Concurrency::default();
        Dispatcher {
            store,
            transports: Arc::new(transports),
            clock,
            retry_lifetime: DEFAULT_RETRY_LIFETIME,
            concurrency,
            selection: Mutex::new(Limits::default()),
            lanes: HashMap::new(),
            hosts: Default::default(),
            in_flight,
            finished,
            wakeup,
            turn: Default::default(),
        }
        .with_concurrency(concurrency)
    }

    /// Retries temporary failures for this long from a message's first attempt.
    pub fn with_retry_lifetime(mut self, lifetime: SignedDuration) -> Self {
        self.retry_lifetime = lifetime;
        self
    }

    /// Delivers this many messages at once per channel. A channel whose transport only
    /// records its messages (the built-in outbox) has [`RECORD_ONLY_SLOTS`]: there is no
    /// provider to spare.
    pub fn with_concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self.lanes = OutboxChannel::ALL
            .iter()
            .map(|channel| {
                let size = if self.transports.only_records(*channel) {
                    RECORD_ONLY_SLOTS
                } else {
                    concurrency.of(*channel)
                };
                let free = Arc::new(Semaphore::new(size));
                (*channel, Slots { size, free })
            })
            .collect();
        self
    }

    /// The send rates of live journeys (messages per second), replacing the previous ones; a
    /// journey whose rate did not change keeps its limit.
    pub async fn set_journey_rates(&self, rates: HashMap<String, f64>) {
        self.selection.lock().await.set_journey_rates(rates);
    }

    /// The send rates of live journeys at start.
    pub fn with_journey_rates(mut self, rates: HashMap<String, f64>) -> Self {
        self.selection.get_mut().set_journey_rates(rates);
        self
    }

    /// Limits the send rate of email and SMS (set before the journeys' rates).
    pub fn with_send_rates(mut self, rates: SendRates) -> Self {
        *self.selection.get_mut() = Limits::new(rates);
        self
    }

    /// Wakes the dispatch loop (messages were queued).
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }

    /// Waits until something may be due: a wake-up, a slot coming free, or `timeout`.
    pub async fn wait(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.wakeup.notified()).await;
    }

    /// Waits for the deliveries in flight to be recorded, and keeps new ones from starting
    /// until the guard is dropped: what is removed from the outbox meanwhile is never sent.
    pub(crate) async fn between_rounds(&self) -> impl Sized + '_ {
        let selection = self.selection.lock().await;
        self.in_flight.wait_empty().await;
        selection
    }

    /// Delivers every message due now and waits until every outcome is recorded; returns how
    /// many attempts were made. (The dispatch loop uses [`Dispatcher::start_due`] instead, which
    /// does not wait.)
    pub async fn dispatch_due(&self) -> Result<usize, StoreError> {
        // The dispatch loop's selections wait until this returns, and its deliveries in flight
        // end first: then every slot is free for this call's selections, so one that starts
        // nothing means that nothing is due. (Sharing the slots with the dispatch loop, a
        // selection could find them all taken and end this with messages still queued.)
        let mut limits = self.selection.lock().await;
        self.in_flight.wait_empty().await;
        let mut attempts = 0;
        loop {
            // Between two selections every delivery ends, so a busy host's messages just wait
            // for the next one (put back, they would wait for the clock, which a simulated
            // clock may never move).
            let started = self.select(&mut limits, HostBusy::Skip).await?;
            self.in_flight.wait_empty().await;
            attempts += started;
            if started == 0 {
                break;
            }
        }
        drop(limits);
        self.queue_levels().await?;
        Ok(attempts)
    }

    /// Starts delivering the due messages of every channel that has a free slot, the highest
    /// priority first and the journeys' messages interleaved; returns how many deliveries were
    /// started. A message over a send rate is put back, due when its place comes free,
    /// without counting an attempt.
    pub async fn start_due(&self) -> Result<usize, StoreError> {
        let mut limits = self.selection.lock().await;
        self.select(&mut limits, HostBusy::PutBack).await
    }

    /// One selection, holding the selection lock (`limits`).
    async fn select(&self, limits: &mut Limits, host_busy: HostBusy) -> Result<usize, StoreError> {
        limits.new_selection();
        let now = self.clock.now();
        let mut started = 0;
        let mut deferred = Vec::new();
        // What each channel with a free slot may start, read in one blocking task.
        let wanted: Vec<(OutboxChannel, usize, usize)> = OutboxChannel::ALL
            .into_iter()
            .filter_map(|channel| {
                let free = self.lanes[&channel].free.available_permits();
                (free > 0).then(|| {
                    let want = (free * LOOKAHEAD).min(MAX_WINDOW);
                    let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    (channel, want, turn)
                })
            })
            .collect();
        if wanted.is_empty() {
            return Ok(0);
        }
        let due_per_channel = {
            let _reading = self.in_flight.reading.lock().await;
            let skips: Vec<HashSet<i64>> = wanted
                .iter()
                .map(|(channel, ..)| self.in_flight.of_channel(*channel))
                .collect();
            let store = self.store.clone();
            let read = tokio::task::spawn_blocking(move || {
                wanted
                    .iter()
                    .zip(&skips)
                    .map(|(&(channel, want, turn), in_flight)| {
                        let due = read_due(store.as_ref(), channel, now, want, in_flight, turn)?;
                        Ok((channel, due))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await
            .map_err(|e| StoreError::Database(e.to_string()))??;
            let in_flight = self.in_flight.ids.lock().expect("in-flight lock");
            read.into_iter()
                .map(|(channel, due)| {
                    let due = due.into_iter().filter(|m| !in_flight.contains_key(&m.id));
                    (channel, interleave_journeys(due))
                })
                .collect::<Vec<_>>()
        };
        for (channel, due) in due_per_channel {
            let lane = &self.lanes[&channel].free;
            for m in due {
                let Ok(slot) = lane.clone().try_acquire_owned() else {
                    break;
                };
                let host_slot = match self.host_lane(&m) {
                    Some(host) => match host.try_acquire_owned() {
                        Ok(slot) => Some(slot),
                        Err(_) if host_busy == HostBusy::Skip => continue,
                        Err(_) => {
                            // The host has all its slots. Putting its message back a moment
                            // moves it behind the other hosts' messages, which a backlog for
                            // this one would otherwise hide from every selection.
                            self.in_flight.insert(&m);
                            deferred.push(Finished {
                                id: m.id,
                                outcome: DeliveryOutcome::Deferred {
                                    at: now.saturating_add(HOST_BUSY_WAIT).unwrap_or(now),
                                },
                                at: now,
                            });
                            continue;
                        }
                    },
                    None => None,
                };
                // The time the message starts, not the selection's: reading the due messages
                // of the lanes before may have taken a while.
                let places = match limits.take(
                    channel,
                    m.journey_id.as_deref(),
                    self.clock.now(),
                    &self.clock,
                ) {
                    Ok(places) => places,
                    Err(wait) => {
                        metrics::counter!("waymark_messages_rate_limited_total", "channel" => m.channel.clone())
                            .increment(1);
                        if let Wait::Until(at) = wait {
                            self.in_flight.insert(&m);
                            deferred.push(Finished {
                                id: m.id,
                                outcome: DeliveryOutcome::Deferred { at },
                                at: now,
                            });
                        }
                        // Else it stays due: a delivery ending wakes the next selection.
                        continue;
                    }
                };
                self.in_flight.insert(&m);
                started += 1;
                self.spawn_delivery(m, places, [Some(slot), host_slot]);
            }
        }
        for finished in deferred {
            let _ = self.finished.send(Done {
                finished,
                slots: [None, None],
            });
        }
        Ok(started)
    }

    /// The delivery slots of the receiving host of a webhook message.
    fn host_lane(&self, m: &MessageRow) -> Option<Arc<Semaphore>> {
        if OutboxChannel::parse(&m.channel) != Some(OutboxChannel::Webhook) {
            return None;
        }
        let host = waymark_channels::webhook::destination(m)?;
        let mut hosts = self.hosts.lock().expect("hosts lock");
        // Forget idle hosts now and then, so that the map does not grow with every host ever
        // called.
        if hosts.len() > 10_000 {
            let per_host = self.concurrency.webhook_per_host.max(1);
            hosts.retain(|_, s| s.available_permits() < per_host);
        }
        Some(
            hosts
                .entry(host)
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(self.concurrency.webhook_per_host.max(1)))
                })
                .clone(),
        )
    }

    fn spawn_delivery(
        &self,
        m: MessageRow,
        places: Places,
        slots: [Option<OwnedSemaphorePermit>; 2],
    ) {
        let transports = self.transports.clone();
        let clock = self.clock.clone();
        let lifetime = self.retry_lifetime;
        let wakeup = self.wakeup.clone();
        let mut report = Report {
            pending: Some(Pending {
                id: m.id,
                attempts: m.attempts,
                first_attempt_at: m.first_attempt_at,
                retry_lifetime: lifetime,
                clock: clock.clone(),
            }),
            finished: self.finished.clone(),
            slots,
        };
        tokio::spawn(async move {
            let outcome = deliver(&transports, &m, &clock, lifetime).await;
            // The send rates count from the end of the delivery.
            drop(places);
            // The slots go with the outcome: they are free again once it is written, so that
            // delivered but unwritten messages (sent again after a crash) never outnumber
            // the lane's slots, however slowly the outcomes are written.
            report.send(outcome, clock.now());
            wakeup.notify_one();
        });
    }

    /// The state of each channel's queue now (every channel, even an empty one), also set as
    /// the gauges `waymark_outbox_queued_messages`, `waymark_outbox_oldest_queued_seconds` and
    /// `waymark_outbox_in_flight_messages`.
    pub async fn queue_levels(&self) -> Result<Vec<Lane>, StoreError> {
        let store = self.store.clone();
        let levels = tokio::task::spawn_blocking(move || store.queue_levels())
            .await
            .map_err(|e| StoreError::Database(e.to_string()))??;
        Ok(self.lanes(&levels))
    }

    /// Each channel's queue from the levels read from the store, also set as the gauges (see
    /// [`Dispatcher::queue_levels`]).
    pub(crate) fn lanes(&self, levels: &[QueueLevel]) -> Vec<Lane> {
        let now = self.clock.now();
        let lanes: Vec<Lane> = OutboxChannel::ALL
            .iter()
            .map(|channel| {
                let level = levels.iter().find(|l| l.channel == channel.as_str());
                let oldest_queued_at = level.and_then(|l| l.oldest_queued_at);
                let slots = &self.lanes[channel];
                Lane {
                    channel: channel.as_str().to_string(),
                    queued: level.map_or(0, |l| l.queued),
                    oldest_queued_at,
                    oldest_queued_seconds: oldest_queued_at
                        .map_or(0.0, |at| now.duration_since(at).as_secs_f64().max(0.0)),
                    in_flight: slots.size - slots.free.available_permits(),
                    concurrency: slots.size,
                }
            })
            .collect();
        for lane in &lanes {
            let channel = lane.channel.clone();
            metrics::gauge!("waymark_outbox_queued_messages", "channel" => channel.clone())
                .set(lane.queued as f64);
            metrics::gauge!("waymark_outbox_oldest_queued_seconds", "channel" => channel.clone())
                .set(lane.oldest_queued_seconds);
            metrics::gauge!("waymark_outbox_in_flight_messages", "channel" => channel)
                .set(lane.in_flight as f64);
        }
        lanes
    }

    /// When the next attempt is due, if any (in the past while due messages wait for a slot).
    pub fn next_attempt_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.store.next_message_attempt_at()
    }
}

/// What a selection does with a webhook whose receiving host has all its slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostBusy {
    /// Puts it back for [`HOST_BUSY_WAIT`] (the dispatch loop, which does not wait for
    /// deliveries between selections).
    PutBack,
    /// Leaves it due for the next selection.
    Skip,
}

/// A channel's delivery slots: `size` in all, `free` of them now.
struct Slots {
    size: usize,
    free: Arc<Semaphore>,
}

/// The most journeys one selection reads from; when more have messages due, the selections
/// take them in turns.
const MAX_JOURNEYS_PER_SELECTION: usize = 64;

/// Reads the due messages of `channel` a selection may start, about `want` of them, none of
/// those `in_flight`: transactional messages first; then the journeys' messages, each journey
/// with messages due getting an equal share, so that a burst of one does not hold up the
/// others; then bulk.
fn read_due(
    store: &dyn Store,
    channel: OutboxChannel,
    now: Timestamp,
    want: usize,
    in_flight: &HashSet<i64>,
    turn: usize,
) -> Result<Vec<MessageRow>, StoreError> {
    let mut due = Vec::new();
    let mut left = want;
    let mut read = |priority: Priority, journey: Option<&str>, n: usize| {
        let rows = store.due_messages(&DueQuery {
            channel: channel.as_str(),
            priority,
            journey,
            now,
            limit: n,
            skip: in_flight,
        })?;
        let read = rows.len();
        due.extend(rows);
        Ok::<_, StoreError>(read)
    };
    left -= read(Priority::Transactional, None, left)?.min(left);
    if left > 0 {
        let mut journeys =
            store.due_journeys(channel.as_str(), now, MAX_JOURNEYS_PER_SELECTION * 4)?;
        if !journeys.is_empty() {
            let first = turn % journeys.len();
            journeys.rotate_left(first);
            journeys.truncate(MAX_JOURNEYS_PER_SELECTION);
            let share = left.div_ceil(journeys.len());
            let mut read_now = 0;
            for journey in &journeys {
                read_now += read(Priority::Journey, Some(journey), share)?;
            }
            left = left.saturating_sub(read_now);
        }
    }
    if left > 0 {
        read(Priority::Bulk, None, left)?;
    }
    Ok(due)
}

/// Due messages (highest priority first, oldest first) reordered so that, within a priority,
/// the journeys take turns: the first message of each journey, then the second of each, and
/// so on. A burst of one journey then does not hold up the others' messages in the window.
fn interleave_journeys(due: impl Iterator<Item = MessageRow>) -> Vec<MessageRow> {
    let mut turns: HashMap<(waymark_store::Priority, Option<String>), usize> = HashMap::new();
    let mut keyed: Vec<((waymark_store::Priority, usize, usize), MessageRow)> = due
        .enumerate()
        .map(|(index, m)| {
            let turn = turns.entry((m.priority, m.journey_id.clone())).or_default();
            *turn += 1;
            ((m.priority, *turn, index), m)
        })
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, m)| m).collect()
}

/// Hands a delivery's outcome to the recorder; if the delivery task ends without one (a
/// panic, a runtime shutting down), a retry is recorded instead, so that the message leaves
/// the in-flight set and is offered again.
struct Report {
    /// The message, until its outcome is sent.
    pending: Option<Pending>,
    finished: mpsc::UnboundedSender<Done>,
    /// The delivery's slots (lane, host), handed to the recorder with the outcome.
    slots: [Option<OwnedSemaphorePermit>; 2],
}

/// An outcome for the recorder, with the delivery slots it frees once written.
struct Done {
    finished: Finished,
    slots: [Option<OwnedSemaphorePermit>; 2],
}

/// What a retry of a message whose delivery stopped needs.
struct Pending {
    id: i64,
    attempts: i64,
    first_attempt_at: Option<Timestamp>,
    retry_lifetime: SignedDuration,
    clock: Clock,
}

impl Report {
    fn send(&mut self, outcome: DeliveryOutcome, at: Timestamp) {
        if let Some(pending) = self.pending.take() {
            let _ = self.finished.send(Done {
                finished: Finished {
                    id: pending.id,
                    outcome,
                    at,
                },
                slots: std::mem::take(&mut self.slots),
            });
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            let now = p.clock.now();
            let outcome = after_temporary_failure(
                p.id,
                p.attempts,
                p.first_attempt_at,
                now,
                p.retry_lifetime,
                "the delivery stopped before it finished".into(),
            );
            let _ = self.finished.send(Done {
                finished: Finished {
                    id: p.id,
                    outcome,
                    at: now,
                },
                slots: std::mem::take(&mut self.slots),
            });
        }
    }
}

/// Writes delivery outcomes in batches (one transaction for all that arrived meanwhile), then
/// takes the messages out of the in-flight set and frees their delivery slots. A failed write is tried again until it
/// succeeds, the messages staying in flight meanwhile: a delivered message is never offered
/// again because its outcome could not be written at once.
async fn record_outcomes(
    store: Arc<dyn Store>,
    in_flight: Arc<InFlight>,
    wakeup: Arc<Notify>,
    mut outcomes: mpsc::UnboundedReceiver<Done>,
) {
    let mut batch: Vec<Done> = Vec::new();
    let mut outage = crate::outage::Outage::new("recording delivery outcomes");
    while outcomes.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let (finished, slots): (Vec<Finished>, Vec<_>) =
            batch.drain(..).map(|d| (d.finished, d.slots)).unzip();
        let finished = Arc::new(finished);
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let store = store.clone();
            let writing = finished.clone();
            match tokio::task::spawn_blocking(move || store.finish_messages(&writing)).await {
                Ok(Ok(())) => {
                    outage.ended();
                    break;
                }
                Ok(Err(e)) => outage.failed(&e),
                Err(e) => outage.failed(&e),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
        }
        // The slots first: once the in-flight set is empty (what `dispatch_due` waits for),
        // every slot is free again.
        drop(slots);
        {
            let _reading = in_flight.reading.lock().await;
            in_flight.remove(&finished);
        }
        wakeup.notify_one();
    }
}

/// One delivery attempt of `m` and what it means for the message.
async fn deliver(
    transports: &Transports,
    m: &MessageRow,
    clock: &Clock,
    retry_lifetime: SignedDuration,
) -> DeliveryOutcome {
    let started = std::time::Instant::now();
    let attempt = transports.deliver(m).await;
    metrics::histogram!("waymark_delivery_attempt_seconds", "channel" => m.channel.clone())
        .record(started.elapsed().as_secs_f64());
    let outcome = match attempt {
        Attempt::Sent => {
            let latency = clock
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
                clock.now(),
                retry_lifetime,
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
        Attempt::Bounced { error, hard_bounce } => DeliveryOutcome::Bounced { error, hard_bounce },
    };
    let status = match outcome {
        DeliveryOutcome::Sent => "sent",
        DeliveryOutcome::Retry { .. } => "retry",
        DeliveryOutcome::Deferred { .. } => "deferred",
        DeliveryOutcome::Failed { .. } => "failed",
        DeliveryOutcome::Bounced { .. } => "bounced",
    };
    metrics::counter!("waymark_messages_total", "channel" => m.channel.clone(), "status" => status)
        .increment(1);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + ms).unwrap()
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
}
