//! Every operation of the HTTP API in one table: its method and path, who may call it, its
//! handler, and its contract (the request body and query types, the response type of each
//! status, the error statuses). The router is built from this table (`super::router`) and the
//! OpenAPI document is generated from it (`super::openapi`), from the same Rust types the
//! handlers take and return, so the document cannot name a route, a method or a body the
//! server does not have.
//!
//! Must never: hold behaviour. A handler lives beside the other handlers of its resource; this
//! table only says where it is mounted and what it answers.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use super::{
    broadcasts, consent, event_log, ingest, journeys, manage, privacy, reports, segment_history,
    segments, simulate, tracking, webhooks_in,
};

/// Writes the schema of a type into a generator (shared definitions go to the generator).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema + ?Sized>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A journey document: the JSON Schema served at `/v1/schema/journey.json`, which the
/// document carries as the `Journey` component (`super::openapi::document`).
fn journey_document(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({ "$ref": "#/components/schemas/Journey" })
}

/// Who may call an operation, and how that is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The admin token, or the web app's session (with its CSRF token when the method changes
    /// something): checked by the `admin_only` layer.
    Admin,
    /// The write key (the basic-auth user name, Segment's convention), checked by the handler.
    WriteKey,
    /// The inbound webhook secret, checked by the handler.
    Inbound,
    /// Anybody without a key, rate-limited per client address (the `public_limits` layer).
    Public,
    /// Like `Public` for a form post; a JSON request needs the write key (checked by the
    /// handler).
    PublicOrWriteKey,
    /// Anybody.
    Open,
    /// Anybody; the answer depends on whether the request is signed in.
    Optional,
}

/// One media type of a request or response body, and its schema (none: not JSON).
#[derive(Clone, Copy)]
pub struct Content {
    pub media_type: &'static str,
    pub schema: Option<SchemaFn>,
}

/// A success answer: its status, what it means and its body (none: empty).
pub struct Reply {
    pub status: u16,
    pub description: &'static str,
    pub content: Vec<Content>,
    /// Response headers worth naming (`Location`, `Set-Cookie`).
    pub headers: &'static [&'static str],
}

/// A path parameter with a type other than a string.
pub struct PathParam {
    pub name: &'static str,
    pub schema: SchemaFn,
}

pub struct Operation {
    pub method: Method,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub route: MethodRouter<AppState>,
    pub path_params: Vec<PathParam>,
    pub query: Option<SchemaFn>,
    /// The request body's media types; empty when the operation takes no body.
    pub body: Vec<Content>,
    pub body_required: bool,
    pub replies: Vec<Reply>,
    /// Error statuses the handler itself answers (an `Error` body). Those every operation of
    /// its kind can answer (401 without a key, 408/413 for a body, 429 on public pages, 503
    /// beyond the connection limit) are added by `openapi::document`.
    pub errors: Vec<u16>,
}

impl Operation {
    fn new<H, T>(method: Method, path: &'static str, handler: H) -> Operation
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a routable method");
        Operation {
            method,
            path,
            tag: "",
            summary: "",
            access: Access::Open,
            route: axum::routing::on(filter, handler),
            path_params: Vec::new(),
            query: None,
            body: Vec::new(),
            body_required: false,
            replies: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn about(mut self, access: Access, tag: &'static str, summary: &'static str) -> Self {
        self.access = access;
        self.tag = tag;
        self.summary = summary;
        self
    }

    /// A required JSON body read into `T` (`super::Body<T>`).
    fn body<T: JsonSchema>(mut self) -> Self {
        self.body.push(Content {
            media_type: "application/json",
            schema: Some(schema_of::<T>),
        });
        self.body_required = true;
        self
    }

    /// The body may also be sent as `media_type` (YAML, a form).
    fn body_also<T: JsonSchema>(mut self, media_type: &'static str) -> Self {
        self.body.push(Content {
            media_type,
            schema: Some(schema_of::<T>),
        });
        self
    }

    /// A body that may be left out.
    fn optional_body<T: JsonSchema>(self) -> Self {
        let mut op = self.body::<T>();
        op.body_required = false;
        op
    }

    /// A form (`application/x-www-form-urlencoded`) whose fields a provider chooses.
    fn form_body(mut self) -> Self {
        self.body.push(Content {
            media_type: "application/x-www-form-urlencoded",
            schema: Some(schema_of::<std::collections::BTreeMap<String, String>>),
        });
        self.body_required = true;
        self
    }

    fn journey_body(mut self) -> Self {
        for media_type in ["application/json", "application/yaml"] {
            self.body.push(Content {
                media_type,
                schema: Some(journey_document),
            });
        }
        self.body_required = true;
        self
    }

    fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(schema_of::<T>);
        self
    }

    fn path_param<T: JsonSchema>(mut self, name: &'static str) -> Self {
        self.path_params.push(PathParam {
            name,
            schema: schema_of::<T>,
        });
        self
    }

    /// Answers `status` with a JSON `T`.
    fn json<T: JsonSchema>(mut self, status: u16, description: &'static str) -> Self {
        self.replies.push(Reply {
            status,
            description,
            content: vec![Content {
                media_type: "application/json",
                schema: Some(schema_of::<T>),
            }],
            headers: &[],
        });
        self
    }

    fn ok<T: JsonSchema>(self) -> Self {
        self.json::<T>(200, "Success")
    }

    /// Answers `status` with a body that is not JSON (or none, with `media_type` empty).
    fn reply(
        mut self,
        status: u16,
        media_type: &'static str,
        description: &'static str,
        headers: &'static [&'static str],
    ) -> Self {
        let content = if media_type.is_empty() {
            Vec::new()
        } else {
            vec![Content {
                media_type,
                schema: None,
            }]
        };
        self.replies.push(Reply {
            status,
            description,
            content,
            headers,
        });
        self
    }

    /// The last reply may also come as `media_type` (asked for with `Accept`).
    fn or_as(mut self, media_type: &'static str) -> Self {
        if let Some(reply) = self.replies.last_mut() {
            reply.content.push(Content {
                media_type,
                schema: None,
            });
        }
        self
    }

    fn no_content(self, description: &'static str) -> Self {
        self.reply(204, "", description, &[])
    }

    fn errors(mut self, statuses: &[u16]) -> Self {
        self.errors.extend_from_slice(statuses);
        self
    }
}

fn get<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Operation {
    Operation::new(Method::GET, path, handler)
}
fn post<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Operation {
    Operation::new(Method::POST, path, handler)
}
fn put<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Operation {
    Operation::new(Method::PUT, path, handler)
}
fn delete<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Operation {
    Operation::new(Method::DELETE, path, handler)
}

/// Every operation the server answers, in the order the document lists them.
pub fn all() -> Vec<Operation> {
    use Access::*;
    let mut ops = Vec::new();
    ops.extend(tracking_calls());
    ops.extend([
        // ---- contacts
        get("/v1/contacts", manage::find_contacts)
            .about(Admin, "Contacts", "Browse and find contacts: by an id, email, phone, a part of one or of a name (q), segment, list, trait or consent; sorted and paged")
            .query::<manage::ContactSearch>()
            .ok::<manage::ContactsFound>()
            .errors(&[400]),
        post("/v1/contacts/import", manage::import_contacts)
            .about(Admin, "Contacts", "Import contacts (as identify calls); returns rejected rows")
            .body::<manage::ContactImport>()
            .ok::<manage::ImportResult>()
            .errors(&[400]),
        get("/v1/contacts/{id}", manage::get_contact)
            .about(Admin, "Contacts", "A contact with traits, lists and enrollments")
            .path_param::<i64>("id")
            .ok::<waymark_store::ContactDetail>()
            .errors(&[400, 404]),
        get("/v1/contacts/{id}/timeline", manage::timeline)
            .about(Admin, "Contacts", "Events, journey steps and messages, oldest first")
            .path_param::<i64>("id")
            .query::<manage::TimelineQuery>()
            .ok::<manage::Timeline>()
            .errors(&[400, 404]),
        get("/v1/events", event_log::events)
            .about(Admin, "Contacts", "The events accepted in a period (`since`, `until`: received then), in the order they came in, page by page (`after` the previous page's `next_after`): what a replay reads, an export of what came in")
            .query::<event_log::EventSearch>()
            .ok::<event_log::EventsPage>()
            .errors(&[400]),
        get("/v1/contacts/{id}/export", privacy::export_contact)
            .about(Admin, "Contacts", "Everything held about a contact as one JSON document (data-protection access request), streamed; audited")
            .path_param::<i64>("id")
            .ok::<Value>()
            .errors(&[400, 404]),
        delete("/v1/contacts/{id}", privacy::erase_contact)
            .about(Admin, "Contacts", "Erase a contact and everything personal about it; its addresses stay suppressed as keyed hashes; audited")
            .path_param::<i64>("id")
            .ok::<privacy::Erased>()
            .errors(&[400, 404]),
        get("/v1/audit", privacy::audit)
            .about(Admin, "Audit", "Audit log of contact exports and erasures: who, when, what, row counts (`contact_id`, `action`, `limit`, `after`)")
            .query::<privacy::AuditSearch>()
            .ok::<privacy::AuditLog>()
            .errors(&[400]),
        // ---- consent (admin)
        get("/v1/contacts/{id}/subscriptions", consent::list_subscriptions)
            .about(Admin, "Consent", "A contact's subscriptions by channel and topic")
            .path_param::<i64>("id")
            .ok::<consent::Subscriptions>()
            .errors(&[400, 404]),
        put("/v1/contacts/{id}/subscriptions/{channel}/{topic}", consent::put_subscription)
            .about(Admin, "Consent", "Set a subscription: `{status: subscribed|pending|unsubscribed}` (topic `*`: all marketing)")
            .path_param::<i64>("id")
            .body::<consent::SubscriptionChange>()
            .ok::<consent::SubscriptionChanged>()
            .errors(&[400, 404]),
        get("/v1/topics", consent::topics)
            .about(Admin, "Consent", "Subscription topics declared by templates")
            .ok::<consent::Topics>(),
        // ---- lists
        get("/v1/lists", manage::lists)
            .about(Admin, "Lists", "All lists with member counts")
            .ok::<manage::Lists>(),
        post("/v1/lists", manage::create_list)
            .about(Admin, "Lists", "Create a list `{name}`")
            .body::<manage::NewList>()
            .json::<waymark_store::ListSummary>(201, "The list")
            .errors(&[400, 409]),
        get("/v1/lists/{name}/members", manage::list_members)
            .about(Admin, "Lists", "Members of a list")
            .query::<manage::Page>()
            .ok::<manage::ContactsPage>()
            .errors(&[400, 404]),
        post("/v1/lists/{name}/members", manage::add_list_members)
            .about(Admin, "Lists", "Add contacts `{contact_ids: []}`")
            .body::<manage::Members>()
            .ok::<manage::MembersChanged>()
            .errors(&[400, 404]),
        delete("/v1/lists/{name}/members", manage::remove_list_members)
            .about(Admin, "Lists", "Remove contacts `{contact_ids: []}`")
            .body::<manage::Members>()
            .ok::<manage::MembersChanged>()
            .errors(&[400, 404]),
        // ---- templates
        get("/v1/templates", manage::templates)
            .about(Admin, "Templates", "All message templates")
            .ok::<manage::Templates>(),
        post("/v1/templates", manage::create_template)
            .about(Admin, "Templates", "Create a template (Liquid and MJML are checked on save)")
            .body::<waymark_core::journey::TemplateDefinition>()
            .json::<waymark_store::StoredTemplate>(201, "The template")
            .errors(&[400, 409]),
        get("/v1/templates/{id}", manage::get_template)
            .about(Admin, "Templates", "One template")
            .ok::<waymark_store::StoredTemplate>()
            .errors(&[404]),
        put("/v1/templates/{id}", manage::put_template)
            .about(Admin, "Templates", "Create or replace a template")
            .body::<waymark_core::journey::TemplateDefinition>()
            .json::<waymark_store::StoredTemplate>(200, "The template, replaced")
            .json::<waymark_store::StoredTemplate>(201, "The template, created")
            .errors(&[400]),
        get("/v1/templates/{id}/versions", manage::template_versions)
            .about(
                Admin,
                "Templates",
                "The template's versions, newest first, each with the journey versions that send it (`pinned_by`)",
            )
            .ok::<manage::TemplateVersions>()
            .errors(&[404]),
        get("/v1/templates/{id}/versions/{version}", manage::template_version)
            .about(
                Admin,
                "Templates",
                "One version of a template, also of a deleted one",
            )
            .path_param::<i64>("version")
            .ok::<waymark_store::StoredTemplate>()
            .errors(&[400, 404]),
        delete("/v1/templates/{id}", manage::delete_template)
            .about(Admin, "Templates", "Delete a template")
            .no_content("Deleted")
            .errors(&[404]),
        post("/v1/templates/{id}/preview", manage::preview_template)
            .about(Admin, "Templates", "Render with `{contact_id}` or sample `{contact, event}`: subject, html, text (and `sms`: encoding and segments)")
            .body::<manage::Sample>()
            .ok::<manage::Preview>()
            .errors(&[400, 404]),
        post("/v1/templates/{id}/test-send", manage::test_send_template)
            .about(Admin, "Templates", "Render like the preview and send to `{to}` through the outbox")
            .body::<manage::TestSend>()
            .json::<manage::TestSent>(202, "Queued")
            .errors(&[400, 404]),
        // ---- messages
        get("/v1/messages", manage::messages)
            .about(Admin, "Messages", "Messages, filtered by user_id, contact_id, journey_id, broadcast_id, channel, status")
            .query::<manage::MessageSearch>()
            .ok::<manage::Messages>()
            .errors(&[400]),
        post("/v1/messages/requeue", manage::requeue_messages)
            .about(Admin, "Messages", "Put the failed messages matching a filter back in the queue (same id and idempotency key); answers `{requeued}`")
            .body::<manage::Requeue>()
            .ok::<manage::Requeued>()
            .errors(&[400]),
        get("/v1/outbox", manage::outbox)
            .about(Admin, "Messages", "Each channel's queue: messages queued, the oldest one's age, deliveries in flight")
            .ok::<manage::Outbox>(),
        get("/v1/cluster", manage::cluster)
            .about(Admin, "Operations", "The processes sharing the engine's work on this database, the partitions each holds and since when, and their heartbeat ages")
            .ok::<waymark_store::ClusterStatus>(),
        // ---- suppression
        get("/v1/suppressions", webhooks_in::list_suppressions)
            .about(Admin, "Suppression", "The suppression list, filtered by `channel` and `address`")
            .query::<webhooks_in::SuppressionSearch>()
            .ok::<webhooks_in::Suppressions>()
            .errors(&[400]),
        post("/v1/suppressions", webhooks_in::add_suppression)
            .about(Admin, "Suppression", "Suppress an address: `{channel, address, reason?}` (reason defaults to `manual`)")
            .body::<webhooks_in::NewSuppression>()
            .json::<waymark_store::Suppression>(200, "Already suppressed")
            .json::<waymark_store::Suppression>(201, "Suppressed")
            .errors(&[400]),
        delete("/v1/suppressions/{channel}/{address}", webhooks_in::delete_suppression)
            .about(Admin, "Suppression", "Take an address off the suppression list")
            .no_content("No longer suppressed")
            .errors(&[400, 404]),
        // ---- clock
        get("/v1/clock", manage::clock)
            .about(Admin, "Clock", "The engine's current time and whether it is simulated")
            .ok::<manage::Clock>(),
        post("/v1/clock/advance", manage::advance_clock)
            .about(Admin, "Clock", "Advance a simulated clock `{seconds}`; returns when all due work is done")
            .body::<manage::Advance>()
            .ok::<manage::Clock>()
            .errors(&[400, 409]),
        // ---- journeys
        get("/v1/journeys", journeys::list)
            .about(Admin, "Journeys", "All journeys with status, version and counts")
            .ok::<journeys::Journeys>(),
        post("/v1/journeys", journeys::create)
            .about(Admin, "Journeys", "Create a journey draft (JSON or YAML)")
            .journey_body()
            .json::<journeys::Draft>(201, "The draft, with its validation errors")
            .errors(&[400, 409]),
        post("/v1/journeys/validate", journeys::validate)
            .about(Admin, "Journeys", "Validate a journey document; every error with its node")
            .journey_body()
            .ok::<journeys::Validation>()
            .errors(&[400]),
        get("/v1/journeys/{id}", journeys::get)
            .about(Admin, "Journeys", "A journey with its draft and the draft's validation errors")
            .ok::<journeys::Draft>()
            .errors(&[404]),
        put("/v1/journeys/{id}", journeys::put)
            .about(Admin, "Journeys", "Create or replace a journey's draft")
            .journey_body()
            .json::<journeys::Draft>(200, "The draft, replaced, with its validation errors")
            .json::<journeys::Draft>(201, "The draft, created, with its validation errors")
            // An archived journey's draft cannot change.
            .errors(&[400, 409]),
        post("/v1/journeys/{id}/publish", journeys::publish)
            .about(Admin, "Journeys", "Publish the draft as a new immutable version; a draft identical to the live version makes none (`unchanged: true`)")
            .optional_body::<journeys::PublishOptions>()
            .ok::<journeys::Published>()
            .errors(&[400, 404, 409]),
        post("/v1/journeys/{id}/pause", journeys::pause)
            .about(Admin, "Journeys", "Stop new entries and hold enrollments in place")
            .ok::<waymark_store::JourneyRow>()
            .errors(&[404, 409]),
        post("/v1/journeys/{id}/resume", journeys::resume)
            .about(Admin, "Journeys", "Resume a paused journey")
            .ok::<waymark_store::JourneyRow>()
            .errors(&[404, 409]),
        post("/v1/journeys/{id}/archive", journeys::archive)
            .about(Admin, "Journeys", "End the journey; active enrollments exit")
            .ok::<waymark_store::JourneyRow>()
            .errors(&[404, 409]),
        get("/v1/journeys/{id}/versions", journeys::versions)
            .about(Admin, "Journeys", "Published versions")
            .ok::<journeys::Versions>()
            .errors(&[404]),
        get("/v1/journeys/{id}/versions/{version}", journeys::version)
            .about(Admin, "Journeys", "One published version")
            .path_param::<i64>("version")
            .ok::<waymark_store::JourneyVersion>()
            .errors(&[400, 404]),
        get("/v1/journeys/{id}/stats", journeys::stats)
            .about(Admin, "Journeys", "The journey's totals and per-node counts, of every version or of one (`?version=`), and first/last activity")
            .query::<journeys::StatsQuery>()
            .ok::<waymark_store::JourneyStats>()
            .errors(&[400, 404]),
        get("/v1/journeys/{id}/report", reports::journey)
            .about(Admin, "Reports", "What the journey did and earned from `from` to `to` (default the last 30 days) in `hour`, `day` or `week` buckets of `tz`: entered, sent, delivered, bounced, opened, clicked (people's and all), unsubscribed, complained, converted, revenue, their rates and reaction times; in total, per bucket, per node and per channel, of one `version` or `node` or all. CSV with `Accept: text/csv` (`rows=series` or `nodes`)")
            .query::<reports::ReportQuery>()
            .ok::<reports::JourneyReport>()
            .or_as("text/csv")
            .errors(&[400, 404]),
        get("/v1/journeys/{id}/people", reports::people)
            .about(Admin, "Reports", "Who is behind the journey's numbers: contacts `waiting` at a node (until when), `messaged` by it (what became of each message; `status`, `channel`) or `converted` (credited to it), paged with `after`; CSV with `Accept: text/csv`")
            .query::<reports::PeopleParams>()
            .ok::<reports::People>()
            .or_as("text/csv")
            .errors(&[400, 404]),
        get("/v1/reports/overview", reports::overview)
            .about(Admin, "Reports", "Every journey's figures over the last `days` (default 30; or `from`/`to`): entered, sent, delivered, opened, clicked, converted, revenue and their rates, most sent first, with the totals; CSV with `Accept: text/csv`")
            .query::<reports::OverviewQuery>()
            .ok::<reports::Overview>()
            .or_as("text/csv")
            .errors(&[400]),
        post("/v1/journeys/{id}/enroll", journeys::enroll)
            .about(Admin, "Journeys", "Enroll a contact (`user_id` or `contact_id`) through the journey's `api` trigger, with a `payload`")
            .body::<journeys::Enroll>()
            .body_also::<journeys::Enroll>("application/yaml")
            .json::<journeys::Enrolled>(202, "The enrollment is requested")
            .errors(&[400, 404, 409]),
        post("/v1/journeys/{id}/simulate", simulate::simulate)
            .about(Admin, "Journeys", "Predict what the draft (or the live version, or one `version`) would do on a population (`contacts` synthetic ones, or a `segment`'s or `list`'s members, copied) over `days`, on a private simulated clock with a scratch store: the funnel per node, messages per channel and day, suppressions and why, conversions and revenue, the busiest hours, the assumptions used, and the chart as SVG. Nothing is sent and this server's data is untouched; one simulation at a time (`429 simulation_running`)")
            .optional_body::<simulate::SimulateRequest>()
            .ok::<simulate::Prediction>()
            .errors(&[400, 404, 429]),
        get("/v1/journeys/{id}/experiments", journeys::experiments)
            .about(Admin, "Journeys", "Experiment nodes: counts and conversion rates per variant, the test's verdict and the winner")
            .ok::<journeys::Experiments>()
            .errors(&[404]),
        // ---- segments
        get("/v1/segments", segments::list)
            .about(Admin, "Segments", "Segments with their condition (JSON and text forms), member counts and the journeys that use them")
            .ok::<segments::Segments>(),
        post("/v1/segments", segments::create)
            .about(Admin, "Segments", "Create a segment `{id, name, condition | text}`; every contact is evaluated at once")
            .body::<segments::SegmentRequest>()
            .json::<segments::SegmentView>(201, "The segment")
            .errors(&[400, 409]),
        post("/v1/segments/preview", segments::preview)
            .about(Admin, "Segments", "Count and sample the contacts a condition matches now, without saving it")
            .body::<segments::SegmentRequest>()
            .ok::<segments::SegmentPreview>()
            .errors(&[400]),
        get("/v1/segments/{id}", segments::get)
            .about(Admin, "Segments", "One segment")
            .ok::<segments::SegmentView>()
            .errors(&[404]),
        put("/v1/segments/{id}", segments::put)
            .about(Admin, "Segments", "Create or replace a segment; membership is re-evaluated")
            .body::<segments::SegmentRequest>()
            .json::<segments::SegmentView>(200, "The segment, replaced")
            .json::<segments::SegmentView>(201, "The segment, created")
            .errors(&[400]),
        delete("/v1/segments/{id}", segments::delete)
            .about(Admin, "Segments", "Delete a segment; refused (`segment_in_use`) while a journey's triggers use it")
            .no_content("Deleted")
            .errors(&[404, 409]),
        get("/v1/segments/{id}/members", segments::members)
            .about(Admin, "Segments", "Members of a segment (`limit`, `after`)")
            .query::<manage::Page>()
            .ok::<manage::ContactsPage>()
            .errors(&[400, 404]),
        get("/v1/segments/{id}/history", segment_history::history)
            .about(Admin, "Segments", "Members over time: per hour or day (`bucket`, days in `tz`) from `from` to `to` (default the last 30 days), members at each bucket's end, entered and left; at most 1000 buckets")
            .query::<segment_history::HistoryQuery>()
            .ok::<segment_history::SegmentHistoryView>()
            .errors(&[400, 404]),
        // ---- broadcasts
        get("/v1/broadcasts", broadcasts::list)
            .about(Admin, "Broadcasts", "Broadcasts, newest first, with their progress")
            .ok::<broadcasts::BroadcastList>(),
        post("/v1/broadcasts", broadcasts::create)
            .about(Admin, "Broadcasts", "Save a draft broadcast (its id is made from its name): one email or SMS to a segment or list, minus exclusions")
            .body::<waymark_core::broadcast::BroadcastDocument>()
            .json::<broadcasts::BroadcastView>(201, "The draft")
            .errors(&[400]),
        post("/v1/broadcasts/audience", broadcasts::audience_size)
            .about(Admin, "Broadcasts", "How many contacts a segment or list minus exclusions holds now: who a broadcast would reach")
            .body::<broadcasts::AudienceRequest>()
            .ok::<broadcasts::AudienceSize>()
            .errors(&[400]),
        get("/v1/broadcasts/{id}", broadcasts::get)
            .about(Admin, "Broadcasts", "One broadcast: its document, status and progress (messages by status)")
            .ok::<broadcasts::BroadcastView>()
            .errors(&[404]),
        put("/v1/broadcasts/{id}", broadcasts::put)
            .about(Admin, "Broadcasts", "Create or replace a draft broadcast")
            .body::<waymark_core::broadcast::BroadcastDocument>()
            .json::<broadcasts::BroadcastView>(200, "The draft, replaced")
            .json::<broadcasts::BroadcastView>(201, "The draft, created")
            .errors(&[400, 409]),
        delete("/v1/broadcasts/{id}", broadcasts::delete)
            .about(Admin, "Broadcasts", "Delete a draft (one that was sent can only be cancelled: 409)")
            .no_content("Deleted")
            .errors(&[404, 409]),
        post("/v1/broadcasts/{id}/send", broadcasts::send)
            .about(Admin, "Broadcasts", "Send a draft now, or at its `send_at`")
            .ok::<broadcasts::BroadcastView>()
            .errors(&[400, 404, 409]),
        post("/v1/broadcasts/{id}/pause", broadcasts::pause)
            .about(Admin, "Broadcasts", "Pause a sending broadcast: its queued messages are held, no new ones are written")
            .ok::<broadcasts::BroadcastView>()
            .errors(&[404, 409]),
        post("/v1/broadcasts/{id}/resume", broadcasts::resume)
            .about(Admin, "Broadcasts", "Resume a paused broadcast where it stopped")
            .ok::<broadcasts::BroadcastView>()
            .errors(&[404, 409]),
        post("/v1/broadcasts/{id}/cancel", broadcasts::cancel)
            .about(Admin, "Broadcasts", "Cancel a broadcast: messages not yet sent are cancelled, recipients not yet reached get nothing")
            .ok::<broadcasts::BroadcastView>()
            .errors(&[404, 409]),
        get("/v1/broadcasts/{id}/report", reports::broadcast)
            .about(Admin, "Broadcasts", "What the broadcast did and earned from `from` to `to` (default: from its start to now) in `hour`, `day` or `week` buckets of `tz`: recipients, sent, delivered, bounced, failed, suppressed, opened, clicked (people's and all), unsubscribed, complained, converted and revenue (with a goal), their rates; in total, per bucket and per template (A/B variants, with Wilson intervals). CSV with `Accept: text/csv` (`rows=series` or `variants`)")
            .query::<reports::ReportQuery>()
            .ok::<reports::BroadcastReportView>()
            .or_as("text/csv")
            .errors(&[400, 404]),
        // ---- meta and the web app
        get("/v1/problems", super::problems)
            .about(Admin, "Meta", "The stored journeys and segments the engine cannot use and why, and whether it is stalled")
            .ok::<waymark_engine::problems::Report>(),
        delete("/v1/session", crate::session::sign_out)
            .about(Admin, "Web app", "Sign out: ends the session and clears its cookie")
            .reply(204, "", "Signed out", &["Set-Cookie"]),
        get("/v1/journey-templates", crate::ui::journey_templates)
            .about(Admin, "Web app", "The journey gallery: the example journeys shipped with the server, parsed")
            .ok::<crate::ui::Gallery>(),
        post("/v1/session", crate::session::sign_in)
            .about(Optional, "Web app", "Sign in: `{token}` (the admin token, or the bearer header) → an HTTP-only session cookie and `csrf_token`")
            .optional_body::<crate::session::SignIn>()
            .json::<crate::session::SignedIn>(200, "Signed in")
            .errors(&[401, 429]),
        get("/v1/session", crate::session::current)
            .about(Optional, "Web app", "Whether the request is signed in (`signed_in`, `via`, `csrf_token`); never 401")
            .ok::<crate::session::SessionState>(),
        get("/v1/openapi.json", super::openapi_document)
            .about(Open, "Meta", "This document")
            .ok::<Value>(),
        get("/v1/schema/journey.json", super::journey_schema)
            .about(Open, "Meta", "JSON Schema of journey documents (node kinds and settings)")
            .ok::<Value>(),
        get("/metrics", super::metrics_endpoint)
            .about(Open, "Meta", "Prometheus metrics")
            .reply(200, "text/plain", "Metrics in the Prometheus text format", &[])
            .errors(&[404]),
        get("/healthz", super::health)
            .about(Open, "Meta", "Health: `ok`, `degraded` (stored definitions the engine cannot use), 503 `database_unavailable` (the database does not answer) or 503 `stalled` (engine rounds fail)")
            .ok::<super::Health>()
            .json::<super::Health>(503, "The database does not answer, or the engine is stalled"),
        // ---- inbound webhooks
        post("/v1/webhooks/ses", webhooks_in::ses)
            .about(Inbound, "Inbound webhooks", "Amazon SES bounces and complaints through SNS (subscription confirmation included)")
            .body::<Value>()
            .body_also::<Value>("text/plain")
            .ok::<webhooks_in::InboundAnswer>()
            .errors(&[400]),
        post("/v1/webhooks/postmark", webhooks_in::postmark)
            .about(Inbound, "Inbound webhooks", "Postmark bounce and spam-complaint webhooks")
            .body::<Value>()
            .ok::<webhooks_in::InboundAnswer>()
            .errors(&[400]),
        post("/v1/webhooks/suppressions", webhooks_in::generic)
            .about(Inbound, "Inbound webhooks", "Generic bounces, complaints and unsubscribes: `{events: [{type, channel?, address}]}`")
            .body::<Value>()
            .ok::<webhooks_in::InboundAnswer>()
            .errors(&[400]),
        post("/v1/webhooks/twilio/inbound", webhooks_in::twilio_inbound)
            .about(Inbound, "Inbound webhooks", "Incoming SMS (Twilio form): STOP and START keywords; answers empty TwiML")
            .form_body()
            .reply(200, "text/xml", "Empty TwiML", &[])
            .errors(&[400]),
        // ---- keyless pages and links
        get("/t/o/{token}", tracking::open)
            .about(Public, "Email tracking", "Open pixel of a tracked email (image/gif); records `Email Opened`")
            .reply(200, "image/gif", "A transparent pixel", &[])
            .errors(&[404]),
        get("/t/c/{token}", tracking::click)
            .about(Public, "Email tracking", "Tracked link: records `Email Link Clicked` and redirects (302) to the destination")
            .reply(302, "", "To the link's destination", &["Location"])
            .errors(&[404]),
        get("/u/{token}", consent::unsubscribe_page)
            .about(Public, "Consent", "Preference page of a signed unsubscribe link (HTML)")
            .reply(200, "text/html", "The preference page", &[])
            .errors(&[404]),
        post("/u/{token}", consent::unsubscribe_post)
            .about(Public, "Consent", "One-click unsubscribe (RFC 8058 `List-Unsubscribe=One-Click`) or a preference form post")
            .reply(200, "text/html", "Unsubscribed", &[])
            .errors(&[400, 404]),
        get("/confirm/{token}", consent::confirm_page)
            .about(Public, "Consent", "Page with a button that confirms a double opt-in (HTML); changes nothing by itself")
            .reply(200, "text/html", "The confirmation page", &[])
            .errors(&[404]),
        post("/confirm/{token}", consent::confirm)
            .about(Public, "Consent", "Confirms a double opt-in; records `Subscription Confirmed`")
            .reply(200, "text/html", "Confirmed", &[])
            .errors(&[404]),
        post("/v1/subscribe", consent::subscribe)
            .about(PublicOrWriteKey, "Consent", "Double opt-in: `{email, topic?, name?}` with the write key, or an HTML form post (`redirect?`)")
            .body::<consent::SubscribeRequest>()
            .body_also::<consent::SubscribeRequest>("application/x-www-form-urlencoded")
            .json::<consent::SubscribeResult>(202, "Asked for confirmation (or already subscribed)")
            .reply(200, "text/html", "The form's answer page", &[])
            .reply(303, "", "To the form's `redirect`", &["Location"])
            .errors(&[400, 401, 409]),
    ]);
    ops
}

/// The Segment-compatible tracking calls, authenticated by the write key.
fn tracking_calls() -> Vec<Operation> {
    use Access::WriteKey;
    let call = |op: Operation, summary| {
        op.about(WriteKey, "Tracking", summary)
            .body::<ingest::SegmentBody>()
            .ok::<ingest::Accepted>()
            .errors(&[400])
    };
    vec![
        call(
            post("/v1/identify", ingest::identify),
            "Identify a contact and set traits (Segment spec)",
        ),
        call(
            post("/v1/track", ingest::track),
            "Record an event (Segment spec)",
        ),
        call(
            post("/v1/page", ingest::page),
            "Record a page view, stored as `Page Viewed`",
        ),
        call(
            post("/v1/screen", ingest::screen),
            "Record a screen view, stored as `Screen Viewed`",
        ),
        call(
            post("/v1/group", ingest::group),
            "Associate a contact with a group",
        ),
        call(
            post("/v1/alias", ingest::alias),
            "Merge `previousId` into `userId`",
        ),
        call(
            post("/v1/batch", ingest::batch),
            "Several calls at once; valid calls are stored, invalid ones reported",
        ),
        call(
            post("/v1/import", ingest::batch),
            "Alias of /v1/batch (Segment's import endpoint)",
        ),
    ]
}

/// The error body every failed request gets (`super::error::ApiError`).
pub fn error_schema(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<ApiError>()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The router mounts each operation of the table at its path and method, so each route
    /// is exactly one operation when no (method, path) is in the table twice, and the
    /// document then has one entry per operation.
    #[test]
    fn each_route_is_exactly_one_operation() {
        let ops = all();
        let mut seen = BTreeSet::new();
        for op in &ops {
            let route = (op.method.to_string(), op.path);
            assert!(
                seen.insert(route.clone()),
                "{route:?} is in the table twice"
            );
            assert!(!op.tag.is_empty() && !op.summary.is_empty(), "{route:?}");
            assert!(
                !op.replies.is_empty(),
                "{route:?} does not say what it answers on success"
            );
            for param in &op.path_params {
                assert!(
                    op.path.contains(&format!("{{{}}}", param.name)),
                    "{route:?} types a path parameter it does not have: {}",
                    param.name
                );
            }
        }
        let doc = super::super::openapi::document();
        let documented: usize = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|item| item.as_object().expect("path item").len())
            .sum();
        assert_eq!(documented, ops.len());
    }
}
