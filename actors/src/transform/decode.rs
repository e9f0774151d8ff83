//! Decoding a still image, or the first frame of an animation, into a [`Canvas`]: limits
//! checked on the decoder before any pixel buffer exists, then reduced to 8 bits, converted
//! to sRGB and turned upright.

pub(crate) mod generic;
mod jpeg;
mod jpeg_luma;
#[cfg(feature = "turbo")]
mod turbo;

#[cfg(feature = "turbo")]
pub(crate) use jpeg::{dct_scale, scaled as dct_scaled};

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

/// What the steps need from the decoder.
#[derive(Clone, Copy)]
pub(crate) struct Needs<'a> {
    pub size: NeededSize<'a>,
    /// Every rendition turns the image grey first: luma is all the decoder must produce.
    pub luma_only: bool,
}

/// Decodes `bytes` for steps. A large JPEG is decoded at the smallest DCT scale (1/8, 1/4,
/// 1/2) that still covers what `needs` asks for, a JPEG that will be turned grey is decoded
/// straight to luma, and everything else goes through `image` (JPEG by zune-jpeg).
pub(crate) fn decode_still(
    bytes: &[u8],
    probe: &Probe,
    limits: &InputLimits,
    needs: Needs,
) -> Result<Canvas, TransformError> {
    let shrunk = match probe.format {
        ImageFormat::Jpeg => match fast_jpeg(bytes, limits, needs)? {
            Some(raw) => Some(raw),
            None => pure_rust_jpeg(bytes, probe, limits, needs)?,
        },
        _ => None,
    };
    let raw = match shrunk {
        Some(raw) => raw,
        None => generic::decode(bytes, probe.format, limits)?,
    };
    Ok(finish(raw))
}

/// The pure-Rust decoders' answer for a JPEG: shrunk on load when that saves memory that
/// matters, else luma when that is all the steps need (a large file that must be decoded at
/// full size still gets luma), else `None` for the generic decoder.
fn pure_rust_jpeg(
    bytes: &[u8],
    probe: &Probe,
    limits: &InputLimits,
    needs: Needs,
) -> Result<Option<Raw>, TransformError> {
    if shrinking_pays(probe) {
        if let Some(raw) = jpeg::decode_shrunk(bytes, limits, needs.size)? {
            return Ok(Some(raw));
        }
    }
    if needs.luma_only {
        return jpeg_luma::decode(bytes, limits);
    }
    Ok(None)
}

/// libjpeg-turbo's decode of a JPEG, with the `turbo` feature; `None` leaves the file to the
/// pure-Rust decoders.
#[cfg(feature = "turbo")]
fn fast_jpeg(
    bytes: &[u8],
    limits: &InputLimits,
    needs: Needs,
) -> Result<Option<Raw>, TransformError> {
    turbo::decode(bytes, limits, needs)
}

#[cfg(not(feature = "turbo"))]
fn fast_jpeg(_: &[u8], _: &InputLimits, _: Needs) -> Result<Option<Raw>, TransformError> {
    Ok(None)
}

/// What a JPEG's markers say, read without decoding a pixel.
#[cfg(feature = "turbo")]
pub(crate) struct JpegMarkers {
    /// The stored size.
    pub full: (u32, u32),
    pub orientation: Orientation,
    pub icc: Option<Vec<u8>>,
}

/// Reads a JPEG's size, EXIF orientation and ICC profile, and checks the size limits.
#[cfg(feature = "turbo")]
pub(crate) fn jpeg_markers(
    bytes: &[u8],
    limits: &InputLimits,
) -> Result<JpegMarkers, TransformError> {
    let (decoder, full, orientation) = jpeg::open(bytes, limits)?;
    Ok(JpegMarkers {
        full,
        orientation,
        icc: decoder.icc_profile(),
    })
}

/// Full-size RGB up to this size is decoded whole by zune-jpeg even when a smaller decode
/// would do: its decoding is about 4 times faster than jpeg-decoder's, and this much (plus a
/// progressive file's coefficients) stays within the ~30 MB a shrunk 20 MP decode takes.
const SHRINK_WORTHWHILE_BYTES: u64 = 16 << 20;

/// True when a JPEG is large enough for shrink-on-load to save memory that matters.
fn shrinking_pays(probe: &Probe) -> bool {
    u64::from(probe.width) * u64::from(probe.height) * 3 > SHRINK_WORTHWHILE_BYTES
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
    use crate::pipeline::{Fit, Gravity, Resize, Step};
    use crate::transform::ops;

    fn fixture(dir: &str, name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../tests/fixtures/{dir}/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    fn shrunk(bytes: &[u8], needed: NeededSize) -> Option<Canvas> {
        jpeg::decode_shrunk(bytes, &InputLimits::default(), needed)
            .unwrap()
            .map(finish)
    }

    #[test]
    fn a_jpeg_thumbnail_is_decoded_at_the_smallest_covering_scale() {
        let bytes = fixture("corpus", "rocket.jpg");
        let eighth = shrunk(&bytes, &|_| Some((80, 53))).unwrap();
        assert_eq!((eighth.size(), eighth.logical), ((80, 54), (640, 427)));
        let quarter = shrunk(&bytes, &|_| Some((81, 53))).unwrap();
        assert_eq!(quarter.size(), (160, 107));
        assert!(
            shrunk(&bytes, &|_| Some((321, 10))).is_none(),
            "full size: not shrunk"
        );
        assert!(shrunk(&bytes, &|_| None).is_none());
    }

    #[test]
    fn the_scale_is_chosen_in_upright_coordinates() {
        // Stored 120x80 with orientation 6: upright 80x120. Needing 40x60 upright means
        // 60x40 stored, which half scale covers exactly.
        let bytes = fixture("cases", "exif_orient6.jpg");
        let canvas = shrunk(&bytes, &|upright| {
            assert_eq!(upright, (80, 120));
            Some((40, 60))
        })
        .unwrap();
        assert_eq!((canvas.size(), canvas.logical), ((40, 60), (80, 120)));
    }

    #[test]
    fn only_large_jpegs_are_shrunk_on_load() {
        let probe_of = |width, height| Probe {
            format: ImageFormat::Jpeg,
            width,
            height,
            frames: 1,
            turned: false,
        };
        assert!(!shrinking_pays(&probe_of(640, 427)));
        assert!(!shrinking_pays(&probe_of(2560, 1600)));
        assert!(shrinking_pays(&probe_of(4032, 3024)));
        assert!(shrinking_pays(&probe_of(6028, 3391)));
    }

    #[test]
    fn a_shrunk_decode_gives_the_same_thumbnail_as_a_full_one() {
        let bytes = fixture("corpus", "rocket.jpg");
        let step = Step::Resize(Resize {
            width: Some(100),
            height: Some(100),
            fit: Fit::Cover,
            gravity: Gravity::Centre,
            background: None,
            upscale: false,
        });
        let small = shrunk(&bytes, &|_| Some((150, 100))).unwrap();
        assert_eq!(small.size(), (160, 107));
        let small = ops::apply(small, &step).unwrap().image.to_rgb8();
        let limits = InputLimits::default();
        let full = finish(generic::decode(&bytes, ImageFormat::Jpeg, &limits).unwrap());
        let full = ops::apply(full, &step).unwrap().image.to_rgb8();
        assert_eq!(small.dimensions(), (100, 100));
        assert!(mean_difference(small.as_raw(), full.as_raw()) < 3.0);
    }

    fn mean_difference(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let sum: u64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.len() as f64
    }

    #[test]
    fn a_grey_pipeline_decodes_luma_directly_unless_colour_comes_first() {
        let limits = InputLimits::default();
        let grey = |dir, name| {
            let bytes = fixture(dir, name);
            let probed = crate::transform::probe(&bytes, &limits).unwrap();
            let needs = Needs {
                size: &|_| None,
                luma_only: true,
            };
            (
                decode_still(&bytes, &probed, &limits, needs).unwrap(),
                bytes,
            )
        };
        let (luma, bytes) = grey("cases", "exif_orient6.jpg");
        assert_eq!(luma.image.color(), image::ColorType::L8);
        assert_eq!(luma.size(), (80, 120), "orientation still applied");
        let from_rgb = finish(generic::decode(&bytes, ImageFormat::Jpeg, &limits).unwrap());
        let from_rgb = ops::apply(from_rgb, &Step::Grayscale).unwrap();
        assert!(mean_difference(luma.image.as_bytes(), from_rgb.image.as_bytes()) < 3.0);
        // An Adobe RGB or Display P3 profile, or CMYK, needs converting in colour first.
        let (adobe, _) = grey("corpus", "rocket.jpg");
        assert_eq!(adobe.image.color(), image::ColorType::Rgb8);
        for name in ["display_p3.jpg", "cmyk_adobe.jpg"] {
            assert_eq!(
                grey("cases", name).0.image.color(),
                image::ColorType::Rgb8,
                "{name}"
            );
        }
    }

    #[test]
    fn a_large_jpeg_turned_grey_at_full_size_is_decoded_to_luma() {
        // Bridge is 4352x2448, large enough for shrink-on-load, which a full-size greyscale
        // declines; the luma decoder must still take it rather than the RGB one.
        let limits = InputLimits::default();
        let bytes = fixture("corpus", "Bridge_by_Sander_Klootwijk.jpg");
        let probed = crate::transform::probe(&bytes, &limits).unwrap();
        let needs = Needs {
            size: &|_| None,
            luma_only: true,
        };
        let canvas = decode_still(&bytes, &probed, &limits, needs).unwrap();
        assert_eq!(canvas.image.color(), image::ColorType::L8);
        assert_eq!(canvas.size(), (4352, 2448));
    }

    #[test]
    fn both_jpeg_decoders_agree_on_every_jpeg_case() {
        let limits = InputLimits::default();
        let files = [
            ("corpus", "rocket.jpg"),
            ("cases", "exif_orient6.jpg"),
            ("cases", "exif_orient4.jpg"),
            ("cases", "cmyk_adobe.jpg"),
            ("cases", "big_icc.jpg"),
            ("cases", "progressive_dri.jpg"),
            ("cases", "odd_420.jpg"),
            ("cases", "display_p3.jpg"),
        ];
        for (dir, name) in files {
            let bytes = fixture(dir, name);
            let ours = finish(jpeg::decode_full(&bytes, &limits).unwrap());
            let zune = finish(generic::decode(&bytes, ImageFormat::Jpeg, &limits).unwrap());
            assert_eq!(ours.size(), zune.size(), "{name}");
            let (a, b) = (ours.image.to_rgb8(), zune.image.to_rgb8());
            let diff = mean_difference(a.as_raw(), b.as_raw());
            assert!(diff < 3.0, "{name}: mean difference {diff}");
        }
    }
}
