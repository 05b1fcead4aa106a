//! Broadcasts: one message to a whole audience at once (a newsletter, an announcement, a sale).
//! This is the pure part: what a broadcast asks for, checked at the edge, and when each
//! contact's message falls due. The engine's `broadcasts` module runs them; the send gate
//! decides each message.

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::experiment::{VariantCounts, Verdict};
use crate::journey::Channel;
use crate::timing::{SendWindow, parse_time_of_day, split_bucket};
use crate::validate::ValidationError;

/// The most segments and lists a broadcast may exclude.
pub const MAX_EXCLUSIONS: usize = 20;
/// The fastest send rate a broadcast may ask for, in messages per second.
pub const MAX_RATE_PER_SECOND: u32 = 1_000_000;
/// The most templates an A/B test may try besides the broadcast's own.
pub const MAX_TEST_VARIANTS: usize = 4;
/// The shortest and longest an A/B test may run before the winner is chosen.
pub const MIN_TEST_WAIT_SECONDS: i64 = 60;
pub const MAX_TEST_WAIT_SECONDS: i64 = 30 * 86_400;

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
    /// Try other templates on a share of the audience first, then send the best to the rest.
    #[serde(default)]
    pub test: Option<AbTest>,
    /// The event that counts as a conversion of a recipient (once each), within a window
    /// after their message was sent.
    #[serde(default)]
    pub goal: Option<BroadcastGoal>,
}

/// The longest and default conversion window of a broadcast's goal.
pub const MAX_GOAL_WITHIN_SECONDS: i64 = 90 * 86_400;
pub const DEFAULT_GOAL_WITHIN_SECONDS: i64 = 7 * 86_400;

/// A broadcast's goal: the fields of a journey's goal (see [`crate::journey::ExitEvent`]) that
/// apply to a message rather than to an enrollment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastGoal {
    /// The event name (e.g. `Order Completed`).
    pub event: String,
    /// Only events whose properties match count.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub filter: crate::filter::Filter,
    /// How long after the recipient's message was sent the event converts (`3d`; 1 minute
    /// to 90 days; default `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// The property of the goal event that holds its revenue. Default: `revenue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_property: Option<String>,
    /// The currency revenue is reported in (ISO 4217); default `USD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl BroadcastGoal {
    /// The conversion window, or `None` when `within` is not a duration in bounds.
    pub fn window(&self) -> Option<jiff::SignedDuration> {
        let seconds = match &self.within {
            None => DEFAULT_GOAL_WITHIN_SECONDS,
            Some(w) => Duration::parse(w).ok()?.seconds(),
        };
        (MIN_TEST_WAIT_SECONDS..=MAX_GOAL_WITHIN_SECONDS)
            .contains(&seconds)
            .then(|| jiff::SignedDuration::from_secs(seconds))
    }

    /// The journey goal with the same fields, whose revenue rules a broadcast's follow.
    fn as_journey_goal(&self) -> crate::journey::ExitEvent {
        crate::journey::ExitEvent {
            event: self.event.clone(),
            filter: self.filter.clone(),
            match_key: None,
            within: self.within.clone(),
            revenue_property: self.revenue_property.clone(),
            currency: self.currency.clone(),
        }
    }

    /// The revenue a goal event states (see [`crate::journey::ExitEvent::revenue_of`]).
    pub fn revenue_of(
        &self,
        properties: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<crate::journey::Revenue> {
        self.as_journey_goal().revenue_of(properties)
    }

    /// The currency revenue is reported in.
    pub fn revenue_currency(&self) -> &str {
        self.currency.as_deref().unwrap_or("USD")
    }
}

/// An A/B test: `template` (variant A) and each of `variants` (B, C, ...) go to an equal part
/// of `share_percent` of the audience; after `decide_after`, the variant with the best rate of
/// `metric` is sent to everyone else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbTest {
    /// The other templates tried (1-4), each of the broadcast's channel.
    pub variants: Vec<String>,
    /// The part of the audience that gets a variant (1-100); the rest waits for the winner.
    pub share_percent: u8,
    /// How long after the start the winner is chosen (`4h`, `1d`; 1 minute to 30 days).
    pub decide_after: String,
    pub metric: TestMetric,
}

/// What makes a variant the best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestMetric {
    /// Opened messages per message sent.
    Opens,
    /// Clicked messages per message sent.
    Clicks,
    /// Converted recipients (the broadcast's `goal`) per message sent.
    Conversions,
}

impl TestMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            TestMetric::Opens => "opens",
            TestMetric::Clicks => "clicks",
            TestMetric::Conversions => "conversions",
        }
    }
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
    pub test: Option<TestPlan>,
}

/// A checked [`AbTest`].
#[derive(Debug, Clone)]
pub struct TestPlan {
    /// Every template that competes, the broadcast's own first.
    pub templates: Vec<String>,
    pub share_percent: u8,
    pub decide_after: jiff::SignedDuration,
    pub metric: TestMetric,
}

/// One variant's counts at the decision: messages sent, and of them those opened or clicked,
/// and the recipients who converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantResult {
    pub template: String,
    pub sent: u64,
    pub opened: u64,
    pub clicked: u64,
    pub converted: u64,
}

/// The winner of a test and why.
#[derive(Debug, Clone, PartialEq)]
pub struct TestDecision {
    pub winner: String,
    pub reason: String,
    pub verdict: Verdict,
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
        let test = self.test.as_ref().and_then(|t| {
            let mut ok = true;
            if t.variants.is_empty() || t.variants.len() > MAX_TEST_VARIANTS {
                error(
                    "test.variants",
                    "invalid_test",
                    format!("must name 1-{MAX_TEST_VARIANTS} templates besides `template`"),
                );
                ok = false;
            }
            for (i, v) in t.variants.iter().enumerate() {
                if v == &self.template || t.variants[..i].contains(v) {
                    error(
                        &format!("test.variants[{i}]"),
                        "invalid_test",
                        format!("`{v}` is already a variant of the test"),
                    );
                    ok = false;
                }
            }
            if t.metric == TestMetric::Conversions && self.goal.is_none() {
                error(
                    "test.metric",
                    "invalid_test",
                    "`conversions` needs the broadcast's `goal` (the event that counts as a conversion)"
                        .into(),
                );
                ok = false;
            }
            if !(1..=100).contains(&t.share_percent) {
                error("test.share_percent", "invalid_test", "must be 1-100".into());
                ok = false;
            }
            let wait = Duration::parse(&t.decide_after)
                .ok()
                .map(|d| d.seconds())
                .filter(|s| (MIN_TEST_WAIT_SECONDS..=MAX_TEST_WAIT_SECONDS).contains(s));
            if wait.is_none() {
                error(
                    "test.decide_after",
                    "invalid_test",
                    format!(
                        "`{}` is not a duration of 1 minute to 30 days (`30m`, `4h`, `1d`)",
                        t.decide_after
                    ),
                );
                ok = false;
            }
            ok.then(|| TestPlan {
                templates: std::iter::once(self.template.clone())
                    .chain(t.variants.iter().cloned())
                    .collect(),
                share_percent: t.share_percent,
                decide_after: jiff::SignedDuration::from_secs(wait.unwrap_or_default()),
                metric: t.metric,
            })
        });
        if let Some(goal) = &self.goal {
            if goal.event.trim().is_empty() || goal.event.len() > 200 {
                error(
                    "goal.event",
                    "invalid_goal",
                    "must name an event (1-200 characters)".into(),
                );
            }
            if goal.window().is_none() {
                error(
                    "goal.within",
                    "invalid_goal",
                    format!(
                        "`{}` is not a duration of 1 minute to 90 days (`12h`, `3d`)",
                        goal.within.as_deref().unwrap_or_default()
                    ),
                );
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(BroadcastPlan {
            local_time,
            fallback_zone,
            rate_per_second: self.rate_per_second,
            ignore_quiet_hours: self.ignore_quiet_hours,
            test,
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

impl TestPlan {
    /// The template a contact of the test share gets, or `None` for a contact who waits for
    /// the winner: a stable hash of the broadcast and the contact, so that a page redone after
    /// a crash, or a recipient taken later, gets the same answer.
    pub fn variant_of(&self, broadcast_id: &str, contact_id: i64) -> Option<&str> {
        if split_bucket(broadcast_id, "test", contact_id) >= u64::from(self.share_percent) {
            return None;
        }
        let n = self.templates.len() as u64;
        let index = split_bucket(broadcast_id, "variant", contact_id) % n;
        Some(&self.templates[index as usize])
    }

    /// The winner: the best rate of the metric (ties: the earlier variant), kept whether or
    /// not its lead is significant (the reason says which, with each one-sided p-value of a
    /// two-proportion z-test at 95 %).
    pub fn decide(&self, results: &[VariantResult]) -> TestDecision {
        let counts: Vec<VariantCounts> = self
            .templates
            .iter()
            .map(|t| {
                let r = results.iter().find(|r| &r.template == t);
                VariantCounts {
                    name: t.clone(),
                    entered: r.map_or(0, |r| r.sent),
                    converted: r.map_or(0, |r| match self.metric {
                        TestMetric::Opens => r.opened,
                        TestMetric::Clicks => r.clicked,
                        TestMetric::Conversions => r.converted,
                    }),
                }
            })
            .collect();
        let verdict = crate::experiment::decide(&counts, 1, 0.95);
        let rates = counts
            .iter()
            .map(|c| format!("`{}` {:.1}% of {}", c.name, c.rate() * 100.0, c.entered))
            .collect::<Vec<_>>()
            .join(", ");
        let metric = self.metric.as_str();
        let own = self.templates[0].clone();
        let (winner, reason) = match &verdict.leader {
            // Nothing to compare: every rate is 0.
            _ if counts.iter().all(|c| c.converted == 0) => (
                own,
                format!("no {metric} recorded ({rates}): the broadcast's own template is kept"),
            ),
            Some(leader) if verdict.winner.is_some() => (
                leader.clone(),
                format!("best rate of {metric}, significant at 95%: {rates}"),
            ),
            Some(leader) => (
                leader.clone(),
                format!("best rate of {metric}, not significant at 95%: {rates}"),
            ),
            None => (own, format!("no variant was sent ({rates})")),
        };
        TestDecision {
            winner,
            reason,
            verdict,
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
    fn a_test_splits_its_share_evenly_and_the_rest_waits() {
        let mut d = doc();
        d.test = Some(AbTest {
            variants: vec!["newsletter-b".into()],
            share_percent: 20,
            decide_after: "4h".into(),
            metric: TestMetric::Opens,
        });
        let plan = d.check().unwrap().test.unwrap();
        assert_eq!(plan.decide_after, jiff::SignedDuration::from_hours(4));
        let mut a = 0;
        let mut b = 0;
        for contact in 0..10_000 {
            let first = plan.variant_of("nov", contact);
            assert_eq!(first, plan.variant_of("nov", contact), "stable");
            match first {
                Some("newsletter") => a += 1,
                Some("newsletter-b") => b += 1,
                Some(other) => panic!("{other}"),
                None => {}
            }
        }
        assert!((1_800..2_200).contains(&(a + b)), "{a} + {b}");
        assert!(
            (800..1_200).contains(&a) && (800..1_200).contains(&b),
            "{a} / {b}"
        );
    }

    #[test]
    fn the_winner_is_the_best_rate_and_the_reason_says_whether_it_is_significant() {
        let plan = TestPlan {
            templates: vec!["a".into(), "b".into()],
            share_percent: 20,
            decide_after: jiff::SignedDuration::from_hours(1),
            metric: TestMetric::Clicks,
        };
        let result = |t: &str, sent, clicked| VariantResult {
            template: t.into(),
            sent,
            opened: clicked,
            clicked,
            converted: 0,
        };
        let clear = plan.decide(&[result("a", 1000, 50), result("b", 1000, 120)]);
        assert_eq!(clear.winner, "b");
        assert!(
            clear.reason.contains("significant at 95%") && !clear.reason.contains("not"),
            "{}",
            clear.reason
        );
        let close = plan.decide(&[result("a", 100, 10), result("b", 100, 11)]);
        assert_eq!(close.winner, "b");
        assert!(close.reason.contains("not significant"), "{}", close.reason);
        let none = plan.decide(&[result("a", 100, 0)]);
        assert_eq!(none.winner, "a");
        assert!(
            none.reason.contains("no clicks recorded"),
            "{}",
            none.reason
        );
    }

    #[test]
    fn a_test_is_checked_at_the_edge() {
        let mut d = doc();
        d.test = Some(AbTest {
            variants: vec!["newsletter".into()],
            share_percent: 0,
            decide_after: "10s".into(),
            metric: TestMetric::Clicks,
        });
        let fields: Vec<_> = d
            .check()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field.unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "test.variants[0]",
                "test.share_percent",
                "test.decide_after"
            ]
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

    #[test]
    fn a_conversions_test_needs_a_goal_and_decides_on_conversions_per_message_sent() {
        let mut d = doc();
        d.test = Some(AbTest {
            variants: vec!["newsletter-b".into()],
            share_percent: 20,
            decide_after: "1d".into(),
            metric: TestMetric::Conversions,
        });
        let errors = d.check().unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field.as_deref(), Some("test.metric"));
        assert!(errors[0].message.contains("goal"), "{}", errors[0].message);
        d.goal = Some(BroadcastGoal {
            event: "Order Completed".into(),
            filter: Default::default(),
            within: Some("3d".into()),
            revenue_property: None,
            currency: None,
        });
        let plan = d.check().unwrap().test.unwrap();
        // `b` is opened less but converts more per message sent.
        let decision = plan.decide(&[
            VariantResult {
                template: "newsletter".into(),
                sent: 1000,
                opened: 400,
                clicked: 100,
                converted: 10,
            },
            VariantResult {
                template: "newsletter-b".into(),
                sent: 1000,
                opened: 200,
                clicked: 50,
                converted: 40,
            },
        ]);
        assert_eq!(decision.winner, "newsletter-b");
        assert!(
            decision.reason.contains("conversions"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn a_goal_window_is_bounded_and_defaults_to_a_week() {
        let goal = |within: Option<&str>| BroadcastGoal {
            event: "Order Completed".into(),
            filter: Default::default(),
            within: within.map(Into::into),
            revenue_property: None,
            currency: None,
        };
        assert_eq!(
            goal(None).window(),
            Some(jiff::SignedDuration::from_hours(7 * 24))
        );
        assert_eq!(
            goal(Some("3d")).window(),
            Some(jiff::SignedDuration::from_hours(72))
        );
        assert_eq!(goal(Some("10s")).window(), None);
        assert_eq!(goal(Some("91d")).window(), None);
        let mut d = doc();
        d.goal = Some(goal(Some("forever")));
        let errors = d.check().unwrap_err();
        assert_eq!(errors[0].field.as_deref(), Some("goal.within"));
    }
}
