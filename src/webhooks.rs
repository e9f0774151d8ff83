//! Webhooks: an upload may name a `callback_url`; when its job ends (`COMPLETED` or
//! `FAILED`), the worker that finished it POSTs the status document there, signed with
//! HMAC-SHA256 over the attempt's time and the body (`X-Pixmill-Timestamp`,
//! `X-Pixmill-Signature: v1=<hex>`, secret `webhooks.secret`; see [`signature`]), retrying
//! with exponential back-off a bounded number of times.
//!
//! Delivery goes through an outbox in the metadata store: the write that records a job's
//! final status also marks its webhook due, and every process that runs the engine runs a
//! [`dispatcher::WebhookDispatcher`] that takes due webhooks, sends them and settles them
//! (woken by [`notifier::WebhookNotifier`] when a job ends there, so the first attempt goes
//! out at once). A webhook survives the worker that ended its job: one that stops between
//! attempts, or dies mid-attempt, leaves it in the outbox for any worker to send. Delivery
//! is at least once (see the dispatcher for when a receiver may see a repeat). Driving it
//! from the gateways' event feed instead would lose webhooks with lost Redis messages.
//!
//! Targets are restricted ([`target`]): by default every address the host resolves to must
//! be public (no loopback, private, link-local, unique-local, ...), checked at upload and
//! again before each attempt, and the connection goes to the addresses that were checked,
//! so a DNS answer that changes in between (rebinding) cannot redirect it. Redirects are
//! not followed. `webhooks.allow_private_unsafe` lifts the address check, for tests and
//! internal deployments.

pub mod delivery;
pub mod dispatcher;
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

/// The shortest `webhooks.secret` accepted: a receiver trusts every POST it signs, so it
/// must not be guessable.
pub const MIN_SECRET_BYTES: usize = 16;

impl WebhookConfig {
    /// Refuses a secret too short to keep forgers out (an empty one switches webhooks off).
    pub fn check(&self) -> Result<(), String> {
        let length = self.secret.expose().len();
        if length > 0 && length < MIN_SECRET_BYTES {
            return Err(format!(
                "webhooks.secret is {length} bytes; use at least {MIN_SECRET_BYTES} random \
                 ones (e.g. `openssl rand -hex 32`): receivers trust every POST it signs"
            ));
        }
        Ok(())
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
