//! Per-sample tone changes: greyscale, brightness, contrast. Alpha is never touched.

use image::DynamicImage;

use super::pixels::samples_mut;
use crate::transform::canvas::Canvas;

/// Converts to luma (Rec. 709 weights), keeping alpha.
pub(super) fn grayscale(canvas: Canvas) -> Canvas {
    let logical = canvas.logical;
    let image = match canvas.image {
        luma @ (DynamicImage::ImageLuma8(_) | DynamicImage::ImageLumaA8(_)) => luma,
        other if other.color().has_alpha() => DynamicImage::ImageLumaA8(other.to_luma_alpha8()),
        other => DynamicImage::ImageLuma8(other.to_luma8()),
    };
    Canvas { image, logical }
}

/// Adds `value` percent of full scale (-100 black, 100 white) to every colour sample.
pub(super) fn brightness(canvas: Canvas, value: f32) -> Canvas {
    let offset = value / 100.0 * 255.0;
    map_colour(canvas, |v| v + offset)
}

/// Scales each sample's distance from mid-grey by `1 + value / 100`: -100 gives flat grey,
/// 100 doubles the contrast.
pub(super) fn contrast(canvas: Canvas, value: f32) -> Canvas {
    let factor = 1.0 + value / 100.0;
    map_colour(canvas, |v| (v - 128.0) * factor + 128.0)
}

/// Applies `curve` to every colour sample through a lookup table.
fn map_colour(mut canvas: Canvas, curve: impl Fn(f32) -> f32) -> Canvas {
    let mut lut = [0u8; 256];
    for (i, out) in lut.iter_mut().enumerate() {
        *out = curve(i as f32).round().clamp(0.0, 255.0) as u8;
    }
    let has_alpha = canvas.has_alpha();
    let (samples, channels) = samples_mut(&mut canvas.image);
    let colour = if has_alpha { channels - 1 } else { channels };
    for pixel in samples.chunks_exact_mut(channels) {
        for v in &mut pixel[..colour] {
            *v = lut[usize::from(*v)];
        }
    }
    canvas
}
