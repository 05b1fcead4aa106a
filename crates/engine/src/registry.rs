//! The journeys the engine runs, compiled once per version, and the index from event names to
//! the live journeys they trigger. Reloaded whenever a journey is published, paused, resumed or
//! archived.

use std::collections::HashMap;
use std::sync::Arc;

use waymark_core::Journey;
use waymark_core::journey::JourneyDocument;
use waymark_core::timing::SendWindow;
use waymark_store::{JourneyStatus, Store, StoreError};

#[derive(Default)]
pub struct Registry {
    status: HashMap<String, JourneyStatus>,
    live: HashMap<String, (Arc<Journey>, i64)>,
    versions: HashMap<(String, i64), Arc<Journey>>,
    /// Event name → ids of live journeys with a trigger on it.
    triggers: HashMap<String, Vec<String>>,
    /// The installation's quiet hours and blocked dates, applied to every journey.
    installation_window: SendWindow,
}

fn compile(document: &serde_json::Value, window: &SendWindow) -> Result<Journey, StoreError> {
    let doc: JourneyDocument = serde_json::from_value(document.clone())?;
    Journey::compile(doc)
        .map(|j| j.with_installation_window(window))
        .map_err(|errors| {
            StoreError::Corrupt(format!(
                "a published journey no longer validates: {}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })
}

impl Registry {
    pub fn load(store: &dyn Store, installation_window: &SendWindow) -> Result<Self, StoreError> {
        let mut registry = Registry {
            installation_window: installation_window.clone(),
            ..Registry::default()
        };
        let journeys = store.journeys()?;
        for (status, version) in store.running_journeys()? {
            let journey = Arc::new(compile(&version.document, installation_window)?);
            let is_live = journeys
                .iter()
                .any(|j| j.id == version.journey_id && j.live_version == Some(version.version));
            registry.status.insert(version.journey_id.clone(), status);
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

    /// The compiled version an enrollment runs on; loaded from the store if not yet known.
    pub fn version(
        &mut self,
        store: &dyn Store,
        journey_id: &str,
        version: i64,
    ) -> Result<Arc<Journey>, StoreError> {
        let key = (journey_id.to_string(), version);
        if let Some(j) = self.versions.get(&key) {
            return Ok(j.clone());
        }
        let stored = store.journey_version(journey_id, version)?;
        let journey = Arc::new(compile(&stored.document, &self.installation_window)?);
        self.versions.insert(key, journey.clone());
        Ok(journey)
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
