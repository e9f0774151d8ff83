use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;

use super::BackendError;
use crate::format::ImageFormat;
use crate::ids::ImageId;

/// The two buckets. Their names are fixed by the product: `raw-images` holds originals,
/// `processed-images` the renditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    Raw,
    Processed,
}

impl Bucket {
    pub const ALL: [Bucket; 2] = [Bucket::Raw, Bucket::Processed];

    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw-images",
            Self::Processed => "processed-images",
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An object key made only by pixmill (from ids and variant names), never from a client's
/// file name: segments of `[A-Za-z0-9._-]` joined by `/`, none of them `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid object key {0:?}")]
pub struct InvalidObjectKey(pub String);

impl ObjectKey {
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidObjectKey> {
        let raw = raw.into();
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if raw.len() > 512 || !raw.split('/').all(segment_ok) {
            return Err(InvalidObjectKey(raw));
        }
        Ok(Self(raw))
    }

    /// The key of an image's original in `raw-images`: `<image id>.<extension>`.
    pub fn original(id: ImageId, format: ImageFormat) -> Self {
        Self(format!("{id}.{}", format.extension()))
    }

    /// The image whose original this is, for a key made by [`ObjectKey::original`];
    /// `None` for any other key.
    pub fn original_of(&self) -> Option<ImageId> {
        id_written_as(stem_of_file(&self.0)?)
    }

    /// The image whose rendition this is, for a key of `processed-images` as the persister
    /// makes them (`<image id>/<variant>.<extension>`); `None` for any other key.
    pub fn rendition_of(&self) -> Option<ImageId> {
        let (id, file) = self.0.split_once('/')?;
        if file.contains('/') || stem_of_file(file)?.is_empty() {
            return None;
        }
        id_written_as(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

/// The stem of a file name made as pixmill makes them, `<stem>.<extension>` with one
/// non-empty extension and no folder; `None` for any other name.
fn stem_of_file(name: &str) -> Option<&str> {
    let (stem, extension) = name.split_once('.')?;
    let one_extension = !extension.is_empty() && !extension.contains(['.', '/']);
    one_extension.then_some(stem)
}

/// The image id `text` spells exactly as pixmill writes ids into keys (lower-case,
/// hyphenated): the sweeper removes objects by these keys, so another spelling of an id
/// (upper case, no hyphens) is not a key pixmill made.
fn id_written_as(text: &str) -> Option<ImageId> {
    let id: ImageId = text.parse().ok()?;
    (id.to_string() == text).then_some(id)
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object's bytes as a stream, for downloads that should not sit in memory whole.
pub struct ObjectStream {
    pub length: Option<u64>,
    pub body: BoxStream<'static, std::io::Result<Bytes>>,
}

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    pub key: ObjectKey,
    /// When the object was last written, by the store's clock.
    pub modified: DateTime<Utc>,
}

/// Where in memory a body of [`ObjectStore::put`] should start for a store to hand it to the
/// disk as it lies. Direct I/O (the embedded store's writes, which skip the page cache) moves
/// whole 4 KiB blocks from 4 KiB boundaries; the blocks of any other body, and the last
/// partial block of every body, are first copied through an aligned buffer. The gateway
/// receives uploads at this alignment; stores that send bytes over a network ignore it.
pub const BODY_ALIGN: usize = 4096;

/// A vector with room for `capacity` bytes from its first [`BODY_ALIGN`] boundary, and that
/// boundary's offset. The bytes before it are in the vector already (zeroed padding), so
/// what is appended lands on the boundary; the room itself is not zeroed (callers fill it).
pub fn aligned_vec(capacity: usize) -> (Vec<u8>, usize) {
    let mut storage: Vec<u8> = Vec::with_capacity(capacity + BODY_ALIGN);
    let start = storage.as_ptr().align_offset(BODY_ALIGN);
    storage.resize(start, 0);
    (storage, start)
}

/// Object storage with the two buckets.
///
/// Writes are all-or-nothing: a reader sees either the whole new object or none. Writing the
/// same key again replaces it, which is what makes a repeated job harmless.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Creates the buckets if they are missing.
    async fn ensure_buckets(&self) -> Result<(), BackendError>;

    async fn put(
        &self,
        bucket: Bucket,
        key: &ObjectKey,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), BackendError>;

    /// The whole object in memory; for workers, which decode it whole anyway.
    async fn get(&self, bucket: Bucket, key: &ObjectKey) -> Result<Bytes, BackendError>;

    /// The object as a stream; for downloads.
    async fn get_stream(
        &self,
        bucket: Bucket,
        key: &ObjectKey,
    ) -> Result<ObjectStream, BackendError>;

    /// One page of the bucket's objects in key order: at most `limit`, each with a key
    /// after `after` when given. An empty page means the listing is done. Objects whose
    /// names are not valid [`ObjectKey`]s (put there by something else) are left out.
    async fn list(
        &self,
        bucket: Bucket,
        after: Option<&ObjectKey>,
        limit: u16,
    ) -> Result<Vec<ListedObject>, BackendError>;

    /// Removes the object; removing a missing one succeeds.
    async fn delete(&self, bucket: Bucket, key: &ObjectKey) -> Result<(), BackendError>;

    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), BackendError>;

    /// A short description for the start-up summary, with no secrets in it.
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_refuse_path_tricks() {
        for bad in [
            "",
            "/abs",
            "a//b",
            "../etc/passwd",
            "a/../b",
            "a/./b",
            "a\0b",
            "a b",
            "é",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ObjectKey::parse("0190-aa/main.jpg").is_ok());
    }

    #[test]
    fn an_original_key_names_its_image_and_nothing_else_does() {
        let id = ImageId::new();
        let key = ObjectKey::original(id, ImageFormat::Png);

        assert_eq!(key.as_str(), format!("{id}.png"));
        assert_eq!(key.original_of(), Some(id));
        for other in [
            format!("{id}/main.png"),
            format!("{id}"),
            format!("{id}.tar.gz"),
            format!("{}.png", id.to_string().to_uppercase()),
            "x.png".into(),
        ] {
            assert_eq!(
                ObjectKey::parse(other.clone()).unwrap().original_of(),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn a_rendition_key_names_its_image_and_nothing_else_does() {
        let id = ImageId::new();
        let key = ObjectKey::parse(format!("{id}/thumbnail.webp")).unwrap();

        assert_eq!(key.rendition_of(), Some(id));
        assert_eq!(key.original_of(), None);
        for other in [
            format!("{id}.png"),
            format!("{id}/main"),
            format!("{id}/main.tar.gz"),
            format!("{id}/x/main.png"),
            format!("{}/main.png", id.to_string().to_uppercase()),
            format!("{}/main.png", id.to_string().replace('-', "")),
            "x/main.png".into(),
        ] {
            assert_eq!(
                ObjectKey::parse(other.clone()).unwrap().rendition_of(),
                None,
                "{other}"
            );
        }
    }
}
