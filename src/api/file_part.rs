//! The `file` part of an upload form, read in one pass into one buffer.
//!
//! poem-openapi's `Binary<Vec<u8>>` reads a part through a 2 KiB stack buffer: every byte of
//! a photo is copied twice (into the stack buffer, then onto the end of the growing vector)
//! in some 750 reads for 1.5 MB. Here the part is read straight into the buffer's spare
//! room, chunk by chunk as the body arrives. The spec is the same (`string`, `binary`).
//!
//! The buffer starts at a [`BODY_ALIGN`](pixmill_actors::ports::BODY_ALIGN) boundary, so
//! the embedded object store writes the original's whole blocks to disk from where they lie
//! instead of copying them through a buffer of its own (where the filesystem takes direct
//! I/O).

use std::borrow::Cow;

use bytes::Bytes;
use pixmill_actors::ports::aligned_vec;
use poem::web::Field;
use poem_openapi::registry::MetaSchemaRef;
use poem_openapi::types::{Binary, ParseError, ParseFromMultipartField, ParseResult, Type};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Room reserved before the first byte arrives: most photos are a few hundred KB to a few
/// MB, so a quarter of a MiB skips the small steps of the buffer's doubling.
const FIRST_ROOM: usize = 256 * 1024;

/// The file's bytes, as sent.
#[derive(Debug, Clone, Default)]
pub struct FilePart(pub Bytes);

impl Type for FilePart {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        <Binary<Vec<u8>> as Type>::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        <Binary<Vec<u8>> as Type>::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromMultipartField for FilePart {
    async fn parse_from_multipart(field: Option<Field>) -> ParseResult<Self> {
        let field = field.ok_or_else(ParseError::expected_input)?;
        let reader = std::pin::pin!(field.into_async_read());
        let bytes = read_aligned(reader).await.map_err(ParseError::custom)?;
        Ok(Self(bytes))
    }
}

/// Reads `reader` to its end into one buffer that starts at a `BODY_ALIGN` boundary.
async fn read_aligned(mut reader: impl AsyncRead + Unpin) -> std::io::Result<Bytes> {
    let mut buffer = AlignedBuffer::with_room(FIRST_ROOM);
    loop {
        if buffer.is_full() {
            buffer = buffer.doubled();
        }
        // The vector has spare room, so `read_buf` fills it in place and never reallocates
        // it (which would keep the offset of the bytes but not their alignment).
        if reader.read_buf(&mut buffer.storage).await? == 0 {
            return Ok(buffer.into_bytes());
        }
    }
}

/// Bytes from `start` on, where `start` is the first `BODY_ALIGN` boundary of the vector's
/// allocation (the bytes before it are padding).
///
/// The buffer is not shrunk to the file's size once the file is in: every buffer's room is
/// a quarter of a MiB times a power of two, so a freed buffer fits the next upload of about
/// the same size as it is. The spare room lives until the original is stored, so an upload
/// holds about twice its file at most (a quarter of a MiB at least). Heaps keep what odd
/// sizes leave between them: buffers sized exactly from `Content-Length` peaked at 314 to
/// 339 MB in a latency phase; on a later machine, doubling buffers shrunk in place peaked at
/// 301 and 308 MB, and these at 234 and 244. Whether the rooms are exact or drift by the
/// padding, or are picked from `Content-Length` up front, made no difference the runs could
/// show (BENCHMARKS.md).
struct AlignedBuffer {
    storage: Vec<u8>,
    start: usize,
    /// The room asked for, which `doubled` doubles: the vector's capacity is this plus up
    /// to one alignment's padding, so requested sizes stay the same from upload to upload.
    room: usize,
}

impl AlignedBuffer {
    fn with_room(room: usize) -> Self {
        let (storage, start) = aligned_vec(room);
        Self {
            storage,
            start,
            room,
        }
    }

    fn is_full(&self) -> bool {
        self.storage.len() == self.storage.capacity()
    }

    /// The same bytes in a buffer with twice the room.
    fn doubled(self) -> Self {
        let mut bigger = Self::with_room(2 * self.room);
        bigger
            .storage
            .extend_from_slice(&self.storage[self.start..]);
        bigger
    }

    fn into_bytes(self) -> Bytes {
        Bytes::from(self.storage).slice(self.start..)
    }
}

#[cfg(test)]
mod tests {
    use pixmill_actors::ports::BODY_ALIGN;

    use super::*;

    #[tokio::test]
    async fn a_part_is_read_whole_and_lands_on_a_block_boundary() {
        // Empty, within the first room, and across two doublings with an odd tail.
        for length in [0, 1, FIRST_ROOM - 1, FIRST_ROOM, 3 * FIRST_ROOM + 17] {
            let sent: Vec<u8> = (0..length).map(|i| (i * 7 % 253) as u8).collect();
            let received = read_aligned(&sent[..]).await.unwrap();
            assert_eq!(&received[..], &sent[..], "length {length}");
            assert_eq!(
                received.as_ptr().align_offset(BODY_ALIGN),
                0,
                "length {length}"
            );
        }
    }
}
