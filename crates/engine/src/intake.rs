//! Intake with group commit: HTTP handlers hand over parsed events and wait; one writer thread
//! gathers whatever is waiting into one transaction, commits it (one fsync for many requests)
//! and only then answers each request. An event is acknowledged only once it is durable.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::oneshot;
use waymark_store::{NewEvent, Store, StoreError};

use crate::Wakeup;
use crate::outage::Outage;

/// Upper bound of events in one group commit, to bound transaction size and latency.
const MAX_EVENTS_PER_COMMIT: usize = 20_000;

struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<bool>, IntakeError>>,
}

#[derive(Clone)]
pub struct Intake {
    jobs: mpsc::SyncSender<Job>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum IntakeError {
    #[error("the event store is not accepting events: {0}")]
    Unavailable(String),
    /// The database cannot be reached ([`StoreError::Unavailable`]): the events were not
    /// accepted (or, when the connection was lost during the commit, perhaps they were), and
    /// sending them again once it is back is safe (they are de-duplicated by `messageId`).
    #[error("the event store is not accepting events: database unavailable: {0}")]
    DatabaseUnavailable(String),
}

impl Intake {
    pub fn start(store: Arc<dyn Store>, wakeup: Wakeup) -> Self {
        let (jobs, rx) = mpsc::sync_channel::<Job>(4096);
        std::thread::Builder::new()
            .name("waymark-intake".into())
            .spawn(move || writer_loop(store, rx, wakeup))
            .expect("spawn intake thread");
        Intake { jobs }
    }

    /// Commits the events durably; for each, whether it was new (false: duplicate messageId).
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<bool>, IntakeError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        match self.jobs.try_send(Job { events, reply }) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(job)) => {
                // A full queue means the disk is behind; wait for room off the async threads.
                let jobs = self.jobs.clone();
                tokio::task::spawn_blocking(move || jobs.send(job))
                    .await
                    .map_err(|e| IntakeError::Unavailable(e.to_string()))?
                    .map_err(|_| IntakeError::Unavailable("the writer has stopped".into()))?;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                return Err(IntakeError::Unavailable("the writer has stopped".into()));
            }
        }
        answer
            .await
            .map_err(|_| IntakeError::Unavailable("the writer has stopped".into()))?
    }
}

fn writer_loop(store: Arc<dyn Store>, rx: mpsc::Receiver<Job>, wakeup: Wakeup) {
    // Each request is answered at once, failed or not (its client retries): the writer does
    // not wait for the database, it only logs an outage once rather than per commit.
    let mut outage = Outage::new("group commit");
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let mut count = batch[0].events.len();
        while count < MAX_EVENTS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.events.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        // The events move into one commit (no copy); each request keeps its reply and count.
        let mut all: Vec<NewEvent> = Vec::with_capacity(count);
        let mut replies = Vec::with_capacity(batch.len());
        for job in batch {
            replies.push((job.reply, job.events.len()));
            all.extend(job.events);
        }
        let started = Instant::now();
        let result = store.append_events(&all);
        metrics::histogram!("waymark_ingest_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(fresh) => {
                outage.ended();
                let new = fresh.iter().filter(|f| **f).count() as u64;
                metrics::counter!("waymark_events_ingested_total").increment(new);
                metrics::counter!("waymark_events_duplicate_total")
                    .increment(fresh.len() as u64 - new);
                let mut offset = 0;
                for (reply, n) in replies {
                    let _ = reply.send(Ok(fresh[offset..offset + n].to_vec()));
                    offset += n;
                }
                wakeup.wake();
            }
            Err(e) => {
                outage.failed(&e);
                let answer = match e {
                    StoreError::Unavailable(reason) => IntakeError::DatabaseUnavailable(reason),
                    other => IntakeError::Unavailable(other.to_string()),
                };
                for (reply, _) in replies {
                    let _ = reply.send(Err(answer.clone()));
                }
            }
        }
    }
}
