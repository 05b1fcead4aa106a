//! Command-line tools that work on files or talk to a running server:
//! `journeys validate`, `journeys apply`, `import contacts`, `messages requeue`, `contacts
//! export`, `contacts erase` and `broadcasts …` (in `broadcasts`).

pub mod broadcasts;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use waymark_core::journey::{Channel, parse_document_value};
use waymark_core::validate::parse_and_validate;

use crate::import::{
    Encoding, OnDuplicate, SeenContacts, contact_from_row, contacts_reader, detect_delimiter,
};

#[derive(Debug, Subcommand)]
pub enum JourneysCommand {
    /// Check journey files (YAML or JSON); prints every error and exits 1 if any file is invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also accept templates that exist on this server (default: only templates in the file).
        #[arg(long)]
        server: Option<String>,
    },
    /// Create or update journeys (and the templates they ship) on a running server.
    Apply(ApplyArgs),
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the Waymark server.
    #[arg(long, env = "WAYMARK_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Admin token of that server.
    #[arg(long, env = "WAYMARK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Publish each journey after updating its draft.
    #[arg(long)]
    pub publish: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import contacts from a CSV file with a header row. Columns `user_id`, `email`, `phone`
    /// and `timezone` are recognised; every other column becomes a trait. A row needs a
    /// user_id or an email. A row naming a contact an earlier row named (the same user_id,
    /// or the same email) is rejected with both lines unless --on-duplicate merge. Exits 1 if
    /// any row was rejected.
    Contacts {
        file: PathBuf,
        /// The column separator: one character, or `tab` [default: found from the header row
        /// among `,` `;` tab `|`].
        #[arg(long, value_parser = crate::import::parse_delimiter)]
        delimiter: Option<u8>,
        /// The file's encoding (a UTF-8 byte order mark is skipped).
        #[arg(long, value_enum, default_value = "utf-8")]
        encoding: Encoding,
        /// What to do with a row naming a contact an earlier row named: `reject` reports it
        /// with the earlier line; `merge` applies it after the earlier row (its cells win).
        #[arg(long, value_enum, default_value = "reject")]
        on_duplicate: OnDuplicate,
        /// Also add every imported contact to this list (made if there is none), after its
        /// traits are saved.
        #[arg(long, value_name = "NAME")]
        list: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// Put failed messages back in the queue (same id and idempotency key, attempts and retry
    /// lifetime started over), e.g. after a provider outage or a fixed configuration. Bounced
    /// and suppressed messages are never requeued. At least one filter is required; prints how
    /// many were requeued.
    Requeue(RequeueArgs),
}

#[derive(Debug, Args)]
pub struct RequeueArgs {
    /// Only messages of this journey (its id).
    #[arg(long)]
    pub journey: Option<String>,
    /// Only messages of this channel: email, sms or webhook.
    #[arg(long)]
    pub channel: Option<String>,
    /// Only messages that failed at or after this time: an RFC 3339 timestamp, or a duration
    /// before the server's now (`2h`, `3d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only messages that failed before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only messages created at or after this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub created_since: Option<String>,
    /// Only messages created before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub created_until: Option<String>,
    /// Only messages whose error contains this text (ignoring case).
    #[arg(long, value_name = "TEXT")]
    pub error: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Write everything the server holds about a contact as one JSON document (a
    /// data-protection access request). The export is recorded in the server's audit log.
    Export {
        /// The contact's id (as in /v1/contacts).
        id: i64,
        /// Write to this file instead of standard output (replaced only once the whole
        /// export has arrived).
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Erase a contact and everything personal about it, for good. Its email address and phone
    /// number stay suppressed as keyed hashes. Recorded in the server's audit log.
    Erase {
        id: i64,
        /// Confirm the erasure: it cannot be undone.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn contacts(cmd: ContactsCommand) -> anyhow::Result<bool> {
    match cmd {
        ContactsCommand::Export { id, output, server } => export_contact(id, output, server).await,
        ContactsCommand::Erase { id, yes, server } => erase_contact(id, yes, server).await,
    }
}

async fn export_contact(
    id: i64,
    output: Option<PathBuf>,
    server: ServerArgs,
) -> anyhow::Result<bool> {
    use std::io::Write;
    let base = server.server.trim_end_matches('/');
    // No overall time limit: a contact with a long history takes as long as it takes.
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let mut response = http
        .get(format!("{base}/v1/contacts/{id}/export"))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .context("cannot reach the server")?;
    if !response.status().is_success() {
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        bail!("cannot export contact {id}: {}", describe_error(&body));
    }
    // Into a file beside the target, renamed once complete: a broken transfer never leaves
    // a file that looks like a whole export.
    let partial = output.as_ref().map(|p| {
        let mut name = p.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        p.with_file_name(name)
    });
    let mut sink: Box<dyn Write> = match &partial {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut bytes = 0usize;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                bytes += chunk.len();
                sink.write_all(&chunk)?;
            }
            Ok(None) => break,
            Err(e) => {
                drop(sink);
                if let Some(path) = &partial {
                    let _ = std::fs::remove_file(path);
                }
                bail!("the export of contact {id} broke off after {bytes} bytes: {e}");
            }
        }
    }
    if partial.is_none() {
        sink.write_all(b"\n")?;
    }
    sink.flush()?;
    drop(sink);
    if let (Some(partial), Some(output)) = (&partial, &output) {
        std::fs::rename(partial, output)
            .with_context(|| format!("cannot write {}", output.display()))?;
        eprintln!(
            "exported contact {id} to {} ({bytes} bytes)",
            output.display()
        );
    }
    Ok(true)
}

async fn erase_contact(id: i64, yes: bool, server: ServerArgs) -> anyhow::Result<bool> {
    if !yes {
        bail!(
            "erasing contact {id} removes it and everything about it for good; \
             run again with --yes to confirm"
        );
    }
    let base = server.server.trim_end_matches('/');
    let (status, body) = send(
        client()
            .delete(format!("{base}/v1/contacts/{id}"))
            .bearer_auth(&server.admin_token),
    )
    .await?;
    if !status.is_success() {
        bail!("cannot erase contact {id}: {}", describe_error(&body));
    }
    let removed = body["removed"].as_object().cloned().unwrap_or_default();
    let total: i64 = removed.values().filter_map(Value::as_i64).sum();
    println!(
        "erased contact {id}: {total} rows removed; {} address(es) kept suppressed as keyed hashes; audit entry {}",
        body["addresses_hashed"], body["audit_id"]
    );
    for (table, n) in removed {
        if n.as_i64().unwrap_or(0) > 0 {
            println!("  {table}\t{n}");
        }
    }
    Ok(true)
}

fn read_document(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_document_value(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("HTTP client")
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let response = request.send().await.context("cannot reach the server")?;
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn describe_error(body: &Value) -> String {
    let mut out = body["message"]
        .as_str()
        .unwrap_or("request failed")
        .to_string();
    if let Some(errors) = body["errors"].as_array() {
        for e in errors {
            out.push_str(&format!("\n  - {}", format_validation_error(e)));
        }
    }
    out
}

pub(crate) fn format_validation_error(e: &Value) -> String {
    let mut place = Vec::new();
    if let Some(n) = e["node"].as_str() {
        place.push(format!("node `{n}`"));
    }
    if let Some(f) = e["field"].as_str() {
        place.push(f.to_string());
    }
    let code = e["code"]
        .as_str()
        .map(|c| format!(" [{c}]"))
        .unwrap_or_default();
    if place.is_empty() {
        format!("{}{code}", e["message"].as_str().unwrap_or(""))
    } else {
        format!(
            "{}: {}{code}",
            place.join(", "),
            e["message"].as_str().unwrap_or("")
        )
    }
}

pub async fn journeys(cmd: JourneysCommand) -> anyhow::Result<bool> {
    match cmd {
        JourneysCommand::Validate { files, server } => validate(files, server).await,
        JourneysCommand::Apply(args) => apply(args).await,
    }
}

async fn validate(files: Vec<PathBuf>, server: Option<String>) -> anyhow::Result<bool> {
    let mut remote: HashMap<String, Channel> = HashMap::new();
    if let Some(base) = server {
        let token =
            std::env::var("WAYMARK_ADMIN_TOKEN").context("--server needs WAYMARK_ADMIN_TOKEN")?;
        let (status, body) = send(
            client()
                .get(format!("{}/v1/templates", base.trim_end_matches('/')))
                .bearer_auth(token),
        )
        .await?;
        if !status.is_success() {
            bail!("cannot list templates on {base}: {}", describe_error(&body));
        }
        for t in body["templates"].as_array().into_iter().flatten() {
            if let (Some(id), Some(ch)) = (
                t["id"].as_str(),
                t["channel"].as_str().and_then(Channel::parse),
            ) {
                remote.insert(id.to_string(), ch);
            }
        }
    }
    let mut all_ok = true;
    for path in files {
        let result = read_document(&path).map(|doc| {
            let lookup = |id: &str| remote.get(id).copied();
            let parsed = parse_and_validate(&doc, Some(&lookup));
            // Templates shipped in the file must compile, too.
            let mut template_errors = Vec::new();
            if let Some(ts) = doc.get("templates").and_then(Value::as_array) {
                for t in ts {
                    let id = t["id"].as_str().unwrap_or("?").to_string();
                    match serde_json::from_value(t.clone()) {
                        Ok(def) => {
                            if let Err(errs) = waymark_render::compile(&def) {
                                template_errors.extend(
                                    errs.into_iter().map(|e| format!("template `{id}`, {e}")),
                                );
                            }
                        }
                        Err(e) => template_errors.push(format!("template `{id}`: {e}")),
                    }
                }
            }
            (parsed, template_errors)
        });
        match result {
            Ok((Ok(doc), template_errors)) if template_errors.is_empty() => {
                println!(
                    "{}: ok (journey `{}`, {} nodes)",
                    path.display(),
                    doc.id,
                    doc.nodes.len()
                );
            }
            Ok((parsed, template_errors)) => {
                all_ok = false;
                let errors = parsed.err().unwrap_or_default();
                println!(
                    "{}: {} error(s)",
                    path.display(),
                    errors.len() + template_errors.len()
                );
                for e in errors {
                    println!("  - {}", format_validation_error(&json!(e)));
                }
                for e in template_errors {
                    println!("  - {e}");
                }
            }
            Err(e) => {
                all_ok = false;
                println!("{e:#}");
            }
        }
    }
    Ok(all_ok)
}

async fn apply(args: ApplyArgs) -> anyhow::Result<bool> {
    let base = args.server.server.trim_end_matches('/').to_string();
    let http = client();
    let mut all_ok = true;
    for path in &args.files {
        let doc = read_document(path)?;
        let Some(id) = doc.get("id").and_then(Value::as_str).map(str::to_string) else {
            println!("{}: the journey has no `id`", path.display());
            all_ok = false;
            continue;
        };
        let (status, body) = send(
            http.put(format!("{base}/v1/journeys/{id}"))
                .bearer_auth(&args.server.admin_token)
                .json(&doc),
        )
        .await?;
        if !status.is_success() {
            println!("{}: {}", path.display(), describe_error(&body));
            all_ok = false;
            continue;
        }
        let mut version = body["live_version"].clone();
        if args.publish {
            let (status, body) = send(
                http.post(format!("{base}/v1/journeys/{id}/publish"))
                    .bearer_auth(&args.server.admin_token),
            )
            .await?;
            if !status.is_success() {
                println!(
                    "{}: journey `{id}` not published: {}",
                    path.display(),
                    describe_error(&body)
                );
                all_ok = false;
                continue;
            }
            version = body["live_version"].clone();
            // The same document as the live version: no new version was made.
            let state = if body["unchanged"] == json!(true) {
                "unchanged"
            } else {
                body["status"].as_str().unwrap_or("?")
            };
            println!("{id}\tversion {version}\t{state}");
        } else {
            let draft_state = if body["valid"] == json!(true) {
                "draft saved"
            } else {
                "draft saved with errors"
            };
            println!(
                "{id}\tversion {}\t{draft_state}",
                if version.is_null() {
                    "-".to_string()
                } else {
                    version.to_string()
                }
            );
            if body["valid"] != json!(true) {
                for e in body["errors"].as_array().into_iter().flatten() {
                    println!("  - {}", format_validation_error(e));
                }
            }
        }
    }
    Ok(all_ok)
}

pub async fn import(cmd: ImportCommand) -> anyhow::Result<bool> {
    let ImportCommand::Contacts {
        file,
        delimiter,
        encoding,
        on_duplicate,
        list,
        server,
    } = cmd;
    let open =
        || std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()));
    let delimiter = match delimiter {
        Some(d) => d,
        None => {
            let mut start = Vec::new();
            let head = crate::import::text(open()?, encoding);
            std::io::Read::take(head, 64 * 1024)
                .read_to_end(&mut start)
                .with_context(|| format!("cannot read {}", file.display()))?;
            detect_delimiter(&start)
        }
    };
    let mut reader = contacts_reader(crate::import::text(open()?, encoding), delimiter);
    let headers = reader
        .headers()
        .context("cannot read the header row")?
        .clone();
    let known: Vec<&str> = headers.iter().map(str::trim).collect();
    if !known.contains(&"user_id") && !known.contains(&"email") {
        bail!(
            "{}: the header row needs a `user_id` or an `email` column (found: {}; columns are \
             separated by `{}`: say another with --delimiter)",
            file.display(),
            known.join(", "),
            (delimiter as char).escape_default()
        );
    }
    // Rows that share an id or an address with another, found in a first reading of the file
    // so that the second need not remember every row; a pipe, read once, remembers them all.
    let repeats = match std::fs::metadata(&file) {
        Ok(m) if m.is_file() => Some(
            find_repeats(open()?, encoding, delimiter)
                .with_context(|| format!("cannot read {}", file.display()))?,
        ),
        _ => None,
    };
    let total_bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let progress = Progress::new(total_bytes);
    let base = server.server.trim_end_matches('/').to_string();
    let http = client();
    let mut seen = SeenContacts::new(|line| format!("line {line}"));
    let mut tally = Tally::default();
    let mut rows = 0usize;
    // Accepted rows waiting to be sent: their line, the row, and whether it names a new contact.
    let mut chunk: Vec<(u64, Value, bool)> = Vec::new();
    // Batches sent and not answered yet. Several at once unless rows are merged: a merged
    // contact's rows must reach the server in their order, while otherwise no two batches
    // name the same contact.
    let at_once = match on_duplicate {
        OnDuplicate::Reject => IMPORT_BATCHES_AT_ONCE,
        OnDuplicate::Merge => 1,
    };
    let mut in_flight: std::collections::VecDeque<tokio::task::JoinHandle<anyhow::Result<Sent>>> =
        std::collections::VecDeque::new();
    let mut record = csv::StringRecord::new();
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                rows += 1;
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                tally.rejected.push((line, format!("line {line}: {e}")));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        };
        if more {
            rows += 1;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            match contact_from_row(&headers, &record) {
                Ok(contact) => match match &repeats {
                    // No other row names its contact or its address.
                    Some(r) if !r.contains(line) => Ok(true),
                    _ => seen.note(line, &contact, on_duplicate),
                } {
                    Ok(new) => chunk.push((line, contact, new)),
                    Err(repeated) => tally.rejected.push((
                        line,
                        format!("line {line}: {}: {}", repeated.column, repeated.message),
                    )),
                },
                Err((column, reason)) => tally
                    .rejected
                    .push((line, format!("line {line}: {column}: {reason}"))),
            }
            progress.read_up_to(record.position().map(|p| p.byte()).unwrap_or(0));
        }
        if chunk.len() >= 1000 || (!more && !chunk.is_empty()) {
            if in_flight.len() >= at_once
                && let Some(oldest) = in_flight.pop_front()
            {
                tally.answered(oldest.await??, &progress, rows)?;
            }
            let batch = std::mem::take(&mut chunk);
            let (http, url, token, list) = (
                http.clone(),
                format!("{base}/v1/contacts/import"),
                server.admin_token.clone(),
                list.clone(),
            );
            in_flight.push_back(tokio::spawn(async move {
                let (lines, rows): (Vec<(u64, bool)>, Vec<Value>) =
                    batch.into_iter().map(|(l, c, new)| ((l, new), c)).unzip();
                // Repeats within the batch were let through above only when merging was asked.
                let (status, body) = send(
                    http.post(url)
                        .bearer_auth(token)
                        .json(&json!({ "contacts": rows, "on_duplicate": "merge", "list": list })),
                )
                .await?;
                Ok(Sent {
                    rows: lines,
                    status,
                    body,
                })
            }));
        }
        if !more {
            break;
        }
    }
    while let Some(oldest) = in_flight.pop_front() {
        tally.answered(oldest.await??, &progress, rows)?;
    }
    progress.finish();
    let Tally {
        imported_rows,
        contacts,
        mut rejected,
    } = tally;
    rejected.sort_by_key(|(line, _)| *line);
    println!(
        "imported {contacts} contacts from {imported_rows} rows, rejected {} rows",
        rejected.len()
    );
    for (_, r) in &rejected {
        println!("  - {r}");
    }
    Ok(rejected.is_empty())
}

/// The rows of a CSV file that share a contact id or an address with another, read as
/// [`import`] reads them (rows it would refuse for their shape or their identity are skipped).
fn find_repeats(
    file: std::fs::File,
    encoding: Encoding,
    delimiter: u8,
) -> anyhow::Result<crate::import::Repeats> {
    let mut reader = contacts_reader(crate::import::text(file, encoding), delimiter);
    let columns = crate::import::IdentityColumns::of(reader.headers()?);
    let mut finder = crate::import::RepeatFinder::new();
    let mut record = csv::StringRecord::new();
    let mut email = None;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => return Err(e.into()),
            Err(_) => continue,
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if let Some(identity) = crate::import::Identity::of_row(&columns, &record, &mut email) {
            finder.add(line, identity)?;
        }
    }
    Ok(finder.finish()?)
}

/// What an import did so far.
#[derive(Default)]
struct Tally {
    imported_rows: usize,
    contacts: usize,
    /// By line, as they are found (a batch's refusals by the server come after later lines').
    rejected: Vec<(u64, String)>,
}

impl Tally {
    /// Counts a batch the server answered (`rows`: the rows read so far, for the progress).
    fn answered(&mut self, sent: Sent, progress: &Progress, rows: usize) -> anyhow::Result<()> {
        let Sent {
            rows: sent_rows,
            status,
            body,
        } = sent;
        if !status.is_success() {
            progress.abandon();
            bail!("the server refused the import: {}", describe_error(&body));
        }
        let mut refused = std::collections::HashSet::new();
        for e in body["errors"].as_array().into_iter().flatten() {
            let index = e["index"].as_u64().unwrap_or(u64::MAX) as usize;
            refused.insert(index);
            let line = sent_rows.get(index).map(|(l, _)| *l).unwrap_or(0);
            (self.rejected).push((line, format!("line {line}: {}", format_validation_error(e))));
        }
        for (i, (_, new)) in sent_rows.iter().enumerate() {
            if !refused.contains(&i) {
                self.imported_rows += 1;
                self.contacts += usize::from(*new);
            }
        }
        progress.counts(rows, self.contacts, self.rejected.len());
        Ok(())
    }
}

/// Import batches sent before the first is answered, when no contact's rows span batches.
const IMPORT_BATCHES_AT_ONCE: usize = 4;

/// A batch of imported rows the server answered: each row's line and whether it names a new
/// contact, and the answer.
struct Sent {
    rows: Vec<(u64, bool)>,
    status: reqwest::StatusCode,
    body: Value,
}

/// An import's progress on standard error: a bar on a terminal; otherwise a line every few
/// seconds, so that a long import in a script or a log is not silent.
struct Progress {
    bar: indicatif::ProgressBar,
    terminal: bool,
    last_line: std::cell::Cell<std::time::Instant>,
}

impl Progress {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    fn new(total_bytes: u64) -> Self {
        let bar = indicatif::ProgressBar::new(total_bytes);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .expect("progress template"),
        );
        Progress {
            bar,
            terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            last_line: std::cell::Cell::new(std::time::Instant::now()),
        }
    }

    fn read_up_to(&self, byte: u64) {
        self.bar.set_position(byte);
    }

    fn counts(&self, rows: usize, contacts: usize, rejected: usize) {
        let text =
            format!("{rows} rows read: {contacts} contacts imported, {rejected} rows rejected");
        if self.terminal {
            self.bar.set_message(text);
        } else if self.last_line.get().elapsed() >= Self::EVERY {
            self.last_line.set(std::time::Instant::now());
            let percent = (self.bar.position() * 100)
                .checked_div(self.bar.length().unwrap_or(0))
                .unwrap_or(100);
            eprintln!("{percent}% of the file, {text}");
        }
    }

    fn abandon(&self) {
        self.bar.abandon();
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

pub async fn messages(cmd: MessagesCommand) -> anyhow::Result<bool> {
    let MessagesCommand::Requeue(args) = cmd;
    let mut filter = Map::new();
    for (field, value) in [
        ("journey_id", args.journey),
        ("channel", args.channel),
        ("failed_since", args.since),
        ("failed_until", args.until),
        ("created_since", args.created_since),
        ("created_until", args.created_until),
        ("error", args.error),
    ] {
        if let Some(v) = value {
            filter.insert(field.into(), json!(v));
        }
    }
    if filter.is_empty() {
        bail!(
            "give at least one filter (--journey, --channel, --since, --until, --created-since, \
             --created-until, --error); to requeue every failed message, say since when (--since 30d)"
        );
    }
    let base = args.server.server.trim_end_matches('/').to_string();
    let (status, body) = send(
        client()
            .post(format!("{base}/v1/messages/requeue"))
            .bearer_auth(&args.server.admin_token)
            .json(&Value::Object(filter)),
    )
    .await?;
    if !status.is_success() {
        let field = body["field"]
            .as_str()
            .map(|f| format!("`{f}` "))
            .unwrap_or_default();
        bail!(
            "the server refused the requeue: {field}{}",
            describe_error(&body)
        );
    }
    println!(
        "requeued {} failed messages",
        body["requeued"].as_i64().unwrap_or(0)
    );
    Ok(true)
}
