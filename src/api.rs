//! The HTTP API: poem-openapi operations grouped by resource, the spec generated from them,
//! and the one place that renders every error as JSON.
//!
//! - [`images`] serves `/v1/images` (upload, status, events, list, download, delete);
//!   `status_events` is the event stream's payload, documented one event at a time
//! - [`system`] serves `/v1/system/actors` (operators)
//! - [`health`] serves `/healthz`, `/readyz`; `/metrics` (Prometheus) is outside the spec
//! - [`request_log`] wraps everything: request ids, the access line, HTTP metrics
//! - [`security`]: the bearer scheme; [`errors`]: status and code mapping, with
//!   `request_errors` for requests the framework refused before a handler; [`models`],
//!   [`steps`]: request and response documents; `file_part` and `step_parts`: the upload
//!   form's file and steps as they arrive.

mod allow;
mod body_limit;
pub mod download;
pub mod errors;
mod file_part;
pub mod health;
pub mod images;
mod linger;
mod metrics_endpoint;
pub mod models;
mod request_errors;
pub mod request_log;
pub mod security;
mod status_events;
mod step_parts;
pub mod steps;
pub mod system;
mod upload_slot;

use std::sync::Arc;
use std::time::Duration;

use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::gateway::Gateway;

#[derive(Tags)]
pub enum ApiTags {
    /// Upload, poll, download and delete images.
    Images,
    /// Operator views of the running system.
    System,
    /// Liveness and readiness.
    Health,
}

/// Room for multipart framing and the small form fields beside the file.
const FORM_OVERHEAD: u64 = 256 * 1024;

pub fn service() -> OpenApiService<(images::ImagesApi, system::SystemApi, health::HealthApi), ()> {
    OpenApiService::new((images::ImagesApi, system::SystemApi, health::HealthApi), "pixmill", env!("CARGO_PKG_VERSION"))
        .description(
            "Upload images, have them processed asynchronously by supervised workers, poll their status \
             and download the results. Every /v1 endpoint needs a bearer token; an owner only ever sees \
             their own images.",
        )
}

/// The spec as served at `/openapi.json` and committed under `openapi/`.
pub fn spec_json() -> String {
    service().spec()
}

/// The whole HTTP application. Each request may take at most `request_timeout`, body
/// included, so a slow client cannot hold an upload slot forever.
pub fn app(gateway: Arc<Gateway>, request_timeout: Duration) -> impl Endpoint {
    let api = service();
    let routes = Arc::new(request_log::RouteNames::from_spec(&api.spec()));
    let allowed = Arc::new(allow::AllowedMethods::from_spec(&api.spec()));
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let body_limit = body_limit::BodyLimit {
        file: gateway.limits.max_bytes,
        form: FORM_OVERHEAD,
    };
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .at("/metrics", poem::get(metrics_endpoint::metrics))
        .around(|endpoint, mut request| async move {
            // Empty until the bearer check fills it; see `upload_slot`.
            request
                .extensions_mut()
                .insert(upload_slot::VerifiedCaller::default());
            endpoint.call(request).await
        })
        .around(move |endpoint, request| async move {
            body_limit::limit_body(&*endpoint, request, body_limit).await
        })
        .around(
            |endpoint, request| async move { linger::linger_on_refusal(&*endpoint, request).await },
        )
        .around(move |endpoint, request| async move {
            match tokio::time::timeout(request_timeout, endpoint.call(request)).await {
                Ok(result) => result,
                Err(_) => Err(errors::ApiError::new(
                    poem::http::StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request took too long; send it again",
                )
                .into()),
            }
        })
        .with(CatchPanic::new().with_handler(errors::render_panic))
        .data(gateway.clone())
        .catch_all_error(errors::render_any_error)
        .around(move |endpoint, request| {
            let allowed = allowed.clone();
            async move { allow::add_allow(&*endpoint, request, &allowed).await }
        })
        .around(move |endpoint, request| {
            let (metrics, routes) = (gateway.metrics.clone(), routes.clone());
            async move { request_log::observe(&*endpoint, request, &metrics, &routes).await }
        })
}

/// What a worker process serves: health, metrics and the operators' `/v1/system`.
pub fn worker_admin_app(gateway: Arc<Gateway>) -> impl Endpoint {
    let health = OpenApiService::new(
        (health::HealthApi, system::SystemApi),
        "pixmill worker",
        env!("CARGO_PKG_VERSION"),
    );
    let routes = Arc::new(request_log::RouteNames::from_spec(&health.spec()));
    Route::new()
        .nest("/", health)
        .at("/metrics", poem::get(metrics_endpoint::metrics))
        .data(gateway.clone())
        .catch_all_error(errors::render_any_error)
        .around(move |endpoint, request| {
            let (metrics, routes) = (gateway.metrics.clone(), routes.clone());
            async move { request_log::observe(&*endpoint, request, &metrics, &routes).await }
        })
}
