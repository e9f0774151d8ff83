//! Y, Cb and Cr planes as a JPEG stores them, and the operations the planar path runs on
//! them: a resize of each plane to its own target size and a Gaussian blur whose radius
//! follows each plane's resolution.
//!
//! Both operations are linear, and so is the YCbCr matrix, so running them on the planes
//! gives the picture the RGB path gives (within rounding) while touching 1.5 samples a
//! pixel instead of 3, and skipping two colour conversions and the chroma upsampling.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use libblur::FastBlurChannels;

use crate::transform::ops::blur::gaussian_samples;
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

    /// Resizes luma to `size` and both chroma planes to its 4:2:0 size (so 4:2:2 or 4:4:4
    /// input is subsampled by the same filter): box-halved while at least 4 times too
    /// large, then one Lanczos3 pass per plane.
    ///
    /// The halving is libvips' own shrink-then-reduce (its `gap` of 2): Lanczos3 over a
    /// large ratio has a wide kernel, and averaging first leaves it a ratio under 4 at a
    /// small fraction of the cost, with the same look.
    pub fn resize(self, size: (u32, u32)) -> Result<Self, TransformError> {
        let chroma = chroma_420(size);
        Ok(Self {
            y: self.y.shrunk_towards(size).resized(size)?,
            cb: self.cb.shrunk_towards(chroma).resized(chroma)?,
            cr: self.cr.shrunk_towards(chroma).resized(chroma)?,
            logical: size,
        })
    }

    /// The same picture with 4:2:0 chroma, which both encoders take. Chroma twice as wide
    /// or tall (4:4:4, 4:2:2, 4:4:0) is box-averaged, as JPEG encoders subsample; other
    /// layouts (4:1:1) are resampled.
    pub fn into_420(self) -> Result<Self, TransformError> {
        if self.is_420() {
            return Ok(self);
        }
        let chroma = chroma_420((self.y.width, self.y.height));
        Ok(Self {
            cb: self.cb.subsampled_to(chroma)?,
            cr: self.cr.subsampled_to(chroma)?,
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
    /// Box-halves this plane while it stays at least twice `target` on both axes after
    /// halving (a remaining ratio of at least 4).
    fn shrunk_towards(self, (tw, th): (u32, u32)) -> Self {
        let mut plane = self;
        while plane.width >= tw.saturating_mul(4) && plane.height >= th.saturating_mul(4) {
            plane = plane.halved(true, true);
        }
        plane
    }

    /// This chroma plane at `(w, h)`: box-halved on an axis that is exactly twice as long
    /// (rounded up), resampled otherwise.
    fn subsampled_to(self, (w, h): (u32, u32)) -> Result<Self, TransformError> {
        let across = self.width != w && self.width.div_ceil(2) == w;
        let down = self.height != h && self.height.div_ceil(2) == h;
        let plane = if across || down {
            self.halved(across, down)
        } else {
            self
        };
        plane.resized((w, h))
    }

    /// Averages 2x1, 1x2 or 2x2 blocks; an odd last column or row pairs with itself.
    fn halved(&self, across: bool, down: bool) -> Self {
        let (w, h) = (self.width as usize, self.height as usize);
        let (ow, oh) = (
            if across { w.div_ceil(2) } else { w },
            if down { h.div_ceil(2) } else { h },
        );
        let mut out = Vec::with_capacity(ow * oh);
        for y in 0..oh {
            let (r0, r1) = if down {
                (2 * y, (2 * y + 1).min(h - 1))
            } else {
                (y, y)
            };
            let (top, bottom) = (&self.data[r0 * w..][..w], &self.data[r1 * w..][..w]);
            if across {
                let pairs = w / 2;
                out.extend((0..pairs).map(|x| {
                    let sum = u16::from(top[2 * x])
                        + u16::from(top[2 * x + 1])
                        + u16::from(bottom[2 * x])
                        + u16::from(bottom[2 * x + 1]);
                    ((sum + 2) >> 2) as u8
                }));
                if w % 2 == 1 {
                    let sum = u16::from(top[w - 1]) + u16::from(bottom[w - 1]);
                    out.push(((sum + 1) >> 1) as u8);
                }
            } else {
                out.extend(
                    top.iter()
                        .zip(bottom)
                        .map(|(&a, &b)| ((u16::from(a) + u16::from(b) + 1) >> 1) as u8),
                );
            }
        }
        Self {
            data: out,
            width: ow as u32,
            height: oh as u32,
        }
    }

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
        gaussian_samples(&self.data, &mut out, (w, h), FastBlurChannels::Plane, sigma)?;
        Ok(Self {
            data: out,
            width: w,
            height: h,
        })
    }
}
