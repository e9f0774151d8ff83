//! The permit an upload holds while it is received, checked and stored, and the admission
//! checks that come with it.
//!
//! It is an extractor, listed in the upload operation after the bearer token and before the
//! form, so poem-openapi takes it in that order: a caller without a valid token never holds
//! a slot, and a caller with one is admitted (upload role `403`, its owner's share of the
//! slots and its upload rate `429`, see `gateway::admission`) and then waits for a slot,
//! all before a byte of its body is read. That bounds, per gateway, the uploads being
//! held in memory at once (each at most the body limit, and up to twice that while it
//! arrives and its buffer grows) to `server.max_concurrent_uploads`,
//! and one owner's to `server.max_concurrent_uploads_per_owner`.
//!
//! A slow client holds its slot until its request ends, and `server.request_timeout` ends it
//! (`408`); waiting for a slot counts against the same timeout. Limiting connections per
//! client is left to the proxy in front.

use std::sync::{Arc, OnceLock};

use poem::web::RequestBody;
use poem::{FromRequest, Request};
use tokio::sync::OwnedSemaphorePermit;

use super::errors::ApiError;
use crate::auth::Principal;
use crate::gateway::{Gateway, OwnerPermit};

/// One of the gateway's `upload_slots` and one of the owner's share, both released when the
/// upload's request ends, whatever its outcome (the fields are held only to be dropped).
pub struct UploadSlot {
    _owner: OwnerPermit,
    _slot: OwnedSemaphorePermit,
}

/// The caller the bearer check accepted, for extractors that run after it in the same
/// request. `api::app` puts an empty one on every request; the bearer checker fills it.
/// (An extractor only sees the request immutably, hence the cell.)
#[derive(Clone, Default)]
pub struct VerifiedCaller(Arc<OnceLock<Principal>>);

impl VerifiedCaller {
    pub fn set(&self, principal: &Principal) {
        // Set once per request; a second bearer check in one request would name the same
        // token, so the first value stands.
        let _ = self.0.set(principal.clone());
    }

    fn get(&self) -> Option<&Principal> {
        self.0.get()
    }
}

impl<'a> FromRequest<'a> for UploadSlot {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let gateway = request
            .data::<Arc<Gateway>>()
            .ok_or_else(ApiError::internal)?;
        // A refusal here is counted by the request log, as every refusal made before the
        // handler runs.
        Ok(admit(request, gateway).await?)
    }
}

async fn admit(request: &Request, gateway: &Gateway) -> Result<UploadSlot, ApiError> {
    if gateway.is_draining() {
        return Err(ApiError::shutting_down());
    }
    let Some(who) = request
        .extensions()
        .get::<VerifiedCaller>()
        .and_then(VerifiedCaller::get)
    else {
        // Only reachable if the operation lists this extractor before its bearer token, or
        // `api::app` stops adding the cell: a bug, never the client's doing.
        tracing::error!("upload slot asked for before the bearer token was verified");
        return Err(ApiError::internal());
    };
    let owner = gateway.admit_upload(who).await?;
    // The semaphore is closed only on shutdown.
    let slot = gateway
        .upload_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::shutting_down())?;
    Ok(UploadSlot {
        _owner: owner,
        _slot: slot,
    })
}
