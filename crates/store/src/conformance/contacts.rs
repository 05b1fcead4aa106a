//! Contacts: resolving identities, merges (anonymous into identified, alias), traits, and
//! the API's reads (one contact, searches, the timeline).

use serde_json::json;
use waymark_core::StepLog;

use super::support::{append_for, at, contact, email, enrollment, in_tx, props, queue, track};
use crate::{ContactQuery, Store, TimelineEntry};

fn resolve(store: &dyn Store, user: Option<&str>, anon: Option<&str>) -> i64 {
    in_tx(store, |tx| tx.resolve_contact(user, anon, at(5)))
}

fn resolving_finds_the_same_contact_by_user_id_and_by_anonymous_id(store: &dyn Store) {
    let ann = resolve(store, Some("ann"), None);
    assert_eq!(resolve(store, Some("ann"), None), ann);
    let visitor = resolve(store, None, Some("web-1"));
    assert_ne!(visitor, ann);
    assert_eq!(resolve(store, None, Some("web-1")), visitor);
    let bob = resolve(store, Some("bob"), None);
    assert!(bob != ann && bob != visitor);
    let detail = store.contact(visitor).unwrap();
    assert_eq!(detail.contact.user_id, None);
    assert_eq!(detail.anonymous_ids, ["web-1"]);
    assert_eq!(
        store.contact(ann).unwrap().contact.user_id.as_deref(),
        Some("ann")
    );
    assert_eq!(store.contact(ann).unwrap().contact.created_at, at(5));
}

fn an_anonymous_contact_identified_later_keeps_its_id(store: &dyn Store) {
    let visitor = resolve(store, None, Some("web-1"));
    // Its first identify: the anonymous contact becomes the user's.
    assert_eq!(resolve(store, Some("ann"), Some("web-1")), visitor);
    assert_eq!(resolve(store, Some("ann"), None), visitor);
    assert_eq!(
        store.contact(visitor).unwrap().contact.user_id.as_deref(),
        Some("ann")
    );
    // A new anonymous id of a known user is linked to it.
    assert_eq!(resolve(store, Some("ann"), Some("phone-2")), visitor);
    assert_eq!(resolve(store, None, Some("phone-2")), visitor);
    assert_eq!(
        store.contact(visitor).unwrap().anonymous_ids,
        ["phone-2", "web-1"]
    );
}

fn an_anonymous_id_of_one_known_user_moves_to_another_without_a_merge(store: &dyn Store) {
    // A shared device: ann used it first, then bob.
    let ann = resolve(store, Some("ann"), Some("device"));
    let bob = resolve(store, Some("bob"), None);
    assert_eq!(resolve(store, Some("bob"), Some("device")), bob);
    assert!(
        store.contact(ann).is_ok(),
        "two known users are never merged"
    );
    assert_eq!(resolve(store, None, Some("device")), bob);
    assert!(store.contact(ann).unwrap().anonymous_ids.is_empty());
    // An unknown user on a device of a known one is a new contact, which takes the device.
    let cid = resolve(store, Some("cid"), Some("device"));
    assert!(cid != ann && cid != bob);
    assert_eq!(resolve(store, None, Some("device")), cid);
    assert_eq!(
        store.contact(bob).unwrap().contact.user_id.as_deref(),
        Some("bob")
    );
}

/// Gives `contact` an event, an enrollment, a message and a list membership.
fn give_history(store: &dyn Store, contact_id: i64, tag: &str) {
    append_for(
        store,
        contact_id,
        &[track(&format!("ev-{tag}"), tag, "Viewed", 1)],
    );
    in_tx(store, |tx| {
        tx.insert_enrollment(
            &enrollment(&format!("j-{tag}"), contact_id, "a", None),
            at(1),
        )?;
        tx.add_to_list(contact_id, &format!("list-{tag}"), at(1))?;
        Ok(())
    });
    queue(store, &[email(&format!("msg-{tag}"), contact_id, 1)]);
}

fn identifying_an_anonymous_visitor_merges_its_history_into_the_known_user(store: &dyn Store) {
    let ann = resolve(store, Some("ann"), None);
    let visitor = resolve(store, None, Some("web-1"));
    in_tx(store, |tx| {
        tx.update_traits(
            ann,
            &props(json!({"plan": "pro", "email": "ann@example.com"})),
            at(2),
        )?;
        tx.update_traits(
            visitor,
            &props(json!({"plan": "free", "color": "red"})),
            at(2),
        )
    });
    give_history(store, visitor, "visitor");
    give_history(store, ann, "ann");

    assert_eq!(resolve(store, Some("ann"), Some("web-1")), ann);
    assert!(
        store.contact(visitor).is_err(),
        "the anonymous contact is gone"
    );
    assert_eq!(resolve(store, None, Some("web-1")), ann);
    let detail = store.contact(ann).unwrap();
    assert_eq!(detail.anonymous_ids, ["web-1"]);
    assert_eq!(detail.lists, ["list-ann", "list-visitor"]);
    let journeys: Vec<&str> = detail
        .enrollments
        .iter()
        .map(|e| e.journey_id.as_str())
        .collect();
    assert_eq!(journeys, ["j-visitor", "j-ann"]);
    assert_eq!(
        detail.contact.traits,
        props(json!({"plan": "pro", "color": "red", "email": "ann@example.com"})),
        "the known user's traits win"
    );
    assert_eq!(detail.contact.email.as_deref(), Some("ann@example.com"));
    let events = in_tx(store, |tx| tx.events_between(ann, "Viewed", 0, i64::MAX));
    assert_eq!(events.len(), 2);
    let messages = store
        .messages(&crate::MessageQuery {
            contact_id: Some(ann),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let keys: Vec<&str> = messages
        .iter()
        .map(|m| m.idempotency_key.as_str())
        .collect();
    assert_eq!(keys, ["msg-visitor", "msg-ann"]);
    assert!(messages.iter().all(|m| m.user_id.as_deref() == Some("ann")));
}

fn an_alias_merges_the_previous_identity_into_the_user(store: &dyn Store) {
    let old = resolve(store, Some("old-login"), None);
    let new = resolve(store, Some("new-login"), None);
    give_history(store, old, "old");
    in_tx(store, |tx| {
        tx.update_traits(old, &props(json!({"plan": "free"})), at(2))
    });
    let survivor = in_tx(store, |tx| tx.alias("old-login", "new-login", at(3)));
    assert_eq!(survivor, new);
    assert!(store.contact(old).is_err());
    let detail = store.contact(new).unwrap();
    assert_eq!(detail.lists, ["list-old"]);
    assert_eq!(detail.enrollments.len(), 1);
    assert_eq!(detail.contact.traits, props(json!({"plan": "free"})));
    assert_eq!(
        in_tx(store, |tx| tx.events_between(new, "Viewed", 0, i64::MAX)).len(),
        1
    );
    // The merged-away user id still names the surviving contact.
    assert_eq!(resolve(store, Some("old-login"), None), new);
}

fn an_alias_of_unknown_or_single_identities_creates_or_renames(store: &dyn Store) {
    // Neither known: a contact for the user, reachable by the previous id too.
    let a = in_tx(store, |tx| tx.alias("anon-a", "ann", at(1)));
    assert_eq!(resolve(store, Some("ann"), None), a);
    assert_eq!(resolve(store, None, Some("anon-a")), a);
    // Only the previous identity known: it takes the new user id.
    let visitor = resolve(store, None, Some("web-b"));
    assert_eq!(in_tx(store, |tx| tx.alias("web-b", "bob", at(2))), visitor);
    assert_eq!(resolve(store, Some("bob"), None), visitor);
    // Only the user known: the previous id is linked to it.
    assert_eq!(in_tx(store, |tx| tx.alias("web-c", "ann", at(3))), a);
    assert_eq!(resolve(store, None, Some("web-c")), a);
}

fn updating_traits_merges_removes_nulls_and_keeps_address_columns_in_step(store: &dyn Store) {
    let ann = contact(store, "ann");
    let set = |traits: serde_json::Value, secs| {
        in_tx(store, |tx| {
            tx.update_traits(ann, &props(traits.clone()), at(secs))
        })
    };
    set(
        json!({"email": "ann@example.com", "phone": "+4915100000001", "timezone": "Europe/Berlin", "plan": "pro"}),
        1,
    );
    set(json!({"phone": null, "age": 41}), 2);
    let c = in_tx(store, |tx| tx.contact(ann));
    assert_eq!(
        c.traits,
        props(
            json!({"email": "ann@example.com", "timezone": "Europe/Berlin", "plan": "pro", "age": 41})
        )
    );
    assert_eq!(c.email.as_deref(), Some("ann@example.com"));
    assert_eq!(c.phone, None, "a null trait clears its column");
    assert_eq!(c.timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(c.updated_at, at(2));
    // An empty patch changes nothing, not even the time.
    set(json!({}), 3);
    assert_eq!(in_tx(store, |tx| tx.contact(ann)).updated_at, at(2));
    let missing = store.engine_tx(&mut |tx| tx.contact(ann + 1000).map(|_| ()));
    assert!(
        matches!(missing, Err(crate::StoreError::NotFound(_))),
        "{missing:?}"
    );
}

fn contacts_are_found_by_address_email_and_id_scans(store: &dyn Store) {
    let ids: Vec<i64> = ["ann", "bob", "cid"]
        .iter()
        .map(|u| contact(store, u))
        .collect();
    in_tx(store, |tx| {
        tx.update_traits(
            ids[0],
            &props(json!({"email": "Shared@Example.com"})),
            at(1),
        )?;
        tx.update_traits(
            ids[1],
            &props(json!({"email": "Shared@Example.com", "phone": "+15550001"})),
            at(1),
        )?;
        tx.update_traits(ids[2], &props(json!({"email": "cid@example.com"})), at(1))
    });
    let found = in_tx(store, |tx| {
        Ok((
            tx.contacts_with_address("email", "Shared@Example.com", 10)?,
            tx.contacts_with_address("email", "Shared@Example.com", 1)?,
            tx.contacts_with_address("email", "shared@example.com", 10)?,
            tx.contacts_with_address("sms", "+15550001", 10)?,
            tx.contacts_with_address("webhook", "+15550001", 10)?,
            tx.contact_by_email(" SHARED@example.com ")?,
            tx.contact_by_email("nobody@example.com")?,
            tx.contact_ids(0, 2)?,
            tx.contact_ids(ids[1], 10)?,
        ))
    });
    assert_eq!(found.0, [ids[0], ids[1]], "exact address, oldest first");
    assert_eq!(found.1, [ids[0]]);
    assert!(found.2.is_empty(), "contacts_with_address is exact");
    assert_eq!(found.3, [ids[1]]);
    assert!(found.4.is_empty());
    assert_eq!(found.5, Some(ids[0]), "case-insensitive, the oldest");
    assert_eq!(found.6, None);
    assert_eq!(found.7, [ids[0], ids[1]]);
    assert_eq!(found.8, [ids[2]]);
}

fn find_contacts_filters_searches_by_prefix_and_pages(store: &dyn Store) {
    let ann = resolve(store, Some("ann"), Some("web-ann"));
    let anna = contact(store, "anna");
    let bob = contact(store, "bob");
    let odd = contact(store, "a_b%c");
    in_tx(store, |tx| {
        tx.update_traits(
            bob,
            &props(json!({"email": "ann.b@example.com", "phone": "+4930111"})),
            at(1),
        )
    });
    let find = |q: ContactQuery| -> Vec<i64> {
        store
            .find_contacts(&ContactQuery {
                limit: q.limit.max(1),
                ..q
            })
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect()
    };
    let q = |f: fn(&mut ContactQuery)| {
        let mut q = ContactQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    assert_eq!(find(q(|q| q.user_id = Some("ann".into()))), [ann]);
    assert_eq!(
        find(q(|q| q.email = Some("ann.b@example.com".into()))),
        [bob]
    );
    assert_eq!(find(q(|q| q.phone = Some("+4930111".into()))), [bob]);
    assert_eq!(find(q(|q| q.anonymous_id = Some("web-ann".into()))), [ann]);
    assert_eq!(find(q(|q| q.search = Some("ann".into()))), [ann, anna, bob]);
    assert_eq!(
        find(q(|q| q.search = Some("ANN".into()))),
        [ann, anna, bob],
        "ignoring ASCII case"
    );
    assert_eq!(find(q(|q| q.search = Some("+4930".into()))), [bob]);
    assert_eq!(
        find(q(|q| q.search = Some("a_".into()))),
        [odd],
        "_ is no wildcard"
    );
    assert_eq!(
        find(q(|q| q.search = Some("a_b%".into()))),
        [odd],
        "% is no wildcard"
    );
    assert_eq!(
        find(q(|q| q.search = Some("zzz".into()))),
        Vec::<i64>::new()
    );
    assert_eq!(find(q(|q| q.limit = 2)), [ann, anna]);
    assert_eq!(
        find(ContactQuery {
            after_id: anna,
            limit: 100,
            ..Default::default()
        }),
        [bob, odd]
    );
}

fn the_timeline_interleaves_events_steps_and_messages_oldest_first(store: &dyn Store) {
    let ann = contact(store, "ann");
    append_for(
        store,
        ann,
        &[
            track("m1", "ann", "Signed Up", 10),
            track("m2", "ann", "Viewed", 40),
        ],
    );
    in_tx(store, |tx| {
        let e = tx.insert_enrollment(&enrollment("j", ann, "start", None), at(10))?;
        tx.record_steps(
            e.id,
            &[StepLog::Entered {
                node: "start".into(),
            }],
            at(10),
        )
    });
    queue(store, &[email("k1", ann, 20)]);
    let timeline = store.timeline(ann, 100).unwrap();
    let kinds: Vec<String> = timeline
        .iter()
        .map(|e| match e {
            TimelineEntry::Event { name, .. } => format!("event {name}"),
            TimelineEntry::Step { node, action, .. } => format!("step {node} {action}"),
            TimelineEntry::Message {
                template, status, ..
            } => format!("message {template} {status}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "event Signed Up",
            "step start entered",
            "message welcome queued",
            "event Viewed"
        ],
        "an event comes before the step it caused at the same time"
    );
    let limited = store.timeline(ann, 2).unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[1].at(), at(40), "the limit keeps the newest");
    assert!(store.timeline(ann + 1000, 10).unwrap().is_empty());
}

fn an_unknown_contact_is_not_found(store: &dyn Store) {
    assert!(matches!(
        store.contact(4242),
        Err(crate::StoreError::NotFound(_))
    ));
}

conformance_tests!(
    resolving_finds_the_same_contact_by_user_id_and_by_anonymous_id,
    an_anonymous_contact_identified_later_keeps_its_id,
    an_anonymous_id_of_one_known_user_moves_to_another_without_a_merge,
    identifying_an_anonymous_visitor_merges_its_history_into_the_known_user,
    an_alias_merges_the_previous_identity_into_the_user,
    an_alias_of_unknown_or_single_identities_creates_or_renames,
    updating_traits_merges_removes_nulls_and_keeps_address_columns_in_step,
    contacts_are_found_by_address_email_and_id_scans,
    find_contacts_filters_searches_by_prefix_and_pages,
    the_timeline_interleaves_events_steps_and_messages_oldest_first,
    an_unknown_contact_is_not_found,
);
