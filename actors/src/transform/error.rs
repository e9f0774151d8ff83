use crate::format::ImageFormat;

/// Why an input file was refused. Each variant has a stable code; the gateway maps them to
/// HTTP statuses, the worker to a `FAILED` status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the upload is empty")]
    Empty,
    #[error("the file is {bytes} bytes; the limit is {limit}")]
    TooManyBytes { bytes: u64, limit: u64 },
    #[error("the file is not an image pixmill can read{}", detected.map(|d| format!(" (looks like {d})")).unwrap_or_default())]
    UnsupportedFormat { detected: Option<&'static str> },
    #[error("{0} images are not accepted here")]
    FormatNotAllowed(ImageFormat),
    #[error("the image is {width}x{height}; the limit is {max_width}x{max_height} and {max_pixels} pixels")]
    DimensionsExceeded {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
        max_pixels: u64,
    },
    #[error("the image declares a zero width or height")]
    ZeroSize,
    #[error("the image is corrupt or truncated: {0}")]
    Corrupt(String),
}

impl InputError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_upload",
            Self::TooManyBytes { .. } => "file_too_large",
            Self::UnsupportedFormat { .. } => "unsupported_media_type",
            Self::FormatNotAllowed(_) => "format_not_allowed",
            Self::DimensionsExceeded { .. } => "image_dimensions_exceed_limit",
            Self::ZeroSize => "image_zero_size",
            Self::Corrupt(_) => "corrupt_image",
        }
    }
}

/// Why rendering failed. All of these are permanent: the same bytes fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("the image could not be decoded: {0}")]
    Decode(String),
    #[error("the result could not be encoded as {format}: {reason}")]
    Encode { format: ImageFormat, reason: String },
    #[error("{0}")]
    Unsupported(String),
}

impl TransformError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Input(e) => e.code(),
            Self::Decode(_) => "undecodable_image",
            Self::Encode { .. } => "encode_failed",
            Self::Unsupported(_) => "unsupported_operation",
        }
    }
}
