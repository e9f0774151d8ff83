//! Gaussian blur and unsharp-mask sharpening through libblur (separable, SIMD, fixed
//! point). Alpha is premultiplied while filtering, so transparent pixels' hidden colour
//! never bleeds into visible edges.

use fast_image_resize::MulDiv;
use image::DynamicImage;
use libblur::{
    gaussian_blur, BlurImage, BlurImageMut, ConvolutionMode, EdgeMode, EdgeMode2D,
    FastBlurChannels, GaussianBlurParams, ThreadingPolicy,
};

use super::pixels::samples_mut;
use crate::transform::canvas::Canvas;
use crate::transform::TransformError;

/// Blurs with a Gaussian of standard deviation `sigma` pixels.
pub(super) fn blur(canvas: Canvas, sigma: f32) -> Result<Canvas, TransformError> {
    let (image, alpha) = premultiplied(canvas.image)?;
    let blurred = gaussian(&image, sigma)?;
    drop(image);
    Ok(Canvas::new(restore(blurred, alpha)?))
}

/// Unsharp mask: adds `amount` times the difference between the image and its blur of
/// `sigma`, to the colour samples only.
pub(super) fn sharpen(canvas: Canvas, sigma: f32, amount: f32) -> Result<Canvas, TransformError> {
    let (mut image, alpha) = premultiplied(canvas.image)?;
    let blurred = gaussian(&image, sigma)?;
    let channels = usize::from(image.color().bytes_per_pixel());
    let colour = if alpha.is_some() { 3 } else { channels };
    let (samples, _) = samples_mut(&mut image);
    for (pixel, soft) in samples
        .chunks_exact_mut(channels)
        .zip(blurred.as_bytes().chunks_exact(channels))
    {
        // Premultiplied colour may not exceed its alpha.
        let ceiling = if alpha.is_some() { pixel[3] } else { 255 };
        for (v, &s) in pixel[..colour].iter_mut().zip(&soft[..colour]) {
            let detail = f32::from(*v) - f32::from(s);
            *v = (f32::from(*v) + amount * detail)
                .round()
                .clamp(0.0, f32::from(ceiling)) as u8;
        }
    }
    drop(blurred);
    Ok(Canvas::new(restore(image, alpha)?))
}

/// What [`premultiplied`] did, to be undone by [`restore`].
#[derive(Clone, Copy)]
enum Alpha {
    Rgba,
    LumaA,
}

/// The image in a layout libblur filters (1, 3 or 4 channels), alpha premultiplied.
fn premultiplied(image: DynamicImage) -> Result<(DynamicImage, Option<Alpha>), TransformError> {
    let (mut image, alpha) = match image {
        DynamicImage::ImageRgba8(_) => (image, Alpha::Rgba),
        // libblur has no two-channel layout: filter luma+alpha as RGBA.
        DynamicImage::ImageLumaA8(_) => (DynamicImage::ImageRgba8(image.to_rgba8()), Alpha::LumaA),
        other => return Ok((other, None)),
    };
    MulDiv::default()
        .multiply_alpha_inplace(&mut image)
        .map_err(|e| TransformError::Unsupported(format!("alpha premultiply failed: {e}")))?;
    Ok((image, Some(alpha)))
}

fn restore(mut image: DynamicImage, alpha: Option<Alpha>) -> Result<DynamicImage, TransformError> {
    let Some(alpha) = alpha else {
        return Ok(image);
    };
    MulDiv::default()
        .divide_alpha_inplace(&mut image)
        .map_err(|e| TransformError::Unsupported(format!("alpha unpremultiply failed: {e}")))?;
    Ok(match alpha {
        Alpha::Rgba => image,
        Alpha::LumaA => DynamicImage::ImageLumaA8(image.to_luma_alpha8()),
    })
}

/// A blurred copy of a 1-, 3- or 4-channel image; edges repeat the border pixels.
fn gaussian(image: &DynamicImage, sigma: f32) -> Result<DynamicImage, TransformError> {
    let (w, h) = (image.width(), image.height());
    let channels = match image.color().bytes_per_pixel() {
        1 => FastBlurChannels::Plane,
        3 => FastBlurChannels::Channels3,
        _ => FastBlurChannels::Channels4,
    };
    let mut out = DynamicImage::new(w, h, image.color());
    let (out_samples, _) = samples_mut(&mut out);
    gaussian_samples(image.as_bytes(), out_samples, (w, h), channels, sigma)?;
    Ok(out)
}

/// Where a kernel's weights end, relative to its centre: libvips' `min_ampl` default.
const MIN_AMPLITUDE: f64 = 0.2;

/// The taps of the Gaussian kernel for `sigma`: every offset whose weight is at least
/// [`MIN_AMPLITUDE`] of the centre's, as libvips builds it (about 1.5 sigma a side, the
/// weights renormalised by libblur). So a `blur` means here what it means in libvips and the
/// services built on it (sharp, imgproxy), and costs what it costs there: a kernel out to 3
/// sigma (a closer Gaussian, its dropped tails under 0.3%) made the corpus's blur 9% slower
/// in `pixmill-bench throughput --op blur` on one pinned core.
pub(crate) fn kernel_taps(sigma: f32) -> u32 {
    let two_sigma_squared = 2.0 * f64::from(sigma) * f64::from(sigma);
    let weight = |x: u32| (-(f64::from(x) * f64::from(x)) / two_sigma_squared).exp();
    // The first offset below the cut: about 1.8 sigma, so at most ~180 for the largest sigma
    // a step may ask for; the bound only guards a caller that skipped validation.
    let mut first_out = 1u32;
    while first_out < 1024 && weight(first_out) >= MIN_AMPLITUDE {
        first_out += 1;
    }
    2 * first_out - 1
}

/// Blurs `src` (interleaved samples of `channels`, `w` x `h`) into `dst` with a Gaussian of
/// `sigma` pixels; edges repeat the border pixels. Shared with the planar path, which blurs
/// single planes.
pub(crate) fn gaussian_samples(
    src: &[u8],
    dst: &mut [u8],
    (w, h): (u32, u32),
    channels: FastBlurChannels,
    sigma: f32,
) -> Result<(), TransformError> {
    let src = BlurImage::borrow(src, w, h, channels);
    let mut dst = BlurImageMut::borrow(dst, w, h, channels);
    let kernel = kernel_taps(sigma);
    gaussian_blur(
        &src,
        &mut dst,
        GaussianBlurParams::new(kernel, f64::from(sigma)),
        EdgeMode2D::new(EdgeMode::Clamp),
        ThreadingPolicy::Single,
        ConvolutionMode::FixedPoint,
    )
    .map_err(|e| TransformError::Unsupported(format!("blur failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::kernel_taps;

    #[test]
    fn the_kernel_is_cut_where_libvips_cuts_it() {
        // exp(-x^2 / 2 sigma^2) >= 0.2 up to x = 1 (sigma 1), 3 (sigma 2), 17 (sigma 10).
        assert_eq!(kernel_taps(1.0), 3);
        assert_eq!(kernel_taps(2.0), 7);
        assert_eq!(kernel_taps(10.0), 35);
        // A sigma too small to reach a neighbour leaves the pixel alone.
        assert_eq!(kernel_taps(0.1), 1);
        assert_eq!(kernel_taps(f32::INFINITY), 2047);
    }
}
