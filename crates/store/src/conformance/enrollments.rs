//! Enrollments: inserting and advancing them, the due timers the engine claims, the steps
//! they took.

use waymark_core::{EnrollmentStatus, StepLog};

use super::support::{at, contact, enrollment, in_tx, live_journey};
use crate::{JourneyStatus, Store};

fn an_inserted_enrollment_reads_back_with_its_id_and_every_field(store: &dyn Store) {
    let ann = contact(store, "ann");
    let mut wanted = enrollment("j", ann, "wait", Some(at(60)));
    wanted.key = Some("order-7".into());
    wanted.entered_seq = 12;
    wanted.consumed_seq = 14;
    wanted.visits = 3;
    wanted.version = 2;
    let (inserted, active) = in_tx(store, |tx| {
        let inserted = tx.insert_enrollment(&wanted, at(1))?;
        Ok((inserted, tx.active_enrollments(ann)?))
    });
    assert!(inserted.id > 0);
    assert_eq!(
        inserted,
        waymark_core::Enrollment {
            id: inserted.id,
            ..wanted.clone()
        }
    );
    assert_eq!(active, std::slice::from_ref(&inserted));
    let row = &store.contact(ann).unwrap().enrollments[0];
    assert_eq!(row.id, inserted.id);
    assert_eq!(row.key.as_deref(), Some("order-7"));
    assert_eq!(
        (row.version, row.node.as_str(), row.status.as_str()),
        (2, "wait", "active")
    );
    assert_eq!(
        (row.wake_at, row.entered_at, row.updated_at),
        (Some(at(60)), at(0), at(1))
    );
}

fn an_update_moves_the_enrollment_and_ending_it_makes_it_inactive(store: &dyn Store) {
    let ann = contact(store, "ann");
    let e = in_tx(store, |tx| {
        tx.insert_enrollment(&enrollment("j", ann, "a", Some(at(5))), at(0))
    });
    let mut moved = e.clone();
    moved.node = "b".into();
    moved.wake_at = None;
    moved.visits = 2;
    moved.consumed_seq = 9;
    let active = in_tx(store, |tx| {
        tx.update_enrollment(&moved, at(3))?;
        tx.active_enrollments(ann)
    });
    assert_eq!(active, [moved.clone()]);
    let mut ended = moved.clone();
    ended.status = EnrollmentStatus::Completed;
    let (active, prior) = in_tx(store, |tx| {
        tx.update_enrollment(&ended, at(4))?;
        Ok((tx.active_enrollments(ann)?, tx.prior_enrollments("j", ann)?))
    });
    assert!(active.is_empty());
    assert_eq!(prior.len(), 1);
    assert_eq!(prior[0].status, EnrollmentStatus::Completed);
    assert_eq!((prior[0].key.clone(), prior[0].entered_at), (None, at(0)));
    assert_eq!(store.contact(ann).unwrap().enrollments[0].updated_at, at(4));
}

fn prior_enrollments_are_the_contacts_in_that_journey_only(store: &dyn Store) {
    let (ann, bob) = (contact(store, "ann"), contact(store, "bob"));
    in_tx(store, |tx| {
        let mut first = enrollment("j", ann, "a", None);
        first.key = Some("k1".into());
        first.status = EnrollmentStatus::Exited;
        tx.insert_enrollment(&first, at(0))?;
        tx.insert_enrollment(&enrollment("j", ann, "a", None), at(0))?;
        tx.insert_enrollment(&enrollment("other", ann, "a", None), at(0))?;
        tx.insert_enrollment(&enrollment("j", bob, "a", None), at(0))?;
        Ok(())
    });
    let mut prior = in_tx(store, |tx| tx.prior_enrollments("j", ann));
    prior.sort_by_key(|p| p.key.clone());
    let seen: Vec<(Option<String>, EnrollmentStatus)> =
        prior.into_iter().map(|p| (p.key, p.status)).collect();
    assert_eq!(
        seen,
        [
            (None, EnrollmentStatus::Active),
            (Some("k1".into()), EnrollmentStatus::Exited)
        ]
    );
}

fn due_enrollments_are_claimed_earliest_first_and_only_when_due(store: &dyn Store) {
    live_journey(store, "j");
    let ann = contact(store, "ann");
    let ids = in_tx(store, |tx| {
        let mut ids = Vec::new();
        for wake in [Some(30), Some(10), None, Some(20), Some(10), Some(100)] {
            let e = enrollment("j", ann, "wait", wake.map(at));
            ids.push(tx.insert_enrollment(&e, at(0))?.id);
        }
        let mut done = enrollment("j", ann, "wait", Some(at(1)));
        done.status = EnrollmentStatus::Completed;
        tx.insert_enrollment(&done, at(0))?;
        Ok(ids)
    });
    let claimed = |now, limit| -> Vec<i64> {
        in_tx(store, |tx| tx.claim_due_enrollments(at(now), limit))
            .iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(claimed(5, 10), Vec::<i64>::new());
    assert_eq!(
        claimed(30, 10),
        [ids[1], ids[4], ids[3], ids[0]],
        "by wake_at, then id"
    );
    assert_eq!(claimed(30, 2), [ids[1], ids[4]]);
    assert_eq!(store.next_wake_at().unwrap(), Some(at(10)));
}

fn enrollments_of_a_journey_that_is_not_live_are_not_due(store: &dyn Store) {
    live_journey(store, "j");
    let ann = contact(store, "ann");
    in_tx(store, |tx| {
        tx.insert_enrollment(&enrollment("j", ann, "wait", Some(at(10))), at(0))?;
        tx.insert_enrollment(
            &enrollment("no-such-journey", ann, "wait", Some(at(5))),
            at(0),
        )
    });
    store
        .set_journey_status("j", JourneyStatus::Paused, at(1))
        .unwrap();
    assert!(in_tx(store, |tx| tx.claim_due_enrollments(at(100), 10)).is_empty());
    assert_eq!(store.next_wake_at().unwrap(), None);
    store
        .set_journey_status("j", JourneyStatus::Live, at(2))
        .unwrap();
    assert_eq!(
        in_tx(store, |tx| tx.claim_due_enrollments(at(100), 10)).len(),
        1
    );
    assert_eq!(store.next_wake_at().unwrap(), Some(at(10)));
}

fn journey_enrollments_pages_the_active_ones_by_id(store: &dyn Store) {
    let ann = contact(store, "ann");
    let ids = in_tx(store, |tx| {
        let mut ids = Vec::new();
        for node in ["a", "b", "c", "d"] {
            ids.push(
                tx.insert_enrollment(&enrollment("j", ann, node, None), at(0))?
                    .id,
            );
        }
        let mut ended = enrollment("j", ann, "e", None);
        ended.status = EnrollmentStatus::Exited;
        tx.insert_enrollment(&ended, at(0))?;
        tx.insert_enrollment(&enrollment("other", ann, "a", None), at(0))?;
        Ok(ids)
    });
    let page = |after, limit| -> Vec<i64> {
        in_tx(store, |tx| tx.journey_enrollments("j", limit, after))
            .iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(page(0, 3), ids[..3]);
    assert_eq!(page(ids[2], 3), ids[3..]);
    assert_eq!(page(ids[3], 3), Vec::<i64>::new());
}

fn recorded_steps_give_visited_nodes_and_left_outputs_in_order(store: &dyn Store) {
    let ann = contact(store, "ann");
    let (visited, outputs, other) = in_tx(store, |tx| {
        let e = tx.insert_enrollment(&enrollment("j", ann, "start", None), at(0))?;
        let other = tx.insert_enrollment(&enrollment("j", ann, "start", None), at(0))?;
        tx.record_steps(
            e.id,
            &[
                StepLog::Entered {
                    node: "start".into(),
                },
                StepLog::Left {
                    node: "start".into(),
                    output: "next".into(),
                },
                StepLog::Entered {
                    node: "split".into(),
                },
                StepLog::Left {
                    node: "split".into(),
                    output: "yes".into(),
                },
                StepLog::Entered {
                    node: "start".into(),
                },
                StepLog::Waiting {
                    node: "start".into(),
                    until: at(60),
                },
            ],
            at(1),
        )?;
        tx.record_steps(
            e.id,
            &[
                StepLog::Skipped {
                    node: "mail".into(),
                    reason: "outside hours".into(),
                },
                StepLog::Left {
                    node: "start".into(),
                    output: "again".into(),
                },
                StepLog::Ended {
                    node: "end".into(),
                    status: EnrollmentStatus::Completed,
                    reason: "done".into(),
                },
            ],
            at(2),
        )?;
        let mut visited = tx.visited_nodes(e.id)?;
        visited.sort();
        Ok((visited, tx.left_outputs(e.id)?, tx.visited_nodes(other.id)?))
    });
    assert_eq!(visited, ["split", "start"], "each node once");
    let outputs: Vec<(&str, &str)> = outputs
        .iter()
        .map(|(n, o)| (n.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        outputs,
        [("start", "next"), ("split", "yes"), ("start", "again")]
    );
    assert!(other.is_empty());
}

conformance_tests!(
    an_inserted_enrollment_reads_back_with_its_id_and_every_field,
    an_update_moves_the_enrollment_and_ending_it_makes_it_inactive,
    prior_enrollments_are_the_contacts_in_that_journey_only,
    due_enrollments_are_claimed_earliest_first_and_only_when_due,
    enrollments_of_a_journey_that_is_not_live_are_not_due,
    journey_enrollments_pages_the_active_ones_by_id,
    recorded_steps_give_visited_nodes_and_left_outputs_in_order,
);
