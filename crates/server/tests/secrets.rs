//! Secrets and the data directory: private file modes, keys long enough to resist guessing, and
//! every secret readable from a file (`*_FILE`) or the config file instead of a flag visible in
//! `ps`.

mod common;

use std::process::Command;

use common::*;

/// `waymark serve` with this environment (the test secrets removed); returns its exit status
/// and stderr. It must exit by itself.
fn serve_exits(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg("--data")
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0"])
        .args(args);
    for var in [
        "WAYMARK_ADMIN_TOKEN",
        "WAYMARK_WRITE_KEY",
        "WAYMARK_CONFIG",
        "WAYMARK_DATA",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run waymark serve");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_0700_and_the_database_and_secrets_0600_existing_ones_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    // A data directory from an older version: world-readable, with a world-readable secrets.json.
    let old = parent.path().join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        old.join("secrets.json"),
        format!(r#"{{"admin_token": "{ADMIN_TOKEN}", "write_key": "{WRITE_KEY}"}}"#),
    )
    .unwrap();
    std::fs::set_permissions(
        old.join("secrets.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let fresh = parent.path().join("fresh");
    for dir in [old, fresh] {
        let s = Server::start(ServerOptions {
            data_dir: Some(dir.clone()),
            ..Default::default()
        });
        // Something written, so that the WAL and shared-memory files exist.
        s.identify("u1", json!({ "email": "u1@example.com" })).ok();
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for file in [
            "waymark.db",
            "waymark.db-wal",
            "waymark.db-shm",
            "secrets.json",
        ] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file} in {}", dir.display());
        }
    }
}

#[test]
fn an_admin_token_or_write_key_shorter_than_24_characters_is_refused_at_start() {
    let long = "a-long-enough-secret-0123456789";
    for (env, name) in [
        (
            [("WAYMARK_ADMIN_TOKEN", "x"), ("WAYMARK_WRITE_KEY", long)],
            "admin token",
        ),
        (
            [
                ("WAYMARK_ADMIN_TOKEN", long),
                ("WAYMARK_WRITE_KEY", "23-characters-long-key!"),
            ],
            "write key",
        ),
    ] {
        let (ok, stderr) = serve_exits(&[], &env);
        assert!(!ok, "a short {name} was accepted");
        assert!(
            stderr.contains(&format!("the {name}")) && stderr.contains("at least 24"),
            "{stderr}"
        );
    }
    // The same through the config file.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("waymark.toml");
    std::fs::write(&config, "admin-token = \"admin\"\n").unwrap();
    let (ok, stderr) = serve_exits(&["--config", config.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(stderr.contains("at least 24"), "{stderr}");
}

#[test]
fn secrets_are_read_from_files_named_by_file_variables() {
    let dir = tempfile::tempdir().unwrap();
    let admin = "file-admin-token-0123456789abcdef";
    let write = "file-write-key-0123456789abcdef";
    let inbound = "file-inbound-secret-0123456789";
    let write_file = |name: &str, value: &str| {
        let path = dir.path().join(name);
        // Files written by `echo` end with a newline: it is not part of the secret.
        std::fs::write(&path, format!("{value}\n")).unwrap();
        path.display().to_string()
    };
    let mut s = Server::start(ServerOptions {
        set_secrets: false,
        env: vec![
            (
                "WAYMARK_ADMIN_TOKEN_FILE".into(),
                write_file("admin", admin),
            ),
            ("WAYMARK_WRITE_KEY_FILE".into(), write_file("write", write)),
            (
                "WAYMARK_INBOUND_WEBHOOK_SECRET_FILE".into(),
                write_file("inbound", inbound),
            ),
        ],
        ..Default::default()
    });
    assert!(
        !s.output().contains("generated admin token"),
        "{}",
        s.output()
    );
    s.set_secrets(admin, write);
    s.admin_get("/v1/clock").ok();
    s.identify("u1", json!({ "email": "u1@example.com" })).ok();
    // The inbound webhook secret from its file authenticates a provider webhook (the empty
    // event list is then refused as such, not as unauthenticated).
    let hook = |token: &str| {
        s.send(
            s.request(
                reqwest::Method::POST,
                &format!("/v1/webhooks/suppressions?token={token}"),
            )
            .json(&json!({ "events": [] })),
        )
    };
    hook(inbound).expect_error(400, "invalid_webhook");
    hook("wrong-secret").expect_error(401, "unauthorized");
    // A secret given both ways is refused rather than one silently chosen.
    let (ok, stderr) = serve_exits(
        &[],
        &[
            ("WAYMARK_ADMIN_TOKEN", admin),
            ("WAYMARK_ADMIN_TOKEN_FILE", &write_file("admin2", admin)),
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("--admin-token-file"), "{stderr}");
    // A file that cannot be read stops the start with its name.
    let (ok, stderr) = serve_exits(&[], &[("WAYMARK_WRITE_KEY_FILE", "/nonexistent/key")]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/key"), "{stderr}");
}
