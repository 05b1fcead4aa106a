//! Templates: every change a new immutable version, readable after the template changes or
//! is deleted.

use waymark_core::journey::Channel;

use super::support::{at, in_tx, template};
use crate::{Store, StoreError};

fn a_template_is_created_then_versioned_only_when_it_changes(store: &dyn Store) {
    assert!(
        store.put_template(&template("mail", "v1"), at(1)).unwrap(),
        "created"
    );
    assert!(!store.put_template(&template("mail", "v1"), at(2)).unwrap());
    assert_eq!(
        store.get_template("mail").unwrap().version,
        1,
        "an equal definition is no new version"
    );
    assert!(
        !store.put_template(&template("mail", "v2"), at(3)).unwrap(),
        "changed, not created"
    );
    let current = store.get_template("mail").unwrap();
    assert_eq!(current.definition, template("mail", "v2"));
    assert_eq!(
        (current.version, current.created_at, current.updated_at),
        (2, at(1), at(3))
    );
    let versions: Vec<(i64, jiff::Timestamp)> = store
        .template_versions("mail")
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.created_at))
        .collect();
    assert_eq!(versions, [(2, at(3)), (1, at(1))], "newest first");
    let old = store.get_template_version("mail", 1).unwrap();
    assert_eq!(old.definition.subject.as_deref(), Some("v1"));
    assert_eq!(
        (old.version, old.created_at, old.updated_at),
        (1, at(1), at(1))
    );
    assert!(matches!(
        store.get_template_version("mail", 9),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get_template("nope"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.template_versions("nope"),
        Err(StoreError::NotFound(_))
    ));
}

fn templates_are_listed_by_id_with_their_channel(store: &dyn Store) {
    let sms = waymark_core::journey::TemplateDefinition {
        channel: Channel::Sms,
        subject: None,
        text: None,
        body: Some("Hi".into()),
        ..template("b-text", "")
    };
    store.put_template(&sms, at(0)).unwrap();
    store
        .put_template(&template("a-mail", "Hi"), at(0))
        .unwrap();
    let ids: Vec<String> = store
        .templates()
        .unwrap()
        .into_iter()
        .map(|t| t.definition.id)
        .collect();
    assert_eq!(ids, ["a-mail", "b-text"]);
    assert_eq!(
        store.template_channel("b-text").unwrap(),
        Some(Channel::Sms)
    );
    assert_eq!(
        store.template_channel("a-mail").unwrap(),
        Some(Channel::Email)
    );
    assert_eq!(store.template_channel("nope").unwrap(), None);
}

fn a_deleted_templates_versions_stay_readable_and_numbers_continue(store: &dyn Store) {
    store.put_template(&template("mail", "v1"), at(1)).unwrap();
    store.put_template(&template("mail", "v2"), at(2)).unwrap();
    store.delete_template("mail").unwrap();
    assert!(matches!(
        store.get_template("mail"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_template("mail"),
        Err(StoreError::NotFound(_))
    ));
    assert!(store.templates().unwrap().is_empty());
    let (current, pinned) = in_tx(store, |tx| {
        Ok((tx.template("mail")?, tx.template_version("mail", 2)?))
    });
    assert!(current.is_none());
    assert_eq!(
        pinned.expect("kept").definition.subject.as_deref(),
        Some("v2")
    );
    assert_eq!(
        store
            .get_template_version("mail", 1)
            .unwrap()
            .definition
            .subject
            .as_deref(),
        Some("v1")
    );
    // Made again: a new template, whose numbers go on after the deleted ones.
    assert!(store.put_template(&template("mail", "v1"), at(3)).unwrap());
    assert_eq!(store.get_template("mail").unwrap().version, 3);
}

fn the_engine_reads_the_current_and_pinned_versions(store: &dyn Store) {
    store.put_template(&template("mail", "v1"), at(1)).unwrap();
    store.put_template(&template("mail", "v2"), at(2)).unwrap();
    let (current, first, missing) = in_tx(store, |tx| {
        Ok((
            tx.template("mail")?,
            tx.template_version("mail", 1)?,
            tx.template_version("mail", 3)?,
        ))
    });
    let current = current.expect("exists");
    assert_eq!(
        (current.version, current.definition.subject.as_deref()),
        (2, Some("v2"))
    );
    assert_eq!(
        first.expect("kept").definition.subject.as_deref(),
        Some("v1")
    );
    assert!(missing.is_none());
}

conformance_tests!(
    a_template_is_created_then_versioned_only_when_it_changes,
    templates_are_listed_by_id_with_their_channel,
    a_deleted_templates_versions_stay_readable_and_numbers_continue,
    the_engine_reads_the_current_and_pinned_versions,
);
