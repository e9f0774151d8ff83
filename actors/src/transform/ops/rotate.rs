//! Rotation: quarter turns are exact pixel moves; other angles resample onto a canvas
//! expanded to hold the whole rotated image, corners filled with the background.

use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer, Pixel};
use imageproc::geometric_transformations::{warp_into, Border, Interpolation, Projection};

use crate::pipeline::Rotate;
use crate::transform::canvas::{fill_pixel, Canvas};

/// Angles this close to a quarter turn are treated as one, so 89.9999 stays lossless.
const QUARTER_TOLERANCE: f32 = 1e-3;

/// The number of clockwise quarter turns (0-3) when `angle` is a multiple of 90 degrees.
pub(super) fn quarter_turns(angle: f32) -> Option<u32> {
    let turns = angle / 90.0;
    let nearest = turns.round();
    ((turns - nearest).abs() * 90.0 < QUARTER_TOLERANCE).then(|| nearest.rem_euclid(4.0) as u32)
}

/// Rotates clockwise by `r.angle` degrees.
pub(super) fn rotate(mut canvas: Canvas, r: &Rotate) -> Canvas {
    match quarter_turns(r.angle) {
        Some(0) => canvas,
        Some(2) => {
            canvas.image.apply_orientation(Orientation::Rotate180);
            canvas
        }
        Some(turns) => {
            let orientation = if turns == 1 {
                Orientation::Rotate90
            } else {
                Orientation::Rotate270
            };
            canvas.image.apply_orientation(orientation);
            canvas.logical = (canvas.logical.1, canvas.logical.0);
            canvas
        }
        None => Canvas::new(rotate_free(&canvas, r)),
    }
}

fn rotate_free(canvas: &Canvas, r: &Rotate) -> DynamicImage {
    let fill = fill_pixel(r.background, canvas.has_alpha());
    let theta = r.angle.to_radians();
    match &canvas.image {
        DynamicImage::ImageLuma8(b) => {
            DynamicImage::ImageLuma8(warp(b, theta, image::Luma([grey(fill)])))
        }
        DynamicImage::ImageLumaA8(b) => {
            DynamicImage::ImageLumaA8(warp(b, theta, image::LumaA([grey(fill), fill[3]])))
        }
        DynamicImage::ImageRgb8(b) => DynamicImage::ImageRgb8(warp(b, theta, fill.to_rgb())),
        DynamicImage::ImageRgba8(b) => DynamicImage::ImageRgba8(warp(b, theta, fill)),
        other => DynamicImage::ImageRgba8(warp(&other.to_rgba8(), theta, fill)),
    }
}

fn grey(fill: image::Rgba<u8>) -> u8 {
    super::tone::luma(fill[0], fill[1], fill[2])
}

/// The size of the canvas that holds an image of `size` turned by `angle` degrees.
pub(super) fn free_bounds(size: (u32, u32), angle: f32) -> (u32, u32) {
    let (w, h) = bounds(size.0 as f32, size.1 as f32, angle.to_radians());
    (w as u32, h as u32)
}

/// The sides, in whole pixels, of the box around a `w` x `h` rectangle turned by `theta`.
fn bounds(w: f32, h: f32, theta: f32) -> (f32, f32) {
    let (sin, cos) = theta.sin_cos();
    (
        (w * cos.abs() + h * sin.abs()).round().max(1.0),
        (w * sin.abs() + h * cos.abs()).round().max(1.0),
    )
}

/// Resamples `src` rotated by `theta` radians (clockwise on screen) into a canvas just
/// large enough for it.
fn warp<P>(src: &ImageBuffer<P, Vec<u8>>, theta: f32, fill: P) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8> + Send + Sync,
{
    let (w, h) = (src.width() as f32, src.height() as f32);
    let (out_w, out_h) = bounds(w, h, theta);
    let projection = Projection::translate(out_w / 2.0, out_h / 2.0)
        * Projection::rotate(theta)
        * Projection::translate(-w / 2.0, -h / 2.0);
    let mut out = ImageBuffer::from_pixel(out_w as u32, out_h as u32, fill);
    warp_into(
        src,
        projection,
        Interpolation::Bilinear,
        Border::Constant(fill),
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_turns_are_recognised() {
        assert_eq!(quarter_turns(0.0), Some(0));
        assert_eq!(quarter_turns(90.0), Some(1));
        assert_eq!(quarter_turns(-90.0), Some(3));
        assert_eq!(quarter_turns(270.0), Some(3));
        assert_eq!(quarter_turns(360.0), Some(0));
        assert_eq!(quarter_turns(45.0), None);
    }
}
