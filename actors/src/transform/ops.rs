//! The steps of a pipeline, one file per kind of operation. Each takes the canvas by value
//! and returns the next one, so at most the input and the output buffer are alive at once.

pub(crate) mod blur;
mod crop;
pub(crate) use crop::starts_outside as crop_starts_outside;
mod entropy;
mod orient;
mod pixels;
pub(crate) mod resize;
mod rotate;
pub(crate) mod tone;

use super::canvas::Canvas;
use super::TransformError;
use crate::pipeline::Step;

/// Applies one step.
pub(crate) fn apply(canvas: Canvas, step: &Step) -> Result<Canvas, TransformError> {
    match step {
        Step::Resize(r) => resize::resize(canvas, r),
        Step::Crop(c) => crop::crop(canvas, c),
        Step::Rotate(r) => Ok(rotate::rotate(canvas, r)),
        Step::Flip => Ok(orient::flip(canvas)),
        Step::Flop => Ok(orient::flop(canvas)),
        Step::Grayscale => Ok(tone::grayscale(canvas)),
        Step::Blur { sigma } => blur::blur(canvas, *sigma),
        Step::Sharpen { sigma, amount } => blur::sharpen(canvas, *sigma, *amount),
        Step::Brightness { value } => Ok(tone::brightness(canvas, *value)),
        Step::Contrast { value } => Ok(tone::contrast(canvas, *value)),
    }
}

/// The logical size `step` turns an image of `size` into, without touching pixels: what a
/// pipeline will allocate, known before it runs.
pub(crate) fn size_after(step: &Step, size: (u32, u32)) -> (u32, u32) {
    match step {
        Step::Resize(r) => {
            let g = resize::geometry(r, size);
            g.padded.unwrap_or(g.scaled)
        }
        Step::Crop(c) => (
            c.width.min(size.0.saturating_sub(c.x)).max(1),
            c.height.min(size.1.saturating_sub(c.y)).max(1),
        ),
        Step::Rotate(r) => match rotate::quarter_turns(r.angle) {
            Some(0 | 2) => size,
            Some(_) => (size.1, size.0),
            None => rotate::free_bounds(size, r.angle),
        },
        _ => size,
    }
}

/// How a step treats a canvas decoded smaller than its logical size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScaleBehaviour {
    /// Same picture at any scale, logical size unchanged (flips, tone).
    Invariant,
    /// Same picture at any scale, logical width and height exchanged.
    SwapsAxes,
    /// Needs the full-size buffer (crop coordinates, blur radii, rotation corners).
    NeedsFullSize,
    /// A resize: computes its target from the logical size.
    Resizes,
}

pub(crate) fn scale_behaviour(step: &Step) -> ScaleBehaviour {
    match step {
        Step::Resize(_) => ScaleBehaviour::Resizes,
        Step::Flip | Step::Flop | Step::Grayscale => ScaleBehaviour::Invariant,
        Step::Brightness { .. } | Step::Contrast { .. } => ScaleBehaviour::Invariant,
        Step::Rotate(r) => match rotate::quarter_turns(r.angle) {
            Some(0 | 2) => ScaleBehaviour::Invariant,
            Some(_) => ScaleBehaviour::SwapsAxes,
            None => ScaleBehaviour::NeedsFullSize,
        },
        Step::Crop(_) | Step::Blur { .. } | Step::Sharpen { .. } => ScaleBehaviour::NeedsFullSize,
    }
}

#[cfg(test)]
mod tests;
