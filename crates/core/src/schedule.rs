//! When time-based triggers fire: a date trait (birthday, anniversary, renewal date) yearly or
//! once, at a local time with an offset in days; inactivity (no `X` for N days); and a cron
//! schedule in a time zone. Pure arithmetic over jiff: the engine stores the next moment and
//! records a `Journey Trigger Due` event for the contact when it comes.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::Value;

use crate::duration::Duration;
use crate::journey::{DateRepeat, DateTrigger, InactivityTrigger, ScheduleTrigger};
use crate::timing::parse_time_of_day;

/// A parsed date trigger.
#[derive(Debug, Clone)]
pub struct DateSchedule {
    pub trait_name: String,
    pub time: Time,
    /// Whole days added to the date (negative: before).
    pub offset_days: i32,
    pub yearly: bool,
    pub timezone: Option<TimeZone>,
}

/// A parsed inactivity trigger.
#[derive(Debug, Clone)]
pub struct InactivitySchedule {
    pub event: String,
    pub after: Duration,
}

/// A parsed cron trigger.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    schedule: jiff_cron::Schedule,
    pub timezone: TimeZone,
    pub segment: Option<String>,
}

/// A trigger that fires by time rather than by an event.
#[derive(Debug, Clone)]
pub enum TimedTrigger {
    Date(DateSchedule),
    Inactivity(InactivitySchedule),
    Cron(Box<CronSchedule>),
}

/// Parses `-3d`, `3d` or `0d` to whole days.
fn parse_offset_days(raw: &str) -> Result<i32, String> {
    let s = raw.trim();
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let d = Duration::parse(rest)?;
    if d.seconds() % 86_400 != 0 {
        return Err(format!(
            "`{raw}` is not a whole number of days (e.g. `-3d`, `1w`)"
        ));
    }
    Ok(sign * (d.seconds() / 86_400) as i32)
}

impl DateSchedule {
    /// Parses the settings; `Err` names the field and what is wrong.
    pub fn parse(t: &DateTrigger) -> Result<Self, (&'static str, String)> {
        if t.trait_name.trim().is_empty() {
            return Err(("date.trait", "must name a date trait".into()));
        }
        let time_text = t.time.as_deref().unwrap_or("09:00");
        let time = parse_time_of_day(time_text).ok_or((
            "date.time",
            format!("`{time_text}` is not a time of day `HH:MM`"),
        ))?;
        let offset_days = match &t.offset {
            None => 0,
            Some(o) => parse_offset_days(o).map_err(|m| ("date.offset", m))?,
        };
        if offset_days.abs() > 366 {
            return Err(("date.offset", "must be within a year".into()));
        }
        let timezone = match &t.timezone {
            None => None,
            Some(z) => Some(
                TimeZone::get(z)
                    .map_err(|_| ("date.timezone", format!("`{z}` is not a known time zone")))?,
            ),
        };
        Ok(DateSchedule {
            trait_name: t.trait_name.clone(),
            time,
            offset_days,
            yearly: t.repeat == DateRepeat::Yearly,
            timezone,
        })
    }

    /// The first firing strictly after `after` for a contact whose trait holds `value` (a
    /// `YYYY-MM-DD` date or an RFC 3339 timestamp, read as a date in `tz`), in `tz`. Yearly:
    /// the anniversaries (from the year after the date on), with 29 February on 28 February
    /// in other years; once: the date itself. `None` when the trait
    /// is not a date, or a one-time date has passed.
    pub fn next_after(&self, value: &Value, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let date = trait_date(value, tz)?;
        let at = |d: Date| -> Option<Timestamp> {
            let shifted = d.checked_add(self.offset_days.days()).ok()?;
            Some(
                shifted
                    .to_datetime(self.time)
                    .to_zoned(tz.clone())
                    .ok()?
                    .timestamp(),
            )
        };
        if !self.yearly {
            return at(date).filter(|t| *t > after);
        }
        // Anniversaries only: the date itself (a sign-up today) is no anniversary yet.
        let year = after.to_zoned(tz.clone()).year();
        (year - 1..=year + 2)
            .filter(|y| *y > date.year())
            .filter_map(|y| anniversary(date, y))
            .filter_map(at)
            .find(|t| *t > after)
    }
}

/// The date's anniversary in `year` (29 February falls on 28 February in common years).
fn anniversary(date: Date, year: i16) -> Option<Date> {
    Date::new(year, date.month(), date.day())
        .or_else(|_| Date::new(year, date.month(), date.day() - 1))
        .ok()
}

/// A trait value as a local date: `YYYY-MM-DD`, or a timestamp seen in `tz`.
pub fn trait_date(value: &Value, tz: &TimeZone) -> Option<Date> {
    let s = value.as_str()?.trim();
    if let Ok(d) = s.parse::<Date>() {
        return Some(d);
    }
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t.to_zoned(tz.clone()).date());
    }
    s.parse::<jiff::civil::DateTime>().ok().map(|d| d.date())
}

impl InactivitySchedule {
    pub fn parse(t: &InactivityTrigger) -> Result<Self, (&'static str, String)> {
        if t.event.trim().is_empty() {
            return Err(("inactivity.event", "must name an event".into()));
        }
        let after = Duration::parse(&t.after).map_err(|m| ("inactivity.for", m))?;
        if after.seconds() <= 0 {
            return Err(("inactivity.for", "must be longer than 0".into()));
        }
        Ok(InactivitySchedule {
            event: t.event.clone(),
            after,
        })
    }

    /// When a contact whose last matching event was at `last` becomes inactive.
    pub fn due(&self, last: Timestamp) -> Timestamp {
        last + SignedDuration::from_secs(self.after.seconds())
    }
}

impl CronSchedule {
    /// Parses a standard five-field cron expression (minute, hour, day of month, month, day
    /// of week; `*`, lists, ranges, steps, names; day-of-week numbers 0-7 with Sunday as 0 and
    /// 7) or `@daily`, `@weekly`, `@monthly`, `@yearly`, `@hourly`.
    pub fn parse(t: &ScheduleTrigger) -> Result<Self, (&'static str, String)> {
        let schedule = parse_cron(&t.cron).map_err(|m| ("schedule.cron", m))?;
        let timezone = match &t.timezone {
            None => TimeZone::UTC,
            Some(z) => TimeZone::get(z).map_err(|_| {
                (
                    "schedule.timezone",
                    format!("`{z}` is not a known time zone"),
                )
            })?,
        };
        Ok(CronSchedule {
            schedule,
            timezone,
            segment: t.segment.clone(),
        })
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let from = after.to_zoned(self.timezone.clone());
        self.schedule.after(from).next().map(|z| z.timestamp())
    }
}

const DAY_NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// jiff-cron reads seven fields (seconds first, a year last) and numbers weekdays from 1 for
/// Sunday; users write Unix cron. Numbered weekdays are turned into names so `1-5` keeps
/// meaning Monday to Friday.
fn parse_cron(raw: &str) -> Result<jiff_cron::Schedule, String> {
    let expr = raw.trim();
    let bad = |why: &str| format!("`{raw}` is not a cron expression: {why}");
    if expr.starts_with('@') {
        return expr
            .parse()
            .map_err(|e: jiff_cron::error::Error| bad(&e.to_string()));
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(bad(
            "expected 5 fields (minute hour day-of-month month day-of-week)",
        ));
    }
    let mut dow = Vec::new();
    for part in fields[4].split(',') {
        if part.contains('/') && part.chars().any(|c| c.is_ascii_digit()) && !part.starts_with('*')
        {
            return Err(bad(
                "write stepped day-of-week ranges with names (MON-FRI/2)",
            ));
        }
        let mapped: Vec<String> = part
            .split('-')
            .map(|p| match p.parse::<usize>() {
                Ok(n) if n <= 7 => Ok(DAY_NAMES[n].to_string()),
                Ok(_) => Err(bad("day-of-week numbers are 0-7")),
                Err(_) => Ok(p.to_string()),
            })
            .collect::<Result<_, _>>()?;
        dow.push(mapped.join("-"));
    }
    let seven = format!(
        "0 {} {} {} {} {}",
        fields[0],
        fields[1],
        fields[2],
        fields[3],
        dow.join(",")
    );
    seven
        .parse()
        .map_err(|e: jiff_cron::error::Error| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn date(
        trait_name: &str,
        time: &str,
        offset: Option<&str>,
        repeat: DateRepeat,
    ) -> DateSchedule {
        DateSchedule::parse(&DateTrigger {
            trait_name: trait_name.into(),
            time: Some(time.into()),
            offset: offset.map(str::to_string),
            repeat,
            timezone: None,
        })
        .unwrap()
    }

    #[test]
    fn yearly_dates_fire_on_the_anniversary_with_an_offset() {
        let rome = TimeZone::get("Europe/Rome").unwrap();
        let b = date("birthday", "09:00", None, DateRepeat::Yearly);
        let next = b
            .next_after(&json!("1990-03-15"), utc("2026-11-23T12:00:00Z"), &rome)
            .unwrap();
        assert_eq!(next, utc("2027-03-15T08:00:00Z"));
        let before = date("renewal", "10:00", Some("-3d"), DateRepeat::Yearly);
        let next = before
            .next_after(
                &json!("2020-12-01"),
                utc("2026-11-23T12:00:00Z"),
                &TimeZone::UTC,
            )
            .unwrap();
        assert_eq!(next, utc("2026-11-28T10:00:00Z"));
        // Already past today's 09:00: next year.
        let next = b
            .next_after(
                &json!("1990-11-23"),
                utc("2026-11-23T12:00:00Z"),
                &TimeZone::UTC,
            )
            .unwrap();
        assert_eq!(next, utc("2027-11-23T09:00:00Z"));
        // Leap-day birthdays fall on 28 February in common years.
        let next = b
            .next_after(
                &json!("2000-02-29"),
                utc("2026-11-23T12:00:00Z"),
                &TimeZone::UTC,
            )
            .unwrap();
        assert_eq!(next, utc("2027-02-28T09:00:00Z"));
        // Timestamps count by their local date; junk is no date.
        assert!(
            b.next_after(&json!("soon"), utc("2026-01-01T00:00:00Z"), &TimeZone::UTC)
                .is_none()
        );
    }

    #[test]
    fn once_dates_fire_once() {
        let once = date("trial_ends_at", "09:00", Some("-1d"), DateRepeat::Once);
        let at = once
            .next_after(
                &json!("2026-12-10T15:00:00Z"),
                utc("2026-11-23T00:00:00Z"),
                &TimeZone::UTC,
            )
            .unwrap();
        assert_eq!(at, utc("2026-12-09T09:00:00Z"));
        assert!(
            once.next_after(&json!("2026-12-10"), at, &TimeZone::UTC)
                .is_none()
        );
    }

    #[test]
    fn cron_reads_unix_weekdays_and_time_zones() {
        let weekdays = CronSchedule::parse(&ScheduleTrigger {
            cron: "30 9 * * 1-5".into(),
            timezone: Some("America/New_York".into()),
            segment: None,
        })
        .unwrap();
        // Saturday 2026-11-28: next is Monday 30 November at 09:30 EST.
        assert_eq!(
            weekdays.next_after(utc("2026-11-28T12:00:00Z")),
            Some(utc("2026-11-30T14:30:00Z"))
        );
        let sunday = CronSchedule::parse(&ScheduleTrigger {
            cron: "0 8 * * 0".into(),
            timezone: None,
            segment: None,
        })
        .unwrap();
        assert_eq!(
            sunday.next_after(utc("2026-11-23T00:00:00Z")),
            Some(utc("2026-11-29T08:00:00Z"))
        );
        for bad in ["* * *", "61 * * * *", "0 9 * * 9", "0 9 * * 1-5/2"] {
            assert!(
                CronSchedule::parse(&ScheduleTrigger {
                    cron: bad.into(),
                    timezone: None,
                    segment: None
                })
                .is_err(),
                "{bad}"
            );
        }
    }
}
