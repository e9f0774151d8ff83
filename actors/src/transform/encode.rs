//! Encoding a finished canvas, or a sequence of frames. Encoders are given pixels only, so
//! no metadata of the input (EXIF, GPS, XMP, comments, text chunks, ICC) can reach an output;
//! pixels are sRGB by then, which is what an untagged image means.
//!
//! JPEG goes through `jpeg-encoder` (SIMD), PNG and GIF through `image`, WebP through libwebp
//! (lossy, with quality) and AVIF, behind the `avif` feature, through `image`'s rav1e encoder.

mod flatten;
mod gif;
mod jpeg;
mod png;
mod webp;

#[cfg(feature = "turbo")]
pub(crate) use webp::config as webp_config;

use image::DynamicImage;

use super::TransformError;
use crate::format::ImageFormat;
use crate::pipeline::OutputSpec;

/// One frame of an animation to encode.
pub(crate) struct Frame {
    pub image: DynamicImage,
    pub delay_ms: u32,
}

/// The container's loop count for an animation (as GIF and WebP store it); `None` means
/// forever.
pub(crate) type Loops = Option<u32>;

/// Encodes a still image.
pub(crate) fn encode_still(
    image: &DynamicImage,
    format: ImageFormat,
    output: &OutputSpec,
) -> Result<Vec<u8>, TransformError> {
    let quality = output
        .quality
        .unwrap_or(OutputSpec::DEFAULT_QUALITY)
        .clamp(1, 100);
    match format {
        ImageFormat::Jpeg => jpeg::encode(&flatten::flatten(image, output.background), quality),
        ImageFormat::Png => png::encode(image),
        ImageFormat::Webp => webp::encode(image, quality),
        ImageFormat::Gif => gif::encode_still(image),
        ImageFormat::Avif => avif(image, quality),
        other => Err(TransformError::Unsupported(format!(
            "{other} output is not supported"
        ))),
    }
}

/// True when `format` can hold an animation.
pub(crate) fn can_animate(format: ImageFormat) -> bool {
    matches!(format, ImageFormat::Gif | ImageFormat::Webp)
}

/// Encodes every frame of an animation; `format` must be one that [`can_animate`].
pub(crate) fn encode_animation(
    frames: &[Frame],
    loops: Loops,
    format: ImageFormat,
    output: &OutputSpec,
) -> Result<Vec<u8>, TransformError> {
    let quality = output
        .quality
        .unwrap_or(OutputSpec::DEFAULT_QUALITY)
        .clamp(1, 100);
    match format {
        ImageFormat::Gif => gif::encode(frames, loops),
        ImageFormat::Webp => webp::encode_animation(frames, loops, quality),
        other => Err(TransformError::Unsupported(format!(
            "{other} cannot hold an animation"
        ))),
    }
}

#[cfg(feature = "avif")]
fn avif(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, TransformError> {
    use image::codecs::avif::AvifEncoder;
    use image::ImageEncoder;

    let rgba = image.to_rgba8();
    let mut out = Vec::new();
    // Speed 6 of 1-10: rav1e's own default trade-off between time and size.
    AvifEncoder::new_with_speed_quality(&mut out, 6, quality)
        .write_image(
            &rgba,
            rgba.width(),
            rgba.height(),
            image::ExtendedColorType::Rgba8,
        )
        .map_err(|e| TransformError::encode(ImageFormat::Avif, e))?;
    Ok(out)
}

#[cfg(not(feature = "avif"))]
fn avif(_: &DynamicImage, _: u8) -> Result<Vec<u8>, TransformError> {
    Err(TransformError::Unsupported(
        "avif output needs pixmill built with the `avif` feature".into(),
    ))
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::*;

    fn photo_like() -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(96, 64, |x, y| {
            Rgb([
                (x * 7 % 256) as u8,
                (y * 11 % 256) as u8,
                ((x * y) % 256) as u8,
            ])
        }))
    }

    fn at_quality(format: ImageFormat, quality: u8) -> Vec<u8> {
        let output = OutputSpec {
            quality: Some(quality),
            ..OutputSpec::default()
        };
        encode_still(&photo_like(), format, &output).unwrap()
    }

    #[test]
    fn webp_is_lossy_and_follows_the_quality() {
        let (low, high) = (
            at_quality(ImageFormat::Webp, 20),
            at_quality(ImageFormat::Webp, 95),
        );
        assert_eq!(&low[12..16], b"VP8 ", "lossy bitstream, not VP8L");
        assert!(low.len() < high.len());
    }

    #[cfg(feature = "avif")]
    #[test]
    fn avif_output_is_an_avif_file() {
        let bytes = at_quality(ImageFormat::Avif, 60);
        assert_eq!(&bytes[4..12], b"ftypavif");
    }

    #[cfg(not(feature = "avif"))]
    #[test]
    fn avif_output_needs_the_feature() {
        assert!(!ImageFormat::Avif.is_writable());
        let err = encode_still(&photo_like(), ImageFormat::Avif, &OutputSpec::default());
        assert_eq!(err.unwrap_err().code(), "unsupported_operation");
    }

    #[test]
    fn jpeg_output_reads_the_same_in_both_rust_decoders() {
        let bytes = at_quality(ImageFormat::Jpeg, 80);
        let zune = image::load_from_memory(&bytes).unwrap().to_rgb8();
        let other = jpeg_decoder::Decoder::new(&bytes[..]).decode().unwrap();
        let differing = zune
            .as_raw()
            .iter()
            .zip(&other)
            .filter(|(a, b)| a.abs_diff(**b) > 3);
        assert!(differing.count() < other.len() / 100);
    }
}
