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
    // The kernel reaches 3 sigma each side: the rest of a Gaussian is below 0.3%.
    let kernel = 2 * (3.0 * sigma).ceil() as u32 + 1;
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
