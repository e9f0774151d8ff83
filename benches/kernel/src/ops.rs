//! The benchmark's operations, each a one-rendition job for the kernel's public API.

use pixmill_actors::pipeline::{Fit, Gravity, Resize};
use pixmill_actors::transform::{decode_only, render_all_with, InputLimits, RenderOptions};
use pixmill_actors::{ImageFormat, JobSpec, OutputSpec, Pipeline, Step};

use crate::BoxError;

/// The width every thumbnail-like op fits inside (no upscaling).
pub const THUMB_WIDTH: u32 = 800;
const QUALITY: u8 = 80;
const BLUR_SIGMA: f32 = 2.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// 800 px wide, shrink-on-load allowed, JPEG q80.
    Thumbnail,
    /// The same from a full-size decode (shrink-on-load off).
    Resize,
    /// Grey at full size, JPEG q80.
    Grayscale,
    /// Gaussian blur, sigma 2, at full size, JPEG q80.
    Blur,
    /// The thumbnail as lossy WebP q80.
    Webp,
}

/// One encoded output.
pub struct Output {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl Op {
    pub fn parse(name: &str) -> Result<Self, BoxError> {
        Ok(match name {
            "thumbnail" => Op::Thumbnail,
            "resize" => Op::Resize,
            "grayscale" => Op::Grayscale,
            "blur" => Op::Blur,
            "webp" => Op::Webp,
            other => return Err(format!("unknown op {other:?}").into()),
        })
    }

    /// The kernel's job for this op.
    pub fn job(self) -> Result<Job, BoxError> {
        let (steps, format) = match self {
            Op::Thumbnail | Op::Resize => (vec![thumbnail_step()], ImageFormat::Jpeg),
            Op::Webp => (vec![thumbnail_step()], ImageFormat::Webp),
            Op::Grayscale => (vec![Step::Grayscale], ImageFormat::Jpeg),
            Op::Blur => (vec![Step::Blur { sigma: BLUR_SIGMA }], ImageFormat::Jpeg),
        };
        let output = OutputSpec {
            format: Some(format),
            quality: Some(QUALITY),
            ..OutputSpec::default()
        };
        Ok(Job {
            spec: JobSpec::single(Pipeline::new(steps)?, output),
            limits: InputLimits::default(),
            options: RenderOptions {
                shrink_on_load: self != Op::Resize,
            },
        })
    }
}

fn thumbnail_step() -> Step {
    Step::Resize(Resize {
        width: Some(THUMB_WIDTH),
        height: None,
        fit: Fit::Inside,
        gravity: Gravity::Centre,
        background: None,
        upscale: false,
    })
}

/// A job built once and run many times.
pub struct Job {
    pub spec: JobSpec,
    pub limits: InputLimits,
    pub options: RenderOptions,
}

impl Job {
    pub fn run(&self, input: &[u8]) -> Result<Output, BoxError> {
        let rendered = render_all_with(input, &self.spec, &self.limits, self.options)?;
        let first = rendered
            .into_iter()
            .next()
            .ok_or("the kernel returned no rendition")?;
        Ok(Output {
            bytes: Vec::from(first.bytes),
            width: first.width,
            height: first.height,
        })
    }

    /// The op's floor: its decode alone, as a render of this job would decode (see
    /// `floor`); returns the decoded size.
    pub fn decode(&self, input: &[u8]) -> Result<(u32, u32), BoxError> {
        decode_only(input, &self.spec, &self.limits, self.options).map_err(BoxError::from)
    }
}
