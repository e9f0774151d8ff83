//! The per-owner upload limit in Redis: one Lua script per check, so counting and
//! deciding are a single atomic step however many gateways check at once.

use std::time::Duration;

use async_trait::async_trait;
use bb8_redis::redis;
use pixmill_actors::ports::BackendError;
use pixmill_actors::Owner;

use super::RedisConnection;
use crate::backends::memory_fastpath::RateLimitConfig;
use crate::fastpath::{RateDecision, RateLimiter};

/// The check itself; see the script for its arguments and answer.
const SLIDING_WINDOW: &str = include_str!("sliding_window.lua");

/// A [`RateLimiter`] in Redis: a sliding window log per owner, keyed `{prefix}rate:{owner}`,
/// timed by the Redis server's clock.
///
/// The script is sent with every check (`EVAL`, a few hundred bytes) rather than cached with
/// `EVALSHA`, which keeps a restarted Redis (an empty script cache) from failing checks.
/// Memory is one entry per accepted upload inside the window, per owner.
pub struct RedisRateLimiter {
    conn: RedisConnection,
    config: RateLimitConfig,
}

impl RedisRateLimiter {
    pub fn new(conn: RedisConnection, config: RateLimitConfig) -> Self {
        Self { conn, config }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, owner: &Owner) -> Result<RateDecision, BackendError> {
        let window_ms = u64::try_from(self.config.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut command = redis::cmd("EVAL");
        command
            .arg(SLIDING_WINDOW)
            .arg(1)
            .arg(self.conn.key(&["rate", owner.as_str()]))
            .arg(self.config.uploads)
            .arg(window_ms)
            .arg(uuid::Uuid::new_v4().to_string());
        let (allowed, retry_ms): (i64, i64) = self.conn.query(&command).await?;
        if allowed == 1 {
            return Ok(RateDecision::Allowed);
        }
        let retry_after = Duration::from_millis(u64::try_from(retry_ms).unwrap_or(1).max(1));
        Ok(RateDecision::Limited { retry_after })
    }

    fn describe(&self) -> String {
        format!(
            "{} rate limit, {} uploads per {:?}",
            self.conn.description, self.config.uploads, self.config.window
        )
    }
}
