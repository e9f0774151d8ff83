//! Every format but JPEG, through the `image` crate's decoders.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use super::Raw;
use crate::format::ImageFormat;
use crate::transform::probe::{check_dimensions, to_image_format};
use crate::transform::{InputLimits, TransformError};

/// Decodes the first frame. The decoder's own limits are set explicitly because
/// `into_decoder()` does not carry `image`'s defaults, and the declared size is checked
/// again before `from_decoder` allocates.
pub(super) fn decode(
    bytes: &[u8],
    format: ImageFormat,
    limits: &InputLimits,
) -> Result<Raw, TransformError> {
    let mut decoder = open(bytes, format, limits)?;
    let full = decoder.dimensions();
    check_dimensions(full.0, full.1, limits)?;
    let icc = decoder.icc_profile().ok().flatten();
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(TransformError::decode)?;
    Ok(Raw {
        image,
        icc,
        orientation,
        full,
    })
}

/// A decoder over `bytes` with pixmill's limits in force.
pub(crate) fn open<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: &InputLimits,
) -> Result<Box<dyn ImageDecoder + 'a>, TransformError> {
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), to_image_format(format))
        .into_decoder()
        .map_err(TransformError::decode)?;
    decoder
        .set_limits(decoder_limits(limits))
        .map_err(TransformError::decode)?;
    Ok(Box::new(decoder))
}

pub(crate) fn decoder_limits(limits: &InputLimits) -> Limits {
    let mut out = Limits::default();
    out.max_image_width = Some(limits.max_width);
    out.max_image_height = Some(limits.max_height);
    out.max_alloc = Some(limits.max_decode_bytes());
    out
}
