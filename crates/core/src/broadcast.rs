//! Broadcasts: one message to a whole audience at once (a newsletter, an announcement, a sale).
//! This is the pure part: what a broadcast asks for, checked at the edge, and when each
//! contact's message falls due. The engine's `broadcasts` module runs them; the send gate
//! decides each message.

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::journey::Channel;
use crate::timing::{SendWindow, parse_time_of_day};
use crate::validate::ValidationError;

/// The most segments and lists a broadcast may exclude.
pub const MAX_EXCLUSIONS: usize = 20;
/// The fastest send rate a broadcast may ask for, in messages per second.
pub const MAX_RATE_PER_SECOND: u32 = 1_000_000;

/// What a broadcast sends, to whom and when, as the API and the CLI's files give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastDocument {
    /// What the marketer calls it (1-200 characters).
    pub name: String,
    pub channel: Channel,
    /// The template's id; its version at the start is the one every recipient gets.
    pub template: String,
    /// Who receives it: the members of a segment or of a list when each is reached.
    pub audience: Audience,
    /// Contacts in any of these segments or lists receive nothing.
    #[serde(default)]
    pub exclude: Vec<Audience>,
    /// When to start (RFC 3339); absent: as soon as it is sent.
    #[serde(default)]
    pub send_at: Option<Timestamp>,
    /// Deliver at this local time (`HH:MM`) in each contact's time zone: the first such moment
    /// at or after the start.
    #[serde(default)]
    pub local_time: Option<String>,
    /// The time zone of contacts without a valid `timezone` trait (IANA name; default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    /// At most this many messages per second leave for this broadcast (default: as fast as the
    /// channel's own limits allow).
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    /// Send in the installation's quiet hours and on its blocked dates too (recorded on the
    /// broadcast). By default a message due then waits for the window to open.
    #[serde(default)]
    pub ignore_quiet_hours: bool,
    /// Send to contacts who reached a frequency cap too (recorded on the broadcast).
    #[serde(default)]
    pub ignore_frequency_caps: bool,
}

/// A segment or a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Audience {
    /// A segment's id.
    Segment(String),
    /// A list's name.
    List(String),
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Audience::Segment(id) => write!(f, "segment `{id}`"),
            Audience::List(name) => write!(f, "list `{name}`"),
        }
    }
}

/// A checked [`BroadcastDocument`]: everything the engine needs to time each message.
#[derive(Debug, Clone)]
pub struct BroadcastPlan {
    pub local_time: Option<Time>,
    /// The zone of contacts without a valid one of their own.
    pub fallback_zone: TimeZone,
    pub rate_per_second: Option<u32>,
    pub ignore_quiet_hours: bool,
}

/// When one contact's message is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    At(Timestamp),
    /// Never: the window never opens, or the installation skips sends outside it.
    Skipped(String),
}

impl BroadcastDocument {
    /// Checks the document; every problem is reported, each with the field it concerns.
    pub fn check(&self) -> Result<BroadcastPlan, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let mut error = |field: &str, code: &'static str, message: String| {
            errors.push(ValidationError {
                code,
                message,
                node: None,
                field: Some(field.to_string()),
            });
        };
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            error("name", "invalid_name", "must be 1-200 characters".into());
        }
        if self.template.trim().is_empty() || self.template.len() > 200 {
            error(
                "template",
                "invalid_template",
                "must name a template (1-200 characters)".into(),
            );
        }
        let audiences = std::iter::once(("audience".to_string(), &self.audience)).chain(
            self.exclude
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("exclude[{i}]"), a)),
        );
        for (field, audience) in audiences {
            let (Audience::Segment(id) | Audience::List(id)) = audience;
            if id.trim().is_empty() || id.len() > 200 {
                error(
                    &field,
                    "invalid_audience",
                    "must name a segment or a list (1-200 characters)".into(),
                );
            }
        }
        if self.exclude.len() > MAX_EXCLUSIONS {
            error(
                "exclude",
                "too_many_exclusions",
                format!("at most {MAX_EXCLUSIONS} segments and lists"),
            );
        }
        if self.exclude.contains(&self.audience) {
            error(
                "exclude",
                "audience_excluded",
                format!("excludes the audience itself ({})", self.audience),
            );
        }
        let local_time = match &self.local_time {
            None => None,
            Some(s) => {
                let parsed = parse_time_of_day(s);
                if parsed.is_none() {
                    error(
                        "local_time",
                        "invalid_time",
                        format!("`{s}` is not a time of day `HH:MM` (00:00-23:59)"),
                    );
                }
                parsed
            }
        };
        let fallback_zone = match &self.timezone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).unwrap_or_else(|_| {
                error(
                    "timezone",
                    "invalid_timezone",
                    format!("`{name}` is not an IANA time zone name"),
                );
                TimeZone::UTC
            }),
        };
        if let Some(rate) = self.rate_per_second
            && !(1..=MAX_RATE_PER_SECOND).contains(&rate)
        {
            error(
                "rate_per_second",
                "invalid_rate",
                format!("must be 1-{MAX_RATE_PER_SECOND}"),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(BroadcastPlan {
            local_time,
            fallback_zone,
            rate_per_second: self.rate_per_second,
            ignore_quiet_hours: self.ignore_quiet_hours,
        })
    }
}

impl BroadcastPlan {
    /// When the message of a contact whose own zone is `zone` is due, for a broadcast that
    /// started at `start` under the installation's sending `window`: the start, or the first
    /// `local_time` at or after it in the contact's zone; then, unless the broadcast ignores
    /// quiet hours, the first moment the window allows.
    pub fn due(&self, start: Timestamp, zone: Option<&TimeZone>, window: &SendWindow) -> Due {
        let zone = zone.unwrap_or(&self.fallback_zone);
        let mut at = start;
        if let Some(time) = self.local_time {
            match next_local_time(start, time, zone) {
                Some(t) => at = t,
                None => return Due::Skipped(format!("no local time {time} follows the start")),
            }
        }
        if self.ignore_quiet_hours || window.is_unrestricted() {
            return Due::At(at);
        }
        match window.next_allowed(at, zone) {
            Some(allowed) if allowed == at => Due::At(at),
            Some(_) if window.skip => {
                Due::Skipped("quiet hours or a blocked date (the installation skips)".into())
            }
            Some(allowed) => Due::At(allowed),
            None => Due::Skipped("every date is blocked for over a year".into()),
        }
    }
}

/// The first instant at or after `start` whose local time in `zone` is `time` (a time in a
/// daylight-saving gap moves forward by the gap, one in a fold takes its first occurrence).
fn next_local_time(start: Timestamp, time: Time, zone: &TimeZone) -> Option<Timestamp> {
    let mut date = start.to_zoned(zone.clone()).date();
    for _ in 0..3 {
        if let Ok(at) = date.to_datetime(time).to_zoned(zone.clone()) {
            let at = at.timestamp();
            if at >= start {
                return Some(at);
            }
        }
        date = date.tomorrow().ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> BroadcastDocument {
        serde_json::from_value(serde_json::json!({
            "name": "November newsletter",
            "channel": "email",
            "template": "newsletter",
            "audience": {"segment": "subscribers"},
        }))
        .unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_minimal_document_is_due_at_the_start() {
        let plan = doc().check().unwrap();
        let start = ts("2026-12-01T10:00:00Z");
        assert_eq!(
            plan.due(start, None, &SendWindow::default()),
            Due::At(start)
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut d = doc();
        d.name = " ".into();
        d.local_time = Some("25:00".into());
        d.timezone = Some("Mars/Olympus".into());
        d.rate_per_second = Some(0);
        d.exclude = vec![
            Audience::Segment("subscribers".into()),
            Audience::List("".into()),
        ];
        let errors = d.check().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_deref().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "exclude[1]",
                "exclude",
                "local_time",
                "timezone",
                "rate_per_second"
            ]
        );
    }

    #[test]
    fn unknown_fields_and_two_audiences_are_refused() {
        let with = |extra: serde_json::Value| {
            let mut v = serde_json::to_value(doc()).unwrap();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<BroadcastDocument>(v)
        };
        assert!(with(serde_json::json!({"sned_at": "x"})).is_err());
        assert!(with(serde_json::json!({"audience": {"segment": "a", "list": "b"}})).is_err());
        assert!(with(serde_json::json!({"audience": {"list": "b"}})).is_ok());
    }

    #[test]
    fn local_time_is_the_next_such_moment_in_each_zone() {
        let mut d = doc();
        d.local_time = Some("09:00".into());
        d.timezone = Some("Europe/Rome".into());
        let plan = d.check().unwrap();
        let start = ts("2026-12-01T10:00:00Z");
        let window = SendWindow::default();
        // New York: 05:00 there, so 09:00 today.
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            plan.due(start, Some(&ny), &window),
            Due::At(ts("2026-12-01T14:00:00Z"))
        );
        // Tokyo: 19:00 there, so 09:00 tomorrow.
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(
            plan.due(start, Some(&tokyo), &window),
            Due::At(ts("2026-12-02T00:00:00Z"))
        );
        // No zone of its own: the broadcast's (Rome, 11:00 there).
        assert_eq!(
            plan.due(start, None, &window),
            Due::At(ts("2026-12-02T08:00:00Z"))
        );
        // Exactly 09:00 at the start: now.
        let utc = TimeZone::UTC;
        assert_eq!(
            plan.due(ts("2026-12-01T09:00:00Z"), Some(&utc), &window),
            Due::At(ts("2026-12-01T09:00:00Z"))
        );
    }

    #[test]
    fn quiet_hours_defer_unless_ignored_and_skip_when_the_installation_skips() {
        let quiet = crate::journey::QuietHours {
            start: "21:00".into(),
            end: "08:00".into(),
        };
        let mut window = SendWindow::from_settings(Some(&quiet), &[], Default::default()).unwrap();
        let start = ts("2026-12-01T22:30:00Z");
        let plan = doc().check().unwrap();
        assert_eq!(
            plan.due(start, None, &window),
            Due::At(ts("2026-12-02T08:00:00Z"))
        );
        let mut ignoring = doc();
        ignoring.ignore_quiet_hours = true;
        assert_eq!(
            ignoring.check().unwrap().due(start, None, &window),
            Due::At(start)
        );
        window.skip = true;
        assert!(matches!(plan.due(start, None, &window), Due::Skipped(_)));
        // Inside the window, skipping changes nothing.
        let noon = ts("2026-12-01T12:00:00Z");
        assert_eq!(plan.due(noon, None, &window), Due::At(noon));
    }
}
