//! The journeys the engine runs, compiled once per version, and the index from event names to
//! the live journeys they trigger. Reloaded whenever a journey is published, paused, resumed or
//! archived, and when a broadcast with a goal is sent (the index from goal events to
//! broadcasts).
//!
//! A stored version that cannot be compiled (unreadable, or no longer valid) is kept out and
//! listed in [`Registry::broken`]; it never stops the others from loading.

use std::collections::HashMap;
use std::sync::Arc;

use waymark_core::Journey;
use waymark_core::broadcast::BroadcastGoal;
use waymark_core::journey::JourneyDocument;
use waymark_core::timing::SendWindow;
use waymark_store::{JourneyStatus, JourneyVersion, Store, StoreError};

use crate::problems::Broken;

/// A broadcast's goal, as the engine credits it.
#[derive(Debug, Clone)]
pub struct BroadcastGoalEntry {
    pub broadcast_id: String,
    pub goal: BroadcastGoal,
    pub window: jiff::SignedDuration,
    /// When every recipient's message was written; none converts after this and the window.
    pub finished_at: Option<jiff::Timestamp>,
}

#[derive(Default)]
pub struct Registry {
    status: HashMap<String, JourneyStatus>,
    live: HashMap<String, (Arc<Journey>, i64)>,
    versions: HashMap<(String, i64), Arc<Journey>>,
    /// Event name → ids of live journeys with a trigger on it.
    triggers: HashMap<String, Vec<String>>,
    /// Event name → ids of running journeys (live or paused) with a version whose goal it is.
    goals: HashMap<String, Vec<String>>,
    /// Event name → broadcasts (not drafts) whose goal it is, with the goal and when the
    /// broadcast finished.
    broadcast_goals: HashMap<String, Vec<BroadcastGoalEntry>>,
    /// The installation's quiet hours and blocked dates, applied to every journey.
    installation_window: SendWindow,
    /// Versions that cannot be compiled, with the reason.
    broken: HashMap<(String, i64), String>,
}

/// Compiles a stored version with the template versions it pinned, or says why it cannot be
/// used.
fn compile(version: &JourneyVersion, window: &SendWindow) -> Result<Journey, String> {
    let document = &version.document;
    if document.is_null() {
        return Err("the stored document cannot be read (not JSON, or nested too deep)".into());
    }
    let doc: JourneyDocument = serde_json::from_value(document.clone())
        .map_err(|e| format!("the stored document is not a journey: {e}"))?;
    Journey::compile(doc)
        .map(|j| {
            j.with_installation_window(window)
                .with_template_versions(version.templates.clone())
        })
        .map_err(|errors| {
            format!(
                "the published version no longer validates: {}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
}

impl Registry {
    pub fn load(store: &dyn Store, installation_window: &SendWindow) -> Result<Self, StoreError> {
        let mut registry = Registry {
            installation_window: installation_window.clone(),
            ..Registry::default()
        };
        for b in store.broadcasts()? {
            if b.status == waymark_store::BroadcastStatus::Draft {
                continue;
            }
            // A broadcast whose document cannot be read converts nobody (the engine reports it).
            let Some(goal) = b
                .document
                .get("goal")
                .filter(|g| !g.is_null())
                .and_then(|g| serde_json::from_value::<BroadcastGoal>(g.clone()).ok())
            else {
                continue;
            };
            let Some(window) = goal.window() else {
                continue;
            };
            registry
                .broadcast_goals
                .entry(goal.event.clone())
                .or_default()
                .push(BroadcastGoalEntry {
                    broadcast_id: b.id,
                    goal,
                    window,
                    finished_at: b.finished_at,
                });
        }
        let journeys = store.journeys()?;
        for (status, version) in store.running_journeys()? {
            let journey = match compile(&version, installation_window) {
                Ok(j) => Arc::new(j),
                Err(reason) => {
                    registry
                        .broken
                        .insert((version.journey_id.clone(), version.version), reason);
                    registry.status.insert(version.journey_id.clone(), status);
                    continue;
                }
            };
            let is_live = journeys
                .iter()
                .any(|j| j.id == version.journey_id && j.live_version == Some(version.version));
            registry.status.insert(version.journey_id.clone(), status);
            if let Some(goal) = &journey.document.goal {
                let ids = registry.goals.entry(goal.event.clone()).or_default();
                if !ids.contains(&version.journey_id) {
                    ids.push(version.journey_id.clone());
                }
            }
            if is_live {
                if status == JourneyStatus::Live {
                    for name in journey.trigger_events() {
                        let ids = registry.triggers.entry(name.to_string()).or_default();
                        if !ids.contains(&version.journey_id) {
                            ids.push(version.journey_id.clone());
                        }
                    }
                }
                registry.live.insert(
                    version.journey_id.clone(),
                    (journey.clone(), version.version),
                );
            }
            registry
                .versions
                .insert((version.journey_id.clone(), version.version), journey);
        }
        Ok(registry)
    }

    /// The `send_rate` of every live journey that has one, in messages per second.
    pub fn send_rates(&self) -> HashMap<String, f64> {
        self.live
            .iter()
            .filter_map(|(id, (j, _))| {
                let rate = j.document.send_rate.as_deref()?;
                Some((
                    id.clone(),
                    waymark_core::duration::parse_send_rate(rate).ok()?,
                ))
            })
            .collect()
    }

    /// Live journeys with date, inactivity or schedule triggers.
    pub fn timed(&self) -> Vec<Arc<Journey>> {
        self.live
            .iter()
            .filter(|(id, (j, _))| {
                self.status(id) == Some(JourneyStatus::Live) && !j.timed_triggers().is_empty()
            })
            .map(|(_, (j, _))| j.clone())
            .collect()
    }

    /// The live version of a journey that is live (not paused).
    pub fn live_journey(&self, journey_id: &str) -> Option<Arc<Journey>> {
        (self.status(journey_id) == Some(JourneyStatus::Live))
            .then(|| self.live.get(journey_id).map(|(j, _)| j.clone()))
            .flatten()
    }

    pub fn installation_window(&self) -> &SendWindow {
        &self.installation_window
    }

    pub fn status(&self, journey_id: &str) -> Option<JourneyStatus> {
        self.status.get(journey_id).copied()
    }

    /// The compiled version an enrollment runs on, loaded from the store if not yet known;
    /// `None` when that version is broken (see [`Registry::broken`]).
    pub fn version(
        &mut self,
        store: &dyn Store,
        journey_id: &str,
        version: i64,
    ) -> Result<Option<Arc<Journey>>, StoreError> {
        let key = (journey_id.to_string(), version);
        if let Some(j) = self.versions.get(&key) {
            return Ok(Some(j.clone()));
        }
        if self.broken.contains_key(&key) {
            return Ok(None);
        }
        let stored = store.journey_version(journey_id, version)?;
        match compile(&stored, &self.installation_window) {
            Ok(journey) => {
                let journey = Arc::new(journey);
                self.versions.insert(key, journey.clone());
                Ok(Some(journey))
            }
            Err(reason) => {
                self.broken.insert(key, reason);
                Ok(None)
            }
        }
    }

    /// The versions that cannot be used, with the reason.
    pub fn broken(&self) -> Vec<Broken> {
        let mut out: Vec<Broken> = self
            .broken
            .iter()
            .map(|((id, version), reason)| Broken {
                kind: "journey",
                id: id.clone(),
                version: Some(*version),
                reason: reason.clone(),
            })
            .collect();
        out.sort_by(|a, b| (&a.id, a.version).cmp(&(&b.id, b.version)));
        out
    }

    /// Running journeys (live or paused) whose goal, in one of their versions, is this event.
    pub fn with_goal(&self, event: &str) -> &[String] {
        self.goals.get(event).map_or(&[], Vec::as_slice)
    }

    /// The broadcasts (sent or sending) whose goal is this event name.
    pub fn broadcasts_with_goal(&self, event: &str) -> &[BroadcastGoalEntry] {
        self.broadcast_goals.get(event).map_or(&[], Vec::as_slice)
    }

    /// Live journeys (with their live version number) that this event name triggers.
    pub fn triggered_by(&self, event: &str) -> Vec<(Arc<Journey>, i64)> {
        let Some(ids) = self.triggers.get(event) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| self.live.get(id).cloned())
            .collect()
    }
}
