//! The `steps` of an upload as the spec documents them, and their translation into the
//! engine's validated [`Pipeline`].

use pixmill_actors::pipeline::{
    Crop, Fit, Gravity, Resize, Rgb, Rotate, StepError, MAX_SIDE, MAX_STEPS,
};
use pixmill_actors::{Pipeline, Step};
use poem_openapi::{Enum, Object, Union};

/// How `resize` fits the image into `width` x `height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum FitParam {
    /// Fit inside the box, keeping the aspect ratio (default).
    Inside,
    /// Cover the box, then crop to it (see `gravity`).
    Cover,
    /// Fit inside, then pad to the box with `background`.
    Contain,
    /// Stretch to exactly the box.
    Fill,
}

/// Which part a `cover` crop keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum GravityParam {
    Centre,
    North,
    South,
    East,
    West,
    /// The most detailed region.
    Entropy,
}

/// Scale the image. Never enlarges unless `upscale` is true; never produces a 0-pixel side.
#[derive(Debug, Clone, Object)]
pub struct ResizeStep {
    #[oai(validator(minimum(value = "1"), maximum(value = "16384")))]
    pub width: Option<u32>,
    #[oai(validator(minimum(value = "1"), maximum(value = "16384")))]
    pub height: Option<u32>,
    pub fit: Option<FitParam>,
    pub gravity: Option<GravityParam>,
    /// Padding colour for `contain`, as `#rrggbb` (or `#rgb`).
    #[oai(validator(pattern = r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"))]
    pub background: Option<String>,
    /// Allow enlarging (default false).
    pub upscale: Option<bool>,
}

/// Cut out a rectangle of the image the earlier steps leave: one that runs past an edge
/// keeps the part inside; one that starts outside it is refused at upload (`422
/// crop_outside_image`).
#[derive(Debug, Clone, Object)]
pub struct CropStep {
    pub x: u32,
    pub y: u32,
    #[oai(validator(minimum(value = "1"), maximum(value = "16384")))]
    pub width: u32,
    #[oai(validator(minimum(value = "1"), maximum(value = "16384")))]
    pub height: u32,
}

/// Rotate clockwise by `angle` degrees. Multiples of 90 are exact; other angles enlarge the
/// canvas and fill the corners with `background`.
#[derive(Debug, Clone, Object)]
pub struct RotateStep {
    #[oai(validator(minimum(value = "-360"), maximum(value = "360")))]
    pub angle: f32,
    /// Colour of the corners, as `#rrggbb` (or `#rgb`).
    #[oai(validator(pattern = r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"))]
    pub background: Option<String>,
}

/// Gaussian blur.
#[derive(Debug, Clone, Object)]
pub struct BlurStep {
    #[oai(validator(minimum(value = "0.1"), maximum(value = "100")))]
    pub sigma: f32,
}

/// Unsharp mask.
#[derive(Debug, Clone, Object)]
pub struct SharpenStep {
    #[oai(validator(minimum(value = "0.1"), maximum(value = "20")))]
    pub sigma: f32,
    #[oai(validator(minimum(value = "0"), maximum(value = "10")))]
    pub amount: f32,
}

/// Brightness change, -100 (black) to 100 (white).
#[derive(Debug, Clone, Object)]
pub struct BrightnessStep {
    #[oai(validator(minimum(value = "-100"), maximum(value = "100")))]
    pub value: f32,
}

/// Contrast change in percent, -100 to 100.
#[derive(Debug, Clone, Object)]
pub struct ContrastStep {
    #[oai(validator(minimum(value = "-100"), maximum(value = "100")))]
    pub value: f32,
}

// The steps without parameters each have a type of their own, though all are empty:
// poem-openapi names a variant's schema after its type and gives it the `op` of the last
// variant that uses it, so one shared type made `flip` and `flop` invalid in the spec.

/// Mirror top to bottom; no parameters.
#[derive(Debug, Clone, Object)]
pub struct FlipStep {}

/// Mirror left to right; no parameters.
#[derive(Debug, Clone, Object)]
pub struct FlopStep {}

/// To shades of grey; no parameters.
#[derive(Debug, Clone, Object)]
pub struct GrayscaleStep {}

/// One operation; `op` names it. Steps run in order, after EXIF orientation is applied. A
/// field the op does not take is refused (`invalid_steps`), not ignored.
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "op")]
pub enum StepRequest {
    #[oai(mapping = "resize")]
    Resize(ResizeStep),
    #[oai(mapping = "crop")]
    Crop(CropStep),
    #[oai(mapping = "rotate")]
    Rotate(RotateStep),
    #[oai(mapping = "flip")]
    Flip(FlipStep),
    #[oai(mapping = "flop")]
    Flop(FlopStep),
    #[oai(mapping = "grayscale")]
    Grayscale(GrayscaleStep),
    #[oai(mapping = "blur")]
    Blur(BlurStep),
    #[oai(mapping = "sharpen")]
    Sharpen(SharpenStep),
    #[oai(mapping = "brightness")]
    Brightness(BrightnessStep),
    #[oai(mapping = "contrast")]
    Contrast(ContrastStep),
}

fn colour(field: &str, raw: &Option<String>) -> Result<Option<Rgb>, StepError> {
    raw.as_deref()
        .map(|hex| Rgb::parse_hex(hex).map_err(|e| StepError::new(field, e.message)))
        .transpose()
}

impl StepRequest {
    fn to_step(&self) -> Result<Step, StepError> {
        Ok(match self {
            Self::Resize(r) => Step::Resize(Resize {
                width: r.width,
                height: r.height,
                fit: match r.fit.unwrap_or(FitParam::Inside) {
                    FitParam::Inside => Fit::Inside,
                    FitParam::Cover => Fit::Cover,
                    FitParam::Contain => Fit::Contain,
                    FitParam::Fill => Fit::Fill,
                },
                gravity: match r.gravity.unwrap_or(GravityParam::Centre) {
                    GravityParam::Centre => Gravity::Centre,
                    GravityParam::North => Gravity::North,
                    GravityParam::South => Gravity::South,
                    GravityParam::East => Gravity::East,
                    GravityParam::West => Gravity::West,
                    GravityParam::Entropy => Gravity::Entropy,
                },
                background: colour("resize.background", &r.background)?,
                upscale: r.upscale.unwrap_or(false),
            }),
            Self::Crop(c) => Step::Crop(Crop {
                x: c.x,
                y: c.y,
                width: c.width,
                height: c.height,
            }),
            Self::Rotate(r) => Step::Rotate(Rotate {
                angle: r.angle,
                background: colour("rotate.background", &r.background)?,
            }),
            Self::Flip(_) => Step::Flip,
            Self::Flop(_) => Step::Flop,
            Self::Grayscale(_) => Step::Grayscale,
            Self::Blur(b) => Step::Blur { sigma: b.sigma },
            Self::Sharpen(s) => Step::Sharpen {
                sigma: s.sigma,
                amount: s.amount,
            },
            Self::Brightness(b) => Step::Brightness { value: b.value },
            Self::Contrast(c) => Step::Contrast { value: c.value },
        })
    }
}

/// Validates the steps into a pipeline; errors name the step (`steps[1].blur.sigma`).
pub fn to_pipeline(steps: &[StepRequest]) -> Result<Pipeline, StepError> {
    if steps.len() > MAX_STEPS {
        return Err(StepError::new(
            "steps",
            format!("at most {MAX_STEPS} steps"),
        ));
    }
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.to_step()
                .map_err(|e| StepError::new(format!("steps[{i}].{}", e.field), e.message))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Pipeline::new(steps)
}

/// For the spec: the largest side any step may ask for.
pub const MAX_STEP_SIDE: u32 = MAX_SIDE;
