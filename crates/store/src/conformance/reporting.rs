//! Reporting: node counters that add up per batch, a journey's statistics, and the gauges.

use waymark_core::EnrollmentStatus;

use super::support::{at, contact, email, enrollment, in_tx, live_journey, queue, track};
use crate::{DeliveryOutcome, Finished, StatsDeltas, Store};

fn stats_deltas_add_up_and_journey_stats_follow_the_document(store: &dyn Store) {
    live_journey(store, "j");
    let before = store.journey_stats("j").unwrap();
    assert_eq!(
        (before.first_activity_at, before.last_activity_at),
        (None, None)
    );
    let nodes: Vec<&str> = before.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(
        nodes,
        ["start", "a", "b"],
        "every node of the document, even without counts"
    );

    let mut first = StatsDeltas::default();
    first.node("j", "start").entered = 3;
    let a = first.node("j", "a");
    a.entered = 2;
    a.sent = 1;
    a.suppressed = 1;
    first.node("j", "x").exited = 1;
    first.node("other", "a").entered = 100;
    let mut second = StatsDeltas::default();
    let a = second.node("j", "a");
    a.entered = 1;
    a.completed = 1;
    a.converted = 2;
    a.failed = 1;
    in_tx(store, |tx| tx.add_stats(&first, at(10)));
    in_tx(store, |tx| tx.add_stats(&second, at(20)));

    let ann = contact(store, "ann");
    in_tx(store, |tx| {
        for (node, status) in [
            ("a", EnrollmentStatus::Active),
            ("a", EnrollmentStatus::Active),
            ("x", EnrollmentStatus::Active),
            ("b", EnrollmentStatus::Completed),
            ("b", EnrollmentStatus::Exited),
            ("b", EnrollmentStatus::Converted),
        ] {
            let mut e = enrollment("j", ann, node, None);
            e.status = status;
            tx.insert_enrollment(&e, at(0))?;
        }
        Ok(())
    });
    let stats = store.journey_stats("j").unwrap();
    // Per node: entered, waiting, completed, exited, converted, sent, failed, suppressed, opened.
    let seen: Vec<(&str, [i64; 9])> = stats
        .nodes
        .iter()
        .map(|n| {
            (
                n.node.as_str(),
                [
                    n.entered,
                    n.waiting,
                    n.completed,
                    n.exited,
                    n.converted,
                    n.sent,
                    n.failed,
                    n.suppressed,
                    n.opened,
                ],
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("start", [3, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("a", [3, 2, 1, 0, 2, 1, 1, 1, 0]),
            ("b", [0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("x", [0, 1, 0, 1, 0, 0, 0, 0, 0]),
        ],
        "document order, a node the document lacks last"
    );
    assert_eq!(
        (
            stats.entered,
            stats.active,
            stats.completed,
            stats.exited,
            stats.converted
        ),
        (6, 3, 1, 1, 1),
        "journey totals count enrollments"
    );
    assert_eq!(stats.status, crate::JourneyStatus::Live);
    assert_eq!(
        (stats.first_activity_at, stats.last_activity_at),
        (Some(at(10)), Some(at(20)))
    );
    let row = store.journey("j").unwrap();
    assert_eq!(
        (row.first_activity_at, row.last_activity_at),
        (Some(at(10)), Some(at(20)))
    );
    assert!(matches!(
        store.journey_stats("nope"),
        Err(crate::StoreError::NotFound(_))
    ));
}

fn gauges_count_timers_active_enrollments_pending_events_and_queued_messages(store: &dyn Store) {
    let empty = store.gauges().unwrap();
    assert_eq!(
        (
            empty.timers_waiting,
            empty.enrollments_active,
            empty.events_pending,
            empty.messages_queued
        ),
        (0, 0, 0, 0)
    );
    let ann = contact(store, "ann");
    in_tx(store, |tx| {
        tx.insert_enrollment(&enrollment("j", ann, "wait", Some(at(10))), at(0))?;
        tx.insert_enrollment(&enrollment("j", ann, "wait", Some(at(20))), at(0))?;
        tx.insert_enrollment(&enrollment("j", ann, "a", None), at(0))?;
        let mut done = enrollment("j", ann, "b", None);
        done.status = EnrollmentStatus::Completed;
        tx.insert_enrollment(&done, at(0))?;
        Ok(())
    });
    store
        .append_events(&[
            track("m1", "ann", "A", 1),
            track("m2", "ann", "B", 2),
            track("m3", "ann", "C", 3),
        ])
        .unwrap();
    let first = in_tx(store, |tx| tx.pending_events(i64::MAX, 1))[0].seq;
    in_tx(store, |tx| tx.set_processed_upto(first));
    let ids = queue(
        store,
        &[
            email("k1", ann, 0),
            email("k2", ann, 0),
            email("k3", ann, 0),
        ],
    );
    store
        .finish_messages(&[Finished {
            id: ids[0],
            outcome: DeliveryOutcome::Sent,
            at: at(1),
        }])
        .unwrap();
    let g = store.gauges().unwrap();
    assert_eq!(
        (
            g.timers_waiting,
            g.enrollments_active,
            g.events_pending,
            g.messages_queued
        ),
        (2, 3, 2, 2)
    );
    assert!(store.disk_bytes().unwrap() > 0);
}

conformance_tests!(
    stats_deltas_add_up_and_journey_stats_follow_the_document,
    gauges_count_timers_active_enrollments_pending_events_and_queued_messages,
);
