//! A simulation's scenario: who the people are (synthetic contacts), when they enter the
//! journey, and how they behave once messages reach them (opens, clicks, orders...), each with
//! a probability and a delay distribution. Read from a small YAML or JSON file; everything it
//! leaves out is filled with stated assumptions that the result prints.
//!
//! Every random choice is a hash of the seed and of what the choice is about (a contact, an
//! arrival, a rule firing for one message), not the next number of one stream: the same seed
//! gives the same choices in whatever order the engine's messages are read, so a run on a
//! private store and one on a live server agree exactly. No I/O here.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use waymark_core::duration::Duration;
use waymark_core::journey::{JourneyDocument, NodeKind, OutboxChannel};

use crate::simulate::SimulateError;

/// The most synthetic contacts one run makes.
pub const MAX_CONTACTS: u64 = 10_000_000;
/// The most behaviour rules a scenario may have.
const MAX_RULES: usize = 100;
/// The most values one synthetic trait may take.
const MAX_TRAIT_VALUES: usize = 100;
/// The longest delay a rule may draw: later reactions would fall outside any period.
const MAX_DELAY: SignedDuration = SignedDuration::from_hours(24 * 366);
/// Tracking events the engine reads as engagement with a message (`message_id` property).
pub const EMAIL_OPENED: &str = "Email Opened";
pub const EMAIL_CLICKED: &str = "Email Link Clicked";

/// The scenario file as written. Unknown fields are refused, so that a typo is not a silent
/// assumption.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    #[serde(default)]
    pub population: PopulationSpec,
    #[serde(default)]
    pub arrivals: ArrivalSpec,
    #[serde(default)]
    pub behaviour: Vec<RuleSpec>,
}

/// Synthetic contacts: how many, and the shares of their attributes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopulationSpec {
    /// How many (`--contacts` overrides).
    pub contacts: Option<u64>,
    /// The share with an email address (default all).
    pub email: Option<Share>,
    /// The share with a phone number (default all).
    pub phone: Option<Share>,
    /// The share that unsubscribed from all marketing (default none).
    pub unsubscribed: Option<Share>,
    /// Time zones and their shares (default UTC for everyone).
    #[serde(default)]
    pub timezones: BTreeMap<String, Share>,
    /// Traits: for each, its values and their shares (`plan: {free: 70%, pro: 30%}`). A value
    /// that reads as a JSON number or boolean becomes one.
    #[serde(default)]
    pub traits: BTreeMap<String, BTreeMap<String, Share>>,
}

/// When people enter: each contact of the population (or `share` of them) once, spread evenly
/// over `over` from the start.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrivalSpec {
    pub share: Option<Share>,
    /// e.g. `7d`; default the whole period.
    pub over: Option<String>,
    /// Properties of the trigger event (an entry key, e.g. `cart_id`, is added unique to each
    /// arrival when not given).
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// One reaction: after `after`, with `probability`, the contact performs `event` after a
/// delay drawn from `delay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub event: String,
    /// `entry` (the contact entered), a channel (`email`, `sms`, `webhook`: each message sent
    /// on it), a node id (each message that node sent), or the event of another rule.
    pub after: String,
    pub probability: Share,
    #[serde(default)]
    pub delay: Option<DelaySpec>,
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// A share or probability: `0.25` or `"25%"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share(pub f64);

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let value = match Raw::deserialize(d)? {
            Raw::Number(n) => n,
            Raw::Text(t) => {
                let t = t.trim();
                let parsed = match t.strip_suffix('%') {
                    Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
                    None => t.parse::<f64>(),
                };
                parsed.map_err(|_| {
                    serde::de::Error::custom(format!("`{t}` is not a share: write 0.25 or \"25%\""))
                })?
            }
        };
        if !(0.0..=1.0).contains(&value) {
            return Err(serde::de::Error::custom(format!(
                "a share must be between 0 and 1 (0% and 100%), not {value}"
            )));
        }
        Ok(Share(value))
    }
}

/// A delay: fixed (`"2h"`), log-normal around a median (`{median: 2h, spread: 1}`, spread
/// being the standard deviation of its logarithm), or uniform (`{min: 1h, max: 1d}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DelaySpec {
    Fixed(String),
    LogNormal {
        median: String,
        #[serde(default)]
        spread: Option<f64>,
    },
    Uniform {
        min: String,
        max: String,
    },
}

/// A delay distribution, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    Fixed(SignedDuration),
    LogNormal {
        median: SignedDuration,
        spread: f64,
    },
    Uniform {
        min: SignedDuration,
        max: SignedDuration,
    },
}

impl Delay {
    /// The delay for two uniform draws in [0, 1).
    fn sample(self, u1: f64, u2: f64) -> SignedDuration {
        let drawn = match self {
            Delay::Fixed(d) => d,
            Delay::LogNormal { median, spread } => {
                // Box-Muller: a standard normal from two uniforms (1 - u1 is never 0).
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let secs = median.as_secs_f64() * (spread * z).exp();
                SignedDuration::from_secs_f64(secs.min(MAX_DELAY.as_secs_f64()))
            }
            Delay::Uniform { min, max } => {
                let span = (max - min).as_secs_f64();
                min + SignedDuration::from_secs_f64(span * u1)
            }
        };
        drawn.clamp(SignedDuration::ZERO, MAX_DELAY)
    }

    fn describe(self) -> String {
        let d = |s: SignedDuration| format!("{:#}", s);
        match self {
            Delay::Fixed(x) => d(x),
            Delay::LogNormal { median, spread } => {
                format!("log-normal, median {}, spread {spread}", d(median))
            }
            Delay::Uniform { min, max } => format!("uniform between {} and {}", d(min), d(max)),
        }
    }
}

/// What a rule reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// The contact entered the journey (its trigger event).
    Entry,
    /// Each message sent on the channel.
    OutboxChannel(OutboxChannel),
    /// Each message the send node sent.
    Node(String),
    /// Each time the contact performs this event in the simulation (another rule's).
    Event(String),
}

impl After {
    fn describe(&self) -> String {
        match self {
            After::Entry => "entry".into(),
            After::OutboxChannel(c) => format!("each {} sent", c.as_str()),
            After::Node(n) => format!("each message of node `{n}`"),
            After::Event(e) => format!("`{e}`"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub event: String,
    pub after: After,
    pub probability: f64,
    pub delay: Delay,
    pub properties: Map<String, Value>,
}

/// Where an assumption came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The scenario file.
    Scenario,
    /// This installation's measured rates (the journey's report on the server).
    Measured,
    /// Waymark's default, printed so that nobody mistakes it for a forecast from data.
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Scenario => "scenario",
            Source::Measured => "measured",
            Source::Default => "default",
        }
    }
}

/// Measured behaviour of an installation, when there is any (see `super::measured`).
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// People's opens per email delivered, and the median time to the open.
    pub open: Option<(f64, SignedDuration)>,
    /// People's clicks per email opened, and the median time from the send to the click.
    pub click: Option<(f64, SignedDuration)>,
    /// Conversions per enrollment, and the median time from the send to the conversion.
    pub conversion: Option<(f64, SignedDuration)>,
}

/// A scenario ready to run on one journey.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub population: Population,
    pub arrival_share: f64,
    /// Arrivals are spread over this long from the start.
    pub arrivals_over: SignedDuration,
    pub arrival_properties: Map<String, Value>,
    pub rules: Vec<Rule>,
    /// Each rule with where it came from, for the result.
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone)]
pub struct Population {
    pub contacts: u64,
    email: f64,
    phone: f64,
    unsubscribed: f64,
    timezones: Vec<(String, f64)>,
    traits: Vec<(String, Vec<(Value, f64)>)>,
}

/// What the journey is, as far as the scenario cares.
pub struct JourneyShape {
    /// The trigger event, for event-triggered journeys.
    pub trigger_event: Option<String>,
    /// The entry key (`cart_id`): each arrival gets its own, and reactions carry it.
    pub entry_key: Option<String>,
    /// Events waited for, in node order, with the wait's timeout.
    pub waits: Vec<(String, Option<SignedDuration>)>,
    pub goal: Option<String>,
    /// Send nodes and their channel.
    pub senders: Vec<(String, OutboxChannel)>,
}

impl JourneyShape {
    pub fn of(doc: &JourneyDocument) -> Self {
        let mut shape = JourneyShape {
            trigger_event: None,
            entry_key: doc.entry.key.clone(),
            waits: Vec::new(),
            goal: doc.goal.as_ref().map(|g| g.event.clone()),
            senders: Vec::new(),
        };
        for node in &doc.nodes {
            match &node.kind {
                NodeKind::Trigger(t) if shape.trigger_event.is_none() => {
                    shape.trigger_event = t.event.clone();
                }
                NodeKind::WaitForEvent(w) => {
                    let timeout = Duration::parse(&w.timeout)
                        .ok()
                        .map(|d| SignedDuration::from_secs(d.seconds()));
                    shape.waits.push((w.event.clone(), timeout));
                }
                NodeKind::SendEmail(_) => {
                    shape.senders.push((node.id.clone(), OutboxChannel::Email))
                }
                NodeKind::SendSms(_) => shape.senders.push((node.id.clone(), OutboxChannel::Sms)),
                NodeKind::Webhook(_) => shape
                    .senders
                    .push((node.id.clone(), OutboxChannel::Webhook)),
                _ => {}
            }
        }
        shape
    }

    fn sends(&self, channel: OutboxChannel) -> bool {
        self.senders.iter().any(|(_, c)| *c == channel)
    }
}

/// Default behaviour, stated with every result that uses it.
const DEFAULT_OPEN: f64 = 0.25;
const DEFAULT_OPEN_MEDIAN: SignedDuration = SignedDuration::from_hours(2);
const DEFAULT_CLICK: f64 = 0.15;
const DEFAULT_CLICK_MEDIAN: SignedDuration = SignedDuration::from_mins(5);
/// A waited-for or goal event happens for this share of entries.
const DEFAULT_EVENT: f64 = 0.2;
/// Without a timeout to scale by, the median delay of a waited-for or goal event.
const DEFAULT_EVENT_MEDIAN: SignedDuration = SignedDuration::from_hours(24);
const DEFAULT_SPREAD: f64 = 1.0;

impl Scenario {
    /// Checks the file against the journey and fills in what it leaves out: opens and clicks
    /// of email, and every event the journey waits for or has as its goal (from `measured`
    /// where the installation has data, else the defaults).
    pub fn build(
        file: ScenarioFile,
        shape: &JourneyShape,
        seed: u64,
        period: SignedDuration,
        measured: &Measured,
    ) -> Result<Self, SimulateError> {
        let bad = |what: String| SimulateError::Scenario(what);
        let p = file.population;
        if let Some(n) = p.contacts
            && n > MAX_CONTACTS
        {
            return Err(bad(format!(
                "population.contacts: at most {MAX_CONTACTS} contacts, not {n}"
            )));
        }
        let mut timezones = Vec::new();
        for (zone, share) in &p.timezones {
            waymark_core::contact::TimeZoneName::parse(zone)
                .map_err(|e| bad(format!("population.timezones.{zone}: {}", e.0)))?;
            timezones.push((zone.clone(), share.0));
        }
        check_total("population.timezones", timezones.iter().map(|t| t.1))?;
        let mut traits = Vec::new();
        for (name, values) in &p.traits {
            if values.len() > MAX_TRAIT_VALUES {
                return Err(bad(format!(
                    "population.traits.{name}: at most {MAX_TRAIT_VALUES} values"
                )));
            }
            let values: Vec<(Value, f64)> =
                values.iter().map(|(v, s)| (trait_value(v), s.0)).collect();
            check_total(
                &format!("population.traits.{name}"),
                values.iter().map(|v| v.1),
            )?;
            traits.push((name.clone(), values));
        }
        let arrivals_over = match &file.arrivals.over {
            Some(raw) => {
                let d = Duration::parse(raw).map_err(|e| bad(format!("arrivals.over: {e}")))?;
                SignedDuration::from_secs(d.seconds())
            }
            None => period,
        };
        if arrivals_over <= SignedDuration::ZERO {
            return Err(bad("arrivals.over must be longer than zero".into()));
        }
        if file.behaviour.len() > MAX_RULES {
            return Err(bad(format!("behaviour: at most {MAX_RULES} rules")));
        }

        let mut rules = Vec::new();
        let mut sources = Vec::new();
        let rule_events: Vec<String> = file.behaviour.iter().map(|r| r.event.clone()).collect();
        for (i, r) in file.behaviour.into_iter().enumerate() {
            let place = format!("behaviour[{i}]");
            if r.event.trim().is_empty() {
                return Err(bad(format!("{place}.event must not be empty")));
            }
            let after = parse_after(&r.after, shape, &rule_events)
                .map_err(|e| bad(format!("{place}.after: {e}")))?;
            if after == After::Event(r.event.clone()) {
                return Err(bad(format!(
                    "{place}.after: a rule cannot follow its own event `{}`",
                    r.event
                )));
            }
            let delay = match r.delay {
                None => Delay::Fixed(SignedDuration::ZERO),
                Some(spec) => parse_delay(spec).map_err(|e| bad(format!("{place}.delay: {e}")))?,
            };
            rules.push(Rule {
                event: r.event,
                after,
                probability: r.probability.0,
                delay,
                properties: r.properties,
            });
            sources.push(Source::Scenario);
        }
        let covered = |rules: &[Rule], event: &str| rules.iter().any(|r| r.event == event);

        if shape.sends(OutboxChannel::Email) {
            if !covered(&rules, EMAIL_OPENED) {
                let (p, median, source) = match measured.open {
                    Some((p, m)) => (p, m, Source::Measured),
                    None => (DEFAULT_OPEN, DEFAULT_OPEN_MEDIAN, Source::Default),
                };
                rules.push(Rule {
                    event: EMAIL_OPENED.into(),
                    after: After::OutboxChannel(OutboxChannel::Email),
                    probability: p,
                    delay: Delay::LogNormal {
                        median,
                        spread: DEFAULT_SPREAD,
                    },
                    properties: Map::new(),
                });
                sources.push(source);
            }
            if !covered(&rules, EMAIL_CLICKED) {
                let (p, median, source) = match measured.click {
                    Some((p, m)) => (p, m, Source::Measured),
                    None => (DEFAULT_CLICK, DEFAULT_CLICK_MEDIAN, Source::Default),
                };
                rules.push(Rule {
                    event: EMAIL_CLICKED.into(),
                    after: After::Event(EMAIL_OPENED.into()),
                    probability: p,
                    delay: Delay::LogNormal {
                        median,
                        spread: DEFAULT_SPREAD,
                    },
                    properties: Map::new(),
                });
                sources.push(source);
            }
        }
        // Every event the journey waits for, and its goal: after entry, within about half
        // the first wait's timeout for those who do it.
        let mut awaited: Vec<(String, Option<SignedDuration>)> = shape.waits.clone();
        if let Some(goal) = &shape.goal {
            awaited.push((goal.clone(), None));
        }
        for (event, timeout) in awaited {
            if covered(&rules, &event) {
                continue;
            }
            let (p, median, source) = match (&shape.goal, measured.conversion) {
                (Some(goal), Some((p, m))) if *goal == event => (p, m, Source::Measured),
                _ => (
                    DEFAULT_EVENT,
                    timeout.map_or(DEFAULT_EVENT_MEDIAN, |t| t / 2),
                    Source::Default,
                ),
            };
            rules.push(Rule {
                event,
                after: After::Entry,
                probability: p,
                delay: Delay::LogNormal {
                    median,
                    spread: DEFAULT_SPREAD,
                },
                properties: Map::new(),
            });
            sources.push(source);
        }

        Ok(Scenario {
            seed,
            population: Population {
                contacts: p.contacts.unwrap_or(0),
                email: p.email.map_or(1.0, |s| s.0),
                phone: p.phone.map_or(1.0, |s| s.0),
                unsubscribed: p.unsubscribed.map_or(0.0, |s| s.0),
                timezones,
                traits,
            },
            arrival_share: file.arrivals.share.map_or(1.0, |s| s.0),
            arrivals_over,
            arrival_properties: file.arrivals.properties,
            rules,
            sources,
        })
    }

    /// Keeps only the rules of engagement with the journey's messages (opens, clicks): in a
    /// replay, everything else people do comes from the period replayed.
    pub fn keep_engagement_only(&mut self) {
        let keep: Vec<bool> = self
            .rules
            .iter()
            .map(|r| r.event == EMAIL_OPENED || r.event == EMAIL_CLICKED)
            .collect();
        let mut kept = keep.iter();
        self.rules.retain(|_| *kept.next().expect("one per rule"));
        let mut kept = keep.iter();
        self.sources
            .retain(|_| *kept.next().expect("one per source"));
    }

    /// The behaviour used, one line per rule, for the result.
    pub fn assumptions(&self) -> Vec<Value> {
        self.rules
            .iter()
            .zip(&self.sources)
            .map(|(r, source)| {
                json!({
                    "event": r.event,
                    "after": r.after.describe(),
                    "probability": (r.probability * 1e4).round() / 1e4,
                    "delay": r.delay.describe(),
                    "source": source.as_str(),
                })
            })
            .collect()
    }

    /// The synthetic contact `index`, as `POST /v1/contacts/import` takes it.
    pub fn contact(&self, index: u64) -> Value {
        let p = &self.population;
        let id = index.to_string();
        let [a, b, c, d] = draws(self.seed, &["contact", &id]);
        let mut contact = Map::new();
        contact.insert("user_id".into(), json!(user_id(index)));
        if a < p.email {
            contact.insert("email".into(), json!(format!("sim-{index}@example.com")));
        }
        if b < p.phone {
            contact.insert("phone".into(), json!(phone(index)));
        }
        if let Some(zone) = pick(&p.timezones, c) {
            contact.insert("timezone".into(), json!(zone));
        }
        let mut traits = Map::new();
        if d < p.unsubscribed {
            traits.insert("unsubscribed".into(), json!(true));
        }
        for (name, values) in &p.traits {
            let [u, ..] = draws(self.seed, &["trait", name, &id]);
            if let Some(v) = pick(values, u) {
                traits.insert(name.clone(), v.clone());
            }
        }
        contact.insert("traits".into(), Value::Object(traits));
        Value::Object(contact)
    }

    /// When contact `index` of `contacts` enters, if it does: arrivals are spread evenly over
    /// `arrivals_over` (the k-th contact in the k-th slice of it, at a drawn moment within
    /// the slice), so that they come in the order of the contacts and need no memory.
    pub fn arrival(&self, index: u64, contacts: u64, start: Timestamp) -> Option<Timestamp> {
        let [enters, within, ..] = draws(self.seed, &["arrival", &index.to_string()]);
        if enters >= self.arrival_share {
            return None;
        }
        let slice = self.arrivals_over.as_secs_f64() / contacts.max(1) as f64;
        let offset = slice * (index as f64 + within);
        Some(start + SignedDuration::from_secs_f64(offset))
    }

    /// The rules that react to `trigger`, each with whether it fires for the occasion named by
    /// `occasion` (a message, an arrival, an earlier reaction) and its delay.
    pub fn reactions<'a>(
        &'a self,
        trigger: &'a Trigger<'_>,
        occasion: &'a str,
    ) -> impl Iterator<Item = (&'a Rule, SignedDuration)> + 'a {
        self.rules.iter().enumerate().filter_map(move |(i, rule)| {
            if !trigger.matches(&rule.after) {
                return None;
            }
            let [fires, u1, u2, _] = draws(self.seed, &["rule", &i.to_string(), occasion]);
            (fires < rule.probability).then(|| (rule, rule.delay.sample(u1, u2)))
        })
    }
}

/// What happened that rules may react to.
pub enum Trigger<'a> {
    Entry,
    Message {
        channel: OutboxChannel,
        node: &'a str,
    },
    Event(&'a str),
}

impl Trigger<'_> {
    fn matches(&self, after: &After) -> bool {
        match (self, after) {
            (Trigger::Entry, After::Entry) => true,
            (Trigger::Message { channel, .. }, After::OutboxChannel(c)) => channel == c,
            (Trigger::Message { node, .. }, After::Node(n)) => node == n,
            (Trigger::Event(e), After::Event(a)) => e == a,
            _ => false,
        }
    }
}

pub fn user_id(index: u64) -> String {
    format!("sim-{index}")
}

/// A valid North American number, unique per contact up to 8 million.
fn phone(index: u64) -> String {
    let exchange = 200 + (index / 10_000) % 800;
    let line = index % 10_000;
    let area = 212 + 100 * ((index / 8_000_000) % 7);
    format!("+1{area}{exchange:03}{line:04}")
}

/// The value whose cumulative share passes `u`; none when the shares add up to less than `u`.
fn pick<T>(values: &[(T, f64)], u: f64) -> Option<&T> {
    let mut total = 0.0;
    for (v, share) in values {
        total += share;
        if u < total {
            return Some(v);
        }
    }
    None
}

fn check_total(place: &str, shares: impl Iterator<Item = f64>) -> Result<(), SimulateError> {
    let total: f64 = shares.sum();
    if total > 1.0 + 1e-9 {
        return Err(SimulateError::Scenario(format!(
            "{place}: the shares add up to {:.1}%, more than 100%",
            total * 100.0
        )));
    }
    Ok(())
}

fn trait_value(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(raw.to_string()),
    }
}

fn parse_after(raw: &str, shape: &JourneyShape, rule_events: &[String]) -> Result<After, String> {
    let raw = raw.trim();
    if raw == "entry" {
        return Ok(After::Entry);
    }
    if let Some(channel) = OutboxChannel::parse(raw) {
        return Ok(After::OutboxChannel(channel));
    }
    if shape.senders.iter().any(|(id, _)| id == raw) {
        return Ok(After::Node(raw.to_string()));
    }
    if rule_events.iter().any(|e| e == raw) {
        return Ok(After::Event(raw.to_string()));
    }
    let nodes: Vec<&str> = shape.senders.iter().map(|(id, _)| id.as_str()).collect();
    Err(format!(
        "`{raw}` is not `entry`, a channel (email, sms, webhook), a send node of the journey \
         ({}) or the event of another rule",
        if nodes.is_empty() {
            "it has none".to_string()
        } else {
            nodes.join(", ")
        }
    ))
}

fn parse_delay(spec: DelaySpec) -> Result<Delay, String> {
    let d = |raw: &str| -> Result<SignedDuration, String> {
        Duration::parse(raw).map(|d| SignedDuration::from_secs(d.seconds()))
    };
    let delay = match spec {
        DelaySpec::Fixed(raw) => Delay::Fixed(d(&raw)?),
        DelaySpec::LogNormal { median, spread } => {
            let spread = spread.unwrap_or(DEFAULT_SPREAD);
            if !(0.0..=5.0).contains(&spread) {
                return Err(format!("spread must be between 0 and 5, not {spread}"));
            }
            Delay::LogNormal {
                median: d(&median)?,
                spread,
            }
        }
        DelaySpec::Uniform { min, max } => {
            let (min, max) = (d(&min)?, d(&max)?);
            if max < min {
                return Err("max must not be shorter than min".into());
            }
            Delay::Uniform { min, max }
        }
    };
    let longest = match delay {
        Delay::Fixed(x) | Delay::LogNormal { median: x, .. } | Delay::Uniform { max: x, .. } => x,
    };
    if longest > MAX_DELAY {
        return Err("at most 366 days".into());
    }
    Ok(delay)
}

/// Four independent uniform numbers in [0, 1) for one choice, from the seed and what the
/// choice is about.
pub fn draws(seed: u64, about: &[&str]) -> [f64; 4] {
    let mut hash = Sha256::new();
    hash.update(seed.to_le_bytes());
    for part in about {
        // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let bytes = hash.finalize();
    let mut out = [0.0; 4];
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let n = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        // The top 53 bits: every value exactly representable, uniform in [0, 1).
        out[i] = (n >> 11) as f64 / (1u64 << 53) as f64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> JourneyShape {
        let doc: JourneyDocument = serde_json::from_value(json!({
            "id": "cart", "name": "Cart",
            "entry": {"reentry": "every_time", "key": "cart_id"},
            "goal": {"event": "Order Completed"},
            "nodes": [
                {"id": "added", "type": "trigger", "event": "Product Added"},
                {"id": "wait", "type": "wait_for_event", "event": "Order Completed", "timeout": "24h"},
                {"id": "mail", "type": "send_email", "template": "t"}
            ],
            "edges": [
                {"from": "added", "to": "wait"},
                {"from": "wait", "to": "mail", "output": "timeout"}
            ]
        }))
        .unwrap();
        JourneyShape::of(&doc)
    }

    fn build(yaml: &str) -> Result<Scenario, SimulateError> {
        let file: ScenarioFile = serde_yaml_ng::from_str(yaml).unwrap();
        Scenario::build(
            file,
            &shape(),
            7,
            SignedDuration::from_hours(24 * 30),
            &Measured::default(),
        )
    }

    #[test]
    fn what_the_file_leaves_out_is_a_stated_default() {
        let s = build("{}").unwrap();
        let assumptions = s.assumptions();
        let events: Vec<(&str, &str)> = assumptions
            .iter()
            .map(|a| (a["event"].as_str().unwrap(), a["source"].as_str().unwrap()))
            .collect();
        assert_eq!(
            events,
            vec![
                (EMAIL_OPENED, "default"),
                (EMAIL_CLICKED, "default"),
                ("Order Completed", "default"),
            ]
        );
        // The order comes within about half the wait's timeout.
        assert_eq!(
            s.rules[2].delay,
            Delay::LogNormal {
                median: SignedDuration::from_hours(12),
                spread: 1.0
            }
        );
    }

    #[test]
    fn a_rule_of_the_file_replaces_the_default_for_its_event() {
        let s = build(
            "behaviour:\n  - {event: Order Completed, after: entry, probability: 30%, delay: 3h}\n",
        )
        .unwrap();
        let order: Vec<_> = s
            .rules
            .iter()
            .filter(|r| r.event == "Order Completed")
            .collect();
        assert_eq!(order.len(), 1);
        assert_eq!(order[0].probability, 0.3);
        assert_eq!(order[0].delay, Delay::Fixed(SignedDuration::from_hours(3)));
    }

    #[test]
    fn bad_scenarios_say_what_and_where() {
        let err = |yaml: &str| build(yaml).unwrap_err().to_string();
        assert!(err("behaviour:\n  - {event: X, after: nowhere, probability: 1}\n").contains(
            "behaviour[0].after: `nowhere` is not `entry`, a channel (email, sms, webhook), a send node of the journey (mail)"
        ));
        assert!(
            err("population:\n  traits:\n    plan: {free: 70%, pro: 40%}\n")
                .contains("population.traits.plan: the shares add up to 110.0%")
        );
        assert!(
            err("population:\n  timezones: {Mars/Base: 1}\n")
                .contains("population.timezones.Mars/Base")
        );
        assert!(
            err("behaviour:\n  - {event: X, after: entry, probability: 1, delay: {min: 2h, max: 1h}}\n")
                .contains("behaviour[0].delay: max must not be shorter than min")
        );
        let unknown = serde_yaml_ng::from_str::<ScenarioFile>("populaton: {}\n").unwrap_err();
        assert!(unknown.to_string().contains("unknown field `populaton`"));
        let share = serde_yaml_ng::from_str::<ScenarioFile>(
            "behaviour:\n  - {event: X, after: entry, probability: 120%}\n",
        )
        .unwrap_err();
        assert!(share.to_string().contains("between 0 and 1"), "{share}");
    }

    #[test]
    fn the_same_seed_makes_the_same_people_and_choices_and_another_seed_others() {
        let s = build("population:\n  traits:\n    plan: {free: 50%, pro: 50%}\n").unwrap();
        assert_eq!(s.contact(12), s.contact(12));
        let plans: Vec<Value> = (0..200)
            .map(|i| s.contact(i)["traits"]["plan"].clone())
            .collect();
        let pro = plans.iter().filter(|p| **p == json!("pro")).count();
        assert!((70..130).contains(&pro), "about half are pro: {pro}");
        let mut other = s.clone();
        other.seed = 8;
        let differ = (0..50)
            .filter(|&i| other.contact(i) != s.contact(i))
            .count();
        assert!(
            differ > 10,
            "another seed draws other people ({differ} differ)"
        );
    }

    #[test]
    fn arrivals_come_in_contact_order_spread_over_the_period() {
        let s = build("{}").unwrap();
        let start = Timestamp::UNIX_EPOCH;
        let times: Vec<Timestamp> = (0..1000)
            .filter_map(|i| s.arrival(i, 1000, start))
            .collect();
        assert_eq!(times.len(), 1000);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let last = times.last().unwrap().duration_since(start);
        assert!(last <= SignedDuration::from_hours(24 * 30));
        assert!(last > SignedDuration::from_hours(24 * 29));
    }

    #[test]
    fn a_rule_fires_for_about_its_probability_of_occasions_with_its_delays() {
        let s = build(
            "behaviour:\n  - {event: Order Completed, after: entry, probability: 30%, delay: {min: 1h, max: 3h}}\n",
        )
        .unwrap();
        let mut fired = 0;
        for i in 0..2000 {
            let occasion = format!("arrival-{i}");
            for (rule, delay) in s.reactions(&Trigger::Entry, &occasion) {
                assert_eq!(rule.event, "Order Completed");
                assert!(delay >= SignedDuration::from_hours(1));
                assert!(delay <= SignedDuration::from_hours(3));
                fired += 1;
            }
        }
        assert!((500..700).contains(&fired), "about 30% of 2000: {fired}");
    }

    #[test]
    fn log_normal_delays_have_their_median() {
        let d = Delay::LogNormal {
            median: SignedDuration::from_hours(2),
            spread: 1.0,
        };
        let mut samples: Vec<f64> = (0..4001)
            .map(|i| {
                let [u1, u2, ..] = draws(1, &[&i.to_string()]);
                d.sample(u1, u2).as_secs_f64()
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let median = samples[2000] / 3600.0;
        assert!((1.8..2.2).contains(&median), "median {median} h");
    }
}
