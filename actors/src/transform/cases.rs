//! The real-world problem files of `tests/fixtures/cases/CASES.md`, each asserting its
//! "automatic check" column at the kernel level. Cases whose outcome is an HTTP status
//! assert the [`InputError`] and its code; the gateway maps `empty_upload` to 400,
//! `unsupported_media_type` to 415 and `image_dimensions_exceed_limit`, `truncated_image`
//! and `corrupt_image` to 422.

use image::{AnimationDecoder, DynamicImage, Rgba, RgbaImage};

use super::{probe, render_all, InputError, InputLimits, Rendered, TransformError};
use crate::format::ImageFormat;
use crate::pipeline::{Fit, Gravity, JobSpec, OutputSpec, Pipeline, Resize, Step};

fn case(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/cases/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn thumb(width: u32, height: u32) -> Step {
    Step::Resize(Resize {
        width: Some(width),
        height: Some(height),
        fit: Fit::Inside,
        gravity: Gravity::Centre,
        background: None,
        upscale: false,
    })
}

fn output(format: Option<ImageFormat>) -> OutputSpec {
    OutputSpec {
        format,
        ..OutputSpec::default()
    }
}

fn render(name: &str, steps: Vec<Step>, output: OutputSpec) -> Rendered {
    let spec = JobSpec::single(Pipeline::new(steps).unwrap(), output);
    let mut all = render_all(&case(name), &spec, &InputLimits::default()).unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn refusal(name: &str) -> InputError {
    let bytes = case(name);
    let probed = probe(&bytes, &InputLimits::default()).unwrap_err();
    let spec = JobSpec::single(Pipeline::default_thumbnail(), OutputSpec::default());
    let rendered = render_all(&bytes, &spec, &InputLimits::default()).unwrap_err();
    assert_eq!(
        rendered,
        TransformError::Input(probed.clone()),
        "render_all agrees with probe"
    );
    probed
}

fn pixels(r: &Rendered) -> RgbaImage {
    let decoded = image::load_from_memory(&r.bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (r.width, r.height));
    decoded.to_rgba8()
}

fn near(image: &RgbaImage, (x, y): (u32, u32), rgb: [u8; 3], tolerance: u8) -> bool {
    let p = image.get_pixel(x, y);
    let ok = (0..3).all(|c| p[c].abs_diff(rgb[c]) <= tolerance);
    if !ok {
        eprintln!("({x},{y}) is {:?}, expected {rgb:?} ±{tolerance}", p.0);
    }
    ok
}

fn at(image: &RgbaImage, x: u32, y: u32) -> Rgba<u8> {
    *image.get_pixel(x, y)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];

#[test]
fn ic01_the_probe_knows_the_upright_size_the_steps_start_from() {
    let turned = probe(&case("exif_orient6.jpg"), &InputLimits::default()).unwrap();
    assert_eq!((turned.width, turned.height), (120, 80), "as stored");
    assert_eq!(turned.upright(), (80, 120));
    // A mirror does not turn the image.
    let mirrored = probe(&case("exif_orient4.jpg"), &InputLimits::default()).unwrap();
    assert_eq!(mirrored.upright(), (120, 80));

    // The same file with its EXIF block moved after the frame header, where jpeg-decoder
    // stops looking and zune-jpeg (which renders it) does not: still turned.
    let bytes = case("exif_orient6.jpg");
    let segment = |marker: u8| {
        let mut at = 2;
        while at + 4 <= bytes.len() && bytes[at] == 0xFF {
            let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            if bytes[at + 1] == marker {
                return at..at + 2 + len;
            }
            at += 2 + len;
        }
        panic!("no marker {marker:#x}")
    };
    let (exif, frame) = (segment(0xE1), segment(0xC0));
    assert!(
        exif.end <= frame.start,
        "the fixture has its EXIF block first"
    );
    let mut moved = bytes[..exif.start].to_vec();
    moved.extend_from_slice(&bytes[exif.end..frame.end]);
    moved.extend_from_slice(&bytes[exif.clone()]);
    moved.extend_from_slice(&bytes[frame.end..]);
    let late = probe(&moved, &InputLimits::default()).unwrap();
    assert_eq!(
        late.upright(),
        (80, 120),
        "an EXIF block after the frame header"
    );

    // Two blocks, turned before the frame header and upright after it: decoders disagree
    // on which one wins (the first, or the last before the scan), so the file counts as
    // turned and its result size is checked both ways.
    let mut upright_exif = bytes[exif.clone()].to_vec();
    let tag = upright_exif
        .windows(4)
        .position(|w| w == [0x12, 0x01, 0x03, 0x00] || w == [0x01, 0x12, 0x00, 0x03])
        .expect("an orientation tag");
    let little_endian = upright_exif[tag] == 0x12;
    upright_exif[tag + 8..tag + 10].copy_from_slice(if little_endian { &[1, 0] } else { &[0, 1] });
    let mut both = bytes[..frame.end].to_vec();
    both.extend_from_slice(&upright_exif);
    both.extend_from_slice(&bytes[frame.end..]);
    let disputed = probe(&both, &InputLimits::default()).unwrap();
    assert!(disputed.turned, "one of two EXIF blocks turns the image");

    // Enlarged to 1,000 px wide, the upright (portrait) image is 1,500 px tall: over a
    // 1-megapixel limit, where the stored (landscape) size would have passed as 667.
    let tight = InputLimits {
        max_pixels: 1_000_000,
        ..InputLimits::default()
    };
    let enlarge = crate::pipeline::JobSpec::single(
        crate::pipeline::Pipeline::new(vec![Step::Resize(crate::pipeline::Resize {
            width: Some(1000),
            height: None,
            fit: crate::pipeline::Fit::Inside,
            gravity: crate::pipeline::Gravity::Centre,
            background: None,
            upscale: true,
        })])
        .unwrap(),
        OutputSpec::default(),
    );
    let error = super::check_result_size(&turned, &enlarge, &tight).unwrap_err();
    assert_eq!(error.code(), "result_too_large", "{error}");
}

#[test]
fn ic01_exif_orientation_6_is_applied_before_resizing() {
    let r = render(
        "exif_orient6.jpg",
        vec![thumb(40, 60)],
        OutputSpec::default(),
    );
    assert_eq!((r.format, r.width, r.height), (ImageFormat::Jpeg, 40, 60));
    let img = pixels(&r);
    assert!(near(&img, (5, 5), GREEN, 40));
    assert!(near(&img, (30, 15), RED, 40));
    assert!(near(&img, (20, 45), BLUE, 40));
    assert!(
        !contains(&r.bytes, b"Exif\0\0"),
        "no EXIF block, so no orientation tag"
    );
}

#[test]
fn ic03_exif_orientation_4_mirrors_without_swapping() {
    let r = render("exif_orient4.jpg", vec![], OutputSpec::default());
    assert_eq!((r.width, r.height), (120, 80));
    let img = pixels(&r);
    assert!(near(&img, (10, 10), GREEN, 40));
    assert!(near(&img, (10, 70), RED, 40));
    assert!(near(&img, (100, 40), BLUE, 40));
}

#[test]
fn ic04_adobe_cmyk_becomes_srgb_without_negative_colours() {
    let r = render("cmyk_adobe.jpg", vec![], OutputSpec::default());
    assert_eq!((r.format, r.width, r.height), (ImageFormat::Jpeg, 64, 64));
    let decoded = image::load_from_memory(&r.bytes).unwrap();
    assert_eq!(decoded.color().channel_count(), 3);
    let img = decoded.to_rgba8();
    let p = at(&img, 16, 16);
    assert!(
        p[0] >= 180 && p[1] <= 90 && p[2] <= 90,
        "red quadrant {p:?}"
    );
    let p = at(&img, 48, 16);
    assert!(p[1] >= 140 && p[0] <= 90, "green quadrant {p:?}");
    let p = at(&img, 16, 48);
    assert!(
        p[2] >= 120 && p[0] <= 90 && p[1] <= 90,
        "blue quadrant {p:?}"
    );
    let p = at(&img, 48, 48);
    assert!(p.0[..3].iter().all(|&c| c <= 60), "black quadrant {p:?}");
}

#[test]
fn ic06_sixteen_bit_png_becomes_an_eight_bit_jpeg() {
    let r = render("png_rgba16.png", vec![], output(Some(ImageFormat::Jpeg)));
    assert_eq!((r.format, r.width, r.height), (ImageFormat::Jpeg, 64, 32));
    let img = pixels(&r);
    assert!(near(&img, (16, 16), [200, 50, 100], 8));
    assert!(near(&img, (48, 16), [16, 240, 128], 8));
}

#[test]
fn ic07_palette_transparency_survives_in_png_and_flattens_on_white_in_jpeg() {
    let png = render(
        "palette_trns.png",
        vec![thumb(32, 32)],
        OutputSpec::default(),
    );
    assert_eq!(
        (png.format, png.width, png.height),
        (ImageFormat::Png, 32, 32)
    );
    let img = pixels(&png);
    assert!(near(&img, (16, 16), RED, 8) && at(&img, 16, 16)[3] >= 250);
    assert!(at(&img, 29, 29)[3] <= 8);
    assert!(at(&img, 3, 3)[3].abs_diff(128) <= 16);
    assert!(near(&img, (3, 3), BLUE, 16));

    let jpeg = render(
        "palette_trns.png",
        vec![thumb(32, 32)],
        output(Some(ImageFormat::Jpeg)),
    );
    let img = pixels(&jpeg);
    assert!(near(&img, (29, 29), WHITE, 8));
    assert!(near(&img, (3, 3), [127, 127, 255], 20));
}

#[test]
fn ic09_transparent_logo_as_jpeg_is_on_white_not_black() {
    let r = render("rgba_logo.png", vec![], output(Some(ImageFormat::Jpeg)));
    assert_eq!((r.width, r.height), (128, 128));
    let img = pixels(&r);
    assert!(near(&img, (5, 5), WHITE, 8));
    assert!(near(&img, (64, 64), [0, 0, 0], 40));
    assert!(near(&img, (64, 30), [0, 0, 0], 40));
}

fn gif_frames(bytes: &[u8]) -> Vec<image::Frame> {
    let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap();
    decoder.into_frames().collect_frames().unwrap()
}

fn delay_ms(frame: &image::Frame) -> u32 {
    let (n, d) = frame.delay().numer_denom_ms();
    n / d
}

#[test]
fn ic11_gif_delta_frames_are_composited() {
    let animated = render(
        "anim_delta.gif",
        vec![thumb(32, 32)],
        OutputSpec {
            animated: true,
            ..OutputSpec::default()
        },
    );
    assert_eq!((animated.format, animated.frames), (ImageFormat::Gif, 4));
    assert!(!animated.first_frame_only);
    let frames = gif_frames(&animated.bytes);
    assert_eq!(frames.len(), 4);
    assert!(frames.iter().all(|f| delay_ms(f) == 200));
    let last = frames[3].buffer();
    assert_eq!(last.dimensions(), (32, 32));
    for x in [4, 12, 20, 28] {
        assert!(near(last, (x, 16), RED, 40));
    }
    assert!(near(last, (16, 3), WHITE, 40));
    assert!(
        contains(&animated.bytes, b"NETSCAPE2.0\x03\x01\0\0"),
        "loops forever"
    );

    let still = render("anim_delta.gif", vec![thumb(32, 32)], OutputSpec::default());
    assert_eq!((still.frames, still.first_frame_only), (1, true));
    let img = pixels(&still);
    assert!(near(&img, (4, 16), RED, 40));
    for (x, y) in [(20, 16), (0, 0), (31, 0), (0, 31), (31, 31)] {
        assert!(near(&img, (x, y), WHITE, 40) && at(&img, x, y)[3] == 255);
    }
}

#[test]
fn ic12_animated_webp_keeps_its_frames_when_asked() {
    let animated = render(
        "anim.webp",
        vec![thumb(24, 24)],
        OutputSpec {
            animated: true,
            ..OutputSpec::default()
        },
    );
    assert_eq!(
        (animated.format, animated.frames, animated.width),
        (ImageFormat::Webp, 3, 24)
    );
    let decoder =
        image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(&animated.bytes[..])).unwrap();
    let frames = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 3);
    for (frame, colour) in frames.iter().zip([RED, GREEN, BLUE]) {
        assert_eq!(frame.buffer().dimensions(), (24, 24));
        assert!(near(frame.buffer(), (12, 12), colour, 10));
        assert_eq!(delay_ms(frame), 100);
    }

    let still = render("anim.webp", vec![thumb(24, 24)], OutputSpec::default());
    assert_eq!(
        (still.width, still.frames, still.first_frame_only),
        (24, 1, true)
    );
    assert!(near(&pixels(&still), (12, 12), RED, 10));
}

#[test]
fn ic13_a_truncated_jpeg_is_refused() {
    let err = refusal("truncated.jpg");
    assert!(matches!(err, InputError::Truncated(_)));
    assert_eq!(err.code(), "truncated_image");
}

#[test]
fn ic14_an_empty_upload_is_refused_as_empty() {
    let err = refusal("empty.jpg");
    assert_eq!(
        (err.clone(), err.code()),
        (InputError::Empty, "empty_upload")
    );
}

#[test]
fn ic15_the_format_comes_from_the_bytes_not_the_name() {
    let bytes = case("png_named.jpg");
    assert_eq!(
        probe(&bytes, &InputLimits::default()).unwrap().format,
        ImageFormat::Png
    );
    let r = render("png_named.jpg", vec![], output(Some(ImageFormat::Jpeg)));
    assert_eq!((r.format, r.width, r.height), (ImageFormat::Jpeg, 50, 30));
    assert!(near(&pixels(&r), (25, 15), [0, 128, 255], 8));
}

#[test]
fn ic16_a_decompression_bomb_is_refused_from_its_header() {
    let err = refusal("bomb_header.png");
    assert!(matches!(
        err,
        InputError::DimensionsExceeded {
            width: 60_000,
            height: 60_000,
            ..
        }
    ));
    assert_eq!(err.code(), "image_dimensions_exceed_limit");
    // Sides allowed but the pixel count still bounds the decoder.
    let wide = InputLimits {
        max_width: 65_535,
        max_height: 65_535,
        ..InputLimits::default()
    };
    let spec = JobSpec::single(Pipeline::default_thumbnail(), OutputSpec::default());
    let err = render_all(&case("bomb_header.png"), &spec, &wide).unwrap_err();
    assert_eq!(err.code(), "image_dimensions_exceed_limit");
}

#[test]
fn ic18_a_huge_text_chunk_is_neither_a_problem_nor_copied() {
    let r = render("big_itxt.png", vec![], OutputSpec::default());
    assert_eq!((r.format, r.width, r.height), (ImageFormat::Png, 32, 32));
    let img = pixels(&r);
    assert!(near(&img, (5, 5), RED, 8));
    assert!(near(&img, (26, 5), BLUE, 8));
    assert!(
        r.bytes.len() < 20 * 1024,
        "output is {} bytes",
        r.bytes.len()
    );
    assert!(!contains(&r.bytes, b"iTXt"));
}

#[test]
fn ic20_a_profile_split_over_many_chunks_is_read_and_not_copied() {
    let r = render("big_icc.jpg", vec![], OutputSpec::default());
    assert!(near(&pixels(&r), (32, 32), [0, 160, 80], 6));
    assert!(!contains(&r.bytes, b"ICC_PROFILE"));
}

#[test]
fn ic21_progressive_jpeg_with_restarts_decodes_in_colour() {
    let r = render("progressive_dri.jpg", vec![], OutputSpec::default());
    let img = pixels(&r);
    assert!(near(&img, (16, 16), RED, 40));
    assert!(near(&img, (48, 16), GREEN, 40));
    assert!(near(&img, (16, 48), BLUE, 40));
    assert!(near(&img, (48, 48), [255, 200, 0], 40));
    let p = at(&img, 16, 16);
    assert!(p.0[..3].iter().max().unwrap() - p.0[..3].iter().min().unwrap() > 150);
}

#[test]
fn ic23_odd_sized_subsampled_jpeg_keeps_its_exact_size_and_edges() {
    let r = render("odd_420.jpg", vec![], OutputSpec::default());
    assert_eq!((r.width, r.height), (33, 17));
    let img = pixels(&r);
    let p = at(&img, 32, 6);
    assert!(p[2] >= 180 && p[0] <= 80, "blue block edge {p:?}");
    assert!(at(&img, 16, 16)[1] >= 180);
    assert!(at(&img, 5, 5)[0] >= 180);
}

#[test]
fn ic24_a_thin_strip_keeps_a_one_pixel_side() {
    let r = render(
        "thin_10000x1.png",
        vec![thumb(100, 100)],
        OutputSpec::default(),
    );
    assert_eq!((r.width, r.height), (100, 1));
    assert!(at(&pixels(&r), 50, 0)[0].abs_diff(128) <= 20);
}

#[test]
fn ic26_one_pixel_is_enlarged_only_when_asked() {
    let kept = render("one_px.png", vec![thumb(100, 100)], OutputSpec::default());
    assert_eq!((kept.width, kept.height), (1, 1));
    assert!(near(&pixels(&kept), (0, 0), RED, 8));

    let enlarge = Step::Resize(Resize {
        upscale: true,
        ..match thumb(100, 100) {
            Step::Resize(r) => r,
            _ => unreachable!(),
        }
    });
    let grown = render("one_px.png", vec![enlarge], OutputSpec::default());
    assert_eq!((grown.width, grown.height), (100, 100));
    let img = pixels(&grown);
    assert!(near(&img, (0, 0), RED, 8) && near(&img, (99, 99), RED, 8));
}

#[test]
fn ic27_svg_is_refused_as_unsupported() {
    let err = refusal("xss.svg");
    assert_eq!(
        err,
        InputError::UnsupportedFormat {
            detected: Some("SVG")
        }
    );
    assert_eq!(err.code(), "unsupported_media_type");
}

#[test]
fn ic29_html_named_png_is_refused_as_unsupported() {
    let err = refusal("html_as.png");
    assert_eq!(
        err,
        InputError::UnsupportedFormat {
            detected: Some("HTML")
        }
    );
    assert_eq!(err.code(), "unsupported_media_type");
}

#[test]
fn ic31_display_p3_is_converted_to_srgb() {
    let r = render("display_p3.jpg", vec![], OutputSpec::default());
    assert!(!contains(&r.bytes, b"ICC_PROFILE"));
    let img = pixels(&r);
    assert!(near(&img, (16, 32), [213, 115, 70], 6));
    assert!(near(&img, (48, 32), [38, 162, 117], 6));
}

#[test]
fn ic32_heic_is_refused_and_named() {
    let err = refusal("iphone_like.heic");
    assert_eq!(
        err,
        InputError::UnsupportedFormat {
            detected: Some("HEIC/HEIF")
        }
    );
    assert_eq!(err.code(), "unsupported_media_type");
    assert!(err.to_string().contains("HEIC"));
}

#[test]
fn animation_limits_hold_before_decoding() {
    let bytes = case("anim_delta.gif");
    let few_frames = InputLimits {
        max_frames: 3,
        ..InputLimits::default()
    };
    let err = probe(&bytes, &few_frames).unwrap_err();
    assert_eq!(
        (err.clone(), err.code()),
        (
            InputError::TooManyFrames {
                frames: 4,
                limit: 3
            },
            "too_many_frames"
        )
    );
    let little_work = InputLimits {
        max_animation_pixels: 64 * 64 * 3,
        ..InputLimits::default()
    };
    assert_eq!(
        probe(&bytes, &little_work).unwrap_err().code(),
        "animation_too_large"
    );
}

#[test]
fn every_case_file_is_covered() {
    let dir = format!("{}/../tests/fixtures/cases", env!("CARGO_MANIFEST_DIR"));
    let files = std::fs::read_dir(dir).unwrap().count();
    // 22 files plus CASES.md; a new file needs a test above.
    assert_eq!(files, 23);
}

#[allow(dead_code)]
fn as_dynamic(image: RgbaImage) -> DynamicImage {
    DynamicImage::ImageRgba8(image)
}
