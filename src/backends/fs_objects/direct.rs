//! Writing an object's bytes past the page cache (Linux `O_DIRECT`), as MinIO writes its
//! objects.
//!
//! Why: an object is written once and read later, if at all (the worker reads an original
//! once, a client downloads a result later). A buffered write first copies every byte into
//! page-cache pages that the write itself never needs again, and on a virtual machine whose
//! host maps guest memory lazily and takes freed memory back (virtio-balloon free page
//! reporting, as on the benchmark machine) each of those pages costs a host fault first. There
//! a durable 1.5 MB write took 4.9 ms of CPU buffered and 0.6 ms direct (BENCHMARKS.md,
//! "Where the short rows stand"). A direct write lets the device take the bytes from a buffer
//! the process already owns; a later read fills the page cache by the device's own transfer,
//! which costs the guest far less than copying.
//!
//! Direct I/O needs the buffer, the file offset and the length aligned to the device's block,
//! so the bytes pass through one aligned buffer of at most [`CHUNK`] bytes, the last block is
//! padded with zeros and the file is cut back to the object's length. A filesystem that
//! refuses direct I/O (`EINVAL`: some FUSE and network mounts) gets a buffered write instead,
//! for the rest of the process's life.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Alignment that satisfies direct I/O on 512-byte and 4 KiB block devices alike.
const ALIGN: usize = 4096;

/// Largest piece copied into the aligned buffer and written at once.
const CHUNK: usize = 1 << 20;

/// Set once a filesystem refused direct I/O; later writes go buffered without asking again.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Creates (or truncates) `path` and writes `body` to it; the caller flushes the returned file.
pub(super) fn write_new(path: &Path, body: &[u8]) -> io::Result<File> {
    if !REFUSED.load(Ordering::Relaxed) {
        match write_direct(path, body) {
            Ok(file) => return Ok(file),
            Err(error) if refuses_direct_io(&error) => {
                if !REFUSED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %path.display(), error = %error,
                        "this filesystem refuses direct I/O; objects are written through the page cache");
                }
            }
            Err(error) => return Err(error),
        }
    }
    // Truncates whatever a refused direct write left behind.
    let mut file = File::create(path)?;
    file.write_all(body)?;
    Ok(file)
}

#[cfg(target_os = "linux")]
fn write_direct(path: &Path, body: &[u8]) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let mut storage = vec![0u8; padded(body.len()).min(CHUNK) + ALIGN];
    let start = storage.as_ptr().align_offset(ALIGN);
    let buffer = &mut storage[start..];
    for piece in body.chunks(CHUNK) {
        let length = padded(piece.len());
        buffer[..piece.len()].copy_from_slice(piece);
        buffer[piece.len()..length].fill(0);
        // Each write is whole aligned blocks at an aligned offset. A short write would leave
        // the next one unaligned, which fails with EINVAL and falls back to a buffered write.
        file.write_all(&buffer[..length])?;
    }
    file.set_len(body.len() as u64)?;
    Ok(file)
}

#[cfg(not(target_os = "linux"))]
fn write_direct(_path: &Path, _body: &[u8]) -> io::Result<File> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

fn refuses_direct_io(error: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    if error.raw_os_error() == Some(libc::EINVAL) {
        return true;
    }
    error.kind() == io::ErrorKind::Unsupported
}

/// `length` rounded up to whole aligned blocks.
fn padded(length: usize) -> usize {
    length.div_ceil(ALIGN) * ALIGN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(length: usize) -> Vec<u8> {
        (0..length).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn every_length_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let lengths = [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            CHUNK,
            CHUNK + 7,
            2 * CHUNK + ALIGN,
        ];
        for length in lengths {
            let path = dir.path().join(format!("object-{length}"));
            let body = pattern(length);
            let file = write_new(&path, &body).unwrap();
            file.sync_all().unwrap();
            drop(file);
            assert_eq!(std::fs::read(&path).unwrap(), body, "length {length}");
        }
    }

    #[test]
    fn a_rewrite_leaves_no_tail_of_the_longer_old_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        write_new(&path, &pattern(3 * ALIGN)).unwrap();
        write_new(&path, b"short").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_test_filesystem_takes_direct_writes() {
        // The suite's temp folder is on a filesystem with direct I/O (ext4 here), so the
        // tests above exercised the aligned path, not only the buffered fallback.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        write_direct(&path, &pattern(ALIGN + 5)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), pattern(ALIGN + 5));
    }

    #[test]
    fn blocks_are_padded_to_the_alignment() {
        assert_eq!(padded(0), 0);
        assert_eq!(padded(1), ALIGN);
        assert_eq!(padded(ALIGN), ALIGN);
        assert_eq!(padded(ALIGN + 1), 2 * ALIGN);
    }
}
