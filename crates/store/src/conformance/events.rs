//! The intake log: append order, de-duplication by `messageId`, the processed mark, and the
//! reads the engine makes of a contact's past events.

use serde_json::json;

use super::support::{append_for, at, contact, in_tx, props, track};
use crate::{NewEvent, Store};

fn an_empty_log_has_nothing_pending_and_seq_zero(store: &dyn Store) {
    assert_eq!(store.last_event_seq().unwrap(), 0);
    assert_eq!(store.pending_event_count().unwrap(), 0);
    assert_eq!(store.append_events(&[]).unwrap(), Vec::<bool>::new());
}

fn events_are_read_back_in_append_order_with_every_field(store: &dyn Store) {
    let mut first = track("m1", "ann", "Signed Up", 10);
    first.anonymous_id = Some("anon-1".into());
    first.properties = props(json!({"plan": "pro", "seats": 3}));
    let second = NewEvent {
        kind: waymark_core::EventKind::Alias,
        previous_id: Some("anon-1".into()),
        received_at: at(12),
        ..track("m2", "ann", "Alias", 11)
    };
    assert_eq!(store.append_events(&[first, second]).unwrap(), [true, true]);
    assert_eq!(
        store
            .append_events(&[track("m3", "bob", "Go", 13)])
            .unwrap(),
        [true]
    );
    let last = store.last_event_seq().unwrap();
    let events = in_tx(store, |tx| tx.pending_events(last, 100));
    let ids: Vec<&str> = events.iter().map(|e| e.event.message_id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "seq rises");
    assert_eq!(events[2].seq, last);
    let e = &events[0].event;
    assert_eq!(e.kind, waymark_core::EventKind::Track);
    assert_eq!(e.name, "Signed Up");
    assert_eq!(e.user_id.as_deref(), Some("ann"));
    assert_eq!(e.anonymous_id.as_deref(), Some("anon-1"));
    assert_eq!(e.properties, props(json!({"plan": "pro", "seats": 3})));
    assert_eq!(e.timestamp, at(10));
    // An event's contact is found (or created) when it is accepted, so that it can be routed
    // to its contact's partition.
    let resolved = in_tx(store, |tx| {
        tx.resolve_contact(Some("ann"), Some("anon-1"), at(10))
    });
    assert_eq!(
        events[0].contact_id,
        Some(resolved),
        "routed to the contact its identities name"
    );
    let alias = &events[1].event;
    assert_eq!(alias.kind, waymark_core::EventKind::Alias);
    assert_eq!(alias.previous_id.as_deref(), Some("anon-1"));
    assert_eq!((alias.timestamp, alias.received_at), (at(11), at(12)));
}

fn a_repeated_message_id_is_not_fresh_and_is_stored_once(store: &dyn Store) {
    assert_eq!(
        store
            .append_events(&[track("m1", "ann", "First", 1)])
            .unwrap(),
        [true]
    );
    // Again in a later batch, and twice within one batch.
    let fresh = store
        .append_events(&[
            track("m1", "ann", "Repeated", 2),
            track("m2", "ann", "Second", 3),
            track("m2", "ann", "Second again", 4),
        ])
        .unwrap();
    assert_eq!(fresh, [false, true, false]);
    assert_eq!(store.pending_event_count().unwrap(), 2);
    let events = in_tx(store, |tx| tx.pending_events(i64::MAX, 100));
    let names: Vec<&str> = events.iter().map(|e| e.event.name.as_str()).collect();
    assert_eq!(names, ["First", "Second"], "the first copy is kept");
}

/// The API appends from many requests at once: every event gets its own seq, and of copies
/// sent at the same time exactly one is fresh.
fn concurrent_appends_get_distinct_seqs_and_one_copy_wins(store: &dyn Store) {
    let fresh: Vec<Vec<bool>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                scope.spawn(move || {
                    let mut fresh = Vec::new();
                    for i in 0..10 {
                        let own = track(&format!("w{worker}-{i}"), "ann", "Own", i);
                        let shared = track(&format!("shared-{i}"), "ann", "Shared", i);
                        fresh.extend(store.append_events(&[own, shared]).unwrap());
                    }
                    fresh
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let own_fresh = fresh
        .iter()
        .flat_map(|f| f.iter().step_by(2))
        .filter(|f| **f)
        .count();
    let shared_fresh = fresh
        .iter()
        .flat_map(|f| f.iter().skip(1).step_by(2))
        .filter(|f| **f)
        .count();
    assert_eq!((own_fresh, shared_fresh), (40, 10));
    assert_eq!(store.pending_event_count().unwrap(), 50);
    let seqs: Vec<i64> = in_tx(store, |tx| tx.pending_events(i64::MAX, 100))
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs.len(), 50);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "distinct, read in order"
    );
    assert_eq!(store.last_event_seq().unwrap(), seqs[49]);
}

fn pending_events_start_after_the_processed_mark_and_stop_at_the_bound(store: &dyn Store) {
    let batch: Vec<NewEvent> = (1..=5)
        .map(|i| track(&format!("m{i}"), "ann", &format!("E{i}"), i))
        .collect();
    store.append_events(&batch).unwrap();
    let all = in_tx(store, |tx| tx.pending_events(i64::MAX, 100));
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len(), 5);
    assert_eq!(store.pending_event_count().unwrap(), 5);

    in_tx(store, |tx| tx.set_processed_upto(seqs[1]));
    assert_eq!(store.pending_event_count().unwrap(), 3);
    let names = |events: Vec<crate::StoredEvent>| -> Vec<String> {
        events.into_iter().map(|e| e.event.name).collect()
    };
    assert_eq!(
        names(in_tx(store, |tx| tx.pending_events(i64::MAX, 100))),
        ["E3", "E4", "E5"]
    );
    assert_eq!(
        names(in_tx(store, |tx| tx.pending_events(seqs[3], 100))),
        ["E3", "E4"],
        "no further than upto_seq"
    );
    assert_eq!(
        names(in_tx(store, |tx| tx.pending_events(i64::MAX, 1))),
        ["E3"],
        "at most limit"
    );
    in_tx(store, |tx| tx.set_processed_upto(seqs[4]));
    assert_eq!(store.pending_event_count().unwrap(), 0);
    assert!(in_tx(store, |tx| tx.pending_events(i64::MAX, 100)).is_empty());
    assert_eq!(store.last_event_seq().unwrap(), seqs[4]);
}

fn one_event_is_read_by_seq_with_its_contact(store: &dyn Store) {
    let ann = contact(store, "ann");
    let bob = contact(store, "bob");
    store.append_events(&[track("m1", "ann", "Go", 1)]).unwrap();
    let seq = store.last_event_seq().unwrap();
    let (before, after, missing) = in_tx(store, |tx| {
        let before = tx.event(seq)?.expect("stored").contact_id;
        tx.set_event_contact(seq, bob)?;
        let after = tx.event(seq)?.expect("stored");
        Ok((before, after, tx.event(seq + 100)?.is_some()))
    });
    assert_eq!(before, Some(ann), "routed when accepted");
    assert_eq!(after.contact_id, Some(bob));
    assert_eq!(after.event.message_id, "m1");
    assert!(!missing);
}

fn recorded_events_come_after_every_accepted_event_and_dedupe_by_message_id(store: &dyn Store) {
    let ann = contact(store, "ann");
    store.append_events(&[track("m1", "ann", "Go", 1)]).unwrap();
    let accepted = store.last_event_seq().unwrap();
    let mut produced = track("list:1", "ann", "Added To List", 2);
    produced.user_id = None;
    let (first, second, stored) = in_tx(store, |tx| {
        let first = tx.record_event(ann, &produced)?;
        let second = tx.record_event(ann, &produced)?;
        Ok((first, second, tx.pending_events(i64::MAX, 100)?))
    });
    assert!(first);
    assert!(!second, "a repeated message id is not recorded twice");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].seq, accepted);
    assert!(stored[1].seq > accepted);
    assert_eq!(stored[1].contact_id, Some(ann));
    assert_eq!(store.last_event_seq().unwrap(), stored[1].seq);
    // A client event with the message id of a recorded one is a duplicate too.
    assert_eq!(
        store
            .append_events(&[track("list:1", "ann", "Again", 3)])
            .unwrap(),
        [false]
    );
}

fn events_between_reads_one_contacts_named_events_in_a_seq_window(store: &dyn Store) {
    let (ann, bob) = (contact(store, "ann"), contact(store, "bob"));
    let seq: Vec<i64> = [
        (ann, track("m1", "ann", "Clicked", 1)),
        (ann, track("m2", "ann", "Viewed", 2)),
        (bob, track("m3", "bob", "Clicked", 3)),
        (ann, track("m4", "ann", "Clicked", 4)),
        (ann, track("m5", "ann", "Clicked", 5)),
    ]
    .into_iter()
    .flat_map(|(owner, event)| append_for(store, owner, &[event]))
    .collect();
    let found = in_tx(store, |tx| {
        tx.events_between(ann, "Clicked", seq[0], seq[3])
    });
    assert_eq!(found.len(), 1, "after_seq is excluded, upto_seq included");
    assert_eq!(found[0].seq, seq[3]);
    assert_eq!(found[0].name, "Clicked");
    assert_eq!(found[0].timestamp, at(4));
    let all = in_tx(store, |tx| tx.events_between(ann, "Clicked", 0, i64::MAX));
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [seq[0], seq[3], seq[4]], "in seq order, only ann's");
}

fn order(message_id: &str, user: &str, products: &[&str], secs: i64) -> NewEvent {
    let products: Vec<_> = products.iter().map(|p| json!({"product_id": p})).collect();
    NewEvent {
        properties: props(json!({"products": products})),
        ..track(message_id, user, "Order Completed", secs)
    }
}

fn order_products_are_read_newest_first_per_contact_and_across_contacts(store: &dyn Store) {
    let (ann, bob, cid) = (
        contact(store, "ann"),
        contact(store, "bob"),
        contact(store, "cid"),
    );
    for (owner, event) in [
        (ann, order("o1", "ann", &["p1"], 1)),
        (bob, order("o2", "bob", &["p1", "p2"], 2)),
        (ann, order("o3", "ann", &["p2"], 3)),
        (cid, order("o4", "cid", &["p3"], 4)),
        (bob, order("o5", "bob", &["p2"], 5)),
    ] {
        append_for(store, owner, &[event]);
    }
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["product_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (mine, others, counts) = in_tx(store, |tx| {
        Ok((
            tx.contact_order_products(ann, 10)?,
            tx.orders_with_products(&["p1".into(), "p2".into()], ann, 10)?,
            tx.product_order_counts(&["p1".into(), "p2".into(), "p9".into()], 10)?,
        ))
    });
    let mine: Vec<Vec<String>> = mine.iter().map(ids).collect();
    assert_eq!(mine, [vec!["p2"], vec!["p1"]], "ann's orders, newest first");
    let others: Vec<Vec<String>> = others.iter().map(ids).collect();
    assert_eq!(
        others,
        [vec!["p2"], vec!["p1", "p2"]],
        "bob's orders holding p1 or p2 (each once), newest first; not ann's nor cid's"
    );
    assert_eq!(counts, [("p1".to_string(), 2), ("p2".to_string(), 3)]);
    let capped = in_tx(store, |tx| {
        Ok((
            tx.product_order_counts(&["p2".into()], 2)?,
            tx.contact_order_products(ann, 1)?.len(),
            tx.orders_with_products(&["p2".into()], ann, 1)?.len(),
        ))
    });
    assert_eq!(capped, (vec![("p2".to_string(), 2)], 1, 1));
}

/// An order's product ids are indexed as recommendations read them, whether the order came in
/// through the intake or the engine recorded it: `product_id`, else `sku`, trimmed, numbers as
/// text, entries without either (or not objects) left out, each once per order.
fn an_orders_products_are_indexed_whichever_way_it_was_stored(store: &dyn Store) {
    let ann = contact(store, "ann");
    let products = json!({"products": [
        {"sku": "s1"},
        {"product_id": "  p2 "},
        {"product_id": 7},
        {"product_id": "", "sku": "s4"},
        {"product_id": "p2"},
        {"name": "no id"},
        "plain",
    ]});
    let accepted = NewEvent {
        properties: props(products.clone()),
        ..track("o1", "ann", "Order Completed", 1)
    };
    append_for(store, ann, &[accepted]);
    let recorded = NewEvent {
        properties: props(products),
        ..track("o2", "ann", "Order Completed", 2)
    };
    let not_an_order = NewEvent {
        properties: props(json!({"products": [{"product_id": "p2"}]})),
        ..track("v1", "ann", "Product Viewed", 3)
    };
    in_tx(store, |tx| {
        tx.record_event(ann, &recorded)?;
        tx.record_event(ann, &not_an_order)?;
        Ok(())
    });
    let ids: Vec<String> = ["s1", "p2", "7", "s4", "no id", "plain", "  p2 "]
        .map(String::from)
        .into();
    let counts = in_tx(store, |tx| tx.product_order_counts(&ids, 10));
    assert_eq!(
        counts,
        [
            ("s1".to_string(), 2),
            ("p2".to_string(), 2),
            ("7".to_string(), 2),
            ("s4".to_string(), 2),
        ]
    );
}

fn a_past_period_is_read_by_received_time_in_pages(store: &dyn Store) {
    // Received at 10, 20, 30, 40, 50 (the timestamp the client gave differs: it is not what
    // the period is about).
    let events: Vec<NewEvent> = (1..=5)
        .map(|i| NewEvent {
            received_at: at(i * 10),
            ..track(&format!("m{i}"), "ann", &format!("E{i}"), 1000 - i)
        })
        .collect();
    store.append_events(&events).unwrap();
    let names = |since: i64, until: i64, after: i64, limit: usize| -> Vec<(i64, String)> {
        store
            .events_received(at(since), at(until), after, limit)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.event.name))
            .collect()
    };
    let all = names(0, 100, 0, 100);
    assert_eq!(all.len(), 5);
    let in_period = names(20, 50, 0, 100);
    let in_period: Vec<&str> = in_period.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        in_period,
        ["E2", "E3", "E4"],
        "since inclusive, until exclusive"
    );
    let first = names(20, 50, 0, 2);
    assert_eq!(first.len(), 2);
    let rest = names(20, 50, first[1].0, 2);
    let rest: Vec<&str> = rest.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(rest, ["E4"], "the next page starts after the last seq read");
    let read = store.events_received(at(0), at(15), 0, 10).unwrap();
    assert_eq!(read[0].event.timestamp, at(999));
    assert_eq!(read[0].event.received_at, at(10));
    assert_eq!(read[0].event.user_id.as_deref(), Some("ann"));
}

conformance_tests!(
    a_past_period_is_read_by_received_time_in_pages,
    an_empty_log_has_nothing_pending_and_seq_zero,
    events_are_read_back_in_append_order_with_every_field,
    a_repeated_message_id_is_not_fresh_and_is_stored_once,
    concurrent_appends_get_distinct_seqs_and_one_copy_wins,
    pending_events_start_after_the_processed_mark_and_stop_at_the_bound,
    one_event_is_read_by_seq_with_its_contact,
    recorded_events_come_after_every_accepted_event_and_dedupe_by_message_id,
    events_between_reads_one_contacts_named_events_in_a_seq_window,
    order_products_are_read_newest_first_per_contact_and_across_contacts,
    an_orders_products_are_indexed_whichever_way_it_was_stored,
);
