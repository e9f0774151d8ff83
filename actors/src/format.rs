//! Image formats pixmill recognises, and what it can write.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A raster format recognised from a file's leading bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
    Tiff,
    Bmp,
    Avif,
}

impl ImageFormat {
    pub const ALL: [ImageFormat; 7] = [
        Self::Jpeg,
        Self::Png,
        Self::Webp,
        Self::Gif,
        Self::Tiff,
        Self::Bmp,
        Self::Avif,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Tiff => "tiff",
            Self::Bmp => "bmp",
            Self::Avif => "avif",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Tiff => "image/tiff",
            Self::Bmp => "image/bmp",
            Self::Avif => "image/avif",
        }
    }

    /// The file extension used in object keys.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown image format {0:?}")]
pub struct UnknownFormat(pub String);

impl FromStr for ImageFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Ok(Self::Jpeg),
            "png" => Ok(Self::Png),
            "webp" => Ok(Self::Webp),
            "gif" => Ok(Self::Gif),
            "tiff" | "tif" => Ok(Self::Tiff),
            "bmp" => Ok(Self::Bmp),
            "avif" => Ok(Self::Avif),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

/// Formats the transformer can encode. The default output is the input's format when it is
/// in this list, else JPEG (so TIFF and BMP inputs come out as JPEG).
#[cfg(not(feature = "avif"))]
pub const WRITABLE_FORMATS: [ImageFormat; 4] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::Webp,
    ImageFormat::Gif,
];

/// Formats the transformer can encode, AVIF included in this build.
#[cfg(feature = "avif")]
pub const WRITABLE_FORMATS: [ImageFormat; 5] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::Webp,
    ImageFormat::Gif,
    ImageFormat::Avif,
];

impl ImageFormat {
    pub fn is_writable(self) -> bool {
        WRITABLE_FORMATS.contains(&self)
    }
}
