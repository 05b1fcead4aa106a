//! Journeys: drafts, immutable published versions and the status (live, paused, archived) that
//! decides which version the engine runs.

use jiff::Timestamp;
use serde_json::Value;

use crate::{JourneyRow, JourneyStatus, JourneyVersion, Result};

/// Journey drafts, versions and status. Enrollments and their counters live elsewhere.
pub trait Journeys {
    fn journeys(&self) -> Result<Vec<JourneyRow>>;

    fn journey(&self, id: &str) -> Result<JourneyRow>;

    /// Creates a journey as a draft, or replaces the draft of an existing one (not archived).
    fn put_journey_draft(
        &self,
        id: &str,
        name: &str,
        draft: &Value,
        now: Timestamp,
    ) -> Result<JourneyRow>;

    /// Stores a new immutable version from the draft and makes it live, pinning the current
    /// version of each of `templates` (the templates it sends).
    fn publish_journey(
        &self,
        id: &str,
        document: &Value,
        templates: &[String],
        now: Timestamp,
    ) -> Result<JourneyRow>;

    fn set_journey_status(
        &self,
        id: &str,
        status: JourneyStatus,
        now: Timestamp,
    ) -> Result<JourneyRow>;

    fn journey_versions(&self, id: &str) -> Result<Vec<JourneyVersion>>;

    fn journey_version(&self, id: &str, version: i64) -> Result<JourneyVersion>;

    /// Every live or paused journey's live version, for the engine's routing table.
    fn running_journeys(&self) -> Result<Vec<(JourneyStatus, JourneyVersion)>>;
}
