//! Opens and clicks made by machines, not people: privacy proxies that fetch every image of a
//! message as it arrives (Apple Mail Privacy Protection, Gmail's and Yahoo's image proxies)
//! and security scanners that follow every link before the reader sees it. Reports count a
//! message's opens and clicks by anyone and by people separately, and rates default to people.
//!
//! A hit is a machine's when its user agent names a known proxy or scanner, when it comes from
//! an address range the operator lists (`--machine-ip-ranges`, Apple's `17.0.0.0/8` by
//! default), or when it comes within [`MACHINE_REACTION`] of the send: no person opens or
//! clicks that fast. The tracking endpoints classify what they see of the request and put the
//! reason in the event's `machine` property; the engine adds the timing when it records it.

use std::net::IpAddr;

use ipnet::IpNet;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

/// The event property a tracking hit's machine reason is recorded under.
pub const MACHINE_PROPERTY: &str = "machine";

/// Faster than any person: a hit this soon after the send is a machine's.
pub const MACHINE_REACTION: SignedDuration = SignedDuration::from_secs(1);

/// Parts of user agents of proxies and scanners (compared lower-cased).
const MACHINE_AGENTS: &[&str] = &[
    "googleimageproxy",
    "yahoomailproxy",
    "barracuda",
    "proofpoint",
    "mimecast",
    "symantec",
    "trendmicro",
    "fortinet",
    "sophos",
    "bot",
    "crawler",
    "spider",
    "headless",
    "python-requests",
    "go-http-client",
    "curl/",
    "wget/",
    "java/",
    "libwww",
];

/// Apple's address block, where Mail Privacy Protection fetches from.
pub const DEFAULT_MACHINE_RANGES: &[&str] = &["17.0.0.0/8"];

/// Recognises machine hits by what the request shows.
#[derive(Debug, Clone)]
pub struct MachineDetector {
    ranges: Vec<IpNet>,
}

impl Default for MachineDetector {
    fn default() -> Self {
        MachineDetector::new(DEFAULT_MACHINE_RANGES).expect("the default ranges parse")
    }
}

impl MachineDetector {
    /// A detector of these address ranges (CIDR, e.g. `17.0.0.0/8`), or the one that does not
    /// parse.
    pub fn new(ranges: &[impl AsRef<str>]) -> Result<Self, String> {
        let ranges = ranges
            .iter()
            .map(|r| {
                let r = r.as_ref().trim();
                r.parse::<IpNet>()
                    .or_else(|_| r.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{r}` is not an address range such as 17.0.0.0/8"))
            })
            .collect::<Result<_, _>>()?;
        Ok(MachineDetector { ranges })
    }

    /// Why a hit with this user agent from this address is a machine's, or `None`.
    pub fn classify(&self, user_agent: Option<&str>, ip: Option<IpAddr>) -> Option<String> {
        match user_agent.map(str::trim) {
            None | Some("") => return Some("no user agent".into()),
            // Apple Mail Privacy Protection's fetches say no more than this.
            Some("Mozilla/5.0") => return Some("user agent of a privacy proxy".into()),
            Some(agent) => {
                let lower = agent.to_ascii_lowercase();
                if let Some(part) = MACHINE_AGENTS.iter().find(|p| lower.contains(*p)) {
                    return Some(format!("user agent `{part}`"));
                }
            }
        }
        let ip = ip?;
        self.ranges
            .iter()
            .find(|r| r.contains(&ip))
            .map(|r| format!("address range {r}"))
    }
}

/// Whether a tracking hit recorded with these event `properties` at `at`, of a message sent
/// at `sent_at`, was a person's.
pub fn is_human(
    properties: &Map<String, Value>,
    sent_at: Option<Timestamp>,
    at: Timestamp,
) -> bool {
    let flagged = match properties.get(MACHINE_PROPERTY) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(_) => true,
    };
    let too_fast = sent_at.is_some_and(|sent| at.duration_since(sent) < MACHINE_REACTION);
    !flagged && !too_fast
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn proxies_scanners_listed_ranges_and_instant_hits_are_machines() {
        let d = MachineDetector::new(&["17.0.0.0/8", "2001:db8::/32", "192.0.2.7"]).unwrap();
        let phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15";
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(d.classify(Some(phone), ip("203.0.113.5")), None);
        assert!(d.classify(Some(phone), ip("17.58.1.1")).is_some());
        assert!(d.classify(Some(phone), ip("2001:db8::1")).is_some());
        assert!(d.classify(Some(phone), ip("192.0.2.7")).is_some());
        assert!(d.classify(Some("Mozilla/5.0"), None).is_some());
        let gmail = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
        assert!(
            d.classify(Some(gmail), None)
                .unwrap()
                .contains("googleimageproxy")
        );
        assert!(d.classify(None, None).is_some());
        assert!(MachineDetector::new(&["17.0.0.0/33"]).is_err());

        let sent: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let later = sent + SignedDuration::from_secs(90);
        let none = Map::new();
        assert!(is_human(&none, Some(sent), later));
        assert!(!is_human(
            &none,
            Some(sent),
            sent + SignedDuration::from_millis(400)
        ));
        let flagged = json!({"machine": "user agent `bot`"});
        assert!(!is_human(flagged.as_object().unwrap(), Some(sent), later));
        assert!(is_human(&none, None, later));
    }
}
