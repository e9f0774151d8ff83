//! A hard bound on request bodies, before any of it is parsed or buffered.
//!
//! A declared `Content-Length` over the limit is refused at once with `413`; a body without
//! one (chunked) is cut off with an error as soon as it passes the limit, so a client cannot
//! stream an unbounded upload by leaving the length out. Either way the client sees the same
//! `413 file_too_large`, never the parser's complaint about a stream that broke off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use poem::error::ResponseError;
use poem::http::{header, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Request, Response};

use pixmill_actors::transform::ByteSize;

use super::errors::ApiError;

/// What a request body may hold: a file of up to `file` bytes (`limits.max_bytes`) and
/// `form` bytes more for the other form fields and the multipart framing.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit {
    pub file: u64,
    pub form: u64,
}

impl BodyLimit {
    fn max(self) -> u64 {
        self.file.saturating_add(self.form)
    }

    /// The limit in the terms a person configured it in.
    fn describe(self) -> String {
        format!(
            "limits.max_bytes allows a file of {}, and the other form fields {} more",
            ByteSize(self.file),
            ByteSize(self.form)
        )
    }
}

pub async fn limit_body<E: Endpoint>(
    endpoint: &E,
    mut request: Request,
    limit: BodyLimit,
) -> poem::Result<Response> {
    let max = limit.max();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > max => Ok(too_large(format!(
            "the request is {}; {}",
            ByteSize(length),
            limit.describe()
        ))),
        Some(_) => endpoint
            .call(request)
            .await
            .map(IntoResponse::into_response),
        None => {
            // Set by the stream when it cuts the body off; whatever the parser made of the
            // broken stream, the answer is then a 413.
            let overflowed = Arc::new(AtomicBool::new(false));
            let flag = overflowed.clone();
            let mut seen: u64 = 0;
            let stream = request.take_body().into_bytes_stream().map(move |chunk| {
                let chunk = chunk?;
                seen += chunk.len() as u64;
                if seen > max {
                    flag.store(true, Ordering::SeqCst);
                    return Err(std::io::Error::other("request body over the upload limit"));
                }
                Ok(chunk)
            });
            request.set_body(Body::from_bytes_stream(stream));
            let result = endpoint
                .call(request)
                .await
                .map(IntoResponse::into_response);
            if overflowed.load(Ordering::SeqCst) {
                return Ok(too_large(format!(
                    "the request is over the limit: {}",
                    limit.describe()
                )));
            }
            result
        }
    }
}

/// `413 file_too_large`. Answered before any route ran, so it names none: the request log
/// tells an upload by its method and path, and counts it as an upload refused, on the
/// upload's route.
fn too_large(message: String) -> Response {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large", message).as_response()
}

#[cfg(test)]
mod tests {
    use super::BodyLimit;

    #[test]
    fn the_limit_is_told_in_the_setting_a_person_made() {
        let limit = BodyLimit {
            file: 500_000,
            form: 256 * 1024,
        };
        assert_eq!(
            limit.describe(),
            "limits.max_bytes allows a file of 488.3 KiB (500000 bytes), and the other form \
             fields 256.0 KiB (262144 bytes) more"
        );
    }
}
