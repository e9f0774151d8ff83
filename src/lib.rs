//! placeholder while the gateway is written
pub mod backends;
pub mod fastpath;
