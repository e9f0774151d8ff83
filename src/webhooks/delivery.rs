//! Sending one webhook attempt: resolve and check the target, POST the signed body to
//! exactly the checked addresses, and say whether another attempt could help. When to try
//! again is the dispatcher's (see [`super::dispatcher`]).

use std::time::Duration;

use bytes::Bytes;
use reqwest::{redirect, StatusCode};

use super::signature;
use super::target::{CallbackUrl, TargetError, RESOLVE_TIMEOUT};
use super::WebhookConfig;

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt {
    Delivered,
    /// Worth another try later: no answer, a 5xx, 408 or 429.
    Transient(String),
    /// Trying again would not help: a refused target, another 4xx.
    Permanent(String),
}

/// Sends webhook attempts for one process.
pub struct WebhookSender {
    config: WebhookConfig,
}

impl WebhookSender {
    pub fn new(config: WebhookConfig) -> Self {
        Self { config }
    }

    /// A secret is set, so webhooks can be signed (and uploads may name targets).
    pub fn enabled(&self) -> bool {
        !self.config.secret.is_empty()
    }

    /// Attempts per webhook, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.config.max_attempts.max(1)
    }

    /// The longest one attempt may take: resolving the target, then the request. Enforced
    /// as a whole in [`Self::send`], since the dispatcher holds a webhook for this long.
    pub fn attempt_timeout(&self) -> Duration {
        RESOLVE_TIMEOUT.saturating_add(self.config.timeout)
    }

    /// The wait after failed attempt number `attempt` (from 1): the base delay, doubled
    /// after each failure.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        self.config
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
    }

    /// One attempt to deliver `body` to `target`.
    pub async fn send(&self, target: &CallbackUrl, body: Bytes) -> Attempt {
        if !self.enabled() {
            // The dispatcher does not run without a secret (see `WebhookDispatcher::start`);
            // were it to, an unsigned POST would be forgeable.
            return Attempt::Transient("webhooks.secret is not set".to_owned());
        }
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature::sign(self.config.secret.expose().as_bytes(), timestamp, &body);
        let attempt = self.attempt(target, body, timestamp, &signature);
        match tokio::time::timeout(self.attempt_timeout(), attempt).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::Transient("the attempt timed out".to_owned()),
        }
    }

    async fn attempt(
        &self,
        target: &CallbackUrl,
        body: Bytes,
        timestamp: i64,
        signature: &str,
    ) -> Attempt {
        // Checked again at every attempt: the answer may have changed since the upload.
        let addrs = match target.resolve(self.config.allow_private_unsafe).await {
            Ok(addrs) => addrs,
            Err(error @ TargetError::Unresolvable(_)) => {
                return Attempt::Transient(error.to_string())
            }
            Err(error @ TargetError::NotPublic { addr, .. }) => {
                tracing::warn!(target_addr = %addr, "the webhook target resolves to a non-public address");
                return Attempt::Permanent(error.to_string());
            }
            Err(error) => return Attempt::Permanent(error.to_string()),
        };
        // A client per attempt, pinned to the checked addresses, so the connection cannot
        // go anywhere the check did not see; never through a proxy from the environment
        // (`HTTPS_PROXY`), which would resolve the name itself and reach what it resolves to.
        let client = reqwest::Client::builder()
            .no_proxy()
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
            .header(signature::TIMESTAMP_HEADER, timestamp)
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
