//! Running broadcasts: one round takes the broadcast with the earliest due work and writes the
//! messages of one page of recipients, in one transaction with its progress, so that a crash
//! or a kill redoes at most that page, and the messages' idempotency keys
//! (`broadcast:{id}:{contact}`) keep it from writing any message twice.
//!
//! A round first sends to the waiting recipients whose time has come, then goes on through the
//! audience (in contact-id order, minus the exclusions, each contact as it is when reached):
//! a contact whose message is due now gets it through the send gate (consent, suppression,
//! caps), one whose local time or the end of quiet hours is later waits for it. A send rate
//! limits how many messages a round may write: the rounds space them out evenly.
//!
//! With an A/B test, a contact of the test share gets its variant's template at once; the
//! others wait until the test's decision time, when the first round after it chooses the
//! winner from the variants' messages and sends it to them.

use jiff::{SignedDuration, Timestamp};
use waymark_core::broadcast::{BroadcastDocument, Due};
use waymark_core::timing::SendWindow;
use waymark_store::{BroadcastProgress, BroadcastStatus, EngineTx, ReadAhead, StoreError, Winner};

use crate::send::{BroadcastSend, Outgoing, Purpose, SendGate, TemplateSource};

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Recipients handled (messages written or recipients left waiting).
    pub recipients: usize,
    /// New messages queued for delivery.
    pub queued: usize,
}

/// The idempotency key of a broadcast's message to a contact.
pub fn message_key(broadcast_id: &str, contact_id: i64) -> String {
    waymark_store::broadcast_message_key(broadcast_id, contact_id)
}

/// Runs one round of the broadcast with the earliest due work at `now`, if any: at most
/// `page` recipients. `window` is the installation's quiet hours and blocked dates.
pub fn round(
    tx: &mut dyn EngineTx,
    gate: &SendGate,
    window: &SendWindow,
    now: Timestamp,
    page: usize,
) -> Result<Option<Round>, StoreError> {
    let Some(row) = tx.claim_due_broadcast(now)? else {
        return Ok(None);
    };
    let mut progress = row.progress();
    let parsed = serde_json::from_value::<BroadcastDocument>(row.document.clone())
        .map_err(|e| e.to_string())
        .and_then(|doc| {
            let plan = doc.check().map_err(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
            Ok((doc, plan))
        });
    let (doc, plan) = match parsed {
        Ok(parsed) => parsed,
        Err(reason) => {
            // A stored broadcast that cannot be read is held where an operator sees it, not
            // retried for ever and not fatal to the round.
            tracing::warn!(broadcast = %row.id, %reason, "broadcast cannot be read; paused");
            progress.status = BroadcastStatus::Paused;
            progress.next_run_at = None;
            tx.save_broadcast_progress(&row.id, &progress, now)?;
            return Ok(Some(Round::default()));
        }
    };
    if progress.status == BroadcastStatus::Scheduled {
        progress.status = BroadcastStatus::Sending;
        progress.started_at = Some(now);
        progress.rate_since = Some(now);
        progress.rate_base = progress.released;
        progress.template_version = tx.template(&doc.template)?.map(|t| t.version);
    }
    let start = progress.started_at.unwrap_or(now);
    let test = plan.test.as_ref();
    let decide_at = test.map(|t| start + t.decide_after);
    if let (Some(test), Some(at)) = (test, decide_at)
        && progress.winner.is_none()
        && now >= at
    {
        let decision = test.decide(&tx.broadcast_variant_counts(&row.id)?);
        progress.winner = Some(Winner {
            template: decision.winner,
            at: now,
            reason: decision.reason,
        });
    }
    let winner = progress.winner.as_ref().map(|w| w.template.clone());
    // The template a contact gets: its variant's in a test's share, else the winner once
    // chosen (`None` until then), else the broadcast's own.
    let template_of = |contact_id: i64| -> Option<String> {
        match test {
            None => Some(doc.template.clone()),
            Some(t) => t
                .variant_of(&row.id, contact_id)
                .map(str::to_string)
                .or_else(|| winner.clone()),
        }
    };
    let budget = budget(&progress, plan.rate_per_second, now, page);
    let messages = Messages {
        id: &row.id,
        doc: &doc,
        pinned: progress.template_version,
    };
    let mut done = Round::default();

    // Those whose time has come.
    let due = tx.take_due_broadcast_recipients(&row.id, now, budget)?;
    read_ahead(tx, &due)?;
    for contact_id in &due {
        let template = template_of(*contact_id).unwrap_or_else(|| doc.template.clone());
        if gate
            .send(tx, messages.to(*contact_id, &template), now)?
            .queued()
        {
            done.queued += 1;
        }
    }
    progress.waiting -= due.len() as i64;
    progress.released += due.len() as i64;
    done.recipients += due.len();

    // The next contacts of the audience.
    let room = budget - due.len();
    if !progress.audience_done && room > 0 {
        let ids = tx.audience_page(&doc.audience, &doc.exclude, progress.cursor, room)?;
        read_ahead(tx, &ids)?;
        let mut waiting = Vec::new();
        // A contact's zone matters only to a local time or to quiet hours; without them its
        // row is read once, by the gate.
        let zoned =
            plan.local_time.is_some() || !(plan.ignore_quiet_hours || window.is_unrestricted());
        for contact_id in &ids {
            let zone = if zoned {
                tx.contact(*contact_id)
                    .ok()
                    .and_then(|c| waymark_core::contact::trait_time_zone(&c.traits))
            } else {
                None
            };
            let template = template_of(*contact_id);
            let due = match (plan.due(start, zone.as_ref(), window), &template, decide_at) {
                // Waits for the test's winner.
                (Due::At(at), None, Some(decide_at)) => Due::At(at.max(decide_at)),
                (due, _, _) => due,
            };
            let template = template.unwrap_or_else(|| doc.template.clone());
            match due {
                Due::At(at) if at > now => waiting.push((*contact_id, at)),
                Due::At(_) => {
                    progress.released += 1;
                    if gate
                        .send(tx, messages.to(*contact_id, &template), now)?
                        .queued()
                    {
                        done.queued += 1;
                    }
                }
                Due::Skipped(reason) => {
                    progress.released += 1;
                    gate.suppress(tx, messages.to(*contact_id, &template), reason, now)?;
                }
            }
        }
        tx.defer_broadcast_recipients(&row.id, &waiting)?;
        progress.waiting += waiting.len() as i64;
        progress.processed += ids.len() as i64;
        progress.cursor = ids.last().copied().unwrap_or(progress.cursor);
        progress.audience_done = ids.len() < room;
        done.recipients += ids.len();
    }

    // A test stays open until its decision, even when nobody waits for it (a share of 100 %),
    // so that its result is recorded.
    let undecided = decide_at.filter(|_| progress.winner.is_none());
    progress.next_run_at = if progress.audience_done && progress.waiting == 0 && undecided.is_none()
    {
        progress.status = BroadcastStatus::Sent;
        progress.finished_at = Some(now);
        None
    } else if done.recipients == budget && budget > 0 && plan.rate_per_second.is_none() {
        // More is due now.
        Some(now)
    } else {
        let rate_next = plan
            .rate_per_second
            .map(|rate| next_allowed(&progress, rate).max(now));
        let waiting_next = if progress.audience_done {
            let next = tx.next_broadcast_recipient_due(&row.id)?;
            match (next, undecided) {
                (Some(n), Some(d)) => Some(n.min(d)),
                (n, d) => n.or(d),
            }
        } else {
            Some(now)
        };
        match (rate_next, waiting_next) {
            (Some(r), Some(w)) => Some(r.max(w)),
            (r, w) => r.or(w),
        }
    };
    tx.save_broadcast_progress(&row.id, &progress, now)?;
    Ok(Some(done))
}

/// A broadcast's messages, one per contact.
struct Messages<'a> {
    id: &'a str,
    doc: &'a BroadcastDocument,
    /// The version of the broadcast's own template pinned at the start.
    pinned: Option<i64>,
}

impl Messages<'_> {
    fn to<'t>(&'t self, contact_id: i64, template: &'t str) -> Outgoing<'t> {
        let send = BroadcastSend {
            id: self.id,
            name: &self.doc.name,
            // A test's other templates are sent as they stand.
            template_version: self.pinned.filter(|_| template == self.doc.template),
            ignore_frequency_caps: self.doc.ignore_frequency_caps,
        };
        Outgoing {
            idempotency_key: message_key(self.id, contact_id),
            contact_id,
            channel: self.doc.channel,
            template: TemplateSource::Stored(template),
            purpose: Purpose::Broadcast(send),
            to: None,
            data: None,
        }
    }
}

/// Loads the page's contacts (and what the gate reads of them) at once, where that saves round
/// trips.
fn read_ahead(tx: &mut dyn EngineTx, contacts: &[i64]) -> Result<(), StoreError> {
    if contacts.is_empty() {
        return Ok(());
    }
    tx.read_ahead(&ReadAhead {
        contacts,
        ..ReadAhead::default()
    })
}

/// How many messages this round may write: a page, or what the send rate allows by now (the
/// first message at once, then one every 1/rate seconds).
fn budget(progress: &BroadcastProgress, rate: Option<u32>, now: Timestamp, page: usize) -> usize {
    let Some(rate) = rate else {
        return page;
    };
    let since = progress.rate_since.unwrap_or(now);
    let elapsed_ms = now.duration_since(since).as_millis().max(0) as u64;
    let allowed = (elapsed_ms * u64::from(rate) / 1000 + 1) as i64;
    let written = progress.released - progress.rate_base;
    (allowed - written).clamp(0, page as i64) as usize
}

/// When the send rate next allows a message.
fn next_allowed(progress: &BroadcastProgress, rate: u32) -> Timestamp {
    let since = progress.rate_since.unwrap_or(Timestamp::UNIX_EPOCH);
    let written = (progress.released - progress.rate_base).max(0) as u64;
    // The message numbered `written` (from 0) may leave `written / rate` seconds in.
    let ms = (written * 1000).div_ceil(u64::from(rate));
    since + SignedDuration::from_millis(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(released: i64, rate_base: i64, since_s: i64) -> BroadcastProgress {
        BroadcastProgress {
            status: BroadcastStatus::Sending,
            template_version: None,
            processed: 0,
            released,
            cursor: 0,
            audience_done: false,
            waiting: 0,
            rate_since: Some(Timestamp::from_second(since_s).unwrap()),
            rate_base,
            next_run_at: None,
            started_at: None,
            finished_at: None,
            winner: None,
        }
    }

    fn at(s: f64) -> Timestamp {
        Timestamp::from_millisecond((s * 1000.0) as i64).unwrap()
    }

    #[test]
    fn a_rate_lets_the_first_message_go_at_once_then_spaces_the_others() {
        // 10 per second from t=100.
        assert_eq!(budget(&progress(0, 0, 100), Some(10), at(100.0), 500), 1);
        assert_eq!(budget(&progress(1, 0, 100), Some(10), at(100.05), 500), 0);
        assert_eq!(budget(&progress(1, 0, 100), Some(10), at(100.1), 500), 1);
        assert_eq!(budget(&progress(1, 0, 100), Some(10), at(101.0), 500), 10);
        assert_eq!(budget(&progress(0, 0, 100), Some(10), at(200.0), 500), 500);
        // After a resume the count starts over from the messages written by then.
        assert_eq!(budget(&progress(70, 70, 300), Some(10), at(300.0), 500), 1);
        assert_eq!(budget(&progress(0, 0, 100), None, at(100.0), 500), 500);
        assert_eq!(next_allowed(&progress(1, 0, 100), 10), at(100.1));
        assert_eq!(next_allowed(&progress(25, 5, 100), 10), at(102.0));
    }
}
