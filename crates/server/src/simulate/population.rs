//! Bringing a population that is not synthetic into the server a simulation drives: the rows
//! of a CSV file, the members of a segment or list of another server, or contacts given as the
//! import API takes them. Each returns the user ids in order, which the arrivals follow.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use super::driver;
use super::target::Target;

/// Imports a CSV file of contacts into the target (UTF-8, with or without a byte order mark;
/// its delimiter found as the importer finds it; rows without a `user_id` get one), and
/// returns their user ids in file order.
pub(super) async fn copy_csv(target: &Target, path: &Path) -> anyhow::Result<Vec<String>> {
    let open =
        || std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()));
    // The delimiter from the header row, as `waymark import contacts` finds it (`;` from
    // spreadsheets in much of Europe).
    let mut start = Vec::with_capacity(64 * 1024);
    std::io::Read::read_to_end(&mut std::io::Read::take(open()?, 64 * 1024), &mut start)?;
    let delimiter = crate::import::detect_delimiter(&start);
    let input = crate::import::text(open()?, crate::import::Encoding::Utf8);
    let mut reader = crate::import::contacts_reader(input, delimiter);
    let headers = reader
        .headers()
        .with_context(|| format!("{}: no header row", path.display()))?
        .clone();
    let mut user_ids = Vec::new();
    let mut chunk = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}: line {line}", path.display()))?;
        let mut contact =
            crate::import::contact_from_row(&headers, &row).map_err(|(column, why)| {
                anyhow::anyhow!("{}: line {line}, column {column}: {why}", path.display())
            })?;
        let user = match contact["user_id"].as_str() {
            Some(u) => u.to_string(),
            None => {
                let u = format!("sim-row-{line}");
                contact["user_id"] = json!(u);
                u
            }
        };
        user_ids.push(user);
        chunk.push(contact);
        if chunk.len() == 5000 {
            driver::import(target, std::mem::take(&mut chunk), None).await?;
        }
    }
    driver::import(target, chunk, None).await?;
    Ok(user_ids)
}

/// Imports contacts given as the import API takes them (those without a `user_id` get one),
/// and returns their user ids in order.
pub(super) async fn copy_contacts(
    target: &Target,
    mut contacts: Vec<Value>,
) -> anyhow::Result<Vec<String>> {
    let mut user_ids = Vec::with_capacity(contacts.len());
    for (i, c) in contacts.iter_mut().enumerate() {
        let user = match c["user_id"].as_str() {
            Some(u) => u.to_string(),
            None => {
                let u = format!("sim-given-{i}");
                c["user_id"] = json!(u);
                u
            }
        };
        user_ids.push(user);
    }
    for chunk in contacts.chunks(driver::IMPORT_CHUNK) {
        driver::import(target, chunk.to_vec(), None).await?;
    }
    Ok(user_ids)
}

/// Copies the members of a segment or list of the source server into the target, and returns
/// their user ids.
pub(super) async fn copy_members(
    target: &Target,
    source: &Target,
    path: &str,
) -> anyhow::Result<Vec<String>> {
    let mut user_ids = Vec::new();
    let mut after = 0i64;
    loop {
        let page = source
            .get(&format!("{path}?limit=1000&after={after}"))
            .await?;
        let contacts = page["contacts"].as_array().cloned().unwrap_or_default();
        if contacts.is_empty() {
            break;
        }
        let mut copies = Vec::new();
        for c in &contacts {
            after = c["id"].as_i64().unwrap_or(after);
            let copy = member_copy(c);
            user_ids.push(copy["user_id"].as_str().unwrap_or_default().to_string());
            copies.push(copy);
        }
        driver::import(target, copies, None).await?;
    }
    Ok(user_ids)
}

/// The copy of a segment's or list's member (a contact as the API answers it) that a
/// simulation imports: its user id (else one made of its id), traits, addresses and time zone.
pub fn member_copy(c: &Value) -> Value {
    let user = match (c["user_id"].as_str(), c["id"].as_i64()) {
        (Some(u), _) => u.to_string(),
        (None, id) => format!("contact-{}", id.unwrap_or_default()),
    };
    let mut copy = json!({"user_id": user, "traits": c["traits"]});
    for field in ["email", "phone", "timezone"] {
        if let Some(v) = c[field].as_str() {
            copy[field] = json!(v);
        }
    }
    copy
}
