//! Enrollments: a contact's passage through a journey, with its position, its timer
//! (`wake_at`) and the steps it took.

use jiff::Timestamp;
use waymark_core::stepper::PriorEnrollment;
use waymark_core::{Enrollment, StepLog};

use crate::Result;

/// Reading, creating and advancing enrollments inside an engine transaction.
pub trait EnrollmentsTx {
    fn active_enrollments(&mut self, contact_id: i64) -> Result<Vec<Enrollment>>;

    fn prior_enrollments(
        &mut self,
        journey_id: &str,
        contact_id: i64,
    ) -> Result<Vec<PriorEnrollment>>;

    /// Inserts an enrollment and returns it with its id.
    fn insert_enrollment(&mut self, enrollment: &Enrollment, now: Timestamp) -> Result<Enrollment>;

    fn update_enrollment(&mut self, enrollment: &Enrollment, now: Timestamp) -> Result<()>;

    /// Active enrollments of live journeys whose timer is due, earliest first.
    fn claim_due_enrollments(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Enrollment>>;

    /// Active enrollments of a journey (for resume and archive).
    fn journey_enrollments(
        &mut self,
        journey_id: &str,
        limit: usize,
        after_id: i64,
    ) -> Result<Vec<Enrollment>>;

    fn record_steps(&mut self, enrollment_id: i64, log: &[StepLog], at: Timestamp) -> Result<()>;

    fn visited_nodes(&mut self, enrollment_id: i64) -> Result<Vec<String>>;

    /// The contact's enrollments in the journey that ended without converting (completed or
    /// exited) at or after `since`, each with the time it ended; none with a conversion.
    fn ended_unconverted(
        &mut self,
        contact_id: i64,
        journey_id: &str,
        since: Timestamp,
    ) -> Result<Vec<(Enrollment, Timestamp)>>;

    /// The (node, output) of every node this enrollment left, in order.
    fn left_outputs(&mut self, enrollment_id: i64) -> Result<Vec<(String, String)>>;
}

/// How a step log entry is stored in `steps`: its node, its action, and its detail as JSON text.
pub(crate) fn step_row(entry: &StepLog) -> (&str, &'static str, Option<String>) {
    let (node, action, detail) = match entry {
        StepLog::Entered { node } => (node, "entered", None),
        StepLog::Left { node, output } => {
            (node, "left", Some(serde_json::json!({ "output": output })))
        }
        StepLog::Waiting { node, until } => {
            (node, "waiting", Some(serde_json::json!({ "until": until })))
        }
        StepLog::Ended {
            node,
            status,
            reason,
        } => (
            node,
            status.as_str(),
            Some(serde_json::json!({ "reason": reason })),
        ),
        StepLog::Skipped { node, reason } => (
            node,
            "skipped",
            Some(serde_json::json!({ "reason": reason })),
        ),
    };
    (node.as_str(), action, detail.map(|d| d.to_string()))
}
