//! The only unsafe code of the `turbo` feature: a TurboJPEG 3 handle and the calls pixmill
//! makes through it, each checked, with warnings told apart from errors.
//!
//! libjpeg-turbo reports recoverable damage (extraneous bytes before a marker, a missing
//! EOI) as a *warning* after producing every pixel; real-world files do that often, and
//! the pure-Rust decoders accept them too, so a warning is logged and the pixels kept.
//! Truncation is refused earlier, by `probe`, under one policy for every decoder.

use std::ffi::CStr;
use std::ptr::{self, NonNull};

use libc::{c_int, c_uchar, c_void};
use turbojpeg_sys as tj;

use crate::format::ImageFormat;
use crate::transform::TransformError;

/// Progressive scans a decode may read: a real photo has about ten; a crafted file with
/// thousands of tiny scans would otherwise cost minutes of CPU (libjpeg-turbo's own advice
/// for untrusted input).
const MAX_SCANS: c_int = 500;

/// A TurboJPEG instance, destroyed on drop. Not shared between threads.
pub(crate) struct Handle(NonNull<c_void>);

/// What a JPEG's header says, read without decoding a pixel (the size and markers come
/// from `decode::jpeg_markers`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    /// A `TJSAMP_*` value; `TJSAMP_UNKNOWN` for layouts TurboJPEG cannot express as YUV.
    pub subsamp: c_int,
    /// A `TJCS_*` value.
    pub colorspace: c_int,
    /// Lossless JPEG cannot be scaled or decoded to YUV.
    pub lossless: bool,
    /// Bits per sample: 8 for nearly every file.
    pub precision: c_int,
}

/// The three planes TurboJPEG decodes into or encodes from (Y, Cb, Cr), tightly packed.
pub(crate) struct PlaneBuffers<'a> {
    pub planes: [&'a mut [u8]; 3],
    pub widths: [usize; 3],
}

impl Handle {
    pub fn decompressor() -> Result<Self, TransformError> {
        Self::init(tj::TJINIT_TJINIT_DECOMPRESS)
    }

    pub fn compressor() -> Result<Self, TransformError> {
        Self::init(tj::TJINIT_TJINIT_COMPRESS)
    }

    fn init(kind: tj::TJINIT) -> Result<Self, TransformError> {
        // SAFETY: tj3Init has no preconditions; a null return means out of memory.
        let raw = unsafe { tj::tj3Init(kind as c_int) };
        let handle = NonNull::new(raw)
            .map(Self)
            .ok_or_else(|| TransformError::Internal("libjpeg-turbo failed to start".into()))?;
        Ok(handle)
    }

    pub fn set(&mut self, param: tj::TJPARAM, value: c_int) -> Result<(), TransformError> {
        // SAFETY: the handle is live; unknown parameters are refused with -1, not UB.
        let rc = unsafe { tj::tj3Set(self.0.as_ptr(), param as c_int, value) };
        self.check(rc, ImageFormat::Jpeg, Failure::Internal)
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: the handle is live.
        unsafe { tj::tj3Get(self.0.as_ptr(), param as c_int) }
    }

    /// Reads the header of `jpeg` and arms the decoder's limits for it.
    pub fn read_header(&mut self, jpeg: &[u8]) -> Result<Header, TransformError> {
        self.set(tj::TJPARAM_TJPARAM_SCANLIMIT, MAX_SCANS)?;
        // SAFETY: the pointer and length describe `jpeg`, which outlives the call.
        let rc = unsafe {
            tj::tj3DecompressHeader(self.0.as_ptr(), jpeg.as_ptr(), jpeg.len() as tj::size_t)
        };
        self.check(rc, ImageFormat::Jpeg, Failure::Decode)?;
        Ok(Header {
            subsamp: self.get(tj::TJPARAM_TJPARAM_SUBSAMP),
            colorspace: self.get(tj::TJPARAM_TJPARAM_COLORSPACE),
            lossless: self.get(tj::TJPARAM_TJPARAM_LOSSLESS) != 0,
            precision: self.get(tj::TJPARAM_TJPARAM_PRECISION),
        })
    }

    /// Decodes at `eighths`/8 of the full size (1, 2, 4 or 8).
    pub fn set_scale(&mut self, eighths: u32) -> Result<(), TransformError> {
        // TurboJPEG knows its factors in lowest terms only (1/4, not 2/8).
        let common = gcd(eighths, 8);
        let factor = tj::tjscalingfactor {
            num: (eighths / common) as c_int,
            denom: (8 / common) as c_int,
        };
        // SAFETY: the handle is live; unsupported factors are refused with -1.
        let rc = unsafe { tj::tj3SetScalingFactor(self.0.as_ptr(), factor) };
        self.check(rc, ImageFormat::Jpeg, Failure::Internal)
    }

    /// Decodes `jpeg` (after [`read_header`](Self::read_header)) into packed pixels of
    /// `format` (`TJPF_RGB` or `TJPF_GRAY`), `width` pixels a row.
    pub fn decode_packed(
        &mut self,
        jpeg: &[u8],
        out: &mut [u8],
        width: usize,
        channels: usize,
        format: tj::TJPF,
    ) -> Result<(), TransformError> {
        let pitch = to_int(width * channels)?;
        // SAFETY: `out` holds `pitch * scaled height` bytes (the caller sized it from the
        // scaled header), and TurboJPEG writes no further; `jpeg` outlives the call.
        let rc = unsafe {
            tj::tj3Decompress8(
                self.0.as_ptr(),
                jpeg.as_ptr(),
                jpeg.len() as tj::size_t,
                out.as_mut_ptr(),
                pitch,
                format,
            )
        };
        self.check(rc, ImageFormat::Jpeg, Failure::Decode)
    }

    /// Decodes `jpeg` into its Y, Cb and Cr planes at the scale set, with no colour
    /// conversion and no chroma upsampling.
    pub fn decode_planes(
        &mut self,
        jpeg: &[u8],
        out: PlaneBuffers<'_>,
    ) -> Result<(), TransformError> {
        let PlaneBuffers { planes, widths } = out;
        let [y, u, v] = planes;
        let mut pointers = [y.as_mut_ptr(), u.as_mut_ptr(), v.as_mut_ptr()];
        let mut strides = [to_int(widths[0])?, to_int(widths[1])?, to_int(widths[2])?];
        // SAFETY: each plane was sized by the caller from tj3YUVPlaneWidth/Height for the
        // scaled size and subsampling, with these strides; the slices outlive the call.
        let rc = unsafe {
            tj::tj3DecompressToYUVPlanes8(
                self.0.as_ptr(),
                jpeg.as_ptr(),
                jpeg.len() as tj::size_t,
                pointers.as_mut_ptr(),
                strides.as_mut_ptr(),
            )
        };
        self.check(rc, ImageFormat::Jpeg, Failure::Decode)
    }

    /// Encodes packed pixels (`TJPF_RGB` or `TJPF_GRAY`) at `quality` with `subsamp`.
    pub fn encode_packed(
        &mut self,
        pixels: &[u8],
        (width, height): (u32, u32),
        channels: usize,
        format: tj::TJPF,
        quality: u8,
        subsamp: c_int,
    ) -> Result<Vec<u8>, TransformError> {
        if pixels.len() < width as usize * height as usize * channels {
            return Err(TransformError::Internal("too few pixels to encode".into()));
        }
        self.arm_encoder(quality, subsamp)?;
        let (w, h) = (to_int(width as usize)?, to_int(height as usize)?);
        let pitch = to_int(width as usize * channels)?;
        let mut out = Output::new();
        // SAFETY: `pixels` holds `pitch * height` bytes (checked above); TurboJPEG allocates
        // the output itself (NOREALLOC is off), and `Output` frees it.
        let rc = unsafe {
            tj::tj3Compress8(
                self.0.as_ptr(),
                pixels.as_ptr(),
                w,
                pitch,
                h,
                format,
                &mut out.ptr,
                &mut out.len,
            )
        };
        self.check(rc, ImageFormat::Jpeg, Failure::Encode)?;
        Ok(out.to_vec())
    }

    /// Encodes Y, Cb and Cr planes laid out for `subsamp` at `quality`.
    pub fn encode_planes(
        &mut self,
        planes: [&[u8]; 3],
        widths: [usize; 3],
        (width, height): (u32, u32),
        quality: u8,
        subsamp: c_int,
    ) -> Result<Vec<u8>, TransformError> {
        for (component, plane) in planes.iter().enumerate() {
            let (pw, ph) = plane_size(component, (width, height), subsamp)?;
            if widths[component] < pw || plane.len() < widths[component] * ph {
                return Err(TransformError::Internal(
                    "a plane is too small to encode".into(),
                ));
            }
        }
        self.arm_encoder(quality, subsamp)?;
        let pointers = [planes[0].as_ptr(), planes[1].as_ptr(), planes[2].as_ptr()];
        let strides = [to_int(widths[0])?, to_int(widths[1])?, to_int(widths[2])?];
        let (w, h) = (to_int(width as usize)?, to_int(height as usize)?);
        let mut out = Output::new();
        // SAFETY: every plane was checked above to hold its stride times its height for
        // this size and subsampling; the output is allocated by TurboJPEG and freed by
        // `Output`.
        let rc = unsafe {
            tj::tj3CompressFromYUVPlanes8(
                self.0.as_ptr(),
                pointers.as_ptr(),
                w,
                strides.as_ptr(),
                h,
                &mut out.ptr,
                &mut out.len,
            )
        };
        self.check(rc, ImageFormat::Jpeg, Failure::Encode)?;
        Ok(out.to_vec())
    }

    fn arm_encoder(&mut self, quality: u8, subsamp: c_int) -> Result<(), TransformError> {
        self.set(
            tj::TJPARAM_TJPARAM_QUALITY,
            c_int::from(quality.clamp(1, 100)),
        )?;
        self.set(tj::TJPARAM_TJPARAM_SUBSAMP, subsamp)?;
        self.set(tj::TJPARAM_TJPARAM_NOREALLOC, 0)
    }

    /// Turns a TurboJPEG return code into a result: 0 is success, a warning is logged and
    /// treated as success, anything else is an error with TurboJPEG's message.
    fn check(
        &mut self,
        rc: c_int,
        format: ImageFormat,
        failure: Failure,
    ) -> Result<(), TransformError> {
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: the handle is live; the error string is NUL-terminated and owned by it.
        let (code, message) = unsafe {
            let code = tj::tj3GetErrorCode(self.0.as_ptr());
            let text = tj::tj3GetErrorStr(self.0.as_ptr());
            let message = if text.is_null() {
                "unknown libjpeg-turbo error".to_owned()
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            };
            (code, message)
        };
        if code == tj::TJERR_TJERR_WARNING as c_int {
            tracing::debug!(warning = %message, "libjpeg-turbo recovered from damage in the file");
            return Ok(());
        }
        Err(match failure {
            Failure::Decode => TransformError::Decode(message),
            Failure::Encode => TransformError::encode(format, message),
            Failure::Internal => TransformError::Internal(message),
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0.as_ptr()) }
    }
}

/// Which kind of failure a non-warning error code is.
#[derive(Clone, Copy)]
enum Failure {
    Decode,
    Encode,
    Internal,
}

/// A buffer TurboJPEG allocated for a compressed image; freed on drop.
struct Output {
    ptr: *mut c_uchar,
    len: tj::size_t,
}

impl Output {
    fn new() -> Self {
        Self {
            ptr: ptr::null_mut(),
            len: 0,
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        if self.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: TurboJPEG set `ptr` to a buffer holding at least `len` bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len as usize) }.to_vec()
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // SAFETY: tj3Free accepts null and buffers TurboJPEG allocated.
        unsafe { tj::tj3Free(self.ptr.cast()) }
    }
}

/// The size of plane `component` (0: Y, 1: Cb, 2: Cr) of an image of `size` laid out
/// with `subsamp`.
pub(crate) fn plane_size(
    component: usize,
    (width, height): (u32, u32),
    subsamp: c_int,
) -> Result<(usize, usize), TransformError> {
    let id = to_int(component)?;
    // SAFETY: pure functions of their integer arguments.
    let (w, h) = unsafe {
        (
            tj::tj3YUVPlaneWidth(id, to_int(width as usize)?, subsamp),
            tj::tj3YUVPlaneHeight(id, to_int(height as usize)?, subsamp),
        )
    };
    match (usize::try_from(w), usize::try_from(h)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(TransformError::Internal(
            "no plane size for this subsampling".into(),
        )),
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

fn to_int(v: usize) -> Result<c_int, TransformError> {
    c_int::try_from(v)
        .map_err(|_| TransformError::Internal("a size exceeds libjpeg-turbo's range".into()))
}
