//! pixmill's integration tests: one binary, one module per concern.

mod object_store_contract;
mod queue_contract;
mod service_env;
