//! Reporting: aggregate counters (per journey and node) and the levels the metrics endpoint
//! exposes. Nothing personal is kept here; erasure leaves it alone.

use jiff::Timestamp;

use waymark_core::report::{Counts, Reaction, ReactionRow, RollupRow};

use crate::{
    Gauges, JourneyStats, NewConversion, PeopleQuery, PersonRow, Result, RollupQuery, StatsDeltas,
};

/// Journey statistics, gauges and the size on disk.
pub trait Reporting {
    /// A journey's statistics: of every version together (`None`), or of the enrollments of
    /// one `version` (an unknown one is `NotFound`).
    fn journey_stats(&self, id: &str, version: Option<i64>) -> Result<JourneyStats>;

    /// A journey's hourly roll-up rows and reaction-time histogram rows in a time range (by
    /// the hour they count), of one version and node or all of them.
    fn journey_rollups(&self, query: &RollupQuery) -> Result<(Vec<RollupRow>, Vec<ReactionRow>)>;

    /// Every journey's counters per node from the hour holding `from` up to `to`, summed:
    /// (journey, node, counts), in journey and node order.
    fn rollup_sums(&self, from: Timestamp, to: Timestamp) -> Result<Vec<(String, String, Counts)>>;

    /// Who is behind a journey's numbers: one page of the contacts waiting at a node, sent its
    /// messages or converted (see `PeopleQuery`).
    fn journey_people(&self, query: &PeopleQuery) -> Result<Vec<PersonRow>>;

    /// Current levels for the metrics endpoint.
    fn gauges(&self) -> Result<Gauges>;

    /// Size of the database files in bytes.
    fn disk_bytes(&self) -> Result<u64>;
}

/// Adding the counters of one engine batch, and recording conversions.
pub trait ReportingTx {
    /// Adds to the node statistics and to the roll-ups of the hour of `at`.
    fn add_stats(&mut self, deltas: &StatsDeltas, at: Timestamp) -> Result<()>;

    /// Records a conversion, credited to its node and message, and adds it (with its revenue
    /// and its reaction time) to the roll-ups of the hour it happened in. An enrollment
    /// converts once: returns false when it already had.
    fn record_conversion(&mut self, conversion: &NewConversion) -> Result<bool>;
}

/// The columns of `node_stats` (every one is in `journey_rollups` too): a message's counter
/// outside this list is kept in the roll-ups only.
pub(crate) const NODE_STATS_COLUMNS: &[&str] = &[
    "entered",
    "completed",
    "exited",
    "converted",
    "sent",
    "delivered",
    "bounced",
    "failed",
    "suppressed",
    "opened",
    "clicked",
];

/// One `output_rollups` row as read.
pub(crate) struct OutputRow {
    pub hour_at: Timestamp,
    pub version: i64,
    pub node: String,
    pub output: String,
    pub count: i64,
}

/// Puts each output row into the roll-up row of its hour, version and node (one with no
/// counters when there is none). (Shared by the backends.)
pub(crate) fn with_outputs(
    mut rows: Vec<waymark_core::report::RollupRow>,
    outputs: Vec<OutputRow>,
) -> Vec<waymark_core::report::RollupRow> {
    let mut index: std::collections::HashMap<(Timestamp, i64, String), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.hour_at, r.version, r.node.clone()), i))
        .collect();
    for o in outputs {
        let key = (o.hour_at, o.version, o.node.clone());
        let i = *index.entry(key).or_insert_with(|| {
            rows.push(waymark_core::report::RollupRow {
                hour_at: o.hour_at,
                version: o.version,
                node: o.node.clone(),
                counts: Default::default(),
                outputs: Default::default(),
            });
            rows.len() - 1
        });
        *rows[i].outputs.entry(o.output).or_default() += o.count;
    }
    rows
}

/// The start of the UTC hour holding `at`, in ms: the key of its roll-up row.
pub(crate) fn rollup_hour(at: Timestamp) -> i64 {
    super::history_hour(at.as_millisecond())
}

/// Which of a message's engagement timestamps were still unset before an open or click.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unset {
    pub opened: bool,
    pub clicked: bool,
    pub human_opened: bool,
    pub human_clicked: bool,
}

/// What an open (or, `clicked`, a click) by a person (`human`) or a machine counts, given
/// what the message had: each first open and click, by anyone and by a person (a click is an
/// open too), with the reaction time a person's first measures.
pub(crate) fn engagement_counts(
    clicked: bool,
    human: bool,
    unset: Unset,
) -> Vec<(&'static str, Option<Reaction>)> {
    [
        ("opened", unset.opened, None),
        ("clicked", clicked && unset.clicked, None),
        (
            "human_opened",
            human && unset.human_opened,
            Some(Reaction::Open),
        ),
        (
            "human_clicked",
            human && clicked && unset.human_clicked,
            Some(Reaction::Click),
        ),
    ]
    .into_iter()
    .filter(|(_, first, _)| *first)
    .map(|(column, _, reaction)| (column, reaction))
    .collect()
}
