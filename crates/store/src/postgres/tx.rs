//! The engine transaction's concern traits on PostgreSQL.
//!
//! Being ported from the SQLite backend, one concern at a time.
#![allow(unused_imports, dead_code)]

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value};
use waymark_core::condition::MessageRecord;
use waymark_core::filter::Engagement;
use waymark_core::journey::{Channel, TemplateDefinition};
use waymark_core::stepper::PriorEnrollment;
use waymark_core::{Enrollment, EventRecord, StepLog};

use crate::*;

pub(crate) struct PgTx<'a, 'b> {
    pub(crate) tx: &'a mut ::postgres::Transaction<'b>,
}

impl EngineTx for PgTx<'_, '_> {}

impl AudiencesTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn in_list(&mut self, contact_id: i64, list: &str) -> Result<bool> {
        todo!("postgres: AudiencesTx")
    }

    #[allow(unused_variables)]
    fn add_to_list(&mut self, contact_id: i64, list: &str, now: Timestamp) -> Result<bool> {
        todo!("postgres: AudiencesTx")
    }

    #[allow(unused_variables)]
    fn remove_from_list(&mut self, contact_id: i64, list: &str) -> Result<bool> {
        todo!("postgres: AudiencesTx")
    }

    #[allow(unused_variables)]
    fn list_member_ids(&mut self, list: &str, after_id: i64, limit: usize) -> Result<Vec<i64>> {
        todo!("postgres: AudiencesTx")
    }

    #[allow(unused_variables)]
    fn segment_definitions(&mut self) -> Result<Vec<(String, Value)>> {
        todo!("postgres: AudiencesTx")
    }

    #[allow(unused_variables)]
    fn is_segment_member(&mut self, segment_id: &str, contact_id: i64) -> Result<bool> {
        todo!("postgres: AudiencesTx")
    }

    #[allow(unused_variables)]
    fn set_segment_member(
        &mut self,
        segment_id: &str,
        contact_id: i64,
        member: bool,
        now: Timestamp,
    ) -> Result<bool> {
        todo!("postgres: AudiencesTx")
    }

    #[allow(unused_variables)]
    fn segment_member_ids(
        &mut self,
        segment_id: &str,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<i64>> {
        todo!("postgres: AudiencesTx")
    }

    #[allow(unused_variables)]
    fn set_segment_check(
        &mut self,
        segment_id: &str,
        contact_id: i64,
        due: Option<Timestamp>,
    ) -> Result<()> {
        todo!("postgres: AudiencesTx")
    }

    #[allow(unused_variables)]
    fn claim_due_segment_checks(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, i64)>> {
        todo!("postgres: AudiencesTx")
    }
}

impl ConsentTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn subscriptions(&mut self, contact_id: i64) -> Result<Vec<Subscription>> {
        todo!("postgres: ConsentTx")
    }

    #[allow(unused_variables)]
    fn set_subscription(&mut self, subscription: &Subscription) -> Result<Option<String>> {
        todo!("postgres: ConsentTx")
    }

    #[allow(unused_variables)]
    fn suppression(&mut self, channel: &str, address: &str) -> Result<Option<String>> {
        todo!("postgres: ConsentTx")
    }

    #[allow(unused_variables)]
    fn suppress(&mut self, entry: &Suppression) -> Result<bool> {
        todo!("postgres: ConsentTx")
    }

    #[allow(unused_variables)]
    fn unsuppress(&mut self, channel: &str, address: &str) -> Result<bool> {
        todo!("postgres: ConsentTx")
    }
}

impl ContactsTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn resolve_contact(
        &mut self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        now: Timestamp,
    ) -> Result<i64> {
        todo!("postgres: ContactsTx")
    }

    #[allow(unused_variables)]
    fn alias(&mut self, previous_id: &str, user_id: &str, now: Timestamp) -> Result<i64> {
        todo!("postgres: ContactsTx")
    }

    #[allow(unused_variables)]
    fn contact(&mut self, contact_id: i64) -> Result<Contact> {
        todo!("postgres: ContactsTx")
    }

    #[allow(unused_variables)]
    fn update_traits(
        &mut self,
        contact_id: i64,
        traits: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<()> {
        todo!("postgres: ContactsTx")
    }

    #[allow(unused_variables)]
    fn contact_ids(&mut self, after_id: i64, limit: usize) -> Result<Vec<i64>> {
        todo!("postgres: ContactsTx")
    }

    #[allow(unused_variables)]
    fn contacts_with_address(
        &mut self,
        channel: &str,
        address: &str,
        limit: usize,
    ) -> Result<Vec<i64>> {
        todo!("postgres: ContactsTx")
    }

    #[allow(unused_variables)]
    fn contact_by_email(&mut self, email: &str) -> Result<Option<i64>> {
        todo!("postgres: ContactsTx")
    }
}

impl EnrollmentsTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn active_enrollments(&mut self, contact_id: i64) -> Result<Vec<Enrollment>> {
        todo!("postgres: EnrollmentsTx")
    }

    #[allow(unused_variables)]
    fn prior_enrollments(
        &mut self,
        journey_id: &str,
        contact_id: i64,
    ) -> Result<Vec<PriorEnrollment>> {
        todo!("postgres: EnrollmentsTx")
    }

    #[allow(unused_variables)]
    fn insert_enrollment(&mut self, enrollment: &Enrollment, now: Timestamp) -> Result<Enrollment> {
        todo!("postgres: EnrollmentsTx")
    }

    #[allow(unused_variables)]
    fn update_enrollment(&mut self, enrollment: &Enrollment, now: Timestamp) -> Result<()> {
        todo!("postgres: EnrollmentsTx")
    }

    #[allow(unused_variables)]
    fn claim_due_enrollments(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Enrollment>> {
        todo!("postgres: EnrollmentsTx")
    }

    #[allow(unused_variables)]
    fn journey_enrollments(
        &mut self,
        journey_id: &str,
        limit: usize,
        after_id: i64,
    ) -> Result<Vec<Enrollment>> {
        todo!("postgres: EnrollmentsTx")
    }

    #[allow(unused_variables)]
    fn record_steps(&mut self, enrollment_id: i64, log: &[StepLog], at: Timestamp) -> Result<()> {
        todo!("postgres: EnrollmentsTx")
    }

    #[allow(unused_variables)]
    fn visited_nodes(&mut self, enrollment_id: i64) -> Result<Vec<String>> {
        todo!("postgres: EnrollmentsTx")
    }

    #[allow(unused_variables)]
    fn left_outputs(&mut self, enrollment_id: i64) -> Result<Vec<(String, String)>> {
        todo!("postgres: EnrollmentsTx")
    }
}

impl EventsTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn pending_events(&mut self, upto_seq: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        todo!("postgres: EventsTx")
    }

    #[allow(unused_variables)]
    fn set_processed_upto(&mut self, seq: i64) -> Result<()> {
        todo!("postgres: EventsTx")
    }

    #[allow(unused_variables)]
    fn set_event_contact(&mut self, seq: i64, contact_id: i64) -> Result<()> {
        todo!("postgres: EventsTx")
    }

    #[allow(unused_variables)]
    fn events_between(
        &mut self,
        contact_id: i64,
        name: &str,
        after_seq: i64,
        upto_seq: i64,
    ) -> Result<Vec<EventRecord>> {
        todo!("postgres: EventsTx")
    }

    #[allow(unused_variables)]
    fn event(&mut self, seq: i64) -> Result<Option<StoredEvent>> {
        todo!("postgres: EventsTx")
    }

    #[allow(unused_variables)]
    fn record_event(&mut self, contact_id: i64, event: &NewEvent) -> Result<bool> {
        todo!("postgres: EventsTx")
    }

    #[allow(unused_variables)]
    fn contact_order_products(&mut self, contact_id: i64, limit: usize) -> Result<Vec<Value>> {
        todo!("postgres: EventsTx")
    }

    #[allow(unused_variables)]
    fn orders_with_products(
        &mut self,
        product_ids: &[String],
        exclude_contact: i64,
        limit: usize,
    ) -> Result<Vec<Value>> {
        todo!("postgres: EventsTx")
    }

    #[allow(unused_variables)]
    fn product_order_counts(
        &mut self,
        product_ids: &[String],
        cap: usize,
    ) -> Result<Vec<(String, i64)>> {
        todo!("postgres: EventsTx")
    }
}

impl ExperimentsTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn add_experiment_counts(
        &mut self,
        journey_id: &str,
        node: &str,
        variant: &str,
        entered: i64,
        converted: i64,
    ) -> Result<()> {
        todo!("postgres: ExperimentsTx")
    }

    #[allow(unused_variables)]
    fn experiment_counts(&mut self, journey_id: &str, node: &str) -> Result<Vec<ExperimentCounts>> {
        todo!("postgres: ExperimentsTx")
    }

    #[allow(unused_variables)]
    fn experiment_winner(&mut self, journey_id: &str, node: &str) -> Result<Option<String>> {
        todo!("postgres: ExperimentsTx")
    }

    #[allow(unused_variables)]
    fn set_experiment_winner(
        &mut self,
        journey_id: &str,
        node: &str,
        winner: &str,
        verdict: &Value,
        now: Timestamp,
    ) -> Result<()> {
        todo!("postgres: ExperimentsTx")
    }
}

impl MetaTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        todo!("postgres: MetaTx")
    }

    #[allow(unused_variables)]
    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        todo!("postgres: MetaTx")
    }
}

impl OutboxTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn insert_message(&mut self, message: &NewMessage) -> Result<bool> {
        todo!("postgres: OutboxTx")
    }

    #[allow(unused_variables)]
    fn set_message_unsubscribe_url(&mut self, idempotency_key: &str, url: &str) -> Result<()> {
        todo!("postgres: OutboxTx")
    }

    #[allow(unused_variables)]
    fn count_marketing_messages(
        &mut self,
        contact_id: i64,
        channel: &str,
        since: Timestamp,
    ) -> Result<i64> {
        todo!("postgres: OutboxTx")
    }

    #[allow(unused_variables)]
    fn contact_messages(&mut self, contact_id: i64) -> Result<Vec<MessageRecord>> {
        todo!("postgres: OutboxTx")
    }

    #[allow(unused_variables)]
    fn message_engaged(
        &mut self,
        enrollment_id: i64,
        node: &str,
        engagement: Engagement,
    ) -> Result<bool> {
        todo!("postgres: OutboxTx")
    }

    #[allow(unused_variables)]
    fn mark_engagement(&mut self, message_id: i64, clicked: bool, at: Timestamp) -> Result<bool> {
        todo!("postgres: OutboxTx")
    }
}

impl PrivacyTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn erase_contact(&mut self, contact_id: i64, now: Timestamp) -> Result<Erasure> {
        todo!("postgres: PrivacyTx")
    }

    #[allow(unused_variables)]
    fn record_audit(&mut self, entry: &NewAudit) -> Result<i64> {
        todo!("postgres: PrivacyTx")
    }
}

impl ReportingTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn add_stats(&mut self, deltas: &StatsDeltas, at: Timestamp) -> Result<()> {
        todo!("postgres: ReportingTx")
    }
}

impl TemplatesTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn template(&mut self, id: &str) -> Result<Option<StoredTemplate>> {
        todo!("postgres: TemplatesTx")
    }

    #[allow(unused_variables)]
    fn template_version(&mut self, id: &str, version: i64) -> Result<Option<StoredTemplate>> {
        todo!("postgres: TemplatesTx")
    }
}

impl TimersTx for PgTx<'_, '_> {
    #[allow(unused_variables)]
    fn set_trigger_due(
        &mut self,
        journey_id: &str,
        node: &str,
        contact_id: i64,
        due: Option<Timestamp>,
    ) -> Result<()> {
        todo!("postgres: TimersTx")
    }

    #[allow(unused_variables)]
    fn claim_due_triggers(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, String, i64, Timestamp)>> {
        todo!("postgres: TimersTx")
    }

    #[allow(unused_variables)]
    fn clear_journey_triggers(&mut self, journey_id: &str) -> Result<()> {
        todo!("postgres: TimersTx")
    }

    #[allow(unused_variables)]
    fn add_score_expiry(
        &mut self,
        contact_id: i64,
        score_trait: &str,
        points: i64,
        due: Timestamp,
    ) -> Result<()> {
        todo!("postgres: TimersTx")
    }

    #[allow(unused_variables)]
    fn claim_due_score_expiries(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(i64, String, i64)>> {
        todo!("postgres: TimersTx")
    }
}
