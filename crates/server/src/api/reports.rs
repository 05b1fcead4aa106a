//! Journey reports: `GET /v1/journeys/{id}/report`. The store keeps hourly roll-ups per
//! journey, version and node (see `waymark_store::concerns::reporting`); this module reads the
//! parameters at the edge, reads the rows of the range once and lets
//! `waymark_core::report` add them up, then answers JSON or, with `Accept: text/csv`, CSV.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use waymark_core::JourneyDocument;
use waymark_core::report::{self, Bucket, NodeInfo, Range, Report};
use waymark_core::stepper::CONVERSION_AFTER_END;
use waymark_store::{PEOPLE_STATUSES, PeopleKind, PeopleQuery, PersonRow, RollupQuery};

use super::error::{ApiError, ApiResult};
use super::manage::{blocking, next_page};
use super::segment_history::time;
use super::{AppState, QueryParams};

/// `GET /v1/journeys/{id}/report` parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ReportQuery {
    /// The start of the range: an RFC 3339 timestamp, a date (`2026-03-01`: its start in
    /// `tz`), or a duration before now (`29d`). The first bucket is the one it falls in.
    /// Default: 30 days before `to`.
    pub from: Option<String>,
    /// The end of the range (exclusive), in the same forms. Default: now.
    pub to: Option<String>,
    /// `hour`, `day` (default; days begin at midnight in `tz`) or `week` (from Monday).
    pub bucket: Option<String>,
    /// The IANA time zone of dates, days and weeks (default `UTC`).
    pub tz: Option<String>,
    /// Only the enrollments of this published version (and their messages).
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
    /// Only this node's counts (totals and series then describe the node).
    #[schemars(length(min = 1, max = 200))]
    pub node: Option<String>,
    /// Only the nodes of one experiment variant (`experiment-node:variant`, or the variant's
    /// name alone when one experiment has it): those only its output leads to. Its entries are
    /// the entries at its first nodes, its conversions those credited to its messages.
    #[schemars(length(min = 1, max = 401))]
    pub variant: Option<String>,
    /// With `Accept: text/csv`: one row per time bucket (`series`, default) or per node
    /// (`nodes`; a broadcast's report: per template, `variants`).
    pub rows: Option<String>,
}

/// How conversions are credited, as the report states it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Attribution {
    /// `last_touch`: a conversion is credited to the last message the enrollment was sent
    /// before it (else to the node it was at).
    pub model: &'static str,
    /// The conversion window: the goal's `within` after entry, or while the enrollment runs
    /// and this long after it ended (e.g. `7d`).
    pub window: String,
    /// The goal event, if the journey has one.
    pub goal: Option<String>,
    /// The currency `revenue` is in: the goal's `currency`, default `USD`.
    pub currency: String,
    /// The goal event's property read as revenue.
    pub revenue_property: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct JourneyReport {
    pub journey_id: String,
    pub version: Option<i64>,
    pub node: Option<String>,
    pub variant: Option<String>,
    /// The start of the first bucket.
    pub from: Timestamp,
    pub to: Timestamp,
    pub bucket: Bucket,
    pub tz: String,
    pub attribution: Attribution,
    #[serde(flatten)]
    pub report: Report,
}

/// The parameters, checked, with `now` for the defaults.
struct Asked {
    range: Range,
    tz_name: String,
    csv_nodes: bool,
}

/// What a report is of: the defaults and the CSV rows other than the series.
struct Kind {
    /// The range's start when `from` is not given (else 30 days before `to`).
    default_from: Option<Timestamp>,
    /// Without `bucket`: `hour` for a range of at most this long, else `day` (`None`: `day`).
    hourly_up_to: Option<SignedDuration>,
    /// The other CSV `rows`: `nodes` (journeys) or `variants` (broadcasts).
    other_rows: &'static str,
}

const JOURNEY: Kind = Kind {
    default_from: None,
    hourly_up_to: None,
    other_rows: "nodes",
};

fn asked(q: &ReportQuery, now: Timestamp) -> ApiResult<Asked> {
    asked_of(q, now, &JOURNEY)
}

fn asked_of(q: &ReportQuery, now: Timestamp, kind: &Kind) -> ApiResult<Asked> {
    let invalid =
        |field: &str, message: String| ApiError::invalid("invalid_parameter", field, message);
    let bucket =
        match q.bucket.as_deref().map(str::trim) {
            None => None,
            Some(b) => Some(Bucket::parse(b).ok_or_else(|| {
                invalid("bucket", format!("`{b}` is not `hour`, `day` or `week`"))
            })?),
        };
    let tz_name = q.tz.as_deref().map(str::trim).unwrap_or("UTC").to_string();
    let tz = TimeZone::get(&tz_name).map_err(|_| {
        invalid(
            "tz",
            format!("`{tz_name}` is not a known IANA time zone (such as Europe/Rome or UTC)"),
        )
    })?;
    let other = kind.other_rows;
    let csv_nodes = match q.rows.as_deref().map(str::trim) {
        None | Some("series") => false,
        Some(rows) if rows == other => true,
        Some(rows) => {
            return Err(invalid(
                "rows",
                format!("`{rows}` is not `series` or `{other}`"),
            ));
        }
    };
    let (from, to) = range_of(q, &tz, now, kind.default_from)?;
    let bucket = bucket.unwrap_or(match kind.hourly_up_to {
        Some(span) if to.duration_since(from) <= span => Bucket::Hour,
        _ => Bucket::Day,
    });
    let range = Range {
        from,
        to,
        bucket,
        tz,
    };
    // The range is checked here, before the store is read.
    range.starts().map_err(|e| invalid("from", e))?;
    Ok(Asked {
        range,
        tz_name,
        csv_nodes,
    })
}

/// The range asked for: `to` (default now) and `from` (default `default_from`, else 30 days
/// before `to`).
fn range_of(
    q: &ReportQuery,
    tz: &TimeZone,
    now: Timestamp,
    default_from: Option<Timestamp>,
) -> ApiResult<(Timestamp, Timestamp)> {
    let to = match &q.to {
        Some(raw) => time("to", raw, tz, now)?,
        None => now,
    };
    let from = match &q.from {
        Some(raw) => time("from", raw, tz, now)?,
        None => default_from.unwrap_or_else(|| {
            to.saturating_sub(SignedDuration::from_hours(30 * 24))
                .unwrap_or(Timestamp::MIN)
        }),
    };
    // A default start of now (a broadcast that has just started): the range holds this hour.
    let to = match (&q.to, &q.from) {
        (None, None) if to <= from => from + SignedDuration::from_secs(1),
        _ => to,
    };
    Ok((from, to))
}

/// `GET /v1/journeys/{id}/report`
pub async fn journey(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ReportQuery>,
) -> ApiResult<Response> {
    let (view, csv_nodes) = journey_report(&state, id, q).await?;
    if wants_csv(&headers) {
        let body = if csv_nodes {
            nodes_csv(&view)
        } else {
            series_csv(&view.report.series)
        }
        .map_err(|e| ApiError::internal(format!("the CSV could not be written: {e}")))?;
        return Ok(csv_response(body, &format!("{}-report", view.journey_id)));
    }
    Ok(Json(view).into_response())
}

/// A journey's report as asked, and whether its CSV form has a row per node.
pub(super) async fn journey_report(
    state: &AppState,
    id: String,
    q: ReportQuery,
) -> ApiResult<(JourneyReport, bool)> {
    let now = state.engine.clock().now();
    let asked = asked(&q, now)?;
    let query = RollupQuery {
        journey_id: id.clone(),
        from: asked.range.from,
        to: asked.range.to,
        version: q.version,
        node: q.node.clone(),
    };
    let version = q.version;
    let (document, (rows, reactions)) = blocking(state, move |s| {
        let journey = s.journey(&query.journey_id)?;
        // The nodes of the version asked for, else of the live (or draft) document.
        let document = match version.or(journey.live_version) {
            Some(v) => s.journey_version(&query.journey_id, v)?.document,
            None => journey.draft,
        };
        Ok((document, s.journey_rollups(&query)?))
    })
    .await?;
    let document: Option<JourneyDocument> = serde_json::from_value(document).ok();
    let mut nodes = document.as_ref().map(NodeInfo::of).unwrap_or_default();
    let (mut rows, mut reactions) = (rows, reactions);
    if let Some(variant) = &q.variant {
        let scope = document
            .as_ref()
            .and_then(|d| variant_scope(d, variant))
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_parameter",
                    "variant",
                    format!(
                        "`{variant}` names no variant of an experiment of this version: give `experiment-node:variant`"
                    ),
                )
            })?;
        let mine = |node: &str| scope.iter().any(|n| n.id == node);
        rows.retain(|r| mine(&r.node));
        reactions.retain(|r| mine(&r.node));
        nodes = scope;
    }
    if let Some(node) = &q.node {
        nodes.retain(|n| &n.id == node);
    }
    let report = report::build(&asked.range, &nodes, &rows, &reactions)
        .map_err(|e| ApiError::invalid("invalid_parameter", "from", e))?;
    let goal = document.as_ref().and_then(|d| d.goal.as_ref());
    let attribution = Attribution {
        model: "last_touch",
        window: match goal.and_then(|g| g.within.clone()) {
            Some(within) => format!("{within} after entry"),
            None => format!(
                "while enrolled and {}d after the end",
                CONVERSION_AFTER_END.as_hours() / 24
            ),
        },
        goal: goal.map(|g| g.event.clone()),
        currency: goal.map_or("USD", |g| g.revenue_currency()).to_string(),
        revenue_property: goal
            .and_then(|g| g.revenue_property.clone())
            .unwrap_or_else(|| "revenue".into()),
    };
    let view = JourneyReport {
        journey_id: id,
        version: q.version,
        node: q.node,
        variant: q.variant,
        from: asked
            .range
            .starts()
            .ok()
            .and_then(|s| s.first().copied())
            .unwrap_or(asked.range.from),
        to: asked.range.to,
        bucket: asked.range.bucket,
        tz: asked.tz_name,
        attribution,
        report,
    };
    Ok((view, asked.csv_nodes))
}

/// A broadcast's goal, as its report states it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BroadcastGoalView {
    /// The goal event.
    pub event: String,
    /// How long after a recipient's message was sent their goal event converts (`7d`).
    pub within: String,
    /// The currency `revenue` is in.
    pub currency: String,
    /// The goal event's property read as revenue.
    pub revenue_property: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BroadcastReportView {
    pub broadcast_id: String,
    pub name: String,
    pub status: waymark_store::BroadcastStatus,
    /// The start of the first bucket.
    pub from: Timestamp,
    pub to: Timestamp,
    pub bucket: Bucket,
    pub tz: String,
    /// The broadcast's goal, if it has one (else nobody converts).
    pub goal: Option<BroadcastGoalView>,
    /// The A/B test's metric (`opens`, `clicks`, `conversions`), if it has a test.
    pub test_metric: Option<waymark_core::broadcast::TestMetric>,
    /// The template the A/B test chose, once chosen.
    pub winner: Option<String>,
    #[serde(flatten)]
    pub report: report::BroadcastReport,
}

/// `GET /v1/broadcasts/{id}/report`: the broadcast's hourly roll-ups over the range, in
/// buckets, in total and per template.
pub async fn broadcast(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ReportQuery>,
) -> ApiResult<Response> {
    for (field, given) in [
        ("version", q.version.is_some()),
        ("node", q.node.is_some()),
        ("variant", q.variant.is_some()),
    ] {
        if given {
            return Err(ApiError::invalid(
                "invalid_parameter",
                field,
                "applies to a journey's report only",
            ));
        }
    }
    let now = state.engine.clock().now();
    let wanted = id.clone();
    let row = blocking(&state, move |s| s.broadcast(&wanted)).await?;
    // By default the whole broadcast: from its start (else its creation) up to now, by the
    // hour for its first week.
    let kind = Kind {
        default_from: Some(row.started_at.unwrap_or(row.created_at).min(now)),
        hourly_up_to: Some(SignedDuration::from_hours(7 * 24)),
        other_rows: "variants",
    };
    let asked = asked_of(&q, now, &kind)?;
    let (from, to) = (asked.range.from, asked.range.to);
    let rows = blocking(&state, move |s| s.broadcast_rollups(&id, from, to)).await?;
    let report = report::build_broadcast(&asked.range, &rows)
        .map_err(|e| ApiError::invalid("invalid_parameter", "from", e))?;
    let document: Option<waymark_core::broadcast::BroadcastDocument> =
        serde_json::from_value(row.document.clone()).ok();
    let goal = document.as_ref().and_then(|d| d.goal.as_ref());
    let view = BroadcastReportView {
        name: document
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_else(|| row.id.clone()),
        broadcast_id: row.id,
        status: row.status,
        from: asked
            .range
            .starts()
            .ok()
            .and_then(|s| s.first().copied())
            .unwrap_or(asked.range.from),
        to: asked.range.to,
        bucket: asked.range.bucket,
        tz: asked.tz_name,
        goal: goal.map(|g| BroadcastGoalView {
            event: g.event.clone(),
            within: g.within.clone().unwrap_or_else(|| {
                format!(
                    "{}d",
                    waymark_core::broadcast::DEFAULT_GOAL_WITHIN_SECONDS / 86_400
                )
            }),
            currency: g.revenue_currency().to_string(),
            revenue_property: g
                .revenue_property
                .clone()
                .unwrap_or_else(|| "revenue".into()),
        }),
        test_metric: document
            .as_ref()
            .and_then(|d| d.test.as_ref())
            .map(|t| t.metric),
        winner: row.winner.map(|w| w.template),
        report,
    };
    if wants_csv(&headers) {
        let body = if asked.csv_nodes {
            variants_csv(&view)
        } else {
            series_csv(&view.report.series)
        }
        .map_err(|e| ApiError::internal(format!("the CSV could not be written: {e}")))?;
        return Ok(csv_response(body, &format!("{}-report", view.broadcast_id)));
    }
    Ok(Json(view).into_response())
}

fn variants_csv(view: &BroadcastReportView) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["template"];
    header.extend_from_slice(CSV_COLUMNS);
    header.extend_from_slice(&[
        "opens_per_sent",
        "opens_low",
        "opens_high",
        "clicks_per_sent",
        "clicks_low",
        "clicks_high",
        "conversions_per_sent",
        "conversions_low",
        "conversions_high",
    ]);
    w.write_record(&header)?;
    let rate = |r: Option<f64>| r.map(|r| format!("{r:.6}")).unwrap_or_default();
    for v in &view.report.variants {
        let mut row = vec![v.template.clone()];
        row.extend(csv_cells(&v.counts, &v.rates));
        for i in [v.per_sent.opens, v.per_sent.clicks, v.per_sent.conversions] {
            row.extend([rate(i.rate), rate(i.low), rate(i.high)]);
        }
        w.write_record(&row)?;
    }
    finish(w)
}

/// `GET /v1/reports/overview` parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct OverviewQuery {
    /// The last this many days up to now (1 to 366; default 30), unless `from` is given.
    #[schemars(range(min = 1, max = 366))]
    pub days: Option<i64>,
    /// The start of the range, as in the journey report (overrides `days`).
    pub from: Option<String>,
    /// The end of the range (exclusive). Default: now.
    pub to: Option<String>,
}

/// One journey's figures in the overview.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JourneyOverview {
    pub journey_id: String,
    pub name: String,
    pub status: waymark_store::JourneyStatus,
    #[serde(flatten)]
    pub counts: report::Counts,
    #[serde(flatten)]
    pub rates: report::Rates,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Overview {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Every journey together.
    pub totals: report::Summary,
    /// Every journey (archived ones with activity in the range too), most messages sent
    /// first.
    pub journeys: Vec<JourneyOverview>,
}

/// `GET /v1/reports/overview`: every journey's figures over the last days.
pub async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<OverviewQuery>,
) -> ApiResult<Response> {
    let now = state.engine.clock().now();
    let tz = TimeZone::UTC;
    let to = match &q.to {
        Some(raw) => time("to", raw, &tz, now)?,
        None => now,
    };
    let from = match (&q.from, q.days) {
        (Some(raw), _) => time("from", raw, &tz, now)?,
        (None, Some(days)) if !(1..=366).contains(&days) => {
            return Err(ApiError::invalid(
                "invalid_parameter",
                "days",
                "must be between 1 and 366",
            ));
        }
        (None, days) => to
            .saturating_sub(SignedDuration::from_hours(24 * days.unwrap_or(30)))
            .unwrap_or(Timestamp::MIN),
    };
    if to <= from {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "to",
            format!("must be later than `from` ({from})"),
        ));
    }
    let (journeys, sums, documents) = blocking(&state, move |s| {
        let journeys = s.journeys()?;
        let sums = s.rollup_sums(from, to)?;
        // The nodes of each journey's live version (else its draft), to tell its triggers.
        let mut documents = Vec::with_capacity(journeys.len());
        for j in &journeys {
            let document = match j.live_version {
                Some(v) => s.journey_version(&j.id, v).map(|v| v.document).ok(),
                None => None,
            };
            documents.push(document.unwrap_or_else(|| j.draft.clone()));
        }
        Ok((journeys, sums, documents))
    })
    .await?;
    let mut totals = report::Counts::default();
    let mut rows: Vec<JourneyOverview> = journeys
        .into_iter()
        .zip(documents)
        .map(|(j, document)| {
            let nodes = serde_json::from_value::<JourneyDocument>(document)
                .map(|d| NodeInfo::of(&d))
                .unwrap_or_default();
            let counts = report::Counts::of_journey(
                &nodes,
                sums.iter()
                    .filter(|(journey, ..)| *journey == j.id)
                    .map(|(_, node, c)| (node.as_str(), c)),
            );
            totals.add(&counts);
            JourneyOverview {
                journey_id: j.id,
                name: j.name,
                status: j.status,
                rates: counts.rates(),
                counts,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.counts
            .sent
            .cmp(&a.counts.sent)
            .then_with(|| a.journey_id.cmp(&b.journey_id))
    });
    let view = Overview {
        from,
        to,
        totals: report::Summary {
            rates: totals.rates(),
            counts: totals,
            reaction_times: Default::default(),
        },
        journeys: rows,
    };
    if wants_csv(&headers) {
        let body = overview_csv(&view)
            .map_err(|e| ApiError::internal(format!("the CSV could not be written: {e}")))?;
        return Ok(csv_response(body, "overview"));
    }
    Ok(Json(view).into_response())
}

fn overview_csv(view: &Overview) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["journey_id", "name", "status"];
    header.extend_from_slice(CSV_COLUMNS);
    w.write_record(&header)?;
    for j in &view.journeys {
        let mut row = vec![
            j.journey_id.clone(),
            j.name.clone(),
            j.status.as_str().to_string(),
        ];
        row.extend(csv_cells(&j.counts, &j.rates));
        w.write_record(&row)?;
    }
    finish(w)
}

/// `GET /v1/journeys/{id}/people` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PeopleParams {
    /// `waiting` (enrollments at the node now, with until when), `messaged` (its messages and
    /// what became of each) or `converted` (conversions credited to it).
    pub show: PeopleKind,
    /// The node; without it, the whole journey.
    #[schemars(length(min = 1, max = 200))]
    pub node: Option<String>,
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
    /// `messaged` only: `email`, `sms` or `webhook`.
    pub channel: Option<String>,
    /// `messaged` only: `queued`, `sent`, `delivered`, `failed`, `suppressed`, `bounced`, or what
    /// the recipient did: `opened`, `clicked` (people's), `unsubscribed`, `complained`.
    pub status: Option<String>,
    /// How many to list, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub after: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct People {
    pub journey_id: String,
    pub show: PeopleKind,
    pub people: Vec<PersonRow>,
    /// Where the next page starts (`after`), when this page is full: there may be more.
    pub next_cursor: Option<i64>,
}

/// `GET /v1/journeys/{id}/people`: the contacts behind a journey's or a node's numbers.
pub async fn people(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    QueryParams(p): QueryParams<PeopleParams>,
) -> ApiResult<Response> {
    if let Some(status) = &p.status {
        if p.show != PeopleKind::Messaged {
            return Err(ApiError::invalid(
                "invalid_parameter",
                "status",
                "applies to `show=messaged` only",
            ));
        }
        if !PEOPLE_STATUSES.contains(&status.as_str()) {
            return Err(ApiError::invalid(
                "invalid_parameter",
                "status",
                format!("`{status}` is not one of {}", PEOPLE_STATUSES.join(", ")),
            ));
        }
    }
    if p.channel.is_some() && p.show != PeopleKind::Messaged {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "channel",
            "applies to `show=messaged` only",
        ));
    }
    let limit = super::manage::page_limit(p.limit)?;
    let query = PeopleQuery {
        journey_id: id.clone(),
        kind: p.show,
        node: p.node,
        version: p.version,
        channel: p.channel,
        status: p.status,
        after: p.after.unwrap_or(0),
        limit,
    };
    let people = blocking(&state, move |s| {
        s.journey(&query.journey_id)?;
        s.journey_people(&query)
    })
    .await?;
    let next_cursor = next_page(&people, limit, |p| p.cursor);
    let view = People {
        journey_id: id,
        show: p.show,
        people,
        next_cursor,
    };
    if wants_csv(&headers) {
        let body = people_csv(&view)
            .map_err(|e| ApiError::internal(format!("the CSV could not be written: {e}")))?;
        return Ok(csv_response(body, &format!("{}-people", view.journey_id)));
    }
    Ok(Json(view).into_response())
}

fn people_csv(view: &People) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "contact_id",
        "user_id",
        "email",
        "enrollment_id",
        "node",
        "entered_at",
        "wake_at",
        "message_id",
        "channel",
        "status",
        "sent_at",
        "opened_at",
        "clicked_at",
        "unsubscribed_at",
        "complained_at",
        "converted_at",
        "revenue",
        "currency",
    ])?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let int = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let time = |v: Option<Timestamp>| v.map(|v| v.to_string()).unwrap_or_default();
    for p in &view.people {
        w.write_record([
            p.contact_id.to_string(),
            text(&p.user_id),
            text(&p.email),
            int(p.enrollment_id),
            text(&p.node),
            time(p.entered_at),
            time(p.wake_at),
            int(p.message_id),
            text(&p.channel),
            text(&p.status),
            time(p.sent_at),
            time(p.human_opened_at),
            time(p.human_clicked_at),
            time(p.unsubscribed_at),
            time(p.complained_at),
            time(p.converted_at),
            p.revenue.map(|r| r.to_string()).unwrap_or_default(),
            text(&p.currency),
        ])?;
    }
    finish(w)
}

/// A CSV answer, offered as a file named after `name`.
fn csv_response(body: String, name: &str) -> Response {
    let disposition = format!(
        "attachment; filename=\"{}.csv\"",
        name.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
            "_"
        )
    );
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// The nodes of `variant` (`node:variant`, or a variant name only one experiment has).
fn variant_scope(document: &JourneyDocument, variant: &str) -> Option<Vec<NodeInfo>> {
    if let Some((node, name)) = variant.split_once(':') {
        return report::variant_nodes(document, node, name);
    }
    let mut found = document
        .nodes
        .iter()
        .filter_map(|n| report::variant_nodes(document, &n.id, variant));
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Whether the client asked for CSV (`Accept: text/csv`, preferred over JSON).
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .find(|m| *m == "text/csv" || *m == "application/json")
        == Some("text/csv")
}

/// The count and rate columns of a CSV row, in order.
const CSV_COLUMNS: &[&str] = &[
    "entered",
    "sent",
    "delivered",
    "bounced",
    "failed",
    "suppressed",
    "deferred",
    "opened",
    "clicked",
    "human_opened",
    "human_clicked",
    "unsubscribed",
    "complained",
    "converted",
    "revenue",
    "delivery_rate",
    "open_rate",
    "click_rate",
    "click_to_open_rate",
    "conversion_rate",
    "unsubscribe_rate",
];

fn csv_cells(counts: &report::Counts, rates: &report::Rates) -> Vec<String> {
    let rate = |r: Option<f64>| r.map(|r| format!("{r:.6}")).unwrap_or_default();
    let c = counts;
    vec![
        c.entered.to_string(),
        c.sent.to_string(),
        c.delivered.to_string(),
        c.bounced.to_string(),
        c.failed.to_string(),
        c.suppressed.to_string(),
        c.deferred.to_string(),
        c.opened.to_string(),
        c.clicked.to_string(),
        c.human_opened.to_string(),
        c.human_clicked.to_string(),
        c.unsubscribed.to_string(),
        c.complained.to_string(),
        c.converted.to_string(),
        format!("{:.2}", c.revenue),
        rate(rates.delivery_rate),
        rate(rates.open_rate),
        rate(rates.click_rate),
        rate(rates.click_to_open_rate),
        rate(rates.conversion_rate),
        rate(rates.unsubscribe_rate),
    ]
}

/// One row per time bucket, of a journey's or a broadcast's report.
fn series_csv(series: &[report::Point]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["bucket_start"];
    header.extend_from_slice(CSV_COLUMNS);
    w.write_record(&header)?;
    for p in series {
        let mut row = vec![p.start.to_string()];
        row.extend(csv_cells(&p.counts, &p.rates));
        w.write_record(&row)?;
    }
    finish(w)
}

fn nodes_csv(view: &JourneyReport) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["node", "kind", "channel"];
    header.extend_from_slice(CSV_COLUMNS);
    header.push("outputs");
    w.write_record(&header)?;
    for n in &view.report.nodes {
        let mut row = vec![
            n.node.clone(),
            n.kind.clone(),
            n.channel.clone().unwrap_or_default(),
        ];
        row.extend(csv_cells(&n.summary.counts, &n.summary.rates));
        // `yes=12 no=3`: who left by which output.
        let outputs: Vec<String> = n.outputs.iter().map(|(o, c)| format!("{o}={c}")).collect();
        row.push(outputs.join(" "));
        w.write_record(&row)?;
    }
    finish(w)
}

fn finish(w: csv::Writer<Vec<u8>>) -> Result<String, csv::Error> {
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_at_the_edge() {
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let q = |f: fn(&mut ReportQuery)| {
            let mut q = ReportQuery::default();
            f(&mut q);
            asked(&q, now)
        };
        let field = |r: ApiResult<Asked>| r.err().and_then(|e| e.field).unwrap_or_default();
        assert_eq!(field(q(|q| q.bucket = Some("month".into()))), "bucket");
        assert_eq!(field(q(|q| q.tz = Some("Mars/Olympus".into()))), "tz");
        assert_eq!(field(q(|q| q.rows = Some("all".into()))), "rows");
        assert_eq!(field(q(|q| q.from = Some("yesterday".into()))), "from");
        // 90 days of hours is over the bucket limit.
        let long = q(|q| {
            q.bucket = Some("hour".into());
            q.from = Some("90d".into());
        });
        assert_eq!(field(long), "from");
        let a = q(|q| q.bucket = Some("week".into())).unwrap();
        assert_eq!(a.range.to, now);
        assert_eq!(a.range.bucket, Bucket::Week);
    }

    #[test]
    fn csv_is_chosen_only_when_preferred_over_json() {
        let with = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            wants_csv(&h)
        };
        assert!(with("text/csv"));
        assert!(with("text/csv, application/json;q=0.5"));
        assert!(!with("application/json, text/csv"));
        assert!(!with("*/*"));
        assert!(!wants_csv(&HeaderMap::new()));
    }
}
