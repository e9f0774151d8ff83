//! What a job's steps would cost to render, estimated from the image's size alone, so the
//! gateway refuses at upload a job that would hold a render thread for minutes (a 100 MP
//! canvas blurred with a wide kernel thirty times over) instead of tying up a core for as
//! long as `engine.max_job_time` and then failing it.
//!
//! Work is counted in sample-taps: one multiply-add on one channel of one pixel, the unit
//! of the separable filters that dominate (blur, sharpen, resize). Every canvas is counted
//! with four channels, the widest layout a render uses, and every frame of an animation
//! separately. The estimate is coarse on purpose: it only has to tell a job of seconds
//! from one of minutes.

use std::fmt;

use crate::pipeline::{JobSpec, Step};
use crate::transform::ops;
use crate::transform::Probe;

/// The most work a job may ask for: two blurs of the widest kernel (sigma 100) over the
/// largest canvas an input may be, about 20 s of one core. (Measured 2026-12-06 with a
/// throwaway program: a 25 MP RGB canvas blurred at sigma 100 took 1.6 s on one core of
/// a 2-core AMD EPYC, 34 G sample-taps a second.)
pub const MAX_WORK: u64 = 600_000_000_000;

/// Channels every canvas is counted with.
const CHANNELS: u64 = 4;

/// Taps of a resize per output sample and pass (Lanczos3 spans six), for both passes.
const RESIZE_TAPS: u64 = 12;

/// Taps of the per-pixel operations (tone, grayscale, flips, crops, rotations).
const POINT_TAPS: u64 = 2;

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
        let times = self.estimate.div_ceil(MAX_WORK);
        write!(
            f,
            "these steps would take about {times} times the rendering a job may ask for \
             (blur and sharpen grow with sigma and with the image's size, and repeat over \
             every step and frame): blur or sharpen with a smaller sigma, resize down \
             first, or use fewer steps"
        )
    }
}

/// Refuses `spec` on an image `probed` when rendering it would take more than
/// [`MAX_WORK`].
pub fn check_work(probed: &Probe, spec: &JobSpec) -> Result<(), TooCostly> {
    let frames = u64::from(probed.frames.max(1));
    let estimate = spec
        .renditions
        .iter()
        .map(|rendition| steps_work(rendition.pipeline.steps(), probed.upright()))
        .fold(0u64, u64::saturating_add)
        .saturating_mul(frames);
    if estimate > MAX_WORK {
        return Err(TooCostly { estimate });
    }
    Ok(())
}

/// The work of `steps` from a canvas of `size`.
fn steps_work(steps: &[Step], size: (u32, u32)) -> u64 {
    let mut before = size;
    let mut work = 0u64;
    for step in steps {
        let after = ops::size_after(step, before);
        work = work.saturating_add(step_work(step, before, after));
        before = after;
    }
    work
}

fn step_work(step: &Step, before: (u32, u32), after: (u32, u32)) -> u64 {
    let samples = |(w, h): (u32, u32)| u64::from(w) * u64::from(h) * CHANNELS;
    let larger = samples(before).max(samples(after));
    match step {
        // Separable: the kernel's taps across, then down.
        Step::Blur { sigma } => samples(before) * 2 * u64::from(ops::blur::kernel_taps(*sigma)),
        Step::Sharpen { sigma, .. } => {
            samples(before) * (2 * u64::from(ops::blur::kernel_taps(*sigma)) + 1)
        }
        Step::Resize(_) => larger * RESIZE_TAPS,
        _ => larger * POINT_TAPS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ImageFormat;
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

    #[test]
    fn every_frame_of_an_animation_counts() {
        let blur = spec(vec![Step::Blur { sigma: 50.0 }]);
        assert_eq!(check_work(&probed(2000, 2000, 1), &blur), Ok(()));
        assert!(check_work(&probed(2000, 2000, 500), &blur).is_err());
    }
}
