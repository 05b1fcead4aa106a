//! The condition language, JSON form: any bytes either fail to read as a condition or give one
//! that validates without panicking; a valid one prints in the text form and parses back to
//! its canonical form, and evaluates without panicking.
#![no_main]

mod facts;

use libfuzzer_sys::fuzz_target;
use waymark_core::Condition;
use waymark_core::condition::{Scope, parse, print, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(condition) = serde_json::from_slice::<Condition>(data) else {
        return;
    };
    let segment_errors = validate(&condition, Scope::Segment);
    let branch_errors = validate(&condition, Scope::Branch);
    if branch_errors.is_empty() {
        facts::evaluate_both(&condition);
        let canonical = condition.canonical();
        let printed = print(&condition);
        let reparsed = parse(&printed).unwrap_or_else(|e| {
            panic!("a valid condition prints to text that does not parse: {printed:?}: {e}")
        });
        assert_eq!(
            reparsed, canonical,
            "print/parse round trip (printed {printed:?})"
        );
        // The canonical form means the same and is just as valid.
        assert!(
            validate(&canonical, Scope::Branch).is_empty(),
            "canonical form invalid: {printed:?}"
        );
        // Stored as JSON, it reads back with serde_json's default limits.
        let json = serde_json::to_string(&condition).expect("serialises");
        let back: Condition = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("a valid condition does not read back from JSON: {e}"));
        assert_eq!(back.canonical(), canonical);
    }
    if segment_errors.is_empty() {
        assert!(
            branch_errors.is_empty(),
            "valid in a segment but not in a branch"
        );
    }
});
