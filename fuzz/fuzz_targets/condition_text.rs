//! The condition language, text form: any UTF-8 either fails to parse with a position inside
//! the input, or parses to a condition in canonical form that prints and parses back to
//! itself; validation and evaluation of what parses never panic.
#![no_main]

mod facts;

use libfuzzer_sys::fuzz_target;
use waymark_core::condition::{Scope, parse, print, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let condition = match parse(src) {
        Ok(c) => c,
        Err(e) => {
            assert!(
                e.offset <= src.len(),
                "error offset outside the input: {e:?}"
            );
            return;
        }
    };
    // docs/conditions.md: what `parse` returns is canonical, and printing round-trips.
    assert_eq!(
        condition.canonical(),
        condition,
        "parse returned a non-canonical form"
    );
    let printed = print(&condition);
    let reparsed =
        parse(&printed).unwrap_or_else(|e| panic!("printed form does not parse: {printed:?}: {e}"));
    assert_eq!(
        reparsed, condition,
        "print/parse round trip changed {src:?} (printed {printed:?})"
    );
    // What the parser accepts stays within the depth limits validation checks.
    for scope in [Scope::Segment, Scope::Branch] {
        let errors = validate(&condition, scope);
        assert!(
            errors.iter().all(|e| e.code != "too_deep"),
            "the parser accepted what validation finds too deep: {src:?}"
        );
    }
    facts::evaluate_both(&condition);
});
