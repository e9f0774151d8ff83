//! `/v1/images`: upload, status, listing, downloads and deletion.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use pixmill_actors::pipeline::{OutputSpec, Rgb};
use pixmill_actors::ports::Bucket;
use pixmill_actors::{ImageFormat, JobSpec, Pipeline, Rendition, VariantName};
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::{ApiResponse, Enum, Multipart, OpenApi};

use super::download::{IfNoneMatch, ImageBytes, ImageDownload};
use super::errors::{error_responses, ApiError};
use super::file_part::FilePart;
use super::models::{ImageDocument, ImagePage, ImageStatusCode};
use super::security::BearerAuth;
use super::status_events::StatusEvents;
use super::step_parts::StepParts;
use super::steps::to_pipeline;
use super::upload_slot::UploadSlot;
use super::ApiTags;
use crate::gateway::{encode_cursor, Gateway, UploadRequest};

/// The output format of an upload; default: the input's when it can be written, else JPEG.
/// `avif` only from a server built with the `avif` feature; others refuse it with
/// `output_format_unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum OutputFormat {
    Jpeg,
    Png,
    Webp,
    Avif,
    Gif,
}

impl From<OutputFormat> for ImageFormat {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Jpeg => ImageFormat::Jpeg,
            OutputFormat::Png => ImageFormat::Png,
            OutputFormat::Webp => ImageFormat::Webp,
            OutputFormat::Avif => ImageFormat::Avif,
            OutputFormat::Gif => ImageFormat::Gif,
        }
    }
}

/// An upload: the image and what to do with it. A part with any other name is refused
/// (`unknown_field`): a misspelled option would otherwise be dropped without a word.
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct UploadForm {
    /// The image. Its format is read from its bytes; the file name and Content-Type sent with
    /// it are ignored. Default limits: 32 MiB, 16384 px a side, 100 megapixels.
    pub file: FilePart,
    /// Operations in order, as a JSON array, e.g.
    /// `[{"op":"resize","width":800},{"op":"grayscale"}]` (or one part per step, each a JSON
    /// object, joined in order). Default: fit inside 1024x1024.
    pub steps: StepParts,
    /// A named pipeline from the server's configuration, instead of `steps`.
    pub preset: Option<String>,
    /// Extra renditions: comma-separated preset names, stored as variants.
    pub variants: Option<String>,
    // No doc comment here: poem-openapi would wrap the enum's `$ref` in an `allOf`, which
    // client generators refuse for non-object schemas. `OutputFormat` documents it.
    pub format: Option<OutputFormat>,
    /// Quality of lossy formats.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub quality: Option<u8>,
    /// Colour that transparency is flattened onto for formats without alpha, `#rrggbb`.
    #[oai(validator(pattern = r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"))]
    pub background: Option<String>,
    /// Keep every frame of an animated GIF or WebP (when the output format can hold them).
    pub animated: Option<bool>,
    /// An `http(s)` URL to POST the status document to when the job ends (`COMPLETED` or
    /// `FAILED`), with `X-Pixmill-Timestamp` (Unix seconds) and `X-Pixmill-Signature:
    /// v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
    /// Its host must resolve to public addresses only (`callback_url_not_allowed`).
    #[oai(validator(max_length = 2048))]
    pub callback_url: Option<String>,
}

#[derive(ApiResponse)]
pub enum UploadResponse {
    /// Accepted: stored and queued for processing. Poll the status document.
    #[oai(status = 202)]
    Accepted(Json<ImageDocument>, #[oai(header = "Location")] String),
}

error_responses!(
    /// Why an upload was refused.
    UploadError {
        BadRequest = 400: "Malformed request, empty file, invalid steps or options (`empty_upload`, `invalid_steps`, `unknown_preset`, `invalid_background`, `invalid_idempotency_key`, `unknown_field`, `invalid_request`), an output format this build cannot write (`output_format_unavailable`: AVIF needs the `avif` feature), or a refused `callback_url` (`invalid_callback_url`, `callback_url_unresolvable`, `callback_url_not_allowed`, `webhooks_disabled`).",
        Forbidden = 403: "The token lacks the role uploads require (`missing_role`).",
        Timeout = 408: "The request, body included, took longer than the server allows (`request_timeout`).",
        TooLarge = 413: "The body is over the byte limit, declared or streamed (`file_too_large`).",
        Unsupported = 415: "Not an image pixmill accepts: SVG, HTML, PDF, HEIC... (`unsupported_media_type`, `format_not_allowed`), or a body that is not `multipart/form-data` (`unsupported_content_type`).",
        Unprocessable = 422: "Dimensions, frames or animation size over the limits, a zero-sized image, a corrupt header or a file that ends early (`image_dimensions_exceed_limit`, `too_many_frames`, `animation_too_large`, `image_zero_size`, `corrupt_image`, `truncated_image`), steps that would make a result larger than an input may be (`result_too_large`), a crop that starts outside the image (`crop_outside_image`), steps that would take more rendering than a job may ask for (`steps_too_costly`: a smaller blur or sharpen sigma, a smaller image, fewer steps), or an `Idempotency-Key` first sent with another file or other options (`idempotency_key_reused`).",
        TooMany = 429: "Over the per-owner upload rate (`rate_limited`), or the owner already has as many uploads in progress as allowed (`too_many_concurrent_uploads`); see Retry-After. Both are checked before the body is read.",
        Unavailable = 503: "A backend is down (`backend_unavailable`), or this gateway is shutting down (`shutting_down`), or the token issuer's keys cannot be fetched (`issuer_unavailable`); see Retry-After.",
    }
);

#[derive(ApiResponse)]
pub enum ImageResponse {
    /// The status document.
    #[oai(status = 200)]
    Ok(Json<ImageDocument>),
}

error_responses!(
    /// Why the status document could not be read.
    PollError {
        BadRequest = 400: "`wait` is not a duration of at most 60 s (`invalid_wait`).",
        NotFound = 404: "No such image for this caller (`image_not_found`; another owner's image looks the same); for downloads, also an image not `COMPLETED` (`not_processed`), a variant it does not have (`unknown_variant`), or a file lost from storage (`file_missing`: upload the image again).",
        Unavailable = 503: "A backend is down (`backend_unavailable`), or the token issuer's keys cannot be fetched (`issuer_unavailable`); see Retry-After.",
    }
);

#[derive(ApiResponse)]
pub enum EventsResponse {
    /// The status document now, then after every change, as `message` events whose data is
    /// the JSON document; comments keep the connection alive. The stream ends after a final
    /// status (`COMPLETED` or `FAILED`), after 10 minutes, or when the token expires
    /// (reconnect, with a fresh token, to go on); and, with no last event, when the image
    /// is deleted (a reconnect answers `404 image_not_found`).
    #[oai(status = 200)]
    Events(StatusEvents),
}

error_responses!(
    /// Why an image could not be read.
    ReadError {
        NotFound = 404: "No such image for this caller (`image_not_found`; another owner's image looks the same); for downloads, also an image not `COMPLETED` (`not_processed`), a variant it does not have (`unknown_variant`), or a file lost from storage (`file_missing`: upload the image again).",
        Unavailable = 503: "A backend is down (`backend_unavailable`), or the token issuer's keys cannot be fetched (`issuer_unavailable`); see Retry-After.",
    }
);

#[derive(ApiResponse)]
pub enum PageResponse {
    /// The caller's images, newest first.
    #[oai(status = 200)]
    Ok(Json<ImagePage>),
}

error_responses!(
    /// Why the listing failed.
    ListError {
        BadRequest = 400: "Invalid cursor (`invalid_cursor`) or another parameter out of its schema, e.g. `limit` or `status` (`invalid_request`).",
        Unavailable = 503: "A backend is down (`backend_unavailable`), or the token issuer's keys cannot be fetched (`issuer_unavailable`); see Retry-After.",
    }
);

#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// Deleted, with both objects.
    #[oai(status = 204)]
    Deleted,
}

/// The upload's path, for the request log, which tells an upload refused before any route
/// ran (a body over the limit, a request timed out) by it; the attributes on
/// [`ImagesApi::upload`] must spell the same (the HTTP metrics test of a 413 reads the
/// route it gives).
pub const UPLOAD_PATH: &str = "/v1/images";

pub struct ImagesApi;

#[OpenApi(prefix_path = "/v1", tag = "ApiTags::Images")]
impl ImagesApi {
    /// Upload an image for processing.
    ///
    /// Answers `202` as soon as the original is stored and the job is queued. A retried
    /// request with the same `Idempotency-Key` returns the same image, never a second one,
    /// as long as that image exists (once it is deleted, the key is free again); the key
    /// sent with another file or other options is refused (`422 idempotency_key_reused`).
    #[oai(path = "/images", method = "post", operation_id = "upload_image")]
    async fn upload(
        &self,
        gateway: Data<&Arc<Gateway>>,
        auth: BearerAuth,
        _slot: UploadSlot,
        /// Makes retries safe: the same key from the same owner with the same file and options
        /// always returns the same image.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        /// Carried into the worker's logs to follow one upload end to end (`request_id`).
        /// Any request may send one (1 to 128 of `[A-Za-z0-9._:-]`); otherwise the server
        /// makes one. Every response returns it in `X-Request-Id`.
        #[oai(name = "X-Request-Id")]
        request_id: Header<Option<String>>,
        form: UploadForm,
    ) -> Result<UploadResponse, UploadError> {
        let result = upload(*gateway, &auth, idempotency_key.0, request_id.0, form).await;
        match &result {
            Ok(_) => gateway.metrics.upload_accepted(),
            Err(error) => gateway.metrics.upload_refused(error.code),
        }
        Ok(result?)
    }

    /// The status document of one of the caller's images.
    ///
    /// With `wait`, a long poll: answers as soon as the status differs from the one the image
    /// had when the request arrived, or when the wait ends (then with the current document).
    /// An image already `COMPLETED` or `FAILED` answers at once.
    #[oai(path = "/images/:id", method = "get", operation_id = "get_image")]
    async fn get(
        &self,
        gateway: Data<&Arc<Gateway>>,
        auth: BearerAuth,
        id: Path<String>,
        /// Long poll for up to this long: seconds (`30`, `30s`) or milliseconds (`500ms`),
        /// at most `60s`.
        #[oai(validator(pattern = r"^((60|[1-5]?[0-9])s?|(60000|[1-5]?[0-9]{1,4})ms)$"))]
        wait: Query<Option<String>>,
    ) -> Result<ImageResponse, PollError> {
        let record = match wait.0.as_deref().map(parse_wait).transpose()? {
            Some(wait) => gateway.image_after_change(&auth.0, &id.0, wait).await?,
            None => gateway.image(&auth.0, &id.0).await?,
        };
        Ok(ImageResponse::Ok(Json(ImageDocument::from(&record))))
    }

    /// Server-sent events: the status document now and after every change, until the job
    /// is final.
    #[oai(
        path = "/images/:id/events",
        method = "get",
        operation_id = "image_events"
    )]
    async fn events(
        &self,
        gateway: Data<&Arc<Gateway>>,
        auth: BearerAuth,
        id: Path<String>,
    ) -> Result<EventsResponse, ReadError> {
        let records = Arc::clone(*gateway).image_changes(auth.0, &id.0).await?;
        let documents = records.map(|record| ImageDocument::from(&record)).boxed();
        Ok(EventsResponse::Events(StatusEvents(
            EventStream::new(documents).keep_alive(KEEP_ALIVE),
        )))
    }

    /// The caller's images, newest first.
    #[oai(path = "/images", method = "get", operation_id = "list_images")]
    async fn list(
        &self,
        gateway: Data<&Arc<Gateway>>,
        auth: BearerAuth,
        /// Only images in this status.
        status: Query<Option<ImageStatusCode>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
    ) -> Result<PageResponse, ListError> {
        let page = gateway
            .list(
                &auth.0,
                status.0.map(Into::into),
                cursor.0.as_deref(),
                limit.0,
            )
            .await?;
        Ok(PageResponse::Ok(Json(ImagePage {
            items: page.items.iter().map(ImageDocument::from).collect(),
            next_cursor: page.next.as_ref().map(encode_cursor),
        })))
    }

    /// Download the original as uploaded.
    #[oai(
        path = "/images/:id/original",
        method = "get",
        operation_id = "download_original"
    )]
    async fn original(
        &self,
        gateway: Data<&Arc<Gateway>>,
        auth: BearerAuth,
        id: Path<String>,
        /// The `ETag` of a copy the caller has: answered `304` when it is this file's.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<IfNoneMatch>>,
    ) -> Result<ImageDownload, ReadError> {
        let record = gateway.image(&auth.0, &id.0).await?;
        let original = &record.original;
        let open = async {
            Ok(ImageBytes {
                stream: gateway
                    .open(&auth.0, &record, Bucket::Raw, original)
                    .await?,
                format: original.format,
                file_name: format!("{}-original.{}", record.id, original.format.extension()),
            })
        };
        Ok(ImageDownload::answer(if_none_match.0.as_ref(), &original.sha256, open).await?)
    }

    /// Download the primary rendition; `404 not_processed` until the image is `COMPLETED`.
    #[oai(
        path = "/images/:id/processed",
        method = "get",
        operation_id = "download_processed"
    )]
    async fn processed(
        &self,
        gateway: Data<&Arc<Gateway>>,
        auth: BearerAuth,
        id: Path<String>,
        /// The `ETag` of a copy the caller has: answered `304` when it is this file's.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<IfNoneMatch>>,
    ) -> Result<ImageDownload, ReadError> {
        download_variant(&gateway, &auth, &id.0, None, if_none_match.0.as_ref())
            .await
            .map_err(Into::into)
    }

    /// Download a named variant.
    #[oai(
        path = "/images/:id/variants/:name",
        method = "get",
        operation_id = "download_variant"
    )]
    async fn variant(
        &self,
        gateway: Data<&Arc<Gateway>>,
        auth: BearerAuth,
        id: Path<String>,
        name: Path<String>,
        /// The `ETag` of a copy the caller has: answered `304` when it is this file's.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<IfNoneMatch>>,
    ) -> Result<ImageDownload, ReadError> {
        download_variant(
            &gateway,
            &auth,
            &id.0,
            Some(&name.0),
            if_none_match.0.as_ref(),
        )
        .await
        .map_err(Into::into)
    }

    /// Delete an image: its record, its original and every rendition.
    #[oai(path = "/images/:id", method = "delete", operation_id = "delete_image")]
    async fn delete(
        &self,
        gateway: Data<&Arc<Gateway>>,
        auth: BearerAuth,
        id: Path<String>,
    ) -> Result<DeleteResponse, ReadError> {
        gateway.delete(&auth.0, &id.0).await?;
        Ok(DeleteResponse::Deleted)
    }
}

/// How often an idle event stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The longest `wait` a long poll accepts.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The refusal of a `wait` that is not a duration of at most 60 s, whichever check (the
/// spec's pattern or [`parse_wait`]) refused it.
pub(super) fn invalid_wait() -> ApiError {
    ApiError::bad_request(
        "invalid_wait",
        "wait must be seconds or milliseconds, at most 60 s, e.g. 30s or 500ms",
    )
}

/// `wait` as a duration. The spec's pattern already admits only `0`-`60` seconds (`30`,
/// `30s`) or `0`-`60000` milliseconds (`500ms`); this parses what the pattern let through
/// and refuses the rest the same way, should the two ever drift apart.
fn parse_wait(raw: &str) -> Result<Duration, ApiError> {
    let wait = if let Some(millis) = raw.strip_suffix("ms") {
        Duration::from_millis(millis.parse().map_err(|_| invalid_wait())?)
    } else {
        Duration::from_secs(
            raw.strip_suffix('s')
                .unwrap_or(raw)
                .parse()
                .map_err(|_| invalid_wait())?,
        )
    };
    if wait > MAX_WAIT {
        return Err(invalid_wait());
    }
    Ok(wait)
}

async fn upload(
    gateway: &Gateway,
    auth: &BearerAuth,
    idempotency_key: Option<String>,
    trace_id: Option<String>,
    form: UploadForm,
) -> Result<UploadResponse, ApiError> {
    let spec = job_spec(gateway, &form)?;
    let callback_url = form.callback_url.clone();
    let bytes = read_file(form.file, gateway.limits.max_bytes)?;
    let request = UploadRequest {
        bytes,
        spec,
        idempotency_key,
        trace_id,
        callback_url,
    };
    let (record, _created) = gateway.upload(&auth.0, request).await?;
    let document = ImageDocument::from(&record);
    let location = format!("/v1/images/{}", document.id);
    Ok(UploadResponse::Accepted(Json(document), location))
}

async fn download_variant(
    gateway: &Gateway,
    auth: &BearerAuth,
    id: &str,
    name: Option<&str>,
    if_none_match: Option<&IfNoneMatch>,
) -> Result<ImageDownload, ApiError> {
    let record = gateway.image(&auth.0, id).await?;
    if record.status != pixmill_actors::Status::Completed {
        let message = match record.status {
            pixmill_actors::Status::Failed => {
                "the image FAILED, so it has no processed files (its status says why)".to_owned()
            }
            status => format!(
                "the image is {status} and has no processed files yet; they can be downloaded \
                 once it is COMPLETED (poll its status)"
            ),
        };
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_processed",
            message,
        ));
    }
    let variant = match name {
        None => record.primary(),
        Some(name) => record.variants.iter().find(|v| v.name.as_str() == name),
    }
    .ok_or_else(|| {
        let names: Vec<&str> = record
            .variants
            .iter()
            .map(|v| v.name.as_str())
            .filter(|n| *n != VariantName::main().as_str())
            .collect();
        let have = if names.is_empty() {
            "it has none (ask for them at upload with `variants`)".to_owned()
        } else {
            format!("its variants are {}", names.join(", "))
        };
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_variant",
            format!(
                "this image has no variant named {:?}; {have}",
                name.unwrap_or("main")
            ),
        )
    })?;
    let image = &variant.image;
    let open = async {
        Ok(ImageBytes {
            stream: gateway
                .open(&auth.0, &record, Bucket::Processed, image)
                .await?,
            format: image.format,
            file_name: format!(
                "{}-{}.{}",
                record.id,
                variant.name,
                image.format.extension()
            ),
        })
    };
    ImageDownload::answer(if_none_match, &image.sha256, open).await
}

/// The file's bytes, refused when above the limit. The body limit (`limits.max_bytes` plus
/// a small allowance for the form) has already capped what was read, so the file is
/// received in memory, as the gateway needs it anyway: poem-openapi's `Upload` would spool
/// it to a temporary file through tokio's blocking pool, a thread hand-off per chunk written
/// and read back, which cost more than the rest of an upload.
fn read_file(file: FilePart, max_bytes: u64) -> Result<Bytes, ApiError> {
    let bytes = file.0;
    if bytes.len() as u64 > max_bytes {
        return Err(pixmill_actors::transform::InputError::TooManyBytes {
            bytes: bytes.len() as u64,
            limit: max_bytes,
        }
        .into());
    }
    Ok(bytes)
}

/// Builds the job's renditions from the form: the primary one from `steps` or `preset`,
/// then one per name in `variants`.
fn job_spec(gateway: &Gateway, form: &UploadForm) -> Result<JobSpec, ApiError> {
    let invalid = |e: pixmill_actors::pipeline::StepError| {
        ApiError::bad_request("invalid_steps", e.to_string())
    };
    // The client's own choice, checked against this gateway's build (the workers run the same
    // image in a deployment): refused now rather than a job that could only fail. A preset's
    // format is the server's configuration, not the client's to fix.
    if let Some(format) = form.format.map(ImageFormat::from) {
        if !format.is_writable() {
            return Err(ApiError::bad_request(
                "output_format_unavailable",
                format!(
                    "this server cannot write {format} (AVIF needs a build with the `avif` \
                     feature); ask for jpeg, png, webp or gif"
                ),
            ));
        }
    }
    let background = form
        .background
        .as_deref()
        .map(Rgb::parse_hex)
        .transpose()
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_background",
                "background must be a hex colour like #ffffff",
            )
        })?;
    let overrides = |mut output: OutputSpec| {
        if let Some(format) = form.format {
            output.format = Some(format.into());
        }
        output.quality = form.quality.or(output.quality);
        output.background = background.or(output.background);
        output.animated = form.animated.unwrap_or(output.animated);
        output
    };

    let (pipeline, output) = match (&form.steps.0, &form.preset) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_steps",
                "send either steps or preset, not both",
            ))
        }
        (Some(steps), None) => (to_pipeline(steps).map_err(invalid)?, OutputSpec::default()),
        (None, Some(name)) => preset(gateway, name)?,
        (None, None) => (Pipeline::default_thumbnail(), OutputSpec::default()),
    };
    let mut renditions = vec![Rendition {
        name: VariantName::main(),
        pipeline,
        output: overrides(output),
    }];
    for name in form
        .variants
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let variant = VariantName::parse(name)
            .map_err(|e| ApiError::bad_request("unknown_preset", e.to_string()))?;
        // Looked up first, so a name that is no preset (`main` included: the primary
        // rendition's name) is refused like any other, not skipped as a duplicate.
        let (pipeline, output) = preset(gateway, name)?;
        if renditions.iter().any(|r| r.name == variant) {
            continue;
        }
        renditions.push(Rendition {
            name: variant,
            pipeline,
            output: overrides(output),
        });
    }
    Ok(JobSpec { renditions })
}

fn preset(gateway: &Gateway, name: &str) -> Result<(Pipeline, OutputSpec), ApiError> {
    let preset = gateway.presets.get(name).ok_or_else(|| {
        let known: Vec<&str> = gateway.presets.keys().map(String::as_str).collect();
        ApiError::bad_request(
            "unknown_preset",
            format!("no preset named {name:?}; configured presets: {known:?}"),
        )
    })?;
    let pipeline = Pipeline::new(preset.steps.clone())
        .map_err(|e| ApiError::bad_request("invalid_steps", e.to_string()))?;
    Ok((pipeline, preset.output.clone()))
}
