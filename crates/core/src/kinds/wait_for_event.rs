//! `wait_for_event`: waits for an event (matched by name, filter and the enrollment's key), at
//! most `timeout`. An event that already happened since the enrollment began (and that no
//! earlier wait consumed) ends the wait at once; each event ends at most one wait.

use std::borrow::Cow;
use std::collections::BTreeMap;

use jiff::SignedDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, Output};
use crate::duration::Duration;
use crate::event::EventRecord;
use crate::filter::{Filter, filter_matches};
use crate::stepper::Run;
use crate::validate::NodeCheck;

/// The output taken when the event comes.
pub const EVENT: &str = "event";
/// The output taken when the timeout passes first.
pub const TIMEOUT: &str = "timeout";

pub struct WaitForEvent;

impl Kind for WaitForEvent {
    type Settings = WaitForEventNode;
    const DESCRIPTION: &'static str = "Waits for an event, at most `timeout`. Ends at once if \
        the event already happened since the enrollment began. Outputs: `event`, `timeout`.";
    const OUTPUTS: &'static [Output] = &[Output::Named(EVENT), Output::Named(TIMEOUT)];
    const EXAMPLE: &'static str = r#"{"event": "Order Completed", "timeout": "24h"}"#;
    const WAITS: bool = true;

    fn validate(w: &WaitForEventNode, check: &mut NodeCheck<'_>) {
        check.duration(&w.timeout, "timeout");
        if w.event.trim().is_empty() {
            check.err("required", Some("event"), "must name an event".into());
        }
        if w.match_key == Some(true) && !check.has_key() {
            check.err(
                "no_key",
                Some("match_key"),
                "the journey has no entry.key to match".into(),
            );
        }
        check.filter(&w.filter, "filter");
    }

    fn arrive(w: &WaitForEventNode, run: &mut Run<'_>) -> Arrival {
        if consume_past_event(w, run) {
            return Arrival::Leave(Cow::Borrowed(EVENT));
        }
        let timeout = Duration::parse(&w.timeout).expect("validated");
        Arrival::Wait(run.now() + SignedDuration::from_secs(timeout.seconds()))
    }

    fn timer(_: &WaitForEventNode, _: &mut Run<'_>) -> Option<Arrival> {
        Some(Arrival::Leave(Cow::Borrowed(TIMEOUT)))
    }

    fn event(
        w: &WaitForEventNode,
        run: &mut Run<'_>,
        event: &EventRecord,
    ) -> Option<Cow<'static, str>> {
        if !(run.unconsumed(event) && matches(w, run, event)) {
            return None;
        }
        run.consume(event.seq);
        Some(Cow::Borrowed(EVENT))
    }

    fn resume(w: &WaitForEventNode, run: &mut Run<'_>) -> Option<Cow<'static, str>> {
        consume_past_event(w, run).then_some(Cow::Borrowed(EVENT))
    }

    fn waits_for_event(w: &WaitForEventNode) -> Option<&str> {
        Some(&w.event)
    }
}

fn matches(wait: &WaitForEventNode, run: &Run<'_>, event: &EventRecord) -> bool {
    wait.event == event.name
        && filter_matches(&wait.filter, &event.properties)
        && run.key_matches(wait.match_key, event)
}

/// Ends the wait with an event that already happened since entry (and after the last event a
/// wait consumed), if there is one.
fn consume_past_event(wait: &WaitForEventNode, run: &mut Run<'_>) -> bool {
    let found = run
        .facts()
        .events_since(&wait.event, run.consumed_upto())
        .iter()
        .find(|e| matches(wait, run, e))
        .map(|e| e.seq);
    if let Some(seq) = found {
        run.consume(seq);
    }
    found.is_some()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForEventNode {
    pub event: String,
    /// e.g. `24h`.
    pub timeout: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: Filter,
    /// Only an event whose key property equals the enrollment's key counts. Defaults to true
    /// when the journey has an entry key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_key: Option<bool>,
}
