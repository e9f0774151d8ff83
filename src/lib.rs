//! pixmill: the gateway, the backend adapters and the `pixmill` binary. The processing
//! engine itself (jobs, ports, actor stages, transforms) is the `pixmill-actors` crate.
//!
//! An upload flows like this:
//!
//! ```text
//! HTTP ─► api (poem-openapi) ─► auth (JWKS verifier) ─► gateway::upload
//!           probe header ─► ObjectStore raw-images ─► MetadataStore row (PENDING, dispatch mark)
//!           ─► JobQueue publish ─► 202
//! engine (pixmill-actors): consumer ─► downloader ─► transformer ─► persister
//!           ─► ObjectStore processed-images ─► MetadataStore COMPLETED/FAILED ─► ack
//! HTTP GET ─► gateway (status cache, then MetadataStore) ─► status / streamed download
//! ```
//!
//! - [`cli`]: the subcommands; [`app`]: building a process from its [`config`] (connect
//!   the backends, start the engine and the HTTP server, shut down in reverse).
//! - [`api`]: HTTP handlers per resource, error mapping, the generated spec.
//! - [`gateway`]: what the handlers do, independent of HTTP.
//! - [`auth`]: token verification (Keycloak's or the standalone issuer's, one verifier).
//! - [`backends`]: the adapters behind the engine's ports, embedded and production;
//!   [`fastpath`]: the gateway's cache and rate-limit ports.
//! - [`telemetry`]: logging; [`metrics`]: the Prometheus registry behind `GET /metrics`.
//! - [`webhooks`]: signed POSTs to an upload's `callback_url` when its job ends.
//! - `failpoints` (only with the `failpoints` feature): fault injection for the battery in
//!   `scripts/fault-battery.sh`.

pub mod api;
pub mod app;
pub mod auth;
pub mod backends;
pub mod cli;
pub mod config;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod fastpath;
pub mod gateway;
pub mod metrics;
pub mod telemetry;
pub mod webhooks;
