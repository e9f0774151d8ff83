//! Reaching the real servers the backend tests run against (PostgreSQL, Redis on
//! loopback), and what happens when one is not there.

/// The database the PostgreSQL tests use; each test works in a schema of its own.
pub fn postgres_url() -> String {
    std::env::var("PIXMILL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The Redis server the fast-path tests use; each test works under a key prefix of its own.
pub fn redis_url() -> String {
    std::env::var("PIXMILL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A name no other test (or earlier run) uses, safe as a schema name or key prefix.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Reports a server the test needs but cannot reach. Under CI that fails the test, because
/// CI starts every server; on a developer's machine the test is skipped, loudly.
pub fn unreachable(service: &str, error: &dyn std::fmt::Display) {
    if std::env::var_os("CI").is_some() {
        panic!("{service} is required when CI is set, but unreachable: {error}");
    }
    eprintln!("SKIPPED: {service} is unreachable ({error}); with CI set this test fails");
}
