//! Broadcasts: drafts, status changes with their messages, the audience in pages, waiting
//! recipients and the engine's claim.

use serde_json::json;
use waymark_core::broadcast::{Audience, VariantResult};

use super::support::{at, contact, email, in_tx, queue};
use waymark_core::journey::Revenue;
use waymark_core::report::Counts;

use crate::{
    BroadcastChange, BroadcastStatus, DeliveryOutcome, Finished, MessageStatus,
    NewBroadcastConversion, Store, StoreError,
};

fn only_a_draft_is_changed_or_deleted(store: &dyn Store) {
    let doc = json!({"name": "News"});
    let created = store.create_broadcast("news", &doc, at(1)).unwrap();
    assert_eq!(created.status, BroadcastStatus::Draft);
    assert_eq!(created.document, doc);
    assert!(matches!(
        store.create_broadcast("news", &doc, at(2)),
        Err(StoreError::Conflict(_))
    ));
    let edited = store
        .update_broadcast("news", &json!({"name": "News 2"}), at(3))
        .unwrap();
    assert_eq!(
        (edited.document["name"].as_str(), edited.updated_at),
        (Some("News 2"), at(3))
    );
    store
        .change_broadcast(
            "news",
            BroadcastChange::Schedule {
                send_at: at(10),
                audience_size: 7,
            },
            at(4),
        )
        .unwrap();
    let refused = store.update_broadcast("news", &doc, at(5)).unwrap_err();
    assert!(
        matches!(&refused, StoreError::Conflict(m) if m.contains("scheduled")),
        "{refused}"
    );
    assert!(matches!(
        store.delete_broadcast("news"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.change_broadcast("news", BroadcastChange::Resume, at(5)),
        Err(StoreError::Conflict(_))
    ));
    store.create_broadcast("old", &doc, at(0)).unwrap();
    store.delete_broadcast("old").unwrap();
    assert!(matches!(
        store.broadcast("old"),
        Err(StoreError::NotFound(_))
    ));
    let listed: Vec<_> = store
        .broadcasts()
        .unwrap()
        .into_iter()
        .map(|b| (b.id, b.status, b.audience_size, b.next_run_at))
        .collect();
    assert_eq!(
        listed,
        [(
            "news".to_string(),
            BroadcastStatus::Scheduled,
            Some(7),
            Some(at(10))
        )]
    );
}

fn the_audience_comes_in_id_order_without_the_excluded(store: &dyn Store) {
    let ids: Vec<i64> = (0..6).map(|i| contact(store, &format!("c{i}"))).collect();
    in_tx(store, |tx| {
        for id in &ids {
            tx.set_segment_member("fans", *id, true, at(1))?;
        }
        tx.add_to_list(ids[1], "unsubscribed-elsewhere", at(1))?;
        tx.set_segment_member("churned", ids[4], true, at(1))?;
        tx.add_to_list(ids[0], "vip", at(1))?;
        tx.add_to_list(ids[4], "vip", at(1))?;
        Ok(())
    });
    let fans = Audience::Segment("fans".into());
    let exclude = [
        Audience::List("unsubscribed-elsewhere".into()),
        Audience::Segment("churned".into()),
    ];
    let (first, rest) = in_tx(store, |tx| {
        let first = tx.audience_page(&fans, &exclude, 0, 2)?;
        let rest = tx.audience_page(&fans, &exclude, first[1], 10)?;
        Ok((first, rest))
    });
    assert_eq!(first, [ids[0], ids[2]]);
    assert_eq!(rest, [ids[3], ids[5]]);
    assert_eq!(store.count_audience(&fans, &exclude).unwrap(), 4);
    let vip = Audience::List("vip".into());
    let vips = in_tx(store, |tx| tx.audience_page(&vip, &exclude, 0, 10));
    assert_eq!(vips, [ids[0]]);
    assert_eq!(store.count_audience(&vip, &[]).unwrap(), 2);
    let nobody = Audience::List("no-such-list".into());
    assert_eq!(store.count_audience(&nobody, &[]).unwrap(), 0);
}

fn a_due_broadcast_is_claimed_and_its_progress_saved(store: &dyn Store) {
    store.create_broadcast("news", &json!({}), at(0)).unwrap();
    assert!(
        in_tx(store, |tx| tx.claim_due_broadcast(at(100))).is_none(),
        "a draft"
    );
    store
        .change_broadcast(
            "news",
            BroadcastChange::Schedule {
                send_at: at(10),
                audience_size: 3,
            },
            at(1),
        )
        .unwrap();
    assert!(in_tx(store, |tx| tx.claim_due_broadcast(at(9))).is_none());
    let claimed = in_tx(store, |tx| tx.claim_due_broadcast(at(10))).unwrap();
    assert_eq!(claimed.id, "news");
    let mut progress = claimed.progress();
    progress.status = BroadcastStatus::Sending;
    progress.template_version = Some(2);
    progress.processed = 2;
    progress.released = 1;
    progress.cursor = 42;
    progress.waiting = 1;
    progress.started_at = Some(at(10));
    progress.rate_since = Some(at(10));
    progress.next_run_at = Some(at(20));
    progress.winner = Some(crate::Winner {
        template: "b".into(),
        at: at(10),
        reason: "best rate".into(),
    });
    in_tx(store, |tx| {
        tx.defer_broadcast_recipients("news", &[(42, at(30)), (41, at(20))])?;
        tx.save_broadcast_progress("news", &progress, at(11))
    });
    let saved = store.broadcast("news").unwrap();
    assert_eq!(saved.progress(), progress);
    assert_eq!(saved.updated_at, at(11));
    assert_eq!(store.next_wake_at().unwrap(), Some(at(20)));
    let (early, due, next, later) = in_tx(store, |tx| {
        Ok((
            tx.take_due_broadcast_recipients("news", at(19), 10)?,
            tx.take_due_broadcast_recipients("news", at(25), 10)?,
            tx.next_broadcast_recipient_due("news")?,
            tx.take_due_broadcast_recipients("news", at(30), 10)?,
        ))
    });
    assert_eq!(
        (early, due, next, later),
        (vec![], vec![41], Some(at(30)), vec![42])
    );
}

fn pause_resume_and_cancel_move_the_broadcasts_messages(store: &dyn Store) {
    let ann = contact(store, "ann");
    store.create_broadcast("news", &json!({}), at(0)).unwrap();
    store
        .change_broadcast(
            "news",
            BroadcastChange::Schedule {
                send_at: at(1),
                audience_size: 3,
            },
            at(0),
        )
        .unwrap();
    let claimed = in_tx(store, |tx| tx.claim_due_broadcast(at(1))).unwrap();
    let mut progress = claimed.progress();
    progress.status = BroadcastStatus::Sending;
    progress.started_at = Some(at(1));
    progress.released = 3;
    in_tx(store, |tx| {
        tx.save_broadcast_progress("news", &progress, at(1))
    });
    let of_broadcast = |key: &str| crate::NewMessage {
        broadcast_id: Some("news".into()),
        unsubscribe_url: None,
        ..email(key, ann, 1)
    };
    let ids = queue(
        store,
        &[
            of_broadcast("a"),
            of_broadcast("b"),
            of_broadcast("c"),
            email("other", ann, 1),
        ],
    );
    // `a` left before the pause; `b` was on its way when it came.
    store
        .finish_messages(&[Finished {
            id: ids[0],
            outcome: DeliveryOutcome::Sent,
            at: at(2),
        }])
        .unwrap();
    let paused = store
        .change_broadcast("news", BroadcastChange::Pause, at(3))
        .unwrap();
    assert_eq!(
        (paused.status, paused.next_run_at),
        (BroadcastStatus::Paused, None)
    );
    let counts = |store: &dyn Store| store.broadcast_message_counts("news").unwrap();
    let pairs = |v: &[(&str, i64)]| {
        v.iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(store), pairs(&[("paused", 2), ("sent", 1)]));
    store
        .finish_messages(&[Finished {
            id: ids[1],
            outcome: DeliveryOutcome::Sent,
            at: at(4),
        }])
        .unwrap();
    assert_eq!(
        counts(store),
        pairs(&[("paused", 1), ("sent", 2)]),
        "a delivery that was on its way is recorded, never offered again"
    );
    let resumed = store
        .change_broadcast("news", BroadcastChange::Resume, at(5))
        .unwrap();
    assert_eq!(
        (
            resumed.status,
            resumed.next_run_at,
            resumed.rate_since,
            resumed.rate_base
        ),
        (BroadcastStatus::Sending, Some(at(5)), Some(at(5)), 3)
    );
    assert_eq!(counts(store), pairs(&[("queued", 1), ("sent", 2)]));
    in_tx(store, |tx| {
        tx.defer_broadcast_recipients("news", &[(ann, at(50))])
    });
    let cancelled = store
        .change_broadcast("news", BroadcastChange::Cancel, at(6))
        .unwrap();
    assert_eq!(
        (cancelled.status, cancelled.finished_at, cancelled.waiting),
        (BroadcastStatus::Cancelled, Some(at(6)), 0)
    );
    assert_eq!(counts(store), pairs(&[("cancelled", 1), ("sent", 2)]));
    assert!(
        in_tx(store, |tx| tx.take_due_broadcast_recipients(
            "news",
            at(99),
            9
        ))
        .is_empty()
    );
    let other = store.message_by_key("other").unwrap().unwrap();
    assert_eq!(other.status, "queued", "other messages are left alone");
    assert!(matches!(
        store.change_broadcast("news", BroadcastChange::Cancel, at(7)),
        Err(StoreError::Conflict(_))
    ));
}

fn a_tests_results_are_counted_per_template(store: &dyn Store) {
    let ann = contact(store, "ann");
    let message = |key: &str, template: &str| crate::NewMessage {
        broadcast_id: Some("news".into()),
        unsubscribe_url: None,
        template: template.into(),
        ..email(key, ann, 1)
    };
    let ids = queue(
        store,
        &[
            message("a1", "a"),
            message("a2", "a"),
            message("b1", "b"),
            email("other", ann, 1),
        ],
    );
    let sent = |id: i64| Finished {
        id,
        outcome: DeliveryOutcome::Sent,
        at: at(2),
    };
    store
        .finish_messages(&[sent(ids[0]), sent(ids[1]), sent(ids[2]), sent(ids[3])])
        .unwrap();
    in_tx(store, |tx| {
        tx.mark_engagement(ids[1], true, true, at(3))?;
        tx.mark_engagement(ids[2], false, true, at(3))
    });
    let expected = vec![
        VariantResult {
            template: "a".into(),
            sent: 2,
            opened: 1,
            clicked: 1,
            converted: 0,
        },
        VariantResult {
            template: "b".into(),
            sent: 1,
            opened: 1,
            clicked: 0,
            converted: 0,
        },
    ];
    assert_eq!(store.broadcast_results("news", None).unwrap(), expected);
    assert!(
        store
            .broadcast_results("news", Some(at(1)))
            .unwrap()
            .is_empty(),
        "written at 1: none before it"
    );
    assert_eq!(
        store.broadcast_results("news", Some(at(2))).unwrap(),
        expected
    );
    assert_eq!(
        in_tx(store, |tx| tx.broadcast_variant_counts("news")),
        expected
    );
}

fn a_broadcasts_rollups_count_each_message_in_its_hour_and_each_recipient_converts_once(
    store: &dyn Store,
) {
    let ann = contact(store, "ann");
    let bob = contact(store, "bob");
    let cy = contact(store, "cy");
    let message = |c: i64, template: &str, status: MessageStatus| crate::NewMessage {
        idempotency_key: crate::broadcast_message_key("sale", c),
        broadcast_id: Some("sale".into()),
        template: template.into(),
        status,
        ..email("x", c, 0)
    };
    let ids = queue(
        store,
        &[
            message(ann, "a", MessageStatus::Queued),
            message(bob, "b", MessageStatus::Queued),
            message(cy, "a", MessageStatus::Suppressed),
            email("journey-less", ann, 0),
        ],
    );
    store
        .finish_messages(&[
            Finished {
                id: ids[0],
                outcome: DeliveryOutcome::Sent,
                at: at(10),
            },
            Finished {
                id: ids[1],
                outcome: DeliveryOutcome::Bounced {
                    error: "550 no such user".into(),
                    hard_bounce: false,
                },
                at: at(20),
            },
            Finished {
                id: ids[3],
                outcome: DeliveryOutcome::Sent,
                at: at(20),
            },
        ])
        .unwrap();
    // An hour later: a person's click (an open too), twice.
    in_tx(store, |tx| {
        tx.mark_engagement(ids[0], true, true, at(4000))?;
        tx.mark_engagement(ids[0], true, true, at(4001))
    });
    let conversion = |contact_id: i64, secs: i64, window_h: i64| NewBroadcastConversion {
        broadcast_id: "sale".into(),
        contact_id,
        event_seq: 1,
        at: at(secs),
        window: jiff::SignedDuration::from_hours(window_h),
        revenue: Some(Revenue {
            amount: 12.5,
            currency: "USD".into(),
            counted: true,
        }),
    };
    let converted = in_tx(store, |tx| {
        Ok([
            // Past a 1-hour window.
            tx.record_broadcast_conversion(&conversion(ann, 5000, 1))?,
            // Within 3 days, then again (once per recipient).
            tx.record_broadcast_conversion(&conversion(ann, 5000, 72))?,
            tx.record_broadcast_conversion(&conversion(ann, 5100, 72))?,
            // Before the message was sent.
            tx.record_broadcast_conversion(&conversion(ann, 5, 72))?,
            // Bob's message never arrived; Cy's was suppressed; nobody else got one.
            tx.record_broadcast_conversion(&conversion(bob, 5000, 72))?,
            tx.record_broadcast_conversion(&conversion(cy, 5000, 72))?,
            tx.record_broadcast_conversion(&NewBroadcastConversion {
                broadcast_id: "other".into(),
                ..conversion(ann, 5000, 72)
            })?,
        ])
    });
    assert_eq!(converted, [false, true, false, false, false, false, false]);
    let rows = store.broadcast_rollups("sale", at(0), at(100_000)).unwrap();
    let hour = |secs: i64| crate::concerns::rollup_hour(at(secs));
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.hour_at.as_millisecond(), r.template.as_str(), r.counts))
        .collect();
    let counts = |f: fn(&mut Counts)| {
        let mut c = Counts::default();
        f(&mut c);
        c
    };
    assert_eq!(
        got,
        vec![
            (
                hour(0),
                "a",
                counts(|c| {
                    c.entered = 2;
                    c.suppressed = 1;
                    c.sent = 1;
                    c.delivered = 1;
                })
            ),
            (
                hour(0),
                "b",
                counts(|c| {
                    c.entered = 1;
                    c.failed = 1;
                    c.bounced = 1;
                })
            ),
            (
                hour(4000),
                "a",
                counts(|c| {
                    c.opened = 1;
                    c.clicked = 1;
                    c.human_opened = 1;
                    c.human_clicked = 1;
                    c.converted = 1;
                    c.attributed = 1;
                    c.revenue = 12.5;
                })
            ),
        ]
    );
    assert!(hour(4000) > hour(0));
    // A range reads its hours only.
    let later = store
        .broadcast_rollups("sale", at(4000), at(100_000))
        .unwrap();
    assert_eq!(later.len(), 1);
    let results = store.broadcast_results("sale", None).unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| (r.template.as_str(), r.converted))
            .collect::<Vec<_>>(),
        [("a", 1), ("b", 0)]
    );
    // A late bounce takes `delivered` back in the hour of the send.
    in_tx(store, |tx| {
        tx.bounce_sent_message(
            &[ann],
            "email",
            "x@example.com",
            at(0),
            "550 gone",
            at(8000),
        )
    });
    let rows = store.broadcast_rollups("sale", at(0), at(100_000)).unwrap();
    let a0 = rows
        .iter()
        .find(|r| r.template == "a" && r.hour_at == rows[0].hour_at)
        .unwrap();
    assert_eq!(a0.counts.delivered, 0, "{rows:?}");
    let bounced: i64 = rows.iter().map(|r| r.counts.bounced).sum();
    assert_eq!(bounced, 2, "{rows:?}");
    // A failure requeued is a failure no more.
    let dan = contact(store, "dan");
    let ids = queue(store, &[message(dan, "a", MessageStatus::Queued)]);
    let failed = |store: &dyn Store| -> i64 {
        store
            .broadcast_rollups("sale", at(0), at(100_000))
            .unwrap()
            .iter()
            .map(|r| r.counts.failed)
            .sum()
    };
    store
        .finish_messages(&[Finished {
            id: ids[0],
            outcome: DeliveryOutcome::Failed {
                error: "dns lookup failed".into(),
            },
            at: at(30),
        }])
        .unwrap();
    assert_eq!(failed(store), 2, "bob's bounce and dan's failure");
    let filter = crate::RequeueFilter {
        error_contains: Some("dns".into()),
        ..Default::default()
    };
    assert_eq!(store.requeue_messages(&filter, at(40)).unwrap(), 1);
    assert_eq!(failed(store), 1);
}

conformance_tests!(
    a_broadcasts_rollups_count_each_message_in_its_hour_and_each_recipient_converts_once,
    a_tests_results_are_counted_per_template,
    only_a_draft_is_changed_or_deleted,
    the_audience_comes_in_id_order_without_the_excluded,
    a_due_broadcast_is_claimed_and_its_progress_saved,
    pause_resume_and_cancel_move_the_broadcasts_messages,
);
