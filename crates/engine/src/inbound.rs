//! Applies what email and SMS providers report about addresses (bounces, complaints, STOP and
//! START; parsed from their webhooks by `waymark_channels::inbound`): the suppression list
//! changes and the track events on the contacts with those addresses (`Email Bounced`,
//! `SMS Opted Out`, ...) are written in one transaction, so a crash cannot leave an address
//! suppressed without its timeline event, or the other way round.

use std::sync::Arc;

use jiff::Timestamp;
use waymark_channels::inbound::InboundFact;
use waymark_store::{EngineTx, StoreError, Suppression, suppression_address};

use crate::{Engine, EngineError, recorded};

/// The most contacts with one address that get the event.
const MAX_CONTACTS_PER_ADDRESS: usize = 10;

/// How long after a message was sent a reported bounce is taken to be about it (providers
/// report within minutes; a relay gives up retrying after a few days).
pub const BOUNCE_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);

/// What was done with one fact, as the inbound webhook endpoints answer it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct InboundOutcome {
    pub channel: &'static str,
    /// The address as it is kept on the suppression list.
    pub address: String,
    /// `suppressed`, `unsuppressed` or `recorded` (timeline only).
    pub action: &'static str,
    /// Whether the suppression list changed.
    pub changed: bool,
    pub event: &'static str,
}

impl Engine {
    /// Applies `facts` in one transaction (see the module docs). `nonce` makes the event ids
    /// of facts without a provider id unique (a provider's id keeps a retried notification
    /// from being recorded twice).
    pub async fn apply_inbound(
        self: &Arc<Self>,
        facts: Vec<InboundFact>,
        nonce: String,
    ) -> Result<Vec<InboundOutcome>, EngineError> {
        let engine = self.clone();
        let now = self.clock.now();
        let (outcomes, recorded) = tokio::task::spawn_blocking(move || {
            let mut out = (Vec::new(), 0);
            engine.store.engine_tx(&mut |tx| {
                out = apply(tx, &facts, &nonce, now)?;
                Ok(())
            })?;
            Ok::<_, StoreError>(out)
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??;
        if recorded > 0 {
            self.events_recorded();
        }
        Ok(outcomes)
    }
}

/// The outcome of each fact, and how many events were recorded.
fn apply(
    tx: &mut dyn EngineTx,
    facts: &[InboundFact],
    nonce: &str,
    now: Timestamp,
) -> Result<(Vec<InboundOutcome>, usize), StoreError> {
    let mut outcomes = Vec::new();
    let mut recorded = 0;
    for (n, fact) in facts.iter().enumerate() {
        let (channel, source) = (fact.channel.as_str(), fact.source);
        let address = suppression_address(channel, &fact.address);
        let changed = if fact.remove {
            tx.unsuppress(channel, &address)?
        } else if let Some(reason) = fact.reason {
            tx.suppress(&Suppression {
                channel: channel.to_string(),
                address: address.clone(),
                reason: reason.as_str().to_string(),
                source: source.to_string(),
                created_at: now,
            })?
        } else {
            false
        };
        let action = match (fact.remove, fact.reason) {
            (true, _) => "unsuppressed",
            (false, Some(_)) => "suppressed",
            (false, None) => "recorded",
        };
        tracing::info!(channel, %address, action, source, event = fact.event, "inbound webhook");
        let mut properties = fact.properties.clone();
        properties.insert("channel".into(), channel.into());
        properties.insert("address".into(), address.clone().into());
        properties.insert("source".into(), source.into());
        if let Some(r) = fact.reason {
            properties.insert("reason".into(), r.as_str().into());
        }
        // Recorded on the contact itself: one without a user id or anonymous id gets it too.
        let contacts = tx.contacts_with_address(channel, &address, MAX_CONTACTS_PER_ADDRESS)?;
        // A bounce after the receiving side accepted a message: the last one sent to the
        // address was not delivered after all (see `docs/api.md`, "Journey statistics").
        if fact.event.ends_with(" Bounced") && !contacts.is_empty() {
            let since = now - BOUNCE_WINDOW;
            let error = match fact.properties.get("diagnostic").and_then(|d| d.as_str()) {
                Some(d) => format!("bounced after it was sent ({source}): {d}"),
                None => format!("bounced after it was sent ({source})"),
            };
            tx.bounce_sent_message(&contacts, channel, &address, since, &error, now)?;
        }
        // A spam complaint is about the last message sent to the address: its journey's
        // reports count it.
        if fact.event.ends_with(" Complained") && !contacts.is_empty() {
            tx.complain_sent_message(&contacts, channel, &address, now - BOUNCE_WINDOW, now)?;
        }
        for (i, contact_id) in contacts.into_iter().enumerate() {
            let message_id = match &fact.event_id {
                Some(id) => format!("{source}-{id}-{address}-{i}"),
                None => format!("{source}-{nonce}-{n}-{i}"),
            };
            let properties = properties.clone();
            if recorded::record(tx, contact_id, fact.event, properties, message_id, now)? {
                recorded += 1;
            }
        }
        outcomes.push(InboundOutcome {
            channel,
            address,
            action,
            changed,
            event: fact.event,
        });
    }
    Ok((outcomes, recorded))
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};
    use waymark_channels::inbound::parse_generic;
    use waymark_store::prelude::*;
    use waymark_store::sqlite::SqliteStore;
    use waymark_store::{SuppressionQuery, TimelineEntry};

    use super::*;

    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn store() -> (TempDir, SqliteStore) {
        let dir = std::env::temp_dir().join(format!(
            "waymark-inbound-{}-{}",
            std::process::id(),
            Timestamp::now().as_nanosecond()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(&dir).unwrap();
        (TempDir(dir), store)
    }

    fn suppressed(store: &SqliteStore) -> Vec<String> {
        let query = SuppressionQuery {
            limit: 100,
            ..Default::default()
        };
        let list = store.suppressions(&query).unwrap();
        list.into_iter().map(|s| s.address).collect()
    }

    fn event_names(store: &SqliteStore, contact_id: i64) -> Vec<String> {
        let timeline = store.timeline(contact_id, 100).unwrap();
        let names = timeline.into_iter().filter_map(|e| match e {
            TimelineEntry::Event { name, .. } => Some(name),
            _ => None,
        });
        names.collect()
    }

    #[test]
    fn the_suppression_and_the_timeline_event_are_written_together_or_not_at_all() {
        let (_dir, store) = store();
        let now = Timestamp::now();
        let mut contact = 0;
        store
            .engine_tx(&mut |tx| {
                contact = tx.resolve_contact(Some("ann"), None, now)?;
                let traits: Map<String, Value> = json!({"email": "ann@example.com"})
                    .as_object()
                    .unwrap()
                    .clone();
                tx.update_traits(contact, &traits, now)
            })
            .unwrap();
        let facts = parse_generic(
            br#"{"events": [{"type": "bounce", "address": "Ann@Example.com"},
                            {"type": "complaint", "address": "bob@example.com"}]}"#,
        )
        .unwrap();
        // A failure after the facts were applied (here, forced) leaves nothing behind.
        let failed = store.engine_tx(&mut |tx| {
            apply(tx, &facts, "n", now)?;
            Err(StoreError::Database("forced".into()))
        });
        assert!(failed.is_err());
        assert!(suppressed(&store).is_empty());
        assert!(!event_names(&store, contact).contains(&"Email Bounced".to_string()));
        let mut applied = (Vec::new(), 0);
        store
            .engine_tx(&mut |tx| {
                applied = apply(tx, &facts, "n", now)?;
                Ok(())
            })
            .unwrap();
        let (outcomes, recorded) = applied;
        assert_eq!(recorded, 1, "only Ann has a contact");
        assert_eq!(outcomes[0].action, "suppressed");
        assert!(outcomes[0].changed);
        assert_eq!(
            suppressed(&store),
            vec!["ann@example.com".to_string(), "bob@example.com".to_string()]
        );
        assert!(event_names(&store, contact).contains(&"Email Bounced".to_string()));
    }
}
