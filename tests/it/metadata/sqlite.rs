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
