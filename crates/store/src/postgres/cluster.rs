//! Several processes on one database: the engine's work is partitioned by contact, and each
//! process leases some of the partitions.
//!
//! A contact's partition is its id modulo [`PARTITIONS`]; an event's and a message's partition
//! is fixed when they are written (a merge may later move their contact to another partition).
//! A process that joins ([`PgStore::join_cluster`]) heartbeats its row in `processes` and leases
//! partitions in `partition_leases`: its fair share of them, taking free ones and those whose
//! owner's heartbeat is older than the lease time, and handing back what is over its share when
//! others join. A lease lasts while its owner's heartbeat is fresh, by the database's clock.
//!
//! Correctness does not rest on clocks: every engine transaction that reads partitioned work
//! first locks its partitions' lease rows `FOR SHARE` and works only on those it still owns
//! ([`Scope`]). A takeover updates the lease row, so it waits for such a transaction to end;
//! a process that stalled past its lease finds, at its next transaction, that it owns less.
//! Deliveries happen outside transactions: a process stops starting them when its heartbeat is
//! late ([`Membership::working_partitions`]), before anyone may take its partitions over.
//!
//! A store that has not joined (tests, `waymark migrate`, a single process of old) works on
//! every partition without fencing, as one process did before.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::tx::column;
use super::{PgStore, outside_async};
use crate::{Cluster, ClusterLease, ClusterProcess, ClusterStatus, Result, StoreError};
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::{Client, Transaction};

/// How many partitions the engine's work is divided into. Fixed: the schema's cursors and
/// leases have one row each, and rows carry `contact_id % PARTITIONS`.
pub const PARTITIONS: i16 = 32;

/// The channel on which an append announces new events (`NOTIFY`, with the schema as
/// payload): the processes holding their partitions wake at once instead of at their next poll.
pub(crate) const EVENTS_CHANNEL: &str = "waymark_events";

/// Every partition, for a store that has not joined a cluster.
pub(crate) fn all_partitions() -> Vec<i16> {
    (0..PARTITIONS).collect()
}

/// The partition of a contact's rows.
pub(crate) fn partition_of(contact_id: i64) -> i16 {
    contact_id.rem_euclid(PARTITIONS as i64) as i16
}

/// How a process takes part in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How long a lease outlives its owner's last heartbeat: the longest a partition waits
    /// for a process that died (`--lease-time`, 10 s by default).
    pub lease_time: Duration,
    /// Where this process runs, such that no other process runs there at the same time (the
    /// server uses its host and its locked data directory): a process that finds an earlier
    /// one of its node still holding partitions knows it is dead, and takes them over at once
    /// instead of after the lease time (a restart after a crash).
    pub node: String,
}

/// The lease time when none is given.
pub const DEFAULT_LEASE_TIME: Duration = Duration::from_secs(10);

/// This process's membership: its id, the partitions it holds, and the heartbeat thread.
pub(crate) struct Membership {
    pub(crate) id: String,
    /// Where it runs (see `ClusterOptions::node`), its host and its pid, for `processes`.
    node: String,
    host: String,
    pid: i64,
    lease_time: Duration,
    state: Mutex<Held>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Held {
    /// The partitions this process works on (held, and not being handed back).
    partitions: Vec<i16>,
    /// When a heartbeat last succeeded.
    heard: Option<Instant>,
    /// Partitions over the fair share, taken out of `partitions` at one heartbeat and handed
    /// back at the next, so that deliveries started before have time to end.
    handing_back: Vec<i16>,
}

/// The partitions one engine transaction works on: those this process still holds, locked
/// against takeover until the transaction ends.
pub(crate) struct Scope {
    pub(crate) partitions: Vec<i16>,
}

impl Membership {
    /// How often a heartbeat is sent: often enough that two can be missed before the lease
    /// runs out.
    fn heartbeat_every(&self) -> Duration {
        self.lease_time / 5
    }

    /// How old an owner's last heartbeat must be for its partitions to be taken over: one
    /// heartbeat short of the lease time, so that the takeover (at the taker's next heartbeat)
    /// comes within the lease time.
    fn expiry(&self) -> Duration {
        self.lease_time - self.heartbeat_every()
    }

    /// The partitions this process works on (and whose messages it may start delivering):
    /// none once its heartbeat is late by half the lease time, well before anyone may take
    /// them over.
    pub(crate) fn working_partitions(&self) -> Vec<i16> {
        let held = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match held.heard {
            Some(at) if at.elapsed() < self.lease_time / 2 => held.partitions.clone(),
            _ => Vec::new(),
        }
    }

    /// Locks the lease rows of the partitions this process holds, for the transaction, and
    /// returns those still its own (a takeover may have happened while it stalled).
    pub(crate) fn fence(&self, tx: &mut Transaction<'_>) -> Result<Scope> {
        let wanted = self.working_partitions();
        if wanted.is_empty() {
            return Ok(Scope {
                partitions: Vec::new(),
            });
        }
        let rows = tx.query(
            "SELECT partition FROM partition_leases
             WHERE owner = $1 AND partition = ANY($2) ORDER BY partition FOR SHARE",
            &[&self.id, &wanted],
        )?;
        let partitions = rows
            .iter()
            .map(|r| column(r, 0))
            .collect::<Result<Vec<i16>>>()?;
        if partitions.len() < wanted.len() {
            // Lost while this process stalled: the next heartbeat learns what it holds.
            let mut held = self.state.lock().unwrap_or_else(|e| e.into_inner());
            held.partitions.retain(|p| partitions.contains(p));
        }
        Ok(Scope { partitions })
    }

    /// One heartbeat: says this process is alive, hands back what was over its share at the
    /// previous heartbeat, takes partitions up to its fair share (counting and logging those
    /// taken over from a process that stopped heartbeating).
    fn beat(&self, client: &mut Client) -> Result<()> {
        let mut tx = client.transaction()?;
        // Written again if it went (a process cut off for long is removed from the list): a
        // lease is only as good as its owner's row.
        tx.execute(
            "INSERT INTO processes (id, node, host, pid, started_at, heartbeat_at)
             VALUES ($1, $2, $3, $4, clock_timestamp(), clock_timestamp())
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = clock_timestamp()",
            &[&self.id, &self.node, &self.host, &self.pid],
        )?;
        let lease = self.expiry().as_secs_f64();
        let handing_back = std::mem::take(
            &mut self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .handing_back,
        );
        // Processes gone for long (killed, never back) leave the list once they hold nothing.
        tx.execute(
            "DELETE FROM processes p WHERE heartbeat_at < clock_timestamp() - interval '10 minutes'
             AND NOT EXISTS (SELECT 1 FROM partition_leases l WHERE l.owner = p.id)",
            &[],
        )?;
        if !handing_back.is_empty() {
            tx.execute(
                "UPDATE partition_leases SET owner = NULL, acquired_at = NULL
                 WHERE owner = $1 AND partition = ANY($2)",
                &[&self.id, &handing_back],
            )?;
        }
        let alive: i64 = column(
            &tx.query_one(
                "SELECT COUNT(*) FROM processes
                 WHERE heartbeat_at > clock_timestamp() - make_interval(secs => $1)",
                &[&lease],
            )?,
            0,
        )?;
        let share = (PARTITIONS as i64 + alive.max(1) - 1) / alive.max(1);
        let held = tx
            .query(
                "SELECT partition FROM partition_leases WHERE owner = $1 ORDER BY partition",
                &[&self.id],
            )?
            .iter()
            .map(|r| column(r, 0))
            .collect::<Result<Vec<i16>>>()?;
        let mut taken = Vec::new();
        if (held.len() as i64) < share {
            // Free partitions, and those of processes whose lease ran out; one locked by
            // its owner's running transaction is skipped until the next heartbeat.
            let rows = tx.query(
                "WITH free AS (
                     SELECT l.partition, l.owner AS previous, p.heartbeat_at AS last_heard
                     FROM partition_leases l LEFT JOIN processes p ON p.id = l.owner
                     WHERE l.owner IS NULL OR p.id IS NULL
                        OR p.heartbeat_at <= clock_timestamp() - make_interval(secs => $2)
                     ORDER BY l.partition LIMIT $3
                     FOR UPDATE OF l SKIP LOCKED)
                 UPDATE partition_leases l SET owner = $1, acquired_at = clock_timestamp()
                 FROM free WHERE l.partition = free.partition
                 RETURNING l.partition, free.previous,
                     EXTRACT(EPOCH FROM clock_timestamp() - free.last_heard)::FLOAT8",
                &[&self.id, &lease, &(share - held.len() as i64)],
            )?;
            for row in &rows {
                let partition: i16 = column(row, 0)?;
                let previous: Option<String> = column(row, 1)?;
                let after: Option<f64> = column(row, 2)?;
                taken.push(partition);
                if let (Some(previous), Some(after)) = (previous, after) {
                    metrics::counter!("waymark_partition_takeovers_total").increment(1);
                    metrics::histogram!("waymark_partition_takeover_seconds").record(after);
                    tracing::warn!(
                        partition,
                        from = %previous,
                        seconds_since_heard = after,
                        "took over a partition whose process stopped heartbeating"
                    );
                }
            }
        }
        tx.commit()?;
        let mut now_held: Vec<i16> = held.into_iter().chain(taken).collect();
        now_held.sort_unstable();
        // Over the fair share (a process joined): the highest partitions stop being worked
        // on now and are handed back at the next heartbeat.
        let over = now_held.len().saturating_sub(share as usize);
        let handing: Vec<i16> = now_held.split_off(now_held.len() - over);
        metrics::gauge!("waymark_partitions_held").set(now_held.len() as f64);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.partitions = now_held;
        state.handing_back = handing;
        state.heard = Some(Instant::now());
        Ok(())
    }

    fn run(self: Arc<Self>, mut client: Option<Client>, store: Arc<PgStore>) {
        loop {
            let beat = match client.as_mut() {
                Some(c) => self.beat(c),
                None => Err(StoreError::Unavailable("no connection".into())),
            };
            if let Err(e) = beat {
                tracing::warn!(error = %e, "cluster heartbeat failed; retrying");
                client = store.connect().ok();
            }
            let (stopped, cv) = &*self.stop;
            let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, _) = cv
                .wait_timeout_while(guard, self.heartbeat_every(), |stopped| !*stopped)
                .unwrap_or_else(|e| e.into_inner());
            if *guard {
                break;
            }
        }
        // Leaving: what this process held is free at once.
        if let Some(client) = client.as_mut() {
            let left = client
                .execute(
                    "UPDATE partition_leases SET owner = NULL, acquired_at = NULL WHERE owner = $1",
                    &[&self.id],
                )
                .and_then(|_| client.execute("DELETE FROM processes WHERE id = $1", &[&self.id]));
            if let Err(e) = left {
                tracing::warn!(error = %e, "could not hand the partitions back; they free up when the lease runs out");
            }
        }
    }
}

impl PgStore {
    /// Joins the processes that share the engine's work on this database: this process
    /// heartbeats, leases its fair share of the partitions, and from now on works only on
    /// those. Returns when the first heartbeat is done (so the process holds its share, if
    /// the others left it free).
    pub fn join_cluster(self: &Arc<Self>, options: ClusterOptions) -> Result<()> {
        let host = crate::concerns::this_host();
        let pid = std::process::id() as i64;
        // Host and pid, and the start time, since a restarted container may reuse the pid.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let id = format!("{host}:{pid}:{started:x}");
        let membership = Arc::new(Membership {
            id: id.clone(),
            node: options.node.clone(),
            host: host.clone(),
            pid,
            lease_time: options.lease_time,
            state: Mutex::new(Held::default()),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            thread: Mutex::new(None),
        });
        let client = outside_async(|| {
            let mut client = self.connect()?;
            let mut tx = client.transaction()?;
            // An earlier process of this node is dead (the node is this one's now): what it
            // still holds is taken over now, not when its lease runs out.
            let taken = tx.query(
                "WITH dead AS (DELETE FROM processes WHERE node = $1
                               RETURNING id, heartbeat_at)
                 UPDATE partition_leases l SET owner = NULL, acquired_at = NULL
                 FROM dead WHERE l.owner = dead.id
                 RETURNING l.partition,
                     EXTRACT(EPOCH FROM clock_timestamp() - dead.heartbeat_at)::FLOAT8",
                &[&options.node],
            )?;
            if !taken.is_empty() {
                let after = taken
                    .iter()
                    .map(|r| column::<f64>(r, 1))
                    .collect::<Result<Vec<f64>>>()?
                    .into_iter()
                    .fold(0.0, f64::max);
                metrics::counter!("waymark_partition_takeovers_total")
                    .increment(taken.len() as u64);
                metrics::histogram!("waymark_partition_takeover_seconds").record(after);
                tracing::warn!(
                    partitions = taken.len(),
                    seconds_since_heard = after,
                    "took over the partitions of this node's previous process, which stopped without handing them back"
                );
            }
            tx.execute(
                "INSERT INTO processes (id, node, host, pid, started_at, heartbeat_at)
                 VALUES ($1, $2, $3, $4, clock_timestamp(), clock_timestamp())",
                &[&id, &options.node, &host, &pid],
            )?;
            tx.commit()?;
            membership.beat(&mut client)?;
            Ok::<_, StoreError>(client)
        })?;
        let running = membership.clone();
        let store = self.clone();
        let thread = std::thread::Builder::new()
            .name("waymark-cluster".into())
            .spawn(move || running.run(Some(client), store))
            .map_err(|e| StoreError::Database(format!("cannot start the heartbeat: {e}")))?;
        *membership.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        *self.membership.lock().unwrap_or_else(|e| e.into_inner()) = Some(membership);
        Ok(())
    }

    /// Leaves the cluster: the partitions this process held are free for the others at once.
    /// Call after the engine stopped and its deliveries ended.
    pub fn leave_cluster(&self) {
        let Some(membership) = self
            .membership
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let (stopped, cv) = &*membership.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(thread) = membership
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = thread.join();
        }
    }

    pub(crate) fn membership(&self) -> Option<Arc<Membership>> {
        self.membership
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The partitions this process works on: whose timers wake it, whose messages it
    /// delivers.
    pub(crate) fn working_partitions(&self) -> Vec<i16> {
        match self.membership() {
            Some(m) => m.working_partitions(),
            None => all_partitions(),
        }
    }
}

impl Cluster for PgStore {
    fn on_events_elsewhere(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let closed = self.closed.clone();
        let listen = move || -> Result<(Client, String)> {
            let mut client = match tls.clone() {
                Some(tls) => config.connect(tls)?,
                None => config.connect(::postgres::NoTls)?,
            };
            let schema: String =
                column(&client.query_one("SELECT current_schema()::TEXT", &[])?, 0)?;
            client.batch_execute(&format!("LISTEN {EVENTS_CHANNEL}"))?;
            Ok((client, schema))
        };
        let spawned = std::thread::Builder::new()
            .name("waymark-listen".into())
            .spawn(move || {
                let mut listening: Option<(Client, String)> = None;
                while !closed.load(std::sync::atomic::Ordering::SeqCst) {
                    let Some((client, schema)) = listening.as_mut() else {
                        listening = listen().ok();
                        if listening.is_none() {
                            // Unreachable for now: polling still finds the events.
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        continue;
                    };
                    let next = client
                        .notifications()
                        .timeout_iter(Duration::from_secs(1))
                        .next();
                    let lost = match next {
                        Ok(Some(n)) => {
                            if n.payload() == schema.as_str() {
                                wake();
                            }
                            false
                        }
                        Ok(None) => false,
                        Err(_) => true,
                    };
                    if lost {
                        listening = None;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot listen for events accepted by other processes; polling for them");
        }
    }

    fn cluster(&self) -> Result<ClusterStatus> {
        let membership = self.membership();
        let (lease_time, expiry) = match &membership {
            Some(m) => (m.lease_time, m.expiry()),
            None => (DEFAULT_LEASE_TIME, DEFAULT_LEASE_TIME * 4 / 5),
        };
        outside_async(|| {
            let mut conn = self.conn()?;
            let lease = expiry.as_secs_f64();
            let mut processes: Vec<ClusterProcess> = conn
                .query(
                    "SELECT id, host, pid, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                            EXTRACT(EPOCH FROM clock_timestamp() - heartbeat_at)::FLOAT8
                     FROM processes ORDER BY started_at, id",
                    &[],
                )?
                .iter()
                .map(|r| {
                    let id: String = column(r, 0)?;
                    let age: f64 = column(r, 4)?;
                    Ok(ClusterProcess {
                        this_process: membership.as_ref().is_some_and(|m| m.id == id),
                        id,
                        host: column(r, 1)?,
                        pid: column(r, 2)?,
                        started_at: column(r, 3)?,
                        heartbeat_age_seconds: age,
                        alive: age < lease,
                        partitions: Vec::new(),
                    })
                })
                .collect::<Result<_>>()?;
            let mut unowned = Vec::new();
            for row in conn.query(
                "SELECT partition, owner,
                        EXTRACT(EPOCH FROM clock_timestamp() - acquired_at)::FLOAT8
                 FROM partition_leases ORDER BY partition",
                &[],
            )? {
                let partition: i16 = column(&row, 0)?;
                let owner: Option<String> = column(&row, 1)?;
                let holder = owner
                    .as_ref()
                    .and_then(|o| processes.iter_mut().find(|p| &p.id == o && p.alive));
                match holder {
                    Some(process) => process.partitions.push(ClusterLease {
                        partition,
                        held_seconds: column::<Option<f64>>(&row, 2)?.unwrap_or(0.0),
                    }),
                    None => unowned.push(partition),
                }
            }
            Ok(ClusterStatus {
                partitions: PARTITIONS,
                lease_time_seconds: lease_time.as_secs_f64(),
                processes,
                unowned,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use jiff::Timestamp;
    use serde_json::Map;
    use waymark_core::EventKind;

    use super::super::test_support::TestDatabase;
    use super::*;
    use crate::prelude::*;
    use crate::{NewEvent, StoredEvent};

    fn join(store: &Arc<PgStore>, node: &str) {
        store
            .join_cluster(ClusterOptions {
                lease_time: Duration::from_secs(1),
                node: node.into(),
            })
            .expect("joins");
    }

    fn held(store: &PgStore) -> Vec<i16> {
        store.membership().expect("joined").working_partitions()
    }

    #[track_caller]
    fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "not within 10 s: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pending(store: &PgStore) -> Vec<StoredEvent> {
        let mut out = Vec::new();
        store
            .engine_tx(&mut |tx| {
                out = tx.pending_events(i64::MAX, 1_000)?;
                Ok(())
            })
            .unwrap();
        out
    }

    /// Two stores on one schema stand for two processes.
    #[test]
    fn processes_split_the_partitions_work_only_on_theirs_and_lose_a_taken_one_at_once() {
        let Some(db) = TestDatabase::create("cluster_split") else {
            return;
        };
        let (a, b) = (Arc::new(db.open()), Arc::new(db.open()));
        join(&a, "a");
        assert_eq!(held(&a).len(), 32, "alone, it holds every partition");
        join(&b, "b");
        wait_until("16 each", || held(&a).len() == 16 && held(&b).len() == 16);
        let (ha, hb) = (held(&a), held(&b));
        assert!(ha.iter().all(|p| !hb.contains(p)), "{ha:?} {hb:?}");

        // Each works on the events of its own partitions only.
        let events: Vec<NewEvent> = (0..64)
            .map(|i| NewEvent {
                message_id: format!("m{i}"),
                kind: EventKind::Track,
                name: "Go".into(),
                user_id: Some(format!("user-{i}")),
                anonymous_id: None,
                previous_id: None,
                properties: Map::new(),
                timestamp: Timestamp::UNIX_EPOCH,
                received_at: Timestamp::UNIX_EPOCH,
            })
            .collect();
        a.append_events(&events).unwrap();
        let (on_a, on_b) = (pending(&a), pending(&b));
        assert_eq!(on_a.len() + on_b.len(), 64);
        let partition = |e: &StoredEvent| partition_of(e.contact_id.expect("routed"));
        assert!(on_a.iter().all(|e| ha.contains(&partition(e))));
        assert!(on_b.iter().all(|e| hb.contains(&partition(e))));

        // A partition taken from A (as a takeover after A stalled would) is not A's to work on
        // from its next transaction on.
        let taken = ha[0];
        a.conn()
            .unwrap()
            .execute(
                "UPDATE partition_leases SET owner = 'someone-else' WHERE partition = $1",
                &[&taken],
            )
            .unwrap();
        assert!(
            pending(&a).iter().all(|e| partition(e) != taken),
            "fenced out of partition {taken}"
        );
        assert!(!held(&a).contains(&taken));

        // B leaves: A takes everything at its next heartbeat (the stolen partition too, whose
        // "owner" never heartbeats).
        b.leave_cluster();
        wait_until("A holds all", || held(&a).len() == 32);
        assert_eq!(pending(&a).len(), 64);
        let status = a.cluster().unwrap();
        assert_eq!(status.processes.len(), 1, "{status:?}");
        assert!(status.processes[0].this_process);
        assert!(status.unowned.is_empty());
        a.leave_cluster();
    }

    /// A process starting on the node of one that died takes its partitions at once.
    #[test]
    fn a_restart_on_the_same_node_takes_its_predecessors_partitions_at_once() {
        let Some(db) = TestDatabase::create("cluster_restart") else {
            return;
        };
        // A process of node-1 that died a moment ago, holding every partition (its heartbeat
        // is fresh: its lease would hold for ten minutes).
        let first = db.open();
        first
            .conn()
            .unwrap()
            .batch_execute(
                "INSERT INTO processes (id, node, host, pid, started_at, heartbeat_at)
                 VALUES ('dead', 'node-1', 'h', 1, now(), now());
                 UPDATE partition_leases SET owner = 'dead', acquired_at = now();",
            )
            .unwrap();
        let second = Arc::new(db.open());
        second
            .join_cluster(ClusterOptions {
                lease_time: Duration::from_secs(600),
                node: "node-1".into(),
            })
            .unwrap();
        assert_eq!(held(&second).len(), 32);
        let stranger = Arc::new(db.open());
        stranger
            .join_cluster(ClusterOptions {
                lease_time: Duration::from_secs(600),
                node: "node-2".into(),
            })
            .unwrap();
        assert!(
            held(&stranger).is_empty(),
            "another node waits for the lease"
        );
    }
}
