//! Rules of the workspace's layers that the compiler cannot check, read from the sources:
//!
//! - every outbox row is written by the send gate (`waymark_engine::send`), so that no caller
//!   can skip its checks (recipient, suppression, consent, caps);
//! - the API changes what the engine owns only through the engine's operations
//!   (`Engine::request_enrollment`, `Engine::send`, ...), never through a raw engine
//!   transaction: the engine decides what a change records and whom it wakes, and a storage
//!   backend has one caller to serve.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_send_gate_writes_to_the_outbox() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let gate = crates.join("engine/src/send.rs").canonicalize().unwrap();
    let mut files = Vec::new();
    for krate in ["core", "render", "channels", "engine", "server"] {
        rust_files(&crates.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut writers = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        if source.contains("insert_message(") && file.canonicalize().unwrap() != gate {
            writers.push(file.display().to_string());
        }
    }
    assert!(
        writers.is_empty(),
        "these files write outbox rows without the send gate: {writers:?}"
    );
    // The gate itself does, or this test checks nothing.
    assert!(
        std::fs::read_to_string(&gate)
            .unwrap()
            .contains("insert_message(")
    );
}

#[test]
fn no_handler_opens_an_engine_transaction() {
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let mut files = Vec::new();
    rust_files(&server, &mut files);
    assert!(files.len() > 10, "found only {} source files", files.len());
    let openers: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains(".engine_tx("))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        openers.is_empty(),
        "these files open engine transactions instead of calling the engine: {openers:?}"
    );
}
