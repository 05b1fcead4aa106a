//! What a simulation is given, gathered from where the command line says: the journey (a file,
//! or a version or draft of a server) with the templates it sends shipped in it, the scenario
//! file, and the installation's measured rates.

use std::path::Path;

use anyhow::{Context, bail};
use jiff::SignedDuration;
use serde_json::{Value, json};

use super::SimulateArgs;
use super::scenario::{Measured, ScenarioFile};
use super::target::Target;

/// The largest scenario file read.
const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;
/// Reports with fewer messages (or entries) than this do not make measured rates.
const MIN_MEASURED_MESSAGES: i64 = 100;

/// The journey document and where it came from (`file ...`, `draft of ...`).
pub(super) async fn load_journey(
    args: &SimulateArgs,
    source: Option<&Target>,
) -> anyhow::Result<(Value, String)> {
    if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let doc = waymark_core::journey::parse_document_value(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok((doc, format!("file {}", path.display())));
    }
    let (Some(id), Some(source)) = (&args.journey, source) else {
        bail!("which journey? give a journey file, or --journey ID with --server");
    };
    let row = source.get(&format!("/v1/journeys/{id}")).await?;
    if args.draft {
        let mut doc = row["draft"].clone();
        if !doc.is_object() {
            bail!("journey `{id}` has no draft");
        }
        doc["id"] = json!(id);
        return Ok((doc, format!("draft of {id} on {}", source.base())));
    }
    let version = match args.version {
        Some(v) => v,
        None => row["live_version"]
            .as_i64()
            .with_context(|| format!("journey `{id}` has no live version; try --draft"))?,
    };
    let v = source
        .get(&format!("/v1/journeys/{id}/versions/{version}"))
        .await?;
    Ok((
        v["document"].clone(),
        format!("version {version} of {id} on {}", source.base()),
    ))
}

/// Puts the templates the journey sends but does not ship into it, from the server (their
/// current versions).
pub(super) async fn ship_templates(doc: &mut Value, source: &Target) -> anyhow::Result<()> {
    for id in templates_to_ship(doc) {
        let t = source.get(&format!("/v1/templates/{id}")).await?;
        ship_template(doc, t);
    }
    Ok(())
}

/// The templates the journey's nodes send that it does not ship, each once.
pub fn templates_to_ship(doc: &Value) -> Vec<String> {
    let shipped: Vec<String> = doc["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect();
    let mut wanted: Vec<String> = doc["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["template"].as_str().map(str::to_string))
        .filter(|t| !shipped.contains(t))
        .collect();
    wanted.sort();
    wanted.dedup();
    wanted
}

/// Ships a stored template (as `GET /v1/templates/{id}` answers it) in the journey, without
/// what only the store keeps (its version and dates).
pub fn ship_template(doc: &mut Value, mut template: Value) {
    if let Some(fields) = template.as_object_mut() {
        for meta in ["version", "created_at", "updated_at"] {
            fields.remove(meta);
        }
    }
    match doc.get_mut("templates").and_then(Value::as_array_mut) {
        Some(list) => list.push(template),
        None => doc["templates"] = json!([template]),
    }
}

/// The report range the installation's own rates are measured over (`from` of the journey
/// report).
pub const MEASURED_OVER: &str = "90d";

/// The installation's own rates for the journey (its report over the last 90 days), where it
/// has sent enough to measure them.
pub(super) async fn measured(source: &Target, id: &str) -> anyhow::Result<Measured> {
    let report = source
        .get(&format!("/v1/journeys/{id}/report?from={MEASURED_OVER}"))
        .await?;
    Ok(measured_from(&report["totals"]))
}

/// The rates of a journey report's `totals` (its JSON), where it has sent enough to measure
/// them.
pub fn measured_from(t: &Value) -> Measured {
    let median = |field: &str| {
        t["reaction_times"][field]["median_seconds"]
            .as_f64()
            .map(SignedDuration::from_secs_f64)
    };
    let rate = |field: &str| t[field].as_f64();
    let mut m = Measured::default();
    if t["delivered"].as_i64().unwrap_or(0) >= MIN_MEASURED_MESSAGES {
        if let (Some(p), Some(d)) = (rate("open_rate"), median("to_open")) {
            m.open = Some((p, d));
        }
        if let (Some(p), Some(d)) = (rate("click_to_open_rate"), median("to_click")) {
            // The click follows the open: the time between them.
            let after_open = d - median("to_open").unwrap_or_default();
            m.click = Some((p, after_open.max(SignedDuration::from_mins(1))));
        }
    }
    if t["entered"].as_i64().unwrap_or(0) >= MIN_MEASURED_MESSAGES
        && let (Some(p), Some(d)) = (rate("conversion_rate"), median("to_conversion"))
    {
        m.conversion = Some((p, d));
    }
    m
}

/// The scenario file, checked (size, depth, fields with their place); none: all assumed.
pub(super) fn read_scenario(path: Option<&Path>) -> anyhow::Result<ScenarioFile> {
    let Some(path) = path else {
        return Ok(ScenarioFile::default());
    };
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > MAX_SCENARIO_BYTES {
        bail!("{}: a scenario is at most 1 MiB", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value = waymark_core::journey::parse_document_value(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if waymark_core::limits::json_depth(&value) > waymark_core::limits::MAX_DOCUMENT_DEPTH {
        bail!("{}: nested too deeply", path.display());
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let place = e.path().to_string();
        anyhow::anyhow!("{}: {place}: {}", path.display(), e.inner())
    })
}
