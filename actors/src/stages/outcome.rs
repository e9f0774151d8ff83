//! How a job that did not complete is settled: retried with back-off when the failure is
//! transient and attempts remain, otherwise `FAILED` and dead-lettered.

use chrono::Utc;

use super::StageContext;
use crate::events::StatusChanged;
use crate::lease::LeaseKeeper;
use crate::metrics::{JobOutcome, Phase};
use crate::ports::{BackendError, ClaimedJob, Delivery, Settlement};
use crate::record::{ImageRecord, JobError, Status};

/// Whether a failure may go away on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    Transient,
    Permanent,
}

impl From<&BackendError> for Retry {
    fn from(error: &BackendError) -> Self {
        if error.is_transient() {
            Retry::Transient
        } else {
            Retry::Permanent
        }
    }
}

/// Settles a job that failed in `attempt`, ending its lease's renewals. Returns the status the
/// job ends this attempt in.
pub async fn settle_failure(
    ctx: &StageContext,
    delivery: Delivery,
    job: &ClaimedJob,
    lease: LeaseKeeper,
    error: JobError,
    retry: Retry,
) -> Status {
    let id = job.record.id;
    let policy = &ctx.config.retry;
    let retrying = retry == Retry::Transient && job.attempt < policy.max_attempts;
    let written = if retrying {
        let delay = policy.backoff(job.attempt);
        let retry_at =
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        tracing::warn!(code = %error.code, reason = %error.message, retry_in_ms = delay.as_millis() as u64, "attempt failed; will retry");
        ctx.ports
            .metadata
            .retry_later(id, job.attempt, &error, retry_at)
            .await
    } else {
        tracing::warn!(code = %error.code, reason = %error.message, "job failed");
        ctx.ports.metadata.fail(id, job.attempt, &error).await
    };
    // Renewals end here either way: the store recorded the outcome and dropped the lease
    // with it, or the job is handed back below, where a lease kept alive through the
    // back-off would only make the redelivery find it taken.
    drop(lease);
    match written {
        Ok(_) => {
            // A retry is re-published by the relay when due, so this delivery is done with;
            // a final failure goes to the dead-letter queue for inspection.
            let how = if retrying {
                Settlement::Ack
            } else {
                Settlement::DeadLetter
            };
            settle(delivery, how).await;
            let (status, outcome) = if retrying {
                (Status::Pending, JobOutcome::Retried)
            } else {
                (Status::Failed, JobOutcome::Failed)
            };
            finished(ctx, &job.record, job.attempt, outcome, Some(&error)).await;
            status
        }
        Err(store_error) => {
            requeue_later(ctx, delivery, job.attempt, &store_error).await;
            Status::Processing
        }
    }
}

/// Reports an attempt that ended (completed, failed for good, or handed back for a retry):
/// one `info` line, the outcome metric, and a status event for waiting clients.
pub async fn finished(
    ctx: &StageContext,
    record: &ImageRecord,
    attempt: u32,
    outcome: JobOutcome,
    error: Option<&JobError>,
) {
    let status = match outcome {
        JobOutcome::Completed => Status::Completed,
        JobOutcome::Failed => Status::Failed,
        JobOutcome::Retried => Status::Pending,
    };
    let since_upload = (Utc::now() - record.created_at)
        .to_std()
        .unwrap_or_default();
    if outcome == JobOutcome::Completed {
        ctx.ports.metrics.phase(Phase::EndToEnd, since_upload);
    }
    ctx.ports.metrics.job(outcome);
    tracing::info!(status = %status, outcome = outcome.as_str(), attempt,
        code = error.map_or("", |e| e.code.as_str()),
        since_upload_ms = since_upload.as_millis() as u64, "job finished");
    ctx.ports
        .events
        .publish(StatusChanged {
            image_id: record.id,
            owner: record.owner.clone(),
            status,
        })
        .await;
}

/// The metadata store could not record the outcome: wait a back-off, then hand the delivery
/// back to the queue so the job is tried again from the start.
pub async fn requeue_later(
    ctx: &StageContext,
    delivery: Delivery,
    attempt: u32,
    error: &BackendError,
) {
    ctx.ports.metrics.backend_error(error);
    let delay = ctx.config.retry.backoff(attempt.max(1));
    tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "could not record job outcome; requeueing");
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = ctx.shutdown.cancelled() => {}
    }
    settle(delivery, Settlement::Requeue).await;
}

/// Settles a delivery, logging (not propagating) a failure: the broker redelivers an
/// unsettled message when the channel closes, so a lost settlement costs a duplicate, which
/// the claim in the metadata store absorbs.
pub async fn settle(delivery: Delivery, how: Settlement) {
    if let Err(error) = delivery.settle(how).await {
        tracing::warn!(error = %error, settlement = ?how, "could not settle delivery");
    }
}
