//! Send-rate limits, held exactly however many messages are in flight: per channel
//! (`--email-rate`, `--sms-rate`) and per journey (its `send_rate`).
//!
//! A rate of N a second allows N messages in any second, however the second is cut, as the
//! provider counts them: its limit is what it sees arrive, not when Waymark decided to send.
//! So a message holds a place from the moment it starts until one window after its delivery
//! ended (the provider has seen it by then): the next message on that place reaches the
//! provider at least a window after it. A burst of N at once is allowed; a rate under 1 a
//! second is one message per 1/rate seconds. (A token bucket would allow its saved burst on top
//! of the refill: up to 2N in a second.)
//!
//! Everything reads the engine's clock, and a message over the rate is put back in the queue
//! with the time its place comes free, so a simulated clock replays the limits exactly.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use waymark_core::OutboxChannel;

use crate::clock::Clock;

/// Maximum send rates per transport, in messages per second; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SendRates {
    pub email: Option<f64>,
    pub sms: Option<f64>,
}

/// One send-rate limit: at most `limit` messages in any `window`.
#[derive(Debug)]
pub(crate) struct SendRate {
    rate: f64,
    limit: usize,
    window: SignedDuration,
    /// Places held by messages being delivered.
    in_flight: usize,
    /// When the deliveries on the other places ended, oldest first; a place comes free a
    /// window after.
    ended: VecDeque<Timestamp>,
}

/// Why a message cannot start now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Its place comes free at this time.
    Until(Timestamp),
    /// Every place is held by a delivery in flight: its end will tell.
    ForDeliveries,
}

impl SendRate {
    pub(crate) fn new(rate: f64) -> Self {
        let limit = (rate.floor() as usize).max(1);
        let window_ms = (limit as f64 * 1000.0 / rate).ceil() as i64;
        SendRate {
            rate,
            limit,
            window: SignedDuration::from_millis(window_ms),
            in_flight: 0,
            ended: VecDeque::with_capacity(limit),
        }
    }

    /// Takes a place at `now`, or says how long to wait: `waiting` messages wait already in
    /// this selection, and this one gets the place after theirs.
    fn take(&mut self, now: Timestamp, waiting: u32) -> Result<(), Wait> {
        while let Some(&oldest) = self.ended.front() {
            if now.duration_since(oldest) >= self.window {
                self.ended.pop_front();
            } else {
                break;
            }
        }
        if self.in_flight + self.ended.len() < self.limit {
            self.in_flight += 1;
            return Ok(());
        }
        let k = waiting as usize;
        if k < self.ended.len() {
            return Err(Wait::Until(self.free_at(self.ended[k], 1)));
        }
        if self.in_flight > 0 {
            return Err(Wait::ForDeliveries);
        }
        // Every place ended recently; the k-th waiting message takes the (k mod limit)-th
        // place, that many windows later.
        Err(Wait::Until(
            self.free_at(self.ended[k % self.limit], k / self.limit + 1),
        ))
    }

    fn free_at(&self, ended: Timestamp, windows: usize) -> Timestamp {
        let windows = i32::try_from(windows).unwrap_or(i32::MAX);
        ended
            .saturating_add(self.window * windows)
            .unwrap_or(Timestamp::MAX)
    }

    /// A delivery on a place taken ended at `at`.
    fn release(&mut self, at: Timestamp) {
        self.in_flight = self.in_flight.saturating_sub(1);
        // Kept in order: deliveries end in any order, and the window counts from the latest.
        let at = self.ended.back().map_or(at, |last| at.max(*last));
        self.ended.push_back(at);
        while self.ended.len() > self.limit {
            self.ended.pop_front();
        }
    }

    /// Gives back a place taken by a message that did not start after all.
    fn give_back(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

type Shared = Arc<Mutex<SendRate>>;

/// The limits of every channel and live journey.
#[derive(Default)]
pub(crate) struct Limits {
    channels: HashMap<OutboxChannel, Shared>,
    journeys: HashMap<String, Shared>,
    /// Messages told to wait in the current selection, per limit (by its address).
    waiting: HashMap<usize, u32>,
}

/// The places a started message holds; they are released when it is dropped (when the
/// delivery ended, however it ended).
pub(crate) struct Places {
    held: Vec<Shared>,
    clock: Clock,
}

impl Drop for Places {
    fn drop(&mut self) {
        let now = self.clock.now();
        for rate in &self.held {
            rate.lock().expect("send rate lock").release(now);
        }
    }
}

impl Limits {
    pub(crate) fn new(rates: SendRates) -> Self {
        let mut limits = Limits::default();
        for (channel, rate) in [
            (OutboxChannel::Email, rates.email),
            (OutboxChannel::Sms, rates.sms),
        ] {
            if let Some(rate) = rate.filter(|r| r.is_finite() && *r > 0.0) {
                limits
                    .channels
                    .insert(channel, Arc::new(Mutex::new(SendRate::new(rate))));
            }
        }
        limits
    }

    /// The send rates of live journeys, replacing the previous ones; a journey whose rate did
    /// not change keeps its limit (and the places its messages hold).
    pub(crate) fn set_journey_rates(&mut self, rates: HashMap<String, f64>) {
        self.journeys
            .retain(|id, limit| rates.get(id) == Some(&limit.lock().expect("send rate lock").rate));
        for (id, rate) in rates {
            if rate.is_finite() && rate > 0.0 {
                self.journeys
                    .entry(id)
                    .or_insert_with(|| Arc::new(Mutex::new(SendRate::new(rate))));
            }
        }
    }

    /// Starts a selection: no message waits yet.
    pub(crate) fn new_selection(&mut self) {
        self.waiting.clear();
    }

    /// Takes a place on the message's journey limit, then on its channel's; a message its
    /// journey holds back takes no place on the channel.
    pub(crate) fn take(
        &mut self,
        channel: OutboxChannel,
        journey: Option<&str>,
        now: Timestamp,
        clock: &Clock,
    ) -> Result<Places, Wait> {
        let limits = [
            journey.and_then(|j| self.journeys.get(j)),
            self.channels.get(&channel),
        ];
        let mut held: Vec<Shared> = Vec::new();
        for limit in limits.into_iter().flatten() {
            let key = Arc::as_ptr(limit) as usize;
            let waiting = self.waiting.entry(key).or_default();
            let taken = limit.lock().expect("send rate lock").take(now, *waiting);
            if let Err(wait) = taken {
                *waiting += 1;
                for earlier in &held {
                    earlier.lock().expect("send rate lock").give_back();
                }
                return Err(wait);
            }
            held.push(limit.clone());
        }
        Ok(Places {
            held,
            clock: clock.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + ms).unwrap()
    }

    /// Takes a place and ends its delivery at once.
    fn send(rate: &mut SendRate, at: Timestamp, waiting: u32) -> Result<(), Wait> {
        rate.take(at, waiting)?;
        rate.release(at);
        Ok(())
    }

    #[test]
    fn a_burst_of_one_seconds_worth_then_each_place_a_window_after_its_delivery() {
        let mut r = SendRate::new(2.0);
        assert_eq!(send(&mut r, t(0), 0), Ok(()));
        assert_eq!(send(&mut r, t(100), 0), Ok(()));
        // The next three wait for the 1st and 2nd places, a window later, then the 1st again.
        assert_eq!(send(&mut r, t(100), 0), Err(Wait::Until(t(1000))));
        assert_eq!(send(&mut r, t(100), 1), Err(Wait::Until(t(1100))));
        assert_eq!(send(&mut r, t(100), 2), Err(Wait::Until(t(2000))));
        assert_eq!(send(&mut r, t(1000), 0), Ok(()));
        assert!(send(&mut r, t(1000), 0).is_err());
        assert_eq!(send(&mut r, t(1100), 0), Ok(()));
        // Idle time frees the places, never more than the limit.
        assert_eq!(send(&mut r, t(60_000), 0), Ok(()));
        assert_eq!(send(&mut r, t(60_000), 0), Ok(()));
        assert!(send(&mut r, t(60_000), 0).is_err());
    }

    #[test]
    fn a_place_is_held_while_its_delivery_is_in_flight_and_a_window_after_it_ended() {
        let mut r = SendRate::new(1.0);
        assert_eq!(r.take(t(0), 0), Ok(()));
        assert_eq!(r.take(t(5000), 0), Err(Wait::ForDeliveries));
        // The provider answered 5 s later: the next message reaches it a window after that.
        r.release(t(5000));
        assert_eq!(r.take(t(5500), 0), Err(Wait::Until(t(6000))));
        assert_eq!(r.take(t(6000), 0), Ok(()));
        // A message that did not start gives its place back.
        r.give_back();
        assert_eq!(r.take(t(6000), 0), Ok(()));
    }

    #[test]
    fn the_provider_never_sees_more_than_the_limit_in_any_window() {
        for rate in [1.0, 3.0, 2.5, 50.0, 0.5] {
            let mut r = SendRate::new(rate);
            let mut now = t(0);
            let mut arrivals = Vec::new();
            let mut i = 0i64;
            while arrivals.len() < 200 {
                i += 1;
                match r.take(now, 0) {
                    Ok(()) => {
                        // Each delivery takes 0 to 12 ms to reach the provider and answer.
                        let took = SignedDuration::from_millis(i * 7919 % 13);
                        arrivals.push(now + took);
                        r.release(now + took);
                    }
                    Err(Wait::Until(at)) => {
                        assert!(at > now, "{rate}: {at} is not after {now}");
                        now = at;
                        continue;
                    }
                    Err(Wait::ForDeliveries) => unreachable!("every delivery ended"),
                }
                now += SignedDuration::from_millis(i * 31 % 5);
            }
            arrivals.sort();
            for (i, first) in arrivals.iter().enumerate() {
                let within = arrivals[i..]
                    .iter()
                    .take_while(|a| a.duration_since(*first) < r.window)
                    .count();
                assert!(
                    within <= r.limit,
                    "{rate}/s: {within} within {:?}",
                    r.window
                );
            }
            // And the long-run rate is close to the one asked for.
            let secs = arrivals[199].duration_since(arrivals[0]).as_secs_f64();
            let achieved = (200 - r.limit) as f64 / secs;
            assert!(
                achieved <= rate && achieved > rate * 0.9,
                "{rate}/s: achieved {achieved}"
            );
        }
    }

    #[test]
    fn fractional_rates_have_a_burst_of_one() {
        let mut r = SendRate::new(0.5);
        assert_eq!(send(&mut r, t(0), 0), Ok(()));
        assert_eq!(send(&mut r, t(0), 0), Err(Wait::Until(t(2000))));
    }

    #[test]
    fn a_journey_that_holds_a_message_back_takes_no_place_on_the_channel() {
        let clock = Clock::simulated(t(0));
        let mut limits = Limits::new(SendRates {
            email: Some(1.0),
            sms: None,
        });
        limits.set_journey_rates(HashMap::from([("slow".to_string(), 1.0 / 60.0)]));
        limits.new_selection();
        let first = limits.take(OutboxChannel::Email, Some("slow"), t(0), &clock);
        assert!(first.is_ok());
        drop(first);
        // The journey is out of places; the channel's place stays for another journey.
        assert!(matches!(
            limits.take(OutboxChannel::Email, Some("slow"), t(1000), &clock),
            Err(Wait::Until(_))
        ));
        assert!(
            limits
                .take(OutboxChannel::Email, Some("other"), t(1000), &clock)
                .is_ok()
        );
    }
}
