//! How the engine is sized and how it retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::transform::InputLimits;

/// Retries of transient failures: exponential back-off with jitter, up to `max_attempts`
/// attempts in all (the first one included).
///
/// The defaults (5 attempts, 4 s doubling, jitter down to half) spread the attempts over 30 to
/// 60 s, so a job rides out an outage of the object store or the database that short; a
/// longer one fails the jobs it catches in flight (`storage_unavailable`, dead-lettered).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(4),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before the attempt after `attempt`: base * 2^(attempt-1), capped, then
    /// scaled by a random factor in [0.5, 1) so that retries of many jobs spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let raw = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        raw.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Sizes and timings of the engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// Images transformed at once; 0 means one per CPU core.
    pub transform_workers: usize,
    /// Originals downloaded at once.
    pub download_workers: usize,
    /// Results written at once.
    pub persist_workers: usize,
    /// How long a claimed job stays leased to its worker without a renewal. A live worker
    /// renews it every third of this while it holds the job ([`crate::lease`]); a worker that
    /// dies, or is paused or cut off from the metadata store for about two thirds of this,
    /// loses the job to another.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How long a worker keeps renewing the lease of one job. A job still held after this
    /// stops being renewed, so its lease runs out and the job is dispatched again, counting
    /// an attempt. A render still running then (a codec stuck in a loop) is given up on and
    /// its thread replaced; its job fails if the render had most of that time (see
    /// `stages::transformer`).
    #[serde(with = "humantime_serde")]
    pub max_job_time: Duration,
    pub retry: RetryPolicy,
    /// How often the relay looks for due jobs (unconfirmed uploads, retries, expired leases).
    #[serde(with = "humantime_serde")]
    pub relay_interval: Duration,
    /// How long shutdown waits for in-flight jobs before handing them back to the queue.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How often the sweeper looks for originals and results that no image refers to.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How old an object without an image must be before the sweeper removes it. Must
    /// exceed the longest upload (the gateway's request timeout), or an upload between
    /// storing its original and committing its row could lose the original.
    #[serde(with = "humantime_serde")]
    pub orphan_age: Duration,
    /// What an input may be; not a setting of its own: the app copies its `[limits]` here,
    /// so the gateway's checks and the engine's are the same.
    #[serde(skip)]
    pub limits: InputLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            transform_workers: 0,
            download_workers: 4,
            persist_workers: 2,
            lease: Duration::from_secs(30),
            max_job_time: Duration::from_secs(600),
            retry: RetryPolicy::default(),
            relay_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(20),
            sweep_interval: Duration::from_secs(600),
            orphan_age: Duration::from_secs(900),
            limits: InputLimits::default(),
        }
    }
}

/// The longest any engine timing may be. Dates and deadlines are computed from them (a
/// sweep's cut-off, a retry's time, a lease's end), which overflow for absurd values, and no
/// real setting comes near a year.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

impl EngineConfig {
    /// Refuses timings the engine cannot run with, naming the setting and what it may be.
    pub fn check(&self) -> Result<(), String> {
        let timings = [
            ("engine.lease", self.lease),
            ("engine.max_job_time", self.max_job_time),
            ("engine.relay_interval", self.relay_interval),
            ("engine.shutdown_grace", self.shutdown_grace),
            ("engine.sweep_interval", self.sweep_interval),
            ("engine.orphan_age", self.orphan_age),
            ("engine.retry.base_delay", self.retry.base_delay),
            ("engine.retry.max_delay", self.retry.max_delay),
        ];
        let shown = |value| humantime_serde::re::humantime::format_duration(value);
        if let Some((name, value)) = timings.iter().find(|(_, value)| *value > LONGEST) {
            return Err(format!("{name} is {}; at most 365 days", shown(*value)));
        }
        // Floors: a worker renews a lease every third of it (each a store round trip), a
        // render is given up on after max_job_time, and the relay and sweeper run again
        // right after the interval (zero would spin).
        let floors = [
            ("engine.lease", self.lease, Duration::from_secs(1)),
            (
                "engine.max_job_time",
                self.max_job_time,
                Duration::from_secs(1),
            ),
            (
                "engine.relay_interval",
                self.relay_interval,
                Duration::from_millis(10),
            ),
            (
                "engine.sweep_interval",
                self.sweep_interval,
                Duration::from_secs(1),
            ),
        ];
        if let Some((name, value, floor)) = floors.iter().find(|(_, value, floor)| value < floor) {
            return Err(format!(
                "{name} is {}; at least {}",
                shown(*value),
                shown(*floor)
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(
                "engine.retry.max_attempts is 0; at least 1 (the first attempt counts)".to_owned(),
            );
        }
        Ok(())
    }

    pub fn transform_slots(&self) -> usize {
        if self.transform_workers > 0 {
            return self.transform_workers;
        }
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// How many deliveries the pipeline can hold at once; the consumer's prefetch. One more
    /// than the stages' capacities, for the delivery the consumer is waiting to hand on.
    pub fn pipeline_capacity(&self) -> usize {
        self.download_workers.max(1) + self.transform_slots() + self.persist_workers.max(1) + 1
    }
}
