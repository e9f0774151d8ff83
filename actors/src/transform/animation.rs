//! Animated input (GIF, WebP, APNG): frames come out of `image`'s decoders fully composited
//! onto the canvas (disposal and blending applied), one at a time, so only the canvas and the
//! finished output frames are held.

use std::io::Cursor;

use image::codecs::gif::GifDecoder;
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::metadata::{LoopCount, Orientation};
use image::{AnimationDecoder, DynamicImage, Frames, ImageDecoder};

use super::canvas::Canvas;
use super::decode::generic::decoder_limits;
use super::encode::Loops;
use super::{color, InputLimits, TransformError};
use crate::format::ImageFormat;

/// An open animation.
pub(crate) struct Animation<'a> {
    frames: Frames<'a>,
    pub loops: Loops,
    icc: Option<Vec<u8>>,
    orientation: Orientation,
}

/// One decoded frame, upright and sRGB.
pub(crate) struct DecodedFrame {
    pub canvas: Canvas,
    pub delay_ms: u32,
}

/// Opens the frames of an animated `format`.
pub(crate) fn open<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: &InputLimits,
) -> Result<Animation<'a>, TransformError> {
    let limits = decoder_limits(limits);
    let fail = TransformError::decode;
    match format {
        ImageFormat::Gif => {
            let mut decoder = GifDecoder::new(Cursor::new(bytes)).map_err(fail)?;
            decoder.set_limits(limits).map_err(fail)?;
            let loops = loops(decoder.loop_count());
            Ok(Animation::new(
                decoder.into_frames(),
                loops,
                None,
                Orientation::NoTransforms,
            ))
        }
        ImageFormat::Webp => {
            let mut decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(fail)?;
            decoder.set_limits(limits).map_err(fail)?;
            let icc = decoder.icc_profile().ok().flatten();
            let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
            let loops = loops(decoder.loop_count());
            Ok(Animation::new(
                decoder.into_frames(),
                loops,
                icc,
                orientation,
            ))
        }
        ImageFormat::Png => {
            let mut decoder = PngDecoder::new(Cursor::new(bytes)).map_err(fail)?;
            decoder.set_limits(limits).map_err(fail)?;
            let icc = decoder.icc_profile().ok().flatten();
            let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
            let apng = decoder.apng().map_err(fail)?;
            let loops = loops(apng.loop_count());
            Ok(Animation::new(apng.into_frames(), loops, icc, orientation))
        }
        other => Err(TransformError::Unsupported(format!(
            "{other} has no animation support"
        ))),
    }
}

fn loops(count: LoopCount) -> Loops {
    match count {
        LoopCount::Infinite => None,
        LoopCount::Finite(n) => Some(n.get()),
    }
}

impl<'a> Animation<'a> {
    fn new(
        frames: Frames<'a>,
        loops: Loops,
        icc: Option<Vec<u8>>,
        orientation: Orientation,
    ) -> Self {
        Self {
            frames,
            loops,
            icc,
            orientation,
        }
    }
}

impl Iterator for Animation<'_> {
    type Item = Result<DecodedFrame, TransformError>;

    fn next(&mut self) -> Option<Self::Item> {
        let frame = match self.frames.next()? {
            Ok(frame) => frame,
            Err(e) => return Some(Err(TransformError::decode(e))),
        };
        let (numer, denom) = frame.delay().numer_denom_ms();
        let delay_ms = numer.checked_div(denom).unwrap_or(0);
        let mut image = DynamicImage::ImageRgba8(frame.into_buffer());
        color::to_srgb(&mut image, self.icc.as_deref());
        image.apply_orientation(self.orientation);
        Some(Ok(DecodedFrame {
            canvas: Canvas::new(image),
            delay_ms,
        }))
    }
}
