//! Production mode inside the test process: a `Mode::Gateway` app and any number of
//! `Mode::Worker` apps, started through `App::start` against the real services that
//! `scripts/test-services.sh` brings up (PostgreSQL, RabbitMQ, the S3 server, Redis) and a
//! [`Keycloak`] realm as `auth.issuer`.
//!
//! Each cluster owns its names on the shared servers: a PostgreSQL schema, a queue (with
//! its dead-letter queue and exchange), a bucket prefix and a Redis key prefix.
//! [`Cluster::stop`] drops the schema and deletes the queues; a test that fails before it
//! leaves them for a look. Buckets stay on the S3 server (moto keeps them in memory) and
//! Redis keys expire by themselves.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use minio::s3::creds::StaticProvider;
use minio::s3::http::BaseUrl;
use minio::s3::types::ToStream;
use minio::s3::{MinioClient, MinioClientBuilder};
use pixmill::app::{App, Mode, StartOptions};
use pixmill::config::{Config, Secret};

use super::keycloak::Keycloak;
use super::Standalone;
use crate::service_env::{service_url, unavailable, unique_name};

/// How long a cluster may take to start: connecting, migrating, declaring.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// Where the real services are.
pub struct Services {
    postgres: String,
    amqp: String,
    redis: String,
    s3: String,
    s3_access_key: String,
    s3_secret_key: String,
}

impl Services {
    /// The services named by `PIXMILL_TEST_*`, each checked to accept connections; `None`
    /// (after a loud skip, or a panic under CI) when one is missing.
    pub async fn find() -> Option<Self> {
        let services = Self {
            postgres: service_url(
                "PostgreSQL",
                "PIXMILL_TEST_POSTGRES_URL",
                Some("postgres://postgres@127.0.0.1:5432/test"),
            )?,
            amqp: service_url(
                "RabbitMQ",
                "PIXMILL_TEST_AMQP_URL",
                Some("amqp://guest:guest@127.0.0.1:5672/%2f"),
            )?,
            redis: service_url(
                "Redis",
                "PIXMILL_TEST_REDIS_URL",
                Some("redis://127.0.0.1:6379"),
            )?,
            s3: service_url("S3", "PIXMILL_TEST_S3_URL", None)?,
            s3_access_key: env_or("PIXMILL_TEST_S3_ACCESS_KEY", "testing"),
            s3_secret_key: env_or("PIXMILL_TEST_S3_SECRET_KEY", "testing"),
        };
        let all = [
            ("PostgreSQL", &services.postgres),
            ("RabbitMQ", &services.amqp),
            ("Redis", &services.redis),
            ("S3", &services.s3),
        ];
        for (name, url) in all {
            if let Err(why) = accepts_connections(url).await {
                unavailable(name, why);
                return None;
            }
        }
        Some(services)
    }

    pub fn redis_url(&self) -> &str {
        &self.redis
    }
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Whether the host and port of `url` accept a TCP connection within two seconds.
async fn accepts_connections(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let address = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let connect = tokio::net::TcpStream::connect(address);
    match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("{address}: {error}")),
        Err(_) => Err(format!("{address}: no answer within 2 s")),
    }
}

/// The names one cluster owns on the shared servers.
pub struct Names {
    pub schema: String,
    pub queue: String,
    pub bucket_prefix: String,
    pub key_prefix: String,
}

impl Names {
    fn fresh() -> Self {
        let id = unique_name("");
        Self {
            schema: format!("prod_{id}"),
            queue: format!("pixmill-prod-{id}"),
            bucket_prefix: format!("prod-{id}-"),
            key_prefix: format!("pixmill-prod-{id}:"),
        }
    }
}

/// The configuration of every app of a cluster: the real services under the cluster's
/// names, `issuer` trusted, free loopback ports, and timings short enough for a test.
fn config(
    services: &Services,
    names: &Names,
    issuer: &Keycloak,
    data_dir: &std::path::Path,
) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.server.addr = "127.0.0.1:0".parse().expect("literal address");
    config.worker.admin_addr = "127.0.0.1:0".parse().expect("literal address");
    config.metadata.url = Some(Secret::new(services.postgres.clone()));
    config.metadata.schema = Some(names.schema.clone());
    config.metadata.pool_size = 4;
    config.objects.url = Some(services.s3.clone());
    config.objects.access_key = Secret::new(services.s3_access_key.clone());
    config.objects.secret_key = Secret::new(services.s3_secret_key.clone());
    config.objects.bucket_prefix = names.bucket_prefix.clone();
    config.queue.url = Some(Secret::new(services.amqp.clone()));
    config.queue.name = names.queue.clone();
    config.cache.url = Some(Secret::new(services.redis.clone()));
    config.cache.key_prefix = names.key_prefix.clone();
    config.auth.issuer = Some(issuer.issuer());
    // Two workers share two cores: one transform each.
    config.engine.transform_workers = 1;
    config.engine.download_workers = 2;
    config.engine.persist_workers = 1;
    config.engine.relay_interval = Duration::from_millis(100);
    config.engine.retry.base_delay = Duration::from_millis(50);
    config.engine.retry.max_delay = Duration::from_millis(200);
    config.engine.shutdown_grace = Duration::from_secs(2);
    config.server.shutdown_grace = Duration::from_secs(2);
    // Tests stop apps often; the drain has a test of its own (shutdown.rs).
    config.server.shutdown_drain = Duration::ZERO;
    config
}

/// A gateway, its workers, and the names they use.
pub struct Cluster {
    pub gateway: Standalone,
    pub workers: Vec<App>,
    pub names: Names,
    services: Services,
    config: Config,
    _data_dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a gateway and `workers` worker apps at once (as a deployment does, so their
    /// migrations and declarations race), each with the configuration `tune` adjusts.
    /// `None` when a service is missing (see [`Services::find`]).
    pub async fn start(
        issuer: &Keycloak,
        workers: usize,
        tune: impl Fn(&mut Config),
    ) -> Option<Self> {
        let services = Services::find().await?;
        let names = Names::fresh();
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut config = config(&services, &names, issuer, data_dir.path());
        tune(&mut config);

        let gateway = start_app(config.clone(), Mode::Gateway);
        let workers = futures_util::future::join_all(
            (0..workers).map(|_| start_app(config.clone(), Mode::Worker)),
        );
        let (gateway, workers) = within(START_PATIENCE, "the cluster to start", async {
            tokio::join!(gateway, workers)
        })
        .await;
        Some(Self {
            gateway: Standalone::serving(gateway),
            workers,
            names,
            services,
            config,
            _data_dir: data_dir,
        })
    }

    /// Starts one more worker app, configured like the others.
    pub async fn add_worker(&mut self) {
        let worker = within(
            START_PATIENCE,
            "a worker to start",
            start_app(self.config.clone(), Mode::Worker),
        )
        .await;
        self.workers.push(worker);
    }

    /// The work queue's ready messages and consumers, as the broker counts them.
    pub async fn queue_counts(&self) -> (u32, u32) {
        let connection = Connection::connect(&self.services.amqp, ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = connection.create_channel().await.expect("channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare(
                self.names.queue.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await
            .expect("the work queue exists");
        let _ = connection.close(200, "done".into()).await;
        (queue.message_count(), queue.consumer_count())
    }

    /// Waits until the work queue has `wanted` consumers, for at most ten seconds.
    pub async fn wait_for_consumers(&self, wanted: u32) {
        let what = format!("{wanted} consumers on the work queue");
        within(Duration::from_secs(10), &what, async {
            while self.queue_counts().await.1 != wanted {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    }

    /// Stops every app (gateway first, as a rolling deploy would), then removes the
    /// cluster's schema and queues.
    pub async fn stop(mut self) {
        self.gateway.stop().await;
        for worker in self.workers.drain(..) {
            worker.shutdown().await;
        }
        self.drop_schema().await;
        self.delete_queues().await;
    }

    /// A client on PostgreSQL with the cluster's schema first on the search path.
    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.services.postgres, tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("SET search_path TO {}", self.names.schema))
            .await
            .expect("search_path");
        client
    }

    /// A plain Redis client, for looking at the keys the gateway wrote.
    pub async fn redis(&self) -> bb8_redis::redis::aio::MultiplexedConnection {
        let client = bb8_redis::redis::Client::open(self.services.redis_url()).expect("redis url");
        client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to Redis")
    }

    /// The keys of every object in the cluster's `raw-images` bucket.
    pub async fn raw_objects(&self) -> Vec<String> {
        let bucket = format!("{}raw-images", self.names.bucket_prefix);
        let mut pages = self
            .s3()
            .list_objects(bucket.as_str())
            .expect("bucket name")
            .recursive(true)
            .build()
            .to_stream()
            .await;
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            keys.extend(
                page.expect("list objects")
                    .contents
                    .into_iter()
                    .map(|entry| entry.name),
            );
        }
        keys
    }

    fn s3(&self) -> MinioClient {
        let base: BaseUrl = self.services.s3.parse().expect("S3 url");
        let credentials = StaticProvider::new(
            &self.services.s3_access_key,
            &self.services.s3_secret_key,
            None,
        );
        MinioClientBuilder::new(base)
            .provider(Some(credentials))
            .build()
            .expect("S3 client")
    }

    async fn drop_schema(&self) {
        let drop_schema = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.names.schema);
        self.sql()
            .await
            .batch_execute(&drop_schema)
            .await
            .expect("drop the test schema");
    }

    /// Deletes the work queue, as a broker that lost it (or an operator) would.
    pub async fn delete_work_queue(&self) {
        let connection = Connection::connect(&self.services.amqp, ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = connection.create_channel().await.expect("channel");
        let queue = self.names.queue.as_str();
        channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await
            .expect("delete queue");
        let _ = connection.close(200, "done".into()).await;
    }

    async fn delete_queues(&self) {
        let connection = Connection::connect(&self.services.amqp, ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = connection.create_channel().await.expect("channel");
        let queue = &self.names.queue;
        for name in [queue.clone(), format!("{queue}.dead")] {
            channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await
                .expect("delete queue");
        }
        let exchange = format!("{queue}.dlx");
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .expect("delete exchange");
        let _ = connection.close(200, "done".into()).await;
    }
}

async fn start_app(config: Config, mode: Mode) -> App {
    match App::start(config, mode, StartOptions::default()).await {
        Ok(app) => app,
        Err(error) => panic!("{mode:?} app did not start: {error}"),
    }
}

/// Awaits `future`, failing the test after `patience`.
pub async fn within<T>(patience: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(patience, future).await {
        Ok(value) => value,
        Err(_) => panic!("waited {patience:?} for {what}"),
    }
}
