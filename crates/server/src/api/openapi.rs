//! The OpenAPI document the server serves at `/v1/openapi.json`, and the journey JSON Schema at
//! `/v1/schema/journey.json` (generated from the Rust types, so it cannot drift from them).
//! A test checks that every route the router serves is described here.

use serde_json::{Value, json};
use waymark_core::journey::{JourneyDocument, TemplateDefinition};

pub fn journey_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(JourneyDocument)).expect("schema serialises")
}

/// Moves a JSON Schema's `$defs` into `defs` and points its references there.
fn hoist_defs(mut schema: Value, defs: &mut serde_json::Map<String, Value>) -> Value {
    fn repoint(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get_mut("$ref")
                    && let Some(name) = r.strip_prefix("#/$defs/")
                {
                    *r = format!("#/components/schemas/{name}");
                }
                o.values_mut().for_each(repoint);
            }
            Value::Array(a) => a.iter_mut().for_each(repoint),
            _ => {}
        }
    }
    if let Value::Object(o) = &mut schema {
        o.remove("$schema");
        if let Some(Value::Object(found)) = o.remove("$defs") {
            for (name, mut def) in found {
                repoint(&mut def);
                defs.insert(name, def);
            }
        }
    }
    repoint(&mut schema);
    schema
}

fn template_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(TemplateDefinition)).expect("schema serialises")
}

/// (method, path, tag, summary, security scheme)
const OPERATIONS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "post",
        "/v1/identify",
        "Tracking",
        "Identify a contact and set traits (Segment spec)",
        "writeKey",
    ),
    (
        "post",
        "/v1/track",
        "Tracking",
        "Record an event (Segment spec)",
        "writeKey",
    ),
    (
        "post",
        "/v1/page",
        "Tracking",
        "Record a page view, stored as `Page Viewed`",
        "writeKey",
    ),
    (
        "post",
        "/v1/screen",
        "Tracking",
        "Record a screen view, stored as `Screen Viewed`",
        "writeKey",
    ),
    (
        "post",
        "/v1/group",
        "Tracking",
        "Associate a contact with a group",
        "writeKey",
    ),
    (
        "post",
        "/v1/alias",
        "Tracking",
        "Merge `previousId` into `userId`",
        "writeKey",
    ),
    (
        "post",
        "/v1/batch",
        "Tracking",
        "Several calls at once; valid calls are stored, invalid ones reported",
        "writeKey",
    ),
    (
        "post",
        "/v1/import",
        "Tracking",
        "Alias of /v1/batch (Segment's import endpoint)",
        "writeKey",
    ),
    (
        "get",
        "/v1/contacts",
        "Contacts",
        "Find contacts by user_id, email, phone, anonymous_id or prefix (q)",
        "admin",
    ),
    (
        "post",
        "/v1/contacts/import",
        "Contacts",
        "Import contacts (as identify calls); returns rejected rows",
        "admin",
    ),
    (
        "get",
        "/v1/contacts/{id}",
        "Contacts",
        "A contact with traits, lists and enrollments",
        "admin",
    ),
    (
        "get",
        "/v1/contacts/{id}/timeline",
        "Contacts",
        "Events, journey steps and messages, oldest first",
        "admin",
    ),
    (
        "get",
        "/v1/contacts/{id}/export",
        "Contacts",
        "Everything held about a contact as one JSON document (data-protection access request), streamed; audited",
        "admin",
    ),
    (
        "delete",
        "/v1/contacts/{id}",
        "Contacts",
        "Erase a contact and everything personal about it; its addresses stay suppressed as keyed hashes; audited",
        "admin",
    ),
    (
        "get",
        "/v1/audit",
        "Audit",
        "Audit log of contact exports and erasures: who, when, what, row counts (`contact_id`, `action`, `limit`, `after`)",
        "admin",
    ),
    (
        "get",
        "/v1/lists",
        "Lists",
        "All lists with member counts",
        "admin",
    ),
    (
        "post",
        "/v1/lists",
        "Lists",
        "Create a list `{name}`",
        "admin",
    ),
    (
        "get",
        "/v1/lists/{name}/members",
        "Lists",
        "Members of a list",
        "admin",
    ),
    (
        "post",
        "/v1/lists/{name}/members",
        "Lists",
        "Add contacts `{contact_ids: []}`",
        "admin",
    ),
    (
        "delete",
        "/v1/lists/{name}/members",
        "Lists",
        "Remove contacts `{contact_ids: []}`",
        "admin",
    ),
    (
        "get",
        "/v1/templates",
        "Templates",
        "All message templates",
        "admin",
    ),
    (
        "post",
        "/v1/templates",
        "Templates",
        "Create a template (Liquid and MJML are checked on save)",
        "admin",
    ),
    (
        "get",
        "/v1/templates/{id}",
        "Templates",
        "One template",
        "admin",
    ),
    (
        "put",
        "/v1/templates/{id}",
        "Templates",
        "Create or replace a template",
        "admin",
    ),
    (
        "delete",
        "/v1/templates/{id}",
        "Templates",
        "Delete a template",
        "admin",
    ),
    (
        "get",
        "/v1/templates/{id}/versions",
        "Templates",
        "The template's versions, newest first, each with the journey versions that send it (`pinned_by`)",
        "admin",
    ),
    (
        "get",
        "/v1/templates/{id}/versions/{version}",
        "Templates",
        "One version of a template, also of a deleted one",
        "admin",
    ),
    (
        "post",
        "/v1/templates/{id}/preview",
        "Templates",
        "Render with `{contact_id}` or sample `{contact, event}`: subject, html, text (and `sms`: encoding and segments)",
        "admin",
    ),
    (
        "post",
        "/v1/templates/{id}/test-send",
        "Templates",
        "Render like the preview and send to `{to}` through the outbox",
        "admin",
    ),
    (
        "get",
        "/v1/messages",
        "Messages",
        "Messages, filtered by user_id, contact_id, journey_id, channel, status",
        "admin",
    ),
    (
        "post",
        "/v1/messages/requeue",
        "Messages",
        "Put the failed messages matching a filter back in the queue (same id and idempotency key); answers `{requeued}`",
        "admin",
    ),
    (
        "get",
        "/v1/clock",
        "Clock",
        "The engine's current time and whether it is simulated",
        "admin",
    ),
    (
        "post",
        "/v1/clock/advance",
        "Clock",
        "Advance a simulated clock `{seconds}`; returns when all due work is done",
        "admin",
    ),
    (
        "get",
        "/v1/journeys",
        "Journeys",
        "All journeys with status, version and counts",
        "admin",
    ),
    (
        "post",
        "/v1/journeys",
        "Journeys",
        "Create a journey draft (JSON or YAML)",
        "admin",
    ),
    (
        "post",
        "/v1/journeys/validate",
        "Journeys",
        "Validate a journey document; every error with its node",
        "admin",
    ),
    (
        "get",
        "/v1/journeys/{id}",
        "Journeys",
        "A journey with its draft and the draft's validation errors",
        "admin",
    ),
    (
        "put",
        "/v1/journeys/{id}",
        "Journeys",
        "Create or replace a journey's draft",
        "admin",
    ),
    (
        "post",
        "/v1/journeys/{id}/publish",
        "Journeys",
        "Publish the draft as a new immutable version; a draft identical to the live version makes none (`unchanged: true`)",
        "admin",
    ),
    (
        "post",
        "/v1/journeys/{id}/pause",
        "Journeys",
        "Stop new entries and hold enrollments in place",
        "admin",
    ),
    (
        "post",
        "/v1/journeys/{id}/resume",
        "Journeys",
        "Resume a paused journey",
        "admin",
    ),
    (
        "post",
        "/v1/journeys/{id}/archive",
        "Journeys",
        "End the journey; active enrollments exit",
        "admin",
    ),
    (
        "get",
        "/v1/journeys/{id}/versions",
        "Journeys",
        "Published versions",
        "admin",
    ),
    (
        "get",
        "/v1/journeys/{id}/versions/{version}",
        "Journeys",
        "One published version",
        "admin",
    ),
    (
        "get",
        "/v1/journeys/{id}/stats",
        "Journeys",
        "Per-node counts and first/last activity",
        "admin",
    ),
    (
        "post",
        "/v1/journeys/{id}/enroll",
        "Journeys",
        "Enroll a contact (`user_id` or `contact_id`) through the journey's `api` trigger, with a `payload`",
        "admin",
    ),
    (
        "get",
        "/v1/journeys/{id}/experiments",
        "Journeys",
        "Experiment nodes: counts and conversion rates per variant, the test's verdict and the winner",
        "admin",
    ),
    (
        "get",
        "/v1/segments",
        "Segments",
        "Segments with their condition (JSON and text forms) and member counts",
        "admin",
    ),
    (
        "post",
        "/v1/segments",
        "Segments",
        "Create a segment `{id, name, condition | text}`; every contact is evaluated at once",
        "admin",
    ),
    (
        "post",
        "/v1/segments/preview",
        "Segments",
        "Count and sample the contacts a condition matches now, without saving it",
        "admin",
    ),
    (
        "get",
        "/v1/segments/{id}",
        "Segments",
        "One segment",
        "admin",
    ),
    (
        "put",
        "/v1/segments/{id}",
        "Segments",
        "Create or replace a segment; membership is re-evaluated",
        "admin",
    ),
    (
        "delete",
        "/v1/segments/{id}",
        "Segments",
        "Delete a segment",
        "admin",
    ),
    (
        "get",
        "/v1/segments/{id}/members",
        "Segments",
        "Members of a segment (`limit`, `after`)",
        "admin",
    ),
    (
        "get",
        "/v1/suppressions",
        "Suppression",
        "The suppression list, filtered by `channel` and `address`",
        "admin",
    ),
    (
        "post",
        "/v1/suppressions",
        "Suppression",
        "Suppress an address: `{channel, address, reason?}` (reason defaults to `manual`)",
        "admin",
    ),
    (
        "delete",
        "/v1/suppressions/{channel}/{address}",
        "Suppression",
        "Take an address off the suppression list",
        "admin",
    ),
    (
        "post",
        "/v1/webhooks/ses",
        "Inbound webhooks",
        "Amazon SES bounces and complaints through SNS (subscription confirmation included)",
        "inbound",
    ),
    (
        "post",
        "/v1/webhooks/postmark",
        "Inbound webhooks",
        "Postmark bounce and spam-complaint webhooks",
        "inbound",
    ),
    (
        "post",
        "/v1/webhooks/suppressions",
        "Inbound webhooks",
        "Generic bounces, complaints and unsubscribes: `{events: [{type, channel?, address}]}`",
        "inbound",
    ),
    (
        "post",
        "/v1/webhooks/twilio/inbound",
        "Inbound webhooks",
        "Incoming SMS (Twilio form): STOP and START keywords; answers empty TwiML",
        "inbound",
    ),
    ("get", "/v1/openapi.json", "Meta", "This document", "none"),
    (
        "get",
        "/v1/schema/journey.json",
        "Meta",
        "JSON Schema of journey documents (node kinds and settings)",
        "none",
    ),
    (
        "get",
        "/t/o/{token}",
        "Email tracking",
        "Open pixel of a tracked email (image/gif); records `Email Opened`",
        "none",
    ),
    (
        "get",
        "/t/c/{token}",
        "Email tracking",
        "Tracked link: records `Email Link Clicked` and redirects (302) to the destination",
        "none",
    ),
    (
        "get",
        "/v1/contacts/{id}/subscriptions",
        "Consent",
        "A contact's subscriptions by channel and topic",
        "admin",
    ),
    (
        "put",
        "/v1/contacts/{id}/subscriptions/{channel}/{topic}",
        "Consent",
        "Set a subscription: `{status: subscribed|pending|unsubscribed}` (topic `*`: all marketing)",
        "admin",
    ),
    (
        "get",
        "/v1/topics",
        "Consent",
        "Subscription topics declared by templates",
        "admin",
    ),
    (
        "post",
        "/v1/subscribe",
        "Consent",
        "Double opt-in: `{email, topic?, name?}` with the write key, or an HTML form post (`redirect?`)",
        "writeKey",
    ),
    (
        "get",
        "/u/{token}",
        "Consent",
        "Preference page of a signed unsubscribe link (HTML)",
        "none",
    ),
    (
        "post",
        "/u/{token}",
        "Consent",
        "One-click unsubscribe (RFC 8058 `List-Unsubscribe=One-Click`) or a preference form post",
        "none",
    ),
    (
        "get",
        "/confirm/{token}",
        "Consent",
        "Page with a button that confirms a double opt-in (HTML); changes nothing by itself",
        "none",
    ),
    (
        "post",
        "/confirm/{token}",
        "Consent",
        "Confirms a double opt-in; records `Subscription Confirmed`",
        "none",
    ),
    ("get", "/metrics", "Meta", "Prometheus metrics", "none"),
    (
        "get",
        "/healthz",
        "Meta",
        "Health: `ok`, `degraded` (stored definitions the engine cannot use) or 503 `stalled` (engine rounds fail)",
        "none",
    ),
    (
        "get",
        "/v1/problems",
        "Meta",
        "The stored journeys and segments the engine cannot use and why, and whether it is stalled",
        "admin",
    ),
    // The web app (crates/server/src/session.rs, ui.rs).
    (
        "post",
        "/v1/session",
        "Web app",
        "Sign in: `{token}` (the admin token) → an HTTP-only session cookie and `csrf_token`",
        "admin",
    ),
    (
        "get",
        "/v1/session",
        "Web app",
        "Whether the request is signed in (`signed_in`, `via`, `csrf_token`); never 401",
        "optional",
    ),
    (
        "delete",
        "/v1/session",
        "Web app",
        "Sign out: ends the session and clears its cookie",
        "admin",
    ),
    (
        "get",
        "/v1/journey-templates",
        "Web app",
        "The journey gallery: the example journeys shipped with the server, parsed",
        "admin",
    ),
];

pub fn operations() -> impl Iterator<Item = (&'static str, &'static str)> {
    OPERATIONS.iter().map(|(m, p, ..)| (*m, *p))
}

pub fn document() -> Value {
    // The JSON Schemas keep their shared definitions under `$defs`, referenced as
    // `#/$defs/X`; inside this document those live in `components.schemas`.
    let mut defs = serde_json::Map::new();
    let journey = hoist_defs(journey_schema(), &mut defs);
    let template = hoist_defs(template_schema(), &mut defs);
    let mut paths = serde_json::Map::new();
    for (method, path, tag, summary, security) in OPERATIONS {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut op = json!({
            "tags": [tag],
            "summary": summary,
            "operationId": format!("{method}{}", path.replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": params,
            "responses": {
                "200": { "description": "Success", "content": { "application/json": { "schema": { "type": "object" } } } },
                "400": { "$ref": "#/components/responses/Error" },
                "401": { "$ref": "#/components/responses/Error" },
                "404": { "$ref": "#/components/responses/Error" }
            }
        });
        match *security {
            "admin" => op["security"] = json!([{ "adminToken": [] }, { "sessionCookie": [] }]),
            "optional" => {
                op["security"] = json!([{ "adminToken": [] }, { "sessionCookie": [] }, {}])
            }
            "writeKey" => op["security"] = json!([{ "writeKey": [] }]),
            "inbound" => {
                op["security"] = json!([
                    { "inboundSecretQuery": [] },
                    { "inboundSecretBasic": [] },
                    { "inboundSecretBearer": [] }
                ])
            }
            _ => op["security"] = json!([]),
        }
        // The keyless pages and links are rate-limited per client address.
        if path.starts_with("/t/")
            || path.starts_with("/u/")
            || path.starts_with("/confirm/")
            || *path == "/v1/subscribe"
        {
            op["responses"]["429"] = json!({ "$ref": "#/components/responses/Error" });
        }
        if *path == "/healthz" {
            op["responses"]["503"] = json!({ "description": "The engine is stalled", "content": { "application/json": { "schema": { "type": "object" } } } });
        }
        if matches!(*method, "post" | "put") {
            let schema = if path.starts_with("/v1/journeys")
                && !path.ends_with("publish")
                && !path.ends_with("pause")
                && !path.ends_with("resume")
                && !path.ends_with("archive")
            {
                json!({ "$ref": "#/components/schemas/Journey" })
            } else if *path == "/v1/templates" || *path == "/v1/templates/{id}" {
                json!({ "$ref": "#/components/schemas/Template" })
            } else if *path == "/v1/messages/requeue" {
                json!({ "$ref": "#/components/schemas/RequeueFilter" })
            } else if *tag == "Tracking" {
                json!({ "$ref": "#/components/schemas/SegmentCall" })
            } else {
                json!({ "type": "object" })
            };
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema } } });
            // The body did not arrive within --body-timeout of the headers.
            op["responses"]["408"] = json!({ "$ref": "#/components/responses/Error" });
        }
        // Beyond --max-connections (`too_many_connections`, with Retry-After).
        op["responses"]["503"] = json!({ "$ref": "#/components/responses/Error" });
        if (*method, *path) == ("post", "/v1/session") {
            // Sign-in locked out after wrong tokens (`too_many_attempts`, with Retry-After).
            op["responses"]["429"] = json!({ "$ref": "#/components/responses/Error" });
        }
        if *path == "/v1/messages/requeue" {
            op["responses"]["200"]["content"]["application/json"]["schema"] =
                json!({ "$ref": "#/components/schemas/RequeueResult" });
        }
        if *path == "/v1/journeys/{id}/publish" {
            op["responses"]["200"]["content"]["application/json"]["schema"] =
                json!({ "$ref": "#/components/schemas/PublishResult" });
            // An archived journey cannot be published (`journey_archived`).
            op["responses"]["409"] = json!({ "$ref": "#/components/responses/Error" });
        }
        paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path item")
            .insert(method.to_string(), op);
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Waymark API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tracking (Segment-compatible) and management API of Waymark. See docs/api.md."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "adminToken": { "type": "http", "scheme": "bearer", "description": "WAYMARK_ADMIN_TOKEN" },
                "sessionCookie": { "type": "apiKey", "in": "cookie", "name": "waymark_session", "description": "The web app's session (POST /v1/session); state-changing requests also need the session's CSRF token in X-Waymark-CSRF" },
                "writeKey": { "type": "http", "scheme": "basic", "description": "The write key as user name, empty password"  },
                "inboundSecretQuery": { "type": "apiKey", "in": "query", "name": "token", "description": "WAYMARK_INBOUND_WEBHOOK_SECRET as ?token=" },
                "inboundSecretBasic": { "type": "http", "scheme": "basic", "description": "WAYMARK_INBOUND_WEBHOOK_SECRET as the password (any user name)" },
                "inboundSecretBearer": { "type": "http", "scheme": "bearer", "description": "WAYMARK_INBOUND_WEBHOOK_SECRET" }
            },
            "schemas": {
                "Journey": journey,
                "Template": template,
                "SegmentCall": {
                    "type": "object",
                    "properties": {
                        "type": { "enum": ["identify", "track", "page", "screen", "group", "alias"] },
                        "userId": { "type": "string" }, "anonymousId": { "type": "string" },
                        "messageId": { "type": "string" }, "timestamp": { "type": "string", "format": "date-time" },
                        "event": { "type": "string" }, "properties": { "type": "object" }, "traits": { "type": "object" },
                        "name": { "type": "string" }, "groupId": { "type": "string" }, "previousId": { "type": "string" },
                        "batch": { "type": "array", "items": { "type": "object" } }
                    }
                },
                "RequeueFilter": {
                    "type": "object",
                    "description": "Which failed messages to requeue: every given criterion must hold, and at least one must be given. Times are RFC 3339 timestamps or durations before now (`2h`, `3d`); `_since` is inclusive, `_until` exclusive.",
                    "additionalProperties": false,
                    "properties": {
                        "journey_id": { "type": "string" },
                        "channel": { "enum": ["email", "sms", "webhook"] },
                        "created_since": { "type": "string" },
                        "created_until": { "type": "string" },
                        "failed_since": { "type": "string" },
                        "failed_until": { "type": "string" },
                        "error": { "type": "string", "maxLength": 500, "description": "The error contains this text (ignoring case)" }
                    }
                },
                "RequeueResult": {
                    "type": "object",
                    "required": ["requeued"],
                    "properties": { "requeued": { "type": "integer", "description": "How many failed messages were put back in the queue" } }
                },
                "PublishResult": {
                    "type": "object",
                    "description": "The journey after publishing. Publishing a draft identical to the live version (templates included) is `200` too, with `unchanged: true`: no new version, the same `live_version`.",
                    "required": ["id", "status", "live_version", "unchanged"],
                    "properties": {
                        "id": { "type": "string" },
                        "name": { "type": "string" },
                        "status": { "enum": ["draft", "live", "paused", "archived"] },
                        "live_version": { "type": "integer", "description": "The version contacts now enter" },
                        "unchanged": { "type": "boolean", "description": "true: the draft repeated the live version and no version was made" },
                        "draft": { "type": "object" },
                        "created_at": { "type": "string", "format": "date-time" },
                        "updated_at": { "type": "string", "format": "date-time" }
                    }
                },
                "Error": {
                    "type": "object",
                    "required": ["code", "type", "message"],
                    "properties": {
                        "code": { "type": "string" }, "type": { "type": "string" }, "message": { "type": "string" },
                        "field": { "type": "string" }, "errors": { "type": "array", "items": { "type": "object" } },
                        "link": { "type": "string" }
                    }
                }
            },
            "responses": {
                "Error": { "description": "An error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        }
    });
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("components.schemas");
    for (name, def) in defs {
        schemas.entry(name).or_insert(def);
    }
    doc
}
