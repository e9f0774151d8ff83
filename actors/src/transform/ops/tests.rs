//! What each step does to pixels a user would look at, and that no step breaks on
//! degenerate sizes.

use image::{DynamicImage, Rgb as Px, RgbImage, Rgba as Pxa, RgbaImage};

use super::apply;
use crate::format::ImageFormat;
use crate::pipeline::{Crop, Fit, Gravity, OutputSpec, Resize, Rgb, Rotate, Step};
use crate::transform::canvas::Canvas;
use crate::transform::encode::encode_still;
use crate::transform::TransformError;

fn rgb(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Canvas {
    Canvas::new(DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        Px(f(x, y))
    })))
}

fn run(canvas: Canvas, step: Step) -> RgbaImage {
    apply(canvas, &step).unwrap().image.to_rgba8()
}

fn resize(width: u32, height: u32, fit: Fit, gravity: Gravity) -> Step {
    Step::Resize(Resize {
        width: Some(width),
        height: Some(height),
        fit,
        gravity,
        background: Some(Rgb([0, 0, 255])),
        upscale: false,
    })
}

fn rotate(angle: f32) -> Step {
    Step::Rotate(Rotate {
        angle,
        background: Some(Rgb([255, 0, 0])),
    })
}

fn colour(image: &RgbaImage, x: u32, y: u32) -> [u8; 3] {
    let p = image.get_pixel(x, y);
    [p[0], p[1], p[2]]
}

fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= tolerance)
}

const BLACK: [u8; 3] = [0, 0, 0];
const WHITE: [u8; 3] = [255, 255, 255];

/// Left half black, right half white.
fn halves(w: u32, h: u32) -> Canvas {
    rgb(w, h, |x, _| if x < w / 2 { BLACK } else { WHITE })
}

#[test]
fn crop_is_clamped_to_the_image_and_refused_outside_it() {
    let out = run(
        halves(100, 50),
        Step::Crop(Crop {
            x: 90,
            y: 40,
            width: 50,
            height: 50,
        }),
    );
    assert_eq!(out.dimensions(), (10, 10));
    let err = apply(
        halves(100, 50),
        &Step::Crop(Crop {
            x: 100,
            y: 0,
            width: 5,
            height: 5,
        }),
    )
    .unwrap_err();
    assert!(matches!(err, TransformError::CropOutsideImage { .. }));
    assert_eq!(err.code(), "crop_outside_image");
}

#[test]
fn quarter_turns_move_pixels_exactly() {
    let marked = || rgb(4, 2, |x, y| if (x, y) == (0, 0) { WHITE } else { BLACK });
    let out = run(marked(), rotate(90.0));
    assert_eq!(out.dimensions(), (2, 4));
    assert_eq!(colour(&out, 1, 0), WHITE, "top-left goes to top-right");
    let out = run(marked(), rotate(-90.0));
    assert_eq!(colour(&out, 0, 3), WHITE, "top-left goes to bottom-left");
    let out = run(marked(), rotate(180.0));
    assert_eq!(colour(&out, 3, 1), WHITE);
}

#[test]
fn free_rotation_expands_the_canvas_and_fills_the_corners() {
    let out = run(rgb(100, 100, |_, _| WHITE), rotate(45.0));
    assert_eq!(out.dimensions(), (141, 141));
    assert_eq!(
        colour(&out, 2, 2),
        [255, 0, 0],
        "corner shows the background"
    );
    assert_eq!(colour(&out, 70, 70), WHITE);
    assert_eq!(
        colour(&out, 70, 2),
        WHITE,
        "the rotated corner reaches the top edge"
    );
}

#[test]
fn flips_mirror_the_right_axis() {
    let marked = || rgb(3, 2, |x, y| if (x, y) == (0, 0) { WHITE } else { BLACK });
    assert_eq!(colour(&run(marked(), Step::Flip), 0, 1), WHITE);
    assert_eq!(colour(&run(marked(), Step::Flop), 2, 0), WHITE);
}

#[test]
fn tone_steps_change_colour_but_not_alpha() {
    let grey = Canvas::new(DynamicImage::ImageRgba8(RgbaImage::from_pixel(
        2,
        2,
        Pxa([100, 150, 200, 77]),
    )));
    let out = run(grey.clone(), Step::Brightness { value: 100.0 });
    assert_eq!(out.get_pixel(0, 0).0, [255, 255, 255, 77]);
    let out = run(grey.clone(), Step::Brightness { value: -100.0 });
    assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0, 77]);
    let out = run(grey.clone(), Step::Contrast { value: -100.0 });
    assert_eq!(out.get_pixel(0, 0).0, [128, 128, 128, 77]);
    let out = apply(grey, &Step::Grayscale).unwrap();
    assert_eq!(out.image.color(), image::ColorType::La8);
    let luma = out.image.to_rgba8();
    assert_eq!(luma.get_pixel(0, 0)[3], 77);
    assert_eq!(luma.get_pixel(0, 0)[0], 141, "BT.601 luma of (100,150,200)");
}

#[test]
fn blur_softens_an_edge_and_sharpen_steepens_it() {
    let out = run(halves(40, 4), Step::Blur { sigma: 2.0 });
    let edge = out.get_pixel(20, 2)[0];
    assert!((64..=192).contains(&edge), "edge is mid-grey, got {edge}");
    assert_eq!(colour(&out, 0, 0), BLACK);

    let soft = rgb(40, 4, |x, _| {
        let v = (x * 255 / 39) as u8;
        [v, v, v]
    });
    let out = run(
        soft.clone(),
        Step::Sharpen {
            sigma: 1.0,
            amount: 2.0,
        },
    );
    // A linear ramp has no second derivative: sharpening leaves its middle alone.
    assert!(out.get_pixel(20, 2)[0].abs_diff(soft.image.to_rgba8().get_pixel(20, 2)[0]) <= 2);
    let out = run(
        halves(40, 4),
        Step::Sharpen {
            sigma: 2.0,
            amount: 1.0,
        },
    );
    assert_eq!(colour(&out, 21, 2), WHITE, "overshoot clamps at white");
    assert_eq!(colour(&out, 18, 2), BLACK, "undershoot clamps at black");
}

#[test]
fn blur_does_not_bleed_hidden_colour_from_transparent_pixels() {
    // Left: transparent with hidden red; right: opaque white.
    let image = RgbaImage::from_fn(40, 4, |x, _| {
        if x < 20 {
            Pxa([255, 0, 0, 0])
        } else {
            Pxa([255, 255, 255, 255])
        }
    });
    let out = run(
        Canvas::new(DynamicImage::ImageRgba8(image)),
        Step::Blur { sigma: 3.0 },
    );
    let p = out.get_pixel(21, 2);
    assert!(p[3] > 0 && p[3] < 255);
    assert!(
        close([p[0], p[1], p[2]], WHITE, 3),
        "edge stays white, got {p:?}"
    );
}

#[test]
fn cover_gravity_chooses_which_part_is_kept() {
    // Top half black, bottom half white, cropped to a wide strip.
    let tall = || rgb(100, 200, |_, y| if y < 100 { BLACK } else { WHITE });
    let north = run(tall(), resize(50, 25, Fit::Cover, Gravity::North));
    assert_eq!(north.dimensions(), (50, 25));
    assert_eq!(colour(&north, 25, 12), BLACK);
    let south = run(tall(), resize(50, 25, Fit::Cover, Gravity::South));
    assert_eq!(colour(&south, 25, 12), WHITE);

    // Flat left, noisy right: entropy keeps the noise.
    let busy = rgb(200, 100, |x, y| {
        if x < 100 {
            [90, 90, 90]
        } else {
            [((x * 37 + y * 91) % 256) as u8; 3]
        }
    });
    let out = apply(busy, &resize(50, 50, Fit::Cover, Gravity::Entropy)).unwrap();
    let img = out.image.to_rgba8();
    let distinct: std::collections::HashSet<u8> = img.pixels().map(|p| p[0]).collect();
    assert!(distinct.len() > 20, "the window shows the noisy half");
}

#[test]
fn contain_pads_with_the_background_and_fill_stretches() {
    let out = run(
        halves(200, 100),
        resize(100, 100, Fit::Contain, Gravity::Centre),
    );
    assert_eq!(out.dimensions(), (100, 100));
    assert_eq!(colour(&out, 50, 5), [0, 0, 255], "padding");
    assert!(close(colour(&out, 10, 50), BLACK, 2) && close(colour(&out, 90, 50), WHITE, 2));
    let out = run(halves(200, 100), resize(50, 80, Fit::Fill, Gravity::Centre));
    assert_eq!(out.dimensions(), (50, 80));
}

fn every_step() -> Vec<Step> {
    let mut steps: Vec<Step> = [Fit::Inside, Fit::Cover, Fit::Contain, Fit::Fill]
        .into_iter()
        .flat_map(|fit| [Gravity::Centre, Gravity::Entropy].map(|g| resize(7, 3, fit, g)))
        .collect();
    steps.push(Step::Resize(Resize {
        width: Some(300),
        height: None,
        fit: Fit::Inside,
        gravity: Gravity::Centre,
        background: None,
        upscale: true,
    }));
    steps.extend([
        Step::Crop(Crop {
            x: 0,
            y: 0,
            width: 5,
            height: 5,
        }),
        rotate(90.0),
        rotate(180.0),
        rotate(2.0),
        Step::Flip,
        Step::Flop,
        Step::Grayscale,
        Step::Blur { sigma: 3.0 },
        Step::Blur { sigma: 100.0 },
        Step::Sharpen {
            sigma: 1.5,
            amount: 2.0,
        },
        Step::Brightness { value: 20.0 },
        Step::Contrast { value: -30.0 },
    ]);
    steps
}

#[test]
fn every_step_gives_a_valid_image_on_degenerate_sizes() {
    let formats = [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Webp,
        ImageFormat::Gif,
    ];
    for (w, h) in [(1, 1), (10_000, 1), (1, 10_000), (2, 3)] {
        for alpha in [false, true] {
            let base = rgb(w, h, |x, _| [(x % 256) as u8, 128, 64]);
            let base = if alpha {
                Canvas::new(DynamicImage::ImageRgba8(base.image.to_rgba8()))
            } else {
                base
            };
            for step in every_step() {
                let out = apply(base.clone(), &step)
                    .unwrap_or_else(|e| panic!("{step:?} on {w}x{h}: {e}"));
                let (ow, oh) = out.size();
                assert!(ow >= 1 && oh >= 1, "{step:?} on {w}x{h} gave {ow}x{oh}");
                if ow * oh <= 30_000 {
                    for format in formats {
                        let bytes = encode_still(&out.image, format, &OutputSpec::default())
                            .unwrap_or_else(|e| panic!("{format} of {step:?} on {w}x{h}: {e}"));
                        let back = image::load_from_memory(&bytes).unwrap();
                        assert_eq!((back.width(), back.height()), (ow, oh));
                    }
                }
            }
        }
    }
}
