//! The metadata store contract, written once in [`contract`] and run against every store.
//!
//! Each store module opens a fresh store per test (a temporary SQLite file, a PostgreSQL
//! schema of its own) and lists the contract tests through [`contract_suite!`].

/// Declares one `#[tokio::test]` per contract test for a store module that provides
/// `async fn open() -> Option<(Arc<dyn MetadataStore>, Fixture)>` (`None`: server
/// unreachable, test skipped outside CI) and `async fn close(Fixture)`.
macro_rules! contract_suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((store, fixture)) = open().await else {
                    return;
                };
                crate::metadata::contract::$name(store).await;
                close(fixture).await;
            }
        )*
    };
}

/// Every test of the contract; each store module passes this list to [`contract_suite!`].
macro_rules! every_contract_test {
    ($suite:ident) => {
        $suite!(
            insert_then_get_roundtrips,
            list_pages_newest_first,
            list_filters_by_status,
            other_owners_see_nothing,
            idempotency_key_returns_the_first_upload,
            concurrent_inserts_with_one_key_store_one,
            claim_then_complete,
            concurrent_claims_take_a_job_once,
            a_live_lease_keeps_others_out,
            a_stale_attempt_cannot_write,
            a_renewed_lease_keeps_the_job_from_the_relay,
            a_lease_taken_back_is_not_renewed,
            final_status_never_goes_back,
            a_new_upload_is_due_until_confirmed,
            a_confirm_keeps_a_later_mark,
            a_confirm_keeps_an_earlier_retry_mark,
            an_expired_lease_is_dispatched_again,
            retry_later_is_due_at_retry_time,
            a_duplicate_before_the_retry_is_due_changes_nothing,
            exhausted_attempts_fail_with_the_last_error,
            redispatch_marks_unfinished_work_due,
            deleted_images_are_gone,
            existing_names_the_rows_of_every_owner,
            ping_answers,
            an_ended_job_with_a_target_is_due_for_its_webhook,
            a_settled_webhook_is_done_or_due_again,
            an_exhausted_job_is_due_for_its_webhook,
            concurrent_takers_take_each_webhook_once,
        );
    };
}

mod contract;
mod postgres;
mod sqlite;
