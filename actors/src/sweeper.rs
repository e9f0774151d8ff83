//! The orphan sweeper: removes stored objects that no image refers to.
//!
//! An upload stores its original before it commits its row (so a row never points at a
//! missing object). An upload that dies in between (a gateway crash, a failed commit whose
//! clean-up failed too) leaves an original behind that nothing will ever read; a delete
//! whose object removals failed halfway leaves the original, the renditions or both (and
//! an owner who deleted an image expects its pixels gone). Every `sweep_interval` the
//! sweeper lists `raw-images`, then `processed-images`, page by page, and removes each
//! object older than `orphan_age` whose image has no row.
//!
//! Known limits: each sweep lists both buckets whole and looks every id up, so its cost
//! grows with the number of images (one list request and one query per thousand objects);
//! every engine sweeps, so several workers repeat each other's work (harmlessly: removal is
//! idempotent). Only keys pixmill makes are removed ([`ObjectKey::original`], and the
//! persister's `<id>/<variant>.<ext>`); any other key in the buckets is left alone.

use std::collections::HashSet;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::ids::ImageId;
use crate::ports::{BackendError, Bucket, ObjectKey};
use crate::stages::{StageArgs, StageContext};
use crate::stats::ActorState;

/// Objects listed, and ids looked up, per round trip.
const PAGE: u16 = 1000;

pub struct Sweeper;

pub enum SweeperMsg {
    Sweep,
}

impl Actor for Sweeper {
    type Msg = SweeperMsg;
    type State = StageArgs;
    type Arguments = StageArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: StageArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_after(args.ctx.config.sweep_interval, || SweeperMsg::Sweep);
        args.stats.set_state(ActorState::Running);
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _msg: Self::Msg,
        args: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if args.ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        match sweep(&args.ctx).await {
            Ok(0) => tracing::debug!("no orphaned objects"),
            Ok(removed) => {
                args.stats.job_done();
                tracing::info!(removed, "removed orphaned objects");
            }
            Err(error) => {
                args.stats.job_failed();
                tracing::warn!(error = %error, "orphan sweep failed; trying again next interval");
            }
        }
        // Scheduled after the sweep, not on a fixed interval: a slow sweep never queues up
        // the next one behind it.
        myself.send_after(args.ctx.config.sweep_interval, || SweeperMsg::Sweep);
        Ok(())
    }
}

/// One pass over both buckets; returns how many objects it removed. A bucket that cannot
/// be listed does not keep the other from being swept.
async fn sweep(ctx: &StageContext) -> Result<usize, BackendError> {
    let originals = sweep_bucket(ctx, Bucket::Raw, ObjectKey::original_of).await;
    let renditions = sweep_bucket(ctx, Bucket::Processed, ObjectKey::rendition_of).await;
    match (originals, renditions) {
        (Ok(originals), Ok(renditions)) => Ok(originals + renditions),
        (Err(error), _) | (_, Err(error)) => Err(error),
    }
}

/// One pass over `bucket`, whose keys name their image through `image_of`; returns how
/// many objects it removed.
async fn sweep_bucket(
    ctx: &StageContext,
    bucket: Bucket,
    image_of: fn(&ObjectKey) -> Option<ImageId>,
) -> Result<usize, BackendError> {
    let ports = &ctx.ports;
    let cutoff = Utc::now()
        - chrono::Duration::from_std(ctx.config.orphan_age).unwrap_or(chrono::Duration::MAX);
    let mut after: Option<ObjectKey> = None;
    let mut removed = 0;
    while !ctx.shutdown.is_cancelled() {
        let page = ports.objects.list(bucket, after.as_ref(), PAGE).await?;
        // Only an empty page ends the listing: a store may return fewer than asked for
        // (it leaves out keys that are not pixmill's) with more to come.
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());

        let old: Vec<_> = page
            .into_iter()
            .filter(|object| object.modified < cutoff)
            .filter_map(|object| Some((image_of(&object.key)?, object.key)))
            .collect();
        if !old.is_empty() {
            // An image has several renditions: ask for each id once.
            let ids: Vec<_> = old
                .iter()
                .map(|(id, _)| *id)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let known: HashSet<_> = ports.metadata.existing(&ids).await?.into_iter().collect();
            for (id, key) in old.into_iter().filter(|(id, _)| !known.contains(id)) {
                // One object that cannot be removed (a lock, a permission) does not stop
                // the rest; it is tried again at the next sweep.
                match ports.objects.delete(bucket, &key).await {
                    Ok(()) => {
                        tracing::info!(image_id = %id, bucket = %bucket, key = %key, "removed an object no image refers to");
                        removed += 1;
                    }
                    Err(error) => {
                        tracing::warn!(image_id = %id, bucket = %bucket, key = %key, error = %error, "could not remove an object no image refers to");
                    }
                }
            }
        }
    }
    Ok(removed)
}
