//! Reading ahead (`EngineTx::read_ahead`) is only a hint: after it, every read in the
//! transaction answers what it would have answered without it, also after the transaction's own
//! writes to what was read ahead, and the writes a backend holds back reach the database.

use serde_json::json;
use waymark_core::{EnrollmentStatus, StepLog};

use super::support::{
    append_for, at, contact, enrollment, in_tx, live_journey, props, subscription, track,
};
use crate::{ReadAhead, Store, Suppression};

fn ann_and_bob(store: &dyn Store) -> (i64, i64) {
    let (ann, bob) = (contact(store, "ann"), contact(store, "bob"));
    in_tx(store, |tx| {
        tx.update_traits(ann, &props(json!({"email": "ann@example.com"})), at(0))?;
        tx.update_traits(
            bob,
            &props(json!({"email": "Bob@Example.com", "phone": "+4915100000002"})),
            at(0),
        )
    });
    (ann, bob)
}

fn reads_after_reading_ahead_follow_the_transactions_own_writes(store: &dyn Store) {
    live_journey(store, "j");
    let (ann, bob) = ann_and_bob(store);
    let seqs = append_for(store, ann, &[track("m1", "ann", "Go", 1)]);
    let (first, ended) = in_tx(store, |tx| {
        let first = tx.insert_enrollment(&enrollment("j", ann, "a", None), at(0))?;
        let mut ended = enrollment("j", ann, "b", None);
        ended.status = EnrollmentStatus::Exited;
        ended.key = Some("k".into());
        let ended = tx.insert_enrollment(&ended, at(0))?;
        tx.set_subscription(&subscription(ann, "email", "*", "unsubscribed", 1))?;
        Ok((first, ended))
    });
    store
        .suppress(&Suppression {
            channel: "email".into(),
            address: "bob@example.com".into(),
            reason: "bounce".into(),
            source: "api".into(),
            created_at: at(1),
        })
        .unwrap();

    let (steps, second) = in_tx(store, |tx| {
        tx.read_ahead(&ReadAhead {
            contacts: &[ann, bob, ann],
            journeys: &["j", "other"],
            events: &seqs,
        })?;
        // What was there before the transaction.
        assert_eq!(tx.active_enrollments(ann)?, std::slice::from_ref(&first));
        assert!(tx.active_enrollments(bob)?.is_empty());
        let prior = tx.prior_enrollments("j", ann)?;
        assert_eq!(
            prior
                .iter()
                .map(|p| (p.key.clone(), p.status))
                .collect::<Vec<_>>(),
            [
                (None, EnrollmentStatus::Active),
                (Some("k".into()), EnrollmentStatus::Exited)
            ]
        );
        assert!(tx.prior_enrollments("other", ann)?.is_empty());
        assert_eq!(
            tx.subscriptions(ann)?,
            [subscription(ann, "email", "*", "unsubscribed", 1)]
        );
        assert!(tx.subscriptions(bob)?.is_empty());
        assert_eq!(
            tx.suppression("email", "BOB@example.com ")?.as_deref(),
            Some("bounce")
        );
        assert_eq!(tx.suppression("email", "ann@example.com")?, None);
        assert_eq!(tx.suppression("sms", "+4915100000002")?, None);
        assert_eq!(tx.contact(bob)?.email.as_deref(), Some("Bob@Example.com"));
        assert_eq!(
            tx.event(seqs[0])?.map(|e| e.event.name).as_deref(),
            Some("Go")
        );

        // The transaction's own writes, each read back.
        let mut moved = first.clone();
        moved.node = "b".into();
        moved.wake_at = Some(at(5));
        tx.update_enrollment(&moved, at(2))?;
        assert_eq!(tx.active_enrollments(ann)?, [moved.clone()]);
        tx.record_steps(first.id, &[StepLog::Entered { node: "b".into() }], at(2))?;
        // A read the backend answers from the database sees the held writes.
        assert_eq!(tx.visited_nodes(first.id)?, ["b"]);
        let due = tx.claim_due_enrollments(at(10), 10)?;
        assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), [first.id]);

        let mut done = moved.clone();
        done.status = EnrollmentStatus::Completed;
        done.wake_at = None;
        tx.update_enrollment(&done, at(3))?;
        assert!(tx.active_enrollments(ann)?.is_empty());
        let second = tx.insert_enrollment(&enrollment("j", ann, "a", None), at(3))?;
        let other = tx.insert_enrollment(&enrollment("other", bob, "a", None), at(3))?;
        assert_eq!(tx.active_enrollments(ann)?, std::slice::from_ref(&second));
        assert_eq!(tx.active_enrollments(bob)?, [other]);
        let prior = tx.prior_enrollments("j", ann)?;
        assert_eq!(
            prior
                .iter()
                .map(|p| (p.key.clone(), p.status))
                .collect::<Vec<_>>(),
            [
                (None, EnrollmentStatus::Completed),
                (Some("k".into()), EnrollmentStatus::Exited),
                (None, EnrollmentStatus::Active),
            ]
        );
        assert_eq!(ended.status, EnrollmentStatus::Exited);

        tx.set_subscription(&subscription(ann, "email", "*", "subscribed", 4))?;
        assert_eq!(
            tx.subscriptions(ann)?,
            [subscription(ann, "email", "*", "subscribed", 4)]
        );
        tx.suppress(&Suppression {
            channel: "email".into(),
            address: "Ann@example.com".into(),
            reason: "complaint".into(),
            source: "engine".into(),
            created_at: at(4),
        })?;
        assert_eq!(
            tx.suppression("email", "ann@example.com")?.as_deref(),
            Some("complaint")
        );
        tx.unsuppress("email", "bob@example.com")?;
        assert_eq!(tx.suppression("email", "bob@example.com")?, None);
        tx.update_traits(bob, &props(json!({"email": "robert@example.com"})), at(4))?;
        assert_eq!(
            tx.contact(bob)?.email.as_deref(),
            Some("robert@example.com")
        );
        tx.record_steps(second.id, &[StepLog::Entered { node: "a".into() }], at(4))?;
        Ok((tx.visited_nodes(first.id)?, second))
    });
    assert_eq!(steps, ["b"]);

    // The held writes were committed with the transaction.
    let stored = store.contact(ann).unwrap().enrollments;
    let by_id = |id: i64| stored.iter().find(|e| e.id == id).expect("stored");
    assert_eq!(
        (
            by_id(first.id).status.as_str(),
            by_id(first.id).node.as_str(),
            by_id(first.id).updated_at
        ),
        ("completed", "b", at(3))
    );
    assert_eq!(by_id(second.id).status.as_str(), "active");
    let visited = in_tx(store, |tx| {
        Ok((tx.visited_nodes(first.id)?, tx.visited_nodes(second.id)?))
    });
    assert_eq!(visited, (vec!["b".to_string()], vec!["a".to_string()]));
}

fn a_merge_after_reading_ahead_is_seen_by_later_reads(store: &dyn Store) {
    live_journey(store, "j");
    let (ann, bob) = ann_and_bob(store);
    let bobs = in_tx(store, |tx| {
        tx.set_subscription(&subscription(bob, "email", "*", "unsubscribed", 1))?;
        tx.insert_enrollment(&enrollment("j", bob, "a", None), at(0))
    });
    let (survivor, active, subscriptions, prior) = in_tx(store, |tx| {
        tx.read_ahead(&ReadAhead {
            contacts: &[ann, bob],
            journeys: &["j"],
            events: &[],
        })?;
        assert!(tx.active_enrollments(ann)?.is_empty());
        // Bob turns out to be Ann: his enrollment and consent move to her.
        let survivor = tx.alias("bob", "ann", at(2))?;
        Ok((
            survivor,
            tx.active_enrollments(ann)?,
            tx.subscriptions(ann)?,
            tx.prior_enrollments("j", ann)?.len(),
        ))
    });
    assert_eq!(survivor, ann);
    assert_eq!(active.iter().map(|e| e.id).collect::<Vec<_>>(), [bobs.id]);
    assert_eq!(
        subscriptions
            .iter()
            .map(|s| s.status.as_str())
            .collect::<Vec<_>>(),
        ["unsubscribed"]
    );
    assert_eq!(prior, 1);
}

conformance_tests!(
    reads_after_reading_ahead_follow_the_transactions_own_writes,
    a_merge_after_reading_ahead_is_seen_by_later_reads,
);
