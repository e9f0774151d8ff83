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
    /// Every backend answered.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// At least one backend did not answer, or the process is shutting down.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

async fn check<F>(name: &str, describe: String, probe: F) -> BackendCheck
where
    F: std::future::Future<Output = Result<(), pixmill_actors::ports::BackendError>>,
{
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => BackendCheck {
            name: name.to_owned(),
            ok: true,
            detail: describe,
        },
        Ok(Err(error)) => BackendCheck {
            name: name.to_owned(),
            ok: false,
            detail: format!("{describe}: {error}"),
        },
        Err(_) => BackendCheck {
            name: name.to_owned(),
            ok: false,
            detail: format!("{describe}: no answer within 2 s"),
        },
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
    let all_ok = backends.iter().all(|b| b.ok);
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

    /// Readiness: every backend is reachable; says which is not.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, gateway: Data<&Arc<Gateway>>) -> ReadyResponse {
        match readiness(&gateway).await {
            (true, report) => ReadyResponse::Ready(Json(report)),
            (false, report) => ReadyResponse::NotReady(Json(report)),
        }
    }
}
