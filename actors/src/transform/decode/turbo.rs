//! JPEG to packed pixels through libjpeg-turbo (the `turbo` feature): the SIMD decoder
//! libvips and browsers use, about twice as fast as the pure-Rust ones, with DCT scaling
//! (1/2, 1/4, 1/8) whenever the steps need less than the full size.
//!
//! The markers (EXIF orientation, ICC profile, CMYK) are still read by jpeg-decoder's
//! header parser, which stops before the first scan; only pixels come from libjpeg-turbo.

use image::{DynamicImage, GrayImage, RgbImage};
use jpeg_decoder::PixelFormat;
use turbojpeg_sys as tj;

use super::jpeg::{dct_scale, open, scaled};
use super::{Needs, Raw};
use crate::transform::turbo::ffi::Handle;
use crate::transform::{color, orientation, InputLimits, TransformError};

/// Decodes an 8-bit YCbCr, RGB or grey JPEG at the smallest DCT scale that covers what
/// `needs` asks for, straight to luma when that is all the steps need. `None` (no pixel
/// decoded) for what the pure-Rust decoders handle instead: CMYK, lossless and 12-bit files.
pub(crate) fn decode(
    bytes: &[u8],
    limits: &InputLimits,
    needs: Needs,
) -> Result<Option<Raw>, TransformError> {
    let (markers, full, orientation) = open(bytes, limits)?;
    let pixel_format = markers.info().map(|info| info.pixel_format);
    if !matches!(pixel_format, Some(PixelFormat::RGB24 | PixelFormat::L8)) {
        return Ok(None);
    }
    let icc = markers.icc_profile();
    drop(markers);
    let mut decoder = Handle::decompressor()?;
    let header = decoder.read_header(bytes)?;
    let colorspace = header.colorspace as tj::TJCS;
    if header.lossless || header.precision != 8 {
        return Ok(None);
    }
    let colour_managed = icc
        .as_deref()
        .is_some_and(|icc| !color::is_srgb_equivalent(icc));
    let grey = colorspace == tj::TJCS_TJCS_GRAY
        || (needs.luma_only && !colour_managed && colorspace == tj::TJCS_TJCS_YCbCr);

    let eighths = match (needs.size)(orientation::oriented(full, orientation)) {
        Some(upright) => dct_scale(full, orientation::oriented(upright, orientation)),
        None => 8,
    };
    decoder.set_scale(eighths)?;
    let (w, h) = scaled(full, eighths);
    let channels = if grey { 1 } else { 3 };
    let len = w as usize * h as usize * channels;
    if len as u64 > limits.max_decode_bytes() {
        return Err(TransformError::Decode(
            "the decoded image would be too large".into(),
        ));
    }
    let mut pixels = vec![0u8; len];
    let format = if grey {
        tj::TJPF_TJPF_GRAY
    } else {
        tj::TJPF_TJPF_RGB
    };
    decoder.decode_packed(bytes, &mut pixels, w as usize, channels, format)?;

    let short = || TransformError::Decode("decoder returned too few pixels".into());
    let image = if grey {
        DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, pixels).ok_or_else(short)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).ok_or_else(short)?)
    };
    // Luma taken from colour has no profile left to apply; a grey file keeps its own.
    let icc = icc.filter(|_| !grey || colorspace == tj::TJCS_TJCS_GRAY);
    Ok(Some(Raw {
        image,
        icc,
        orientation,
        full,
    }))
}
