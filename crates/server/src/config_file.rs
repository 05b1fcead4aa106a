//! `waymark serve --config FILE`: settings from a TOML file.
//!
//! Keys are the long names of `waymark serve`'s flags (`smtp-url`, `dkim-key`, …; `_` may stand
//! for `-`). Precedence is defaults < file < environment (`WAYMARK_*`) < flags: a key is used
//! only when neither its flag nor its environment variable is given. The file's settings become
//! flags before clap parses the command line, so clap validates them exactly like flags.

use std::ffi::OsString;
use std::path::Path;

/// Returns the command line with the config file's settings added as flags; unchanged when the
/// command is not `serve` or no config file is named.
pub fn expand(argv: Vec<OsString>, serve: &clap::Command) -> Result<Vec<OsString>, String> {
    if argv.get(1).and_then(|a| a.to_str()) != Some("serve") {
        return Ok(argv);
    }
    let strings: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let from_flag = strings.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--config=").map(str::to_string).or_else(|| {
            (a == "--config")
                .then(|| strings.get(i + 1).cloned())
                .flatten()
        })
    });
    let Some(path) = from_flag.or_else(|| std::env::var("WAYMARK_CONFIG").ok()) else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(Path::new(&path))
        .map_err(|e| format!("cannot read the config file {path}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("the config file {path} is not valid TOML: {e}"))?;
    let known: Vec<(String, Option<String>)> = serve
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?.to_string();
            (long != "config" && long != "help")
                .then(|| (long, a.get_env().map(|e| e.to_string_lossy().into_owned())))
        })
        .collect();
    let mut out = argv;
    for (key, value) in &table {
        let name = key.replace('_', "-");
        let Some((long, env)) = known.iter().find(|(l, _)| *l == name) else {
            let names: Vec<&str> = known.iter().map(|(l, _)| l.as_str()).collect();
            return Err(format!(
                "the config file {path}: unknown setting `{key}` (known: {})",
                names.join(", ")
            ));
        };
        let on_command_line = strings
            .iter()
            .any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}=")));
        let in_environment = env.as_ref().is_some_and(|e| std::env::var_os(e).is_some());
        if on_command_line || in_environment {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>(),
            other => scalar(other).map(|v| vec![v]),
        }
        .map_err(|e| format!("the config file {path}: `{key}` {e}"))?;
        for v in values {
            out.push(format!("--{long}={v}").into());
        }
    }
    Ok(out)
}

fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("must be a string, a number, a boolean or a list of them".into()),
    }
}
