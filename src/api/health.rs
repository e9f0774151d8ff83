//! Liveness and readiness, for people and for the compose health checks. No token needed,
//! so what anyone may read is terse: which backend fails and how (`problem`), never its
//! address or the backend's own error text. Those (`detail`) are for operators holding the
//! admin role, at `GET /v1/system/readiness`.
//!
//! A probe round reaches every backend (a database round trip, an S3 call, a queue
//! declaration, a Redis ping), so rounds are shared: requests that arrive while one runs,
//! or within [`REUSE`] after it, get its answer. A flood of anonymous probes costs the
//! backends one round a second at most.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pixmill_actors::engine::EngineSnapshot;
use pixmill_actors::ports::{BackendError, ErrorKind};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use tokio::sync::Mutex;

use super::ApiTags;
use crate::gateway::Gateway;

/// How long a readiness probe waits for each backend.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a probe round's answer is reused.
const REUSE: Duration = Duration::from_secs(1);

#[derive(Debug, Object)]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
}

#[derive(Clone, Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BackendCheck {
    /// `metadata`, `objects`, `queue`, `cache`, `issuer`, or, in a process that renders,
    /// `renders` (its CPU pool: not ok while every render thread hangs).
    pub name: String,
    pub ok: bool,
    /// Whether readiness needs it. The cache (Redis) is not required: without it the gateway
    /// serves reads from the metadata store and lets uploads through unlimited (fail open),
    /// so taking every gateway out of a load balancer over a Redis outage would only turn
    /// a degraded service into none. Nor is the token issuer (Keycloak): every gateway
    /// depends on it alike. Their failures still show here, with `ok: false`.
    pub required: bool,
    /// When not ok: how it failed (`unreachable`, `no answer within 2 s`, ...) and, for the
    /// cache, what that means for uploads.
    pub problem: Option<String>,
    /// What the backend is (addresses, bucket, queue) and its own error text; only in
    /// `/v1/system/readiness`.
    pub detail: Option<String>,
}

#[derive(Clone, Debug, Object)]
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

impl ReadyResponse {
    fn from_report((ready, report): (bool, Readiness)) -> Self {
        if ready {
            Self::Ready(Json(report))
        } else {
            Self::NotReady(Json(report))
        }
    }
}

/// What the failure of a backend readiness does not require means for the service, so an
/// operator reading `/readyz` sees the consequence; `None` for a required backend.
fn consequence(name: &str) -> Option<&'static str> {
    match name {
        "cache" => Some("uploads are not rate limited until it answers (fail open)"),
        "issuer" => {
            Some("requests with a token it signed answer 503 issuer_unavailable until it answers")
        }
        _ => None,
    }
}

/// The last probe round, shared by the requests that need one (see the module's doc).
#[derive(Default)]
pub struct ReadinessProbes {
    last: Mutex<Option<(Instant, Vec<BackendCheck>)>>,
}

impl ReadinessProbes {
    /// Every backend's check, from a round at most [`REUSE`] old. The round runs in a task
    /// of its own that holds the lock and keeps its answer, so requests arriving meanwhile
    /// wait for it, and a caller that hangs up does not abandon it for the next to start
    /// again.
    async fn checks(gateway: &Arc<Gateway>) -> Vec<BackendCheck> {
        let gateway = Arc::clone(gateway);
        let round = tokio::spawn(async move {
            let mut last = gateway.readiness.last.lock().await;
            if let Some((at, checks)) = last.as_ref() {
                if at.elapsed() < REUSE {
                    return checks.clone();
                }
            }
            let checks = probe_all(&gateway).await;
            *last = Some((Instant::now(), checks.clone()));
            checks
        });
        round.await.unwrap_or_else(|_| {
            // A probe that panicked proves nothing is ready.
            vec![BackendCheck {
                name: "readiness".to_owned(),
                ok: false,
                required: true,
                problem: Some("the readiness probe failed".to_owned()),
                detail: None,
            }]
        })
    }
}

/// Every backend's check, side by side: a round takes the slowest probe's time, at most
/// [`PROBE_TIMEOUT`], not the sum.
async fn probe_all(gateway: &Gateway) -> Vec<BackendCheck> {
    let issuer = async {
        gateway
            .verifier
            .ready()
            .await
            .map_err(|why| BackendError::new("issuer", ErrorKind::Unavailable, why))
    };
    let (metadata, objects, queue, cache, issuer) = tokio::join!(
        check(
            "metadata",
            gateway.metadata.describe(),
            gateway.metadata.ping()
        ),
        check(
            "objects",
            gateway.objects.describe(),
            gateway.objects.ping()
        ),
        check("queue", gateway.queue.describe(), gateway.queue.ping()),
        check("cache", gateway.cache.describe(), gateway.cache.ping()),
        check("issuer", gateway.verifier.describe(), issuer),
    );
    vec![metadata, objects, queue, cache, issuer]
}

async fn check<F>(name: &str, describe: String, probe: F) -> BackendCheck
where
    F: std::future::Future<Output = Result<(), BackendError>>,
{
    let required = consequence(name).is_none();
    let failed = |problem: &str, why: String| BackendCheck {
        name: name.to_owned(),
        ok: false,
        required,
        problem: Some(match consequence(name) {
            Some(then) => format!("{problem}; {then}"),
            None => problem.to_owned(),
        }),
        detail: Some(format!("{describe}: {why}")),
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => BackendCheck {
            name: name.to_owned(),
            ok: true,
            required,
            problem: None,
            detail: Some(describe),
        },
        Ok(Err(error)) => failed(error.kind.in_words(), error.to_string()),
        Err(_) => {
            let late = format!("no answer within {} s", PROBE_TIMEOUT.as_secs());
            failed(&late, late.clone())
        }
    }
}

/// Whether the process can render: not while every CPU-pool thread is held by a hung render
/// (more hung than the pool replaces), when jobs it takes would only wait out their time.
fn render_check(engine: &EngineSnapshot) -> BackendCheck {
    let (serving, size) = engine.render_threads;
    let detail = format!(
        "{serving} of {size} render threads serving, {} renders hung",
        engine.renders_hung
    );
    BackendCheck {
        name: "renders".to_owned(),
        ok: serving > 0,
        required: true,
        problem: (serving == 0).then(|| {
            "every render thread is held by a hung render; restart the process".to_owned()
        }),
        detail: Some(detail),
    }
}

/// The readiness report shared by the gateway and the worker's admin listener: whether
/// the process is ready, and why. `with_detail` keeps each backend's `detail` (for the
/// admin endpoint); without it, the report is what anyone may read.
pub async fn readiness(gateway: &Arc<Gateway>, with_detail: bool) -> (bool, Readiness) {
    let mut backends = ReadinessProbes::checks(gateway).await;
    if let Some(engine) = &gateway.engine {
        backends.push(render_check(&engine()));
    }
    if !with_detail {
        for backend in &mut backends {
            backend.detail = None;
        }
    }
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

    /// Readiness: every required backend is reachable; says which backend is not, and how
    /// (addresses and errors: `/v1/system/readiness`, with the admin role).
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, gateway: Data<&Arc<Gateway>>) -> ReadyResponse {
        ReadyResponse::from_report(readiness(&gateway, false).await)
    }
}
