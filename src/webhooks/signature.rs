//! The webhook signature: `v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>`, where the
//! timestamp is the attempt's `X-Pixmill-Timestamp` (Unix seconds) and the body the exact
//! bytes sent. Signing the time with the body lets a receiver refuse a captured delivery
//! replayed later: the time cannot be renewed without the secret. The prefix names this
//! scheme: a `sha256=` value (GitHub's form) is read as the HMAC of the body alone, which
//! this is not, so a receiver written for that fails plainly rather than by mismatch.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const HEADER: &str = "X-Pixmill-Signature";
/// The header that carries when the attempt was signed, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Pixmill-Timestamp";

/// The `X-Pixmill-Signature` value for `body` sent at `timestamp` under `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 4231 key and message, with a timestamp in front; the expected value is
    /// Python's `hmac.new(b"Jefe", b"1800000000.what do ya want for nothing?",
    /// hashlib.sha256).hexdigest()`, what a receiver would compute.
    #[test]
    fn signs_the_timestamp_and_the_body_as_a_receiver_recomputes_them() {
        let signature = sign(b"Jefe", 1_800_000_000, b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "v1=ab5a2e6f7ddd4f6783bae7a65618acf1b188b4ca973bbebbbdeb60024ee0f3f3"
        );
        assert_ne!(
            sign(b"Jefe", 1_800_000_001, b"what do ya want for nothing?"),
            signature,
            "another time, another signature"
        );
    }
}
