//! The contract against the embedded store, each test on a fresh file in a temporary
//! directory; plus what only a file-backed store promises: data survives a reopen.

use std::sync::Arc;
use std::time::Duration;

use pixmill::backends::sqlite::SqliteStore;
use pixmill_actors::ports::{Claim, Completion, MetadataStore};
use pixmill_actors::record::NewImage;
use pixmill_actors::{ImageId, JobSpec, OutputSpec, Owner, Pipeline, Status};
use tempfile::TempDir;

type Fixture = TempDir;

async fn open() -> Option<(Arc<dyn MetadataStore>, Fixture)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("pixmill.db")).unwrap();
    Some((Arc::new(store), dir))
}

async fn close(dir: Fixture) {
    drop(dir);
}

every_contract_test!(contract_suite);

fn upload(owner: &Owner) -> NewImage {
    let now = chrono::Utc::now();
    let id = ImageId::new();
    NewImage {
        id,
        owner: owner.clone(),
        spec: JobSpec::single(Pipeline::default_thumbnail(), OutputSpec::default()),
        original: pixmill_actors::StoredImage {
            key: format!("raw/{id}"),
            format: pixmill_actors::ImageFormat::Jpeg,
            width: 10,
            height: 10,
            bytes: 100,
            sha256: "cd".repeat(32),
            frames: 1,
        },
        idempotency_key: Some("first".to_owned()),
        callback_url: None,
        request_id: None,
        dispatch_at: now,
        created_at: now,
    }
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("pixmill.db");
    let owner = Owner::parse("alice").unwrap();
    let image = upload(&owner);
    {
        let store = SqliteStore::open(&path).unwrap();
        store.insert(&image).await.unwrap().unwrap();
        let Claim::Claimed(job) = store
            .claim(image.id, Duration::from_secs(60), 3)
            .await
            .unwrap()
        else {
            panic!("not claimed");
        };
        let done = Completion { variants: vec![] };
        assert!(store.complete(image.id, job.attempt, &done).await.unwrap());
    }

    let reopened = SqliteStore::open(&path).unwrap();

    let record = reopened.get(&owner, image.id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Completed);
    let again = reopened.insert(&upload(&owner)).await.unwrap();
    assert_eq!(
        again.map_err(|r| r.id),
        Err(image.id),
        "idempotency keys survive too"
    );
}

#[tokio::test]
async fn the_file_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pixmill.db");
    drop(SqliteStore::open(&path).unwrap());

    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// A data directory from before the webhook outbox (schema version 2) opens, keeps its
/// images, and does not send webhooks again for jobs that ended before the upgrade.
#[tokio::test]
async fn a_file_from_before_the_webhook_outbox_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pixmill.db");
    let owner = Owner::parse("early-adopter").unwrap();
    let old_id = ImageId::new();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../../sql/sqlite/1_create_images.sql"))
            .unwrap();
        conn.execute_batch(include_str!("../../../sql/sqlite/2_add_callback_url.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        let original = serde_json::to_string(&upload(&owner).original).unwrap();
        let spec = serde_json::to_string(&upload(&owner).spec).unwrap();
        conn.execute(
            "INSERT INTO images (id, owner, status, spec, original, attempts, created_at, \
                 updated_at, callback_url) \
             VALUES (?1, ?2, 'COMPLETED', ?3, ?4, 1, 1, 1, 'https://hooks.example/old')",
            rusqlite::params![old_id.to_string(), owner.as_str(), spec, original],
        )
        .unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();

    let old = store.get(&owner, old_id).await.unwrap().expect("kept");
    assert_eq!(old.status, Status::Completed);
    let far_future = chrono::Utc::now() + chrono::TimeDelta::days(1);
    let hold = Duration::from_secs(60);
    let due = store.take_due_webhooks(far_future, hold, 10).await.unwrap();
    assert!(
        due.is_empty(),
        "an old job's webhook was sent again: {due:?}"
    );
    let mut image = upload(&owner);
    image.callback_url = Some("https://hooks.example/new".to_owned());
    image.idempotency_key = None;
    store.insert(&image).await.unwrap().unwrap();
    let Claim::Claimed(job) = store.claim(image.id, hold, 3).await.unwrap() else {
        panic!("not claimed");
    };
    let done = Completion { variants: vec![] };
    assert!(store.complete(image.id, job.attempt, &done).await.unwrap());
    let due = store.take_due_webhooks(far_future, hold, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|w| w.record.id).collect::<Vec<_>>(),
        vec![image.id]
    );
}
