//! Cutting out a rectangle.

use crate::pipeline::Crop;
use crate::transform::canvas::Canvas;
use crate::transform::TransformError;

/// Cuts out `c`, clamped to the image: a rectangle that runs past an edge keeps the part
/// inside; one that starts outside the image is refused.
pub(super) fn crop(canvas: Canvas, c: &Crop) -> Result<Canvas, TransformError> {
    let (w, h) = canvas.size();
    if c.x >= w || c.y >= h {
        return Err(TransformError::CropOutsideImage {
            x: c.x,
            y: c.y,
            image_width: w,
            image_height: h,
        });
    }
    let width = c.width.min(w - c.x).max(1);
    let height = c.height.min(h - c.y).max(1);
    if (c.x, c.y, width, height) == (0, 0, w, h) {
        return Ok(canvas);
    }
    Ok(Canvas::new(canvas.image.crop_imm(c.x, c.y, width, height)))
}
