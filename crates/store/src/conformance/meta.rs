//! Installation-wide settings, and the all-or-nothing engine transaction.

use super::support::{at, contact, email, in_tx};
use crate::{Store, StoreError};

fn a_setting_reads_back_and_can_be_replaced(store: &dyn Store) {
    assert_eq!(store.meta("installation_id").unwrap(), None);
    store.set_meta("installation_id", "abc").unwrap();
    store.set_meta("installation_id", "def").unwrap();
    assert_eq!(
        store.meta("installation_id").unwrap().as_deref(),
        Some("def")
    );
}

fn settings_written_in_an_engine_transaction_are_the_same_settings(store: &dyn Store) {
    store.set_meta("cursor", "1").unwrap();
    let seen = in_tx(store, |tx| {
        let before = tx.meta("cursor")?;
        tx.set_meta("cursor", "2")?;
        tx.set_meta("other", "x")?;
        Ok((before, tx.meta("cursor")?, tx.meta("missing")?))
    });
    assert_eq!(seen, (Some("1".into()), Some("2".into()), None));
    assert_eq!(store.meta("cursor").unwrap().as_deref(), Some("2"));
    assert_eq!(store.meta("other").unwrap().as_deref(), Some("x"));
}

/// A batch's step, its effects and its counters commit together or not at all.
fn an_engine_transaction_that_fails_leaves_nothing_behind(store: &dyn Store) {
    let ann = contact(store, "ann");
    let result = store.engine_tx(&mut |tx| {
        tx.set_meta("cursor", "9")?;
        tx.resolve_contact(Some("bob"), None, at(1))?;
        tx.update_traits(
            ann,
            &super::support::props(serde_json::json!({"plan": "pro"})),
            at(1),
        )?;
        tx.insert_message(&email("k", ann, 1))?;
        tx.add_to_list(ann, "vip", at(1))?;
        tx.set_trigger_due("j", "daily", 0, Some(at(5)))?;
        Err(StoreError::Conflict("the batch gave up".into()))
    });
    match result {
        Err(StoreError::Conflict(why)) => assert_eq!(why, "the batch gave up"),
        other => panic!("the work's error is returned: {other:?}"),
    }
    assert_eq!(store.meta("cursor").unwrap(), None);
    let bob = store
        .find_contacts(&crate::ContactQuery {
            user_id: Some("bob".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(bob.is_empty());
    assert!(store.contact(ann).unwrap().contact.traits.is_empty());
    assert!(store.message_by_key("k").unwrap().is_none());
    assert!(store.lists().unwrap().is_empty());
    assert_eq!(store.next_wake_at().unwrap(), None);
    // The store goes on working after it.
    assert!(in_tx(store, |tx| tx.insert_message(&email("k", ann, 2))));
}

conformance_tests!(
    a_setting_reads_back_and_can_be_replaced,
    settings_written_in_an_engine_transaction_are_the_same_settings,
    an_engine_transaction_that_fails_leaves_nothing_behind,
);
