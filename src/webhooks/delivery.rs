//! Sending one webhook: resolve and check the target, POST the signed body to exactly the
//! checked addresses, and retry transient failures with exponential back-off.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{redirect, StatusCode};
use tokio_util::sync::CancellationToken;

use super::signature;
use super::target::{CallbackUrl, TargetError};
use super::WebhookConfig;
use crate::metrics::Metrics;

/// How one attempt ended.
enum Attempt {
    Delivered,
    /// Worth another try later: no answer, a 5xx, 408 or 429.
    Transient(String),
    /// Trying again would not help: a refused target, another 4xx.
    Permanent(String),
}

/// Sends webhooks for one process.
pub struct WebhookSender {
    config: WebhookConfig,
    metrics: Arc<Metrics>,
    /// Cancelled on shutdown: back-off waits end and no further attempt starts.
    shutdown: CancellationToken,
}

impl WebhookSender {
    pub fn new(config: WebhookConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            config,
            metrics,
            shutdown: CancellationToken::new(),
        }
    }

    /// Stops retrying; deliveries waiting for their next attempt are dropped.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Delivers `body` to `target`, trying up to `max_attempts` times.
    pub async fn deliver(&self, target: &CallbackUrl, body: Bytes) {
        let signature = signature::sign(self.config.secret.expose().as_bytes(), &body);
        let attempts = self.config.max_attempts.max(1);
        for attempt in 1..=attempts {
            let reason = match self.attempt(target, body.clone(), &signature).await {
                Attempt::Delivered => {
                    self.metrics.webhook("delivered");
                    tracing::info!(attempt, "webhook delivered");
                    return;
                }
                Attempt::Permanent(reason) => {
                    self.metrics.webhook("refused");
                    tracing::warn!(attempt, reason = %reason, "webhook refused; not retrying");
                    return;
                }
                Attempt::Transient(reason) => reason,
            };
            if attempt == attempts {
                self.metrics.webhook("gave_up");
                tracing::warn!(attempt, reason = %reason, "webhook failed; giving up");
                return;
            }
            let delay = self
                .config
                .base_delay
                .saturating_mul(1 << (attempt - 1).min(16));
            tracing::info!(attempt, reason = %reason, retry_in_ms = delay.as_millis() as u64, "webhook failed; will retry");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled() => {
                    tracing::warn!(attempt, "shutting down; webhook dropped");
                    return;
                }
            }
        }
    }

    async fn attempt(&self, target: &CallbackUrl, body: Bytes, signature: &str) -> Attempt {
        // Checked again at every attempt: the answer may have changed since the upload.
        let addrs = match target.resolve(self.config.allow_private_unsafe).await {
            Ok(addrs) => addrs,
            Err(error @ TargetError::Unresolvable(_)) => {
                return Attempt::Transient(error.to_string())
            }
            Err(error) => return Attempt::Permanent(error.to_string()),
        };
        // A client per attempt, pinned to the checked addresses, so the connection cannot
        // go anywhere the check did not see.
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .timeout(self.config.timeout)
            .connect_timeout(self.config.timeout.min(Duration::from_secs(5)))
            .resolve_to_addrs(&target.host(), &addrs)
            .user_agent(concat!("pixmill/", env!("CARGO_PKG_VERSION")))
            .build();
        let client = match client {
            Ok(client) => client,
            Err(error) => {
                return Attempt::Permanent(format!("could not build the HTTP client: {error}"))
            }
        };
        let sent = client
            .post(target.url().clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(signature::HEADER, signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Attempt::Delivered,
            Ok(response) => classify(response.status()),
            Err(error) => Attempt::Transient(error.to_string()),
        }
    }
}

fn classify(status: StatusCode) -> Attempt {
    let reason = format!("the target answered {}", status.as_u16());
    let retry = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    if retry {
        Attempt::Transient(reason)
    } else {
        Attempt::Permanent(reason)
    }
}
