//! How driver and pool failures map onto the ports' error kinds.

use std::error::Error as StdError;

use deadpool_postgres::{PoolError, TimeoutType};
use pixmill_actors::ports::{BackendError, ErrorKind};

use super::BACKEND;

/// Maps a driver error: a lost connection or a server that is shutting down is
/// `Unavailable`, a cancelled statement (our `statement_timeout`) is `Timeout`, a violated
/// constraint is `Rejected`. Only an error the server reported about the statement itself
/// (see [`statement_rolled_back`]) is marked as having changed nothing; a lost connection
/// may have lost the reply to a commit.
pub fn pg_error(error: tokio_postgres::Error) -> BackendError {
    let closed = error.is_closed() || has_io_source(&error);
    let kind = if closed {
        ErrorKind::Unavailable
    } else {
        error
            .code()
            .map_or(ErrorKind::Internal, |code| kind_of_sqlstate(code.code()))
    };
    let rolled_back = !closed
        && error
            .code()
            .is_some_and(|c| statement_rolled_back(c.code()));
    let mapped = BackendError::new(BACKEND, kind, describe(&error)).with_source(error);
    if rolled_back {
        mapped.not_applied()
    } else {
        mapped
    }
}

/// What went wrong, in the server's own words when it answered (the driver's `Display`
/// says only "db error"), else with every cause ("error connecting to server: Connection
/// refused").
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Maps a pool error. Waiting for a free connection past the bound is `Timeout`; failing
/// to open one is `Unavailable`. Either way no statement of ours reached the server, so the
/// call changed nothing.
pub fn pool_error(error: PoolError) -> BackendError {
    let mapped = match error {
        PoolError::Backend(error) => pg_error(error),
        PoolError::Timeout(TimeoutType::Wait) => {
            BackendError::timeout(BACKEND, "timed out waiting for a pooled connection")
        }
        PoolError::Timeout(TimeoutType::Create) => BackendError::new(
            BACKEND,
            ErrorKind::Unavailable,
            "timed out opening a connection",
        ),
        PoolError::Timeout(TimeoutType::Recycle) => {
            BackendError::timeout(BACKEND, "timed out checking a pooled connection")
        }
        PoolError::Closed => {
            BackendError::new(BACKEND, ErrorKind::Unavailable, "connection pool closed")
        }
        other => BackendError::new(BACKEND, ErrorKind::Internal, other.to_string()),
    };
    mapped.not_applied()
}

/// Whether a SQLSTATE the server answered a statement with means that statement (an
/// autocommit one: every write here is) was rolled back. Connection exceptions (08),
/// operator intervention (57: a shutdown or a cancel), resource (53), system (58) and
/// internal (XX) errors can arrive after a commit whose reply they cut off, so they leave
/// the outcome unknown.
fn statement_rolled_back(code: &str) -> bool {
    !["08", "57", "53", "58", "XX"]
        .iter()
        .any(|class| code.starts_with(class))
}

fn has_io_source(error: &tokio_postgres::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

fn kind_of_sqlstate(code: &str) -> ErrorKind {
    match code {
        // Connection exceptions, the server shutting down or starting, too many clients,
        // bad credentials, a missing database: the server is not usable from here.
        c if c.starts_with("08") || c.starts_with("28") => ErrorKind::Unavailable,
        "57P01" | "57P02" | "57P03" | "53300" | "3D000" => ErrorKind::Unavailable,
        // `statement_timeout` and `lock_timeout`.
        "57014" | "55P03" => ErrorKind::Timeout,
        // Constraint violations and bad data.
        c if c.starts_with("23") || c.starts_with("22") => ErrorKind::Rejected,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_operational_kinds() {
        assert_eq!(kind_of_sqlstate("57P01"), ErrorKind::Unavailable);
        assert_eq!(kind_of_sqlstate("08006"), ErrorKind::Unavailable);
        assert_eq!(kind_of_sqlstate("57014"), ErrorKind::Timeout);
        assert_eq!(kind_of_sqlstate("23505"), ErrorKind::Rejected);
        assert_eq!(kind_of_sqlstate("40001"), ErrorKind::Internal);
    }

    #[test]
    fn only_statement_errors_are_certain_to_have_changed_nothing() {
        // A unique violation or a serialization failure rolled the insert back.
        assert!(statement_rolled_back("23505"));
        assert!(statement_rolled_back("40001"));
        // A server shutting down or a cut connection may follow a commit.
        assert!(!statement_rolled_back("57P01"));
        assert!(!statement_rolled_back("08006"));
        assert!(!statement_rolled_back("XX000"));
    }

    #[test]
    fn a_pool_failure_changed_nothing() {
        assert!(pool_error(PoolError::Closed).certainly_not_applied());
        assert!(pool_error(PoolError::Timeout(TimeoutType::Wait)).certainly_not_applied());
    }
}
