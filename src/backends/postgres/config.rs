//! How to reach PostgreSQL, and the bounds on every wait.

use std::fmt;
use std::time::Duration;

use pixmill_actors::ports::{BackendError, ErrorKind};
use tokio_postgres::config::Host;

use super::BACKEND;

/// Connection settings for [`super::PostgresStore`].
#[derive(Clone)]
pub struct PostgresConfig {
    /// A `postgres://user:password@host:port/db` URL or a `key=value` string. May hold a
    /// password: it never appears in `Debug` output or in `describe()`.
    pub url: String,
    /// A schema to keep the tables in, created if missing and put first on every pooled
    /// connection's `search_path`. Tests use one per test; production leaves it `None`
    /// (the server's default, usually `public`). Lower-case letters, digits and `_` only.
    pub schema: Option<String>,
    /// Connections the pool opens at most.
    pub pool_size: usize,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// How long a call waits for a free pooled connection.
    pub wait_timeout: Duration,
    /// How long one store call (all its statements) may take; also set as the server's
    /// `statement_timeout`, so a query the client gave up on does not run on.
    pub query_timeout: Duration,
}

impl PostgresConfig {
    /// Settings with the defaults: 16 connections, 5 s to connect or wait, 10 s per call.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(10),
        }
    }

    /// The driver's configuration: the URL plus timeouts, keepalives and session options.
    pub(super) fn driver_config(&self) -> Result<tokio_postgres::Config, BackendError> {
        let mut config: tokio_postgres::Config = self.url.parse().map_err(|e| {
            BackendError::new(BACKEND, ErrorKind::Rejected, "invalid PostgreSQL URL").with_source(e)
        })?;
        let mut options = config.get_options().unwrap_or_default().to_owned();
        if let Some(schema) = &self.schema {
            check_schema_name(schema)?;
            options.push_str(&format!(" -c search_path={schema}"));
        }
        let statement_ms = self.query_timeout.as_millis().max(1);
        options.push_str(&format!(" -c statement_timeout={statement_ms}"));
        // The schema in the application name tells a store's sessions apart in
        // `pg_stat_activity`, for an operator and for tests that cut their own connections.
        let application = match &self.schema {
            Some(schema) => format!("pixmill:{schema}"),
            None => "pixmill".to_owned(),
        };
        config
            .options(options.trim_start())
            .connect_timeout(self.connect_timeout)
            // Keepalives notice a peer that vanished without closing the socket (a host
            // that died): an idle connection to it fails within about a minute (30 s idle,
            // then 3 probes 10 s apart) instead of the system's default of over two hours,
            // so the pool does not keep handing it out. A call in flight is bounded by
            // `query_timeout` either way.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .application_name(&application);
        Ok(config)
    }
}

/// A schema name safe to splice into SQL unquoted.
pub(super) fn check_schema_name(schema: &str) -> Result<(), BackendError> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 {
        return Ok(());
    }
    Err(BackendError::new(
        BACKEND,
        ErrorKind::Rejected,
        "schema names are 1 to 63 characters of a-z, 0-9 and '_', not starting with a digit",
    ))
}

/// Where the store points, without the password.
pub(super) fn describe(config: &tokio_postgres::Config, schema: Option<&str>) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("?");
    let db = config.get_dbname().unwrap_or(user);
    match schema {
        Some(schema) => format!("postgres {user}@{host}:{port}/{db} schema {schema}"),
        None => format!("postgres {user}@{host}:{port}/{db}"),
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_never_shows_the_password() {
        let config = PostgresConfig::new("postgres://app:hunter2@db.local:6543/images");
        let driver = config.driver_config().unwrap();
        let text = describe(&driver, Some("t_1"));
        assert_eq!(text, "postgres app@db.local:6543/images schema t_1");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn schema_names_that_could_inject_sql_are_refused() {
        for bad in ["", "1abc", "a;drop", "A", "a b", &"x".repeat(64)] {
            assert!(check_schema_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_schema_name("pixmill_test_01").is_ok());
    }
}
