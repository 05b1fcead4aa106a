//! Every outbox row is written by the send gate (`waymark_engine::send`), so that no caller
//! can skip its checks (recipient, suppression, consent, caps). This test fails when a new
//! place in the workspace writes messages itself.

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
