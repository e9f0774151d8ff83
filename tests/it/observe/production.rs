//! A gateway and a worker in one test process, wired only through the production services
//! (PostgreSQL, RabbitMQ, S3, Redis), each test under names of its own: the gateway's event
//! stream hears of the worker's progress through Redis pub/sub.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use pixmill::app::{App, Mode, StartOptions};
use pixmill::config::{Config, Secret};
use pixmill_actors::faults::FaultPlan;

use super::gate::Gate;
use super::{next_status, open_events, sample, upload_small, wait_for_status};
use crate::service_env::{service_url, unavailable, unique_name};
use crate::support::tokens::{token_for, token_with_roles};
use crate::support::{install_fixture_key, Standalone};

/// Longer than the test may take: an event that arrives in time came through Redis, not
/// from the stream's own re-reads of the store.
const REREAD: Duration = Duration::from_secs(60);

/// Where the services are, and the names this test owns in them.
struct Services {
    postgres: String,
    amqp: String,
    redis: String,
    s3: String,
    schema: String,
    queue: String,
}

/// Whether something answers at the URL's host and port.
async fn answers(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let (Some(host), Some(port)) = (
        parsed.host_str().map(str::to_owned),
        parsed.port_or_known_default(),
    ) else {
        return false;
    };
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    matches!(
        tokio::time::timeout(Duration::from_secs(2), connect).await,
        Ok(Ok(_))
    )
}

async fn services() -> Option<Services> {
    let postgres = service_url(
        "PostgreSQL",
        "PIXMILL_TEST_POSTGRES_URL",
        Some("postgres://postgres@127.0.0.1:5432/test"),
    )?;
    let amqp = service_url(
        "RabbitMQ",
        "PIXMILL_TEST_AMQP_URL",
        Some("amqp://guest:guest@127.0.0.1:5672/%2f"),
    )?;
    let redis = service_url(
        "Redis",
        "PIXMILL_TEST_REDIS_URL",
        Some("redis://127.0.0.1:6379"),
    )?;
    let s3 = service_url("S3", "PIXMILL_TEST_S3_URL", None)?;
    for (name, url) in [
        ("PostgreSQL", &postgres),
        ("RabbitMQ", &amqp),
        ("Redis", &redis),
        ("S3", &s3),
    ] {
        if !answers(url).await {
            unavailable(
                name,
                format_args!("nothing answers at {}", pixmill::config::redact_url(url)),
            );
            return None;
        }
    }
    Some(Services {
        postgres,
        amqp,
        redis,
        s3,
        schema: unique_name("obs_"),
        queue: unique_name("pixmill-obs-"),
    })
}

fn config(services: &Services, data_dir: &std::path::Path, prefix: &str) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.server.addr = "127.0.0.1:0".parse().expect("literal address");
    config.worker.admin_addr = "127.0.0.1:0".parse().expect("literal address");
    config.server.wait_reread = REREAD;
    config.metadata.url = Some(Secret::new(services.postgres.clone()));
    config.metadata.schema = Some(services.schema.clone());
    config.objects.url = Some(services.s3.clone());
    config.objects.access_key = Secret::new(
        std::env::var("PIXMILL_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "testing".into()),
    );
    config.objects.secret_key = Secret::new(
        std::env::var("PIXMILL_TEST_S3_SECRET_KEY").unwrap_or_else(|_| "testing".into()),
    );
    config.objects.bucket_prefix = format!("{prefix}-");
    config.queue.url = Some(Secret::new(services.amqp.clone()));
    config.queue.name = services.queue.clone();
    config.cache.url = Some(Secret::new(services.redis.clone()));
    config.cache.key_prefix = format!("{prefix}:");
    config.auth.trust_local_issuer_unsafe = true;
    config.engine.relay_interval = Duration::from_millis(100);
    config.engine.shutdown_grace = Duration::from_secs(5);
    config.server.shutdown_drain = Duration::ZERO;
    config
}

async fn start(config: Config, mode: Mode, faults: Arc<dyn FaultPlan>) -> Standalone {
    let app = App::start(config, mode, StartOptions { faults })
        .await
        .expect("app starts");
    let base = format!("http://{}", app.addr());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .expect("http client");
    Standalone {
        app: Some(app),
        base,
        http,
    }
}

/// Removes the schema and the queues; Redis keys expire by themselves, moto forgets.
async fn clean_up(services: &Services) {
    if let Ok((client, connection)) =
        tokio_postgres::connect(&services.postgres, tokio_postgres::NoTls).await
    {
        let connection = tokio::spawn(connection);
        let drop_schema = format!("DROP SCHEMA IF EXISTS {} CASCADE", services.schema);
        if let Err(error) = client.batch_execute(&drop_schema).await {
            eprintln!("could not drop schema {}: {error}", services.schema);
        }
        drop(client);
        let _ = connection.await;
    }
    let Ok(connection) = Connection::connect(&services.amqp, ConnectionProperties::default()).await
    else {
        return;
    };
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    for name in [services.queue.clone(), format!("{}.dead", services.queue)] {
        let _ = channel
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let dlx = format!("{}.dlx", services.queue);
    let _ = channel
        .exchange_delete(dlx.as_str().into(), ExchangeDeleteOptions::default())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateways_event_stream_hears_a_worker_through_redis() {
    let Some(services) = services().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    install_fixture_key(dir.path());
    let prefix = unique_name("obs");
    let gate = Arc::new(Gate::default());
    let mut worker = start(
        config(&services, dir.path(), &prefix),
        Mode::Worker,
        gate.clone(),
    )
    .await;
    let mut gateway = start(
        config(&services, dir.path(), &prefix),
        Mode::Gateway,
        Arc::new(pixmill_actors::faults::NoFaults),
    )
    .await;
    let token = token_for("distributed");

    let (status, doc) = upload_small(&gateway, &token, &[]).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    let mut events = open_events(&gateway, &token, &id).await;
    let first = next_status(&mut events)
        .await
        .expect("the current document");
    assert!(first == "PENDING" || first == "PROCESSING", "{first}");

    let started = Instant::now();
    gate.release(&id);
    let mut last = first;
    while let Some(status) = next_status(&mut events).await {
        last = status;
    }
    assert_eq!(last, "COMPLETED");
    // The stream's first re-read falls due REREAD after it opened, a moment before
    // `started`: half of it tells an event from that re-read with room to spare.
    assert!(
        started.elapsed() < REREAD / 2,
        "the change arrived only with a re-read, not through Redis"
    );

    // The worker counted the job; the gateway, which runs no engine, has no actors to show.
    let worker_metrics = worker
        .http
        .get(worker.url("/metrics"))
        .send()
        .await
        .expect("worker metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        sample(
            &worker_metrics,
            r#"pixmill_jobs_total{outcome="completed"}"#
        ),
        Some(1.0),
        "{worker_metrics}"
    );
    let gateway_metrics = gateway
        .http
        .get(gateway.url("/metrics"))
        .send()
        .await
        .expect("gateway metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        sample(&gateway_metrics, "pixmill_uploads_accepted_total"),
        Some(1.0),
        "{gateway_metrics}"
    );
    assert!(
        !gateway_metrics.contains("pixmill_actor_restarts"),
        "{gateway_metrics}"
    );
    // An operator asks the worker's admin listener for its actors, as the gateway's
    // refusal says to.
    let admin = token_with_roles("ops", &["pixmill-admin"]);
    let (status, refusal) = gateway.get_json(&admin, "/v1/system/actors").await;
    assert_eq!((status, refusal["code"].as_str()), (404, Some("no_engine")));
    let (status, tree) = worker.get_json(&admin, "/v1/system/actors").await;
    assert_eq!(status, 200, "{tree}");
    assert!(
        tree["children"]
            .as_array()
            .is_some_and(|all| all.iter().any(|a| a["role"] == "transformer")),
        "{tree}"
    );
    let (status, report) = worker.get_json(&admin, "/v1/system/readiness").await;
    assert_eq!(
        (status, report["status"].as_str()),
        (200, Some("ready")),
        "{report}"
    );

    gateway.stop().await;
    worker.stop().await;
    clean_up(&services).await;
}

/// A worker stopped (a deploy) while it holds a job whose render outlasts the shutdown
/// grace: the job goes back, and another worker takes it within a relay tick, not after the
/// lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_handed_back_at_shutdown_moves_to_another_worker_without_waiting_out_its_lease() {
    let Some(services) = services().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    install_fixture_key(dir.path());
    let prefix = unique_name("handback");
    // A lease far longer than the test's patience: only a released one lets the job go on.
    let config = |grace| {
        let mut config = config(&services, dir.path(), &prefix);
        config.engine.lease = Duration::from_secs(600);
        config.engine.shutdown_grace = grace;
        config
    };
    let gate = Arc::new(Gate::default());
    let mut leaving = start(config(Duration::ZERO), Mode::Worker, gate.clone()).await;
    let mut gateway = start(
        config(Duration::ZERO),
        Mode::Gateway,
        Arc::new(pixmill_actors::faults::NoFaults),
    )
    .await;
    let token = token_for("deployer");
    let (status, doc) = upload_small(&gateway, &token, &[]).await;
    assert_eq!(status, 202, "{doc}");
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    wait_for_status(&gateway, &token, &id, "PROCESSING").await;
    leaving.stop().await;
    gate.release(&id);

    let mut staying = start(
        config(Duration::from_secs(5)),
        Mode::Worker,
        Arc::new(pixmill_actors::faults::NoFaults),
    )
    .await;
    let done = gateway
        .wait_until_final(&token, &id, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    staying.stop().await;
    gateway.stop().await;
    clean_up(&services).await;
}
