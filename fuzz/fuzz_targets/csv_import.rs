//! The contact importer (`waymark import contacts`): any bytes as a CSV file, its delimiter
//! found as the importer finds it, read with the importer's reader and checked row by row,
//! never panic; an accepted row has a `user_id` or an `email`, and its email, phone and time
//! zone are already normalised (checking them again changes nothing), so the server receives
//! exactly what the importer checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use waymark::import::{contact_from_row, contacts_reader, detect_delimiter};
use waymark_core::{Email, Phone, TimeZoneName};

fuzz_target!(|data: &[u8]| {
    let mut reader = contacts_reader(data, detect_delimiter(data));
    let Ok(headers) = reader.headers().cloned() else {
        return;
    };
    let mut row = csv::StringRecord::new();
    // A read error skips the row, as the importer does; stop at the end or at a loop guard.
    for _ in 0..10_000 {
        match reader.read_record(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) => continue,
        }
        let Ok(contact) = contact_from_row(&headers, &row) else {
            continue;
        };
        assert!(
            contact.get("user_id").is_some() || contact.get("email").is_some(),
            "a contact without user_id or email: {contact}"
        );
        assert!(contact.get("traits").is_some_and(Value::is_object));
        if let Some(e) = contact.get("email").and_then(Value::as_str) {
            let again =
                Email::parse(e).unwrap_or_else(|err| panic!("{e:?} no longer parses: {}", err.0));
            assert_eq!(again.as_str(), e, "email normalisation is not stable");
        }
        if let Some(p) = contact.get("phone").and_then(Value::as_str) {
            let again =
                Phone::parse(p).unwrap_or_else(|err| panic!("{p:?} no longer parses: {}", err.0));
            assert_eq!(again.as_str(), p, "phone normalisation is not stable");
        }
        if let Some(t) = contact.get("timezone").and_then(Value::as_str) {
            let again = TimeZoneName::parse(t)
                .unwrap_or_else(|err| panic!("{t:?} no longer parses: {}", err.0));
            assert_eq!(again.as_str(), t, "time zone normalisation is not stable");
        }
    }
});
