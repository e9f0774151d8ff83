//! What the HTTP API does, independent of HTTP: upload, read, list, download and delete,
//! each scoped to the calling owner. The handlers in [`crate::api`] only translate.

mod admission;
mod upload;
mod wait;
mod watchers;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use pixmill_actors::engine::EngineSnapshot;
use pixmill_actors::events::{StatusChanged, StatusEvents};
use pixmill_actors::ports::{
    Bucket, JobQueue, MetadataStore, ObjectKey, ObjectStore, ObjectStream,
};
use pixmill_actors::record::{Cursor, ListQuery, Page};
use pixmill_actors::transform::InputLimits;
use pixmill_actors::{ImageId, ImageRecord, Status, StoredImage};
use poem::http::StatusCode;
use tokio::sync::Semaphore;

pub use admission::{retry_after_seconds, OwnerPermit, OwnerUploads};
pub use upload::{PresetConfig, UploadRequest};
pub use wait::{RecordStream, WaitLimits};
pub use watchers::Watchers;

use crate::api::errors::ApiError;
use crate::api::health::ReadinessProbes;
use crate::auth::roles::RoleRequirement;
use crate::auth::{Principal, TokenVerifier};
use crate::fastpath::{Cached, RateLimiter, StatusCache};
use crate::metrics::Metrics;
use crate::webhooks::WebhookPolicy;

/// Reads the engine's actors and CPU pool, when this process runs one.
pub type EngineView = Arc<dyn Fn() -> EngineSnapshot + Send + Sync>;

/// Everything the API needs, shared by all requests.
pub struct Gateway {
    pub metadata: Arc<dyn MetadataStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub queue: Arc<dyn JobQueue>,
    pub cache: Arc<dyn StatusCache>,
    pub limiter: Arc<dyn RateLimiter>,
    pub verifier: TokenVerifier,
    pub limits: InputLimits,
    pub presets: BTreeMap<String, PresetConfig>,
    pub upload_role: Option<RoleRequirement>,
    pub admin_role: RoleRequirement,
    pub publish_grace: Duration,
    /// Uploads in progress at most; each holds a permit from the moment its token is
    /// accepted, while its body is received, checked and stored, so a burst of large
    /// uploads can fill neither memory nor the temporary directory (see
    /// `api::upload_slot`).
    pub upload_slots: Arc<Semaphore>,
    /// Each owner's share of `upload_slots`, so one owner cannot take every slot; taken
    /// before a global slot and held as long (`server.max_concurrent_uploads_per_owner`).
    pub owner_uploads: OwnerUploads,
    /// Set on shutdown: new uploads get `503 shutting_down`.
    pub draining: AtomicBool,
    pub engine: Option<EngineView>,
    /// Routes status changes to the long polls and event streams waiting on each image.
    pub watchers: Watchers,
    /// Where changes are announced to those waiters, in every gateway (a delete's too).
    pub events: Arc<dyn StatusEvents>,
    pub waits: WaitLimits,
    pub metrics: Arc<Metrics>,
    /// Whether uploads may name a `callback_url`, and which.
    pub webhooks: WebhookPolicy,
    /// The last readiness probe round, shared by the requests that ask.
    pub readiness: ReadinessProbes,
}

/// Longest page of a listing.
pub const MAX_PAGE: u32 = 100;

impl Gateway {
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The caller's image. Final statuses are served from the cache when present; anything
    /// still moving is read from the metadata store, which stays the source of truth.
    pub async fn image(&self, who: &Principal, raw_id: &str) -> Result<ImageRecord, ApiError> {
        let id: ImageId = raw_id.parse().map_err(|_| ApiError::image_not_found())?;
        match self.cache.get(id).await {
            Ok(Cached::Final(record)) if record.owner == who.owner => return Ok(*record),
            Ok(Cached::Deleted) => return Err(ApiError::image_not_found()),
            Ok(_) => {}
            Err(error) => {
                crate::metrics::note_backend_error(&error);
                tracing::warn!(error = %error, "status cache unavailable; reading the database");
            }
        }
        let record = self
            .metadata
            .get(&who.owner, id)
            .await
            .map_err(|e| ApiError::backend(&e))?
            .ok_or_else(ApiError::image_not_found)?;
        if record.status.is_final() {
            if let Err(error) = self.cache.put(&record).await {
                crate::metrics::note_backend_error(&error);
                tracing::debug!(error = %error, "could not fill the status cache");
            }
        }
        Ok(record)
    }

    pub async fn list(
        &self,
        who: &Principal,
        status: Option<Status>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page, ApiError> {
        let after = cursor.map(decode_cursor).transpose()?;
        let query = ListQuery {
            status,
            after,
            limit: limit.unwrap_or(20).clamp(1, MAX_PAGE),
        };
        self.metadata
            .list(&who.owner, &query)
            .await
            .map_err(|e| ApiError::backend(&e))
    }

    /// Removes the record first (so the image is gone for the owner at once), then its
    /// objects. An object left behind by a failed removal is logged, and removed later by
    /// the sweeper. The status cache keeps a mark of the delete, which a status read that
    /// fetched the row just before it cannot overwrite.
    ///
    /// Known limit: when the cache cannot take the mark (Redis unreachable), a document it
    /// held already is served until it expires.
    pub async fn delete(&self, who: &Principal, raw_id: &str) -> Result<(), ApiError> {
        let id: ImageId = raw_id.parse().map_err(|_| ApiError::image_not_found())?;
        let record = self
            .metadata
            .delete(&who.owner, id)
            .await
            .map_err(|e| ApiError::backend(&e))?
            .ok_or_else(ApiError::image_not_found)?;
        if let Err(error) = self.cache.mark_deleted(id).await {
            tracing::warn!(image_id = %id, error = %error, "could not mark the image deleted in the status cache");
        }
        // Wakes the long polls and event streams waiting on it, here and in every other
        // gateway: each reads again, finds the image gone and ends, instead of at its next
        // re-read. (An event names a status; this one, the last the image had.) In a task
        // of its own: the answer does not wait on Redis, which may be down.
        let events = Arc::clone(&self.events);
        let deleted = StatusChanged {
            image_id: id,
            owner: record.owner.clone(),
            status: record.status,
        };
        tokio::spawn(async move { events.publish(deleted).await });
        let keys = std::iter::once((Bucket::Raw, record.original.key.clone())).chain(
            record
                .variants
                .iter()
                .map(|v| (Bucket::Processed, v.image.key.clone())),
        );
        for (bucket, key) in keys {
            let Ok(key) = ObjectKey::parse(key) else {
                continue;
            };
            if let Err(error) = self.objects.delete(bucket, &key).await {
                tracing::warn!(image_id = %id, bucket = %bucket, key = %key, error = %error, "could not delete object");
            }
        }
        tracing::info!(image_id = %id, "image deleted");
        Ok(())
    }

    /// Opens a stored file of the caller's image `record` for download.
    ///
    /// A file the store does not have is either gone with its image (deleted since the
    /// record was read: `image_not_found`, as for any deleted image), missing because the
    /// store itself is (its check fails too: `503`), or lost while the record still names
    /// it (removed behind pixmill's back, a store that lost data): then `file_missing`,
    /// logged as the error it is, not passed off as an unknown id.
    pub async fn open(
        &self,
        who: &Principal,
        record: &ImageRecord,
        bucket: Bucket,
        image: &StoredImage,
    ) -> Result<ObjectStream, ApiError> {
        let key = ObjectKey::parse(image.key.clone()).map_err(|_| ApiError::internal())?;
        let error = match self.objects.get_stream(bucket, &key).await {
            Ok(stream) => return Ok(stream),
            Err(error) if error.is_not_found() => error,
            Err(error) => return Err(ApiError::backend(&error)),
        };
        // Read again, past the cache: a delete since the first read explains the miss.
        self.metadata
            .get(&who.owner, record.id)
            .await
            .map_err(|e| ApiError::backend(&e))?
            .ok_or_else(ApiError::image_not_found)?;
        // A store that is not there at all (a volume not mounted, a bucket gone) misses
        // every file: an outage to wait out, not a file to upload again.
        if let Err(outage) = self.objects.ping().await {
            tracing::warn!(image_id = %record.id, error = %outage,
                "a file is missing and the object store fails its check; answering 503");
            return Err(ApiError::backend(&outage));
        }
        tracing::error!(image_id = %record.id, bucket = bucket.name(), key = %key.as_str(), error = %error,
            "the record names a file the object store does not have");
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "file_missing",
            "this image's file is missing from storage (removed outside pixmill, or lost); \
             upload the image again",
        ))
    }

    pub fn require_role(&self, who: &Principal, role: &RoleRequirement) -> Result<(), ApiError> {
        if who.has_role(role) {
            return Ok(());
        }
        Err(crate::auth::AuthError::MissingRole(role.to_string()).into())
    }
}

/// Cursors are opaque to clients: base64url of `created_at` micros and the id.
pub fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}_{}",
        cursor.created_at.timestamp_micros(),
        cursor.id
    ))
}

fn decode_cursor(raw: &str) -> Result<Cursor, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_cursor",
            "the cursor is not one this API handed out",
        )
    };
    let text = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let text = String::from_utf8(text).map_err(|_| invalid())?;
    let (micros, id) = text.split_once('_').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let created_at: DateTime<Utc> = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    let id: ImageId = id.parse().map_err(|_| invalid())?;
    Ok(Cursor { created_at, id })
}
