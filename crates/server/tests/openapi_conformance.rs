//! The served OpenAPI document against the server itself: schemathesis (from
//! `tests/py/requirements.txt`, with the Python of `WAYMARK_TEST_PYTHON`) sends generated
//! requests to every operation and fails on an answer the document does not describe: an
//! undocumented status code, a body that does not match the documented schema, an
//! undocumented content type, or any 5xx that is not a documented 503.
//!
//! The number of examples is bounded so that the whole test stays around two minutes. The
//! boundary cases of the coverage phase are left out for the three operations that take a
//! whole journey document (their schema alone yields tens of thousands of cases); those still
//! get generated documents in the fuzzing phase.

mod common;

use std::process::Command;

use common::*;

/// Checks that fail the run (schemathesis names them so).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance";

/// The operations whose body is a journey document.
const JOURNEY_DOCUMENTS: &str = r"^/v1/journeys(/validate|/\{id\})?$";

/// One schemathesis run: what it covers, its credentials, its operations, its phases.
type Run<'a> = (&'a str, [&'a str; 2], &'a [&'a str], [&'a str; 4]);

fn python() -> String {
    std::env::var("WAYMARK_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "WAYMARK_TEST_PYTHON is not set: it must name a Python that has \
             tests/py/requirements.txt installed (schemathesis), e.g. `python3 -m venv \
             tests/py/.venv && tests/py/.venv/bin/pip install -r tests/py/requirements.txt`, \
             then WAYMARK_TEST_PYTHON=$PWD/tests/py/.venv/bin/python"
        )
    })
}

/// Runs `schemathesis run` on the served document with these extra arguments; panics with
/// its report unless every check passed. A run whose only trouble is an error inside the
/// generator itself (a "Runtime Error" with no failed check, e.g. CPython 3.11's `SystemError:
/// AST constructor recursion depth mismatch` while Hypothesis describes a strategy in a worker
/// thread, cpython#106905) says nothing about the server: it is run again in one thread, then
/// with another seed, and fails the test if it happens every time.
fn schemathesis(s: &Server, what: &str, args: &[&str]) {
    // Failed checks show in the summary's count of test cases (`12 generated, 11 passed, 1
    // failed`); a run with none failed that still errored, errored in the generator.
    let generator_trouble = |report: &str| {
        report.contains("Runtime Error")
            && !report
                .lines()
                .any(|l| l.contains(" generated,") && l.contains(" failed"))
    };
    let attempts = [("1", "2"), ("1", "1"), ("2", "1")];
    let mut outcome = (false, String::new());
    for (n, (seed, workers)) in attempts.into_iter().enumerate() {
        outcome = schemathesis_once(s, seed, workers, args);
        let (success, report) = &outcome;
        if *success || !generator_trouble(report) || n + 1 == attempts.len() {
            break;
        }
        eprintln!(
            "schemathesis ({what}) failed inside its generator; running it once more:\n{report}"
        );
    }
    let (success, report) = outcome;
    assert!(
        success,
        "schemathesis ({what}) found answers the OpenAPI document does not describe:\n{report}\n\
         server output:\n{}",
        s.output()
    );
    // A run that tested nothing would pass too.
    assert!(
        report.contains(" passed") && !report.contains("Tested: 0"),
        "schemathesis ({what}) tested nothing:\n{report}"
    );
}

/// One `schemathesis run`: whether it passed, and its report.
fn schemathesis_once(s: &Server, seed: &str, workers: &str, args: &[&str]) -> (bool, String) {
    let reports = tempfile::tempdir().expect("report directory");
    let output = Command::new(python())
        .args(["-m", "schemathesis.cli", "run", &s.url("/v1/openapi.json")])
        .args(["--checks", CHECKS])
        .args(["--seed", seed, "--workers", workers, "--no-color"])
        .args(["--generation-database", "none"])
        .arg("--report-dir")
        .arg(reports.path())
        .args(args)
        .current_dir(reports.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run schemathesis with {}: {e}", python()));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

#[test]
fn the_server_answers_as_its_openapi_document_says() {
    // Generous limits for the keyless pages, so that the run is not answered 429 throughout.
    let s = Server::start(ServerOptions {
        args: [
            "--public-rate",
            "1000000/1s",
            "--tracking-rate",
            "1000000/1s",
            "--confirmation-rate",
            "1000000/1s",
        ]
        .map(String::from)
        .to_vec(),
        ..ServerOptions::default()
    });
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let write_key = format!("{WRITE_KEY}:");
    let as_admin = ["--header", admin.as_str()];
    let with_write_key = ["--auth", write_key.as_str()];
    let generated = ["--phases", "examples,fuzzing", "--max-examples", "10"];
    let boundaries = ["--phases", "coverage", "--max-examples", "10"];
    // (what, credentials, which operations, which phases)
    let runs: [Run; 4] = [
        (
            "admin, public and inbound operations",
            as_admin,
            &["--exclude-tag", "Tracking"],
            generated,
        ),
        (
            "boundary cases of admin, public and inbound operations",
            as_admin,
            &[
                "--exclude-tag",
                "Tracking",
                "--exclude-path-regex",
                JOURNEY_DOCUMENTS,
            ],
            boundaries,
        ),
        (
            "tracking calls with the write key",
            with_write_key,
            &["--include-tag", "Tracking"],
            generated,
        ),
        // One single call and the batch: the other calls share their parser.
        (
            "boundary cases of tracking calls",
            with_write_key,
            &["--include-path-regex", "^/v1/(track|batch)$"],
            boundaries,
        ),
    ];
    for (what, credentials, operations, phases) in runs {
        let args: Vec<&str> = [&credentials[..], operations, &phases[..]].concat();
        schemathesis(&s, what, &args);
    }
}
