//! `waymark migrate`: an installation moves from SQLite to PostgreSQL in the middle of its
//! journeys, and carries on there as if nothing happened. Skipped (with a note) when
//! `WAYMARK_TEST_DATABASE_URL` is unset.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Runs `waymark migrate --from DIR` with the target URL in the environment (where it belongs:
/// a flag is visible in `ps`).
fn migrate(from: &Path, to: &str) -> Output {
    Command::new(bin())
        .arg("migrate")
        .arg("--from")
        .arg(from)
        .env("WAYMARK_DATABASE_URL", to)
        .output()
        .expect("cannot run waymark migrate")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The rows of `table` in migrate's table of counts: (SQLite, PostgreSQL).
fn counted(report: &str, table: &str) -> (i64, i64) {
    let line = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no `{table}` in the counts:\n{report}"));
    let numbers: Vec<i64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn a_contact_waiting_in_a_delay_gets_its_email_once_and_on_time_after_the_move() {
    let Some(schema) = Schema::fresh("migrate_delay") else {
        return;
    };
    let mut before = Server::start(ServerOptions {
        backend: Backend::Sqlite,
        ..Default::default()
    });
    before.apply_journey(json!({
        "id": "slow-welcome",
        "name": "Slow welcome",
        "nodes": [
            {"id": "start", "type": "trigger", "event": "Signed Up"},
            {"id": "month", "type": "delay", "duration": "30d"},
            {"id": "hello", "type": "send_email", "template": "hello"},
        ],
        "edges": [
            {"from": "start", "to": "month"},
            {"from": "month", "to": "hello"},
        ],
        "templates": [
            {"id": "hello", "channel": "email", "subject": "Hello", "text": "A month already"}
        ],
    }));
    before
        .identify("ann", json!({"email": "ann@example.com"}))
        .ok();
    before.track("ann", "Signed Up", json!({})).ok();
    before.settle();
    let entered = now(&before);
    let contact = before.contact_by_user("ann");
    before.advance(10 * DAY);
    assert!(before.messages("ann").is_empty());
    let stopped_at = now(&before);
    assert!(before.terminate().success());

    let moved = migrate(before.data_dir(), &schema.url());
    let report = text(&moved);
    assert!(moved.status.success(), "migrate failed:\n{report}");
    for table in ["contacts", "events", "journeys", "enrollments", "meta"] {
        let (sqlite, postgres) = counted(&report, table);
        assert!(sqlite > 0, "{table}: nothing copied:\n{report}");
        assert_eq!(sqlite, postgres, "{table}:\n{report}");
    }
    assert!(report.contains("every row count matches"), "{report}");

    // The same installation on PostgreSQL: same secrets (the data directory), same clock.
    let after = Server::start(ServerOptions {
        backend: Backend::Postgres(schema.url()),
        data_dir: Some(before.data_dir().to_path_buf()),
        ..Default::default()
    });
    assert_eq!(
        now(&after),
        stopped_at,
        "the simulated clock resumes where it stood"
    );
    assert_eq!(after.contact_by_user("ann")["id"], contact["id"]);
    let due = entered + jiff::SignedDuration::from_hours(30 * 24);
    after.advance(20 * DAY - 1);
    assert!(
        after.messages("ann").is_empty(),
        "the email went out before the 30 days were over"
    );
    after.advance(1);
    after.advance(5 * DAY);
    let messages = after.messages("ann");
    assert_eq!(nodes_of(&messages), ["hello"], "{messages:#?}");
    assert_eq!(created_at(&messages[0]), due);
    assert_eq!(messages[0]["status"], "sent", "{messages:#?}");

    // A second run finds the data there and refuses, changing nothing.
    let again = migrate(before.data_dir(), &schema.url());
    let refusal = text(&again);
    assert!(!again.status.success(), "{refusal}");
    assert!(refusal.contains("already holds data"), "{refusal}");
    assert_eq!(after.messages("ann").len(), 1);
}

#[test]
fn the_help_names_both_ends() {
    let out = Command::new(bin())
        .args(["migrate", "--help"])
        .output()
        .expect("cannot run waymark");
    let help = text(&out);
    assert!(out.status.success(), "{help}");
    for wanted in ["--from", "--to", "WAYMARK_DATABASE_URL", "empty"] {
        assert!(
            help.contains(wanted),
            "`{wanted}` is not mentioned:\n{help}"
        );
    }
}

#[test]
fn a_missing_data_directory_or_an_unreachable_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("waymark-data");
    let out = migrate(&missing, "postgres://waymark@127.0.0.1:1/waymark");
    let message = text(&out);
    assert!(!out.status.success(), "{message}");
    assert!(message.contains("is not a directory"), "{message}");
    assert!(!missing.exists(), "nothing is created");

    let s = Server::start(ServerOptions {
        backend: Backend::Sqlite,
        ..Default::default()
    });
    let out = migrate(
        s.data_dir(),
        "postgres://waymark:s3cret@127.0.0.1:1/waymark?connect_timeout=2",
    );
    let message = text(&out);
    assert!(!out.status.success(), "{message}");
    assert!(
        message.contains("cannot connect to PostgreSQL at 127.0.0.1:1/waymark"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
}
