//! Per-sample tone changes: greyscale, brightness, contrast. Alpha is never touched.

use image::{DynamicImage, GrayAlphaImage, GrayImage};

use super::pixels::samples_mut;
use crate::transform::canvas::Canvas;

/// Converts to luma with the BT.601 weights, keeping alpha. BT.601 is what a JPEG stores
/// as Y, so a grey pipeline gives the same result whether the decoder produced luma
/// directly or RGB first, and whatever the input format.
pub(super) fn grayscale(canvas: Canvas) -> Canvas {
    let logical = canvas.logical;
    let image = match canvas.image {
        luma @ (DynamicImage::ImageLuma8(_) | DynamicImage::ImageLumaA8(_)) => luma,
        DynamicImage::ImageRgba8(rgba) => {
            let mut out = GrayAlphaImage::new(rgba.width(), rgba.height());
            for (dst, src) in out.chunks_exact_mut(2).zip(rgba.chunks_exact(4)) {
                dst[0] = luma(src[0], src[1], src[2]);
                dst[1] = src[3];
            }
            DynamicImage::ImageLumaA8(out)
        }
        other => {
            let rgb = other.to_rgb8();
            let mut out = GrayImage::new(rgb.width(), rgb.height());
            for (dst, src) in out.iter_mut().zip(rgb.chunks_exact(3)) {
                *dst = luma(src[0], src[1], src[2]);
            }
            DynamicImage::ImageLuma8(out)
        }
    };
    Canvas { image, logical }
}

/// BT.601 luma in 16-bit fixed point (the weights sum to 65536), rounded.
pub(crate) fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19_595 + u32::from(g) * 38_470 + u32::from(b) * 7_471 + 32_768) >> 16) as u8
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
