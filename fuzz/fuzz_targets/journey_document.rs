//! Journey documents: any bytes, read as JSON and as YAML (as the API and the CLI read them),
//! go through `parse_and_validate` without panicking. A valid document is stored as JSON:
//! that JSON must read back with serde_json's default limits into the same document, which
//! validates again and compiles (`Journey::compile`), as the engine does at start-up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use waymark_core::journey::parse_document_value;
use waymark_core::validate::parse_and_validate;
use waymark_core::{Journey, JourneyDocument};

fn check(value: &Value) {
    let Ok(document) = parse_and_validate(value, None) else {
        return;
    };
    let stored = serde_json::to_string(&document).expect("a document serialises");
    let read: Value = serde_json::from_str(&stored)
        .unwrap_or_else(|e| panic!("a valid document does not read back as JSON: {e}"));
    let again: JourneyDocument = serde_json::from_value(read.clone())
        .unwrap_or_else(|e| panic!("a stored document is not a journey: {e}"));
    assert_eq!(
        serde_json::to_value(&again).expect("serialises"),
        read,
        "a stored document reads back different"
    );
    if let Err(errors) = parse_and_validate(&read, None) {
        panic!("a valid document is invalid once stored: {errors:?}");
    }
    if let Err(errors) = Journey::compile(again) {
        panic!("a valid document does not compile: {errors:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        check(&value);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(value) = serde_yaml_ng::from_str::<Value>(text) {
            check(&value);
        }
        // The CLI's reader: JSON when it starts with `{`, else YAML.
        if let Ok(value) = parse_document_value(text) {
            check(&value);
        }
    }
});
