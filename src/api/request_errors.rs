//! Requests poem-openapi refused before a handler ran (a form it could not read, a body of
//! the wrong content type), as documented codes and messages that say what to change.
//!
//! The framework's own texts name its types, not the request's fields ("Expected input
//! type \"StepRequest\", found ..."); they are kept as the detail after a sentence that
//! names the field and where its schema is.

use poem::http::StatusCode;
use poem_openapi::error::{ContentTypeError, ParseMultipartError, ParseParamError};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};

use super::errors::ApiError;
use super::images::{invalid_wait, UploadForm};

/// Where a client finds every field's schema.
const SCHEMA_HINT: &str = "the schema is at /docs";

/// An upload form poem-openapi could not read: `invalid_steps` for the steps, otherwise
/// `invalid_request`, naming the field.
pub fn form_error(error: &ParseMultipartError) -> ApiError {
    let reason = error.reason.as_str();
    if let Some((field, detail)) = failed_field(reason) {
        if field == "steps" {
            return ApiError::bad_request(
                "invalid_steps",
                format!(
                    "`steps` could not be read: it is a JSON array of objects, each with an \
                     `op` (resize, crop, rotate, ...) and that op's fields; {SCHEMA_HINT} \
                     (StepRequest). Detail: {detail}"
                ),
            );
        }
        let expected = match allowed_values(field) {
            Some(values) => format!("it is one of {}; ", values.join(", ")),
            None => String::new(),
        };
        return ApiError::bad_request(
            "invalid_request",
            format!(
                "the form field `{field}` is not valid; {expected}{SCHEMA_HINT}. Detail: {detail}"
            ),
        );
    }
    if let Some((field, rule)) = refused_value(reason) {
        let code = match field {
            "background" => "invalid_background",
            _ => "invalid_request",
        };
        return ApiError::bad_request(
            code,
            format!("the form field `{field}` is out of its schema ({rule}); {SCHEMA_HINT}"),
        );
    }
    if let Some(field) = unknown_field(reason) {
        return ApiError::bad_request(
            "unknown_field",
            format!(
                "the form has a field `{field}` that uploads do not take (misspelled?); the \
                 fields are {}; {SCHEMA_HINT}",
                upload_fields().join(", ")
            ),
        );
    }
    if let Some(field) = missing_field(reason) {
        return ApiError::bad_request(
            "invalid_request",
            format!("the form needs a `{field}` field; {SCHEMA_HINT}"),
        );
    }
    ApiError::bad_request(
        "invalid_request",
        format!("the upload form could not be read: {reason}; {SCHEMA_HINT}"),
    )
}

/// A query or path parameter the spec's schema refused: the same code the handler gives
/// for a value the schema cannot describe, so a client sees one code per parameter whichever
/// check caught it, and a message in the parameter's terms rather than the schema's.
pub fn parameter_error(error: &ParseParamError) -> ApiError {
    let (code, message) = match error.name {
        "wait" => return invalid_wait(),
        "cursor" => (
            "invalid_cursor",
            "cursor must be the next_cursor of a previous page, as it was given".to_owned(),
        ),
        "status" => (
            "invalid_request",
            "status must be one of PENDING, PROCESSING, COMPLETED, FAILED (in capitals)".to_owned(),
        ),
        "limit" => (
            "invalid_request",
            "limit must be a whole number from 1 to 100".to_owned(),
        ),
        name => (
            "invalid_request",
            format!(
                "the parameter `{name}` is not valid ({}); {SCHEMA_HINT}",
                error.reason
            ),
        ),
    };
    ApiError::bad_request(code, message)
}

/// A body whose `Content-Type` the operation does not take.
pub fn content_type_error(error: &ContentTypeError) -> ApiError {
    let sent = match error {
        ContentTypeError::NotSupported { content_type } => format!("a body of type {content_type}"),
        ContentTypeError::ExpectContentType => "a body without a Content-Type".to_owned(),
    };
    // Only the upload takes a body, so the message can say what it takes.
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
        format!(
            "this endpoint does not take {sent}: an upload is multipart/form-data with a \
             `file` part; {SCHEMA_HINT}"
        ),
    )
}

/// `failed to parse field `name`: detail`, poem-openapi's text for a field it refused.
fn failed_field(reason: &str) -> Option<(&str, &str)> {
    let rest = reason.strip_prefix("failed to parse field `")?;
    let (field, detail) = rest.split_once("`: ")?;
    Some((field, without_parser_trail(detail)))
}

/// `detail` without the parser's ` (occurred while parsing "list_StepRequest")` trail,
/// which names its internal types, not anything the client sent.
fn without_parser_trail(detail: &str) -> &str {
    detail
        .find(" (occurred while parsing \"")
        .map_or(detail, |at| &detail[..at])
}

/// `field `name` verification failed. rule`: a value its validator refused.
fn refused_value(reason: &str) -> Option<(&str, &str)> {
    let rest = reason.strip_prefix("field `")?;
    let (field, rule) = rest.split_once("` verification failed. ")?;
    Some((field, rule))
}

/// `unknown field `name``: a part the form does not declare.
fn unknown_field(reason: &str) -> Option<&str> {
    reason.strip_prefix("unknown field `")?.strip_suffix('`')
}

/// The upload form's fields, from the schema the spec is generated from.
fn upload_fields() -> Vec<&'static str> {
    match <UploadForm as Payload>::schema_ref() {
        MetaSchemaRef::Inline(schema) => schema.properties.iter().map(|(name, _)| *name).collect(),
        MetaSchemaRef::Reference(_) => Vec::new(),
    }
}

/// The values an upload form field of an enumerated type takes (`format`: jpeg, png, ...),
/// read from the schema the spec is generated from.
fn allowed_values(field: &str) -> Option<Vec<String>> {
    let MetaSchemaRef::Inline(form) = <UploadForm as Payload>::schema_ref() else {
        return None;
    };
    let (_, property) = form.properties.iter().find(|(name, _)| *name == field)?;
    let mut registry = Registry::new();
    <UploadForm as Payload>::register(&mut registry);
    let schema = super::step_parts::resolve(&registry, property)?;
    let values: Vec<String> = schema
        .enum_items
        .iter()
        .filter_map(|value| value.as_str().map(str::to_owned))
        .collect();
    (!values.is_empty()).then_some(values)
}

/// `field `name` is required`.
fn missing_field(reason: &str) -> Option<&str> {
    reason
        .strip_prefix("field `")?
        .strip_suffix("` is required")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(reason: &str) -> ApiError {
        form_error(&ParseMultipartError {
            reason: reason.to_owned(),
        })
    }

    #[test]
    fn an_enumerated_field_lists_its_values() {
        let error = form("failed to parse field `format`: Expect a valid enumeration value.");
        assert_eq!(error.code, "invalid_request");
        assert!(
            error.message.contains("it is one of jpeg, png, webp"),
            "{}",
            error.message
        );
        let error = form("failed to parse field `quality`: failed to parse \"integer(uint8)\"");
        assert!(!error.message.contains("one of"), "{}", error.message);
    }

    #[test]
    fn a_refused_steps_field_is_invalid_steps_and_says_what_a_step_is() {
        let error = form(
            "failed to parse field `steps`: Expected input type \"StepRequest\", found {\"op\":\"foo\"} (occurred while parsing \"list_StepRequest\")",
        );
        assert!(
            !error.message.contains("occurred while parsing"),
            "the parser's own types are not the client's business: {}",
            error.message
        );
        assert_eq!(
            (error.status, error.code),
            (StatusCode::BAD_REQUEST, "invalid_steps")
        );
        assert!(error.message.starts_with("`steps` could not be read"));
        assert!(
            error.message.contains("{\"op\":\"foo\"}"),
            "{}",
            error.message
        );
    }

    #[test]
    fn an_unknown_form_field_is_named_with_the_fields_there_are() {
        let error = form("unknown field `step`");
        assert_eq!(
            (error.status, error.code),
            (StatusCode::BAD_REQUEST, "unknown_field")
        );
        assert!(
            error.message.contains("`step`") && error.message.contains("steps, "),
            "{}",
            error.message
        );
    }

    #[test]
    fn other_fields_are_named() {
        let error = form("failed to parse field `quality`: failed to parse \"integer\"");
        assert_eq!(error.code, "invalid_request");
        assert!(error
            .message
            .starts_with("the form field `quality` is not valid"));
        let error = form("field `background` verification failed. pattern(\"^#?[0-9a-f]{6}$\")");
        assert_eq!(error.code, "invalid_background");
        assert!(error
            .message
            .starts_with("the form field `background` is out of its schema"));
        let error = form("field `quality` verification failed. maximum(100, exclusive: false)");
        assert_eq!(error.code, "invalid_request");
        assert!(error.message.contains("`quality`"));
        let error = form("field `file` is required");
        assert_eq!(error.code, "invalid_request");
        assert!(error.message.starts_with("the form needs a `file` field"));
        let error = form("something else");
        assert_eq!(error.code, "invalid_request");
        assert!(error.message.contains("something else"));
    }

    #[test]
    fn a_body_of_the_wrong_type_names_the_type_sent() {
        let error = content_type_error(&ContentTypeError::NotSupported {
            content_type: "image/jpeg".to_owned(),
        });
        assert_eq!(
            (error.status, error.code),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type"
            )
        );
        assert!(error.message.contains("image/jpeg"));
    }
}
