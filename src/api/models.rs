//! The documents the API sends: the status document and its parts.

use chrono::{DateTime, Utc};
use pixmill_actors::{ImageRecord, Status, StoredImage, StoredVariant};
use poem_openapi::{Enum, Object};

/// Where an image is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImageStatusCode {
    /// Stored and queued, or waiting for a retry.
    Pending,
    /// A worker is on it.
    Processing,
    /// Done: `processed` and `variants` are set.
    Completed,
    /// Gave up: `error` says why.
    Failed,
}

impl From<Status> for ImageStatusCode {
    fn from(status: Status) -> Self {
        match status {
            Status::Pending => Self::Pending,
            Status::Processing => Self::Processing,
            Status::Completed => Self::Completed,
            Status::Failed => Self::Failed,
        }
    }
}

impl From<ImageStatusCode> for Status {
    fn from(status: ImageStatusCode) -> Self {
        match status {
            ImageStatusCode::Pending => Self::Pending,
            ImageStatusCode::Processing => Self::Processing,
            ImageStatusCode::Completed => Self::Completed,
            ImageStatusCode::Failed => Self::Failed,
        }
    }
}

/// One stored image file.
#[derive(Debug, Clone, Object)]
pub struct ImageFile {
    /// Where to download it (needs the same bearer token).
    pub url: String,
    pub width: u32,
    pub height: u32,
    /// `jpeg`, `png`, `webp`, ...
    pub format: String,
    pub bytes: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Frames in the file; more than 1 for an animation.
    pub frames: u32,
}

impl ImageFile {
    fn new(url: String, image: &StoredImage) -> Self {
        Self {
            url,
            width: image.width,
            height: image.height,
            format: image.format.to_string(),
            bytes: image.bytes,
            sha256: image.sha256.clone(),
            frames: image.frames,
        }
    }
}

/// One rendition of a completed image.
#[derive(Debug, Clone, Object)]
pub struct Variant {
    pub name: String,
    pub url: String,
    pub width: u32,
    pub height: u32,
    pub format: String,
    pub bytes: u64,
    /// Set when the input was animated and only its first frame was kept.
    pub first_frame_only: bool,
}

/// Why a job failed (or why its last attempt did, while it waits for a retry).
#[derive(Debug, Clone, Object)]
pub struct JobFailure {
    /// Stable machine code. The image's or the steps' doing (the same upload fails the same
    /// way; change the file or the steps): the upload's own input codes where decoding the
    /// whole file finds what its header hid (`corrupt_image`, `truncated_image`,
    /// `image_dimensions_exceed_limit`, `too_many_frames`, `animation_too_large`, ...),
    /// `undecodable_image`, `crop_outside_image`, `result_too_large`, `encode_failed`,
    /// `unsupported_operation`, `internal_error` (a codec crashed on it) and
    /// `render_timed_out` (still rendering after the workers' `engine.max_job_time`). The
    /// service's doing, tried again before it is final (then upload again):
    /// `storage_unavailable`, `database_unavailable`, `transform_crashed`,
    /// `transform_unavailable`, `job_time_exceeded`, `worker_stopped`, and
    /// `attempts_exhausted` when a job's attempts ran out between two of them (its message
    /// names the last reason). `original_missing`: the stored original is gone.
    pub code: String,
    pub message: String,
}

/// The status document of one image. Fields without a value are left out (never `null`).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ImageDocument {
    pub id: String,
    /// The `sub` of the token that uploaded it.
    pub owner: String,
    pub status: ImageStatusCode,
    pub original: ImageFile,
    /// The primary rendition, once `COMPLETED`.
    #[oai(skip_serializing_if_is_none)]
    pub processed: Option<ImageFile>,
    /// Every rendition, primary first, once `COMPLETED`.
    pub variants: Vec<Variant>,
    /// Set when `FAILED`; and after a failed attempt, while its retry waits and runs (the
    /// last attempt's reason, gone once one succeeds).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<JobFailure>,
    /// Processing attempts so far.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn variant_url(id: &str, variant: &StoredVariant, primary: bool) -> String {
    if primary {
        format!("/v1/images/{id}/processed")
    } else {
        format!("/v1/images/{id}/variants/{}", variant.name)
    }
}

impl From<&ImageRecord> for ImageDocument {
    fn from(record: &ImageRecord) -> Self {
        let id = record.id.to_string();
        let completed = record.status == Status::Completed;
        let variants: Vec<Variant> = if completed {
            record
                .variants
                .iter()
                .enumerate()
                .map(|(i, v)| Variant {
                    name: v.name.to_string(),
                    url: variant_url(&id, v, i == 0),
                    width: v.image.width,
                    height: v.image.height,
                    format: v.image.format.to_string(),
                    bytes: v.image.bytes,
                    first_frame_only: v.first_frame_only,
                })
                .collect()
        } else {
            Vec::new()
        };
        let processed = record
            .primary()
            .filter(|_| completed)
            .map(|v| ImageFile::new(variant_url(&id, v, true), &v.image));
        Self {
            original: ImageFile::new(format!("/v1/images/{id}/original"), &record.original),
            id,
            owner: record.owner.to_string(),
            status: record.status.into(),
            processed,
            variants,
            error: record.error.as_ref().map(|e| JobFailure {
                code: e.code.clone(),
                message: e.message.clone(),
            }),
            attempts: record.attempts,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// One page of the caller's images, newest first.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ImagePage {
    pub items: Vec<ImageDocument>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}
