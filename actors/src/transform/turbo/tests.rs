//! The planar path against the general (RGB) path on the same files and jobs: same sizes,
//! pixels within rounding, and every file it cannot render exactly left to the RGB path.

use image::{DynamicImage, GenericImageView};

use super::planar::try_render;
use crate::format::ImageFormat;
use crate::pipeline::{Fit, Gravity, JobSpec, OutputSpec, Pipeline, Resize, Step};
use crate::transform::render::{render_decoded, RenderOptions, Rendered};
use crate::transform::{probe, InputLimits};

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/{dir}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn resize(width: u32, height: Option<u32>, fit: Fit) -> Step {
    Step::Resize(Resize {
        width: Some(width),
        height,
        fit,
        gravity: Gravity::Centre,
        background: None,
        upscale: false,
    })
}

fn job(steps: Vec<Step>, format: Option<ImageFormat>) -> JobSpec {
    let output = OutputSpec {
        format,
        ..OutputSpec::default()
    };
    JobSpec::single(Pipeline::new(steps).unwrap(), output)
}

/// The planar result, the RGB path's result, and the RGB path's picture before lossy
/// encoding (the same job written as PNG): what both encodes should be close to.
fn both_paths(
    bytes: &[u8],
    spec: &JobSpec,
    options: RenderOptions,
) -> (Rendered, Rendered, Rendered) {
    let limits = InputLimits::default();
    let probed = probe(bytes, &limits).unwrap();
    let planar = try_render(bytes, &probed, spec, &limits, options)
        .unwrap()
        .expect("the planar path takes this job");
    let rgb = render_decoded(bytes, &probed, spec, &limits, options).unwrap();
    let mut lossless = spec.clone();
    lossless.renditions[0].output.format = Some(ImageFormat::Png);
    let truth = render_decoded(bytes, &probed, &lossless, &limits, options).unwrap();
    let first = |v: Vec<Rendered>| v.into_iter().next().unwrap();
    (first(planar), first(rgb), first(truth))
}

fn decoded(r: &Rendered) -> DynamicImage {
    image::load_from_memory(&r.bytes).unwrap()
}

/// Mean absolute difference per RGB sample.
fn mean_difference(a: &DynamicImage, b: &DynamicImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let (a, b) = (a.to_rgb8(), b.to_rgb8());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn planar_results_match_the_rgb_path() {
    let photos = [
        ("made", "4:4:4"),
        ("corpus", "Bridge_by_Sander_Klootwijk.jpg"),
        ("cases", "odd_420.jpg"),
        ("cases", "progressive_dri.jpg"),
    ];
    let jobs = [
        ("thumbnail", job(vec![resize(300, None, Fit::Inside)], None)),
        (
            "webp",
            job(
                vec![resize(301, None, Fit::Inside)],
                Some(ImageFormat::Webp),
            ),
        ),
        ("fill", job(vec![resize(200, Some(77), Fit::Fill)], None)),
        ("blur", job(vec![Step::Blur { sigma: 2.0 }], None)),
        (
            "resize then blur",
            job(
                vec![resize(250, None, Fit::Inside), Step::Blur { sigma: 1.5 }],
                None,
            ),
        ),
    ];
    for (dir, name) in photos {
        let bytes = match dir {
            "made" => jpeg_444(),
            _ => fixture(dir, name),
        };
        for (what, spec) in &jobs {
            for shrink_on_load in [true, false] {
                let options = RenderOptions { shrink_on_load };
                let (planar, rgb, truth) = both_paths(&bytes, spec, options);
                assert_eq!(
                    (planar.format, planar.width, planar.height),
                    (rgb.format, rgb.width, rgb.height),
                    "{name} {what}"
                );
                let truth = decoded(&truth);
                let planar_error = mean_difference(&decoded(&planar), &truth);
                let rgb_error = mean_difference(&decoded(&rgb), &truth);
                // The planes skip two colour conversions and resample chroma once, so their
                // result is as close to the true picture as the RGB path's, give or take
                // rounding.
                assert!(
                    planar_error <= rgb_error * 1.15 + 0.3,
                    "{name} {what} shrink={shrink_on_load}: planar {planar_error:.2}, rgb {rgb_error:.2}"
                );
            }
        }
    }
}

/// A 4:4:4 JPEG (quality 95 keeps full-resolution chroma) made from a PNG photo.
fn jpeg_444() -> Vec<u8> {
    let spec = JobSpec::single(
        Pipeline::new(vec![]).unwrap(),
        OutputSpec {
            format: Some(ImageFormat::Jpeg),
            quality: Some(95),
            ..OutputSpec::default()
        },
    );
    let png = fixture("corpus", "astronaut.png");
    let out = crate::transform::render_all(&png, &spec, &InputLimits::default()).unwrap();
    out[0].bytes.to_vec()
}

#[test]
fn files_the_planes_cannot_stand_for_take_the_rgb_path() {
    let limits = InputLimits::default();
    let spec = job(vec![resize(64, None, Fit::Inside)], None);
    // rocket.jpg carries an Adobe RGB profile; the others an orientation, a P3 profile, CMYK.
    let files = [
        ("corpus", "rocket.jpg"),
        ("cases", "exif_orient6.jpg"),
        ("cases", "display_p3.jpg"),
        ("cases", "cmyk_adobe.jpg"),
    ];
    for (dir, name) in files {
        let bytes = fixture(dir, name);
        let probed = probe(&bytes, &limits).unwrap();
        let taken = try_render(&bytes, &probed, &spec, &limits, RenderOptions::default()).unwrap();
        assert!(taken.is_none(), "{name} must go the RGB way");
    }
}

#[test]
fn jobs_the_planes_cannot_render_take_the_rgb_path() {
    let limits = InputLimits::default();
    let bytes = fixture("cases", "odd_420.jpg");
    let probed = probe(&bytes, &limits).unwrap();
    let jobs = [
        job(vec![Step::Grayscale], None),
        job(vec![resize(64, Some(64), Fit::Cover)], None),
        job(vec![resize(64, None, Fit::Inside)], Some(ImageFormat::Png)),
        JobSpec::single(
            Pipeline::new(vec![resize(64, None, Fit::Inside)]).unwrap(),
            OutputSpec {
                quality: Some(95),
                ..OutputSpec::default()
            },
        ),
    ];
    for spec in jobs {
        let taken = try_render(&bytes, &probed, &spec, &limits, RenderOptions::default()).unwrap();
        assert!(taken.is_none(), "{spec:?}");
    }
}

#[test]
fn a_planar_thumbnail_is_decoded_at_a_reduced_scale_yet_sized_from_the_full_image() {
    // Bridge is 4352x2448: 1/4 scale (1088 wide) still covers an 800 px thumbnail.
    let bytes = fixture("corpus", "Bridge_by_Sander_Klootwijk.jpg");
    let spec = job(vec![resize(800, None, Fit::Inside)], None);
    let (planar, _, _) = both_paths(&bytes, &spec, RenderOptions::default());
    assert_eq!((planar.width, planar.height), (800, 450));
}
