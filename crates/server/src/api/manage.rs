//! Management endpoints for contacts, lists, templates, messages and the clock.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use waymark_core::EventKind;
use waymark_core::journey::TemplateDefinition;
use waymark_engine::send::{Outgoing, Purpose, TemplateSource};
use waymark_store::{
    Contact, ContactQuery, ListSummary, MessageQuery, MessageRow, NewEvent, RequeueFilter, Store,
    StoreError, StoredTemplate, TimelineEntry,
};

use super::contact_query;
use super::error::{ApiError, ApiResult};
use super::ingest::{check_traits, random_hex};
use super::{AppState, Body, JsonBody, QueryParams, RawBody, RequestBody, json_from_bytes, typed};
use crate::import::{OnDuplicate, SeenContacts};

pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> ApiResult<T> {
    let store = state.engine.store().clone();
    Ok(tokio::task::spawn_blocking(move || f(store.as_ref())).await??)
}

/// `limit` and `after` of a listing: at most `limit` items (1 to 1000, default 100) with an id
/// greater than `after`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct Page {
    /// How many to list, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
    /// List those after this id (the last id of the previous page).
    pub after: Option<i64>,
}

impl Page {
    pub fn limit(&self) -> ApiResult<usize> {
        page_limit(self.limit)
    }
    pub fn after(&self) -> i64 {
        self.after.unwrap_or(0)
    }
}

pub(crate) fn page_limit(limit: Option<i64>) -> ApiResult<usize> {
    let n = limit.unwrap_or(100);
    if !(1..=1000).contains(&n) {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "limit",
            "must be between 1 and 1000",
        ));
    }
    Ok(n as usize)
}

/// Where the next page starts: the last row's cursor when the page is full (there may be
/// more), none at the end.
pub(crate) fn next_page<T, C>(rows: &[T], limit: usize, cursor: impl FnOnce(&T) -> C) -> Option<C> {
    rows.last().filter(|_| rows.len() == limit).map(cursor)
}

/// Contacts, one page.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ContactsPage {
    pub contacts: Vec<Contact>,
}

/// The contacts a search found, one page.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ContactsFound {
    pub contacts: Vec<Contact>,
    /// Where the next page starts (`cursor`), when this page is full: there may be more.
    pub next_cursor: Option<String>,
}

/// `GET /v1/contacts`: every given criterion must hold.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ContactSearch {
    /// Any id the contact has had: its user id, an anonymous id, or a user id merged into it
    /// by an alias.
    pub user_id: Option<String>,
    /// Compared ignoring case.
    pub email: Option<String>,
    pub phone: Option<String>,
    pub anonymous_id: Option<String>,
    /// A part of the user id, email, phone, name (the traits `first_name`, `last_name`, the
    /// two with a space between, or `name`) or any other id the contact has had (an anonymous
    /// id, a user id merged into it by an alias), ignoring ASCII case.
    pub q: Option<String>,
    /// Only members of this segment (its id), as of its last evaluation.
    pub segment: Option<String>,
    /// Only members of this list (its name).
    pub list: Option<String>,
    /// Only contacts whose top-level trait has this value: `key:value` (`plan:pro`). A string
    /// trait must equal the value; a number trait equals it as a number (`seats:3` matches 3
    /// and 3.0); a boolean trait matches `true` or `false`. May be repeated: every one must
    /// hold.
    #[serde(rename = "trait", default)]
    pub trait_equals: Vec<String>,
    /// Only contacts with this subscription recorded: `channel:topic:status`
    /// (`email:newsletter:unsubscribed`; topic `*` is all marketing); status `none` is no
    /// record for the channel and topic. May be repeated: every one must hold.
    #[serde(default)]
    pub consent: Vec<String>,
    /// The order: `id` (the default), `created_at`, `updated_at` or `email` (contacts without
    /// one last), `-` before it for descending; contacts with equal keys by id, the same way.
    #[schemars(extend("enum" = ["id", "-id", "created_at", "-created_at", "updated_at", "-updated_at", "email", "-email"]))]
    pub sort: Option<String>,
    /// How many to list, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
    /// The next page: `next_cursor` of the page before, with the same sort.
    pub cursor: Option<String>,
    /// List those after this contact id (sorts `id` and `-id` only; `cursor` pages any sort).
    pub after: Option<i64>,
}

pub async fn find_contacts(
    State(state): State<AppState>,
    contact_query::ContactParams(p): contact_query::ContactParams,
) -> ApiResult<Json<ContactsFound>> {
    let order = contact_query::order(p.sort.as_deref())?;
    let after = contact_query::start(order, p.cursor.as_deref(), p.after)?;
    let limit = page_limit(p.limit)?;
    let query = ContactQuery {
        limit,
        after,
        order,
        user_id: p.user_id,
        email: p.email.map(|e| e.trim().to_lowercase()),
        phone: p.phone,
        anonymous_id: p.anonymous_id,
        search: p.q.filter(|q| !q.trim().is_empty()),
        segment: p.segment,
        list: p.list,
        traits: p
            .trait_equals
            .iter()
            .map(|t| contact_query::trait_equals(t))
            .collect::<ApiResult<_>>()?,
        consent: p
            .consent
            .iter()
            .map(|c| contact_query::consent_is(c))
            .collect::<ApiResult<_>>()?,
    };
    let contacts = blocking(&state, move |s| s.find_contacts(&query)).await?;
    let next_cursor = next_page(&contacts, limit, |last| {
        contact_query::cursor_after(last, order)
    });
    Ok(Json(ContactsFound {
        contacts,
        next_cursor,
    }))
}

pub(crate) fn contact_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| {
        ApiError::invalid(
            "invalid_parameter",
            "id",
            format!("`{raw}` is not a contact id (a number)"),
        )
    })
}

pub async fn get_contact(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<waymark_store::ContactDetail>> {
    let id = contact_id(&id)?;
    let contact = blocking(&state, move |s| s.contact(id)).await?;
    Ok(Json(contact))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TimelineQuery {
    /// The newest so many entries (default 500; taken as 1 to 10000).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Timeline {
    pub contact_id: i64,
    pub entries: Vec<TimelineEntry>,
}

pub async fn timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<TimelineQuery>,
) -> ApiResult<Json<Timeline>> {
    let id = contact_id(&id)?;
    let n = p.limit.unwrap_or(500).clamp(1, 10_000) as usize;
    let entries = blocking(&state, move |s| {
        s.contact(id)?;
        s.timeline(id, n)
    })
    .await?;
    Ok(Json(Timeline {
        contact_id: id,
        entries,
    }))
}

/// `POST /v1/contacts/import`. Each row is read on its own, so that a bad row is reported
/// and the others are imported.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ContactImport {
    /// At most 5000 (not written as `maxItems`, which makes test generators build lists of
    /// thousands).
    #[schemars(with = "Vec<ImportRow>")]
    pub contacts: Vec<Value>,
    /// What to do with a row naming a contact an earlier row of the request named (the same
    /// `user_id`, or the same email): `reject` (the default) reports it with the row it repeats;
    /// `merge` applies it after that row, its fields winning. An email repeated under another
    /// `user_id` is reported unless merging.
    #[serde(default)]
    pub on_duplicate: OnDuplicate,
    /// Also add the contact of every imported row to this list (its name; created if there is
    /// none). The rows' identify calls are recorded first, so a list trigger and a segment
    /// see the imported traits.
    #[schemars(length(min = 1, max = 200))]
    pub list: Option<String>,
}

impl RequestBody for ContactImport {
    const INVALID: &'static str = "invalid_import";
}

/// One contact to import: a `user_id`, an `email`, or both.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ImportRow {
    pub user_id: Option<String>,
    pub email: Option<String>,
    /// E.164 (`+14155550101`).
    pub phone: Option<String>,
    /// An IANA time zone (`Europe/Paris`).
    pub timezone: Option<String>,
    pub traits: Option<Map<String, Value>>,
}

impl ImportRow {
    /// Reads a row, or says which field of it is wrong (its path in the row, `.` for the row
    /// itself) and why.
    fn read(row: &RawValue) -> Result<ImportRow, (String, String)> {
        if let Ok(row) = serde_json::from_str(row.get()) {
            return Ok(row);
        }
        // Read again as a value: the path of the failing field is found only for a row that
        // fails (finding it for every row was most of the cost of reading a large import),
        // and a value takes a repeated key's last copy, as the whole body read as one did.
        let value: Value =
            serde_json::from_str(row.get()).map_err(|e| (".".into(), e.to_string()))?;
        ImportRow::deserialize(&value).or_else(|_| {
            serde_path_to_error::deserialize::<_, ImportRow>(&value)
                .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
        })
    }
}

/// [`ContactImport`] with each row kept as its JSON text (borrowed from the body), to be read
/// straight into an [`ImportRow`]: building a tree of values for every row first, then reading
/// the row out of it, was most of the server's work in a large import.
#[derive(Deserialize)]
struct RowsAsText<'a> {
    #[serde(borrow)]
    contacts: Vec<&'a RawValue>,
    #[serde(default)]
    on_duplicate: OnDuplicate,
    list: Option<String>,
}

/// A request item that was refused while the others were taken.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ItemError {
    /// Its position in the request's list.
    pub index: usize,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ImportResult {
    /// Rows imported.
    pub imported: usize,
    /// Contacts those rows name (fewer than the rows when rows were merged).
    pub contacts: usize,
    pub rejected: usize,
    pub errors: Vec<ItemError>,
}

/// Imports contacts as identify calls, through the same intake as the tracking API, so that
/// identity resolution and journey triggers behave the same.
pub async fn import_contacts(
    State(state): State<AppState>,
    RawBody(bytes): RawBody,
) -> ApiResult<Json<ImportResult>> {
    let read_again: Vec<Box<RawValue>>;
    let body = match serde_json::from_slice::<RowsAsText>(&bytes) {
        Ok(body) if bytes.trim_ascii_start().starts_with(b"{") => body,
        // Read as a `ContactImport`, as every body is: for the error that says what is wrong,
        // or for what reads only that way (a repeated key, whose last copy counts).
        _ => {
            let body = typed::<ContactImport>(json_from_bytes(&bytes)?)?;
            read_again = body
                .contacts
                .iter()
                .map(serde_json::value::to_raw_value)
                .collect::<Result<_, _>>()
                .map_err(|e| ApiError::internal(e.to_string()))?;
            RowsAsText {
                contacts: read_again.iter().map(|row| &**row).collect(),
                on_duplicate: body.on_duplicate,
                list: body.list,
            }
        }
    };
    let rows = body.contacts;
    if rows.len() > 5000 {
        return Err(ApiError::invalid(
            "invalid_import",
            "contacts",
            "at most 5000 contacts per request",
        ));
    }
    let list = match body.list.as_deref().map(str::trim) {
        None => None,
        Some(name) if !name.is_empty() && name.len() <= 200 => Some(name.to_string()),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_import",
                "list",
                "a list needs a name of 1 to 200 characters",
            ));
        }
    };
    let now = state.engine.clock().now();
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let mut seen = SeenContacts::new(|i| format!("contacts[{i}]"));
    let mut contacts = 0;
    // The request's events' ids share a prefix that grows with time, so that they go to the
    // end of the unique index on message ids rather than to a random page of it (an import's
    // thousands of rows would otherwise rewrite thousands of index pages per commit).
    let id_prefix = format!(
        "import-{:012x}-{}",
        now.as_millisecond().max(0),
        random_hex(8)
    );
    for (i, row) in rows.iter().enumerate() {
        let prefix = format!("contacts[{i}].");
        let parsed = (|| {
            let row = ImportRow::read(row).map_err(|(path, message)| {
                let field = if path == "." {
                    format!("contacts[{i}]")
                } else {
                    format!("{prefix}{path}")
                };
                (field, message)
            })?;
            let user_id = row
                .user_id
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let mut traits = row.traits.unwrap_or_default();
            for (key, value) in [
                ("email", row.email),
                ("phone", row.phone),
                ("timezone", row.timezone),
            ] {
                if let Some(v) = value {
                    traits.insert(key.to_string(), Value::String(v));
                }
            }
            check_traits(&mut traits, &prefix).map_err(|e| (e.field, e.message))?;
            let email = traits
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_string);
            let identity = json!({ "user_id": user_id, "email": email });
            let user_id = user_id.map(str::to_string).or(email).ok_or_else(|| {
                (
                    format!("{prefix}user_id"),
                    "a contact needs a user_id or an email".to_string(),
                )
            })?;
            let new = seen
                .note(i as u64, &identity, body.on_duplicate)
                .map_err(|r| (format!("{prefix}{}", r.column), r.message))?;
            contacts += usize::from(new);
            Ok(NewEvent {
                message_id: format!("{id_prefix}-{i:04}"),
                kind: EventKind::Identify,
                name: "Identify".into(),
                user_id: Some(user_id),
                anonymous_id: None,
                previous_id: None,
                properties: traits,
                timestamp: now,
                received_at: now,
            })
        })();
        match parsed {
            Ok(e) => events.push(e),
            Err((field, message)) => errors.push(ItemError {
                index: i,
                field,
                message,
            }),
        }
    }
    let imported = events.len();
    let user_ids: Vec<String> = events.iter().filter_map(|e| e.user_id.clone()).collect();
    state.engine.intake().append(events).await?;
    if let Some(list) = list {
        state.engine.add_users_to_list(list, user_ids).await?;
    }
    Ok(Json(ImportResult {
        imported,
        contacts,
        rejected: errors.len(),
        errors,
    }))
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Lists {
    pub lists: Vec<ListSummary>,
}

pub async fn lists(State(state): State<AppState>) -> ApiResult<Json<Lists>> {
    let lists = blocking(&state, |s| s.lists()).await?;
    Ok(Json(Lists { lists }))
}

/// `POST /v1/lists`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NewList {
    /// 1 to 200 characters (surrounding spaces are dropped).
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
}

impl RequestBody for NewList {
    const INVALID: &'static str = "invalid_list";
}

pub async fn create_list(
    State(state): State<AppState>,
    Body(list): Body<NewList>,
) -> ApiResult<(StatusCode, Json<ListSummary>)> {
    let name = list.name.trim().to_string();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid(
            "invalid_list",
            "name",
            "a list needs a name of 1 to 200 characters",
        ));
    }
    let now = state.engine.clock().now();
    let list = blocking(&state, move |s| s.create_list(&name, now)).await?;
    Ok((StatusCode::CREATED, Json(list)))
}

pub async fn list_members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult<Json<ContactsPage>> {
    let (n, after) = (page.limit()?, page.after());
    let contacts = blocking(&state, move |s| s.list_members(&name, n, after)).await?;
    Ok(Json(ContactsPage { contacts }))
}

/// Contacts to add to or remove from a list.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Members {
    #[schemars(length(min = 1))]
    pub contact_ids: Vec<i64>,
}

impl RequestBody for Members {
    const INVALID: &'static str = "invalid_members";
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MembersChanged {
    /// How many contacts were named.
    pub changed: usize,
}

async fn change_members(
    state: AppState,
    name: String,
    members: Members,
    add: bool,
) -> ApiResult<Json<MembersChanged>> {
    let ids = members.contact_ids;
    if ids.is_empty() {
        return Err(ApiError::invalid(
            "invalid_members",
            "contact_ids",
            "must be a non-empty list of contact ids",
        ));
    }
    let count = ids.len();
    state.engine.change_list_members(name, ids, add).await?;
    Ok(Json(MembersChanged { changed: count }))
}

pub async fn add_list_members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(members): Body<Members>,
) -> ApiResult<Json<MembersChanged>> {
    change_members(state, name, members, true).await
}

pub async fn remove_list_members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(members): Body<Members>,
) -> ApiResult<Json<MembersChanged>> {
    change_members(state, name, members, false).await
}

/// Parses and compiles a template definition, reporting every problem.
pub(crate) fn parse_template(value: &Value) -> ApiResult<TemplateDefinition> {
    let def: TemplateDefinition = serde_json::from_value(value.clone()).map_err(|e| {
        ApiError::bad_request(
            "invalid_template",
            format!("the template is malformed: {e}"),
        )
    })?;
    if def.id.is_empty()
        || !def
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::invalid(
            "invalid_template",
            "id",
            "template ids are letters, digits, `-` or `_`",
        ));
    }
    if let Err(errors) = waymark_render::compile(&def) {
        let first = errors[0].field.clone();
        return Err(ApiError::invalid(
            "invalid_template",
            first,
            format!("template `{}` has {} error(s)", def.id, errors.len()),
        )
        .with_errors(json!(errors)));
    }
    Ok(def)
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Templates {
    pub templates: Vec<StoredTemplate>,
}

pub async fn templates(State(state): State<AppState>) -> ApiResult<Json<Templates>> {
    let templates = blocking(&state, |s| s.templates()).await?;
    Ok(Json(Templates { templates }))
}

pub async fn get_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StoredTemplate>> {
    let t = blocking(&state, move |s| s.get_template(&id)).await?;
    Ok(Json(t))
}

pub async fn create_template(
    State(state): State<AppState>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<StoredTemplate>)> {
    let def = parse_template(&body.0)?;
    let now = state.engine.clock().now();
    let id = def.id.clone();
    let created = blocking(&state, move |s| {
        if s.template_channel(&def.id)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "template `{}` exists; use PUT to replace it",
                def.id
            )));
        }
        s.put_template(&def, now)
    })
    .await?;
    debug_assert!(created);
    let t = blocking(&state, move |s| s.get_template(&id)).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

pub async fn put_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<StoredTemplate>)> {
    let mut value = body.0;
    if let Some(obj) = value.as_object_mut() {
        match obj.get("id").and_then(Value::as_str) {
            Some(given) if given != id => {
                return Err(ApiError::invalid(
                    "invalid_template",
                    "id",
                    format!("the body's id `{given}` differs from the URL's `{id}`"),
                ));
            }
            _ => {
                obj.insert("id".into(), json!(id));
            }
        }
    }
    let def = parse_template(&value)?;
    let now = state.engine.clock().now();
    let created = blocking(&state, move |s| s.put_template(&def, now)).await?;
    let t = blocking(&state, move |s| s.get_template(&id)).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(t),
    ))
}

/// `GET /v1/templates/{id}/versions`: newest first, each with the journey versions that pin it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TemplateVersions {
    /// Newest first.
    pub versions: Vec<waymark_store::TemplateVersionSummary>,
}

pub async fn template_versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TemplateVersions>> {
    let versions = blocking(&state, move |s| s.template_versions(&id)).await?;
    Ok(Json(TemplateVersions { versions }))
}

/// `GET /v1/templates/{id}/versions/{version}`: the definition as it was in that version.
pub async fn template_version(
    State(state): State<AppState>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<StoredTemplate>> {
    let v = super::journeys::version_number(&version)?;
    let template = blocking(&state, move |s| s.get_template_version(&id, v)).await?;
    Ok(Json(template))
}

pub async fn delete_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(&state, move |s| s.delete_template(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A template rendered for a preview or a test send.
struct RenderedFor {
    template: String,
    channel: waymark_core::Channel,
    contact_id: Option<i64>,
    /// What the template saw.
    data: Map<String, Value>,
    rendered: waymark_render::Rendered,
}

/// The data a preview renders a template with: a contact's (`contact_id`) or sample data.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct Sample {
    /// Render with this contact's data (and recommendations).
    pub contact_id: Option<i64>,
    /// Sample contact data, when no `contact_id` is given.
    pub contact: Option<Map<String, Value>>,
    /// The triggering event's properties, as templates see `event`.
    pub event: Option<Value>,
    pub journey: Option<Value>,
    /// Sample enrollment data, as templates see `enrollment` (`{key, events: [{name, timestamp,
    /// properties}]}`); without it, `enrollment.events` holds the sample `event` alone.
    pub enrollment: Option<Value>,
    /// Sample recommendations, instead of the contact's.
    pub recommendations: Option<Value>,
}

impl RequestBody for Sample {}

/// `POST /v1/templates/{id}/test-send`: the preview's data and the address to send to.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TestSend {
    /// An email address, or an E.164 number for an SMS template.
    pub to: String,
    pub contact_id: Option<i64>,
    pub contact: Option<Map<String, Value>>,
    pub event: Option<Value>,
    pub journey: Option<Value>,
    pub enrollment: Option<Value>,
    pub recommendations: Option<Value>,
}

impl RequestBody for TestSend {}

impl TestSend {
    fn split(self) -> (String, Sample) {
        let sample = Sample {
            contact_id: self.contact_id,
            contact: self.contact,
            event: self.event,
            journey: self.journey,
            enrollment: self.enrollment,
            recommendations: self.recommendations,
        };
        (self.to, sample)
    }
}

/// A rendered template.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Preview {
    #[serde(flatten)]
    pub rendered: waymark_render::Rendered,
    /// SMS templates: the encoding, length and number of segments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<waymark_render::SmsSegments>,
}

/// A test send, through the send gate like any message.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TestSent {
    #[serde(flatten)]
    pub rendered: waymark_render::Rendered,
    pub to: String,
    /// `queued`, or `suppressed` (an address on the suppression list) or `failed`, with `error`.
    pub status: &'static str,
    /// Why it was not queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub idempotency_key: String,
}

/// Renders template `id` with a contact's data (`contact_id`) or sample data (`contact`,
/// `event`, `journey`), as a journey's send would: Liquid, MJML, generated text part.
async fn render_with(state: &AppState, id: String, body: Sample) -> ApiResult<RenderedFor> {
    let template = blocking(state, move |s| s.get_template(&id)).await?;
    let compiled = waymark_render::compile(&template.definition).map_err(|errors| {
        ApiError::bad_request("invalid_template", "the stored template does not compile")
            .with_errors(json!(errors))
    })?;
    let mut contact = body.contact.unwrap_or_default();
    let contact_id = body.contact_id;
    if let Some(cid) = contact_id {
        let detail = blocking(state, move |s| s.contact(cid)).await?;
        contact = waymark_engine::send::contact_data(&detail.contact);
    }
    let mut data = Map::new();
    data.insert("contact".into(), Value::Object(contact));
    // As a send would see them: the sample event is the one that started the enrollment.
    let enrollment = match (body.enrollment, &body.event) {
        (Some(enrollment), _) => enrollment,
        (None, Some(event)) => json!({ "events": [{
            "name": event.get("name"),
            "properties": event,
        }] }),
        (None, None) => json!({ "events": [] }),
    };
    data.insert("event".into(), body.event.unwrap_or(json!({})));
    data.insert("journey".into(), body.journey.unwrap_or(json!({})));
    data.insert("enrollment".into(), enrollment);
    // `recommendations`: sample data if given, else the contact's, computed as a send would.
    use waymark_engine::recommendations as recs;
    if let Some(sample) = body.recommendations {
        data.insert(recs::VARIABLE.into(), sample);
    } else if let Some(cid) = contact_id
        && recs::uses_recommendations(&template.definition)
    {
        let list = state.engine.recommendations_for(cid).await?;
        data.insert(recs::VARIABLE.into(), Value::Array(list));
    }
    let rendered = compiled
        .render(&data)
        .map_err(|e| ApiError::invalid("render_failed", e.field.clone(), e.message))?;
    Ok(RenderedFor {
        template: template.definition.id,
        channel: template.definition.channel,
        contact_id,
        data,
        rendered,
    })
}

/// Renders a template with a contact's data (`contact_id`) or sample data (`contact`, `event`):
/// subject, HTML and text (generated when the template has none). For an SMS template, `sms`
/// gives the encoding (GSM-7 or UCS-2), the length in that encoding and the number of segments.
pub async fn preview_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(sample): Body<Sample>,
) -> ApiResult<Json<Preview>> {
    let out = render_with(&state, id, sample).await?;
    let sms = (out.channel == waymark_core::Channel::Sms)
        .then(|| waymark_render::sms_segments(out.rendered.text.as_deref().unwrap_or_default()));
    Ok(Json(Preview {
        rendered: out.rendered,
        sms,
    }))
}

/// Renders a template like the preview and queues it to the address `to` through the outbox,
/// so that it goes through the configured transport and shows in `/v1/messages` (no journey).
pub async fn test_send_template(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<TestSend>,
) -> ApiResult<(StatusCode, Json<TestSent>)> {
    let (to, sample) = body.split();
    let out = render_with(&state, id, sample).await?;
    let recipient = match out.channel {
        waymark_core::Channel::Email => waymark_core::Email::parse(&to)
            .map_err(|e| ApiError::invalid("invalid_parameter", "to", e.to_string()))?
            .to_string(),
        waymark_core::Channel::Sms => waymark_core::Phone::parse(&to)
            .map_err(|e| ApiError::invalid("invalid_parameter", "to", e.to_string()))?
            .as_str()
            .to_string(),
    };
    // Through the send gate like any message: an address on the suppression list (a hard
    // bounce, a complaint, STOP) is not sent to, even for a test.
    let now = state.engine.clock().now();
    let key = format!("test-send:{}", random_hex(16));
    let decision = {
        let key = key.clone();
        let recipient = recipient.clone();
        let RenderedFor {
            template,
            channel,
            contact_id,
            data,
            ..
        } = out;
        state
            .engine
            .send(move |tx, gate| {
                let outgoing = Outgoing {
                    idempotency_key: key.clone(),
                    // A test send belongs to no contact unless one was named (0 is no contact).
                    contact_id: contact_id.unwrap_or(0),
                    channel,
                    template: TemplateSource::Stored(&template),
                    purpose: Purpose::Test,
                    to: Some(recipient.clone()),
                    data: Some(data.clone()),
                };
                gate.send(tx, outgoing, now)
            })
            .await?
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(TestSent {
            rendered: decision.rendered.unwrap_or_default(),
            to: recipient,
            status: decision.status.as_str(),
            error: decision.error,
            idempotency_key: key,
        }),
    ))
}

/// `GET /v1/messages`: every given criterion must hold.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MessageSearch {
    /// Any id the contact has had (as `GET /v1/contacts` takes it).
    pub user_id: Option<String>,
    pub contact_id: Option<i64>,
    pub journey_id: Option<String>,
    /// `email`, `sms` or `webhook`.
    pub channel: Option<String>,
    /// `queued`, `sent`, `failed`, `suppressed`, `bounced`, or (a broadcast's) `paused` or
    /// `cancelled`.
    pub status: Option<String>,
    /// Only the messages of this broadcast.
    pub broadcast_id: Option<String>,
    /// How many to list, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
    /// List those after this message id.
    pub after: Option<i64>,
    /// `true`: each email's `html` for an admin to look at, not as it was sent: its open
    /// pixel removed and its tracked links pointing at their destinations again, so that
    /// showing it (or following a link in it) does not count as the contact's open or click.
    /// The admin app asks for this; the default is the HTML exactly as sent.
    pub preview: Option<bool>,
    /// `false`: each message's `html` and `text` are left out (`null`), for a reader that
    /// only follows what happened to the messages, as `waymark simulate` does. Default `true`.
    pub bodies: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Messages {
    pub messages: Vec<MessageRow>,
}

pub async fn messages(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<MessageSearch>,
) -> ApiResult<Json<Messages>> {
    let query = MessageQuery {
        limit: page_limit(p.limit)?,
        after_id: p.after.unwrap_or(0),
        user_id: p.user_id,
        contact_id: p.contact_id,
        journey_id: p.journey_id,
        channel: p.channel,
        status: p.status,
        broadcast_id: p.broadcast_id,
    };
    let mut messages = blocking(&state, move |s| s.messages(&query)).await?;
    if p.bodies == Some(false) {
        for m in &mut messages {
            m.html = None;
            m.text = None;
        }
    }
    if p.preview == Some(true)
        && let Some(tracking) = state.engine.tracking()
    {
        for m in &mut messages {
            if let Some(html) = &m.html {
                m.html = Some(tracking.untrack_html(html));
            }
        }
    }
    Ok(Json(Messages { messages }))
}

/// The outbox, per channel.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Outbox {
    pub channels: Vec<waymark_engine::dispatch::Lane>,
}

pub async fn outbox(State(state): State<AppState>) -> ApiResult<Json<Outbox>> {
    let channels = state.engine.queue_levels().await?;
    Ok(Json(Outbox { channels }))
}

/// The processes sharing the engine's work (on SQLite: this one).
pub async fn cluster(
    State(state): State<AppState>,
) -> ApiResult<Json<waymark_store::ClusterStatus>> {
    Ok(Json(blocking(&state, |s| s.cluster()).await?))
}

/// The longest `error` text a requeue filter may search for.
pub const MAX_REQUEUE_ERROR_CHARS: usize = 500;

/// Which failed messages to requeue: every given criterion must hold, and at least one must
/// be given. Times are RFC 3339 timestamps or durations before now (`2h`, `3d`); `_since` is
/// inclusive, `_until` exclusive. Unknown fields are refused: a misspelt field must not widen
/// the filter to every failed message.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requeue {
    #[schemars(length(min = 1, max = 200))]
    pub journey_id: Option<String>,
    /// `email`, `sms` or `webhook`.
    #[schemars(length(min = 1, max = 16))]
    pub channel: Option<String>,
    #[schemars(length(min = 1, max = 64))]
    pub created_since: Option<String>,
    #[schemars(length(min = 1, max = 64))]
    pub created_until: Option<String>,
    #[schemars(length(min = 1, max = 64))]
    pub failed_since: Option<String>,
    #[schemars(length(min = 1, max = 64))]
    pub failed_until: Option<String>,
    /// The error contains this text (ignoring case).
    #[schemars(length(min = 1, max = 500))]
    pub error: Option<String>,
}

impl RequestBody for Requeue {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Requeued {
    /// How many failed messages were put back in the queue.
    pub requeued: i64,
}

/// A time parameter: an RFC 3339 timestamp, or a duration before `now` (`2h`: two hours ago).
pub(crate) fn time_or_ago(
    field: &str,
    raw: &str,
    now: jiff::Timestamp,
) -> ApiResult<jiff::Timestamp> {
    if let Ok(at) = raw.parse::<jiff::Timestamp>() {
        return Ok(at);
    }
    match waymark_core::Duration::parse(raw) {
        Ok(ago) => Ok(now
            .saturating_sub(jiff::SignedDuration::from_secs(ago.seconds()))
            .unwrap_or(jiff::Timestamp::MIN)),
        Err(_) => Err(ApiError::invalid(
            "invalid_parameter",
            field,
            format!(
                "`{raw}` is neither an RFC 3339 timestamp (2025-03-01T09:00:00Z) nor a \
                 duration before now (`2h`, `3d`)"
            ),
        )),
    }
}

/// Parses a requeue filter at the edge: at least one criterion, times as RFC 3339 timestamps
/// or as durations before `now` (`2h`: two hours ago).
pub fn parse_requeue_filter(body: Requeue, now: jiff::Timestamp) -> ApiResult<RequeueFilter> {
    const FIELDS: [&str; 7] = [
        "journey_id",
        "channel",
        "created_since",
        "created_until",
        "failed_since",
        "failed_until",
        "error",
    ];
    let text = |field: &str, value: Option<String>, max: usize| -> ApiResult<Option<String>> {
        match value {
            None => Ok(None),
            Some(v) if !v.trim().is_empty() && v.chars().count() <= max => {
                Ok(Some(v.trim().to_string()))
            }
            Some(_) => Err(ApiError::invalid(
                "invalid_parameter",
                field,
                format!("must be a non-empty string of at most {max} characters"),
            )),
        }
    };
    let time = |field: &str, value: Option<String>| -> ApiResult<Option<jiff::Timestamp>> {
        text(field, value, 64)?
            .map(|raw| time_or_ago(field, &raw, now))
            .transpose()
    };
    let channel = text("channel", body.channel, 16)?;
    if let Some(c) = &channel
        && waymark_core::OutboxChannel::parse(c).is_none()
    {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "channel",
            format!("`{c}` is not a channel (email, sms or webhook)"),
        ));
    }
    let filter = RequeueFilter {
        journey_id: text("journey_id", body.journey_id, 200)?,
        channel,
        created_since: time("created_since", body.created_since)?,
        created_until: time("created_until", body.created_until)?,
        failed_since: time("failed_since", body.failed_since)?,
        failed_until: time("failed_until", body.failed_until)?,
        error_contains: text("error", body.error, MAX_REQUEUE_ERROR_CHARS)?,
    };
    for (since, until, field) in [
        (filter.created_since, filter.created_until, "created_until"),
        (filter.failed_since, filter.failed_until, "failed_until"),
    ] {
        if let (Some(since), Some(until)) = (since, until)
            && until <= since
        {
            return Err(ApiError::invalid(
                "invalid_parameter",
                field,
                "must be later than the matching `_since`",
            ));
        }
    }
    if filter.is_empty() {
        return Err(ApiError::bad_request(
            "requeue_filter_required",
            format!(
                "give at least one of {}; to requeue every failed message, give a time range \
                 such as `failed_since`",
                FIELDS.join(", ")
            ),
        ));
    }
    Ok(filter)
}

/// Puts the failed messages matching a filter back in the queue (same id and idempotency key;
/// attempts and retry lifetime start over). Bounced and suppressed messages are never requeued.
pub async fn requeue_messages(
    State(state): State<AppState>,
    Body(body): Body<Requeue>,
) -> ApiResult<Json<Requeued>> {
    let now = state.engine.clock().now();
    let filter = parse_requeue_filter(body, now)?;
    let requeued = blocking(&state, move |s| s.requeue_messages(&filter, now)).await?;
    if requeued > 0 {
        tracing::info!(requeued, "failed messages requeued");
        state.engine.messages_queued();
    }
    Ok(Json(Requeued { requeued }))
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Clock {
    pub now: jiff::Timestamp,
    /// Whether the clock is simulated (`--clock simulated`) and can be advanced.
    pub simulated: bool,
}

pub async fn clock(State(state): State<AppState>) -> Json<Clock> {
    let clock = state.engine.clock();
    Json(Clock {
        now: clock.now(),
        simulated: clock.is_simulated(),
    })
}

/// The longest a simulated clock may be advanced at once: ten years.
const MAX_ADVANCE_SECONDS: i64 = 10 * 365 * 86_400;

/// `POST /v1/clock/advance`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Advance {
    /// Whole seconds, 0 to ten years.
    #[schemars(range(min = 0, max = MAX_ADVANCE_SECONDS))]
    pub seconds: i64,
}

impl RequestBody for Advance {}

pub async fn advance_clock(
    State(state): State<AppState>,
    Body(advance): Body<Advance>,
) -> ApiResult<Json<Clock>> {
    if !(0..=MAX_ADVANCE_SECONDS).contains(&advance.seconds) {
        return Err(ApiError::invalid(
            "invalid_parameter",
            "seconds",
            "must be a whole number of seconds between 0 and ten years",
        ));
    }
    let now = state.engine.advance(advance.seconds).await?;
    Ok(Json(Clock {
        now,
        simulated: true,
    }))
}
