use serde::{Deserialize, Serialize};

use crate::format::ImageFormat;

/// What an input may be. Checked from the header at the gateway and again by the worker's
/// decoder, so a file that lies in its header cannot allocate more than this either.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InputLimits {
    pub max_bytes: u64,
    pub max_width: u32,
    pub max_height: u32,
    /// Pixels of one frame. A decoded frame takes at most 8 bytes per pixel (16-bit RGBA)
    /// before it is reduced to 8 bits, so this bounds the decoder's largest buffer.
    pub max_pixels: u64,
    /// Frames of an animation. Frames are decoded one at a time over one canvas, so this
    /// bounds time, not memory.
    pub max_frames: u32,
    /// Frames times canvas pixels of an animation, and of the frames one animated output
    /// holds before encoding (about 4 bytes each).
    pub max_animation_pixels: u64,
    pub allowed_formats: Vec<ImageFormat>,
}

impl Default for InputLimits {
    fn default() -> Self {
        Self {
            max_bytes: 32 * 1024 * 1024,
            max_width: 16_384,
            max_height: 16_384,
            max_pixels: 100_000_000,
            max_frames: 1_000,
            max_animation_pixels: 100_000_000,
            allowed_formats: vec![
                ImageFormat::Jpeg,
                ImageFormat::Png,
                ImageFormat::Webp,
                ImageFormat::Gif,
                ImageFormat::Tiff,
                ImageFormat::Bmp,
            ],
        }
    }
}

impl InputLimits {
    /// The most bytes a decoder may allocate for one frame.
    pub(crate) fn max_decode_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(8)
    }
}
