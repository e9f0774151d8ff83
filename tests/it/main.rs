//! pixmill's integration tests: one binary, one module per area.

mod abuse;
mod auth;
mod hostile;
mod metadata;
mod object_store_contract;
mod observe;
mod openapi_spec;
mod operations;
mod orphan_sweep;
mod prod;
mod queue_contract;
mod rabbitmq_outage;
mod redis_fastpath;
mod service_env;
mod shutdown;
mod standalone;
mod support;
