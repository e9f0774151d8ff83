//! Recognising a file from its leading bytes, never from its name or `Content-Type`.

use crate::format::ImageFormat;

/// The readable format named by the leading bytes.
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

/// Names common files pixmill does not read, so the refusal says what was sent. AVIF is
/// named here too: this build has no AVIF decoder (only an optional encoder).
pub(crate) fn describe_foreign(bytes: &[u8]) -> Option<&'static str> {
    let head = &bytes[..bytes.len().min(512)];
    if let Some(brand) = iso_media_brand(head) {
        return Some(brand);
    }
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
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

/// HEIF-family files start with an `ftyp` box whose major brand names the codec.
fn iso_media_brand(head: &[u8]) -> Option<&'static str> {
    if head.len() < 12 || &head[4..8] != b"ftyp" {
        return None;
    }
    match &head[8..12] {
        b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" => Some("HEIC/HEIF"),
        b"avif" | b"avis" => Some("AVIF"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_magic_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(ImageFormat::Png));
        assert_eq!(sniff(b"GIF89a......"), Some(ImageFormat::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::Webp));
        assert_eq!(sniff(b"<svg></svg>"), None);
    }

    #[test]
    fn foreign_files_are_named() {
        assert_eq!(
            describe_foreign(b"\0\0\0\x18ftypheic\0\0\0\0"),
            Some("HEIC/HEIF")
        );
        assert_eq!(
            describe_foreign(b"\0\0\0\x18ftypavif\0\0\0\0"),
            Some("AVIF")
        );
        assert_eq!(describe_foreign(b"  <!DOCTYPE html><p>"), Some("HTML"));
        assert_eq!(describe_foreign(b"%PDF-1.7"), Some("PDF"));
        assert_eq!(describe_foreign(b"hello"), None);
    }
}
