//! Timers other than an enrollment's own: time-based triggers, segment checks and score
//! expiries, each claimed once when due, and `next_wake_at` over all of them.

use super::support::{at, contact, enrollment, in_tx, live_journey};
use crate::Store;

fn nothing_scheduled_means_no_wake_up(store: &dyn Store) {
    assert_eq!(store.next_wake_at().unwrap(), None);
    let claimed = in_tx(store, |tx| {
        Ok((
            tx.claim_due_triggers(at(1_000_000), 10)?,
            tx.claim_due_segment_checks(at(1_000_000), 10)?,
            tx.claim_due_score_expiries(at(1_000_000), 10)?,
        ))
    });
    assert!(claimed.0.is_empty() && claimed.1.is_empty() && claimed.2.is_empty());
}

fn triggers_are_claimed_once_in_due_order_and_can_be_moved_or_removed(store: &dyn Store) {
    in_tx(store, |tx| {
        tx.set_trigger_due("j", "daily", 0, Some(at(30)))?;
        tx.set_trigger_due("j", "birthday", 7, Some(at(10)))?;
        tx.set_trigger_due("k", "birthday", 7, Some(at(10)))?;
        tx.set_trigger_due("j", "birthday", 8, Some(at(50)))?;
        tx.set_trigger_due("j", "birthday", 9, Some(at(5)))?;
        // Moved later, then removed.
        tx.set_trigger_due("j", "birthday", 8, Some(at(20)))?;
        tx.set_trigger_due("j", "birthday", 9, None)
    });
    assert_eq!(store.next_wake_at().unwrap(), Some(at(10)));
    let first = in_tx(store, |tx| tx.claim_due_triggers(at(25), 2));
    assert_eq!(
        first,
        [
            ("j".to_string(), "birthday".to_string(), 7, at(10)),
            ("k".to_string(), "birthday".to_string(), 7, at(10)),
        ],
        "by due time, then journey"
    );
    let rest = in_tx(store, |tx| tx.claim_due_triggers(at(25), 10));
    assert_eq!(rest, [("j".to_string(), "birthday".to_string(), 8, at(20))]);
    assert!(
        in_tx(store, |tx| tx.claim_due_triggers(at(25), 10)).is_empty(),
        "claimed once"
    );
    assert_eq!(store.next_wake_at().unwrap(), Some(at(30)));
}

fn clearing_a_journeys_triggers_leaves_other_journeys_alone(store: &dyn Store) {
    in_tx(store, |tx| {
        tx.set_trigger_due("j", "daily", 0, Some(at(10)))?;
        tx.set_trigger_due("j", "birthday", 3, Some(at(10)))?;
        tx.set_trigger_due("k", "daily", 0, Some(at(20)))?;
        tx.clear_journey_triggers("j")
    });
    let claimed = in_tx(store, |tx| tx.claim_due_triggers(at(100), 10));
    assert_eq!(claimed, [("k".to_string(), "daily".to_string(), 0, at(20))]);
}

fn score_expiries_are_claimed_once_earliest_first(store: &dyn Store) {
    let (ann, bob) = (contact(store, "ann"), contact(store, "bob"));
    in_tx(store, |tx| {
        tx.add_score_expiry(ann, "score", 5, at(30))?;
        tx.add_score_expiry(bob, "score", 2, at(10))?;
        // The same contact and trait twice: two expiries.
        tx.add_score_expiry(ann, "score", 3, at(20))?;
        tx.add_score_expiry(ann, "engagement", 1, at(90))
    });
    assert_eq!(store.next_wake_at().unwrap(), Some(at(10)));
    let claimed = in_tx(store, |tx| tx.claim_due_score_expiries(at(30), 2));
    assert_eq!(
        claimed,
        [(bob, "score".to_string(), 2), (ann, "score".to_string(), 3)]
    );
    let claimed = in_tx(store, |tx| tx.claim_due_score_expiries(at(30), 10));
    assert_eq!(claimed, [(ann, "score".to_string(), 5)]);
    assert!(in_tx(store, |tx| tx.claim_due_score_expiries(at(30), 10)).is_empty());
    assert_eq!(store.next_wake_at().unwrap(), Some(at(90)));
}

fn segment_checks_are_claimed_once_in_due_order(store: &dyn Store) {
    let (ann, bob) = (contact(store, "ann"), contact(store, "bob"));
    in_tx(store, |tx| {
        tx.set_segment_check("vip", bob, Some(at(10)))?;
        tx.set_segment_check("active", ann, Some(at(10)))?;
        tx.set_segment_check("vip", ann, Some(at(40)))?;
        tx.set_segment_check("churn", ann, Some(at(1)))?;
        // Moved, then removed.
        tx.set_segment_check("vip", ann, Some(at(15)))?;
        tx.set_segment_check("churn", ann, None)
    });
    assert_eq!(store.next_wake_at().unwrap(), Some(at(10)));
    let claimed = in_tx(store, |tx| tx.claim_due_segment_checks(at(20), 10));
    assert_eq!(
        claimed,
        [
            ("active".to_string(), ann),
            ("vip".to_string(), bob),
            ("vip".to_string(), ann)
        ],
        "by due time, then segment"
    );
    assert!(in_tx(store, |tx| tx.claim_due_segment_checks(at(20), 10)).is_empty());
    assert_eq!(store.next_wake_at().unwrap(), None);
}

fn the_wake_up_is_the_earliest_of_every_kind_of_timer(store: &dyn Store) {
    live_journey(store, "j");
    let ann = contact(store, "ann");
    in_tx(store, |tx| {
        tx.insert_enrollment(&enrollment("j", ann, "wait", Some(at(40))), at(0))?;
        tx.set_trigger_due("j", "daily", 0, Some(at(30)))?;
        tx.set_segment_check("vip", ann, Some(at(20)))?;
        tx.add_score_expiry(ann, "score", 1, at(10))
    });
    let mut expected = [10, 20, 30, 40].into_iter();
    loop {
        let next = store.next_wake_at().unwrap();
        assert_eq!(next, expected.next().map(at));
        let Some(now) = next else { break };
        in_tx(store, |tx| {
            tx.claim_due_score_expiries(now, 10)?;
            tx.claim_due_segment_checks(now, 10)?;
            tx.claim_due_triggers(now, 10)?;
            for mut e in tx.claim_due_enrollments(now, 10)? {
                e.wake_at = None;
                tx.update_enrollment(&e, now)?;
            }
            Ok(())
        });
    }
}

conformance_tests!(
    nothing_scheduled_means_no_wake_up,
    triggers_are_claimed_once_in_due_order_and_can_be_moved_or_removed,
    clearing_a_journeys_triggers_leaves_other_journeys_alone,
    score_expiries_are_claimed_once_earliest_first,
    segment_checks_are_claimed_once_in_due_order,
    the_wake_up_is_the_earliest_of_every_kind_of_timer,
);
