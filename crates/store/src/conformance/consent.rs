//! Consent: per-channel, per-topic subscriptions and the suppression list.

use super::support::{at, contact, in_tx, subscription};
use crate::{Store, Suppression, SuppressionQuery};

fn entry(channel: &str, address: &str, reason: &str, secs: i64) -> Suppression {
    Suppression {
        channel: channel.into(),
        address: address.into(),
        reason: reason.into(),
        source: "api".into(),
        created_at: at(secs),
    }
}

fn a_subscription_change_returns_the_status_before(store: &dyn Store) {
    let (ann, bob) = (contact(store, "ann"), contact(store, "bob"));
    let before = in_tx(store, |tx| {
        Ok([
            tx.set_subscription(&subscription(ann, "email", "news", "pending", 1))?,
            tx.set_subscription(&subscription(ann, "email", "news", "subscribed", 2))?,
            tx.set_subscription(&subscription(ann, "email", "*", "unsubscribed", 3))?,
            tx.set_subscription(&subscription(ann, "sms", "*", "subscribed", 4))?,
            tx.set_subscription(&subscription(bob, "email", "news", "subscribed", 5))?,
        ])
    });
    assert_eq!(
        before,
        [None, Some("pending".to_string()), None, None, None]
    );
    let subs = in_tx(store, |tx| tx.subscriptions(ann));
    assert_eq!(
        subs,
        [
            subscription(ann, "email", "*", "unsubscribed", 3),
            subscription(ann, "email", "news", "subscribed", 2),
            subscription(ann, "sms", "*", "subscribed", 4),
        ],
        "by channel and topic, with the latest status"
    );
}

fn a_suppressed_address_is_found_in_any_case_and_can_be_lifted(store: &dyn Store) {
    assert!(
        store
            .suppress(&entry("email", " Ann@Example.COM ", "complaint", 1))
            .unwrap()
    );
    assert!(
        store
            .suppress(&entry("sms", "+4915100000001", "unsubscribe", 2))
            .unwrap()
    );
    let found = in_tx(store, |tx| {
        Ok([
            tx.suppression("email", "ann@example.com")?,
            tx.suppression("email", "ANN@example.com")?,
            tx.suppression("sms", "+4915100000001")?,
            tx.suppression("sms", "ann@example.com")?,
            tx.suppression("email", "bob@example.com")?,
        ])
    });
    let complaint = Some("complaint".to_string());
    assert_eq!(
        found,
        [
            complaint.clone(),
            complaint,
            Some("unsubscribe".into()),
            None,
            None
        ]
    );
    assert!(store.unsuppress("email", "ANN@example.com").unwrap());
    assert!(!store.unsuppress("email", "ann@example.com").unwrap());
    assert_eq!(
        in_tx(store, |tx| tx.suppression("email", "ann@example.com")),
        None
    );
}

fn suppressing_again_updates_the_reason_and_keeps_the_first_time(store: &dyn Store) {
    assert!(
        store
            .suppress(&entry("email", "ann@example.com", "unsubscribe", 1))
            .unwrap()
    );
    let again = Suppression {
        source: "smtp".into(),
        ..entry("email", "ANN@example.com", "hard_bounce", 9)
    };
    assert!(!store.suppress(&again).unwrap());
    let list = store
        .suppressions(&SuppressionQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(list.len(), 1);
    let s = &list[0];
    assert_eq!(
        (
            s.address.as_str(),
            s.reason.as_str(),
            s.source.as_str(),
            s.created_at
        ),
        ("ann@example.com", "hard_bounce", "smtp", at(1))
    );
}

fn the_engine_suppresses_and_lifts_in_its_transaction(store: &dyn Store) {
    let steps = in_tx(store, |tx| {
        Ok([
            tx.suppress(&entry("email", "Ann@Example.com", "unsubscribe", 1))?,
            tx.suppress(&entry("email", "ann@example.com", "complaint", 2))?,
            tx.suppression("email", "ann@example.com")? == Some("complaint".into()),
            tx.unsuppress("email", "ann@EXAMPLE.com")?,
            tx.unsuppress("email", "ann@example.com")?,
        ])
    });
    assert_eq!(steps, [true, false, true, true, false]);
    assert!(
        store
            .suppressions(&SuppressionQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .is_empty()
    );
}

fn the_suppression_list_is_filtered_newest_first(store: &dyn Store) {
    store
        .suppress(&entry("email", "old@example.com", "manual", 1))
        .unwrap();
    store
        .suppress(&entry("email", "new@example.com", "manual", 3))
        .unwrap();
    store
        .suppress(&entry("sms", "+15550001", "manual", 2))
        .unwrap();
    let list = |channel: Option<&str>, address: Option<&str>, limit| -> Vec<String> {
        store
            .suppressions(&SuppressionQuery {
                channel: channel.map(str::to_string),
                address: address.map(str::to_string),
                limit,
            })
            .unwrap()
            .into_iter()
            .map(|s| s.address)
            .collect()
    };
    assert_eq!(
        list(None, None, 10),
        ["new@example.com", "+15550001", "old@example.com"]
    );
    assert_eq!(list(None, None, 1), ["new@example.com"]);
    assert_eq!(
        list(Some("email"), None, 10),
        ["new@example.com", "old@example.com"]
    );
    assert_eq!(
        list(Some("email"), Some(" OLD@example.com"), 10),
        ["old@example.com"]
    );
    assert_eq!(list(None, Some("+15550001"), 10), ["+15550001"]);
    assert_eq!(
        list(Some("sms"), Some("old@example.com"), 10),
        Vec::<String>::new()
    );
}

conformance_tests!(
    a_subscription_change_returns_the_status_before,
    a_suppressed_address_is_found_in_any_case_and_can_be_lifted,
    suppressing_again_updates_the_reason_and_keeps_the_first_time,
    the_engine_suppresses_and_lifts_in_its_transaction,
    the_suppression_list_is_filtered_newest_first,
);
