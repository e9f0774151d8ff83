//! The transformer: renders a job on the [`CpuPool`](crate::cpu_pool::CpuPool), one image
//! per actor at a time, with as many actors (and pool threads) as CPU cores, so CPU work
//! never runs on the async executor and never oversubscribes the cores. The pool's threads
//! run at background CPU priority, so request handling in the same process or on the same
//! host goes first.
//!
//! A panic inside a codec is caught where it happens (`transform::panics`) and fails the job
//! for good (`internal_error`): the same bytes would panic again; the render's guard covers
//! every step of it. A panic on the CPU pool outside that guard (today only the fault
//! plan's hook runs there, which is how the tests reach this path) is not caught and
//! forgotten: the job is released for a retry, then the panic is resumed so this actor
//! dies and the supervisor restarts it and counts the restart.
//!
//! A render still running when its job's lease stops being renewed (`engine.max_job_time`
//! after the claim) is given up on and its thread replaced (`cpu_pool`), so a codec stuck in
//! a loop costs the worker one thread's memory, not a core for good. The job ends `FAILED`
//! (`render_timed_out`), as after a codec panic: the upload's checks (`transform::work`
//! among them) bound an honest render to seconds, so one still running after minutes is
//! stuck on this image and would be again.
//! A job whose render had less than half its time (it waited for a thread, or its
//! download was slow) is not the image's doing: it is retried (`job_time_exceeded`).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ractor::ActorProcessingErr;

use super::outcome::{
    finished, report_settled_elsewhere, settle, settle_failure, settle_failure_with_next_step,
    Retry,
};
use super::{PersistJob, StageArgs, StageHandler, TransformJob};
use crate::cpu_pool::CpuPoolError;
use crate::lease::LeaseKeeper;
use crate::metrics::{JobOutcome, Phase};
use crate::ports::{ClaimedJob, Delivery, Settlement};
use crate::record::JobError;
use crate::transform::render_all;

pub struct Transformer;

impl StageHandler for Transformer {
    type Payload = TransformJob;

    async fn handle(args: &StageArgs, payload: TransformJob) -> Result<(), ActorProcessingErr> {
        transform(args, payload).await
    }
}

async fn transform(args: &StageArgs, job: TransformJob) -> Result<(), ActorProcessingErr> {
    let TransformJob {
        delivery,
        job,
        lease,
        original,
    } = job;
    let ctx = args.ctx.clone();
    let record = job.record.clone();
    let attempt = job.attempt;
    let faults = Arc::clone(&ctx.faults);
    let limits = ctx.config.limits.clone();
    let span = tracing::Span::current();
    let started = std::time::Instant::now();
    // Given up on when the lease stops being renewed: another attempt may take it then.
    let limit = lease
        .renewed_until()
        .saturating_duration_since(tokio::time::Instant::now());

    let render = ctx.cpu.run_within(limit, move || {
        let _entered = span.enter();
        faults.before_transform(&record, attempt);
        render_all(&original, &record.spec, &limits)
    });
    let rendered = tokio::select! {
        rendered = render => rendered,
        () = ctx.hand_back.cancelled() => {
            // The render finishes on its thread unheard; the delivery goes back to the
            // queue as it is dropped, and the shutdown releases the lease.
            tracing::info!("shutting down; the render in progress is left and its job handed back");
            return Ok(());
        }
    };

    match rendered {
        Ok(outcome) => {
            ctx.ports.metrics.phase(Phase::Transform, started.elapsed());
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                ok = outcome.is_ok(),
                "transformed"
            );
            let span = tracing::Span::current();
            let handed = PersistJob {
                delivery,
                job,
                lease,
                outcome,
            };
            args.hand_on(&ctx.persisters, handed, span).await;
            Ok(())
        }
        Err(CpuPoolError::TimedOut { ran }) => {
            settle_given_up(args, delivery, &job, lease, ran).await;
            Ok(())
        }
        Err(pool_error) => release_after_pool_failure(args, delivery, &job, pool_error).await,
    }
}

/// Settles a job whose render was given up on at its limit, after running for `ran` (or
/// never started): failed for good if the render had most of the job's time, else retried.
async fn settle_given_up(
    args: &StageArgs,
    delivery: Delivery,
    job: &ClaimedJob,
    lease: LeaseKeeper,
    ran: Option<Duration>,
) {
    let ctx = &args.ctx;
    let max_job_time = humantime_serde::re::humantime::format_duration(ctx.config.max_job_time);
    args.stats.job_failed();
    // The image's doing only if its render had most of the job's time: one that started
    // late (behind other renders, after a slow download) is retried.
    match ran.filter(|ran| *ran >= ctx.config.max_job_time / 2) {
        Some(ran) => {
            // In whole seconds, or tenths of one under ten seconds.
            let step_ms = if ran.as_secs() < 10 { 100 } else { 1000 };
            let shown = ran.as_millis() as u64 / step_ms * step_ms;
            let ran = humantime_serde::re::humantime::format_duration(Duration::from_millis(shown));
            tracing::error!(%ran, %max_job_time, "the render outlasted engine.max_job_time and was given up on");
            let reason = JobError::new(
                "render_timed_out",
                format!("rendering the image was still running after {ran} and was given up on (the workers' engine.max_job_time is {max_job_time}); the job failed: try a smaller image or fewer steps"),
            );
            settle_failure(ctx, delivery, job, lease, reason, Retry::Permanent).await;
        }
        None => {
            tracing::warn!(%max_job_time, "the job's time ran out before its render could finish");
            let what = format!("the job's time ({max_job_time}, the workers' engine.max_job_time) ran out before its render could finish");
            let reason = ("job_time_exceeded", what);
            settle_failure_with_next_step(ctx, delivery, job, lease, reason, Retry::Transient)
                .await;
        }
    }
}

/// Releases a job for a retry after the pool failed it (a panic outside a render's guard,
/// or the pool's threads gone), then resumes the panic or fails this actor, so the
/// supervisor restarts it and counts the restart.
async fn release_after_pool_failure(
    args: &StageArgs,
    delivery: Delivery,
    job: &ClaimedJob,
    pool_error: CpuPoolError,
) -> Result<(), ActorProcessingErr> {
    let ctx = &args.ctx;
    let attempt = job.attempt;
    let reason = match &pool_error {
        CpuPoolError::Panicked(_) => JobError::new(
            "transform_crashed",
            "the image crashed the transformer; it will be retried, and fails for good if it keeps crashing",
        ),
        // (A time-out is settled by settle_given_up.)
        CpuPoolError::Closed | CpuPoolError::TimedOut { .. } => {
            tracing::error!("the CPU pool's threads are gone; releasing the job for a retry");
            JobError::new(
                "transform_unavailable",
                "the worker could not render the image; it will be retried",
            )
        }
    };
    // Released with the retry policy's back-off, not requeued at once: a job that crashes
    // its renderer must not come straight back to the restarted actor.
    let retry_at = Utc::now()
        + chrono::Duration::from_std(ctx.config.retry.backoff(attempt)).unwrap_or_default();
    let released = ctx
        .ports
        .metadata
        .retry_later(job.record.id, attempt, &reason, retry_at)
        .await;
    settle(delivery, Settlement::Ack).await;
    args.stats.job_failed();
    match released {
        // Deleted meanwhile, or another attempt owns the job: not this one's to report.
        Ok(false) => report_settled_elsewhere(ctx, job).await,
        Ok(true) => {
            finished(
                ctx,
                &job.record,
                attempt,
                JobOutcome::Retried,
                Some(&reason),
            )
            .await;
        }
        Err(error) => {
            tracing::warn!(error = %error, "could not release the job; its lease will expire");
        }
    }
    match pool_error {
        CpuPoolError::Panicked(panic) => std::panic::resume_unwind(panic),
        CpuPoolError::Closed | CpuPoolError::TimedOut { .. } => {
            Err("the CPU pool's threads are gone".into())
        }
    }
}
