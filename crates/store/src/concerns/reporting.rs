//! Reporting: aggregate counters (per journey and node) and the levels the metrics endpoint
//! exposes. Nothing personal is kept here; erasure leaves it alone.

use jiff::Timestamp;

use crate::{Gauges, JourneyStats, Result, StatsDeltas};

/// Journey statistics, gauges and the size on disk.
pub trait Reporting {
    /// A journey's statistics: of every version together (`None`), or of the enrollments of
    /// one `version` (an unknown one is `NotFound`).
    fn journey_stats(&self, id: &str, version: Option<i64>) -> Result<JourneyStats>;

    /// Current levels for the metrics endpoint.
    fn gauges(&self) -> Result<Gauges>;

    /// Size of the database files in bytes.
    fn disk_bytes(&self) -> Result<u64>;
}

/// Adding the counters of one engine batch.
pub trait ReportingTx {
    fn add_stats(&mut self, deltas: &StatsDeltas, at: Timestamp) -> Result<()>;
}
