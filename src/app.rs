//! Building and running a pixmill process from its configuration: connect the backends,
//! start the engine (standalone, worker), serve HTTP (standalone, gateway; the worker serves
//! only its health and metrics), and shut down in the reverse order.

mod auth_setup;
pub mod backends;
mod data_lock;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use pixmill_actors::faults::{FaultPlan, NoFaults};
use pixmill_actors::{Engine, Ports};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::Server;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::api;
use crate::api::health::ReadinessProbes;
use crate::config::Config;
use crate::gateway::{Gateway, OwnerUploads, WaitLimits, Watchers};
use crate::metrics::{Metrics, RuntimeSources};
use crate::webhooks::delivery::WebhookSender;
use crate::webhooks::dispatcher::WebhookDispatcher;
use crate::webhooks::notifier::WebhookNotifier;
use crate::webhooks::WebhookPolicy;

/// Which parts a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Gateway and workers in one process.
    Standalone,
    /// The HTTP API only.
    Gateway,
    /// The pipeline only, with a health and metrics listener.
    Worker,
}

impl Mode {
    fn runs_engine(self) -> bool {
        matches!(self, Mode::Standalone | Mode::Worker)
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::Gateway => "gateway",
            Mode::Worker => "worker",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A gateway's jobs would never reach a worker, and a worker would wait for jobs that
    /// never come: each process would have a queue of its own.
    #[error("`pixmill {0}` needs a job queue shared with the other processes: set PIXMILL_QUEUE__URL (queue.url) to RabbitMQ's amqp:// URL; the in-process queue serves only `pixmill standalone`, where one process takes the uploads and renders them")]
    QueueInProcess(&'static str),
    #[error(transparent)]
    DataLock(#[from] data_lock::DataLockError),
    #[error(transparent)]
    Connect(#[from] backends::ConnectError),
    #[error(transparent)]
    Auth(#[from] auth_setup::AuthSetupError),
    #[error("could not start the engine: {0}")]
    Engine(#[from] pixmill_actors::engine::EngineError),
    #[error("could not listen on {addr}: {source} (choose another address with {setting})")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
        /// Where this process's address is set.
        setting: &'static str,
    },
}

/// Hooks only tests set.
pub struct StartOptions {
    pub faults: Arc<dyn FaultPlan>,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            faults: Arc::new(NoFaults),
        }
    }
}

/// A running process.
pub struct App {
    mode: Mode,
    addr: SocketAddr,
    gateway: Arc<Gateway>,
    engine: Option<Arc<Engine>>,
    server: JoinHandle<std::io::Result<()>>,
    stop_server: oneshot::Sender<()>,
    shutdown_drain: Duration,
    shutdown_grace: Duration,
    shutdown_deadline: Duration,
    /// Present where the engine runs: webhooks go out from the processes that end jobs.
    webhooks: Option<Arc<WebhookDispatcher>>,
    /// Held by a standalone process on the in-process queue: its data folder is its alone.
    _data_lock: Option<data_lock::DataLock>,
}

impl App {
    pub async fn start(
        config: Config,
        mode: Mode,
        options: StartOptions,
    ) -> Result<Self, StartError> {
        let in_process_queue = backends::shared_queue_url(&config).is_none();
        if mode != Mode::Standalone && in_process_queue {
            return Err(StartError::QueueInProcess(mode.name()));
        }
        let data_lock = if in_process_queue {
            Some(data_lock::lock(&config.data_dir)?)
        } else {
            None
        };
        let backends = backends::connect(&config).await?;
        let verifier = auth_setup::verifier(&config, mode)?;
        let upload_capacity = config.server.max_concurrent_uploads.max(1);
        let upload_slots = Arc::new(Semaphore::new(upload_capacity));
        let metric_sources = RuntimeSources::new(upload_slots.clone(), upload_capacity);
        let metrics = Arc::new(Metrics::new(metric_sources.clone()));
        let mut webhooks = None;
        let engine = if mode.runs_engine() {
            let dispatcher = Arc::new(WebhookDispatcher::new(
                backends.metadata.clone(),
                WebhookSender::new(config.webhooks.clone()),
                metrics.clone(),
            ));
            webhooks = Some(dispatcher.clone());
            let events = WebhookNotifier::new(backends.events.clone(), dispatcher);
            let ports = Ports {
                objects: backends.objects.clone(),
                metadata: backends.metadata.clone(),
                queue: backends.queue.clone(),
                events: Arc::new(events),
                metrics: metrics.clone(),
            };
            let mut engine_config = config.engine.clone();
            engine_config.limits = config.limits.clone();
            Some(Arc::new(
                Engine::start(ports, engine_config, options.faults).await?,
            ))
        } else {
            None
        };
        // The view holds the engine weakly: `shutdown` drains the engine only through the
        // one strong reference, which the gateway (alive until the end of `shutdown`) must
        // not share.
        let engine_view: Option<crate::gateway::EngineView> = engine.as_ref().map(|engine| {
            let engine = Arc::downgrade(engine);
            let view: crate::gateway::EngineView = Arc::new(move || {
                engine
                    .upgrade()
                    .map(|engine| engine.snapshot())
                    .unwrap_or_default()
            });
            view
        });
        if let Some(view) = &engine_view {
            metric_sources.attach_engine(view.clone());
        }
        let gateway = Arc::new(Gateway {
            metadata: backends.metadata.clone(),
            objects: backends.objects.clone(),
            queue: backends.queue.clone(),
            cache: backends.cache.clone(),
            limiter: backends.limiter.clone(),
            verifier,
            limits: config.limits.clone(),
            presets: config.presets.clone(),
            upload_role: config.auth.upload_role.clone(),
            admin_role: config.auth.admin_role.clone(),
            publish_grace: config.server.publish_grace,
            upload_slots,
            owner_uploads: OwnerUploads::new(config.server.max_concurrent_uploads_per_owner),
            draining: AtomicBool::new(false),
            engine: engine_view,
            watchers: Watchers::start(backends.feed.clone()),
            events: backends.events.clone(),
            waits: wait_limits(&config),
            metrics,
            webhooks: WebhookPolicy::from_config(&config.webhooks),
            readiness: ReadinessProbes::default(),
        });

        let listen_addr = if mode == Mode::Worker {
            config.worker.admin_addr
        } else {
            config.server.addr
        };
        let acceptor = TcpListener::bind(listen_addr.to_string())
            .into_acceptor()
            .await
            .map_err(|source| StartError::Listen {
                addr: listen_addr,
                source,
                setting: if mode == Mode::Worker {
                    "--admin-addr, or worker.admin_addr / PIXMILL_WORKER__ADMIN_ADDR"
                } else {
                    "--addr, or server.addr / PIXMILL_SERVER__ADDR"
                },
            })?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or(listen_addr);
        let (stop_server, stopped) = oneshot::channel::<()>();
        let grace = config.server.shutdown_grace;
        let server = match mode {
            Mode::Worker => {
                let app = api::worker_admin_app(gateway.clone());
                tokio::spawn(
                    Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                        app,
                        async { drop(stopped.await) },
                        Some(grace),
                    ),
                )
            }
            _ => {
                let app = api::app(gateway.clone(), config.server.request_timeout);
                tokio::spawn(
                    Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                        app,
                        async { drop(stopped.await) },
                        Some(grace),
                    ),
                )
            }
        };

        tracing::info!(
            mode = mode.name(),
            addr = %addr,
            metadata = %backends.metadata.describe(),
            objects = %backends.objects.describe(),
            queue = %backends.queue.describe(),
            cache = %backends.cache.describe(),
            auth = %gateway.verifier.describe(),
            "pixmill started"
        );
        // Last, so a process that failed to start has taken no webhooks.
        if let Some(webhooks) = &webhooks {
            webhooks.start();
        }
        Ok(Self {
            mode,
            addr,
            gateway,
            engine,
            server,
            stop_server,
            shutdown_drain: config.server.shutdown_drain,
            shutdown_grace: grace,
            shutdown_deadline: config.server.shutdown_deadline,
            webhooks,
            _data_lock: data_lock,
        })
    }

    /// The address the HTTP listener is bound to (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Jobs inside this process's pipeline right now.
    pub fn jobs_in_flight(&self) -> usize {
        self.engine.as_ref().map_or(0, |e| e.in_flight())
    }

    /// Stops taking uploads, lets in-flight requests finish, then drains the engine.
    ///
    /// A process serving the API keeps its listener open for `server.shutdown_drain` first,
    /// answering new uploads `503 shutting_down` with `Retry-After` (and `/readyz` 503):
    /// a client that connects now hears a retryable answer instead of a refused
    /// connection. Reads go on being served meanwhile. Not bounded here; see
    /// [`Self::shutdown_within_deadline`].
    pub async fn shutdown(self) {
        tracing::info!(mode = self.mode.name(), drain = ?self.shutdown_drain, "shutting down");
        self.gateway.start_draining();
        if self.mode != Mode::Worker && !self.shutdown_drain.is_zero() {
            tokio::time::sleep(self.shutdown_drain).await;
        }
        let _ = self.stop_server.send(());
        match tokio::time::timeout(self.shutdown_grace + Duration::from_secs(1), self.server).await
        {
            Ok(Ok(Err(error))) => tracing::warn!(error = %error, "HTTP server ended with an error"),
            Err(_) => tracing::warn!("HTTP server did not stop within the grace period"),
            _ => {}
        }
        if let Some(engine) = self.engine {
            match Arc::try_unwrap(engine) {
                Ok(engine) => engine.shutdown().await,
                Err(_) => tracing::warn!("engine still referenced; skipping its drain"),
            }
        }
        if let Some(webhooks) = self.webhooks {
            webhooks.stop().await;
        }
        tracing::info!("stopped");
    }

    /// [`Self::shutdown`], bounded by `server.shutdown_deadline`. Returns false when the
    /// deadline cut it short: something hung, and the caller should exit at once rather
    /// than wait for it (dropping the runtime would wait for blocking tasks forever).
    pub async fn shutdown_within_deadline(self) -> bool {
        let deadline = self.shutdown_deadline;
        match tokio::time::timeout(deadline, self.shutdown()).await {
            Ok(()) => true,
            Err(_) => {
                tracing::error!(deadline = ?deadline, "shutdown overran its deadline; exiting now");
                false
            }
        }
    }

    /// Runs until SIGINT or SIGTERM, then shuts down within the deadline; returns whether
    /// the shutdown finished in time.
    pub async fn run_until_signal(self) -> bool {
        wait_for_signal().await;
        self.shutdown_within_deadline().await
    }
}

/// A long poll must answer before the request timeout cuts it off.
fn wait_limits(config: &Config) -> WaitLimits {
    let below_timeout = config
        .server
        .request_timeout
        .saturating_sub(Duration::from_secs(1));
    let defaults = WaitLimits::default();
    WaitLimits {
        max_wait: defaults.max_wait.min(below_timeout),
        reread: config.server.wait_reread.max(Duration::from_millis(10)),
        ..defaults
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => drop(tokio::signal::ctrl_c().await),
        }
    }
    #[cfg(not(unix))]
    drop(tokio::signal::ctrl_c().await);
}
