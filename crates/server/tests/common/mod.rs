//! Shared harness for the integration tests: runs the real `waymark` binary on a temporary data
//! directory, talks to it over HTTP, and kills, terminates or restarts it.
//!
//! ```ignore
//! mod common;
//! use common::*;
//! let mut s = Server::start(ServerOptions::default()); // simulated clock
//! s.apply_example("welcome-series");
//! s.identify("u1", json!({"email": "u1@example.com"})).ok();
//! s.track("u1", "Signed Up", json!({})).ok();
//! s.settle();
//! assert_eq!(s.messages("u1").len(), 1);
//! ```
//!
//! With `WAYMARK_TEST_E2E_POSTGRES=1` (and `WAYMARK_TEST_DATABASE_URL`), every server keeps
//! its data in a fresh PostgreSQL schema instead of SQLite (`--database`), so the same tests
//! run on both backends (`scripts/test` runs a subset that way).
//!
//! Every request helper returns a [`Resp`] (status, parsed JSON body, raw text); `Resp::ok()`
//! asserts a 2xx status and hands back the JSON. Helpers that only make sense when they succeed
//! (`advance`, `messages`, `contact_by_user`, `apply_example`, ...) panic with the server's answer
//! when they do not.

#![allow(dead_code)]

pub mod db_proxy;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};
pub use serde_json::{Value, json};

/// The admin token every test server is started with (env `WAYMARK_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The write key every test server is started with (env `WAYMARK_WRITE_KEY`).
pub const WRITE_KEY: &str = "test-write-key-0123456789";

/// How long to wait for the `waymark listening on ...` line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

/// How to start the server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// `--clock simulated` (default) or `--clock system`.
    pub simulated_clock: bool,
    /// Set `WAYMARK_ADMIN_TOKEN` / `WAYMARK_WRITE_KEY` (default true). When false, the server
    /// generates them (and prints them on the first start); the harness's authenticated helpers
    /// then only work after `set_secrets`.
    pub set_secrets: bool,
    /// Extra command-line arguments after `serve ...`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Use this data directory instead of a fresh temporary one (not deleted afterwards).
    pub data_dir: Option<PathBuf>,
    /// Where the server keeps its data.
    pub backend: Backend,
}

/// Where a test server keeps its data.
#[derive(Clone, Debug, Default)]
pub enum Backend {
    /// SQLite in the data directory, or a fresh PostgreSQL schema when end-to-end tests run
    /// on PostgreSQL (see the module docs).
    #[default]
    AsConfigured,
    /// SQLite in the data directory, whatever the tests run on (a test of SQLite itself).
    Sqlite,
    /// This PostgreSQL database (`--database URL`), whatever the tests run on.
    Postgres(String),
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            simulated_clock: true,
            set_secrets: true,
            args: Vec::new(),
            env: Vec::new(),
            data_dir: None,
            backend: Backend::AsConfigured,
        }
    }
}

impl ServerOptions {
    pub fn system_clock() -> Self {
        ServerOptions {
            simulated_clock: false,
            ..Default::default()
        }
    }
}

/// An HTTP answer: status, JSON body (`Value::Null` when the body is not JSON) and raw text.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub json: Value,
    pub text: String,
    pub content_type: Option<String>,
    /// The `Retry-After` header, when there is one.
    pub retry_after: Option<String>,
}

impl Resp {
    /// Asserts a 2xx status and returns the JSON body.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "expected a 2xx answer, got {}: {}",
            self.status,
            self.text
        );
        self.json
    }

    /// Asserts the exact status and returns the JSON body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "expected status {status}, got {}: {}",
            self.status, self.text
        );
        self.json
    }

    /// Asserts an error answer with this status and `code` and returns the JSON body.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status, status,
            "expected status {status} ({code}), got {}: {}",
            self.status, self.text
        );
        assert_eq!(
            self.json["code"], code,
            "expected error code `{code}`: {}",
            self.text
        );
        self.json
    }
}

/// Output the process wrote (stdout and stderr interleaved by arrival), kept for diagnostics.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
    fn push(&self, line: &str) {
        let mut s = self.0.lock().unwrap();
        s.push_str(line);
        s.push('\n');
    }
}

enum DataDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

/// A PostgreSQL schema a test server keeps its data in (see the module docs), dropped with
/// this value.
pub struct Schema {
    base_url: String,
    name: String,
    /// Dropped with the server unless the test gave its own data directory (another server may
    /// open the same one later).
    drop: bool,
}

impl Schema {
    /// A schema for a server on `data`, when end-to-end tests run on PostgreSQL (and the test
    /// did not give the server a `--database` of its own).
    fn for_server(data: &Path, given: bool, args: &[String]) -> Option<Schema> {
        std::env::var_os("WAYMARK_TEST_E2E_POSTGRES")?;
        if args.iter().any(|a| a == "--database") {
            return None;
        }
        let base_url = std::env::var("WAYMARK_TEST_DATABASE_URL")
            .expect("WAYMARK_TEST_E2E_POSTGRES needs WAYMARK_TEST_DATABASE_URL");
        // The data directory's path names the schema, so a second server on the same
        // directory finds the first one's data.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in data.as_os_str().as_encoded_bytes() {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        Some(Schema::create(
            base_url,
            format!("waymark_e2e_{hash:016x}"),
            !given,
        ))
    }

    fn create(base_url: String, name: String, drop: bool) -> Schema {
        let mut client = postgres::Client::connect(&base_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to WAYMARK_TEST_DATABASE_URL: {e}"));
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {name}"))
            .expect("create the test schema");
        Schema {
            base_url,
            name,
            drop,
        }
    }

    /// A new empty schema named after `label`, for a test that picks its own database; `None`
    /// (and a note) when `WAYMARK_TEST_DATABASE_URL` is unset, unless
    /// `WAYMARK_TEST_REQUIRE_POSTGRES` is set, which makes that a failure.
    pub fn fresh(label: &str) -> Option<Schema> {
        let base_url = test_database_url()?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let label: String = label
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(24)
            .collect();
        let name = format!(
            "waymark_e2e_{label}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        Some(Schema::create(base_url, name, true))
    }

    /// A URL whose connections use this schema.
    pub fn url(&self) -> String {
        let separator = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.base_url, self.name
        )
    }
}

/// `WAYMARK_TEST_DATABASE_URL`, or `None` (and a note that the test is skipped) when it is
/// unset, unless `WAYMARK_TEST_REQUIRE_POSTGRES` is set, which makes that a failure.
pub fn test_database_url() -> Option<String> {
    let url = std::env::var("WAYMARK_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(
            std::env::var_os("WAYMARK_TEST_REQUIRE_POSTGRES").is_none(),
            "WAYMARK_TEST_REQUIRE_POSTGRES is set but WAYMARK_TEST_DATABASE_URL is not"
        );
        eprintln!("skipped: set WAYMARK_TEST_DATABASE_URL=postgres://... to run it");
    }
    url
}

/// A fresh PostgreSQL schema of its own, dropped with this value, for a test that starts its
/// server with `--database` itself (e.g. through a [`db_proxy::DbProxy`]), whatever
/// `WAYMARK_TEST_E2E_POSTGRES` says.
pub struct TestDatabase {
    schema: Schema,
}

impl TestDatabase {
    /// A new schema in the database of `WAYMARK_TEST_DATABASE_URL`, or `None` (the test skips,
    /// and says so) without that variable; with `WAYMARK_TEST_REQUIRE_POSTGRES` it is required.
    pub fn create(tag: &str) -> Option<TestDatabase> {
        Schema::fresh(tag).map(|schema| TestDatabase { schema })
    }

    /// The URL of the schema, for `--database`.
    pub fn url(&self) -> String {
        self.schema.url()
    }

    /// The URL of the schema with the server's host and port replaced by `addr`.
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let url = self.url();
        let authority = url.find("://").map_or(0, |at| at + 3);
        let host_start = url[authority..]
            .find('@')
            .map_or(authority, |at| authority + at + 1);
        let host_end = url[host_start..]
            .find(['/', '?'])
            .map_or(url.len(), |at| host_start + at);
        format!("{}{addr}{}", &url[..host_start], &url[host_end..])
    }

    /// The address of the database server.
    pub fn server_addr(&self) -> SocketAddr {
        use std::net::ToSocketAddrs;
        let config: postgres::Config = self.schema.base_url.parse().expect("a PostgreSQL URL");
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            _ => panic!("WAYMARK_TEST_DATABASE_URL must name a TCP host"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        (host.as_str(), port)
            .to_socket_addrs()
            .expect("resolve the database host")
            .next()
            .expect("an address of the database host")
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if self.drop
            && let Ok(mut client) = postgres::Client::connect(&self.base_url, postgres::NoTls)
        {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// A running (or stopped) `waymark serve` process and its data directory. The data directory
/// lives as long as this value, across `kill`/`terminate`/`restart`.
pub struct Server {
    data: DataDir,
    schema: Option<Schema>,
    opts: ServerOptions,
    child: Option<Child>,
    /// The address of the current (or last) process.
    pub addr: SocketAddr,
    /// `http://ADDR`, no trailing slash.
    pub base: String,
    client: Client,
    admin_token: String,
    write_key: String,
    /// Output of the current process.
    output: Output,
    /// Output of every process started on this data dir, in order.
    all_output: Output,
    /// How many processes were started (1 after `start`).
    pub starts: usize,
}

/// Path of the `waymark` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_waymark")
}

/// The repository root (`/work/main`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// An example journey (`examples/journeys/{name}.yaml`) as JSON.
pub fn example_json(name: &str) -> Value {
    let path = repo_root().join(format!("examples/journeys/{name}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

impl Server {
    /// Starts a server on a fresh temporary data directory (or `opts.data_dir`) and waits until
    /// it listens.
    pub fn start(opts: ServerOptions) -> Server {
        let data = match &opts.data_dir {
            Some(p) => DataDir::Given(p.clone()),
            None => DataDir::Temp(
                tempfile::Builder::new()
                    .prefix("waymark-test-")
                    .tempdir()
                    .expect("temporary data dir"),
            ),
        };
        let client = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("HTTP client");
        let data_path = match &data {
            DataDir::Temp(t) => t.path().to_path_buf(),
            DataDir::Given(p) => p.clone(),
        };
        let schema = match opts.backend {
            Backend::AsConfigured => {
                Schema::for_server(&data_path, opts.data_dir.is_some(), &opts.args)
            }
            Backend::Sqlite | Backend::Postgres(_) => None,
        };
        let mut server = Server {
            data,
            schema,
            opts,
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            base: String::new(),
            client,
            admin_token: ADMIN_TOKEN.to_string(),
            write_key: WRITE_KEY.to_string(),
            output: Output::default(),
            all_output: Output::default(),
            starts: 0,
        };
        server.spawn();
        server
    }

    /// Shortcut for `Server::start(ServerOptions::default())` (simulated clock).
    pub fn simulated() -> Server {
        Server::start(ServerOptions::default())
    }

    pub fn data_dir(&self) -> &Path {
        match &self.data {
            DataDir::Temp(t) => t.path(),
            DataDir::Given(p) => p,
        }
    }

    /// The PostgreSQL URL (with its schema) the server keeps its data in, if it does.
    pub fn database_url(&self) -> Option<String> {
        match &self.opts.backend {
            Backend::Postgres(url) => Some(url.clone()),
            _ => self.schema.as_ref().map(Schema::url),
        }
    }

    pub fn options(&self) -> &ServerOptions {
        &self.opts
    }

    /// Changes the secrets the helpers send (e.g. after reading generated ones).
    pub fn set_secrets(&mut self, admin_token: &str, write_key: &str) {
        self.admin_token = admin_token.to_string();
        self.write_key = write_key.to_string();
    }

    /// The process id of the running process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is not running").id()
    }

    /// Output (stdout and stderr) of the current process so far.
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// Waits up to 10 s for the current process to print a line containing `text` (its output
    /// is read by another thread, a moment after it is written); true when it did.
    pub fn wait_for_output(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.output().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.output().contains(text)
    }

    /// Output of every process started on this data directory so far.
    pub fn all_output(&self) -> String {
        self.all_output.text()
    }

    /// The command line used to start the server (without the program).
    fn command(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--data")
            .arg(self.data_dir())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--clock")
            .arg(if self.opts.simulated_clock {
                "simulated"
            } else {
                "system"
            })
            .args(&self.opts.args);
        if let Some(schema) = &self.schema {
            cmd.arg("--database").arg(schema.url());
        }
        if let Backend::Postgres(url) = &self.opts.backend {
            cmd.arg("--database").arg(url);
        }
        for var in [
            "WAYMARK_DATA",
            "WAYMARK_DATABASE_URL",
            "WAYMARK_LISTEN",
            "WAYMARK_CLOCK",
            "WAYMARK_SMTP_URL",
            "WAYMARK_SMS_URL",
            "WAYMARK_ADMIN_TOKEN",
            "WAYMARK_WRITE_KEY",
        ] {
            cmd.env_remove(var);
        }
        if self.opts.set_secrets {
            cmd.env("WAYMARK_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("WAYMARK_WRITE_KEY", WRITE_KEY);
        }
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "a server process is already running");
        let mut child = self.command().spawn().expect("cannot start waymark");
        self.starts += 1;
        self.output = Output::default();
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let out = self.output.clone();
        let all = self.all_output.clone();
        std::thread::spawn(move || drain(stdout, out, all, Some(tx)));
        let out = self.output.clone();
        let all = self.all_output.clone();
        std::thread::spawn(move || drain(stderr, out, all, None));

        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("waymark listening on http://") {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        break addr.parse::<SocketAddr>().unwrap_or_else(|e| {
                            panic!("cannot parse the address in `{line}`: {e}")
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        // Give the drain threads a moment to collect the last output.
                        std::thread::sleep(Duration::from_millis(100));
                        panic!(
                            "waymark exited ({status}) before listening; output:\n{}",
                            self.output.text()
                        );
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "waymark did not print its address within {START_TIMEOUT:?}; output:\n{}",
                            self.output.text()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().expect("wait");
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "waymark closed its stdout ({status}) before listening; output:\n{}",
                        self.output.text()
                    );
                }
            }
        };
        self.addr = addr;
        self.base = format!("http://{addr}");
        self.child = Some(child);
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL (no chance to clean up) and reap. No-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (through the `kill` command) and wait for the exit status (at most 60 s, then
    /// SIGKILL and panic).
    pub fn terminate(&mut self) -> ExitStatus {
        self.terminate_within(Duration::from_secs(60))
            .expect("waymark did not exit within 60 s of SIGTERM")
    }

    /// SIGTERM and wait up to `limit`; `None` (after a SIGKILL) if it did not exit in time.
    pub fn terminate_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("the server is not running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("cannot run `kill`");
        assert!(status.success(), "`kill -TERM {}` failed", child.id());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                // Let the drain threads collect the last lines ("waymark stopped").
                std::thread::sleep(Duration::from_millis(100));
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a new process on the same data directory (new port). A process still running is
    /// killed first (SIGKILL).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    // ---- HTTP ----

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request built by the caller (any method, headers, body) and reads the answer.
    pub fn send(&self, request: RequestBuilder) -> Resp {
        let response = request.send().expect("HTTP request failed");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().expect("response body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            json,
            text,
            content_type,
            retry_after,
        }
    }

    /// A request builder for `method path` without any authentication.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// `GET path` without authentication.
    pub fn get(&self, path: &str) -> Resp {
        self.send(self.request(Method::GET, path))
    }

    /// `method path` with the admin token and an optional JSON body.
    pub fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let mut req = self.request(method, path).bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req)
    }

    pub fn admin_get(&self, path: &str) -> Resp {
        self.admin(Method::GET, path, None)
    }

    pub fn admin_post(&self, path: &str, body: Value) -> Resp {
        self.admin(Method::POST, path, Some(&body))
    }

    pub fn admin_put(&self, path: &str, body: Value) -> Resp {
        self.admin(Method::PUT, path, Some(&body))
    }

    pub fn admin_delete(&self, path: &str, body: Option<Value>) -> Resp {
        self.admin(Method::DELETE, path, body.as_ref())
    }

    /// POST a tracking call (`/v1/track`, `/v1/batch`, ...) with the write key as basic-auth user.
    pub fn ingest(&self, path: &str, body: Value) -> Resp {
        self.send(
            self.request(Method::POST, path)
                .basic_auth(&self.write_key, Some(""))
                .json(&body),
        )
    }

    /// `POST /v1/track` for a user.
    pub fn track(&self, user_id: &str, event: &str, properties: Value) -> Resp {
        self.ingest(
            "/v1/track",
            json!({ "userId": user_id, "event": event, "properties": properties }),
        )
    }

    /// `POST /v1/identify` for a user.
    pub fn identify(&self, user_id: &str, traits: Value) -> Resp {
        self.ingest(
            "/v1/identify",
            json!({ "userId": user_id, "traits": traits }),
        )
    }

    /// `POST /v1/batch` with these calls (each needs its `type`).
    pub fn batch(&self, items: Vec<Value>) -> Resp {
        self.ingest("/v1/batch", json!({ "batch": items }))
    }

    // ---- clock ----

    /// Advances the simulated clock by `seconds`; returns after all work due on the way is done.
    /// Returns the new `now` (RFC 3339).
    #[track_caller]
    pub fn advance(&self, seconds: i64) -> String {
        let body = self
            .admin_post("/v1/clock/advance", json!({ "seconds": seconds }))
            .ok();
        body["now"].as_str().expect("now").to_string()
    }

    /// Processes everything due at the current simulated time (`advance(0)`).
    #[track_caller]
    pub fn settle(&self) {
        self.advance(0);
    }

    /// The server's current time (RFC 3339).
    #[track_caller]
    pub fn now(&self) -> String {
        self.admin_get("/v1/clock").ok()["now"]
            .as_str()
            .expect("now")
            .to_string()
    }

    // ---- reading state ----

    /// Every message of this user (by `user_id`), oldest first.
    #[track_caller]
    pub fn messages(&self, user_id: &str) -> Vec<Value> {
        self.messages_where(&[("user_id", user_id)])
    }

    /// `GET /v1/messages` with these filters (limit 1000), oldest first.
    #[track_caller]
    pub fn messages_where(&self, filters: &[(&str, &str)]) -> Vec<Value> {
        let mut query = String::from("limit=1000");
        for (k, v) in filters {
            query.push('&');
            query.push_str(k);
            query.push('=');
            query.push_str(&encode(v));
        }
        let body = self.admin_get(&format!("/v1/messages?{query}")).ok();
        body["messages"].as_array().expect("messages").clone()
    }

    /// The contact with this `user_id` in full (`GET /v1/contacts/{id}`: traits, lists,
    /// enrollments, ...), or `None`.
    #[track_caller]
    pub fn find_contact_by_user(&self, user_id: &str) -> Option<Value> {
        let body = self
            .admin_get(&format!("/v1/contacts?user_id={}", encode(user_id)))
            .ok();
        let contacts = body["contacts"].as_array().expect("contacts");
        assert!(
            contacts.len() <= 1,
            "several contacts have user_id {user_id}: {contacts:?}"
        );
        let id = contacts.first()?["id"].as_i64().expect("contact id");
        Some(self.contact(id))
    }

    /// The contact with this `user_id` in full; panics if there is none.
    #[track_caller]
    pub fn contact_by_user(&self, user_id: &str) -> Value {
        self.find_contact_by_user(user_id)
            .unwrap_or_else(|| panic!("no contact has user_id `{user_id}`"))
    }

    /// `GET /v1/contacts/{id}`.
    #[track_caller]
    pub fn contact(&self, id: i64) -> Value {
        self.admin_get(&format!("/v1/contacts/{id}")).ok()
    }

    /// The contact's timeline entries, as the API lists them (oldest first).
    #[track_caller]
    pub fn timeline(&self, contact_id: i64) -> Vec<Value> {
        let body = self
            .admin_get(&format!("/v1/contacts/{contact_id}/timeline"))
            .ok();
        body["entries"].as_array().expect("entries").clone()
    }

    /// `GET /v1/journeys/{id}/stats`.
    #[track_caller]
    pub fn stats(&self, journey_id: &str) -> Value {
        self.admin_get(&format!("/v1/journeys/{journey_id}/stats"))
            .ok()
    }

    /// The statistics of one node of a journey (panics if the node is not listed).
    #[track_caller]
    pub fn node_stats(&self, journey_id: &str, node: &str) -> Value {
        let stats = self.stats(journey_id);
        stats["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["node"] == node)
            .cloned()
            .unwrap_or_else(|| panic!("no stats for node `{node}` of `{journey_id}`: {stats}"))
    }

    // ---- public pages and consent ----

    /// A form post (`application/x-www-form-urlencoded`), as a browser sends it.
    pub fn form_post(&self, path: &str, body: &str) -> Resp {
        self.send(
            self.request(Method::POST, path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_string()),
        )
    }

    /// `GET` without following redirects.
    pub fn get_no_redirect(&self, path: &str) -> Resp {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        self.send(client.get(self.url(path)))
    }

    /// The contact's timeline events of this name.
    #[track_caller]
    pub fn events_named(&self, contact_id: i64, name: &str) -> Vec<Value> {
        self.timeline(contact_id)
            .into_iter()
            .filter(|e| e["type"] == "event" && e["name"] == name)
            .collect()
    }

    /// The status of the contact's email subscription to `topic`, if it has a record.
    #[track_caller]
    pub fn subscription_status(&self, contact_id: i64, topic: &str) -> Option<String> {
        self.admin_get(&format!("/v1/contacts/{contact_id}/subscriptions"))
            .ok()["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["channel"] == "email" && x["topic"] == topic)
            .map(|x| x["status"].as_str().unwrap().to_string())
    }

    // ---- journeys ----

    /// Saves a journey draft (`PUT /v1/journeys/{id}`) and publishes it; returns the publish
    /// answer (with `live_version`).
    #[track_caller]
    pub fn apply_journey(&self, doc: Value) -> Value {
        let id = doc["id"].as_str().expect("journey id").to_string();
        let saved = self.admin_put(&format!("/v1/journeys/{id}"), doc).ok();
        assert_eq!(
            saved["valid"], true,
            "journey `{id}` is not valid: {}",
            saved["errors"]
        );
        self.admin_post(&format!("/v1/journeys/{id}/publish"), json!({}))
            .ok()
    }

    /// Saves and publishes `examples/journeys/{name}.yaml` (sent as JSON).
    #[track_caller]
    pub fn apply_example(&self, name: &str) -> Value {
        self.apply_journey(example_json(name))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Before the schema goes (a field, dropped after this).
        self.kill();
    }
}

/// Reads a pipe line by line until it closes, keeping every line; the first channel gets the
/// lines too (so the starter can find the address).
fn drain(pipe: impl Read, out: Output, all: Output, tx: Option<mpsc::Sender<String>>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                out.push(line);
                all.push(line);
                if let Some(tx) = &tx {
                    let _ = tx.send(line.to_string());
                }
            }
        }
    }
}

/// Percent-encodes a query-string value.
/// The first link in `text` starting with `prefix`, up to a quote, `<` or white space.
#[track_caller]
pub fn link_in(text: &str, prefix: &str) -> String {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no `{prefix}` link in {text}"));
    text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect()
}

pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A sign-up of `user`, as one batch (its identify and its track), with fixed message ids so
/// that sending it again is de-duplicated.
pub fn sign_up_batch(user: &str) -> Vec<Value> {
    vec![
        json!({"type": "identify", "userId": user, "messageId": format!("{user}-identify"),
               "traits": {"email": format!("{user}@example.com")}}),
        json!({"type": "track", "userId": user, "messageId": format!("{user}-signed-up"),
               "event": "Signed Up"}),
    ]
}

/// The `node`s of messages, in order.
pub fn nodes_of(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["node"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The `template`s of messages, in order.
pub fn templates_of(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["template"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Milliseconds since the Unix epoch of an RFC 3339 UTC timestamp as the server writes them
/// (`2026-01-02T03:04:05.678Z`, fraction optional, `Z` or `+00:00`).
#[track_caller]
pub fn ts_ms(s: &str) -> i64 {
    parse_ts_ms(s).unwrap_or_else(|| panic!("`{s}` is not an RFC 3339 UTC timestamp"))
}

fn parse_ts_ms(s: &str) -> Option<i64> {
    let body = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = body.split_once('T')?;
    let d = date
        .split('-')
        .map(|p| p.parse::<i64>().ok())
        .collect::<Option<Vec<i64>>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t = hms
        .split(':')
        .map(|p| p.parse::<i64>().ok())
        .collect::<Option<Vec<i64>>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let millis: i64 = if frac.is_empty() {
        0
    } else {
        let f: String = frac.chars().chain("000".chars()).take(3).collect();
        f.parse().ok()?
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0], d[1], d[2]);
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) * 1000) + millis)
}

/// `ts_ms` of a JSON string field.
#[track_caller]
pub fn ms_of(v: &Value) -> i64 {
    ts_ms(v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}")))
}

/// The server's simulated time.
#[track_caller]
pub fn now(s: &Server) -> jiff::Timestamp {
    s.now().parse().expect("now")
}

/// Moves the simulated clock to `at` (which must not be in its past), firing everything due
/// on the way.
#[track_caller]
pub fn advance_to(s: &Server, at: jiff::Timestamp) {
    let seconds = at.as_second() - now(s).as_second();
    assert!(seconds >= 0, "{at} is in the past");
    s.advance(seconds);
}

/// When a message was created (queued).
#[track_caller]
pub fn created_at(m: &Value) -> jiff::Timestamp {
    m["created_at"].as_str().unwrap().parse().unwrap()
}

/// One HTTP/1.1 request read by a test receiver.
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: String,
}

/// Reads one HTTP/1.1 request (the body by `Content-Length`); `None` at the end of the
/// connection or on a malformed request.
pub fn read_request(reader: &mut impl BufRead) -> Option<ReceivedRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = std::collections::BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(ReceivedRequest {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
