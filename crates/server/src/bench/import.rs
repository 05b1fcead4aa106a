//! `import_rows_per_second`: `waymark import contacts` of a generated CSV file (`user_id`,
//! `email`, `first_name`, `plan`, `city`; every row a new contact), run as a child process
//! against the bench's server exactly as a user runs it. Timed until the importer exits (every
//! row checked, checked again for repeats and accepted by the server), and until the engine has
//! made every contact. The importer's peak memory is read from `/proc` while it runs.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;

use waymark_engine::Clock;
use waymark_store::ContactQuery;

use super::{Figure, FigureData, Harness, Plan, blocking, emit, progress, round, watch};

/// The target: rows per second through the importer.
const TARGET: f64 = 50_000.0;

pub(super) async fn import(plan: &Plan, data: &FigureData) -> anyhow::Result<()> {
    let figure = Figure::Import;
    let rows = plan.import_rows;
    let file = TempFile(std::env::temp_dir().join(format!(
        "waymark-bench-import-{}-{}.csv",
        std::process::id(),
        crate::api::ingest::random_hex(4)
    )));
    progress(
        figure,
        format!("writing {rows} rows to a CSV file (not timed)"),
    );
    let bytes = write_file(&file.0, rows)?;
    let h = Harness::start(data, Clock::System).await?;
    let exe = std::env::current_exe()
        .context("cannot find the bench's own binary, to run `waymark import contacts` with it")?;

    progress(figure, format!("importing {rows} rows (timed)"));
    let started = Instant::now();
    let store = h.store.clone();
    // The backlog is counted only once every row is in: counting it every 20 ms while the rows
    // arrive took 4 % of the machine from the import it measures.
    let processed = watch(started, Duration::from_millis(20), move || {
        Ok(store.last_event_seq()? >= rows as i64 && store.pending_event_count()? == 0)
    });
    let child = std::process::Command::new(exe)
        .args(["import", "contacts"])
        .arg(&file.0)
        .args(["--server", &h.base, "--admin-token", &h.secrets.admin_token])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot start `waymark import contacts`")?;
    let pid = child.id();
    let peak = tokio::spawn(async move {
        let mut peak_kib = 0u64;
        while let Some(kib) = peak_rss_kib_of(pid) {
            peak_kib = peak_kib.max(kib);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak_kib
    });
    let output = blocking(move || Ok(child.wait_with_output()?)).await?;
    let imported = started.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "the importer failed ({}):\n{out}{err}",
        output.status
    );
    let summary = format!("imported {rows} contacts from {rows} rows, rejected 0 rows");
    ensure!(
        out.lines().next() == Some(summary.as_str()),
        "the importer did not import every row:\n{out}{err}"
    );
    let peak_kib = peak.await?;
    let made = tokio::time::timeout(Duration::from_secs(600), processed)
        .await
        .context("the engine had not made every contact 10 minutes after the import")???;
    // The last row's contact, as its row says.
    let store = h.store.clone();
    let last = blocking(move || {
        Ok(store.find_contacts(&ContactQuery {
            user_id: Some(format!("imp-{}", rows - 1)),
            limit: 1,
            ..Default::default()
        })?)
    })
    .await?;
    ensure!(
        last.first().and_then(|c| c.email.as_deref())
            == Some(format!("person{}@example.com", rows - 1).as_str()),
        "the last row's contact is not there as imported: {last:?}"
    );
    emit(
        plan,
        "import_rows_per_second",
        rows as f64 / imported,
        "rows/s",
        json!({
            "rows": rows,
            "file_mib": round(bytes as f64 / (1024.0 * 1024.0), 1),
            "import_seconds": round(imported, 3),
            "contacts_made_seconds": round(made, 3),
            "contacts_made_per_second": round(rows as f64 / made, 1),
            "importer_peak_rss_mib": round(peak_kib as f64 / 1024.0, 1),
            "peak_rss_measured": "VmHWM of the `waymark import contacts` process, read every 50 ms while it ran",
            "target": TARGET,
        }),
    );
    h.finish().await
}

/// Writes `rows` contacts, each new, and returns the file's size.
fn write_file(path: &std::path::Path, rows: usize) -> anyhow::Result<u64> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    writeln!(out, "user_id,email,first_name,plan,city")?;
    const CITIES: [&str; 4] = ["Lyon", "Milano", "\"Frankfurt, Main\"", "Zürich"];
    for i in 0..rows {
        writeln!(
            out,
            "imp-{i},person{i}@example.com,Name{i},{},{}",
            if i % 3 == 0 { "pro" } else { "free" },
            CITIES[i % CITIES.len()]
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// The generated file, removed when the figure ends (whether it passed or not).
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A process's peak resident set size (VmHWM) in KiB, while it runs (Linux).
fn peak_rss_kib_of(pid: u32) -> Option<u64> {
    super::proc_status_kib(&pid.to_string(), "VmHWM")
}
