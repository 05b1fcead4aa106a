//! Link rewriting of rendered email HTML for open and click tracking (pure text work; the
//! signing of what a link stands for belongs to the caller, through the `link` callback).
//!
//! Every `<a href="http(s)://…">` gets the URL the callback returns for it, and an open pixel
//! is added before `</body>`. The text part keeps the original links. Links with a
//! `data-waymark-notrack` attribute, `mailto:`, `tel:` and `#anchor` links are left alone; so is
//! everything inside comments, `<script>`, `<style>` and `<textarea>`.

/// Only absolute http(s) links with a host are tracked.
pub fn is_trackable(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && url::Url::parse(url).is_ok_and(|u| u.host_str().is_some())
}

/// Rewrites the links of an email's HTML and adds an open pixel (see the module docs): the
/// `index`-th trackable link's destination `url` becomes `link(index, url)`, and an `<img>` with
/// `pixel_src` goes before the last `</body>` (or at the end).
pub fn track_links(
    html: &str,
    pixel_src: &str,
    link: &mut dyn FnMut(u32, &str) -> String,
) -> String {
    let mut index = 0u32;
    rewrite(html, &mut |text, tag| {
        tag.name
            .eq_ignore_ascii_case("a")
            .then(|| rewrite_anchor(text, tag, &mut index, link))
    })
    .with_pixel(pixel_src)
}

/// The reverse of [`track_links`], for looking at a sent email without being counted as its
/// recipient: every `<img>` whose `src` `is_pixel` says is an open pixel is removed, and every
/// `<a href>` for which `original` gives a destination points there again. Nothing else
/// changes.
pub fn untrack_links(
    html: &str,
    is_pixel: &dyn Fn(&str) -> bool,
    original: &dyn Fn(&str) -> Option<String>,
) -> String {
    rewrite(html, &mut |text, tag| {
        let value = |name: &str| {
            let (from, to) = tag
                .attrs
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
                .and_then(|a| a.value)?;
            let raw = text[from..to].trim_matches(|c| c == '"' || c == '\'');
            Some((from, to, decode_entities(raw.trim())))
        };
        if tag.name.eq_ignore_ascii_case("img") {
            return value("src")
                .filter(|(_, _, src)| is_pixel(src))
                .map(|_| String::new());
        }
        if tag.name.eq_ignore_ascii_case("a") {
            let (from, to, href) = value("href")?;
            let url = original(&href)?;
            return Some(format!(
                "{}\"{}\"{}",
                &text[..from],
                escape_attr(&url),
                &text[to..]
            ));
        }
        None
    })
    .html
}

struct Rewritten {
    html: String,
    /// Where in `html` the last `</body>` starts.
    body_end: Option<usize>,
}

impl Rewritten {
    fn with_pixel(mut self, src: &str) -> String {
        let pixel = format!(
            r#"<img src="{}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">"#,
            escape_attr(src)
        );
        match self.body_end {
            Some(at) => self.html.insert_str(at, &pixel),
            None => self.html.push_str(&pixel),
        }
        self.html
    }
}

/// One attribute of a start tag: its name and, when it has a value, the byte range of the
/// value as written (including quotes) within the tag.
struct Attr<'a> {
    name: &'a str,
    value: Option<(usize, usize)>,
}

struct Tag<'a> {
    name: &'a str,
    end: bool,
    attrs: Vec<Attr<'a>>,
    /// Bytes from `<` to `>` inclusive.
    len: usize,
}

/// Elements whose content is raw text, not markup.
const RAW_TEXT: &[&str] = &["script", "style", "textarea", "title", "xmp"];

/// A small HTML scanner: copies the document, replacing each start tag for which `start_tag`
/// (given the tag's text and parsed form) returns a replacement, and noting where `</body>`
/// is.
fn rewrite(html: &str, start_tag: &mut dyn FnMut(&str, &Tag<'_>) -> Option<String>) -> Rewritten {
    let mut out = String::with_capacity(html.len() + html.len() / 4 + 256);
    let mut body_end = None;
    let mut i = 0;
    while let Some(rel) = html[i..].find('<') {
        let start = i + rel;
        out.push_str(&html[i..start]);
        let rest = &html[start..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            let end = comment.find("-->").map_or(rest.len(), |e| e + 4 + 3);
            out.push_str(&rest[..end]);
            i = start + end;
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            let end = rest.find('>').map_or(rest.len(), |e| e + 1);
            out.push_str(&rest[..end]);
            i = start + end;
            continue;
        }
        let Some(tag) = parse_tag(rest) else {
            out.push('<');
            i = start + 1;
            continue;
        };
        let text = &rest[..tag.len];
        i = start + tag.len;
        if tag.end {
            if tag.name.eq_ignore_ascii_case("body") {
                body_end = Some(out.len());
            }
            out.push_str(text);
            continue;
        }
        match start_tag(text, &tag) {
            Some(replaced) => out.push_str(&replaced),
            None => out.push_str(text),
        }
        if let Some(raw) = RAW_TEXT
            .iter()
            .find(|r| tag.name.eq_ignore_ascii_case(r))
            .filter(|_| !text.ends_with("/>"))
        {
            // Copy the raw text up to the matching end tag unchanged.
            let close =
                find_ascii_ci(&html[i..], &format!("</{raw}")).map_or(html.len(), |p| i + p);
            out.push_str(&html[i..close]);
            i = close;
        }
    }
    out.push_str(&html[i..]);
    Rewritten {
        html: out,
        body_end,
    }
}

fn rewrite_anchor(
    text: &str,
    tag: &Tag<'_>,
    index: &mut u32,
    link: &mut dyn FnMut(u32, &str) -> String,
) -> String {
    if tag
        .attrs
        .iter()
        .any(|a| a.name.eq_ignore_ascii_case("data-waymark-notrack"))
    {
        return text.to_string();
    }
    let Some((from, to)) = tag
        .attrs
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case("href"))
        .and_then(|a| a.value)
    else {
        return text.to_string();
    };
    let raw = text[from..to].trim_matches(|c| c == '"' || c == '\'');
    let url = decode_entities(raw.trim());
    if !is_trackable(&url) {
        return text.to_string();
    }
    let tracked = link(*index, &url);
    *index += 1;
    format!(
        "{}\"{}\"{}",
        &text[..from],
        escape_attr(&tracked),
        &text[to..]
    )
}

/// Parses the tag at the start of `s` (which starts with `<`); `None` when it is not a tag
/// (a lone `<`, or a tag never closed by `>`).
fn parse_tag(s: &str) -> Option<Tag<'_>> {
    let b = s.as_bytes();
    let mut p = 1;
    let end = b.get(p) == Some(&b'/');
    if end {
        p += 1;
    }
    if !b.get(p)?.is_ascii_alphabetic() {
        return None;
    }
    let name_start = p;
    while p < b.len() && !b[p].is_ascii_whitespace() && b[p] != b'>' && b[p] != b'/' {
        p += 1;
    }
    let name = &s[name_start..p];
    let mut attrs = Vec::new();
    loop {
        while p < b.len() && (b[p].is_ascii_whitespace() || b[p] == b'/') {
            p += 1;
        }
        match b.get(p)? {
            b'>' => {
                return Some(Tag {
                    name,
                    end,
                    attrs,
                    len: p + 1,
                });
            }
            _ => {
                let attr_start = p;
                p += 1; // an attribute name may start with `=`
                while p < b.len()
                    && !b[p].is_ascii_whitespace()
                    && !matches!(b[p], b'/' | b'>' | b'=')
                {
                    p += 1;
                }
                let attr_name = &s[attr_start..p];
                while p < b.len() && b[p].is_ascii_whitespace() {
                    p += 1;
                }
                if b.get(p) != Some(&b'=') {
                    attrs.push(Attr {
                        name: attr_name,
                        value: None,
                    });
                    continue;
                }
                p += 1;
                while p < b.len() && b[p].is_ascii_whitespace() {
                    p += 1;
                }
                let value_start = p;
                match b.get(p)? {
                    q @ (b'"' | b'\'') => {
                        let close = s[p + 1..].find(*q as char)?;
                        p += 1 + close + 1;
                    }
                    b'>' => {}
                    _ => {
                        while p < b.len() && !b[p].is_ascii_whitespace() && b[p] != b'>' {
                            p += 1;
                        }
                    }
                }
                attrs.push(Attr {
                    name: attr_name,
                    value: Some((value_start, p)),
                });
            }
        }
    }
}

fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    let n = needle.len();
    haystack
        .as_bytes()
        .windows(n)
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Decodes the character references an `href` is likely to hold (`&amp;` above all).
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|&e| e <= 10).and_then(|e| {
            let entity = &rest[1..e];
            let c = match entity {
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let code = if let Some(hex) = entity
                        .strip_prefix("#x")
                        .or_else(|| entity.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else {
                        entity.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    code.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_go_through_the_callback_in_order_and_the_pixel_before_body_end() {
        let html = r#"<body><a href="https://a.example/?x=1&amp;y=2">a</a> <a href="mailto:x@y.z">m</a> <a href='http://b.example'>b</a></body>"#;
        let mut seen = Vec::new();
        let out = track_links(html, "https://t/o", &mut |index, url| {
            seen.push((index, url.to_string()));
            format!("https://t/c/{index}?a&b")
        });
        assert_eq!(
            seen,
            vec![
                (0, "https://a.example/?x=1&y=2".to_string()),
                (1, "http://b.example".to_string())
            ]
        );
        assert!(
            out.contains(r#"<a href="https://t/c/0?a&amp;b">a</a>"#),
            "{out}"
        );
        assert!(out.contains(r#"href="mailto:x@y.z""#));
        assert!(out.ends_with(r#"height:1px"></body>"#), "{out}");
    }

    #[test]
    fn untracking_restores_links_and_drops_the_pixel_only() {
        let html = r#"<body><a href="https://a.example/">a</a> <a href="https://b.example/">b</a><img src="https://logo.example/x.png"></body>"#;
        let tracked = track_links(html, "https://t/o/1", &mut |index, _| {
            format!("https://t/c/{index}?a&b")
        });
        let original = |url: &str| match url {
            "https://t/c/0?a&b" => Some("https://a.example/?q=1&r=2".to_string()),
            _ => None,
        };
        let out = untrack_links(&tracked, &|src| src.starts_with("https://t/o/"), &original);
        assert_eq!(
            out,
            r#"<body><a href="https://a.example/?q=1&amp;r=2">a</a> <a href="https://t/c/1?a&amp;b">b</a><img src="https://logo.example/x.png"></body>"#
        );
    }
}
