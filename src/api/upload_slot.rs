//! The permit an upload holds while it is received, checked and stored.
//!
//! It is an extractor, listed in the upload operation after the bearer token and before the
//! form, so poem-openapi takes it in that order: a caller without a valid token never holds
//! a slot, and a caller with one waits for a slot before a byte of its body is read. That
//! bounds, per gateway, the uploads being spooled to temporary files and held in memory at
//! once to `server.max_concurrent_uploads`.
//!
//! A slow client holds its slot until its request ends, and `server.request_timeout` ends it
//! (`408`); waiting for a slot counts against the same timeout. Limiting connections per
//! client is left to the proxy in front.

use std::sync::Arc;

use poem::web::RequestBody;
use poem::{FromRequest, Request};
use tokio::sync::OwnedSemaphorePermit;

use super::errors::ApiError;
use crate::gateway::Gateway;

/// One of the gateway's `upload_slots`, released when the upload's request ends.
pub struct UploadSlot(#[allow(dead_code)] OwnedSemaphorePermit);

impl<'a> FromRequest<'a> for UploadSlot {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let gateway = request
            .data::<Arc<Gateway>>()
            .ok_or_else(ApiError::internal)?;
        if gateway.is_draining() {
            return Err(ApiError::shutting_down().into());
        }
        // The semaphore is closed only on shutdown.
        let permit = gateway.upload_slots.clone().acquire_owned().await;
        permit
            .map(UploadSlot)
            .map_err(|_| ApiError::shutting_down().into())
    }
}
