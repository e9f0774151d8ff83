//! Colour management: embedded ICC profiles are converted to sRGB (and then dropped, since
//! sRGB is what an untagged output means), CMYK is converted to RGB.
//!
//! moxcms does the conversion: it is pure Rust, already built as part of `image`, and reads
//! matrix/TRC and LUT-based profiles, RGB, grey and CMYK alike.

use image::DynamicImage;
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformExecutor, TransformOptions};

/// Rows converted per call, so the conversion needs a small scratch buffer, not a second
/// full-size image.
const ROWS_PER_CHUNK: usize = 64;

/// Converts `image` from the colour space of `icc` to sRGB in place. A profile that does
/// not parse, does not match the pixels' layout, or maps every sample to itself (sRGB under
/// another name) leaves the pixels as they are.
pub(crate) fn to_srgb(image: &mut DynamicImage, icc: Option<&[u8]>) {
    let Some(profile) = icc.and_then(parse) else {
        return;
    };
    let (layout, space, width) = match image {
        DynamicImage::ImageRgb8(b) => (Layout::Rgb, DataColorSpace::Rgb, b.width()),
        DynamicImage::ImageRgba8(b) => (Layout::Rgba, DataColorSpace::Rgb, b.width()),
        DynamicImage::ImageLuma8(b) => (Layout::Gray, DataColorSpace::Gray, b.width()),
        DynamicImage::ImageLumaA8(b) => (Layout::GrayAlpha, DataColorSpace::Gray, b.width()),
        _ => return,
    };
    if profile.color_space != space {
        tracing::debug!(profile_space = ?profile.color_space, "icc profile does not match the pixels; ignored");
        return;
    }
    let srgb = ColorProfile::new_srgb();
    let transform = match profile.create_transform_8bit(layout, &srgb, layout, options()) {
        Ok(t) => t,
        Err(error) => {
            tracing::debug!(%error, "icc profile cannot be converted; ignored");
            return;
        }
    };
    if is_identity(transform.as_ref(), layout) {
        return;
    }
    let row_len = width as usize * layout.channels();
    if let Err(error) = convert_in_chunks(transform.as_ref(), image_bytes(image), row_len) {
        tracing::debug!(%error, "icc conversion failed; pixels left as decoded");
    }
}

/// True when `icc` is an RGB profile that maps every sample to itself in sRGB (sRGB under
/// its own or another name), so the pixels need no conversion.
pub(crate) fn is_srgb_equivalent(icc: &[u8]) -> bool {
    let Some(profile) = parse(icc).filter(|p| p.color_space == DataColorSpace::Rgb) else {
        return false;
    };
    profile
        .create_transform_8bit(
            Layout::Rgb,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            options(),
        )
        .is_ok_and(|t| is_identity(t.as_ref(), Layout::Rgb))
}

/// Converts ink-coverage CMYK (0 = no ink) to sRGB, through the CMYK profile when there is
/// one, else with the naive formula that ignores ink behaviour.
pub(crate) fn cmyk_to_srgb(cmyk: &[u8], icc: Option<&[u8]>) -> Vec<u8> {
    let pixels = cmyk.len() / 4;
    let mut rgb = vec![0u8; pixels * 3];
    let profile = icc
        .and_then(parse)
        .filter(|p| p.color_space == DataColorSpace::Cmyk);
    if let Some(profile) = profile {
        let converted = profile
            .create_transform_8bit(
                Layout::Rgba,
                &ColorProfile::new_srgb(),
                Layout::Rgb,
                options(),
            )
            .map_err(|e| e.to_string())
            .and_then(|t| t.transform(cmyk, &mut rgb).map_err(|e| e.to_string()));
        match converted {
            Ok(()) => return rgb,
            Err(error) => tracing::debug!(%error, "cmyk profile unusable; naive conversion"),
        }
    }
    for (out, ink) in rgb.chunks_exact_mut(3).zip(cmyk.chunks_exact(4)) {
        let white = 255 - u32::from(ink[3]);
        for (o, &c) in out.iter_mut().zip(&ink[..3]) {
            *o = (((255 - u32::from(c)) * white + 127) / 255) as u8;
        }
    }
    rgb
}

fn parse(icc: &[u8]) -> Option<ColorProfile> {
    match ColorProfile::new_from_slice(icc) {
        Ok(profile) => Some(profile),
        Err(error) => {
            tracing::debug!(%error, icc_bytes = icc.len(), "icc profile does not parse; ignored");
            None
        }
    }
}

fn options() -> TransformOptions {
    TransformOptions::default()
}

/// True when the transform maps a spread of samples to themselves (within 1): the profile
/// is sRGB in all but name, and the full conversion can be skipped.
fn is_identity(transform: &(dyn TransformExecutor<u8> + Send + Sync), layout: Layout) -> bool {
    let channels = layout.channels();
    let levels = [0u8, 17, 64, 100, 128, 160, 200, 230, 255];
    let mut samples = Vec::with_capacity(levels.len() * levels.len() * channels);
    for &a in &levels {
        for &b in &levels {
            let pixel = [a, b, a.wrapping_add(b) / 2, 255];
            samples.extend_from_slice(&pixel[..channels]);
        }
    }
    let mut out = vec![0u8; samples.len()];
    transform.transform(&samples, &mut out).is_ok()
        && samples.iter().zip(&out).all(|(a, b)| a.abs_diff(*b) <= 1)
}

fn convert_in_chunks(
    transform: &(dyn TransformExecutor<u8> + Send + Sync),
    bytes: &mut [u8],
    row_len: usize,
) -> Result<(), moxcms::CmsError> {
    let chunk_len = row_len * ROWS_PER_CHUNK;
    let mut scratch = vec![0u8; chunk_len.min(bytes.len())];
    for chunk in bytes.chunks_mut(chunk_len.max(1)) {
        let src = &mut scratch[..chunk.len()];
        src.copy_from_slice(chunk);
        transform.transform(src, chunk)?;
    }
    Ok(())
}

fn image_bytes(image: &mut DynamicImage) -> &mut [u8] {
    match image {
        DynamicImage::ImageRgb8(b) => b,
        DynamicImage::ImageRgba8(b) => b,
        DynamicImage::ImageLuma8(b) => b,
        DynamicImage::ImageLumaA8(b) => b,
        _ => &mut [],
    }
}
