//! Replay: a journey run on what really happened in a past period of a server. The contacts
//! who did something then are copied into the private server as they are now; the period's
//! events (`GET /v1/events`) are sent again at the times they came in, each to the copy of
//! the contact the server applied it to; then what the journey would have sent is set beside
//! what the server's own journey sent, contact by contact.
//!
//! What cannot be replayed is drawn as a simulation draws it: engagement with messages (an
//! open or click of a message the server sent is about that message, not about the draft's),
//! from the behaviour rules. Events Waymark recorded itself (lists and segments joined) are
//! left out: the private server records its own.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use anyhow::Context;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::driver;
use super::population::member_copy;
use super::scenario::{EMAIL_CLICKED, EMAIL_OPENED};
use super::target::Target;

/// Events read per page, contacts per page.
const PAGE: usize = 1000;

/// The period replayed, on the server it is read from.
pub struct Period {
    pub source: Target,
    /// Where reading starts: the period's start less a warm-up, so that contacts who entered
    /// the journey shortly before the period are on their way when it begins.
    pub read_from: Timestamp,
    /// The period compared.
    pub since: Timestamp,
    pub until: Timestamp,
}

/// Who did something in the period, copied into the server driven.
pub struct Copied {
    /// A contact's user id in the copy (its own, else `contact-<id>`) by its id on the source.
    pub user_ids: HashMap<i64, String>,
}

impl Copied {
    pub fn count(&self) -> u64 {
        self.user_ids.len() as u64
    }
}

/// Copies into `target` every contact of the source that did something in the period, as it
/// is now: one pass over the period's events for their contacts, one over the contacts.
pub async fn copy_active(target: &Target, period: &Period) -> anyhow::Result<Copied> {
    let mut active = HashSet::new();
    let mut after = 0i64;
    loop {
        let page = events_page(period, after).await?;
        for e in &page.events {
            if let Some(id) = e["contact_id"].as_i64() {
                active.insert(id);
            }
        }
        match page.next_after {
            Some(next) => after = next,
            None => break,
        }
    }
    let mut user_ids = HashMap::with_capacity(active.len());
    let mut after = 0i64;
    loop {
        let page = period
            .source
            .get(&format!("/v1/contacts?limit={PAGE}&after={after}"))
            .await?;
        let contacts = page["contacts"].as_array().cloned().unwrap_or_default();
        let mut copies = Vec::new();
        for c in &contacts {
            let Some(id) = c["id"].as_i64() else { continue };
            after = id;
            if !active.contains(&id) {
                continue;
            }
            let copy = member_copy(c);
            user_ids.insert(id, copy["user_id"].as_str().unwrap_or_default().to_string());
            copies.push(copy);
        }
        if !copies.is_empty() {
            driver::import(target, copies, None).await?;
        }
        if contacts.len() < PAGE {
            break;
        }
    }
    let copied = Copied { user_ids };
    copy_consent(target, period, &copied).await?;
    Ok(copied)
}

/// Copies the consent records of the copied contacts (as they are now) for every channel and
/// for all marketing (`*`) and every topic the source's templates declare: a contact who
/// unsubscribed, or never confirmed a double opt-in, is not sent marketing by the copy either.
async fn copy_consent(target: &Target, period: &Period, copied: &Copied) -> anyhow::Result<()> {
    // The copies' ids on the target, by user id.
    let mut ids_here: HashMap<String, i64> = HashMap::with_capacity(copied.user_ids.len());
    let mut after = 0i64;
    loop {
        let page = target
            .get(&format!("/v1/contacts?limit={PAGE}&after={after}"))
            .await?;
        let contacts = page["contacts"].as_array().cloned().unwrap_or_default();
        for c in &contacts {
            let Some(id) = c["id"].as_i64() else { continue };
            after = id;
            if let Some(user) = c["user_id"].as_str() {
                ids_here.insert(user.to_string(), id);
            }
        }
        if contacts.len() < PAGE {
            break;
        }
    }
    let topics = period.source.get("/v1/topics").await?;
    let mut kinds: std::collections::BTreeSet<(String, String)> = ["email", "sms"]
        .into_iter()
        .map(|channel| (channel.to_string(), "*".to_string()))
        .collect();
    for t in topics["topics"].as_array().into_iter().flatten() {
        if let (Some(channel), Some(topic)) = (t["channel"].as_str(), t["topic"].as_str()) {
            kinds.insert((channel.to_string(), topic.to_string()));
        }
    }
    for (channel, topic) in &kinds {
        for status in ["unsubscribed", "pending", "subscribed"] {
            let mut after = 0i64;
            loop {
                let page = period
                    .source
                    .get(&format!(
                        "/v1/contacts?consent={channel}:{}:{status}&limit={PAGE}&after={after}",
                        percent_encoded(topic)
                    ))
                    .await?;
                let contacts = page["contacts"].as_array().cloned().unwrap_or_default();
                for c in &contacts {
                    let Some(id) = c["id"].as_i64() else { continue };
                    after = id;
                    let Some(here) = copied.user_ids.get(&id).and_then(|u| ids_here.get(u)) else {
                        continue;
                    };
                    target
                        .put(
                            &format!(
                                "/v1/contacts/{here}/subscriptions/{channel}/{}",
                                percent_encoded(topic)
                            ),
                            &json!({"status": status, "reason": "copied for a replay"}),
                        )
                        .await?;
                }
                if contacts.len() < PAGE {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// A topic (any printable characters) as one segment of a path or a query value: every byte
/// but letters, digits, `-._~` and `*` percent-encoded.
fn percent_encoded(topic: &str) -> String {
    topic
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct EventsPage {
    events: Vec<Value>,
    next_after: Option<i64>,
}

async fn events_page(period: &Period, after: i64) -> anyhow::Result<EventsPage> {
    let page = period
        .source
        .get(&format!(
            "/v1/events?since={}&until={}&after={after}&limit={PAGE}",
            period.read_from, period.until
        ))
        .await
        .context("reading the period's events (GET /v1/events)")?;
    Ok(EventsPage {
        events: page["events"].as_array().cloned().unwrap_or_default(),
        next_after: page["next_after"].as_i64(),
    })
}

/// The period's events, read a page at a time as the clock reaches them.
pub struct Feed<'a> {
    period: &'a Period,
    copied: &'a Copied,
    after: i64,
    ahead: VecDeque<Value>,
    exhausted: bool,
    /// Events sent again, per name.
    pub replayed: BTreeMap<String, u64>,
    /// Events left out and why.
    pub left_out: BTreeMap<&'static str, u64>,
}

impl<'a> Feed<'a> {
    pub fn new(period: &'a Period, copied: &'a Copied) -> Self {
        Feed {
            period,
            copied,
            after: 0,
            ahead: VecDeque::new(),
            exhausted: false,
            replayed: BTreeMap::new(),
            left_out: BTreeMap::new(),
        }
    }

    /// The calls (as `POST /v1/batch` takes them) of the next events received up to `now`, at
    /// most `limit`, in the order they came in; none once all of them were taken. A moment
    /// when many events came in (an import's identifies) is taken a part at a time, so that
    /// it is never held in memory whole.
    pub async fn due(&mut self, now: Timestamp, limit: usize) -> anyhow::Result<Vec<Value>> {
        let mut calls = Vec::new();
        while calls.len() < limit {
            if self.ahead.is_empty() && !self.exhausted {
                let page = events_page(self.period, self.after).await?;
                self.after = page
                    .events
                    .last()
                    .and_then(|e| e["seq"].as_i64())
                    .unwrap_or(self.after);
                self.exhausted = page.next_after.is_none();
                self.ahead.extend(page.events);
            }
            let Some(next) = self.ahead.front() else {
                return Ok(calls);
            };
            let received = next["received_at"]
                .as_str()
                .and_then(|s| s.parse::<Timestamp>().ok())
                .context("an event without `received_at`")?;
            if received > now {
                return Ok(calls);
            }
            let event = self.ahead.pop_front().expect("looked at");
            match self.call(&event) {
                Ok(call) => {
                    let name = event["event"].as_str().unwrap_or_default().to_string();
                    *self.replayed.entry(name).or_default() += 1;
                    calls.push(call);
                }
                Err(why) => *self.left_out.entry(why).or_default() += 1,
            }
        }
        Ok(calls)
    }

    /// The call that sends `event` again, addressed to the copy of the contact the source
    /// applied it to; or why it is left out.
    fn call(&self, event: &Value) -> Result<Value, &'static str> {
        let name = event["event"].as_str().unwrap_or_default();
        let properties = event["properties"].clone();
        if (name == EMAIL_OPENED || name == EMAIL_CLICKED) && properties.get("message_id").is_some()
        {
            return Err("engagement with the server's own messages");
        }
        if event["user_id"].is_null() && event["anonymous_id"].is_null() {
            return Err("recorded by Waymark itself");
        }
        // Who: the copy of the contact it was applied to; an event not yet applied keeps the
        // ids it came with.
        let mut call = Map::new();
        match event["contact_id"].as_i64() {
            Some(id) => {
                let user = self
                    .copied
                    .user_ids
                    .get(&id)
                    .ok_or("of a contact no longer on the server")?;
                call.insert("userId".into(), json!(user));
            }
            None => {
                for (from, to) in [("user_id", "userId"), ("anonymous_id", "anonymousId")] {
                    if let Some(id) = event[from].as_str() {
                        call.insert(to.into(), json!(id));
                    }
                }
            }
        }
        let kind = event["type"].as_str().unwrap_or_default();
        match kind {
            "track" => {
                call.insert("event".into(), json!(name));
                call.insert("properties".into(), properties);
            }
            "identify" => {
                call.insert("traits".into(), properties);
            }
            "page" | "screen" => {
                call.insert("properties".into(), properties);
            }
            "group" => {
                call.insert("groupId".into(), properties["group_id"].clone());
                call.insert("traits".into(), properties["traits"].clone());
            }
            // Identities were resolved on the source: the copy is already the one contact.
            "alias" => return Err("alias (identities already resolved)"),
            _ => return Err("of an unknown type"),
        }
        call.insert("type".into(), json!(kind));
        call.insert("messageId".into(), event["message_id"].clone());
        call.insert("timestamp".into(), event["timestamp"].clone());
        Ok(Value::Object(call))
    }
}

/// One contact's messages from one node, on one side.
#[derive(Default, Clone, Copy)]
struct Received {
    messages: u64,
    first: Option<Timestamp>,
}

/// Messages sent per (node, contact in the copy's user ids).
type Recipients = BTreeMap<(String, String), Received>;

/// The messages of `journey_id` on `server` created in `[since, until)` and sent, by node and
/// contact. `contact` names a message's contact as the copy does.
async fn recipients(
    server: &Target,
    journey_id: &str,
    (since, until): (Timestamp, Timestamp),
    contact: impl Fn(&Value) -> Option<String>,
) -> anyhow::Result<Recipients> {
    let mut sent = Recipients::new();
    let mut after = 0i64;
    loop {
        let page = server
            .get(&format!(
                "/v1/messages?journey_id={journey_id}&after={after}&limit={PAGE}&bodies=false"
            ))
            .await?;
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        for m in &messages {
            after = m["id"].as_i64().unwrap_or(after);
            let time = |field: &str| m[field].as_str().and_then(|s| s.parse::<Timestamp>().ok());
            let (Some(created), Some(sent_at)) = (time("created_at"), time("sent_at")) else {
                continue;
            };
            if created < since || created >= until {
                continue;
            }
            let (Some(node), Some(who)) = (m["node"].as_str(), contact(m)) else {
                continue;
            };
            let r = sent.entry((node.to_string(), who)).or_default();
            r.messages += 1;
            r.first = Some(r.first.map_or(sent_at, |t: Timestamp| t.min(sent_at)));
        }
        if messages.len() < PAGE {
            return Ok(sent);
        }
    }
}

/// How many recipients are listed per node in the result (all of them go to the CSV).
const SAMPLE: usize = 10;

/// What the journey would have done beside what the source's journey did: the funnel per
/// node, and per sending node who would have got a message, who did, and who both.
pub struct Comparison {
    pub result: Value,
    /// `node,contact,draft_messages,live_messages,draft_first_sent_at,live_first_sent_at`.
    pub csv: String,
}

pub async fn compare(
    target: &Target,
    period: &Period,
    copied: &Copied,
    journey_id: &str,
    draft_report: &Value,
) -> anyhow::Result<Comparison> {
    // A journey new to the source (from a file) has nothing to compare with.
    let live_report = period
        .source
        .get_if_any(&format!(
            "/v1/journeys/{journey_id}/report?from={}&to={}&bucket=day",
            period.since, period.until
        ))
        .await?;
    let draft = recipients(target, journey_id, (period.since, period.until), |m| {
        m["user_id"].as_str().map(str::to_string)
    })
    .await?;
    let live = match live_report {
        Some(_) => {
            recipients(
                &period.source,
                journey_id,
                (period.since, period.until),
                |m| {
                    let id = m["contact_id"].as_i64()?;
                    Some(match (copied.user_ids.get(&id), m["user_id"].as_str()) {
                        (Some(user), _) => user.clone(),
                        (None, Some(user)) => user.to_string(),
                        (None, None) => format!("contact-{id}"),
                    })
                },
            )
            .await?
        }
        None => Recipients::new(),
    };

    // The nodes of both, the draft's first.
    let mut order: Vec<String> = Vec::new();
    let mut rows: HashMap<String, (Value, Value, Value)> = HashMap::new();
    let counts = |n: &Value| {
        json!({
            "entered": n["entered"], "sent": n["sent"], "suppressed": n["suppressed"],
            "converted": n["converted"], "revenue": n["revenue"],
        })
    };
    for (side, report) in [(0, Some(draft_report)), (1, live_report.as_ref())] {
        for n in report
            .and_then(|r| r["nodes"].as_array())
            .into_iter()
            .flatten()
        {
            let Some(id) = n["node"].as_str() else {
                continue;
            };
            let row = rows.entry(id.to_string()).or_insert_with(|| {
                order.push(id.to_string());
                (n["kind"].clone(), Value::Null, Value::Null)
            });
            if side == 0 {
                row.1 = counts(n);
            } else {
                row.2 = counts(n);
            }
        }
    }
    let mut by_node: BTreeMap<&str, (u64, Vec<&str>, Vec<&str>)> = BTreeMap::new();
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "node",
        "contact",
        "draft_messages",
        "live_messages",
        "draft_first_sent_at",
        "live_first_sent_at",
    ])?;
    let keys: std::collections::BTreeSet<&(String, String)> =
        draft.keys().chain(live.keys()).collect();
    for key in keys {
        let (d, l) = (draft.get(key), live.get(key));
        let entry = by_node.entry(key.0.as_str()).or_default();
        match (d, l) {
            (Some(_), Some(_)) => entry.0 += 1,
            (Some(_), None) => entry.1.push(&key.1),
            (None, _) => entry.2.push(&key.1),
        }
        let d = d.copied().unwrap_or_default();
        let l = l.copied().unwrap_or_default();
        let time = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
        csv.write_record([
            key.0.clone(),
            key.1.clone(),
            d.messages.to_string(),
            l.messages.to_string(),
            time(d.first),
            time(l.first),
        ])?;
    }
    let csv = String::from_utf8(csv.into_inner()?)?;
    let nodes: Vec<Value> = order
        .iter()
        .map(|id| {
            let (kind, d, l) = &rows[id];
            let mut row = json!({"node": id, "type": kind, "draft": d, "live": l});
            if let Some((both, only_draft, only_live)) = by_node.get(id.as_str()) {
                row["recipients"] = json!({
                    "both": both,
                    "only_draft": only_draft.len(),
                    "only_live": only_live.len(),
                    "only_draft_first": only_draft.iter().take(SAMPLE).collect::<Vec<_>>(),
                    "only_live_first": only_live.iter().take(SAMPLE).collect::<Vec<_>>(),
                });
            }
            row
        })
        .collect();
    let totals = |r: &Value| {
        json!({
            "entered": r["totals"]["entered"],
            "sent": r["totals"]["sent"],
            "converted": r["totals"]["converted"],
            "revenue": r["totals"]["revenue"],
        })
    };
    Ok(Comparison {
        result: json!({
            "totals": {"draft": totals(draft_report), "live": live_report.as_ref().map(totals)},
            "nodes": nodes,
        }),
        csv,
    })
}
