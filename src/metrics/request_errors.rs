//! Backend failures met while serving a request, counted without handing the metrics to
//! every place that maps or swallows an error: those places note the failure, and the
//! request layer ([`crate::api::request_log`]) counts what its request noted.
//!
//! The notes live in a task-local, so they only work inside the request's own task: a
//! failure in a task the request spawned, or while an event stream's body is being sent
//! after the response head, is not counted.

use std::cell::RefCell;
use std::future::Future;

use pixmill_actors::ports::{BackendError, ErrorKind};

use super::Metrics;

tokio::task_local! {
    static NOTED: RefCell<Vec<(&'static str, ErrorKind)>>;
}

/// Notes a failed backend call for the request being served (if any).
pub fn note_backend_error(error: &BackendError) {
    let _outside_a_request =
        NOTED.try_with(|noted| noted.borrow_mut().push((error.backend, error.kind)));
}

/// Runs `work` (one request), then counts every failure it noted in `metrics`.
pub async fn counting_backend_errors<F: Future>(metrics: &Metrics, work: F) -> F::Output {
    NOTED
        .scope(RefCell::new(Vec::new()), async {
            let output = work.await;
            for (backend, kind) in NOTED.with(|noted| noted.take()) {
                metrics.count_backend_error(backend, kind);
            }
            output
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pixmill_actors::metrics::EngineMetrics;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::metrics::RuntimeSources;

    #[tokio::test]
    async fn failures_noted_in_a_request_and_in_the_engine_are_counted_by_backend() {
        let metrics = Metrics::new(RuntimeSources::new(Arc::new(Semaphore::new(1)), 1));
        counting_backend_errors(&metrics, async {
            note_backend_error(&BackendError::timeout("redis", "slow"));
            note_backend_error(&BackendError::timeout("redis", "slow again"));
        })
        .await;
        // Outside any request: nothing to count it against, and no panic.
        note_backend_error(&BackendError::timeout("redis", "stray"));
        metrics.backend_error(&BackendError::new(
            "postgres",
            ErrorKind::Unavailable,
            "down",
        ));

        let text = metrics.render();
        assert!(
            text.contains(r#"pixmill_backend_errors_total{backend="redis",kind="timeout"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"pixmill_backend_errors_total{backend="postgres",kind="unavailable"} 1"#
            ),
            "{text}"
        );
    }
}
