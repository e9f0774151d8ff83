//! Fail points and deliberately faulty variants for the fault battery
//! (`scripts/fault-battery.sh`). This module exists only in builds with the `failpoints`
//! feature, which no release or deployment build enables; without it not one line of it is
//! compiled, and the call sites are `#[cfg]`-gated too.
//!
//! Both switches are read once, from the environment, at the first hit:
//!
//! - `PIXMILL_FAILPOINT=after_commit:0.1,after_object_write:0.05,publish_twice:1` arms points
//!   with a probability each. An abort point ends the process with `std::process::abort()`
//!   (no unwinding, no destructors, nothing flushed: what a `kill -9` or a power cut does at
//!   that line). `publish_twice` publishes the job a second time a little later, so workers
//!   see duplicate deliveries.
//! - `PIXMILL_FAULTY=publish_before_commit` swaps in a known-wrong implementation, so the
//!   battery can show that it catches the bug.
//!
//! An unknown name or a malformed probability is reported on standard error and aborts at
//! once: a battery run with a typo must not pass by testing nothing.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pixmill_actors::ports::{JobMessage, JobQueue};

/// Where a fail point sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    /// In the upload, after the original is stored and before its row is committed.
    AfterObjectWrite,
    /// In the upload, after the row is committed and before the job is published.
    AfterCommit,
    /// In the upload, after the publish: publish the job once more, shortly after.
    PublishTwice,
}

impl Point {
    const ALL: [Point; 3] = [
        Point::AfterObjectWrite,
        Point::AfterCommit,
        Point::PublishTwice,
    ];

    fn name(self) -> &'static str {
        match self {
            Point::AfterObjectWrite => "after_object_write",
            Point::AfterCommit => "after_commit",
            Point::PublishTwice => "publish_twice",
        }
    }
}

/// A known-wrong implementation the battery must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Faulty {
    /// Publish the job before its row is committed (and clear the mark after the commit, as
    /// the correct order does): a worker that is quick finds no row, drops the delivery, and
    /// nothing ever publishes the job again.
    PublishBeforeCommit,
}

impl Faulty {
    const ALL: [Faulty; 1] = [Faulty::PublishBeforeCommit];

    fn name(self) -> &'static str {
        match self {
            Faulty::PublishBeforeCommit => "publish_before_commit",
        }
    }
}

struct Plan {
    points: HashMap<Point, f64>,
    faulty: Vec<Faulty>,
}

fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        let points = std::env::var("PIXMILL_FAILPOINT").unwrap_or_default();
        let faulty = std::env::var("PIXMILL_FAULTY").unwrap_or_default();
        match (parse_points(&points), parse_faulty(&faulty)) {
            (Ok(points), Ok(faulty)) => Plan { points, faulty },
            (Err(message), _) | (_, Err(message)) => {
                eprintln!("pixmill: {message}");
                std::process::abort();
            }
        }
    })
}

/// Whether the armed point `point` fires this time (by its probability).
pub fn fires(point: Point) -> bool {
    plan()
        .points
        .get(&point)
        .is_some_and(|p| rand::random::<f64>() < *p)
}

/// Aborts the process here when `point` fires.
pub fn hit(point: Point) {
    if fires(point) {
        tracing::error!(fail_point = point.name(), "fail point fired; aborting");
        std::process::abort();
    }
}

/// Publishes `job` once more after a random pause of up to two seconds, so the duplicate
/// arrives while the first delivery is in flight or after it finished.
pub fn publish_again_later(queue: Arc<dyn JobQueue>, job: JobMessage) {
    let pause = Duration::from_millis(rand::random::<u64>() % 2_000);
    tokio::spawn(async move {
        tokio::time::sleep(pause).await;
        match queue.publish(&job).await {
            Ok(()) => tracing::info!(image_id = %job.image_id, "fail point published a duplicate"),
            Err(error) => {
                tracing::warn!(image_id = %job.image_id, error = %error, "could not publish the duplicate")
            }
        }
    });
}

/// How much later than its publish the faulty variant commits.
const SLOW_COMMIT: Duration = Duration::from_millis(300);

/// Holds the faulty variant's commit back a little, as a loaded database would: without
/// it, on a quick machine the commit usually wins the race against the worker and the bug
/// shows in only a few jobs, so the battery's verdict on it would be a matter of luck.
/// Returns true, to chain after a publish.
pub async fn slow_commit() -> bool {
    tokio::time::sleep(SLOW_COMMIT).await;
    true
}

/// Whether the faulty variant `variant` is switched on.
pub fn faulty(variant: Faulty) -> bool {
    plan().faulty.contains(&variant)
}

fn parse_points(raw: &str) -> Result<HashMap<Point, f64>, String> {
    let mut points = HashMap::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, probability) = item.split_once(':').unwrap_or((item, "1"));
        let point = Point::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| format!("PIXMILL_FAILPOINT: unknown fail point {name:?}"))?;
        let probability: f64 = probability
            .parse()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| format!("PIXMILL_FAILPOINT: {item:?} needs a probability in [0, 1]"))?;
        points.insert(point, probability);
    }
    Ok(points)
}

fn parse_faulty(raw: &str) -> Result<Vec<Faulty>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            Faulty::ALL
                .into_iter()
                .find(|f| f.name() == name)
                .ok_or_else(|| format!("PIXMILL_FAULTY: unknown variant {name:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_with_and_without_a_probability() {
        let points = parse_points("after_commit:0.25, publish_twice").unwrap();
        assert_eq!(points[&Point::AfterCommit], 0.25);
        assert_eq!(points[&Point::PublishTwice], 1.0);
        assert!(!points.contains_key(&Point::AfterObjectWrite));
    }

    #[test]
    fn typos_and_bad_probabilities_are_refused() {
        assert!(parse_points("after_comit:0.1").is_err());
        assert!(parse_points("after_commit:1.5").is_err());
        assert!(parse_points("after_commit:often").is_err());
        assert!(parse_faulty("publish_befor_commit").is_err());
        assert_eq!(
            parse_faulty("publish_before_commit").unwrap(),
            [Faulty::PublishBeforeCommit]
        );
    }
}
