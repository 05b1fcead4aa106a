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
    /// What a broadcast did and earned: its totals and rates, and per template (an A/B
    /// test's variants) with conversions per message sent; with `--csv`, the report as CSV.
    Report {
        id: String,
        /// Print CSV: a row per time bucket (`--rows series`, default) or per template
        /// (`--rows variants`).
        #[arg(long)]
        csv: bool,
        #[arg(long, requires = "csv", value_parser = ["series", "variants"])]
        rows: Option<String>,
        /// `hour`, `day` or `week` (default: by the hour for a broadcast's first week).
        #[arg(long)]
        bucket: Option<String>,
        /// The range's start (RFC 3339, a date, or a duration before now such as `7d`);
        /// default: the broadcast's start.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// The IANA time zone of days and weeks (default UTC).
        #[arg(long)]
        tz: Option<String>,
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
        BroadcastsCommand::Report {
            id,
            csv,
            rows,
            bucket,
            from,
            to,
            tz,
            server,
        } => {
            let query: Vec<(&str, String)> = [
                ("rows", rows),
                ("bucket", bucket),
                ("from", from),
                ("to", to),
                ("tz", tz),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
            let path = format!("/v1/broadcasts/{id}/report");
            if csv {
                print!("{}", report_csv(&server, &path, &query).await?);
            } else {
                let path = match serde_urlencoded::to_string(&query) {
                    Ok(q) if !q.is_empty() => format!("{path}?{q}"),
                    _ => path,
                };
                let r = call(&server, reqwest::Method::GET, &path, None).await?;
                print!("{}", report_text(&r));
            }
            Ok(true)
        }
    }
}

/// The report as CSV, as the server writes it.
async fn report_csv(
    server: &ServerArgs,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<String> {
    let base = server.server.trim_end_matches('/');
    let response = client()
        .get(format!("{base}{path}"))
        .query(query)
        .bearer_auth(&server.admin_token)
        .header(reqwest::header::ACCEPT, "text/csv")
        .send()
        .await
        .context("cannot reach the server")?;
    let status = response.status();
    let text = response.text().await.context("reading the report")?;
    if !status.is_success() {
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        bail!("the server refused: {}", describe_error(&body));
    }
    Ok(text)
}

/// The report for a person: totals with their rates, then a line per template.
fn report_text(r: &Value) -> String {
    let t = &r["totals"];
    let n = |v: &Value, k: &str| v[k].as_i64().unwrap_or(0);
    let pct = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0))
    };
    let mut out = format!(
        "{} ({}), {} to {}\n",
        r["broadcast_id"].as_str().unwrap_or_default(),
        r["status"].as_str().unwrap_or_default(),
        r["from"].as_str().unwrap_or_default(),
        r["to"].as_str().unwrap_or_default(),
    );
    out.push_str(&format!(
        "recipients {}  sent {}  delivered {} ({})  bounced {}  failed {}  suppressed {}\n",
        n(t, "entered"),
        n(t, "sent"),
        n(t, "delivered"),
        pct(&t["delivery_rate"]),
        n(t, "bounced"),
        n(t, "failed"),
        n(t, "suppressed"),
    ));
    out.push_str(&format!(
        "opened {} ({}; all {} {})  clicked {} ({}; all {} {})  unsubscribed {}  complained {}\n",
        n(t, "human_opened"),
        pct(&t["open_rate"]),
        n(t, "opened"),
        pct(&t["open_rate_all"]),
        n(t, "human_clicked"),
        pct(&t["click_rate"]),
        n(t, "clicked"),
        pct(&t["click_rate_all"]),
        n(t, "unsubscribed"),
        n(t, "complained"),
    ));
    if let Some(goal) = r["goal"]["event"].as_str() {
        out.push_str(&format!(
            "converted {} ({}) on `{goal}` within {}, revenue {:.2} {}\n",
            n(t, "converted"),
            pct(&t["conversion_rate"]),
            r["goal"]["within"].as_str().unwrap_or_default(),
            t["revenue"].as_f64().unwrap_or(0.0),
            r["goal"]["currency"].as_str().unwrap_or_default(),
        ));
    }
    let variants = r["variants"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if variants.len() > 1 || r["winner"].is_string() {
        out.push_str("template\tsent\topens/sent\tclicks/sent\tconversions/sent (95% interval)\n");
        for v in variants {
            let per = &v["per_sent"];
            let interval = |k: &str| {
                format!(
                    "{} ({}-{})",
                    pct(&per[k]["rate"]),
                    pct(&per[k]["low"]),
                    pct(&per[k]["high"])
                )
            };
            let winner = if r["winner"] == v["template"] {
                " (winner)"
            } else {
                ""
            };
            out.push_str(&format!(
                "{}{winner}\t{}\t{}\t{}\t{}\n",
                v["template"].as_str().unwrap_or_default(),
                n(v, "sent"),
                pct(&per["opens"]["rate"]),
                pct(&per["clicks"]["rate"]),
                interval("conversions"),
            ));
        }
    }
    out
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
