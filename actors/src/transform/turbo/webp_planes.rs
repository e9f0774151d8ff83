//! WebP straight from Y, Cb and Cr planes: VP8 codes YUV 4:2:0 itself, so planes that were
//! never turned into RGB go in as they are, after the one remap VP8 needs. JPEG stores
//! full-range YCbCr (0-255), VP8 BT.601 studio range (luma 16-235, chroma 16-240); both
//! use the same BT.601 matrix, so only the range changes.

use std::ffi::c_void;
use std::mem::MaybeUninit;

use libwebp_sys::{
    WebPEncCSP, WebPEncode, WebPMemoryWrite, WebPMemoryWriter, WebPMemoryWriterClear,
    WebPMemoryWriterInit, WebPPicture, WebPPictureFree,
};

use super::planes::Planes;
use crate::format::ImageFormat;
use crate::transform::encode::webp_config;
use crate::transform::TransformError;

/// Lossy WebP at `quality` from 4:2:0 planes (see [`Planes::into_420`]).
pub(crate) fn encode(planes: &Planes, quality: u8) -> Result<Vec<u8>, TransformError> {
    let fail = |reason: &str| TransformError::encode(ImageFormat::Webp, reason);
    let (w, h) = (planes.y.width, planes.y.height);
    if w > 16_383 || h > 16_383 {
        return Err(fail("a side exceeds WebP's 16383 pixels"));
    }
    if !planes.is_420() {
        return Err(TransformError::Internal("WebP needs 4:2:0 planes".into()));
    }
    let config = webp_config(quality)?;
    // Fresh buffers: libwebp may smooth its input in place, and the range changes anyway.
    let mut y = remapped(&planes.y.data, &STUDIO_LUMA);
    let mut u = remapped(&planes.cb.data, &STUDIO_CHROMA);
    let mut v = remapped(&planes.cr.data, &STUDIO_CHROMA);

    let mut picture = WebPPicture::new().map_err(|()| fail("libwebp picture init failed"))?;
    picture.use_argb = 0;
    picture.colorspace = WebPEncCSP::WEBP_YUV420;
    picture.width = w as i32;
    picture.height = h as i32;
    picture.y = y.as_mut_ptr();
    picture.u = u.as_mut_ptr();
    picture.v = v.as_mut_ptr();
    picture.y_stride = w as i32;
    picture.uv_stride = planes.cb.width as i32;
    let mut writer = MaybeUninit::<WebPMemoryWriter>::uninit();
    // SAFETY: the writer is initialised before use and cleared once; the picture borrows
    // `y`, `u` and `v`, which hold the sizes set above (checked by `is_420`) and outlive
    // the encode; WebPPictureFree releases only what libwebp allocated itself.
    let (ok, bytes, error) = unsafe {
        WebPMemoryWriterInit(writer.as_mut_ptr());
        picture.writer = Some(WebPMemoryWrite);
        picture.custom_ptr = writer.as_mut_ptr().cast::<c_void>();
        let ok = WebPEncode(&config, &mut picture) != 0;
        let written = writer.assume_init_mut();
        let bytes = if written.mem.is_null() {
            Vec::new()
        } else {
            std::slice::from_raw_parts(written.mem, written.size).to_vec()
        };
        WebPMemoryWriterClear(written);
        let error = picture.error_code;
        WebPPictureFree(&mut picture);
        (ok, bytes, error)
    };
    if !ok {
        return Err(fail(&format!("{error:?}")));
    }
    Ok(bytes)
}

fn remapped(samples: &[u8], table: &[u8; 256]) -> Vec<u8> {
    samples.iter().map(|&s| table[usize::from(s)]).collect()
}

/// Full-range luma to 16-235.
static STUDIO_LUMA: [u8; 256] = range_table(16, 219);
/// Full-range chroma (centred on 128) to 16-240.
static STUDIO_CHROMA: [u8; 256] = range_table(16, 224);

const fn range_table(floor: u32, span: u32) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = (floor + (i as u32 * span + 127) / 255) as u8;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_tables_keep_black_white_and_neutral_chroma() {
        assert_eq!((STUDIO_LUMA[0], STUDIO_LUMA[255]), (16, 235));
        assert_eq!(
            (STUDIO_CHROMA[0], STUDIO_CHROMA[128], STUDIO_CHROMA[255]),
            (16, 128, 240)
        );
    }
}
