//! Image transforms: CPU-bound, synchronous, called by the transformer stage on the CPU
//! pool and by the gateway (for `probe`) before anything is stored.
//!
//! ```text
//! bytes ─► probe ─► decode ───────────► ops (per rendition) ─► encode ─► Rendered
//!          magic     JPEG: DCT-scaled     resize, crop, rotate,   jpeg, png, webp,
//!          header    (plan), others:      flip, tone, blur, ...   gif, avif (feature)
//!          structure image; then 8-bit,
//!          limits    sRGB, upright
//! ```
//!
//! - [`probe`](probe()): the format from magic bytes (never a name or `Content-Type`), the
//!   declared size, a walk of the container for truncation and frame count, all limits.
//!   No pixel is decoded.
//! - `decode`, `color`, `orientation`: pixels into a `Canvas` (8-bit, sRGB, upright);
//!   `plan` picks the JPEG shrink-on-load scale from the renditions' first resize.
//! - `ops`: one file per operation.
//! - `animation`: composited frames of GIF/WebP/APNG, one at a time.
//! - `encode`: pixels only, so no input metadata reaches an output.
//! - `turbo` (the `turbo` feature): libjpeg-turbo for JPEG decoding and encoding, and the
//!   planar path that resizes and blurs JPEGs as Y, Cb and Cr planes, never as RGB.
//! - [`render_all`]: probe, decode once, every rendition in order.
//! - [`check_work`]: what the steps would cost, from the sizes alone, for the gateway to
//!   refuse a job of minutes at upload.
//! - [`probe_violation`]: the contract every probe answer keeps, for the fuzz target
//!   (`fuzz/`, `scripts/fuzz.sh`) and the replay of its findings.

mod animation;
mod canvas;
#[cfg(test)]
mod cases;
mod color;
mod container;
mod decode;
mod encode;
mod error;
mod limits;
mod ops;
mod orientation;
mod panics;
mod plan;
mod probe;
mod probe_check;
mod render;
mod sniff;
#[cfg(feature = "turbo")]
mod turbo;
mod work;

pub use error::{ByteSize, InputError, TransformError};
pub use limits::InputLimits;
pub use probe::{probe, Probe};
pub use probe_check::probe_violation;
pub use render::{
    check_crops, check_result_size, decode_only, render_all, render_all_with, RenderOptions,
    Rendered,
};
pub use work::{check_work, TooCostly, MAX_WORK};
