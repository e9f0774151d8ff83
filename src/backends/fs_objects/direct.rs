//! Writing and reading an object's bytes past the page cache (Linux `O_DIRECT`), as MinIO
//! writes its objects.
//!
//! Why: an object is written once and read later, if at all (the worker reads an original
//! once, a client downloads a result later). A buffered write first copies every byte into
//! page-cache pages that the write itself never needs again, and on a virtual machine whose
//! host maps guest memory lazily and takes freed memory back (virtio-balloon free page
//! reporting, as on the benchmark machine) each of those pages costs a host fault first. There
//! a durable 1.5 MB write took 4.9 ms of CPU buffered and 0.6 ms direct, and reading it back
//! 0.56 ms buffered and 0.10 ms direct (BENCHMARKS.md, "Where the short rows stand"). Direct
//! I/O lets the device move the bytes to or from a buffer the process already owns. Downloads
//! ([`super::FsObjectStore::get_stream`]) stay buffered: they read in small pieces, and a
//! result fetched again is worth caching.
//!
//! Direct I/O needs the buffer, the file offset and the length aligned to the device's block,
//! so the bytes pass through aligned buffers: a write copies through one of at most [`CHUNK`]
//! bytes, pads the last block with zeros and cuts the file back to the object's length; a
//! read fills a buffer one block longer than the file and hands out the object's part of it.
//! A filesystem that refuses direct I/O (`EINVAL`: some FUSE and network mounts) gets
//! buffered reads and writes instead, for the rest of the process's life.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

/// Alignment that satisfies direct I/O on 512-byte and 4 KiB block devices alike.
const ALIGN: usize = 4096;

/// Largest piece copied into the aligned buffer and written at once. 256 KiB against 1 MiB
/// kept the upload-latency phase's p99 at 71-74 ms instead of 97-101 (two runs each): less
/// to zero and copy per upload, for a few more writes per object.
const CHUNK: usize = 1 << 18;

/// Set once a filesystem refused direct I/O; later reads and writes go buffered without asking.
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

/// Reads the whole file at `path` (an object, written once: it does not change while read).
pub(super) fn read_all(path: &Path) -> io::Result<Bytes> {
    if !REFUSED.load(Ordering::Relaxed) {
        match read_direct(path) {
            Ok(bytes) => return Ok(bytes),
            Err(error) if refuses_direct_io(&error) => {
                if !REFUSED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %path.display(), error = %error,
                        "this filesystem refuses direct I/O; objects are read through the page cache");
                }
            }
            Err(error) => return Err(error),
        }
    }
    std::fs::read(path).map(Bytes::from)
}

#[cfg(target_os = "linux")]
fn read_direct(path: &Path) -> io::Result<Bytes> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let length = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
    // One block more than the length, so the read that finds the end is still whole blocks.
    let capacity = padded(length + 1);
    let mut storage = vec![0u8; capacity + ALIGN];
    let start = storage.as_ptr().align_offset(ALIGN);
    let mut filled = 0;
    loop {
        let read = file.read(&mut storage[start + filled..start + capacity])?;
        if read == 0 {
            break;
        }
        filled += read;
        if filled % ALIGN != 0 || filled == capacity {
            // A short read is the end of the file; a full buffer means it grew meanwhile,
            // which an object (written once, replaced by rename) never does.
            break;
        }
    }
    Ok(Bytes::from(storage).slice(start..start + filled))
}

#[cfg(not(target_os = "linux"))]
fn read_direct(_path: &Path) -> io::Result<Bytes> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
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
    fn every_length_reads_back_exactly_through_direct_reads() {
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
            std::fs::write(&path, &body).unwrap();
            assert_eq!(read_all(&path).unwrap(), body, "length {length}");
            #[cfg(target_os = "linux")]
            assert_eq!(read_direct(&path).unwrap(), body, "length {length}, direct");
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
