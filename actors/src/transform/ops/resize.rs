//! Resizing with `fast_image_resize` (SIMD convolution, alpha premultiplied while filtering).
//!
//! Sizes are computed by [`geometry`] from the canvas's logical size, never from the buffer,
//! so an image shrunk on load comes out exactly as large as one decoded at full size; the
//! shrink-on-load planner uses the same function to know how much resolution is needed.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;

use super::entropy;
use super::pixels::paste;
use crate::pipeline::{Fit, Gravity, Resize, MAX_SIDE};
use crate::transform::canvas::{fill_pixel, filled, Canvas};
use crate::transform::TransformError;

/// Where a resize takes its pixels from and what it makes of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Geometry {
    /// The source window, in logical pixels: the whole image except for `cover`.
    pub window: (f64, f64),
    /// The size the window is resized to; never 0 on a side.
    pub scaled: (u32, u32),
    /// For `contain`: the box the scaled image is padded to.
    pub padded: Option<(u32, u32)>,
}

/// The geometry of `r` applied to an image of `size`.
///
/// Enlarging never takes a side past [`MAX_SIDE`]. Without `upscale`, no side is enlarged: `inside` and `contain` stop at scale 1 (`contain`
/// still pads to the full box), `cover` crops to the box's aspect ratio at scale 1 when the
/// image is smaller than the box, and `fill` caps each axis at its own size.
pub(crate) fn geometry(r: &Resize, size: (u32, u32)) -> Geometry {
    let (w, h) = size;
    let whole = (f64::from(w), f64::from(h));
    match r.fit {
        Fit::Inside => Geometry {
            window: whole,
            scaled: inside(r, size),
            padded: None,
        },
        Fit::Contain => {
            let scaled = inside(r, size);
            let boxed = (r.width.unwrap_or(scaled.0), r.height.unwrap_or(scaled.1));
            Geometry {
                window: whole,
                scaled,
                padded: Some((boxed.0.max(scaled.0), boxed.1.max(scaled.1))),
            }
        }
        Fit::Fill => {
            let (mut tw, mut th) = (r.width.unwrap_or(w), r.height.unwrap_or(h));
            if !r.upscale {
                (tw, th) = (tw.min(w), th.min(h));
            }
            Geometry {
                window: whole,
                scaled: (tw.max(1), th.max(1)),
                padded: None,
            }
        }
        Fit::Cover => cover(r, size),
    }
}

fn inside(r: &Resize, (w, h): (u32, u32)) -> (u32, u32) {
    let ratio = |target: Option<u32>, side: u32| {
        target.map_or(f64::INFINITY, |t| f64::from(t) / f64::from(side))
    };
    let mut scale = ratio(r.width, w).min(ratio(r.height, h));
    if !scale.is_finite() || (!r.upscale && scale > 1.0) {
        scale = 1.0;
    }
    // With one side given, the other follows the aspect ratio and could grow without bound
    // (a 1x10000 strip enlarged to 300 wide would be 3 million high): cap the long side.
    let longest = f64::from(w.max(h));
    if scale > 1.0 && longest * scale > f64::from(MAX_SIDE) {
        scale = (f64::from(MAX_SIDE) / longest).max(1.0);
    }
    (scale_side(w, scale), scale_side(h, scale))
}

fn cover(r: &Resize, (w, h): (u32, u32)) -> Geometry {
    let (tw, th) = (r.width.unwrap_or(w).max(1), r.height.unwrap_or(h).max(1));
    let (wf, hf) = (f64::from(w), f64::from(h));
    let scale = (f64::from(tw) / wf).max(f64::from(th) / hf);
    if !r.upscale && scale > 1.0 {
        let out = (tw.min(w), th.min(h));
        return Geometry {
            window: (f64::from(out.0), f64::from(out.1)),
            scaled: out,
            padded: None,
        };
    }
    Geometry {
        window: (
            (f64::from(tw) / scale).min(wf),
            (f64::from(th) / scale).min(hf),
        ),
        scaled: (tw, th),
        padded: None,
    }
}

fn scale_side(side: u32, scale: f64) -> u32 {
    ((f64::from(side) * scale).round() as u32).max(1)
}

/// Resizes the canvas per `r`.
pub(super) fn resize(canvas: Canvas, r: &Resize) -> Result<Canvas, TransformError> {
    let g = geometry(r, canvas.logical);
    let origin = match r.fit {
        Fit::Cover => window_origin(&canvas, r.gravity, g.window),
        _ => (0.0, 0.0),
    };
    let (bw, bh) = canvas.size();
    let rx = f64::from(bw) / f64::from(canvas.logical.0);
    let ry = f64::from(bh) / f64::from(canvas.logical.1);
    let (left, top) = (origin.0 * rx, origin.1 * ry);
    // Rounding must not push the window past the buffer's edge.
    let crop = (
        left,
        top,
        (g.window.0 * rx).min(f64::from(bw) - left),
        (g.window.1 * ry).min(f64::from(bh) - top),
    );

    let untouched = crop == (0.0, 0.0, f64::from(bw), f64::from(bh)) && g.scaled == (bw, bh);
    let scaled = if untouched {
        canvas.image
    } else {
        let mut dst = DynamicImage::new(g.scaled.0, g.scaled.1, canvas.image.color());
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .crop(crop.0, crop.1, crop.2, crop.3);
        Resizer::new()
            .resize(&canvas.image, &mut dst, &options)
            .map_err(|e| TransformError::Unsupported(format!("resize failed: {e}")))?;
        dst
    };
    Ok(Canvas::new(match g.padded {
        Some(boxed) if boxed != g.scaled => pad(&scaled, boxed, r),
        _ => scaled,
    }))
}

/// The top-left corner of the cover window, in logical pixels.
fn window_origin(canvas: &Canvas, gravity: Gravity, window: (f64, f64)) -> (f64, f64) {
    let (w, h) = (f64::from(canvas.logical.0), f64::from(canvas.logical.1));
    let (free_x, free_y) = ((w - window.0).max(0.0), (h - window.1).max(0.0));
    match gravity {
        Gravity::Centre => (free_x / 2.0, free_y / 2.0),
        Gravity::North => (free_x / 2.0, 0.0),
        Gravity::South => (free_x / 2.0, free_y),
        Gravity::West => (0.0, free_y / 2.0),
        Gravity::East => (free_x, free_y / 2.0),
        Gravity::Entropy => entropy::busiest_window(canvas, window),
    }
}

/// Pads `scaled` to `boxed` with the background, placed by gravity (`entropy` centres).
fn pad(scaled: &DynamicImage, boxed: (u32, u32), r: &Resize) -> DynamicImage {
    let has_alpha = scaled.color().has_alpha();
    let mut out = filled(
        scaled,
        boxed.0,
        boxed.1,
        fill_pixel(r.background, has_alpha),
    );
    let (free_x, free_y) = (boxed.0 - scaled.width(), boxed.1 - scaled.height());
    let (x, y) = match r.gravity {
        Gravity::Centre | Gravity::Entropy => (free_x / 2, free_y / 2),
        Gravity::North => (free_x / 2, 0),
        Gravity::South => (free_x / 2, free_y),
        Gravity::West => (0, free_y / 2),
        Gravity::East => (free_x, free_y / 2),
    };
    paste(&mut out, scaled, x, y);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(width: Option<u32>, height: Option<u32>, fit: Fit, upscale: bool) -> Resize {
        Resize {
            width,
            height,
            fit,
            gravity: Gravity::Centre,
            background: None,
            upscale,
        }
    }

    #[test]
    fn inside_keeps_the_aspect_ratio_and_never_reaches_zero() {
        let g = geometry(
            &resize(Some(100), Some(100), Fit::Inside, false),
            (10_000, 1),
        );
        assert_eq!(g.scaled, (100, 1));
        let g = geometry(&resize(Some(800), None, Fit::Inside, false), (6028, 3391));
        assert_eq!(g.scaled, (800, 450));
    }

    #[test]
    fn without_upscale_small_images_keep_their_size() {
        let one = (1, 1);
        assert_eq!(
            geometry(&resize(Some(100), Some(100), Fit::Inside, false), one).scaled,
            one
        );
        assert_eq!(
            geometry(&resize(Some(100), Some(100), Fit::Inside, true), one).scaled,
            (100, 100)
        );
        let g = geometry(&resize(Some(100), Some(50), Fit::Cover, false), (40, 80));
        assert_eq!((g.scaled, g.window), ((40, 50), (40.0, 50.0)));
        let g = geometry(&resize(Some(100), Some(100), Fit::Contain, false), (40, 20));
        assert_eq!((g.scaled, g.padded), ((40, 20), Some((100, 100))));
    }

    #[test]
    fn an_enlarged_strip_stops_at_the_largest_side() {
        let g = geometry(&resize(Some(300), None, Fit::Inside, true), (1, 10_000));
        assert_eq!(g.scaled, (2, MAX_SIDE));
    }

    #[test]
    fn cover_takes_a_window_of_the_box_aspect_ratio() {
        let g = geometry(&resize(Some(100), Some(100), Fit::Cover, false), (400, 200));
        assert_eq!(g.scaled, (100, 100));
        assert_eq!(g.window, (200.0, 200.0));
    }
}
