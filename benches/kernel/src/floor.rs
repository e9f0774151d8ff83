//! Floors: the least work an op cannot avoid, the decode alone at the scale it needs.
//!
//! - thumbnail and webp: pixels enough for 800 px wide. The floor is the cheaper of a DCT-
//!   scaled decode (jpeg-decoder, the kernel's shrink-on-load decoder) and a full decode
//!   (zune-jpeg, its full-size decoder), both timed on every rep.
//! - resize and blur: a full-size RGB decode (zune-jpeg).
//! - grayscale: a full-size luma decode (zune-jpeg), as the kernel decodes it.
//!
//! The kernel exposes no decoder, so these are the default build's decoders called
//! directly, in every build. The `turbo` build decodes JPEG with libjpeg-turbo, which is
//! faster than both, so its pixmill / floor ratios can fall below 1 until a turbo decoder
//! is added to [`candidates`] (every candidate is timed; the cheapest is the floor).

use jpeg_decoder::Decoder;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::cpu;
use crate::ops::{Op, THUMB_WIDTH};
use crate::BoxError;

/// What an op needs decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// At least this many pixels across (any DCT scale that gives them).
    Width(u32),
    FullRgb,
    FullLuma,
}

impl Need {
    pub fn of(op: Op) -> Self {
        match op {
            Op::Thumbnail | Op::Webp => Need::Width(THUMB_WIDTH),
            Op::Resize | Op::Blur => Need::FullRgb,
            Op::Grayscale => Need::FullLuma,
        }
    }
}

/// A decoded buffer's size: what the floor produced.
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    pub bytes: usize,
    pub width: u32,
    pub height: u32,
}

/// A decoder that can serve a need.
type Candidate = fn(&[u8], Need) -> Result<Decoded, BoxError>;

fn candidates(need: Need) -> Vec<Candidate> {
    match need {
        Need::Width(_) => vec![jpeg_decoder_scaled, zune_full],
        Need::FullRgb | Need::FullLuma => vec![zune_full],
    }
}

/// Times every candidate once and returns the cheapest with its CPU seconds.
pub fn measure(input: &[u8], need: Need) -> Result<(Decoded, f64), BoxError> {
    let mut best: Option<(Decoded, f64)> = None;
    for candidate in candidates(need) {
        let (decoded, seconds) = cpu::timed(|| candidate(input, need))?;
        if best.is_none_or(|(_, s)| seconds < s) {
            best = Some((decoded, seconds));
        }
    }
    best.ok_or_else(|| "no decoder for this need".into())
}

/// jpeg-decoder at the smallest DCT scale (1/8 .. 8/8) that is wide enough.
fn jpeg_decoder_scaled(input: &[u8], need: Need) -> Result<Decoded, BoxError> {
    let mut decoder = Decoder::new(input);
    if let Need::Width(width) = need {
        // It picks the first scale reaching the request on either axis: ask on width only.
        decoder.scale(u16::try_from(width)?, u16::MAX)?;
    }
    let pixels = decoder.decode()?;
    let info = decoder.info().ok_or("jpeg-decoder: no frame header")?;
    Ok(Decoded {
        bytes: pixels.len(),
        width: u32::from(info.width),
        height: u32::from(info.height),
    })
}

/// zune-jpeg at full size, RGB, or luma for [`Need::FullLuma`].
fn zune_full(input: &[u8], need: Need) -> Result<Decoded, BoxError> {
    let colour = match need {
        Need::FullLuma => ColorSpace::Luma,
        _ => ColorSpace::RGB,
    };
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .jpeg_set_out_colorspace(colour);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(input), options);
    let pixels = decoder.decode().map_err(|e| format!("zune-jpeg: {e:?}"))?;
    let (width, height) = decoder.dimensions().ok_or("zune-jpeg: no frame header")?;
    Ok(Decoded {
        bytes: pixels.len(),
        width: width as u32,
        height: height as u32,
    })
}
