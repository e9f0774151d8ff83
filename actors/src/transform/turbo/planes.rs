//! Y, Cb and Cr planes as a JPEG stores them, and the operations the planar path runs on
//! them: a resize of each plane to its own target size and a Gaussian blur whose radius
//! follows each plane's resolution.
//!
//! Both operations are linear, and so is the YCbCr matrix, so running them on the planes
//! gives the picture the RGB path gives (within rounding) while touching 1.5 samples a
//! pixel instead of 3, and skipping two colour conversions and the chroma upsampling.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use libblur::{
    gaussian_blur, BlurImage, BlurImageMut, ConvolutionMode, EdgeMode, EdgeMode2D,
    FastBlurChannels, GaussianBlurParams, ThreadingPolicy,
};

use crate::transform::TransformError;

/// One plane of 8-bit samples, `width` to a row with no padding.
#[derive(Clone, Debug)]
pub(crate) struct Plane {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// A picture as luma and two chroma planes; the chroma planes may be smaller (subsampled).
#[derive(Clone, Debug)]
pub(crate) struct Planes {
    pub y: Plane,
    pub cb: Plane,
    pub cr: Plane,
    /// The size the picture stands for; larger than `y` after shrink-on-load, as
    /// [`Canvas::logical`](crate::transform::canvas::Canvas) is.
    pub logical: (u32, u32),
}

/// The chroma plane size of 4:2:0 for a luma plane of `(w, h)`.
pub(crate) fn chroma_420((w, h): (u32, u32)) -> (u32, u32) {
    (w.div_ceil(2), h.div_ceil(2))
}

impl Planes {
    /// True when the chroma planes are exactly the 4:2:0 size for the luma plane.
    pub fn is_420(&self) -> bool {
        let want = chroma_420((self.y.width, self.y.height));
        (self.cb.width, self.cb.height) == want && (self.cr.width, self.cr.height) == want
    }

    /// Resizes luma to `size` and both chroma planes to its 4:2:0 size, in one Lanczos3
    /// pass per plane (so 4:2:2 or 4:4:4 input is subsampled by the same filter).
    pub fn resize(self, size: (u32, u32)) -> Result<Self, TransformError> {
        let chroma = chroma_420(size);
        Ok(Self {
            y: self.y.resized(size)?,
            cb: self.cb.resized(chroma)?,
            cr: self.cr.resized(chroma)?,
            logical: size,
        })
    }

    /// The same picture with 4:2:0 chroma, which both encoders take.
    pub fn into_420(self) -> Result<Self, TransformError> {
        if self.is_420() {
            return Ok(self);
        }
        let chroma = chroma_420((self.y.width, self.y.height));
        Ok(Self {
            cb: self.cb.resized(chroma)?,
            cr: self.cr.resized(chroma)?,
            ..self
        })
    }

    /// A Gaussian blur of `sigma` luma pixels: chroma, at half the resolution, is blurred
    /// by half the sigma, which is the same blur on the same picture.
    pub fn blur(self, sigma: f32) -> Result<Self, TransformError> {
        let planes = self.into_420()?;
        Ok(Self {
            y: planes.y.blurred(sigma)?,
            cb: planes.cb.blurred(sigma / 2.0)?,
            cr: planes.cr.blurred(sigma / 2.0)?,
            logical: planes.logical,
        })
    }
}

impl Plane {
    /// This plane grown to `(w, h)` by repeating its last column and row; TurboJPEG takes
    /// the luma of an odd-sized 4:2:0 image padded to whole chroma blocks.
    pub fn padded(&self, (w, h): (u32, u32)) -> std::borrow::Cow<'_, Plane> {
        if (self.width, self.height) == (w, h) || self.width == 0 || self.height == 0 {
            return std::borrow::Cow::Borrowed(self);
        }
        let (sw, w) = (self.width as usize, w as usize);
        let mut data = Vec::with_capacity(w * h as usize);
        for row in 0..h as usize {
            let source = &self.data[row.min(self.height as usize - 1) * sw..][..sw];
            data.extend_from_slice(source);
            let last = source[sw - 1];
            data.resize(data.len() + w.saturating_sub(sw), last);
        }
        std::borrow::Cow::Owned(Plane {
            data,
            width: w as u32,
            height: h,
        })
    }

    fn resized(self, (w, h): (u32, u32)) -> Result<Self, TransformError> {
        if (self.width, self.height) == (w, h) {
            return Ok(self);
        }
        let fail =
            |e: &dyn std::fmt::Display| TransformError::Unsupported(format!("resize failed: {e}"));
        let src = ImageRef::new(self.width, self.height, &self.data, PixelType::U8)
            .map_err(|e| fail(&e))?;
        let mut dst = Image::new(w, h, PixelType::U8);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        Resizer::new()
            .resize(&src, &mut dst, &options)
            .map_err(|e| fail(&e))?;
        Ok(Self {
            data: dst.into_vec(),
            width: w,
            height: h,
        })
    }

    fn blurred(&self, sigma: f32) -> Result<Self, TransformError> {
        let (w, h) = (self.width, self.height);
        let mut out = vec![0u8; self.data.len()];
        let src = BlurImage::borrow(&self.data, w, h, FastBlurChannels::Plane);
        let mut dst = BlurImageMut::borrow(&mut out, w, h, FastBlurChannels::Plane);
        // As in `ops::blur`: the kernel reaches 3 sigma each side.
        let kernel = 2 * (3.0 * sigma).ceil() as u32 + 1;
        gaussian_blur(
            &src,
            &mut dst,
            GaussianBlurParams::new(kernel, f64::from(sigma)),
            EdgeMode2D::new(EdgeMode::Clamp),
            ThreadingPolicy::Single,
            ConvolutionMode::FixedPoint,
        )
        .map_err(|e| TransformError::Unsupported(format!("blur failed: {e}")))?;
        drop(dst);
        Ok(Self {
            data: out,
            width: w,
            height: h,
        })
    }
}
