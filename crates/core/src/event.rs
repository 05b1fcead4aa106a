//! An event as the core sees it: committed, resolved to a contact, with its position in the
//! global ingest order (`seq`). Ordering by `seq` is what "since the enrollment began" means.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Events the engine records itself, so that list, segment and API triggers start journeys
/// through the same ordered event stream as everything else.
pub const LIST_ADDED: &str = "Added To List";
pub const LIST_REMOVED: &str = "Removed From List";
pub const SEGMENT_ENTERED: &str = "Segment Entered";
pub const SEGMENT_EXITED: &str = "Segment Exited";
pub const ENROLLMENT_REQUESTED: &str = "Journey Enrollment Requested";
/// A trigger node is due for a contact (date, inactivity, schedule, or enrolling existing
/// members on publish); properties `journey` and `node`.
pub const TRIGGER_DUE: &str = "Journey Trigger Due";
pub const NODE_PROPERTY: &str = "node";
/// The property naming the list, segment or journey of those events.
pub const LIST_PROPERTY: &str = "list";
pub const SEGMENT_PROPERTY: &str = "segment";
pub const JOURNEY_PROPERTY: &str = "journey";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Track => "track",
            EventKind::Identify => "identify",
            EventKind::Page => "page",
            EventKind::Screen => "screen",
            EventKind::Group => "group",
            EventKind::Alias => "alias",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "track" => EventKind::Track,
            "identify" => EventKind::Identify,
            "page" => EventKind::Page,
            "screen" => EventKind::Screen,
            "group" => EventKind::Group,
            "alias" => EventKind::Alias,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: i64,
    pub kind: EventKind,
    /// For `track` the event name; `page` and `screen` become `Page Viewed` / `Screen Viewed`.
    pub name: String,
    pub properties: Map<String, Value>,
    pub timestamp: Timestamp,
}

impl EventRecord {
    /// The value of a (dotted) property path, as a string key for matching enrollments.
    pub fn key_value(&self, property: &str) -> Option<String> {
        crate::filter::lookup(&self.properties, property).and_then(key_string)
    }
}

/// The string form of a key value: strings as they are, numbers and booleans printed.
pub fn key_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
