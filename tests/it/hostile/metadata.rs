//! Where a photo was taken must not leave with its thumbnail: an upload carrying EXIF with a
//! GPS block comes out with no EXIF at all, in every output format.

use super::files::{contains, exif_gps_segment, jpeg_with_gps, GPS_LATITUDE};
use super::{finished, served};
use crate::support::tokens::token_for;
use crate::support::Standalone;

/// The latitude's rationals as they sit in the big-endian TIFF.
fn latitude_bytes() -> Vec<u8> {
    GPS_LATITUDE.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// True when a JPEG has an APP1 segment (EXIF or XMP) before its image data.
fn has_app1(jpeg: &[u8]) -> bool {
    let mut pos = 2;
    while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF && jpeg[pos + 1] != 0xDA {
        if jpeg[pos + 1] == 0xE1 {
            return true;
        }
        pos += 2 + usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_carry_no_exif_or_gps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("traveller");
    let photo = jpeg_with_gps(96, 64);
    assert!(has_app1(&photo) && contains(&photo, &latitude_bytes()));
    assert!(contains(&photo, &exif_gps_segment()));

    for format in ["jpeg", "png", "webp"] {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(photo.clone()).file_name("trip.jpg"),
            )
            .text("format", format);
        let accepted = app.upload_form(&token, form).await;
        let done = finished(&app, &token, &accepted).await;
        assert_eq!(done["status"], "COMPLETED", "{format}: {done}");
        assert_eq!(done["processed"]["format"], format);

        let output = served(&app, &token, &done, "processed").await;
        assert!(!contains(&output, b"Exif"), "{format}: the output has EXIF");
        assert!(
            !contains(&output, &latitude_bytes()),
            "{format}: the output holds the GPS latitude"
        );
        // PNG's and WebP's EXIF chunks.
        assert!(
            !contains(&output, b"eXIf") && !contains(&output, b"EXIF"),
            "{format}"
        );
        if format == "jpeg" {
            assert!(!has_app1(&output), "the JPEG output has an APP1 segment");
        }
    }
    app.stop().await;
}
