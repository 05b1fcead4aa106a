//! `waymark serve --config FILE`: settings from a TOML file, with flags and environment
//! variables taking precedence, and unknown keys refused.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::bin;

/// Starts `waymark serve` with these arguments and environment, returns its "listening on"
/// line and stops it.
fn listening_line(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for var in [
        "WAYMARK_CLOCK",
        "WAYMARK_LISTEN",
        "WAYMARK_DATA",
        "WAYMARK_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("WAYMARK_ADMIN_TOKEN", common::ADMIN_TOKEN)
        .env("WAYMARK_WRITE_KEY", common::WRITE_KEY);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start waymark serve");
    // Secrets generated on a first start are announced before the "listening" line.
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 && !line.starts_with("waymark listening") {
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    line
}

fn write_config(dir: &std::path::Path, body: &str) -> String {
    let path = dir.join("waymark.toml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[test]
fn settings_come_from_the_file_unless_the_environment_or_a_flag_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data-from-file");
    let config = write_config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:0\"\nclock = \"simulated\"\ndata = \"{}\"\nemail_from = \"News <news@acme.test>\"\n",
            data.display()
        ),
    );
    let line = listening_line(&["--config", &config], &[]);
    assert!(line.contains("simulated clock"), "{line}");
    assert!(line.contains("data-from-file"), "{line}");
    assert!(data.join("waymark.db").exists());

    let line = listening_line(&["--config", &config], &[("WAYMARK_CLOCK", "system")]);
    assert!(
        line.contains("system clock"),
        "the environment wins over the file: {line}"
    );

    let line = listening_line(&["--config", &config, "--clock", "system"], &[]);
    assert!(
        line.contains("system clock"),
        "a flag wins over the file: {line}"
    );

    let line = listening_line(&[], &[("WAYMARK_CONFIG", &config)]);
    assert!(
        line.contains("simulated clock"),
        "WAYMARK_CONFIG names the file: {line}"
    );
}

#[test]
fn unknown_keys_and_bad_toml_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "listen = \"127.0.0.1:0\"\nsmtp_uri = \"smtp://x\"\n",
    );
    let out = Command::new(bin())
        .args(["serve", "--config", &config])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown setting `smtp_uri`") && stderr.contains("smtp-url"),
        "{stderr}"
    );

    let config = write_config(dir.path(), "listen = [oops\n");
    let out = Command::new(bin())
        .args(["serve", "--config", &config])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not valid TOML"), "{stderr}");

    let config = write_config(
        dir.path(),
        "listen = \"127.0.0.1:0\"\nclock = \"sideways\"\n",
    );
    let out = Command::new(bin())
        .args(["serve", "--config", &config])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "clap validates file values like flags"
    );
}
