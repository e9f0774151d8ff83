//! What a job's steps would cost to render, estimated from the image's size alone, so the
//! gateway refuses at upload a job that would hold a render thread for minutes (a 100 MP
//! canvas blurred with a wide kernel thirty times over) instead of tying up a core for as
//! long as `engine.max_job_time` and then failing it.
//!
//! Work is counted in sample-taps: one multiply-add on one channel of one pixel, the unit
//! of the separable filters that dominate (blur, sharpen, resize). Every canvas is counted
//! with four channels, the widest layout a render uses, and every frame of an animation
//! separately where the rendition keeps them. Steps that are not SIMD filters are priced
//! in the same unit by what they cost against one (a free rotation's per-pixel warp, the
//! sharpen's per-sample blend, the result's encoding by its format). The estimate is coarse on purpose: it only has to tell a
//! job of seconds from one of minutes, and it errs high.

use std::fmt;

use crate::format::ImageFormat;
use crate::pipeline::{JobSpec, Step};
use crate::transform::ops;
use crate::transform::Probe;

/// The most work a job may ask for, about 20 s of one core: two blurs of the widest kernel
/// (sigma 100) over the largest canvas an input may be, encoded as JPEG. (Measured
/// 2026-12-06 on one core of a 2-core AMD EPYC: a 25 MP RGB canvas blurred at sigma 100 in
/// 1.6 s by a throwaway program, 34 G sample-taps a second; in a release standalone, a
/// 100 MP result of two such blurs in 14 s, a 100 MP PNG, WebP or GIF result encoded in
/// 13 to 18 s, 24 rotations by 0.1 degree of a 90 MP canvas in 76 s.)
pub const MAX_WORK: u64 = 700_000_000_000;

/// Channels every canvas is counted with.
const CHANNELS: u64 = 4;

/// Taps of a resize per output sample and pass (Lanczos3 spans six), for both passes.
const RESIZE_TAPS: u64 = 12;

/// Taps of the per-pixel operations (tone, grayscale, flips, crops, quarter turns).
const POINT_TAPS: u64 = 2;

/// A rotation by a free angle: a scalar bilinear warp per pixel, some hundred times a
/// filter tap's cost (3.2 s a 98 MP rotation).
const FREE_ROTATION_TAPS: u64 = 256;

/// Encoding the result, per sample of its canvas, by format: JPEG is cheap; PNG's
/// deflate, WebP's and GIF's palette search are not (13 to 18 s a 100 MP result); AVIF's
/// encoder is slower still.
fn encode_taps(format: ImageFormat) -> u64 {
    match format {
        ImageFormat::Jpeg => 250,
        ImageFormat::Png => 1_200,
        ImageFormat::Webp | ImageFormat::Gif => 1_600,
        ImageFormat::Avif => 20_000,
        ImageFormat::Tiff | ImageFormat::Bmp => 50,
    }
}

/// Sharpen's blend of each sample with its blur, scalar floating point, on top of the blur.
const SHARPEN_BLEND_TAPS: u64 = 30;

/// Steps that would take more work than [`MAX_WORK`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooCostly {
    /// The estimate, in sample-taps.
    pub estimate: u64,
}

impl TooCostly {
    /// The stable machine code of the refusal.
    pub fn code(&self) -> &'static str {
        "steps_too_costly"
    }
}

impl fmt::Display for TooCostly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let times = self.estimate as f64 / MAX_WORK as f64;
        write!(
            f,
            "these steps would take about {times:.1} times the rendering a job may ask for \
             (blur, sharpen and free rotations grow with the image's size and repeat over \
             every step and frame; a large result is slow to encode as PNG, WebP or GIF): \
             blur or sharpen with a smaller sigma, resize down first, use fewer steps, or \
             ask for a smaller result or for JPEG"
        )
    }
}

/// Refuses `spec` on an image `probed` when rendering it would take more than
/// [`MAX_WORK`].
pub fn check_work(probed: &Probe, spec: &JobSpec) -> Result<(), TooCostly> {
    // As `check_result_size`: a file that EXIF may turn is priced from both sizes a render
    // may start from (decoders disagree on which EXIF block wins), the dearer one counting.
    let starts = if probed.turned {
        vec![probed.upright(), (probed.width, probed.height)]
    } else {
        vec![probed.upright()]
    };
    let frames = u64::from(probed.frames.max(1));
    let estimate = starts
        .into_iter()
        .map(|start| {
            spec.renditions
                .iter()
                .map(|rendition| {
                    let (rendered, size) = steps_work(rendition.pipeline.steps(), start);
                    let format = rendition.output.format.unwrap_or(probed.format);
                    let encoded = samples(size).saturating_mul(encode_taps(format));
                    let once = rendered.saturating_add(encoded);
                    // Every frame is rendered only where the rendition keeps them.
                    let times = if rendition.output.animated { frames } else { 1 };
                    once.saturating_mul(times)
                })
                .fold(0u64, u64::saturating_add)
        })
        .max()
        .unwrap_or(0);
    if estimate > MAX_WORK {
        return Err(TooCostly { estimate });
    }
    Ok(())
}

/// The work of `steps` from a canvas of `size`, and the canvas they end with.
fn steps_work(steps: &[Step], size: (u32, u32)) -> (u64, (u32, u32)) {
    let mut before = size;
    let mut work = 0u64;
    for step in steps {
        let after = ops::size_after(step, before);
        work = work.saturating_add(step_work(step, before, after));
        before = after;
    }
    (work, before)
}

/// The samples of a canvas of `size`, counted with [`CHANNELS`].
fn samples((w, h): (u32, u32)) -> u64 {
    u64::from(w) * u64::from(h) * CHANNELS
}

fn step_work(step: &Step, before: (u32, u32), after: (u32, u32)) -> u64 {
    let larger = samples(before).max(samples(after));
    let blur_taps = |sigma: f32| 2 * u64::from(ops::blur::kernel_taps(sigma));
    match step {
        // Separable: the kernel's taps across, then down.
        Step::Blur { sigma } => samples(before) * blur_taps(*sigma),
        Step::Sharpen { sigma, .. } => samples(before) * (blur_taps(*sigma) + SHARPEN_BLEND_TAPS),
        // One pass runs over an intermediate of one side of each (the source's width by
        // the target's height): the bounding box of both sizes bounds it.
        Step::Resize(_) => {
            let bounding = (before.0.max(after.0), before.1.max(after.1));
            samples(bounding) * RESIZE_TAPS
        }
        Step::Rotate(rotate) if rotate.angle.rem_euclid(90.0) != 0.0 => larger * FREE_ROTATION_TAPS,
        _ => larger * POINT_TAPS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{OutputSpec, Pipeline};

    fn probed(width: u32, height: u32, frames: u32) -> Probe {
        Probe {
            format: ImageFormat::Jpeg,
            width,
            height,
            frames,
            turned: false,
        }
    }

    fn spec(steps: Vec<Step>) -> JobSpec {
        JobSpec::single(
            Pipeline::new(steps).expect("valid steps"),
            OutputSpec::default(),
        )
    }

    #[test]
    fn ordinary_jobs_pass_and_a_pile_of_wide_blurs_on_a_huge_canvas_does_not() {
        let photo = probed(4000, 3000, 1);
        let thumbnail = spec(vec![Step::Blur { sigma: 2.0 }, Step::Grayscale]);
        assert_eq!(check_work(&photo, &thumbnail), Ok(()));
        // A wide blur on the largest canvas an input may be is allowed...
        let largest = probed(10_000, 10_000, 1);
        assert_eq!(
            check_work(&largest, &spec(vec![Step::Blur { sigma: 100.0 }])),
            Ok(())
        );
        // ...thirty of them are not (what a trial tied a worker up with for 10 minutes).
        let pile = spec(vec![Step::Blur { sigma: 100.0 }; 31]);
        let refused = check_work(&largest, &pile).expect_err("refused");
        assert_eq!(refused.code(), "steps_too_costly");
        assert!(refused.to_string().contains("smaller sigma"), "{refused}");
    }

    fn step(json: &str) -> Step {
        serde_json::from_str(json).expect("a step")
    }

    #[test]
    fn every_frame_counts_where_the_rendition_keeps_them() {
        let blur = vec![Step::Blur { sigma: 50.0 }];
        let animated = JobSpec::single(
            Pipeline::new(blur.clone()).expect("valid"),
            OutputSpec {
                animated: true,
                ..OutputSpec::default()
            },
        );
        assert_eq!(check_work(&probed(2000, 2000, 1), &animated), Ok(()));
        assert!(check_work(&probed(2000, 2000, 500), &animated).is_err());
        // Its first frame only: one frame's work.
        assert_eq!(check_work(&probed(2000, 2000, 500), &spec(blur)), Ok(()));
    }

    #[test]
    fn a_resize_is_priced_by_the_bounding_box_of_its_two_sizes() {
        // A strip turned into a column and back, again and again: each step's intermediate
        // is 16384 x 16384, though neither end is more than 100 k pixels.
        let column =
            step(r#"{"op":"resize","width":6,"height":16384,"fit":"fill","upscale":true}"#);
        let strip = step(r#"{"op":"resize","width":16384,"height":6,"fit":"fill","upscale":true}"#);
        let steps: Vec<Step> = [column, strip].into_iter().cycle().take(32).collect();
        let animated = JobSpec::single(
            Pipeline::new(steps).expect("valid"),
            OutputSpec {
                animated: true,
                ..OutputSpec::default()
            },
        );
        assert!(check_work(&probed(16_384, 6, 1000), &animated).is_err());
    }

    #[test]
    fn a_file_exif_may_turn_is_priced_from_the_dearer_start() {
        let mut steps = vec![step(r#"{"op":"resize","height":4000,"upscale":true}"#)];
        steps.extend(vec![Step::Blur { sigma: 100.0 }; 31]);
        let steps = spec(steps);
        let upright = probed(500, 2000, 1);
        assert_eq!(check_work(&upright, &steps), Ok(()), "a 1000 x 4000 canvas");
        let turned = Probe {
            turned: true,
            ..probed(2000, 500, 1)
        };
        assert!(
            check_work(&turned, &steps).is_err(),
            "16000 x 4000 unturned"
        );
    }

    #[test]
    fn encoding_a_huge_result_counts_by_its_format() {
        let tiny = probed(64, 40, 1);
        let enlarge =
            step(r#"{"op":"resize","width":10000,"height":10000,"fit":"fill","upscale":true}"#);
        let as_format = |steps: Vec<Step>, format| {
            JobSpec::single(
                Pipeline::new(steps).expect("valid"),
                OutputSpec {
                    format: Some(format),
                    ..OutputSpec::default()
                },
            )
        };
        // 18 s measured for a 100 MP GIF: inside the budget; with two wide blurs, not.
        assert_eq!(
            check_work(&tiny, &as_format(vec![enlarge.clone()], ImageFormat::Gif)),
            Ok(())
        );
        let blurred = vec![
            enlarge,
            Step::Blur { sigma: 100.0 },
            Step::Blur { sigma: 100.0 },
        ];
        assert_eq!(
            check_work(&tiny, &as_format(blurred.clone(), ImageFormat::Jpeg)),
            Ok(())
        );
        assert!(check_work(&tiny, &as_format(blurred, ImageFormat::Gif)).is_err());
    }

    #[test]
    fn free_rotations_cost_more_than_quarter_turns() {
        let huge = probed(10_000, 7_000, 1);
        let quarter = spec(vec![step(r#"{"op":"rotate","angle":90}"#); 32]);
        assert_eq!(check_work(&huge, &quarter), Ok(()));
        let free = spec(vec![step(r#"{"op":"rotate","angle":1}"#); 32]);
        assert!(check_work(&huge, &free).is_err());
        // What a re-trial rendered in 76 s with rotations priced lower.
        let mut steps = vec![step(
            r#"{"op":"resize","width":9500,"height":9500,"fit":"fill","upscale":true}"#,
        )];
        steps.extend(vec![step(r#"{"op":"rotate","angle":0.1}"#); 24]);
        assert!(check_work(&probed(640, 427, 1), &spec(steps)).is_err());
    }
}
