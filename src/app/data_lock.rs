//! One standalone process per data folder.
//!
//! Standalone mode's queue lives in the process, so at start the engine sends every
//! unfinished job of the folder's database again, as if no other process held any. A
//! second process started on the same folder would take the first one's jobs in flight
//! (a trial saw one claim twenty; the first then threw its finished work away as stale,
//! and a client read a spurious error). So the folder is locked (`pixmill.lock`, holding
//! the owner's process id) for as long as the process runs, and a second one refuses to
//! start. The lock is the operating system's: a process that dies, however, lets go of it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held for the life of the process; dropping it lets go of the folder.
#[derive(Debug)]
pub struct DataLock {
    _file: Option<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataLockError {
    #[error("another pixmill process{} is running on the data folder {}: stop it first, or give this one a folder of its own (PIXMILL_DATA_DIR)", holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(), dir.display())]
    Taken { dir: PathBuf, holder: Option<u32> },
    #[error("could not lock the data folder {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Locks `dir` (made if missing) for this process.
pub fn lock(dir: &Path) -> Result<DataLock, DataLockError> {
    let failed = |source| DataLockError::Io {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("pixmill.lock"))
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(DataLockError::Taken {
                dir: dir.to_owned(),
                holder,
            });
        }
        // A filesystem that cannot lock (NFS mounted nolock, some FUSE mounts) ran pixmill
        // before the lock existed: said, not refused.
        Err(TryLockError::Error(source)) if cannot_lock(&source) => {
            tracing::warn!(dir = %dir.display(), error = %source,
                "the data folder's filesystem cannot lock files; nothing stops a second process on it");
            return Ok(DataLock { _file: None });
        }
        Err(TryLockError::Error(source)) => return Err(failed(source)),
    }
    // Who holds it, for the next process's message; the lock does not depend on it.
    let written = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| write!(file, "{}", std::process::id()));
    if let Err(error) = written {
        tracing::warn!(%error, "could not write this process's id into the data folder's lock");
    }
    Ok(DataLock { _file: Some(file) })
}

/// Whether `error` says the filesystem does not lock files at all.
fn cannot_lock(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::Unsupported || error.raw_os_error() == Some(libc::ENOLCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_folder_is_refused_with_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = lock(&data).expect("the first lock");
        let refused = lock(&data).expect_err("a second lock");
        let message = refused.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id()))
                && message.contains("PIXMILL_DATA_DIR"),
            "{message}"
        );
        drop(first);
        assert!(lock(&data).is_ok(), "the folder stayed locked");
    }
}
