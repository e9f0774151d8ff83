//! Walks a file's container structure (markers, chunks, blocks) without decoding pixels: it
//! finds truncation and counts frames, in one pass over the bytes.
//!
//! The truncation policy is strict for every format: a file that ends before its image data
//! does is refused with [`InputError::Truncated`], never decoded with grey or missing rows.
//! The one tolerance is a GIF without its trailer byte whose frames are all complete.

use std::ops::ControlFlow;

use super::InputError;
use crate::format::ImageFormat;

/// What the walk learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Structure {
    /// Frames in the file; 1 for still images.
    pub frames: u32,
}

const STILL: Structure = Structure { frames: 1 };

/// Checks that `bytes` of `format` are complete and counts their frames. TIFF and BMP are
/// not walked: their decoders report missing data themselves.
pub(crate) fn inspect(bytes: &[u8], format: ImageFormat) -> Result<Structure, InputError> {
    match format {
        ImageFormat::Jpeg => jpeg(bytes).map(|()| STILL),
        ImageFormat::Png => png(bytes),
        ImageFormat::Gif => gif(bytes),
        ImageFormat::Webp => webp(bytes),
        ImageFormat::Tiff | ImageFormat::Bmp | ImageFormat::Avif => Ok(STILL),
    }
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    let raw = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
}

fn le32(b: &[u8], at: usize) -> Option<usize> {
    let raw = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
}

const JPEG_CUT: InputError = InputError::Truncated("the JPEG ends before its end-of-image marker");

/// Walks JPEG segments to the first EOI, skipping entropy-coded data after each SOS. Data
/// between segments is skipped the way libjpeg does, since some cameras write it.
fn jpeg(b: &[u8]) -> Result<(), InputError> {
    jpeg_segments(b, |_, _| ControlFlow::Continue(()))
}

/// The payloads (the TIFF data after `Exif\0\0`) of every EXIF block before a JPEG's first
/// scan: where each decoder looks for the orientation (jpeg-decoder and libjpeg-turbo up to
/// the frame header or the scan, zune-jpeg up to the scan, each keeping the last block it
/// saw). [`jpeg`]'s walk, stopped at the scan; call it on a file that passed.
pub(crate) fn jpeg_exif_blocks(b: &[u8]) -> Vec<&[u8]> {
    let mut blocks = Vec::new();
    // A file cut short ends the list where it ends: the walk's error has been reported by
    // `inspect` already.
    let _ = jpeg_segments(b, |marker, payload| {
        if marker == 0xDA {
            return ControlFlow::Break(());
        }
        if let Some(tiff) = payload.strip_prefix(b"Exif\0\0").filter(|_| marker == 0xE1) {
            blocks.push(tiff);
        }
        ControlFlow::Continue(())
    });
    blocks
}

/// The segment walk behind [`jpeg`] and [`jpeg_exif_blocks`]: hands `visit` each segment that
/// has a length (its marker and payload) until it breaks off or the walk reaches EOI.
fn jpeg_segments<'a>(
    b: &'a [u8],
    mut visit: impl FnMut(u8, &'a [u8]) -> ControlFlow<()>,
) -> Result<(), InputError> {
    let mut pos = 2;
    loop {
        let (marker, after) = next_marker(b, pos).ok_or(JPEG_CUT)?;
        pos = after;
        match marker {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD8 => {}
            _ => {
                let len = be16(b, pos).ok_or(JPEG_CUT)?;
                if len < 2 {
                    return Err(InputError::Corrupt(format!(
                        "JPEG segment 0x{marker:02X} declares length {len}"
                    )));
                }
                let payload = b.get(pos + 2..pos + len).ok_or(JPEG_CUT)?;
                if visit(marker, payload).is_break() {
                    return Ok(());
                }
                pos += len;
                if marker == 0xDA {
                    pos = skip_entropy_data(b, pos).ok_or(JPEG_CUT)?;
                }
            }
        }
    }
}

/// The next marker code at or after `pos` and the position just past it.
fn next_marker(b: &[u8], mut pos: usize) -> Option<(u8, usize)> {
    loop {
        pos += memchr::memchr(0xFF, b.get(pos..)?)?;
        while b.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let code = *b.get(pos)?;
        pos += 1;
        if code != 0 {
            return Some((code, pos));
        }
    }
}

/// The position of the marker that ends a scan: stuffed zeros and restart markers belong to
/// the scan.
fn skip_entropy_data(b: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let ff = pos + memchr::memchr(0xFF, b.get(pos..)?)?;
        match *b.get(ff + 1)? {
            0x00 | 0xD0..=0xD7 => pos = ff + 2,
            0xFF => pos = ff + 1,
            _ => return Some(ff),
        }
    }
}

const PNG_CUT: InputError = InputError::Truncated("the PNG ends before its IEND chunk");

/// Walks PNG chunks to IEND; an `acTL` chunk gives the frame count of an APNG.
fn png(b: &[u8]) -> Result<Structure, InputError> {
    let mut pos = 8;
    let mut frames = 1;
    loop {
        let len = be32(b, pos).ok_or(PNG_CUT)?;
        let kind = b.get(pos + 4..pos + 8).ok_or(PNG_CUT)?;
        let end = pos
            .checked_add(12)
            .and_then(|p| p.checked_add(len))
            .ok_or(PNG_CUT)?;
        if end > b.len() {
            return Err(PNG_CUT);
        }
        match kind {
            b"IEND" => return Ok(Structure { frames }),
            b"acTL" => frames = be32(b, pos + 8).ok_or(PNG_CUT)?.clamp(1, u32::MAX as usize) as u32,
            _ => {}
        }
        pos = end;
    }
}

const GIF_CUT: InputError = InputError::Truncated("the GIF ends inside a frame");

/// Walks GIF blocks, counting image descriptors.
fn gif(b: &[u8]) -> Result<Structure, InputError> {
    let flags = *b.get(10).ok_or(GIF_CUT)?;
    let mut pos = 13 + colour_table_len(flags);
    let mut frames = 0u32;
    loop {
        match b.get(pos) {
            Some(0x3B) => break,
            Some(0x21) => pos = skip_sub_blocks(b, pos + 2).ok_or(GIF_CUT)?,
            Some(0x2C) => {
                let flags = *b.get(pos + 9).ok_or(GIF_CUT)?;
                // The descriptor, its colour table, then the LZW code size byte.
                pos = skip_sub_blocks(b, pos + 10 + colour_table_len(flags) + 1).ok_or(GIF_CUT)?;
                frames += 1;
            }
            // Past the last complete frame, a missing trailer or trailing junk is tolerated.
            None | Some(_) if frames > 0 => break,
            None => return Err(GIF_CUT),
            Some(other) => {
                return Err(InputError::Corrupt(format!(
                    "unknown GIF block 0x{other:02X}"
                )))
            }
        }
    }
    Ok(Structure {
        frames: frames.max(1),
    })
}

fn colour_table_len(flags: u8) -> usize {
    if flags & 0x80 == 0 {
        0
    } else {
        3 << ((flags & 0x07) + 1)
    }
}

/// The position after a chain of GIF sub-blocks ending with a zero-length block.
fn skip_sub_blocks(b: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = usize::from(*b.get(pos)?);
        pos += 1 + len;
        if len == 0 {
            return Some(pos);
        }
        if pos > b.len() {
            return None;
        }
    }
}

const WEBP_CUT: InputError = InputError::Truncated("the WebP is shorter than its RIFF header says");

/// Checks the RIFF length and counts `ANMF` (animation frame) chunks.
fn webp(b: &[u8]) -> Result<Structure, InputError> {
    let riff_end = le32(b, 4).ok_or(WEBP_CUT)?.saturating_add(8);
    if b.len() < riff_end {
        return Err(WEBP_CUT);
    }
    let mut pos = 12;
    let mut frames = 0u32;
    while pos + 8 <= riff_end {
        let size = le32(b, pos + 4).ok_or(WEBP_CUT)?;
        if &b[pos..pos + 4] == b"ANMF" {
            frames += 1;
        }
        pos = pos.saturating_add(8).saturating_add(size + (size & 1));
    }
    if pos > riff_end {
        return Err(WEBP_CUT);
    }
    Ok(Structure {
        frames: frames.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_without_its_end_marker_is_truncated() {
        let whole = [0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 1, 2, 0xFF, 0, 3, 0xFF, 0xD9];
        assert_eq!(jpeg(&whole), Ok(()));
        assert_eq!(jpeg(&whole[..10]), Err(JPEG_CUT));
        assert_eq!(jpeg(&whole[..5]), Err(JPEG_CUT));
    }

    #[test]
    fn a_png_without_iend_is_truncated() {
        let mut png_bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        png_bytes.extend_from_slice(&[0, 0, 0, 0]);
        png_bytes.extend_from_slice(b"IEND");
        png_bytes.extend_from_slice(&[0xAE, 0x42, 0x60, 0x82]);
        assert_eq!(png(&png_bytes), Ok(STILL));
        assert_eq!(png(&png_bytes[..14]), Err(PNG_CUT));
    }

    #[test]
    fn a_webp_shorter_than_its_riff_size_is_truncated() {
        let mut webp_bytes = b"RIFF\x0c\0\0\0WEBPVP8 \0\0\0\0".to_vec();
        assert_eq!(webp(&webp_bytes), Ok(STILL));
        webp_bytes.truncate(18);
        assert_eq!(webp(&webp_bytes), Err(WEBP_CUT));
    }

    #[test]
    fn frames_are_counted() {
        let path = format!("{}/../tests/fixtures/cases", env!("CARGO_MANIFEST_DIR"));
        let read = |name: &str| std::fs::read(format!("{path}/{name}")).unwrap();
        assert_eq!(gif(&read("anim_delta.gif")).unwrap().frames, 4);
        assert_eq!(webp(&read("anim.webp")).unwrap().frames, 3);
        assert_eq!(png(&read("one_px.png")).unwrap().frames, 1);
    }

    #[test]
    fn a_gif_cut_inside_a_frame_is_truncated() {
        // Header, a 1x1 screen without colour table, one frame, trailer.
        let mut gif_bytes = b"GIF89a\x01\0\x01\0\0\0\0".to_vec();
        gif_bytes.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4C, 0x01, 0]);
        gif_bytes.push(0x3B);
        assert_eq!(gif(&gif_bytes), Ok(STILL));
        // Without the trailer every frame is still complete.
        assert_eq!(gif(&gif_bytes[..gif_bytes.len() - 1]), Ok(STILL));
        assert_eq!(gif(&gif_bytes[..gif_bytes.len() - 3]), Err(GIF_CUT));
    }
}
