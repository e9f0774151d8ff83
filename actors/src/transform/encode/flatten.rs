//! Compositing alpha onto a background for outputs without an alpha channel.

use std::borrow::Cow;

use image::{DynamicImage, GrayImage, RgbImage};

use crate::pipeline::Rgb;

/// The image without alpha: transparent areas show `background` (white unless given), never
/// the black or arbitrary colour hidden under them.
pub(super) fn flatten(image: &DynamicImage, background: Option<Rgb>) -> Cow<'_, DynamicImage> {
    let Rgb(bg) = background.unwrap_or(Rgb::WHITE);
    Cow::Owned(match image {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => return Cow::Borrowed(image),
        DynamicImage::ImageLumaA8(la) if bg[0] == bg[1] && bg[1] == bg[2] => {
            let mut out = GrayImage::new(la.width(), la.height());
            for (dst, src) in out.iter_mut().zip(la.chunks_exact(2)) {
                *dst = over(src[0], bg[0], src[1]);
            }
            DynamicImage::ImageLuma8(out)
        }
        other if other.color().has_alpha() => {
            let rgba = other.to_rgba8();
            let mut out = RgbImage::new(rgba.width(), rgba.height());
            for (dst, src) in out.chunks_exact_mut(3).zip(rgba.chunks_exact(4)) {
                for c in 0..3 {
                    dst[c] = over(src[c], bg[c], src[3]);
                }
            }
            DynamicImage::ImageRgb8(out)
        }
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    })
}

/// `colour` with opacity `alpha` over `background`, rounded.
fn over(colour: u8, background: u8, alpha: u8) -> u8 {
    let a = u32::from(alpha);
    ((u32::from(colour) * a + u32::from(background) * (255 - a) + 127) / 255) as u8
}
