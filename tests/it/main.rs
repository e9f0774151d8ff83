//! pixmill's integration tests: one binary, one module per concern.

mod object_store_contract;
mod queue_contract;
mod rabbitmq_outage;
mod service_env;
