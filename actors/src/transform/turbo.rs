//! libjpeg-turbo, with the `turbo` feature: JPEG decoding (`decode/turbo.rs`) and encoding
//! (`encode/jpeg.rs`) through it, and the planar path, which takes the commonest jobs
//! (thumbnails, resizes and blurs of photos) from JPEG planes to JPEG or WebP planes without
//! an RGB image in between.
//!
//! The default build leaves all of this out and stays pure Rust apart from libwebp, so it
//! needs no cmake or nasm; the Docker image, CI and the benchmarks build with the feature.

pub(crate) mod ffi;
pub(crate) mod planar;
mod planes;
mod webp_planes;

#[cfg(test)]
mod tests;
