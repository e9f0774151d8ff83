//! How driver and pool failures map onto the ports' error kinds.

use std::error::Error as StdError;

use deadpool_postgres::{PoolError, TimeoutType};
use pixmill_actors::ports::{BackendError, ErrorKind};

use super::BACKEND;

/// Maps a driver error: a lost connection or a server that is shutting down is
/// `Unavailable`, a cancelled statement (our `statement_timeout`) is `Timeout`, a violated
/// constraint is `Rejected`.
pub fn pg_error(error: tokio_postgres::Error) -> BackendError {
    let kind = if error.is_closed() || has_io_source(&error) {
        ErrorKind::Unavailable
    } else {
        error
            .code()
            .map_or(ErrorKind::Internal, |code| kind_of_sqlstate(code.code()))
    };
    BackendError::new(BACKEND, kind, error.to_string()).with_source(error)
}

/// Maps a pool error. Waiting for a free connection past the bound is `Timeout`; failing
/// to open one is `Unavailable`.
pub fn pool_error(error: PoolError) -> BackendError {
    match error {
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
    }
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
}
