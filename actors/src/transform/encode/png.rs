use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ImageEncoder};

use crate::format::ImageFormat;
use crate::transform::TransformError;

/// PNG in the canvas's own layout (grey stays grey, alpha stays), adaptive filtering.
pub(super) fn encode(image: &DynamicImage) -> Result<Vec<u8>, TransformError> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive)
        .write_image(
            image.as_bytes(),
            image.width(),
            image.height(),
            image.color().into(),
        )
        .map_err(|e| TransformError::encode(ImageFormat::Png, e))?;
    Ok(out)
}
