//! Journey reports: what a journey's hourly roll-ups add up to over a time range, in buckets
//! of a time zone, with rates and reaction times.
//!
//! The store keeps one row of counters per journey, version, node and UTC hour, current as
//! steps and deliveries commit, and a histogram of reaction times beside it; a report reads
//! the rows of its range and this module adds them up. Nothing here reads a clock or a
//! database.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use schemars::JsonSchema;
use serde::Serialize;

/// What happened at a journey node (or a whole journey) in some time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
pub struct Counts {
    /// Enrollments that reached the node (for a journey: that entered it).
    pub entered: i64,
    pub completed: i64,
    pub exited: i64,
    /// Messages accepted by the transport (the relay's SMTP 250, the provider's acceptance).
    pub sent: i64,
    /// Sent messages not bounced since.
    pub delivered: i64,
    /// Refused by the receiving side, at once (also in `failed`) or after acceptance.
    pub bounced: i64,
    pub failed: i64,
    /// Not sent: consent, suppression list, frequency cap or quiet hours with `skip`.
    pub suppressed: i64,
    /// Messages opened at least once, by anyone (machines included).
    pub opened: i64,
    /// Messages clicked at least once, by anyone.
    pub clicked: i64,
    /// Messages opened at least once by a person (see `docs/reports.md`, "Machine activity").
    pub human_opened: i64,
    pub human_clicked: i64,
    /// Messages whose recipient unsubscribed through their link.
    pub unsubscribed: i64,
    /// Messages their recipient reported as spam.
    pub complained: i64,
    /// Conversions of enrollments that passed through the node (for a journey: conversions).
    pub converted: i64,
    /// Conversions credited to this node as the last touch.
    pub attributed: i64,
    /// Revenue of the credited conversions, in the journey goal's currency.
    pub revenue: f64,
    /// Sends that waited for the end of quiet hours or a blocked date (counted when the
    /// enrollment arrived at the send node; the message itself counts when it is sent).
    pub deferred: i64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.entered += o.entered;
        self.completed += o.completed;
        self.exited += o.exited;
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.bounced += o.bounced;
        self.failed += o.failed;
        self.suppressed += o.suppressed;
        self.opened += o.opened;
        self.clicked += o.clicked;
        self.human_opened += o.human_opened;
        self.human_clicked += o.human_clicked;
        self.unsubscribed += o.unsubscribed;
        self.complained += o.complained;
        self.converted += o.converted;
        self.attributed += o.attributed;
        self.revenue += o.revenue;
        self.deferred += o.deferred;
    }

    /// A node's counts as they add to its journey's: its entries only if it is a trigger
    /// (else they are visits, not entries), its conversions once each (those credited to it).
    pub fn as_journeys(&self, trigger: bool) -> Counts {
        Counts {
            entered: if trigger { self.entered } else { 0 },
            converted: self.attributed,
            ..*self
        }
    }

    /// A journey's counts from its nodes' (`nodes`: what the journey's document says of
    /// each, to tell triggers).
    pub fn of_journey<'a>(
        nodes: &[NodeInfo],
        per_node: impl IntoIterator<Item = (&'a str, &'a Counts)>,
    ) -> Counts {
        let mut total = Counts::default();
        for (node, counts) in per_node {
            let trigger = nodes.iter().any(|n| n.id == node && n.trigger);
            total.add(&counts.as_journeys(trigger));
        }
        total
    }

    /// The rates of these counts; a rate whose denominator is 0 is `None`.
    pub fn rates(&self) -> Rates {
        let ratio = |n: i64, d: i64| (d > 0).then(|| n as f64 / d as f64);
        let attempted = self.sent + self.failed;
        Rates {
            delivery_rate: ratio(self.delivered, attempted),
            bounce_rate: ratio(self.bounced, attempted),
            open_rate: ratio(self.human_opened, self.delivered),
            open_rate_all: ratio(self.opened, self.delivered),
            click_rate: ratio(self.human_clicked, self.delivered),
            click_rate_all: ratio(self.clicked, self.delivered),
            click_to_open_rate: ratio(self.human_clicked, self.human_opened),
            conversion_rate: ratio(self.converted, self.entered),
            unsubscribe_rate: ratio(self.unsubscribed, self.delivered),
            complaint_rate: ratio(self.complained, self.delivered),
        }
    }
}

/// Rates as fractions (0.25 is 25%). Opens and clicks count people by default: the `_all`
/// rates include machines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
pub struct Rates {
    /// delivered / (sent + failed)
    pub delivery_rate: Option<f64>,
    /// bounced / (sent + failed)
    pub bounce_rate: Option<f64>,
    /// human_opened / delivered
    pub open_rate: Option<f64>,
    /// opened / delivered
    pub open_rate_all: Option<f64>,
    /// human_clicked / delivered
    pub click_rate: Option<f64>,
    /// clicked / delivered
    pub click_rate_all: Option<f64>,
    /// human_clicked / human_opened
    pub click_to_open_rate: Option<f64>,
    /// converted / entered
    pub conversion_rate: Option<f64>,
    /// unsubscribed / delivered
    pub unsubscribe_rate: Option<f64>,
    /// complained / delivered
    pub complaint_rate: Option<f64>,
}

/// What a reaction time is measured to, from the message's send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reaction {
    /// The message's first open by a person.
    Open,
    /// Its first click by a person.
    Click,
    /// The conversion credited to it.
    Conversion,
}

impl Reaction {
    pub fn as_str(self) -> &'static str {
        match self {
            Reaction::Open => "open",
            Reaction::Click => "click",
            Reaction::Conversion => "conversion",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Reaction::Open,
            "click" => Reaction::Click,
            "conversion" => Reaction::Conversion,
            _ => return None,
        })
    }
}

/// Histogram buckets per doubling of the reaction time: a time read back from its bucket is
/// within 2^(1/4) (19%) of the true one, and 30 days fit in under 90 buckets.
const BUCKETS_PER_DOUBLING: f64 = 4.0;

/// The histogram bucket of a reaction time (a negative time, a clock skew, is 0).
pub fn reaction_bucket(time: SignedDuration) -> i64 {
    let seconds = time.as_secs_f64().max(0.0);
    (BUCKETS_PER_DOUBLING * (seconds + 1.0).log2()).floor() as i64
}

/// The middle of a bucket's range of times, in seconds.
fn bucket_middle(bucket: i64) -> f64 {
    let edge = |b: i64| 2f64.powf(b as f64 / BUCKETS_PER_DOUBLING) - 1.0;
    (edge(bucket) + edge(bucket + 1)) / 2.0
}

/// Median and 90th percentile of one kind of reaction, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
pub struct ReactionTime {
    /// How many reactions were measured.
    pub count: i64,
    pub median_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
}

/// Reaction times from send to first human open, to first human click and to conversion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
pub struct ReactionTimes {
    pub to_open: ReactionTime,
    pub to_click: ReactionTime,
    pub to_conversion: ReactionTime,
}

/// A histogram of reaction times: count per bucket.
#[derive(Debug, Clone, Default)]
struct Histogram(BTreeMap<i64, i64>);

impl Histogram {
    fn add(&mut self, bucket: i64, count: i64) {
        *self.0.entry(bucket).or_default() += count;
    }

    fn summary(&self) -> ReactionTime {
        let count: i64 = self.0.values().sum();
        let quantile = |q: f64| {
            // The rank of the q-quantile among `count` sorted times (1-based, nearest rank).
            let rank = ((q * count as f64).ceil() as i64).max(1);
            let mut seen = 0;
            self.0.iter().find_map(|(bucket, n)| {
                seen += n;
                (seen >= rank).then(|| bucket_middle(*bucket))
            })
        };
        ReactionTime {
            count,
            median_seconds: (count > 0).then(|| quantile(0.5)).flatten(),
            p90_seconds: (count > 0).then(|| quantile(0.9)).flatten(),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Reactions {
    open: Histogram,
    click: Histogram,
    conversion: Histogram,
}

impl Reactions {
    fn add(&mut self, reaction: Reaction, bucket: i64, count: i64) {
        match reaction {
            Reaction::Open => self.open.add(bucket, count),
            Reaction::Click => self.click.add(bucket, count),
            Reaction::Conversion => self.conversion.add(bucket, count),
        }
    }
    fn summary(&self) -> ReactionTimes {
        ReactionTimes {
            to_open: self.open.summary(),
            to_click: self.click.summary(),
            to_conversion: self.conversion.summary(),
        }
    }
}

/// One roll-up row: a journey node's counters in one UTC hour.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    pub hour_at: Timestamp,
    pub version: i64,
    pub node: String,
    pub counts: Counts,
    /// Enrollments that left the node in that hour, per output (`yes`, `timeout`, ...).
    pub outputs: BTreeMap<String, i64>,
}

/// One histogram row: how many reactions of a kind at a node in one UTC hour fell in `bucket`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReactionRow {
    pub hour_at: Timestamp,
    pub version: i64,
    pub node: String,
    pub reaction: Reaction,
    pub bucket: i64,
    pub count: i64,
}

/// The length of a report's time buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Hour,
    Day,
    /// Weeks start on Monday.
    Week,
}

impl Bucket {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "hour" => Bucket::Hour,
            "day" => Bucket::Day,
            "week" => Bucket::Week,
            _ => return None,
        })
    }

    /// The start of the bucket holding `at`, in `tz`. Hours are UTC hours (the roll-ups'
    /// unit), which are local hours everywhere but in zones with a half-hour offset.
    pub fn start(self, at: Timestamp, tz: &TimeZone) -> Timestamp {
        let hour = at.as_millisecond().div_euclid(3_600_000) * 3_600_000;
        let hour = Timestamp::from_millisecond(hour).unwrap_or(at);
        match self {
            Bucket::Hour => hour,
            Bucket::Day | Bucket::Week => {
                let zoned = at.to_zoned(tz.clone());
                let mut date = zoned.date();
                if self == Bucket::Week {
                    let back = i64::from(zoned.weekday().to_monday_zero_offset());
                    date = date.checked_sub(back.days()).unwrap_or(date);
                }
                date.to_zoned(tz.clone())
                    .map(|z| z.timestamp())
                    .unwrap_or(hour)
            }
        }
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn next(self, start: Timestamp, tz: &TimeZone) -> Timestamp {
        match self {
            Bucket::Hour => start + SignedDuration::from_hours(1),
            Bucket::Day | Bucket::Week => {
                let days = if self == Bucket::Day { 1 } else { 7 };
                // Calendar days: 23 or 25 hours across a daylight-saving change.
                let zoned = start.to_zoned(tz.clone());
                zoned
                    .checked_add(days.days())
                    .map(|z| z.timestamp())
                    .unwrap_or(start + SignedDuration::from_hours(24 * days))
            }
        }
    }
}

/// What the report needs to know of each node of the journey.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    /// The node's kind as in the journey document (`send_email`, `wait`...).
    pub kind: String,
    /// `email`, `sms` or `webhook` for a node that sends.
    pub channel: Option<String>,
    /// A trigger: its `entered` are the journey's entries.
    pub trigger: bool,
}

impl NodeInfo {
    /// The nodes of a journey document, in its order.
    pub fn of(document: &crate::JourneyDocument) -> Vec<NodeInfo> {
        use crate::NodeKind;
        document
            .nodes
            .iter()
            .map(|n| NodeInfo {
                id: n.id.clone(),
                kind: n.kind.type_name().to_string(),
                channel: match &n.kind {
                    NodeKind::SendEmail(_) => Some("email".into()),
                    NodeKind::SendSms(_) => Some("sms".into()),
                    NodeKind::Webhook(_) => Some("webhook".into()),
                    _ => None,
                },
                trigger: matches!(n.kind, NodeKind::Trigger(_)),
            })
            .collect()
    }
}

/// The nodes of one variant of an experiment: those its output leads to that no other way
/// through the journey reaches (a node where the variants meet again belongs to none). The
/// first of them are marked `trigger`, so that their entries are the variant's. `None` when
/// the document has no such experiment node or variant.
pub fn variant_nodes(
    document: &crate::JourneyDocument,
    experiment: &str,
    variant: &str,
) -> Option<Vec<NodeInfo>> {
    use std::collections::{BTreeSet, VecDeque};
    let node = document.nodes.iter().find(|n| n.id == experiment)?;
    let crate::NodeKind::Experiment(x) = &node.kind else {
        return None;
    };
    let outputs = node.kind.outputs();
    if !outputs.iter().any(|o| o == variant)
        || (variant != crate::journey::HOLDOUT && !x.variants.iter().any(|v| v.name == variant))
    {
        return None;
    }
    // Nodes reachable from `starts` without passing through the experiment node again.
    fn reach<'d>(
        document: &'d crate::JourneyDocument,
        experiment: &str,
        starts: Vec<&'d str>,
    ) -> BTreeSet<&'d str> {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = starts.into_iter().collect();
        while let Some(n) = queue.pop_front() {
            if n == experiment || !seen.insert(n) {
                continue;
            }
            for e in document.edges.iter().filter(|e| e.from == n) {
                queue.push_back(&e.to);
            }
        }
        seen
    }
    let firsts: Vec<&str> = document
        .edges
        .iter()
        .filter(|e| e.from == experiment && e.output == variant)
        .map(|e| e.to.as_str())
        .collect();
    let mine = reach(document, experiment, firsts.clone());
    // Everything reachable otherwise: from the triggers and from the other outputs.
    let mut others: Vec<&str> = document
        .edges
        .iter()
        .filter(|e| e.from == experiment && e.output != variant)
        .map(|e| e.to.as_str())
        .collect();
    others.extend(
        document
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, crate::NodeKind::Trigger(_)))
            .map(|n| n.id.as_str()),
    );
    let theirs = reach(document, experiment, others);
    Some(
        NodeInfo::of(document)
            .into_iter()
            .filter(|n| mine.contains(n.id.as_str()) && !theirs.contains(n.id.as_str()))
            .map(|n| NodeInfo {
                trigger: firsts.contains(&n.id.as_str()),
                ..n
            })
            .collect(),
    )
}

/// Counts with their rates and reaction times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Summary {
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(flatten)]
    pub rates: Rates,
    pub reaction_times: ReactionTimes,
}

/// One time bucket of a report.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Point {
    pub start: Timestamp,
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(flatten)]
    pub rates: Rates,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct NodeSummary {
    pub node: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Enrollments that left the node in the range, per output: a branch's `yes` and `no`, a
    /// wait's `event` and `timeout`, a split's variants, `next` for the others.
    pub outputs: BTreeMap<String, i64>,
    #[serde(flatten)]
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ChannelSummary {
    pub channel: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// A journey's numbers over a time range.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Report {
    /// The whole journey: `entered` are entries (at its triggers), `converted` and `revenue`
    /// its conversions (each once), the message counts those of every node.
    pub totals: Summary,
    /// The totals per time bucket, every bucket of the range (empty ones too), in order.
    pub series: Vec<Point>,
    /// Per node, in the journey's node order.
    pub nodes: Vec<NodeSummary>,
    /// Per channel, of the nodes that send.
    pub channels: Vec<ChannelSummary>,
}

/// The most buckets a report holds: an hourly report covers at most about 83 days.
pub const MAX_BUCKETS: usize = 2000;

/// A report's range and buckets, checked.
#[derive(Debug, Clone)]
pub struct Range {
    pub from: Timestamp,
    pub to: Timestamp,
    pub bucket: Bucket,
    pub tz: TimeZone,
}

impl Range {
    /// The buckets' starts from the one holding `from` up to `to` (exclusive), or an error
    /// when the range is empty or has more than [`MAX_BUCKETS`].
    pub fn starts(&self) -> Result<Vec<Timestamp>, String> {
        if self.to <= self.from {
            return Err("`to` must be later than `from`".into());
        }
        let mut starts = Vec::new();
        let mut at = self.bucket.start(self.from, &self.tz);
        while at < self.to {
            if starts.len() == MAX_BUCKETS {
                return Err(format!(
                    "the range holds more than {MAX_BUCKETS} buckets: choose a longer bucket or a shorter range"
                ));
            }
            starts.push(at);
            let next = self.bucket.next(at, &self.tz);
            at = if next > at {
                next
            } else {
                at + SignedDuration::from_hours(1)
            };
        }
        Ok(starts)
    }
}

/// Adds up a journey's roll-up rows (already limited to the range, version and node asked
/// for) into a report. Rows of nodes the journey no longer has count in the totals and are
/// listed after its nodes.
pub fn build(
    range: &Range,
    nodes: &[NodeInfo],
    rows: &[RollupRow],
    reactions: &[ReactionRow],
) -> Result<Report, String> {
    let starts = range.starts()?;
    let info: BTreeMap<&str, &NodeInfo> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let journey_counts =
        |node: &str, c: &Counts| c.as_journeys(info.get(node).is_some_and(|n| n.trigger));
    let mut totals = Counts::default();
    let mut series = vec![Counts::default(); starts.len()];
    let mut per_node: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut outputs: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    for row in rows {
        let node_outputs = outputs.entry(&row.node).or_default();
        for (output, n) in &row.outputs {
            *node_outputs.entry(output.clone()).or_default() += n;
        }
        let j = journey_counts(&row.node, &row.counts);
        totals.add(&j);
        let i = starts.partition_point(|s| *s <= row.hour_at);
        if i > 0 {
            series[i - 1].add(&j);
        }
        per_node.entry(&row.node).or_default().add(&row.counts);
    }
    let mut all_reactions = Reactions::default();
    let mut node_reactions: BTreeMap<&str, Reactions> = BTreeMap::new();
    for r in reactions {
        all_reactions.add(r.reaction, r.bucket, r.count);
        node_reactions
            .entry(&r.node)
            .or_default()
            .add(r.reaction, r.bucket, r.count);
    }
    let summary = |counts: Counts, reactions: Option<&Reactions>| Summary {
        rates: counts.rates(),
        counts,
        reaction_times: reactions.map(Reactions::summary).unwrap_or_default(),
    };
    let mut node_summaries: Vec<NodeSummary> = nodes
        .iter()
        .map(|n| NodeSummary {
            node: n.id.clone(),
            kind: n.kind.clone(),
            channel: n.channel.clone(),
            outputs: outputs.get(n.id.as_str()).cloned().unwrap_or_default(),
            summary: summary(
                per_node.get(n.id.as_str()).copied().unwrap_or_default(),
                node_reactions.get(n.id.as_str()),
            ),
        })
        .collect();
    for (node, counts) in &per_node {
        if !info.contains_key(node) {
            node_summaries.push(NodeSummary {
                node: node.to_string(),
                kind: "removed".into(),
                channel: None,
                outputs: outputs.get(node).cloned().unwrap_or_default(),
                summary: summary(*counts, node_reactions.get(node)),
            });
        }
    }
    let mut channels: BTreeMap<&str, (Counts, Reactions)> = BTreeMap::new();
    for n in nodes {
        let Some(channel) = n.channel.as_deref() else {
            continue;
        };
        let entry = channels.entry(channel).or_default();
        if let Some(c) = per_node.get(n.id.as_str()) {
            entry.0.add(&journey_counts(&n.id, c));
        }
        for (reaction, hist) in node_reactions.get(n.id.as_str()).iter().flat_map(|r| {
            [
                (Reaction::Open, &r.open),
                (Reaction::Click, &r.click),
                (Reaction::Conversion, &r.conversion),
            ]
        }) {
            for (bucket, count) in &hist.0 {
                entry.1.add(reaction, *bucket, *count);
            }
        }
    }
    Ok(Report {
        totals: summary(totals, Some(&all_reactions)),
        series: starts
            .iter()
            .zip(series)
            .map(|(start, counts)| Point {
                start: *start,
                rates: counts.rates(),
                counts,
            })
            .collect(),
        nodes: node_summaries,
        channels: channels
            .into_iter()
            .map(|(channel, (counts, reactions))| ChannelSummary {
                channel: channel.to_string(),
                summary: summary(counts, Some(&reactions)),
            })
            .collect(),
    })
}

/// One broadcast roll-up row: the counters of a broadcast's messages of one template in one
/// UTC hour. `entered` counts its recipients (messages written, suppressed ones too),
/// `converted` (and `attributed`) its recipients who converted, in the hour of the goal event.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastRollupRow {
    pub hour_at: Timestamp,
    pub template: String,
    pub counts: Counts,
}

/// A rate with its Wilson interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
pub struct RateInterval {
    pub rate: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl RateInterval {
    /// `n` of `of`, with its Wilson interval at `confidence`.
    pub fn of(n: i64, of: i64, confidence: f64) -> RateInterval {
        let (n, of) = (n.max(0) as u64, of.max(0) as u64);
        let interval = crate::experiment::wilson_interval(n, of, confidence);
        RateInterval {
            rate: (of > 0).then(|| n.min(of) as f64 / of as f64),
            low: interval.map(|i| i.0),
            high: interval.map(|i| i.1),
        }
    }
}

/// What an A/B test compares, per message sent, each with its Wilson interval at 95 %.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
pub struct PerSent {
    /// Messages opened (by anyone) per message sent.
    pub opens: RateInterval,
    /// Messages clicked (by anyone) per message sent.
    pub clicks: RateInterval,
    /// Recipients converted per message sent.
    pub conversions: RateInterval,
}

/// One template of a broadcast (a variant of its A/B test).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct BroadcastVariant {
    pub template: String,
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(flatten)]
    pub rates: Rates,
    pub per_sent: PerSent,
}

/// A broadcast's numbers over a time range.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct BroadcastReport {
    pub totals: BroadcastTotals,
    /// Every bucket of the range (empty ones too), in order.
    pub series: Vec<Point>,
    /// Per template, in template order.
    pub variants: Vec<BroadcastVariant>,
}

/// Counts with their rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct BroadcastTotals {
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(flatten)]
    pub rates: Rates,
}

/// The confidence of a broadcast report's intervals.
pub const BROADCAST_CONFIDENCE: f64 = 0.95;

/// Adds up a broadcast's roll-up rows (already limited to the range) into a report.
pub fn build_broadcast(
    range: &Range,
    rows: &[BroadcastRollupRow],
) -> Result<BroadcastReport, String> {
    let starts = range.starts()?;
    let mut totals = Counts::default();
    let mut series = vec![Counts::default(); starts.len()];
    let mut per_template: BTreeMap<&str, Counts> = BTreeMap::new();
    for row in rows {
        totals.add(&row.counts);
        let i = starts.partition_point(|s| *s <= row.hour_at);
        if i > 0 {
            series[i - 1].add(&row.counts);
        }
        per_template
            .entry(&row.template)
            .or_default()
            .add(&row.counts);
    }
    Ok(BroadcastReport {
        totals: BroadcastTotals {
            rates: totals.rates(),
            counts: totals,
        },
        series: starts
            .iter()
            .zip(series)
            .map(|(start, counts)| Point {
                start: *start,
                rates: counts.rates(),
                counts,
            })
            .collect(),
        variants: per_template
            .into_iter()
            .map(|(template, c)| BroadcastVariant {
                template: template.to_string(),
                rates: c.rates(),
                per_sent: PerSent {
                    opens: RateInterval::of(c.opened, c.sent, BROADCAST_CONFIDENCE),
                    clicks: RateInterval::of(c.clicked, c.sent, BROADCAST_CONFIDENCE),
                    conversions: RateInterval::of(c.converted, c.sent, BROADCAST_CONFIDENCE),
                },
                counts: c,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn row(hour: &str, node: &str, f: impl FnOnce(&mut Counts)) -> RollupRow {
        let mut counts = Counts::default();
        f(&mut counts);
        RollupRow {
            hour_at: at(hour),
            version: 1,
            node: node.into(),
            counts,
            outputs: BTreeMap::new(),
        }
    }

    fn nodes() -> Vec<NodeInfo> {
        let node = |id: &str, kind: &str, channel: Option<&str>| NodeInfo {
            id: id.into(),
            kind: kind.into(),
            channel: channel.map(Into::into),
            trigger: kind == "trigger",
        };
        vec![
            node("start", "trigger", None),
            node("mail", "send_email", Some("email")),
            node("text", "send_sms", Some("sms")),
        ]
    }

    #[test]
    fn days_in_a_time_zone_gather_the_hours_of_their_local_date() {
        let range = Range {
            from: at("2026-03-28T00:00:00+01:00[Europe/Rome]"),
            to: at("2026-03-31T00:00:00+02:00[Europe/Rome]"),
            bucket: Bucket::Day,
            tz: TimeZone::get("Europe/Rome").unwrap(),
        };
        let rows = [
            // 23:30 UTC on the 28th is the 29th in Rome.
            row("2026-03-28T23:00:00Z", "start", |c| c.entered = 2),
            row("2026-03-28T10:00:00Z", "start", |c| c.entered = 1),
            // The 29th has 23 hours in Rome (daylight saving starts).
            row("2026-03-29T22:00:00Z", "start", |c| c.entered = 5),
            row("2026-03-29T21:00:00Z", "mail", |c| {
                c.entered = 4;
                c.sent = 4;
                c.delivered = 3;
                c.failed = 1;
                c.human_opened = 2;
                c.opened = 3;
                c.human_clicked = 1;
                c.attributed = 1;
                c.revenue = 25.5;
            }),
        ];
        let report = build(&range, &nodes(), &rows, &[]).unwrap();
        let days: Vec<(String, i64)> = report
            .series
            .iter()
            .map(|p| (p.start.to_string(), p.counts.entered))
            .collect();
        assert_eq!(
            days,
            [
                ("2026-03-27T23:00:00Z".to_string(), 1),
                ("2026-03-28T23:00:00Z".to_string(), 2),
                ("2026-03-29T22:00:00Z".to_string(), 5),
            ]
        );
        let t = &report.totals;
        assert_eq!(
            t.counts.entered, 8,
            "only the trigger's entries are the journey's"
        );
        assert_eq!(t.counts.converted, 1);
        assert_eq!(t.counts.revenue, 25.5);
        assert_eq!(t.rates.delivery_rate, Some(0.6));
        assert_eq!(t.rates.open_rate, Some(2.0 / 3.0));
        assert_eq!(t.rates.open_rate_all, Some(1.0));
        assert_eq!(t.rates.click_to_open_rate, Some(0.5));
        assert_eq!(t.rates.conversion_rate, Some(1.0 / 8.0));
        assert_eq!(report.nodes[1].summary.counts.entered, 4);
        assert_eq!(report.channels.len(), 2);
        assert_eq!(report.channels[0].channel, "email");
        assert_eq!(report.channels[0].summary.counts.sent, 4);
        assert_eq!(report.nodes[2].summary.rates.open_rate, None);
    }

    #[test]
    fn a_node_reports_who_left_it_by_each_output_and_the_sends_deferred() {
        let range = Range {
            from: at("2026-03-02T00:00:00Z"),
            to: at("2026-03-04T00:00:00Z"),
            bucket: Bucket::Day,
            tz: TimeZone::UTC,
        };
        let left = |hour: &str, outputs: &[(&str, i64)], deferred: i64| {
            let mut r = row(hour, "mail", |c| c.deferred = deferred);
            r.outputs = outputs.iter().map(|(o, n)| (o.to_string(), *n)).collect();
            r
        };
        let rows = [
            left("2026-03-02T09:00:00Z", &[("next", 3)], 2),
            left("2026-03-03T22:00:00Z", &[("next", 4), ("other", 1)], 5),
        ];
        let report = build(&range, &nodes(), &rows, &[]).unwrap();
        let mail = report.nodes.iter().find(|n| n.node == "mail").unwrap();
        assert_eq!(
            mail.outputs,
            BTreeMap::from([("next".to_string(), 7), ("other".to_string(), 1)])
        );
        assert_eq!(mail.summary.counts.deferred, 7);
        assert_eq!(report.totals.counts.deferred, 7);
        assert_eq!(report.series[1].counts.deferred, 5);
        let start = report.nodes.iter().find(|n| n.node == "start").unwrap();
        assert!(start.outputs.is_empty());
    }

    #[test]
    fn a_variant_owns_the_nodes_only_its_output_reaches() {
        let doc: crate::JourneyDocument = serde_json::from_value(serde_json::json!({
            "id": "ab", "name": "AB",
            "goal": {"event": "Order Completed"},
            "nodes": [
                {"id": "start", "type": "trigger", "event": "Signed Up"},
                {"id": "test", "type": "experiment",
                 "variants": [{"name": "a", "percent": 50}, {"name": "b", "percent": 50}]},
                {"id": "mail-a", "type": "send_email", "template": "t"},
                {"id": "wait-a", "type": "delay", "duration": "1d"},
                {"id": "mail-b", "type": "send_email", "template": "t"},
                {"id": "after", "type": "send_email", "template": "t"}
            ],
            "edges": [
                {"from": "start", "to": "test"},
                {"from": "test", "to": "mail-a", "output": "a"},
                {"from": "mail-a", "to": "wait-a"},
                {"from": "wait-a", "to": "after"},
                {"from": "test", "to": "mail-b", "output": "b"},
                {"from": "mail-b", "to": "after"}
            ]
        }))
        .unwrap();
        let ids = |nodes: Vec<NodeInfo>| {
            nodes
                .into_iter()
                .map(|n| (n.id, n.trigger))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(variant_nodes(&doc, "test", "a").unwrap()),
            [("mail-a".to_string(), true), ("wait-a".to_string(), false)]
        );
        assert_eq!(
            ids(variant_nodes(&doc, "test", "b").unwrap()),
            [("mail-b".to_string(), true)]
        );
        assert!(variant_nodes(&doc, "test", "c").is_none());
        assert!(variant_nodes(&doc, "start", "a").is_none());
    }

    #[test]
    fn weeks_start_on_monday_and_ranges_are_bounded() {
        let tz = TimeZone::UTC;
        let wednesday = at("2026-12-02T15:00:00Z");
        assert_eq!(
            Bucket::Week.start(wednesday, &tz),
            at("2026-11-30T00:00:00Z")
        );
        let range = |bucket, days: i64| Range {
            from: wednesday,
            to: wednesday + SignedDuration::from_hours(24 * days),
            bucket,
            tz: tz.clone(),
        };
        assert_eq!(range(Bucket::Week, 14).starts().unwrap().len(), 3);
        assert!(
            range(Bucket::Hour, 90)
                .starts()
                .unwrap_err()
                .contains("2000")
        );
        assert!(range(Bucket::Day, 0).starts().is_err());
    }

    #[test]
    fn reaction_times_are_read_back_within_a_fifth() {
        let mut h = Histogram::default();
        for seconds in [30, 60, 90, 120, 3600] {
            h.add(reaction_bucket(SignedDuration::from_secs(seconds)), 1);
        }
        let s = h.summary();
        assert_eq!(s.count, 5);
        let median = s.median_seconds.unwrap();
        assert!((median - 90.0).abs() / 90.0 < 0.2, "{median}");
        let p90 = s.p90_seconds.unwrap();
        assert!((p90 - 3600.0).abs() / 3600.0 < 0.2, "{p90}");
        assert_eq!(Histogram::default().summary().median_seconds, None);
        assert_eq!(reaction_bucket(SignedDuration::from_secs(-5)), 0);
    }

    #[test]
    fn a_broadcast_report_adds_its_hours_per_bucket_and_per_template() {
        let range = Range {
            from: at("2026-12-01T00:00:00Z"),
            to: at("2026-12-03T00:00:00Z"),
            bucket: Bucket::Day,
            tz: TimeZone::UTC,
        };
        let row = |hour: &str, template: &str, f: fn(&mut Counts)| {
            let mut counts = Counts::default();
            f(&mut counts);
            BroadcastRollupRow {
                hour_at: at(hour),
                template: template.into(),
                counts,
            }
        };
        let rows = [
            row("2026-12-01T09:00:00Z", "a", |c| {
                c.entered = 100;
                c.sent = 100;
                c.delivered = 98;
                c.bounced = 2;
                c.opened = 40;
                c.human_opened = 30;
            }),
            row("2026-12-01T09:00:00Z", "b", |c| {
                c.entered = 100;
                c.sent = 100;
                c.delivered = 100;
                c.opened = 10;
            }),
            row("2026-12-02T10:00:00Z", "a", |c| {
                c.converted = 5;
                c.revenue = 50.0;
            }),
        ];
        let report = build_broadcast(&range, &rows).unwrap();
        assert_eq!(report.series.len(), 2);
        assert_eq!(report.series[0].counts.sent, 200);
        assert_eq!(report.series[1].counts.converted, 5);
        let t = &report.totals;
        assert_eq!((t.counts.sent, t.counts.converted), (200, 5));
        assert_eq!(t.rates.open_rate, Some(30.0 / 198.0));
        assert_eq!(t.rates.conversion_rate, Some(5.0 / 200.0));
        let a = &report.variants[0];
        assert_eq!(a.template, "a");
        assert_eq!(a.per_sent.conversions.rate, Some(0.05));
        let (low, high) = (
            a.per_sent.opens.low.unwrap(),
            a.per_sent.opens.high.unwrap(),
        );
        assert!(
            low < 0.4 && 0.4 < high && low > 0.3 && high < 0.5,
            "{low} {high}"
        );
        let b = &report.variants[1];
        assert_eq!(b.per_sent.conversions.rate, Some(0.0));
        assert_eq!(b.per_sent.conversions.low, Some(0.0));
    }
}
