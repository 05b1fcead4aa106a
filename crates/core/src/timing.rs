//! Calendar waits and random splits: the deterministic arithmetic behind the `wait_until` and
//! `random_split` nodes. No clock and no randomness source: the time comes in as an argument
//! and a split is chosen by a stable hash of ids.

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

use crate::journey::SplitBranch;

/// Weekday names accepted by `wait_until.weekdays`, Monday first.
pub const WEEKDAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Parses `HH:MM` (24-hour, two digits each).
pub fn parse_time_of_day(s: &str) -> Option<Time> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let digits = |i: usize| -> Option<i8> {
        let (a, c) = (b[i], b[i + 1]);
        (a.is_ascii_digit() && c.is_ascii_digit()).then(|| ((a - b'0') * 10 + (c - b'0')) as i8)
    };
    let (h, m) = (digits(0)?, digits(3)?);
    Time::new(h, m, 0, 0).ok()
}

/// Parses a weekday name (`mon` … `sun`) to its Monday-zero index.
pub fn parse_weekday(s: &str) -> Option<usize> {
    WEEKDAY_NAMES.iter().position(|w| *w == s)
}

/// A parsed `wait_until` node.
#[derive(Debug, Clone)]
pub struct WaitUntilSpec {
    pub time: Time,
    /// Allowed weekdays, indexed Monday = 0.
    pub weekdays: [bool; 7],
    /// The node's fallback time zone.
    pub timezone: Option<TimeZone>,
}

impl WaitUntilSpec {
    /// The next instant strictly after `now` at which the local time in `tz` is `time` on an
    /// allowed weekday. A local time that falls in a daylight-saving gap is moved forward by
    /// the gap's length (so `02:30` on a spring-forward night becomes `03:30`); one that occurs
    /// twice (fall back) takes the first occurrence. `None` only when no weekday is allowed.
    pub fn next_after(&self, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let mut date = now.to_zoned(tz.clone()).date();
        for _ in 0..8 {
            if self.weekdays[weekday_index(date.weekday())] {
                // `to_zoned` uses compatible disambiguation: later for gaps, earlier for folds.
                if let Ok(at) = date.to_datetime(self.time).to_zoned(tz.clone()) {
                    let at = at.timestamp();
                    if at > now {
                        return Some(at);
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

fn weekday_index(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

/// 64-bit FNV-1a followed by the MurmurHash3 `fmix64` finalizer (so that ids differing only
/// in their last bytes still spread over every bucket). Written out so that the choice of a
/// split never changes between Rust versions or builds.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The bucket (0..100) of a contact at a split node of a journey.
pub fn split_bucket(journey_id: &str, node_id: &str, contact_id: i64) -> u64 {
    let mut key = Vec::with_capacity(journey_id.len() + node_id.len() + 10);
    key.extend_from_slice(journey_id.as_bytes());
    key.push(0);
    key.extend_from_slice(node_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&contact_id.to_le_bytes());
    stable_hash(&key) % 100
}

/// The branch a contact takes at a split: the same for the same journey, node and contact, so
/// a retry or a re-entry goes the same way. Branches cover `0..100` in order by their percents.
pub fn choose_branch<'a>(
    journey_id: &str,
    node_id: &str,
    contact_id: i64,
    branches: &'a [SplitBranch],
) -> &'a str {
    let bucket = split_bucket(journey_id, node_id, contact_id);
    let mut upto = 0u64;
    for b in branches {
        upto += u64::from(b.percent);
        if bucket < upto {
            return &b.name;
        }
    }
    branches.last().map_or("", |b| b.name.as_str())
}

/// A date on which nothing is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedDate {
    On(Date),
    /// Every year (month, day).
    Yearly(i8, i8),
}

impl BlockedDate {
    /// `YYYY-MM-DD` or `MM-DD` (every year).
    pub fn parse(s: &str) -> Option<Self> {
        if let Ok(d) = s.parse::<Date>() {
            return Some(BlockedDate::On(d));
        }
        let (m, d) = s.split_once('-')?;
        if m.len() != 2 || d.len() != 2 {
            return None;
        }
        let (m, d): (i8, i8) = (m.parse().ok()?, d.parse().ok()?);
        // 2024 is a leap year, so `02-29` is accepted.
        Date::new(2024, m, d).ok()?;
        Some(BlockedDate::Yearly(m, d))
    }

    fn blocks(&self, date: Date) -> bool {
        match *self {
            BlockedDate::On(d) => d == date,
            BlockedDate::Yearly(m, d) => date.month() == m && date.day() == d,
        }
    }
}

/// When a journey may send: outside its quiet hours and blocked dates, in the contact's local
/// time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendWindow {
    /// Quiet from the first time until the second (the next day when it is earlier).
    pub quiet: Option<(Time, Time)>,
    pub blocked: Vec<BlockedDate>,
    /// Skip a send outside the window instead of deferring it.
    pub skip: bool,
}

impl SendWindow {
    /// Parses the settings; `Err` names the field and what is wrong with it.
    pub fn from_settings(
        quiet: Option<&crate::journey::QuietHours>,
        blocked: &[String],
        outside: crate::journey::OutsideHours,
    ) -> Result<Self, (String, String)> {
        let quiet = match quiet {
            None => None,
            Some(q) => {
                let time = |field: &str, s: &str| {
                    parse_time_of_day(s).ok_or((
                        format!("quiet_hours.{field}"),
                        format!("`{s}` is not a time of day `HH:MM` (00:00-23:59)"),
                    ))
                };
                let (start, end) = (time("start", &q.start)?, time("end", &q.end)?);
                if start == end {
                    return Err(("quiet_hours.end".into(), "must differ from `start`".into()));
                }
                Some((start, end))
            }
        };
        let blocked = blocked
            .iter()
            .enumerate()
            .map(|(i, s)| {
                BlockedDate::parse(s).ok_or((
                    format!("blocked_dates[{i}]"),
                    format!("`{s}` is not a date `YYYY-MM-DD` or a yearly date `MM-DD`"),
                ))
            })
            .collect::<Result<_, _>>()?;
        Ok(SendWindow {
            quiet,
            blocked,
            skip: outside == crate::journey::OutsideHours::Skip,
        })
    }

    /// This window (a journey's) inside the installation's: its own quiet hours if it has
    /// any, else the installation's; the blocked dates of both.
    pub fn under(mut self, installation: &SendWindow) -> SendWindow {
        if self.quiet.is_none() {
            self.quiet = installation.quiet;
        }
        self.blocked.extend(installation.blocked.iter().copied());
        self
    }

    pub fn is_unrestricted(&self) -> bool {
        self.quiet.is_none() && self.blocked.is_empty()
    }

    fn quiet_at(&self, time: Time) -> bool {
        match self.quiet {
            None => false,
            Some((start, end)) if start < end => start <= time && time < end,
            Some((start, end)) => time >= start || time < end,
        }
    }

    /// The first moment at or after `now` when sending is allowed in `tz`. Quiet hours end at
    /// their local end time (on a daylight-saving change, the compatible reading of that
    /// time); a blocked date ends at the next local midnight. `None` when every date is
    /// blocked for over a year.
    pub fn next_allowed(&self, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if self.is_unrestricted() {
            return Some(now);
        }
        let mut t = now;
        for _ in 0..800 {
            let local = t.to_zoned(tz.clone());
            let date = local.date();
            if self.blocked.iter().any(|b| b.blocks(date)) {
                t = date.tomorrow().ok()?.to_zoned(tz.clone()).ok()?.timestamp();
                continue;
            }
            if self.quiet_at(local.time()) {
                let (start, end) = self.quiet.expect("quiet");
                let end_date = if start > end && local.time() >= start {
                    date.tomorrow().ok()?
                } else {
                    date
                };
                let at = end_date
                    .to_datetime(end)
                    .to_zoned(tz.clone())
                    .ok()?
                    .timestamp();
                // A fall-back fold could read the end time before `t`; never go backwards.
                t = if at > t {
                    at
                } else {
                    t + jiff::SignedDuration::from_mins(1)
                };
                continue;
            }
            return Some(t);
        }
        None
    }
}
