//! Object storage in a local folder, for standalone mode: `<root>/<bucket>/<key>`, one folder
//! per bucket and one file per object, the key's segments becoming nested folders.
//!
//! A write goes to a staging file inside the bucket's `~staging` folder, is flushed to disk,
//! and is then renamed over the object's path. Rename within one filesystem is atomic, so a
//! reader sees the old object or the whole new one, and a crash mid-write leaves only a
//! staging file, never a partial object under the real name. `~` cannot occur in an
//! [`ObjectKey`], so the staging folder can never collide with an object.

mod direct;

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use pixmill_actors::ports::{
    BackendError, Bucket, ErrorKind, ListedObject, ObjectKey, ObjectStore, ObjectStream,
};
use tokio_util::io::ReaderStream;

const BACKEND: &str = "filesystem";

/// Holds writes until they are complete; emptied at open.
const STAGING_DIR: &str = "~staging";

/// Chunk size of streamed reads: large enough that a download is not thousands of tiny
/// writes, small enough that many concurrent downloads stay cheap.
const READ_CHUNK: usize = 64 * 1024;

/// Objects as files under one root folder.
///
/// Known limits: the content type is not kept (the metadata store records each object's
/// format); a key cannot be both an object and a folder of another key (`a` and `a/b`), which
/// pixmill's keys (`<image id>/<variant>.<ext>`) never need; emptied folders are left behind
/// after a delete, because removing them would race with a concurrent write into them; a
/// listing walks the whole bucket folder for every page, which suits standalone mode's
/// thousands of images, not millions.
#[derive(Clone, Debug)]
pub struct FsObjectStore {
    root: PathBuf,
}

impl FsObjectStore {
    /// Opens (creating if needed) the store at `root` and removes staging files left by a
    /// crash. Only this process may write under `root`: staging files of another live
    /// process would be removed too.
    pub async fn open(root: &Path) -> Result<Self, BackendError> {
        let store = Self {
            root: root.to_path_buf(),
        };
        store.ensure_buckets().await?;

        let staging: Vec<PathBuf> = Bucket::ALL.iter().map(|b| store.staging(*b)).collect();
        let removed = blocking(move || {
            let mut removed = 0;
            for dir in staging {
                removed += clear_dir(&dir)?;
            }
            Ok(removed)
        })
        .await?;
        if removed > 0 {
            tracing::warn!(removed, root = %root.display(), "removed unfinished writes left by a crash");
        }
        Ok(store)
    }

    fn bucket_dir(&self, bucket: Bucket) -> PathBuf {
        self.root.join(bucket.name())
    }

    fn staging(&self, bucket: Bucket) -> PathBuf {
        self.bucket_dir(bucket).join(STAGING_DIR)
    }

    /// The object's path: each key segment is one path component. Keys are validated
    /// (`[A-Za-z0-9._-]`, no `.` or `..`), so the path stays inside the bucket's folder.
    fn object_path(&self, bucket: Bucket, key: &ObjectKey) -> PathBuf {
        let mut path = self.bucket_dir(bucket);
        path.extend(key.segments());
        path
    }
}

#[async_trait]
impl ObjectStore for FsObjectStore {
    async fn ensure_buckets(&self) -> Result<(), BackendError> {
        let dirs: Vec<PathBuf> = Bucket::ALL.iter().map(|b| self.staging(*b)).collect();
        blocking(move || dirs.iter().try_for_each(std::fs::create_dir_all)).await
    }

    async fn put(
        &self,
        bucket: Bucket,
        key: &ObjectKey,
        body: Bytes,
        _content_type: &str,
    ) -> Result<(), BackendError> {
        let target = self.object_path(bucket, key);
        let staging = self.staging(bucket);
        off_executor(move || write_atomically(&staging, &target, &body))
            .await?
            .map_err(|error| match error.kind() {
                // The bucket's own folders are gone (a volume not mounted, the folder moved
                // away): an outage, not a fault of this write.
                io::ErrorKind::NotFound => BackendError::unavailable(BACKEND, error),
                _ => BackendError::internal(BACKEND, error),
            })
    }

    async fn get(&self, bucket: Bucket, key: &ObjectKey) -> Result<Bytes, BackendError> {
        let path = self.object_path(bucket, key);
        off_executor(move || direct::read_all(&path))
            .await?
            .map_err(|e| io_error(e, bucket, key))
    }

    async fn get_stream(
        &self,
        bucket: Bucket,
        key: &ObjectKey,
    ) -> Result<ObjectStream, BackendError> {
        let path = self.object_path(bucket, key);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_error(e, bucket, key))?;
        let length = file
            .metadata()
            .await
            .map_err(|e| io_error(e, bucket, key))?
            .len();

        // The open file keeps its contents even if the object is replaced or deleted while
        // the stream is read, so a download never mixes two versions.
        Ok(ObjectStream {
            length: Some(length),
            body: ReaderStream::with_capacity(file, READ_CHUNK).boxed(),
        })
    }

    async fn list(
        &self,
        bucket: Bucket,
        after: Option<&ObjectKey>,
        limit: u16,
    ) -> Result<Vec<ListedObject>, BackendError> {
        let root = self.bucket_dir(bucket);
        let after = after.map(|key| key.as_str().to_owned());
        blocking(move || {
            let mut found = Vec::new();
            walk(&root, "", &mut found)?;
            found.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
            Ok(found
                .into_iter()
                .filter(|object| {
                    after
                        .as_deref()
                        .is_none_or(|after| object.key.as_str() > after)
                })
                .take(usize::from(limit))
                .collect())
        })
        .await
    }

    async fn delete(&self, bucket: Bucket, key: &ObjectKey) -> Result<(), BackendError> {
        let path = self.object_path(bucket, key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(io_error(e, bucket, key)),
        }
        // An image's results share a folder of their own: the last one out removes it (a
        // folder that still holds something stays). A write racing into it recreates it.
        if key.segments().count() > 1 {
            if let Some(folder) = path.parent() {
                let _ = tokio::fs::remove_dir(folder).await;
            }
        }
        Ok(())
    }

    /// The root and both buckets' folders are there: a volume that is not mounted leaves
    /// its mount point, an empty folder, which the root alone would pass for.
    async fn ping(&self) -> Result<(), BackendError> {
        let folders = std::iter::once(self.root.clone())
            .chain(Bucket::ALL.iter().map(|bucket| self.bucket_dir(*bucket)));
        for folder in folders {
            let meta = tokio::fs::metadata(&folder)
                .await
                .map_err(|e| BackendError::unavailable(BACKEND, e))?;
            if !meta.is_dir() {
                return Err(BackendError::new(
                    BACKEND,
                    ErrorKind::Unavailable,
                    format!("{} is not a folder", folder.display()),
                ));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("filesystem at {}", self.root.display())
    }
}

/// Writes `body` to a fresh staging file (past the page cache where the filesystem allows,
/// see [`direct`]), flushes it, renames it to `target` and flushes the target's folder so the
/// rename itself survives a crash.
fn write_atomically(staging: &Path, target: &Path, body: &[u8]) -> io::Result<()> {
    let parent = target
        .parent()
        .ok_or_else(|| io::Error::other("object path has no parent folder"))?;
    // The staging folder, made at open inside the bucket's, stands for the store being
    // there: without it nothing is made, so a store that is not mounted gets no folders
    // on the disk beneath it, and one moved away is not shadowed by a new one.
    if !staging.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} is missing (is the store's volume mounted?)",
                staging.display()
            ),
        ));
    }
    ensure_folder(parent)?;

    let temp = staging.join(format!("{}.part", uuid::Uuid::new_v4()));
    let result = (|| {
        direct::write_new(&temp, body)?.sync_all()?;
        if let Err(error) = std::fs::rename(&temp, target) {
            // A delete of the folder's last object removed the folder after it was looked
            // at: make it again, once.
            if error.kind() != io::ErrorKind::NotFound {
                return Err(error);
            }
            ensure_folder(parent)?;
            std::fs::rename(&temp, target)?;
        }
        std::fs::File::open(parent)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: a leftover is removed at the next open anyway.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Creates `folder` (and any folder above it) if missing, flushing the folder above each one
/// it creates: flushing a folder makes its own entries durable, not its name in its parent,
/// and on a filesystem without a journal a crash could otherwise drop a new image's folder
/// with the objects already acknowledged inside it.
///
/// A folder that already exists is taken as durable. The one case where it may not be yet is
/// a concurrent first write into the same new folder (two attempts of one job writing the
/// same variant); its creator flushes the entry a moment later.
fn ensure_folder(folder: &Path) -> io::Result<()> {
    // A look first: most writes go into a folder that exists (every original lands in the
    // bucket's own), and a lookup takes no lock, where mkdir locks the folder above.
    if folder.is_dir() {
        return Ok(());
    }
    match std::fs::create_dir(folder) {
        Ok(()) => match folder.parent() {
            Some(above) => std::fs::File::open(above)?.sync_all(),
            None => Ok(()),
        },
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let above = folder.parent().ok_or(error)?;
            ensure_folder(above)?;
            ensure_folder(folder)
        }
        Err(error) => Err(error),
    }
}

/// Collects every object under `dir`, whose key prefix is `prefix`, skipping the staging
/// folder. An entry removed while the walk runs is skipped, not an error.
fn walk(dir: &Path, prefix: &str, found: &mut Vec<ListedObject>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if prefix.is_empty() && name == STAGING_DIR {
            continue;
        }
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(e) if is_missing(&e) => continue,
            Err(e) => return Err(e),
        };
        if metadata.is_dir() {
            match walk(&entry.path(), &key, found) {
                Err(e) if is_missing(&e) => {}
                other => other?,
            }
        } else if let Ok(key) = ObjectKey::parse(key) {
            let modified = DateTime::<Utc>::from(metadata.modified()?);
            found.push(ListedObject { key, modified });
        }
    }
    Ok(())
}

/// Removes every file in `dir`; returns how many there were.
fn clear_dir(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Runs blocking file work on tokio's blocking pool: one hop for the whole write instead of
/// one per `tokio::fs` call. Its I/O errors are internal ones.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, BackendError> {
    off_executor(work)
        .await?
        .map_err(|e| BackendError::internal(BACKEND, e))
}

/// Runs `work` on tokio's blocking pool and leaves its I/O error to the caller, for calls
/// where "no such object" must stay distinguishable.
async fn off_executor<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<io::Result<T>, BackendError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BackendError::internal(BACKEND, e))
}

/// Whether the error means "no such object": a folder where the key points is a key prefix
/// of other objects, not an object.
fn is_missing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory
    )
}

fn io_error(error: io::Error, bucket: Bucket, key: &ObjectKey) -> BackendError {
    if is_missing(&error) {
        BackendError::not_found(BACKEND, format!("{bucket}/{key}"))
    } else {
        BackendError::internal(BACKEND, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_deeper_than_existing_folders_is_written_and_rewritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let staging = dir.path().join(STAGING_DIR);
        std::fs::create_dir(&staging).expect("staging");
        let target = dir.path().join("a").join("b").join("c.png");

        write_atomically(&staging, &target, b"first").expect("first write");
        write_atomically(&staging, &target, b"second").expect("rewrite");

        assert_eq!(std::fs::read(&target).expect("read"), b"second");
        assert_eq!(std::fs::read_dir(&staging).expect("staging").count(), 0);
    }

    #[test]
    fn a_file_where_a_folder_belongs_is_an_error_not_a_misplaced_object() {
        let dir = tempfile::tempdir().expect("temp dir");
        let staging = dir.path().join(STAGING_DIR);
        std::fs::create_dir(&staging).expect("staging");
        std::fs::write(dir.path().join("a"), b"an object named a").expect("object a");

        let written = write_atomically(&staging, &dir.path().join("a").join("b.png"), b"x");

        assert!(written.is_err());
        assert_eq!(
            std::fs::read(dir.path().join("a")).expect("a"),
            b"an object named a"
        );
        assert_eq!(std::fs::read_dir(&staging).expect("staging").count(), 0);
    }
}
