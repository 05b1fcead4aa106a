//! Data-protection requests: a contact's export (`GET /v1/contacts/{id}/export`), its erasure
//! (`DELETE /v1/contacts/{id}`), and the audit log of both (`GET /v1/audit`).
//!
//! The export is streamed a page at a time from the store (see `Store::export_contact`), so a
//! contact with a long history costs a few pages of memory, not its whole history. Erasure runs
//! between engine rounds (`Engine::between_rounds`) so that the engine never steps a
//! half-erased contact and the dispatcher never sends a message the erasure removed.
//! Both are recorded in the audit log before the answer, with who asked and row counts, never
//! the personal data itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use waymark_store::{AuditEntry, AuditQuery, NewAudit, StoreError};

use super::error::ApiResult;
use super::manage::{blocking, contact_id, page_limit};
use super::{AppState, QueryParams};
use crate::session::SessionId;

/// Rows per page of an export (messages carry their rendered HTML, so pages stay small).
pub const EXPORT_PAGE_ROWS: usize = 100;
/// Pages waiting for a slow client at most; the reader waits beyond that.
const EXPORT_PAGES_BUFFERED: usize = 2;

/// Who made the request, as the server knows it: the admin token (one, shared), or a web app
/// session, named by a hash prefix of its id (the id itself is a credential).
fn actor(session: Option<axum::Extension<SessionId>>) -> String {
    match session {
        Some(axum::Extension(SessionId(id))) => {
            let digest = Sha256::digest(id.as_bytes());
            let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            format!("session:{hex}")
        }
        None => "admin_token".to_string(),
    }
}

/// The receiving end of the export's pages, as the stream axum sends.
struct Pages(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Pages {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Writes the pages of an export as one JSON object: `contact` an object, every other section
/// an array, in `waymark_store::personal_data::SECTIONS` order.
#[derive(Default)]
struct ExportWriter {
    section: Option<&'static str>,
    rows_written: usize,
}

impl ExportWriter {
    fn page(&mut self, section: &'static str, rows: &[Value]) -> String {
        let mut out = String::new();
        if self.section != Some(section) {
            self.close_section(&mut out);
            out.push(',');
            out.push_str(&json!(section).to_string());
            out.push(':');
            if section == "contact" {
                out.push_str(&rows.first().cloned().unwrap_or(Value::Null).to_string());
            } else {
                out.push('[');
            }
            self.section = Some(section);
            self.rows_written = 0;
        }
        if section != "contact" {
            for row in rows {
                if self.rows_written > 0 {
                    out.push(',');
                }
                out.push_str(&row.to_string());
                self.rows_written += 1;
            }
        }
        out
    }

    fn close_section(&self, out: &mut String) {
        if matches!(self.section, Some(s) if s != "contact") {
            out.push(']');
        }
    }

    fn finish(&self) -> String {
        let mut out = String::new();
        self.close_section(&mut out);
        out.push('}');
        out
    }
}

pub async fn export_contact(
    State(state): State<AppState>,
    Path(id): Path<String>,
    session: Option<axum::Extension<SessionId>>,
) -> ApiResult<Response> {
    let id = contact_id(&id)?;
    let actor = actor(session);
    let now = state.engine.clock().now();
    let counts = blocking(&state, move |s| s.contact_export_counts(id)).await?;
    let entry = NewAudit {
        at: now,
        actor: actor.clone(),
        action: "contact.export".into(),
        contact_id: Some(id),
        detail: json!({ "counts": counts }),
    };
    let audit_id = blocking(&state, move |s| s.record_audit(&entry)).await?;
    tracing::info!(audit = audit_id, contact = id, %actor, "contact exported");
    metrics::counter!("waymark_contacts_exported_total").increment(1);

    let mut head = json!({
        "contact_id": id,
        "exported_at": now,
        "audit_id": audit_id,
        "counts": counts,
    })
    .to_string();
    head.pop(); // the closing brace: the sections follow

    let (sender, receiver) = tokio::sync::mpsc::channel(EXPORT_PAGES_BUFFERED);
    let store = state.engine.store().clone();
    tokio::task::spawn_blocking(move || {
        let send = |text: String| {
            sender
                .blocking_send(Ok(Bytes::from(text)))
                .map_err(|_| StoreError::Database("the client went away".into()))
        };
        let mut writer = ExportWriter::default();
        let result = send(head).and_then(|()| {
            store.export_contact(id, EXPORT_PAGE_ROWS, &mut |page| {
                send(writer.page(page.section, &page.rows))
            })
        });
        match result.and_then(|()| send(writer.finish())) {
            Ok(()) => {}
            Err(e) => {
                // Breaking the body makes the client see a failed transfer, never a shorter
                // document that looks complete.
                tracing::error!(contact = id, error = %e, "export failed midway");
                let _ = sender.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"contact-{id}.json\""),
            ),
        ],
        Body::from_stream(Pages(receiver)),
    )
        .into_response())
}

/// What an erasure removed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Erased {
    pub contact_id: i64,
    pub erased: bool,
    /// Rows removed, by table.
    pub removed: std::collections::BTreeMap<String, i64>,
    /// The contact's addresses now suppressed as keyed hashes.
    pub addresses_hashed: i64,
    /// The audit log entry of the erasure.
    pub audit_id: i64,
}

pub async fn erase_contact(
    State(state): State<AppState>,
    Path(id): Path<String>,
    session: Option<axum::Extension<SessionId>>,
) -> ApiResult<Json<Erased>> {
    let id = contact_id(&id)?;
    let actor = actor(session);
    let now = state.engine.clock().now();
    let who = actor.clone();
    // The erasure and its audit entry commit together: an erasure is never unrecorded.
    let (erasure, audit_id) = state
        .engine
        .between_rounds(move |tx| {
            let erasure = tx.erase_contact(id, now)?;
            let audit_id = tx.record_audit(&NewAudit {
                at: now,
                actor: who.clone(),
                action: "contact.erase".into(),
                contact_id: Some(id),
                detail: json!({
                    "removed": erasure.removed,
                    "addresses_hashed": erasure.addresses_hashed,
                }),
            })?;
            Ok((erasure, audit_id))
        })
        .await?;
    let removed: i64 = erasure.removed.values().sum();
    tracing::info!(
        audit = audit_id,
        contact = id,
        %actor,
        rows = removed,
        addresses_hashed = erasure.addresses_hashed,
        "contact erased"
    );
    metrics::counter!("waymark_contacts_erased_total").increment(1);
    Ok(Json(Erased {
        contact_id: id,
        erased: true,
        removed: erasure.removed,
        addresses_hashed: erasure.addresses_hashed,
        audit_id,
    }))
}

/// `GET /v1/audit`: every given criterion must hold.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AuditSearch {
    pub contact_id: Option<i64>,
    /// `contact.export` or `contact.erase`.
    pub action: Option<String>,
    /// How many to list, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
    /// List those after this entry id.
    pub after: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
}

pub async fn audit(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<AuditSearch>,
) -> ApiResult<Json<AuditLog>> {
    let query = AuditQuery {
        contact_id: p.contact_id,
        action: p.action,
        limit: page_limit(p.limit)?,
        after_id: p.after.unwrap_or(0),
    };
    let entries = blocking(&state, move |s| s.audit_log(&query)).await?;
    Ok(Json(AuditLog { entries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_make_one_json_document() {
        let mut w = ExportWriter::default();
        let mut out = String::from("{\"contact_id\":1");
        out += &w.page("contact", &[json!({"id": 1})]);
        out += &w.page("anonymous_ids", &[]);
        out += &w.page("events", &[json!({"seq": 1}), json!({"seq": 2})]);
        out += &w.page("events", &[json!({"seq": 3})]);
        out += &w.page("messages", &[]);
        out += &w.finish();
        let v: Value = serde_json::from_str(&out).expect(&out);
        assert_eq!(v["contact"]["id"], 1);
        assert_eq!(v["anonymous_ids"], json!([]));
        assert_eq!(v["events"].as_array().unwrap().len(), 3);
        assert_eq!(v["messages"], json!([]));
    }
}
