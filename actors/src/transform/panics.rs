//! Turning a panic inside a codec into an error: the same bytes would panic again, so the
//! job fails for good instead of taking its worker down (or looping through retries).

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `work`, mapping a panic to `on_panic(message)`.
pub(crate) fn contain<T, E>(
    work: impl FnOnce() -> Result<T, E>,
    on_panic: impl FnOnce(String) -> E,
) -> Result<T, E> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(panic = %message, "image codec panicked; input refused");
            Err(on_panic(message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_given_error() {
        let out: Result<(), String> = contain(|| panic!("boom"), |m| format!("caught {m}"));
        assert_eq!(out, Err("caught boom".to_owned()));
        assert_eq!(contain(|| Ok::<_, String>(3), |m| m), Ok(3));
    }
}
