//! The server a simulation drives, over its HTTP API: the private one, or a live server started
//! with `--clock simulated` (`--target`). Requests that fail name the request and what the
//! server said.

use std::time::Duration;

use anyhow::{Context, bail};
use jiff::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

pub struct Target {
    http: reqwest::Client,
    base: String,
    admin_token: String,
    write_key: Option<String>,
}

impl Target {
    pub fn new(base: &str, admin_token: &str, write_key: Option<&str>) -> anyhow::Result<Self> {
        Ok(Target {
            http: client()?,
            base: base.trim_end_matches('/').to_string(),
            admin_token: admin_token.to_string(),
            write_key: write_key.map(str::to_string),
        })
    }

    /// Another handle on the same server (its own connections).
    pub fn clone_client(&self) -> anyhow::Result<Self> {
        Ok(Target {
            http: client()?,
            base: self.base.clone(),
            admin_token: self.admin_token.clone(),
            write_key: self.write_key.clone(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A new client, so that no idle connection is left open to a server about to stop.
    pub fn drop_connections(&mut self) -> anyhow::Result<()> {
        self.http = client()?;
        Ok(())
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.admin(Method::GET, path, None).await
    }

    /// `get`, but `None` when the server has no such thing (404).
    pub async fn get_if_any(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let what = format!("GET {path}");
        let response = send(self.admin_request(Method::GET, path), &what).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        read_answer(response, &what).await.map(Some)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.admin(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.admin(Method::PUT, path, Some(body)).await
    }

    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.admin_request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(body);
        }
        answer(request, &format!("{method} {path}")).await
    }

    fn admin_request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token)
    }

    /// Sends tracking calls through `POST /v1/batch` with the write key, in order, as few
    /// requests as the server's body limit allows (replayed events can be large).
    pub async fn batch(&self, calls: Vec<Value>) -> anyhow::Result<()> {
        let Some(key) = &self.write_key else {
            if calls.is_empty() {
                return Ok(());
            }
            bail!("the target's write key is needed (--target-write-key)");
        };
        let mut body = Vec::with_capacity(64 * 1024);
        let mut in_body = 0;
        for (i, call) in calls.iter().enumerate() {
            let text = serde_json::to_vec(call)?;
            if in_body > 0 && body.len() + text.len() + 16 > BATCH_BODY_BYTES {
                self.send_batch(key, &mut body).await?;
                in_body = 0;
            }
            body.extend_from_slice(if in_body == 0 { b"{\"batch\":[" } else { b"," });
            body.extend_from_slice(&text);
            in_body += 1;
            if i + 1 == calls.len() {
                self.send_batch(key, &mut body).await?;
            }
        }
        Ok(())
    }

    /// Sends `body` (`{"batch":[...` without its end) and empties it.
    async fn send_batch(&self, key: &str, body: &mut Vec<u8>) -> anyhow::Result<()> {
        body.extend_from_slice(b"]}");
        let request = self
            .http
            .post(format!("{}/v1/batch", self.base))
            .basic_auth(key, Some(""))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(std::mem::take(body));
        answer(request, "POST /v1/batch").await.map(drop)
    }

    /// The server's time, on whichever clock it runs.
    pub async fn now(&self) -> anyhow::Result<Timestamp> {
        time_of(&self.get("/v1/clock").await?)
    }

    /// The server's clock, which must be simulated.
    pub async fn clock(&self) -> anyhow::Result<Timestamp> {
        let clock = self.get("/v1/clock").await?;
        if clock["simulated"] != json!(true) {
            bail!(
                "{} runs on the system clock; a simulation needs one started with --clock simulated",
                self.base
            );
        }
        time_of(&clock)
    }

    /// Advances the simulated clock and returns its new time, once everything due on the way
    /// is processed.
    pub async fn advance(&self, seconds: i64) -> anyhow::Result<Timestamp> {
        let clock = self
            .post("/v1/clock/advance", &json!({ "seconds": seconds }))
            .await?;
        clock["now"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .context("the clock advance answer has no time")
    }
}

/// The `now` of a clock answer.
fn time_of(clock: &Value) -> anyhow::Result<Timestamp> {
    clock["now"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("the server's clock answer has no time")
}

/// A batch request's body at most: under the server's 4 MiB limit of a request body.
const BATCH_BODY_BYTES: usize = 3 * 1024 * 1024;

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tcp_nodelay(true)
        // An advance over a busy day of a large population can take a while.
        .timeout(Duration::from_secs(600))
        .build()?)
}

async fn answer(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    read_answer(send(request, what).await?, what).await
}

async fn send(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<reqwest::Response> {
    request
        .send()
        .await
        .with_context(|| format!("{what}: cannot reach the server"))
}

async fn read_answer(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no message");
        let errors = if body["errors"].is_array() {
            format!(" {}", body["errors"])
        } else {
            String::new()
        };
        bail!("{what}: {status}: {message}{errors}");
    }
    Ok(body)
}
