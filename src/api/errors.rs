//! Every error the API answers with: one type, one mapping from failures to an HTTP status
//! and a stable machine code, and a JSON body `{"code": ..., "message": ...}`.
//!
//! Unexpected failures become an opaque `500 internal_error`; the full error goes to the log
//! once, where it happened, never into the body.

use pixmill_actors::ports::BackendError;
use pixmill_actors::transform::InputError;
use poem::error::ResponseError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::Object;

use super::request_errors;
use crate::auth::AuthError;

/// The code of an error answered outside an operation's own result (a request that failed
/// to parse, an extractor's refusal, a body over the limit), kept with the response for
/// the layer that counts upload refusals (`request_log`). An operation's own error result
/// is counted where it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// The body of every error response.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable, machine-readable code, e.g. `unsupported_media_type`.
    pub code: String,
    /// What went wrong and what to do about it, for a person.
    pub message: String,
}

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            www_authenticate: None,
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Another owner's image, a deleted one and a random id all look exactly like this.
    pub fn image_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "image_not_found",
            "no image with this id belongs to you",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; try again",
        )
    }

    pub fn shutting_down() -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this server is shutting down; retry in a moment (another gateway, or this one once it is back)",
        );
        error.retry_after = Some(1);
        error
    }

    /// A backend failed: logged here, once, with its chain; the client sees a 503 when it
    /// may pass and a 500 otherwise.
    pub fn backend(error: &BackendError) -> Self {
        tracing::error!(backend = error.backend, error = %error, "backend call failed");
        crate::metrics::note_backend_error(error);
        if error.is_transient() {
            let mut api = Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backend_unavailable",
                format!(
                    "the {} backend is not answering; try again shortly",
                    error.backend
                ),
            );
            api.retry_after = Some(2);
            api
        } else {
            Self::internal()
        }
    }

    /// The body of the answer; also names its code on the request's span, for the access
    /// line (`request finished ... code=`).
    pub fn body(&self) -> ErrorBody {
        tracing::Span::current().record("code", self.code);
        ErrorBody {
            code: self.code.to_owned(),
            message: self.message.clone(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let mut api = Self::new(status, error.code(), error.to_string());
        // A 503 is no challenge to the client's credentials: it says when to come back.
        match error.retry_after() {
            Some(seconds) => api.retry_after = Some(seconds),
            None => api.www_authenticate = Some(error.challenge()),
        }
        api
    }
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        let status = match &error {
            InputError::Empty => StatusCode::BAD_REQUEST,
            InputError::TooManyBytes { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            InputError::UnsupportedFormat { .. } | InputError::FormatNotAllowed(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            InputError::DimensionsExceeded { .. }
            | InputError::ZeroSize
            | InputError::TooManyFrames { .. }
            | InputError::AnimationTooLarge { .. }
            | InputError::Truncated(_)
            | InputError::Corrupt(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, error.code(), error.to_string())
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let mut response = Json(self.body()).into_response();
        response.set_status(self.status);
        response.set_data(ErrorCode(self.code));
        if let Some(challenge) = &self.www_authenticate {
            if let Ok(value) = challenge.parse() {
                response
                    .headers_mut()
                    .insert(poem::http::header::WWW_AUTHENTICATE, value);
            }
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(poem::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// Renders any error that reaches the top of the router (a malformed request that failed to
/// parse, an unknown route, a body over the size limit) as the same JSON shape. The matched
/// route and operation stay on the response, for the HTTP metrics.
pub async fn render_any_error(error: poem::Error) -> Response {
    let pattern = error.data::<poem::PathPattern>().cloned();
    let operation = error.data::<poem_openapi::OperationId>().cloned();
    let mut response = render_error(error);
    if let Some(pattern) = pattern {
        response.set_data(pattern);
    }
    if let Some(operation) = operation {
        response.set_data(operation);
    }
    response
}

fn render_error(error: poem::Error) -> Response {
    if let Some(api) = error.downcast_ref::<ApiError>() {
        return api.as_response();
    }
    if error.is_from_response() {
        // An operation's own documented error response: already our JSON shape.
        return error.into_response();
    }
    if let Some(param) = error.downcast_ref::<poem_openapi::error::ParseParamError>() {
        return request_errors::parameter_error(param).as_response();
    }
    if let Some(form) = error.downcast_ref::<poem_openapi::error::ParseMultipartError>() {
        return request_errors::form_error(form).as_response();
    }
    if let Some(content_type) = error.downcast_ref::<poem_openapi::error::ContentTypeError>() {
        return request_errors::content_type_error(content_type).as_response();
    }
    let status = error.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint; see /docs".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not take that method".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "file_too_large",
            "the request body is over the upload limit".to_owned(),
        ),
        StatusCode::LENGTH_REQUIRED => (
            "length_required",
            "uploads need a Content-Length header".to_owned(),
        ),
        StatusCode::UNAUTHORIZED => (
            "missing_token",
            "this endpoint needs an Authorization: Bearer token".to_owned(),
        ),
        s if s.is_client_error() => ("invalid_request", error.to_string()),
        _ => {
            tracing::error!(error = %error, status = status.as_u16(), "request failed");
            (
                "internal_error",
                "something went wrong on our side; try again".to_owned(),
            )
        }
    };
    let mut api = ApiError::new(status, code, message);
    if status == StatusCode::UNAUTHORIZED {
        api.www_authenticate = Some(AuthError::MissingToken.challenge());
    }
    api.as_response()
}

/// Answers a request whose handler panicked with the opaque `500`, instead of dropping the
/// connection without a response. The panic message goes to the log; the body says nothing.
pub fn render_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
    ApiError::internal().as_response()
}

/// Declares an operation's error responses for the spec: `401` (every operation takes a
/// token; its meaning is written here once, because poem-openapi reads a doc attribute's
/// text as written, not what a macro in it would expand to), then the other statuses it
/// can answer, each with its meaning. Any `ApiError` converts into it; a status not listed
/// becomes a 500.
macro_rules! error_responses {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $status:literal : $doc:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, poem_openapi::ApiResponse)]
        pub enum $name {
            #[doc = "Missing, invalid or expired token (`missing_token`, `malformed_token`, `algorithm_not_allowed`, `forbidden_token_header`, `unknown_signing_key`, `invalid_signature`, `token_expired`, `token_not_yet_valid`, `wrong_issuer`, `wrong_audience`, `not_an_access_token`, `missing_claim`); `WWW-Authenticate` says the same."]
            #[oai(status = 401)]
            Unauthorized(
                poem_openapi::payload::Json<$crate::api::errors::ErrorBody>,
                /// The authentication challenge (401, 403).
                #[oai(header = "WWW-Authenticate")] Option<String>,
                /// Seconds to wait before retrying (429, 503).
                #[oai(header = "Retry-After")] Option<u64>,
            ),
            $(
                #[doc = $doc]
                #[oai(status = $status)]
                $variant(
                    poem_openapi::payload::Json<$crate::api::errors::ErrorBody>,
                    /// The authentication challenge (401, 403).
                    #[oai(header = "WWW-Authenticate")] Option<String>,
                    /// Seconds to wait before retrying (429, 503).
                    #[oai(header = "Retry-After")] Option<u64>,
                ),
            )+
            /// Something went wrong on our side.
            #[oai(status = 500)]
            Internal(poem_openapi::payload::Json<$crate::api::errors::ErrorBody>),
        }

        impl From<$crate::api::errors::ApiError> for $name {
            fn from(error: $crate::api::errors::ApiError) -> Self {
                // The body is made in the arm that answers, so the request's span records
                // the one code the client gets.
                let body = |error: &$crate::api::errors::ApiError| poem_openapi::payload::Json(error.body());
                match error.status.as_u16() {
                    401 => Self::Unauthorized(body(&error), error.www_authenticate, error.retry_after),
                    $($status => Self::$variant(body(&error), error.www_authenticate, error.retry_after),)+
                    _ => {
                        tracing::error!(status = error.status.as_u16(), code = error.code, "unlisted error status");
                        Self::Internal(poem_openapi::payload::Json($crate::api::errors::ApiError::internal().body()))
                    }
                }
            }
        }
    };
}

pub(crate) use error_responses;
