//! `/v1/system`: what the actors are doing and how each backend answers, for operators
//! holding the admin role. Served by the gateway and by a worker's admin listener.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::errors::{error_responses, ApiError};
use super::health::{readiness, Readiness};
use super::security::BearerAuth;
use super::ApiTags;
use crate::gateway::Gateway;

/// One supervised actor. Fields without a value are left out (never `null`).
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ActorInfo {
    /// Stable name: stage and slot, e.g. `transformer-0`.
    pub name: String,
    /// `consumer`, `downloader`, `transformer`, `persister`, `relay` or `sweeper`.
    pub role: String,
    /// `starting`, `running`, `restarting` or `stopped`.
    pub state: String,
    pub restarts_total: u64,
    /// Restarts in the last five minutes.
    pub restarts_recent: u64,
    pub mailbox_depth: u64,
    pub mailbox_capacity: u64,
    pub jobs_in_flight: u64,
    /// Jobs this actor did its part of: handed on to the next stage (consumer, downloader,
    /// transformer), recorded (persister), published (relay) or swept (sweeper).
    pub jobs_done: u64,
    /// Jobs this actor ended as failed or released for a retry.
    pub jobs_failed: u64,
    #[oai(skip_serializing_if_is_none)]
    pub last_failure_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub last_failure_reason: Option<String>,
}

/// The supervision tree: one supervisor and its children.
#[derive(Debug, Object)]
pub struct ActorTree {
    pub supervisor: String,
    pub children: Vec<ActorInfo>,
    /// Renders given up on after `engine.max_job_time` that still run, each holding a
    /// thread and its memory (a codec stuck in a loop; the thread was replaced, up to as
    /// many as the CPU pool has). Restart the process if it stays above 0.
    pub renders_hung: u64,
}

#[derive(ApiResponse)]
pub enum ActorsResponse {
    #[oai(status = 200)]
    Ok(Json<ActorTree>),
}

error_responses!(
    /// Why the actor tree could not be read.
    SystemError {
        Forbidden = 403: "The token lacks the admin role (`missing_role`).",
        NotFound = 404: "This process runs no engine (a gateway-only process).",
        Unavailable = 503: "The token issuer's keys cannot be fetched (`issuer_unavailable`); see Retry-After.",
    }
);

#[derive(ApiResponse)]
pub enum ReadinessReport {
    /// The report, ready or not (see `status`).
    #[oai(status = 200)]
    Ok(Json<Readiness>),
}

error_responses!(
    /// Why the readiness report could not be read.
    ReadinessError {
        Forbidden = 403: "The token lacks the admin role (`missing_role`).",
        Unavailable = 503: "The token issuer's keys cannot be fetched (`issuer_unavailable`); see Retry-After.",
    }
);

pub struct SystemApi;

#[OpenApi(prefix_path = "/v1/system", tag = "ApiTags::System")]
impl SystemApi {
    /// Readiness as `/readyz` reports it, with each backend's `detail`: what it is
    /// (addresses, bucket, queue; no secrets) and its own error text when it failed.
    /// Always `200` with the report: `status` says whether the process is ready (a `503`
    /// here would be this endpoint's own failure, such as the token issuer's).
    #[oai(path = "/readiness", method = "get", operation_id = "system_readiness")]
    async fn readiness(
        &self,
        gateway: Data<&Arc<Gateway>>,
        auth: BearerAuth,
    ) -> Result<ReadinessReport, ReadinessError> {
        gateway.require_role(&auth.0, &gateway.admin_role)?;
        let (_, report) = readiness(&gateway, true).await;
        Ok(ReadinessReport::Ok(Json(report)))
    }

    /// The supervision tree with every actor's counters.
    #[oai(path = "/actors", method = "get", operation_id = "system_actors")]
    async fn actors(
        &self,
        gateway: Data<&Arc<Gateway>>,
        auth: BearerAuth,
    ) -> Result<ActorsResponse, SystemError> {
        gateway.require_role(&auth.0, &gateway.admin_role)?;
        let view = gateway.engine.as_ref().ok_or_else(|| {
            ApiError::new(
                poem::http::StatusCode::NOT_FOUND,
                "no_engine",
                "this process runs no workers; ask a worker or standalone process",
            )
        })?;
        let engine = view();
        let children = engine
            .actors
            .into_iter()
            .map(|a| ActorInfo {
                name: a.name,
                role: a.stage.to_owned(),
                state: a.state.as_str().to_owned(),
                restarts_total: a.restarts_total,
                restarts_recent: a.restarts_recent,
                mailbox_depth: a.mailbox_depth as u64,
                mailbox_capacity: a.mailbox_capacity as u64,
                jobs_in_flight: a.jobs_in_flight as u64,
                jobs_done: a.jobs_done,
                jobs_failed: a.jobs_failed,
                last_failure_at: a.last_failure_at,
                last_failure_reason: a.last_failure_reason,
            })
            .collect();
        Ok(ActorsResponse::Ok(Json(ActorTree {
            supervisor: "engine-supervisor".to_owned(),
            children,
            renders_hung: engine.renders_hung as u64,
        })))
    }
}
