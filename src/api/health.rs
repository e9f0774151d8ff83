//! Liveness and readiness, for people and for the compose health checks. No token needed.

use std::sync::Arc;
use std::time::Duration;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::gateway::Gateway;

/// How long a readiness probe waits for each backend.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Object)]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
}

#[derive(Debug, Object)]
pub struct BackendCheck {
    /// `metadata`, `objects`, `queue` or `cache`.
    pub name: String,
    pub ok: bool,
    /// Whether readiness needs it. The cache (Redis) is not required: without it the gateway
    /// serves reads from the metadata store and lets uploads through unlimited (fail open),
    /// so taking every gateway out of a load balancer over a Redis outage would only turn
    /// a degraded service into none. Its failure still shows here, with `ok: false`.
    pub required: bool,
    /// What the backend is (no secrets), and the error when not ok.
    pub detail: String,
}

#[derive(Debug, Object)]
pub struct Readiness {
    /// `ready`, `not_ready` or `draining`.
    pub status: String,
    pub backends: Vec<BackendCheck>,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Every required backend answered (the cache may be down; see `required`).
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// At least one required backend did not answer, or the process is shutting down.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

/// What a failed cache check adds, so an operator reading `/readyz` sees the consequence.
const CACHE_DOWN: &str = "uploads are not rate limited until it answers (fail open)";

async fn check<F>(name: &str, describe: String, probe: F) -> BackendCheck
where
    F: std::future::Future<Output = Result<(), pixmill_actors::ports::BackendError>>,
{
    let required = name != "cache";
    let failed = |why: String| BackendCheck {
        name: name.to_owned(),
        ok: false,
        required,
        detail: if required {
            format!("{describe}: {why}")
        } else {
            format!("{describe}: {why}; {CACHE_DOWN}")
        },
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => BackendCheck {
            name: name.to_owned(),
            ok: true,
            required,
            detail: describe,
        },
        Ok(Err(error)) => failed(error.to_string()),
        Err(_) => failed("no answer within 2 s".to_owned()),
    }
}

/// The readiness report shared by the gateway and the worker's admin listener.
pub async fn readiness(gateway: &Gateway) -> (bool, Readiness) {
    let backends = vec![
        check(
            "metadata",
            gateway.metadata.describe(),
            gateway.metadata.ping(),
        )
        .await,
        check(
            "objects",
            gateway.objects.describe(),
            gateway.objects.ping(),
        )
        .await,
        check("queue", gateway.queue.describe(), gateway.queue.ping()).await,
        check("cache", gateway.cache.describe(), gateway.cache.ping()).await,
    ];
    let all_ok = backends.iter().all(|b| b.ok || !b.required);
    let status = if gateway.is_draining() {
        "draining"
    } else if all_ok {
        "ready"
    } else {
        "not_ready"
    };
    (
        all_ok && !gateway.is_draining(),
        Readiness {
            status: status.to_owned(),
            backends,
        },
    )
}

pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process is up.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Liveness> {
        Json(Liveness {
            status: "ok".to_owned(),
        })
    }

    /// Readiness: every required backend is reachable; says which backend is not.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, gateway: Data<&Arc<Gateway>>) -> ReadyResponse {
        match readiness(&gateway).await {
            (true, report) => ReadyResponse::Ready(Json(report)),
            (false, report) => ReadyResponse::NotReady(Json(report)),
        }
    }
}
