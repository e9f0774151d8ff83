//! Cutting out a rectangle.

use crate::pipeline::Crop;
use crate::transform::canvas::Canvas;
use crate::transform::TransformError;

/// Cuts out `c`, clamped to the image: a rectangle that runs past an edge keeps the part
/// inside; one that starts outside the image is refused.
pub(super) fn crop(canvas: Canvas, c: &Crop) -> Result<Canvas, TransformError> {
    let (w, h) = canvas.size();
    if let Some(refusal) = starts_outside(c, (w, h)) {
        return Err(refusal);
    }
    let width = c.width.min(w - c.x).max(1);
    let height = c.height.min(h - c.y).max(1);
    if (c.x, c.y, width, height) == (0, 0, w, h) {
        return Ok(canvas);
    }
    Ok(Canvas::new(canvas.image.crop_imm(c.x, c.y, width, height)))
}

/// The refusal of `c` on a canvas of `size` when the crop starts outside it; what [`crop`]
/// refuses, known from the sizes alone.
pub(crate) fn starts_outside(c: &Crop, (w, h): (u32, u32)) -> Option<TransformError> {
    (c.x >= w || c.y >= h).then_some(TransformError::CropOutsideImage {
        x: c.x,
        y: c.y,
        image_width: w,
        image_height: h,
    })
}
