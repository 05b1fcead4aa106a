//! The private server a simulation runs on: a scratch SQLite store in a temporary directory, the
//! real engine on a simulated clock with transports that only record (nothing is sent, no
//! webhook is called), and the real API on a loopback port. The simulation talks to it over
//! HTTP exactly as it would to a live server started with `--clock simulated`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use waymark_engine::{Clock, Engine, EngineConfig, Transports};
use waymark_store::sqlite::SqliteStore;

use crate::api::{self, AppState, PublicPages, Secrets};
use crate::serve::SendingPolicy;
use crate::simulate::target::Target;

pub struct PrivateServer {
    engine: Arc<Engine>,
    target: Target,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Removed (with the store in it) when the server is dropped.
    _dir: tempfile::TempDir,
}

impl PrivateServer {
    /// Starts it with its clock at `start` and the installation's sending rules.
    pub async fn start(start: Timestamp, policy: &SendingPolicy) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("waymark-simulate-")
            .tempdir()
            .context("cannot make a directory for the simulation's store")?;
        let store =
            SqliteStore::open_scratch(dir.path()).context("cannot open the simulation's store")?;
        let engine = Engine::start(
            Arc::new(store),
            EngineConfig {
                clock: Clock::simulated(start),
                transports: Transports::record_only(),
                tracking: None,
                send_rates: policy.send_rates(),
                frequency_caps: policy.frequency_cap.clone(),
                send_window: policy.send_window()?,
                retry_lifetime: waymark_engine::DEFAULT_RETRY_LIFETIME,
                concurrency: Default::default(),
            },
        )?;
        let secrets = Arc::new(Secrets {
            admin_token: format!("wm_admin_{}", api::ingest::random_hex(24)),
            write_key: format!("wm_write_{}", api::ingest::random_hex(16)),
            inbound_webhook_secret: format!("wm_inbound_{}", api::ingest::random_hex(24)),
        });
        let state = AppState {
            engine: engine.clone(),
            secrets: secrets.clone(),
            metrics: None,
            public: Arc::new(PublicPages::default()),
            policy: Arc::new(policy.clone()),
            simulation: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, api::router(state))
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the simulation's HTTP server failed");
            }
        });
        Ok(PrivateServer {
            engine,
            target: Target::new(&base, &secrets.admin_token, Some(&secrets.write_key))?,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Stops the API and the engine; the store goes with the directory.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            // The client's idle keep-alive connections would hold a graceful shutdown open.
            self.target.drop_connections()?;
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.stop()).await?;
        Ok(())
    }
}
