//! JPEG straight to luma through zune-jpeg, for pipelines that turn the image grey anyway:
//! the Y plane is the result, with no chroma upsampling or colour conversion.
//!
//! The grey is the JPEG's own luma (BT.601 weights on the stored samples), within a level or
//! two of what the greyscale step computes from RGB.

use image::{DynamicImage, GrayImage};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::Raw;
use crate::transform::probe::check_dimensions;
use crate::transform::{color, orientation, InputLimits, TransformError};

/// Decodes the luma of a YCbCr or grey JPEG, or returns `None` (no pixel decoded) for one
/// that needs its colour first: CMYK or RGB-coded files, and files with a profile other
/// than sRGB, whose grey must come from the converted colours.
pub(super) fn decode(bytes: &[u8], limits: &InputLimits) -> Result<Option<Raw>, TransformError> {
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(limits.max_width as usize)
        .set_max_height(limits.max_height as usize);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(TransformError::decode)?;
    let coded = decoder.input_colorspace();
    let colour_managed = decoder
        .icc_profile()
        .is_some_and(|icc| !color::is_srgb_equivalent(&icc));
    if !matches!(coded, Some(ColorSpace::YCbCr | ColorSpace::Luma)) || colour_managed {
        return Ok(None);
    }
    let (w, h) = decoder
        .dimensions()
        .ok_or_else(|| TransformError::Decode("no frame header".into()))?;
    let full = (w as u32, h as u32);
    check_dimensions(full.0, full.1, limits)?;
    let orientation = orientation::from_exif(decoder.exif().map(|e| e.as_slice()));
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(ColorSpace::Luma));
    let pixels = decoder.decode().map_err(TransformError::decode)?;
    let luma = GrayImage::from_raw(full.0, full.1, pixels)
        .ok_or_else(|| TransformError::Decode("decoder returned too few pixels".into()))?;
    Ok(Some(Raw {
        image: DynamicImage::ImageLuma8(luma),
        icc: None,
        orientation,
        full,
    }))
}
