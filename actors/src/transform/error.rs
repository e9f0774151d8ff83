use crate::format::ImageFormat;

/// Why an input file was refused. Each variant has a stable [`code`](Self::code); the gateway
/// maps codes to HTTP statuses, the worker to a `FAILED` status.
///
/// | code | HTTP status |
/// |---|---|
/// | `empty_upload` | 400 |
/// | `file_too_large` | 413 |
/// | `unsupported_media_type` | 415 (SVG, HTML, PDF, HEIC, AVIF input, unknown bytes) |
/// | `format_not_allowed` | 415 |
/// | `image_dimensions_exceed_limit` | 422 |
/// | `image_zero_size` | 422 |
/// | `too_many_frames` | 422 |
/// | `animation_too_large` | 422 |
/// | `truncated_image` | 422 |
/// | `corrupt_image` | 422 (also when a header parser panicked on the file) |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the upload is empty")]
    Empty,
    #[error("the file is {}; the limit is {}", ByteSize(*.bytes), ByteSize(*.limit))]
    TooManyBytes { bytes: u64, limit: u64 },
    #[error("the file is not an image pixmill can read{}", detected.map(|d| format!(" (looks like {d})")).unwrap_or_default())]
    UnsupportedFormat { detected: Option<&'static str> },
    #[error("{0} images are not accepted here")]
    FormatNotAllowed(ImageFormat),
    #[error("the image is {width}x{height}, {} pixels; the limit is {max_width}x{max_height} and {max_pixels} pixels", u64::from(*.width) * u64::from(*.height))]
    DimensionsExceeded {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
        max_pixels: u64,
    },
    #[error("the image declares a zero width or height")]
    ZeroSize,
    #[error("the animation has {frames} frames; the limit is {limit}")]
    TooManyFrames { frames: u32, limit: u32 },
    /// Frames times frame size is more pixel work than allowed.
    #[error("the animation's {frames} frames hold {pixels} pixels; the limit is {limit}")]
    AnimationTooLarge {
        frames: u32,
        pixels: u64,
        limit: u64,
    },
    /// The file ends before its image data does (an interrupted upload or copy). Refused
    /// always, never decoded leniently, so a half-grey picture is never stored as a success.
    #[error("the image is truncated: {0}")]
    Truncated(&'static str),
    #[error("the image is corrupt: {0}")]
    Corrupt(String),
}

/// A size for people: `32.0 MiB (33554432 bytes)`, so a refusal can be compared with
/// what a file manager shows as well as with the configured limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * KIB;
        const GIB: u64 = 1024 * MIB;
        let bytes = self.0;
        let (unit, name) = match bytes {
            b if b >= GIB => (GIB, "GiB"),
            b if b >= MIB => (MIB, "MiB"),
            b if b >= KIB => (KIB, "KiB"),
            _ => return write!(f, "{bytes} bytes"),
        };
        write!(
            f,
            "{:.1} {name} ({bytes} bytes)",
            bytes as f64 / unit as f64
        )
    }
}

impl InputError {
    /// A stable snake_case machine code (see the table on the type).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_upload",
            Self::TooManyBytes { .. } => "file_too_large",
            Self::UnsupportedFormat { .. } => "unsupported_media_type",
            Self::FormatNotAllowed(_) => "format_not_allowed",
            Self::DimensionsExceeded { .. } => "image_dimensions_exceed_limit",
            Self::ZeroSize => "image_zero_size",
            Self::TooManyFrames { .. } => "too_many_frames",
            Self::AnimationTooLarge { .. } => "animation_too_large",
            Self::Truncated(_) => "truncated_image",
            Self::Corrupt(_) => "corrupt_image",
        }
    }
}

/// Why rendering failed. All of these are permanent: the same bytes and steps fail the same
/// way, so a worker gives up instead of retrying.
///
/// | code | meaning |
/// |---|---|
/// | any [`InputError`] code | the input itself was refused |
/// | `undecodable_image` | the header was fine but the pixel data could not be decoded |
/// | `crop_outside_image` | a crop lies entirely outside the image (a client error, 422) |
/// | `result_too_large` | the steps would make an image larger than an input may be |
/// | `encode_failed` | the encoder refused the result |
/// | `unsupported_operation` | e.g. an output format this build cannot write |
/// | `internal_error` | a decoder or encoder panicked on this input (a bug, logged) |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("the image could not be decoded: {0}")]
    Decode(String),
    #[error("the crop at ({x},{y}) lies outside the {image_width}x{image_height} image")]
    CropOutsideImage {
        x: u32,
        y: u32,
        image_width: u32,
        image_height: u32,
    },
    #[error("the steps would make a {width}x{height} image; results may be at most {max_side} px a side and {max_pixels} pixels, as inputs: ask for a smaller size or rotate before enlarging")]
    ResultTooLarge {
        width: u32,
        height: u32,
        max_side: u32,
        max_pixels: u64,
    },
    #[error("the result could not be encoded as {format}: {reason}")]
    Encode { format: ImageFormat, reason: String },
    #[error("{0}")]
    Unsupported(String),
    /// A library panicked; caught so one bad file fails its job instead of its worker.
    #[error("internal error while transforming: {0}")]
    Internal(String),
}

impl TransformError {
    /// A stable snake_case machine code (see the table on the type).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Input(e) => e.code(),
            Self::Decode(_) => "undecodable_image",
            Self::CropOutsideImage { .. } => "crop_outside_image",
            Self::ResultTooLarge { .. } => "result_too_large",
            Self::Encode { .. } => "encode_failed",
            Self::Unsupported(_) => "unsupported_operation",
            Self::Internal(_) => "internal_error",
        }
    }

    pub(crate) fn decode(err: impl std::fmt::Display) -> Self {
        Self::Decode(err.to_string())
    }

    pub(crate) fn encode(format: ImageFormat, err: impl std::fmt::Display) -> Self {
        Self::Encode {
            format,
            reason: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_largest_whole_unit_with_the_exact_count() {
        assert_eq!(ByteSize(512).to_string(), "512 bytes");
        assert_eq!(ByteSize(1536).to_string(), "1.5 KiB (1536 bytes)");
        assert_eq!(
            ByteSize(32 * 1024 * 1024).to_string(),
            "32.0 MiB (33554432 bytes)"
        );
        assert_eq!(
            ByteSize(5 * 1024 * 1024 * 1024).to_string(),
            "5.0 GiB (5368709120 bytes)"
        );
    }

    #[test]
    fn a_file_over_the_byte_limit_says_both_sizes() {
        let error = InputError::TooManyBytes {
            bytes: 40 * 1024 * 1024,
            limit: 32 * 1024 * 1024,
        };
        assert_eq!(
            error.to_string(),
            "the file is 40.0 MiB (41943040 bytes); the limit is 32.0 MiB (33554432 bytes)"
        );
    }
}
