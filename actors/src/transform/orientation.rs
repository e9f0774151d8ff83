//! EXIF orientation: applied to every input before any step, so steps and output see the
//! image the way a camera's owner does; the tag itself is never written out.

use image::metadata::Orientation;

/// Reads the orientation from a raw EXIF block (starting at the TIFF header). A missing or
/// invalid tag means upright.
pub(crate) fn from_exif(exif: Option<&[u8]>) -> Orientation {
    exif.and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms)
}

/// True when applying `orientation` exchanges width and height.
pub(crate) fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// `(width, height)` as seen after applying `orientation`.
pub(crate) fn oriented(size: (u32, u32), orientation: Orientation) -> (u32, u32) {
    if swaps_axes(orientation) {
        (size.1, size.0)
    } else {
        size
    }
}
