//! The OpenAPI document the server serves at `/v1/openapi.json`, and the journey JSON Schema at
//! `/v1/schema/journey.json` (generated from the Rust types, so it cannot drift from them).
//! The document is generated from the table of operations (`super::operations`), the same
//! table the router is built from.

use axum::http::Method;
use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};
use waymark_core::journey::JourneyDocument;

use super::operations::{self, Access, Operation};

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

/// The OpenAPI document, generated from the table of operations (`super::operations`): each
/// operation's request and response schemas are those of the Rust types its handler reads and
/// writes.
pub fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "#/components/schemas/".into();
            s.meta_schema = None;
        })
        .into_generator();
    let error = operations::error_schema(&mut generator);
    let mut paths = Map::new();
    for op in operations::all() {
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        let method = op.method.as_str().to_ascii_lowercase();
        let entry = operation(&op, &mut generator);
        assert!(
            item.get(&method).is_none(),
            "{method} {} is in the table twice",
            op.path
        );
        item[method] = entry;
    }
    // The JSON Schemas of journeys keep their shared definitions under `$defs`, referenced as
    // `#/$defs/X`; inside this document those live in `components.schemas`.
    let mut schemas = Map::new();
    let journey = hoist_defs(journey_schema(), &mut schemas);
    schemas.insert("Journey".into(), journey);
    for (name, def) in generator.take_definitions(true) {
        schemas.entry(name).or_insert(def);
    }
    json!({
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
            "schemas": schemas,
            "responses": {
                "Error": { "description": "An error: its `code` is explained in docs/api.md", "content": { "application/json": { "schema": error } } }
            }
        }
    })
}

/// One operation's entry in `paths`.
fn operation(op: &Operation, generator: &mut SchemaGenerator) -> Value {
    let mut parameters: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = match op.path_params.iter().find(|p| p.name == name) {
                Some(p) => (p.schema)(generator).to_value(),
                None => json!({ "type": "string" }),
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    if let Some(query) = op.query {
        parameters.extend(query_parameters(query(generator), generator));
    }
    let mut responses = Map::new();
    for reply in &op.replies {
        let mut response = json!({ "description": reply.description });
        if !reply.content.is_empty() {
            response["content"] = content(&reply.content, generator);
        }
        for name in reply.headers {
            response["headers"][*name] = json!({ "schema": { "type": "string" } });
        }
        responses.insert(reply.status.to_string(), response);
    }
    let mut errors = op.errors.clone();
    if matches!(
        op.access,
        Access::Admin | Access::WriteKey | Access::Inbound
    ) {
        errors.push(401);
    }
    if op.access == Access::Admin && op.method != Method::GET {
        // A session-cookie request without the session's CSRF token (`csrf_failed`).
        errors.push(403);
    }
    if matches!(op.access, Access::Public | Access::PublicOrWriteKey) {
        errors.push(429);
    }
    if !op.body.is_empty() {
        // The body is not JSON, too large, or did not arrive within --body-timeout.
        errors.extend([400, 408, 413]);
    }
    // Beyond --max-connections (`too_many_connections`, with Retry-After).
    errors.push(503);
    for status in errors {
        responses
            .entry(status.to_string())
            .or_insert_with(|| json!({ "$ref": "#/components/responses/Error" }));
    }
    let mut entry = json!({
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": format!(
            "{}{}",
            op.method.as_str().to_ascii_lowercase(),
            op.path.replace(['/', '{', '}', '.', '-'], "_")
        ),
        "parameters": parameters,
        "responses": responses,
        "security": security(op.access),
    });
    if !op.body.is_empty() {
        entry["requestBody"] = json!({
            "required": op.body_required,
            "content": content(&op.body, generator),
        });
    }
    entry
}

fn content(contents: &[operations::Content], generator: &mut SchemaGenerator) -> Value {
    let mut out = Map::new();
    for c in contents {
        let schema = match c.schema {
            Some(schema) => schema(generator).to_value(),
            None if c.media_type.starts_with("image/") => {
                json!({ "type": "string", "format": "binary" })
            }
            None => json!({ "type": "string" }),
        };
        out.insert(c.media_type.to_string(), json!({ "schema": schema }));
    }
    Value::Object(out)
}

/// The properties of a query type, one parameter each.
fn query_parameters(schema: Schema, generator: &mut SchemaGenerator) -> Vec<Value> {
    let mut schema = schema.to_value();
    // A named type is a reference to its definition.
    if let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        schema = generator
            .definitions_mut()
            .remove(name)
            .expect("the query type's definition");
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let mut property = property.clone();
            // A query parameter is absent or has a value; it is never null.
            if let Some(types) = property.get_mut("type").and_then(Value::as_array_mut) {
                types.retain(|t| t != "null");
                if let [only] = types.as_slice() {
                    property["type"] = only.clone();
                }
            }
            let description = property
                .as_object_mut()
                .and_then(|p| p.remove("description"));
            let mut parameter = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": property,
            });
            if let Some(d) = description {
                parameter["description"] = d;
            }
            parameter
        })
        .collect()
}

fn security(access: Access) -> Value {
    match access {
        Access::Admin => json!([{ "adminToken": [] }, { "sessionCookie": [] }]),
        Access::Optional => json!([{ "adminToken": [] }, { "sessionCookie": [] }, {}]),
        Access::WriteKey => json!([{ "writeKey": [] }]),
        Access::PublicOrWriteKey => json!([{ "writeKey": [] }, {}]),
        Access::Inbound => json!([
            { "inboundSecretQuery": [] },
            { "inboundSecretBasic": [] },
            { "inboundSecretBearer": [] }
        ]),
        Access::Public | Access::Open => json!([]),
    }
}
