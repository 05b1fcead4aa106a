//! The population's side of a simulation: it moves the server's simulated clock step by step,
//! and at each step sends what people do then (entries, then reactions to what the journey
//! sent them), and reads the messages the journey made. Everything goes through the HTTP API
//! of the server driven, so a private server and a live one are driven the same way.
//!
//! Time moves in steps of the resolution (15 minutes by default): entries and reactions happen
//! at the first step at or after their drawn time, and a reaction at least one step after what
//! it reacts to. Timers of the journey fire at their exact times (the clock advance stops at
//! each), so waits and quiet hours are as precise as on a live server.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use anyhow::{Context, bail};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use waymark_core::journey::OutboxChannel;

use crate::simulate::replay::Feed;
use crate::simulate::scenario::{JourneyShape, Scenario, Trigger, user_id};
use crate::simulate::tally::{Message, Tally};
use crate::simulate::target::Target;

/// Calls per `POST /v1/batch` and contacts per `POST /v1/contacts/import`. Small enough that
/// a request's bodies (built, sent, parsed: several copies) stay a few MB: the allocator keeps
/// what a burst took, so the largest request sets the simulation's memory.
const BATCH: usize = 1000;
pub(super) const IMPORT_CHUNK: usize = 1000;
/// Messages read per page.
const PAGE: usize = 1000;

/// Who the people are.
pub enum People {
    /// `Scenario::contact(0..count)`.
    Synthetic { count: u64 },
    /// Copied in already (from a file or a server); their user ids, in arrival order.
    Listed { user_ids: Vec<String> },
}

impl People {
    pub fn count(&self) -> u64 {
        match self {
            People::Synthetic { count } => *count,
            People::Listed { user_ids } => user_ids.len() as u64,
        }
    }

    fn user_id(&self, index: u64) -> String {
        match self {
            People::Synthetic { .. } => user_id(index),
            People::Listed { user_ids } => user_ids[index as usize].clone(),
        }
    }
}

/// How a contact enters the journey.
pub enum Entry {
    /// It performs this event.
    Event(String),
    /// It is added to this list.
    List(String),
    /// It is enrolled through `POST /v1/journeys/{id}/enroll`.
    Api,
    /// The engine enters it (segment, date, inactivity or schedule triggers): no arrivals.
    ByTheEngine,
}

pub struct Plan<'a> {
    pub journey_id: &'a str,
    pub shape: &'a JourneyShape,
    pub entry: Entry,
    pub scenario: &'a Scenario,
    pub people: People,
    pub start: Timestamp,
    /// What is counted starts here (a replay's warm-up before it is run, not counted).
    pub counted_from: Timestamp,
    /// Days run, from `start`.
    pub days: usize,
    pub resolution: SignedDuration,
}

impl Plan<'_> {
    /// The days counted, from `counted_from`.
    fn counted_days(&self) -> usize {
        let before = self.counted_from.duration_since(self.start).as_hours() / 24;
        self.days.saturating_sub(before.max(0) as usize)
    }
}

/// What the run saw besides the journey's own report.
pub struct Observed {
    pub tally: Tally,
    pub entries: u64,
    pub reactions: BTreeCount,
    /// Per day: the enrollments waiting at each node at the end of the day.
    pub waiting: Vec<(Timestamp, Map<String, Value>)>,
    pub messages_read: u64,
}

/// Events sent by the population, per event name.
pub type BTreeCount = std::collections::BTreeMap<String, u64>;

/// A reaction waiting for its time.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    at: Timestamp,
    /// Ties keep the order they were drawn in.
    order: u64,
    user_id: String,
    event: String,
    /// What it reacts to (part of the event's message id and of later draws).
    occasion: String,
    properties: String,
}

/// Imports the synthetic population in chunks.
pub async fn import_synthetic(
    target: &Target,
    scenario: &Scenario,
    count: u64,
) -> anyhow::Result<()> {
    let mut index = 0;
    while index < count {
        let end = (index + IMPORT_CHUNK as u64).min(count);
        let contacts: Vec<Value> = (index..end).map(|i| scenario.contact(i)).collect();
        import(target, contacts, None).await?;
        index = end;
    }
    Ok(())
}

/// Imports contacts (`POST /v1/contacts/import`), optionally into a list; every row must be
/// taken.
pub async fn import(
    target: &Target,
    contacts: Vec<Value>,
    list: Option<&str>,
) -> anyhow::Result<()> {
    let mut body = json!({ "contacts": contacts });
    if let Some(list) = list {
        body["list"] = json!(list);
    }
    let result = target.post("/v1/contacts/import", &body).await?;
    if result["rejected"].as_u64().unwrap_or(0) > 0 {
        bail!("contacts were refused: {}", result["errors"]);
    }
    Ok(())
}

/// Runs the period. With a `replay` feed, the period's real events are sent as the clock
/// reaches them, in place of drawn arrivals.
pub async fn run(
    target: &Target,
    plan: &Plan<'_>,
    mut replay: Option<&mut Feed<'_>>,
) -> anyhow::Result<Observed> {
    let end = plan.start + SignedDuration::from_hours(24 * plan.days as i64);
    let step = plan.resolution;
    let count = plan.people.count();
    let mut now = plan.start;
    let mut next_person = 0u64;
    let mut pending: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut observed = Observed {
        tally: Tally::new(plan.counted_from, plan.counted_days()),
        entries: 0,
        reactions: BTreeCount::new(),
        waiting: Vec::new(),
        messages_read: 0,
    };
    let mut cursor = 0i64;
    let mut next_day = plan.start + SignedDuration::from_hours(24);
    let arrives = !matches!(plan.entry, Entry::ByTheEngine);

    while now < end {
        // 1. Who enters now.
        let mut calls = Vec::new();
        let mut list_adds = Vec::new();
        let mut enrolls = Vec::new();
        while arrives && next_person < count {
            let Some(at) = plan.scenario.arrival(next_person, count, plan.start) else {
                next_person += 1;
                continue;
            };
            if at > now {
                break;
            }
            let index = next_person;
            next_person += 1;
            let user = plan.people.user_id(index);
            let occasion = format!("a{index}");
            let mut properties = plan.scenario.arrival_properties.clone();
            if let Some(key) = &plan.shape.entry_key {
                properties
                    .entry(key.clone())
                    .or_insert_with(|| json!(entry_key(&user)));
            }
            match &plan.entry {
                Entry::Event(event) => calls.push(track(&user, event, &occasion, now, &properties)),
                Entry::List(_) => list_adds.push(json!({ "user_id": user })),
                Entry::Api => enrolls.push(json!({
                    "user_id": user,
                    "payload": properties,
                    "message_id": format!("sim:{occasion}"),
                })),
                Entry::ByTheEngine => {}
            }
            observed.entries += 1;
            for (rule, delay) in plan.scenario.reactions(&Trigger::Entry, &occasion) {
                let mut props = rule.properties.clone();
                if let Some(key) = &plan.shape.entry_key {
                    props
                        .entry(key.clone())
                        .or_insert_with(|| json!(entry_key(&user)));
                }
                pending.push(Reverse(Pending {
                    at: on_step(now, now + delay, step),
                    order: next(&mut order),
                    user_id: user.clone(),
                    event: rule.event.clone(),
                    occasion: format!("{occasion}>{}", rule.event),
                    properties: Value::Object(props).to_string(),
                }));
            }
        }
        if let Some(feed) = replay.as_deref_mut() {
            // The period's events due now, after the entries and a request at a time.
            target.batch(std::mem::take(&mut calls)).await?;
            loop {
                let due = feed.due(now, BATCH).await?;
                if due.is_empty() {
                    break;
                }
                target.batch(due).await?;
            }
        }
        // 2. Reactions due now, and what they set off in turn.
        while pending.peek().is_some_and(|Reverse(p)| p.at <= now) {
            let Reverse(p) = pending.pop().expect("peeked");
            let properties: Map<String, Value> =
                serde_json::from_str(&p.properties).context("a reaction's properties")?;
            calls.push(track(&p.user_id, &p.event, &p.occasion, now, &properties));
            *observed.reactions.entry(p.event.clone()).or_default() += 1;
            for (rule, delay) in plan
                .scenario
                .reactions(&Trigger::Event(&p.event), &p.occasion)
            {
                let mut props = properties.clone();
                props.extend(rule.properties.clone());
                pending.push(Reverse(Pending {
                    at: on_step(now, now + delay, step),
                    order: next(&mut order),
                    user_id: p.user_id.clone(),
                    event: rule.event.clone(),
                    occasion: format!("{}>{}", p.occasion, rule.event),
                    properties: Value::Object(props).to_string(),
                }));
            }
        }
        for chunk in calls.chunks(BATCH) {
            target.batch(chunk.to_vec()).await?;
        }
        if let Entry::List(list) = &plan.entry {
            for chunk in list_adds.chunks(IMPORT_CHUNK) {
                import(target, chunk.to_vec(), Some(list)).await?;
            }
        }
        for enroll in enrolls {
            target
                .post(&format!("/v1/journeys/{}/enroll", plan.journey_id), &enroll)
                .await?;
        }

        // 3. The journey's turn: everything sent now is processed, then the clock moves on.
        let seconds = step.as_secs().min(end.duration_since(now).as_secs()).max(1);
        now = target.advance(seconds).await?;

        // 4. What it sent, and how people react to it.
        cursor = read_messages(
            target,
            plan,
            cursor,
            now,
            &mut observed,
            &mut |m, occasion| {
                for (rule, delay) in plan.scenario.reactions(
                    &Trigger::Message {
                        channel: m.channel,
                        node: &m.node,
                    },
                    occasion,
                ) {
                    let mut props = rule.properties.clone();
                    props.insert("message_id".into(), json!(m.id));
                    if let Some(key) = &plan.shape.entry_key {
                        props
                            .entry(key.clone())
                            .or_insert_with(|| json!(entry_key(&m.user_id)));
                    }
                    pending.push(Reverse(Pending {
                        at: on_step(now, m.at + delay, step),
                        order: next(&mut order),
                        user_id: m.user_id.clone(),
                        event: rule.event.clone(),
                        occasion: format!("{occasion}>{}", rule.event),
                        properties: Value::Object(props).to_string(),
                    }));
                }
            },
        )
        .await?;

        if now >= next_day {
            let stats = target
                .get(&format!("/v1/journeys/{}/stats", plan.journey_id))
                .await?;
            let mut waiting = Map::new();
            for node in stats["nodes"].as_array().into_iter().flatten() {
                if let (Some(id), Some(n)) = (node["node"].as_str(), node["waiting"].as_i64()) {
                    waiting.insert(id.to_string(), json!(n));
                }
            }
            if next_day > plan.counted_from {
                observed.waiting.push((next_day, waiting));
            }
            next_day += SignedDuration::from_hours(24);
        }
    }
    Ok(observed)
}

/// A message sent (or not) as the reactions need it.
struct Sent {
    id: i64,
    user_id: String,
    channel: OutboxChannel,
    node: String,
    at: Timestamp,
}

/// Reads the journey's messages after `cursor`, tallies them, and calls `react` with each one
/// sent. Stops before the first still queued (a send rate holds it), to read it again once it
/// has left. Returns the new cursor.
async fn read_messages(
    target: &Target,
    plan: &Plan<'_>,
    mut cursor: i64,
    now: Timestamp,
    observed: &mut Observed,
    react: &mut impl FnMut(&Sent, &str),
) -> anyhow::Result<i64> {
    loop {
        // Without their bodies: only what happened to them is needed.
        let mut page = target
            .get(&format!(
                "/v1/messages?journey_id={}&after={cursor}&limit={PAGE}&bodies=false",
                plan.journey_id
            ))
            .await?;
        let messages = match page["messages"].take() {
            Value::Array(messages) => messages,
            _ => Vec::new(),
        };
        let full = messages.len() == PAGE;
        for m in &messages {
            let status = m["status"].as_str().unwrap_or_default();
            if status == "queued" {
                return Ok(cursor);
            }
            let id = m["id"].as_i64().context("a message without an id")?;
            let channel = m["channel"]
                .as_str()
                .and_then(OutboxChannel::parse)
                .context("a message without a channel")?;
            let time = |field: &str| m[field].as_str().and_then(|s| s.parse::<Timestamp>().ok());
            let created_at = time("created_at").unwrap_or(now);
            let sent_at = time("sent_at");
            if created_at >= plan.counted_from {
                observed.tally.add(&Message {
                    channel,
                    status,
                    created_at,
                    sent_at,
                    error: m["error"].as_str(),
                });
            }
            observed.messages_read += 1;
            cursor = id;
            if status != "sent" {
                continue;
            }
            let (Some(user), Some(node)) = (m["user_id"].as_str(), m["node"].as_str()) else {
                continue;
            };
            let sent = Sent {
                id,
                user_id: user.to_string(),
                channel,
                node: node.to_string(),
                at: sent_at.unwrap_or(created_at),
            };
            // The occasion names the message by what is the same on every server driven the
            // same way (not its id): its contact, node and time.
            let occasion = format!("m{user}:{node}:{}", sent.at.as_millisecond());
            react(&sent, &occasion);
        }
        if !full {
            return Ok(cursor);
        }
    }
}

/// The first step at or after `at`, and after `now` (a reaction is at least one step later
/// than what it reacts to).
fn on_step(now: Timestamp, at: Timestamp, step: SignedDuration) -> Timestamp {
    let after = at.duration_since(now);
    let steps = (after.as_secs_f64() / step.as_secs_f64()).ceil().max(1.0);
    now + SignedDuration::from_secs(step.as_secs() * steps as i64)
}

fn next(order: &mut u64) -> u64 {
    *order += 1;
    *order
}

/// The entry key of a contact's (one) arrival, which its reactions carry too.
fn entry_key(user: &str) -> String {
    format!("{user}-entry")
}

fn track(
    user: &str,
    event: &str,
    occasion: &str,
    at: Timestamp,
    properties: &Map<String, Value>,
) -> Value {
    json!({
        "type": "track",
        "userId": user,
        "event": event,
        "messageId": format!("sim:{occasion}"),
        "timestamp": at,
        "properties": properties,
    })
}
