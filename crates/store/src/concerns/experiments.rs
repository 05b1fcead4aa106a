//! Experiments: the entered and converted counts of each variant of a journey's split test,
//! and the winner once one is chosen.

use jiff::Timestamp;
use serde_json::Value;

use crate::{ExperimentCounts, ExperimentWinner, Result};

/// Every experiment of a journey, for reports.
pub trait Experiments {
    /// Every experiment's counts and winners in a journey.
    fn experiments(
        &self,
        journey_id: &str,
    ) -> Result<(Vec<ExperimentCounts>, Vec<ExperimentWinner>)>;
}

/// Counting experiment variants and recording the winner inside an engine transaction.
pub trait ExperimentsTx {
    fn add_experiment_counts(
        &mut self,
        journey_id: &str,
        node: &str,
        variant: &str,
        entered: i64,
        converted: i64,
    ) -> Result<()>;

    fn experiment_counts(&mut self, journey_id: &str, node: &str) -> Result<Vec<ExperimentCounts>>;

    fn experiment_winner(&mut self, journey_id: &str, node: &str) -> Result<Option<String>>;

    fn set_experiment_winner(
        &mut self,
        journey_id: &str,
        node: &str,
        winner: &str,
        verdict: &Value,
        now: Timestamp,
    ) -> Result<()>;
}
