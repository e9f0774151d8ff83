//! Mirroring, in place.

use image::metadata::Orientation;

use crate::transform::canvas::Canvas;

/// Mirrors top to bottom.
pub(super) fn flip(mut canvas: Canvas) -> Canvas {
    canvas.image.apply_orientation(Orientation::FlipVertical);
    canvas
}

/// Mirrors left to right.
pub(super) fn flop(mut canvas: Canvas) -> Canvas {
    canvas.image.apply_orientation(Orientation::FlipHorizontal);
    canvas
}
