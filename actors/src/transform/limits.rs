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
    pub max_pixels: u64,
    pub allowed_formats: Vec<ImageFormat>,
}

impl Default for InputLimits {
    fn default() -> Self {
        Self {
            max_bytes: 32 * 1024 * 1024,
            max_width: 16_384,
            max_height: 16_384,
            max_pixels: 100_000_000,
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
