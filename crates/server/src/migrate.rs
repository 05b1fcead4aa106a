//! `waymark migrate`: moves an installation from its SQLite file to PostgreSQL. The copy
//! itself is `waymark_store::migrate`; this shows its progress and its outcome.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use waymark_store::migrate::{self, Progress, Report};

/// Tables with more rows than this get a progress bar.
const BAR_FROM_ROWS: i64 = 10_000;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The data directory of the installation to move (the one holding `waymark.db`). Stop its
    /// server first; the directory is only read.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The PostgreSQL database to fill (`postgres://user:password@host:port/name`). It must
    /// hold no data; its tables are created if missing. Prefer the environment variable: a
    /// flag's value is visible to other users in `ps`.
    #[arg(
        long,
        env = "WAYMARK_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub to: String,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<bool> {
    eprintln!(
        "copying {} to PostgreSQL (in one transaction: nothing is written unless all of it is)",
        args.from.join("waymark.db").display()
    );
    let from = args.from.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mut bar: Option<indicatif::ProgressBar> = None;
        migrate::sqlite_to_postgres(&from, &args.to, &mut |progress| show(&mut bar, progress))
    })
    .await?
    .context("nothing was migrated")?;
    print_report(&args.from, &report)?;
    Ok(true)
}

/// A bar for each large table while it is copied; small tables pass silently (the counts
/// follow at the end).
fn show(bar: &mut Option<indicatif::ProgressBar>, progress: Progress<'_>) {
    match progress {
        Progress::Started { table, rows } if rows > BAR_FROM_ROWS => {
            let new = indicatif::ProgressBar::new(rows as u64);
            new.set_style(
                indicatif::ProgressStyle::with_template("{msg:20} {bar:30} {pos}/{len} rows")
                    .expect("progress template"),
            );
            new.set_message(table.to_string());
            *bar = Some(new);
        }
        Progress::Started { .. } => {}
        Progress::Copied { rows, .. } => {
            if let Some(bar) = bar {
                bar.set_position(rows as u64);
            }
        }
        Progress::Finished { .. } => {
            if let Some(bar) = bar.take() {
                bar.finish();
            }
        }
    }
}

fn print_report(from: &std::path::Path, report: &Report) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<26} {:>12} {:>12}", "table", "SQLite", "PostgreSQL")?;
    for count in &report.counts {
        writeln!(
            out,
            "{:<26} {:>12} {:>12}",
            count.table, count.source, count.target
        )?;
    }
    let next: Vec<String> = report
        .next_ids
        .iter()
        .map(|(column, id)| format!("{column} {id}"))
        .collect();
    writeln!(out, "next ids: {}", next.join(", "))?;
    writeln!(
        out,
        "migrated to PostgreSQL at {}: every row count matches. Start Waymark on it with \
         `waymark serve --data {} --database URL` (the data directory keeps secrets.json); \
         the SQLite database was left as it was.",
        report.target,
        from.display()
    )?;
    Ok(())
}
