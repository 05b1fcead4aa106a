//! Privacy: exporting everything held about a contact, erasing it (its addresses stay
//! suppressed as keyed hashes, aggregate counters stay), and the audit log.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use waymark_core::StepLog;

use super::support::{
    append_for, at, contact, email, enrollment, in_tx, live_journey, node_stats, props, queue,
    track,
};
use crate::{
    AuditQuery, NewAudit, StatsDeltas, Store, StoreError, Subscription, Suppression,
    SuppressionQuery,
};

/// Gives `ann` (user `ann`, anonymous id `web-ann`) a row in every per-contact table; returns
/// her id. Her email is suppressed for a complaint; her message went to a second address.
fn seed_ann(store: &dyn Store) -> i64 {
    live_journey(store, "j");
    store.put_segment("pro", "Pro", &json!({}), at(0)).unwrap();
    let ann = in_tx(store, |tx| {
        tx.resolve_contact(Some("ann"), Some("web-ann"), at(0))
    });
    append_for(
        store,
        ann,
        &[viewed("ann-1", "/", 1), viewed("ann-2", "/pricing", 2)],
    );
    in_tx(store, |tx| {
        tx.update_traits(
            ann,
            &props(json!({"email": "ann@example.com", "phone": "+4915100000001", "plan": "pro"})),
            at(1),
        )?;
        let e = tx.insert_enrollment(&enrollment("j", ann, "a", Some(at(500))), at(1))?;
        tx.record_steps(
            e.id,
            &[
                StepLog::Entered {
                    node: "start".into(),
                },
                StepLog::Entered { node: "a".into() },
            ],
            at(1),
        )?;
        tx.set_subscription(&Subscription {
            contact_id: ann,
            channel: "email".into(),
            topic: "*".into(),
            status: "subscribed".into(),
            updated_at: at(1),
        })?;
        tx.add_to_list(ann, "vip", at(1))?;
        tx.set_segment_member("pro", ann, true, at(1))?;
        tx.set_segment_check("pro", ann, Some(at(600)))?;
        tx.defer_broadcast_recipients("news", &[(ann, at(650))])?;
        tx.set_trigger_due("j", "start", ann, Some(at(700)))?;
        tx.add_score_expiry(ann, "score", 5, at(800))?;
        tx.record_conversion(&crate::NewConversion {
            enrollment_id: e.id,
            contact_id: ann,
            journey_id: "j".into(),
            version: 1,
            node: "a".into(),
            last_touch: None,
            event_seq: 2,
            at: at(2),
            revenue: None,
        })?;
        Ok(())
    });
    let mut message = email("ann-msg", ann, 2);
    message.recipient = Some("Ann.Other@Example.com".into());
    queue(store, &[message]);
    // A broadcast's message, and her order after it.
    let newsletter = crate::NewMessage {
        idempotency_key: crate::broadcast_message_key("news", ann),
        broadcast_id: Some("news".into()),
        recipient: Some("ann@example.com".into()),
        ..email("news", ann, 2)
    };
    let ids = queue(store, &[newsletter]);
    store
        .finish_messages(&[crate::Finished {
            id: ids[0],
            outcome: crate::DeliveryOutcome::Sent,
            at: at(3),
        }])
        .unwrap();
    let converted = in_tx(store, |tx| {
        tx.record_broadcast_conversion(&crate::NewBroadcastConversion {
            broadcast_id: "news".into(),
            contact_id: ann,
            event_seq: 2,
            at: at(4),
            window: jiff::SignedDuration::from_hours(1),
            revenue: None,
        })
    });
    assert!(converted);
    store
        .suppress(&Suppression {
            channel: "email".into(),
            address: "ann@example.com".into(),
            reason: "complaint".into(),
            source: "api".into(),
            created_at: at(3),
        })
        .unwrap();
    ann
}

/// Ann's view of `page`.
fn viewed(message_id: &str, page: &str, secs: i64) -> crate::NewEvent {
    crate::NewEvent {
        properties: props(json!({ "page": page })),
        ..track(message_id, "ann", "Viewed", secs)
    }
}

fn export_counts_cover_every_section_of_the_contact(store: &dyn Store) {
    let ann = seed_ann(store);
    let bob = contact(store, "bob");
    let counts = store.contact_export_counts(ann).unwrap();
    let expected: BTreeMap<String, i64> = [
        ("contact", 1),
        ("anonymous_ids", 1),
        ("events", 2),
        ("enrollments", 1),
        ("conversions", 1),
        ("broadcast_conversions", 1),
        ("steps", 2),
        ("messages", 2),
        ("subscriptions", 1),
        ("lists", 1),
        ("segments", 1),
        ("segment_checks", 1),
        ("broadcast_recipients", 1),
        ("scheduled_triggers", 1),
        ("score_expiries", 1),
        ("suppressions", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counts, expected);
    let bobs = store.contact_export_counts(bob).unwrap();
    assert_eq!(
        (bobs["contact"], bobs["events"], bobs["suppressions"]),
        (1, 0, 0)
    );
    assert!(matches!(
        store.contact_export_counts(bob + 1000),
        Err(StoreError::NotFound(_))
    ));
}

fn the_export_hands_out_every_section_in_order_in_pages(store: &dyn Store) {
    let ann = seed_ann(store);
    let mut sections: Vec<&str> = Vec::new();
    let mut rows: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    store
        .export_contact(ann, 1, &mut |page| {
            assert!(
                page.rows.len() <= 1,
                "{}: a page holds at most `page` rows",
                page.section
            );
            if sections.last() != Some(&page.section) {
                sections.push(page.section);
            }
            rows.entry(page.section).or_default().extend(page.rows);
            Ok(())
        })
        .unwrap();
    assert_eq!(sections, crate::personal_data::SECTIONS);
    let contact = &rows["contact"][0];
    assert_eq!(contact["user_id"], json!("ann"));
    assert_eq!(
        contact["traits"]["plan"],
        json!("pro"),
        "JSON columns as JSON"
    );
    assert_eq!(contact["created_at"], json!(at(0)), "times as RFC 3339");
    let pages: Vec<&Value> = rows["events"]
        .iter()
        .map(|e| &e["properties"]["page"])
        .collect();
    assert_eq!(
        pages,
        [&json!("/"), &json!("/pricing")],
        "in seq order, across pages"
    );
    let enrollment = &rows["enrollments"][0];
    let steps: Vec<&Value> = enrollment["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| &s["node"])
        .collect();
    assert_eq!(steps, [&json!("start"), &json!("a")]);
    assert_eq!(rows["anonymous_ids"][0]["anonymous_id"], json!("web-ann"));
    assert_eq!(rows["lists"][0]["list"], json!("vip"));
    assert_eq!(rows["messages"][0]["idempotency_key"], json!("ann-msg"));
    assert_eq!(rows["suppressions"][0]["reason"], json!("complaint"));
    for section in crate::personal_data::SECTIONS {
        assert!(!rows[section].is_empty(), "{section} is empty");
    }
    let missing = store.export_contact(ann + 1000, 10, &mut |_| Ok(()));
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
}

fn erasure_removes_the_contacts_rows_and_keeps_its_addresses_suppressed_as_hashes(
    store: &dyn Store,
) {
    let ann = seed_ann(store);
    let bob = in_tx(store, |tx| {
        tx.resolve_contact(Some("bob"), Some("web-bob"), at(0))
    });
    in_tx(store, |tx| {
        tx.add_to_list(bob, "vip", at(1))?;
        tx.insert_enrollment(&enrollment("j", bob, "b", None), at(1))
            .map(|_| ())
    });
    let mut deltas = StatsDeltas::default();
    deltas.node("j", 1, "a").entered = 1;
    in_tx(store, |tx| tx.add_stats(&deltas, at(1)));

    let erasure = in_tx(store, |tx| tx.erase_contact(ann, at(50)));
    assert_eq!(erasure.contact_id, ann);
    assert_eq!(
        erasure.addresses_hashed, 3,
        "email, phone and the message's recipient"
    );
    for (table, n) in [
        ("contacts", 1),
        ("anonymous_ids", 1),
        ("events", 2),
        ("enrollments", 1),
        ("conversions", 1),
        ("broadcast_conversions", 1),
        ("steps", 2),
        ("messages", 2),
        ("subscriptions", 1),
        ("list_members", 1),
        ("segment_members", 1),
        ("segment_checks", 1),
        ("broadcast_recipients", 1),
        ("trigger_schedule", 1),
        ("score_expiries", 1),
        ("suppressions", 1),
    ] {
        assert_eq!(
            erasure.removed.get(table),
            Some(&n),
            "{table}: {:?}",
            erasure.removed
        );
    }

    assert!(matches!(store.contact(ann), Err(StoreError::NotFound(_))));
    assert!(matches!(
        store.contact_export_counts(ann),
        Err(StoreError::NotFound(_))
    ));
    assert!(store.timeline(ann, 100).unwrap().is_empty());
    assert!(store.message_by_key("ann-msg").unwrap().is_none());
    assert!(
        store.queue_levels().unwrap().is_empty(),
        "its queued message is gone"
    );
    assert_eq!(store.next_wake_at().unwrap(), None, "its timers are gone");
    assert_eq!(store.segment("pro").unwrap().members, 0);
    let node_a = node_stats(store, "j", "a");
    assert_eq!(node_a.entered, 1, "aggregate counters stay");

    // The other contact is untouched.
    let b = store.contact(bob).unwrap();
    assert_eq!(
        (b.anonymous_ids.len(), b.lists.len(), b.enrollments.len()),
        (1, 1, 1)
    );
    assert_eq!(store.lists().unwrap()[0].members, 1);

    // The addresses stay suppressed, in any case, without being stored in plain.
    let reasons = in_tx(store, |tx| {
        Ok([
            tx.suppression("email", " ANN@example.com")?,
            tx.suppression("email", "ann.other@example.com")?,
            tx.suppression("sms", "+4915100000001")?,
            tx.suppression("email", "bob@example.com")?,
        ])
    });
    assert_eq!(
        reasons,
        [
            Some("complaint".into()),
            Some("erased".into()),
            Some("erased".into()),
            None
        ],
        "a real reason wins over `erased`"
    );
    let listed = store
        .suppressions(&SuppressionQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert!(
        listed.iter().all(|s| !s.address.contains("ann")),
        "{listed:?}"
    );
    let asked = store
        .suppressions(&SuppressionQuery {
            channel: Some("email".into()),
            address: Some("Ann@Example.com".into()),
            limit: 10,
        })
        .unwrap();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (
            asked[0].address.as_str(),
            asked[0].reason.as_str(),
            asked[0].source.as_str()
        ),
        ("ann@example.com", "complaint", "erasure")
    );
    // Lifting it by the plain address works as for any suppression.
    assert!(store.unsuppress("email", "ann@example.com").unwrap());
    assert!(!store.unsuppress("email", "ann@example.com").unwrap());
    assert_eq!(
        in_tx(store, |tx| tx.suppression("email", "ann@example.com")),
        None
    );

    let again = store.engine_tx(&mut |tx| tx.erase_contact(ann, at(60)).map(|_| ()));
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
}

fn ids_of_an_erased_contact_are_not_handed_out_again(store: &dyn Store) {
    // Ann holds the newest contact id, event seq, enrollment id and message id.
    let ann = seed_ann(store);
    let seq = store.last_event_seq().unwrap();
    let message = store.message_by_key("ann-msg").unwrap().unwrap().id;
    let enrolled = store.contact(ann).unwrap().enrollments[0].id;
    in_tx(store, |tx| tx.erase_contact(ann, at(50)).map(|_| ()));

    // Her anonymous id and user id now make a new contact.
    let newcomer = in_tx(store, |tx| {
        tx.resolve_contact(Some("ann"), Some("web-ann"), at(60))
    });
    assert!(newcomer > ann, "{newcomer} after {ann}");
    store
        .append_events(&[track("new-1", "ann", "Viewed", 61)])
        .unwrap();
    assert!(store.last_event_seq().unwrap() > seq);
    let recorded = in_tx(store, |tx| {
        tx.record_event(newcomer, &track("new-2", "ann", "Recorded", 62))?;
        tx.insert_enrollment(&enrollment("j", newcomer, "a", None), at(62))
    });
    assert!(recorded.id > enrolled);
    let ids = queue(store, &[email("new-msg", newcomer, 63)]);
    assert!(ids[0] > message);
    assert_eq!(
        store.pending_event_count().unwrap(),
        2,
        "the two new events; the erased ones are gone"
    );
}

fn audit_entries_are_appended_and_filtered(store: &dyn Store) {
    let entry = |action: &str, contact_id: Option<i64>, secs| NewAudit {
        at: at(secs),
        actor: "admin_token".into(),
        action: action.into(),
        contact_id,
        detail: json!({"rows": secs}),
    };
    let first = store
        .record_audit(&entry("contact.export", Some(7), 1))
        .unwrap();
    let second = in_tx(store, |tx| {
        tx.record_audit(&entry("contact.erase", Some(7), 2))
    });
    let third = store
        .record_audit(&entry("contact.export", Some(8), 3))
        .unwrap();
    let fourth = store.record_audit(&entry("settings", None, 4)).unwrap();
    assert!(first < second && second < third && third < fourth);
    // Work that fails records nothing.
    let failed = store.engine_tx(&mut |tx| {
        tx.record_audit(&entry("contact.erase", Some(9), 5))?;
        Err(StoreError::Conflict("stop".into()))
    });
    assert!(failed.is_err());

    let log = |q: AuditQuery| -> Vec<i64> {
        store
            .audit_log(&AuditQuery {
                limit: q.limit.max(1),
                ..q
            })
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(
        log(AuditQuery {
            limit: 100,
            ..Default::default()
        }),
        [first, second, third, fourth]
    );
    assert_eq!(
        log(AuditQuery {
            contact_id: Some(7),
            limit: 100,
            ..Default::default()
        }),
        [first, second]
    );
    assert_eq!(
        log(AuditQuery {
            action: Some("contact.export".into()),
            limit: 100,
            ..Default::default()
        }),
        [first, third]
    );
    assert_eq!(
        log(AuditQuery {
            after_id: second,
            limit: 1,
            ..Default::default()
        }),
        [third]
    );
    let all = store
        .audit_log(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let e = &all[1];
    assert_eq!(
        (
            e.at,
            e.actor.as_str(),
            e.action.as_str(),
            e.contact_id,
            &e.detail
        ),
        (
            at(2),
            "admin_token",
            "contact.erase",
            Some(7),
            &json!({"rows": 2})
        )
    );
    assert_eq!(all[3].contact_id, None);
}

conformance_tests!(
    export_counts_cover_every_section_of_the_contact,
    the_export_hands_out_every_section_in_order_in_pages,
    erasure_removes_the_contacts_rows_and_keeps_its_addresses_suppressed_as_hashes,
    ids_of_an_erased_contact_are_not_handed_out_again,
    audit_entries_are_appended_and_filtered,
);
