use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, DynamicImage};

use super::{Frame, Loops};
use crate::format::ImageFormat;
use crate::transform::TransformError;

/// NeuQuant speed, 1 (best) to 30: 10 is `image`'s default balance for photos.
const QUANTISER_SPEED: i32 = 10;

/// A one-frame GIF.
pub(super) fn encode_still(image: &DynamicImage) -> Result<Vec<u8>, TransformError> {
    write([(image, 0)].into_iter(), 1, None)
}

/// An animated GIF.
pub(super) fn encode(frames: &[Frame], loops: Loops) -> Result<Vec<u8>, TransformError> {
    let frames_with_delays = frames.iter().map(|f| (&f.image, f.delay_ms));
    write(frames_with_delays, frames.len(), loops)
}

/// GIF from frames: a palette of 256 per frame, alpha below half becomes transparent.
fn write<'a>(
    frames: impl Iterator<Item = (&'a DynamicImage, u32)>,
    count: usize,
    loops: Loops,
) -> Result<Vec<u8>, TransformError> {
    let fail = |e: image::ImageError| TransformError::encode(ImageFormat::Gif, e);
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, QUANTISER_SPEED);
        if count > 1 {
            let repeat = match loops {
                None => Repeat::Infinite,
                Some(n) => Repeat::Finite(u16::try_from(n).unwrap_or(u16::MAX)),
            };
            encoder.set_repeat(repeat).map_err(fail)?;
        }
        for (image, delay_ms) in frames {
            let delay = Delay::from_numer_denom_ms(delay_ms, 1);
            let rgba = image.to_rgba8();
            encoder
                .encode_frame(image::Frame::from_parts(rgba, 0, 0, delay))
                .map_err(fail)?;
        }
    }
    Ok(out)
}
