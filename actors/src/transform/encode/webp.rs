use image::DynamicImage;
use webp::{AnimEncoder, AnimFrame, Encoder, PixelLayout, WebPConfig};

use super::{Frame, Loops};
use crate::format::ImageFormat;
use crate::transform::TransformError;

/// The largest side the WebP format can hold.
const MAX_SIDE: u32 = 16_383;

fn check_size(w: u32, h: u32) -> Result<(), TransformError> {
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(fail(format!(
            "{w}x{h} exceeds WebP's {MAX_SIDE} pixel sides"
        )));
    }
    Ok(())
}

fn fail(reason: impl std::fmt::Debug) -> TransformError {
    TransformError::encode(ImageFormat::Webp, format!("{reason:?}"))
}

/// Lossy WebP at `quality`, keeping alpha.
pub(super) fn encode(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, TransformError> {
    check_size(image.width(), image.height())?;
    let config = config(quality)?;
    let pixels = Pixels::of(image);
    let memory = Encoder::new(&pixels.bytes, pixels.layout, image.width(), image.height())
        .encode_advanced(&config)
        .map_err(fail)?;
    Ok(memory.to_vec())
}

/// An animated lossy WebP; each frame shows for its delay.
pub(super) fn encode_animation(
    frames: &[Frame],
    loops: Loops,
    quality: u8,
) -> Result<Vec<u8>, TransformError> {
    let config = config(quality)?;
    let first = frames.first().ok_or_else(|| fail("no frames"))?;
    let (w, h) = (first.image.width(), first.image.height());
    // libwebp's animation encoder is not checked for failure to start by the binding, so
    // sizes it would refuse must never reach it.
    check_size(w, h)?;
    let rgba: Vec<_> = frames.iter().map(|f| f.image.to_rgba8()).collect();
    let mut encoder = AnimEncoder::new(w, h, &config);
    encoder.set_loop_count(loops.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)));
    let mut timestamp = 0i32;
    for (frame, pixels) in frames.iter().zip(&rgba) {
        encoder.add_frame(AnimFrame::from_rgba(pixels, w, h, timestamp));
        timestamp = timestamp.saturating_add(i32::try_from(frame.delay_ms).unwrap_or(i32::MAX));
    }
    let memory = encoder.try_encode().map_err(fail)?;
    Ok(memory.to_vec())
}

pub(crate) fn config(quality: u8) -> Result<WebPConfig, TransformError> {
    let mut config = WebPConfig::new().map_err(|()| fail("libwebp config init failed"))?;
    config.lossless = 0;
    config.alpha_compression = 1;
    config.quality = f32::from(quality);
    Ok(config)
}

/// The samples libwebp takes: RGB or RGBA (grey is expanded).
struct Pixels<'a> {
    bytes: std::borrow::Cow<'a, [u8]>,
    layout: PixelLayout,
}

impl<'a> Pixels<'a> {
    fn of(image: &'a DynamicImage) -> Self {
        match image {
            DynamicImage::ImageRgb8(b) => Self {
                bytes: b.as_raw().into(),
                layout: PixelLayout::Rgb,
            },
            DynamicImage::ImageRgba8(b) => Self {
                bytes: b.as_raw().into(),
                layout: PixelLayout::Rgba,
            },
            other if other.color().has_alpha() => Self {
                bytes: other.to_rgba8().into_raw().into(),
                layout: PixelLayout::Rgba,
            },
            other => Self {
                bytes: other.to_rgb8().into_raw().into(),
                layout: PixelLayout::Rgb,
            },
        }
    }
}
