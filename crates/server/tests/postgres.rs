//! What only `waymark serve --database` does. Everything else runs on both backends: the store's
//! conformance suite, and the end-to-end tests that `scripts/test` runs again with
//! `WAYMARK_TEST_E2E_POSTGRES`. Skipped, with a note, without `WAYMARK_TEST_DATABASE_URL`.

mod common;
use std::process::Command;

use common::*;

#[test]
fn a_second_engine_on_the_same_database_is_refused_and_says_why() {
    let Some(schema) = Schema::fresh("second_engine") else {
        return;
    };
    let url = schema.url();
    let s = Server::start(ServerOptions {
        backend: Backend::Postgres(url.clone()),
        ..ServerOptions::default()
    });
    let data = tempfile::tempdir().expect("temporary data dir");
    let second = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .arg("--database")
        .arg(&url)
        .env("WAYMARK_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("WAYMARK_WRITE_KEY", WRITE_KEY)
        .env_remove("WAYMARK_DATABASE_URL")
        .output()
        .expect("run a second waymark");
    assert!(!second.status.success(), "the second process started");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another Waymark process runs the engine on"),
        "{stderr}"
    );
    assert!(stderr.contains("docs/scaling.md"), "{stderr}");
    // The first one goes on.
    s.identify("u1", json!({"email": "u1@example.com"})).ok();
}
