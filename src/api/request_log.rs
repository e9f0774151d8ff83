//! The outermost layer of both HTTP apps: gives every request an id, runs it inside a span
//! that carries the id, writes one `info` line when the response head is ready, and counts
//! it in the HTTP metrics by route template.
//!
//! The id is the client's `X-Request-Id` when it is sane (1 to 128 characters of
//! `[A-Za-z0-9._:-]`), else a fresh UUID. It replaces the request's header before the
//! handlers run, so the upload handler passes the same id into the job (`trace_id`), and it
//! is returned in the response. A worker's log lines for the job carry it as `request_id`.
//!
//! For an event stream, the line and the latency describe the response head; the stream
//! itself may stay open for minutes afterwards.

use std::sync::Arc;
use std::time::Instant;

use poem::http::HeaderValue;
use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;
use uuid::Uuid;

use crate::metrics::Metrics;

/// The header that carries the request id both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest client-chosen request id kept.
const MAX_REQUEST_ID: usize = 128;

/// The client's id when it is safe to log and to carry along, else `None`.
fn sane(raw: &HeaderValue) -> Option<&str> {
    let text = raw.to_str().ok()?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    let sane = !text.is_empty() && text.len() <= MAX_REQUEST_ID && text.chars().all(allowed);
    sane.then_some(text)
}

/// The request's id: the client's, or a new one.
fn request_id(request: &Request) -> String {
    match request.headers().get(REQUEST_ID).and_then(sane) {
        Some(id) => id.to_owned(),
        None => Uuid::new_v4().to_string(),
    }
}

/// Runs one request through `endpoint` with its id, span, access line and metrics.
pub async fn observe<E: Endpoint>(endpoint: &E, mut request: Request, metrics: &Arc<Metrics>) -> poem::Result<Response> {
    let id = request_id(&request);
    let header = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(REQUEST_ID, header.clone());
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = tracing::field::Empty);
    let started = Instant::now();

    let mut response = match endpoint.call(request).instrument(span.clone()).await {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    };

    let elapsed = started.elapsed();
    let route = response.data::<PathPattern>().map(|p| p.0.to_string()).unwrap_or_default();
    let status = response.status().as_u16();
    metrics.http_request(&method, &route, status, elapsed);
    span.record("route", route.as_str());
    tracing::info!(parent: &span, status, latency_ms = elapsed.as_millis() as u64, "request finished");
    response.headers_mut().insert(REQUEST_ID, header);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_client_ids_are_kept() {
        let ok = HeaderValue::from_static("upload-42.retry_1:a");
        assert_eq!(sane(&ok), Some("upload-42.retry_1:a"));
        for bad in ["", "has space", "semi;colon", "quote\"s"] {
            assert_eq!(sane(&HeaderValue::from_str(bad).unwrap()), None, "{bad:?} kept");
        }
        assert_eq!(sane(&HeaderValue::from_str(&"x".repeat(MAX_REQUEST_ID + 1)).unwrap()), None);
    }
}
