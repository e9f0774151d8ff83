//! The persister: writes each rendition to `processed-images` under a key made from the
//! image id and the variant name, records the final status guarded by the attempt, and only
//! then settles the delivery. A repeat of the same job writes the same keys with the same
//! bytes, so a duplicate delivery cannot leave a second result.

use std::time::Instant;

use ractor::ActorProcessingErr;
use sha2::{Digest, Sha256};

use super::outcome::{
    backend_failure, finished, settle, settle_failure, settle_failure_with_next_step, Retry,
};
use super::{PersistJob, StageArgs, StageHandler};
use crate::ids::ImageId;
use crate::metrics::{JobOutcome, Phase};
use crate::pipeline::Rendition;
use crate::ports::{BackendError, Bucket, ClaimedJob, Completion, ObjectKey, Settlement};
use crate::record::{JobError, StoredImage, StoredVariant};
use crate::transform::Rendered;

pub struct Persister;

impl StageHandler for Persister {
    type Payload = PersistJob;

    async fn handle(args: &StageArgs, payload: PersistJob) -> Result<(), ActorProcessingErr> {
        persist(args, payload).await;
        Ok(())
    }
}

/// The object key of one rendition: `{image_id}/{variant}.{ext}`.
pub fn processed_key(
    id: ImageId,
    rendition: &Rendition,
    rendered: &Rendered,
) -> Result<ObjectKey, JobError> {
    ObjectKey::parse(format!(
        "{id}/{}.{}",
        rendition.name,
        rendered.format.extension()
    ))
    .map_err(|e| JobError::new("internal_error", e.to_string()))
}

async fn persist(args: &StageArgs, job: PersistJob) {
    let ctx = &args.ctx;
    // The lease is renewed until the job is settled, whichever way it ends.
    let PersistJob {
        delivery,
        job,
        lease,
        outcome,
    } = job;
    let id = job.record.id;
    let rendered = match outcome {
        Ok(rendered) => rendered,
        Err(error) => {
            args.stats.job_failed();
            let reason = JobError::new(error.code(), error.to_string());
            settle_failure(ctx, delivery, &job, lease, reason, Retry::Permanent).await;
            return;
        }
    };

    let started = Instant::now();
    let mut variants = Vec::with_capacity(rendered.len());
    let mut stored = Vec::with_capacity(rendered.len());
    for (rendition, output) in job.record.spec.renditions.iter().zip(rendered) {
        match store_rendition(args, id, rendition, output).await {
            Ok((key, variant)) => {
                stored.push(key);
                variants.push(variant);
            }
            Err(Failure::Job(reason)) => {
                settle_failure(ctx, delivery, &job, lease, reason, Retry::Permanent).await;
                return;
            }
            Err(Failure::Backend(error)) => {
                ctx.ports.metrics.backend_error(&error);
                // As in the downloader: the store's own text stays in the log.
                tracing::warn!(error = %error, "could not store the result");
                let what = backend_failure("object storage", "the result was stored", &error);
                let reason = ("storage_unavailable", what);
                let retry = Retry::from(&error);
                settle_failure_with_next_step(ctx, delivery, &job, lease, reason, retry).await;
                return;
            }
        }
    }

    match ctx
        .ports
        .metadata
        .complete(id, job.attempt, &Completion { variants })
        .await
    {
        Ok(true) => {
            settle(delivery, Settlement::Ack).await;
            args.stats.job_done();
            ctx.ports.metrics.phase(Phase::Persist, started.elapsed());
            finished(ctx, &job.record, job.attempt, JobOutcome::Completed, None).await;
        }
        Ok(false) => {
            settle(delivery, Settlement::Ack).await;
            not_recorded(args, &job, stored).await;
        }
        Err(error) => {
            ctx.ports.metrics.backend_error(&error);
            tracing::warn!(error = %error, "could not record the result");
            let what = backend_failure("the metadata store", "the result was recorded", &error);
            let reason = ("database_unavailable", what);
            let retry = Retry::from(&error);
            settle_failure_with_next_step(ctx, delivery, &job, lease, reason, retry).await;
        }
    }
}

/// The result was stored but `complete` changed nothing. Either another attempt owns the job
/// now (our lease expired; its result, under the same keys, wins), or the image was deleted
/// while it rendered: then nothing refers to what was just stored, so it is removed here at
/// once rather than left for the sweeper (`orphan_age` later) after the owner's delete.
async fn not_recorded(args: &StageArgs, job: &ClaimedJob, stored: Vec<ObjectKey>) {
    let ctx = &args.ctx;
    let id = job.record.id;
    match ctx.ports.metadata.get(&job.record.owner, id).await {
        Ok(Some(_)) => {
            tracing::info!(attempt = job.attempt, "stale attempt; result not recorded");
        }
        Ok(None) => {
            tracing::info!(
                attempt = job.attempt,
                "the image was deleted while it rendered; removing its result"
            );
            for key in stored {
                if let Err(error) = ctx.ports.objects.delete(Bucket::Processed, &key).await {
                    ctx.ports.metrics.backend_error(&error);
                    tracing::warn!(key = %key, error = %error, "could not remove the result of a deleted image");
                }
            }
        }
        Err(error) => {
            ctx.ports.metrics.backend_error(&error);
            tracing::warn!(attempt = job.attempt, error = %error,
                "result not recorded, and the image could not be read to find out why; a deleted image's result stays");
        }
    }
}

enum Failure {
    Job(JobError),
    Backend(BackendError),
}

/// Stores one rendition; returns its key (for a clean-up) and what the record keeps of it.
async fn store_rendition(
    args: &StageArgs,
    id: ImageId,
    rendition: &Rendition,
    output: Rendered,
) -> Result<(ObjectKey, StoredVariant), Failure> {
    let key = processed_key(id, rendition, &output).map_err(Failure::Job)?;
    let sha256 = hex::encode(Sha256::digest(&output.bytes));
    let bytes = output.bytes.len() as u64;
    args.ctx
        .ports
        .objects
        .put(Bucket::Processed, &key, output.bytes, output.format.mime())
        .await
        .map_err(Failure::Backend)?;
    let variant = StoredVariant {
        name: rendition.name.clone(),
        image: StoredImage {
            key: key.as_str().to_owned(),
            format: output.format,
            width: output.width,
            height: output.height,
            bytes,
            sha256,
            frames: output.frames,
        },
        first_frame_only: output.first_frame_only,
    };
    Ok((key, variant))
}
