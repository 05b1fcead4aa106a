//! Waymark's engine runtime: it accepts events (group commit), processes them in order, fires
//! durable timers, and dispatches the outbox. All of it reads one `Clock`.
//!
//! Architecture invariant: no HTTP here. The server crate owns the API and calls `Engine`.

pub mod broadcasts;
pub mod caps;
pub mod clock;
pub mod consent;
mod conversions;
pub mod dispatch;
pub mod enrollment_events;
pub mod inbound;
pub mod intake;
pub mod machine_activity;
mod outage;
pub mod problems;
pub mod processor;
pub mod rates;
pub mod recommendations;
pub mod recorded;
mod registry;
pub mod segments;
pub mod send;
pub mod triggers;

// The delivery channels live in `waymark-channels`; the server reaches them through here.
pub use waymark_channels::{Attempt, tracking, transport, webhook};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration as StdDuration;

use jiff::Timestamp;
use waymark_store::{EngineTx, Store, StoreError};

pub use clock::Clock;
pub use dispatch::{Concurrency, DEFAULT_RETRY_LIFETIME, Dispatcher};
pub use intake::{Intake, IntakeError};
pub use processor::{BatchReport, Processor};
pub use rates::SendRates;
pub use waymark_channels::{
    DkimSettings, EmailTransport, JsonSms, SmsTransport, Tracking, Transports, TwilioSms,
    WebhookConfig, WebhookTransport, Webhooks,
};

/// Events or timers processed per transaction.
const BATCH: usize = 500;
/// The longest the engine sleeps before looking for work again.
const IDLE_POLL: StdDuration = StdDuration::from_secs(1);
const SIMULATED_CLOCK_KEY: &str = "simulated_clock_ms";
/// Changed whenever a journey is published, paused, resumed or archived, so that every process
/// sharing the database reloads its journeys (see `Engine::follow_journey_changes`).
const JOURNEYS_REVISION_KEY: &str = "journeys_revision";
/// How often the engine looks for journey changes made by another process.
const JOURNEY_CHANGES_POLL: StdDuration = StdDuration::from_millis(500);

/// Wakes the engine thread when there is new work (coalesced).
#[derive(Clone, Default)]
pub struct Wakeup(Arc<(Mutex<bool>, Condvar)>);

impl Wakeup {
    pub fn wake(&self) {
        let (flag, cv) = &*self.0;
        *flag.lock().expect("wakeup lock") = true;
        cv.notify_all();
    }

    fn wait(&self, timeout: StdDuration) {
        let (flag, cv) = &*self.0;
        let guard = flag.lock().expect("wakeup lock");
        let (mut guard, _) = cv
            .wait_timeout_while(guard, timeout, |woken| !*woken)
            .expect("wakeup lock");
        *guard = false;
    }
}

pub struct EngineConfig {
    pub clock: Clock,
    /// Email, SMS and the `webhook` journey action (`None` there fails webhook messages).
    pub transports: Transports,
    /// Open and click tracking of email (`--public-url`); `None` leaves email untouched.
    pub tracking: Option<Tracking>,
    /// Send-rate limits of email and SMS (`--email-rate`, `--sms-rate`).
    pub send_rates: SendRates,
    /// Frequency caps across journeys (`--frequency-cap`).
    pub frequency_caps: Vec<caps::FrequencyCap>,
    /// Quiet hours and blocked dates of every journey (`--quiet-hours`, `--blocked-dates`).
    pub send_window: waymark_core::timing::SendWindow,
    /// How long temporary delivery failures are retried (`--retry-lifetime`).
    pub retry_lifetime: jiff::SignedDuration,
    /// How many messages each channel delivers at once (`--webhook-concurrency`, ...).
    pub concurrency: Concurrency,
}

pub struct Engine {
    store: Arc<dyn Store>,
    clock: Clock,
    processor: Processor,
    dispatcher: Dispatcher,
    intake: Intake,
    tracking: Option<Tracking>,
    wakeup: Wakeup,
    /// Serialises engine work between the background loop and a simulated-clock advance.
    work: Mutex<()>,
    advancing: tokio::sync::Mutex<()>,
    stopping: AtomicBool,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The journeys revision the compiled journeys match, and when it was last read.
    journeys_seen: Mutex<(Option<String>, std::time::Instant)>,
    /// The journeys were reloaded after another process changed them: the dispatcher takes
    /// their send rates at its next round.
    journey_rates_stale: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the clock is not simulated; start the server with --clock simulated")]
    NotSimulated,
    #[error("the engine task failed: {0}")]
    Task(String),
}

impl Engine {
    /// Starts the intake writer, the engine loop and the dispatcher. Must be called inside a
    /// Tokio runtime. A simulated clock resumes where it stood before a restart.
    pub fn start(store: Arc<dyn Store>, config: EngineConfig) -> Result<Arc<Self>, EngineError> {
        if let Clock::Simulated(_) = config.clock {
            // A simulated clock resumes exactly where it stood, ahead of or behind the wall
            // clock; on the very first start it begins at the given time and is saved at once.
            match store
                .meta(SIMULATED_CLOCK_KEY)?
                .and_then(|v| v.parse::<i64>().ok())
            {
                Some(ms) => {
                    if let Ok(saved) = Timestamp::from_millisecond(ms) {
                        config.clock.restore(saved);
                    }
                }
                None => store.set_meta(
                    SIMULATED_CLOCK_KEY,
                    &config.clock.now().as_millisecond().to_string(),
                )?,
            }
        }
        let wakeup = Wakeup::default();
        // Read before the journeys are: a change after it is followed.
        let journeys_revision = store.meta(JOURNEYS_REVISION_KEY)?;
        let processor = Processor::new(store.clone())?
            .with_tracking(config.tracking.clone())
            .with_frequency_caps(config.frequency_caps)
            .with_send_window(config.send_window)?;
        let journey_rates = processor.journey_send_rates();
        let engine = Arc::new(Engine {
            processor,
            dispatcher: Dispatcher::new(store.clone(), config.transports, config.clock.clone())
                .with_send_rates(config.send_rates)
                .with_retry_lifetime(config.retry_lifetime)
                .with_concurrency(config.concurrency)
                .with_journey_rates(journey_rates),
            intake: Intake::start(store.clone(), wakeup.clone()),
            tracking: config.tracking,
            store,
            clock: config.clock,
            wakeup,
            work: Mutex::new(()),
            advancing: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            journeys_seen: Mutex::new((journeys_revision, std::time::Instant::now())),
            journey_rates_stale: AtomicBool::new(false),
        });
        // Events another process accepted may be for this one's partitions.
        let waking = engine.wakeup.clone();
        engine
            .store
            .on_events_elsewhere(Arc::new(move || waking.wake()));
        let looping = engine.clone();
        let handle = std::thread::Builder::new()
            .name("waymark-engine".into())
            .spawn(move || looping.run_loop())
            .map_err(|e| EngineError::Task(e.to_string()))?;
        engine.threads.lock().expect("threads lock").push(handle);
        let dispatching = engine.clone();
        tokio::spawn(async move { dispatching.dispatch_loop().await });
        Ok(engine)
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// Open and click tracking, when a public URL is configured.
    pub fn tracking(&self) -> Option<&Tracking> {
        self.tracking.as_ref()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// What keeps the engine from doing all its work: broken definitions, a stall.
    pub fn problems(&self) -> problems::Report {
        self.processor.problems().report()
    }

    /// Wakes the engine after events were recorded outside the intake (an API enrollment, a
    /// list change).
    pub fn events_recorded(&self) {
        self.wakeup.wake();
    }

    /// Wakes the dispatcher after messages were queued outside the engine (a test send).
    pub fn messages_queued(&self) {
        self.dispatcher.wake();
    }

    /// Runs `work` in one engine transaction with the send gate, through which it sends
    /// messages outside journeys (a double opt-in confirmation, a test send) together with
    /// whatever else it changes; then wakes the dispatcher.
    pub async fn send<T: Send + 'static>(
        self: &Arc<Self>,
        mut work: impl FnMut(&mut dyn EngineTx, &send::SendGate) -> Result<T, StoreError>
        + Send
        + 'static,
    ) -> Result<T, EngineError> {
        let engine = self.clone();
        let out = tokio::task::spawn_blocking(move || {
            in_transaction(engine.store.as_ref(), |tx| {
                work(tx, engine.processor.gate())
            })
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??;
        self.dispatcher.wake();
        Ok(out)
    }

    /// Runs `work` in one engine transaction (off the async runtime). The engine's own
    /// operations below use it; the API has no raw transaction.
    async fn transaction<T: Send + 'static>(
        self: &Arc<Self>,
        mut work: impl FnMut(&mut dyn EngineTx) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || in_transaction(store.as_ref(), &mut work))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
            .map_err(EngineError::from)
    }

    /// Records a request to enroll a contact through a journey's `api` trigger (the engine
    /// enrolls it when it processes the event): the contact is `user_id`'s (created if new) or
    /// the existing `contact_id`. Returns the contact and whether the request is new (false:
    /// the same `message_id` was recorded before).
    pub async fn request_enrollment(
        self: &Arc<Self>,
        journey_id: String,
        contact: recorded::ContactRef,
        payload: serde_json::Map<String, serde_json::Value>,
        message_id: String,
    ) -> Result<(i64, bool), EngineError> {
        let now = self.clock.now();
        let out = self
            .transaction(move |tx| {
                let contact_id = contact.resolve(tx, now)?;
                let fresh = recorded::request_enrollment(
                    tx,
                    contact_id,
                    &journey_id,
                    payload.clone(),
                    message_id.clone(),
                    now,
                )?;
                Ok((contact_id, fresh))
            })
            .await?;
        self.events_recorded();
        Ok(out)
    }

    /// Adds the contacts to list `name` (or removes them), recording the list events that
    /// list triggers and segments follow. Every contact must exist, or nothing changes.
    pub async fn change_list_members(
        self: &Arc<Self>,
        name: String,
        contact_ids: Vec<i64>,
        add: bool,
    ) -> Result<(), EngineError> {
        let now = self.clock.now();
        self.transaction(move |tx| {
            for id in &contact_ids {
                tx.contact(*id)
                    .map_err(|_| StoreError::NotFound(format!("contact {id}")))?;
                if add {
                    recorded::add_to_list(tx, *id, &name, now)?;
                } else {
                    recorded::remove_from_list(tx, *id, &name, now)?;
                }
            }
            Ok(())
        })
        .await?;
        self.events_recorded();
        Ok(())
    }

    /// Adds the contacts of these user ids to list `name` (an import into a list), creating
    /// those not known yet as their identify calls would: recorded before, those calls come
    /// first in the event stream and find the same contacts. Returns the contacts' ids.
    pub async fn add_users_to_list(
        self: &Arc<Self>,
        name: String,
        user_ids: Vec<String>,
    ) -> Result<Vec<i64>, EngineError> {
        let now = self.clock.now();
        let ids = self
            .transaction(move |tx| {
                let mut ids = Vec::with_capacity(user_ids.len());
                for user in &user_ids {
                    let id = recorded::ContactRef::User(user.clone()).resolve(tx, now)?;
                    recorded::add_to_list(tx, id, &name, now)?;
                    ids.push(id);
                }
                Ok(ids)
            })
            .await?;
        self.events_recorded();
        Ok(ids)
    }

    /// A contact's product recommendations, as a send would compute them.
    pub async fn recommendations_for(
        self: &Arc<Self>,
        contact_id: i64,
    ) -> Result<Vec<serde_json::Value>, EngineError> {
        self.transaction(move |tx| {
            recommendations::for_contact(tx, contact_id, recommendations::LIST_LENGTH)
        })
        .await
    }

    /// A contact's subscriptions (channel and topic, with their status).
    pub async fn subscriptions(
        self: &Arc<Self>,
        contact_id: i64,
    ) -> Result<Vec<waymark_store::Subscription>, EngineError> {
        self.transaction(move |tx| tx.subscriptions(contact_id))
            .await
    }

    /// Sets a subscription; returns its status before (`None`: there was none).
    pub async fn set_subscription(
        self: &Arc<Self>,
        subscription: waymark_store::Subscription,
    ) -> Result<Option<String>, EngineError> {
        self.transaction(move |tx| tx.set_subscription(&subscription))
            .await
    }

    /// Each channel's outbox queue now (depth, oldest age, deliveries in flight), also set as
    /// the outbox gauges.
    pub async fn queue_levels(self: &Arc<Self>) -> Result<Vec<dispatch::Lane>, EngineError> {
        Ok(self.dispatcher.queue_levels().await?)
    }

    /// Stops the engine loop after its current batch (everything it did is committed).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wakeup.wake();
        self.dispatcher.wake();
        for handle in self.threads.lock().expect("threads lock").drain(..) {
            let _ = handle.join();
        }
    }

    /// The turn to work on engine state (rounds, erasures, segment and journey changes). It
    /// guards no data, only the order of work, so a panic while it was held leaves nothing
    /// half-done to protect (the transaction rolled back) and the turn is taken all the same.
    fn work_turn(&self) -> std::sync::MutexGuard<'_, ()> {
        self.work
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn run_loop(&self) {
        // Failed rounds in a row (the database is unreachable, say): the round is retried
        // after a pause that grows, and sooner when new work wakes the engine.
        let mut failures = 0;
        while !self.stopping.load(Ordering::SeqCst) {
            // A panic in a round (a bug) is a failed round, not the end of the engine: the
            // round's transaction rolled back, and the next one starts from the same place.
            let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.tick()))
                .unwrap_or_else(|panic| {
                    Err(StoreError::Database(format!(
                        "the round panicked: {}",
                        panic_message(panic.as_ref())
                    )))
                });
            let wait = match round {
                Ok(did) => {
                    failures = 0;
                    self.processor.problems().round_succeeded();
                    if did {
                        continue;
                    }
                    // A simulated clock only moves in `advance`, which fires the timers itself.
                    let next_wake = match self.clock.is_simulated() {
                        false => self.store.next_wake_at(),
                        true => Ok(None),
                    };
                    match next_wake {
                        Ok(Some(at)) => {
                            let ms = at.duration_since(self.clock.now()).as_millis().max(0) as u64;
                            IDLE_POLL.min(StdDuration::from_millis(ms))
                        }
                        _ => IDLE_POLL,
                    }
                }
                Err(e) => {
                    failures += 1;
                    self.processor
                        .problems()
                        .round_failed(&e.to_string(), self.clock.now());
                    outage::pause_after(failures)
                }
            };
            if !wait.is_zero() {
                self.wakeup.wait(wait);
            }
        }
    }

    /// One round of work: every event accepted so far first, then the timers that were due when
    /// the round began. Reading the time before looking at events is what guarantees that an
    /// event accepted before a timer fell due is applied before that timer fires; stopping at
    /// the events accepted by then keeps a flood of new events from starving the timers.
    fn tick(&self) -> Result<bool, StoreError> {
        let _work = self.work_turn();
        self.follow_journey_changes()?;
        let cutoff = self.clock.now();
        let accepted = self.store.last_event_seq()?;
        let mut did = false;
        let mut messages = 0;
        loop {
            let report = self
                .processor
                .process_events(accepted, BATCH, self.clock.now())?;
            messages += report.messages;
            if report.items == 0 {
                break;
            }
            did = true;
        }
        let report = self.processor.fire_timers(cutoff, BATCH)?;
        // Lateness: how long after its due time a timer's step was committed.
        let fired = self.clock.now();
        for due in &report.timers_due {
            let late = fired.duration_since(*due).as_secs_f64().max(0.0);
            metrics::histogram!("waymark_timer_lateness_seconds").record(late);
        }
        messages += report.messages;
        did |= report.items > 0;
        // One round of broadcasts, between the rounds of events and timers: a broadcast to a
        // million contacts goes on while journeys keep up with their events.
        if let Some(round) = self.processor.run_broadcasts(self.clock.now(), BATCH)? {
            messages += round.queued;
            did = true;
        }
        if messages > 0 {
            self.dispatcher.wake();
        }
        Ok(did)
    }

    /// Reloads the journeys when another process sharing the database published, paused,
    /// resumed or archived one (this process's own changes reload them at once).
    fn follow_journey_changes(&self) -> Result<(), StoreError> {
        let mut seen = self
            .journeys_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.1.elapsed() < JOURNEY_CHANGES_POLL {
            return Ok(());
        }
        seen.1 = std::time::Instant::now();
        let revision = self.store.meta(JOURNEYS_REVISION_KEY)?;
        if revision != seen.0 {
            self.processor.reload_journeys()?;
            self.journey_rates_stale.store(true, Ordering::SeqCst);
            self.dispatcher.wake();
            seen.0 = revision;
        }
        Ok(())
    }

    /// Starts deliveries whenever messages are due and a channel has a free slot. It does not
    /// wait for deliveries: a queued message, a slot coming free and the next retry time all
    /// wake it.
    async fn dispatch_loop(self: Arc<Self>) {
        let mut levels_recorded = std::time::Instant::now();
        let mut outage = outage::Outage::new("dispatch round");
        while !self.stopping.load(Ordering::SeqCst) {
            if self.journey_rates_stale.swap(false, Ordering::SeqCst) {
                self.dispatcher
                    .set_journey_rates(self.processor.journey_send_rates())
                    .await;
            }
            match self.dispatcher.start_due().await {
                Ok(_) => outage.ended(),
                Err(e) => outage.failed(&e),
            }
            // While rounds fail, so would this (and say so every second).
            if levels_recorded.elapsed() >= IDLE_POLL && outage.pause().is_zero() {
                levels_recorded = std::time::Instant::now();
                if let Err(e) = self.dispatcher.queue_levels().await {
                    tracing::warn!(error = %e, "cannot read the outbox queue levels");
                }
            }
            // A due time in the past belongs to messages in flight or waiting for a slot,
            // whose end wakes the loop.
            let wait = if !outage.pause().is_zero() {
                outage.pause()
            } else {
                let next_attempt = match self.clock.is_simulated() {
                    false => self.dispatcher.next_attempt_at(),
                    true => Ok(None),
                };
                match next_attempt {
                    Ok(Some(at)) if at > self.clock.now() => {
                        let ms = at.duration_since(self.clock.now()).as_millis().max(1) as u64;
                        IDLE_POLL.min(StdDuration::from_millis(ms))
                    }
                    _ => IDLE_POLL,
                }
            };
            self.dispatcher.wait(wait).await;
        }
    }

    /// Waits (at most `timeout`) for the deliveries in flight to finish and be recorded, and
    /// starts no new one: called before stopping, so that a delivered message is not offered
    /// again after a restart. Returns false when the time ran out.
    pub async fn finish_deliveries(self: &Arc<Self>, timeout: StdDuration) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        tokio::time::timeout(timeout, self.dispatcher.between_rounds())
            .await
            .is_ok()
    }

    /// Runs engine rounds until there is nothing left to do at the current time.
    async fn settle(self: &Arc<Self>) -> Result<(), EngineError> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            while engine.tick()? {}
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??;
        self.dispatcher.dispatch_due().await?;
        Ok(())
    }

    /// Processes everything that is due now, including deliveries (used by tests and benches).
    pub async fn run_until_idle(self: &Arc<Self>) -> Result<(), EngineError> {
        self.settle().await
    }

    /// Advances a simulated clock by `seconds`, stopping at every timer and retry due on the
    /// way, in order, and returns once all of it (and every effect it caused) is processed.
    ///
    /// At each stop the engine's rounds run until there is nothing left to do, then the due
    /// messages are delivered, then the clock moves to the next stop. The rounds, the look at
    /// the next stop and the moves of the clock run in one blocking task ([`Engine::advance_until`]),
    /// which hands back to the dispatcher only when messages are due: a step of a simulation
    /// where nothing happens costs one hand-off between threads, not a dozen.
    pub async fn advance(self: &Arc<Self>, seconds: i64) -> Result<Timestamp, EngineError> {
        if !self.clock.is_simulated() {
            return Err(EngineError::NotSimulated);
        }
        let _one_at_a_time = self.advancing.lock().await;
        let target = self.clock.now() + jiff::SignedDuration::from_secs(seconds.max(0));
        let mut at = Advancing::Settling { last: false };
        loop {
            let engine = self.clone();
            let paused = tokio::task::spawn_blocking(move || engine.advance_until(target, at))
                .await
                .map_err(|e| EngineError::Task(e.to_string()))??;
            match paused {
                Paused::MessagesDue(resume) => {
                    // It sets the queue gauges too.
                    self.dispatcher.dispatch_due().await?;
                    if let Advancing::Delivered { last: true } = resume {
                        return Ok(self.clock.now());
                    }
                    at = resume;
                }
                Paused::Done(levels) => {
                    self.dispatcher.lanes(&levels);
                    return Ok(self.clock.now());
                }
            }
        }
    }

    /// The blocking part of [`Engine::advance`], from `at`: settles the engine at each stop and
    /// moves the clock to the next one, up to `target`. Pauses when messages are due, for the
    /// dispatcher to deliver them, with where to resume once they are.
    fn advance_until(&self, target: Timestamp, mut at: Advancing) -> Result<Paused, StoreError> {
        loop {
            if let Advancing::Settling { last } = at {
                while self.tick()? {}
                // Due now (in the past: waiting for a slot, or in flight).
                if self
                    .store
                    .next_message_attempt_at()?
                    .is_some_and(|due| due <= self.clock.now())
                {
                    return Ok(Paused::MessagesDue(Advancing::Delivered { last }));
                }
                at = Advancing::Delivered { last };
            }
            if let Advancing::Delivered { last: true } = at {
                return Ok(Paused::Done(self.store.queue_levels()?));
            }
            let next = [
                self.store.next_wake_at()?,
                self.store.next_message_attempt_at()?,
            ]
            .into_iter()
            .flatten()
            .min();
            let (to, last) = match next {
                Some(next) if next <= target && next > self.clock.now() => (next, false),
                _ => (target, true),
            };
            self.move_clock(to)?;
            at = Advancing::Settling { last };
        }
    }

    /// Moves the simulated clock and saves it before anything happens at the new time, so that
    /// after a crash it never restarts behind work already done.
    fn move_clock(&self, to: Timestamp) -> Result<(), StoreError> {
        self.clock.advance_to(to);
        let now = self.clock.now();
        self.store
            .set_meta(SIMULATED_CLOCK_KEY, &now.as_millisecond().to_string())
    }

    /// Runs `work` in one engine transaction between rounds: no event batch, timer round or
    /// delivery round is under way while it runs, and the events accepted before the call are
    /// processed first. An erasure uses it, so that the engine never steps a half-erased
    /// contact, a message it removes is not in the middle of being delivered, and an identify
    /// sent a moment earlier is erased with the contact rather than re-creating it afterwards.
    /// A delivery round in progress is waited for.
    pub async fn between_rounds<T: Send + 'static>(
        self: &Arc<Self>,
        mut work: impl FnMut(&mut dyn EngineTx) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let _no_delivery = self.dispatcher.between_rounds().await;
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let _work = engine.work_turn();
            // Best effort: an engine that cannot process its events must not make `work`
            // (an erasure) impossible; those events are then processed after it.
            let accepted = engine.store.last_event_seq()?;
            loop {
                match engine
                    .processor
                    .process_events(accepted, BATCH, engine.clock.now())
                {
                    Ok(report) if report.items > 0 => {
                        if report.messages > 0 {
                            engine.dispatcher.wake();
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot process pending events first; going on");
                        break;
                    }
                }
            }
            in_transaction(engine.store.as_ref(), &mut work)
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?
        .map_err(EngineError::from)
    }

    /// Call after a segment was created or changed: evaluates every contact against it.
    /// Returns its member count.
    pub async fn segment_changed(self: &Arc<Self>, segment_id: &str) -> Result<i64, EngineError> {
        let engine = self.clone();
        let id = segment_id.to_string();
        let members = tokio::task::spawn_blocking(move || {
            let _work = engine.work_turn();
            engine.processor.backfill_segment(&id, engine.clock.now())
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??;
        self.wakeup.wake();
        Ok(members)
    }

    /// How many contacts a condition matches now, and the ids of up to `sample` of them.
    pub async fn preview_condition(
        self: &Arc<Self>,
        condition: waymark_core::Condition,
        sample: usize,
    ) -> Result<(i64, Vec<i64>), EngineError> {
        let engine = self.clone();
        Ok(tokio::task::spawn_blocking(move || {
            engine
                .processor
                .preview_condition(&condition, sample, engine.clock.now())
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??)
    }

    /// Call after a broadcast with a goal is sent: this process and the others sharing the
    /// database credit its goal events from then on.
    pub async fn broadcast_goals_changed(self: &Arc<Self>) -> Result<(), EngineError> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let _work = engine.work_turn();
            engine.announce_journey_change()
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??;
        Ok(())
    }

    /// Reloads the journeys (and the broadcasts' goals) here and tells the other processes
    /// sharing the database to reload theirs.
    fn announce_journey_change(&self) -> Result<(), StoreError> {
        let revision = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            .to_string();
        self.store.set_meta(JOURNEYS_REVISION_KEY, &revision)?;
        self.processor.reload_journeys()?;
        self.journeys_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0 = Some(revision);
        Ok(())
    }

    /// Call after a journey is published, paused, resumed or archived.
    pub async fn journey_changed(
        self: &Arc<Self>,
        journey_id: &str,
        change: JourneyChange,
    ) -> Result<(), EngineError> {
        let engine = self.clone();
        let id = journey_id.to_string();
        tokio::task::spawn_blocking(move || {
            let _work = engine.work_turn();
            // The other processes sharing the database reload theirs when they see it.
            engine.announce_journey_change()?;
            let now = engine.clock.now();
            match change {
                JourneyChange::Resumed => {
                    engine.processor.resume_journey(&id, now)?;
                    engine.processor.schedule_journey(&id, false, now)?;
                }
                JourneyChange::Archived => {
                    engine.processor.archive_journey(&id, now)?;
                }
                JourneyChange::Published { enroll_existing } => {
                    engine
                        .processor
                        .schedule_journey(&id, enroll_existing, now)?;
                }
                JourneyChange::Paused => {}
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??;
        self.dispatcher
            .set_journey_rates(self.processor.journey_send_rates())
            .await;
        self.wakeup.wake();
        self.dispatcher.wake();
        Ok(())
    }
}

/// Where an [`Engine::advance`] stands at a stop of the clock.
#[derive(Debug, Clone, Copy)]
enum Advancing {
    /// The engine's rounds are to run; `last`: at the advance's target.
    Settling { last: bool },
    /// Rounds and deliveries are done; next, the next stop (or the end, when `last`).
    Delivered { last: bool },
}

/// Why the blocking part of an advance handed back.
enum Paused {
    /// Messages are due: deliver them, then resume here.
    MessagesDue(Advancing),
    /// At the target, all done; the outbox's queues then.
    Done(Vec<waymark_store::QueueLevel>),
}

/// Runs `work` in one engine transaction of `store` and returns what it returned.
fn in_transaction<T>(
    store: &dyn Store,
    mut work: impl FnMut(&mut dyn EngineTx) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut out = None;
    store.engine_tx(&mut |tx| {
        out = Some(work(tx)?);
        Ok(())
    })?;
    Ok(out.expect("the transaction ran its work"))
}

#[derive(Debug, Clone, Copy)]
pub enum JourneyChange {
    /// With `enroll_existing`, contacts who already match a segment, list or inactivity
    /// trigger enter now.
    Published {
        enroll_existing: bool,
    },
    Paused,
    Resumed,
    Archived,
}

/// The message of a caught panic, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
