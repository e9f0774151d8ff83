//! The payload of `GET /v1/images/{id}/events`: a server-sent event stream of status
//! documents, described in the spec one event at a time.
//!
//! poem-openapi's own `EventStream` documents the stream as an `array` of documents, which
//! no SSE client sees: a client parses events (`event`, `data`, `id`, `retry` fields), and
//! OpenAPI 3.0 tools (schemathesis among them) read a `text/event-stream` schema as the
//! schema of one parsed event. So the bytes on the wire come from `EventStream`, and the
//! schema says what each event is: `event: message` with the JSON status document as `data`.

use futures_util::stream::BoxStream;
use poem::{IntoResponse, Response};
use poem_openapi::payload::{EventStream, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{Enum, Object};

use super::models::ImageDocument;

/// Status documents as server-sent events.
pub struct StatusEvents(pub EventStream<BoxStream<'static, ImageDocument>>);

// Only in the spec, never built: the wire format is written by `EventStream`.
/// One server-sent event of an image's status stream, as an SSE client parses it: `event`
/// is `message`, `data` the image's status document (`ImageDocument`) as JSON.
#[derive(Object)]
#[oai(rename = "ImageStatusEvent")]
#[allow(dead_code)] // never built: it describes what `EventStream` writes
struct StatusEvent {
    // Always `message`. A plain comment on purpose: a doc comment on a field of enum type
    // becomes an `allOf` wrapper in the spec, which generated clients refuse.
    event: StatusEventName,
    /// The image's status document (`ImageDocument`) as JSON text.
    data: String,
}

#[derive(Enum)]
#[oai(rename = "ImageStatusEventName", rename_all = "lowercase")]
#[allow(dead_code)]
enum StatusEventName {
    Message,
}

impl Payload for StatusEvents {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn schema_ref() -> MetaSchemaRef {
        StatusEvent::schema_ref()
    }

    fn register(registry: &mut Registry) {
        StatusEvent::register(registry);
        ImageDocument::register(registry);
    }
}

impl IntoResponse for StatusEvents {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}
