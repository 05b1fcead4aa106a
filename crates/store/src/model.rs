//! Rows the store hands out and takes in.

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use waymark_core::EventKind;
use waymark_core::journey::TemplateDefinition;

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub message_id: String,
    pub kind: EventKind,
    pub name: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// `alias` only: the id being merged into `user_id`.
    pub previous_id: Option<String>,
    /// Track properties, or identify traits.
    pub properties: Map<String, Value>,
    pub timestamp: Timestamp,
    pub received_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: NewEvent,
    /// Set for events the engine recorded itself (list, segment and enrollment events), which
    /// carry no user or anonymous id; client events are resolved when processed.
    pub contact_id: Option<i64>,
}

impl StoredEvent {
    /// The event as the stepper sees it.
    pub fn into_record(self) -> waymark_core::EventRecord {
        waymark_core::EventRecord {
            seq: self.seq,
            kind: self.event.kind,
            name: self.event.name,
            properties: self.event.properties,
            timestamp: self.event.timestamp,
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Contact {
    pub id: i64,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub timezone: Option<String>,
    pub traits: Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ContactDetail {
    #[serde(flatten)]
    pub contact: Contact,
    pub anonymous_ids: Vec<String>,
    pub lists: Vec<String>,
    pub enrollments: Vec<EnrollmentRow>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EnrollmentRow {
    pub id: i64,
    pub journey_id: String,
    pub version: i64,
    pub key: Option<String>,
    pub node: String,
    pub status: String,
    pub wake_at: Option<Timestamp>,
    pub entered_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct ContactQuery {
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub anonymous_id: Option<String>,
    /// Matches a part of the user id, email, phone, name (the traits `first_name`, `last_name`,
    /// both with a space between, or `name`) or any other id the contact has had, ignoring
    /// ASCII case.
    pub search: Option<String>,
    /// Members of this segment (its id) now.
    pub segment: Option<String>,
    /// Members of this list (its name).
    pub list: Option<String>,
    /// Every one of these top-level traits has the value given.
    pub traits: Vec<TraitEquals>,
    /// Every one of these subscriptions is recorded with the status given (or not recorded).
    pub consent: Vec<ConsentIs>,
    pub order: ContactOrder,
    /// Where the page starts: after this position in `order` (the first page when none).
    pub after: Option<ContactPosition>,
    pub limit: usize,
}

/// A top-level trait equal to a value as it is written in a query: a string trait equal to
/// it, a number trait equal to it as a number (`3` matches `3` and `3.0`), a boolean trait
/// when it is `true` or `false`. A key with `"` matches no contact.
#[derive(Debug, Clone, PartialEq)]
pub struct TraitEquals {
    pub key: String,
    pub value: String,
}

/// A contact's recorded subscription to a channel and a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentIs {
    pub channel: String,
    pub topic: String,
    /// `subscribed`, `pending` or `unsubscribed`; `None`: no record for the channel and topic.
    pub status: Option<String>,
}

/// What contacts are listed by; contacts with equal keys by their id, in the same direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContactSortKey {
    #[default]
    Id,
    CreatedAt,
    UpdatedAt,
    /// Contacts without an email address come last, whichever the direction.
    Email,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContactOrder {
    pub key: ContactSortKey,
    pub descending: bool,
}

/// A place in a `ContactOrder`: that of the contact with this id and this sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPosition {
    pub id: i64,
    pub key: SortValue,
}

/// The value of a contact's sort key (none for `Id`, or an email address the contact lacks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    None,
    Millis(i64),
    Text(String),
}

impl ContactPosition {
    /// Where `contact` stands in an order by `key`: a page that ends with it continues from
    /// here.
    pub fn of(contact: &Contact, key: ContactSortKey) -> ContactPosition {
        let key = match key {
            ContactSortKey::Id => SortValue::None,
            ContactSortKey::CreatedAt => SortValue::Millis(contact.created_at.as_millisecond()),
            ContactSortKey::UpdatedAt => SortValue::Millis(contact.updated_at.as_millisecond()),
            ContactSortKey::Email => contact
                .email
                .clone()
                .map_or(SortValue::None, SortValue::Text),
        };
        ContactPosition {
            id: contact.id,
            key,
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimelineEntry {
    Event {
        at: Timestamp,
        seq: i64,
        kind: String,
        name: String,
        properties: Value,
    },
    Step {
        at: Timestamp,
        journey_id: String,
        enrollment_id: i64,
        node: String,
        action: String,
        detail: Option<Value>,
    },
    Message {
        at: Timestamp,
        message_id: i64,
        channel: String,
        journey_id: Option<String>,
        node: Option<String>,
        template: String,
        status: String,
        subject: Option<String>,
        error: Option<String>,
    },
}

impl TimelineEntry {
    pub fn at(&self) -> Timestamp {
        match self {
            TimelineEntry::Event { at, .. }
            | TimelineEntry::Step { at, .. }
            | TimelineEntry::Message { at, .. } => *at,
        }
    }

    /// A contact's timeline from its newest events, steps and messages (each kind up to
    /// `limit`, any order): oldest first, at equal times events before the steps they caused
    /// and messages last, and only the newest `limit` of them. (Shared by the backends.)
    pub(crate) fn newest_in_order(
        mut entries: Vec<TimelineEntry>,
        limit: usize,
    ) -> Vec<TimelineEntry> {
        entries.sort_by_key(|e| {
            let rank = match e {
                TimelineEntry::Event { .. } => 0,
                TimelineEntry::Step { .. } => 1,
                TimelineEntry::Message { .. } => 2,
            };
            (e.at(), rank)
        });
        let excess = entries.len().saturating_sub(limit);
        entries.drain(..excess);
        entries
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ListSummary {
    pub name: String,
    pub members: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StoredTemplate {
    #[serde(flatten)]
    pub definition: TemplateDefinition,
    /// Every change of the definition makes a new version (1, 2, ...); the versions are
    /// immutable, and journey versions pin the ones they send.
    pub version: i64,
    pub created_at: Timestamp,
    /// When this version was made.
    pub updated_at: Timestamp,
}

/// One version of a template, in a template's history.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TemplateVersionSummary {
    pub version: i64,
    pub created_at: Timestamp,
    /// The journey versions that send it, as `journey_id` and `version`.
    pub pinned_by: Vec<JourneyVersionRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct JourneyVersionRef {
    pub journey_id: String,
    pub version: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JourneyStatus {
    Draft,
    Live,
    Paused,
    Archived,
}

impl JourneyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JourneyStatus::Draft => "draft",
            JourneyStatus::Live => "live",
            JourneyStatus::Paused => "paused",
            JourneyStatus::Archived => "archived",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => JourneyStatus::Draft,
            "live" => JourneyStatus::Live,
            "paused" => JourneyStatus::Paused,
            "archived" => JourneyStatus::Archived,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JourneyRow {
    pub id: String,
    pub name: String,
    pub status: JourneyStatus,
    pub live_version: Option<i64>,
    pub draft: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub first_activity_at: Option<Timestamp>,
    pub last_activity_at: Option<Timestamp>,
    pub entered: i64,
    pub active: i64,
    pub converted: i64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JourneyVersion {
    pub journey_id: String,
    pub version: i64,
    pub document: Value,
    pub published_at: Timestamp,
    /// The version of each template it sends, pinned when it was published.
    pub templates: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct NodeStats {
    pub node: String,
    pub entered: i64,
    pub waiting: i64,
    pub completed: i64,
    pub exited: i64,
    pub converted: i64,
    /// Messages accepted by our transport (the SMTP relay's 250 after DATA, the SMS
    /// provider's acceptance, a webhook's 2xx).
    pub sent: i64,
    /// Sent messages not bounced since (see `docs/api.md`, "Journey statistics").
    pub delivered: i64,
    /// Messages the receiving side refused: at once (counted in `failed` too) or after
    /// accepting them (counted in `sent`, not in `delivered`).
    pub bounced: i64,
    pub failed: i64,
    pub suppressed: i64,
    /// Messages of this node opened (or clicked) at least once.
    pub opened: i64,
    /// Messages of this node clicked at least once.
    pub clicked: i64,
}

impl NodeStats {
    /// A journey's node statistics as reported: the counted `nodes`, with how many active
    /// enrollments are `waiting` at each (node, count), and every node of the journey's
    /// `document`; in the document's order, nodes it does not name after (in the order
    /// given). (Shared by the backends.)
    /// Adds `other`'s counters to these (the node name is kept).
    pub(crate) fn add(&mut self, other: &NodeStats) {
        self.entered += other.entered;
        self.waiting += other.waiting;
        self.completed += other.completed;
        self.exited += other.exited;
        self.converted += other.converted;
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.bounced += other.bounced;
        self.failed += other.failed;
        self.suppressed += other.suppressed;
        self.opened += other.opened;
        self.clicked += other.clicked;
    }

    pub(crate) fn arrange(
        mut nodes: Vec<NodeStats>,
        waiting: Vec<(String, i64)>,
        document: &Value,
    ) -> Vec<NodeStats> {
        for (node, count) in waiting {
            match nodes.iter_mut().find(|n| n.node == node) {
                Some(n) => n.waiting = count,
                None => nodes.push(NodeStats {
                    node,
                    waiting: count,
                    ..Default::default()
                }),
            }
        }
        let order: Vec<String> = document
            .get("nodes")
            .and_then(Value::as_array)
            .map(|ns| {
                ns.iter()
                    .filter_map(|n| n.get("id")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for id in &order {
            if !nodes.iter().any(|n| &n.node == id) {
                nodes.push(NodeStats {
                    node: id.clone(),
                    ..Default::default()
                });
            }
        }
        nodes.sort_by_key(|n| {
            order
                .iter()
                .position(|o| *o == n.node)
                .unwrap_or(usize::MAX)
        });
        nodes
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JourneyStats {
    pub journey_id: String,
    pub status: JourneyStatus,
    /// The journey version counted; `null`: every version together.
    pub version: Option<i64>,
    pub entered: i64,
    pub active: i64,
    pub completed: i64,
    pub exited: i64,
    pub converted: i64,
    /// The messages of the whole journey (the sums over its nodes).
    pub sent: i64,
    pub delivered: i64,
    pub bounced: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub opened: i64,
    pub clicked: i64,
    pub first_activity_at: Option<Timestamp>,
    pub last_activity_at: Option<Timestamp>,
    pub nodes: Vec<NodeStats>,
}

/// A journey's enrollments by status, of one version or of every version.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EnrollmentCounts {
    pub entered: i64,
    pub active: i64,
    pub completed: i64,
    pub exited: i64,
    pub converted: i64,
}

impl JourneyStats {
    /// The statistics of `journey` (of `version`, or of every version together when `None`)
    /// from its enrollments and its nodes. Of every version together, `entered`, `active` and
    /// `converted` are the journey's own counters, which outlive erased enrollments; the
    /// message totals are the sums over the nodes.
    pub(crate) fn of(
        journey: JourneyRow,
        version: Option<i64>,
        enrollments: EnrollmentCounts,
        nodes: Vec<NodeStats>,
    ) -> Self {
        let (entered, active, converted) = match version {
            None => (journey.entered, journey.active, journey.converted),
            Some(_) => (
                enrollments.entered,
                enrollments.active,
                enrollments.converted,
            ),
        };
        let mut sum = NodeStats::default();
        for n in &nodes {
            sum.add(n);
        }
        JourneyStats {
            journey_id: journey.id,
            status: journey.status,
            version,
            entered,
            active,
            completed: enrollments.completed,
            exited: enrollments.exited,
            converted,
            sent: sum.sent,
            delivered: sum.delivered,
            bounced: sum.bounced,
            failed: sum.failed,
            suppressed: sum.suppressed,
            opened: sum.opened,
            clicked: sum.clicked,
            first_activity_at: journey.first_activity_at,
            last_activity_at: journey.last_activity_at,
            nodes,
        }
    }
}

/// Counter increments for one batch: (journey, version, node) → counters.
#[derive(Debug, Clone, Default)]
pub struct StatsDeltas {
    pub nodes: BTreeMap<(String, i64, String), NodeStats>,
    /// (journey, version, node, output) → enrollments that left by it.
    pub outputs: BTreeMap<(String, i64, String, String), i64>,
    /// (journey, version, node) → sends deferred by quiet hours or a blocked date.
    pub deferred: BTreeMap<(String, i64, String), i64>,
}

impl StatsDeltas {
    pub fn node(&mut self, journey: &str, version: i64, node: &str) -> &mut NodeStats {
        self.nodes
            .entry((journey.to_string(), version, node.to_string()))
            .or_default()
    }
    pub fn left(&mut self, journey: &str, version: i64, node: &str, output: &str) {
        *self
            .outputs
            .entry((
                journey.to_string(),
                version,
                node.to_string(),
                output.to_string(),
            ))
            .or_default() += 1;
    }
    pub fn deferred(&mut self, journey: &str, version: i64, node: &str) {
        *self
            .deferred
            .entry((journey.to_string(), version, node.to_string()))
            .or_default() += 1;
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.outputs.is_empty() && self.deferred.is_empty()
    }

    /// The counters of every (journey, version, node) with any, those with only deferred
    /// sends included (zero counters). (Shared by the backends.)
    pub(crate) fn counters(&self) -> impl Iterator<Item = (&(String, i64, String), NodeStats)> {
        let deferred_only = self
            .deferred
            .keys()
            .filter(|k| !self.nodes.contains_key(*k))
            .map(|k| (k, NodeStats::default()));
        self.nodes
            .iter()
            .map(|(k, s)| (k, s.clone()))
            .chain(deferred_only)
    }
}

/// The message a conversion is credited to: the enrollment's last one sent before it.
#[derive(Debug, Clone, PartialEq)]
pub struct LastTouch {
    pub message_id: i64,
    pub node: String,
    pub sent_at: Timestamp,
}

/// A conversion to record: an enrollment, the goal event that converted it, and what it is
/// credited to.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversion {
    pub enrollment_id: i64,
    pub contact_id: i64,
    pub journey_id: String,
    pub version: i64,
    /// The node credited: the last touch's, else the node the enrollment was at.
    pub node: String,
    pub last_touch: Option<LastTouch>,
    pub event_seq: i64,
    pub at: Timestamp,
    pub revenue: Option<waymark_core::journey::Revenue>,
}

/// A broadcast's goal event, to be credited to the recipient's message if it was sent within
/// `window` before the event (see `BroadcastsTx::record_broadcast_conversion`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewBroadcastConversion {
    pub broadcast_id: String,
    pub contact_id: i64,
    pub event_seq: i64,
    /// When the goal event happened (its timestamp).
    pub at: Timestamp,
    pub window: jiff::SignedDuration,
    pub revenue: Option<waymark_core::journey::Revenue>,
}

/// Whose numbers a drill-down lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeopleKind {
    /// Enrollments waiting at the node now (or anywhere in the journey), with until when.
    Waiting,
    /// The node's (or journey's) messages, each with what became of it.
    Messaged,
    /// Conversions credited to the node (or of the journey).
    Converted,
}

/// One page of a drill-down.
#[derive(Debug, Clone, PartialEq)]
pub struct PeopleQuery {
    pub journey_id: String,
    pub kind: PeopleKind,
    pub node: Option<String>,
    pub version: Option<i64>,
    /// Messages only: the channel.
    pub channel: Option<String>,
    /// Messages only: a message status, or `delivered`, `opened`, `clicked`, `unsubscribed`,
    /// `complained` (see `drill_sql::PEOPLE_STATUSES`).
    pub status: Option<String>,
    /// The `cursor` of the last row of the previous page (0: from the start).
    pub after: i64,
    pub limit: usize,
}

/// A contact behind a journey's number, with what the row is about.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PersonRow {
    /// Where the next page starts (`after`).
    pub cursor: i64,
    pub contact_id: i64,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub enrollment_id: Option<i64>,
    pub node: Option<String>,
    /// Waiting: when the enrollment entered the journey, and when its wait ends.
    pub entered_at: Option<Timestamp>,
    pub wake_at: Option<Timestamp>,
    /// Messaged: the message and what became of it; converted: the message credited.
    pub message_id: Option<i64>,
    pub channel: Option<String>,
    pub status: Option<String>,
    pub sent_at: Option<Timestamp>,
    pub opened_at: Option<Timestamp>,
    pub human_opened_at: Option<Timestamp>,
    pub clicked_at: Option<Timestamp>,
    pub human_clicked_at: Option<Timestamp>,
    pub unsubscribed_at: Option<Timestamp>,
    pub complained_at: Option<Timestamp>,
    /// Converted: when, and the revenue the goal event stated.
    pub converted_at: Option<Timestamp>,
    pub revenue: Option<f64>,
    pub currency: Option<String>,
}

/// Which roll-up rows a report reads.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupQuery {
    pub journey_id: String,
    /// Rows of the hours from the one holding `from` up to `to` (exclusive).
    pub from: Timestamp,
    pub to: Timestamp,
    pub version: Option<i64>,
    pub node: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Sent,
    Failed,
    Suppressed,
    /// The receiving server said the mailbox does not exist; the address is now suppressed.
    Bounced,
    /// A broadcast's message held while the broadcast is paused.
    Paused,
    /// A broadcast's message that had not left when the broadcast was cancelled.
    Cancelled,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Failed => "failed",
            MessageStatus::Suppressed => "suppressed",
            MessageStatus::Bounced => "bounced",
            MessageStatus::Paused => "paused",
            MessageStatus::Cancelled => "cancelled",
        }
    }
}

/// Which messages leave first when a channel has more due than it can carry at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Asked for by a person who waits for it: a double opt-in confirmation, a test send.
    Transactional = 0,
    /// A journey's step.
    Journey = 1,
    /// A send to a whole audience at once, which may wait behind the others.
    Bulk = 2,
}

impl Priority {
    /// Highest first.
    pub const ALL: [Priority; 3] = [Priority::Transactional, Priority::Journey, Priority::Bulk];

    pub fn as_i64(self) -> i64 {
        self as i64
    }

    /// The stored number; an unknown one reads as a journey's.
    pub fn from_i64(n: i64) -> Self {
        match n {
            0 => Priority::Transactional,
            2 => Priority::Bulk,
            _ => Priority::Journey,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub idempotency_key: String,
    pub contact_id: i64,
    pub enrollment_id: Option<i64>,
    pub journey_id: Option<String>,
    pub node: Option<String>,
    pub template: String,
    /// `email`, `sms` (`Channel::as_str`) or `webhook`.
    pub channel: String,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub priority: Priority,
    /// The broadcast that sent it, if one did.
    pub broadcast_id: Option<String>,
    /// The one-click unsubscribe link of a marketing message (its `List-Unsubscribe` header).
    pub unsubscribe_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MessageRow {
    pub id: i64,
    pub idempotency_key: String,
    pub contact_id: i64,
    pub user_id: Option<String>,
    pub enrollment_id: Option<i64>,
    pub journey_id: Option<String>,
    pub node: Option<String>,
    pub template: String,
    pub channel: String,
    /// Which messages of a channel leave first: `transactional` (confirmations, test sends),
    /// then `journey`, then `bulk`.
    pub priority: Priority,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub status: String,
    pub error: Option<String>,
    /// Attempts in the current run (since creation, or since the last requeue).
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub opened_at: Option<Timestamp>,
    pub clicked_at: Option<Timestamp>,
    /// Marketing email only: the one-click unsubscribe URL the transport puts in
    /// `List-Unsubscribe` (with `List-Unsubscribe-Post`).
    pub unsubscribe_url: Option<String>,
    /// When the current run of attempts began; temporary failures are retried until this plus
    /// the retry lifetime. `None` before the first attempt.
    pub first_attempt_at: Option<Timestamp>,
    /// When the message was marked `failed` or `bounced`.
    pub failed_at: Option<Timestamp>,
    /// When the message was last requeued.
    pub requeued_at: Option<Timestamp>,
    /// The broadcast that sent it, if one did.
    pub broadcast_id: Option<String>,
}

/// Which failed messages to put back in the queue. Every given criterion must hold; only
/// `failed` messages are ever requeued (not `bounced`: the receiving server refused them for
/// good; not `suppressed`: consent or the suppression list said no).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequeueFilter {
    pub journey_id: Option<String>,
    pub channel: Option<String>,
    /// Created at or after.
    pub created_since: Option<Timestamp>,
    /// Created before.
    pub created_until: Option<Timestamp>,
    /// Failed at or after.
    pub failed_since: Option<Timestamp>,
    /// Failed before.
    pub failed_until: Option<Timestamp>,
    /// The error contains this text (ignoring ASCII case).
    pub error_contains: Option<String>,
}

impl RequeueFilter {
    /// Whether no criterion is given (it would match every failed message).
    pub fn is_empty(&self) -> bool {
        *self == RequeueFilter::default()
    }
}

/// The queued messages of one channel, for the queue gauges.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct QueueLevel {
    pub channel: String,
    pub queued: i64,
    /// When the oldest of them was queued (created, or requeued).
    pub oldest_queued_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    pub user_id: Option<String>,
    pub contact_id: Option<i64>,
    pub journey_id: Option<String>,
    pub channel: Option<String>,
    pub status: Option<String>,
    pub broadcast_id: Option<String>,
    pub limit: usize,
    pub after_id: i64,
}

/// Which due messages a dispatcher reads: of one channel and priority, and of one journey
/// (`None`: the messages of no journey, as transactional ones).
#[derive(Debug, Clone, Copy)]
pub struct DueQuery<'a> {
    pub channel: &'a str,
    pub priority: Priority,
    pub journey: Option<&'a str>,
    pub now: Timestamp,
    pub limit: usize,
    /// Messages left out (those a dispatcher has in flight): they still look due until their
    /// outcome is written, and reading their whole rows again at every selection would cost
    /// more than the messages it looks for.
    pub skip: &'a std::collections::HashSet<i64>,
}

/// The outcome of one delivery attempt of message `id`, known at `at`.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: i64,
    pub outcome: DeliveryOutcome,
    pub at: Timestamp,
}

/// What the dispatcher learned from a delivery attempt.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Sent,
    /// Try again at this time.
    Retry {
        error: String,
        at: Timestamp,
    },
    /// Not attempted (over the transport's send rate): stays queued until this time, and the
    /// attempt count is unchanged.
    Deferred {
        at: Timestamp,
    },
    Failed {
        error: String,
    },
    /// A permanent refusal by the receiving server (an SMTP 5xx answer): the message is
    /// `bounced`. When the answer means the mailbox does not exist (`hard_bounce`), its
    /// recipient is also suppressed as `hard_bounce` in the same transaction.
    Bounced {
        error: String,
        hard_bounce: bool,
    },
}

/// Why an address is on the suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    HardBounce,
    Complaint,
    Unsubscribe,
    Manual,
}

impl SuppressionReason {
    pub const ALL: [SuppressionReason; 4] = [
        SuppressionReason::HardBounce,
        SuppressionReason::Complaint,
        SuppressionReason::Unsubscribe,
        SuppressionReason::Manual,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Unsubscribe => "unsubscribe",
            SuppressionReason::Manual => "manual",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One entry of the suppression list. `address` is an email address (lower-cased) for the
/// `email` channel and an E.164 number for `sms`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Suppression {
    pub channel: String,
    pub address: String,
    pub reason: String,
    pub source: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct SuppressionQuery {
    pub channel: Option<String>,
    pub address: Option<String>,
    pub limit: usize,
}

/// The key an address is suppressed under: email addresses compare case-insensitively.
pub fn suppression_address(channel: &str, address: &str) -> String {
    if channel == "email" {
        address.trim().to_lowercase()
    } else {
        address.trim().to_string()
    }
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Gauges {
    pub timers_waiting: i64,
    pub enrollments_active: i64,
    pub events_pending: i64,
    pub messages_queued: i64,
}

/// A contact's consent for one channel and topic (`*`: all marketing on that channel).
/// `status` is `subscribed`, `pending` (double opt-in not confirmed) or `unsubscribed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Subscription {
    pub contact_id: i64,
    pub channel: String,
    pub topic: String,
    pub status: String,
    pub updated_at: Timestamp,
}

/// A segment as stored: its condition in the JSON form, and its member count.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SegmentRow {
    pub id: String,
    pub name: String,
    pub condition: Value,
    pub members: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A segment's membership changes over a range of time, hour by hour (see
/// `concerns::audiences` for how they are kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentHistory {
    /// Members at the start of the range: every change before it, summed.
    pub members_before: i64,
    /// The hours of the range in which anyone entered or left, in order.
    pub hours: Vec<SegmentHour>,
}

/// How many contacts entered and left a segment in one hour (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHour {
    /// The start of the hour.
    pub hour: Timestamp,
    pub entered: i64,
    pub left: i64,
}

/// One experiment variant's counts.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ExperimentCounts {
    pub node: String,
    pub variant: String,
    pub entered: i64,
    pub converted: i64,
}

/// A declared experiment winner.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ExperimentWinner {
    pub node: String,
    pub winner: String,
    pub decided_at: Timestamp,
    pub verdict: Value,
}

/// One entry of the audit log, to be written: who did what to which contact, and counts.
/// Never carries the personal data itself.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub at: Timestamp,
    /// `admin_token`, or `session:<hash prefix>` for the web app's session.
    pub actor: String,
    /// `contact.export` or `contact.erase`.
    pub action: String,
    pub contact_id: Option<i64>,
    /// Row counts (exported or removed), by section or table.
    pub detail: Value,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub contact_id: Option<i64>,
    pub detail: Value,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub contact_id: Option<i64>,
    pub action: Option<String>,
    pub limit: usize,
    pub after_id: i64,
}

/// What an erasure removed: rows per table, and how many of the contact's addresses are now
/// suppressed as a keyed hash.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Erasure {
    pub contact_id: i64,
    pub removed: BTreeMap<String, i64>,
    pub addresses_hashed: i64,
}

/// A page of one section of a contact's export: rows as JSON objects, column by column (times
/// as RFC 3339, JSON columns parsed).
#[derive(Debug, Clone)]
pub struct ExportPage {
    pub section: &'static str,
    pub rows: Vec<Value>,
}

/// Where a broadcast stands. `draft` → `scheduled` (waiting for its start) → `sending` → `sent`
/// (every recipient's message written to the outbox); `paused` from `sending`, and
/// `cancelled` from any state but `sent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BroadcastStatus {
    Draft,
    Scheduled,
    Sending,
    Paused,
    Sent,
    Cancelled,
}

impl BroadcastStatus {
    pub const ALL: [BroadcastStatus; 6] = [
        BroadcastStatus::Draft,
        BroadcastStatus::Scheduled,
        BroadcastStatus::Sending,
        BroadcastStatus::Paused,
        BroadcastStatus::Sent,
        BroadcastStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastStatus::Draft => "draft",
            BroadcastStatus::Scheduled => "scheduled",
            BroadcastStatus::Sending => "sending",
            BroadcastStatus::Paused => "paused",
            BroadcastStatus::Sent => "sent",
            BroadcastStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// An operator's change of a broadcast's status, and what it does to the broadcast's messages
/// already in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastChange {
    /// `draft` → `scheduled`, to start at `send_at` with an audience of about `audience_size`.
    Schedule {
        send_at: Timestamp,
        audience_size: i64,
    },
    /// `sending` → `paused`: its queued messages are held (`paused`) and no new ones are written.
    Pause,
    /// `paused` → `sending` (or `scheduled`, if it had not started): held messages are queued
    /// again, and the send rate counts from now.
    Resume,
    /// Any state but `sent` → `cancelled`: queued and held messages are `cancelled`, and the
    /// recipients still waiting get nothing.
    Cancel,
}

impl BroadcastChange {
    /// The statuses the change applies to.
    pub fn applies_to(self) -> &'static [BroadcastStatus] {
        use BroadcastStatus::*;
        match self {
            BroadcastChange::Schedule { .. } => &[Draft],
            BroadcastChange::Pause => &[Sending],
            BroadcastChange::Resume => &[Paused],
            BroadcastChange::Cancel => &[Draft, Scheduled, Sending, Paused],
        }
    }

    /// What the API calls it ("cannot be {verb}").
    pub fn verb(self) -> &'static str {
        match self {
            BroadcastChange::Schedule { .. } => "sent",
            BroadcastChange::Pause => "paused",
            BroadcastChange::Resume => "resumed",
            BroadcastChange::Cancel => "cancelled",
        }
    }

    /// The conflict of a broadcast `id` that is `status`, which the change does not apply to.
    pub fn refused(self, id: &str, status: BroadcastStatus) -> crate::StoreError {
        crate::StoreError::Conflict(format!(
            "broadcast `{id}` is {}: it cannot be {}",
            status.as_str(),
            self.verb()
        ))
    }

    /// The message statuses the change moves from, and the one it moves them to.
    pub fn messages(self) -> Option<(&'static [&'static str], &'static str)> {
        match self {
            BroadcastChange::Schedule { .. } => None,
            BroadcastChange::Pause => Some((&["queued"], "paused")),
            BroadcastChange::Resume => Some((&["paused"], "queued")),
            BroadcastChange::Cancel => Some((&["queued", "paused"], "cancelled")),
        }
    }
}

/// A stored broadcast and how far its sending has come.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BroadcastRow {
    pub id: String,
    /// The `BroadcastDocument` as saved (read by the engine and the API; one that cannot be
    /// read is reported, not fatal).
    pub document: Value,
    pub status: BroadcastStatus,
    /// The template version every recipient gets, pinned when sending starts.
    pub template_version: Option<i64>,
    /// The audience's size when it was scheduled (members may join or leave until each is
    /// reached).
    pub audience_size: Option<i64>,
    /// Contacts of the audience reached so far (exclusions left out).
    pub processed: i64,
    /// Messages written to the outbox so far (queued, suppressed or failed).
    pub released: i64,
    /// The last contact id reached: the audience is gone through in id order.
    pub cursor: i64,
    /// Every contact of the audience has been reached (some may still wait for their time).
    pub audience_done: bool,
    /// Recipients reached whose message waits for its time (local time, quiet hours).
    pub waiting: i64,
    pub send_at: Option<Timestamp>,
    /// The send rate counts from this moment (the start, or the last resume), and
    /// `rate_base` messages had been written by then.
    pub rate_since: Option<Timestamp>,
    pub rate_base: i64,
    /// When the engine next has work for it.
    pub next_run_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub winner: Option<Winner>,
}

/// An A/B test's winning template, when and why it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Winner {
    pub template: String,
    pub at: Timestamp,
    pub reason: String,
}

/// What one engine round did to a broadcast, saved with the messages it wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastProgress {
    pub status: BroadcastStatus,
    pub template_version: Option<i64>,
    pub processed: i64,
    pub released: i64,
    pub cursor: i64,
    pub audience_done: bool,
    pub waiting: i64,
    pub rate_since: Option<Timestamp>,
    pub rate_base: i64,
    pub next_run_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub winner: Option<Winner>,
}

impl BroadcastRow {
    pub fn progress(&self) -> BroadcastProgress {
        BroadcastProgress {
            status: self.status,
            template_version: self.template_version,
            processed: self.processed,
            released: self.released,
            cursor: self.cursor,
            audience_done: self.audience_done,
            waiting: self.waiting,
            rate_since: self.rate_since,
            rate_base: self.rate_base,
            next_run_at: self.next_run_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            winner: self.winner.clone(),
        }
    }
}
