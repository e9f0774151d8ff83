//! Object storage on MinIO or any S3-compatible store, through the `minio` crate.
//!
//! Only plain S3 calls are used (create bucket, put, get, delete, bucket exists), each
//! bounded by [`S3Config::request_timeout`], within which a call that failed in a way that
//! may pass is sent again, twice at most (see `S3ObjectStore::call`). Objects are written in
//! one PUT with their content type and an `x-amz-checksum-sha256`, which the store verifies
//! before keeping the object; the engine's reads (`get`) ask for the stored checksum back and
//! verify it. Streamed downloads (`get_stream`) pass the bytes on as they arrive, unverified:
//! the whole body would have to be held first (a client can compare the status document's
//! `sha256`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use minio::s3::builders::{PutObject, UploadPart};
use minio::s3::creds::StaticProvider;
use minio::s3::error::{Error as S3Error, NetworkError, S3ServerError, ValidationErr};
use minio::s3::http::BaseUrl;
use minio::s3::minio_error_response::MinioErrorCode;
use minio::s3::multimap_ext::{Multimap, MultimapExt};
use minio::s3::segmented_bytes::SegmentedBytes;
use minio::s3::types::{BucketName, ListEntry, Region, S3Api, ToStream};
use minio::s3::utils::ChecksumAlgorithm;
use minio::s3::{MinioClient, MinioClientBuilder};
use pixmill_actors::ports::{
    BackendError, Bucket, ErrorKind, ListedObject, ObjectKey, ObjectStore, ObjectStream,
};

mod policy;

const BACKEND: &str = "s3";

/// Asks the store to return the checksum it keeps, so reads can verify it.
const CHECKSUM_MODE: (&str, &str) = ("x-amz-checksum-mode", "ENABLED");

/// Codes (lower-cased, as the crate reports codes it has no variant for) meaning the bucket
/// exists already; both count as success for `ensure_buckets`.
const BUCKET_EXISTS_CODE: &str = "bucketalreadyexists";

/// How many times a call that failed with `Unavailable` is sent in all, and the pause before
/// the second (each later pause is four times longer): 50 ms, then 200 ms.
const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Error codes (lowercase, as the crate keeps them) after which sending the same request
/// again cannot succeed: credentials, signatures, names and malformed requests. Every code
/// not listed here, nor among the crate's own variants handled in [`code_kind`], counts as
/// transient: MinIO answers an overload, a lost read or write quorum or a server still
/// starting with codes of its own (`SlowDownWrite`, `XMinioReadQuorum`,
/// `XMinioServerNotInitialized`, ...), and a job retried in vain still ends `FAILED` after
/// its attempts, where one refused in error would end `FAILED` at once for an outage.
const PERMANENT_CODES: [&str; 22] = [
    "accountproblem",
    "allaccessdisabled",
    "authorizationheadermalformed",
    "authorizationqueryparameterserror",
    "entitytoolarge",
    "entitytoosmall",
    "expiredtoken",
    "invalidaccesskeyid",
    "invalidargument",
    "invalidbucketname",
    "invalidobjectname",
    "invalidrange",
    "invalidrequest",
    "invalidstorageclass",
    "invalidtoken",
    "keytoolongerror",
    "malformedxml",
    "missingcontentlength",
    "notimplemented",
    "requesttimetooskewed",
    "signaturedoesnotmatch",
    "xminioinvalidobjectname",
];

/// Where and how to reach the store.
#[derive(Clone)]
pub struct S3Config {
    /// Base URL with an explicit scheme, `http://host:port` or `https://host`.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// Signing region; default `us-east-1`. Set, it also spares a location lookup per bucket.
    pub region: String,
    /// Prepended to both bucket names (`<prefix>raw-images`); empty by default. Lets tests and
    /// several deployments share one store.
    pub bucket_prefix: String,
    /// Bound on each request, and on each wait for the next chunk of a streamed read.
    pub request_timeout: Duration,
}

impl S3Config {
    pub const DEFAULT_REGION: &'static str = "us-east-1";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// A configuration with the defaults for everything but the endpoint and credentials.
    pub fn new(
        endpoint: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: Self::DEFAULT_REGION.to_owned(),
            bucket_prefix: String::new(),
            request_timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &"[redacted]")
            .field("region", &self.region)
            .field("bucket_prefix", &self.bucket_prefix)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The two buckets on an S3 store.
///
/// Known limit: objects are sent in a single PUT, held in memory whole (S3 caps that at
/// 5 GiB; pixmill's uploads are far below). No multipart upload is ever started, which also
/// avoids stores' differing ETag behaviour after one.
#[derive(Clone)]
pub struct S3ObjectStore {
    client: MinioClient,
    raw: BucketName,
    processed: BucketName,
    timeout: Duration,
    endpoint: Arc<str>,
}

impl S3ObjectStore {
    /// Builds the client; does not contact the store (see [`ObjectStore::ping`] and
    /// [`ObjectStore::ensure_buckets`]). Fails with `Rejected` on a malformed endpoint, region
    /// or bucket prefix.
    pub fn connect(config: &S3Config) -> Result<Self, BackendError> {
        if !config.endpoint.starts_with("http://") && !config.endpoint.starts_with("https://") {
            // The crate would read a bare host as https; say so instead of guessing.
            return Err(rejected(
                "the S3 endpoint needs an http:// or https:// scheme",
            ));
        }
        let mut base_url: BaseUrl = config
            .endpoint
            .trim_end_matches('/')
            .parse()
            .map_err(|e| rejected("invalid S3 endpoint").with_source(e))?;

        // A region on the base URL is used as is, with no location request per bucket.
        base_url.region = Region::new(&config.region)
            .map_err(|e| rejected("invalid S3 region").with_source(e))?;

        let provider = StaticProvider::new(&config.access_key, &config.secret_key, None);
        let client = MinioClientBuilder::new(base_url)
            .provider(Some(provider))
            .build()
            .map_err(|e| BackendError::internal(BACKEND, e))?;

        Ok(Self {
            client,
            raw: bucket_name(config, Bucket::Raw)?,
            processed: bucket_name(config, Bucket::Processed)?,
            timeout: config.request_timeout,
            endpoint: config.endpoint.trim_end_matches('/').into(),
        })
    }

    fn bucket(&self, bucket: Bucket) -> &BucketName {
        match bucket {
            Bucket::Raw => &self.raw,
            Bucket::Processed => &self.processed,
        }
    }

    /// Runs a request, mapping the crate's errors. A request that fails with `Unavailable`
    /// (connection refused or reset, a 5xx, a throttling code) is sent again after a short
    /// pause, up to [`ATTEMPTS`] times in all, as the AWS SDKs do: a pooled connection the
    /// store closed just as it was reused fails once and works the next time, and every call
    /// made here is idempotent (a PUT of the same key and bytes included). All attempts share
    /// one [`S3Config::request_timeout`], so a call never takes longer than without them:
    /// the budgets built on it (the job lease, the gateway's request timeout, readiness
    /// probes) hold.
    async fn call<T, F, Fut>(&self, what: &str, request: F) -> Result<T, BackendError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, S3Error>>,
    {
        let attempts = async {
            let mut attempt = 1;
            loop {
                let error = match request().await {
                    Ok(value) => return Ok(value),
                    Err(error) => map_error(error),
                };
                if error.kind != ErrorKind::Unavailable || attempt >= ATTEMPTS {
                    return Err(error);
                }
                let pause = RETRY_PAUSE * 4u32.pow(attempt - 1);
                tracing::debug!(call = what, attempt, error = %error, pause_ms = pause.as_millis() as u64,
                    "object store call failed; sending it again");
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::timeout(
                BACKEND,
                format!("{what} took longer than {:?}", self.timeout),
            )),
        }
    }

    async fn create_bucket(&self, name: &BucketName) -> Result<(), BackendError> {
        let request = async {
            self.client
                .create_bucket(name.clone())?
                .build()
                .send()
                .await
        };
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(BackendError::timeout(BACKEND, "create bucket")),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if bucket_exists(&e) => Ok(()),
            Ok(Err(e)) => Err(map_error(e)),
        }
    }

    /// Fails with `Rejected` (start-up stops, no retry) when the bucket's policy grants an
    /// anonymous principal anything.
    async fn refuse_public(&self, name: &BucketName) -> Result<(), BackendError> {
        let request = async {
            self.client
                .get_bucket_policy(name.clone())?
                .build()
                .send()
                .await
        };
        let response = match tokio::time::timeout(self.timeout, request).await {
            Err(_) => return Err(BackendError::timeout(BACKEND, "get bucket policy")),
            Ok(Ok(response)) => response,
            Ok(Err(e)) if not_implemented(&e) => {
                tracing::warn!(bucket = %name, "the store has no bucket policies; cannot check that the bucket is private");
                return Ok(());
            }
            Ok(Err(e)) => return Err(map_error(e)),
        };
        let document = response
            .config()
            .map_err(|e| BackendError::internal(BACKEND, e))?;
        match policy::grants_anonymous(document) {
            Ok(false) => Ok(()),
            Ok(true) => {
                tracing::error!(bucket = %name, "bucket policy grants anonymous access; refusing to start");
                Err(rejected(&format!(
                    "bucket {name} has a policy that lets anyone access it; pixmill serves objects only through the gateway, after the ownership check: remove the policy (e.g. `mc anonymous set none`) and start again"
                )))
            }
            Err(error) => Err(BackendError::new(
                BACKEND,
                ErrorKind::Rejected,
                format!("bucket {name} has a policy that is not JSON"),
            )
            .with_source(error)),
        }
    }

    /// One ListObjectsV2 request: up to `limit` entries after `start_after`, as listed.
    async fn list_page(
        &self,
        bucket: Bucket,
        start_after: Option<String>,
        limit: u16,
    ) -> Result<Vec<ListEntry>, BackendError> {
        let request = || async {
            let mut pages = self
                .client
                .list_objects(self.bucket(bucket).clone())
                .map_err(S3Error::from)?
                .recursive(true)
                .start_after(start_after.clone())
                .max_keys(limit)
                .build()
                .to_stream()
                .await;
            match pages.next().await {
                Some(page) => page.map(|page| page.contents),
                None => Ok(Vec::new()),
            }
        };
        self.call("list objects", request).await
    }

    fn checksum_headers() -> Multimap {
        let mut headers = Multimap::new();
        headers.add(CHECKSUM_MODE.0, CHECKSUM_MODE.1);
        headers
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    /// Creates both buckets if missing, then refuses a bucket that anyone may read (see
    /// `policy`).
    async fn ensure_buckets(&self) -> Result<(), BackendError> {
        for bucket in Bucket::ALL {
            self.create_bucket(self.bucket(bucket)).await?;
            self.refuse_public(self.bucket(bucket)).await?;
        }
        Ok(())
    }

    async fn put(
        &self,
        bucket: Bucket,
        key: &ObjectKey,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), BackendError> {
        let object = object_key(key).map_err(map_error)?;
        let request = || {
            let upload = UploadPart::builder()
                .client(self.client.clone())
                .bucket(self.bucket(bucket).clone())
                .object(object.clone())
                .data(Arc::new(SegmentedBytes::from(body.clone())))
                .content_type(content_type.to_owned())
                .checksum_algorithm(ChecksumAlgorithm::SHA256)
                .build();
            PutObject::builder().inner(upload).build().send()
        };
        match self.call("put object", request).await {
            Ok(_) => Ok(()),
            // A put finds nothing missing but its bucket: removed, or a store that lost
            // its data. Made again as at start (a public policy refused), once, so uploads
            // recover without a restart.
            Err(error) if error.kind == ErrorKind::NotFound => {
                let name = self.bucket(bucket);
                tracing::warn!(bucket = %name, error = %error,
                    "the bucket is missing; creating it again");
                // Within one more timeout as a whole: the put's own bound, once again.
                let recover = async {
                    self.create_bucket(name).await?;
                    self.refuse_public(name).await?;
                    self.call("put object", request).await.map(drop)
                };
                tokio::time::timeout(self.timeout, recover)
                    .await
                    .unwrap_or_else(|_| {
                        Err(BackendError::timeout(
                            BACKEND,
                            "recreating a missing bucket",
                        ))
                    })
            }
            Err(error) => Err(error),
        }
    }

    async fn get(&self, bucket: Bucket, key: &ObjectKey) -> Result<Bytes, BackendError> {
        let request = || async {
            self.client
                .get_object(self.bucket(bucket).clone(), object_key(key)?)
                .map_err(S3Error::from)?
                .extra_headers(Some(Self::checksum_headers()))
                .build()
                .send()
                .await?
                .content_verified()
                .await
        };
        self.call("get object", request).await
    }

    async fn get_stream(
        &self,
        bucket: Bucket,
        key: &ObjectKey,
    ) -> Result<ObjectStream, BackendError> {
        let request = || async {
            let response = self
                .client
                .get_object(self.bucket(bucket).clone(), object_key(key)?)
                .map_err(S3Error::from)?
                .extra_headers(Some(Self::checksum_headers()))
                .build()
                .send()
                .await?;
            let length = response.object_size().ok();
            let (body, _) = response
                .content()?
                .to_stream()
                .await
                .map_err(|e| S3Error::Validation(ValidationErr::IOError(e)))?;
            Ok((length, body))
        };
        let (length, body) = self.call("get object", request).await?;
        Ok(ObjectStream {
            length,
            body: with_idle_timeout(body, self.timeout),
        })
    }

    /// ListObjectsV2 requests until a page holds a valid key or the bucket ends: entries
    /// that are not pixmill's keys are skipped, and a page of nothing but those must not
    /// read as the end of the listing. An entry without a modification time is listed as
    /// modified now, so age-based clean-up never takes it for old.
    async fn list(
        &self,
        bucket: Bucket,
        after: Option<&ObjectKey>,
        limit: u16,
    ) -> Result<Vec<ListedObject>, BackendError> {
        let mut start_after = after.map(|key| key.as_str().to_owned());
        loop {
            let entries = self.list_page(bucket, start_after.clone(), limit).await?;
            let Some(last) = entries.last() else {
                return Ok(Vec::new());
            };
            start_after = Some(last.name.clone());
            let listed: Vec<_> = entries
                .into_iter()
                .filter(|entry| !entry.is_prefix && !entry.is_delete_marker)
                .filter_map(|entry| {
                    let key = ObjectKey::parse(entry.name).ok()?;
                    let modified = entry.last_modified.unwrap_or_else(chrono::Utc::now);
                    Some(ListedObject { key, modified })
                })
                .collect();
            if !listed.is_empty() {
                return Ok(listed);
            }
        }
    }

    async fn delete(&self, bucket: Bucket, key: &ObjectKey) -> Result<(), BackendError> {
        let request = || async {
            self.client
                .delete_object(self.bucket(bucket).clone(), key.as_str())?
                .build()
                .send()
                .await
        };
        match self.call("delete object", request).await {
            Ok(_) => Ok(()),
            // S3 answers 204 for a missing key; some stores say NoSuchKey instead.
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Both buckets exist (a download reads either).
    async fn ping(&self) -> Result<(), BackendError> {
        for bucket in Bucket::ALL {
            let name = self.bucket(bucket);
            let request = || async {
                self.client
                    .bucket_exists(name.clone())?
                    .build()
                    .send()
                    .await
            };
            let response = self.call("bucket exists", request).await?;
            if !response.exists() {
                return Err(BackendError::new(
                    BACKEND,
                    ErrorKind::Unavailable,
                    format!("bucket {} does not exist", name.as_str()),
                ));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "s3 at {} (buckets {}, {})",
            self.endpoint,
            self.raw.as_str(),
            self.processed.as_str()
        )
    }
}

fn bucket_name(config: &S3Config, bucket: Bucket) -> Result<BucketName, BackendError> {
    let name = format!("{}{}", config.bucket_prefix, bucket.name());
    BucketName::try_from(name.as_str())
        .map_err(|e| rejected("the bucket prefix makes an invalid bucket name").with_source(e))
}

fn object_key(key: &ObjectKey) -> Result<minio::s3::types::ObjectKey, S3Error> {
    minio::s3::types::ObjectKey::try_from(key.as_str()).map_err(S3Error::from)
}

fn rejected(message: &str) -> BackendError {
    BackendError::new(BACKEND, ErrorKind::Rejected, message)
}

/// The store does not implement the call (some S3-compatible stores lack bucket policies).
fn not_implemented(error: &S3Error) -> bool {
    match error {
        S3Error::S3Server(S3ServerError::S3Error(response)) => matches!(
            response.code(),
            MinioErrorCode::OtherError(code) if code.eq_ignore_ascii_case("notimplemented")
        ),
        _ => false,
    }
}

fn bucket_exists(error: &S3Error) -> bool {
    match error {
        S3Error::S3Server(S3ServerError::S3Error(response)) => match response.code() {
            MinioErrorCode::BucketAlreadyOwnedByYou => true,
            MinioErrorCode::OtherError(code) => code.eq_ignore_ascii_case(BUCKET_EXISTS_CODE),
            _ => false,
        },
        _ => false,
    }
}

/// Sorts the crate's errors by what the caller should do about them.
fn map_error(error: S3Error) -> BackendError {
    let kind = error_kind(&error);
    BackendError::new(BACKEND, kind, describe_error(&error)).with_source(error)
}

fn error_kind(error: &S3Error) -> ErrorKind {
    match error {
        S3Error::Validation(ValidationErr::HttpError(e))
        | S3Error::Network(NetworkError::ReqwestError(e)) => {
            if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Unavailable
            }
        }
        S3Error::Network(NetworkError::ServerError(status))
        | S3Error::S3Server(S3ServerError::HttpError(status, _))
        | S3Error::S3Server(S3ServerError::InvalidServerResponse {
            http_status_code: status,
            ..
        }) => status_kind(*status),
        S3Error::S3Server(S3ServerError::S3Error(response)) => code_kind(&response.code()),
        // A checksum mismatch or a broken body: the next attempt may well succeed.
        S3Error::Validation(ValidationErr::ChecksumMismatch { .. })
        | S3Error::Validation(ValidationErr::IOError(_))
        | S3Error::DriveIo(_) => ErrorKind::Internal,
        S3Error::Validation(_) => ErrorKind::Rejected,
    }
}

/// Sorts an S3 error code: missing things, requests that cannot succeed (see
/// [`PERMANENT_CODES`]), and the rest, which may pass.
fn code_kind(code: &MinioErrorCode) -> ErrorKind {
    match code {
        MinioErrorCode::NoSuchKey
        | MinioErrorCode::NoSuchBucket
        | MinioErrorCode::ResourceNotFound => ErrorKind::NotFound,
        // Access denied, a wrong region or endpoint, a malformed or unsupported request.
        MinioErrorCode::AccessDenied
        | MinioErrorCode::BadRequest
        | MinioErrorCode::MethodNotAllowed
        | MinioErrorCode::NotSupported
        | MinioErrorCode::PermanentRedirect
        | MinioErrorCode::Redirect
        | MinioErrorCode::InvalidWriteOffset
        | MinioErrorCode::BucketNotEmpty
        | MinioErrorCode::BucketAlreadyOwnedByYou
        | MinioErrorCode::WarehouseBucketOperationNotSupported => ErrorKind::Rejected,
        MinioErrorCode::OtherError(code) if PERMANENT_CODES.contains(&code.as_str()) => {
            ErrorKind::Rejected
        }
        _ => ErrorKind::Unavailable,
    }
}

fn status_kind(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        500.. => ErrorKind::Unavailable,
        _ => ErrorKind::Rejected,
    }
}

/// The crate's top-level messages ("Network error occurred") hide the cause; put the
/// innermost one in the message.
fn describe_error(error: &S3Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}

/// Ends the stream with a timeout error when the store sends nothing for `idle`.
fn with_idle_timeout(
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send>>,
    idle: Duration,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(item)) => Some((item, Some(body))),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the object store stopped sending",
                )),
                None,
            )),
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_take_the_prefix() {
        let mut config = S3Config::new("http://127.0.0.1:9000", "key", "secret");
        config.bucket_prefix = "staging-".to_owned();

        let store = S3ObjectStore::connect(&config).unwrap();

        assert_eq!(store.bucket(Bucket::Raw).as_str(), "staging-raw-images");
        assert_eq!(
            store.bucket(Bucket::Processed).as_str(),
            "staging-processed-images"
        );
    }

    #[test]
    fn a_prefix_that_breaks_bucket_naming_is_refused() {
        let mut config = S3Config::new("http://127.0.0.1:9000", "key", "secret");
        config.bucket_prefix = "Not_Valid/".to_owned();

        let error = S3ObjectStore::connect(&config).err().unwrap();

        assert_eq!(error.kind, ErrorKind::Rejected);
    }

    #[test]
    fn minio_outage_codes_are_transient_and_request_faults_are_not() {
        let kind = |code: &str| code_kind(&code.parse::<MinioErrorCode>().unwrap());
        // MinIO's answers while it lost quorum, is overloaded or is still starting (503s).
        for code in [
            "SlowDown",
            "SlowDownWrite",
            "SlowDownRead",
            "XMinioServerNotInitialized",
            "XMinioReadQuorum",
            "XMinioWriteQuorum",
            "InternalError",
            "ServiceUnavailable",
            "SomeCodeNoListKnows",
        ] {
            assert_eq!(kind(code), ErrorKind::Unavailable, "{code}");
        }
        for code in [
            "AccessDenied",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "InvalidBucketName",
        ] {
            assert_eq!(kind(code), ErrorKind::Rejected, "{code}");
        }
        assert_eq!(kind("NoSuchKey"), ErrorKind::NotFound);
    }

    #[test]
    fn debug_output_hides_the_secret_key() {
        let config = S3Config::new("http://127.0.0.1:9000", "key", "very-secret");
        assert!(!format!("{config:?}").contains("very-secret"));
    }
}
