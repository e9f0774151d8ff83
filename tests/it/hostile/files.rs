//! Hostile files, built in the test from a few bytes or a small honest image, so every
//! byte of each attack is visible here and no large fixture is committed.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// CRC-32 (IEEE, as PNG and ZIP use it), bit by bit: these files are a few KiB.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// An honest RGB image with a left/right split, so a re-encode is easy to recognise.
fn pattern(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            Rgb([220, 40, 40])
        } else {
            Rgb([40, 40, 220])
        }
    }))
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(&pattern(width, height), ImageFormat::Png)
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(&pattern(width, height), ImageFormat::Jpeg)
}

/// One PNG chunk: length, type, data, CRC over type and data.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
    chunk
}

/// Offset of the first chunk of `kind` in a PNG.
fn find_chunk(png: &[u8], kind: &[u8; 4]) -> usize {
    let mut pos = 8;
    while &png[pos + 4..pos + 8] != kind {
        let len = u32::from_be_bytes([png[pos], png[pos + 1], png[pos + 2], png[pos + 3]]);
        pos += 12 + len as usize;
    }
    pos
}

/// `png` with its IHDR claiming `width` x `height` (CRC fixed, so only the size lies).
pub fn png_claiming(mut png: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// `png` with `chunk` inserted right after IHDR.
pub fn png_with_chunk(png: &[u8], chunk: &[u8]) -> Vec<u8> {
    let after_ihdr = 8 + 25;
    [&png[..after_ihdr], chunk, &png[after_ihdr..]].concat()
}

/// An all-black `side` square grayscale PNG: about a thousand times smaller than its pixels.
pub fn black_png(side: u32) -> Vec<u8> {
    let black = DynamicImage::ImageLuma8(image::GrayImage::new(side, side));
    encode(&black, ImageFormat::Png)
}

/// A PNG decompression bomb: the header of an honest `width` x `height` PNG, with the image
/// data of an all-black `bomb_side` square grayscale PNG, which deflate shrinks about a
/// thousandfold. The file is small; its IDAT inflates to `bomb_side`² bytes.
pub fn png_bomb(width: u32, height: u32, bomb_side: u32) -> Vec<u8> {
    let header = png(width, height);
    let bomb = black_png(bomb_side);
    let header_end = find_chunk(&header, b"IDAT");
    let idat = find_chunk(&bomb, b"IDAT");
    let iend = find_chunk(&bomb, b"IEND");
    [
        &header[..header_end],
        &bomb[idat..iend],
        &png_chunk(b"IEND", &[]),
    ]
    .concat()
}

/// `jpeg` with its frame header (SOF0) claiming `width` x `height`.
pub fn jpeg_claiming(mut jpeg: Vec<u8>, width: u16, height: u16) -> Vec<u8> {
    // Walks the segments from SOI: FF, marker, a length that counts itself, the payload.
    let mut pos = 2;
    while jpeg[pos + 1] != 0xC0 {
        pos += 2 + usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
    }
    // After the marker and length: precision (1), then height and width.
    jpeg[pos + 5..pos + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[pos + 7..pos + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

/// A GIF whose logical screen is `width` x `height`, holding `frames` 1x1 frames.
pub fn gif(width: u16, height: u16, frames: usize) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&width.to_le_bytes());
    gif.extend_from_slice(&height.to_le_bytes());
    // A global colour table of two entries (black, white), background 0, no aspect ratio.
    gif.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF]);
    for _ in 0..frames {
        // Graphic control: 10 ms, then a 1x1 descriptor and its LZW data (clear, 1, end).
        gif.extend_from_slice(&[0x21, 0xF9, 4, 0, 1, 0, 0, 0]);
        gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
        gif.extend_from_slice(&[2, 2, 0x4C, 0x01, 0]);
    }
    gif.push(0x3B);
    gif
}

/// The animated WebP fixture with its canvas (VP8X) claiming `width` x `height`.
pub fn webp_claiming(mut webp: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
    assert_eq!(&webp[12..16], b"VP8X", "the fixture is an extended WebP");
    webp[24..27].copy_from_slice(&(width - 1).to_le_bytes()[..3]);
    webp[27..30].copy_from_slice(&(height - 1).to_le_bytes()[..3]);
    webp
}

/// A ZIP archive with one stored file, as a GIFAR's Java archive half.
pub fn zip(name: &str, content: &[u8]) -> Vec<u8> {
    let crc = crc32(content).to_le_bytes();
    let size = (content.len() as u32).to_le_bytes();
    let name_len = (name.len() as u16).to_le_bytes();
    let mut zip = b"PK\x03\x04\x0a\0\0\0\0\0\0\0\0\0".to_vec();
    zip.extend_from_slice(&crc);
    zip.extend_from_slice(&size);
    zip.extend_from_slice(&size);
    zip.extend_from_slice(&name_len);
    zip.extend_from_slice(&[0, 0]);
    zip.extend_from_slice(name.as_bytes());
    zip.extend_from_slice(content);
    let central = zip.len() as u32;
    zip.extend_from_slice(b"PK\x01\x02\x14\0\x0a\0\0\0\0\0\0\0\0\0");
    zip.extend_from_slice(&crc);
    zip.extend_from_slice(&size);
    zip.extend_from_slice(&size);
    zip.extend_from_slice(&name_len);
    // Extra and comment lengths, disk, attributes, and the local header's offset (0).
    zip.extend_from_slice(&[0; 16]);
    zip.extend_from_slice(name.as_bytes());
    let central_len = zip.len() as u32 - central;
    zip.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
    zip.extend_from_slice(&central_len.to_le_bytes());
    zip.extend_from_slice(&central.to_le_bytes());
    zip.extend_from_slice(&[0, 0]);
    zip
}

/// The GPS latitude a photo must never leak: 52° 22' 12" N, as TIFF rationals.
pub const GPS_LATITUDE: [u32; 6] = [52, 1, 22, 1, 12, 1];

/// An EXIF APP1 segment: a big-endian TIFF whose IFD0 points at a GPS IFD holding
/// GPSLatitudeRef `N` and [`GPS_LATITUDE`].
pub fn exif_gps_segment() -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    // IFD0 at 8: one entry, GPSInfo (0x8825, LONG) -> the GPS IFD at 26, no next IFD.
    tiff.extend_from_slice(&[0, 1, 0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 26, 0, 0, 0, 0]);
    // GPS IFD at 26: GPSLatitudeRef (1, ASCII "N"), GPSLatitude (2, 3 RATIONAL at 56).
    tiff.extend_from_slice(&[0, 2]);
    tiff.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&[0, 2, 0, 5, 0, 0, 0, 3, 0, 0, 0, 56]);
    tiff.extend_from_slice(&[0, 0, 0, 0]);
    for value in GPS_LATITUDE {
        tiff.extend_from_slice(&value.to_be_bytes());
    }
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(&tiff);
    segment
}

/// A JPEG carrying [`exif_gps_segment`] right after its SOI marker.
pub fn jpeg_with_gps(width: u32, height: u32) -> Vec<u8> {
    let plain = jpeg(width, height);
    [&plain[..2], &exif_gps_segment(), &plain[2..]].concat()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_crc_matches_the_png_signature_chunk() {
    // IEND's CRC is the constant every PNG ends with.
    assert_eq!(crc32(b"IEND"), 0xAE42_6082);
}
