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
//! Direct I/O needs the buffer, the file offset and the length aligned to the device's block.
//! A write takes the whole blocks of a body that starts on a block boundary from where they
//! lie, copies anything else through an aligned buffer of at most [`CHUNK`] bytes, pads the
//! last block with zeros and cuts the file back to the object's length; a read fills a
//! buffer of whole blocks and hands out the object's part of it.
//! A file is opened as usual and switched to direct I/O with `fcntl`; where the filesystem
//! refuses (`EINVAL`: some FUSE and network mounts, or a block larger than 4 KiB), that
//! object is written or read again through the page cache, so a refusal costs speed, never
//! an object.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use pixmill_actors::ports::aligned_vec;

/// Alignment that satisfies direct I/O on 512-byte and 4 KiB block devices alike: the object
/// port's `BODY_ALIGN`, at which the gateway receives uploads.
const ALIGN: usize = pixmill_actors::ports::BODY_ALIGN;
const _: () = assert!(ALIGN >= 4096 && ALIGN.is_power_of_two());

/// Largest piece copied into the aligned buffer and written at once. 256 KiB against 1 MiB
/// kept the upload-latency phase's p99 at 71-74 ms instead of 97-101 (two runs each): less
/// to zero and copy per upload, for a few more writes per object.
const CHUNK: usize = 1 << 18;

/// Set once a fallback was logged, so a filesystem without direct I/O is named once, not
/// on every object.
static FELL_BACK: AtomicBool = AtomicBool::new(false);

/// Creates (or truncates) `path` and writes `body` to it; the caller flushes the returned file.
///
/// The file is created as usual and switched to direct I/O afterwards, so the open's own
/// errors keep their meaning; where the switch or an aligned write is refused, the bytes are
/// written again from the start through the page cache.
pub(super) fn write_new(path: &Path, body: &[u8]) -> io::Result<File> {
    let mut file = File::create(path)?;
    match set_direct(&file, true).and_then(|()| write_aligned(&mut file, body)) {
        Ok(()) => return Ok(file),
        Err(error) if refuses_direct_io(&error) => {
            note_fallback(path, &error);
            set_direct(&file, false)?;
            file.set_len(0)?;
            file.rewind()?;
        }
        Err(error) => return Err(error),
    }
    file.write_all(body)?;
    Ok(file)
}

/// Reads the whole file at `path` (an object, written once: it does not change while read).
///
/// As with writes, the file is opened as usual (a folder answers "is a directory", which
/// the store reads as "no such object") and switched to direct I/O after; anything short of
/// the whole file read that way is read again through the page cache.
pub(super) fn read_all(path: &Path) -> io::Result<Bytes> {
    let mut file = File::open(path)?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(io::Error::from(io::ErrorKind::IsADirectory));
    }
    let length = usize::try_from(metadata.len()).map_err(io::Error::other)?;
    match set_direct(&file, true).and_then(|()| read_aligned(&mut file, length)) {
        Ok(Some(bytes)) => return Ok(bytes),
        Ok(None) => {}
        Err(error) if refuses_direct_io(&error) => note_fallback(path, &error),
        Err(error) => return Err(error),
    }
    set_direct(&file, false)?;
    file.rewind()?;
    let mut bytes = Vec::with_capacity(length);
    file.read_to_end(&mut bytes)?;
    Ok(Bytes::from(bytes))
}

/// Reads `length` bytes from the start of a file opened for direct I/O into an aligned
/// buffer of whole blocks (the read that finds the end asks for whole blocks and gets the
/// rest of the file). `None` when the reads came back short before the end (a filesystem
/// may do that): the next direct read would be unaligned, so the caller reads buffered.
///
/// The buffer is not zeroed first: the reads fill it. Zeroing an original before reading it
/// was 4% of the standalone server's CPU outside rendering in a throughput profile.
fn read_aligned(file: &mut File, length: usize) -> io::Result<Option<Bytes>> {
    let capacity = padded(length);
    // The reads append from the aligned start on.
    let (mut storage, start) = aligned_vec(capacity);
    let mut filled = 0;
    while filled < length {
        let room = &mut storage.spare_capacity_mut()[..capacity - filled];
        match read_into(file, room) {
            Ok(0) => break,
            Ok(read) => {
                // SAFETY: `read_into` initialised the first `read` bytes of the spare room,
                // which begins at the vector's current length.
                unsafe { storage.set_len(storage.len() + read) };
                filled += read;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
        if filled % ALIGN != 0 {
            break;
        }
    }
    if filled != length {
        return Ok(None);
    }
    Ok(Some(Bytes::from(storage).slice(start..start + filled)))
}

/// One `read(2)` into memory not yet initialised; how many bytes it wrote there.
#[cfg(unix)]
fn read_into(file: &File, room: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    // SAFETY: the kernel writes at most `room.len()` bytes into `room`, which this call
    // borrows mutably; the descriptor is borrowed from `file` for the call.
    let read = unsafe { libc::read(file.as_raw_fd(), room.as_mut_ptr().cast(), room.len()) };
    usize::try_from(read).map_err(|_| io::Error::last_os_error())
}

#[cfg(not(unix))]
fn read_into(_file: &File, _room: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Writes `body` in whole aligned blocks, then cuts the file back to the body's length.
///
/// A body that starts on a block boundary (an upload's original, received that way: see
/// `BODY_ALIGN` in the object port) goes to the disk from where it lies, all its whole
/// blocks in one write; only its last partial block is copied. Any other body is copied
/// through an aligned buffer of at most [`CHUNK`] bytes at a time. Two writes (the whole
/// blocks, the padded tail) instead of one per chunk also mean two waits for the device
/// instead of six for a 1.5 MB photo, and so fewer wake-ups of this thread, each of which
/// preempts a render.
fn write_aligned(file: &mut File, body: &[u8]) -> io::Result<()> {
    let in_place = if body.as_ptr().align_offset(ALIGN) == 0 {
        body.len() / ALIGN * ALIGN
    } else {
        0
    };
    // Whole aligned blocks at an aligned offset. A short write would leave the next one
    // unaligned, which fails with EINVAL and sends the caller to the buffered write.
    file.write_all(&body[..in_place])?;
    let rest = &body[in_place..];
    if !rest.is_empty() {
        let (mut storage, start) = aligned_buffer(padded(rest.len()).min(CHUNK));
        let buffer = &mut storage[start..];
        for piece in rest.chunks(CHUNK) {
            let length = padded(piece.len());
            buffer[..piece.len()].copy_from_slice(piece);
            buffer[piece.len()..length].fill(0);
            file.write_all(&buffer[..length])?;
        }
    }
    file.set_len(body.len() as u64)
}

/// Turns direct I/O on or off for an open file (Linux lets `fcntl` change `O_DIRECT`; a
/// filesystem without it answers EINVAL).
#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL only read and set the status flags of a descriptor this
    // function borrows for the call; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    if wanted != flags {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, wanted) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_file: &File, on: bool) -> io::Result<()> {
    if on {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    } else {
        Ok(())
    }
}

fn note_fallback(path: &Path, error: &io::Error) {
    if !FELL_BACK.swap(true, Ordering::Relaxed) {
        tracing::warn!(path = %path.display(), error = %error,
            "direct I/O refused here; objects it refuses go through the page cache");
    }
}

fn refuses_direct_io(error: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    if error.raw_os_error() == Some(libc::EINVAL) {
        return true;
    }
    error.kind() == io::ErrorKind::Unsupported
}

/// A zeroed buffer holding `length` bytes from an [`ALIGN`]ed offset, and that offset.
fn aligned_buffer(length: usize) -> (Vec<u8>, usize) {
    let (mut storage, start) = aligned_vec(length);
    storage.resize(start + length, 0);
    (storage, start)
}

/// `length` rounded up to whole aligned blocks.
fn padded(length: usize) -> usize {
    length.div_ceil(ALIGN) * ALIGN
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empty, around one block, around one write buffer, and several buffers.
    const LENGTHS: [usize; 8] = [
        0,
        1,
        ALIGN - 1,
        ALIGN,
        ALIGN + 1,
        CHUNK,
        CHUNK + 7,
        2 * CHUNK + ALIGN,
    ];

    fn pattern(length: usize) -> Vec<u8> {
        (0..length).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn every_length_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for length in LENGTHS {
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
        for length in LENGTHS {
            let path = dir.path().join(format!("object-{length}"));
            let body = pattern(length);
            std::fs::write(&path, &body).unwrap();
            assert_eq!(read_all(&path).unwrap(), body, "length {length}");
            #[cfg(target_os = "linux")]
            {
                let mut file = File::open(&path).unwrap();
                set_direct(&file, true).unwrap();
                let direct = read_aligned(&mut file, length).unwrap();
                assert_eq!(
                    direct.as_deref(),
                    Some(&body[..]),
                    "length {length}, direct"
                );
            }
        }
    }

    /// `pattern(length)` from an [`ALIGN`]ed address: the storage and the pattern's offset.
    fn aligned_pattern(length: usize) -> (Vec<u8>, usize) {
        let (mut storage, start) = aligned_vec(length);
        storage.extend_from_slice(&pattern(length));
        (storage, start)
    }

    #[test]
    fn a_body_on_a_block_boundary_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for length in LENGTHS {
            let (storage, start) = aligned_pattern(length);
            let body = &storage[start..];
            assert_eq!(body.as_ptr().align_offset(ALIGN), 0);

            let path = dir.path().join(format!("object-{length}"));
            write_new(&path, body).unwrap().sync_all().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), body, "length {length}");
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_body_on_a_block_boundary_is_written_direct_without_the_fallback() {
        // `write_new` falls back to the page cache on EINVAL, which would hide a broken
        // in-place write; here a refusal fails the test.
        let dir = tempfile::tempdir().unwrap();
        for length in [ALIGN, ALIGN + 5, CHUNK + 7, 3 * CHUNK] {
            let (storage, start) = aligned_pattern(length);
            let path = dir.path().join(format!("object-{length}"));
            let mut file = File::create(&path).unwrap();
            set_direct(&file, true).unwrap();
            write_aligned(&mut file, &storage[start..]).unwrap();
            drop(file);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                pattern(length),
                "length {length}"
            );
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
        // The suite's temp folder is on a filesystem with direct I/O (ext4 here; tmpfs since
        // Linux 6.6), so the tests above exercised the aligned path, not only the fallback.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let mut file = File::create(&path).unwrap();
        set_direct(&file, true).unwrap();
        write_aligned(&mut file, &pattern(ALIGN + 5)).unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), pattern(ALIGN + 5));
    }

    #[test]
    fn a_folder_is_named_as_one_not_as_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_all(dir.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::IsADirectory);
    }

    #[test]
    fn blocks_are_padded_to_the_alignment() {
        assert_eq!(padded(0), 0);
        assert_eq!(padded(1), ALIGN);
        assert_eq!(padded(ALIGN), ALIGN);
        assert_eq!(padded(ALIGN + 1), 2 * ALIGN);
    }
}
