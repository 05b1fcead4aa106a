//! The processes figure: cart journeys completed per second with 1, 2 and 3 `waymark serve`
//! processes sharing one PostgreSQL database (docs/scaling.md, "Several processes on one
//! database"). Unlike the other figures, the servers do not run in the bench process: they are
//! child processes of the bench's own binary, started as an operator starts them (each with a
//! data directory of its own), and the bench is their client and the receiver of their
//! webhooks. The children never outlive the figure: they are stopped with SIGTERM at its end,
//! and killed when it fails on the way.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    Api, Figure, Plan, Receiver, api, batch_bodies, buys, cart_user, check_arrivals, emit,
    http_client, ms_between, node_counter, on_scratch_schema, post_batches_to, progress, round,
    webhook_body_of_kind,
};

/// The process counts measured, in this order; the target is on the last one's
/// throughput over the first one's.
const PROCESS_COUNTS: [usize; 3] = [1, 2, 3];
const TARGET_RATIO: f64 = 0.7;
const JOURNEY: &str = "bench-processes";
/// How long a cart waits for its order before the reminder: short, since the figure is about
/// the work a journey costs, not its wait.
const WAIT: Duration = Duration::from_secs(2);
/// The processes' lease time: short, so that the partitions are shared out quickly (a
/// process heartbeats five times per lease time and hands a partition over in two heartbeats).
const LEASE_TIME: &str = "2s";
/// Carts per POST /v1/batch (a buyer's cart is two events).
const CARTS_PER_REQUEST: usize = 50;
/// Concurrent connections offering the carts, the same for every process count.
const CONNECTIONS: usize = 8;
/// A process must print its address within this.
const START_LIMIT: Duration = Duration::from_secs(60);
/// The processes must share the partitions out within this.
const SHARE_LIMIT: Duration = Duration::from_secs(60);
/// The figure fails when no webhook arrives for this long before all have.
const STALL_LIMIT: Duration = Duration::from_secs(120);
/// After the last webhook, the journey's counters must add up within this.
const STATS_LIMIT: Duration = Duration::from_secs(30);
/// A process must exit within this after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// Lines of a process's output kept to explain its failure.
const LOG_LINES: usize = 40;

/// Runs the figure for each process count, each on a fresh schema `{schema_prefix}_{count}` of
/// the database at `url`, and emits a line per count and the ratio of the last to the first.
pub(super) async fn processes(plan: &Plan, url: &str, schema_prefix: &str) -> anyhow::Result<()> {
    let figure = Figure::Processes;
    let exe = std::env::current_exe()
        .context("cannot find the bench's own binary, to start `waymark serve` with it")?;
    let mut rates: Vec<(usize, f64)> = Vec::new();
    for count in PROCESS_COUNTS {
        let schema = format!("{schema_prefix}_{count}");
        let exe = exe.as_path();
        let mut measured = on_scratch_schema(figure, url, schema, |schema_url| async move {
            measure(plan, exe, &schema_url, count).await
        })
        .await
        .with_context(|| format!("with {count} processes"))?;
        if let (Some(&(1, one)), Value::Object(params)) = (rates.first(), &mut measured.params) {
            params.insert(
                "ratio_to_1_process".into(),
                json!(round(measured.per_second / one, 3)),
            );
        }
        emit(
            plan,
            &line_name(count),
            measured.per_second,
            "journeys/s",
            measured.params,
        );
        rates.push((count, measured.per_second));
    }
    let (Some(&(first, one)), Some(&(last, many))) = (rates.first(), rates.last()) else {
        bail!("no process count was measured");
    };
    emit(
        plan,
        &format!("cart_journeys_ratio_{last}_to_{first}_processes"),
        many / one,
        "ratio",
        json!({
            "journeys_per_second": rates
                .iter()
                .map(|(n, r)| (n.to_string(), json!(round(*r, 1))))
                .collect::<serde_json::Map<_, _>>(),
            "measured": format!("{} with {last} processes over {} with {first}", line_name(last), line_name(first)),
            "target": TARGET_RATIO,
        }),
    );
    Ok(())
}

fn line_name(count: usize) -> String {
    match count {
        1 => "cart_journeys_per_second_1_process".into(),
        n => format!("cart_journeys_per_second_{n}_processes"),
    }
}

/// One process count's figure and the parameters of its line.
struct Measured {
    per_second: f64,
    params: Value,
}

/// Starts `count` processes on the database at `url`, offers them the carts and stops them.
async fn measure(plan: &Plan, exe: &Path, url: &str, count: usize) -> anyhow::Result<Measured> {
    let figure = Figure::Processes;
    let receiver = Receiver::start().await?;
    let http = http_client()?;
    let mut cluster = Cluster::new(exe, url, &receiver.host_port)?;
    let measured = async {
        progress(
            figure,
            format!("starting {count} `waymark serve` processes (lease time {LEASE_TIME})"),
        );
        // The journey is published before the others start, so that every process has it
        // loaded from its start (a journey published later reaches the others within half a
        // second, which a cart sent to them at once could miss).
        cluster.start_one().await?;
        cluster
            .api(&http, 0)
            .publish(&cart_journey(&receiver.url))
            .await?;
        for _ in 1..count {
            cluster.start_one().await?;
        }
        let shares = cluster.shared_out(&http).await?;
        progress(
            figure,
            format!("{count} processes hold the partitions {shares:?}"),
        );
        offer_carts(plan, &http, &cluster, &receiver, shares).await
    }
    .await;
    let stopped = cluster.stop().await;
    let measured = measured?;
    stopped?;
    Ok(measured)
}

/// Trigger, a short wait for the order, then one webhook either way: every cart's journey
/// ends with exactly one request to the receiver, whose `kind` says which way it went.
fn cart_journey(receiver: &str) -> Value {
    json!({
        "id": JOURNEY,
        "name": "Bench: cart journeys on several processes",
        "entry": { "reentry": "once" },
        "nodes": [
            { "id": "added-to-cart", "type": "trigger", "event": "Added To Cart" },
            { "id": "wait-for-order", "type": "wait_for_event", "event": "Order Completed",
              "timeout": format!("{}s", WAIT.as_secs()) },
            { "id": "thanks", "type": "webhook", "url": receiver, "body": webhook_body_of_kind("thanks") },
            { "id": "remind", "type": "webhook", "url": receiver, "body": webhook_body_of_kind("remind") },
        ],
        "edges": [
            { "from": "added-to-cart", "to": "wait-for-order" },
            { "from": "wait-for-order", "to": "thanks", "output": "event" },
            { "from": "wait-for-order", "to": "remind", "output": "timeout" },
        ],
    })
}

/// The webhook cart `i`'s journey ends with.
fn kind_of(cart: usize) -> &'static str {
    if buys(cart) { "thanks" } else { "remind" }
}

/// Cart `i`'s events in a batch: `Added To Cart`, and for a buyer `Order Completed` right
/// after it (the engine processes a contact's events in the order they were accepted).
fn cart_events(cart: usize) -> String {
    let user = cart_user(cart);
    let track = |event: &str, id: &str| {
        json!({
            "type": "track",
            "userId": user,
            "event": event,
            "messageId": format!("{user}-{id}"),
            "properties": { "cart_id": user, "value": 42 },
        })
        .to_string()
    };
    let added = track("Added To Cart", "added");
    if buys(cart) {
        format!("{added},{}", track("Order Completed", "order"))
    } else {
        added
    }
}

/// The timed part: offers every cart as fast as the processes accept them, round robin, waits
/// for every journey's webhook and checks them.
async fn offer_carts(
    plan: &Plan,
    http: &reqwest::Client,
    cluster: &Cluster,
    receiver: &Receiver,
    shares: Vec<usize>,
) -> anyhow::Result<Measured> {
    let figure = Figure::Processes;
    let n = plan.process_carts;
    let count = cluster.processes.len();
    let buyers = (0..n).filter(|&i| buys(i)).count();
    let events = n + buyers;
    // Each body holds CARTS_PER_REQUEST carts (a buyer's is two events).
    let bodies = batch_bodies(n, CARTS_PER_REQUEST, cart_events);
    let urls: Vec<String> = cluster
        .processes
        .iter()
        .map(|p| format!("{}/v1/batch", p.base))
        .collect();
    progress(
        figure,
        format!(
            "{n} carts ({buyers} ordered at once, {} reminded after {}s) in {} requests over {CONNECTIONS} connections, round robin over {count} processes",
            n - buyers,
            WAIT.as_secs(),
            bodies.len()
        ),
    );
    let first_post = Timestamp::now();
    let started = Instant::now();
    let posted = post_batches_to(http, &urls, &cluster.write_key, bodies, CONNECTIONS).await?;
    ensure!(
        posted.accepted == events as u64 && posted.duplicates == 0,
        "{} of {events} events accepted ({} duplicates)",
        posted.accepted,
        posted.duplicates
    );
    progress(
        figure,
        format!(
            "all {events} events accepted after {:.1}s; waiting for the {n} webhooks",
            posted.seconds
        ),
    );
    all_arrived(receiver, n, started).await?;
    let stats = journeys_counted(&cluster.api(http, 0), n, buyers).await?;
    let arrivals = receiver.take();
    let expected: HashMap<String, usize> = (0..n).map(|i| (cart_user(i), 1)).collect();
    check_arrivals(&arrivals, &expected, "webhooks (one per cart)")?;
    let kinds: HashMap<String, &str> = (0..n).map(|i| (cart_user(i), kind_of(i))).collect();
    let wrong: Vec<String> = arrivals
        .iter()
        .filter(|a| kinds[&a.user] != a.kind)
        .map(|a| format!("`{}` got `{}`", a.user, a.kind))
        .collect();
    ensure!(
        wrong.is_empty(),
        "{} carts got the wrong webhook (buyers get `thanks`, the others `remind`), e.g. {}",
        wrong.len(),
        wrong[..wrong.len().min(5)].join(", ")
    );

    // A journey is done when its webhook arrives; a reminder's journey spent `WAIT` of that
    // waiting, not working, so it counts as done that much earlier.
    let done_ms = arrivals
        .iter()
        .map(|a| {
            let waited = if a.kind == "remind" {
                WAIT
            } else {
                Duration::ZERO
            };
            ms_between(first_post, a.at) - waited.as_secs_f64() * 1e3
        })
        .fold(f64::NEG_INFINITY, f64::max);
    let last_arrival_ms = arrivals
        .iter()
        .map(|a| ms_between(first_post, a.at))
        .fold(f64::NEG_INFINITY, f64::max);
    let seconds = done_ms / 1e3;
    ensure!(seconds > 0.0, "the journeys took no time ({seconds}s)");
    Ok(Measured {
        per_second: n as f64 / seconds,
        params: json!({
            "processes": count,
            "partitions_held": shares,
            "carts": n,
            "buyers": buyers,
            "reminders": n - buyers,
            "events": events,
            "seconds": round(seconds, 3),
            "last_arrival_seconds": round(last_arrival_ms / 1e3, 3),
            "accepted_seconds": round(posted.seconds, 3),
            "accepted_events_per_second": round(events as f64 / posted.seconds, 1),
            "carts_per_request": CARTS_PER_REQUEST,
            "connections": CONNECTIONS,
            "lease_time": LEASE_TIME,
            "completed": stats["completed"],
            "measured": format!(
                "carts / seconds from the first POST /v1/batch to the last journey's webhook arrival at the receiver, a reminder's journey counted as done {}s (its wait for the order) before its webhook arrived",
                WAIT.as_secs()
            ),
            "journey": format!("trigger (Added To Cart) > wait_for_event (Order Completed, {}s) > event: webhook `thanks`, timeout: webhook `remind`", WAIT.as_secs()),
            "clock": "system",
            "transport": "webhooks from the `waymark serve` child processes to a receiver in the bench process",
        }),
    })
}

/// Waits until `n` webhooks have arrived; fails when none arrives for `STALL_LIMIT`.
async fn all_arrived(receiver: &Receiver, n: usize, started: Instant) -> anyhow::Result<()> {
    let figure = Figure::Processes;
    let (mut seen, mut moved, mut reported) = (0, Instant::now(), Instant::now());
    loop {
        let arrived = receiver.count();
        if arrived >= n {
            return Ok(());
        }
        if arrived > seen {
            (seen, moved) = (arrived, Instant::now());
        }
        ensure!(
            moved.elapsed() < STALL_LIMIT,
            "only {arrived} of {n} webhooks arrived, none in the last {}s",
            STALL_LIMIT.as_secs()
        );
        if reported.elapsed() >= Duration::from_secs(15) {
            reported = Instant::now();
            progress(
                figure,
                format!(
                    "{arrived} of {n} webhooks received after {:.0}s",
                    started.elapsed().as_secs_f64()
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the journey's counters say every cart entered and completed once, with the
/// right webhook sent (a delivery is counted just after its answer), and returns them.
async fn journeys_counted(api: &Api<'_>, n: usize, buyers: usize) -> anyhow::Result<Value> {
    let deadline = Instant::now() + STATS_LIMIT;
    loop {
        let stats = api.stats(JOURNEY).await?;
        let counted = stats["entered"] == json!(n)
            && stats["completed"] == json!(n)
            && stats["active"] == json!(0)
            && node_counter(&stats, "thanks", "sent") == buyers as i64
            && node_counter(&stats, "remind", "sent") == (n - buyers) as i64;
        if counted {
            return Ok(stats);
        }
        ensure!(
            Instant::now() < deadline,
            "the journey's counters do not add up to {n} carts ({buyers} buyers) {}s after the last webhook: {stats}",
            STATS_LIMIT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `waymark serve` processes on one database, started by the bench with the same keys, each
/// on a data directory of its own (under `root`). Dropping it kills the processes still
/// running and removes the data directories.
struct Cluster {
    exe: PathBuf,
    database: String,
    /// The receiver's `HOST:PORT`, which the webhook action may call though it is loopback.
    allow_host: String,
    admin_token: String,
    write_key: String,
    root: PathBuf,
    processes: Vec<ServeProcess>,
}

struct ServeProcess {
    child: Child,
    /// `http://ADDR`, once the process printed it.
    base: String,
    log: Log,
}

impl Cluster {
    fn new(exe: &Path, database: &str, allow_host: &str) -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(format!(
            "waymark-bench-processes-{}-{}",
            std::process::id(),
            api::ingest::random_hex(4)
        ));
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        Ok(Cluster {
            exe: exe.to_path_buf(),
            database: database.to_string(),
            allow_host: allow_host.to_string(),
            admin_token: format!("wm_admin_{}", api::ingest::random_hex(24)),
            write_key: format!("wm_write_{}", api::ingest::random_hex(16)),
            root,
            processes: Vec::new(),
        })
    }

    fn api<'a>(&'a self, http: &'a reqwest::Client, process: usize) -> Api<'a> {
        Api {
            http,
            base: &self.processes[process].base,
            admin_token: &self.admin_token,
        }
    }

    /// Starts one more process and waits for the address it prints.
    async fn start_one(&mut self) -> anyhow::Result<()> {
        let i = self.processes.len();
        let data = self.root.join(format!("process-{i}"));
        let mut cmd = Command::new(&self.exe);
        cmd.arg("serve")
            .arg("--database")
            .arg(&self.database)
            .arg("--data")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--lease-time", LEASE_TIME])
            .arg("--webhook-allow-host")
            .arg(&self.allow_host);
        // The bench's own settings (an SMTP server, another database) are not the children's.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("WAYMARK_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("WAYMARK_ADMIN_TOKEN", &self.admin_token)
            .env("WAYMARK_WRITE_KEY", &self.write_key)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{} serve`", self.exe.display()))?;
        let log = Log::default();
        let (address, printed) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut address = Some(address);
        log.follow(stdout, move |line| {
            if let Some(rest) = line.strip_prefix("waymark listening on http://")
                && let Some(address) = address.take()
            {
                let _ = address.send(rest.split_whitespace().next().unwrap_or_default().into());
            }
        });
        log.follow(stderr, |_| {});
        // Kept before the wait, so that a process that does not come up is stopped too.
        self.processes.push(ServeProcess {
            child,
            base: String::new(),
            log: log.clone(),
        });
        let address = match tokio::time::timeout(START_LIMIT, printed).await {
            Ok(Ok(address)) => address,
            Ok(Err(_)) => {
                // Its last lines may still be on their way.
                tokio::time::sleep(Duration::from_millis(200)).await;
                bail!(
                    "process {i} stopped before listening; its last output:\n{}",
                    log.tail()
                )
            }
            Err(_) => bail!(
                "process {i} did not print its address within {}s; its last output:\n{}",
                START_LIMIT.as_secs(),
                log.tail()
            ),
        };
        self.processes[i].base = format!("http://{address}");
        Ok(())
    }

    /// Waits until the live processes, as many as were started, hold every partition between
    /// them, shared out as evenly as they can be, as `GET /v1/cluster` says; returns the
    /// shares.
    async fn shared_out(&self, http: &reqwest::Client) -> anyhow::Result<Vec<usize>> {
        let n = self.processes.len();
        let deadline = Instant::now() + SHARE_LIMIT;
        loop {
            let cluster = self
                .api(http, 0)
                .admin(reqwest::Method::GET, "/v1/cluster", None)
                .await?;
            let mut shares: Vec<usize> = cluster["processes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["alive"] == json!(true))
                .map(|p| p["partitions"].as_array().map_or(0, Vec::len))
                .collect();
            shares.sort_unstable();
            let partitions = cluster["partitions"].as_u64().unwrap_or(0) as usize;
            let unowned = cluster["unowned"].as_array().map_or(0, Vec::len);
            let even = shares.len() == n
                && shares.iter().sum::<usize>() == partitions
                && partitions > 0
                && unowned == 0
                && shares
                    .last()
                    .zip(shares.first())
                    .is_some_and(|(max, min)| max - min <= 1);
            if even {
                return Ok(shares);
            }
            ensure!(
                Instant::now() < deadline,
                "the {n} processes did not share the partitions out within {}s: {cluster}",
                SHARE_LIMIT.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops every process as an operator does (SIGTERM, then it hands its partitions back
    /// and exits) and checks that each exited cleanly within `STOP_LIMIT`.
    async fn stop(&mut self) -> anyhow::Result<()> {
        for p in &self.processes {
            terminate(&p.child).context("cannot send SIGTERM to a `waymark serve` process")?;
        }
        let deadline = Instant::now() + STOP_LIMIT;
        let mut failures = Vec::new();
        for (i, mut p) in std::mem::take(&mut self.processes).into_iter().enumerate() {
            let status = loop {
                if let Some(status) = p.child.try_wait()? {
                    break Some(status);
                }
                if Instant::now() >= deadline {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            match status {
                Some(status) if status.success() => {}
                Some(status) => failures.push(format!(
                    "process {i} exited with {status}; its last output:\n{}",
                    p.log.tail()
                )),
                None => failures.push(format!(
                    "process {i} did not exit within {}s of SIGTERM (killed); its last output:\n{}",
                    STOP_LIMIT.as_secs(),
                    p.log.tail()
                )),
            }
        }
        ensure!(failures.is_empty(), "{}", failures.join("\n"));
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            eprintln!("bench: could not remove {}: {e}", self.root.display());
        }
    }
}

/// SIGTERM: `waymark serve` finishes its deliveries in flight, hands its partitions back and
/// exits.
#[cfg(unix)]
fn terminate(child: &Child) -> std::io::Result<()> {
    use rustix::process::{Pid, Signal, kill_process};
    Ok(kill_process(Pid::from_child(child), Signal::TERM)?)
}

#[cfg(not(unix))]
fn terminate(_child: &Child) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "stopping a process cleanly needs a Unix signal",
    ))
}

/// The last `LOG_LINES` lines a process wrote (stdout and stderr, by arrival).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<VecDeque<String>>>);

impl Log {
    /// Reads `output` line by line on a thread of its own, keeping each line after showing it
    /// to `see`, until the process closes it.
    fn follow(
        &self,
        output: impl Read + Send + 'static,
        mut see: impl FnMut(&str) + Send + 'static,
    ) {
        let log = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                see(&line);
                let mut lines = log.0.lock().expect("log lock");
                if lines.len() == LOG_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        });
    }

    fn tail(&self) -> String {
        let lines = self.0.lock().expect("log lock");
        lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buyers_cart_is_two_events_in_order_and_the_others_one() {
        let bought: Value = serde_json::from_str(&format!("[{}]", cart_events(0))).unwrap();
        let events: Vec<&str> = bought
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(events, ["Added To Cart", "Order Completed"]);
        let abandoned: Value = serde_json::from_str(&format!("[{}]", cart_events(1))).unwrap();
        assert_eq!(abandoned.as_array().unwrap().len(), 1);
        assert_eq!((kind_of(0), kind_of(1)), ("thanks", "remind"));
    }

    #[test]
    fn lines_are_named_by_process_count() {
        assert_eq!(line_name(1), "cart_journeys_per_second_1_process");
        assert_eq!(line_name(3), "cart_journeys_per_second_3_processes");
    }
}
