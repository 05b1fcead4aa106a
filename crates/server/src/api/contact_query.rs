//! The query parameters of `GET /v1/contacts` that have a syntax of their own (`trait`,
//! `consent`, `sort`, `cursor`), parsed into the store's terms; a bad one is refused with
//! `invalid_parameter` naming it. The cursor is opaque to clients: it holds the sort it was
//! made for and the position of the last contact of a page.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use waymark_engine::consent;
use waymark_store::{
    ConsentIs, Contact, ContactOrder, ContactPosition, ContactSortKey, SortValue, TraitEquals,
};

use super::error::{ApiError, ApiResult};
use super::manage::ContactSearch;
use super::parse_query;

/// `GET /v1/contacts`'s parameters. `trait` and `consent` may be given more than once (each
/// adds a criterion), which the query reader cannot take: they are taken out first and the
/// rest is read as usual.
pub struct ContactParams(pub ContactSearch);

impl<S: Send + Sync> FromRequestParts<S> for ContactParams {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let mut rest = form_urlencoded::Serializer::new(String::new());
        let (mut traits, mut consent) = (Vec::new(), Vec::new());
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "trait" => traits.push(value.into_owned()),
                "consent" => consent.push(value.into_owned()),
                _ => {
                    rest.append_pair(&key, &value);
                }
            }
        }
        let mut search: ContactSearch = parse_query(&rest.finish())?;
        search.trait_equals = traits;
        search.consent = consent;
        Ok(ContactParams(search))
    }
}

/// The `sort` values, each with its order.
pub const SORTS: [(&str, ContactSortKey, bool); 8] = [
    ("id", ContactSortKey::Id, false),
    ("-id", ContactSortKey::Id, true),
    ("created_at", ContactSortKey::CreatedAt, false),
    ("-created_at", ContactSortKey::CreatedAt, true),
    ("updated_at", ContactSortKey::UpdatedAt, false),
    ("-updated_at", ContactSortKey::UpdatedAt, true),
    ("email", ContactSortKey::Email, false),
    ("-email", ContactSortKey::Email, true),
];

fn invalid(parameter: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid("invalid_parameter", parameter, message)
}

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// `sort`: one of `SORTS` (by id, ascending, when none).
pub fn order(raw: Option<&str>) -> ApiResult<ContactOrder> {
    let raw = raw.unwrap_or("id");
    SORTS
        .iter()
        .find(|(name, ..)| *name == raw)
        .map(|&(_, key, descending)| ContactOrder { key, descending })
        .ok_or_else(|| {
            let names: Vec<&str> = SORTS.iter().map(|(n, ..)| *n).collect();
            invalid(
                "sort",
                format!("`{raw}` is not a sort: one of {}", names.join(", ")),
            )
        })
}

fn sort_name(order: ContactOrder) -> &'static str {
    SORTS
        .iter()
        .find(|&&(_, key, descending)| key == order.key && descending == order.descending)
        .map(|(name, ..)| *name)
        .expect("every order has a name")
}

/// `trait=key:value`: the top-level trait `key` equals `value` (the key ends at the first `:`).
pub fn trait_equals(raw: &str) -> ApiResult<TraitEquals> {
    let syntax = "must be `key:value` (e.g. `plan:pro`): a trait's name of 1 to 100 printable \
                  characters without `:`, `\"` or `\\`, and a value of at most 1000";
    let Some((key, value)) = raw.split_once(':') else {
        return Err(invalid("trait", syntax));
    };
    let key = key.trim();
    if key.is_empty()
        || key.chars().count() > 100
        || !printable(key)
        || key.contains(['"', '\\'])
        || value.chars().count() > 1000
        || !printable(value)
    {
        return Err(invalid("trait", syntax));
    }
    Ok(TraitEquals {
        key: key.to_string(),
        value: value.to_string(),
    })
}

/// `consent=channel:topic:status`: the contact's recorded subscription (`none`: no record).
pub fn consent_is(raw: &str) -> ApiResult<ConsentIs> {
    let syntax = "must be `channel:topic:status` (e.g. `email:newsletter:unsubscribed`): channel \
                  `email` or `sms`, a topic (`*` is all marketing), status `subscribed`, \
                  `pending`, `unsubscribed` or `none` (no record)";
    let (Some((channel, rest)), true) = (raw.split_once(':'), raw.matches(':').count() >= 2) else {
        return Err(invalid("consent", syntax));
    };
    let (topic, status) = rest.rsplit_once(':').expect("a second `:`");
    let topic = topic.trim();
    let channel_ok = matches!(channel, "email" | "sms");
    let topic_ok = !topic.is_empty() && topic.chars().count() <= 100 && printable(topic);
    let status = match status {
        "none" => None,
        s if consent::is_status(s) => Some(s.to_string()),
        _ => return Err(invalid("consent", syntax)),
    };
    if !channel_ok || !topic_ok {
        return Err(invalid("consent", syntax));
    }
    Ok(ConsentIs {
        channel: channel.to_string(),
        topic: topic.to_string(),
        status,
    })
}

/// Where a page in `order` starts: after the position a `cursor` holds, or, in the orders by
/// id, after the contact `after` (the paging of old); the first page with neither.
pub fn start(
    order: ContactOrder,
    cursor: Option<&str>,
    after: Option<i64>,
) -> ApiResult<Option<ContactPosition>> {
    match (cursor, after) {
        (Some(_), Some(_)) => Err(invalid("after", "give `after` or `cursor`, not both")),
        (Some(cursor), None) => position(cursor, order).map(Some),
        (None, Some(_)) if order.key != ContactSortKey::Id => Err(invalid(
            "after",
            "only pages the sorts by id: page other sorts with `cursor`",
        )),
        (None, Some(id)) => Ok(Some(ContactPosition {
            id,
            key: SortValue::None,
        })),
        (None, None) => Ok(None),
    }
}

/// The cursor of the page after the one ending with `last` in `order`.
pub fn cursor_after(last: &Contact, order: ContactOrder) -> String {
    let position = ContactPosition::of(last, order.key);
    let key = match position.key {
        SortValue::None => Value::Null,
        SortValue::Millis(ms) => json!(ms),
        SortValue::Text(s) => json!(s),
    };
    let doc = json!({"sort": sort_name(order), "id": position.id, "key": key});
    URL_SAFE_NO_PAD.encode(doc.to_string())
}

/// The position a `cursor` stands for, if it was made for `order`.
pub fn position(cursor: &str, order: ContactOrder) -> ApiResult<ContactPosition> {
    let unknown = || invalid("cursor", "is not a cursor a contact listing gave");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| unknown())?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|_| unknown())?;
    let id = doc["id"].as_i64().ok_or_else(unknown)?;
    if doc["sort"].as_str() != Some(sort_name(order)) {
        return Err(invalid(
            "cursor",
            format!(
                "was given for another sort than `{}`: keep the sort while paging",
                sort_name(order)
            ),
        ));
    }
    let key = match (order.key, &doc["key"]) {
        (ContactSortKey::Id, _) | (ContactSortKey::Email, Value::Null) => SortValue::None,
        (ContactSortKey::CreatedAt | ContactSortKey::UpdatedAt, v) => {
            SortValue::Millis(v.as_i64().ok_or_else(unknown)?)
        }
        (ContactSortKey::Email, v) => SortValue::Text(v.as_str().ok_or_else(unknown)?.to_string()),
    };
    Ok(ContactPosition { id, key })
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::Map;

    use super::*;

    fn field(e: ApiError) -> String {
        e.field.expect("a field")
    }

    #[test]
    fn traits_are_a_key_and_a_value() {
        let t = trait_equals("plan:pro:max").unwrap();
        assert_eq!((t.key.as_str(), t.value.as_str()), ("plan", "pro:max"));
        assert_eq!(trait_equals("note:").unwrap().value, "");
        for bad in ["plan", ":pro", "a\"b:c", "plan:a\nb"] {
            assert_eq!(field(trait_equals(bad).unwrap_err()), "trait", "{bad}");
        }
    }

    #[test]
    fn consent_is_a_channel_a_topic_and_a_status() {
        let c = consent_is("email:a:b:unsubscribed").unwrap();
        assert_eq!(
            (c.channel.as_str(), c.topic.as_str(), c.status.as_deref()),
            ("email", "a:b", Some("unsubscribed"))
        );
        assert_eq!(consent_is("sms:*:none").unwrap().status, None);
        for bad in [
            "email:news",
            "fax:news:subscribed",
            "email::none",
            "email:n:maybe",
        ] {
            assert_eq!(field(consent_is(bad).unwrap_err()), "consent", "{bad}");
        }
    }

    #[test]
    fn a_cursor_comes_back_as_the_position_for_its_sort_only() {
        let contact = Contact {
            id: 7,
            user_id: None,
            email: Some("a@example.com".into()),
            phone: None,
            timezone: None,
            traits: Map::new(),
            created_at: Timestamp::from_millisecond(1_000).unwrap(),
            updated_at: Timestamp::from_millisecond(2_000).unwrap(),
        };
        for (name, ..) in SORTS {
            let order = order(Some(name)).unwrap();
            let cursor = cursor_after(&contact, order);
            assert_eq!(
                position(&cursor, order).unwrap(),
                ContactPosition::of(&contact, order.key),
                "{name}"
            );
        }
        let by_email = order(Some("email")).unwrap();
        let by_id = order(Some("id")).unwrap();
        let cursor = cursor_after(&contact, by_email);
        assert_eq!(field(position(&cursor, by_id).unwrap_err()), "cursor");
        assert_eq!(field(position("nonsense", by_id).unwrap_err()), "cursor");
        assert_eq!(field(order(Some("name")).unwrap_err()), "sort");
    }
}
