use std::io::Cursor;

use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use super::probe::{check_dimensions, probe, to_image_format};
use super::{InputLimits, TransformError};
use crate::format::ImageFormat;
use crate::pipeline::{Fit, JobSpec, OutputSpec, Rendition, Step};

/// One encoded rendition.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub bytes: Bytes,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub first_frame_only: bool,
}

/// Decodes `input` once and renders every rendition of `spec`, in order.
pub fn render_all(
    input: &[u8],
    spec: &JobSpec,
    limits: &InputLimits,
) -> Result<Vec<Rendered>, TransformError> {
    let probed = probe(input, limits)?;
    let image = decode(input, probed.format, limits)?;
    spec.renditions
        .iter()
        .map(|r| render(&image, probed.format, r))
        .collect()
}

fn decode(
    input: &[u8],
    format: ImageFormat,
    limits: &InputLimits,
) -> Result<DynamicImage, TransformError> {
    let mut reader = ImageReader::with_format(Cursor::new(input), to_image_format(format));
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_width);
    decoder_limits.max_image_height = Some(limits.max_height);
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(decoder_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| TransformError::Decode(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    check_dimensions(w, h, limits)?;
    let orientation = decoder
        .orientation()
        .map_err(|e| TransformError::Decode(e.to_string()))?;
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| TransformError::Decode(e.to_string()))?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn render(
    image: &DynamicImage,
    input_format: ImageFormat,
    rendition: &Rendition,
) -> Result<Rendered, TransformError> {
    let mut current = image.clone();
    for step in rendition.pipeline.steps() {
        current = apply(current, step)?;
    }
    let format = rendition.output.resolve_format(input_format);
    let bytes = encode(&current, format, &rendition.output)?;
    Ok(Rendered {
        bytes: Bytes::from(bytes),
        format,
        width: current.width(),
        height: current.height(),
        frames: 1,
        first_frame_only: false,
    })
}

fn apply(image: DynamicImage, step: &Step) -> Result<DynamicImage, TransformError> {
    match step {
        Step::Resize(r) if r.fit == Fit::Inside => {
            let (w, h) = fit_inside(image.width(), image.height(), r.width, r.height, r.upscale);
            if (w, h) == (image.width(), image.height()) {
                return Ok(image);
            }
            Ok(image.resize_exact(w, h, image::imageops::FilterType::Lanczos3))
        }
        Step::Grayscale => Ok(if image.color().has_alpha() {
            DynamicImage::ImageLumaA8(image.to_luma_alpha8())
        } else {
            DynamicImage::ImageLuma8(image.to_luma8())
        }),
        other => Err(TransformError::Unsupported(format!(
            "{other:?} is not implemented yet"
        ))),
    }
}

/// The size that fits inside the box keeping the aspect ratio; never 0 on a side.
fn fit_inside(w: u32, h: u32, max_w: Option<u32>, max_h: Option<u32>, upscale: bool) -> (u32, u32) {
    let sx = max_w
        .map(|m| f64::from(m) / f64::from(w))
        .unwrap_or(f64::INFINITY);
    let sy = max_h
        .map(|m| f64::from(m) / f64::from(h))
        .unwrap_or(f64::INFINITY);
    let mut scale = sx.min(sy);
    if !upscale {
        scale = scale.min(1.0);
    }
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    (side(w), side(h))
}

fn encode(
    image: &DynamicImage,
    format: ImageFormat,
    output: &OutputSpec,
) -> Result<Vec<u8>, TransformError> {
    let encode_err = |e: image::ImageError| TransformError::Encode {
        format,
        reason: e.to_string(),
    };
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => {
            let quality = output.quality.unwrap_or(OutputSpec::DEFAULT_QUALITY);
            let flat = flatten_for_jpeg(image, output);
            JpegEncoder::new_with_quality(&mut out, quality)
                .encode_image(&flat)
                .map_err(encode_err)?;
        }
        ImageFormat::Png => {
            image
                .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
                .map_err(encode_err)?;
        }
        other => {
            return Err(TransformError::Unsupported(format!(
                "{other} output is not implemented yet"
            )))
        }
    }
    Ok(out)
}

/// JPEG has no alpha: composite onto the background (white unless given), never onto black.
fn flatten_for_jpeg(image: &DynamicImage, output: &OutputSpec) -> DynamicImage {
    if !image.color().has_alpha() {
        return match image {
            DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => image.clone(),
            DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma8(image.to_luma8()),
            _ => DynamicImage::ImageRgb8(image.to_rgb8()),
        };
    }
    let [br, bg, bb] = output.background.unwrap_or(crate::pipeline::Rgb::WHITE).0;
    let rgba = image.to_rgba8();
    let mut flat = image::RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in flat.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        let mix = |c: u8, b: u8| ((u32::from(c) * a + u32::from(b) * (255 - a) + 127) / 255) as u8;
        *dst = image::Rgb([mix(src[0], br), mix(src[1], bg), mix(src[2], bb)]);
    }
    DynamicImage::ImageRgb8(flat)
}
