//! What keeps the engine from doing all its work, reported instead of stopping it: stored
//! definitions it cannot read (a journey version, a segment) and rounds of work that fail.
//!
//! A definition that cannot be read is skipped (its journey does not trigger, its
//! enrollments wait, its segment is not kept current) while everything else runs on; a round
//! that fails is retried, and the engine counts as stalled until one succeeds. Both are logged
//! once when they begin, counted in metrics, and shown by `/healthz` and the admin API.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::Serialize;

/// A stored definition the engine cannot use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Broken {
    /// `journey` or `segment`.
    pub kind: &'static str,
    pub id: String,
    /// The journey version concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    pub reason: String,
}

/// The engine's last rounds of work failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Stall {
    /// The error of the latest failed round.
    pub error: String,
    /// When the first of the failed rounds in a row failed.
    pub since: Timestamp,
    /// Failed rounds in a row.
    pub failures: u64,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[schemars(rename = "Problems")]
pub struct Report {
    pub broken: Vec<Broken>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stalled: Option<Stall>,
}

#[derive(Default)]
pub struct Problems {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By (kind, id, version).
    broken: BTreeMap<(&'static str, String, Option<i64>), String>,
    stalled: Option<Stall>,
}

impl Problems {
    /// Replaces what is known to be broken of one kind.
    pub fn set_broken(&self, kind: &'static str, now_broken: Vec<Broken>) {
        let mut state = self.state.lock().expect("problems lock");
        let before: Vec<_> = state
            .broken
            .keys()
            .filter(|(k, _, _)| *k == kind)
            .cloned()
            .collect();
        for key in &before {
            if !now_broken
                .iter()
                .any(|b| (b.kind, &b.id, b.version) == (key.0, &key.1, key.2))
            {
                state.broken.remove(key);
                tracing::info!(kind, id = %key.1, "stored definition readable again");
            }
        }
        for b in now_broken {
            let key = (b.kind, b.id.clone(), b.version);
            if !state.broken.contains_key(&key) {
                tracing::error!(
                    kind = b.kind,
                    id = %b.id,
                    version = ?b.version,
                    reason = %b.reason,
                    "stored definition cannot be used; skipped, everything else runs on"
                );
            }
            state.broken.insert(key, b.reason);
        }
        let count = state.broken.keys().filter(|(k, _, _)| *k == kind).count();
        metrics::gauge!("waymark_broken_definitions", "kind" => kind).set(count as f64);
    }

    /// A round of engine work failed with `error` at `now`.
    pub fn round_failed(&self, error: &str, now: Timestamp) {
        let mut state = self.state.lock().expect("problems lock");
        let stall = state.stalled.get_or_insert_with(|| Stall {
            error: String::new(),
            since: now,
            failures: 0,
        });
        stall.error = error.to_string();
        stall.failures += 1;
        if stall.failures == 1 {
            tracing::error!(
                error,
                "engine round failed; the engine is stalled until a round succeeds"
            );
        } else {
            // Once per stall is enough (an unreachable database fails a round every few
            // seconds); `/healthz` and the metrics show that it goes on.
            tracing::debug!(
                error,
                failures = stall.failures,
                "engine round failed again"
            );
        }
        metrics::counter!("waymark_engine_round_failures_total").increment(1);
        metrics::gauge!("waymark_engine_stalled").set(1.0);
    }

    /// A round of engine work succeeded.
    pub fn round_succeeded(&self) {
        let mut state = self.state.lock().expect("problems lock");
        if let Some(stall) = state.stalled.take() {
            tracing::info!(
                failures = stall.failures,
                "engine round succeeded; no longer stalled"
            );
            metrics::gauge!("waymark_engine_stalled").set(0.0);
        }
    }

    pub fn report(&self) -> Report {
        let state = self.state.lock().expect("problems lock");
        Report {
            broken: state
                .broken
                .iter()
                .map(|((kind, id, version), reason)| Broken {
                    kind,
                    id: id.clone(),
                    version: *version,
                    reason: reason.clone(),
                })
                .collect(),
            stalled: state.stalled.clone(),
        }
    }
}
