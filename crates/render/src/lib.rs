//! Renders message templates with Liquid, MJML and a generated plain-text part.
//!
//! Templates are compiled once when saved (so syntax errors are reported then, with the field
//! they are in and, where known, the line and column) and rendered per message with the contact,
//! the trigger event and the journey as data. Missing values render empty and `| default:` works:
//! the Liquid crate errors on unknown variables, so before rendering we fill every variable path
//! the template mentions with nil where the data has no value.
//!
//! An email template's `mjml` is personalised with Liquid first and then rendered to HTML with
//! `mrml`; when an email template has no `text`, a plain-text part is generated from the HTML
//! (links kept as numbered references). Webhook bodies render through the same Liquid
//! environment ([`render_json_body`]), and [`links`] rewrites the links of rendered HTML for
//! click tracking. This crate does no I/O.

pub mod links;
mod sms;

use std::sync::OnceLock;

use liquid_core::{
    Display_filter, Filter, FilterReflection, ParseFilter, Result as LiquidResult, Runtime,
    Value as LiquidValue, ValueView,
};
use serde::Serialize;
use serde_json::{Map, Value};
use waymark_core::journey::{Channel, TemplateDefinition};
use waymark_core::limits::{MAX_LIQUID_DEPTH, MAX_MARKUP_DEPTH, liquid_depth, markup_depth};

pub use sms::{SmsEncoding, SmsSegments, sms_segments};

/// Line width of generated plain-text parts.
pub const TEXT_WIDTH: usize = 78;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}{}: {message}", location(*.line, *.column))]
pub struct TemplateError {
    /// `subject`, `html`, `mjml`, `text` or `body`.
    pub field: String,
    pub message: String,
    /// 1-based line in the field's source, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column (in characters) in the field's source, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

impl TemplateError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        TemplateError {
            field: field.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }

    fn at(mut self, position: Option<(usize, usize)>) -> Self {
        if let Some((line, column)) = position {
            self.line = Some(line);
            self.column = Some(column);
        }
        self
    }
}

/// The rendered content of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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

impl Part {
    /// Whether the part is HTML, whose values are escaped.
    fn is_html(&self) -> bool {
        matches!(self.field, "html" | "mjml")
    }
}

/// A template ready to render many times.
pub struct CompiledTemplate {
    pub channel: Channel,
    /// Whether open and click tracking may rewrite this template's HTML.
    pub tracking: bool,
    parts: Vec<Part>,
}

/// The one Liquid environment of every template Waymark renders (messages and webhook bodies):
/// the standard library and the `json` filter, so a filter that works in one works in all.
fn parser() -> &'static liquid::Parser {
    static PARSER: OnceLock<liquid::Parser> = OnceLock::new();
    PARSER.get_or_init(|| {
        liquid::ParserBuilder::with_stdlib()
            .filter(Json)
            .build()
            .expect("the Liquid library builds")
    })
}

#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "json",
    description = "Encodes the input as JSON (a string gets its quotes).",
    parsed(JsonFilter)
)]
struct Json;

#[derive(Debug, Default, Display_filter)]
#[name = "json"]
struct JsonFilter;

impl Filter for JsonFilter {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> LiquidResult<LiquidValue> {
        let value = serde_json::to_value(input.to_value())
            .map_err(|e| liquid_core::Error::with_msg(format!("cannot encode as JSON: {e}")))?;
        Ok(LiquidValue::scalar(value.to_string()))
    }
}

/// Renders a JSON body (a webhook's): the Liquid template `source`, or the whole data as JSON
/// when there is none. The result must be valid JSON. Unlike message templates, a variable the
/// data lacks is an error, not an empty string, since an empty value would rarely be valid JSON.
pub fn render_json_body(source: Option<&str>, data: &Map<String, Value>) -> Result<String, String> {
    let Some(source) = source else {
        return Ok(Value::Object(data.clone()).to_string());
    };
    // Validation refuses deeper bodies; a version stored before that limit must not crash.
    if liquid_depth(source) > MAX_LIQUID_DEPTH {
        return Err("invalid body template: Liquid blocks nest too deep".into());
    }
    if oversized_liquid_number(source).is_some() {
        return Err(format!("invalid body template: {OVERSIZED_NUMBER}"));
    }
    let template = parser()
        .parse(source)
        .map_err(|e| format!("invalid body template: {e}"))?;
    let globals = liquid_object(data, false);
    let body = template
        .render(&globals)
        .map_err(|e| format!("rendering failed: {e}"))?;
    if let Err(e) = serde_json::from_str::<Value>(&body) {
        return Err(format!("the rendered body is not valid JSON: {e}"));
    }
    Ok(body)
}

/// Checks a template definition and compiles its fields. Every error is returned.
pub fn compile(def: &TemplateDefinition) -> Result<CompiledTemplate, Vec<TemplateError>> {
    let mut errors = Vec::new();
    let field_err = |field: &str, message: &str| TemplateError::new(field, message);
    let fields: Vec<(&'static str, &Option<String>)> = match def.channel {
        Channel::Email => {
            if def.subject.as_deref().is_none_or(|s| s.trim().is_empty()) {
                errors.push(field_err("subject", "an email template needs a subject"));
            }
            if def.html.is_none() && def.text.is_none() && def.mjml.is_none() {
                errors.push(field_err(
                    "html",
                    "an email template needs mjml, html or text",
                ));
            }
            if def.html.is_some() && def.mjml.is_some() {
                errors.push(field_err(
                    "mjml",
                    "an email template has mjml or html, not both",
                ));
            }
            if def.body.is_some() {
                errors.push(field_err(
                    "body",
                    "email templates use mjml, html and text, not body",
                ));
            }
            vec![
                ("subject", &def.subject),
                ("mjml", &def.mjml),
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
                ("mjml", &def.mjml),
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
        if let Err(e) = check_depth(field, source) {
            errors.push(e);
            continue;
        }
        match parser().parse(source) {
            Ok(template) => {
                if field == "mjml"
                    && let Err(e) = check_mjml(source)
                {
                    errors.push(e);
                    continue;
                }
                parts.push(Part {
                    field,
                    template,
                    paths: variable_paths(source),
                })
            }
            Err(e) => {
                let message = e.to_string();
                errors.push(
                    TemplateError::new(field, liquid_message(&message))
                        .at(liquid_position(&message, source)),
                )
            }
        }
    }
    if errors.is_empty() {
        Ok(CompiledTemplate {
            channel: def.channel,
            tracking: def.tracking.unwrap_or(true),
            parts,
        })
    } else {
        Err(errors)
    }
}

impl CompiledTemplate {
    /// Renders every field with `data` (an object: `contact`, `event`, `journey`, ...): Liquid,
    /// then MJML to HTML; an email without `text` gets one generated from its HTML. For SMS the
    /// body is returned as `text`.
    pub fn render(&self, data: &Map<String, Value>) -> Result<Rendered, TemplateError> {
        let mut out = Rendered::default();
        // What the parts see, built once per message for each kind of part: in HTML and MJML
        // every value from the data is HTML-escaped (see `escape_html`); the subject, the text
        // part and SMS bodies are not HTML and get values as they are.
        let mut as_is: Option<liquid::Object> = None;
        let mut escaped: Option<liquid::Object> = None;
        for part in &self.parts {
            let html = part.is_html();
            let slot = if html { &mut escaped } else { &mut as_is };
            let globals = slot.get_or_insert_with(|| self.globals(data, html));
            let text = part
                .template
                .render(globals)
                .map_err(|e| TemplateError::new(part.field, e.to_string().trim().to_string()))?;
            match part.field {
                "subject" => out.subject = Some(text.trim().to_string()),
                "html" => out.html = Some(text),
                "mjml" => out.html = Some(mjml_to_html(&text)?),
                _ => out.text = Some(text),
            }
        }
        if self.channel == Channel::Email
            && out.text.is_none()
            && let Some(html) = &out.html
        {
            out.text = Some(html_to_text(html)?);
        }
        Ok(out)
    }
}

impl CompiledTemplate {
    /// `data` as the Liquid globals of the HTML parts (`html`, with every string escaped) or
    /// of the others, with nil wherever those parts use a variable the data lacks.
    fn globals(&self, data: &Map<String, Value>, html: bool) -> liquid::Object {
        let mut globals = liquid_object(data, html);
        for part in self.parts.iter().filter(|p| p.is_html() == html) {
            for path in &part.paths {
                fill_nil(&mut globals, path);
            }
        }
        globals
    }
}

/// Refuses a field whose Liquid blocks or MJML elements nest deeper than the limits (the
/// parsers recurse once per level; see `waymark_core::limits`).
fn check_depth(field: &str, source: &str) -> Result<(), TemplateError> {
    if let Some(at) = oversized_liquid_number(source) {
        return Err(TemplateError::new(field, OVERSIZED_NUMBER).at(line_column(source, at)));
    }
    if liquid_depth(source) > MAX_LIQUID_DEPTH {
        return Err(TemplateError::new(
            field,
            format!("Liquid blocks nest at most {MAX_LIQUID_DEPTH} levels deep"),
        ));
    }
    if field == "mjml" && markup_depth(source) > MAX_MARKUP_DEPTH {
        return Err(TemplateError::new(
            field,
            format!("MJML elements nest at most {MAX_MARKUP_DEPTH} levels deep"),
        ));
    }
    Ok(())
}

/// Renders an MJML document (already personalised) to HTML.
pub fn mjml_to_html(source: &str) -> Result<String, TemplateError> {
    // Personalisation can repeat elements (`{% for %}`), so the depth is checked again.
    if markup_depth(source) > MAX_MARKUP_DEPTH {
        return Err(TemplateError::new(
            "mjml",
            format!("the MJML nests deeper than {MAX_MARKUP_DEPTH} elements after personalisation"),
        ));
    }
    if gt_after_non_ascii_in_text(source).is_some() {
        return Err(TemplateError::new(
            "mjml",
            format!("the MJML is invalid after personalisation: {GT_AFTER_NON_ASCII}"),
        ));
    }
    let parsed = mrml::parse(source).map_err(|e| {
        let (message, _) = mjml_error(&e, source);
        TemplateError::new(
            "mjml",
            format!("the MJML is invalid after personalisation: {message}"),
        )
    })?;
    parsed
        .element
        .render(&mrml::prelude::render::RenderOptions::default())
        .map_err(|e| TemplateError::new("mjml", format!("the MJML cannot be rendered: {e}")))
}

/// A plain-text version of an HTML body: wrapped at [`TEXT_WIDTH`], links kept as numbered
/// references listed at the end.
pub fn html_to_text(html: &str) -> Result<String, TemplateError> {
    let text = html2text::config::plain()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), TEXT_WIDTH)
        .map_err(|e| {
            TemplateError::new(
                "text",
                format!("no text could be generated from the HTML: {e}"),
            )
        })?;
    // Trailing spaces and runs of blank lines (left by layout tables) are dropped.
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out.push('\n');
    Ok(out)
}

/// Checks MJML structure when a template is saved. Liquid markup is blanked out first (same
/// length, newlines kept), so positions are those of the saved source and a `{% for %}` around
/// sections is not mistaken for stray text.
fn check_mjml(source: &str) -> Result<(), TemplateError> {
    let blanked = blank_liquid(source);
    if let Some(at) = gt_after_non_ascii_in_text(&blanked) {
        return Err(TemplateError::new("mjml", GT_AFTER_NON_ASCII).at(line_column(source, at)));
    }
    match mrml::parse(&blanked) {
        Ok(_) => Ok(()),
        Err(e) => {
            // Byte offsets in `blanked` are those of `source`.
            let (message, position) = mjml_error(&e, source);
            Err(TemplateError::new("mjml", message).at(position))
        }
    }
}

const OVERSIZED_NUMBER: &str =
    "a whole number in Liquid markup must fit in 64 bits (at most 9223372036854775807)";

/// Where Liquid markup (`{{ … }}`, `{% … %}`, outside quoted strings) holds a whole number
/// that does not fit in an `i64`: the Liquid parser (liquid-core 0.26) panics on one instead of
/// answering an error, so it is found and refused here first. Digits that are part of a name
/// (`item2`) or the fraction of a decimal (`1.5`) are not whole numbers.
fn oversized_liquid_number(source: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut i = 0;
    while let Some(open) = source[i..].find('{').map(|o| i + o) {
        let close = match bytes.get(open + 1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            _ => {
                i = open + 1;
                continue;
            }
        };
        let start = open + 2;
        let end = source[start..]
            .find(close)
            .map_or(bytes.len(), |e| start + e);
        let mut quote = None;
        let mut j = start;
        while j < end {
            let c = bytes[j];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == b'"' || c == b'\'' => quote = Some(c),
                None if c.is_ascii_digit() => {
                    let run_end = (j..end)
                        .find(|&k| !bytes[k].is_ascii_digit())
                        .unwrap_or(end);
                    let before = |n: usize| j.checked_sub(n).map(|k| bytes[k]);
                    let in_name = before(1).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
                    let fraction =
                        before(1) == Some(b'.') && before(2).is_some_and(|b| b.is_ascii_digit());
                    let signed = if before(1) == Some(b'-') { j - 1 } else { j };
                    if !in_name && !fraction && source[signed..run_end].parse::<i64>().is_err() {
                        return Some(signed);
                    }
                    j = run_end;
                    continue;
                }
                None => {}
            }
            j += 1;
        }
        i = end;
    }
    None
}

const GT_AFTER_NON_ASCII: &str =
    "a `>` right after a non-ASCII character in text cannot be read; write it `&gt;`";

/// Where text holds a `>` whose two preceding bytes are not the start of a character (a `>`
/// right after a non-ASCII character, as in `Ѣ>`): the MJML parser (htmlparser 0.2) panics on
/// one instead of answering an error, so it is found and refused here first. Comments, CDATA
/// and tags (with their quoted attribute values) are not text.
fn gt_after_non_ascii_in_text(source: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'<' {
            let rest = &source[i..];
            let skip_to = |end: &str| rest.find(end).map_or(bytes.len(), |e| i + e + end.len());
            if rest.starts_with("<!--") {
                i = skip_to("-->");
            } else if rest.starts_with("<![CDATA[") {
                i = skip_to("]]>");
            } else {
                // A tag, to its closing `>` outside quotes.
                let mut quote = None;
                i += 1;
                while i < bytes.len() {
                    let c = bytes[i];
                    i += 1;
                    match quote {
                        Some(q) if c == q => quote = None,
                        Some(_) => {}
                        None if c == b'"' || c == b'\'' => quote = Some(c),
                        None if c == b'>' => break,
                        None => {}
                    }
                }
            }
            continue;
        }
        let end = source[i..].find('<').map_or(bytes.len(), |e| i + e);
        let text = &source[i..end];
        if let Some(gt) = text.find('>')
            && !text.is_char_boundary(gt.saturating_sub(2))
        {
            return Some(i + gt);
        }
        i = end;
    }
    None
}

/// A readable message and the (line, column) of an MJML parse error.
fn mjml_error(e: &mrml::prelude::parser::Error, source: &str) -> (String, Option<(usize, usize)>) {
    use mrml::prelude::parser::Error as E;
    let at = |span: &mrml::prelude::parser::Span| line_column(source, span.start);
    match e {
        E::UnexpectedElement { position, .. } => ("unexpected element".into(), at(position)),
        E::UnexpectedToken { position, .. } => ("unexpected token".into(), at(position)),
        E::MissingAttribute { name, position, .. } => {
            (format!("missing attribute `{name}`"), at(position))
        }
        E::InvalidAttribute { position, .. } => ("invalid attribute".into(), at(position)),
        E::InvalidFormat { position, .. } => ("invalid format".into(), at(position)),
        E::EndOfStream { .. } => (
            "unexpected end of the document (an element is not closed)".into(),
            line_column(source, source.len()),
        ),
        E::SizeLimit { .. } => ("the document is too large".into(), None),
        E::ParserError { source: inner, .. } => {
            let pos = inner.pos();
            (
                inner.to_string(),
                Some((pos.row as usize, pos.col as usize)),
            )
        }
        E::NoRootNode => ("the document needs an <mjml> root element".into(), None),
        E::IncludeLoaderError { position, .. } => {
            ("mj-include is not supported".into(), at(position))
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(source: &str, offset: usize) -> Option<(usize, usize)> {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some((line, before[line_start..].chars().count() + 1))
}

/// Replaces `{{ ... }}` and `{% ... %}` with spaces (newlines kept, byte length unchanged).
fn blank_liquid(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find('{') {
        let close = match rest[start + 1..].chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                out.push_str(&rest[..start + 1]);
                rest = &rest[start + 1..];
                continue;
            }
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..];
        let end = inner.find(close).map_or(rest.len(), |i| start + 2 + i + 2);
        // A character becomes one space per byte, so byte offsets stay the same.
        for c in rest[start..end].chars() {
            if c == '\n' {
                out.push('\n');
            } else {
                out.extend(std::iter::repeat_n(' ', c.len_utf8()));
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Liquid's error text without its decorations (the source excerpt, the list of what is
/// available): what is wrong and, for unknown names, the name.
fn liquid_message(message: &str) -> String {
    let lines: Vec<&str> = message.lines().map(str::trim).collect();
    let mut out = lines
        .iter()
        .find_map(|l| l.strip_prefix("= "))
        .or_else(|| {
            lines
                .first()
                .map(|l| l.trim_start_matches("liquid:").trim())
                .filter(|l| !l.starts_with("-->"))
        })
        .unwrap_or("invalid Liquid")
        .trim_end_matches('.')
        .to_string();
    if let Some(requested) = requested(message) {
        out.push_str(&format!(": `{requested}`"));
    }
    out
}

/// The `requested=NAME` or `requested filter=NAME` part of a Liquid error.
fn requested(message: &str) -> Option<&str> {
    message.lines().map(str::trim).find_map(|l| {
        l.strip_prefix("requested=")
            .or_else(|| l.strip_prefix("requested filter="))
    })
}

/// The line and column of a Liquid parse error: for an unclosed block the block's opening tag,
/// else Liquid's `--> line:column` marker, else (an unknown filter) where the name is used.
fn liquid_position(message: &str, source: &str) -> Option<(usize, usize)> {
    if message.contains("Unclosed block")
        && let Some(at) = unclosed_block(source)
    {
        return Some(at);
    }
    if let Some(i) = message.find("--> ") {
        let mut nums = message[i + 4..]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().ok());
        if let (Some(Some(line)), Some(Some(column))) = (nums.next(), nums.next()) {
            return Some((line, column));
        }
    }
    let name = requested(message)?;
    source.match_indices(name).find_map(|(at, _)| {
        source[..at]
            .trim_end()
            .ends_with('|')
            .then(|| line_column(source, at))
            .flatten()
    })
}

/// The opening tag of the first block that is never closed (`{% if %}` without `{% endif %}`).
fn unclosed_block(source: &str) -> Option<(usize, usize)> {
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut offset = 0;
    for tag in source.split("{%").skip(1) {
        offset = source[offset..].find("{%").map(|i| offset + i)?;
        let name = tag
            .trim_start_matches('-')
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        if let Some(block) = name.strip_prefix("end") {
            if let Some(i) = open.iter().rposition(|(n, _)| n == block) {
                open.truncate(i);
            }
        } else if matches!(
            name.as_str(),
            "if" | "unless" | "for" | "case" | "capture" | "comment" | "raw" | "tablerow"
        ) {
            open.push((name, offset));
        }
        offset += 2;
    }
    open.first().and_then(|(_, at)| line_column(source, *at))
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The data as a Liquid object, every string HTML-escaped at any depth when `escape`. Values
/// come from outside (traits, event properties, form fields): escaped, they cannot add markup,
/// scripts or links to a message sent from the user's domain. Templates therefore never need
/// `| escape`. (Converted directly: going through serde costs a message more than its
/// rendering.)
fn liquid_object(data: &Map<String, Value>, escape: bool) -> liquid::Object {
    let mut object = liquid::Object::new();
    for (key, value) in data {
        object.insert(key.clone().into(), liquid_value(value, escape));
    }
    object
}

fn liquid_value(value: &Value, escape: bool) -> LiquidValue {
    match value {
        Value::Null => LiquidValue::Nil,
        Value::Bool(b) => LiquidValue::scalar(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => LiquidValue::scalar(i),
            // Beyond i64 (a large u64) or fractional.
            None => LiquidValue::scalar(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) if escape => LiquidValue::scalar(escape_html(s)),
        Value::String(s) => LiquidValue::scalar(s.clone()),
        Value::Array(items) => {
            LiquidValue::Array(items.iter().map(|v| liquid_value(v, escape)).collect())
        }
        Value::Object(map) => LiquidValue::Object(liquid_object(map, escape)),
    }
}

/// Inserts nil along `path` wherever the data has nothing, so that a missing variable renders
/// empty instead of failing. Paths through a value that is not an object are left alone.
fn fill_nil(data: &mut liquid::Object, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.first().is_some_and(|s| s == EACH) {
        // A loop variable's path: fill it in every element of the collection.
        if let Some(LiquidValue::Array(items)) = data.get_mut(first.as_str()) {
            for item in items {
                if let LiquidValue::Object(o) = item {
                    fill_nil(o, &rest[1..]);
                }
            }
        }
        return;
    }
    if rest.is_empty() {
        data.entry(first.clone()).or_insert(LiquidValue::Nil);
        return;
    }
    let entry = data
        .entry(first.clone())
        .or_insert_with(|| LiquidValue::Object(liquid::Object::new()));
    if entry.is_nil() {
        *entry = LiquidValue::Object(liquid::Object::new());
    }
    if let LiquidValue::Object(inner) = entry {
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
            mjml: None,
            text: None,
            body: None,
            tracking: None,
            topic: None,
            transactional: false,
        }
    }

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn one_liquid_environment_for_messages_and_json_bodies() {
        let values = data(json!({"contact": {"name": "Ann \"A\""}, "journey": {"id": "j"}}));
        // The `json` filter of webhook bodies works in message templates too.
        let mut def = email("{{ contact.name | json }}", "<p>x</p>");
        def.text = Some("x".into());
        let out = compile(&def).unwrap().render(&values).unwrap();
        assert_eq!(out.subject.as_deref(), Some(r#""Ann \"A\"""#));
        let body = render_json_body(Some(r#"{"name": {{ contact.name | json }}}"#), &values);
        let body: Value = serde_json::from_str(&body.unwrap()).unwrap();
        assert_eq!(body["name"], "Ann \"A\"");
        let whole: Value = serde_json::from_str(&render_json_body(None, &values).unwrap()).unwrap();
        assert_eq!(whole["journey"]["id"], "j");
        let unquoted = render_json_body(Some(r#"{"name": {{ contact.name }}}"#), &values);
        assert!(unquoted.unwrap_err().contains("not valid JSON"));
        let deep = "{% if true %}".repeat(MAX_LIQUID_DEPTH + 1);
        let refused = render_json_body(Some(&deep), &values);
        assert!(refused.unwrap_err().contains("too deep"));
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let mut def = email(
            "Hi {{ contact.name }}",
            "<p title=\"{{ contact.name }}\">Hi {{ contact.name }}</p>",
        );
        def.text = Some("Hi {{ contact.name }}".into());
        let name = "<a href=\"https://evil.example\">Tom & 'Jerry'</a>";
        let out = compile(&def)
            .unwrap()
            .render(&data(json!({"contact": {"name": name}})))
            .unwrap();
        assert_eq!(out.subject.as_deref(), Some(format!("Hi {name}").as_str()));
        assert_eq!(out.text.as_deref(), Some(format!("Hi {name}").as_str()));
        let html = out.html.unwrap();
        assert!(!html.contains("<a "), "{html}");
        assert!(
            html.contains("Hi &lt;a href=&quot;https://evil.example&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"),
            "{html}"
        );
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
            mjml: None,
            text: None,
            body: None,
            tracking: None,
            topic: None,
            transactional: false,
        };
        let errs = compile(&def).err().unwrap();
        assert!(errs.iter().any(|e| e.field == "body"));
        assert!(errs.iter().any(|e| e.field == "subject"));
    }

    fn mjml_email(subject: &str, mjml: &str) -> TemplateDefinition {
        TemplateDefinition {
            html: None,
            mjml: Some(mjml.into()),
            ..email(subject, "")
        }
    }

    const MJML: &str = r#"<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text>Hello {{ contact.first_name | default: "friend" }}, your {{ event.plan }} plan is ready.</mj-text>
        <mj-button href="https://example.com/start?plan={{ event.plan }}">Start</mj-button>
      </mj-column>
    </mj-section>
    {% for item in event.products %}<mj-section><mj-column><mj-text>{{ item.name }}</mj-text></mj-column></mj-section>{% endfor %}
  </mj-body>
</mjml>"#;

    #[test]
    fn mjml_renders_to_personalised_html_with_a_text_part() {
        let t = compile(&mjml_email("Welcome {{ contact.first_name }}", MJML)).unwrap();
        let out = t
            .render(&data(json!({
                "contact": {"first_name": "Ann"},
                "event": {"plan": "Pro", "products": [{"name": "Mug"}, {"name": "Tea"}]}
            })))
            .unwrap();
        assert_eq!(out.subject.as_deref(), Some("Welcome Ann"));
        let html = out.html.unwrap();
        assert!(
            html.contains("<!doctype html>") || html.contains("<!DOCTYPE html>"),
            "{html}"
        );
        assert!(
            html.contains("Hello Ann, your Pro plan is ready."),
            "{html}"
        );
        assert!(
            html.contains("https://example.com/start?plan=Pro"),
            "{html}"
        );
        assert!(html.contains("Mug") && html.contains("Tea"), "{html}");
        assert!(!html.contains("<mj-"), "{html}");
        let text = out.text.unwrap();
        assert!(
            text.contains("Hello Ann, your Pro plan is ready."),
            "{text}"
        );
        assert!(
            text.contains("https://example.com/start?plan=Pro"),
            "{text}"
        );
        assert!(text.contains("Mug") && text.contains("Tea"), "{text}");
        assert!(!text.contains('<') && !text.contains('{'), "{text}");
        assert!(
            text.lines().all(|l| l.chars().count() <= TEXT_WIDTH),
            "{text}"
        );
    }

    #[test]
    fn text_part_is_generated_from_html_unless_given() {
        let long = "word ".repeat(40);
        let t = compile(&email(
            "x",
            &format!("<h1>Hi {{{{ contact.first_name }}}}</h1><p>{long}</p><p><a href=\"https://example.com/a\">Read more</a></p>"),
        ))
        .unwrap();
        let out = t
            .render(&data(json!({"contact": {"first_name": "Bo"}})))
            .unwrap();
        let text = out.text.unwrap();
        assert!(text.contains("Hi Bo"), "{text}");
        assert!(text.contains("Read more"), "{text}");
        assert!(text.contains("https://example.com/a"), "{text}");
        assert!(text.lines().count() > 3, "wrapped: {text}");
        assert!(
            text.lines().all(|l| l.chars().count() <= TEXT_WIDTH),
            "{text}"
        );

        let given = TemplateDefinition {
            text: Some("Plain {{ contact.first_name }}".into()),
            ..email("x", "<p>Rich</p>")
        };
        let out = compile(&given)
            .unwrap()
            .render(&data(json!({"contact": {"first_name": "Bo"}})))
            .unwrap();
        assert_eq!(out.text.as_deref(), Some("Plain Bo"));
    }

    #[test]
    fn liquid_errors_have_line_and_column() {
        let errs = compile(&email(
            "ok",
            "<p>line one</p>\n<p>Hi {{ contact.first_name</p>\n",
        ))
        .err()
        .unwrap();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "html");
        assert_eq!(errs[0].line, Some(2), "{errs:?}");
        assert!(errs[0].column.is_some(), "{errs:?}");
        assert!(errs[0].to_string().contains("line 2"), "{}", errs[0]);

        let errs = compile(&email("ok", "a\nb\n  {% if contact.vip %}VIP\n"))
            .err()
            .unwrap();
        assert_eq!(
            (errs[0].line, errs[0].column),
            (Some(3), Some(3)),
            "{errs:?}"
        );
        assert!(errs[0].message.contains("Unclosed block"), "{errs:?}");

        let errs = compile(&email("ok", "x\n{{ contact.name | shout }}"))
            .err()
            .unwrap();
        assert_eq!(
            (errs[0].line, errs[0].column),
            (Some(2), Some(19)),
            "{errs:?}"
        );
        assert!(errs[0].message.contains("`shout`"), "{errs:?}");
    }

    #[test]
    fn a_gt_right_after_a_non_ascii_character_in_text_is_an_error_not_a_panic() {
        // Found by the template_render fuzz target: the MJML parser panicked on it.
        let errs = compile(&mjml_email(
            "x",
            "<mjml>\n  <mj-body>act.avatar }\u{462}A>\n  </mj-bzody>\n</mjml>",
        ))
        .err()
        .unwrap();
        assert_eq!(errs[0].field, "mjml", "{errs:?}");
        assert!(errs[0].message.contains("&gt;"), "{errs:?}");
        assert_eq!(errs[0].line, Some(2), "{errs:?}");
        // After personalisation too.
        let err = mjml_to_html("<mjml><mj-body><mj-text>\u{462}A></mj-text></mj-body></mjml>")
            .unwrap_err();
        assert!(err.message.contains("after personalisation"), "{err:?}");
        // Not in a quoted attribute, a comment, or text where the `>` follows ASCII.
        for fine in [
            "<mjml><mj-body><mj-text title=\"\u{462}\">\u{462} a></mj-text></mj-body></mjml>",
            "<mjml><mj-body><!-- \u{462}> --><mj-text>\u{462} &gt;</mj-text></mj-body></mjml>",
        ] {
            assert_eq!(gt_after_non_ascii_in_text(fine), None, "{fine}");
            mjml_to_html(fine).unwrap();
        }
    }

    #[test]
    fn a_whole_number_too_large_for_64_bits_in_liquid_is_an_error_not_a_panic() {
        // Found by the template_render fuzz target: the Liquid parser panics on these.
        for (html, line, column) in [
            ("<p>{{ 9223372036854775808 }}</p>", 1, 7),
            (
                "<ul>\n{%- for p in 55555555555555555555555recommendations: 3 %}{% endfor %}",
                2,
                14,
            ),
            ("{{ price | plus: -99999999999999999999 }}", 1, 18),
            (
                "{% for i in (1..99999999999999999999) %}{% endfor %}",
                1,
                17,
            ),
        ] {
            let errs = compile(&email("Hi", html)).err().expect(html);
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert_eq!(errs[0].field, "html");
            assert_eq!(errs[0].message, OVERSIZED_NUMBER);
            assert_eq!(
                (errs[0].line, errs[0].column),
                (Some(line), Some(column)),
                "{html}"
            );
            let body = render_json_body(Some(html), &Map::new()).unwrap_err();
            assert!(body.contains("64 bits"), "{body}");
        }
        // Numbers that fit, digits in names, fractions and quoted text are fine.
        for fine in [
            "{{ 9223372036854775807 }} {{ -9223372036854775808 }}",
            "{{ item2 }} {{ 1.99999999999999999999999 }}",
            "{{ 'order 99999999999999999999' }} 99999999999999999999 outside markup",
        ] {
            assert_eq!(oversized_liquid_number(fine), None, "{fine}");
            compile(&email("Hi", fine)).expect(fine);
        }
    }

    #[test]
    fn mjml_errors_have_line_and_column() {
        let errs = compile(&mjml_email(
            "x",
            "<mjml>\n  <mj-body>\n    <mj-image src=\"{{ contact.avatar }}\" width=></mj-image>\n  </mj-body>\n</mjml>",
        ))
        .err()
        .unwrap();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "mjml");
        assert_eq!(errs[0].line, Some(3), "{errs:?}");
        assert!(errs[0].column.is_some(), "{errs:?}");

        let errs = compile(&mjml_email(
            "x",
            "<mjml>\n  <mj-body>\n    {% if x %}<mj-section>{% endif %}\n  </mj-body>\n</mjml>",
        ))
        .err()
        .unwrap();
        assert_eq!(errs[0].field, "mjml", "{errs:?}");
        assert!(errs[0].message.contains("end of the document"), "{errs:?}");
        assert_eq!(errs[0].line, Some(5), "{errs:?}");

        let errs = compile(&mjml_email("x", "<div>not mjml</div>"))
            .err()
            .unwrap();
        assert_eq!(errs[0].field, "mjml", "{errs:?}");
        assert_eq!(
            (errs[0].line, errs[0].column),
            (Some(1), Some(1)),
            "{errs:?}"
        );
    }

    #[test]
    fn mjml_and_html_are_exclusive() {
        let both = TemplateDefinition {
            mjml: Some("<mjml><mj-body></mj-body></mjml>".into()),
            ..email("x", "<p>x</p>")
        };
        let errs = compile(&both).err().unwrap();
        assert!(errs.iter().any(|e| e.field == "mjml"), "{errs:?}");
        let sms = TemplateDefinition {
            id: "s".into(),
            channel: Channel::Sms,
            name: None,
            subject: None,
            html: None,
            mjml: Some("<mjml></mjml>".into()),
            text: None,
            body: Some("hi".into()),
            tracking: None,
            topic: None,
            transactional: false,
        };
        assert!(
            compile(&sms)
                .err()
                .unwrap()
                .iter()
                .any(|e| e.field == "mjml")
        );
    }
}
