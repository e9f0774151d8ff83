use std::io::Cursor;

use image::ImageReader;

use super::{InputError, InputLimits};
use crate::format::ImageFormat;

/// What the header of an input says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub format: ImageFormat,
    /// Dimensions as stored, before EXIF orientation.
    pub width: u32,
    pub height: u32,
}

/// Recognises the format from the magic bytes and reads the declared size from the header,
/// without decoding pixels.
pub fn probe(bytes: &[u8], limits: &InputLimits) -> Result<Probe, InputError> {
    if bytes.is_empty() {
        return Err(InputError::Empty);
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(InputError::TooManyBytes {
            bytes: bytes.len() as u64,
            limit: limits.max_bytes,
        });
    }
    let format = sniff(bytes).ok_or(InputError::UnsupportedFormat {
        detected: describe_foreign(bytes),
    })?;
    if !limits.allowed_formats.contains(&format) {
        return Err(InputError::FormatNotAllowed(format));
    }
    let reader = ImageReader::with_format(Cursor::new(bytes), to_image_format(format));
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| InputError::Corrupt(e.to_string()))?;
    check_dimensions(width, height, limits)?;
    Ok(Probe {
        format,
        width,
        height,
    })
}

pub(crate) fn check_dimensions(
    width: u32,
    height: u32,
    limits: &InputLimits,
) -> Result<(), InputError> {
    if width == 0 || height == 0 {
        return Err(InputError::ZeroSize);
    }
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_width || height > limits.max_height || pixels > limits.max_pixels {
        return Err(InputError::DimensionsExceeded {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

/// The format named by the leading bytes.
pub(crate) fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::Webp)
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some(ImageFormat::Tiff)
    } else if starts(b"BM") && bytes.len() >= 26 {
        Some(ImageFormat::Bmp)
    } else {
        None
    }
}

/// Names common non-image (or unsupported image) files so the error says what was sent.
fn describe_foreign(bytes: &[u8]) -> Option<&'static str> {
    let head = &bytes[..bytes.len().min(512)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        if [b"heic", b"heix", b"hevc", b"mif1", b"msf1"]
            .iter()
            .any(|b| brand == *b)
        {
            return Some("HEIC/HEIF");
        }
        if brand == b"avif" || brand == b"avis" {
            return Some("AVIF");
        }
    }
    if head.starts_with(b"%PDF") {
        Some("PDF")
    } else if text.starts_with("<svg") || (text.starts_with("<?xml") && text.contains("<svg")) {
        Some("SVG")
    } else if text.starts_with("<!doctype html")
        || text.starts_with("<html")
        || text.contains("<script")
    {
        Some("HTML")
    } else if text.starts_with("<?php") {
        Some("PHP")
    } else {
        None
    }
}

pub(crate) fn to_image_format(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        ImageFormat::Bmp => image::ImageFormat::Bmp,
        ImageFormat::Avif => image::ImageFormat::Avif,
    }
}
