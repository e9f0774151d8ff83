//! The planar path: a JPEG decoded to its Y, Cb and Cr planes, resized or blurred plane by
//! plane and encoded from the planes as JPEG or WebP. No RGB image ever exists, so the
//! colour conversion, chroma upsampling and re-subsampling the RGB path does on every
//! pixel are skipped; at 1/2 to 1/4 of the work per pixel this is where pixmill outruns
//! libvips on thumbnails.
//!
//! It takes only what it renders exactly as the RGB path would (within rounding): YCbCr
//! JPEGs with no orientation to apply and no colour profile to convert, whose renditions are
//! resizes that keep the whole picture (`inside`, `fill`) and blurs, written as JPEG below
//! quality 90 (4:2:0, as the RGB path writes) or WebP. Anything else returns `None` before a
//! pixel is decoded and goes the RGB way.

use bytes::Bytes;
use image::metadata::Orientation;
use turbojpeg_sys as tj;

use super::ffi::{plane_size, Handle, PlaneBuffers};
use super::planes::{Plane, Planes};
use super::webp_planes;
use crate::format::ImageFormat;
use crate::pipeline::{Fit, JobSpec, OutputSpec, Rendition, Step};
use crate::transform::decode::jpeg_markers;
use crate::transform::ops::resize;
use crate::transform::render::{RenderOptions, Rendered};
use crate::transform::{color, plan, InputLimits, Probe, TransformError};

/// Renders every rendition of `spec` through the planes, or returns `None` (nothing
/// decoded) when some part of the job needs the RGB path.
pub(crate) fn try_render(
    input: &[u8],
    probed: &Probe,
    spec: &JobSpec,
    limits: &InputLimits,
    options: RenderOptions,
) -> Result<Option<Vec<Rendered>>, TransformError> {
    if probed.format != ImageFormat::Jpeg || probed.is_animated() {
        return Ok(None);
    }
    if spec.renditions.is_empty() || !spec.renditions.iter().all(planar_rendition) {
        return Ok(None);
    }
    let Some(planes) = decode(input, spec, limits, options)? else {
        return Ok(None);
    };
    // Every rendition but the last works on a copy, as in `render_all`.
    let mut planes = Some(planes);
    let last = spec.renditions.len() - 1;
    let mut out = Vec::with_capacity(spec.renditions.len());
    for (i, rendition) in spec.renditions.iter().enumerate() {
        let start = if i == last {
            planes.take()
        } else {
            planes.clone()
        };
        let start = start.ok_or_else(|| TransformError::Internal("no planes".into()))?;
        out.push(render(start, rendition)?);
    }
    Ok(Some(out))
}

/// True when `rendition` is something the planes render exactly.
fn planar_rendition(rendition: &Rendition) -> bool {
    let steps_ok = rendition.pipeline.steps().iter().all(|step| match step {
        Step::Resize(r) => matches!(r.fit, Fit::Inside | Fit::Fill),
        Step::Blur { .. } => true,
        _ => false,
    });
    let output_ok = match rendition.output.resolve_format(ImageFormat::Jpeg) {
        ImageFormat::Jpeg => quality(&rendition.output) < 90,
        ImageFormat::Webp => true,
        _ => false,
    };
    steps_ok && output_ok
}

fn quality(output: &OutputSpec) -> u8 {
    output
        .quality
        .unwrap_or(OutputSpec::DEFAULT_QUALITY)
        .clamp(1, 100)
}

/// Decodes the planes at the smallest DCT scale every rendition allows, or `None` for a
/// file the planes cannot stand for (a profile, an orientation, CMYK, RGB or grey coding).
fn decode(
    input: &[u8],
    spec: &JobSpec,
    limits: &InputLimits,
    options: RenderOptions,
) -> Result<Option<Planes>, TransformError> {
    let markers = jpeg_markers(input, limits)?;
    let srgb = markers.icc.as_deref().is_none_or(color::is_srgb_equivalent);
    if markers.orientation != Orientation::NoTransforms || !srgb {
        return Ok(None);
    }
    let mut decoder = Handle::decompressor()?;
    let header = decoder.read_header(input)?;
    let subsampled = ![tj::TJSAMP_TJSAMP_GRAY, tj::TJSAMP_TJSAMP_UNKNOWN].contains(&header.subsamp);
    let ycbcr = header.colorspace == tj::TJCS_TJCS_YCbCr as i32;
    if header.lossless || header.precision != 8 || !ycbcr || !subsampled {
        return Ok(None);
    }
    let full = markers.full;
    let eighths = match options
        .shrink_on_load
        .then(|| plan::needed_size(spec, full))
        .flatten()
    {
        Some(needed) => crate::transform::decode::dct_scale(full, needed),
        None => 8,
    };
    decoder.set_scale(eighths)?;
    let size = crate::transform::decode::dct_scaled(full, eighths);

    let mut sizes = [(0, 0); 3];
    for (component, slot) in sizes.iter_mut().enumerate() {
        *slot = plane_size(component, size, header.subsamp)?;
    }
    let total: usize = sizes.iter().map(|(w, h)| w * h).sum();
    if total as u64 > limits.max_decode_bytes() {
        return Err(TransformError::Decode(
            "the decoded image would be too large".into(),
        ));
    }
    let mut buffers = sizes.map(|(w, h)| vec![0u8; w * h]);
    {
        let [y, u, v] = &mut buffers;
        let planes = PlaneBuffers {
            planes: [y.as_mut_slice(), u.as_mut_slice(), v.as_mut_slice()],
            widths: sizes.map(|(w, _)| w),
        };
        decoder.decode_planes(input, planes)?;
    }
    let [y, cb, cr] = buffers;
    let plane = |data, (w, h): (usize, usize)| Plane {
        data,
        width: w as u32,
        height: h as u32,
    };
    // TurboJPEG pads the luma plane of a scaled decode to whole chroma blocks; the picture
    // is `size`, and the encoders are given exactly that.
    let y = crop_luma(plane(y, sizes[0]), size);
    Ok(Some(Planes {
        y,
        cb: plane(cb, sizes[1]),
        cr: plane(cr, sizes[2]),
        logical: full,
    }))
}

/// Drops padding columns and rows beyond `size` from a luma plane.
fn crop_luma(plane: Plane, (w, h): (u32, u32)) -> Plane {
    if (plane.width, plane.height) == (w, h) {
        return plane;
    }
    let stride = plane.width as usize;
    let data = plane
        .data
        .chunks_exact(stride)
        .take(h as usize)
        .flat_map(|row| &row[..w as usize])
        .copied()
        .collect();
    Plane {
        data,
        width: w,
        height: h,
    }
}

fn render(mut planes: Planes, rendition: &Rendition) -> Result<Rendered, TransformError> {
    for step in rendition.pipeline.steps() {
        planes = match step {
            Step::Resize(r) => {
                let target = resize::geometry(r, planes.logical).scaled;
                planes.resize(target)?
            }
            Step::Blur { sigma } => planes.blur(*sigma)?,
            other => {
                return Err(TransformError::Internal(format!(
                    "the planar path cannot run {other:?}"
                )))
            }
        };
    }
    let planes = planes.into_420()?;
    let format = rendition.output.resolve_format(ImageFormat::Jpeg);
    let q = quality(&rendition.output);
    let bytes = match format {
        ImageFormat::Webp => webp_planes::encode(&planes, q)?,
        _ => {
            let size = (planes.y.width, planes.y.height);
            let (pw, ph) = plane_size(0, size, tj::TJSAMP_TJSAMP_420)?;
            let y = planes.y.padded((pw as u32, ph as u32));
            let (cb, cr) = (&planes.cb, &planes.cr);
            Handle::compressor()?.encode_planes(
                [&y.data, &cb.data, &cr.data],
                [y.width as usize, cb.width as usize, cr.width as usize],
                size,
                q,
                tj::TJSAMP_TJSAMP_420,
            )?
        }
    };
    Ok(Rendered {
        bytes: Bytes::from(bytes),
        format,
        width: planes.y.width,
        height: planes.y.height,
        frames: 1,
        first_frame_only: false,
    })
}
