//! `GET /v1/events`: the events accepted in a period, in the order they came in, page by page.
//! What a replay (`waymark simulate --replay`) reads to run a draft on a past month, and an
//! export of what came in.

use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use waymark_store::StoredEvent;

use super::error::{ApiError, ApiResult};
use super::manage::{blocking, next_page, page_limit, time_or_ago};
use super::{AppState, QueryParams};

/// `GET /v1/events`: events received in `[since, until)`, oldest first.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EventSearch {
    /// Received at or after this time: RFC 3339, or a duration before now (`30d`).
    #[schemars(length(min = 1, max = 64))]
    pub since: String,
    /// Received before this time (RFC 3339, or a duration before now); default: no bound.
    #[schemars(length(min = 1, max = 64))]
    pub until: Option<String>,
    /// How many to list, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
    /// List those after this `seq` (the previous page's `next_after`).
    pub after: Option<i64>,
}

/// One accepted event as it was stored.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventRow {
    /// Its place in the order events came in.
    pub seq: i64,
    /// The client's `messageId` (or the one Waymark gave it): unique.
    pub message_id: String,
    /// `track`, `identify`, `page`, `screen`, `group` or `alias`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The event's name (`track`); `Identify`, `Page Viewed`, `Screen Viewed`, `Group` or
    /// `Alias` for the other types.
    pub event: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// `alias` only: the id merged into `user_id`.
    pub previous_id: Option<String>,
    /// The contact it was applied to, once processed. Events Waymark recorded itself (a list
    /// or segment joined, a journey entered) have only this, no user or anonymous id.
    pub contact_id: Option<i64>,
    /// Track properties, or identify traits.
    pub properties: Map<String, Value>,
    /// When it happened, as the client said.
    pub timestamp: jiff::Timestamp,
    /// When Waymark accepted it (what `since` and `until` are about).
    pub received_at: jiff::Timestamp,
}

impl From<StoredEvent> for EventRow {
    fn from(e: StoredEvent) -> Self {
        EventRow {
            seq: e.seq,
            message_id: e.event.message_id,
            kind: e.event.kind.as_str(),
            event: e.event.name,
            user_id: e.event.user_id,
            anonymous_id: e.event.anonymous_id,
            previous_id: e.event.previous_id,
            contact_id: e.contact_id,
            properties: e.event.properties,
            timestamp: e.event.timestamp,
            received_at: e.event.received_at,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EventsPage {
    pub events: Vec<EventRow>,
    /// `after` of the next page when this one is full (there may be more); absent at the end.
    pub next_after: Option<i64>,
}

pub async fn events(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<EventSearch>,
) -> ApiResult<Json<EventsPage>> {
    let now = state.engine.clock().now();
    let limit = page_limit(q.limit)?;
    let since = time_or_ago("since", q.since.trim(), now)?;
    let until = match q.until.as_deref().map(str::trim) {
        Some(raw) => time_or_ago("until", raw, now)?,
        None => jiff::Timestamp::MAX,
    };
    if until <= since {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "until",
            "must be later than `since`",
        ));
    }
    let after = q.after.unwrap_or(0);
    let events: Vec<EventRow> = blocking(&state, move |s| {
        s.events_received(since, until, after, limit)
    })
    .await?
    .into_iter()
    .map(EventRow::from)
    .collect();
    let next_after = next_page(&events, limit, |e| e.seq);
    Ok(Json(EventsPage { events, next_after }))
}
