//! Accepts HTTP connections and serves the API on them with bounded resources: a client that is
//! slow or silent is disconnected, and at most `max_connections` are open at once, so that
//! slow clients cannot exhaust the process's file descriptors or memory.
//!
//! Each connection is in one of three phases, and a watchdog closes it when its phase lasts too
//! long:
//!
//! - **headers**: from the connection's start, or from the first byte of a later request, until
//!   the request's headers are complete: at most `header_timeout`;
//! - **busy**: from complete headers until the response is written. No deadline from the
//!   watchdog; the request *body* must arrive within `body_timeout` of the headers (else the
//!   handler's body read fails and it answers 408);
//! - **idle**: after a response, waiting for the next request on a keep-alive connection: at
//!   most `idle_timeout`.
//!
//! Over the connection limit, a new connection is answered at once with a 503 and closed,
//! rather than left waiting unseen in the kernel's queue.
//!
//! This module must never hold a connection without a deadline unless a handler is working on
//! its request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// The limits of `waymark serve`'s HTTP connections (see the module comment).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// How many refused connections may be waiting, at once, for their 503 to be read before they
/// are closed; beyond it a refused connection is closed without an answer.
const REFUSALS_AT_ONCE: usize = 64;

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests in progress
/// finish (connections idle or still sending headers are closed by their deadlines).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver; `closed()` resolves when the last one ends.
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let app = app.clone();
                let stop = stop_rx.clone();
                let done = done_rx.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, app, limits, stop).await;
                    drop(permit);
                    drop(done);
                });
            }
            Err(_) => refuse(stream, &refusals),
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}

/// An error of `accept`: a connection that was reset before it was accepted is nothing; running
/// out of file descriptors or memory is reported, and the loop pauses so as not to spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    metrics::counter!("waymark_http_accept_errors_total").increment(1);
    tracing::warn!(error = %e, "cannot accept a connection; pausing 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Answers a connection over the limit with a 503 and closes it.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>) {
    metrics::counter!("waymark_http_connections_refused_total").increment(1);
    let Ok(slot) = refusals.clone().try_acquire_owned() else {
        return; // dropping the stream closes it
    };
    tokio::spawn(async move {
        let body = serde_json::json!({
            "message": "the server has too many open connections; retry in a moment",
            "code": "too_many_connections",
            "type": "rate_limit",
            "link": crate::api::error::link("too_many_connections"),
        })
        .to_string();
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut scratch = [0u8; 4096];
        let bounded = async {
            // First the request's headers: a client answered before it has sent its request
            // takes the answer for a protocol error, and closing a socket with unread data
            // resets the connection, losing the answer.
            let mut head: Vec<u8> = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                stream.readable().await?;
                match stream.try_read(&mut scratch) {
                    Ok(0) => return Ok(()),
                    Ok(n) => head.extend_from_slice(&scratch[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await?;
            // Then (briefly) whatever the client still sends, until it closes.
            let mut read = 0usize;
            while read < 64 * 1024 {
                stream.readable().await?;
                match stream.try_read(&mut scratch) {
                    Ok(0) => break,
                    Ok(n) => read += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), bounded).await;
        drop(slot);
    });
}

/// Which deadline a connection is under (see the module comment).
#[derive(Debug, Clone, Copy)]
enum Phase {
    Headers { since: Instant },
    Busy { requests: usize },
    Idle { since: Instant },
}

/// A connection's phase, moved by its reads (the first byte of a request) and by its service
/// (a request begins, a response ends); the watchdog waits on `changed`.
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            phase: Mutex::new(Phase::Headers {
                since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    fn set(&self, update: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().expect("connection phase");
        *phase = update(*phase);
        drop(phase);
        self.changed.notify_one();
    }

    fn bytes_read(&self) {
        let idle = matches!(
            *self.phase.lock().expect("connection phase"),
            Phase::Idle { .. }
        );
        if idle {
            self.set(|p| match p {
                Phase::Idle { .. } => Phase::Headers {
                    since: Instant::now(),
                },
                other => other,
            });
        }
    }

    fn request_started(&self) {
        self.set(|p| match p {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            _ => Phase::Busy { requests: 1 },
        });
    }

    fn response_finished(&self) {
        self.set(|p| match p {
            Phase::Busy { requests } if requests > 1 => Phase::Busy {
                requests: requests - 1,
            },
            _ => Phase::Idle {
                since: Instant::now(),
            },
        });
    }

    /// When the current phase ends the connection, and why; `None` while busy.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        match *self.phase.lock().expect("connection phase") {
            Phase::Headers { since } => Some((since + limits.header_timeout, "header_timeout")),
            Phase::Idle { since } => Some((since + limits.idle_timeout, "idle_timeout")),
            Phase::Busy { .. } => None,
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedIo {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            activity.request_started();
            let guard = ResponseGuard(activity.clone());
            // Handlers see the client's address as axum's `ConnectInfo`.
            request.extensions_mut().insert(ConnectInfo(peer));
            let request =
                request.map(|body| Body::new(DeadlineBody::new(body, limits.body_timeout)));
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap_or_else(|e| match e {});
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(GuardedBody {
                        inner: body,
                        _guard: guard,
                    })
                }))
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(&limits);
        let expired = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = expired => {
                // The phase may have moved on since the deadline was read: check again.
                if let Some((at, reason)) = activity.deadline(&limits)
                    && at <= Instant::now()
                {
                    metrics::counter!("waymark_http_connections_timed_out_total", "reason" => reason)
                        .increment(1);
                    tracing::debug!(%peer, reason, "closing a connection");
                    return;
                }
            }
            () = activity.changed.notified() => {}
            changed = stop.changed(), if !stopping => {
                stopping = true;
                // Shutting down: a request in progress is finished; a connection waiting for
                // one (idle, or slowly sending headers) is closed now.
                if activity.deadline(&limits).is_some() {
                    return;
                }
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive.
struct WatchedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Ends the connection's busy phase when the response has been handed to the socket (hyper
/// drops the body then), or when the request is abandoned.
struct ResponseGuard(Arc<Activity>);

impl Drop for ResponseGuard {
    fn drop(&mut self) {
        self.0.response_finished();
    }
}

/// A response body carrying its connection's [`ResponseGuard`].
struct GuardedBody {
    inner: Body,
    _guard: ResponseGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error of a request body that did not arrive in time; the API answers it with 408.
#[derive(Debug)]
pub struct BodyTimedOut(pub Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} s of its headers",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body that must be complete by a deadline fixed when its headers arrived (one
/// deadline for the whole body, so a client cannot stretch it by sending a byte at a time).
struct DeadlineBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            timeout,
            deadline: Instant::now() + timeout,
            sleep: None,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(self.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the process's open-file soft limit to its hard limit (each connection holds one
/// descriptor; the usual soft limit of 1024 is what ran out) and returns the limit in force.
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), hard) = (limit.current, limit.maximum)
        && hard.is_none_or(|h| h > current)
    {
        // Some systems refuse an unlimited soft limit: cap the wish at a million.
        let wanted = hard.unwrap_or(1 << 20).min(1 << 20).max(current);
        limit.current = Some(wanted);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit from {current}");
        }
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

/// The connection limit that fits the open-file limit: each connection holds a descriptor, and
/// the database, the listener and outgoing connections need some too.
pub fn fit_to_open_files(max_connections: usize, open_files: Option<u64>) -> usize {
    const RESERVED: u64 = 128;
    match open_files {
        Some(limit) if (max_connections as u64).saturating_add(RESERVED) > limit => {
            let fitted = limit.saturating_sub(RESERVED).max(1) as usize;
            tracing::warn!(
                "--max-connections {max_connections} does not fit the open-file limit {limit} \
                 ({RESERVED} are kept for the database and outgoing connections): at most \
                 {fitted} connections; raise `ulimit -n` to allow more"
            );
            fitted
        }
        _ => max_connections,
    }
}
