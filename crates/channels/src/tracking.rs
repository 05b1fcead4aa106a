//! Open and click tracking of email: signed tokens (the rewriting of rendered HTML itself is
//! `waymark_render::links`, which asks this module for each link's signed URL).
//!
//! With a public URL configured, every `<a href="http(s)://…">` of an email's HTML becomes
//! `{public}/t/c/{token}` and an open pixel `{public}/t/o/{token}` is added before `</body>`.
//! A token carries what its endpoint needs (the message's idempotency key and, for a click, the
//! link's index and destination) and an HMAC-SHA256 over all of it, so no table is needed and
//! a tampered token is rejected (never an open redirect). The text part keeps the original
//! links. Links with a `data-waymark-notrack` attribute, `mailto:`, `tel:` and `#anchor` links
//! are left alone; so is everything inside comments, `<script>`, `<style>` and `<textarea>`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use waymark_render::links::{is_trackable, track_links, untrack_links};

/// Separates tracking MACs from any other use of the secret.
const DOMAIN: &[u8] = b"waymark-tracking-v1\0";
/// Tokens longer than this are rejected before any work (a URL is at most a few KB).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// What a verified token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracked {
    /// The open pixel of a message (by its idempotency key).
    Open { message: String },
    /// The `index`-th tracked link of a message, leading to `url`.
    Click {
        message: String,
        index: u32,
        url: String,
    },
}

impl Tracked {
    pub fn message(&self) -> &str {
        match self {
            Tracked::Open { message } | Tracked::Click { message, .. } => message,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// The message's idempotency key.
    m: String,
    /// The link's index; absent for the open pixel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<u32>,
    /// The link's destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
}

/// The public base URL and the signing secret.
#[derive(Clone)]
pub struct Tracking {
    public_url: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Tracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracking")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Tracking {
    /// `public_url` is where recipients reach the server (`https://mail.example.com`, or with
    /// a path prefix); it must be http(s).
    pub fn new(public_url: &str, secret: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(public_url.trim())
            .map_err(|e| format!("the public URL `{public_url}` is not valid: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "the public URL `{public_url}` must be an http:// or https:// URL with a host"
            ));
        }
        if secret.len() < 16 {
            return Err("the tracking secret must be at least 16 characters".into());
        }
        Ok(Tracking {
            public_url: parsed.as_str().trim_end_matches('/').to_string(),
            secret: secret.as_bytes().to_vec(),
        })
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    fn mac(&self) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(DOMAIN);
        mac
    }

    fn sign(&self, payload: &Payload) -> String {
        let json = serde_json::to_vec(payload).expect("a payload serialises");
        let mut mac = self.mac();
        mac.update(&json);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    pub fn open_token(&self, message: &str) -> String {
        self.sign(&Payload {
            m: message.to_string(),
            l: None,
            u: None,
        })
    }

    pub fn click_token(&self, message: &str, index: u32, url: &str) -> String {
        self.sign(&Payload {
            m: message.to_string(),
            l: Some(index),
            u: Some(url.to_string()),
        })
    }

    /// The open pixel's URL.
    pub fn open_url(&self, message: &str) -> String {
        format!("{}/t/o/{}", self.public_url, self.open_token(message))
    }

    /// A tracked link's URL.
    pub fn click_url(&self, message: &str, index: u32, url: &str) -> String {
        format!(
            "{}/t/c/{}",
            self.public_url,
            self.click_token(message, index, url)
        )
    }

    /// Checks a token's signature (in constant time) and decodes it; `None` for anything
    /// tampered, truncated or not made by this secret.
    pub fn verify(&self, token: &str) -> Option<Tracked> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload, signature) = token.split_once('.')?;
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(&json);
        mac.verify_slice(&signature).ok()?;
        let payload: Payload = serde_json::from_slice(&json).ok()?;
        match (payload.l, payload.u) {
            (None, None) => Some(Tracked::Open { message: payload.m }),
            (Some(index), Some(url)) if is_trackable(&url) => Some(Tracked::Click {
                message: payload.m,
                index,
                url,
            }),
            _ => None,
        }
    }

    /// Signs `json` for another use of the same secret (`domain` separates the uses), in the
    /// same `payload.mac` form as tracking tokens.
    pub fn sign_for(&self, domain: &[u8], json: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(domain);
        mac.update(json);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// Checks a token made by `sign_for` with the same `domain`; returns its payload.
    pub fn verify_for(&self, domain: &[u8], token: &str) -> Option<Vec<u8>> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload, signature) = token.split_once('.')?;
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(domain);
        mac.update(&json);
        mac.verify_slice(&signature).ok()?;
        Some(json)
    }

    /// Rewrites the links of an email's HTML and adds the open pixel (see the module docs).
    pub fn rewrite_html(&self, html: &str, message: &str) -> String {
        track_links(html, &self.open_url(message), &mut |index, url| {
            self.click_url(message, index, url)
        })
    }

    /// A sent email's HTML for an admin to look at: its open pixel removed and its tracked
    /// links pointing at their destinations again, so that looking at it (or following a
    /// link from it) is not counted as its recipient's open or click. Only URLs this server
    /// signed are recognised; everything else is left as it is.
    pub fn untrack_html(&self, html: &str) -> String {
        let (opens, clicks) = (
            format!("{}/t/o/", self.public_url),
            format!("{}/t/c/", self.public_url),
        );
        let is_pixel = |src: &str| {
            src.strip_prefix(&opens)
                .and_then(|token| self.verify(token))
                .is_some_and(|t| matches!(t, Tracked::Open { .. }))
        };
        let original = |href: &str| match self.verify(href.strip_prefix(&clicks)?)? {
            Tracked::Click { url, .. } => Some(url),
            Tracked::Open { .. } => None,
        };
        untrack_links(html, &is_pixel, &original)
    }
}

/// Rewrites the HTML of a rendered email when tracking is configured and the template allows
/// it; otherwise returns it unchanged.
pub fn track_html(
    tracking: Option<&Tracking>,
    template_allows: bool,
    message: &str,
    html: Option<String>,
) -> Option<String> {
    match (tracking, html) {
        (Some(t), Some(html)) if template_allows => Some(t.rewrite_html(&html, message)),
        (_, html) => html,
    }
}

/// The `Location` of a click's redirect: the link as written when it is plain ASCII, else
/// its normalised (percent-encoded) form.
pub fn redirect_location(url: &str) -> String {
    if url.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        url.to_string()
    } else {
        url::Url::parse(url).map_or_else(|_| url.to_string(), |u| u.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracking() -> Tracking {
        Tracking::new("https://t.example.com/", "0123456789abcdef0123").unwrap()
    }

    /// The destinations of the tracked links in `html`, in order.
    fn tracked_links(t: &Tracking, html: &str) -> Vec<(u32, String)> {
        let prefix = "https://t.example.com/t/c/";
        html.match_indices(prefix)
            .map(|(at, _)| {
                let token: String = html[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    .collect();
                match t.verify(&token) {
                    Some(Tracked::Click {
                        message,
                        index,
                        url,
                    }) => {
                        assert_eq!(message, "msg-1");
                        (index, url)
                    }
                    other => panic!("not a click token: {other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn tokens_round_trip() {
        let t = tracking();
        let open = t.open_token("key-1");
        assert_eq!(
            t.verify(&open),
            Some(Tracked::Open {
                message: "key-1".into()
            })
        );
        let click = t.click_token("key-1", 3, "https://example.com/a?b=c&d=e");
        assert_eq!(
            t.verify(&click),
            Some(Tracked::Click {
                message: "key-1".into(),
                index: 3,
                url: "https://example.com/a?b=c&d=e".into()
            })
        );
        assert!(
            click
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        );
    }

    #[test]
    fn tampered_tokens_are_rejected() {
        let t = tracking();
        let click = t.click_token("key-1", 0, "https://example.com/");
        let (payload, sig) = click.split_once('.').unwrap();
        // Another destination with the old signature.
        let evil = URL_SAFE_NO_PAD.encode(br#"{"m":"key-1","l":0,"u":"https://evil.example/"}"#);
        assert_eq!(t.verify(&format!("{evil}.{sig}")), None);
        // A flipped signature byte.
        let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
        bytes[0] ^= 1;
        let flipped = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(t.verify(&format!("{payload}.{flipped}")), None);
        // Truncated, missing or garbage.
        assert_eq!(t.verify(&click[..click.len() - 2]), None);
        assert_eq!(t.verify(payload), None);
        assert_eq!(t.verify("not-a-token"), None);
        assert_eq!(t.verify(""), None);
        // Another secret.
        let other = Tracking::new("https://t.example.com", "another-secret-0123456").unwrap();
        assert_eq!(other.verify(&click), None);
        // A validly signed token must still point at http(s).
        let js = t.click_token("key-1", 0, "javascript:alert(1)");
        assert_eq!(t.verify(&js), None);
    }

    #[test]
    fn redirect_locations_are_valid_header_values() {
        assert_eq!(
            redirect_location("https://example.com/a?b=c&d=e"),
            "https://example.com/a?b=c&d=e"
        );
        assert_eq!(
            redirect_location("https://example.com/caf\u{e9} x"),
            "https://example.com/caf%C3%A9%20x"
        );
    }

    #[test]
    fn public_url_and_secret_are_checked() {
        assert!(Tracking::new("ftp://x.example", "0123456789abcdef").is_err());
        assert!(Tracking::new("not a url", "0123456789abcdef").is_err());
        assert!(Tracking::new("https://x.example", "short").is_err());
        let t = Tracking::new("https://x.example/mail/", "0123456789abcdef").unwrap();
        assert!(t.open_url("k").starts_with("https://x.example/mail/t/o/"));
    }

    #[test]
    fn links_are_rewritten_and_the_pixel_added() {
        let t = tracking();
        let html = r##"<html><body><p>Hi <a href="https://example.com/a?x=1&amp;y=2">one</a>
<A class=btn HREF='http://example.com/b'>two</A> <a href=https://example.com/c>three</a>
<a href="mailto:a@example.com">mail</a> <a href="tel:+123">tel</a> <a href="#top">top</a>
<a href="https://">no host</a> <a href="/relative">relative</a>
<a data-waymark-notrack href="https://example.com/private">private</a> <a name="x">anchor</a>
</p></body></html>"##;
        let out = t.rewrite_html(html, "msg-1");
        assert_eq!(
            tracked_links(&t, &out),
            vec![
                (0, "https://example.com/a?x=1&y=2".to_string()),
                (1, "http://example.com/b".to_string()),
                (2, "https://example.com/c".to_string()),
            ]
        );
        for kept in [
            r#"href="mailto:a@example.com""#,
            r#"href="tel:+123""#,
            r##"href="#top""##,
            r#"href="https://""#,
            r#"href="/relative""#,
            r#"<a data-waymark-notrack href="https://example.com/private">"#,
            r#"<a name="x">"#,
            "<A class=btn HREF=\"https://t.example.com/t/c/",
        ] {
            assert!(out.contains(kept), "{kept} missing from {out}");
        }
        let pixel = out.find(r#"<img src="https://t.example.com/t/o/"#).unwrap();
        assert!(pixel < out.find("</body>").unwrap());
        assert!(out.ends_with("</body></html>"));
        let token: String = out[pixel..]
            .trim_start_matches(r#"<img src="https://t.example.com/t/o/"#)
            .chars()
            .take_while(|c| *c != '"')
            .collect();
        assert_eq!(
            t.verify(&token),
            Some(Tracked::Open {
                message: "msg-1".into()
            })
        );
    }

    #[test]
    fn comments_scripts_and_broken_markup_are_left_alone() {
        let t = tracking();
        let html = concat!(
            "<!-- <a href=\"https://example.com/comment\">x</a> -->",
            "<style>a[href=\"https://example.com/css\"]{}</style>",
            "<script>var s = '<a href=\"https://example.com/js\">';</script>",
            "1 < 2 and <a href=\"https://example.com/ok\" title='a > b'>ok</a>",
            "<a href=\"https://example.com/unclosed\""
        );
        let out = t.rewrite_html(html, "msg-1");
        assert_eq!(
            tracked_links(&t, &out),
            vec![(0, "https://example.com/ok".to_string())]
        );
        for kept in [
            "https://example.com/comment",
            "https://example.com/css",
            "https://example.com/js",
            "<a href=\"https://example.com/unclosed\"",
            "1 < 2 and ",
            "title='a > b'",
        ] {
            assert!(out.contains(kept), "{kept} missing from {out}");
        }
        // No </body>: the pixel goes at the end.
        assert!(out.ends_with(r#"height:1px">"#));
    }

    #[test]
    fn track_html_respects_the_template_and_configuration() {
        let t = tracking();
        let html = Some(r#"<a href="https://example.com/">x</a>"#.to_string());
        assert_eq!(track_html(None, true, "m", html.clone()), html);
        assert_eq!(track_html(Some(&t), false, "m", html.clone()), html);
        assert_eq!(track_html(Some(&t), true, "m", None), None);
        assert!(
            track_html(Some(&t), true, "m", html)
                .unwrap()
                .contains("/t/c/")
        );
    }

    #[test]
    fn untracking_gives_back_the_html_as_rendered() {
        let t = tracking();
        let html = r#"<html><body><a href="https://shop.example/sale?a=1&amp;b=2">sale</a> <a href="https://t.example.com/t/c/forged.sig">x</a></body></html>"#;
        let tracked = t.rewrite_html(html, "m-1");
        assert!(tracked.contains("/t/o/"), "{tracked}");
        let seen = t.untrack_html(&tracked);
        assert_eq!(seen, html);
        // A pixel of another server (or secret) stays: only our own are recognised.
        let other = Tracking::new("https://t.example.com", "another-secret-0123456").unwrap();
        assert!(other.untrack_html(&tracked).contains("/t/o/"));
    }
}
