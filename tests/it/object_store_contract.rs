//! The `ObjectStore` contract, written once over `Arc<dyn ObjectStore>` and run against the
//! filesystem store (a temp dir) and S3 (the test S3 server, a bucket prefix per test).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use pixmill::backends::fs_objects::FsObjectStore;
use pixmill::backends::s3::{S3Config, S3ObjectStore};
use pixmill_actors::ports::{Bucket, ListedObject, ObjectKey, ObjectStore};

use crate::service_env::{service_url, unavailable, unique_name};

/// A store for one test, and whatever must live as long as it.
struct Fixture {
    store: Arc<dyn ObjectStore>,
    _dir: Option<tempfile::TempDir>,
}

async fn filesystem() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let store = FsObjectStore::open(dir.path()).await.unwrap();
    Some(Fixture {
        store: Arc::new(store),
        _dir: Some(dir),
    })
}

fn s3_config() -> Option<S3Config> {
    let url = service_url("S3", "PIXMILL_TEST_S3_URL", None)?;
    let access = std::env::var("PIXMILL_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "testing".into());
    let secret = std::env::var("PIXMILL_TEST_S3_SECRET_KEY").unwrap_or_else(|_| "testing".into());
    let mut config = S3Config::new(url, access, secret);
    config.bucket_prefix = unique_name("t") + "-";
    Some(config)
}

/// A store on the test S3 server with its buckets made, and its configuration; None (after
/// `unavailable`, which fails the run under CI) when there is no server.
async fn s3_store() -> Option<(S3Config, S3ObjectStore)> {
    let config = s3_config()?;
    let store = S3ObjectStore::connect(&config).unwrap();
    if let Err(e) = store.ensure_buckets().await {
        unavailable("S3", e);
        return None;
    }
    Some((config, store))
}

async fn s3() -> Option<Fixture> {
    let (_, store) = s3_store().await?;
    Some(Fixture {
        store: Arc::new(store),
        _dir: None,
    })
}

fn key(raw: &str) -> ObjectKey {
    ObjectKey::parse(raw).unwrap()
}

/// A body larger than one read buffer, so streamed reads come in several chunks.
fn photo_bytes(len: usize) -> Bytes {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

async fn read_stream(
    store: &dyn ObjectStore,
    bucket: Bucket,
    key: &ObjectKey,
) -> (Option<u64>, Vec<u8>) {
    let stream = store.get_stream(bucket, key).await.unwrap();
    let chunks: Vec<Bytes> = stream.body.try_collect().await.unwrap();
    (stream.length, chunks.concat())
}

async fn put_then_get_returns_the_bytes(store: Arc<dyn ObjectStore>) {
    let key = key("0190aa/main.jpg");
    let body = photo_bytes(300_000);

    store
        .put(Bucket::Processed, &key, body.clone(), "image/jpeg")
        .await
        .unwrap();

    assert_eq!(store.get(Bucket::Processed, &key).await.unwrap(), body);
    let (length, streamed) = read_stream(store.as_ref(), Bucket::Processed, &key).await;
    assert_eq!(length, Some(body.len() as u64));
    assert_eq!(streamed, body);
}

async fn overwrite_replaces_the_whole_object(store: Arc<dyn ObjectStore>) {
    let key = key("0190ab/original");
    store
        .put(Bucket::Raw, &key, photo_bytes(100_000), "image/png")
        .await
        .unwrap();

    let shorter = Bytes::from_static(b"a much shorter second version");
    store
        .put(Bucket::Raw, &key, shorter.clone(), "image/png")
        .await
        .unwrap();

    assert_eq!(store.get(Bucket::Raw, &key).await.unwrap(), shorter);
    let (_, streamed) = read_stream(store.as_ref(), Bucket::Raw, &key).await;
    assert_eq!(streamed, shorter);
}

async fn missing_object_is_not_found(store: Arc<dyn ObjectStore>) {
    let key = key("never/written.jpg");

    let error = store.get(Bucket::Raw, &key).await.unwrap_err();
    assert!(error.is_not_found(), "get: {error}");
    let error = store.get_stream(Bucket::Raw, &key).await.err().unwrap();
    assert!(error.is_not_found(), "get_stream: {error}");
}

async fn buckets_are_separate(store: Arc<dyn ObjectStore>) {
    let key = key("0190ac/main.webp");
    store
        .put(Bucket::Raw, &key, photo_bytes(10), "image/webp")
        .await
        .unwrap();

    let error = store.get(Bucket::Processed, &key).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
}

async fn delete_removes_and_tolerates_missing(store: Arc<dyn ObjectStore>) {
    let key = key("0190ad/main.png");
    store
        .put(Bucket::Processed, &key, photo_bytes(1_000), "image/png")
        .await
        .unwrap();

    store.delete(Bucket::Processed, &key).await.unwrap();
    assert!(store
        .get(Bucket::Processed, &key)
        .await
        .unwrap_err()
        .is_not_found());

    store.delete(Bucket::Processed, &key).await.unwrap();
    store
        .delete(Bucket::Raw, &ObjectKey::parse("no/such/object").unwrap())
        .await
        .unwrap();
}

async fn ensure_buckets_twice_keeps_objects(store: Arc<dyn ObjectStore>) {
    let key = key("0190ae/original");
    store.ensure_buckets().await.unwrap();
    store
        .put(Bucket::Raw, &key, photo_bytes(64), "image/gif")
        .await
        .unwrap();

    store.ensure_buckets().await.unwrap();

    assert_eq!(store.get(Bucket::Raw, &key).await.unwrap(), photo_bytes(64));
    store.ping().await.unwrap();
}

async fn empty_object_round_trips(store: Arc<dyn ObjectStore>) {
    let key = key("0190af/empty");
    store
        .put(Bucket::Raw, &key, Bytes::new(), "application/octet-stream")
        .await
        .unwrap();

    assert!(store.get(Bucket::Raw, &key).await.unwrap().is_empty());
}

async fn listing_pages_through_keys_in_order(store: Arc<dyn ObjectStore>) {
    for raw in ["0190d2.jpg", "0190d1/main.jpg", "0190d0.png"] {
        store
            .put(Bucket::Raw, &key(raw), photo_bytes(8), "image/jpeg")
            .await
            .unwrap();
    }
    let names = |page: &[ListedObject]| -> Vec<String> {
        page.iter().map(|o| o.key.as_str().to_owned()).collect()
    };

    let first = store.list(Bucket::Raw, None, 2).await.unwrap();
    let rest = store
        .list(Bucket::Raw, Some(&first[1].key), 2)
        .await
        .unwrap();
    let end = store
        .list(Bucket::Raw, Some(&rest[0].key), 2)
        .await
        .unwrap();

    assert_eq!(names(&first), ["0190d0.png", "0190d1/main.jpg"]);
    assert_eq!(names(&rest), ["0190d2.jpg"]);
    assert!(end.is_empty());
    assert!(store
        .list(Bucket::Processed, None, 10)
        .await
        .unwrap()
        .is_empty());
    let age = chrono::Utc::now() - first[0].modified;
    assert!(
        age.num_hours().abs() < 1,
        "modified {} is not the time of the put",
        first[0].modified
    );
}

/// One `#[tokio::test]` per contract case, for one backend.
macro_rules! contract {
    ($fixture:path) => {
        contract!(@cases $fixture;
            put_then_get_returns_the_bytes,
            overwrite_replaces_the_whole_object,
            missing_object_is_not_found,
            buckets_are_separate,
            delete_removes_and_tolerates_missing,
            ensure_buckets_twice_keeps_objects,
            empty_object_round_trips,
            listing_pages_through_keys_in_order,
        );
    };
    (@cases $fixture:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(fixture) = $fixture().await else { return };
                super::$case(Arc::clone(&fixture.store)).await;
            }
        )+
    };
}

mod filesystem {
    use super::*;

    contract!(super::filesystem);

    #[tokio::test]
    async fn open_removes_unfinished_writes_and_keeps_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).await.unwrap();
        let kept = key("0190b0/main.jpg");
        store
            .put(Bucket::Processed, &kept, photo_bytes(5), "image/jpeg")
            .await
            .unwrap();
        drop(store);

        // What a crash mid-write leaves behind: a staging file and no object.
        let staging = dir.path().join("processed-images").join("~staging");
        let leftover = staging.join("crashed.part");
        std::fs::write(&leftover, b"half an ima").unwrap();

        let store = FsObjectStore::open(dir.path()).await.unwrap();

        assert!(!leftover.exists());
        assert_eq!(
            store.get(Bucket::Processed, &kept).await.unwrap(),
            photo_bytes(5)
        );
    }

    #[tokio::test]
    async fn a_key_prefix_is_not_an_object() {
        let fixture = super::filesystem().await.unwrap();
        let store = fixture.store;
        store
            .put(
                Bucket::Raw,
                &key("0190b1/original"),
                photo_bytes(5),
                "image/png",
            )
            .await
            .unwrap();

        let error = store.get(Bucket::Raw, &key("0190b1")).await.unwrap_err();
        assert!(error.is_not_found(), "{error}");
        store.delete(Bucket::Raw, &key("0190b1")).await.unwrap();
        store
            .get(Bucket::Raw, &key("0190b1/original"))
            .await
            .unwrap();
    }
}

mod s3 {
    use super::*;
    use crate::support::proxy::Proxy;
    use minio::s3::creds::StaticProvider;
    use minio::s3::http::BaseUrl;
    use minio::s3::multimap_ext::{Multimap, MultimapExt};
    use minio::s3::response_traits::{HasChecksumHeaders, HasS3Fields};
    use minio::s3::types::S3Api;
    use minio::s3::utils::ChecksumAlgorithm;
    use minio::s3::MinioClientBuilder;

    contract!(super::s3);

    /// Looks behind the port: the object keeps its content type and the checksum sent with
    /// it, read back with a plain client.
    #[tokio::test]
    async fn objects_keep_content_type_and_checksum() {
        let Some((config, store)) = s3_store().await else {
            return;
        };
        let key = key("0190c0/main.webp");
        store
            .put(Bucket::Processed, &key, photo_bytes(2_000), "image/webp")
            .await
            .unwrap();

        let base: BaseUrl = config.endpoint.parse().unwrap();
        let client = MinioClientBuilder::new(base)
            .provider(Some(StaticProvider::new(
                &config.access_key,
                &config.secret_key,
                None,
            )))
            .build()
            .unwrap();
        let mut headers = Multimap::new();
        headers.add("x-amz-checksum-mode", "ENABLED");
        let bucket = format!("{}processed-images", config.bucket_prefix);
        let response = client
            .get_object(bucket.as_str(), key.as_str())
            .unwrap()
            .extra_headers(Some(headers))
            .build()
            .send()
            .await
            .unwrap();

        let content_type = response.headers().get("content-type").unwrap();
        assert_eq!(content_type, "image/webp");
        // A store that keeps the checksum returns it; moto keeps only the algorithm sent
        // with it. Either way the put carried a SHA-256 checksum.
        use base64::Engine;
        use sha2::Digest;
        let expected = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(photo_bytes(2_000)));
        let headers = response.headers();
        match response.get_checksum(ChecksumAlgorithm::SHA256) {
            Some(stored) => assert_eq!(stored, expected),
            None => assert_eq!(
                headers
                    .get("x-amz-checksum-algorithm")
                    .map(|v| v.as_bytes()),
                Some(&b"SHA256"[..]),
                "no checksum recorded: {headers:?}"
            ),
        }
    }

    /// The test S3 server's endpoint behind a proxy that drops the first connection
    /// unanswered, and a store that goes through it.
    async fn dropping_first_connection(config: &S3Config) -> (Proxy, S3ObjectStore) {
        let upstream = config
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let upstream = std::net::ToSocketAddrs::to_socket_addrs(upstream)
            .unwrap()
            .next()
            .unwrap();
        let proxy = Proxy::dropping_first(upstream).await;
        let mut proxied = config.clone();
        proxied.endpoint = format!("http://127.0.0.1:{}", proxy.port);
        (proxy, S3ObjectStore::connect(&proxied).unwrap())
    }

    /// Reads and writes survive one dropped connection: the store sends the call again
    /// instead of failing a download (a 503 to the client) or a job attempt.
    #[tokio::test]
    async fn a_dropped_connection_is_sent_again() {
        let Some((config, direct)) = s3_store().await else {
            return;
        };
        let object = key("0190c1/main.jpg");
        let body = photo_bytes(40_000);

        let (_proxy, store) = dropping_first_connection(&config).await;
        store
            .put(Bucket::Processed, &object, body.clone(), "image/jpeg")
            .await
            .expect("the put is sent again after the dropped connection");
        let (_proxy, store) = dropping_first_connection(&config).await;
        let (_, streamed) = read_stream(&store, Bucket::Processed, &object).await;

        assert_eq!(streamed, body);
        assert_eq!(direct.get(Bucket::Processed, &object).await.unwrap(), body);
    }

    #[tokio::test]
    async fn unreachable_store_is_unavailable_not_missing() {
        // A loopback port with nothing behind it: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = S3Config::new(format!("http://127.0.0.1:{port}"), "k", "s");
        let store = S3ObjectStore::connect(&config).unwrap();

        let error = store.get(Bucket::Raw, &key("a/b")).await.unwrap_err();

        assert_eq!(
            error.kind,
            pixmill_actors::ports::ErrorKind::Unavailable,
            "{error}"
        );
        assert!(error.is_transient());
    }

    #[test]
    fn endpoint_without_scheme_is_refused() {
        let config = S3Config::new("127.0.0.1:9000", "k", "s");
        let error = S3ObjectStore::connect(&config).err().unwrap();
        assert_eq!(error.kind, pixmill_actors::ports::ErrorKind::Rejected);
    }
}

/// Buckets are never public: a start-up that finds a bucket policy letting anyone read
/// stops (`Rejected`, so nothing retries it) and names the bucket; without the policy the
/// same store starts.
mod public_buckets {
    use minio::s3::creds::StaticProvider;
    use minio::s3::http::BaseUrl;
    use minio::s3::types::S3Api;
    use minio::s3::{MinioClient, MinioClientBuilder};
    use pixmill_actors::ports::ErrorKind;

    use super::*;

    fn client(config: &S3Config) -> MinioClient {
        let base: BaseUrl = config.endpoint.parse().expect("endpoint");
        let provider = StaticProvider::new(&config.access_key, &config.secret_key, None);
        MinioClientBuilder::new(base)
            .provider(Some(provider))
            .build()
            .expect("client")
    }

    fn anyone_may_read(bucket: &str) -> String {
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": ["*"]},
                "Action": ["s3:GetObject"],
                "Resource": [format!("arn:aws:s3:::{bucket}/*")],
            }],
        })
        .to_string()
    }

    #[tokio::test]
    async fn a_put_into_a_bucket_that_went_missing_makes_it_again() {
        let Some(config) = s3_config() else { return };
        let store = S3ObjectStore::connect(&config).expect("store");
        if let Err(e) = store.ensure_buckets().await {
            return unavailable("S3", e);
        }
        // Removed behind pixmill's back (or a store that lost its data): uploads must not
        // fail until a restart.
        let bucket = format!("{}raw-images", config.bucket_prefix);
        client(&config)
            .delete_bucket(bucket.as_str())
            .expect("bucket name")
            .build()
            .send()
            .await
            .expect("delete the empty bucket");
        let object = key("0190c1aa-0000-7000-8000-000000000001.png");

        store
            .put(Bucket::Raw, &object, photo_bytes(500), "image/png")
            .await
            .expect("the put makes the bucket again");

        assert_eq!(
            store.get(Bucket::Raw, &object).await.expect("read back"),
            photo_bytes(500)
        );
    }

    #[tokio::test]
    async fn a_bucket_anyone_may_read_stops_the_start() {
        let Some(config) = s3_config() else { return };
        let store = S3ObjectStore::connect(&config).expect("store");
        if let Err(e) = store.ensure_buckets().await {
            return unavailable("S3", e);
        }
        let client = client(&config);
        let bucket = format!("{}processed-images", config.bucket_prefix);
        client
            .put_bucket_policy(bucket.as_str())
            .expect("bucket name")
            .config(anyone_may_read(&bucket))
            .build()
            .send()
            .await
            .expect("put a public policy");

        let error = store.ensure_buckets().await.expect_err("a public bucket");
        assert_eq!(error.kind, ErrorKind::Rejected, "{error}");
        assert!(error.to_string().contains(&bucket), "{error}");

        client
            .delete_bucket_policy(bucket.as_str())
            .expect("bucket name")
            .build()
            .send()
            .await
            .expect("remove the policy");
        store.ensure_buckets().await.expect("private again");
    }
}
