//! Reporting: node counters that add up per batch, a journey's statistics, and the gauges.

use waymark_core::EnrollmentStatus;

use waymark_core::journey::Revenue;
use waymark_core::report::{Counts, Reaction};

use super::support::{
    at, contact, conversion_of, email, enrollment, in_tx, live_journey, queue, track,
};
use crate::{DeliveryOutcome, Finished, NewConversion, RollupQuery, StatsDeltas, Store};

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
            let e = tx.insert_enrollment(&e, at(0))?;
            if status == EnrollmentStatus::Converted {
                tx.record_conversion(&conversion_of(&e, at(1)))?;
            }
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

/// The hourly roll-ups: steps, deliveries, machine and human engagement, unsubscriptions,
/// complaints, late bounces and conversions each count in the hour they happened (a late
/// bounce takes `delivered` back in the hour of the send), with reaction times; a conversion
/// counts once per enrollment.
fn rollups_count_each_activity_in_its_hour(store: &dyn Store) {
    live_journey(store, "j");
    // Minutes into the hours after a whole hour.
    let t = |hour: i64, minutes: i64| at(2_800 + hour * 3600 + minutes * 60);
    let ann = contact(store, "ann");
    let (one, other) = in_tx(store, |tx| {
        let one = tx.insert_enrollment(&enrollment("j", ann, "a", None), t(0, 0))?;
        let mut done = enrollment("j", ann, "b", None);
        done.status = waymark_core::EnrollmentStatus::Completed;
        done.key = Some("done".into());
        let other = tx.insert_enrollment(&done, t(0, 0))?;
        Ok((one, other))
    });
    let mut deltas = StatsDeltas::default();
    deltas.node("j", 1, "start").entered = 2;
    deltas.node("j", 1, "a").entered = 1;
    in_tx(store, |tx| tx.add_stats(&deltas, t(0, 1)));
    let mut m = email("m1", ann, 0);
    m.enrollment_id = Some(one.id);
    m.journey_id = Some("j".into());
    m.node = Some("a".into());
    let id = queue(store, &[m])[0];
    store
        .finish_messages(&[Finished {
            id,
            outcome: DeliveryOutcome::Sent,
            at: t(0, 10),
        }])
        .unwrap();
    // A privacy proxy opens it at once; the person opens and clicks in the next hour.
    in_tx(store, |tx| tx.mark_engagement(id, false, false, t(0, 10)));
    in_tx(store, |tx| tx.mark_engagement(id, false, true, t(1, 10)));
    in_tx(store, |tx| tx.mark_engagement(id, true, true, t(1, 20)));
    in_tx(store, |tx| tx.mark_engagement(id, true, true, t(1, 30)));
    assert!(store.mark_message_unsubscribed("m1", t(1, 40)).unwrap());
    assert!(!store.mark_message_unsubscribed("m1", t(1, 41)).unwrap());
    assert!(!store.mark_message_unsubscribed("nope", t(1, 41)).unwrap());
    let complained = in_tx(store, |tx| {
        tx.complain_sent_message(&[ann], "email", "m1@example.com", t(0, 0), t(2, 0))
    });
    assert_eq!(complained, Some(id));
    // The conversion: credited to the message sent last before it.
    let touch = in_tx(store, |tx| tx.last_touch(one.id, t(2, 30)));
    let touch = touch.expect("the message sent before");
    assert_eq!((touch.message_id, touch.node.as_str()), (id, "a"));
    assert_eq!(in_tx(store, |tx| tx.last_touch(one.id, t(0, 5))), None);
    let ended = in_tx(store, |tx| tx.ended_unconverted(ann, "j", t(0, 0)));
    assert_eq!(
        ended.iter().map(|(e, _)| e.id).collect::<Vec<_>>(),
        [other.id]
    );
    let conversion = |enrollment: i64, revenue: f64, currency: &str| NewConversion {
        enrollment_id: enrollment,
        contact_id: ann,
        journey_id: "j".into(),
        version: 1,
        node: "a".into(),
        last_touch: Some(touch.clone()),
        event_seq: 7,
        at: t(2, 30),
        revenue: Some(Revenue {
            amount: revenue,
            currency: currency.into(),
            counted: currency == "USD",
        }),
    };
    assert!(in_tx(store, |tx| tx
        .record_conversion(&conversion(one.id, 20.5, "USD"))));
    assert!(!in_tx(store, |tx| tx
        .record_conversion(&conversion(one.id, 99.0, "USD"))));
    assert!(in_tx(store, |tx| tx
        .record_conversion(&conversion(other.id, 5.0, "EUR"))));
    assert!(in_tx(store, |tx| tx.ended_unconverted(ann, "j", t(0, 0))).is_empty());
    // A bounce reported after the conversion: a bounced message is no touch.
    let bounced = in_tx(store, |tx| {
        tx.bounce_sent_message(&[ann], "email", "m1@example.com", t(0, 0), "late", t(2, 5))
    });
    assert_eq!(bounced, Some(id));
    assert_eq!(in_tx(store, |tx| tx.last_touch(one.id, t(2, 30))), None);

    let query = |node: Option<&str>, version: Option<i64>| RollupQuery {
        journey_id: "j".into(),
        from: t(0, 30),
        to: t(3, 0),
        version,
        node: node.map(Into::into),
    };
    let (rows, reactions) = store.journey_rollups(&query(Some("a"), None)).unwrap();
    let mut by_hour: Vec<(i64, Counts)> = rows
        .iter()
        .map(|r| {
            (
                (r.hour_at.as_second() - t(0, 0).as_second()) / 3600,
                r.counts,
            )
        })
        .collect();
    by_hour.sort_by_key(|(h, _)| *h);
    let hour0 = Counts {
        entered: 1,
        sent: 1,
        // Delivered, then taken back by the late bounce in the hour of the send.
        delivered: 0,
        opened: 1,
        ..Counts::default()
    };
    let hour1 = Counts {
        clicked: 1,
        human_opened: 1,
        human_clicked: 1,
        unsubscribed: 1,
        ..Counts::default()
    };
    let hour2 = Counts {
        bounced: 1,
        complained: 1,
        attributed: 2,
        revenue: 20.5,
        ..Counts::default()
    };
    assert_eq!(by_hour, [(0, hour0), (1, hour1), (2, hour2)]);
    let mut kinds: Vec<(Reaction, i64)> = reactions.iter().map(|r| (r.reaction, r.count)).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (Reaction::Open, 1),
            (Reaction::Click, 1),
            (Reaction::Conversion, 2)
        ],
        "the person's first open and click, and the conversions (the proxy's open is no reaction)"
    );
    let all = store.journey_rollups(&query(None, Some(1))).unwrap().0;
    assert!(
        all.iter()
            .any(|r| r.node == "start" && r.counts.entered == 2)
    );
    assert!(
        store
            .journey_rollups(&query(None, Some(2)))
            .unwrap()
            .0
            .is_empty()
    );
    let later = RollupQuery {
        from: t(3, 0),
        to: t(5, 0),
        ..query(None, None)
    };
    assert!(store.journey_rollups(&later).unwrap().0.is_empty());
}

/// A roll-up row as the test compares it: hour, version, node, deferred, outputs.
type Seen = (i64, i64, String, i64, Vec<(String, i64)>);

/// Who left each node by which output, and the sends deferred, count in the hour of the step,
/// per version; a node with only a deferred send still gets its row.
fn rollups_count_outputs_and_deferred_sends_in_their_hour(store: &dyn Store) {
    live_journey(store, "j");
    // A minute into the hours after a whole hour (as in the test above).
    let t = |hour: i64| at(2_800 + hour * 3600 + 60);
    let mut first = StatsDeltas::default();
    first.node("j", 1, "branch").entered = 3;
    first.left("j", 1, "branch", "yes");
    first.left("j", 1, "branch", "yes");
    first.left("j", 1, "branch", "no");
    first.deferred("j", 1, "mail");
    in_tx(store, |tx| tx.add_stats(&first, t(0)));
    let mut later = StatsDeltas::default();
    later.left("j", 1, "branch", "no");
    later.left("j", 2, "branch", "yes");
    later.deferred("j", 1, "mail");
    later.deferred("j", 1, "mail");
    in_tx(store, |tx| tx.add_stats(&later, t(1)));
    assert!(StatsDeltas::default().is_empty());
    assert!(!later.is_empty());

    let rows = |version: Option<i64>| {
        let (rows, _) = store
            .journey_rollups(&RollupQuery {
                journey_id: "j".into(),
                from: t(0),
                to: t(2),
                version,
                node: None,
            })
            .unwrap();
        let mut seen: Vec<Seen> = rows
            .into_iter()
            .map(|r| {
                (
                    (r.hour_at.as_second() - at(2_800).as_second()) / 3600,
                    r.version,
                    r.node,
                    r.counts.deferred,
                    r.outputs.into_iter().collect(),
                )
            })
            .collect();
        seen.sort();
        seen
    };
    let outputs = |list: &[(&str, i64)]| -> Vec<(String, i64)> {
        list.iter().map(|(o, n)| (o.to_string(), *n)).collect()
    };
    assert_eq!(
        rows(None),
        [
            (0, 1, "branch".into(), 0, outputs(&[("no", 1), ("yes", 2)])),
            (0, 1, "mail".into(), 1, outputs(&[])),
            (1, 1, "branch".into(), 0, outputs(&[("no", 1)])),
            (1, 1, "mail".into(), 2, outputs(&[])),
            (1, 2, "branch".into(), 0, outputs(&[("yes", 1)])),
        ]
    );
    assert_eq!(rows(Some(2)).len(), 1);
    let sums = store.rollup_sums(t(0), t(2)).unwrap();
    let mail = sums
        .iter()
        .find(|(j, n, _)| j == "j" && n == "mail")
        .unwrap();
    assert_eq!(mail.2.deferred, 3);
}

conformance_tests!(
    rollups_count_outputs_and_deferred_sends_in_their_hour,
    rollups_count_each_activity_in_its_hour,
    stats_deltas_add_up_and_journey_stats_follow_the_document,
    journey_stats_by_version_count_delivered_and_bounced_messages,
    gauges_count_timers_active_enrollments_pending_events_and_queued_messages,
);
