//! The writes every step makes and nothing reads back at once, held until the transaction's next
//! statement that may read them, or its commit, and then written for the whole batch in two
//! statements: the enrollments' new state and their step logs. On PostgreSQL each statement is a
//! round trip; a step that wrote them one by one spent most of its time waiting.
//!
//! Which statements may run before them is said where each runs (`PgTx::*_aside`); every other
//! statement of the transaction writes them first, so the transaction reads its own writes as if
//! they had been made at once.

use std::collections::HashMap;

use ::postgres::Transaction;
use jiff::Timestamp;
use waymark_core::{Enrollment, StepLog};

use super::{Prepared, ms};
use crate::Result;
use crate::concerns::step_row;

#[derive(Default)]
pub(crate) struct StepWrites {
    /// The latest state of each enrollment updated, in the order first updated.
    updates: Vec<EnrollmentUpdate>,
    /// Where each enrollment's update is in `updates`.
    updated: HashMap<i64, usize>,
    steps: Vec<StepRow>,
}

struct EnrollmentUpdate {
    id: i64,
    node: String,
    status: &'static str,
    wake_at: Option<i64>,
    visits: i64,
    updated_at: i64,
    consumed_seq: i64,
}

struct StepRow {
    enrollment_id: i64,
    at: i64,
    node: String,
    action: &'static str,
    detail: Option<String>,
}

impl StepWrites {
    pub(crate) fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.steps.is_empty()
    }

    pub(crate) fn update_enrollment(&mut self, e: &Enrollment, now: Timestamp) {
        let update = EnrollmentUpdate {
            id: e.id,
            node: e.node.clone(),
            status: e.status.as_str(),
            wake_at: e.wake_at.map(ms),
            visits: e.visits,
            updated_at: ms(now),
            consumed_seq: e.consumed_seq,
        };
        // A later step of the same enrollment in the batch wins, as its UPDATE would have.
        match self.updated.get(&e.id) {
            Some(&i) => self.updates[i] = update,
            None => {
                self.updated.insert(e.id, self.updates.len());
                self.updates.push(update);
            }
        }
    }

    pub(crate) fn record_steps(&mut self, enrollment_id: i64, log: &[StepLog], at: Timestamp) {
        for entry in log {
            let (node, action, detail) = step_row(entry);
            self.steps.push(StepRow {
                enrollment_id,
                at: ms(at),
                node: node.to_string(),
                action,
                detail,
            });
        }
    }

    /// Writes what is held, and holds nothing after.
    pub(crate) fn write(
        &mut self,
        tx: &mut Transaction<'_>,
        prepared: &mut Prepared,
    ) -> Result<()> {
        if !self.updates.is_empty() {
            let updates = std::mem::take(&mut self.updates);
            self.updated.clear();
            let ids: Vec<i64> = updates.iter().map(|u| u.id).collect();
            let nodes: Vec<&str> = updates.iter().map(|u| u.node.as_str()).collect();
            let statuses: Vec<&str> = updates.iter().map(|u| u.status).collect();
            let wakes: Vec<Option<i64>> = updates.iter().map(|u| u.wake_at).collect();
            let visits: Vec<i64> = updates.iter().map(|u| u.visits).collect();
            let updated_at: Vec<i64> = updates.iter().map(|u| u.updated_at).collect();
            let consumed: Vec<i64> = updates.iter().map(|u| u.consumed_seq).collect();
            let statement = prepared.get(
                tx,
                "UPDATE enrollments e SET node = v.node, status = v.status, wake_at = v.wake_at,
                        visits = v.visits, updated_at = v.updated_at, consumed_seq = v.consumed_seq
                 FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[],
                             $6::BIGINT[], $7::BIGINT[])
                      AS v(id, node, status, wake_at, visits, updated_at, consumed_seq)
                 WHERE e.id = v.id",
            )?;
            tx.execute(
                &statement,
                &[
                    &ids,
                    &nodes,
                    &statuses,
                    &wakes,
                    &visits,
                    &updated_at,
                    &consumed,
                ],
            )?;
        }
        if !self.steps.is_empty() {
            let steps = std::mem::take(&mut self.steps);
            let enrollments: Vec<i64> = steps.iter().map(|s| s.enrollment_id).collect();
            let at: Vec<i64> = steps.iter().map(|s| s.at).collect();
            let nodes: Vec<&str> = steps.iter().map(|s| s.node.as_str()).collect();
            let actions: Vec<&str> = steps.iter().map(|s| s.action).collect();
            let details: Vec<Option<&str>> = steps.iter().map(|s| s.detail.as_deref()).collect();
            // In the order logged: ids rise as SQLite's rowids do.
            let statement = prepared.get(
                tx,
                "INSERT INTO steps (enrollment_id, at, node, action, detail)
                 SELECT enrollment_id, at, node, action, detail
                 FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[])
                      WITH ORDINALITY AS v(enrollment_id, at, node, action, detail, n)
                 ORDER BY n",
            )?;
            tx.execute(&statement, &[&enrollments, &at, &nodes, &actions, &details])?;
        }
        Ok(())
    }
}
