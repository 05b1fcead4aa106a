//! The cluster: the processes sharing the engine's work on one database, and the partitions
//! each holds (`GET /v1/cluster`). On SQLite one process does all the work.

use serde::Serialize;

use crate::Result;

/// Who does the engine's work.
pub trait Cluster {
    /// The processes sharing the engine's work, their partitions and lease ages.
    fn cluster(&self) -> Result<ClusterStatus>;

    /// Calls `wake` whenever another process accepted events (which may be this process's to
    /// process). Where one process does all the work, never.
    fn on_events_elsewhere(&self, wake: std::sync::Arc<dyn Fn() + Send + Sync>);
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ClusterStatus {
    /// How many partitions the engine's work is divided into (by contact).
    pub partitions: i16,
    /// How long a partition waits for a process that stopped heartbeating (0: one process).
    pub lease_time_seconds: f64,
    pub processes: Vec<ClusterProcess>,
    /// Partitions no live process holds (taken at the next heartbeat of a process with room).
    pub unowned: Vec<i16>,
}

/// One process, as `GET /v1/cluster` shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ClusterProcess {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub started_at: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_seconds: f64,
    /// Whether its leases still hold (its heartbeat is recent enough).
    pub alive: bool,
    /// Whether this is the process that answered.
    pub this_process: bool,
    /// The partitions it holds, and for how long it has held each.
    pub partitions: Vec<ClusterLease>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ClusterLease {
    pub partition: i16,
    pub held_seconds: f64,
}

/// This machine's name, for telling processes apart.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
