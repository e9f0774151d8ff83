//! pixmill's integration tests: one binary, one module per area.

mod metadata;
mod redis_fastpath;
mod services;
