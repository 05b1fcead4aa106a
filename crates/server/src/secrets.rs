//! The server's secrets and the privacy of its data directory.
//!
//! Every secret can be given four ways: a flag (visible to other users in `ps`: avoid), its
//! `WAYMARK_*` environment variable, a file named by the `*_FILE` variable or `--*-file` flag
//! (for Docker and systemd credentials), or a key of the config file. Secrets not given are
//! generated once and kept in `secrets.json`. The admin token and the write key, whatever their
//! source, must be at least [`MIN_KEY_CHARS`] characters.
//!
//! The data directory is the operator's only: it is made 0700 and the database, its WAL and
//! shared-memory files and `secrets.json` 0600, at start (existing ones included), and the
//! process's umask keeps files created later private too.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::api::{self, Secrets};

/// The shortest admin token or write key accepted: a guessable key opens the whole API.
pub const MIN_KEY_CHARS: usize = 24;

/// A secret's value; never printed by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// The secrets of `waymark serve`, each with its `_FILE` variant.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// Bearer token of the management API, at least 24 characters (default: generated and kept
    /// in secrets.json). A flag is visible in `ps`: prefer the environment, a file or the config
    /// file.
    #[arg(long, env = "WAYMARK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// A file holding the admin token (surrounding whitespace ignored).
    #[arg(long, env = "WAYMARK_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Write key of the tracking API, at least 24 characters (default: generated).
    #[arg(long, env = "WAYMARK_WRITE_KEY", hide_env_values = true)]
    pub write_key: Option<Secret>,
    /// A file holding the write key.
    #[arg(long, env = "WAYMARK_WRITE_KEY_FILE", value_name = "FILE")]
    pub write_key_file: Option<PathBuf>,
    /// Key of the `X-Waymark-Signature` HMAC on webhook calls (default: generated).
    #[arg(long, env = "WAYMARK_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,
    /// A file holding the webhook signing key.
    #[arg(long, env = "WAYMARK_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Authenticates inbound provider webhooks (default: generated).
    #[arg(long, env = "WAYMARK_INBOUND_WEBHOOK_SECRET", hide_env_values = true)]
    pub inbound_webhook_secret: Option<Secret>,
    /// A file holding the inbound webhook secret.
    #[arg(long, env = "WAYMARK_INBOUND_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub inbound_webhook_secret_file: Option<PathBuf>,
    /// Key of the HMAC that signs tracking links, at least 16 characters (default: generated).
    #[arg(long, env = "WAYMARK_TRACKING_SECRET", hide_env_values = true)]
    pub tracking_secret: Option<Secret>,
    /// A file holding the tracking secret.
    #[arg(long, env = "WAYMARK_TRACKING_SECRET_FILE", value_name = "FILE")]
    pub tracking_secret_file: Option<PathBuf>,
    /// A file holding the SMTP URL (with its password), instead of --smtp-url.
    #[arg(long, env = "WAYMARK_SMTP_URL_FILE", value_name = "FILE")]
    pub smtp_url_file: Option<PathBuf>,
    /// A file holding the SMS provider URL (with its credentials), instead of --sms-url.
    #[arg(long, env = "WAYMARK_SMS_URL_FILE", value_name = "FILE")]
    pub sms_url_file: Option<PathBuf>,
}

/// The value of a secret given directly or in a file (an error when both are given, or the file
/// cannot be read or is empty); `None` when neither is.
pub fn given(
    name: &str,
    value: Option<&str>,
    file: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    let value = value.map(str::trim).filter(|s| !s.is_empty());
    match (value, file) {
        (Some(_), Some(_)) => bail!(
            "both --{name} and --{name}-file (or their WAYMARK_* variables, or config keys) are \
             given; give one"
        ),
        (Some(v), None) => Ok(Some(v.to_string())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--{name}-file: cannot read {}", path.display()))?;
            let text = text.trim();
            if text.is_empty() {
                bail!("--{name}-file: {} is empty", path.display());
            }
            Ok(Some(text.to_string()))
        }
        (None, None) => Ok(None),
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSecrets {
    admin_token: String,
    write_key: String,
}

/// The API's secrets: given ones, else those kept in the data directory, else generated and
/// kept there (printed once, on the start that generated them).
pub fn load(data: &Path, args: &SecretArgs) -> anyhow::Result<Secrets> {
    let admin_token = given(
        "admin-token",
        args.admin_token.as_ref().map(Secret::expose),
        args.admin_token_file.as_deref(),
    )?;
    let write_key = given(
        "write-key",
        args.write_key.as_ref().map(Secret::expose),
        args.write_key_file.as_deref(),
    )?;
    for (name, variable, value) in [
        ("admin token", "WAYMARK_ADMIN_TOKEN", &admin_token),
        ("write key", "WAYMARK_WRITE_KEY", &write_key),
    ] {
        if let Some(v) = value {
            check_key_length(name, variable, v)?;
        }
    }
    let path = data.join("secrets.json");
    let stored: Option<StoredSecrets> = match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid", path.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let stored = match stored {
        Some(s) => s,
        None => {
            let fresh = StoredSecrets {
                admin_token: format!("wm_admin_{}", api::ingest::random_hex(24)),
                write_key: format!("wm_write_{}", api::ingest::random_hex(16)),
            };
            write_private(&path, &serde_json::to_string_pretty(&fresh)?)?;
            if admin_token.is_none() {
                println!(
                    "generated admin token (kept in {}): {}",
                    path.display(),
                    fresh.admin_token
                );
            }
            if write_key.is_none() {
                println!(
                    "generated write key (kept in {}): {}",
                    path.display(),
                    fresh.write_key
                );
            }
            fresh
        }
    };
    let inbound_webhook_secret = match given(
        "inbound-webhook-secret",
        args.inbound_webhook_secret.as_ref().map(Secret::expose),
        args.inbound_webhook_secret_file.as_deref(),
    )? {
        Some(v) => v,
        None => stored_secret(data, "inbound_webhook_secret", "wm_inbound_", 24)?,
    };
    let admin_token = admin_token.unwrap_or(stored.admin_token);
    let write_key = write_key.unwrap_or(stored.write_key);
    check_key_length("admin token", "admin_token in secrets.json", &admin_token)?;
    check_key_length("write key", "write_key in secrets.json", &write_key)?;
    Ok(Secrets {
        admin_token,
        write_key,
        inbound_webhook_secret,
    })
}

fn check_key_length(name: &str, source: &str, value: &str) -> anyhow::Result<()> {
    let chars = value.chars().count();
    if chars < MIN_KEY_CHARS {
        bail!(
            "the {name} ({source}) has {chars} characters; it must have at least \
             {MIN_KEY_CHARS} (a short key can be guessed). Generate one with \
             `openssl rand -hex 24`, or leave it unset to have one generated"
        );
    }
    Ok(())
}

/// The secret `name` given through `value` or `file`, else kept in secrets.json (generated
/// there with `prefix` on first use).
pub fn given_or_stored(
    data: &Path,
    flag: &str,
    value: Option<&Secret>,
    file: Option<&Path>,
    name: &str,
    prefix: &str,
    bytes: usize,
) -> anyhow::Result<String> {
    match given(flag, value.map(Secret::expose), file)? {
        Some(v) => Ok(v),
        None => stored_secret(data, name, prefix, bytes),
    }
}

pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Reads the secret `name` from secrets.json (written by [`load`] before), adding a fresh one
/// when it is missing; the file is replaced atomically and stays private.
fn stored_secret(data: &Path, name: &str, prefix: &str, bytes: usize) -> anyhow::Result<String> {
    let path = data.join("secrets.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut secrets: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
    if let Some(s) = secrets.get(name).and_then(|v| v.as_str()) {
        return Ok(s.to_string());
    }
    let secret = format!("{prefix}{}", api::ingest::random_hex(bytes));
    secrets.insert(name.into(), secret.clone().into());
    let fresh = data.join("secrets.json.new");
    let _ = std::fs::remove_file(&fresh);
    write_private(&fresh, &serde_json::to_string_pretty(&secrets)?)?;
    std::fs::rename(&fresh, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    println!("generated {name} (kept in {})", path.display());
    Ok(secret)
}

/// Creates the data directory (0700) and makes it and the files that hold contacts' data or
/// secrets private to the operator, tightening existing ones; warns about what it cannot
/// change. Files created later are private through the umask.
pub fn make_data_dir_private(data: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let tighten = |path: &Path, mode: u32| {
            let Ok(meta) = std::fs::metadata(path) else {
                return; // not there (yet): created private
            };
            let current = meta.permissions().mode() & 0o777;
            if current & !mode == 0 {
                return;
            }
            match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
                Ok(()) => tracing::info!(
                    path = %path.display(),
                    "permissions tightened from {current:o} to {mode:o}"
                ),
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "cannot make this private ({current:o}); other users of the machine may read it"
                ),
            }
        };
        tighten(data, 0o700);
        for file in [
            "waymark.db",
            "waymark.db-wal",
            "waymark.db-shm",
            "waymark.db-journal",
            "secrets.json",
        ] {
            tighten(&data.join(file), 0o600);
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    Ok(())
}
