//! The `webhook` journey action: an HTTP call with a JSON body, signed with the installation's
//! webhook secret and delivered through the outbox like any message.
//!
//! The step renders the body (Liquid, must give valid JSON) and writes a `messages` row with
//! channel `webhook` in the same transaction as the step: `recipient` is the URL, `subject` the
//! method, `text` the body and `html` the request options (`{"headers": {..}, "timeout_ms": n}`).
//! The idempotency key is the one of sends (`enrollment:node:visit`) and goes out as
//! `X-Waymark-Idempotency-Key`, so a receiver can drop the copy a crash may cause.
//!
//! Delivery refuses (permanently) hosts that resolve to loopback, private, link-local or other
//! non-global addresses unless the host is on the allow-list. The shared HTTP client resolves
//! hosts through a resolver that checks every address, and connects only to the checked
//! addresses (redirects are not followed, proxies are not used), so DNS rebinding cannot slip
//! past the check.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use waymark_core::Duration;
use waymark_core::journey::WebhookNode;
use waymark_store::{MessageRow, MessageStatus, NewMessage};

use crate::Attempt;

/// The `messages.channel` of webhook calls.
pub const CHANNEL: &str = waymark_core::OutboxChannel::Webhook.as_str();
/// `sha256=<hex HMAC-SHA256 of the body>`, keyed by the webhook secret.
pub const SIGNATURE_HEADER: &str = "X-Waymark-Signature";
pub const IDEMPOTENCY_HEADER: &str = "X-Waymark-Idempotency-Key";

/// Request options kept in the `html` column of a webhook message.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Options {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    timeout_ms: u64,
}

// ---- rendering, at step time ----

/// Renders a webhook body: the node's Liquid template (through `waymark_render`, the one Liquid
/// environment of every template), or the whole data as JSON by default. The result must be
/// valid JSON.
pub fn render_body(node: &WebhookNode, data: &Map<String, Value>) -> Result<String, String> {
    waymark_render::render_json_body(node.body.as_deref(), data)
}

/// Fills a webhook outbox row: queued with the rendered body, or failed with the reason.
pub fn outbox_message(
    node: &WebhookNode,
    data: &Map<String, Value>,
    mut m: NewMessage,
) -> NewMessage {
    let timeout = Duration::parse(node.timeout_text()).map_or(10_000, |d| d.millis());
    let options = Options {
        headers: node.headers.clone(),
        timeout_ms: timeout.max(1000) as u64,
    };
    m.channel = CHANNEL.into();
    m.recipient = Some(node.url.trim().to_string());
    m.subject = Some(node.method.as_str().to_string());
    m.html = serde_json::to_string(&options).ok();
    match render_body(node, data) {
        Ok(body) => m.text = Some(body),
        Err(error) => {
            m.status = MessageStatus::Failed;
            m.error = Some(error);
        }
    }
    m
}

// ---- delivery ----

pub struct WebhookConfig {
    /// Key of the `X-Waymark-Signature` HMAC.
    pub secret: String,
    /// `HOST` or `HOST:PORT` entries that may resolve to non-global addresses.
    pub allow_hosts: Vec<String>,
}

/// Delivers webhook messages. Its HTTP clients are built once and shared by every delivery,
/// so that connections are kept alive and reused (and HTTP/2 is used where the receiver offers
/// it): one client checks every address a host resolves to, the other serves the allow-list.
pub struct Webhooks {
    secret: Vec<u8>,
    allow: Vec<(String, Option<u16>)>,
    #[cfg(feature = "webhook")]
    clients: guard::Clients,
}

/// `sha256=<hex>` of the body.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + digest.len() * 2);
    hex.push_str("sha256=");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The receiving host of a webhook message, `host:port` in lower case, which the dispatcher
/// limits separately so that one slow receiver does not hold up the others.
pub fn destination(m: &MessageRow) -> Option<String> {
    let url = url::Url::parse(m.recipient.as_deref()?).ok()?;
    Some(format!(
        "{}:{}",
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?
    ))
}

impl Webhooks {
    pub fn new(config: WebhookConfig) -> Result<Self, String> {
        if config.secret.is_empty() {
            return Err("the webhook signing secret must not be empty".into());
        }
        let mut allow = Vec::new();
        for entry in config.allow_hosts {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let parsed = url::Url::parse(&format!("http://{entry}/"))
                .ok()
                .filter(|u| u.host_str().is_some() && u.path() == "/")
                .ok_or_else(|| {
                    format!("invalid webhook allow-list entry `{entry}` (HOST or HOST:PORT)")
                })?;
            let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
            // `Url` drops a port equal to the scheme default; keep it when it was written.
            let port = parsed
                .port()
                .or_else(|| entry.ends_with(":80").then_some(80));
            allow.push((host, port));
        }
        Ok(Webhooks {
            secret: config.secret.into_bytes(),
            allow,
            #[cfg(feature = "webhook")]
            clients: guard::Clients::new()?,
        })
    }

    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    fn allowed(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.allow
            .iter()
            .any(|(h, p)| *h == host && p.is_none_or(|p| p == port))
    }

    /// Without the `webhook` feature there is no HTTP client: every webhook message fails.
    #[cfg(not(feature = "webhook"))]
    pub async fn deliver(&self, _m: &MessageRow) -> Attempt {
        Attempt::Permanent("this build has no webhook delivery (the `webhook` feature)".into())
    }

    #[cfg(feature = "webhook")]
    pub async fn deliver(&self, m: &MessageRow) -> Attempt {
        let Some(raw_url) = m.recipient.as_deref() else {
            return Attempt::Permanent("no URL".into());
        };
        let url = match reqwest::Url::parse(raw_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            Ok(u) => return Attempt::Permanent(format!("unsupported URL scheme `{}`", u.scheme())),
            Err(e) => return Attempt::Permanent(format!("invalid URL `{raw_url}`: {e}")),
        };
        let method = match m.subject.as_deref().unwrap_or("POST") {
            "PUT" => reqwest::Method::PUT,
            _ => reqwest::Method::POST,
        };
        let options: Options = m
            .html
            .as_deref()
            .and_then(|h| serde_json::from_str(h).ok())
            .unwrap_or_default();
        let timeout = std::time::Duration::from_millis(if options.timeout_ms == 0 {
            10_000
        } else {
            options.timeout_ms
        });
        let body = m.text.clone().unwrap_or_default();
        if let Err(e) = serde_json::from_str::<Value>(&body) {
            return Attempt::Permanent(format!("the body is not valid JSON: {e}"));
        }
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return Attempt::Permanent(format!("`{raw_url}` has no host"));
        };
        let host_text = url.host_str().unwrap_or_default().to_string();
        let client = if self.allowed(&host_text, port) {
            &self.clients.trusted
        } else {
            // A literal address is never resolved, so it is checked here; a name is checked
            // by the guarded client's resolver, on every address it resolves to.
            let literal = match host {
                url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
                url::Host::Domain(_) => None,
            };
            if let Some(ip) = literal.filter(|ip| !is_global(*ip)) {
                return Attempt::Permanent(refusal(&host_text, ip));
            }
            &self.clients.guarded
        };
        let mut request = client.request(method, url.clone()).timeout(timeout);
        for (name, value) in &options.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sign(&self.secret, body.as_bytes()))
            .header(IDEMPOTENCY_HEADER, m.idempotency_key.as_str())
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) => crate::http_outcome("webhook", r).await,
            Err(e) => match guard::refused_by_resolver(&e) {
                Some(guard::Refused::NotGlobal(ip)) => Attempt::Permanent(refusal(&host_text, *ip)),
                Some(guard::Refused::Unresolved(why)) => {
                    Attempt::Temporary(format!("cannot resolve `{host_text}`: {why}"))
                }
                None if e.is_timeout() => {
                    Attempt::Temporary(format!("webhook timed out after {timeout:?}"))
                }
                None if e.is_builder() => {
                    Attempt::Permanent(format!("invalid webhook request: {e}"))
                }
                None => Attempt::Temporary(format!("webhook unreachable: {e}")),
            },
        }
    }
}

/// Why a host was refused: it resolves to an address that is not globally routable.
#[cfg_attr(not(feature = "webhook"), allow(dead_code))]
fn refusal(host: &str, ip: IpAddr) -> String {
    format!(
        "refused: `{host}` resolves to {ip}, a {} address (not allowed for webhooks; allow the \
         host with --webhook-allow-host)",
        describe(ip)
    )
}

/// The shared clients and the resolver that keeps webhooks off private networks.
///
/// Resolving in the client's own resolver, rather than before the request, is what makes the
/// check hold against DNS rebinding: the addresses checked are the very ones connected to, and
/// a kept-alive connection was opened to a checked address.
#[cfg(feature = "webhook")]
mod guard {
    use std::net::{IpAddr, SocketAddr};
    use std::sync::Arc;

    use reqwest::dns::{Addrs, Name, Resolve, Resolving};

    use super::is_global;

    pub(super) struct Clients {
        /// Refuses every host that resolves to a non-global address.
        pub guarded: reqwest::Client,
        /// For the allow-listed hosts, which may resolve anywhere.
        pub trusted: reqwest::Client,
    }

    impl Clients {
        pub fn new() -> Result<Self, String> {
            let builder = || {
                reqwest::Client::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .user_agent(concat!("Waymark/", env!("CARGO_PKG_VERSION")))
            };
            let build = |b: reqwest::ClientBuilder| {
                b.build()
                    .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))
            };
            Ok(Clients {
                guarded: build(builder().dns_resolver(Arc::new(GlobalOnly)))?,
                trusted: build(builder())?,
            })
        }
    }

    /// Why the guarded resolver gave no address.
    #[derive(Debug)]
    pub enum Refused {
        NotGlobal(IpAddr),
        Unresolved(String),
    }

    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Refused::NotGlobal(ip) => write!(f, "resolves to the non-global address {ip}"),
                Refused::Unresolved(why) => f.write_str(why),
            }
        }
    }

    impl std::error::Error for Refused {}

    /// The resolver's refusal inside a request's error, if that is what failed it.
    pub fn refused_by_resolver(error: &reqwest::Error) -> Option<&Refused> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = cause {
            if let Some(refused) = e.downcast_ref::<Refused>() {
                return Some(refused);
            }
            cause = e.source();
        }
        None
    }

    /// The system resolver, answering only when every address is globally routable.
    struct GlobalOnly;

    impl Resolve for GlobalOnly {
        fn resolve(&self, name: Name) -> Resolving {
            let host = name.as_str().to_string();
            Box::pin(async move {
                // Port 0: the connector puts the URL's port on every address.
                let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|e| Refused::Unresolved(e.to_string()))?
                    .collect();
                if found.is_empty() {
                    return Err(Box::new(Refused::Unresolved("no address".into())) as _);
                }
                if let Some(bad) = found.iter().find(|a| !is_global(a.ip())) {
                    return Err(Box::new(Refused::NotGlobal(bad.ip())) as _);
                }
                Ok(Box::new(found.into_iter()) as Addrs)
            })
        }
    }
}

/// Whether an address is globally routable: not loopback, private, link-local, unspecified,
/// shared (CGNAT), documentation, benchmarking, multicast or reserved.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network", includes 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_global_v4(v4);
    }
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64 (64:ff9b::/96 and 64:ff9b:1::/48) reaches the embedded IPv4 address.
        return is_global_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4 carries an IPv4 address in bits 16..48.
        return is_global_v4(embedded(s[1], s[2]));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || s[..6] == [0; 6] // IPv4-compatible (deprecated) and other ::/96 addresses
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || (s[0] == 0x2001 && s[1] < 0x0200)) // IETF protocol assignments 2001::/23 (Teredo, ...)
}

#[cfg_attr(not(feature = "webhook"), allow(dead_code))]
fn describe(ip: IpAddr) -> &'static str {
    let v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    if let Some(v4) = v4 {
        return if v4.is_loopback() {
            "loopback"
        } else if v4.is_private() {
            "private"
        } else if v4.is_link_local() {
            "link-local"
        } else if v4.is_unspecified() {
            "unspecified"
        } else {
            "non-global"
        };
    }
    let IpAddr::V6(v6) = ip else { unreachable!() };
    let s = v6.segments();
    if v6.is_loopback() {
        "loopback"
    } else if v6.is_unspecified() {
        "unspecified"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "private (unique local)"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "link-local"
    } else {
        "non-global"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_addresses() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
            "ff02::1",
        ] {
            assert!(!is_global(bad.parse().unwrap()), "{bad} counted as global");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(
                is_global(good.parse().unwrap()),
                "{good} not counted as global"
            );
        }
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn allow_list_entries() {
        let w = Webhooks::new(WebhookConfig {
            secret: "s".into(),
            allow_hosts: vec![
                "127.0.0.1:8080".into(),
                "Hooks.Internal".into(),
                "[::1]".into(),
            ],
        })
        .unwrap();
        assert!(w.allowed("127.0.0.1", 8080));
        assert!(!w.allowed("127.0.0.1", 8081));
        assert!(w.allowed("hooks.internal", 443));
        assert!(w.allowed("[::1]", 9000));
        assert!(
            Webhooks::new(WebhookConfig {
                secret: "s".into(),
                allow_hosts: vec!["http://x/y".into()]
            })
            .is_err()
        );
    }

    #[test]
    fn bodies_render_to_json_or_fail() {
        let data = serde_json::json!({"contact": {"email": "a\"b@example.com"}, "event": {}, "journey": {"id": "j"}});
        let data = data.as_object().unwrap();
        let mut node = WebhookNode {
            url: "https://x.example".into(),
            method: Default::default(),
            headers: Default::default(),
            body: None,
            timeout: None,
        };
        let default: Value = serde_json::from_str(&render_body(&node, data).unwrap()).unwrap();
        assert_eq!(default["journey"]["id"], "j");
        node.body = Some(r#"{"email": {{ contact.email | json }}}"#.into());
        let v: Value = serde_json::from_str(&render_body(&node, data).unwrap()).unwrap();
        assert_eq!(v["email"], "a\"b@example.com");
        node.body = Some(r#"{"email": {{ contact.email }}}"#.into());
        assert!(
            render_body(&node, data)
                .unwrap_err()
                .contains("not valid JSON")
        );
    }
}
