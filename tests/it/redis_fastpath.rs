//! The Redis status cache and upload limit against a real Redis on loopback. Each test
//! works under a key prefix of its own; every key it writes carries a TTL of at most a
//! minute, so nothing outlives the test for long.

use std::time::Duration;

use bb8_redis::redis::{self, AsyncCommands};
use chrono::Utc;
use pixmill::backends::memory_fastpath::RateLimitConfig;
use pixmill::backends::redis::{RedisConfig, RedisConnection, RedisRateLimiter, RedisStatusCache};
use pixmill::fastpath::{Cached, RateDecision, RateLimiter, StatusCache};
use pixmill_actors::ports::ErrorKind;
use pixmill_actors::{
    ImageFormat, ImageId, ImageRecord, JobSpec, OutputSpec, Owner, Pipeline, Status, StoredImage,
};

use crate::service_env::{redis_url, unavailable, unique_name};

const WINDOW: Duration = Duration::from_secs(60);

fn config(prefix: &str) -> RedisConfig {
    RedisConfig {
        key_prefix: prefix.to_owned(),
        timeout: Duration::from_secs(2),
        ..RedisConfig::new(redis_url())
    }
}

/// A connection under `prefix`, or `None` (after a loud skip) when Redis is not there.
async fn connect(prefix: &str) -> Option<RedisConnection> {
    match RedisConnection::connect(&config(prefix)).await {
        Ok(conn) => Some(conn),
        Err(error) if matches!(error.kind, ErrorKind::Unavailable | ErrorKind::Timeout) => {
            unavailable("Redis", &error);
            None
        }
        Err(error) => panic!("connecting to Redis failed: {error}"),
    }
}

/// A plain client for looking at the keys the fast paths wrote.
async fn raw() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

fn record() -> ImageRecord {
    let now = Utc::now();
    let id = ImageId::new();
    ImageRecord {
        id,
        owner: Owner::parse("alice").unwrap(),
        status: Status::Processing,
        spec: JobSpec::single(Pipeline::default_thumbnail(), OutputSpec::default()),
        original: StoredImage {
            key: format!("raw/{id}"),
            format: ImageFormat::Jpeg,
            width: 800,
            height: 600,
            bytes: 4_096,
            sha256: "ef".repeat(32),
            frames: 1,
        },
        variants: Vec::new(),
        error: None,
        attempts: 1,
        created_at: now,
        updated_at: now,
        callback_url: None,
    }
}

fn limit(uploads: u32) -> RateLimitConfig {
    RateLimitConfig {
        uploads,
        window: WINDOW,
    }
}

#[tokio::test]
async fn cache_hits_misses_and_marks_deletes() {
    let prefix = unique_name("it") + ":";
    let Some(conn) = connect(&prefix).await else {
        return;
    };
    let cache = RedisStatusCache::new(conn, Duration::from_secs(300));
    let entry = record();

    assert_eq!(cache.get(entry.id).await.unwrap(), Cached::Unknown);
    cache.put(&entry).await.unwrap();
    assert_eq!(
        cache.get(entry.id).await.unwrap(),
        Cached::Final(Box::new(entry.clone()))
    );

    let key = format!("{prefix}status:{}", entry.id);
    let ttl_ms: i64 = raw().await.pttl(&key).await.unwrap();
    assert!(
        ttl_ms > 30_000 && ttl_ms <= 300_000,
        "entry TTL {ttl_ms} ms"
    );

    cache.mark_deleted(entry.id).await.unwrap();
    assert_eq!(cache.get(entry.id).await.unwrap(), Cached::Deleted);
    // A read that fetched the row before the delete comes back late: still deleted, and
    // the mark keeps its own, shorter expiry.
    cache.put(&entry).await.unwrap();
    assert_eq!(cache.get(entry.id).await.unwrap(), Cached::Deleted);
    let ttl_ms: i64 = raw().await.pttl(&key).await.unwrap();
    assert!(ttl_ms > 0 && ttl_ms <= 90_000, "mark TTL {ttl_ms} ms");
}

#[tokio::test]
async fn an_undecodable_entry_is_a_miss() {
    let prefix = unique_name("it") + ":";
    let Some(conn) = connect(&prefix).await else {
        return;
    };
    let cache = RedisStatusCache::new(conn, Duration::from_secs(30));
    let entry = record();
    let key = format!("{prefix}status:{}", entry.id);
    let _: () = raw().await.set_ex(&key, "{not json", 30).await.unwrap();

    assert_eq!(cache.get(entry.id).await.unwrap(), Cached::Unknown);
    // It is removed, so this version's document can take its place.
    cache.put(&entry).await.unwrap();
    assert_eq!(
        cache.get(entry.id).await.unwrap(),
        Cached::Final(Box::new(entry))
    );
}

#[tokio::test]
async fn the_upload_past_the_limit_is_refused_with_a_retry_time() {
    let Some(conn) = connect(&(unique_name("it") + ":")).await else {
        return;
    };
    let limiter = RedisRateLimiter::new(conn, limit(3));
    let alice = Owner::parse("alice").unwrap();
    let bob = Owner::parse("bob").unwrap();

    for upload in 1..=3 {
        let decision = limiter.check(&alice).await.unwrap();
        assert_eq!(decision, RateDecision::Allowed, "upload {upload}");
    }
    let fourth = limiter.check(&alice).await.unwrap();

    let RateDecision::Limited { retry_after } = fourth else {
        panic!("the fourth upload in a window was allowed");
    };
    // The first upload leaves the window a minute after it was made, a moment ago.
    assert!(
        retry_after <= WINDOW && retry_after > WINDOW / 2,
        "{retry_after:?}"
    );
    assert_eq!(limiter.check(&bob).await.unwrap(), RateDecision::Allowed);
}

#[tokio::test]
async fn the_limit_holds_across_gateways_checking_at_once() {
    const LIMIT: u32 = 10;
    const CHECKS_PER_GATEWAY: usize = 20;
    let prefix = unique_name("it") + ":";
    // Two connections with their own pools stand in for two gateway processes.
    let (Some(first), Some(second)) = (connect(&prefix).await, connect(&prefix).await) else {
        return;
    };
    let gateways = [
        std::sync::Arc::new(RedisRateLimiter::new(first, limit(LIMIT))),
        std::sync::Arc::new(RedisRateLimiter::new(second, limit(LIMIT))),
    ];
    let owner = Owner::parse("carol").unwrap();

    let mut checks = Vec::new();
    for gateway in &gateways {
        for _ in 0..CHECKS_PER_GATEWAY {
            let (gateway, owner) = (gateway.clone(), owner.clone());
            checks.push(tokio::spawn(async move { gateway.check(&owner).await }));
        }
    }
    let mut allowed = 0;
    for check in checks {
        if check.await.unwrap().unwrap() == RateDecision::Allowed {
            allowed += 1;
        }
    }

    assert_eq!(allowed, LIMIT);
}

#[tokio::test]
async fn no_server_is_unavailable() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let config = RedisConfig::new("redis://127.0.0.1:1");

    let error = RedisConnection::connect(&config).await.err().unwrap();

    assert_eq!(error.kind, ErrorKind::Unavailable, "{error}");
}

#[tokio::test]
async fn calls_right_after_a_refused_connection_fail_without_waiting_again() {
    let config = RedisConfig::new("redis://127.0.0.1:1");
    let connection = RedisConnection::open(&config).expect("a well-formed URL");

    let first = connection.ping().await.err().unwrap();
    let second = connection.ping().await.err().unwrap();

    assert_eq!(first.kind, ErrorKind::Unavailable, "{first}");
    // The second call is answered from the first one's failure, not after another wait for
    // the pool (which bb8 would let run to the timeout).
    assert_eq!(second.kind, ErrorKind::Unavailable, "{second}");
    assert!(second.message.contains("fail at once"), "{second}");
}
