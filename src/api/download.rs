//! A stored image streamed to the client, with the headers that keep browsers from
//! second-guessing it: the exact `Content-Type`, `nosniff`, and a sandboxing
//! `Content-Security-Policy`, so even an original with HTML or script appended to its image
//! data (a polyglot) is never run as a page when opened from pixmill's origin.
//!
//! Every file's entity tag is its SHA-256 (kept with the image's record), so a client or
//! cache that sends it back in `If-None-Match` gets `304 Not Modified` without the object
//! store being read at all. A stored file never changes under its tag: a repeated render
//! writes the same bytes.

use std::borrow::Cow;

use pixmill_actors::ports::ObjectStream;
use pixmill_actors::ImageFormat;
use poem::http::{header, StatusCode};
use poem::{Body, IntoResponse, Response};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ParseFromParameter, ParseResult, Type};
use poem_openapi::ApiResponse;

const ETAG_HEADER: &str = "ETag";
const ETAG_DESCRIPTION: &str =
    "The file's SHA-256 in quotes; send it back in `If-None-Match` to be answered `304`.";

/// No scripts, no subresources, a unique origin: what a document served as an image gets.
const SANDBOX: &str = "default-src 'none'; sandbox";

/// Who may keep a downloaded file, and for how long: only the caller's own caches (the
/// request carried a token), for an hour.
const CACHE_CONTROL: &str = "private, max-age=3600";

/// The answer to a download: the file, or `304` when the caller has it already; either
/// way with the file's entity tag.
pub enum ImageDownload {
    File { file: ImageBytes, etag: String },
    NotModified { etag: String },
}

/// The request's `If-None-Match`, every line of it: a list header may arrive as several
/// lines, which mean what one line joined by commas does (RFC 9110 5.3), and a cache
/// holding several copies may send one per tag. The spec describes it as the string it is
/// on the wire (an array there would be a different header to clients).
pub struct IfNoneMatch(Vec<String>);

impl Type for IfNoneMatch {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromParameter for IfNoneMatch {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Self(vec![value.to_owned()]))
    }

    fn parse_from_parameters<I: IntoIterator<Item = A>, A: AsRef<str>>(
        lines: I,
    ) -> ParseResult<Self> {
        Ok(Self(
            lines.into_iter().map(|l| l.as_ref().to_owned()).collect(),
        ))
    }
}

impl ImageDownload {
    /// `NotModified` when a line of `if_none_match` names the file of digest `sha256`;
    /// otherwise the file, opened by `open` (only then is the object store read).
    pub async fn answer<F>(
        if_none_match: Option<&IfNoneMatch>,
        sha256: &str,
        open: F,
    ) -> Result<Self, super::errors::ApiError>
    where
        F: std::future::Future<Output = Result<ImageBytes, super::errors::ApiError>>,
    {
        let etag = etag(sha256);
        let lines = if_none_match.map_or(&[][..], |header| &header.0);
        if lines.iter().any(|line| names_tag(line, sha256)) {
            return Ok(Self::NotModified { etag });
        }
        Ok(Self::File {
            file: open.await?,
            etag,
        })
    }
}

/// The bytes of an image file.
pub struct ImageBytes {
    pub stream: ObjectStream,
    pub format: ImageFormat,
    pub file_name: String,
}

/// A file's entity tag: its digest, quoted (a strong tag).
fn etag(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// Whether an `If-None-Match` value names the file of digest `sha256`: `*`, or any tag in
/// its list, weak or strong (`If-None-Match` compares weakly, RFC 9110 13.1.2).
fn names_tag(value: &str, sha256: &str) -> bool {
    value.split(',').map(str::trim).any(|tag| {
        let opaque = tag.strip_prefix("W/").unwrap_or(tag);
        tag == "*"
            || opaque
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
                .is_some_and(|inner| inner == sha256)
    })
}

impl IntoResponse for ImageDownload {
    fn into_response(self) -> Response {
        let (file, etag) = match self {
            Self::NotModified { etag } => {
                return Response::builder()
                    .status(StatusCode::NOT_MODIFIED)
                    .header(header::ETAG, etag)
                    .header(header::CACHE_CONTROL, CACHE_CONTROL)
                    .finish();
            }
            Self::File { file, etag } => (file, etag),
        };
        let mut builder = Response::builder()
            .header(header::CONTENT_TYPE, file.format.mime())
            .header("X-Content-Type-Options", "nosniff")
            .header(header::CONTENT_SECURITY_POLICY, SANDBOX)
            .header(
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{}\"", file.file_name),
            )
            .header(header::ETAG, etag)
            .header(header::CACHE_CONTROL, CACHE_CONTROL);
        if let Some(length) = file.stream.length {
            builder = builder.header(header::CONTENT_LENGTH, length);
        }
        builder.body(Body::from_bytes_stream(file.stream.body))
    }
}

fn cache_control_header() -> MetaHeader {
    string_header("Cache-Control", &format!("Always `{CACHE_CONTROL}`."))
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

impl ApiResponse for ImageDownload {
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
            responses: vec![
                MetaResponse {
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
                        string_header(ETAG_HEADER, ETAG_DESCRIPTION),
                        cache_control_header(),
                    ],
                },
                MetaResponse {
                    description:
                        "The caller has this file already: `If-None-Match` named its `ETag`.",
                    status: Some(304),
                    status_range: None,
                    content: Vec::new(),
                    headers: vec![
                        string_header(ETAG_HEADER, ETAG_DESCRIPTION),
                        cache_control_header(),
                    ],
                },
            ],
        }
    }

    fn register(_registry: &mut Registry) {}
}

#[cfg(test)]
mod tests {
    use super::names_tag;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn if_none_match_names_a_file_by_any_listed_tag_weak_or_strong() {
        let quoted = format!("\"{SHA}\"");
        for value in [
            quoted.clone(),
            format!("W/{quoted}"),
            format!("\"other\", {quoted}"),
            "*".to_owned(),
        ] {
            assert!(names_tag(&value, SHA), "{value}");
        }
        let (unquoted, half_quoted) = (SHA.to_owned(), format!("\"{SHA}"));
        for value in ["\"other\"", "", "W/\"9f86\"", &unquoted, &half_quoted] {
            assert!(!names_tag(value, SHA), "{value}");
        }
    }
}
