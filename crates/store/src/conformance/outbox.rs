//! The outbox: queuing messages once per idempotency key, the dispatcher's due work and the
//! outcomes it records, requeues, queue levels, and opens and clicks.

use waymark_core::filter::Engagement;
use waymark_core::journey::Channel;

use super::support::{
    at, contact, email, in_tx, journey_email, live_journey, node_stats, queue, template,
};
use crate::{
    DeliveryOutcome, DueQuery, Finished, MessageQuery, MessageRow, MessageStatus, NewMessage,
    Priority, QueueLevel, RequeueFilter, Store,
};

fn by_key(store: &dyn Store, key: &str) -> MessageRow {
    store.message_by_key(key).unwrap().expect("message exists")
}

fn finish(store: &dyn Store, id: i64, outcome: DeliveryOutcome, secs: i64) {
    store
        .finish_messages(&[Finished {
            id,
            outcome,
            at: at(secs),
        }])
        .unwrap();
}

fn keys(rows: &[MessageRow]) -> Vec<&str> {
    rows.iter().map(|m| m.idempotency_key.as_str()).collect()
}

fn a_message_is_queued_once_per_idempotency_key(store: &dyn Store) {
    let ann = contact(store, "ann");
    let first = email("k1", ann, 10);
    let second = NewMessage {
        subject: Some("Other".into()),
        ..email("k1", ann, 20)
    };
    let inserted = in_tx(store, |tx| {
        Ok((tx.insert_message(&first)?, tx.insert_message(&second)?))
    });
    assert_eq!(inserted, (true, false));
    let again = in_tx(store, |tx| tx.insert_message(&first));
    assert!(!again, "also in a later transaction");
    let all = store
        .messages(&MessageQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 1);
    let m = &all[0];
    assert_eq!(
        m.subject.as_deref(),
        Some("Hello"),
        "the first insert is kept"
    );
    assert_eq!(m.contact_id, ann);
    assert_eq!(m.user_id.as_deref(), Some("ann"));
    assert_eq!(m.recipient.as_deref(), Some("k1@example.com"));
    assert_eq!((m.status.as_str(), m.attempts), ("queued", 0));
    assert_eq!(m.priority, Priority::Transactional);
    assert_eq!((m.created_at, m.next_attempt_at), (at(10), Some(at(10))));
    assert_eq!(
        (m.sent_at, m.first_attempt_at, m.failed_at),
        (None, None, None)
    );
    assert!(store.message_by_key("nope").unwrap().is_none());
}

fn a_message_stored_already_failed_or_suppressed_is_not_due(store: &dyn Store) {
    let ann = contact(store, "ann");
    let failed = NewMessage {
        status: MessageStatus::Failed,
        error: Some("no address".into()),
        ..email("failed", ann, 5)
    };
    let held = NewMessage {
        status: MessageStatus::Suppressed,
        ..email("held", ann, 5)
    };
    queue(store, &[failed, held]);
    let f = by_key(store, "failed");
    assert_eq!(
        (f.status.as_str(), f.next_attempt_at, f.failed_at),
        ("failed", None, Some(at(5)))
    );
    assert_eq!(f.error.as_deref(), Some("no address"));
    assert_eq!(by_key(store, "held").status, "suppressed");
    assert_eq!(store.next_message_attempt_at().unwrap(), None);
    assert!(store.queue_levels().unwrap().is_empty());
}

fn due_messages_are_one_channel_priority_and_journey_oldest_due_first(store: &dyn Store) {
    let ann = contact(store, "ann");
    let mut bulk = email("bulk", ann, 1);
    bulk.priority = Priority::Bulk;
    let mut sms = email("sms", ann, 1);
    sms.channel = "sms".into();
    let mut j_late = journey_email("j-late", ann, "j", "a");
    j_late.created_at = at(30);
    let mut j_early = journey_email("j-early", ann, "j", "a");
    j_early.created_at = at(20);
    let mut k = journey_email("k", ann, "k", "a");
    k.created_at = at(20);
    queue(
        store,
        &[
            email("t-late", ann, 50),
            email("t-early", ann, 10),
            email("t-tie", ann, 10),
            bulk,
            sms,
            j_late,
            j_early,
            k,
            email("t-future", ann, 500),
        ],
    );
    let due = |priority, journey, now| {
        store
            .due_messages(&DueQuery {
                channel: "email",
                priority,
                journey,
                now: at(now),
                limit: 10,
                skip: &Default::default(),
            })
            .unwrap()
    };
    assert_eq!(
        keys(&due(Priority::Transactional, None, 100)),
        ["t-early", "t-tie", "t-late"],
        "by due time, then id; not yet due ones wait"
    );
    assert_eq!(keys(&due(Priority::Bulk, None, 100)), ["bulk"]);
    assert_eq!(
        keys(&due(Priority::Journey, Some("j"), 100)),
        ["j-early", "j-late"]
    );
    assert_eq!(keys(&due(Priority::Journey, Some("j"), 25)), ["j-early"]);
    assert!(
        due(Priority::Journey, None, 100).is_empty(),
        "None: messages of no journey"
    );
    let limited = store
        .due_messages(&DueQuery {
            channel: "email",
            priority: Priority::Transactional,
            journey: None,
            now: at(100),
            limit: 1,
            skip: &Default::default(),
        })
        .unwrap();
    assert_eq!(keys(&limited), ["t-early"]);
    // Those in flight are left out, and the limit counts the others.
    let early = limited[0].id;
    let past_in_flight = store
        .due_messages(&DueQuery {
            channel: "email",
            priority: Priority::Transactional,
            journey: None,
            now: at(100),
            limit: 1,
            skip: &[early].into(),
        })
        .unwrap();
    assert_eq!(keys(&past_in_flight), ["t-tie"]);
    let tie = past_in_flight[0].id;
    let rest = store
        .due_messages(&DueQuery {
            channel: "email",
            priority: Priority::Transactional,
            journey: None,
            now: at(100),
            limit: 10,
            skip: &[tie].into(),
        })
        .unwrap();
    assert_eq!(keys(&rest), ["t-early", "t-late"]);
    let sms_due = store
        .due_messages(&DueQuery {
            channel: "sms",
            priority: Priority::Transactional,
            journey: None,
            now: at(100),
            limit: 10,
            skip: &Default::default(),
        })
        .unwrap();
    assert_eq!(keys(&sms_due), ["sms"]);
    assert_eq!(store.next_message_attempt_at().unwrap(), Some(at(1)));
}

fn due_journeys_lists_the_journeys_with_due_journey_messages_by_id(store: &dyn Store) {
    let ann = contact(store, "ann");
    let mut later = journey_email("c1", ann, "c", "a");
    later.created_at = at(100);
    let mut sms = journey_email("d1", ann, "d", "a");
    sms.channel = "sms".into();
    let mut bulk = journey_email("e1", ann, "e", "a");
    bulk.priority = Priority::Bulk;
    queue(
        store,
        &[
            journey_email("b1", ann, "b", "a"),
            journey_email("a1", ann, "a", "a"),
            journey_email("b2", ann, "b", "x"),
            later,
            sms,
            bulk,
            email("none", ann, 0),
        ],
    );
    assert_eq!(store.due_journeys("email", at(10), 10).unwrap(), ["a", "b"]);
    assert_eq!(store.due_journeys("email", at(10), 1).unwrap(), ["a"]);
    assert_eq!(
        store.due_journeys("email", at(100), 10).unwrap(),
        ["a", "b", "c"]
    );
    assert_eq!(store.due_journeys("sms", at(10), 10).unwrap(), ["d"]);
    let sent = by_key(store, "a1").id;
    finish(store, sent, DeliveryOutcome::Sent, 11);
    assert_eq!(store.due_journeys("email", at(10), 10).unwrap(), ["b"]);
}

fn finishing_records_sent_retry_deferred_and_failed_outcomes(store: &dyn Store) {
    live_journey(store, "j");
    let ann = contact(store, "ann");
    let ids = queue(
        store,
        &[
            journey_email("sent", ann, "j", "a"),
            journey_email("retry", ann, "j", "a"),
            journey_email("deferred", ann, "j", "a"),
            journey_email("failed", ann, "j", "b"),
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
                outcome: DeliveryOutcome::Retry {
                    error: "busy".into(),
                    at: at(70),
                },
                at: at(10),
            },
            Finished {
                id: ids[2],
                outcome: DeliveryOutcome::Deferred { at: at(40) },
                at: at(10),
            },
            Finished {
                id: ids[3],
                outcome: DeliveryOutcome::Failed {
                    error: "refused".into(),
                },
                at: at(11),
            },
        ])
        .unwrap();
    let sent = by_key(store, "sent");
    assert_eq!(
        (sent.status.as_str(), sent.attempts, sent.sent_at),
        ("sent", 1, Some(at(10)))
    );
    assert_eq!(
        (sent.first_attempt_at, sent.next_attempt_at),
        (Some(at(10)), None)
    );
    let retry = by_key(store, "retry");
    assert_eq!((retry.status.as_str(), retry.attempts), ("queued", 1));
    assert_eq!(
        (retry.next_attempt_at, retry.first_attempt_at),
        (Some(at(70)), Some(at(10)))
    );
    assert_eq!(retry.error.as_deref(), Some("busy"));
    let deferred = by_key(store, "deferred");
    assert_eq!(
        (deferred.status.as_str(), deferred.attempts),
        ("queued", 0),
        "not an attempt"
    );
    assert_eq!(
        (deferred.next_attempt_at, deferred.first_attempt_at),
        (Some(at(40)), None)
    );
    let failed = by_key(store, "failed");
    assert_eq!(
        (failed.status.as_str(), failed.attempts, failed.failed_at),
        ("failed", 1, Some(at(11)))
    );
    assert_eq!(failed.error.as_deref(), Some("refused"));
    // A second retry keeps the first attempt's time, which bounds the retry lifetime.
    finish(
        store,
        ids[1],
        DeliveryOutcome::Retry {
            error: "busy".into(),
            at: at(200),
        },
        70,
    );
    let retry = by_key(store, "retry");
    assert_eq!((retry.attempts, retry.first_attempt_at), (2, Some(at(10))));
    assert_eq!(store.next_message_attempt_at().unwrap(), Some(at(40)));

    let node = |id: &str| node_stats(store, "j", id);
    assert_eq!((node("a").sent, node("a").failed), (1, 0));
    assert_eq!((node("b").sent, node("b").failed), (0, 1));
}

fn an_outcome_for_a_message_no_longer_queued_changes_nothing(store: &dyn Store) {
    live_journey(store, "j");
    let ann = contact(store, "ann");
    let id = queue(store, &[journey_email("k", ann, "j", "a")])[0];
    finish(store, id, DeliveryOutcome::Sent, 10);
    finish(store, id, DeliveryOutcome::Sent, 20);
    finish(
        store,
        id,
        DeliveryOutcome::Failed {
            error: "late".into(),
        },
        30,
    );
    finish(store, id, DeliveryOutcome::Deferred { at: at(40) }, 30);
    let m = by_key(store, "k");
    assert_eq!(
        (m.status.as_str(), m.attempts, m.sent_at),
        ("sent", 1, Some(at(10)))
    );
    assert_eq!((m.error, m.next_attempt_at), (None, None));
    let a = node_stats(store, "j", "a");
    assert_eq!((a.sent, a.failed), (1, 0), "counted once");
    // An unknown id is ignored.
    finish(store, id + 1000, DeliveryOutcome::Sent, 50);
}

fn a_hard_bounce_suppresses_the_recipient_and_a_soft_one_does_not(store: &dyn Store) {
    let ann = contact(store, "ann");
    let ids = queue(store, &[email("hard", ann, 0), email("soft", ann, 0)]);
    finish(
        store,
        ids[0],
        DeliveryOutcome::Bounced {
            error: "550 no such user".into(),
            hard_bounce: true,
        },
        5,
    );
    finish(
        store,
        ids[1],
        DeliveryOutcome::Bounced {
            error: "552 mailbox full".into(),
            hard_bounce: false,
        },
        5,
    );
    let hard = by_key(store, "hard");
    assert_eq!(
        (hard.status.as_str(), hard.failed_at),
        ("bounced", Some(at(5)))
    );
    assert_eq!(by_key(store, "soft").status, "bounced");
    let reasons = in_tx(store, |tx| {
        Ok((
            tx.suppression("email", "hard@example.com")?,
            tx.suppression("email", "soft@example.com")?,
        ))
    });
    assert_eq!(reasons, (Some("hard_bounce".to_string()), None));
    let entry = &store
        .suppressions(&crate::SuppressionQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap()[0];
    assert_eq!(
        (entry.address.as_str(), entry.source.as_str()),
        ("hard@example.com", "smtp")
    );
}

fn requeue_puts_matching_failed_messages_back_and_uncounts_their_failures(store: &dyn Store) {
    live_journey(store, "j");
    let ann = contact(store, "ann");
    let mut sms = journey_email("sms", ann, "j", "a");
    sms.channel = "sms".into();
    let ids = queue(
        store,
        &[
            journey_email("timeout", ann, "j", "a"),
            journey_email("refused", ann, "j", "a"),
            sms,
            email("bounced", ann, 0),
            email("other", ann, 0),
        ],
    );
    let fail = |id, error: &str, secs| {
        finish(
            store,
            id,
            DeliveryOutcome::Failed {
                error: error.into(),
            },
            secs,
        )
    };
    fail(ids[0], "Connection TIMEOUT", 10);
    fail(ids[1], "550 refused", 20);
    fail(ids[2], "timeout", 10);
    finish(
        store,
        ids[3],
        DeliveryOutcome::Bounced {
            error: "timeout".into(),
            hard_bounce: false,
        },
        10,
    );
    fail(ids[4], "timeout", 10);

    let filter = RequeueFilter {
        journey_id: Some("j".into()),
        channel: Some("email".into()),
        error_contains: Some("timeout".into()),
        ..Default::default()
    };
    assert_eq!(store.requeue_messages(&filter, at(100)).unwrap(), 1);
    let m = by_key(store, "timeout");
    assert_eq!((m.status.as_str(), m.attempts, m.id), ("queued", 0, ids[0]));
    assert_eq!(
        (m.next_attempt_at, m.requeued_at),
        (Some(at(100)), Some(at(100)))
    );
    assert_eq!((m.first_attempt_at, m.failed_at), (None, None));
    let a = node_stats(store, "j", "a");
    assert_eq!(a.failed, 2, "three failures at `a`, one requeued");
    // By failure time: only the one that failed at 20.
    let by_time = RequeueFilter {
        failed_since: Some(at(15)),
        failed_until: Some(at(25)),
        ..Default::default()
    };
    assert_eq!(store.requeue_messages(&by_time, at(101)).unwrap(), 1);
    assert_eq!(by_key(store, "refused").status, "queued");
    // Everything failed: the SMS and the other one; never the bounced one.
    let by_created = RequeueFilter {
        created_since: Some(at(0)),
        created_until: Some(at(1)),
        ..Default::default()
    };
    assert_eq!(store.requeue_messages(&by_created, at(102)).unwrap(), 2);
    assert_eq!(by_key(store, "bounced").status, "bounced");
    assert_eq!(store.requeue_messages(&by_created, at(103)).unwrap(), 0);
}

fn queue_levels_count_queued_messages_per_channel_with_the_oldest(store: &dyn Store) {
    let ann = contact(store, "ann");
    let mut sms = email("s1", ann, 30);
    sms.channel = "sms".into();
    let ids = queue(
        store,
        &[
            email("e1", ann, 20),
            email("e2", ann, 10),
            sms,
            email("e3", ann, 5),
        ],
    );
    finish(
        store,
        ids[3],
        DeliveryOutcome::Failed { error: "x".into() },
        6,
    );
    assert_eq!(
        store.queue_levels().unwrap(),
        [
            QueueLevel {
                channel: "email".into(),
                queued: 2,
                oldest_queued_at: Some(at(10))
            },
            QueueLevel {
                channel: "sms".into(),
                queued: 1,
                oldest_queued_at: Some(at(30))
            },
        ]
    );
    // A requeued message counts as queued when it was requeued.
    store
        .requeue_messages(&RequeueFilter::default(), at(50))
        .unwrap();
    finish(store, ids[1], DeliveryOutcome::Sent, 51);
    assert_eq!(
        store.queue_levels().unwrap()[0].oldest_queued_at,
        Some(at(20))
    );
    finish(store, ids[0], DeliveryOutcome::Sent, 52);
    assert_eq!(
        store.queue_levels().unwrap()[0].oldest_queued_at,
        Some(at(50))
    );
}

fn messages_are_listed_by_filter_in_id_order(store: &dyn Store) {
    let (ann, bob) = (contact(store, "ann"), contact(store, "bob"));
    let mut sms = email("b-sms", bob, 0);
    sms.channel = "sms".into();
    let ids = queue(
        store,
        &[
            email("a1", ann, 0),
            journey_email("a2", ann, "j", "a"),
            email("b1", bob, 0),
            sms,
        ],
    );
    finish(store, ids[2], DeliveryOutcome::Sent, 1);
    let list = |f: fn(&mut MessageQuery)| -> Vec<String> {
        let mut q = MessageQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        store
            .messages(&q)
            .unwrap()
            .into_iter()
            .map(|m| m.idempotency_key)
            .collect()
    };
    assert_eq!(list(|_| {}), ["a1", "a2", "b1", "b-sms"]);
    assert_eq!(list(|q| q.user_id = Some("bob".into())), ["b1", "b-sms"]);
    assert_eq!(list(|q| q.journey_id = Some("j".into())), ["a2"]);
    assert_eq!(list(|q| q.channel = Some("sms".into())), ["b-sms"]);
    assert_eq!(list(|q| q.status = Some("sent".into())), ["b1"]);
    assert_eq!(list(|q| q.limit = 2), ["a1", "a2"]);
    let after = store
        .messages(&MessageQuery {
            contact_id: Some(ann),
            after_id: ids[0],
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(keys(&after), ["a2"]);
}

fn the_unsubscribe_url_is_stored_on_the_message(store: &dyn Store) {
    let ann = contact(store, "ann");
    let mut with_link = email("k", ann, 0);
    with_link.unsubscribe_url = Some("https://x.test/u/1".into());
    queue(store, &[with_link, email("other", ann, 0)]);
    assert_eq!(
        by_key(store, "k").unsubscribe_url.as_deref(),
        Some("https://x.test/u/1")
    );
    assert_eq!(by_key(store, "other").unsubscribe_url, None);
}

fn marketing_messages_are_counted_for_frequency_caps(store: &dyn Store) {
    store
        .put_template(&template("promo", "Sale"), at(0))
        .unwrap();
    let receipt = waymark_core::journey::TemplateDefinition {
        transactional: true,
        ..template("receipt", "Receipt")
    };
    store.put_template(&receipt, at(0)).unwrap();
    let (ann, bob) = (contact(store, "ann"), contact(store, "bob"));
    let of = |key: &str, contact_id, template: &str, secs| NewMessage {
        template: template.into(),
        ..email(key, contact_id, secs)
    };
    let mut sms = of("sms", ann, "promo", 20);
    sms.channel = "sms".into();
    let ids = queue(
        store,
        &[
            of("old", ann, "promo", 5),
            of("p1", ann, "promo", 10),
            of("p2", ann, "promo", 20),
            of("r1", ann, "receipt", 20),
            of("f1", ann, "promo", 20),
            of("bob", bob, "promo", 20),
            sms,
        ],
    );
    finish(store, ids[1], DeliveryOutcome::Sent, 11);
    finish(
        store,
        ids[4],
        DeliveryOutcome::Failed { error: "x".into() },
        21,
    );
    let counts = in_tx(store, |tx| {
        Ok((
            tx.count_marketing_messages(ann, "email", at(10))?,
            tx.count_marketing_messages(ann, "email", at(0))?,
            tx.count_marketing_messages(ann, "sms", at(0))?,
            tx.count_marketing_messages(bob, "email", at(30))?,
        ))
    });
    assert_eq!(
        counts,
        (2, 3, 1, 0),
        "queued or sent marketing email since the time"
    );
}

fn contact_messages_and_engagement_follow_sends_opens_and_clicks(store: &dyn Store) {
    live_journey(store, "j");
    let ann = contact(store, "ann");
    let enrollment = in_tx(store, |tx| {
        tx.insert_enrollment(&super::support::enrollment("j", ann, "a", None), at(0))
    })
    .id;
    let mut sent = journey_email("sent", ann, "j", "a");
    sent.enrollment_id = Some(enrollment);
    let mut queued = journey_email("queued", ann, "j", "b");
    queued.enrollment_id = Some(enrollment);
    let mut hook = email("hook", ann, 0);
    hook.channel = "webhook".into();
    let ids = queue(store, &[sent, queued, hook, email("failed", ann, 0)]);
    finish(store, ids[0], DeliveryOutcome::Sent, 10);
    finish(
        store,
        ids[3],
        DeliveryOutcome::Failed { error: "x".into() },
        10,
    );

    let engaged = |node: &'static str, e: Engagement| {
        in_tx(store, move |tx| tx.message_engaged(enrollment, node, e))
    };
    assert!(engaged("a", Engagement::Delivered));
    assert!(!engaged("b", Engagement::Sent), "queued is not yet sent");
    assert!(!engaged("a", Engagement::Opened));

    let (clicked, unknown) = in_tx(store, |tx| {
        Ok((
            tx.mark_engagement(ids[0], true, true, at(30))?,
            tx.mark_engagement(ids[0] + 1000, false, true, at(30))?,
        ))
    });
    assert!(clicked && !unknown);
    assert!(engaged("a", Engagement::Opened), "a click implies an open");
    assert!(engaged("a", Engagement::Clicked));

    let records = in_tx(store, |tx| tx.contact_messages(ann));
    let seen: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.node.as_deref(),
                r.channel,
                r.delivered_at,
                r.opened_at,
                r.clicked_at,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                Some("a"),
                Channel::Email,
                Some(at(10)),
                Some(at(30)),
                Some(at(30))
            ),
            (Some("b"), Channel::Email, None, None, None),
        ],
        "queued or sent email and SMS only, in id order"
    );
    assert_eq!(records[0].journey.as_deref(), Some("j"));
    assert_eq!(records[0].template.as_deref(), Some("welcome"));
    assert_eq!(
        records[0].sent_at,
        at(0),
        "counted as sent from when it was queued"
    );
}

fn opens_and_clicks_count_once_per_message(store: &dyn Store) {
    live_journey(store, "j");
    let ann = contact(store, "ann");
    let ids = queue(
        store,
        &[
            journey_email("m1", ann, "j", "a"),
            journey_email("m2", ann, "j", "a"),
        ],
    );
    in_tx(store, |tx| {
        tx.mark_engagement(ids[0], false, true, at(10))?;
        tx.mark_engagement(ids[0], false, true, at(20))?;
        tx.mark_engagement(ids[0], true, true, at(30))?;
        tx.mark_engagement(ids[0], true, true, at(40))?;
        tx.mark_engagement(ids[1], true, true, at(50))?;
        tx.mark_engagement(ids[1], false, true, at(60))
    });
    let m1 = by_key(store, "m1");
    assert_eq!(
        (m1.opened_at, m1.clicked_at),
        (Some(at(10)), Some(at(30))),
        "the first of each"
    );
    let m2 = by_key(store, "m2");
    assert_eq!((m2.opened_at, m2.clicked_at), (Some(at(50)), Some(at(50))));
    let a = node_stats(store, "j", "a");
    assert_eq!((a.opened, a.clicked), (2, 2));
}

conformance_tests!(
    a_message_is_queued_once_per_idempotency_key,
    a_message_stored_already_failed_or_suppressed_is_not_due,
    due_messages_are_one_channel_priority_and_journey_oldest_due_first,
    due_journeys_lists_the_journeys_with_due_journey_messages_by_id,
    finishing_records_sent_retry_deferred_and_failed_outcomes,
    an_outcome_for_a_message_no_longer_queued_changes_nothing,
    a_hard_bounce_suppresses_the_recipient_and_a_soft_one_does_not,
    requeue_puts_matching_failed_messages_back_and_uncounts_their_failures,
    queue_levels_count_queued_messages_per_channel_with_the_oldest,
    messages_are_listed_by_filter_in_id_order,
    the_unsubscribe_url_is_stored_on_the_message,
    marketing_messages_are_counted_for_frequency_caps,
    contact_messages_and_engagement_follow_sends_opens_and_clicks,
    opens_and_clicks_count_once_per_message,
);
