//! `render_all`: one decode, every rendition.

use bytes::Bytes;

use super::animation::{self, DecodedFrame};
use super::canvas::Canvas;
use super::decode::{decode_still, Needs};
use super::encode::{self, Frame};
use super::probe::{probe, Probe};
use super::{ops, panics, plan, InputError, InputLimits, TransformError};
use crate::format::ImageFormat;
use crate::pipeline::{JobSpec, Rendition};

/// One encoded rendition.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub bytes: Bytes,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// Frames in the output: more than 1 only for an animated output.
    pub frames: u32,
    /// The input was animated but this output holds its first frame only (the output
    /// format cannot animate, or the rendition did not ask for animation).
    pub first_frame_only: bool,
}

/// How the kernel may take shortcuts that change pixels slightly but never sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// Decode a JPEG at a reduced DCT scale when every rendition is smaller (on by default).
    /// Off, every JPEG is decoded at full size first: slower, a little sharper, and what the
    /// benchmark's "resize from a full decode" row measures.
    pub shrink_on_load: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            shrink_on_load: true,
        }
    }
}

/// Decodes `input` once and renders every rendition of `spec`, in order (primary first).
///
/// The input is probed again first, so every limit holds here as at upload. A large JPEG is
/// decoded at the smallest DCT scale that still serves every rendition. A panic inside a
/// codec is caught and returned as `internal_error`.
pub fn render_all(
    input: &[u8],
    spec: &JobSpec,
    limits: &InputLimits,
) -> Result<Vec<Rendered>, TransformError> {
    render_all_with(input, spec, limits, RenderOptions::default())
}

/// [`render_all`] with explicit [`RenderOptions`].
pub fn render_all_with(
    input: &[u8],
    spec: &JobSpec,
    limits: &InputLimits,
    options: RenderOptions,
) -> Result<Vec<Rendered>, TransformError> {
    panics::contain(
        || render_unguarded(input, spec, limits, options),
        TransformError::Internal,
    )
}

fn render_unguarded(
    input: &[u8],
    spec: &JobSpec,
    limits: &InputLimits,
    options: RenderOptions,
) -> Result<Vec<Rendered>, TransformError> {
    let probed = probe(input, limits)?;
    check_result_size(&probed, spec, limits)?;
    check_crops(&probed, spec)?;
    #[cfg(feature = "turbo")]
    if let Some(rendered) = super::turbo::planar::try_render(input, &probed, spec, limits, options)?
    {
        return Ok(rendered);
    }
    render_decoded(input, &probed, spec, limits, options)
}

/// Refuses steps that would make a canvas larger than an input may be (an upscale, a free
/// rotation): the limits that keep a hostile file from ballooning a worker must hold for
/// what the steps make of a harmless one too. The sizes are walked from the size the steps
/// start from: for a file whose EXIF orientation may turn it, both ways, since decoders
/// disagree on which of several EXIF blocks wins, so the render may start from either.
/// Sides are checked against the larger of the two side limits (a result is as often
/// portrait as landscape). The gateway runs the same check at upload.
pub fn check_result_size(
    probed: &Probe,
    spec: &JobSpec,
    limits: &InputLimits,
) -> Result<(), TransformError> {
    let max_side = limits.max_width.max(limits.max_height);
    let stored = (probed.width, probed.height);
    let starts = if probed.turned {
        vec![probed.upright(), stored]
    } else {
        vec![stored]
    };
    let oversized = starts
        .into_iter()
        .flat_map(|start| plan::canvas_sizes(spec, start))
        .find(|&(w, h)| {
            w > max_side || h > max_side || u64::from(w) * u64::from(h) > limits.max_pixels
        });
    match oversized {
        Some((width, height)) => Err(TransformError::ResultTooLarge {
            width,
            height,
            max_side,
            max_pixels: limits.max_pixels,
        }),
        None => Ok(()),
    }
}

/// Refuses a crop that starts outside the canvas it would cut, known from the sizes alone,
/// before anything is decoded; the gateway runs it at upload, so the client hears `422
/// crop_outside_image` instead of polling its way to a `FAILED` job. A file whose EXIF
/// orientation may turn it is refused only when the crop misses from both sizes a render
/// may start from (see [`check_result_size`]); otherwise the crop step judges it on the
/// canvas the decoder made.
pub fn check_crops(probed: &Probe, spec: &JobSpec) -> Result<(), TransformError> {
    let Some(refusal) = plan::crop_outside(spec, probed.upright()) else {
        return Ok(());
    };
    let misses_both =
        !probed.turned || plan::crop_outside(spec, (probed.width, probed.height)).is_some();
    if misses_both {
        Err(refusal)
    } else {
        Ok(())
    }
}

/// Decodes `input` exactly as [`render_all_with`] would for `spec` (the same decoder, scale
/// and pixel layout) and stops there, returning the decoded buffer's size. This is a
/// rendering's floor: the benchmark (`benches/kernel/`) reports each operation against it.
pub fn decode_only(
    input: &[u8],
    spec: &JobSpec,
    limits: &InputLimits,
    options: RenderOptions,
) -> Result<(u32, u32), TransformError> {
    panics::contain(
        || {
            let probed = probe(input, limits)?;
            #[cfg(feature = "turbo")]
            if let Some(size) =
                super::turbo::planar::decode_only(input, &probed, spec, limits, options)?
            {
                return Ok(size);
            }
            Ok(first_canvas(input, &probed, spec, limits, options)?.size())
        },
        TransformError::Internal,
    )
}

/// The general path: one decoded canvas (RGB, luma, with or without alpha), every rendition
/// run on it step by step.
pub(crate) fn render_decoded(
    input: &[u8],
    probed: &Probe,
    spec: &JobSpec,
    limits: &InputLimits,
    options: RenderOptions,
) -> Result<Vec<Rendered>, TransformError> {
    let animate = |r: &Rendition| {
        r.output.animated && encode::can_animate(r.output.resolve_format(probed.format))
    };
    if probed.is_animated() && spec.renditions.iter().any(animate) {
        return render_animated(input, probed, spec, limits, animate);
    }
    let first = first_canvas(input, probed, spec, limits, options)?;
    // Every rendition but the last works on a copy; the last takes the decoded canvas, so a
    // single rendition never holds the decoded image twice.
    let mut first = Some(first);
    let last = spec.renditions.len().saturating_sub(1);
    spec.renditions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let canvas = if i == last {
                first.take()
            } else {
                first.clone()
            };
            let canvas = canvas.ok_or_else(|| TransformError::Decode("no canvas".into()))?;
            render_still(canvas, probed, r)
        })
        .collect()
}

/// The canvas still renditions start from: the decoded image, or an animation's first
/// composited frame.
fn first_canvas(
    input: &[u8],
    probed: &Probe,
    spec: &JobSpec,
    limits: &InputLimits,
    options: RenderOptions,
) -> Result<Canvas, TransformError> {
    if probed.is_animated() {
        let mut frames = animation::open(input, probed.format, limits)?;
        let first = frames
            .next()
            .ok_or_else(|| TransformError::Decode("the animation has no frames".into()))??;
        return Ok(first.canvas);
    }
    let needs = Needs {
        size: &|upright| {
            if options.shrink_on_load {
                plan::needed_size(spec, upright)
            } else {
                None
            }
        },
        luma_only: plan::luma_suffices(spec),
    };
    decode_still(input, probed, limits, needs)
}

fn render_still(
    canvas: Canvas,
    probed: &Probe,
    rendition: &Rendition,
) -> Result<Rendered, TransformError> {
    let canvas = run_steps(canvas, rendition)?;
    let format = rendition.output.resolve_format(probed.format);
    let bytes = encode::encode_still(&canvas.image, format, &rendition.output)?;
    Ok(Rendered {
        bytes: Bytes::from(bytes),
        format,
        width: canvas.image.width(),
        height: canvas.image.height(),
        frames: 1,
        first_frame_only: probed.is_animated(),
    })
}

fn run_steps(mut canvas: Canvas, rendition: &Rendition) -> Result<Canvas, TransformError> {
    for step in rendition.pipeline.steps() {
        canvas = ops::apply(canvas, step)?;
    }
    Ok(canvas)
}

/// What one rendition collects while the frames go by.
struct Collector<'r> {
    rendition: &'r Rendition,
    animate: bool,
    frames: Vec<Frame>,
    pixels: u64,
}

/// Decodes the frames one at a time; each goes through every animated rendition's steps,
/// and the first also through the still ones.
fn render_animated(
    input: &[u8],
    probed: &Probe,
    spec: &JobSpec,
    limits: &InputLimits,
    animate: impl Fn(&Rendition) -> bool,
) -> Result<Vec<Rendered>, TransformError> {
    let mut frames = animation::open(input, probed.format, limits)?;
    let loops = frames.loops;
    let mut collectors: Vec<Collector> = spec
        .renditions
        .iter()
        .map(|r| Collector {
            rendition: r,
            animate: animate(r),
            frames: Vec::new(),
            pixels: 0,
        })
        .collect();
    for (index, frame) in frames.by_ref().enumerate() {
        let DecodedFrame { canvas, delay_ms } = frame?;
        if index as u64 >= u64::from(limits.max_frames) {
            return Err(InputError::TooManyFrames {
                frames: index as u32 + 1,
                limit: limits.max_frames,
            }
            .into());
        }
        for c in collectors.iter_mut().filter(|c| index == 0 || c.animate) {
            let image = run_steps(canvas.clone(), c.rendition)?.image;
            c.pixels += u64::from(image.width()) * u64::from(image.height());
            if c.pixels > limits.max_animation_pixels {
                return Err(InputError::AnimationTooLarge {
                    frames: index as u32 + 1,
                    pixels: c.pixels,
                    limit: limits.max_animation_pixels,
                }
                .into());
            }
            c.frames.push(Frame { image, delay_ms });
        }
    }
    collectors
        .into_iter()
        .map(|c| finish_collector(c, probed, loops))
        .collect()
}

fn finish_collector(
    c: Collector,
    probed: &Probe,
    loops: encode::Loops,
) -> Result<Rendered, TransformError> {
    let format = c.rendition.output.resolve_format(probed.format);
    let first = c
        .frames
        .first()
        .ok_or_else(|| TransformError::Decode("the animation has no frames".into()))?;
    let (width, height) = (first.image.width(), first.image.height());
    let (bytes, frames) = if c.animate && c.frames.len() > 1 {
        let bytes = encode::encode_animation(&c.frames, loops, format, &c.rendition.output)?;
        (bytes, c.frames.len() as u32)
    } else {
        (
            encode::encode_still(&first.image, format, &c.rendition.output)?,
            1,
        )
    };
    Ok(Rendered {
        bytes: Bytes::from(bytes),
        format,
        width,
        height,
        frames,
        first_frame_only: frames == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Fit, Gravity, OutputSpec, Pipeline, Resize, Step};

    fn corpus(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../tests/fixtures/corpus/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    fn steps(steps: Vec<Step>) -> JobSpec {
        JobSpec::single(Pipeline::new(steps).unwrap(), OutputSpec::default())
    }

    fn crop_at(x: u32, y: u32) -> Step {
        Step::Crop(crate::pipeline::Crop {
            x,
            y,
            width: 10,
            height: 10,
        })
    }

    #[test]
    fn a_crop_that_starts_outside_the_canvas_it_cuts_is_refused_before_any_pixel() {
        let bytes = corpus("rocket.jpg");
        let probed = probe(&bytes, &InputLimits::default()).unwrap();
        let (w, h) = probed.upright();
        assert!(check_crops(&probed, &steps(vec![crop_at(w - 1, h - 1)])).is_ok());
        for outside in [crop_at(w, 0), crop_at(0, h)] {
            let error = check_crops(&probed, &steps(vec![outside])).unwrap_err();
            assert_eq!(error.code(), "crop_outside_image", "{error}");
        }
        // The walk follows the geometry: after a resize to 100 px wide, x = 150 is outside
        // although the photo itself is wider.
        let narrow = Step::Resize(Resize {
            width: Some(100),
            height: None,
            fit: Fit::Inside,
            gravity: Gravity::Centre,
            background: None,
            upscale: false,
        });
        assert!(w > 150);
        let error = check_crops(&probed, &steps(vec![narrow, crop_at(150, 0)])).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("the crop at (150,0) lies outside the 100x"),
            "{message}"
        );
        // And rendering refuses it the same way without decoding.
        let error =
            render_all(&bytes, &steps(vec![crop_at(w, 0)]), &InputLimits::default()).unwrap_err();
        assert_eq!(error.code(), "crop_outside_image");
    }

    #[test]
    fn a_turned_file_is_refused_a_crop_only_when_it_misses_both_ways() {
        // Stored 300x100, upright 100x300: decoders disagree on some files' EXIF, so a
        // render may start from either size.
        let probed = Probe {
            format: crate::ImageFormat::Jpeg,
            width: 300,
            height: 100,
            frames: 1,
            turned: true,
        };
        assert!(check_crops(&probed, &steps(vec![crop_at(200, 0)])).is_ok());
        assert!(check_crops(&probed, &steps(vec![crop_at(0, 200)])).is_ok());
        let error = check_crops(&probed, &steps(vec![crop_at(300, 0)])).unwrap_err();
        assert_eq!(error.code(), "crop_outside_image");
    }

    #[test]
    fn steps_that_enlarge_past_the_input_limits_are_refused_before_any_pixel() {
        let bytes = corpus("rocket.jpg");
        let turned = |angle: f32| {
            JobSpec::single(
                Pipeline::new(vec![Step::Rotate(crate::pipeline::Rotate {
                    angle,
                    background: None,
                })])
                .unwrap(),
                OutputSpec::default(),
            )
        };
        let tight = InputLimits {
            max_pixels: 400_000,
            ..InputLimits::default()
        };
        // Under these limits the photo itself fits, and so does a quarter turn of it; a
        // 45-degree turn needs a larger canvas than either.
        let probed = probe(&bytes, &tight).unwrap();
        assert!(u64::from(probed.width) * u64::from(probed.height) <= 400_000);
        assert!(check_result_size(&probed, &turned(90.0), &tight).is_ok());
        let error = render_all(&bytes, &turned(45.0), &tight).unwrap_err();
        assert_eq!(error.code(), "result_too_large", "{error}");
    }

    #[test]
    fn every_rendition_comes_out_in_order() {
        let bytes = corpus("rocket.jpg");
        let thumb = |w| {
            Pipeline::new(vec![Step::Resize(Resize {
                width: Some(w),
                height: None,
                fit: Fit::Inside,
                gravity: Gravity::Centre,
                background: None,
                upscale: false,
            })])
            .unwrap()
        };
        let mut spec = JobSpec::single(thumb(64), OutputSpec::default());
        let mut second = spec.renditions[0].clone();
        second.pipeline = thumb(320);
        second.output.format = Some(ImageFormat::Webp);
        spec.renditions.push(second);
        let out = render_all(&bytes, &spec, &InputLimits::default()).unwrap();
        let sizes: Vec<_> = out.iter().map(|r| (r.format, r.width, r.height)).collect();
        assert_eq!(
            sizes,
            [(ImageFormat::Jpeg, 64, 43), (ImageFormat::Webp, 320, 214)]
        );
    }
}
