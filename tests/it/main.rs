//! pixmill's integration tests: one binary, one module per area.

mod metadata;
mod object_store_contract;
mod queue_contract;
mod redis_fastpath;
mod service_env;
mod services;
