use image::DynamicImage;
use jpeg_encoder::{ChromaSubsamplingMethod, ColorType, Encoder};

use crate::format::ImageFormat;
use crate::transform::TransformError;

/// Baseline JPEG with the standard Huffman tables; 4:2:0 below quality 90, 4:4:4 from 90.
/// `image` must have no alpha (see `flatten`).
///
/// jpeg-encoder's optimised Huffman tables (a few percent smaller) are left off: zune-jpeg
/// 0.5.15, the decoder inside `image`, decodes them with wrong colours (its table-index bug,
/// etemesi254/zune-image#430), and outputs must read correctly in every decoder.
pub(super) fn encode(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, TransformError> {
    #[cfg(feature = "turbo")]
    return turbo(image, quality);
    #[cfg(not(feature = "turbo"))]
    return pure_rust(image, quality);
}

/// The same JPEG through libjpeg-turbo's SIMD encoder (the `turbo` feature).
#[cfg(feature = "turbo")]
fn turbo(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, TransformError> {
    use turbojpeg_sys as tj;
    let (pixels, channels, format, subsamp) = match image {
        DynamicImage::ImageLuma8(b) => (b.as_raw(), 1, tj::TJPF_TJPF_GRAY, tj::TJSAMP_TJSAMP_GRAY),
        DynamicImage::ImageRgb8(b) if quality < 90 => {
            (b.as_raw(), 3, tj::TJPF_TJPF_RGB, tj::TJSAMP_TJSAMP_420)
        }
        DynamicImage::ImageRgb8(b) => (b.as_raw(), 3, tj::TJPF_TJPF_RGB, tj::TJSAMP_TJSAMP_444),
        _ => {
            return Err(TransformError::encode(
                ImageFormat::Jpeg,
                "alpha must be flattened first",
            ))
        }
    };
    let size = (image.width(), image.height());
    side(size.0)?;
    side(size.1)?;
    crate::transform::turbo::ffi::Handle::compressor()?
        .encode_packed(pixels, size, channels, format, quality, subsamp)
}

#[cfg_attr(feature = "turbo", allow(dead_code))]
fn pure_rust(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, TransformError> {
    let fail = |e: jpeg_encoder::EncodingError| TransformError::encode(ImageFormat::Jpeg, e);
    let (w, h) = (side(image.width())?, side(image.height())?);
    let (samples, colour) = match image {
        DynamicImage::ImageLuma8(b) => (b.as_raw().as_slice(), ColorType::Luma),
        DynamicImage::ImageRgb8(b) => (b.as_raw().as_slice(), ColorType::Rgb),
        _ => {
            return Err(TransformError::encode(
                ImageFormat::Jpeg,
                "alpha must be flattened first",
            ))
        }
    };
    let mut out = Vec::new();
    let mut encoder = Encoder::new(&mut out, quality);
    encoder.set_chroma_subsampling_method(ChromaSubsamplingMethod::Average);
    encoder.encode(samples, w, h, colour).map_err(fail)?;
    Ok(out)
}

fn side(v: u32) -> Result<u16, TransformError> {
    u16::try_from(v).map_err(|_| TransformError::encode(ImageFormat::Jpeg, "a side exceeds 65535"))
}
