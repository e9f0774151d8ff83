//! Webhooks: an upload may name a `callback_url`; when its job ends (`COMPLETED` or
//! `FAILED`), the worker that finished it POSTs the status document there, signed with
//! HMAC-SHA256 over the body (`X-Pixmill-Signature: sha256=<hex>`, secret
//! `webhooks.secret`), retrying with exponential back-off a bounded number of times.
//!
//! Delivery is worker-side, from a [`notifier::WebhookNotifier`] wrapped around the
//! engine's status events: the process that recorded the final status sends the webhook
//! once, at that moment. A gateway-side dispatcher would depend on the best-effort event
//! feed (a lost Redis message would lose the webhook) and every gateway would see every
//! event, so deliveries would need deduplicating across gateways.
//!
//! Targets are restricted ([`target`]): by default every address the host resolves to must
//! be public (no loopback, private, link-local, unique-local, ...), checked at upload and
//! again before each attempt, and the connection goes to the addresses that were checked,
//! so a DNS answer that changes in between (rebinding) cannot redirect it. Redirects are
//! not followed. `webhooks.allow_private_unsafe` lifts the address check, for tests and
//! internal deployments.
//!
//! Known limit: deliveries live in the worker's memory. A worker that stops while a
//! delivery is waiting for its next attempt drops it; nothing re-sends it later.

pub mod delivery;
pub mod notifier;
pub mod signature;
pub mod target;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// `webhooks.*` in the configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// The HMAC key of `X-Pixmill-Signature`. Empty: uploads with a `callback_url` are
    /// refused (`webhooks_disabled`).
    pub secret: Secret,
    /// Allow targets on loopback and private networks. Unsafe on any gateway that accepts
    /// uploads from outside: it lets callers make the workers POST into your network.
    pub allow_private_unsafe: bool,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles after each failure.
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    /// Longest wait for one attempt (connect, send, answer).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            secret: Secret::default(),
            allow_private_unsafe: false,
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the gateway checks a `callback_url` against at upload.
#[derive(Clone, Copy, Debug, Default)]
pub struct WebhookPolicy {
    /// A secret is configured, so webhooks can be signed.
    pub enabled: bool,
    pub allow_private: bool,
}

impl WebhookPolicy {
    pub fn from_config(config: &WebhookConfig) -> Self {
        Self {
            enabled: !config.secret.is_empty(),
            allow_private: config.allow_private_unsafe,
        }
    }
}
