//! The contract against PostgreSQL, each test in a schema of its own that is dropped
//! afterwards; plus what only a networked store promises.

use std::sync::Arc;
use std::time::Duration;

use pixmill::backends::postgres::{PostgresConfig, PostgresStore};
use pixmill_actors::ports::{ErrorKind, MetadataStore};

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

#[tokio::test]
async fn calls_succeed_after_the_server_dropped_every_connection() {
    let Some((store, fixture)) = open().await else {
        return;
    };
    store.ping().await.unwrap();
    // What a PostgreSQL restart looks like to the pool: the server ends every session of
    // this store (and only this store's, told apart by its application name).
    let (admin, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let application = format!("pixmill:{}", fixture.schema);
    let ended = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&application],
        )
        .await
        .unwrap();
    assert!(!ended.is_empty(), "the store had no session to end");
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
