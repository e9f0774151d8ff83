//! The image between decoding and encoding.

use image::{DynamicImage, Rgba};

use crate::pipeline::Rgb;

/// An upright sRGB image with 8 bits per channel (luma, luma+alpha, RGB or RGBA), which is
/// what every step works on. 16-bit inputs are reduced to 8 bits on decode, so 16-bit PNGs
/// come out as 8-bit PNGs.
#[derive(Clone, Debug)]
pub(crate) struct Canvas {
    pub image: DynamicImage,
    /// The size the image stands for in the user's coordinates. Larger than the buffer when
    /// the JPEG decoder shrank the image on load; the first resize computes its target from
    /// this, so shrinking never changes a result's dimensions. Equal to the buffer's size
    /// after any step that is not scale-invariant.
    pub logical: (u32, u32),
}

impl Canvas {
    /// A canvas whose buffer is its full size.
    pub fn new(image: DynamicImage) -> Self {
        let image = to_8bit(image);
        let logical = (image.width(), image.height());
        Self { image, logical }
    }

    /// A canvas decoded smaller than the `logical` size it stands for.
    pub fn shrunk(image: DynamicImage, logical: (u32, u32)) -> Self {
        Self {
            image: to_8bit(image),
            logical,
        }
    }

    pub fn size(&self) -> (u32, u32) {
        (self.image.width(), self.image.height())
    }

    pub fn has_alpha(&self) -> bool {
        self.image.color().has_alpha()
    }
}

/// Reduces any decoded colour type to its 8-bit counterpart (rounding 16-bit samples).
pub(crate) fn to_8bit(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma8(image.to_luma8()),
        DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLumaA8(image.to_luma_alpha8()),
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

/// The fill for padding and rotation corners: the given colour, else transparent for an
/// image with alpha and white for one without.
pub(crate) fn fill_pixel(background: Option<Rgb>, has_alpha: bool) -> Rgba<u8> {
    match background {
        Some(Rgb([r, g, b])) => Rgba([r, g, b, 255]),
        None if has_alpha => Rgba([255, 255, 255, 0]),
        None => Rgba([255, 255, 255, 255]),
    }
}

/// An image with `like`'s colour layout, filled with `pixel` converted to that layout.
pub(crate) fn filled(
    like: &DynamicImage,
    width: u32,
    height: u32,
    pixel: Rgba<u8>,
) -> DynamicImage {
    let luma = |p: Rgba<u8>| super::ops::tone::luma(p[0], p[1], p[2]);
    match like {
        DynamicImage::ImageLuma8(_) => DynamicImage::ImageLuma8(image::ImageBuffer::from_pixel(
            width,
            height,
            image::Luma([luma(pixel)]),
        )),
        DynamicImage::ImageLumaA8(_) => DynamicImage::ImageLumaA8(image::ImageBuffer::from_pixel(
            width,
            height,
            image::LumaA([luma(pixel), pixel[3]]),
        )),
        DynamicImage::ImageRgb8(_) => DynamicImage::ImageRgb8(image::ImageBuffer::from_pixel(
            width,
            height,
            image::Rgb([pixel[0], pixel[1], pixel[2]]),
        )),
        _ => DynamicImage::ImageRgba8(image::ImageBuffer::from_pixel(width, height, pixel)),
    }
}
