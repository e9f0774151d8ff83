//! Byte-level access to the 8-bit canvas layouts, for the loops that are faster on raw
//! samples than through `image`'s generic pixel traits.

use image::DynamicImage;

/// The samples of an 8-bit image and how many there are per pixel.
pub(crate) fn samples_mut(image: &mut DynamicImage) -> (&mut [u8], usize) {
    match image {
        DynamicImage::ImageLuma8(b) => (b, 1),
        DynamicImage::ImageLumaA8(b) => (b, 2),
        DynamicImage::ImageRgb8(b) => (b, 3),
        DynamicImage::ImageRgba8(b) => (b, 4),
        _ => (&mut [], 1),
    }
}

/// Copies `src` onto `dst` with its top-left corner at (`x`, `y`); both have one layout and
/// `src` fits.
pub(crate) fn paste(dst: &mut DynamicImage, src: &DynamicImage, x: u32, y: u32) {
    let channels = usize::from(src.color().bytes_per_pixel());
    let src_row = src.width() as usize * channels;
    let dst_row = dst.width() as usize * channels;
    let offset = x as usize * channels;
    let src_bytes = src.as_bytes();
    let (dst_bytes, _) = samples_mut(dst);
    for (row, line) in src_bytes.chunks_exact(src_row.max(1)).enumerate() {
        let start = (y as usize + row) * dst_row + offset;
        if let Some(target) = dst_bytes.get_mut(start..start + src_row) {
            target.copy_from_slice(line);
        }
    }
}
