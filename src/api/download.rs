//! A stored image streamed to the client, with the headers that keep browsers from
//! second-guessing it: the exact `Content-Type`, `nosniff`, and a sandboxing
//! `Content-Security-Policy`, so even an original with HTML or script appended to its image
//! data (a polyglot) is never run as a page when opened from pixmill's origin.

use pixmill_actors::ports::ObjectStream;
use pixmill_actors::ImageFormat;
use poem::http::header;
use poem::{Body, IntoResponse, Response};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::ApiResponse;

/// No scripts, no subresources, a unique origin: what a document served as an image gets.
const SANDBOX: &str = "default-src 'none'; sandbox";

/// The bytes of an image file.
pub struct ImageBytes {
    pub stream: ObjectStream,
    pub format: ImageFormat,
    pub file_name: String,
}

impl IntoResponse for ImageBytes {
    fn into_response(self) -> Response {
        let mut builder = Response::builder()
            .header(header::CONTENT_TYPE, self.format.mime())
            .header("X-Content-Type-Options", "nosniff")
            .header(header::CONTENT_SECURITY_POLICY, SANDBOX)
            .header(
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{}\"", self.file_name),
            )
            .header(header::CACHE_CONTROL, "private, max-age=3600");
        if let Some(length) = self.stream.length {
            builder = builder.header(header::CONTENT_LENGTH, length);
        }
        builder.body(Body::from_bytes_stream(self.stream.body))
    }
}

fn string_header(name: &str, description: &str) -> MetaHeader {
    MetaHeader {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        required: true,
        deprecated: false,
        schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new("string"))),
    }
}

impl ApiResponse for ImageBytes {
    fn meta() -> MetaResponses {
        let binary =
            || MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary")));
        let content = ImageFormat::ALL
            .iter()
            .map(|f| MetaMediaType {
                content_type: f.mime(),
                schema: binary(),
            })
            .collect();
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The image file, with its exact Content-Type.",
                status: Some(200),
                status_range: None,
                content,
                headers: vec![
                    string_header("X-Content-Type-Options", "Always `nosniff`."),
                    string_header(
                        "Content-Security-Policy",
                        "Always `default-src 'none'; sandbox`.",
                    ),
                    string_header(
                        "Content-Disposition",
                        "`inline` with a file name made from the image id.",
                    ),
                ],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}
