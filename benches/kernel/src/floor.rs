//! Floors: the least work an op cannot avoid, which is decoding the input the way the op
//! needs it. The kernel's `decode_only` ([`Job::decode`]) decodes exactly as a render of the
//! same job would (the same decoder, DCT scale and pixel layout: planes for the planar path,
//! luma for a grey job, a shrunk canvas for a thumbnail) and stops, so pixmill / floor says
//! how much the operation and the encoder add on top of the decode, in either build.

use crate::cpu;
use crate::ops::Job;
use crate::BoxError;

/// The decoded buffer's size and the CPU seconds the decode took.
pub fn measure(job: &Job, input: &[u8]) -> Result<((u32, u32), f64), BoxError> {
    cpu::timed(|| job.decode(input))
}
