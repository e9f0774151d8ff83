//! The metadata an image carries through its life: the row both metadata stores keep.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::format::ImageFormat;
use crate::ids::{ImageId, Owner, VariantName};
use crate::pipeline::JobSpec;

/// Where an image is in its life. It only moves forward, except that a failed attempt that
/// will be retried returns a job from `PROCESSING` to `PENDING`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Processing => "PROCESSING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "PENDING" => Ok(Self::Pending),
            "PROCESSING" => Ok(Self::Processing),
            "COMPLETED" => Ok(Self::Completed),
            "FAILED" => Ok(Self::Failed),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

/// An object in one of the buckets, as the status document describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImage {
    pub key: String,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
    /// Frames in the stored file; 1 for stills.
    #[serde(default = "one")]
    pub frames: u32,
}

fn one() -> u32 {
    1
}

/// A rendered variant of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVariant {
    pub name: VariantName,
    #[serde(flatten)]
    pub image: StoredImage,
    /// Set when an animated input was reduced to its first frame.
    #[serde(default)]
    pub first_frame_only: bool,
}

/// Why a job failed, in words a person can act on, with a stable machine code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

impl JobError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// One image's full metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: ImageId,
    pub owner: Owner,
    pub status: Status,
    pub spec: JobSpec,
    pub original: StoredImage,
    /// The renditions, primary first, once the job has completed.
    pub variants: Vec<StoredVariant>,
    /// The last failure: final when `status` is `FAILED`, the reason for a pending retry
    /// otherwise.
    pub error: Option<JobError>,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Where the owner asked to be told when the job ends (checked by the gateway when the
    /// upload arrived, and again before each delivery). The engine never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

impl ImageRecord {
    pub fn primary(&self) -> Option<&StoredVariant> {
        self.variants.first()
    }
}

/// What the gateway records for a new upload.
#[derive(Clone, Debug)]
pub struct NewImage {
    pub id: ImageId,
    pub owner: Owner,
    pub spec: JobSpec,
    pub original: StoredImage,
    pub idempotency_key: Option<String>,
    /// The webhook target, already validated.
    pub callback_url: Option<String>,
    /// The upload's request id, kept so that every publish of the job (the relay's too)
    /// carries it to the worker's log lines.
    pub request_id: Option<String>,
    /// When the relay should publish the job if the gateway has not confirmed it by then.
    pub dispatch_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl NewImage {
    /// The record this upload becomes when first stored.
    pub fn to_record(&self) -> ImageRecord {
        ImageRecord {
            id: self.id,
            owner: self.owner.clone(),
            status: Status::Pending,
            spec: self.spec.clone(),
            original: self.original.clone(),
            variants: Vec::new(),
            error: None,
            attempts: 0,
            created_at: self.created_at,
            updated_at: self.created_at,
            callback_url: self.callback_url.clone(),
        }
    }
}

/// A page request for an owner's images, newest first.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub status: Option<Status>,
    /// Only images strictly older than this position.
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// A keyset position: the last image of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: ImageId,
}

impl Cursor {
    pub fn of(record: &ImageRecord) -> Self {
        Self {
            created_at: record.created_at,
            id: record.id,
        }
    }
}

/// One page of a listing.
#[derive(Clone, Debug)]
pub struct Page {
    pub items: Vec<ImageRecord>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}
