//! What every `MetadataStore` must do, as generic tests over `Arc<dyn MetadataStore>`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use pixmill_actors::ports::{Claim, ClaimedJob, Completion, DueWebhook, JobMessage, MetadataStore};
use pixmill_actors::record::{ListQuery, NewImage};
use pixmill_actors::{
    ImageFormat, ImageId, ImageRecord, JobError, JobSpec, OutputSpec, Owner, Pipeline, Status,
    StoredImage, StoredVariant, VariantName,
};
use tokio::sync::Barrier;

type Store = Arc<dyn MetadataStore>;

const LEASE: Duration = Duration::from_secs(60);
const MAX_ATTEMPTS: u32 = 3;

/// Now, at the microsecond precision the stores keep, so records compare equal.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn owner() -> Owner {
    Owner::parse(format!("user-{}", uuid::Uuid::new_v4())).unwrap()
}

fn stored_image(key: &str) -> StoredImage {
    StoredImage {
        key: key.to_owned(),
        format: ImageFormat::Png,
        width: 640,
        height: 480,
        bytes: 12_345,
        sha256: "ab".repeat(32),
        frames: 1,
    }
}

/// An upload as the gateway records it: due for dispatch a little after it was made.
fn upload(owner: &Owner, created_at: DateTime<Utc>) -> NewImage {
    let id = ImageId::new();
    NewImage {
        id,
        owner: owner.clone(),
        spec: JobSpec::single(Pipeline::default_thumbnail(), OutputSpec::default()),
        original: stored_image(&format!("raw/{id}")),
        idempotency_key: None,
        // Stored and read back like every other column.
        callback_url: Some("https://hooks.example/done".to_owned()),
        request_id: Some(format!("request-{id}")),
        dispatch_at: created_at + secs(5),
        created_at,
    }
}

async fn insert_new(store: &Store, image: &NewImage) -> ImageRecord {
    store
        .insert(image)
        .await
        .unwrap()
        .expect("no idempotency conflict")
}

/// Inserts an upload and takes it for its first attempt.
async fn claimed(store: &Store, owner: &Owner, lease: Duration) -> (ImageRecord, ClaimedJob) {
    let record = insert_new(store, &upload(owner, now())).await;
    let job = claim(store, record.id, lease).await;
    assert_eq!(job.attempt, 1);
    (record, job)
}

async fn claim(store: &Store, id: ImageId, lease: Duration) -> ClaimedJob {
    match store.claim(id, lease, MAX_ATTEMPTS).await.unwrap() {
        Claim::Claimed(job) => job,
        other => panic!("expected the job to be claimed, got {other:?}"),
    }
}

fn rendered(id: ImageId) -> Completion {
    Completion {
        variants: vec![StoredVariant {
            name: VariantName::main(),
            image: stored_image(&format!("processed/{id}/main.png")),
            first_frame_only: false,
        }],
    }
}

/// How long the webhook tests hold what they take.
const HOLD: Duration = Duration::from_secs(60);

/// Takes every webhook due at `at`, keyed by image.
async fn take_webhooks(store: &Store, at: DateTime<Utc>) -> Vec<DueWebhook> {
    store.take_due_webhooks(at, HOLD, 100).await.unwrap()
}

fn webhook_ids(taken: &[DueWebhook]) -> HashSet<ImageId> {
    taken.iter().map(|w| w.record.id).collect()
}

/// Inserts an upload with or without a webhook target, claims it and ends it.
async fn finished(store: &Store, target: bool, ok: bool) -> ImageRecord {
    let mut image = upload(&owner(), now());
    if !target {
        image.callback_url = None;
    }
    let record = insert_new(store, &image).await;
    let job = claim(store, record.id, LEASE).await;
    let ended = if ok {
        store
            .complete(record.id, job.attempt, &rendered(record.id))
            .await
    } else {
        let error = JobError::new("corrupt_image", "the file is truncated");
        store.fail(record.id, job.attempt, &error).await
    };
    assert!(ended.unwrap());
    record
}

async fn due_ids(store: &Store, at: DateTime<Utc>) -> Vec<(ImageId, DateTime<Utc>)> {
    let due = store.due_dispatches(at, 100).await.unwrap();
    due.into_iter()
        .map(|(job, due)| (job.image_id, due))
        .collect()
}

async fn is_due(store: &Store, id: ImageId, at: DateTime<Utc>) -> bool {
    due_ids(store, at).await.iter().any(|(due, _)| *due == id)
}

/// Opens up to `n` pooled connections (pool-backed stores open them lazily), so racers
/// start together instead of queueing behind connection set-up.
async fn warm_up(store: &Store, n: usize) {
    let pings = (0..n).map(|_| store.ping());
    for ping in futures_util::future::join_all(pings).await {
        ping.unwrap();
    }
}

async fn status_of(store: &Store, record: &ImageRecord) -> ImageRecord {
    store
        .get(&record.owner, record.id)
        .await
        .unwrap()
        .expect("image exists")
}

pub async fn insert_then_get_roundtrips(store: Store) {
    let image = upload(&owner(), now());

    let record = insert_new(&store, &image).await;

    assert_eq!(record, image.to_record());
    assert_eq!(status_of(&store, &record).await, record);
}

pub async fn list_pages_newest_first(store: Store) {
    let owner = owner();
    let base = now() - secs(3600);
    let mut inserted = Vec::new();
    for offset in 0..5 {
        inserted.push(insert_new(&store, &upload(&owner, base + secs(offset))).await);
    }
    // Two uploads in the same microsecond are ordered by id.
    for _ in 0..2 {
        inserted.push(insert_new(&store, &upload(&owner, base + secs(10))).await);
    }
    insert_new(&store, &upload(&self::owner(), base + secs(20))).await;
    let newest_first: Vec<ImageId> = inserted.iter().rev().map(|r| r.id).collect();

    let mut seen = Vec::new();
    let mut query = ListQuery {
        limit: 3,
        ..ListQuery::default()
    };
    let mut pages = 0;
    loop {
        let page = store.list(&owner, &query).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|r| r.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
        assert!(pages < 10, "listing does not end");
    }

    assert_eq!(seen, newest_first);
    assert_eq!(pages, 3);
}

pub async fn list_filters_by_status(store: Store) {
    let owner = owner();
    let (done, job) = claimed(&store, &owner, LEASE).await;
    assert!(store
        .complete(done.id, job.attempt, &rendered(done.id))
        .await
        .unwrap());
    let waiting = insert_new(&store, &upload(&owner, now())).await;

    let query = |status| ListQuery {
        status: Some(status),
        limit: 10,
        after: None,
    };
    let completed = store.list(&owner, &query(Status::Completed)).await.unwrap();
    let pending = store.list(&owner, &query(Status::Pending)).await.unwrap();

    let ids = |items: &[ImageRecord]| items.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&completed.items), vec![done.id]);
    assert_eq!(completed.items[0].variants, rendered(done.id).variants);
    assert_eq!(ids(&pending.items), vec![waiting.id]);
    assert!(completed.next.is_none() && pending.next.is_none());
}

pub async fn other_owners_see_nothing(store: Store) {
    let alice = owner();
    let mallory = owner();
    let mut image = upload(&alice, now());
    image.idempotency_key = Some("key-1".to_owned());
    let record = insert_new(&store, &image).await;

    assert_eq!(store.get(&mallory, record.id).await.unwrap(), None);
    let by_key = store
        .find_by_idempotency_key(&mallory, "key-1")
        .await
        .unwrap();
    assert_eq!(by_key, None);
    assert!(store
        .list(&mallory, &ListQuery::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(store.delete(&mallory, record.id).await.unwrap(), None);

    assert_eq!(status_of(&store, &record).await, record);
}

pub async fn idempotency_key_returns_the_first_upload(store: Store) {
    let owner = owner();
    let mut first = upload(&owner, now());
    first.idempotency_key = Some("upload-42".to_owned());
    let mut again = upload(&owner, now());
    again.idempotency_key = first.idempotency_key.clone();
    let mut elsewhere = upload(&self::owner(), now());
    elsewhere.idempotency_key = first.idempotency_key.clone();

    let stored = insert_new(&store, &first).await;
    let repeated = store.insert(&again).await.unwrap();
    let other_owner = store.insert(&elsewhere).await.unwrap();

    assert_eq!(repeated, Err(stored.clone()));
    assert_eq!(store.get(&owner, again.id).await.unwrap(), None);
    let found = store
        .find_by_idempotency_key(&owner, "upload-42")
        .await
        .unwrap();
    assert_eq!(found, Some(stored));
    assert!(other_owner.is_ok(), "keys are per owner");
}

pub async fn concurrent_inserts_with_one_key_store_one(store: Store) {
    const RACERS: usize = 8;
    warm_up(&store, RACERS).await;
    let owner = owner();
    let start = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::new();
    for _ in 0..RACERS {
        let (store, start) = (Arc::clone(&store), Arc::clone(&start));
        let mut image = upload(&owner, now());
        image.idempotency_key = Some("same-key".to_owned());
        racers.push(tokio::spawn(async move {
            start.wait().await;
            store.insert(&image).await.unwrap()
        }));
    }
    let mut winners = Vec::new();
    let mut existing = HashSet::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(record) => winners.push(record.id),
            Err(record) => {
                existing.insert(record.id);
            }
        }
    }

    assert_eq!(winners.len(), 1, "exactly one insert wins");
    assert!(existing.iter().all(|id| *id == winners[0]));
    let listed = store.list(&owner, &ListQuery::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
}

pub async fn claim_then_complete(store: Store) {
    let (record, job) = claimed(&store, &owner(), LEASE).await;
    assert_eq!(job.record.status, Status::Processing);
    assert_eq!(job.record.attempts, 1);

    let done = rendered(record.id);
    assert!(store.complete(record.id, job.attempt, &done).await.unwrap());

    let finished = status_of(&store, &record).await;
    assert_eq!(finished.status, Status::Completed);
    assert_eq!(finished.variants, done.variants);
    assert_eq!(finished.error, None);
    let again = store.claim(record.id, LEASE, MAX_ATTEMPTS).await.unwrap();
    assert!(matches!(again, Claim::Finished), "got {again:?}");
    assert!(!is_due(&store, record.id, now() + secs(3600)).await);
}

pub async fn concurrent_claims_take_a_job_once(store: Store) {
    const RACERS: usize = 6;
    warm_up(&store, RACERS).await;
    let record = insert_new(&store, &upload(&owner(), now())).await;
    let start = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::new();
    for _ in 0..RACERS {
        let (store, start) = (Arc::clone(&store), Arc::clone(&start));
        racers.push(tokio::spawn(async move {
            start.wait().await;
            store.claim(record.id, LEASE, MAX_ATTEMPTS).await.unwrap()
        }));
    }
    let mut claimed = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Claim::Claimed(job) => {
                claimed += 1;
                assert_eq!(job.attempt, 1);
            }
            Claim::LeasedElsewhere => {}
            other => panic!("unexpected claim outcome {other:?}"),
        }
    }

    assert_eq!(claimed, 1);
    assert_eq!(status_of(&store, &record).await.attempts, 1);
}

pub async fn a_live_lease_keeps_others_out(store: Store) {
    let (record, _job) = claimed(&store, &owner(), LEASE).await;

    let second = store.claim(record.id, LEASE, MAX_ATTEMPTS).await.unwrap();

    assert!(matches!(second, Claim::LeasedElsewhere), "got {second:?}");
    assert!(!is_due(&store, record.id, now() + secs(1)).await);
}

pub async fn a_stale_attempt_cannot_write(store: Store) {
    // A zero lease has expired by the next claim: the first worker counts as dead.
    let (record, first) = claimed(&store, &owner(), Duration::ZERO).await;
    let second = claim(&store, record.id, LEASE).await;
    assert_eq!(second.attempt, 2);

    let error = JobError::new("late", "a stale worker's write");
    let retry_at = now() + secs(60);
    assert!(!store
        .complete(record.id, first.attempt, &rendered(record.id))
        .await
        .unwrap());
    assert!(!store.fail(record.id, first.attempt, &error).await.unwrap());
    assert!(!store
        .retry_later(record.id, first.attempt, &error, retry_at)
        .await
        .unwrap());

    let current = status_of(&store, &record).await;
    assert_eq!((current.status, current.attempts), (Status::Processing, 2));
    assert_eq!(current.error, None);
    assert!(store
        .complete(record.id, second.attempt, &rendered(record.id))
        .await
        .unwrap());
}

pub async fn a_renewed_lease_keeps_the_job_from_the_relay(store: Store) {
    let owner = owner();
    let (renewed, job) = claimed(&store, &owner, Duration::from_secs(2)).await;
    let (left, _job) = claimed(&store, &owner, Duration::from_secs(2)).await;

    assert!(store
        .renew_lease(renewed.id, job.attempt, LEASE)
        .await
        .unwrap());

    let later = now() + secs(30);
    assert_eq!(
        due_ids(&store, later).await,
        vec![(left.id, later)],
        "only the lease that was not renewed runs out"
    );
    let other = store.claim(renewed.id, LEASE, MAX_ATTEMPTS).await.unwrap();
    assert!(matches!(other, Claim::LeasedElsewhere), "got {other:?}");
    assert!(store
        .complete(renewed.id, job.attempt, &rendered(renewed.id))
        .await
        .unwrap());
}

pub async fn a_lease_taken_back_is_not_renewed(store: Store) {
    let (record, first) = claimed(&store, &owner(), Duration::ZERO).await;
    // The relay finds the lease expired and dispatches the job again.
    let scan = now() + secs(1);
    assert!(is_due(&store, record.id, scan).await);

    assert!(
        !store
            .renew_lease(record.id, first.attempt, LEASE)
            .await
            .unwrap(),
        "a re-dispatched job's lease came back to its old attempt"
    );
    store.mark_dispatched(record.id, scan).await.unwrap();
    let second = claim(&store, record.id, LEASE).await;
    assert!(!store
        .renew_lease(record.id, first.attempt, LEASE)
        .await
        .unwrap());
    assert!(store
        .renew_lease(record.id, second.attempt, LEASE)
        .await
        .unwrap());

    assert!(store
        .complete(record.id, second.attempt, &rendered(record.id))
        .await
        .unwrap());
    assert!(
        !store
            .renew_lease(record.id, second.attempt, LEASE)
            .await
            .unwrap(),
        "a finished job was leased again"
    );
    let done = status_of(&store, &record).await;
    assert_eq!((done.status, done.attempts), (Status::Completed, 2));
}

pub async fn final_status_never_goes_back(store: Store) {
    let (record, job) = claimed(&store, &owner(), LEASE).await;
    let error = JobError::new("unsupported_format", "not an image");
    assert!(store.fail(record.id, job.attempt, &error).await.unwrap());

    let later = now() + secs(60);
    assert!(!store
        .complete(record.id, job.attempt, &rendered(record.id))
        .await
        .unwrap());
    assert!(!store
        .retry_later(record.id, job.attempt, &error, later)
        .await
        .unwrap());
    let again = store.claim(record.id, LEASE, MAX_ATTEMPTS).await.unwrap();

    assert!(matches!(again, Claim::Finished), "got {again:?}");
    let failed = status_of(&store, &record).await;
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.error, Some(error));
    assert!(failed.variants.is_empty());
}

pub async fn a_new_upload_is_due_until_confirmed(store: Store) {
    let owner = owner();
    let image = upload(&owner, now());
    let record = insert_new(&store, &image).await;

    assert!(!is_due(&store, record.id, image.created_at).await);
    let due = store.due_dispatches(image.dispatch_at, 100).await.unwrap();
    let (job, at) = due
        .into_iter()
        .find(|(job, _)| job.image_id == record.id)
        .expect("due once its grace has run out");
    // The relay's publish carries the upload's request id, as the gateway's did.
    let expected = JobMessage {
        image_id: record.id,
        owner,
        trace_id: image.request_id.clone(),
    };
    assert_eq!((job, at), (expected, image.dispatch_at));

    store.mark_dispatched(record.id, at).await.unwrap();
    assert!(!is_due(&store, record.id, now() + secs(3600)).await);
}

pub async fn a_confirm_keeps_a_later_mark(store: Store) {
    let image = upload(&owner(), now());
    let record = insert_new(&store, &image).await;
    let job = claim(&store, record.id, LEASE).await;
    let retry_at = image.dispatch_at + secs(60);
    let error = JobError::new("store_unavailable", "raw-images did not answer");
    assert!(store
        .retry_later(record.id, job.attempt, &error, retry_at)
        .await
        .unwrap());

    // A confirm of the first publish arrives late: the retry's mark must survive it.
    store
        .mark_dispatched(record.id, image.dispatch_at)
        .await
        .unwrap();

    assert_eq!(due_ids(&store, retry_at).await, vec![(record.id, retry_at)]);
}

pub async fn a_confirm_keeps_an_earlier_retry_mark(store: Store) {
    let image = upload(&owner(), now());
    let record = insert_new(&store, &image).await;
    let job = claim(&store, record.id, LEASE).await;
    // A quick worker failed the first attempt and asked for a retry due before the
    // gateway's grace runs out.
    let retry_at = image.dispatch_at - secs(4);
    let error = JobError::new("storage_unavailable", "raw-images did not answer");
    assert!(store
        .retry_later(record.id, job.attempt, &error, retry_at)
        .await
        .unwrap());

    // Only then does the gateway confirm its own publish, for its own (later) mark.
    store
        .mark_dispatched(record.id, image.dispatch_at)
        .await
        .unwrap();

    assert_eq!(due_ids(&store, retry_at).await, vec![(record.id, retry_at)]);
}

pub async fn an_expired_lease_is_dispatched_again(store: Store) {
    let owner = owner();
    let (dead, _job) = claimed(&store, &owner, Duration::ZERO).await;
    let (alive, _job) = claimed(&store, &owner, LEASE).await;
    let scan = now() + secs(1);

    let due = due_ids(&store, scan).await;

    assert_eq!(
        due,
        vec![(dead.id, scan)],
        "only the dead worker's job is due"
    );
    store.mark_dispatched(dead.id, scan).await.unwrap();
    assert!(
        due_ids(&store, scan + secs(1)).await.is_empty(),
        "a confirmed job is not due again"
    );
    assert_eq!(claim(&store, dead.id, LEASE).await.attempt, 2);
    assert_eq!(status_of(&store, &alive).await.status, Status::Processing);
}

pub async fn retry_later_is_due_at_retry_time(store: Store) {
    let (record, job) = claimed(&store, &owner(), LEASE).await;
    let error = JobError::new("store_unavailable", "raw-images did not answer");
    let retry_at = now() + secs(30);

    assert!(store
        .retry_later(record.id, job.attempt, &error, retry_at)
        .await
        .unwrap());

    let waiting = status_of(&store, &record).await;
    assert_eq!(waiting.status, Status::Pending);
    assert_eq!(waiting.error, Some(error));
    assert_eq!(waiting.attempts, 1);
    assert!(!is_due(&store, record.id, retry_at - secs(1)).await);
    assert_eq!(due_ids(&store, retry_at).await, vec![(record.id, retry_at)]);
}

pub async fn a_duplicate_before_the_retry_is_due_changes_nothing(store: Store) {
    let (record, job) = claimed(&store, &owner(), LEASE).await;
    let error = JobError::new("storage_unavailable", "raw-images did not answer");
    let retry_at = now() + secs(30);
    assert!(store
        .retry_later(record.id, job.attempt, &error, retry_at)
        .await
        .unwrap());
    let before = status_of(&store, &record).await;

    // A second relay's copy of the publish that led to attempt 1 arrives now.
    let outcome = store.claim(record.id, LEASE, MAX_ATTEMPTS).await.unwrap();

    assert!(matches!(outcome, Claim::NotDue), "got {outcome:?}");
    assert_eq!(status_of(&store, &record).await, before);
    assert_eq!(due_ids(&store, retry_at).await, vec![(record.id, retry_at)]);
}

pub async fn exhausted_attempts_fail_with_the_last_error(store: Store) {
    const MAX: u32 = 2;
    let record = insert_new(&store, &upload(&owner(), now())).await;
    for attempt in 1..=MAX {
        let Claim::Claimed(job) = store.claim(record.id, LEASE, MAX).await.unwrap() else {
            panic!("attempt {attempt} was not claimed");
        };
        let error = JobError::new("decode_failed", format!("truncated file (try {attempt})"));
        let retry_at = now();
        assert!(store
            .retry_later(record.id, job.attempt, &error, retry_at)
            .await
            .unwrap());
    }

    let outcome = store.claim(record.id, LEASE, MAX).await.unwrap();

    let Claim::Exhausted(failed) = outcome else {
        panic!("expected the job to be exhausted, got {outcome:?}");
    };
    assert_eq!(failed.status, Status::Failed);
    let error = failed.error.clone().expect("an exhausted job says why");
    assert_eq!(error.code, "attempts_exhausted");
    assert!(
        error.message.contains("truncated file (try 2)"),
        "{}",
        error.message
    );
    assert_eq!(status_of(&store, &record).await, failed);
    assert!(!is_due(&store, record.id, now() + secs(3600)).await);
}

pub async fn redispatch_marks_unfinished_work_due(store: Store) {
    let owner = owner();
    let confirmed = insert_new(&store, &upload(&owner, now())).await;
    store
        .mark_dispatched(confirmed.id, now() + secs(60))
        .await
        .unwrap();
    let (in_flight, _job) = claimed(&store, &owner, LEASE).await;
    let (done, job) = claimed(&store, &owner, LEASE).await;
    assert!(store
        .complete(done.id, job.attempt, &rendered(done.id))
        .await
        .unwrap());
    let restart = now();

    let marked = store.redispatch_unfinished(restart).await.unwrap();

    assert_eq!(marked, 2);
    let due: HashSet<ImageId> = due_ids(&store, restart)
        .await
        .into_iter()
        .map(|d| d.0)
        .collect();
    assert_eq!(due, HashSet::from([confirmed.id, in_flight.id]));
    // The in-flight job's worker died with the old process: its lease is gone too.
    assert_eq!(claim(&store, in_flight.id, LEASE).await.attempt, 2);
}

pub async fn deleted_images_are_gone(store: Store) {
    let record = insert_new(&store, &upload(&owner(), now())).await;

    let deleted = store.delete(&record.owner, record.id).await.unwrap();

    assert_eq!(deleted, Some(record.clone()));
    assert_eq!(store.get(&record.owner, record.id).await.unwrap(), None);
    assert!(matches!(
        store.claim(record.id, LEASE, MAX_ATTEMPTS).await.unwrap(),
        Claim::Missing
    ));
    assert_eq!(store.delete(&record.owner, record.id).await.unwrap(), None);
    assert!(!is_due(&store, record.id, now() + secs(3600)).await);
}

pub async fn existing_names_the_rows_of_every_owner(store: Store) {
    let mine = insert_new(&store, &upload(&owner(), now())).await;
    let theirs = insert_new(&store, &upload(&owner(), now())).await;
    let never_stored = ImageId::new();

    let mut found = store
        .existing(&[theirs.id, never_stored, mine.id])
        .await
        .unwrap();

    found.sort();
    let mut expected = vec![mine.id, theirs.id];
    expected.sort();
    assert_eq!(found, expected);
    assert!(store.existing(&[]).await.unwrap().is_empty());
}

pub async fn ping_answers(store: Store) {
    store.ping().await.unwrap();
    assert!(!store.describe().is_empty());
}

pub async fn an_ended_job_with_a_target_is_due_for_its_webhook(store: Store) {
    let completed = finished(&store, true, true).await;
    let failed = finished(&store, true, false).await;
    let silent = finished(&store, false, true).await;
    let (unfinished, _job) = claimed(&store, &owner(), LEASE).await;
    let at = now();

    let taken = take_webhooks(&store, at).await;

    assert_eq!(
        webhook_ids(&taken),
        HashSet::from([completed.id, failed.id])
    );
    for webhook in &taken {
        assert_eq!(webhook.attempt, 1);
        assert!(webhook.record.status.is_final(), "{:?}", webhook.record);
        assert_eq!(webhook.record.callback_url, completed.callback_url);
        assert!(webhook.held_until >= at + secs(59), "{webhook:?}");
    }
    let taken_failed = taken.iter().find(|w| w.record.id == failed.id).unwrap();
    assert_eq!(
        taken_failed.record.error.as_ref().map(|e| e.code.as_str()),
        Some("corrupt_image")
    );
    // Held: nobody else takes them until the hold runs out; the others never fall due.
    assert!(take_webhooks(&store, at).await.is_empty());
    let later = take_webhooks(&store, at + secs(61)).await;
    assert_eq!(
        webhook_ids(&later),
        HashSet::from([completed.id, failed.id])
    );
    assert!(later.iter().all(|w| w.attempt == 2), "{later:?}");
    assert!(!webhook_ids(&later).contains(&silent.id));
    assert!(!webhook_ids(&later).contains(&unfinished.id));
}

pub async fn a_settled_webhook_is_done_or_due_again(store: Store) {
    let delivered = finished(&store, true, true).await;
    let retried = finished(&store, true, true).await;
    let deleted = finished(&store, true, true).await;
    let taken = take_webhooks(&store, now()).await;
    let hold_of = |id: ImageId| taken.iter().find(|w| w.record.id == id).unwrap().held_until;
    let retry_at = now() + secs(30);

    assert!(store
        .settle_webhook(delivered.id, hold_of(delivered.id), None)
        .await
        .unwrap());
    assert!(store
        .settle_webhook(retried.id, hold_of(retried.id), Some(retry_at))
        .await
        .unwrap());
    store.delete(&deleted.owner, deleted.id).await.unwrap();
    assert!(!store
        .settle_webhook(deleted.id, hold_of(deleted.id), Some(retry_at))
        .await
        .unwrap());

    assert!(take_webhooks(&store, retry_at - secs(1)).await.is_empty());
    let again = take_webhooks(&store, retry_at).await;
    assert_eq!(webhook_ids(&again), HashSet::from([retried.id]));
    assert_eq!(again[0].attempt, 2);
    // The first hold is over: settling it again changes nothing, the second still holds.
    assert!(!store
        .settle_webhook(retried.id, hold_of(retried.id), None)
        .await
        .unwrap());
    assert!(take_webhooks(&store, retry_at).await.is_empty());
    let after_hold = take_webhooks(&store, now() + secs(3600)).await;
    assert_eq!(webhook_ids(&after_hold), HashSet::from([retried.id]));
}

pub async fn an_exhausted_job_is_due_for_its_webhook(store: Store) {
    let record = insert_new(&store, &upload(&owner(), now())).await;
    let job = claim(&store, record.id, LEASE).await;
    let error = JobError::new("storage_unavailable", "raw-images did not answer");
    assert!(store
        .retry_later(record.id, job.attempt, &error, now())
        .await
        .unwrap());
    assert!(
        take_webhooks(&store, now()).await.is_empty(),
        "a retry is not an end"
    );

    let outcome = store.claim(record.id, LEASE, 1).await.unwrap();

    assert!(matches!(outcome, Claim::Exhausted(_)), "{outcome:?}");
    let taken = take_webhooks(&store, now()).await;
    assert_eq!(webhook_ids(&taken), HashSet::from([record.id]));
    assert_eq!(taken[0].record.status, Status::Failed);
}

pub async fn concurrent_takers_take_each_webhook_once(store: Store) {
    const TAKERS: usize = 4;
    const WEBHOOKS: usize = 12;
    warm_up(&store, TAKERS).await;
    let mut ended = HashSet::new();
    for _ in 0..WEBHOOKS {
        ended.insert(finished(&store, true, true).await.id);
    }
    let barrier = Arc::new(Barrier::new(TAKERS));
    let at = now();

    let takers = (0..TAKERS).map(|_| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            store.take_due_webhooks(at, HOLD, 5).await.unwrap()
        })
    });
    let mut seen = Vec::new();
    for taker in futures_util::future::join_all(takers).await {
        seen.extend(taker.unwrap().into_iter().map(|w| w.record.id));
    }

    let distinct: HashSet<ImageId> = seen.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "a webhook was taken twice: {seen:?}"
    );
    assert!(distinct.is_subset(&ended));
    // Takers that skipped rows locked by another left them for the next pass.
    let rest = take_webhooks(&store, at).await;
    assert_eq!(distinct.len() + rest.len(), WEBHOOKS);
}
