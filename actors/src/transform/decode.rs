//! Decoding a still image, or the first frame of an animation, into a [`Canvas`]: limits
//! checked on the decoder before any pixel buffer exists, then reduced to 8 bits, converted
//! to sRGB and turned upright.

pub(crate) mod generic;
mod jpeg;

use image::metadata::Orientation;
use image::DynamicImage;

use super::canvas::Canvas;
use super::probe::Probe;
use super::{color, orientation, InputLimits, TransformError};
use crate::format::ImageFormat;

/// What a decoder hands back before colour and orientation are applied.
pub(crate) struct Raw {
    /// 8-bit RGB(A) or luma; CMYK is already converted.
    pub image: DynamicImage,
    pub icc: Option<Vec<u8>>,
    pub orientation: Orientation,
    /// The stored size at full scale (the buffer may be smaller after shrink-on-load).
    pub full: (u32, u32),
}

/// Given the upright full size, the smallest upright size the steps need (`None`: full).
pub(crate) type NeededSize<'a> = &'a dyn Fn((u32, u32)) -> Option<(u32, u32)>;

/// Decodes `bytes` for steps. A JPEG is decoded at the smallest DCT scale (1/8, 1/4, 1/2)
/// that still covers what `needed` asks for.
pub(crate) fn decode_still(
    bytes: &[u8],
    probe: &Probe,
    limits: &InputLimits,
    needed: NeededSize,
) -> Result<Canvas, TransformError> {
    let raw = match probe.format {
        ImageFormat::Jpeg => jpeg::decode(bytes, limits, needed)?,
        other => generic::decode(bytes, other, limits)?,
    };
    Ok(finish(raw))
}

/// Applies the profile and the orientation; the result stands for the upright full size.
pub(crate) fn finish(raw: Raw) -> Canvas {
    let mut image = super::canvas::to_8bit(raw.image);
    color::to_srgb(&mut image, raw.icc.as_deref());
    image.apply_orientation(raw.orientation);
    let logical = orientation::oriented(raw.full, raw.orientation);
    Canvas::shrunk(image, logical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::probe::probe;

    fn corpus(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../tests/fixtures/corpus/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    #[test]
    fn a_jpeg_thumbnail_is_decoded_at_the_smallest_covering_scale() {
        let bytes = corpus("rocket.jpg");
        let limits = InputLimits::default();
        let probed = probe(&bytes, &limits).unwrap();
        let eighth = decode_still(&bytes, &probed, &limits, &|_| Some((80, 53))).unwrap();
        assert_eq!((eighth.size(), eighth.logical), ((80, 54), (640, 427)));
        let quarter = decode_still(&bytes, &probed, &limits, &|_| Some((81, 53))).unwrap();
        assert_eq!(quarter.size(), (160, 107));
        let full = decode_still(&bytes, &probed, &limits, &|_| None).unwrap();
        assert_eq!(full.size(), (640, 427));
    }

    #[test]
    fn the_scale_is_chosen_in_upright_coordinates() {
        // Stored 120x80 with orientation 6: upright 80x120. Needing 40x60 upright means
        // 60x40 stored, which half scale covers exactly.
        let path = format!(
            "{}/../tests/fixtures/cases/exif_orient6.jpg",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        let limits = InputLimits::default();
        let probed = probe(&bytes, &limits).unwrap();
        let canvas = decode_still(&bytes, &probed, &limits, &|upright| {
            assert_eq!(upright, (80, 120));
            Some((40, 60))
        })
        .unwrap();
        assert_eq!((canvas.size(), canvas.logical), ((40, 60), (80, 120)));
    }
}
