//! Format sniffing, header parsing and the container walk (`transform::probe`) on arbitrary
//! bytes, with the default limits. A panic (contained or not), a broken invariant, a hang
//! or a runaway allocation is a crash; see `probe_violation` for the invariants.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pixmill_actors::transform::{probe_violation, InputLimits};

fuzz_target!(|bytes: &[u8]| {
    if let Some(violation) = probe_violation(bytes, &InputLimits::default()) {
        panic!("{violation}");
    }
});
