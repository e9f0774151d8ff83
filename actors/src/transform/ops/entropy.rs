//! `gravity: entropy`: the cover window that keeps the most detail.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, GrayImage};

use crate::transform::canvas::Canvas;

/// The side of the preview entropy is measured on; detail at this scale is what a
/// thumbnail shows.
const PREVIEW_SIDE: u32 = 256;

/// The top-left corner, in logical pixels, of the `window`-sized region with the highest
/// luminance histogram entropy, sliding along the axis on which the window is smaller.
pub(super) fn busiest_window(canvas: &Canvas, window: (f64, f64)) -> (f64, f64) {
    let (lw, lh) = (f64::from(canvas.logical.0), f64::from(canvas.logical.1));
    let Some(preview) = preview(&canvas.image) else {
        return ((lw - window.0) / 2.0, (lh - window.1) / 2.0);
    };
    let horizontal = lw - window.0 >= lh - window.1;
    let (along, span) = if horizontal {
        (preview.width(), window.0 / lw)
    } else {
        (preview.height(), window.1 / lh)
    };
    let len = ((f64::from(along) * span).round() as u32).clamp(1, along);
    let best = best_offset(&preview, horizontal, len);
    let fraction = f64::from(best) / f64::from(along);
    if horizontal {
        ((fraction * lw).min(lw - window.0), (lh - window.1) / 2.0)
    } else {
        ((lw - window.0) / 2.0, (fraction * lh).min(lh - window.1))
    }
}

/// A small greyscale copy of the image.
fn preview(image: &DynamicImage) -> Option<GrayImage> {
    let (w, h) = (image.width(), image.height());
    let scale = (f64::from(PREVIEW_SIDE) / f64::from(w.max(h))).min(1.0);
    let size = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    let mut small = DynamicImage::new(size.0, size.1, image.color());
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new().resize(image, &mut small, &options).ok()?;
    Some(small.to_luma8())
}

/// The start of the `len`-line band with the highest entropy, keeping one histogram and
/// moving it a line at a time.
fn best_offset(preview: &GrayImage, horizontal: bool, len: u32) -> u32 {
    let (along, across) = if horizontal {
        (preview.width(), preview.height())
    } else {
        (preview.height(), preview.width())
    };
    let sample = |a: u32, b: u32| {
        let (x, y) = if horizontal { (a, b) } else { (b, a) };
        usize::from(preview.get_pixel(x, y)[0])
    };
    let mut histogram = [0u32; 256];
    for a in 0..len {
        for b in 0..across {
            histogram[sample(a, b)] += 1;
        }
    }
    let (mut best, mut best_entropy) = (0, entropy(&histogram));
    for start in 1..=(along - len) {
        for b in 0..across {
            histogram[sample(start - 1, b)] -= 1;
            histogram[sample(start + len - 1, b)] += 1;
        }
        let e = entropy(&histogram);
        if e > best_entropy + 1e-9 {
            (best, best_entropy) = (start, e);
        }
    }
    best
}

fn entropy(histogram: &[u32; 256]) -> f64 {
    let total: u32 = histogram.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    histogram
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = f64::from(n) / total;
            -p * p.log2()
        })
        .sum()
}
