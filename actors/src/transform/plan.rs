//! Shrink-on-load planning: how small a JPEG may be decoded so that every rendition still
//! gets all the resolution its output shows.

use super::ops::{self, resize, ScaleBehaviour};
use super::TransformError;
use crate::pipeline::{JobSpec, Step};

/// The smallest upright buffer size from which every rendition of `spec` renders as it
/// would from the full `upright` size, or `None` when some rendition needs full size (no
/// resize, or a crop, blur or free rotation before the first resize).
pub(crate) fn needed_size(spec: &JobSpec, upright: (u32, u32)) -> Option<(u32, u32)> {
    let mut need = (1, 1);
    for rendition in &spec.renditions {
        let n = rendition_need(rendition.pipeline.steps(), upright)?;
        need = (need.0.max(n.0), need.1.max(n.1));
    }
    (need.0 < upright.0 || need.1 < upright.1).then_some(need)
}

/// True when every rendition turns the image grey before any step that depends on colour
/// (only geometry may come first, and geometry commutes with greyscale here: fills are
/// converted to grey too), so a decoder may produce luma straight away.
pub(crate) fn luma_suffices(spec: &JobSpec) -> bool {
    let starts_grey = |steps: &[Step]| {
        for step in steps {
            match step {
                Step::Grayscale => return true,
                Step::Resize(_) | Step::Crop(_) | Step::Rotate(_) | Step::Flip | Step::Flop => {}
                _ => return false,
            }
        }
        false
    };
    !spec.renditions.is_empty()
        && spec
            .renditions
            .iter()
            .all(|r| starts_grey(r.pipeline.steps()))
}

/// Every canvas size the steps of `spec` make from an image of `size`, in order, each
/// rendition from the start.
pub(crate) fn canvas_sizes(spec: &JobSpec, size: (u32, u32)) -> Vec<(u32, u32)> {
    let mut sizes = Vec::new();
    for rendition in &spec.renditions {
        let mut current = size;
        for step in rendition.pipeline.steps() {
            current = ops::size_after(step, current);
            sizes.push(current);
        }
    }
    sizes
}

/// The refusal of the first crop of `spec` that starts outside the canvas it would cut,
/// walking each rendition's steps from an image of `size`.
pub(crate) fn crop_outside(spec: &JobSpec, size: (u32, u32)) -> Option<TransformError> {
    for rendition in &spec.renditions {
        let mut current = size;
        for step in rendition.pipeline.steps() {
            if let Step::Crop(c) = step {
                if let Some(refusal) = ops::crop_starts_outside(c, current) {
                    return Some(refusal);
                }
            }
            current = ops::size_after(step, current);
        }
    }
    None
}

fn rendition_need(steps: &[Step], upright: (u32, u32)) -> Option<(u32, u32)> {
    let mut size = upright;
    let mut swapped = false;
    for step in steps {
        match ops::scale_behaviour(step) {
            ScaleBehaviour::Invariant => {}
            ScaleBehaviour::SwapsAxes => {
                size = (size.1, size.0);
                swapped = !swapped;
            }
            ScaleBehaviour::NeedsFullSize => return None,
            ScaleBehaviour::Resizes => {
                let Step::Resize(r) = step else {
                    return None;
                };
                let g = resize::geometry(r, size);
                let need = (
                    needed_side(size.0, g.scaled.0, g.window.0),
                    needed_side(size.1, g.scaled.1, g.window.1),
                );
                return Some(if swapped { (need.1, need.0) } else { need });
            }
        }
    }
    None
}

/// The buffer side that gives the window at least `scaled` pixels.
fn needed_side(side: u32, scaled: u32, window: f64) -> u32 {
    let ratio = f64::from(scaled) / window;
    // The epsilon keeps float noise from asking for one pixel more than the target.
    let need = (f64::from(side) * ratio - 1e-6).ceil() as u32;
    need.clamp(1, side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Crop, Fit, Gravity, OutputSpec, Pipeline, Resize};

    fn thumb(width: u32, height: u32, fit: Fit) -> Step {
        Step::Resize(Resize {
            width: Some(width),
            height: Some(height),
            fit,
            gravity: Gravity::Centre,
            background: None,
            upscale: false,
        })
    }

    fn spec(steps: Vec<Step>) -> JobSpec {
        JobSpec::single(Pipeline::new(steps).unwrap(), OutputSpec::default())
    }

    #[test]
    fn a_thumbnail_needs_only_its_own_size() {
        let need = needed_size(&spec(vec![thumb(800, 800, Fit::Inside)]), (6028, 3391));
        assert_eq!(need, Some((800, 450)));
        let cover = needed_size(&spec(vec![thumb(100, 100, Fit::Cover)]), (400, 200));
        assert_eq!(cover, Some((200, 100)));
    }

    #[test]
    fn luma_is_enough_only_when_every_rendition_turns_grey_first() {
        assert!(luma_suffices(&spec(vec![
            thumb(10, 10, Fit::Inside),
            Step::Grayscale
        ])));
        assert!(!luma_suffices(&spec(vec![
            Step::Brightness { value: 5.0 },
            Step::Grayscale
        ])));
        assert!(!luma_suffices(&spec(vec![thumb(10, 10, Fit::Inside)])));
    }

    #[test]
    fn steps_before_the_resize_decide_whether_shrinking_is_allowed() {
        let rotated = spec(vec![
            Step::Rotate(crate::pipeline::Rotate {
                angle: 90.0,
                background: None,
            }),
            thumb(100, 100, Fit::Inside),
        ]);
        assert_eq!(needed_size(&rotated, (400, 200)), Some((100, 50)));
        let cropped = spec(vec![
            Step::Crop(Crop {
                x: 0,
                y: 0,
                width: 10,
                height: 10,
            }),
            thumb(5, 5, Fit::Inside),
        ]);
        assert_eq!(needed_size(&cropped, (400, 200)), None);
        assert_eq!(needed_size(&spec(vec![Step::Grayscale]), (400, 200)), None);
    }
}
