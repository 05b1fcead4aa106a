//! `waymark broadcasts …`: save, send and follow broadcasts on a running server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::{ServerArgs, client, describe_error, read_document, send};

#[derive(Debug, Subcommand)]
pub enum BroadcastsCommand {
    /// List the broadcasts, newest first, with their progress.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Save a draft from a file (YAML or JSON: name, channel, template, audience, exclude,
    /// send_at, local_time, timezone, rate_per_second, ignore_quiet_hours,
    /// ignore_frequency_caps). Prints its id.
    Save {
        file: PathBuf,
        /// Its id (a new or a draft's, replaced); default: made from its name.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Send a draft: at once, or at its `send_at`.
    Send {
        id: String,
        /// Print its progress until every recipient's message is written and none is queued.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a broadcast's status and progress.
    Show {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Pause a sending broadcast: its queued messages are held.
    Pause {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Resume a paused broadcast where it stopped.
    Resume {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel a broadcast: messages not yet sent are cancelled.
    Cancel {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(cmd: BroadcastsCommand) -> anyhow::Result<bool> {
    match cmd {
        BroadcastsCommand::List { server } => {
            let list = call(&server, reqwest::Method::GET, "/v1/broadcasts", None).await?;
            for b in list["broadcasts"].as_array().into_iter().flatten() {
                println!("{}", summary(b));
            }
            Ok(true)
        }
        BroadcastsCommand::Save { file, id, server } => {
            let doc = read_document(&file)?;
            let saved = match &id {
                Some(id) => {
                    let path = format!("/v1/broadcasts/{id}");
                    call(&server, reqwest::Method::PUT, &path, Some(doc)).await?
                }
                None => call(&server, reqwest::Method::POST, "/v1/broadcasts", Some(doc)).await?,
            };
            println!("{}", saved["id"].as_str().unwrap_or_default());
            Ok(true)
        }
        BroadcastsCommand::Send { id, wait, server } => {
            let path = format!("/v1/broadcasts/{id}/send");
            let sent = call(&server, reqwest::Method::POST, &path, Some(json!({}))).await?;
            println!("{}", summary(&sent));
            if wait {
                follow(&server, &id).await?;
            }
            Ok(true)
        }
        BroadcastsCommand::Show { id, server } => {
            let b = call(
                &server,
                reqwest::Method::GET,
                &format!("/v1/broadcasts/{id}"),
                None,
            )
            .await?;
            println!("{}", summary(&b));
            println!("{}", serde_json::to_string_pretty(&b)?);
            Ok(true)
        }
        BroadcastsCommand::Pause { id, server } => change(&server, &id, "pause").await,
        BroadcastsCommand::Resume { id, server } => change(&server, &id, "resume").await,
        BroadcastsCommand::Cancel { id, server } => change(&server, &id, "cancel").await,
    }
}

async fn change(server: &ServerArgs, id: &str, action: &str) -> anyhow::Result<bool> {
    let path = format!("/v1/broadcasts/{id}/{action}");
    let b = call(server, reqwest::Method::POST, &path, Some(json!({}))).await?;
    println!("{}", summary(&b));
    Ok(true)
}

/// Prints the progress every second until every message is written and none is queued.
async fn follow(server: &ServerArgs, id: &str) -> anyhow::Result<()> {
    let path = format!("/v1/broadcasts/{id}");
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = call(server, reqwest::Method::GET, &path, None).await?;
        println!("{}", summary(&b));
        let queued = b["messages"]["queued"].as_i64().unwrap_or(0);
        match b["status"].as_str() {
            Some("sent") if queued == 0 => return Ok(()),
            Some("cancelled") => return Ok(()),
            _ => {}
        }
    }
}

/// One line: id, status, how far, and the messages by status.
fn summary(b: &Value) -> String {
    let messages = b["messages"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(status, n)| format!("{status} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let audience = b["audience_size"]
        .as_i64()
        .map_or_else(|| "?".to_string(), |n| n.to_string());
    let waiting = match b["waiting"].as_i64() {
        Some(n) if n > 0 => format!(", {n} waiting for their time"),
        _ => String::new(),
    };
    format!(
        "{}\t{}\t{}/{audience} reached{waiting}\t{messages}",
        b["id"].as_str().unwrap_or_default(),
        b["status"].as_str().unwrap_or_default(),
        b["processed"].as_i64().unwrap_or(0),
    )
}

async fn call(
    server: &ServerArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let base = server.server.trim_end_matches('/');
    let mut request = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(&server.admin_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, body) = send(request).await.context("cannot reach the server")?;
    if !status.is_success() {
        let field = body["field"]
            .as_str()
            .map(|f| format!("`{f}`: "))
            .unwrap_or_default();
        bail!("the server refused: {field}{}", describe_error(&body));
    }
    Ok(body)
}
