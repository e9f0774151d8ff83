//! Shrink-on-load for large JPEGs through `jpeg-decoder`, chosen for its DCT-domain
//! scaling: a thumbnail of a 20 MP photo is decoded at 1/4 or 1/8 size and the full-size
//! image never exists in memory (about 10 MB above baseline instead of 100 MB).
//!
//! Its entropy decoding is about 4 times slower than zune-jpeg's (measured on a 20 MP
//! baseline photo: 0.9-1.0 s at any scale against 0.24 s for a full zune decode), so it is
//! used only when shrinking saves memory that matters; see `decode::shrinking_pays`.
//!
//! Progressive JPEGs still hold every DCT coefficient of the full-size image while their
//! scans arrive (2 bytes per sample, about 80 MB for 20 MP at 4:2:2) whatever the scale;
//! that is inherent to progressive coding.

use image::{DynamicImage, GrayImage, RgbImage};
use jpeg_decoder::{Decoder, PixelFormat};

use super::{NeededSize, Raw};
use crate::transform::orientation;
use crate::transform::probe::check_dimensions;
use crate::transform::{color, InputLimits, TransformError};

/// The DCT scales jpeg-decoder offers, in eighths, smallest first.
const SCALES: [u32; 4] = [1, 2, 4, 8];

/// Decodes at the smallest scale that covers what `needed` asks for, or returns `None`
/// (having decoded no pixel) when that is the full size.
pub(super) fn decode_shrunk(
    bytes: &[u8],
    limits: &InputLimits,
    needed: NeededSize,
) -> Result<Option<Raw>, TransformError> {
    let (mut decoder, full, orientation) = open(bytes, limits)?;
    let Some(upright) = needed(orientation::oriented(full, orientation)) else {
        return Ok(None);
    };
    let eighths = dct_scale(full, orientation::oriented(upright, orientation));
    if eighths == 8 || full.0.max(full.1) < 8 {
        return Ok(None);
    }
    // jpeg-decoder takes the first scale that reaches the request on *either* axis, so only
    // the longer axis (strictly increasing with the scale from 8 px on) is asked for.
    let (w, h) = scaled(full, eighths);
    let request = if full.0 >= full.1 {
        (w as u16, u16::MAX)
    } else {
        (u16::MAX, h as u16)
    };
    decoder
        .scale(request.0, request.1)
        .map_err(TransformError::decode)?;
    finish(decoder, full, orientation).map(Some)
}

/// Decodes at full size (for comparing both JPEG decoders in tests).
#[cfg(test)]
pub(super) fn decode_full(bytes: &[u8], limits: &InputLimits) -> Result<Raw, TransformError> {
    let (decoder, full, orientation) = open(bytes, limits)?;
    finish(decoder, full, orientation)
}

type Opened<'a> = (Decoder<&'a [u8]>, (u32, u32), image::metadata::Orientation);

/// Reads the headers up to the frame, checks the size and finds the orientation.
pub(super) fn open<'a>(
    bytes: &'a [u8],
    limits: &InputLimits,
) -> Result<Opened<'a>, TransformError> {
    let mut decoder = Decoder::new(bytes);
    decoder.read_info().map_err(TransformError::decode)?;
    let info = decoder
        .info()
        .ok_or_else(|| TransformError::Decode("no frame header".into()))?;
    let full = (u32::from(info.width), u32::from(info.height));
    check_dimensions(full.0, full.1, limits)?;
    // APP1 precedes the frame header, so the orientation is known before choosing a scale.
    let orientation = orientation::from_exif(decoder.exif_data());
    decoder.set_max_decoding_buffer_size(limits.max_decode_bytes() as usize);
    Ok((decoder, full, orientation))
}

fn finish(
    mut decoder: Decoder<&[u8]>,
    full: (u32, u32),
    orientation: image::metadata::Orientation,
) -> Result<Raw, TransformError> {
    let pixels = decoder.decode().map_err(TransformError::decode)?;
    let info = decoder
        .info()
        .ok_or_else(|| TransformError::Decode("no frame header".into()))?;
    let icc = decoder.icc_profile();
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let image = to_image(pixels, info.pixel_format, w, h, icc.as_deref())?;
    let icc = icc.filter(|_| info.pixel_format != PixelFormat::CMYK32);
    Ok(Raw {
        image,
        icc,
        orientation,
        full,
    })
}

/// The smallest scale, in eighths, whose output covers `needed` on both axes.
pub(crate) fn dct_scale(full: (u32, u32), needed: (u32, u32)) -> u32 {
    SCALES
        .into_iter()
        .find(|&s| {
            let (w, h) = scaled(full, s);
            w >= needed.0 && h >= needed.1
        })
        .unwrap_or(8)
}

/// The size jpeg-decoder produces at `eighths`/8 (it rounds up).
pub(crate) fn scaled(full: (u32, u32), eighths: u32) -> (u32, u32) {
    let side = |v: u32| (v * eighths).div_ceil(8);
    (side(full.0), side(full.1))
}

fn to_image(
    pixels: Vec<u8>,
    format: PixelFormat,
    w: u32,
    h: u32,
    icc: Option<&[u8]>,
) -> Result<DynamicImage, TransformError> {
    let short = || TransformError::Decode("decoder returned too few pixels".into());
    Ok(match format {
        PixelFormat::L8 => {
            DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        PixelFormat::L16 => {
            // 16-bit lossless JPEG, big-endian samples: keep the high byte, rounded.
            let luma = pixels
                .chunks_exact(2)
                .map(|s| {
                    ((u32::from(u16::from_be_bytes([s[0], s[1]])) * 255 + 32_767) / 65_535) as u8
                })
                .collect();
            DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, luma).ok_or_else(short)?)
        }
        PixelFormat::RGB24 => {
            DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        PixelFormat::CMYK32 => {
            let rgb = color::cmyk_to_srgb(&pixels, icc);
            drop(pixels);
            DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, rgb).ok_or_else(short)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_covering_scale_is_chosen() {
        let full = (6028, 3391);
        // An 800 px wide thumbnail: 1/8 gives 754 px, too small; 1/4 gives 1507.
        assert_eq!(dct_scale(full, (800, 450)), 2);
        assert_eq!(scaled(full, 2), (1507, 848));
        assert_eq!(dct_scale(full, (200, 113)), 1);
        assert_eq!(dct_scale(full, (3014, 1696)), 4);
        assert_eq!(dct_scale(full, (3015, 1696)), 8);
        assert_eq!(dct_scale((1, 1), (1, 1)), 1);
    }
}
