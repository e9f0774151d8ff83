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

/// What went wrong when `store` failed `while` doing something, in words: never the store's
/// own text, which names addresses, buckets and keys (that is logged where it happened).
pub fn backend_failure(store: &str, during: &str, error: &BackendError) -> String {
    format!("{store} {} while {during}", error.kind.in_words())
}

/// Whether a failure in `attempt` is retried: one that may pass, with attempts left.
fn retries(attempt: u32, max_attempts: u32, retry: Retry) -> bool {
    retry == Retry::Transient && attempt < max_attempts
}

/// What happens after a failure, in words, once it is known whether it is `retrying`.
fn next_step(retrying: bool, retry: Retry) -> &'static str {
    match (retrying, retry) {
        (true, _) => {
            "the job is tried again for a while, and if it still fails, upload the image again"
        }
        (false, Retry::Transient) => "the job's attempts are used up; upload the image again",
        (false, Retry::Permanent) => "the job failed; upload the image again",
    }
}

/// Settles a failure whose reason is `what` went wrong followed by what happens next, which
/// only this attempt's settlement knows: tried again, or failed for good (the attempts used
/// up, or a failure that cannot pass) so the image must be uploaded again.
pub async fn settle_failure_with_next_step(
    ctx: &StageContext,
    delivery: Delivery,
    job: &ClaimedJob,
    lease: LeaseKeeper,
    (code, what): (&'static str, String),
    retry: Retry,
) {
    let max_attempts = ctx.config.retry.max_attempts;
    let next = next_step(retries(job.attempt, max_attempts, retry), retry);
    let reason = JobError::new(code, format!("{what}; {next}"));
    settle_failure(ctx, delivery, job, lease, reason, retry).await;
}

/// Settles a job that failed in `attempt`, ending its lease's renewals.
pub async fn settle_failure(
    ctx: &StageContext,
    delivery: Delivery,
    job: &ClaimedJob,
    lease: LeaseKeeper,
    error: JobError,
    retry: Retry,
) {
    let id = job.record.id;
    let policy = &ctx.config.retry;
    let retrying = retries(job.attempt, policy.max_attempts, retry);
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
        Ok(false) => {
            settle(delivery, Settlement::Ack).await;
            report_settled_elsewhere(ctx, job).await;
        }
        Ok(true) => {
            // A retry is re-published by the relay when due, so this delivery is done with;
            // a final failure goes to the dead-letter queue for inspection.
            let how = if retrying {
                Settlement::Ack
            } else {
                Settlement::DeadLetter
            };
            settle(delivery, how).await;
            let outcome = if retrying {
                JobOutcome::Retried
            } else {
                JobOutcome::Failed
            };
            finished(ctx, &job.record, job.attempt, outcome, Some(&error)).await;
        }
        Err(store_error) => {
            // The job stays this attempt's, PROCESSING, its lease no longer renewed: when the
            // lease runs out the relay publishes it again. Handed back now, it would only
            // find that lease live and be dropped, after a back-off spent holding a slot.
            ctx.ports.metrics.backend_error(&store_error);
            tracing::warn!(error = %store_error,
                "the failure could not be recorded; the job moves on when its lease runs out");
            settle(delivery, Settlement::Ack).await;
        }
    }
}

/// After a guarded write that changed nothing: the image was deleted while its job ran,
/// another attempt owns the job now (it reports its own end), or this attempt's own earlier
/// write landed after all (a `complete` whose answer was lost, which sent the job down the
/// failure path). Only the last is this attempt's to report, as `COMPLETED`, so its status
/// event and webhook are not lost; the others are not failures of the job.
pub async fn report_settled_elsewhere(ctx: &StageContext, job: &ClaimedJob) {
    let attempt = job.attempt;
    match ctx
        .ports
        .metadata
        .get(&job.record.owner, job.record.id)
        .await
    {
        // Only `complete` can have landed unheard before this path: a row FAILED at this
        // attempt was failed by a claim that found the attempts used up, which reported it.
        Ok(Some(record)) if record.attempts == attempt && record.status == Status::Completed => {
            tracing::info!(attempt, "this attempt's result was recorded after all");
            finished(ctx, &record, attempt, JobOutcome::Completed, None).await;
        }
        Ok(Some(record)) => {
            tracing::info!(attempt, current_attempt = record.attempts, status = %record.status,
                "stale attempt; the job's current attempt settles it");
        }
        Ok(None) => tracing::info!(attempt, "the image was deleted while its job ran"),
        Err(error) => {
            ctx.ports.metrics.backend_error(&error);
            tracing::warn!(attempt, error = %error, "the outcome was not recorded, and the image could not be read to find out why");
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

/// The metadata store could not be asked for the job (its claim failed): wait a back-off,
/// then hand the delivery back to the queue so the job is tried again from the start.
pub async fn requeue_later(ctx: &StageContext, delivery: Delivery, error: &BackendError) {
    ctx.ports.metrics.backend_error(error);
    let delay = ctx.config.retry.backoff(1);
    tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "a metadata store call failed; requeueing the job");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failure_with_attempts_left_says_it_is_tried_again() {
        let says = |attempt, retry| next_step(retries(attempt, 3, retry), retry);
        assert!(says(2, Retry::Transient).contains("tried again"));
        let last = says(3, Retry::Transient);
        assert!(
            last.contains("attempts are used up") && !last.contains("tried again"),
            "{last}"
        );
        let permanent = says(1, Retry::Permanent);
        assert!(!permanent.contains("tried again"), "{permanent}");
    }
}
