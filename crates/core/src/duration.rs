//! Durations as journey authors write them: `30s`, `15m`, `24h`, `2d`, `1w`, or combinations
//! such as `1d12h`. A day is 24 hours (calendar-aware waits are a different node kind).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    seconds: i64,
}

impl Duration {
    pub const fn from_seconds(seconds: i64) -> Self {
        Duration { seconds }
    }
    pub fn seconds(self) -> i64 {
        self.seconds
    }
    pub fn millis(self) -> i64 {
        self.seconds * 1000
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("a duration must not be empty (e.g. `30m`, `24h`, `2d`)".into());
        }
        let mut total: i64 = 0;
        let mut number = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => {
                    return Err(format!(
                        "`{raw}` is not a duration: unknown unit `{c}` (use s, m, h, d or w)"
                    ));
                }
            };
            let n: i64 = number.parse().map_err(|_| {
                format!("`{raw}` is not a duration: a number must come before `{c}`")
            })?;
            number.clear();
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .filter(|t| *t <= 100 * 365 * 86_400)
                .ok_or_else(|| format!("`{raw}` is longer than 100 years"))?;
        }
        if !number.is_empty() {
            return Err(format!(
                "`{raw}` is not a duration: `{number}` has no unit (use s, m, h, d or w)"
            ));
        }
        if total == 0 {
            return Err(format!("`{raw}` is zero; a duration must be positive"));
        }
        Ok(Duration { seconds: total })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.seconds;
        for (unit, size) in [
            ("w", 604_800),
            ("d", 86_400),
            ("h", 3600),
            ("m", 60),
            ("s", 1),
        ] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

/// Parses a send rate `N/s`, `N/m`, `N/h` or `N/d` (messages per second, minute, hour or day)
/// into messages per second.
pub fn parse_send_rate(raw: &str) -> Result<f64, String> {
    let bad = || format!("`{raw}` is not a send rate such as `100/m` (per s, m, h or d)");
    let (count, unit) = raw.trim().split_once('/').ok_or_else(bad)?;
    let count: f64 = count.trim().parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(bad()),
    };
    if !(count.is_finite() && count > 0.0) {
        return Err(bad());
    }
    Ok(count / seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_units() {
        assert_eq!(Duration::parse("30s").unwrap().seconds(), 30);
        assert_eq!(Duration::parse("24h").unwrap().seconds(), 86_400);
        assert_eq!(Duration::parse("1d12h").unwrap().seconds(), 129_600);
        assert_eq!(Duration::parse("1w").unwrap().seconds(), 604_800);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["", "10", "h", "3x", "0s", "-1h", "1.5h", "999999999w"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(secs in 1i64..10_000_000) {
            let d = Duration::from_seconds(secs);
            prop_assert_eq!(Duration::parse(&d.to_string()).unwrap(), d);
        }
    }
}
