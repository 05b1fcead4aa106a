//! A segment's size over time: `GET /v1/segments/{id}/history`. The store keeps, per segment
//! and UTC hour, how many contacts entered and left (see `waymark_store::concerns::audiences`);
//! this module turns a range into buckets (hours, or days beginning at midnight in a time
//! zone) and the stored hours into one point per bucket: members at its end, entered, left.
//! Parsing and bucketing are pure and tested here; the handler reads the store once.

use axum::Json;
use axum::extract::{Path, State};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use waymark_store::SegmentHistory;

use super::error::{ApiError, ApiResult};
use super::manage::blocking;
use super::{AppState, QueryParams};

/// The most buckets one answer holds: 1,000 hours is six weeks, 1,000 days almost three years.
pub const MAX_POINTS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryBucket {
    Hour,
    #[default]
    Day,
}

/// `GET /v1/segments/{id}/history` parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct HistoryQuery {
    /// The start of the range: an RFC 3339 timestamp, a date (`2025-03-01`: its start in
    /// `tz`), or a duration before now (`29d`: the day 29 days ago, so 30 days up to today).
    /// The first bucket is the one it falls in. Default: 30 days before `to` with day buckets,
    /// 48 hours with hour buckets.
    pub from: Option<String>,
    /// The end of the range (exclusive), in the same forms. Default: now.
    pub to: Option<String>,
    /// `day` (the default; days begin at midnight in `tz`) or `hour`.
    pub bucket: Option<HistoryBucket>,
    /// The IANA time zone of dates and of the days' midnights (default `UTC`).
    pub tz: Option<String>,
}

/// One bucket of a segment's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct HistoryPoint {
    /// The start of the bucket.
    pub time: Timestamp,
    /// Members at the end of the bucket (for the bucket holding now: members now).
    pub members: i64,
    /// Contacts that entered the segment in the bucket.
    pub entered: i64,
    /// Contacts that left it in the bucket (an erased contact leaves; two merged members
    /// become one).
    pub left: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SegmentHistoryView {
    pub segment_id: String,
    pub bucket: HistoryBucket,
    pub tz: String,
    /// The start of the first bucket.
    pub from: Timestamp,
    /// The end of the last bucket.
    pub to: Timestamp,
    /// One per bucket, in time order, buckets without changes included.
    pub points: Vec<HistoryPoint>,
}

/// A checked request: the bucket edges (one more than the buckets) and how they were made.
#[derive(Debug, PartialEq)]
pub struct HistoryRange {
    pub bucket: HistoryBucket,
    pub tz: String,
    pub edges: Vec<Timestamp>,
}

impl HistoryRange {
    /// Reads the parameters at the edge, with `now` for the defaults.
    pub fn parse(q: HistoryQuery, now: Timestamp) -> ApiResult<HistoryRange> {
        let bucket = q.bucket.unwrap_or_default();
        let tz_name = q.tz.as_deref().map(str::trim).unwrap_or("UTC").to_string();
        let tz = TimeZone::get(&tz_name).map_err(|_| {
            ApiError::invalid(
                "invalid_parameter",
                "tz",
                format!("`{tz_name}` is not a known IANA time zone (such as Europe/Rome or UTC)"),
            )
        })?;
        let to = match &q.to {
            Some(raw) => time("to", raw, &tz, now)?,
            None => now,
        };
        let from = match &q.from {
            Some(raw) => time("from", raw, &tz, now)?,
            None => {
                let back = match bucket {
                    HistoryBucket::Day => SignedDuration::from_hours(30 * 24),
                    HistoryBucket::Hour => SignedDuration::from_hours(48),
                };
                to.saturating_sub(back).unwrap_or(Timestamp::MIN)
            }
        };
        if to <= from {
            return Err(ApiError::invalid(
                "invalid_parameter",
                "to",
                format!("must be later than `from` ({from})"),
            ));
        }
        let edges = edges(from, to, bucket, &tz).map_err(|e| match e {
            EdgeError::TooMany => ApiError::invalid(
                "invalid_parameter",
                "from",
                format!(
                    "the range from {from} to {to} holds more than {MAX_POINTS} {} buckets: \
                     give a shorter range{}",
                    match bucket {
                        HistoryBucket::Day => "day",
                        HistoryBucket::Hour => "hour",
                    },
                    match bucket {
                        HistoryBucket::Day => "",
                        HistoryBucket::Hour => ", or bucket=day",
                    }
                ),
            ),
            EdgeError::OutOfRange => ApiError::invalid(
                "invalid_parameter",
                "from",
                "the range reaches past the times this server can count days in",
            ),
        })?;
        Ok(HistoryRange {
            bucket,
            tz: tz_name,
            edges,
        })
    }
}

/// A timestamp, a date's start in `tz`, or a duration before `now` (as the UI asks for the
/// last days of the server's clock, which may be simulated, without reading it first).
pub(super) fn time(field: &str, raw: &str, tz: &TimeZone, now: Timestamp) -> ApiResult<Timestamp> {
    let raw = raw.trim();
    if let Ok(at) = raw.parse::<Timestamp>() {
        return Ok(at);
    }
    if let Ok(ago) = waymark_core::Duration::parse(raw) {
        return Ok(now
            .saturating_sub(SignedDuration::from_secs(ago.seconds()))
            .unwrap_or(Timestamp::MIN));
    }
    raw.parse::<Date>()
        .ok()
        .and_then(|d| d.to_zoned(tz.clone()).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_parameter",
                field,
                format!(
                    "`{raw}` is neither an RFC 3339 timestamp (2025-03-01T09:00:00Z), a date \
                     (2025-03-01) nor a duration before now (`29d`, `6h`)"
                ),
            )
        })
}

#[derive(Debug, PartialEq)]
enum EdgeError {
    TooMany,
    OutOfRange,
}

const HOUR_SECONDS: i64 = 3600;

/// The edges of the buckets covering `from..to`: the start of the bucket `from` falls in,
/// then each next start until one at or past `to`. Hours are UTC hours; days begin at
/// midnight in `tz` (23 or 25 hours long across a daylight-saving change; in a zone whose
/// offset is not whole hours, a day holds the stored hours that begin in it).
fn edges(
    from: Timestamp,
    to: Timestamp,
    bucket: HistoryBucket,
    tz: &TimeZone,
) -> Result<Vec<Timestamp>, EdgeError> {
    match bucket {
        HistoryBucket::Hour => {
            let first = from.as_second().div_euclid(HOUR_SECONDS);
            let last = (to.as_second() - 1).div_euclid(HOUR_SECONDS);
            let n = last - first + 1;
            if n > MAX_POINTS as i64 {
                return Err(EdgeError::TooMany);
            }
            (first..=last + 1)
                .map(|h| {
                    Timestamp::from_second(h * HOUR_SECONDS).map_err(|_| EdgeError::OutOfRange)
                })
                .collect()
        }
        HistoryBucket::Day => {
            let mut day = from
                .to_zoned(tz.clone())
                .start_of_day()
                .map_err(|_| EdgeError::OutOfRange)?;
            let mut out = vec![day.timestamp()];
            while day.timestamp() < to {
                if out.len() > MAX_POINTS {
                    return Err(EdgeError::TooMany);
                }
                day = day
                    .tomorrow()
                    .and_then(|d| d.start_of_day())
                    .map_err(|_| EdgeError::OutOfRange)?;
                out.push(day.timestamp());
            }
            Ok(out)
        }
    }
}

/// One point per bucket between `edges`, from the stored hours (in order) and the members
/// before the first edge.
pub fn points(edges: &[Timestamp], history: &SegmentHistory) -> Vec<HistoryPoint> {
    let mut members = history.members_before;
    let mut hours = history.hours.iter().peekable();
    edges
        .windows(2)
        .map(|w| {
            let (start, end) = (w[0], w[1]);
            let (mut entered, mut left) = (0, 0);
            while let Some(h) = hours.next_if(|h| h.hour < end) {
                if h.hour >= start {
                    entered += h.entered;
                    left += h.left;
                }
            }
            members += entered - left;
            HistoryPoint {
                time: start,
                members,
                entered,
                left,
            }
        })
        .collect()
}

/// `GET /v1/segments/{id}/history?from=&to=&bucket=hour|day&tz=`
pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> ApiResult<Json<SegmentHistoryView>> {
    let now = state.engine.clock().now();
    let range = HistoryRange::parse(query, now)?;
    let (from, to) = (range.edges[0], range.edges[range.edges.len() - 1]);
    let segment = id.clone();
    let history = blocking(&state, move |s| s.segment_history(&segment, from, to)).await?;
    Ok(Json(SegmentHistoryView {
        segment_id: id,
        bucket: range.bucket,
        tz: range.tz,
        from,
        to,
        points: points(&range.edges, &history),
    }))
}

#[cfg(test)]
mod tests {
    use waymark_store::SegmentHour;

    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn query(
        from: Option<&str>,
        to: Option<&str>,
        bucket: Option<HistoryBucket>,
        tz: Option<&str>,
    ) -> HistoryQuery {
        HistoryQuery {
            from: from.map(String::from),
            to: to.map(String::from),
            bucket,
            tz: tz.map(String::from),
        }
    }

    fn field_of(e: ApiError) -> (String, String) {
        (e.field.unwrap_or_default(), e.code.to_string())
    }

    #[test]
    fn days_begin_at_midnight_in_the_zone_across_a_daylight_saving_change() {
        let r = HistoryRange::parse(
            query(
                Some("2025-03-29"),
                Some("2025-04-01"),
                None,
                Some("Europe/Rome"),
            ),
            t("2025-06-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            r.edges,
            [
                t("2025-03-28T23:00:00Z"),
                t("2025-03-29T23:00:00Z"),
                // The night clocks went forward: a day of 23 hours.
                t("2025-03-30T22:00:00Z"),
                t("2025-03-31T22:00:00Z"),
            ]
        );
    }

    #[test]
    fn defaults_are_the_last_30_days_in_utc_up_to_now() {
        let now = t("2025-06-10T12:30:00Z");
        let r = HistoryRange::parse(HistoryQuery::default(), now).unwrap();
        assert_eq!((r.bucket, r.tz.as_str()), (HistoryBucket::Day, "UTC"));
        assert_eq!(r.edges.len(), 32, "31 days: today is partly in the range");
        assert_eq!(r.edges[0], t("2025-05-11T00:00:00Z"));
        assert_eq!(r.edges[31], t("2025-06-11T00:00:00Z"));
        let hours =
            HistoryRange::parse(query(None, None, Some(HistoryBucket::Hour), None), now).unwrap();
        assert_eq!(hours.edges.len(), 50);
        assert_eq!(hours.edges[0], t("2025-06-08T12:00:00Z"));
        // 29 days before now: 30 days up to today, in the zone asked for.
        let days =
            HistoryRange::parse(query(Some("29d"), None, None, Some("Asia/Tokyo")), now).unwrap();
        assert_eq!(days.edges.len(), 31);
        assert_eq!(days.edges[0], t("2025-05-11T15:00:00Z"));
        assert_eq!(days.edges[30], t("2025-06-10T15:00:00Z"));
    }

    #[test]
    fn bad_parameters_are_named() {
        let now = t("2025-06-10T12:30:00Z");
        let err = |q| field_of(HistoryRange::parse(q, now).unwrap_err());
        let invalid = |f: &str| (f.to_string(), "invalid_parameter".to_string());
        assert_eq!(
            err(query(None, None, None, Some("Mars/Olympus"))),
            invalid("tz")
        );
        assert_eq!(
            err(query(Some("yesterday"), None, None, None)),
            invalid("from")
        );
        assert_eq!(
            err(query(None, Some("2025-13-01"), None, None)),
            invalid("to")
        );
        assert_eq!(
            err(query(Some("2025-06-10"), Some("2025-06-01"), None, None)),
            invalid("to"),
            "to before from"
        );
        assert_eq!(
            err(query(Some("2020-01-01"), None, None, None)),
            invalid("from"),
            "more than 1000 days"
        );
        assert_eq!(
            err(query(
                Some("2025-01-01"),
                None,
                Some(HistoryBucket::Hour),
                None
            )),
            invalid("from"),
            "more than 1000 hours"
        );
        let most = HistoryRange::parse(
            query(
                Some("2025-01-01T00:00:00Z"),
                Some("2025-02-11T16:00:00Z"),
                Some(HistoryBucket::Hour),
                None,
            ),
            now,
        )
        .unwrap();
        assert_eq!(most.edges.len(), MAX_POINTS + 1);
        assert!(
            HistoryRange::parse(
                query(Some("-009999-01-01T00:00:00Z"), None, None, None),
                now
            )
            .is_err()
        );
    }

    #[test]
    fn points_carry_the_members_through_buckets_without_changes() {
        let edges = [
            t("2025-06-01T00:00:00Z"),
            t("2025-06-02T00:00:00Z"),
            t("2025-06-03T00:00:00Z"),
            t("2025-06-04T00:00:00Z"),
        ];
        let hour = |at: &str, entered, left| SegmentHour {
            hour: t(at),
            entered,
            left,
        };
        let history = SegmentHistory {
            members_before: 10,
            hours: vec![
                hour("2025-06-01T03:00:00Z", 5, 1),
                hour("2025-06-01T23:00:00Z", 1, 0),
                hour("2025-06-03T00:00:00Z", 0, 4),
            ],
        };
        let members: Vec<(i64, i64, i64)> = points(&edges, &history)
            .iter()
            .map(|p| (p.members, p.entered, p.left))
            .collect();
        assert_eq!(members, [(15, 6, 1), (15, 0, 0), (11, 0, 4)]);
    }
}
