//! The screening of a bearer token before any key is looked at (`pixmill::auth::header`):
//! base64 and JSON decoding of the JOSE header and payload, the algorithm check and the
//! refusal of key references, on arbitrary text. A panic or a broken contract (see
//! `screen_violation`) is a crash.

#![no_main]

// The module is included as a file so that this target builds without the gateway's
// dependencies; it is the same source the verifier compiles.
#[path = "../../src/auth/header.rs"]
#[allow(dead_code)]
mod header;

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;

/// The default list, and one with every other key family, so that both the refusal and the
/// acceptance paths of each family are reached.
const ALLOWED: [&[Algorithm]; 2] = [
    &[Algorithm::RS256],
    &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
];

fuzz_target!(|bytes: &[u8]| {
    // A bearer token reaches the verifier as text; invalid UTF-8 never gets that far, so
    // it is replaced the way the regression replay does.
    let token = String::from_utf8_lossy(bytes);
    for allowed in ALLOWED {
        if let Some(violation) = header::screen_violation(&token, allowed) {
            panic!("{violation}");
        }
    }
});
