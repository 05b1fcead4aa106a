//! Appending a batch of events in a few round trips: the group commit of PostgreSQL.
//!
//! Each event is routed to its contact as [`Identities::route`] would route it, one after the
//! other, but without a round trip per event where it can: the batch's identities are looked up
//! in two statements first, an event naming one known identity takes that contact, and new
//! users are created together, just before anything that could see them (a routing that needs
//! the database) and at the end. Then every event is inserted in one statement.

use std::collections::HashMap;

use ::postgres::Transaction;
use waymark_core::EventKind;

use super::cluster::partition_of;
use super::tx::PgTx;
use super::{Prepared, ms};
use crate::concerns::Identities;
use crate::{NewEvent, Result, StoreError};

/// What the batch knows of an identity so far.
#[derive(Clone, Copy)]
enum Known {
    /// This contact.
    Contact(i64),
    /// No contact has it (as of the lookup, and nothing in the batch created it since).
    Nobody,
    /// A contact is being made for it (the index of the pending user, see `Batch::pending`).
    Pending(usize),
}

/// Routing state of one batch.
#[derive(Default)]
struct Batch {
    /// User ids: the contact `ContactsTx::resolve_contact` would find by the user id alone
    /// (its `user_id`, or an anonymous id it was merged from). Absent: not known any more (a
    /// routing through the database may have changed it), so the database is asked again.
    users: HashMap<String, Known>,
    anonymous: HashMap<String, Known>,
    /// New users (with the time their first event was received) to create.
    pending: Vec<(String, i64)>,
    /// The contacts made for them, by index in `pending`.
    made: HashMap<usize, i64>,
    /// Each event's contact, or the pending user it waits for.
    routed: Vec<Known>,
}

/// Appends `events` (the caller holds the append lock) and returns, for each, whether it was
/// new (false: its message id was seen before, in the database or earlier in the batch).
pub(crate) fn append(
    tx: &mut Transaction<'_>,
    prepared: &mut Prepared,
    events: &[NewEvent],
) -> Result<Vec<bool>> {
    let mut batch = Batch::default();
    batch.look_up(tx, prepared, events)?;
    for e in events {
        let single_user = e.kind != EventKind::Alias && e.anonymous_id.is_none();
        let single_anonymous = e.kind != EventKind::Alias && e.user_id.is_none();
        let known = match (&e.user_id, &e.anonymous_id) {
            (Some(user), _) if single_user => batch.users.get(user).copied(),
            (_, Some(anonymous)) if single_anonymous => batch.anonymous.get(anonymous).copied(),
            _ => None,
        };
        let routed = match (known, &e.user_id) {
            (Some(Known::Nobody), Some(user)) => {
                batch.pending.push((user.clone(), ms(e.received_at)));
                let pending = Known::Pending(batch.pending.len() - 1);
                batch.users.insert(user.clone(), pending);
                pending
            }
            (Some(Known::Contact(id)), _) => Known::Contact(id),
            (Some(Known::Pending(i)), _) => Known::Pending(i),
            _ => {
                // Through the database, as `route` does, once the users before it exist.
                batch.create_pending(tx, prepared)?;
                let id = PgTx::new(tx, prepared, None).route(e)?;
                // What this routing linked or moved is read again when asked next; an identity
                // named alone maps to the contact it was routed to.
                for identity in [&e.user_id, &e.previous_id].into_iter().flatten() {
                    batch.users.remove(identity);
                }
                for identity in [&e.anonymous_id, &e.previous_id].into_iter().flatten() {
                    batch.anonymous.remove(identity);
                }
                if let (Some(user), true) = (&e.user_id, single_user) {
                    batch.users.insert(user.clone(), Known::Contact(id));
                }
                if let (Some(anonymous), true) = (&e.anonymous_id, single_anonymous) {
                    batch
                        .anonymous
                        .insert(anonymous.clone(), Known::Contact(id));
                }
                Known::Contact(id)
            }
        };
        batch.routed.push(routed);
    }
    batch.create_pending(tx, prepared)?;
    let contacts: Vec<i64> = batch
        .routed
        .iter()
        .map(|known| match known {
            Known::Contact(id) => Ok(*id),
            Known::Pending(i) => batch.made.get(i).copied().ok_or_else(|| {
                StoreError::Database(format!("no contact was made for pending user #{i}"))
            }),
            Known::Nobody => Err(StoreError::Database("an event was not routed".into())),
        })
        .collect::<Result<_>>()?;
    insert_events(tx, prepared, events, &contacts)
}

impl Batch {
    /// What the database knows of every identity the batch names, in two statements.
    fn look_up(
        &mut self,
        tx: &mut Transaction<'_>,
        prepared: &mut Prepared,
        events: &[NewEvent],
    ) -> Result<()> {
        let users: Vec<&str> = events.iter().filter_map(|e| e.user_id.as_deref()).collect();
        let anonymous: Vec<&str> = events
            .iter()
            .filter_map(|e| e.anonymous_id.as_deref())
            .collect();
        // A user id merged away by an alias still names its contact (kept with the anonymous
        // ids), as in `resolve_contact`.
        let statement = prepared.get(
            tx,
            "SELECT u, COALESCE((SELECT id FROM contacts WHERE user_id = u),
                                (SELECT contact_id FROM anonymous_ids WHERE anonymous_id = u))
             FROM unnest($1::TEXT[]) AS u",
        )?;
        for row in tx.query(&statement, &[&users])? {
            let id: Option<i64> = row.try_get(1)?;
            self.users
                .insert(row.try_get(0)?, id.map_or(Known::Nobody, Known::Contact));
        }
        let statement = prepared.get(
            tx,
            "SELECT a, (SELECT contact_id FROM anonymous_ids WHERE anonymous_id = a)
             FROM unnest($1::TEXT[]) AS a",
        )?;
        for row in tx.query(&statement, &[&anonymous])? {
            let id: Option<i64> = row.try_get(1)?;
            self.anonymous
                .insert(row.try_get(0)?, id.map_or(Known::Nobody, Known::Contact));
        }
        Ok(())
    }

    /// Creates the contacts of the pending users not made yet, in one statement.
    fn create_pending(&mut self, tx: &mut Transaction<'_>, prepared: &mut Prepared) -> Result<()> {
        let waiting: Vec<usize> = (0..self.pending.len())
            .filter(|i| !self.made.contains_key(i))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let (users, at): (Vec<&str>, Vec<i64>) = waiting
            .iter()
            .map(|i| (self.pending[*i].0.as_str(), self.pending[*i].1))
            .unzip();
        let statement = prepared.get(
            tx,
            "INSERT INTO contacts (user_id, created_at, updated_at)
             SELECT u, at, at FROM unnest($1::TEXT[], $2::BIGINT[]) WITH ORDINALITY AS v(u, at, n)
             ORDER BY n
             RETURNING id, user_id",
        )?;
        let mut created = HashMap::new();
        for row in tx.query(&statement, &[&users, &at])? {
            created.insert(row.try_get::<_, String>(1)?, row.try_get::<_, i64>(0)?);
        }
        for i in waiting {
            let user = &self.pending[i].0;
            let id = *created.get(user).ok_or_else(|| {
                StoreError::Database(format!("no contact was made for user `{user}`"))
            })?;
            self.users.insert(user.clone(), Known::Contact(id));
            self.made.insert(i, id);
        }
        Ok(())
    }
}

/// Inserts the events with their contacts in one statement, in order; returns which were new.
fn insert_events(
    tx: &mut Transaction<'_>,
    prepared: &mut Prepared,
    events: &[NewEvent],
    contacts: &[i64],
) -> Result<Vec<bool>> {
    let mut columns = EventColumns::default();
    for (e, contact) in events.iter().zip(contacts) {
        columns.message_id.push(&e.message_id);
        columns.kind.push(e.kind.as_str());
        columns.name.push(&e.name);
        columns.user_id.push(e.user_id.as_deref());
        columns.anonymous_id.push(e.anonymous_id.as_deref());
        columns.previous_id.push(e.previous_id.as_deref());
        columns
            .properties
            .push(serde_json::to_string(&e.properties)?);
        columns.timestamp.push(ms(e.timestamp));
        columns.received_at.push(ms(e.received_at));
        columns.partition.push(partition_of(*contact));
    }
    let statement = prepared.get(
        tx,
        "INSERT INTO events (message_id, kind, name, user_id, anonymous_id, previous_id,
                             properties, timestamp, received_at, contact_id, partition)
         SELECT message_id, kind, name, user_id, anonymous_id, previous_id, properties,
                timestamp, received_at, contact_id, partition
         FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                     $7::TEXT[], $8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::SMALLINT[])
              WITH ORDINALITY AS v(message_id, kind, name, user_id, anonymous_id, previous_id,
                                   properties, timestamp, received_at, contact_id, partition, n)
         ORDER BY n
         ON CONFLICT (message_id) DO NOTHING
         RETURNING message_id",
    )?;
    let inserted: std::collections::HashSet<String> = tx
        .query(
            &statement,
            &[
                &columns.message_id,
                &columns.kind,
                &columns.name,
                &columns.user_id,
                &columns.anonymous_id,
                &columns.previous_id,
                &columns.properties,
                &columns.timestamp,
                &columns.received_at,
                &contacts,
                &columns.partition,
            ],
        )?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    // A message id inserted now is new at its first place in the batch, not at a repeat.
    let mut seen = std::collections::HashSet::new();
    Ok(events
        .iter()
        .map(|e| inserted.contains(&e.message_id) && seen.insert(e.message_id.as_str()))
        .collect())
}

/// The events' columns, as arrays for `unnest`.
#[derive(Default)]
struct EventColumns<'a> {
    message_id: Vec<&'a str>,
    kind: Vec<&'a str>,
    name: Vec<&'a str>,
    user_id: Vec<Option<&'a str>>,
    anonymous_id: Vec<Option<&'a str>>,
    previous_id: Vec<Option<&'a str>>,
    properties: Vec<String>,
    timestamp: Vec<i64>,
    received_at: Vec<i64>,
    partition: Vec<i16>,
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::Map;
    use waymark_core::EventKind;

    use super::super::test_support::TestDatabase;
    use crate::prelude::*;
    use crate::sqlite::SqliteStore;
    use crate::sqlite::test_support::TempDir;
    use crate::{ContactQuery, NewEvent, StoredEvent};

    fn event(
        message_id: &str,
        kind: EventKind,
        user: Option<&str>,
        anonymous: Option<&str>,
        previous: Option<&str>,
    ) -> NewEvent {
        NewEvent {
            message_id: message_id.into(),
            kind,
            name: kind.as_str().into(),
            user_id: user.map(str::to_string),
            anonymous_id: anonymous.map(str::to_string),
            previous_id: previous.map(str::to_string),
            properties: Map::new(),
            timestamp: Timestamp::from_second(1_000).unwrap(),
            received_at: Timestamp::from_second(1_000).unwrap(),
        }
    }

    fn appended(store: &dyn Store) -> Vec<(String, Option<i64>)> {
        let mut out = Vec::new();
        store
            .engine_tx(&mut |tx| {
                let events: Vec<StoredEvent> = tx.pending_events(i64::MAX, 1_000)?;
                out = events
                    .into_iter()
                    .map(|e| (e.event.message_id, e.contact_id))
                    .collect();
                Ok(())
            })
            .unwrap();
        out
    }

    /// The batch's shortcuts route every event as SQLite's event-by-event routing does: new
    /// users (twice in a batch, too), known ones, anonymous visitors, an identify that links
    /// a new user to a visitor, one that links two known contacts (merge left for later), an
    /// alias, and repeated message ids.
    #[test]
    fn a_batch_is_routed_as_one_event_after_the_other_would_be() {
        let Some(db) = TestDatabase::create("intake_routing") else {
            return;
        };
        let dir = TempDir::new("intake_routing");
        let sqlite = SqliteStore::open(&dir.0).unwrap();
        let pg = db.open();
        use EventKind::{Alias, Identify, Track};
        let first = vec![
            event("1", Track, Some("known"), None, None),
            event("2", Track, None, Some("visitor"), None),
            event("3", Track, None, Some("other-visitor"), None),
        ];
        let second = vec![
            event("4", Track, Some("new"), None, None),
            event("5", Identify, Some("new"), None, None),
            event("6", Track, Some("known"), None, None),
            event("7", Identify, Some("signs-up"), Some("visitor"), None),
            event("8", Track, Some("signs-up"), None, None),
            event("9", Track, None, Some("visitor"), None),
            event("10", Identify, Some("known"), Some("other-visitor"), None),
            event("11", Track, None, Some("other-visitor"), None),
            event("12", Alias, Some("aliased"), None, Some("new")),
            event("13", Track, Some("aliased"), None, None),
            event("14", Track, Some("new"), None, None),
            event("4", Track, Some("new"), None, None),
            event("15", Track, None, Some("fresh-visitor"), None),
            event("16", Track, None, Some("fresh-visitor"), None),
            event("17", Track, Some("later"), None, None),
        ];
        for batch in [&first, &second] {
            assert_eq!(
                sqlite.append_events(batch).unwrap(),
                pg.append_events(batch).unwrap(),
                "which events are new"
            );
        }
        assert_eq!(appended(&sqlite), appended(&pg), "each event's contact");
        let query = ContactQuery {
            limit: 100,
            ..ContactQuery::default()
        };
        let ids = |store: &dyn Store| -> Vec<(i64, Option<String>)> {
            let mut contacts: Vec<_> = store
                .find_contacts(&query)
                .unwrap()
                .into_iter()
                .map(|c| (c.id, c.user_id))
                .collect();
            contacts.sort();
            contacts
        };
        assert_eq!(ids(&sqlite), ids(&pg), "the contacts made");
    }
}
