//! Limits on the shape of what users write: how deep conditions and documents may nest.
//!
//! They exist so that nothing a request can store is unreadable later and no parser or
//! recursive walk can exhaust the stack. Each limit is far above what a person writes by hand
//! and far below what breaks: a stored document is read back with serde_json's default
//! recursion limit of 128 levels, so every document accepted here nests at most
//! [`MAX_DOCUMENT_DEPTH`] levels once stored (conditions are stored in their JSON form, two
//! levels per `all`/`any`). `docs/security.md` lists them.

use serde_json::Value;

/// How deep `and`/`or` groups, parentheses and `not` may nest in one condition.
pub const MAX_CONDITION_DEPTH: usize = 32;

/// How deep a value compared in a condition (`plan in [...]`, `eq: {...}`) may nest.
pub const MAX_VALUE_DEPTH: usize = 8;

/// How deep a stored document (journey, segment, template) may nest as JSON.
pub const MAX_DOCUMENT_DEPTH: usize = 100;

/// How deep Liquid blocks (`{% if %}`, `{% for %}`, ...) may nest in one template field.
pub const MAX_LIQUID_DEPTH: usize = 32;

/// How deep elements may nest in an MJML document (before and after personalisation).
pub const MAX_MARKUP_DEPTH: usize = 48;

/// The nesting depth of a JSON value: 0 for a scalar, 1 for a flat array or object, and so on.
/// Iterative, so that it is safe on any value.
pub fn json_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    deepest
}

/// Liquid tags that open a block closed by `end<name>`.
const LIQUID_BLOCKS: &[&str] = &[
    "if",
    "unless",
    "for",
    "case",
    "capture",
    "tablerow",
    "comment",
    "raw",
    "ifchanged",
];

/// One `{% name args %}` tag as the Liquid lexer reads it.
struct LiquidTag<'a> {
    name: &'a str,
    has_arguments: bool,
}

/// Reads the tag that starts at `source` (which starts with `{%`): its name, and the rest of
/// the source after its `%}`. Quoted strings inside a tag may contain `%}` and `{%`. `None`
/// when Liquid would not read a tag there (no name, an unclosed string, no `%}`): it then
/// reads `{` as text and goes on after it.
fn liquid_tag(source: &str) -> Option<(LiquidTag<'_>, &str)> {
    let inner = source.strip_prefix("{%")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner).trim_start();
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(inner.len());
    // A trailing `-` belongs to `-%}`, not to the name.
    let name = inner[..name_len].trim_end_matches('-');
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    let mut rest = &inner[name.len()..];
    let mut has_arguments = false;
    loop {
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed
            .strip_prefix("-%}")
            .or_else(|| trimmed.strip_prefix("%}"))
        {
            return Some((
                LiquidTag {
                    name,
                    has_arguments,
                },
                after,
            ));
        }
        let c = trimmed.chars().next()?;
        has_arguments = true;
        rest = if c == '"' || c == '\'' {
            let close = trimmed[1..].find(c)?;
            &trimmed[close + 2..]
        } else {
            &trimmed[c.len_utf8()..]
        };
    }
}

/// The deepest nesting of Liquid blocks in `source`, read as the Liquid parser reads it (which
/// recurses once per level): a block is closed only by its own `end<name>` without arguments;
/// the content of `{% raw %}` is text; quoted strings in tags are not tags. Where the reading
/// here and Liquid's could differ, this one counts deeper, never shallower.
pub fn liquid_depth(source: &str) -> usize {
    let mut open: Vec<&str> = Vec::new();
    let mut deepest = 0usize;
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let Some((tag, after)) = liquid_tag(&rest[start..]) else {
            rest = &rest[start + 1..];
            continue;
        };
        rest = after;
        if let Some(block) = tag.name.strip_prefix("end") {
            if !tag.has_arguments && open.last() == Some(&block) {
                open.pop();
            }
        } else if tag.name == "raw" {
            // Text up to the first `{% endraw %}`.
            deepest = deepest.max(open.len() + 1);
            loop {
                let Some(start) = rest.find("{%") else {
                    return deepest;
                };
                match liquid_tag(&rest[start..]) {
                    Some((t, after)) => {
                        rest = after;
                        if t.name == "endraw" && !t.has_arguments {
                            break;
                        }
                    }
                    None => rest = &rest[start + 1..],
                }
            }
        } else if LIQUID_BLOCKS.contains(&tag.name) {
            open.push(tag.name);
            deepest = deepest.max(open.len());
        }
    }
    deepest
}

/// The deepest nesting of elements in markup (MJML or XHTML): a scan of its tags, in which
/// `<x/>`, `</x>`, comments and declarations do not open an element.
pub fn markup_depth(source: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut rest = source;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>').unwrap_or(after.len());
        let tag = &after[..end];
        if tag.starts_with('/') {
            depth = depth.saturating_sub(1);
        } else if !(tag.starts_with('!') || tag.starts_with('?') || tag.ends_with('/')) {
            depth += 1;
            deepest = deepest.max(depth);
        }
        rest = &after[end..];
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_containers() {
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!([])), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": 2}]})), 3);
    }

    #[test]
    fn liquid_depth_counts_blocks() {
        assert_eq!(liquid_depth("Hello {{ name }}"), 0);
        let nested =
            "{% if a %}{%- for x in xs -%}{{ x }}{% endfor %}{% endif %}{% if b %}{% endif %}";
        assert_eq!(liquid_depth(nested), 2);
        assert_eq!(liquid_depth(&"{% if a %}".repeat(40)), 40);
        assert_eq!(
            liquid_depth("{%- raw -%}{% if %}{% endraw %}{%if x-%}{%endif%}"),
            1
        );
        assert_eq!(
            liquid_depth("{% if a %}{% unless b %}{% endunless %}{% endif %}"),
            2
        );
    }

    /// Tags that close no open block in Liquid close nothing here either: an `end` inside
    /// `raw`, an `end` of another block (ignored inside a comment), an `end` with arguments
    /// or inside a quoted string (found while writing the template_render fuzz target).
    #[test]
    fn liquid_depth_is_not_fooled_by_tags_that_close_nothing() {
        for unit in [
            "{% if a %}{% raw %}{% endif %}{% endraw %}",
            "{% if a %}{% comment %}{% endif %}{% endcomment %}",
            "{% if a %}{% comment %}{% endz %}{% endcomment %}",
            "{% if a == \"%}{% endif %}\" %}",
            "{% if a == '%}{% endif %}' %}",
            "{% for x in xs %}{% endfor x %}",
        ] {
            assert!(liquid_depth(&unit.repeat(40)) >= 40, "{unit}");
        }
    }

    #[test]
    fn markup_depth_counts_elements() {
        let mjml = "<mjml><mj-body><mj-section><mj-column><mj-image src=\"x\"/>\
                    <mj-text><p>Hi</p></mj-text></mj-column></mj-section></mj-body></mjml>";
        assert_eq!(markup_depth(mjml), 6);
        assert_eq!(markup_depth("<!-- c --><a><b/></a>"), 1);
    }
}
