//! Frequency caps: at most N marketing messages per contact and channel within a rolling
//! window, across all journeys (`--frequency-cap email=3/7d`). A message over the cap is
//! recorded `suppressed` with the reason, so the step log and the counts show it was held back.
//! Transactional messages are never capped and never count.

use std::fmt;
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use waymark_core::Duration;
use waymark_core::journey::Channel;
use waymark_store::{EngineTx, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub channel: Channel,
    pub max: u32,
    pub window: Duration,
}

impl FromStr for FrequencyCap {
    type Err = String;

    /// `email=3/7d`: channel, count, window.
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{raw}` is not a frequency cap such as `email=3/7d` (channel=count/window)")
        };
        let (channel, rest) = raw.trim().split_once('=').ok_or_else(bad)?;
        let channel = Channel::parse(channel.trim()).ok_or_else(bad)?;
        let (max, window) = rest.split_once('/').ok_or_else(bad)?;
        let max: u32 = max.trim().parse().map_err(|_| bad())?;
        let window = Duration::parse(window).map_err(|e| format!("{}: {e}", bad()))?;
        if max == 0 || window.seconds() <= 0 {
            return Err(bad());
        }
        Ok(FrequencyCap {
            channel,
            max,
            window,
        })
    }
}

impl fmt::Display for FrequencyCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}/{}", self.channel.as_str(), self.max, self.window)
    }
}

/// The cap a new marketing message to this contact would exceed, if any.
pub fn exceeded(
    caps: &[FrequencyCap],
    tx: &mut dyn EngineTx,
    contact_id: i64,
    channel: Channel,
    now: Timestamp,
) -> Result<Option<FrequencyCap>, StoreError> {
    for cap in caps.iter().filter(|c| c.channel == channel) {
        let since = now - SignedDuration::from_secs(cap.window.seconds());
        if tx.count_marketing_messages(contact_id, channel.as_str(), since)? >= i64::from(cap.max) {
            return Ok(Some(*cap));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_caps() {
        let cap: FrequencyCap = "email=3/7d".parse().unwrap();
        assert_eq!(cap.channel, Channel::Email);
        assert_eq!(cap.max, 3);
        assert_eq!(cap.window.seconds(), 7 * 86_400);
        assert_eq!(cap.to_string(), "email=3/1w");
        for bad in [
            "email3/7d",
            "fax=3/7d",
            "email=0/7d",
            "email=3",
            "email=x/7d",
            "email=3/7q",
        ] {
            assert!(bad.parse::<FrequencyCap>().is_err(), "{bad}");
        }
    }
}
