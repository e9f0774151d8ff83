//! Connecting every backend named in the configuration, by the scheme of its URL, with a
//! bounded wait for backends that are still starting.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pixmill_actors::events::StatusEvents;
use pixmill_actors::ports::{BackendError, JobQueue, MetadataStore, ObjectStore};

use crate::backends::fs_objects::FsObjectStore;
use crate::backends::memory_events::MemoryEvents;
use crate::backends::memory_fastpath::{MemoryRateLimiter, MemoryStatusCache, RateLimitConfig};
use crate::backends::memory_queue::MemoryQueue;
use crate::backends::postgres::{PostgresConfig, PostgresStore};
use crate::backends::rabbitmq::{RabbitConfig, RabbitQueue};
use crate::backends::redis::{RedisConfig, RedisConnection, RedisRateLimiter, RedisStatusCache};
use crate::backends::redis_events::{RedisEventFeed, RedisEvents};
use crate::backends::s3::{S3Config, S3ObjectStore};
use crate::backends::sqlite::SqliteStore;
use crate::config::{redact_url, Config};
use crate::fastpath::{RateLimiter, StatusCache, StatusFeed};

/// How long start-up keeps trying a backend that does not answer yet.
const CONNECT_PATIENCE: Duration = Duration::from_secs(60);
/// How long final statuses stay in the in-process cache.
const MEMORY_CACHE_TTL: Duration = Duration::from_secs(300);
/// Redis connections of the rate limit's own pool: one call per upload, each a single
/// round trip, so a few serve every upload a gateway admits.
const LIMITER_CONNECTIONS: u32 = 4;

/// Every connected backend.
pub struct Backends {
    pub metadata: Arc<dyn MetadataStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub queue: Arc<dyn JobQueue>,
    pub cache: Arc<dyn StatusCache>,
    pub limiter: Arc<dyn RateLimiter>,
    /// Where the engine publishes status changes, and where waiting clients hear of them:
    /// Redis pub/sub when the cache is Redis, else a channel in this process.
    pub events: Arc<dyn StatusEvents>,
    pub feed: Arc<dyn StatusFeed>,
}

/// The gateway's fast paths, connected together.
struct FastPath {
    cache: Arc<dyn StatusCache>,
    limiter: Arc<dyn RateLimiter>,
    events: Arc<dyn StatusEvents>,
    feed: Arc<dyn StatusFeed>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not start with the {name} backend at {address}: {source}. {hint}")]
pub struct ConnectError {
    pub name: &'static str,
    pub address: String,
    pub hint: &'static str,
    #[source]
    pub source: BackendError,
}

const COMPOSE_HINT: &str = "Is it running? With the compose stack: `docker compose up -d`, then `docker compose ps` to see what is unhealthy.";
/// For a backend that answered and refused: running it is not the fix.
const REFUSED_HINT: &str = "It answered but refused: check its settings and what it says above (a name, a permission, a policy).";

/// Retries `connect` with back-off while the error is transient, for at most
/// [`CONNECT_PATIENCE`]; says which backend and where when it gives up.
async fn patiently<T, F, Fut>(
    name: &'static str,
    address: String,
    connect: F,
) -> Result<T, ConnectError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, BackendError>>,
{
    let deadline = tokio::time::Instant::now() + CONNECT_PATIENCE;
    let mut delay = Duration::from_millis(250);
    loop {
        match connect().await {
            Ok(value) => return Ok(value),
            Err(error)
                if error.is_transient() && tokio::time::Instant::now() + delay < deadline =>
            {
                tracing::warn!(backend = name, address = %address, error = %error, retry_in_ms = delay.as_millis() as u64,
                    "backend not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(source) => {
                let hint = if source.is_transient() {
                    COMPOSE_HINT
                } else {
                    REFUSED_HINT
                };
                return Err(ConnectError {
                    name,
                    address,
                    hint,
                    source,
                });
            }
        }
    }
}

fn scheme(url: &str) -> &str {
    url.split_once("://").map_or("", |(scheme, _)| scheme)
}

pub async fn connect(config: &Config) -> Result<Backends, ConnectError> {
    let metadata = metadata(config).await?;
    let objects = objects(config).await?;
    let queue = queue(config).await?;
    let FastPath {
        cache,
        limiter,
        events,
        feed,
    } = fastpath(config).await?;
    Ok(Backends {
        metadata,
        objects,
        queue,
        cache,
        limiter,
        events,
        feed,
    })
}

async fn metadata(config: &Config) -> Result<Arc<dyn MetadataStore>, ConnectError> {
    let url = config.metadata.url.as_ref().map(|u| u.expose().to_owned());
    match url.as_deref() {
        None => open_sqlite(config.sqlite_path()).await,
        Some(url) if scheme(url) == "sqlite" => {
            open_sqlite(url.trim_start_matches("sqlite://").into()).await
        }
        Some(url) => {
            let mut pg = PostgresConfig::new(url);
            pg.schema = config.metadata.schema.clone();
            if config.metadata.pool_size > 0 {
                pg.pool_size = config.metadata.pool_size;
            }
            let store = patiently("metadata (PostgreSQL)", redact_url(url), || {
                PostgresStore::connect(&pg)
            })
            .await?;
            Ok(Arc::new(store))
        }
    }
}

async fn open_sqlite(path: std::path::PathBuf) -> Result<Arc<dyn MetadataStore>, ConnectError> {
    let address = path.display().to_string();
    let store = patiently("metadata (SQLite)", address, || {
        let path = path.clone();
        async move { SqliteStore::open(&path) }
    })
    .await?;
    Ok(Arc::new(store))
}

async fn objects(config: &Config) -> Result<Arc<dyn ObjectStore>, ConnectError> {
    let store: Arc<dyn ObjectStore> = match config.objects.url.as_deref() {
        None => Arc::new(open_fs(config.objects_root()).await?),
        Some(url) if scheme(url) == "file" => {
            Arc::new(open_fs(url.trim_start_matches("file://").into()).await?)
        }
        Some(url) => {
            let endpoint = match scheme(url) {
                "s3" => url.replacen("s3://", "https://", 1),
                _ => url.to_owned(),
            };
            let mut s3 = S3Config::new(
                endpoint.clone(),
                config.objects.access_key.expose(),
                config.objects.secret_key.expose(),
            );
            if let Some(region) = &config.objects.region {
                s3.region = region.clone();
            }
            s3.bucket_prefix = config.objects.bucket_prefix.clone();
            let store = S3ObjectStore::connect(&s3).map_err(|source| ConnectError {
                name: "objects (S3)",
                address: endpoint.clone(),
                hint: "Check objects.url: http(s)://host:port, and objects.bucket_prefix.",
                source,
            })?;
            Arc::new(store)
        }
    };
    let address = store.describe();
    patiently("objects", address, || store.ensure_buckets()).await?;
    Ok(store)
}

async fn open_fs(root: std::path::PathBuf) -> Result<FsObjectStore, ConnectError> {
    patiently("objects (filesystem)", root.display().to_string(), || {
        FsObjectStore::open(&root)
    })
    .await
}

/// The URL of a job queue shared between processes (RabbitMQ), or `None` when `config`
/// puts the queue inside this process (no `queue.url`, or `memory://`): jobs published
/// there reach only this process's own engine.
pub fn shared_queue_url(config: &Config) -> Option<&str> {
    let url = config.queue.url.as_ref()?.expose();
    (scheme(url) != "memory").then_some(url)
}

async fn queue(config: &Config) -> Result<Arc<dyn JobQueue>, ConnectError> {
    let Some(url) = shared_queue_url(config) else {
        return Ok(Arc::new(MemoryQueue::new()));
    };
    let mut rabbit = RabbitConfig::new(url);
    rabbit.queue = config.queue.name.clone();
    let queue = patiently("queue (RabbitMQ)", redact_url(url), || {
        RabbitQueue::connect(&rabbit)
    })
    .await?;
    Ok(Arc::new(queue))
}

async fn fastpath(config: &Config) -> Result<FastPath, ConnectError> {
    let rate = RateLimitConfig {
        uploads: config.cache.uploads_per_window,
        window: config.cache.window,
    };
    let url = config.cache.url.as_ref().map(|u| u.expose().to_owned());
    match url.as_deref() {
        Some(url) if scheme(url).starts_with("redis") => {
            let mut redis = RedisConfig::new(url);
            redis.key_prefix = config.cache.key_prefix.clone();
            let rejected = |source| ConnectError {
                name: "cache (Redis)",
                address: redact_url(url),
                hint: "Check cache.url: redis://[:password@]host:port[/db].",
                source,
            };
            // Redis is not waited for: it holds no truth, and the gateway fails open without
            // it (see `crate::fastpath`), so an outage must not keep a gateway from starting.
            let connection = RedisConnection::open(&redis).map_err(rejected)?;
            if let Err(error) = connection.ping().await {
                crate::metrics::note_backend_error(&error);
                tracing::error!(redis = %connection.description(), error = %error,
                    "Redis is unreachable; starting without it: uploads are NOT rate limited (fail open), status reads go to the metadata store, until it answers (see /readyz)");
            } else {
                tracing::info!(redis = %connection.description(), "redis fast paths ready");
            }
            // The rate limit gets connections of its own: sharing the cache's, a flood of
            // status reads (anyone's, unlimited) could keep every connection busy past the
            // call timeout, and a limit that cannot be checked lets uploads through.
            let limiter_connection = RedisConnection::open(&RedisConfig {
                pool_size: LIMITER_CONNECTIONS,
                ..redis.clone()
            })
            .map_err(rejected)?;
            let prefix = &config.cache.key_prefix;
            let feed = RedisEventFeed::start(url, prefix).await.map_err(rejected)?;
            Ok(FastPath {
                cache: Arc::new(RedisStatusCache::new(connection.clone(), MEMORY_CACHE_TTL)),
                limiter: Arc::new(RedisRateLimiter::new(limiter_connection, rate)),
                events: Arc::new(RedisEvents::new(connection, prefix)),
                feed,
            })
        }
        _ => {
            let events = Arc::new(MemoryEvents::default());
            Ok(FastPath {
                cache: Arc::new(MemoryStatusCache::new(MEMORY_CACHE_TTL, 10_000)),
                limiter: Arc::new(MemoryRateLimiter::new(rate)),
                events: events.clone(),
                feed: events,
            })
        }
    }
}
