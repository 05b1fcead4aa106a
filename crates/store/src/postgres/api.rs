//! The `&self` concern traits on PostgreSQL: each call its own unit of work.
//!
//! Being ported from the SQLite backend, one concern at a time.
#![allow(unused_imports, dead_code)]

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value};
use waymark_core::condition::MessageRecord;
use waymark_core::filter::Engagement;
use waymark_core::journey::{Channel, TemplateDefinition};

use super::PgStore;
use crate::*;

impl Store for PgStore {
    fn engine_tx(&self, work: &mut dyn FnMut(&mut dyn EngineTx) -> Result<()>) -> Result<()> {
        self.run_engine_tx(work)
    }
}

impl Audiences for PgStore {
    #[allow(unused_variables)]
    fn lists(&self) -> Result<Vec<ListSummary>> {
        todo!("postgres: Audiences")
    }

    #[allow(unused_variables)]
    fn create_list(&self, name: &str, now: Timestamp) -> Result<ListSummary> {
        todo!("postgres: Audiences")
    }

    #[allow(unused_variables)]
    fn list_members(&self, name: &str, limit: usize, after_id: i64) -> Result<Vec<Contact>> {
        todo!("postgres: Audiences")
    }

    #[allow(unused_variables)]
    fn segments(&self) -> Result<Vec<SegmentRow>> {
        todo!("postgres: Audiences")
    }

    #[allow(unused_variables)]
    fn segment(&self, id: &str) -> Result<SegmentRow> {
        todo!("postgres: Audiences")
    }

    #[allow(unused_variables)]
    fn put_segment(&self, id: &str, name: &str, condition: &Value, now: Timestamp) -> Result<bool> {
        todo!("postgres: Audiences")
    }

    #[allow(unused_variables)]
    fn delete_segment(&self, id: &str) -> Result<()> {
        todo!("postgres: Audiences")
    }

    #[allow(unused_variables)]
    fn segment_members(&self, id: &str, limit: usize, after_id: i64) -> Result<Vec<Contact>> {
        todo!("postgres: Audiences")
    }
}

impl Consent for PgStore {
    #[allow(unused_variables)]
    fn suppressions(&self, query: &SuppressionQuery) -> Result<Vec<Suppression>> {
        todo!("postgres: Consent")
    }

    #[allow(unused_variables)]
    fn suppress(&self, entry: &Suppression) -> Result<bool> {
        todo!("postgres: Consent")
    }

    #[allow(unused_variables)]
    fn unsuppress(&self, channel: &str, address: &str) -> Result<bool> {
        todo!("postgres: Consent")
    }
}

impl Contacts for PgStore {
    #[allow(unused_variables)]
    fn contact(&self, id: i64) -> Result<ContactDetail> {
        todo!("postgres: Contacts")
    }

    #[allow(unused_variables)]
    fn find_contacts(&self, query: &ContactQuery) -> Result<Vec<Contact>> {
        todo!("postgres: Contacts")
    }

    #[allow(unused_variables)]
    fn timeline(&self, contact_id: i64, limit: usize) -> Result<Vec<TimelineEntry>> {
        todo!("postgres: Contacts")
    }
}

impl Events for PgStore {
    fn append_events(&self, events: &[NewEvent]) -> Result<Vec<bool>> {
        self.append(events)
    }

    #[allow(unused_variables)]
    fn pending_event_count(&self) -> Result<i64> {
        todo!("postgres: Events")
    }

    #[allow(unused_variables)]
    fn last_event_seq(&self) -> Result<i64> {
        todo!("postgres: Events")
    }
}

impl Experiments for PgStore {
    #[allow(unused_variables)]
    fn experiments(
        &self,
        journey_id: &str,
    ) -> Result<(Vec<ExperimentCounts>, Vec<ExperimentWinner>)> {
        todo!("postgres: Experiments")
    }
}

impl Journeys for PgStore {
    #[allow(unused_variables)]
    fn journeys(&self) -> Result<Vec<JourneyRow>> {
        todo!("postgres: Journeys")
    }

    #[allow(unused_variables)]
    fn journey(&self, id: &str) -> Result<JourneyRow> {
        todo!("postgres: Journeys")
    }

    #[allow(unused_variables)]
    fn put_journey_draft(
        &self,
        id: &str,
        name: &str,
        draft: &Value,
        now: Timestamp,
    ) -> Result<JourneyRow> {
        todo!("postgres: Journeys")
    }

    #[allow(unused_variables)]
    fn publish_journey(
        &self,
        id: &str,
        document: &Value,
        templates: &[String],
        now: Timestamp,
    ) -> Result<JourneyRow> {
        todo!("postgres: Journeys")
    }

    #[allow(unused_variables)]
    fn set_journey_status(
        &self,
        id: &str,
        status: JourneyStatus,
        now: Timestamp,
    ) -> Result<JourneyRow> {
        todo!("postgres: Journeys")
    }

    #[allow(unused_variables)]
    fn journey_versions(&self, id: &str) -> Result<Vec<JourneyVersion>> {
        todo!("postgres: Journeys")
    }

    #[allow(unused_variables)]
    fn journey_version(&self, id: &str, version: i64) -> Result<JourneyVersion> {
        todo!("postgres: Journeys")
    }

    #[allow(unused_variables)]
    fn running_journeys(&self) -> Result<Vec<(JourneyStatus, JourneyVersion)>> {
        todo!("postgres: Journeys")
    }
}

impl Meta for PgStore {
    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.read(|conn| {
            Ok(conn
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?
                .map(|row| row.get(0)))
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )?;
            Ok(())
        })
    }
}

impl Outbox for PgStore {
    #[allow(unused_variables)]
    fn due_messages(&self, query: &DueQuery<'_>) -> Result<Vec<MessageRow>> {
        todo!("postgres: Outbox")
    }

    #[allow(unused_variables)]
    fn due_journeys(&self, channel: &str, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        todo!("postgres: Outbox")
    }

    #[allow(unused_variables)]
    fn next_message_attempt_at(&self) -> Result<Option<Timestamp>> {
        todo!("postgres: Outbox")
    }

    #[allow(unused_variables)]
    fn finish_messages(&self, finished: &[Finished]) -> Result<()> {
        todo!("postgres: Outbox")
    }

    #[allow(unused_variables)]
    fn requeue_messages(&self, filter: &RequeueFilter, now: Timestamp) -> Result<i64> {
        todo!("postgres: Outbox")
    }

    #[allow(unused_variables)]
    fn queue_levels(&self) -> Result<Vec<QueueLevel>> {
        todo!("postgres: Outbox")
    }

    #[allow(unused_variables)]
    fn messages(&self, query: &MessageQuery) -> Result<Vec<MessageRow>> {
        todo!("postgres: Outbox")
    }

    #[allow(unused_variables)]
    fn message_by_key(&self, idempotency_key: &str) -> Result<Option<MessageRow>> {
        todo!("postgres: Outbox")
    }
}

impl Privacy for PgStore {
    #[allow(unused_variables)]
    fn contact_export_counts(&self, contact_id: i64) -> Result<BTreeMap<String, i64>> {
        todo!("postgres: Privacy")
    }

    #[allow(unused_variables)]
    fn export_contact(
        &self,
        contact_id: i64,
        page: usize,
        emit: &mut dyn FnMut(ExportPage) -> Result<()>,
    ) -> Result<()> {
        todo!("postgres: Privacy")
    }

    #[allow(unused_variables)]
    fn record_audit(&self, entry: &NewAudit) -> Result<i64> {
        todo!("postgres: Privacy")
    }

    #[allow(unused_variables)]
    fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        todo!("postgres: Privacy")
    }
}

impl Reporting for PgStore {
    #[allow(unused_variables)]
    fn journey_stats(&self, id: &str) -> Result<JourneyStats> {
        todo!("postgres: Reporting")
    }

    #[allow(unused_variables)]
    fn gauges(&self) -> Result<Gauges> {
        todo!("postgres: Reporting")
    }

    #[allow(unused_variables)]
    fn disk_bytes(&self) -> Result<u64> {
        todo!("postgres: Reporting")
    }
}

impl Templates for PgStore {
    #[allow(unused_variables)]
    fn templates(&self) -> Result<Vec<StoredTemplate>> {
        todo!("postgres: Templates")
    }

    #[allow(unused_variables)]
    fn get_template(&self, id: &str) -> Result<StoredTemplate> {
        todo!("postgres: Templates")
    }

    #[allow(unused_variables)]
    fn put_template(&self, def: &TemplateDefinition, now: Timestamp) -> Result<bool> {
        todo!("postgres: Templates")
    }

    #[allow(unused_variables)]
    fn template_versions(&self, id: &str) -> Result<Vec<TemplateVersionSummary>> {
        todo!("postgres: Templates")
    }

    #[allow(unused_variables)]
    fn get_template_version(&self, id: &str, version: i64) -> Result<StoredTemplate> {
        todo!("postgres: Templates")
    }

    #[allow(unused_variables)]
    fn delete_template(&self, id: &str) -> Result<()> {
        todo!("postgres: Templates")
    }

    #[allow(unused_variables)]
    fn template_channel(&self, id: &str) -> Result<Option<Channel>> {
        todo!("postgres: Templates")
    }
}

impl Timers for PgStore {
    #[allow(unused_variables)]
    fn next_wake_at(&self) -> Result<Option<Timestamp>> {
        todo!("postgres: Timers")
    }
}
