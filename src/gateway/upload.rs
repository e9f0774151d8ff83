//! The upload path once the caller is admitted (see `admission`): check the file, store the
//! original, record the job, publish it, answer.
//!
//! The order makes every crash safe. The object is written before the row, so a row never
//! points at a missing object; a failure before the row commits removes the object again.
//! The row is committed with a dispatch mark due `publish_grace` later; the gateway then
//! publishes and clears the mark. If the gateway dies in between, the relay publishes the
//! job when the mark falls due: a committed job is never left unpublished.

use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use pixmill_actors::pipeline::OutputSpec;
use pixmill_actors::ports::{BackendError, Bucket, JobMessage, ObjectKey};
use pixmill_actors::record::NewImage;
use pixmill_actors::transform::{check_crops, check_result_size, check_work, probe, Probe};
use pixmill_actors::{ImageId, ImageRecord, JobSpec, StoredImage};
use poem::http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Gateway;
use crate::api::errors::ApiError;
use crate::auth::Principal;
#[cfg(feature = "failpoints")]
use crate::failpoints::{self, Faulty, Point};
use crate::metrics::{Metrics, UploadStep};
use crate::webhooks::target::CallbackUrl;

/// A named pipeline from configuration, usable as `preset` or as an extra variant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PresetConfig {
    pub steps: Vec<pixmill_actors::Step>,
    #[serde(default)]
    pub output: OutputSpec,
}

/// A validated upload.
pub struct UploadRequest {
    /// The file; from the API it starts at a [`pixmill_actors::ports::BODY_ALIGN`] boundary,
    /// which lets the embedded store write it without a copy.
    pub bytes: Bytes,
    pub spec: JobSpec,
    pub idempotency_key: Option<String>,
    pub trace_id: Option<String>,
    /// Where to POST the status document when the job ends; checked here.
    pub callback_url: Option<String>,
}

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

impl Gateway {
    /// Stores and queues an upload whose caller [`Gateway::admit_upload`] admitted (role,
    /// concurrency and rate are checked there, before the body is read).
    ///
    /// Returns the image's record and whether this call created it (false: an earlier
    /// request with the same `Idempotency-Key` did).
    pub async fn upload(
        &self,
        who: &Principal,
        request: UploadRequest,
    ) -> Result<(ImageRecord, bool), ApiError> {
        if self.is_draining() {
            return Err(ApiError::shutting_down());
        }
        if let Some(key) = &request.idempotency_key {
            if key.is_empty()
                || key.len() > MAX_IDEMPOTENCY_KEY
                || key.chars().any(char::is_control)
            {
                return Err(ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 255 printable characters",
                ));
            }
            let existing = self
                .metadata
                .find_by_idempotency_key(&who.owner, key)
                .await
                .map_err(|e| ApiError::backend(&e))?;
            if let Some(existing) = existing {
                check_same_upload(&existing, &request).await?;
                return Ok((existing, false));
            }
        }
        let callback_url = self.check_callback(request.callback_url.as_deref()).await?;

        let mut clock = StepClock::start(&self.metrics);
        let (bytes, probed, sha256) = self.probe(request.bytes).await?;
        check_result_size(&probed, &request.spec, &self.limits)
            .and_then(|()| check_crops(&probed, &request.spec))
            .map_err(|error| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    error.code(),
                    error.to_string(),
                )
            })?;
        check_work(&probed, &request.spec).map_err(|error| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                error.code(),
                error.to_string(),
            )
        })?;
        clock.lap(UploadStep::Probe);
        let request = UploadRequest { bytes, ..request };
        let id = ImageId::new();
        let key = ObjectKey::original(id, probed.format);
        let original = StoredImage {
            key: key.as_str().to_owned(),
            format: probed.format,
            width: probed.width,
            height: probed.height,
            bytes: request.bytes.len() as u64,
            sha256,
            frames: probed.frames.max(1),
        };
        self.objects
            .put(Bucket::Raw, &key, request.bytes, probed.format.mime())
            .await
            .map_err(|e| ApiError::backend(&e))?;
        clock.lap(UploadStep::StoreOriginal);
        #[cfg(feature = "failpoints")]
        failpoints::hit(Point::AfterObjectWrite);

        let now = Utc::now();
        let dispatch_at = now + chrono::Duration::from_std(self.publish_grace).unwrap_or_default();
        let new = NewImage {
            id,
            owner: who.owner.clone(),
            spec: request.spec,
            original,
            idempotency_key: request.idempotency_key,
            callback_url,
            request_id: request.trace_id.clone(),
            dispatch_at,
            created_at: now,
        };
        let job = JobMessage {
            image_id: id,
            owner: who.owner.clone(),
            trace_id: request.trace_id,
        };
        #[cfg(feature = "failpoints")]
        let published_early = failpoints::faulty(Faulty::PublishBeforeCommit)
            && self.publish(&job).await
            && failpoints::slow_commit().await;

        let record = match self.metadata.insert(&new).await {
            Ok(Ok(record)) => record,
            Ok(Err(existing)) => {
                // A concurrent request with the same Idempotency-Key won the race.
                self.remove_orphan(&key).await;
                check_replay(&existing, &new.original.sha256, &new.spec)?;
                return Ok((existing, false));
            }
            Err(error) => {
                self.after_failed_insert(id, &key, &error).await;
                return Err(ApiError::backend(&error));
            }
        };
        clock.lap(UploadStep::Record);

        #[cfg(feature = "failpoints")]
        failpoints::hit(Point::AfterCommit);

        #[cfg(feature = "failpoints")]
        let published = published_early || self.publish(&job).await;
        #[cfg(not(feature = "failpoints"))]
        let published = self.publish(&job).await;
        clock.lap(UploadStep::Publish);
        if published {
            if let Err(error) = self.metadata.mark_dispatched(id, dispatch_at).await {
                tracing::warn!(image_id = %id, error = %error, "published, but could not clear the dispatch mark; the relay may publish a duplicate");
            }
            clock.lap(UploadStep::ClearMark);
        }
        tracing::info!(image_id = %id, owner = %who.owner, format = %probed.format, width = probed.width,
            height = probed.height, bytes = new.original.bytes, "image accepted");
        Ok((record, true))
    }

    /// Refuses a webhook target that is malformed, does not resolve, or resolves to an
    /// address the policy does not allow; returns it normalised.
    async fn check_callback(&self, raw: Option<&str>) -> Result<Option<String>, ApiError> {
        let Some(raw) = raw else { return Ok(None) };
        if !self.webhooks.enabled {
            return Err(ApiError::bad_request("webhooks_disabled", "this server sends no webhooks (webhooks.secret is not set); leave callback_url out"));
        }
        let url =
            CallbackUrl::parse(raw).map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
        url.resolve(self.webhooks.allow_private)
            .await
            .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
        Ok(Some(url.as_str().to_owned()))
    }

    /// Publishes the job; on failure the dispatch mark stays and the relay publishes the job
    /// once the mark falls due.
    async fn publish(&self, job: &JobMessage) -> bool {
        match self.queue.publish(job).await {
            Ok(()) => {
                #[cfg(feature = "failpoints")]
                if failpoints::fires(Point::PublishTwice) {
                    failpoints::publish_again_later(self.queue.clone(), job.clone());
                }
                true
            }
            Err(error) => {
                crate::metrics::note_backend_error(&error);
                tracing::warn!(image_id = %job.image_id, error = %error, "could not publish the job now; the relay will");
                false
            }
        }
    }

    /// Reads the file's header, and hashes an accepted file, on the blocking pool: quick for
    /// honest files (a millisecond or two for a few MB), but a hostile one may cost real CPU
    /// in a decoder's header parsing, which must not stall the executor that serves every
    /// other request.
    async fn probe(&self, bytes: Bytes) -> Result<(Bytes, Probe, String), ApiError> {
        let limits = self.limits.clone();
        let task = tokio::task::spawn_blocking(move || {
            let probed = probe(&bytes, &limits).map(|probed| {
                let sha256 = hex::encode(Sha256::digest(&bytes));
                (probed, sha256)
            });
            (bytes, probed)
        });
        match task.await {
            Ok((bytes, probed)) => {
                let (probed, sha256) = probed?;
                Ok((bytes, probed, sha256))
            }
            Err(error) => {
                tracing::error!(error = %error, "probing an upload panicked");
                Err(ApiError::internal())
            }
        }
    }

    /// Removes the original of an upload whose row was certainly not written. When the
    /// outcome is unknown (the connection was cut, or the call timed out, after the insert
    /// was sent), the row may have committed: a client retrying with the same
    /// Idempotency-Key would then get a `202` for an image whose original is gone. So the
    /// original stays, and the orphan sweeper removes it later if no row refers to it.
    async fn after_failed_insert(&self, id: ImageId, key: &ObjectKey, error: &BackendError) {
        if error.certainly_not_applied() {
            self.remove_orphan(key).await;
        } else {
            tracing::warn!(image_id = %id, key = %key, error = %error,
                "the insert's outcome is unknown; leaving the original to the orphan sweeper");
        }
    }

    async fn remove_orphan(&self, key: &ObjectKey) {
        if let Err(error) = self.objects.delete(Bucket::Raw, key).await {
            tracing::warn!(key = %key, error = %error, "could not remove the original of a failed upload");
        }
    }
}

/// A replay must be the same upload: the same file and the same steps. A key sent again
/// with another file or other options would otherwise be answered `202` with the first
/// image, and the new upload silently dropped. The file is compared by its SHA-256 (hashed
/// off the executor; replays only). A preset is compared by what it expanded to, so a
/// replay after the preset's configuration changed is refused too.
async fn check_same_upload(
    existing: &ImageRecord,
    request: &UploadRequest,
) -> Result<(), ApiError> {
    let bytes = request.bytes.clone();
    let digest = tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&bytes)))
        .await
        .map_err(|error| {
            tracing::error!(error = %error, "hashing a replayed upload panicked");
            ApiError::internal()
        })?;
    check_replay(existing, &digest, &request.spec)
}

/// Refuses a replay whose file (by its SHA-256) or steps differ from the upload that first
/// took its Idempotency-Key: both before the upload (the key's row found) and after (a
/// concurrent request with the key committed first).
fn check_replay(existing: &ImageRecord, sha256: &str, spec: &JobSpec) -> Result<(), ApiError> {
    if existing.original.sha256 == sha256 && existing.spec == *spec {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        format!(
            "this Idempotency-Key was first sent with another file or other options (image {}); \
             a retry must send the same upload again, and a new upload needs a new key",
            existing.id
        ),
    ))
}

/// Times the steps of one upload, each from the end of the one before, into
/// `pixmill_upload_step_duration_seconds`. A step that fails is not recorded: the histogram
/// describes accepted uploads, and refusals are counted by code elsewhere.
struct StepClock<'a> {
    metrics: &'a Metrics,
    since: Instant,
}

impl<'a> StepClock<'a> {
    fn start(metrics: &'a Metrics) -> Self {
        Self {
            metrics,
            since: Instant::now(),
        }
    }

    fn lap(&mut self, step: UploadStep) {
        let now = Instant::now();
        self.metrics.upload_step(step, now - self.since);
        self.since = now;
    }
}
