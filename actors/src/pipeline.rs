//! What a user asked to be done to an image: validated steps and output options.
//!
//! These are the engine's own types. The HTTP API parses its request documents into them, so
//! every value here has already passed validation by [`Step::validate`].

use serde::{Deserialize, Serialize};

use crate::format::ImageFormat;
use crate::ids::VariantName;

/// The largest side a step may ask for; matches the default input limit.
pub const MAX_SIDE: u32 = 16_384;
/// At most this many steps in one pipeline.
pub const MAX_STEPS: usize = 32;

/// An sRGB colour, used for padding, rotation corners and flattening alpha.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rgb(pub [u8; 3]);

impl Rgb {
    pub const WHITE: Rgb = Rgb([255, 255, 255]);

    /// Parses `#rrggbb`, `rrggbb` or `#rgb`.
    pub fn parse_hex(raw: &str) -> Result<Self, StepError> {
        let hex = raw.strip_prefix('#').unwrap_or(raw);
        // Only hex digits: the slicing below counts bytes, so a multi-byte character would
        // cut a char in two (a panic), and `from_str_radix` would take a `+` sign.
        let digits = hex.bytes().all(|b| b.is_ascii_hexdigit());
        let expanded: String = match hex.len() {
            3 if digits => hex.chars().flat_map(|c| [c, c]).collect(),
            6 if digits => hex.to_owned(),
            _ => {
                return Err(StepError::new(
                    "background",
                    "must be a hex colour like #ffffff",
                ))
            }
        };
        let channel = |i: usize| {
            u8::from_str_radix(&expanded[i..i + 2], 16)
                .map_err(|_| StepError::new("background", "must be a hex colour like #ffffff"))
        };
        Ok(Rgb([channel(0)?, channel(2)?, channel(4)?]))
    }
}

/// How a resize fits the image into the requested box.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Scale to fit inside the box, keeping the aspect ratio.
    #[default]
    Inside,
    /// Scale to cover the box, then crop to it.
    Cover,
    /// Scale to fit inside, then pad to the box with the background.
    Contain,
    /// Stretch to exactly the box.
    Fill,
}

/// Which part of the image a `cover` crop keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gravity {
    #[default]
    Centre,
    North,
    South,
    East,
    West,
    /// The window with the most detail (highest luminance entropy).
    Entropy,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resize {
    pub width: Option<u32>,
    pub height: Option<u32>,
    #[serde(default)]
    pub fit: Fit,
    #[serde(default)]
    pub gravity: Gravity,
    pub background: Option<Rgb>,
    #[serde(default)]
    pub upscale: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rotate {
    /// Degrees clockwise. Multiples of 90 are exact; other angles expand the canvas and fill
    /// the corners with `background`.
    pub angle: f32,
    pub background: Option<Rgb>,
}

/// One operation. Steps run in order, after the EXIF orientation has been applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Step {
    Resize(Resize),
    Crop(Crop),
    Rotate(Rotate),
    /// Mirror top to bottom.
    Flip,
    /// Mirror left to right.
    Flop,
    Grayscale,
    Blur {
        sigma: f32,
    },
    Sharpen {
        sigma: f32,
        amount: f32,
    },
    /// Additive brightness, -100 (black) to 100 (white).
    Brightness {
        value: f32,
    },
    /// Contrast change in percent, -100 to 100.
    Contrast {
        value: f32,
    },
}

/// A step whose parameters are out of range; `field` names the offending parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct StepError {
    pub field: String,
    pub message: String,
}

impl StepError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn check_side(field: &str, side: Option<u32>) -> Result<(), StepError> {
    match side {
        Some(0) => Err(StepError::new(field, "must be at least 1")),
        Some(s) if s > MAX_SIDE => {
            Err(StepError::new(field, format!("must be at most {MAX_SIDE}")))
        }
        _ => Ok(()),
    }
}

fn check_range(field: &str, value: f32, min: f32, max: f32) -> Result<(), StepError> {
    if !value.is_finite() || value < min || value > max {
        return Err(StepError::new(
            field,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

impl Step {
    pub fn validate(&self) -> Result<(), StepError> {
        match self {
            Step::Resize(r) => {
                if r.width.is_none() && r.height.is_none() {
                    return Err(StepError::new("resize", "needs width, height or both"));
                }
                check_side("resize.width", r.width)?;
                check_side("resize.height", r.height)?;
                let needs_both = matches!(r.fit, Fit::Cover | Fit::Contain | Fit::Fill);
                if needs_both && (r.width.is_none() || r.height.is_none()) {
                    return Err(StepError::new(
                        "resize.fit",
                        "cover, contain and fill need both width and height",
                    ));
                }
                Ok(())
            }
            Step::Crop(c) => {
                check_side("crop.width", Some(c.width))?;
                check_side("crop.height", Some(c.height))
            }
            Step::Rotate(r) => check_range("rotate.angle", r.angle, -360.0, 360.0),
            Step::Blur { sigma } => check_range("blur.sigma", *sigma, 0.1, 100.0),
            Step::Sharpen { sigma, amount } => {
                check_range("sharpen.sigma", *sigma, 0.1, 20.0)?;
                check_range("sharpen.amount", *amount, 0.0, 10.0)
            }
            Step::Brightness { value } => check_range("brightness.value", *value, -100.0, 100.0),
            Step::Contrast { value } => check_range("contrast.value", *value, -100.0, 100.0),
            Step::Flip | Step::Flop | Step::Grayscale => Ok(()),
        }
    }
}

/// A validated list of steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pipeline(Vec<Step>);

impl Pipeline {
    pub fn new(steps: Vec<Step>) -> Result<Self, StepError> {
        if steps.len() > MAX_STEPS {
            return Err(StepError::new(
                "steps",
                format!("at most {MAX_STEPS} steps"),
            ));
        }
        for (index, step) in steps.iter().enumerate() {
            step.validate()
                .map_err(|e| StepError::new(format!("steps[{index}].{}", e.field), e.message))?;
        }
        Ok(Self(steps))
    }

    /// The pipeline used when an upload names no steps: fit inside 1024x1024.
    pub fn default_thumbnail() -> Self {
        Self(vec![Step::Resize(Resize {
            width: Some(1024),
            height: Some(1024),
            fit: Fit::Inside,
            gravity: Gravity::Centre,
            background: None,
            upscale: false,
        })])
    }

    pub fn steps(&self) -> &[Step] {
        &self.0
    }
}

/// Encoding options for one rendition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// `None` keeps the input's format where it can be written, else JPEG.
    pub format: Option<ImageFormat>,
    /// 1-100, for lossy formats; `None` means the encoder's default (80).
    pub quality: Option<u8>,
    /// Colour that alpha is flattened onto when the output has no alpha channel.
    pub background: Option<Rgb>,
    /// Keep every frame of an animated input (GIF, WebP) when the output format can hold them.
    #[serde(default)]
    pub animated: bool,
}

impl OutputSpec {
    pub const DEFAULT_QUALITY: u8 = 80;

    /// The format actually written for an input of `input` format.
    pub fn resolve_format(&self, input: ImageFormat) -> ImageFormat {
        match self.format {
            Some(f) => f,
            None if input.is_writable() => input,
            None => ImageFormat::Jpeg,
        }
    }
}

/// One output of a job: its steps and encoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    pub name: VariantName,
    pub pipeline: Pipeline,
    pub output: OutputSpec,
}

/// Everything a worker needs to know to render an upload: the primary rendition first, then
/// any named variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub renditions: Vec<Rendition>,
}

impl JobSpec {
    pub fn single(pipeline: Pipeline, output: OutputSpec) -> Self {
        Self {
            renditions: vec![Rendition {
                name: VariantName::main(),
                pipeline,
                output,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_from_the_documented_json() {
        let steps: Vec<Step> =
            serde_json::from_str(r#"[{"op":"resize","width":800},{"op":"grayscale"}]"#).unwrap();
        let pipeline = Pipeline::new(steps).unwrap();
        assert_eq!(pipeline.steps().len(), 2);
        assert!(
            matches!(&pipeline.steps()[0], Step::Resize(r) if r.width == Some(800) && r.fit == Fit::Inside)
        );
    }

    #[test]
    fn invalid_steps_name_their_field() {
        let err = Pipeline::new(vec![Step::Blur { sigma: -1.0 }]).unwrap_err();
        assert_eq!(err.field, "steps[0].blur.sigma");
        let err = Pipeline::new(vec![Step::Resize(Resize {
            width: Some(0),
            height: None,
            fit: Fit::Inside,
            gravity: Gravity::Centre,
            background: None,
            upscale: false,
        })])
        .unwrap_err();
        assert_eq!(err.field, "steps[0].resize.width");
    }

    #[test]
    fn hex_colours_parse() {
        assert_eq!(Rgb::parse_hex("#ff8000").unwrap(), Rgb([255, 128, 0]));
        assert_eq!(Rgb::parse_hex("fff").unwrap(), Rgb::WHITE);
        assert!(Rgb::parse_hex("#12345").is_err());
        assert!(Rgb::parse_hex("zzzzzz").is_err());
        // Six bytes, but not six characters: refused, not a panic.
        assert!(Rgb::parse_hex("a\u{e9}\u{e9}a").is_err());
        assert!(Rgb::parse_hex("+f+f+f").is_err());
    }

    #[test]
    fn default_output_keeps_writable_input_formats() {
        let spec = OutputSpec::default();
        assert_eq!(spec.resolve_format(ImageFormat::Png), ImageFormat::Png);
        assert_eq!(spec.resolve_format(ImageFormat::Tiff), ImageFormat::Jpeg);
    }
}
