use std::error::Error as StdError;
use std::fmt;

/// What kind of failure a backend reported. Retry and give-up decisions read this, never the
/// message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing asked for does not exist.
    NotFound,
    /// The backend could not be reached, or dropped the connection.
    Unavailable,
    /// The backend did not answer in time.
    Timeout,
    /// The backend refused the request as malformed or conflicting; retrying will not help.
    Rejected,
    /// Anything else; treated as transient, because the backend is the one at fault.
    Internal,
}

impl ErrorKind {
    /// How the backend failed, in words that name no address and quote no backend: for
    /// what clients and anonymous callers read (a job's error, `/readyz`), where the
    /// backend's own text (hosts, buckets, keys) belongs in the logs.
    pub fn in_words(self) -> &'static str {
        match self {
            Self::NotFound => "did not have it",
            Self::Unavailable => "unreachable",
            Self::Timeout => "too slow to answer",
            Self::Rejected => "refused the request",
            Self::Internal => "answered with an error",
        }
    }
}

/// An error from one of the ports, naming the backend (`"postgres"`, `"filesystem"`, ...) so
/// logs and readiness checks say which one failed.
#[derive(Debug)]
pub struct BackendError {
    pub backend: &'static str,
    pub kind: ErrorKind,
    pub message: String,
    pub source: Option<Box<dyn StdError + Send + Sync>>,
    /// Set by an adapter that knows the call changed nothing: it failed before a request
    /// left this process, or the backend answered with an error that rolled it back. Unset,
    /// the outcome is unknown: a connection cut or a timeout after the request was sent may
    /// hide a write that did commit, so a caller must not undo what depends on it.
    pub not_applied: bool,
}

impl BackendError {
    pub fn new(backend: &'static str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            backend,
            kind,
            message: message.into(),
            source: None,
            not_applied: false,
        }
    }

    /// Marks the call as certainly without effect (see [`Self::not_applied`]).
    pub fn not_applied(mut self) -> Self {
        self.not_applied = true;
        self
    }

    /// Whether it is certain that the failed call wrote nothing. False means unknown.
    pub fn certainly_not_applied(&self) -> bool {
        self.not_applied
    }

    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn not_found(backend: &'static str, what: impl Into<String>) -> Self {
        Self::new(backend, ErrorKind::NotFound, what)
    }

    pub fn unavailable(
        backend: &'static str,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self::new(backend, ErrorKind::Unavailable, source.to_string()).with_source(source)
    }

    pub fn internal(backend: &'static str, source: impl StdError + Send + Sync + 'static) -> Self {
        Self::new(backend, ErrorKind::Internal, source.to_string()).with_source(source)
    }

    pub fn timeout(backend: &'static str, what: impl Into<String>) -> Self {
        Self::new(backend, ErrorKind::Timeout, what)
    }

    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Internal
        )
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.backend, self.message)
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}
