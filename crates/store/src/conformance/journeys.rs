//! Journeys: drafts, immutable published versions with their pinned templates, and the
//! status that decides what the engine runs.

use serde_json::json;

use super::support::{at, contact, conversion_of, enrollment, in_tx, template};
use crate::{JourneyStatus, Store, StoreError};

fn a_draft_is_created_then_replaced_and_listed_in_creation_order(store: &dyn Store) {
    let created = store
        .put_journey_draft("welcome", "Welcome", &json!({"v": 1}), at(1))
        .unwrap();
    assert_eq!(
        (created.status, created.live_version),
        (JourneyStatus::Draft, None)
    );
    assert_eq!((created.created_at, created.updated_at), (at(1), at(1)));
    assert_eq!(
        (created.entered, created.active, created.converted),
        (0, 0, 0)
    );
    store
        .put_journey_draft("another", "Another", &json!({}), at(2))
        .unwrap();
    let replaced = store
        .put_journey_draft("welcome", "Welcome!", &json!({"v": 2}), at(3))
        .unwrap();
    assert_eq!(replaced.name, "Welcome!");
    assert_eq!(replaced.draft, json!({"v": 2}));
    assert_eq!((replaced.created_at, replaced.updated_at), (at(1), at(3)));
    let ids: Vec<String> = store
        .journeys()
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids, ["welcome", "another"]);
    assert!(matches!(
        store.journey("nope"),
        Err(StoreError::NotFound(_))
    ));
}

fn publishing_numbers_versions_and_makes_the_journey_live(store: &dyn Store) {
    store
        .put_journey_draft("j", "J", &json!({"v": 0}), at(0))
        .unwrap();
    assert!(store.journey_versions("j").unwrap().is_empty());
    let first = store
        .publish_journey("j", &json!({"v": 1}), &[], at(1))
        .unwrap();
    assert_eq!(
        (first.status, first.live_version),
        (JourneyStatus::Live, Some(1))
    );
    let second = store
        .publish_journey("j", &json!({"v": 2}), &[], at(2))
        .unwrap();
    assert_eq!(second.live_version, Some(2));
    let versions = store.journey_versions("j").unwrap();
    let seen: Vec<(i64, serde_json::Value, jiff::Timestamp)> = versions
        .into_iter()
        .map(|v| (v.version, v.document, v.published_at))
        .collect();
    assert_eq!(
        seen,
        [(1, json!({"v": 1}), at(1)), (2, json!({"v": 2}), at(2))]
    );
    assert_eq!(
        store.journey_version("j", 1).unwrap().document,
        json!({"v": 1})
    );
    assert!(matches!(
        store.journey_version("j", 3),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.journey_versions("nope"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.publish_journey("nope", &json!({}), &[], at(3)),
        Err(StoreError::NotFound(_))
    ));
}

fn a_paused_journey_stays_paused_when_published_and_an_archived_one_is_frozen(store: &dyn Store) {
    store
        .put_journey_draft("j", "J", &json!({}), at(0))
        .unwrap();
    store
        .publish_journey("j", &json!({"v": 1}), &[], at(1))
        .unwrap();
    let paused = store
        .set_journey_status("j", JourneyStatus::Paused, at(2))
        .unwrap();
    assert_eq!(
        (paused.status, paused.updated_at),
        (JourneyStatus::Paused, at(2))
    );
    let republished = store
        .publish_journey("j", &json!({"v": 2}), &[], at(3))
        .unwrap();
    assert_eq!(
        (republished.status, republished.live_version),
        (JourneyStatus::Paused, Some(2))
    );
    store
        .set_journey_status("j", JourneyStatus::Archived, at(4))
        .unwrap();
    assert!(matches!(
        store.put_journey_draft("j", "J", &json!({}), at(5)),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.publish_journey("j", &json!({}), &[], at(5)),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.set_journey_status("nope", JourneyStatus::Live, at(5)),
        Err(StoreError::NotFound(_))
    ));
}

fn a_published_version_pins_the_current_version_of_its_templates(store: &dyn Store) {
    store.put_template(&template("mail", "v1"), at(0)).unwrap();
    store.put_template(&template("mail", "v2"), at(1)).unwrap();
    store.put_template(&template("other", "v1"), at(1)).unwrap();
    store
        .put_journey_draft("j", "J", &json!({}), at(2))
        .unwrap();
    let templates = ["mail".to_string(), "missing".to_string()];
    store
        .publish_journey("j", &json!({}), &templates, at(3))
        .unwrap();
    store.put_template(&template("mail", "v3"), at(4)).unwrap();
    store
        .publish_journey("j", &json!({}), &templates, at(5))
        .unwrap();
    let pins: Vec<Vec<(String, i64)>> = store
        .journey_versions("j")
        .unwrap()
        .into_iter()
        .map(|v| v.templates.into_iter().collect())
        .collect();
    assert_eq!(
        pins,
        [vec![("mail".to_string(), 2)], vec![("mail".to_string(), 3)]],
        "a missing template pins nothing"
    );
    assert_eq!(store.journey_version("j", 1).unwrap().templates["mail"], 2);
    let pinned: Vec<(i64, Vec<(String, i64)>)> = store
        .template_versions("mail")
        .unwrap()
        .into_iter()
        .map(|v| {
            (
                v.version,
                v.pinned_by
                    .into_iter()
                    .map(|p| (p.journey_id, p.version))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        pinned,
        [
            (3, vec![("j".to_string(), 2)]),
            (2, vec![("j".to_string(), 1)]),
            (1, vec![])
        ]
    );
}

fn running_journeys_are_the_live_and_paused_versions_and_those_still_in_use(store: &dyn Store) {
    for id in ["live", "paused", "draft", "archived"] {
        store.put_journey_draft(id, id, &json!({}), at(0)).unwrap();
    }
    for id in ["live", "paused", "archived"] {
        store
            .publish_journey(id, &json!({"v": 1}), &[], at(1))
            .unwrap();
    }
    // Contacts still enrolled in version 1 of `live` keep it running after version 2.
    let ann = contact(store, "ann");
    in_tx(store, |tx| {
        tx.insert_enrollment(&enrollment("live", ann, "a", None), at(1))
    });
    store
        .publish_journey("live", &json!({"v": 2}), &[], at(2))
        .unwrap();
    store
        .publish_journey("paused", &json!({"v": 2}), &[], at(2))
        .unwrap();
    store
        .set_journey_status("paused", JourneyStatus::Paused, at(3))
        .unwrap();
    store
        .set_journey_status("archived", JourneyStatus::Archived, at(3))
        .unwrap();
    let mut running: Vec<(String, i64, JourneyStatus)> = store
        .running_journeys()
        .unwrap()
        .into_iter()
        .map(|(s, v)| (v.journey_id, v.version, s))
        .collect();
    running.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(
        running,
        [
            ("live".to_string(), 1, JourneyStatus::Live),
            ("live".to_string(), 2, JourneyStatus::Live),
            ("paused".to_string(), 2, JourneyStatus::Paused),
        ]
    );
}

fn a_journeys_counts_follow_its_enrollments(store: &dyn Store) {
    store
        .put_journey_draft("j", "J", &json!({}), at(0))
        .unwrap();
    let ann = contact(store, "ann");
    in_tx(store, |tx| {
        use waymark_core::EnrollmentStatus::*;
        for (status, converts) in [
            (Active, false),
            (Active, false),
            (Converted, true),
            (Completed, false),
            // Converted after it ended, within the conversion window.
            (Completed, true),
            (Exited, false),
        ] {
            let mut e = enrollment("j", ann, "a", None);
            e.status = status;
            let e = tx.insert_enrollment(&e, at(0))?;
            if converts {
                tx.record_conversion(&conversion_of(&e, at(1)))?;
            }
        }
        Ok(())
    });
    let j = store.journey("j").unwrap();
    assert_eq!((j.entered, j.active, j.converted), (6, 2, 2));
}

conformance_tests!(
    a_draft_is_created_then_replaced_and_listed_in_creation_order,
    publishing_numbers_versions_and_makes_the_journey_live,
    a_paused_journey_stays_paused_when_published_and_an_archived_one_is_frozen,
    a_published_version_pins_the_current_version_of_its_templates,
    running_journeys_are_the_live_and_paused_versions_and_those_still_in_use,
    a_journeys_counts_follow_its_enrollments,
);
