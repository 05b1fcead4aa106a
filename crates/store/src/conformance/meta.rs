//! Installation-wide settings.

use crate::Store;

fn a_setting_reads_back_and_can_be_replaced(store: &dyn Store) {
    assert_eq!(store.meta("installation_id").unwrap(), None);
    store.set_meta("installation_id", "abc").unwrap();
    store.set_meta("installation_id", "def").unwrap();
    assert_eq!(
        store.meta("installation_id").unwrap().as_deref(),
        Some("def")
    );
}

conformance_tests!(a_setting_reads_back_and_can_be_replaced);
