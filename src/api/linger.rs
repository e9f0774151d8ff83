//! Reads what is left of a refused request's body, within bounds, before the answer goes out.
//!
//! Uploads are refused before their body is read (a bad token `401`, a missing role `403`, a
//! rate limit `429`, a declared length over the limit `413`), so the answer is ready while
//! the client is still sending. hyper then closes the connection with unread bytes in its
//! receive buffer; the kernel answers the client's next segment with a reset, and a client
//! that had not yet read the answer loses it: it sees a broken connection instead of a code
//! it could act on (refresh the token, wait `Retry-After`). Reading and discarding up to
//! [`LINGER_BYTES`] within [`LINGER_TIME`] first gets small and nearly-sent bodies their
//! answer; a larger body is still cut off, so a refusal never costs more than that.
//!
//! A client that sent `Expect: 100-continue` waits for the answer before sending its body,
//! so nothing of it is in flight: it is answered at once, and no body is asked for.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, BoxStream};
use futures_util::StreamExt;
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use tokio::sync::Mutex;

/// The most of a refused body read before answering.
const LINGER_BYTES: u64 = 1024 * 1024;
/// The longest a refusal waits for the rest of its body.
const LINGER_TIME: Duration = Duration::from_secs(1);

type Chunks = BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

pub async fn linger_on_refusal<E: Endpoint>(
    endpoint: &E,
    mut request: Request,
) -> poem::Result<Response> {
    let expects_continue = request
        .headers()
        .get(poem::http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    // The endpoint reads the body through a handle on a shared stream, so whatever it left
    // unread is still here once it has answered.
    let body: Arc<Mutex<Chunks>> =
        Arc::new(Mutex::new(request.take_body().into_bytes_stream().boxed()));
    let handle = Arc::clone(&body);
    let chunks = stream::unfold(handle, |handle| async move {
        let next = handle.lock().await.next().await;
        next.map(|chunk| (chunk, handle))
    });
    request.set_body(Body::from_bytes_stream(chunks));

    let result = endpoint
        .call(request)
        .await
        .map(IntoResponse::into_response);
    let refused = result.as_ref().map_or(true, |r| !r.status().is_success());
    if refused && !expects_continue {
        let mut rest = body.lock().await;
        let drain = async {
            let mut read = 0u64;
            while let Some(Ok(chunk)) = rest.next().await {
                read += chunk.len() as u64;
                if read > LINGER_BYTES {
                    break;
                }
            }
        };
        // Either end is fine: the body is done, or it was too long or too slow to wait for.
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    }
    result
}
