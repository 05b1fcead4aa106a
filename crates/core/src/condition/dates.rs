//! Dates relative to now: how a trait value becomes a moment, and when the date operators of a
//! [`Ops`] hold and next change.
//!
//! Every time-dependent test here is written as "`now` lies in a half-open interval
//! `[start, end)`", so that the instants where a result flips are exact and `next_change` can
//! return them: at `start` the new result already holds.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::duration::Duration;
use crate::filter::Ops;

/// The moment and the time zone a condition is evaluated in. The time zone gives `YYYY-MM-DD`
/// dates their midnight and `anniversary` its calendar day.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalClock {
    pub now: Timestamp,
    pub tz: TimeZone,
}

impl EvalClock {
    pub fn new(now: Timestamp, tz: TimeZone) -> Self {
        EvalClock { now, tz }
    }
    /// UTC, for callers without a contact or journey time zone.
    pub fn utc(now: Timestamp) -> Self {
        EvalClock {
            now,
            tz: TimeZone::UTC,
        }
    }
    /// Today's date in the evaluation time zone.
    pub fn today(&self) -> Date {
        self.now.to_zoned(self.tz.clone()).date()
    }
}

/// A date-like value read as an instant: an RFC 3339 timestamp (`2026-03-01T09:30:00Z`, with
/// any offset), a civil date-time without offset (`2026-03-01T09:30:00`, local time in `tz`) or a
/// date `YYYY-MM-DD` (midnight in `tz`, the first instant of that day). Anything else is `None`.
pub fn parse_moment(value: &Value, tz: &TimeZone) -> Option<Timestamp> {
    let s = value.as_str()?.trim();
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Some(date) = parse_plain_date(s) {
        return start_of_day(date, tz);
    }
    let dt: DateTime = s.parse().ok()?;
    dt.to_zoned(tz.clone()).ok().map(|z| z.timestamp())
}

/// The calendar date of a date-like value: a `YYYY-MM-DD` date as written, otherwise the local
/// date of its instant in `tz`.
pub fn parse_local_date(value: &Value, tz: &TimeZone) -> Option<Date> {
    let s = value.as_str()?.trim();
    if let Some(date) = parse_plain_date(s) {
        return Some(date);
    }
    parse_moment(value, tz).map(|ts| ts.to_zoned(tz.clone()).date())
}

/// Exactly `YYYY-MM-DD`.
pub fn parse_plain_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    s.parse().ok()
}

/// Whether `s` is a date or timestamp accepted by `before` / `after`.
pub fn is_date_literal(s: &str) -> bool {
    let v = Value::String(s.to_string());
    parse_moment(&v, &TimeZone::UTC).is_some()
}

/// The first instant of `date` in `tz` (midnight, or the end of a daylight-saving gap that
/// swallows midnight).
pub fn start_of_day(date: Date, tz: &TimeZone) -> Option<Timestamp> {
    date.to_zoned(tz.clone()).ok().map(|z| z.timestamp())
}

/// `ts + seconds`, `None` when out of jiff's range (treated as "never").
pub fn shift(ts: Timestamp, seconds: i64) -> Option<Timestamp> {
    ts.checked_add(SignedDuration::from_secs(seconds)).ok()
}

fn seconds(raw: &str) -> Option<i64> {
    Duration::parse(raw).ok().map(Duration::seconds)
}

/// Whether `day` is an anniversary of `date`: same month and day; a 29 February date has its
/// anniversary on 28 February in years without one.
pub fn is_anniversary(date: Date, day: Date) -> bool {
    if date.month() == day.month() && date.day() == day.day() {
        return true;
    }
    date.month() == 2
        && date.day() == 29
        && day.month() == 2
        && day.day() == 28
        && !day.in_leap_year()
}

/// The anniversary day of `date` in `year`.
fn anniversary_in(date: Date, year: i16) -> Option<Date> {
    Date::new(year, date.month(), date.day())
        .or_else(|_| Date::new(year, 2, 28))
        .ok()
}

/// The next instant after `clock.now` where "`date` has its anniversary today" changes: the end
/// of today if today is one, otherwise the start of the next anniversary day.
pub fn anniversary_next_change(date: Date, clock: &EvalClock) -> Option<Timestamp> {
    let today = clock.today();
    let day = if is_anniversary(date, today) {
        today.tomorrow().ok()?
    } else {
        let this_year = anniversary_in(date, today.year())?;
        if this_year > today {
            this_year
        } else {
            anniversary_in(date, today.year().checked_add(1)?)?
        }
    };
    start_of_day(day, &clock.tz)
}

/// Whether every date operator of `ops` holds for `value` at `clock`. A value that is not a
/// date, or an operator argument that does not parse, makes the operator false.
pub fn date_ops_hold(ops: &Ops, value: &Value, clock: &EvalClock) -> bool {
    let now = clock.now;
    let Some(moment) = parse_moment(value, &clock.tz) else {
        return false;
    };
    let within_last = || {
        let d = seconds(ops.within_last.as_deref()?)?;
        // now ∈ [moment, moment + d)
        Some(moment <= now && shift(moment, d).is_none_or(|end| now < end))
    };
    let older_than = || {
        let d = seconds(ops.older_than.as_deref()?)?;
        // now ∈ [moment + d, ∞)
        Some(shift(moment, d).is_some_and(|start| start <= now))
    };
    let within_next = || {
        let d = seconds(ops.within_next.as_deref()?)?;
        // now ∈ [moment - d, moment)
        Some(now < moment && shift(moment, -d).is_none_or(|start| start <= now))
    };
    let anniversary = || {
        if ops.anniversary.as_deref()?.trim() != "today" {
            return Some(false);
        }
        let date = parse_local_date(value, &clock.tz)?;
        Some(is_anniversary(date, clock.today()))
    };
    let before = || {
        let bound = parse_moment(&Value::String(ops.before.clone()?), &clock.tz)?;
        Some(moment < bound)
    };
    let after = || {
        let bound = parse_moment(&Value::String(ops.after.clone()?), &clock.tz)?;
        Some(moment > bound)
    };
    let check = |set: bool, result: &dyn Fn() -> Option<bool>| !set || result() == Some(true);
    check(ops.within_last.is_some(), &within_last)
        && check(ops.older_than.is_some(), &older_than)
        && check(ops.within_next.is_some(), &within_next)
        && check(ops.anniversary.is_some(), &anniversary)
        && check(ops.before.is_some(), &before)
        && check(ops.after.is_some(), &after)
}

/// The earliest instant after `clock.now` at which a date operator of `ops` may flip for
/// `value` (the value itself unchanged).
pub fn predicate_next_change(
    ops: &Ops,
    value: Option<&Value>,
    clock: &EvalClock,
) -> Option<Timestamp> {
    let value = value?;
    let moment = parse_moment(value, &clock.tz)?;
    let now = clock.now;
    let mut candidates: Vec<Option<Timestamp>> = Vec::new();
    if let Some(d) = ops.within_last.as_deref().and_then(seconds) {
        candidates.push(Some(moment));
        candidates.push(shift(moment, d));
    }
    if let Some(d) = ops.older_than.as_deref().and_then(seconds) {
        candidates.push(shift(moment, d));
    }
    if let Some(d) = ops.within_next.as_deref().and_then(seconds) {
        candidates.push(shift(moment, -d));
        candidates.push(Some(moment));
    }
    if ops.anniversary.as_deref().map(str::trim) == Some("today")
        && let Some(date) = parse_local_date(value, &clock.tz)
    {
        candidates.push(anniversary_next_change(date, clock));
    }
    candidates.into_iter().flatten().filter(|t| *t > now).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn rome() -> TimeZone {
        TimeZone::get("Europe/Rome").unwrap()
    }

    #[test]
    fn parses_dates_and_timestamps() {
        let tz = rome();
        let d = parse_moment(&Value::from("2026-03-29"), &tz).unwrap();
        assert_eq!(d.to_string(), "2026-03-28T23:00:00Z");
        let t = parse_moment(&Value::from("2026-03-29T10:00:00+02:00"), &tz).unwrap();
        assert_eq!(t.to_string(), "2026-03-29T08:00:00Z");
        let local = parse_moment(&Value::from("2026-03-29T10:00:00"), &tz).unwrap();
        assert_eq!(local, t);
        assert!(parse_moment(&Value::from("yesterday"), &tz).is_none());
        assert!(parse_moment(&Value::from(20260329), &tz).is_none());
    }

    #[test]
    fn leap_day_anniversaries() {
        let born = date(2000, 2, 29);
        assert!(is_anniversary(born, date(2027, 2, 28)));
        assert!(!is_anniversary(born, date(2027, 3, 1)));
        assert!(is_anniversary(born, date(2028, 2, 29)));
        assert!(!is_anniversary(born, date(2028, 2, 28)));
        let clock = EvalClock::new(
            date(2027, 2, 1).to_zoned(rome()).unwrap().timestamp(),
            rome(),
        );
        let next = anniversary_next_change(born, &clock).unwrap();
        assert_eq!(next.to_zoned(rome()).date(), date(2027, 2, 28));
    }
}
