//! Build script of the `waymark` binary: builds the web app in `ui/` (when npm is found) and
//! embeds its files, plus the example journeys of the template gallery, in the binary.
//!
//! It must never fail the Rust build for want of Node: without npm (or with
//! `WAYMARK_SKIP_UI_BUILD=1`) it embeds a `ui/dist` built by hand if there is one, and else
//! nothing, and the server then answers a page that says how to build the app.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let root = manifest.join("../..");
    let ui = root.join("ui");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WAYMARK_SKIP_UI_BUILD");

    let (dist, status) = ui_dist(&ui, &out);
    let mut code = String::new();
    code.push_str("/// Files of the built web app: (path relative to the app root, contents).\n");
    code.push_str("pub static UI_ASSETS: &[(&str, &[u8])] = &[\n");
    if let Some(dist) = &dist {
        let mut files = Vec::new();
        collect(dist, dist, &mut files);
        files.sort();
        for (rel, abs) in files {
            writeln!(code, "    ({rel:?}, include_bytes!({abs:?})),").unwrap();
        }
    }
    code.push_str("];\n");
    writeln!(
        code,
        "/// How the web app was obtained at build time.\npub static UI_BUILD: &str = {status:?};"
    )
    .unwrap();

    let examples = root.join("examples/journeys");
    code.push_str("/// The example journeys of the gallery: (file name, YAML).\n");
    code.push_str("pub static JOURNEY_EXAMPLES: &[(&str, &str)] = &[\n");
    if examples.is_dir() {
        println!("cargo:rerun-if-changed={}", examples.display());
        let mut names: Vec<PathBuf> = std::fs::read_dir(&examples)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for path in names {
            let is_yaml = path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
            if is_yaml && path.is_file() {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                let abs = path.canonicalize().unwrap();
                writeln!(code, "    ({name:?}, include_str!({:?})),", abs.display()).unwrap();
            }
        }
    }
    code.push_str("];\n");
    std::fs::write(out.join("embedded.rs"), code).expect("write embedded.rs");
}

/// Where the built app is, and a word on how it got there.
fn ui_dist(ui: &Path, out: &Path) -> (Option<PathBuf>, String) {
    let prebuilt = ui.join("dist");
    let use_prebuilt = |why: String| -> (Option<PathBuf>, String) {
        // Watched even when missing, so that a `npm run build` by hand is picked up.
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        if prebuilt.join("index.html").is_file() {
            (Some(prebuilt.clone()), format!("prebuilt ui/dist ({why})"))
        } else {
            (None, why)
        }
    };
    if !ui.join("package.json").is_file() {
        return use_prebuilt("no ui/package.json".into());
    }
    for watched in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
        "public",
    ] {
        let p = ui.join(watched);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    if std::env::var("WAYMARK_SKIP_UI_BUILD").is_ok_and(|v| !v.is_empty() && v != "0") {
        return use_prebuilt("WAYMARK_SKIP_UI_BUILD is set".into());
    }
    let npm_found = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !npm_found {
        println!("cargo:warning=npm not found: the web app is not built (see README, \"Web app\")");
        return use_prebuilt("npm was not found".into());
    }
    // `npm ci`: exactly what package-lock.json pins (it lists every platform's optional
    // packages, so the lock is never rewritten and the build leaves tracked files alone), and
    // only when node_modules is missing: `npm ci` starts from an empty node_modules.
    if !ui.join("node_modules").is_dir()
        && let Err(e) = run(ui, &["ci", "--no-audit", "--no-fund"])
    {
        println!("cargo:warning=`npm ci` in ui/ failed: {e}");
        return use_prebuilt("`npm ci` failed".into());
    }
    let target = out.join("ui-dist");
    let target_str = target.to_string_lossy().to_string();
    match run(
        ui,
        &[
            "run",
            "build",
            "--",
            "--outDir",
            &target_str,
            "--emptyOutDir",
        ],
    ) {
        Ok(()) if target.join("index.html").is_file() => (Some(target), "built".into()),
        Ok(()) => use_prebuilt("`npm run build` wrote no index.html".into()),
        Err(e) => {
            println!("cargo:warning=`npm run build` in ui/ failed: {e}");
            use_prebuilt("`npm run build` failed".into())
        }
    }
}

fn run(dir: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        let mut text = String::from_utf8_lossy(&output.stdout).to_string();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!("{}: {}", output.status, tail.join(" | ")))
    }
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(base, &path, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            let abs = path.canonicalize().unwrap_or(path.clone());
            out.push((rel, abs.to_string_lossy().to_string()));
        }
    }
}
