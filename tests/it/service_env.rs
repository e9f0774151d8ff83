//! How tests find the real services (PostgreSQL, Redis, RabbitMQ, S3): `PIXMILL_TEST_*`
//! variables, exported by `scripts/test-services.sh`. Under CI (the `CI` variable set) a
//! missing or unreachable service fails the test; elsewhere the test is skipped with a loud
//! note, so a developer without the services can still run the rest.

use std::fmt::Display;

/// Whether a missing service must fail the run.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Gives up on a service: panics under CI, otherwise prints why the test is skipped.
pub fn unavailable(service: &str, why: impl Display) {
    if in_ci() {
        panic!("{service} is required under CI but unavailable: {why}");
    }
    eprintln!("\n!!! SKIPPED: {service} unavailable ({why}); run scripts/test-services.sh\n");
}

/// The value of `var`, or `default` when given; `None` (after [`unavailable`]) otherwise.
pub fn service_url(service: &str, var: &str, default: Option<&str>) -> Option<String> {
    match (std::env::var(var), default) {
        (Ok(url), _) if !url.is_empty() => Some(url),
        (_, Some(default)) => Some(default.to_owned()),
        _ => {
            unavailable(service, format_args!("{var} is not set"));
            None
        }
    }
}

/// The database the PostgreSQL tests use; each test works in a schema of its own.
pub fn postgres_url() -> String {
    std::env::var("PIXMILL_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The Redis server the fast-path tests use; each test works under a key prefix of its own.
pub fn redis_url() -> String {
    std::env::var("PIXMILL_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// A name no other test run uses: `prefix` and 12 random hex digits.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}
