//! Image transforms: CPU-bound, synchronous, called by the transformer stage on the CPU
//! pool and by the gateway (for `probe`) before anything is stored.
//!
//! `probe` reads only a file's header: the format from its magic bytes (never from a file
//! name or a `Content-Type`) and its declared dimensions, checked against [`InputLimits`]
//! before any pixel buffer exists. `render_all` decodes once and produces every rendition of
//! a [`JobSpec`].

mod error;
mod limits;
mod probe;
mod render;

pub use error::{InputError, TransformError};
pub use limits::InputLimits;
pub use probe::{probe, Probe};
pub use render::{render_all, Rendered};
