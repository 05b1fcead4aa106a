//! Audiences: static lists and segments (definitions, members), from the API and inside an
//! engine transaction.

use serde_json::json;

use super::support::{at, contact, in_tx};
use crate::{Store, StoreError};

fn lists_are_created_once_and_counted(store: &dyn Store) {
    let created = store.create_list("vip", at(1)).unwrap();
    assert_eq!(
        (created.name.as_str(), created.members, created.created_at),
        ("vip", 0, at(1))
    );
    assert!(matches!(
        store.create_list("vip", at(2)),
        Err(StoreError::Conflict(_))
    ));
    let (ann, bob) = (contact(store, "ann"), contact(store, "bob"));
    in_tx(store, |tx| {
        tx.add_to_list(ann, "vip", at(3))?;
        tx.add_to_list(bob, "vip", at(3))?;
        tx.add_to_list(ann, "beta", at(4))
    });
    let lists: Vec<(String, i64, jiff::Timestamp)> = store
        .lists()
        .unwrap()
        .into_iter()
        .map(|l| (l.name, l.members, l.created_at))
        .collect();
    assert_eq!(
        lists,
        [
            ("beta".to_string(), 1, at(4)),
            ("vip".to_string(), 2, at(1))
        ],
        "by name; adding to an unknown list creates it"
    );
}

fn list_membership_is_added_and_removed_once(store: &dyn Store) {
    let ann = contact(store, "ann");
    let steps = in_tx(store, |tx| {
        Ok([
            tx.in_list(ann, "vip")?,
            tx.add_to_list(ann, "vip", at(1))?,
            tx.add_to_list(ann, "vip", at(2))?,
            tx.in_list(ann, "vip")?,
            tx.remove_from_list(ann, "vip")?,
            tx.remove_from_list(ann, "vip")?,
            tx.remove_from_list(ann, "no-such-list")?,
            tx.in_list(ann, "vip")?,
        ])
    });
    assert_eq!(steps, [false, true, false, true, true, false, false, false]);
    assert_eq!(
        store.lists().unwrap()[0].members,
        0,
        "the list stays, empty"
    );
}

fn list_members_are_paged_by_contact_id(store: &dyn Store) {
    let ids: Vec<i64> = ["ann", "bob", "cid", "dan"]
        .iter()
        .map(|u| contact(store, u))
        .collect();
    in_tx(store, |tx| {
        for id in [ids[3], ids[0], ids[2]] {
            tx.add_to_list(id, "vip", at(1))?;
        }
        tx.add_to_list(ids[1], "other", at(1))?;
        Ok(())
    });
    let api: Vec<i64> = store
        .list_members("vip", 2, 0)
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(api, [ids[0], ids[2]]);
    let rest: Vec<i64> = store
        .list_members("vip", 10, ids[2])
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(rest, [ids[3]]);
    let engine = in_tx(store, |tx| {
        Ok((
            tx.list_member_ids("vip", 0, 10)?,
            tx.list_member_ids("vip", ids[0], 1)?,
        ))
    });
    assert_eq!(engine, (vec![ids[0], ids[2], ids[3]], vec![ids[2]]));
    assert!(in_tx(store, |tx| tx.list_member_ids("nope", 0, 10)).is_empty());
    assert!(matches!(
        store.list_members("nope", 10, 0),
        Err(StoreError::NotFound(_))
    ));
}

fn a_segment_is_created_then_replaced_keeping_its_members(store: &dyn Store) {
    let condition = json!({"trait": "plan", "op": "eq", "value": "pro"});
    assert!(store.put_segment("pro", "Pro", &condition, at(1)).unwrap());
    let ann = contact(store, "ann");
    in_tx(store, |tx| {
        tx.set_segment_member("pro", ann, true, at(2)).map(|_| ())
    });
    let replaced = json!({"trait": "plan", "op": "eq", "value": "team"});
    assert!(
        !store
            .put_segment("pro", "Pro plans", &replaced, at(3))
            .unwrap()
    );
    let s = store.segment("pro").unwrap();
    assert_eq!(
        (s.name.as_str(), &s.condition, s.members),
        ("Pro plans", &replaced, 1)
    );
    assert_eq!((s.created_at, s.updated_at), (at(1), at(3)));
    store
        .put_segment("active", "Active", &json!({"all": []}), at(4))
        .unwrap();
    let ids: Vec<String> = store
        .segments()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["active", "pro"]);
    let definitions = in_tx(store, |tx| tx.segment_definitions());
    assert_eq!(
        definitions,
        [
            ("active".to_string(), json!({"all": []})),
            ("pro".to_string(), replaced.clone())
        ]
    );
    assert!(matches!(
        store.segment("nope"),
        Err(StoreError::NotFound(_))
    ));
}

fn segment_membership_changes_report_whether_anything_changed(store: &dyn Store) {
    store.put_segment("pro", "Pro", &json!({}), at(0)).unwrap();
    let ids: Vec<i64> = ["ann", "bob", "cid"]
        .iter()
        .map(|u| contact(store, u))
        .collect();
    let steps = in_tx(store, |tx| {
        Ok([
            tx.is_segment_member("pro", ids[0])?,
            tx.set_segment_member("pro", ids[0], true, at(1))?,
            tx.set_segment_member("pro", ids[0], true, at(2))?,
            tx.is_segment_member("pro", ids[0])?,
            tx.set_segment_member("pro", ids[1], false, at(2))?,
            tx.set_segment_member("pro", ids[2], true, at(2))?,
            tx.set_segment_member("pro", ids[1], true, at(2))?,
            tx.set_segment_member("pro", ids[1], false, at(3))?,
        ])
    });
    assert_eq!(steps, [false, true, false, true, false, true, true, true]);
    let members = in_tx(store, |tx| {
        Ok((
            tx.segment_member_ids("pro", 0, 10)?,
            tx.segment_member_ids("pro", ids[0], 10)?,
        ))
    });
    assert_eq!(members, (vec![ids[0], ids[2]], vec![ids[2]]));
    let api: Vec<i64> = store
        .segment_members("pro", 1, 0)
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(api, [ids[0]]);
    assert_eq!(store.segment("pro").unwrap().members, 2);
    assert!(matches!(
        store.segment_members("nope", 10, 0),
        Err(StoreError::NotFound(_))
    ));
}

fn deleting_a_segment_removes_its_members_and_checks(store: &dyn Store) {
    store.put_segment("pro", "Pro", &json!({}), at(0)).unwrap();
    store
        .put_segment("kept", "Kept", &json!({}), at(0))
        .unwrap();
    let ann = contact(store, "ann");
    in_tx(store, |tx| {
        tx.set_segment_member("pro", ann, true, at(1))?;
        tx.set_segment_member("kept", ann, true, at(1))?;
        tx.set_segment_check("pro", ann, Some(at(50)))?;
        tx.set_segment_check("kept", ann, Some(at(60)))
    });
    store.delete_segment("pro").unwrap();
    assert!(matches!(
        store.delete_segment("pro"),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.next_wake_at().unwrap(),
        Some(at(60)),
        "its checks are gone"
    );
    // Made again under the same id, it starts empty.
    store.put_segment("pro", "Pro", &json!({}), at(2)).unwrap();
    assert_eq!(store.segment("pro").unwrap().members, 0);
    assert!(!in_tx(store, |tx| tx.is_segment_member("pro", ann)));
    assert!(in_tx(store, |tx| tx.is_segment_member("kept", ann)));
}

/// The start of the hour `n` hours after the one `at(0)` falls in (`at(0)` is 22:13:20 UTC).
fn hour(n: i64) -> jiff::Timestamp {
    at(-800 + n * 3600)
}

/// A segment's history as (hour number, entered, left) and the members before the range.
fn history(store: &dyn Store, id: &str, from: i64, to: i64) -> (i64, Vec<(i64, i64, i64)>) {
    let h = store.segment_history(id, hour(from), hour(to)).unwrap();
    let hours = h
        .hours
        .iter()
        .map(|x| {
            let n = (x.hour.as_second() - hour(0).as_second()) / 3600;
            (n, x.entered, x.left)
        })
        .collect();
    (h.members_before, hours)
}

fn segment_history_counts_who_entered_and_left_each_hour(store: &dyn Store) {
    store.put_segment("pro", "Pro", &json!({}), at(0)).unwrap();
    store
        .put_segment("other", "Other", &json!({}), at(0))
        .unwrap();
    let [ann, bob, cid] = ["ann", "bob", "cid"].map(|u| contact(store, u));
    in_tx(store, |tx| {
        tx.set_segment_member("pro", ann, true, at(1))?;
        tx.set_segment_member("pro", bob, true, at(2))?;
        // No change, no count.
        tx.set_segment_member("pro", bob, true, at(3))?;
        tx.set_segment_member("pro", cid, false, at(3))?;
        tx.set_segment_member("other", cid, true, at(3))?;
        Ok(())
    });
    // The next hour: one in and out again, one out, one in.
    in_tx(store, |tx| {
        tx.set_segment_member("pro", bob, false, hour(1))?;
        tx.set_segment_member("pro", cid, true, at(2801))?;
        tx.set_segment_member("pro", ann, false, at(2900))?;
        tx.set_segment_member("pro", ann, true, at(3000))
    });
    // Nothing in hour 2; hour 3 is the last second of it.
    in_tx(store, |tx| {
        tx.set_segment_member("pro", cid, false, at(-800 + 4 * 3600 - 1))
    });
    assert_eq!(
        history(store, "pro", 0, 4),
        (0, vec![(0, 2, 0), (1, 2, 2), (3, 0, 1)])
    );
    assert_eq!(
        history(store, "pro", 1, 3),
        (2, vec![(1, 2, 2)]),
        "the members at the start are the changes before it, summed"
    );
    assert_eq!(history(store, "pro", 4, 10), (1, vec![]));
    assert_eq!(
        history(store, "pro", 4, 10).0,
        store.segment("pro").unwrap().members
    );
    assert_eq!(history(store, "other", 0, 4), (0, vec![(0, 1, 0)]));
    assert!(matches!(
        store.segment_history("nope", hour(0), hour(1)),
        Err(StoreError::NotFound(_))
    ));
}

/// An erasure takes the contact's memberships with it, and a merge makes two members one:
/// both are counted as members leaving, so the history's sum stays the segment's size.
fn segment_history_counts_erasures_and_merges_as_leaving(store: &dyn Store) {
    store.put_segment("pro", "Pro", &json!({}), at(0)).unwrap();
    let [ann, bob, old, new] = ["ann", "bob", "old-login", "new-login"].map(|u| contact(store, u));
    in_tx(store, |tx| {
        for id in [ann, bob, old, new] {
            tx.set_segment_member("pro", id, true, at(1))?;
        }
        Ok(())
    });
    in_tx(store, |tx| tx.erase_contact(ann, hour(1)).map(|_| ()));
    in_tx(store, |tx| {
        tx.alias("old-login", "new-login", hour(2)).map(|_| ())
    });
    assert_eq!(store.segment("pro").unwrap().members, 2);
    assert_eq!(
        history(store, "pro", 0, 3),
        (0, vec![(0, 4, 0), (1, 0, 1), (2, 0, 1)])
    );
    // A merged contact that was the only member of the two moves, and the size stays.
    let [visitor, known] = ["visitor", "known"].map(|u| contact(store, u));
    in_tx(store, |tx| {
        tx.set_segment_member("pro", visitor, true, hour(3))
            .map(|_| ())
    });
    in_tx(store, |tx| {
        tx.alias("visitor", "known", hour(3)).map(|_| ())
    });
    assert!(in_tx(store, |tx| tx.is_segment_member("pro", known)));
    assert_eq!(history(store, "pro", 3, 4), (2, vec![(3, 1, 0)]));
    assert_eq!(store.segment("pro").unwrap().members, 3);
}

fn deleting_a_segment_removes_its_history(store: &dyn Store) {
    store.put_segment("pro", "Pro", &json!({}), at(0)).unwrap();
    let ann = contact(store, "ann");
    in_tx(store, |tx| {
        tx.set_segment_member("pro", ann, true, at(1)).map(|_| ())
    });
    store.delete_segment("pro").unwrap();
    store.put_segment("pro", "Pro", &json!({}), at(2)).unwrap();
    assert_eq!(history(store, "pro", 0, 2), (0, vec![]));
}

conformance_tests!(
    segment_history_counts_who_entered_and_left_each_hour,
    segment_history_counts_erasures_and_merges_as_leaving,
    deleting_a_segment_removes_its_history,
    lists_are_created_once_and_counted,
    list_membership_is_added_and_removed_once,
    list_members_are_paged_by_contact_id,
    a_segment_is_created_then_replaced_keeping_its_members,
    segment_membership_changes_report_whether_anything_changed,
    deleting_a_segment_removes_its_members_and_checks,
);
