//! The downloader: claims the job in the metadata store (one attempt, with a lease) and
//! fetches the original from `raw-images`.

use std::time::Instant;

use chrono::Utc;
use ractor::ActorProcessingErr;

use super::outcome::{
    backend_failure, finished, requeue_later, settle, settle_failure,
    settle_failure_with_next_step, Retry,
};
use super::{StageArgs, StageHandler, TransformJob};
use crate::events::StatusChanged;
use crate::lease::LeaseKeeper;
use crate::metrics::{JobOutcome, Phase};
use crate::ports::{Bucket, Claim, Delivery, ObjectKey, Settlement};
use crate::record::{JobError, Status};

pub struct Downloader;

impl StageHandler for Downloader {
    type Payload = Delivery;

    async fn handle(args: &StageArgs, payload: Delivery) -> Result<(), ActorProcessingErr> {
        download(args, payload).await;
        Ok(())
    }
}

async fn download(args: &StageArgs, delivery: Delivery) {
    let ctx = &args.ctx;
    let id = delivery.job.image_id;
    let claim = ctx
        .ports
        .metadata
        .claim(id, ctx.config.lease, ctx.config.retry.max_attempts)
        .await;
    let job = match claim {
        Ok(Claim::Claimed(job)) => job,
        Ok(other @ (Claim::Finished | Claim::Missing | Claim::LeasedElsewhere | Claim::NotDue)) => {
            // The claim is the deduplication point: a redelivered or republished job that is
            // done, deleted, being worked on elsewhere or waiting for its retry is dropped
            // here.
            tracing::debug!(claim = ?other, "duplicate or stale delivery; dropping");
            settle(delivery, Settlement::Ack).await;
            return;
        }
        Ok(Claim::Exhausted(record)) => {
            tracing::warn!(attempts = record.attempts, "job used all its attempts");
            args.stats.job_failed();
            settle(delivery, Settlement::DeadLetter).await;
            let attempts = record.attempts;
            finished(
                ctx,
                &record,
                attempts,
                JobOutcome::Failed,
                record.error.as_ref(),
            )
            .await;
            return;
        }
        Err(error) => {
            requeue_later(ctx, delivery, &error).await;
            return;
        }
    };
    tracing::Span::current().record("attempt", job.attempt);
    let lease = LeaseKeeper::start(
        &ctx.ports,
        &ctx.leases,
        id,
        job.attempt,
        ctx.config.lease,
        ctx.config.max_job_time,
    );
    let waited = (Utc::now() - job.record.created_at)
        .to_std()
        .unwrap_or_default();
    ctx.ports.metrics.phase(Phase::QueueWait, waited);
    ctx.ports
        .events
        .publish(StatusChanged {
            image_id: id,
            owner: job.record.owner.clone(),
            status: Status::Processing,
        })
        .await;

    let key = match ObjectKey::parse(job.record.original.key.clone()) {
        Ok(key) => key,
        Err(error) => {
            let reason = JobError::new("original_missing", error.to_string());
            settle_failure(ctx, delivery, &job, lease, reason, Retry::Permanent).await;
            return;
        }
    };
    let started = Instant::now();
    match ctx.ports.objects.get(Bucket::Raw, &key).await {
        Ok(original) => {
            ctx.ports.metrics.phase(Phase::Download, started.elapsed());
            let span = tracing::Span::current();
            let handed = TransformJob {
                delivery,
                job,
                lease,
                original,
            };
            args.hand_on(&ctx.transformers, handed, span).await;
        }
        Err(error) if error.is_not_found() => {
            let reason = JobError::new(
                "original_missing",
                "the original image is no longer in storage; upload it again",
            );
            settle_failure(ctx, delivery, &job, lease, reason, Retry::Permanent).await;
        }
        Err(error) => {
            ctx.ports.metrics.backend_error(&error);
            // The client reads the reason: the store's own text (its address, bucket and
            // key) stays in this log line.
            tracing::warn!(error = %error, "could not read the original");
            let what = backend_failure("object storage", "the original was read", &error);
            let reason = ("storage_unavailable", what);
            settle_failure_with_next_step(ctx, delivery, &job, lease, reason, Retry::from(&error))
                .await;
        }
    }
}
