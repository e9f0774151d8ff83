//! The rules both metadata stores share, written once so SQLite and PostgreSQL cannot drift:
//! what a claim does to a row, how times are rounded, how large a page may be.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use pixmill_actors::{JobError, Status};

/// The error code a job gets when it used all its attempts.
pub const ATTEMPTS_EXHAUSTED: &str = "attempts_exhausted";

/// The largest page a listing returns, whatever the caller asked for.
pub const MAX_PAGE: u32 = 1_000;

/// How far apart the clocks of the hosts running pixmill may be: a retry whose time is
/// less than this ahead of the claiming worker's clock counts as due (see
/// [`decide_claim`]). Leases rest on the same clocks (`engine.lease`, seconds to minutes).
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(2);

/// What a claim must do to the row it locked.
#[derive(Debug, PartialEq)]
pub enum ClaimStep {
    /// Already `COMPLETED` or `FAILED`: change nothing.
    Finished,
    /// A live lease is held by another worker: change nothing.
    LeasedElsewhere,
    /// A retry is scheduled and not due yet, by more than [`CLOCK_SKEW_ALLOWANCE`]: change
    /// nothing (the delivery is a duplicate of an earlier publish; the relay publishes the
    /// job again when the retry falls due).
    NotDue,
    /// Out of attempts: mark the row `FAILED` with this error.
    Exhaust(JobError),
    /// Take the job: `PROCESSING`, `attempts = attempt`, lease until `lease_until`.
    Take {
        attempt: u32,
        lease_until: DateTime<Utc>,
    },
}

/// The state of a row that a claim looks at.
pub struct ClaimRow<'a> {
    pub status: Status,
    pub attempts: u32,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub dispatch_at: Option<DateTime<Utc>>,
    pub last_error: Option<&'a JobError>,
}

/// Decides a claim on a locked row. A lease is live while it ends after `now`.
pub fn decide_claim(
    row: &ClaimRow<'_>,
    now: DateTime<Utc>,
    lease: Duration,
    max_attempts: u32,
) -> ClaimStep {
    if row.status.is_final() {
        return ClaimStep::Finished;
    }
    let leased = row.lease_expires_at.is_some_and(|until| until > now);
    if row.status == Status::Processing && leased {
        return ClaimStep::LeasedElsewhere;
    }
    // A new upload waits for its first publish with a mark in the future too, but has no
    // attempts yet: only a job that already failed an attempt can be early. "Early" allows
    // for clocks: the relay that published this very delivery may run on a host whose clock
    // is ahead, and it clears the mark once published, so a delivery dropped as early here
    // would leave the job with no mark and no message, PENDING for good.
    let retry_pending = row
        .dispatch_at
        .is_some_and(|at| at > later_by(now, CLOCK_SKEW_ALLOWANCE));
    if row.status == Status::Pending && row.attempts > 0 && retry_pending {
        return ClaimStep::NotDue;
    }
    if row.attempts >= max_attempts {
        return ClaimStep::Exhaust(exhausted_error(row.attempts, row.last_error));
    }
    ClaimStep::Take {
        attempt: row.attempts.saturating_add(1),
        lease_until: later_by(now, lease),
    }
}

/// The final error of a job that used all its attempts, keeping the last attempt's reason
/// so the owner learns why.
pub fn exhausted_error(attempts: u32, last: Option<&JobError>) -> JobError {
    let message = match last {
        Some(last) => format!(
            "gave up after {attempts} attempts; last error ({}): {}",
            last.code, last.message
        ),
        None => format!("gave up after {attempts} attempts"),
    };
    JobError::new(ATTEMPTS_EXHAUSTED, message)
}

/// `now + by`, saturating at the latest representable time instead of overflowing.
pub fn later_by(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(by)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Rounds a time down to whole microseconds, the precision both stores keep, so a record
/// read back compares equal to the one written and cursors match stored rows exactly.
pub fn to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// The current time at the stores' precision. Every store time comes from the caller's
/// clock (never the database's), so the `now` that the relay passes and the leases that
/// claims set are on one clock; hosts are expected to keep theirs in sync.
pub fn now_micros() -> DateTime<Utc> {
    to_micros(Utc::now())
}

/// The page size actually served: at least 1, at most [`MAX_PAGE`].
pub fn page_limit(asked: u32) -> u32 {
    asked.clamp(1, MAX_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: Status, attempts: u32, lease: Option<DateTime<Utc>>) -> ClaimRow<'static> {
        ClaimRow {
            status,
            attempts,
            lease_expires_at: lease,
            dispatch_at: None,
            last_error: None,
        }
    }

    #[test]
    fn only_a_retry_that_is_due_is_taken() {
        let now = now_micros();
        let lease = Duration::from_secs(30);
        let later = Some(later_by(now, lease));
        let waiting = ClaimRow {
            dispatch_at: later,
            ..row(Status::Pending, 1, None)
        };
        assert_eq!(decide_claim(&waiting, now, lease, 3), ClaimStep::NotDue);
        let due = ClaimRow {
            dispatch_at: Some(now),
            ..row(Status::Pending, 1, None)
        };
        assert!(matches!(
            decide_claim(&due, now, lease, 3),
            ClaimStep::Take { attempt: 2, .. }
        ));
        // Published by a relay whose clock runs ahead of this worker's: due all the same.
        let published_from_ahead = ClaimRow {
            dispatch_at: Some(later_by(now, Duration::from_millis(1_500))),
            ..row(Status::Pending, 1, None)
        };
        assert!(matches!(
            decide_claim(&published_from_ahead, now, lease, 3),
            ClaimStep::Take { attempt: 2, .. }
        ));
        let new_upload = ClaimRow {
            dispatch_at: later,
            ..row(Status::Pending, 0, None)
        };
        assert!(matches!(
            decide_claim(&new_upload, now, lease, 3),
            ClaimStep::Take { attempt: 1, .. }
        ));
    }

    #[test]
    fn a_live_lease_blocks_and_an_expired_one_does_not() {
        let now = now_micros();
        let lease = Duration::from_secs(30);
        let live = row(Status::Processing, 1, Some(later_by(now, lease)));
        assert_eq!(
            decide_claim(&live, now, lease, 3),
            ClaimStep::LeasedElsewhere
        );
        let expired = row(Status::Processing, 1, Some(now));
        assert!(matches!(
            decide_claim(&expired, now, lease, 3),
            ClaimStep::Take { attempt: 2, .. }
        ));
    }

    #[test]
    fn final_rows_are_never_taken_and_exhausted_ones_fail() {
        let now = now_micros();
        let lease = Duration::from_secs(30);
        let done = row(Status::Completed, 1, None);
        assert_eq!(decide_claim(&done, now, lease, 3), ClaimStep::Finished);
        let last = JobError::new("decode_failed", "truncated file");
        let spent = ClaimRow {
            last_error: Some(&last),
            ..row(Status::Pending, 3, None)
        };
        let ClaimStep::Exhaust(error) = decide_claim(&spent, now, lease, 3) else {
            panic!("a job out of attempts was not failed");
        };
        assert_eq!(error.code, ATTEMPTS_EXHAUSTED);
        assert!(error.message.contains("truncated file"));
    }

    #[test]
    fn huge_leases_saturate() {
        let now = now_micros();
        assert_eq!(later_by(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(page_limit(0), 1);
        assert_eq!(page_limit(u32::MAX), MAX_PAGE);
    }
}
