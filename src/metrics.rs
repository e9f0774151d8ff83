//! Prometheus metrics of one process, served at `GET /metrics` (Prometheus text format
//! 0.0.4) on the API listener and on a worker's admin listener.
//!
//! One [`Metrics`] per [`crate::app::App`], not a process-wide recorder, so several apps in
//! one test process keep their counts apart. Counters and histograms are updated as things
//! happen (HTTP requests, uploads, and the engine's calls through
//! [`pixmill_actors::metrics::EngineMetrics`]); actor restarts, mailbox depths and upload
//! slots are read from their owners at scrape time by [`runtime::RuntimeCollector`].
//!
//! Every label is low-cardinality: route templates (never raw paths), status codes, error
//! codes, backend names, stage names.

mod labels;
mod request_errors;
mod runtime;

use std::sync::Arc;
use std::time::Duration;

use pixmill_actors::metrics::{EngineMetrics, JobOutcome, Phase};
use pixmill_actors::ports::{BackendError, ErrorKind};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use self::labels::{
    BackendLabels, CodeLabel, HttpLabels, OutcomeLabel, PhaseLabel, RouteLabels, StepLabel,
};
pub use self::request_errors::{counting_backend_errors, note_backend_error};
use self::runtime::RuntimeCollector;
pub use self::runtime::RuntimeSources;

/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// HTTP latencies: 5 ms to about 20 s.
fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// Job phases: 10 ms to about 80 s.
fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// Steps of an accepted upload: 250 µs to about 8 s. Finer than the HTTP buckets, since each
/// step is a few milliseconds when all is well.
fn upload_step_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

/// The steps of an upload inside the gateway, in order, each timed on its own so an operator
/// can see which backend an upload waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadStep {
    /// Reading the file's header and hashing it.
    Probe,
    /// Writing the original to `raw-images`, durably.
    StoreOriginal,
    /// Committing the image's row (with its dispatch mark).
    Record,
    /// Publishing the job to the queue.
    Publish,
    /// Clearing the dispatch mark once the job is published.
    ClearMark,
}

impl UploadStep {
    pub const ALL: [UploadStep; 5] = [
        UploadStep::Probe,
        UploadStep::StoreOriginal,
        UploadStep::Record,
        UploadStep::Publish,
        UploadStep::ClearMark,
    ];

    /// The label value metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStep::Probe => "probe",
            UploadStep::StoreOriginal => "store_original",
            UploadStep::Record => "record",
            UploadStep::Publish => "publish",
            UploadStep::ClearMark => "clear_mark",
        }
    }
}

/// Every metric of one process.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    waiting: Gauge,
    uploads_accepted: Counter,
    uploads_refused: Family<CodeLabel, Counter>,
    upload_steps: Histograms<StepLabel>,
    jobs: Family<OutcomeLabel, Counter>,
    phases: Histograms<PhaseLabel>,
    backend_errors: Family<BackendLabels, Counter>,
    webhooks: Family<OutcomeLabel, Counter>,
}

impl Metrics {
    /// A registry with every metric, reading actors and upload slots from `sources`.
    pub fn new(sources: Arc<RuntimeSources>) -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "pixmill_http_requests",
            "HTTP requests by route template and status",
            http_requests.clone(),
        );
        let http_duration: Histograms<RouteLabels> = Family::new_with_constructor(http_histogram);
        registry.register(
            "pixmill_http_request_duration_seconds",
            "Time to the response head, by route template (for event streams: to the first byte)",
            http_duration.clone(),
        );
        let waiting = Gauge::default();
        registry.register(
            "pixmill_http_waiting_requests",
            "Long polls and event streams open now",
            waiting.clone(),
        );
        let uploads_accepted = Counter::default();
        registry.register(
            "pixmill_uploads_accepted",
            "Uploads stored and queued",
            uploads_accepted.clone(),
        );
        let uploads_refused = Family::<CodeLabel, Counter>::default();
        registry.register(
            "pixmill_uploads_refused",
            "Uploads refused by the upload handler, by error code",
            uploads_refused.clone(),
        );
        let upload_steps: Histograms<StepLabel> =
            Family::new_with_constructor(upload_step_histogram);
        registry.register(
            "pixmill_upload_step_duration_seconds",
            "Time accepted uploads spend in each step: probe, store_original, record, publish, clear_mark",
            upload_steps.clone(),
        );
        let jobs = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "pixmill_jobs",
            "Job attempts that ended, by outcome (completed, failed, retried)",
            jobs.clone(),
        );
        let phases: Histograms<PhaseLabel> = Family::new_with_constructor(phase_histogram);
        registry.register(
            "pixmill_job_phase_duration_seconds",
            "Time jobs spend in each phase: queue_wait (upload to claim), download, transform, persist, end_to_end",
            phases.clone(),
        );
        let backend_errors = Family::<BackendLabels, Counter>::default();
        registry.register(
            "pixmill_backend_errors",
            "Failed backend calls, by backend and kind",
            backend_errors.clone(),
        );
        let webhooks = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "pixmill_webhook_deliveries",
            "Webhook deliveries that ended, by outcome",
            webhooks.clone(),
        );
        registry.register_collector(Box::new(RuntimeCollector::new(sources)));

        // Known label values start at zero, so a dashboard sees them before the first event.
        for outcome in JobOutcome::ALL {
            drop(jobs.get_or_create(&OutcomeLabel::new(outcome.as_str())));
        }
        for step in UploadStep::ALL {
            drop(upload_steps.get_or_create(&StepLabel {
                step: step.as_str(),
            }));
        }
        for phase in Phase::ALL {
            drop(phases.get_or_create(&PhaseLabel {
                phase: phase.as_str(),
            }));
        }
        Self {
            registry,
            http_requests,
            http_duration,
            waiting,
            uploads_accepted,
            uploads_refused,
            upload_steps,
            jobs,
            phases,
            backend_errors,
            webhooks,
        }
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_text::encode(&mut text, &self.registry) {
            // Writing into a String cannot fail; a collector could, and then the scrape is
            // partial rather than absent.
            tracing::warn!(%error, "could not encode every metric");
        }
        text
    }

    /// One finished HTTP request. `route` is the matched route template.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let route = labels::route_label(route);
        let labels = HttpLabels {
            method: labels::method_label(method),
            route: route.clone(),
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        let labels = RouteLabels {
            method: labels.method,
            route,
        };
        self.http_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a long poll or event stream while the guard lives.
    pub fn waiting(&self) -> WaitingGuard {
        self.waiting.inc();
        WaitingGuard(self.waiting.clone())
    }

    pub fn upload_accepted(&self) {
        self.uploads_accepted.inc();
    }

    pub fn upload_refused(&self, code: &'static str) {
        self.uploads_refused
            .get_or_create(&CodeLabel { code })
            .inc();
    }

    /// One step of an upload took `elapsed`.
    pub fn upload_step(&self, step: UploadStep, elapsed: Duration) {
        self.upload_steps
            .get_or_create(&StepLabel {
                step: step.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One failed call to `backend`.
    pub fn count_backend_error(&self, backend: &'static str, kind: ErrorKind) {
        let labels = BackendLabels {
            backend,
            kind: labels::kind_label(kind),
        };
        self.backend_errors.get_or_create(&labels).inc();
    }

    /// A webhook delivery ended: `delivered`, `gave_up` or `refused` (target not allowed).
    pub fn webhook(&self, outcome: &'static str) {
        self.webhooks
            .get_or_create(&OutcomeLabel::new(outcome))
            .inc();
    }
}

/// Holds one unit of `pixmill_http_waiting_requests`; gives it back when dropped.
pub struct WaitingGuard(Gauge);

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl EngineMetrics for Metrics {
    fn phase(&self, phase: Phase, elapsed: Duration) {
        self.phases
            .get_or_create(&PhaseLabel {
                phase: phase.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn job(&self, outcome: JobOutcome) {
        self.jobs
            .get_or_create(&OutcomeLabel::new(outcome.as_str()))
            .inc();
    }

    fn backend_error(&self, error: &BackendError) {
        let labels = BackendLabels {
            backend: error.backend,
            kind: labels::kind_label(error.kind),
        };
        self.backend_errors.get_or_create(&labels).inc();
    }
}
