//! What a simulation's messages add up to, counted as they are read (so memory does not grow
//! with the population): per channel and day, the busiest hour, and why messages were not
//! sent. No I/O here.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use waymark_core::journey::OutboxChannel;

const CHANNELS: [OutboxChannel; 3] = OutboxChannel::ALL;
/// Distinct reasons kept apart; the rest are counted under "other".
const MAX_REASONS: usize = 50;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub suppressed: u64,
    pub failed: u64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.sent += o.sent;
        self.suppressed += o.suppressed;
        self.failed += o.failed;
    }

    fn json(self) -> Value {
        json!({"sent": self.sent, "suppressed": self.suppressed, "failed": self.failed})
    }
}

/// One message as the tally needs it.
pub struct Message<'a> {
    pub channel: OutboxChannel,
    pub status: &'a str,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub error: Option<&'a str>,
}

pub struct Tally {
    start: Timestamp,
    /// Per day of the period, per channel (in `CHANNELS` order).
    days: Vec<[Counts; 3]>,
    /// Messages sent per hour of the period, per channel.
    hours: Vec<[u64; 3]>,
    reasons: BTreeMap<String, u64>,
    /// Messages dated outside the period (kept in the totals).
    outside: [Counts; 3],
}

impl Tally {
    pub fn new(start: Timestamp, days: usize) -> Self {
        Tally {
            start,
            days: vec![[Counts::default(); 3]; days],
            hours: vec![[0; 3]; days * 24],
            reasons: BTreeMap::new(),
            outside: [Counts::default(); 3],
        }
    }

    pub fn add(&mut self, m: &Message<'_>) {
        let c = CHANNELS.iter().position(|x| *x == m.channel).unwrap_or(0);
        let (counts, at) = match m.status {
            "sent" | "bounced" => (
                Counts {
                    sent: 1,
                    ..Counts::default()
                },
                m.sent_at.unwrap_or(m.created_at),
            ),
            "suppressed" => {
                let reason = m.error.unwrap_or("no reason recorded");
                if self.reasons.len() < MAX_REASONS || self.reasons.contains_key(reason) {
                    *self.reasons.entry(reason.to_string()).or_default() += 1;
                } else {
                    *self.reasons.entry("other".into()).or_default() += 1;
                }
                (
                    Counts {
                        suppressed: 1,
                        ..Counts::default()
                    },
                    m.created_at,
                )
            }
            _ => (
                Counts {
                    failed: 1,
                    ..Counts::default()
                },
                m.created_at,
            ),
        };
        let since = at.duration_since(self.start);
        let hour = since.as_secs().div_euclid(3600);
        match usize::try_from(hour).ok().filter(|h| *h < self.hours.len()) {
            Some(h) => {
                self.days[h / 24][c].add(counts);
                self.hours[h][c] += counts.sent;
            }
            None => self.outside[c].add(counts),
        }
    }

    pub fn json(&self) -> Value {
        let mut totals = [Counts::default(); 3];
        for day in self.days.iter().chain(std::iter::once(&self.outside)) {
            for (t, c) in totals.iter_mut().zip(day) {
                t.add(*c);
            }
        }
        let by_channel = |counts: &[Counts; 3]| -> Value {
            CHANNELS
                .iter()
                .zip(counts)
                .map(|(ch, c)| (ch.as_str().to_string(), c.json()))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let per_day: Vec<Value> = self
            .days
            .iter()
            .enumerate()
            .map(|(d, counts)| {
                let day = self.start + SignedDuration::from_hours(24 * d as i64);
                let mut row = json!({ "day": day });
                for (ch, c) in CHANNELS.iter().zip(counts) {
                    row[ch.as_str()] = c.json();
                }
                row
            })
            .collect();
        let peak: serde_json::Map<String, Value> = CHANNELS
            .iter()
            .enumerate()
            .map(|(c, ch)| {
                let (hour, sent) = self
                    .hours
                    .iter()
                    .enumerate()
                    .map(|(h, counts)| (h, counts[c]))
                    .max_by_key(|(h, sent)| (*sent, std::cmp::Reverse(*h)))
                    .unwrap_or((0, 0));
                let at = self.start + SignedDuration::from_hours(hour as i64);
                let peak = if sent == 0 {
                    json!({"messages": 0, "hour": null})
                } else {
                    json!({"messages": sent, "hour": at})
                };
                (ch.as_str().to_string(), peak)
            })
            .collect();
        let capped: u64 = self
            .reasons
            .iter()
            .filter(|(r, _)| r.starts_with("frequency cap"))
            .map(|(_, n)| n)
            .sum();
        json!({
            "totals": by_channel(&totals),
            "per_day": per_day,
            "peak_hour": peak,
            "capped": capped,
            "suppressed_reasons": self.reasons,
        })
    }

    /// Messages sent per day on each channel, for the chart.
    pub fn sent_per_day(&self) -> Vec<[u64; 3]> {
        self.days
            .iter()
            .map(|d| [d[0].sent, d[1].sent, d[2].sent])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_count_on_their_day_and_hour_and_suppressions_by_reason() {
        let start: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let at = |h: i64| start + SignedDuration::from_hours(h);
        let mut t = Tally::new(start, 2);
        for h in [1, 1, 1, 30] {
            t.add(&Message {
                channel: OutboxChannel::Email,
                status: "sent",
                created_at: at(h),
                sent_at: Some(at(h)),
                error: None,
            });
        }
        t.add(&Message {
            channel: OutboxChannel::Sms,
            status: "suppressed",
            created_at: at(2),
            sent_at: None,
            error: Some("frequency cap reached (sms=1/1d)"),
        });
        t.add(&Message {
            channel: OutboxChannel::Email,
            status: "sent",
            created_at: at(50),
            sent_at: Some(at(50)),
            error: None,
        });
        let j = t.json();
        assert_eq!(
            j["totals"]["email"]["sent"], 5,
            "outside the period still counts"
        );
        assert_eq!(j["per_day"][0]["email"]["sent"], 3);
        assert_eq!(j["per_day"][1]["email"]["sent"], 1);
        assert_eq!(j["per_day"][0]["sms"]["suppressed"], 1);
        assert_eq!(j["peak_hour"]["email"]["messages"], 3);
        assert_eq!(j["peak_hour"]["email"]["hour"], json!(at(1)));
        assert_eq!(j["peak_hour"]["sms"]["hour"], Value::Null);
        assert_eq!(j["capped"], 1);
        assert_eq!(
            j["suppressed_reasons"]["frequency cap reached (sms=1/1d)"],
            1
        );
        assert_eq!(t.sent_per_day(), vec![[3, 0, 0], [1, 0, 0]]);
    }
}
