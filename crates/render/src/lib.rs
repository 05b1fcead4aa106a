//! Renders message templates with Liquid.
//!
//! Templates are compiled once when saved (so syntax errors are reported then, with the field
//! they are in) and rendered per message with the contact, the trigger event and the journey as
//! data. Missing values render empty and `| default:` works: the Liquid crate errors on unknown
//! variables, so before rendering we fill every variable path the template mentions with nil
//! where the data has no value. This crate does no I/O.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{Map, Value};
use waymark_core::journey::{Channel, TemplateDefinition};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TemplateError {
    /// `subject`, `html`, `text` or `body`.
    pub field: String,
    pub message: String,
}

/// The rendered content of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rendered {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

struct Part {
    field: &'static str,
    template: liquid::Template,
    paths: Vec<Vec<String>>,
}

/// A template ready to render many times.
pub struct CompiledTemplate {
    pub channel: Channel,
    parts: Vec<Part>,
}

fn parser() -> &'static liquid::Parser {
    static PARSER: OnceLock<liquid::Parser> = OnceLock::new();
    PARSER.get_or_init(|| {
        liquid::ParserBuilder::with_stdlib()
            .build()
            .expect("the standard Liquid library builds")
    })
}

/// Checks a template definition and compiles its fields. Every error is returned.
pub fn compile(def: &TemplateDefinition) -> Result<CompiledTemplate, Vec<TemplateError>> {
    let mut errors = Vec::new();
    let field_err = |field: &str, message: &str| TemplateError {
        field: field.into(),
        message: message.into(),
    };
    let fields: Vec<(&'static str, &Option<String>)> = match def.channel {
        Channel::Email => {
            if def.subject.as_deref().is_none_or(|s| s.trim().is_empty()) {
                errors.push(field_err("subject", "an email template needs a subject"));
            }
            if def.html.is_none() && def.text.is_none() {
                errors.push(field_err("html", "an email template needs html or text"));
            }
            if def.body.is_some() {
                errors.push(field_err(
                    "body",
                    "email templates use html and text, not body",
                ));
            }
            vec![
                ("subject", &def.subject),
                ("html", &def.html),
                ("text", &def.text),
            ]
        }
        Channel::Sms => {
            if def.body.as_deref().is_none_or(|s| s.trim().is_empty()) {
                errors.push(field_err("body", "an SMS template needs a body"));
            }
            for (name, v) in [
                ("subject", &def.subject),
                ("html", &def.html),
                ("text", &def.text),
            ] {
                if v.is_some() {
                    errors.push(field_err(name, "SMS templates only have a body"));
                }
            }
            vec![("body", &def.body)]
        }
    };
    let mut parts = Vec::new();
    for (field, source) in fields {
        let Some(source) = source else { continue };
        match parser().parse(source) {
            Ok(template) => parts.push(Part {
                field,
                template,
                paths: variable_paths(source),
            }),
            Err(e) => errors.push(TemplateError {
                field: field.into(),
                message: e.to_string().trim().to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(CompiledTemplate {
            channel: def.channel,
            parts,
        })
    } else {
        Err(errors)
    }
}

impl CompiledTemplate {
    /// Renders every field with `data` (an object: `contact`, `event`, `journey`, ...). For SMS
    /// the body is returned as `text`.
    pub fn render(&self, data: &Map<String, Value>) -> Result<Rendered, TemplateError> {
        let mut out = Rendered::default();
        for part in &self.parts {
            let mut filled = data.clone();
            for path in &part.paths {
                fill_nil(&mut filled, path);
            }
            let globals = liquid::model::to_object(&filled).map_err(|e| TemplateError {
                field: part.field.into(),
                message: e.to_string(),
            })?;
            let text = part.template.render(&globals).map_err(|e| TemplateError {
                field: part.field.into(),
                message: e.to_string().trim().to_string(),
            })?;
            match part.field {
                "subject" => out.subject = Some(text.trim().to_string()),
                "html" => out.html = Some(text),
                _ => out.text = Some(text),
            }
        }
        Ok(out)
    }
}

/// Inserts nil along `path` wherever the data has nothing, so that a missing variable renders
/// empty instead of failing. Paths through a value that is not an object are left alone.
fn fill_nil(data: &mut Map<String, Value>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.first().is_some_and(|s| s == EACH) {
        // A loop variable's path: fill it in every element of the collection.
        if let Some(Value::Array(items)) = data.get_mut(first) {
            for item in items {
                if let Value::Object(o) = item {
                    fill_nil(o, &rest[1..]);
                }
            }
        }
        return;
    }
    if rest.is_empty() {
        data.entry(first.clone()).or_insert(Value::Null);
        return;
    }
    let entry = data
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(inner) = entry {
        fill_nil(inner, rest);
    }
}

/// Marks "each element of this array" in a path (a `for` loop's variable).
const EACH: &str = "[]";

/// The dotted variable paths mentioned inside `{{ }}` and `{% %}` (string literals skipped).
/// Keywords and filter names come along too; filling them with nil is harmless. A path that
/// starts with a `for` loop's variable is also given through the loop's collection
/// (`item.quantity` in `for item in event.products` → `event.products.[].quantity`).
fn variable_paths(source: &str) -> Vec<Vec<String>> {
    let mut paths = raw_paths(source);
    let aliases = loop_aliases(source);
    let expanded: Vec<Vec<String>> = paths
        .iter()
        .filter_map(|p| expand(p, &aliases, 0))
        .collect();
    paths.extend(expanded);
    paths.sort();
    paths.dedup();
    paths
}

fn expand(
    path: &[String],
    aliases: &std::collections::HashMap<String, Vec<String>>,
    depth: usize,
) -> Option<Vec<String>> {
    let collection = aliases.get(path.first()?)?;
    if depth > 8 {
        return None;
    }
    let mut base = expand(collection, aliases, depth + 1).unwrap_or_else(|| collection.clone());
    base.push(EACH.to_string());
    base.extend(path[1..].iter().cloned());
    Some(base)
}

/// `{% for item in event.products %}` → `item` ↦ `[event, products]`.
fn loop_aliases(source: &str) -> std::collections::HashMap<String, Vec<String>> {
    let mut aliases = std::collections::HashMap::new();
    for tag in source.split("{%").skip(1) {
        let body = tag
            .split("%}")
            .next()
            .unwrap_or("")
            .trim_start_matches('-')
            .trim();
        let mut words = body.split_whitespace();
        if words.next() != Some("for") {
            continue;
        }
        if let (Some(var), Some("in"), Some(collection)) =
            (words.next(), words.next(), words.next())
        {
            let path: Vec<String> = collection
                .trim_end_matches('-')
                .split('.')
                .map(str::to_string)
                .collect();
            aliases.insert(var.to_string(), path);
        }
    }
    aliases
}

fn raw_paths(source: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find(['{']) {
        let after = &rest[start + 1..];
        let close = match after.chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let inner_start = start + 2;
        let Some(len) = rest[inner_start..].find(close) else {
            break;
        };
        collect_paths(&rest[inner_start..inner_start + len], &mut paths);
        rest = &rest[inner_start + len + 2..];
    }
    paths
}

fn collect_paths(expr: &str, paths: &mut Vec<Vec<String>>) {
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let preceded_by_dot = i > 0 && chars[i - 1] == '.';
            let mut path = Vec::new();
            let mut segment = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
            {
                if chars[i] == '.' {
                    path.push(std::mem::take(&mut segment));
                } else {
                    segment.push(chars[i]);
                }
                i += 1;
            }
            path.push(segment);
            path.retain(|s| !s.is_empty());
            if !preceded_by_dot && !path.is_empty() {
                paths.push(path);
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn email(subject: &str, html: &str) -> TemplateDefinition {
        TemplateDefinition {
            id: "t".into(),
            channel: Channel::Email,
            name: None,
            subject: Some(subject.into()),
            html: Some(html.into()),
            text: None,
            body: None,
        }
    }

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn renders_traits_and_event_properties() {
        let t = compile(&email(
            "Hi {{ contact.first_name }}",
            "{% for item in event.products %}<li>{{ item.name }} x{{ item.quantity }}</li>{% endfor %}",
        ))
        .unwrap();
        let out = t
            .render(&data(json!({
                "contact": {"first_name": "Ann"},
                "event": {"products": [{"name": "Mug", "quantity": 2}, {"name": "Tea", "quantity": 1}]}
            })))
            .unwrap();
        assert_eq!(out.subject.as_deref(), Some("Hi Ann"));
        assert_eq!(out.html.as_deref(), Some("<li>Mug x2</li><li>Tea x1</li>"));
    }

    #[test]
    fn missing_values_render_empty_and_default_works() {
        let t = compile(&email(
            "Hi {{ contact.first_name | default: \"there\" }}",
            "[{{ contact.last_name }}][{{ nothing.at.all }}][{{ event.coupon | default: 'none' }}]",
        ))
        .unwrap();
        let out = t.render(&data(json!({"contact": {}}))).unwrap();
        assert_eq!(out.subject.as_deref(), Some("Hi there"));
        assert_eq!(out.html.as_deref(), Some("[][][none]"));
    }

    #[test]
    fn missing_values_inside_loops_render_empty() {
        let t = compile(&email(
            "x",
            "{% for item in event.products %}[{{ item.name }}×{{ item.quantity | default: 1 }}]{% endfor %}",
        ))
        .unwrap();
        let out = t
            .render(&data(
                json!({"event": {"products": [{"name": "Hat"}, {"name": "Mug", "quantity": 2}]}}),
            ))
            .unwrap();
        assert_eq!(out.html.as_deref(), Some("[Hat×1][Mug×2]"));
    }

    #[test]
    fn syntax_errors_are_reported_with_their_field() {
        let errs = compile(&email("Hi {{ contact.first_name", "{% if x %}no end"))
            .err()
            .unwrap();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["subject", "html"]);
    }

    #[test]
    fn sms_needs_a_body() {
        let def = TemplateDefinition {
            id: "s".into(),
            channel: Channel::Sms,
            name: None,
            subject: Some("x".into()),
            html: None,
            text: None,
            body: None,
        };
        let errs = compile(&def).err().unwrap();
        assert!(errs.iter().any(|e| e.field == "body"));
        assert!(errs.iter().any(|e| e.field == "subject"));
    }
}
