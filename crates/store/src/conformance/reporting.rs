//! Reporting: node counters that add up per batch, a journey's statistics, and the gauges.

use waymark_core::EnrollmentStatus;

use super::support::{at, contact, email, enrollment, in_tx, live_journey, queue, track};
use crate::{DeliveryOutcome, Finished, StatsDeltas, Store};

fn stats_deltas_add_up_and_journey_stats_follow_the_document(store: &dyn Store) {
    live_journey(store, "j");
    let before = store.journey_stats("j", None).unwrap();
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
    first.node("j", 1, "start").entered = 3;
    let a = first.node("j", 1, "a");
    a.entered = 2;
    a.sent = 1;
    a.suppressed = 1;
    first.node("j", 1, "x").exited = 1;
    first.node("other", 1, "a").entered = 100;
    let mut second = StatsDeltas::default();
    let a = second.node("j", 1, "a");
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
    let stats = store.journey_stats("j", None).unwrap();
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
        store.journey_stats("nope", None),
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

/// Statistics per journey version, and what becomes of a message counted: sent and delivered,
/// bounced at once (failed too), bounced after it was sent (no longer delivered); the totals
/// of the whole journey.
fn journey_stats_by_version_count_delivered_and_bounced_messages(store: &dyn Store) {
    live_journey(store, "j");
    // A second version (the same nodes, another name).
    let mut second = store.journey_version("j", 1).unwrap().document;
    second["name"] = "j, again".into();
    store.publish_journey("j", &second, &[], at(1)).unwrap();
    let ann = contact(store, "ann");
    let (one, two) = in_tx(store, |tx| {
        let one = tx.insert_enrollment(&enrollment("j", ann, "a", None), at(0))?;
        let mut e = enrollment("j", ann, "a", None);
        e.version = 2;
        e.key = Some("second".into());
        let two = tx.insert_enrollment(&e, at(0))?;
        Ok((one.id, two.id))
    });
    let of = |key: &str, enrollment: i64| {
        let mut m = email(key, ann, 0);
        m.enrollment_id = Some(enrollment);
        m.journey_id = Some("j".into());
        m.node = Some("a".into());
        m
    };
    let ids = queue(
        store,
        &[
            of("v1-sent", one),
            of("v1-later", one),
            of("v1-refused", one),
            of("v2-sent", two),
        ],
    );
    let outcomes = [
        DeliveryOutcome::Sent,
        DeliveryOutcome::Sent,
        DeliveryOutcome::Bounced {
            error: "550 no such user".into(),
            hard_bounce: true,
        },
        DeliveryOutcome::Sent,
    ];
    let finished: Vec<Finished> = ids
        .iter()
        .zip(outcomes)
        .map(|(&id, outcome)| Finished {
            id,
            outcome,
            at: at(2),
        })
        .collect();
    store.finish_messages(&finished).unwrap();
    // A provider reports later that `v1-later` bounced: the last message sent to the address.
    let bounced = in_tx(store, |tx| {
        tx.bounce_sent_message(
            &[ann],
            "email",
            "v1-later@example.com",
            at(0),
            "bounced",
            at(3),
        )
    });
    assert_eq!(bounced, Some(ids[1]));
    let none = in_tx(store, |tx| {
        tx.bounce_sent_message(
            &[ann],
            "email",
            "v1-later@example.com",
            at(0),
            "again",
            at(4),
        )
    });
    assert_eq!(none, None, "a message bounces once");
    let too_old = in_tx(store, |tx| {
        tx.bounce_sent_message(&[ann], "email", "v2-sent@example.com", at(5), "late", at(5))
    });
    assert_eq!(too_old, None, "only messages sent since `since`");
    let later = store.message_by_key("v1-later").unwrap().unwrap();
    assert_eq!(later.status, "bounced");
    assert_eq!(later.error.as_deref(), Some("bounced"));

    // sent, delivered, bounced, failed of node `a`, and the journey's totals.
    let counts = |version: Option<i64>| {
        let s = store.journey_stats("j", version).unwrap();
        let a = s.nodes.iter().find(|n| n.node == "a").unwrap().clone();
        (
            s.version,
            s.entered,
            [a.sent, a.delivered, a.bounced, a.failed],
            [s.sent, s.delivered, s.bounced, s.failed],
        )
    };
    assert_eq!(counts(Some(1)), (Some(1), 1, [2, 1, 2, 1], [2, 1, 2, 1]));
    assert_eq!(counts(Some(2)), (Some(2), 1, [1, 1, 0, 0], [1, 1, 0, 0]));
    let all = counts(None);
    assert_eq!((all.2, all.3), ([3, 2, 2, 1], [3, 2, 2, 1]));
    assert!(matches!(
        store.journey_stats("j", Some(3)),
        Err(crate::StoreError::NotFound(_))
    ));
}

conformance_tests!(
    stats_deltas_add_up_and_journey_stats_follow_the_document,
    journey_stats_by_version_count_delivered_and_bounced_messages,
    gauges_count_timers_active_enrollments_pending_events_and_queued_messages,
);
