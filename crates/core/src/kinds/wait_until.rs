//! The calendar waits: `wait_until` (the next local time of day on allowed weekdays) and
//! `wait_until_date` (a date trait plus an offset in days). Local means the contact's time
//! zone (trait `timezone`), else the node's, else the journey's, else UTC.

use std::borrow::Cow;

use jiff::SignedDuration;
use jiff::tz::TimeZone;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::trigger::{DateRepeat, DateTrigger};
use super::{Arrival, Kind, NEXT, NEXT_ONLY, Output};
use crate::stepper::Run;
use crate::timing::{WaitUntilSpec, parse_time_of_day, parse_weekday};
use crate::validate::NodeCheck;

/// The output of a `wait_until_date` whose moment cannot come (no date, or already passed).
pub const MISSED: &str = "missed";

pub struct WaitUntil;

impl Kind for WaitUntil {
    type Settings = WaitUntilNode;
    const DESCRIPTION: &'static str = "Waits until the next moment at a local time of day (on \
        allowed weekdays) in the contact's time zone.";
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str =
        r#"{"time": "09:00", "weekdays": ["mon", "tue", "wed", "thu", "fri"]}"#;
    const WAITS: bool = true;

    fn validate(w: &WaitUntilNode, check: &mut NodeCheck<'_>) {
        if let Err((field, message)) = w.spec() {
            let code = match field {
                "time" => "invalid_time",
                "weekdays" => "invalid_weekday",
                _ => "invalid_timezone",
            };
            check.err(code, Some(field), message);
        }
    }

    fn arrive(w: &WaitUntilNode, run: &mut Run<'_>) -> Arrival {
        let spec = w.spec().expect("validated");
        let tz = run.local_zone(spec.timezone.as_ref());
        let now = run.now();
        Arrival::Wait(
            spec.next_after(now, &tz)
                .unwrap_or(now + SignedDuration::from_hours(24)),
        )
    }

    fn timer(_: &WaitUntilNode, _: &mut Run<'_>) -> Option<Arrival> {
        Some(Arrival::next())
    }
}

pub struct WaitUntilDate;

impl Kind for WaitUntilDate {
    type Settings = WaitUntilDateNode;
    const DESCRIPTION: &'static str = "Waits until a date trait (e.g. `renews_on`) plus an \
        offset in days, at a local time. Outputs: `next` when the moment comes, `missed` at \
        once when the trait is not a date or the moment has passed.";
    const OUTPUTS: &'static [Output] = &[Output::Named(NEXT), Output::Named(MISSED)];
    const EXAMPLE: &'static str = r#"{"trait": "renews_on", "offset": "-7d", "time": "10:00"}"#;
    const WAITS: bool = true;

    fn validate(w: &WaitUntilDateNode, check: &mut NodeCheck<'_>) {
        if let Err((field, message)) = w.spec() {
            let code = match field {
                "time" => "invalid_time",
                "offset" => "invalid_duration",
                "timezone" => "invalid_timezone",
                _ => "required",
            };
            check.err(code, Some(field), message);
        }
    }

    fn arrive(w: &WaitUntilDateNode, run: &mut Run<'_>) -> Arrival {
        let spec = w.spec().expect("validated");
        let tz = run.local_zone(spec.timezone.as_ref());
        let moment = run
            .traits()
            .get(&spec.trait_name)
            .and_then(|v| spec.next_after(v, run.now(), &tz));
        match moment {
            Some(until) => Arrival::Wait(until),
            None => Arrival::Leave(Cow::Borrowed(MISSED)),
        }
    }

    fn timer(_: &WaitUntilDateNode, _: &mut Run<'_>) -> Option<Arrival> {
        Some(Arrival::next())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitUntilNode {
    /// Local time of day, `HH:MM` (24-hour).
    pub time: String,
    /// Allowed days (`mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`); default every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekdays: Option<Vec<String>>,
    /// Time zone for contacts without a `timezone` trait; before the journey's `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitUntilDateNode {
    /// The trait holding the date (`YYYY-MM-DD` or an RFC 3339 timestamp).
    #[serde(rename = "trait")]
    pub trait_name: String,
    /// Whole days from the date: `-3d` is three days before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// Local time of day, `HH:MM` (default `09:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Time zone for contacts without a `timezone` trait; before the journey's `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl WaitUntilDateNode {
    /// The settings as a one-time date schedule; `Err` names the field.
    pub fn spec(&self) -> Result<crate::schedule::DateSchedule, (&'static str, String)> {
        crate::schedule::DateSchedule::parse(&DateTrigger {
            trait_name: self.trait_name.clone(),
            time: self.time.clone(),
            offset: self.offset.clone(),
            repeat: DateRepeat::Once,
            timezone: self.timezone.clone(),
        })
        .map_err(|(field, message)| (field.trim_start_matches("date."), message))
    }
}

impl WaitUntilNode {
    /// Parses the settings; `Err` names the field and what is wrong with it.
    pub fn spec(&self) -> Result<WaitUntilSpec, (&'static str, String)> {
        let time = parse_time_of_day(&self.time).ok_or((
            "time",
            format!("`{}` is not a time of day `HH:MM` (00:00-23:59)", self.time),
        ))?;
        let weekdays = match &self.weekdays {
            None => [true; 7],
            Some(list) => {
                if list.is_empty() {
                    return Err(("weekdays", "must name at least one day".into()));
                }
                let mut days = [false; 7];
                for d in list {
                    let i = parse_weekday(d).ok_or((
                        "weekdays",
                        format!("`{d}` is not a weekday (mon, tue, wed, thu, fri, sat, sun)"),
                    ))?;
                    days[i] = true;
                }
                days
            }
        };
        let timezone = match &self.timezone {
            None => None,
            Some(t) => Some(
                TimeZone::get(t)
                    .map_err(|_| ("timezone", format!("`{t}` is not a known time zone")))?,
            ),
        };
        Ok(WaitUntilSpec {
            time,
            weekdays,
            timezone,
        })
    }
}
