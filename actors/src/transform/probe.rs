use std::io::Cursor;

use image::metadata::Orientation;
use image::{ImageDecoder, ImageReader};

use super::sniff::{describe_foreign, sniff};
use super::{container, orientation, panics};
use super::{InputError, InputLimits};
use crate::format::ImageFormat;

/// What the header of an input says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub format: ImageFormat,
    /// Dimensions as stored, before EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// Frames in the file: more than 1 for an animated GIF, WebP or PNG.
    pub frames: u32,
    /// The file's EXIF orientation may exchange width and height (a portrait photo stored
    /// on its side): the steps see the image turned upright first, where the decoder that
    /// renders it reads the tag (see [`check_result_size`](super::check_result_size)).
    pub turned: bool,
}

impl Probe {
    pub fn is_animated(&self) -> bool {
        self.frames > 1
    }

    /// The size every step starts from: the stored size, turned upright.
    pub fn upright(&self) -> (u32, u32) {
        if self.turned {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// How the error of a header parser that panicked begins.
pub(crate) const PARSER_PANICKED: &str = "the header parser failed";

/// Recognises the format from the magic bytes, reads the declared size from the header and
/// walks the container for truncation, without decoding pixels. Every limit is checked here,
/// so a refused file never reaches a decoder. A header parser that panics on the file makes
/// it `corrupt_image`.
pub fn probe(bytes: &[u8], limits: &InputLimits) -> Result<Probe, InputError> {
    panics::contain(
        || probe_unguarded(bytes, limits),
        |message| InputError::Corrupt(format!("{PARSER_PANICKED}: {message}")),
    )
}

fn probe_unguarded(bytes: &[u8], limits: &InputLimits) -> Result<Probe, InputError> {
    if bytes.is_empty() {
        return Err(InputError::Empty);
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(InputError::TooManyBytes {
            bytes: bytes.len() as u64,
            limit: limits.max_bytes,
        });
    }
    let format = sniff(bytes).ok_or(InputError::UnsupportedFormat {
        detected: describe_foreign(bytes),
    })?;
    if !limits.allowed_formats.contains(&format) {
        return Err(InputError::FormatNotAllowed(format));
    }

    let (width, height) = header_dimensions(bytes, format)?;
    check_dimensions(width, height, limits)?;

    let structure = container::inspect(bytes, format)?;
    if structure.frames > limits.max_frames {
        return Err(InputError::TooManyFrames {
            frames: structure.frames,
            limit: limits.max_frames,
        });
    }
    let animation_pixels = u64::from(structure.frames) * u64::from(width) * u64::from(height);
    if structure.frames > 1 && animation_pixels > limits.max_animation_pixels {
        return Err(InputError::AnimationTooLarge {
            frames: structure.frames,
            pixels: animation_pixels,
            limit: limits.max_animation_pixels,
        });
    }
    Ok(Probe {
        format,
        width,
        height,
        frames: structure.frames,
        turned: turned(bytes, format),
    })
}

/// The declared size. JPEG headers are read by the decoder that decodes them later, so both
/// agree on what the file is.
fn header_dimensions(bytes: &[u8], format: ImageFormat) -> Result<(u32, u32), InputError> {
    if format == ImageFormat::Jpeg {
        let mut decoder = jpeg_decoder::Decoder::new(bytes);
        decoder
            .read_info()
            .map_err(|e| InputError::Corrupt(e.to_string()))?;
        let info = decoder
            .info()
            .ok_or_else(|| InputError::Corrupt("the JPEG has no frame header".into()))?;
        return Ok((u32::from(info.width), u32::from(info.height)));
    }
    ImageReader::with_format(Cursor::new(bytes), to_image_format(format))
        .into_dimensions()
        .map_err(|e| InputError::Corrupt(e.to_string()))
}

/// Whether the file's EXIF orientation may exchange width and height. Read only after the
/// container walk accepted the file: a metadata reader may allocate what a chunk header
/// declares (WebP's does). For JPEG, every EXIF block before the scan counts (decoders
/// disagree on which one wins: see [`container::jpeg_exif_blocks`]), read by a walk of our
/// own rather than a decoder's header parser, whose cost on a hostile file is its own.
/// Unreadable metadata counts as upright, as it does for the decoders.
fn turned(bytes: &[u8], format: ImageFormat) -> bool {
    if format == ImageFormat::Jpeg {
        return container::jpeg_exif_blocks(bytes)
            .into_iter()
            .any(|exif| orientation::swaps_axes(orientation::from_exif(Some(exif))));
    }
    let orientation = ImageReader::with_format(Cursor::new(bytes), to_image_format(format))
        .into_decoder()
        .ok()
        .and_then(|mut decoder| decoder.orientation().ok())
        .unwrap_or(Orientation::NoTransforms);
    orientation::swaps_axes(orientation)
}

/// Refuses sizes outside the limits; used on the header and again on every decoder.
pub(crate) fn check_dimensions(
    width: u32,
    height: u32,
    limits: &InputLimits,
) -> Result<(), InputError> {
    if width == 0 || height == 0 {
        return Err(InputError::ZeroSize);
    }
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_width || height > limits.max_height || pixels > limits.max_pixels {
        return Err(InputError::DimensionsExceeded {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

pub(crate) fn to_image_format(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        ImageFormat::Bmp => image::ImageFormat::Bmp,
        ImageFormat::Avif => image::ImageFormat::Avif,
    }
}
