//! `simulate_seconds`: `waymark simulate` of the abandoned-cart example on `--simulate-contacts`
//! synthetic contacts (default 100,000) for 30 days, run as a child process exactly as a user
//! runs it (its own private store, the default behaviour), timed until it exits. Its peak
//! memory is read from `/proc` while it runs, and once more at a tenth of the population, to
//! show that memory does not grow with the population.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use super::{Figure, Plan, blocking, emit, progress, round};

/// The target: 100,000 contacts through the journey for 30 days in this many seconds.
const TARGET_SECONDS: f64 = 30.0;
const JOURNEY: &str = include_str!("../../../../examples/journeys/abandoned-cart.yaml");

pub(super) async fn simulate(plan: &Plan) -> anyhow::Result<()> {
    let figure = Figure::Simulate;
    let contacts = plan.simulate_contacts;
    let days = if plan.quick { 3 } else { 30 };
    let dir = tempfile::tempdir().context("cannot make a directory for the journey file")?;
    let journey = dir.path().join("abandoned-cart.yaml");
    std::fs::write(&journey, JOURNEY)?;

    let tenth = (contacts / 10).max(1);
    progress(
        figure,
        format!("{tenth} contacts for {days} days (for the memory at a tenth)"),
    );
    let small = run(&journey, tenth, days).await?;
    progress(
        figure,
        format!("{contacts} contacts for {days} days (timed)"),
    );
    let full = run(&journey, contacts, days).await?;
    let entered = full.result["entered"].as_u64().unwrap_or_default();
    ensure!(
        entered as f64 >= contacts as f64 * 0.95,
        "only {entered} of {contacts} contacts entered: {}",
        full.result
    );
    let email = &full.result["messages"]["totals"]["email"]["sent"];
    emit(
        plan,
        "simulate_seconds",
        full.seconds,
        "s",
        json!({
            "contacts": contacts,
            "days": days,
            "journey": "abandoned-cart",
            "entered": entered,
            "emails": email,
            "sms": full.result["messages"]["totals"]["sms"]["sent"],
            "conversions": full.result["conversions"]["count"],
            "peak_rss_mib": round(full.peak_kib as f64 / 1024.0, 1),
            "peak_rss_mib_at_a_tenth": round(small.peak_kib as f64 / 1024.0, 1),
            "seconds_at_a_tenth": round(small.seconds, 2),
            "peak_rss_measured": "VmHWM of the `waymark simulate` process, read every 50 ms while it ran",
            "target": TARGET_SECONDS,
        }),
    );
    Ok(())
}

pub(super) struct Run {
    pub seconds: f64,
    pub peak_kib: u64,
    pub result: Value,
}

async fn run(journey: &std::path::Path, contacts: usize, days: u32) -> anyhow::Result<Run> {
    let mut args = vec![journey.as_os_str().to_owned()];
    for arg in [
        "--contacts",
        &contacts.to_string(),
        "--days",
        &days.to_string(),
        "--start",
        "2026-03-02T00:00:00Z",
        "--seed",
        "1",
    ] {
        args.push(arg.into());
    }
    run_simulate(&args).await
}

/// Runs `waymark simulate ARGS` as a child process as a user runs it: how long until it
/// exited, its peak memory (VmHWM, read every 50 ms) and the result it printed.
pub(super) async fn run_simulate(args: &[std::ffi::OsString]) -> anyhow::Result<Run> {
    let exe = std::env::current_exe()
        .context("cannot find the bench's own binary, to run `waymark simulate` with it")?;
    let started = Instant::now();
    let child = std::process::Command::new(exe)
        .arg("simulate")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot start `waymark simulate`")?;
    let pid = child.id();
    let peak = tokio::spawn(async move {
        let mut peak_kib = 0u64;
        while let Some(kib) = super::proc_status_kib(&pid.to_string(), "VmHWM") {
            peak_kib = peak_kib.max(kib);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak_kib
    });
    let output = blocking(move || Ok(child.wait_with_output()?)).await?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        output.status.success(),
        "the simulation failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout)
        .context("the simulation did not print its result as JSON")?;
    Ok(Run {
        seconds,
        peak_kib: peak.await?,
        result,
    })
}
