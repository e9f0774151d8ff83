//! What the engine reports about itself while it works: stage timings, job outcomes and
//! backend failures. The engine only calls [`EngineMetrics`]; the `pixmill` crate turns the
//! calls into Prometheus metrics, so this crate stays free of any metrics library or HTTP.
//!
//! Actor restarts and mailbox depths are not pushed through here: they are read from the
//! supervisor's [`crate::stats::ActorSnapshot`]s when metrics are scraped.

use std::time::Duration;

use crate::ports::BackendError;

/// A timed part of a job's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// From the upload (the record's `created_at`) to the claim of an attempt. For a retry
    /// this includes the earlier attempts and their back-off.
    QueueWait,
    /// Fetching the original from `raw-images`.
    Download,
    /// Decoding, transforming and encoding every rendition.
    Transform,
    /// Writing the renditions and recording the final status.
    Persist,
    /// From the upload to the final status of the attempt that completed the job.
    EndToEnd,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::QueueWait,
        Phase::Download,
        Phase::Transform,
        Phase::Persist,
        Phase::EndToEnd,
    ];

    /// The label value metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueWait => "queue_wait",
            Self::Download => "download",
            Self::Transform => "transform",
            Self::Persist => "persist",
            Self::EndToEnd => "end_to_end",
        }
    }
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobOutcome {
    Completed,
    /// Failed for good: `FAILED` and dead-lettered.
    Failed,
    /// Failed, and handed back for another attempt after a back-off.
    Retried,
}

impl JobOutcome {
    pub const ALL: [JobOutcome; 3] = [
        JobOutcome::Completed,
        JobOutcome::Failed,
        JobOutcome::Retried,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Retried => "retried",
        }
    }
}

/// Receives the engine's measurements. Every method must be cheap and must not block: they
/// are called on the async executor in the middle of a job.
pub trait EngineMetrics: Send + Sync + 'static {
    /// One `phase` of one job took `elapsed`.
    fn phase(&self, _phase: Phase, _elapsed: Duration) {}

    /// An attempt ended.
    fn job(&self, _outcome: JobOutcome) {}

    /// A call to a backend (queue, database, object store) failed.
    fn backend_error(&self, _error: &BackendError) {}
}

/// For processes and tests that do not collect metrics.
pub struct NoMetrics;

impl EngineMetrics for NoMetrics {}
