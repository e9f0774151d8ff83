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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use poem::http::HeaderValue;
use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;
use uuid::Uuid;

use super::errors::ErrorCode;
use super::images::UPLOAD_PATH;
use crate::metrics::{counting_backend_errors, Metrics};

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

/// The route templates of the API's operations as the spec spells them (`/v1/images/{id}`);
/// poem-openapi's own routes number their parameters (`/v1/images/{param0}`).
#[derive(Default)]
pub struct RouteNames(HashMap<String, String>);

impl RouteNames {
    /// Reads every operation's path from the generated spec.
    pub fn from_spec(spec: &str) -> Self {
        let Ok(spec) = serde_json::from_str::<serde_json::Value>(spec) else {
            return Self::default();
        };
        let mut names = HashMap::new();
        for (path, operations) in spec["paths"].as_object().into_iter().flatten() {
            for operation in operations.as_object().into_iter().flat_map(|o| o.values()) {
                if let Some(id) = operation["operationId"].as_str() {
                    names.insert(id.to_owned(), path.clone());
                }
            }
        }
        Self(names)
    }

    /// The template of the route that answered: the operation's path in the spec, else the
    /// router's pattern (routes outside the spec), else empty (no route matched).
    fn of(&self, response: &Response) -> String {
        let operation = response
            .data::<OperationId>()
            .and_then(|id| self.0.get(id.0));
        match (operation, response.data::<PathPattern>()) {
            (Some(path), _) => path.clone(),
            (None, Some(pattern)) => pattern.0.to_string(),
            (None, None) => String::new(),
        }
    }
}

/// Runs one request through `endpoint` with its id, span, access line and metrics.
pub async fn observe<E: Endpoint>(
    endpoint: &E,
    mut request: Request,
    metrics: &Arc<Metrics>,
    routes: &RouteNames,
) -> poem::Result<Response> {
    let id = request_id(&request);
    let header = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(REQUEST_ID, header.clone());
    let method = request.method().as_str().to_owned();
    // Known before the call: a response made after the route was lost (a request timed out)
    // names no route.
    let upload = method == "POST" && request.uri().path() == UPLOAD_PATH;
    let span = tracing::info_span!("request", request_id = %id, method = %method,
        route = tracing::field::Empty, code = tracing::field::Empty);
    let started = Instant::now();

    let call = counting_backend_errors(metrics, endpoint.call(request));
    let mut response = match call.instrument(span.clone()).await {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    };

    let elapsed = started.elapsed();
    let route = match routes.of(&response) {
        // An upload answered after its route was lost (timed out) is still an upload.
        route if route.is_empty() && upload => UPLOAD_PATH.to_owned(),
        route => route,
    };
    let status = response.status().as_u16();
    metrics.http_request(&method, &route, status, elapsed);
    // An upload refused before its handler ran (token, slot, form, body size): the handler
    // counts the refusals it makes itself.
    if let Some(ErrorCode(code)) = response.data::<ErrorCode>() {
        if upload {
            metrics.upload_refused(code);
        }
    }
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
            assert_eq!(
                sane(&HeaderValue::from_str(bad).unwrap()),
                None,
                "{bad:?} kept"
            );
        }
        assert_eq!(
            sane(&HeaderValue::from_str(&"x".repeat(MAX_REQUEST_ID + 1)).unwrap()),
            None
        );
    }
}
