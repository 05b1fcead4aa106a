//! The imperative shell around the stepper: it loads what a step needs, calls the pure
//! `waymark_core::step`, and commits the new enrollment, its effects (messages into the outbox,
//! trait and list changes), its step log and its counters in one transaction.
//!
//! Ordering rules (see DESIGN.md): events are processed in ingest order, one batch per
//! transaction; timers fire only after every event accepted before they fell due.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use waymark_core::condition::MessageRecord;
use waymark_core::event::{LIST_ADDED, LIST_REMOVED};
use waymark_core::experiment::{VariantCounts, decide};
use waymark_core::filter::{Engagement, filter_matches};
use waymark_core::journey::{Channel, ExperimentNode, OutboxChannel};
use waymark_core::stepper::{entry_key, interrupts, may_enter};
use waymark_core::timing::SendWindow;
use waymark_core::{
    Effect, Enrollment, EnrollmentStatus, EventKind, EventRecord, Facts, Input, Journey, NodeKind,
    StepLog, StepOutcome, step,
};
use waymark_store::{
    EngineTx, JourneyStatus, MessageStatus, ReadAhead, StatsDeltas, Store, StoreError, StoredEvent,
};

use crate::caps::FrequencyCap;
use crate::conversions;
use crate::machine_activity;
use crate::problems::Problems;
use crate::recorded;
use crate::registry::Registry;
use crate::segments::{self, Changes, Segment};
use crate::send::{Decision, JourneyNode, Outgoing, Purpose, SendGate, TemplateSource};
use crate::tracking::Tracking;
use crate::triggers;

/// Events a client sends to report engagement with a message (`properties.message_id`).
pub const EMAIL_OPENED: &str = "Email Opened";
pub const EMAIL_CLICKED: &str = "Email Link Clicked";

/// How long an enrollment on a version that cannot be used waits before its timer is tried
/// again.
const BROKEN_RETRY: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

pub struct Processor {
    store: Arc<dyn Store>,
    problems: Arc<Problems>,
    registry: Mutex<Registry>,
    /// Where every message a step sends is decided and written.
    gate: SendGate,
}

/// Facts answered from the open transaction. Errors are kept and raised after the step,
/// because the pure stepper has no error channel for I/O.
struct TxFacts<'a, 'b> {
    tx: RefCell<&'a mut (dyn EngineTx + 'b)>,
    contact_id: i64,
    enrollment_id: i64,
    journey_id: String,
    traits: Map<String, Value>,
    upto_seq: i64,
    error: RefCell<Option<StoreError>>,
}

impl Facts for TxFacts<'_, '_> {
    fn traits(&self) -> &Map<String, Value> {
        &self.traits
    }
    fn events_since(&self, name: &str, after_seq: i64) -> Vec<EventRecord> {
        match self
            .tx
            .borrow_mut()
            .events_between(self.contact_id, name, after_seq, self.upto_seq)
        {
            Ok(events) => events,
            Err(e) => {
                self.error.replace(Some(e));
                Vec::new()
            }
        }
    }
    fn engaged(&self, node: &str, engagement: Engagement) -> bool {
        let found = self
            .tx
            .borrow_mut()
            .message_engaged(self.enrollment_id, node, engagement);
        self.keep(found)
    }
    fn in_list(&self, list: &str) -> bool {
        let found = self.tx.borrow_mut().in_list(self.contact_id, list);
        self.keep(found)
    }
    fn messages(&self) -> Vec<MessageRecord> {
        let found = self.tx.borrow_mut().contact_messages(self.contact_id);
        self.keep(found)
    }
    fn event_at(&self, seq: i64) -> Option<EventRecord> {
        let found = self.tx.borrow_mut().event(seq);
        self.keep(found).map(StoredEvent::into_record)
    }
    fn experiment_winner(&self, node: &str) -> Option<String> {
        let found = self
            .tx
            .borrow_mut()
            .experiment_winner(&self.journey_id, node);
        self.keep(found)
    }
}

impl TxFacts<'_, '_> {
    /// The value, or its default after keeping the first error for after the step.
    fn keep<T: Default>(&self, result: Result<T, StoreError>) -> T {
        result.unwrap_or_else(|e| {
            self.error.borrow_mut().get_or_insert(e);
            T::default()
        })
    }
}

/// What one batch did, for metrics and for waking the dispatcher.
#[derive(Debug, Default, Clone)]
pub struct BatchReport {
    pub items: usize,
    pub steps: usize,
    pub messages: usize,
    /// When each timer fired in the batch was due (its lateness is measured after commit).
    pub timers_due: Vec<Timestamp>,
}

impl Processor {
    pub fn new(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let registry = Registry::load(store.as_ref(), &SendWindow::default())?;
        let problems = Arc::new(Problems::default());
        problems.set_broken("journey", registry.broken());
        let processor = Processor {
            store,
            problems,
            registry: Mutex::new(registry),
            gate: SendGate::new(None, Vec::new()),
        };
        // Segments that cannot be read are reported from the start, as journeys are, not
        // only once the engine's first round has run.
        processor
            .store
            .engine_tx(&mut |tx| processor.load_segments(tx).map(drop))?;
        Ok(processor)
    }

    /// Holds back marketing messages over these caps (recorded `suppressed`).
    /// The compiled journeys. A panic in a round that held them (a bug) must not stop every
    /// later round: they are compiled copies of immutable journey versions, each added whole,
    /// which a panic elsewhere leaves consistent, so the lock is taken even when poisoned.
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn with_frequency_caps(mut self, caps: Vec<FrequencyCap>) -> Self {
        self.gate.set_caps(caps);
        self
    }

    /// The installation's quiet hours and blocked dates, under every journey's own.
    pub fn with_send_window(self, window: SendWindow) -> Result<Self, StoreError> {
        let registry = Registry::load(self.store.as_ref(), &window)?;
        self.problems.set_broken("journey", registry.broken());
        *self.registry() = registry;
        Ok(self)
    }

    /// Rewrites the links of rendered email for open and click tracking.
    pub fn with_tracking(mut self, tracking: Option<Tracking>) -> Self {
        self.gate.set_tracking(tracking);
        self
    }

    /// One round of the broadcast with the earliest due work (see `broadcasts`), in one
    /// transaction; `None` when no broadcast has work due.
    pub fn run_broadcasts(
        &self,
        now: Timestamp,
        page: usize,
    ) -> Result<Option<crate::broadcasts::Round>, StoreError> {
        let window = self.registry().installation_window().clone();
        let mut done = None;
        self.store.engine_tx(&mut |tx| {
            done = crate::broadcasts::round(tx, &self.gate, &window, now, page)?;
            Ok(())
        })?;
        Ok(done)
    }

    /// The send gate, for messages sent outside journeys (confirmations, test sends).
    pub fn gate(&self) -> &SendGate {
        &self.gate
    }

    /// The send rates of live journeys, for the dispatcher.
    pub fn journey_send_rates(&self) -> HashMap<String, f64> {
        self.registry().send_rates()
    }

    pub fn reload_journeys(&self) -> Result<(), StoreError> {
        let mut registry = self.registry();
        *registry = Registry::load(self.store.as_ref(), registry.installation_window())?;
        self.problems.set_broken("journey", registry.broken());
        Ok(())
    }

    /// What keeps the engine from doing all its work (shared with the engine loop).
    pub fn problems(&self) -> &Arc<Problems> {
        &self.problems
    }

    /// Loads the segments and reports those that cannot be used.
    fn load_segments(&self, tx: &mut dyn EngineTx) -> Result<Vec<Segment>, StoreError> {
        let (segments, broken) = segments::load(tx)?;
        self.problems.set_broken("segment", broken);
        Ok(segments)
    }

    /// Processes up to `limit` accepted events with `seq <= upto_seq`, in ingest order, in one
    /// transaction.
    pub fn process_events(
        &self,
        upto_seq: i64,
        limit: usize,
        now: Timestamp,
    ) -> Result<BatchReport, StoreError> {
        let mut report = BatchReport::default();
        let mut registry = self.registry();
        self.store.engine_tx(&mut |tx| {
            report = BatchReport::default();
            let events = pending_events_locked(tx, upto_seq, limit)?;
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(());
            };
            let mut stats = StatsDeltas::default();
            let segments = self.load_segments(tx)?;
            let timed = registry.timed();
            read_ahead_of_events(tx, &registry, &events)?;
            for event in &events {
                let (contact, record, changes) =
                    self.process_event(tx, &mut registry, event, now, &mut stats, &mut report)?;
                segments::refresh_contact(tx, &segments, contact, &changes, now)?;
                triggers::refresh_contact(tx, &timed, contact, Some(&record), now)?;
            }
            tx.set_processed_upto(last)?;
            if !stats.is_empty() {
                tx.add_stats(&stats, now)?;
            }
            report.items = events.len();
            Ok(())
        })?;
        self.problems.set_broken("journey", registry.broken());
        metrics::counter!("waymark_events_processed_total").increment(report.items as u64);
        metrics::counter!("waymark_steps_total").increment(report.steps as u64);
        Ok(report)
    }

    fn process_event(
        &self,
        tx: &mut dyn EngineTx,
        registry: &mut Registry,
        stored: &StoredEvent,
        now: Timestamp,
        stats: &mut StatsDeltas,
        report: &mut BatchReport,
    ) -> Result<(i64, EventRecord, Changes), StoreError> {
        let e = &stored.event;
        let mut changes = Changes::default();
        // The contact is known when the engine recorded the event, and on PostgreSQL when it
        // was accepted (routed to its partition); a merge that event asks for is left to now.
        let links = e.kind == EventKind::Alias || (e.user_id.is_some() && e.anonymous_id.is_some());
        let contact_id = match (e.kind, &e.previous_id, &e.user_id, stored.contact_id) {
            (_, _, _, Some(id)) if !links => id,
            (EventKind::Alias, Some(previous), Some(user), _) => tx.alias(previous, user, now)?,
            _ => tx.resolve_contact(e.user_id.as_deref(), e.anonymous_id.as_deref(), now)?,
        };
        if stored.contact_id != Some(contact_id) {
            tx.set_event_contact(stored.seq, contact_id)?;
        }
        changes.events.push(e.name.clone());
        // A merged contact has never been evaluated as it is (a new one: see `segments`).
        changes.everything |= e.kind == EventKind::Alias;
        changes.traits |= e.kind == EventKind::Identify;
        changes.lists |= e.name == LIST_ADDED || e.name == LIST_REMOVED;
        changes.messages |= e.name == EMAIL_OPENED || e.name == EMAIL_CLICKED;
        if e.kind == EventKind::Identify {
            tx.update_traits(contact_id, &e.properties, now)?;
        }
        if e.kind == EventKind::Track
            && (e.name == EMAIL_OPENED || e.name == EMAIL_CLICKED)
            && let Some(id) = e
                .properties
                .get("message_id")
                .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        {
            let sent_at = tx.message_sent_at(id)?;
            let human = machine_activity::is_human(&e.properties, sent_at, e.timestamp);
            tx.mark_engagement(id, e.name == EMAIL_CLICKED, human, e.timestamp)?;
        }
        let record = EventRecord {
            seq: stored.seq,
            kind: e.kind,
            name: e.name.clone(),
            properties: e.properties.clone(),
            timestamp: e.timestamp,
        };

        // Enrollments in flight first: goals, exits and waits.
        for enrollment in tx.active_enrollments(contact_id)? {
            // On a version that cannot be used, the enrollment waits (reported in problems);
            // the events stay in the contact's history for when it can go on.
            let Some(journey) = registry.version(
                self.store.as_ref(),
                &enrollment.journey_id,
                enrollment.version,
            )?
            else {
                continue;
            };
            // While paused, only goals and exits apply; waits resume when the journey does.
            let paused = registry.status(&enrollment.journey_id) != Some(JourneyStatus::Live);
            if paused && !interrupts(&journey, &enrollment, &record) {
                continue;
            }
            let outcome = self.step_with_facts(
                tx,
                &journey,
                &enrollment,
                Input::Event(&record),
                now,
                stored.seq,
            )?;
            if let Some(outcome) = outcome {
                changes.note(&outcome.effects);
                let at = StepAt::new(now, stored.seq);
                self.apply(tx, &journey, outcome, at, stats, report)?;
            }
        }

        // A goal event also converts enrollments that ended within their conversion window.
        conversions::after_end(
            tx,
            self.store.as_ref(),
            registry,
            contact_id,
            &record,
            now,
            stats,
        )?;

        // And the messages of broadcasts whose goal it is.
        conversions::broadcasts(tx, registry, contact_id, &record)?;

        // Then triggers of live journeys.
        for (journey, version) in registry.triggered_by(&record.name) {
            let Some((trigger, _)) = journey
                .triggers(&record.name)
                .find(|(_, filter)| filter_matches(filter, &record.properties))
            else {
                continue;
            };
            let Ok(key) = entry_key(&journey, &record) else {
                continue;
            };
            let prior = tx.prior_enrollments(journey.id(), contact_id)?;
            if !may_enter(&journey, &prior, key.as_deref(), now) {
                continue;
            }
            let fresh = Enrollment {
                id: 0,
                journey_id: journey.id().to_string(),
                version,
                contact_id,
                key,
                node: trigger.id.clone(),
                status: EnrollmentStatus::Active,
                wake_at: None,
                entered_at: now,
                entered_seq: stored.seq,
                consumed_seq: 0,
                visits: 0,
            };
            let enrollment = tx.insert_enrollment(&fresh, now)?;
            if let Some(outcome) =
                self.step_with_facts(tx, &journey, &enrollment, Input::Enter, now, stored.seq)?
            {
                changes.note(&outcome.effects);
                let at = StepAt::new(now, stored.seq);
                self.apply(tx, &journey, outcome, at, stats, report)?;
            }
        }
        Ok((contact_id, record, changes))
    }

    /// Fires up to `limit` timers due at `now`, earliest first, in one transaction.
    pub fn fire_timers(&self, now: Timestamp, limit: usize) -> Result<BatchReport, StoreError> {
        let mut report = BatchReport::default();
        let mut registry = self.registry();
        self.store.engine_tx(&mut |tx| {
            report = BatchReport::default();
            let due = tx.claim_due_enrollments(now, limit)?;
            let mut stats = StatsDeltas::default();
            let segments = self.load_segments(tx)?;
            let checks = tx.claim_due_segment_checks(now, limit)?;
            let expiries = tx.claim_due_score_expiries(now, limit)?;
            let contacts: Vec<i64> = (due.iter().map(|e| e.contact_id))
                .chain(checks.iter().map(|(_, c)| *c))
                .chain(expiries.iter().map(|(c, ..)| *c))
                .collect();
            tx.lock_contacts(&contacts)?;
            let started_by: Vec<i64> = due.iter().map(|e| e.entered_seq).collect();
            tx.read_ahead(&ReadAhead {
                contacts: &contacts,
                journeys: &[],
                events: &started_by,
            })?;
            for (segment_id, contact) in &checks {
                if let Some(segment) = segments.iter().find(|s| &s.id == segment_id) {
                    let one = std::slice::from_ref(segment);
                    segments::refresh_contact(tx, one, *contact, &Changes::everything(), now)?;
                }
            }
            let mut changed: HashMap<i64, Changes> = HashMap::new();
            for enrollment in &due {
                let Some(journey) = registry.version(
                    self.store.as_ref(),
                    &enrollment.journey_id,
                    enrollment.version,
                )?
                else {
                    // Its version cannot be used: the timer is kept and tried again later, out
                    // of the way of the timers that can fire.
                    tx.update_enrollment(
                        &Enrollment {
                            wake_at: Some(now + BROKEN_RETRY),
                            ..enrollment.clone()
                        },
                        now,
                    )?;
                    continue;
                };
                report.timers_due.extend(enrollment.wake_at);
                let upto = tx.processed_upto(enrollment.contact_id)?;
                match self.step_with_facts(tx, &journey, enrollment, Input::Timer, now, upto)? {
                    Some(outcome) => {
                        changed
                            .entry(enrollment.contact_id)
                            .or_default()
                            .note(&outcome.effects);
                        let at = StepAt::new(now, upto);
                        self.apply(tx, &journey, outcome, at, &mut stats, &mut report)?
                    }
                    // A timer that no longer applies (e.g. a stale wake time) must not fire again.
                    None => tx.update_enrollment(
                        &Enrollment {
                            wake_at: None,
                            ..enrollment.clone()
                        },
                        now,
                    )?,
                }
            }
            // Score decay: points given earlier are taken back.
            for (contact, score_trait, points) in &expiries {
                let traits = tx.contact(*contact)?.traits;
                let back = waymark_core::stepper::increment(
                    traits.get(score_trait),
                    &serde_json::Number::from(-points),
                );
                let mut change = Map::new();
                change.insert(score_trait.clone(), back);
                tx.update_traits(*contact, &change, now)?;
            }
            // A step may have changed the contact's traits, lists or messages.
            for (contact, _, _) in &expiries {
                changed.entry(*contact).or_default().traits = true;
            }
            let timed = registry.timed();
            let mut stepped: Vec<_> = changed.into_iter().collect();
            stepped.sort_unstable_by_key(|(contact, _)| *contact);
            for (contact, changes) in stepped {
                segments::refresh_contact(tx, &segments, contact, &changes, now)?;
                if changes.traits {
                    triggers::refresh_contact(tx, &timed, contact, None, now)?;
                }
            }
            let fired = triggers::fire_due(tx, &|id| registry.live_journey(id), now, limit)?;
            if !stats.is_empty() {
                tx.add_stats(&stats, now)?;
            }
            report.items = due.len() + checks.len() + fired + expiries.len();
            Ok(())
        })?;
        self.problems.set_broken("journey", registry.broken());
        metrics::counter!("waymark_timers_fired_total").increment(report.items as u64);
        metrics::counter!("waymark_steps_total").increment(report.steps as u64);
        Ok(report)
    }

    /// After a resume: waits whose event arrived during the pause end now. Returns how many
    /// enrollments moved.
    pub fn resume_journey(&self, journey_id: &str, now: Timestamp) -> Result<usize, StoreError> {
        let mut registry = self.registry();
        let mut moved = 0;
        let mut after = 0;
        loop {
            let mut batch = 0;
            self.store.engine_tx(&mut |tx| {
                batch = 0;
                let mut stats = StatsDeltas::default();
                let mut report = BatchReport::default();
                // Their contacts locked (read again if another process may have moved one).
                let enrollments = loop {
                    let enrollments = tx.journey_enrollments(journey_id, 500, after)?;
                    let contacts: Vec<i64> = enrollments.iter().map(|e| e.contact_id).collect();
                    if !tx.lock_contacts(&contacts)? {
                        break enrollments;
                    }
                };
                for e in enrollments {
                    after = e.id;
                    batch += 1;
                    let Some(journey) =
                        registry.version(self.store.as_ref(), &e.journey_id, e.version)?
                    else {
                        continue;
                    };
                    let upto = tx.processed_upto(e.contact_id)?;
                    if let Some(outcome) =
                        self.step_with_facts(tx, &journey, &e, Input::Resume, now, upto)?
                    {
                        let at = StepAt::new(now, upto);
                        self.apply(tx, &journey, outcome, at, &mut stats, &mut report)?;
                        moved += 1;
                    }
                }
                tx.add_stats(&stats, now)
            })?;
            if batch == 0 {
                return Ok(moved);
            }
        }
    }

    /// After a segment was created or changed: every contact is evaluated against it (entries
    /// and exits are recorded as for any change). Returns the number of members.
    pub fn backfill_segment(&self, segment_id: &str, now: Timestamp) -> Result<i64, StoreError> {
        let mut after = 0;
        let mut members = 0;
        loop {
            let mut batch = 0;
            self.store.engine_tx(&mut |tx| {
                batch = 0;
                let segment: Vec<_> = self
                    .load_segments(tx)?
                    .into_iter()
                    .filter(|s| s.id == segment_id)
                    .collect();
                for contact in tx.contact_ids(after, 500)? {
                    after = contact;
                    batch += 1;
                    segments::refresh_contact(tx, &segment, contact, &Changes::everything(), now)?;
                    if tx.is_segment_member(segment_id, contact)? {
                        members += 1;
                    }
                }
                Ok(())
            })?;
            if batch == 0 {
                return Ok(members);
            }
        }
    }

    /// After a journey is published or resumed: schedules its date, inactivity and schedule
    /// triggers for every contact and, with `enroll_existing`, enrolls the contacts who
    /// already match (see `triggers::schedule_journey`).
    pub fn schedule_journey(
        &self,
        journey_id: &str,
        enroll_existing: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(journey) = self.registry().live_journey(journey_id) else {
            return Ok(());
        };
        let mut after = 0;
        let mut more = true;
        while more {
            self.store.engine_tx(&mut |tx| {
                more = triggers::schedule_journey(tx, &journey, enroll_existing, &mut after, now)?;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Counts (and samples up to `sample` of) the contacts a condition matches now, without
    /// changing anything.
    pub fn preview_condition(
        &self,
        condition: &waymark_core::Condition,
        sample: usize,
        now: Timestamp,
    ) -> Result<(i64, Vec<i64>), StoreError> {
        let mut after = 0;
        let mut count = 0;
        let mut found = Vec::new();
        loop {
            let mut batch = 0;
            self.store.engine_tx(&mut |tx| {
                batch = 0;
                for contact in tx.contact_ids(after, 500)? {
                    after = contact;
                    batch += 1;
                    if segments::matches(tx, condition, contact, now)? {
                        count += 1;
                        if found.len() < sample {
                            found.push(contact);
                        }
                    }
                }
                Ok(())
            })?;
            if batch == 0 {
                return Ok((count, found));
            }
        }
    }

    /// After an archive: every active enrollment exits.
    pub fn archive_journey(&self, journey_id: &str, now: Timestamp) -> Result<usize, StoreError> {
        let mut moved = 0;
        let mut after = 0;
        loop {
            let mut batch = 0;
            self.store.engine_tx(&mut |tx| {
                batch = 0;
                let mut stats = StatsDeltas::default();
                for mut e in tx.journey_enrollments(journey_id, 500, after)? {
                    after = e.id;
                    batch += 1;
                    let log = vec![StepLog::Ended {
                        node: e.node.clone(),
                        status: EnrollmentStatus::Exited,
                        reason: "journey archived".into(),
                    }];
                    e.status = EnrollmentStatus::Exited;
                    e.wake_at = None;
                    tx.update_enrollment(&e, now)?;
                    tx.record_steps(e.id, &log, now)?;
                    stats.node(journey_id, e.version, &e.node).exited += 1;
                }
                tx.add_stats(&stats, now)
            })?;
            moved += batch;
            if batch == 0 {
                return Ok(moved);
            }
        }
    }

    fn step_with_facts(
        &self,
        tx: &mut dyn EngineTx,
        journey: &Journey,
        enrollment: &Enrollment,
        input: Input<'_>,
        now: Timestamp,
        upto_seq: i64,
    ) -> Result<Option<StepOutcome>, StoreError> {
        let traits = tx.contact(enrollment.contact_id)?.traits;
        let facts = TxFacts {
            tx: RefCell::new(tx),
            contact_id: enrollment.contact_id,
            enrollment_id: enrollment.id,
            journey_id: enrollment.journey_id.clone(),
            traits,
            upto_seq,
            error: RefCell::new(None),
        };
        let outcome = step(journey, enrollment, input, now, &facts);
        if let Some(e) = facts.error.into_inner() {
            return Err(e);
        }
        Ok(outcome)
    }

    fn apply(
        &self,
        tx: &mut dyn EngineTx,
        journey: &Journey,
        outcome: StepOutcome,
        at: StepAt,
        stats: &mut StatsDeltas,
        report: &mut BatchReport,
    ) -> Result<(), StoreError> {
        let now = at.now;
        let e = &outcome.enrollment;
        let jid = journey.id();
        tx.update_enrollment(e, now)?;
        tx.record_steps(e.id, &outcome.log, now)?;
        // The node this step arrived at last: a send that waits right after arriving was
        // deferred by quiet hours or a blocked date (a send waiting again later is not counted
        // twice).
        let mut arrived: Option<&str> = None;
        for entry in &outcome.log {
            match entry {
                StepLog::Entered { node } => {
                    stats.node(jid, e.version, node).entered += 1;
                    report.steps += 1;
                    arrived = Some(node);
                }
                StepLog::Left { node, output } => {
                    stats.node(jid, e.version, node).completed += 1;
                    stats.left(jid, e.version, node, output);
                    if let Some(x) = experiment_node(journey, node) {
                        tx.add_experiment_counts(jid, node, output, 1, 0)?;
                        decide_experiment(tx, jid, node, x, now)?;
                    }
                }
                StepLog::Ended {
                    node,
                    status: EnrollmentStatus::Converted,
                    ..
                } => {
                    // Only a goal event converts: the one this step was given.
                    let event = tx.event(at.upto_seq)?.map(StoredEvent::into_record);
                    conversions::convert(tx, journey, e, node, event.as_ref(), now, stats)?;
                }
                StepLog::Ended { node, .. } => stats.node(jid, e.version, node).exited += 1,
                StepLog::Skipped { node, .. } => stats.node(jid, e.version, node).suppressed += 1,
                StepLog::Waiting { node, .. } => {
                    if arrived == Some(node.as_str())
                        && journey.node(node).is_some_and(|n| n.kind.sends_message())
                    {
                        stats.deferred(jid, e.version, node);
                    }
                }
            }
        }
        for effect in &outcome.effects {
            match effect {
                Effect::SetTraits(traits) => tx.update_traits(e.contact_id, traits, now)?,
                Effect::AddToList(list) => recorded::add_to_list(tx, e.contact_id, list, now)?,
                Effect::EmitEvent {
                    name,
                    properties,
                    idempotency_key,
                } => {
                    let id = format!("emit:{idempotency_key}");
                    recorded::record(tx, e.contact_id, name, properties.clone(), id, now)?;
                }
                Effect::Enroll {
                    journey: target,
                    idempotency_key,
                } => {
                    let payload = tx
                        .event(e.entered_seq)?
                        .map(|t| t.event.properties)
                        .unwrap_or_default();
                    let id = format!("enroll:{idempotency_key}");
                    recorded::request_enrollment(tx, e.contact_id, target, payload, id, now)?;
                }
                Effect::ExpireScore {
                    score_trait,
                    points,
                    at,
                } => tx.add_score_expiry(e.contact_id, score_trait, *points, *at)?,
                Effect::Unsubscribe { channel, topic } => {
                    let topic = topic.as_deref().unwrap_or(crate::consent::ALL_TOPICS);
                    crate::consent::unsubscribe_in_journey(
                        tx,
                        e.contact_id,
                        *channel,
                        topic,
                        jid,
                        now,
                    )?;
                }
                Effect::RemoveFromList(list) => {
                    recorded::remove_from_list(tx, e.contact_id, list, now)?
                }
                Effect::Webhook {
                    node,
                    webhook,
                    idempotency_key,
                } => {
                    let from = JourneyNode {
                        journey,
                        enrollment: e,
                        node,
                        upto_seq: at.upto_seq,
                    };
                    let decision =
                        self.gate
                            .send_webhook(tx, from, webhook, idempotency_key, now)?;
                    count_decision(
                        stats,
                        report,
                        (jid, e.version, node),
                        OutboxChannel::Webhook,
                        &decision,
                    );
                }
                Effect::Send {
                    channel,
                    node,
                    template,
                    idempotency_key,
                } => {
                    let outgoing = Outgoing {
                        idempotency_key: idempotency_key.clone(),
                        contact_id: e.contact_id,
                        channel: *channel,
                        template: TemplateSource::Stored(template),
                        purpose: Purpose::Journey(JourneyNode {
                            journey,
                            enrollment: e,
                            node,
                            upto_seq: at.upto_seq,
                        }),
                        to: None,
                        data: None,
                    };
                    let decision = self.gate.send(tx, outgoing, now)?;
                    let outbox_channel = match channel {
                        Channel::Email => OutboxChannel::Email,
                        Channel::Sms => OutboxChannel::Sms,
                    };
                    count_decision(
                        stats,
                        report,
                        (jid, e.version, node),
                        outbox_channel,
                        &decision,
                    );
                }
            }
        }
        Ok(())
    }
}

/// When a step is applied: the clock, and the last accepted event the step saw.
#[derive(Debug, Clone, Copy)]
struct StepAt {
    now: Timestamp,
    upto_seq: i64,
}

impl StepAt {
    fn new(now: Timestamp, upto_seq: i64) -> Self {
        StepAt { now, upto_seq }
    }
}

/// Counts what the send gate did with a node's message: held back and failed messages in the
/// node's statistics and the metrics, newly queued ones in the batch's report (to wake the
/// dispatcher).
fn count_decision(
    stats: &mut StatsDeltas,
    report: &mut BatchReport,
    (journey, version, node): (&str, i64, &str),
    channel: OutboxChannel,
    decision: &Decision,
) {
    match decision.status {
        MessageStatus::Suppressed => stats.node(journey, version, node).suppressed += 1,
        MessageStatus::Failed => stats.node(journey, version, node).failed += 1,
        _ => {}
    }
    if matches!(
        decision.status,
        MessageStatus::Suppressed | MessageStatus::Failed
    ) {
        metrics::counter!("waymark_messages_total", "channel" => channel.as_str(), "status" => decision.status.as_str()).increment(1);
    }
    if decision.queued() {
        report.messages += 1;
    }
}

pub(crate) fn experiment_node<'j>(journey: &'j Journey, node: &str) -> Option<&'j ExperimentNode> {
    match journey.node(node).map(|n| &n.kind) {
        Some(NodeKind::Experiment(x)) => Some(x),
        _ => None,
    }
}

/// Declares the experiment's winner once the counts allow it (see `waymark_core::experiment`);
/// a declared winner is final.
pub(crate) fn decide_experiment(
    tx: &mut dyn EngineTx,
    journey_id: &str,
    node: &str,
    experiment: &ExperimentNode,
    now: Timestamp,
) -> Result<(), StoreError> {
    if tx.experiment_winner(journey_id, node)?.is_some() {
        return Ok(());
    }
    let counts = tx.experiment_counts(journey_id, node)?;
    let variants: Vec<VariantCounts> = experiment
        .variants
        .iter()
        .map(|v| {
            let c = counts.iter().find(|c| c.variant == v.name);
            VariantCounts {
                name: v.name.clone(),
                entered: c.map_or(0, |c| c.entered.max(0) as u64),
                converted: c.map_or(0, |c| c.converted.max(0) as u64),
            }
        })
        .collect();
    let verdict = decide(&variants, experiment.min_sample, experiment.confidence);
    if let Some(winner) = &verdict.winner {
        let detail = json!({
            "test": "one-sided two-proportion z-test",
            "confidence": experiment.confidence,
            "min_sample": experiment.min_sample,
            "variants": variants,
            "comparisons": verdict.comparisons,
        });
        tx.set_experiment_winner(journey_id, node, winner, &detail, now)?;
        tracing::info!(journey = journey_id, node, winner = %winner, "experiment winner declared");
    }
    Ok(())
}

/// Tells the store what stepping `events` will read: their contacts, and those contacts' earlier
/// enrollments in the journeys the events may start.
fn read_ahead_of_events(
    tx: &mut dyn EngineTx,
    registry: &Registry,
    events: &[StoredEvent],
) -> Result<(), StoreError> {
    let contacts: Vec<i64> = events.iter().filter_map(|e| e.contact_id).collect();
    let mut journeys: Vec<String> = (events.iter())
        .flat_map(|e| registry.triggered_by(&e.event.name))
        .map(|(journey, _)| journey.id().to_string())
        .collect();
    journeys.sort_unstable();
    journeys.dedup();
    let journeys: Vec<&str> = journeys.iter().map(String::as_str).collect();
    tx.read_ahead(&ReadAhead {
        contacts: &contacts,
        journeys: &journeys,
        events: &[],
    })
}

/// The next batch of accepted events, their contacts locked against other processes' engines
/// (see `ContactsTx::lock_contacts`). A merge another process committed before the locks were
/// taken may have moved some of the events to another contact, so the batch is read again
/// until every contact in it is locked.
fn pending_events_locked(
    tx: &mut dyn EngineTx,
    upto_seq: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    loop {
        let events = tx.pending_events(upto_seq, limit)?;
        let contacts: Vec<i64> = events.iter().filter_map(|e| e.contact_id).collect();
        if !tx.lock_contacts(&contacts)? {
            return Ok(events);
        }
    }
}
