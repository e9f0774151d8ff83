//! The contract against PostgreSQL, each test in a schema of its own that is dropped
//! afterwards; plus what only a networked store promises.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use pixmill::backends::postgres::{PostgresConfig, PostgresStore};
use pixmill_actors::ports::{ErrorKind, MetadataStore};
use pixmill_actors::record::NewImage;
use pixmill_actors::{ImageFormat, ImageId, JobSpec, OutputSpec, Owner, Pipeline, StoredImage};

use crate::service_env::{postgres_url, unavailable, unique_name};

/// The schema a test owns.
struct Fixture {
    schema: String,
}

fn config(schema: &str) -> PostgresConfig {
    PostgresConfig {
        schema: Some(schema.to_owned()),
        pool_size: 8,
        connect_timeout: Duration::from_secs(3),
        ..PostgresConfig::new(postgres_url())
    }
}

async fn open() -> Option<(Arc<dyn MetadataStore>, Fixture)> {
    let schema = unique_name("it");
    match PostgresStore::connect(&config(&schema)).await {
        Ok(store) => Some((Arc::new(store), Fixture { schema })),
        Err(error) if error.kind == ErrorKind::Unavailable || error.kind == ErrorKind::Timeout => {
            unavailable("PostgreSQL", &error);
            None
        }
        Err(error) => panic!("connecting to PostgreSQL failed: {error}"),
    }
}

/// Drops the test's schema. A failed test skips this and leaves its schema for a look.
async fn close(fixture: Fixture) {
    let (client, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let drop_schema = format!("DROP SCHEMA {} CASCADE", fixture.schema);
    client.batch_execute(&drop_schema).await.unwrap();
    drop(client);
    let _ = connection.await;
}

every_contract_test!(contract_suite);

#[tokio::test]
async fn describe_names_the_server_but_not_the_password() {
    let schema = unique_name("it");
    // Trust authentication ignores the password, so the URL may carry one.
    let url = postgres_url().replacen("postgres@", "postgres:s3cret-pw@", 1);
    let config = PostgresConfig {
        url,
        ..config(&schema)
    };
    let store = match PostgresStore::connect(&config).await {
        Ok(store) => store,
        Err(error) => return unavailable("PostgreSQL", &error),
    };

    let text = store.describe();

    assert!(text.contains("127.0.0.1:5432"), "{text}");
    assert!(text.contains(&schema), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");
    close(Fixture { schema }).await;
}

#[tokio::test]
async fn a_refused_connection_says_what_the_server_said() {
    // The server is up (else this skips as the others do)...
    let Some((_, fixture)) = open().await else {
        return;
    };
    close(fixture).await;
    // ...but the database named is not there: its own words, not the driver's "db error".
    let base = postgres_url();
    let database = unique_name("pixmill_no_such_db");
    let url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => panic!("a postgres URL with a database: {base}"),
    };
    let config = PostgresConfig {
        url,
        ..config("unused")
    };
    let error = match PostgresStore::connect(&config).await {
        Ok(_) => panic!("connected to a database that does not exist"),
        Err(error) => error,
    };
    let text = error.to_string();
    assert!(
        text.contains(&format!("database \"{database}\" does not exist")),
        "{text}"
    );
}

#[tokio::test]
async fn a_second_start_finds_the_schema_migrated() {
    let Some((first, fixture)) = open().await else {
        return;
    };
    drop(first);

    let again = PostgresStore::connect(&config(&fixture.schema))
        .await
        .unwrap();

    again.ping().await.unwrap();
    close(fixture).await;
}

/// A plain connection of the test's own, to act on the store's sessions from outside; the
/// task driving it ends once the client is dropped.
async fn admin_connection() -> (
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let (admin, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    (admin, tokio::spawn(connection))
}

/// Ends every session of the store on `schema` (and only its own, told apart by its
/// application name), as a server restart would.
async fn end_store_sessions(admin: &tokio_postgres::Client, schema: &str) {
    let application = format!("pixmill:{schema}");
    let ended = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&application],
        )
        .await
        .unwrap();
    assert!(!ended.is_empty(), "the store had no session to end");
}

#[tokio::test]
async fn calls_succeed_after_the_server_dropped_every_connection() {
    let Some((store, fixture)) = open().await else {
        return;
    };
    store.ping().await.unwrap();
    // What a PostgreSQL restart looks like to the pool: the server ends every session of
    // this store (and only this store's, told apart by its application name).
    let (admin, connection) = admin_connection().await;
    end_store_sessions(&admin, &fixture.schema).await;
    drop(admin);
    let _ = connection.await;

    store.ping().await.unwrap();
    let nobody = pixmill_actors::Owner::parse("nobody").unwrap();
    let listed = store.list(&nobody, &Default::default()).await.unwrap();
    assert!(listed.items.is_empty());
    close(fixture).await;
}

#[tokio::test]
async fn no_server_is_unavailable() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let config = PostgresConfig {
        schema: None,
        ..PostgresConfig::new("postgres://postgres@127.0.0.1:1/test")
    };

    let error = PostgresStore::connect(&config).await.err().unwrap();

    assert_eq!(error.kind, ErrorKind::Unavailable, "{error}");
    assert!(error.is_transient());
}

/// An upload's row, as the gateway would insert it.
fn new_image() -> NewImage {
    let id = ImageId::new();
    NewImage {
        id,
        owner: Owner::parse("cut-off").unwrap(),
        spec: JobSpec::single(Pipeline::default_thumbnail(), OutputSpec::default()),
        original: StoredImage {
            key: format!("{id}.png"),
            format: ImageFormat::Png,
            width: 64,
            height: 48,
            bytes: 1_000,
            sha256: "ab".repeat(32),
            frames: 1,
        },
        idempotency_key: Some(format!("key-{id}")),
        callback_url: None,
        request_id: None,
        dispatch_at: Utc::now(),
        created_at: Utc::now(),
    }
}

/// An insert whose session the server ends mid-call (a restart, a failover, a cut
/// connection) may have committed for all the client knows: its error must not claim that
/// nothing was written, or the gateway would delete the original of a row that may exist.
#[tokio::test]
async fn an_insert_cut_off_mid_call_has_an_unknown_outcome() {
    let Some((store, fixture)) = open().await else {
        return;
    };
    store.ping().await.unwrap();
    let (admin, connection) = admin_connection().await;
    // Holding the table's lock keeps the store's insert waiting inside the server.
    let lock = format!(
        "BEGIN; LOCK TABLE {}.images IN ACCESS EXCLUSIVE MODE",
        fixture.schema
    );
    admin.batch_execute(&lock).await.unwrap();
    let inserting = {
        let store = store.clone();
        tokio::spawn(async move { store.insert(&new_image()).await })
    };
    let application = format!("pixmill:{}", fixture.schema);
    let waiting = "SELECT pid FROM pg_stat_activity \
                   WHERE application_name = $1 AND wait_event_type = 'Lock'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while admin
        .query(waiting, &[&application])
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the insert never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    end_store_sessions(&admin, &fixture.schema).await;
    let error = inserting
        .await
        .unwrap()
        .expect_err("the insert's session was ended");

    assert!(!error.certainly_not_applied(), "{error:?}");
    assert!(error.is_transient(), "{error:?}");
    admin.batch_execute("ROLLBACK").await.unwrap();
    drop(admin);
    let _ = connection.await;
    close(fixture).await;
}
