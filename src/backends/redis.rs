//! The production fast paths in Redis, shared by every gateway process: a cache of final
//! status documents with a TTL (filled when a gateway reads one, dropped on delete) and a
//! per-owner upload limit that is atomic across processes.
//!
//! Each uses a [`RedisConnection`] of its own (the limiter's pool is apart, so a flood of
//! status reads cannot starve it): a bb8 pool of multiplexed connections, each checked with
//! a `PING` before use so a restarted Redis is survived, every call (pool wait included)
//! bounded by one timeout, and every key under a configurable prefix.

mod rate_limit;
mod status_cache;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bb8_redis::bb8::{ErrorSink, Pool, RunError};
use bb8_redis::redis::{self, ConnectionAddr, FromRedisValue, IntoConnectionInfo, RedisError};
use bb8_redis::RedisConnectionManager;
use pixmill_actors::ports::{BackendError, ErrorKind};

pub use self::rate_limit::RedisRateLimiter;
pub use self::status_cache::RedisStatusCache;

const BACKEND: &str = "redis";

/// How to reach Redis and how long to wait for it.
#[derive(Clone)]
pub struct RedisConfig {
    /// A `redis://[:password@]host:port[/db]` URL. May hold a password: it never appears
    /// in `Debug` output or in `describe()`.
    pub url: String,
    /// Put in front of every key (`pixmill:` in production); tests use one per test.
    pub key_prefix: String,
    /// Connections the pool opens at most. Each is multiplexed, so a few go a long way.
    pub pool_size: u32,
    /// How long one call waits for a pooled connection, and then for Redis's answer.
    pub timeout: Duration,
}

impl RedisConfig {
    /// Settings with the defaults: prefix `pixmill:`, 8 connections, 1 s per call.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "pixmill:".to_owned(),
            pool_size: 8,
            timeout: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A pool of Redis connections plus the key prefix and the per-call timeout; cheap to
/// clone, so the cache and the event publisher share one.
#[derive(Clone)]
pub struct RedisConnection {
    pool: Pool<RedisConnectionManager>,
    last_connect_error: LastError,
    prefix: String,
    timeout: Duration,
    description: String,
}

impl RedisConnection {
    /// Builds the pool and checks that Redis answers.
    pub async fn connect(config: &RedisConfig) -> Result<Self, BackendError> {
        let connection = Self::open(config)?;
        connection.ping().await?;
        tracing::info!(redis = %connection.description, "redis fast paths ready");
        Ok(connection)
    }

    /// Builds the pool without contacting Redis: connections are opened on first use, and
    /// while Redis is down a call fails (`Unavailable`) after one wait of `timeout`, and
    /// the calls after it at once (see [`FAIL_FAST_FOR`]). Fails only on a malformed URL.
    /// For a process that must start, and fail open, while Redis is unreachable.
    pub fn open(config: &RedisConfig) -> Result<Self, BackendError> {
        let info = config.url.as_str().into_connection_info().map_err(|e| {
            BackendError::new(BACKEND, ErrorKind::Rejected, "invalid Redis URL").with_source(e)
        })?;
        let description = describe(info.addr(), &config.key_prefix);
        let manager = RedisConnectionManager::new(info).map_err(redis_error)?;
        let last_connect_error = LastError::default();
        let pool = Pool::builder()
            .max_size(config.pool_size.max(1))
            .connection_timeout(config.timeout)
            .test_on_check_out(true)
            // Do not retry a refused connection until the timeout: the gateway falls back
            // to the store either way. (The caller waiting for it still waits the timeout;
            // see FAIL_FAST_FOR for the calls after it.)
            .retry_connection(false)
            .error_sink(Box::new(last_connect_error.clone()))
            .build_unchecked(manager);
        Ok(Self {
            pool,
            last_connect_error,
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            description,
        })
    }

    /// What and where, without the password.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Checks that Redis answers within the timeout.
    pub async fn ping(&self) -> Result<(), BackendError> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        match pong.as_str() {
            "PONG" => Ok(()),
            other => Err(BackendError::new(
                BACKEND,
                ErrorKind::Internal,
                format!("unexpected PING answer {other:?}"),
            )),
        }
    }

    /// A key under the configured prefix.
    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        key.push_str(&parts.join(":"));
        key
    }

    /// Runs one command on a pooled connection: at most `timeout` to get the connection,
    /// then at most `timeout` for the answer. While Redis is unreachable, only one call at
    /// a time waits for a connection (see [`LastError::admit`]); the rest fail at once.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, BackendError> {
        let probe = self.last_connect_error.admit()?;
        let asked = Instant::now();
        let got = self.pool.get().await;
        let mut conn = match got {
            Ok(conn) => {
                if let Some(probe) = probe {
                    probe.passed();
                }
                conn
            }
            Err(RunError::User(error)) => return Err(redis_error(error)),
            Err(RunError::TimedOut) => return Err(self.last_connect_error.explain_wait(asked)),
        };
        match tokio::time::timeout(self.timeout, command.query_async(&mut *conn)).await {
            Ok(result) => result.map_err(redis_error),
            Err(_) => Err(BackendError::timeout(BACKEND, "redis call timed out")),
        }
    }
}

/// After a call found Redis unreachable, how long the calls after it fail at once instead
/// of each waiting for a pooled connection. bb8 does not wake a waiting caller when a
/// connection attempt fails (it only tells the error sink), so without this every call
/// during an outage would wait the whole timeout: a second added to every upload and status
/// read, and to every job's status events in a worker. After it, one call at a time tries
/// again while the others still fail at once, until one gets a connection.
const FAIL_FAST_FOR: Duration = Duration::from_secs(1);

/// The pool's most recent failure to open a connection, and whether calls should wait for
/// one. bb8 opens connections in the background and only tells a waiting caller that it
/// timed out; this sink keeps the reason, so a refused connection is reported as
/// `Unavailable`, not as a slow Redis.
#[derive(Clone, Debug, Default)]
struct LastError(Arc<Mutex<Health>>);

#[derive(Debug, Default)]
struct Health {
    /// The last failed connection attempt.
    failure: Option<(Instant, RedisError)>,
    /// When a call last found Redis unreachable; `None` while it is reachable.
    unreachable_since: Option<Instant>,
    /// A call is trying Redis again after [`FAIL_FAST_FOR`].
    probing: bool,
}

impl LastError {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a call may wait for a connection: always while Redis is reachable; while it
    /// is not, one call at a time once [`FAIL_FAST_FOR`] has passed (the probe, returned
    /// here), and no other.
    fn admit(&self) -> Result<Option<Probe<'_>>, BackendError> {
        let mut health = self.health();
        let Some(since) = health.unreachable_since else {
            return Ok(None);
        };
        if since.elapsed() >= FAIL_FAST_FOR && !health.probing {
            health.probing = true;
            return Ok(Some(Probe {
                owner: self,
                passed: false,
            }));
        }
        let reason = health
            .failure
            .as_ref()
            .map_or_else(|| "no answer".to_owned(), |(_, error)| error.to_string());
        Err(BackendError::new(
            BACKEND,
            ErrorKind::Unavailable,
            format!(
                "cannot connect ({reason}, {} ms ago); calls fail at once until a retry gets through",
                since.elapsed().as_millis()
            ),
        ))
    }

    /// Why a wait that began at `asked` timed out: a connection attempt failed meanwhile
    /// (Redis is unreachable: the calls after this one fail at once for a while), or the
    /// pool was simply busy.
    fn explain_wait(&self, asked: Instant) -> BackendError {
        let mut health = self.health();
        let reason = match &health.failure {
            Some((at, error)) if *at >= asked => error.to_string(),
            _ => {
                return BackendError::timeout(BACKEND, "timed out waiting for a pooled connection")
            }
        };
        health.unreachable_since = Some(Instant::now());
        BackendError::new(
            BACKEND,
            ErrorKind::Unavailable,
            format!("cannot connect: {reason}"),
        )
    }
}

/// The one call trying Redis again while it is unreachable. It ends the probe however the
/// call ends, dropped half way included (a cancelled request), so a probe is never stuck.
struct Probe<'a> {
    owner: &'a LastError,
    passed: bool,
}

impl Probe<'_> {
    /// The probe got a connection: Redis is reachable again.
    fn passed(mut self) {
        self.passed = true;
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        let mut health = self.owner.health();
        health.probing = false;
        if self.passed {
            health.unreachable_since = None;
        } else if health.unreachable_since.is_some() {
            // Failed or cancelled: wait a whole interval before the next probe.
            health.unreachable_since = Some(Instant::now());
        }
    }
}

impl ErrorSink<RedisError> for LastError {
    fn sink(&self, error: RedisError) {
        tracing::debug!(%error, "redis connection attempt failed");
        self.health().failure = Some((Instant::now(), error));
    }

    fn boxed_clone(&self) -> Box<dyn ErrorSink<RedisError>> {
        Box::new(self.clone())
    }
}

/// Maps a client error: lost or refused connections are `Unavailable`, timeouts `Timeout`.
fn redis_error(error: RedisError) -> BackendError {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_io_error() || error.is_connection_refusal() || error.is_connection_dropped()
    {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Internal
    };
    BackendError::new(BACKEND, kind, error.to_string()).with_source(error)
}

fn describe(addr: &ConnectionAddr, prefix: &str) -> String {
    let addr = match addr {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (tls)"),
        ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "?".to_owned(),
    };
    format!("redis {addr} prefix {prefix:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn while_redis_is_unreachable_one_call_at_a_time_tries_again() {
        let breaker = LastError::default();
        assert!(
            matches!(breaker.admit(), Ok(None)),
            "reachable: every call waits"
        );

        breaker.health().unreachable_since = Some(Instant::now());
        let refused = breaker.admit().err().unwrap();
        assert_eq!(refused.kind, ErrorKind::Unavailable);

        // Once the interval has passed, one probe goes; the others still fail at once.
        let long_ago = Instant::now().checked_sub(FAIL_FAST_FOR * 2).unwrap();
        breaker.health().unreachable_since = Some(long_ago);
        let probe = breaker.admit().unwrap().expect("a probe");
        assert!(breaker.admit().is_err(), "a second probe at once");
        drop(probe);
        assert!(
            breaker.admit().is_err(),
            "a failed probe waits out another interval"
        );

        breaker.health().unreachable_since = Some(long_ago);
        breaker.admit().unwrap().expect("a probe").passed();
        assert!(matches!(breaker.admit(), Ok(None)), "reachable again");
    }

    #[test]
    fn describe_never_shows_the_password() {
        let config = RedisConfig::new("redis://:hunter2@cache.local:6380/2");
        let info = config.url.as_str().into_connection_info().unwrap();

        let text = describe(info.addr(), &config.key_prefix);

        assert_eq!(text, "redis cache.local:6380 prefix \"pixmill:\"");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
